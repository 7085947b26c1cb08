"""Frame statistics, robust noise and background estimation for IR frames.

Frames are (H, W) or stacks (B, H, W) of ``uint8``, ``uint16`` or float. Statistics are
backend-generic (array-API calls on the input's namespace; integer frames are promoted to
float64). Background filters (median, opening, sigma-clipped mean) use ``scipy.ndimage``
on the host: the frame is copied there at this edge and the result copied back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from prism_kernels.backend import asarray, backend_name, get_namespace, to_numpy
from prism_kernels.errors import InvalidInput

#: Consistency factor: sigma = MAD_FACTOR * median absolute deviation, for Gaussian noise.
MAD_FACTOR = 1.482602218505602

PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


def check_frames(frames: Any, field: str = "frame") -> Any:
    """Validate an (H, W) or (B, H, W) array on any backend: non-empty, finite, numeric."""
    xp = get_namespace(frames)
    if frames.ndim not in (2, 3):
        raise InvalidInput(field, f"expected (H, W) or (B, H, W), got shape {tuple(frames.shape)}")
    if any(int(s) == 0 for s in frames.shape):
        raise InvalidInput(field, f"empty frame of shape {tuple(frames.shape)}")
    if xp.isdtype(frames.dtype, "real floating") and not bool(xp.all(xp.isfinite(frames))):
        raise InvalidInput(field, "contains NaN or infinite values")
    if not xp.isdtype(frames.dtype, ("integral", "real floating")):
        raise InvalidInput(field, f"unsupported dtype {frames.dtype}")
    return frames


def _float(x: Any) -> Any:
    xp = get_namespace(x)
    return x if x.dtype == xp.float64 else xp.astype(x, xp.float64)


def _flat(frames: Any) -> Any:
    """(B, N) float64 view of an (H, W) or (B, H, W) stack."""
    xp = get_namespace(frames)
    f = _float(frames)
    return xp.reshape(f, (1, -1)) if f.ndim == 2 else xp.reshape(f, (f.shape[0], -1))


def _quantiles_sorted(s: Any, qs: tuple[float, ...]) -> Any:
    """Linear-interpolated percentiles (NumPy's default) of sorted rows ``s`` (B, N)."""
    xp = get_namespace(s)
    n = s.shape[-1]
    cols = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        cols.append(s[:, lo] + (s[:, hi] - s[:, lo]) * frac)
    return xp.stack(cols, axis=-1)


def _median_rows(x: Any) -> Any:
    xp = get_namespace(x)
    return _quantiles_sorted(xp.sort(x, axis=-1), (50.0,))[:, 0]


def robust_sigma(x: Any) -> Any:
    """``MAD_FACTOR * median(|x - median(x)|)`` along the last axis of a (B, N) array."""
    xp = get_namespace(x)
    med = _median_rows(x)
    return MAD_FACTOR * _median_rows(xp.abs(x - med[:, None]))


def noise_sigma(frames: Any) -> Any:
    """Robust white-noise sigma per frame from horizontal pixel differences.

    ``robust_sigma(x[:, 1:] - x[:, :-1]) / sqrt(2)``: insensitive to smooth background and
    to a few bright hotspots. Returns a scalar array for (H, W), shape (B,) for a stack.
    """
    check_frames(frames)
    xp = get_namespace(frames)
    f = _float(frames)
    d = f[..., :, 1:] - f[..., :, :-1] if f.shape[-1] > 1 else f[..., 1:, :] - f[..., :-1, :]
    if d.shape[-1] * d.shape[-2] == 0:
        out = xp.zeros((1,) if f.ndim == 2 else (f.shape[0],), dtype=xp.float64)
    else:
        out = robust_sigma(_flat(d)) / np.sqrt(2.0)
    return out[0] if frames.ndim == 2 else out


def frame_stats(frames: Any, percentiles: tuple[float, ...] = PERCENTILES) -> dict[str, Any]:
    """Per-frame statistics.

    Returns
    -------
    dict of arrays on the input's backend (scalars for one frame, (B,) for a stack):
        ``mean, std`` (population), ``min, max``, ``median``, ``mad_sigma`` (robust sigma
        of the values), ``noise_sigma`` (see :func:`noise_sigma`) and ``p<q>`` for each
        percentile (linear interpolation, as ``numpy.percentile``).
    """
    check_frames(frames)
    for q in percentiles:
        if not 0.0 <= q <= 100.0:
            raise InvalidInput("percentiles", f"must lie in [0, 100], got {q}")
    xp = get_namespace(frames)
    x = _flat(frames)
    s = xp.sort(x, axis=-1)
    out: dict[str, Any] = {
        "mean": xp.mean(x, axis=-1),
        "std": xp.std(x, axis=-1),
        "min": s[:, 0],
        "max": s[:, -1],
        "median": _quantiles_sorted(s, (50.0,))[:, 0],
        "mad_sigma": robust_sigma(x),
    }
    qv = _quantiles_sorted(s, tuple(percentiles))
    for i, q in enumerate(percentiles):
        out[f"p{q:g}"] = qv[:, i]
    one = frames.ndim == 2
    out = {k: (v[0] if one else v) for k, v in out.items()}
    out["noise_sigma"] = noise_sigma(frames)
    return out


def _host_stack(frames: Any) -> np.ndarray:
    a = to_numpy(frames).astype(np.float64)
    return a[None] if a.ndim == 2 else a


def _back(out: np.ndarray, like: Any) -> Any:
    out = out[0] if like.ndim == 2 else out
    name = backend_name(like)
    return out if name == "numpy" else asarray(out, backend=name)


def host_mad_sigma(r: np.ndarray) -> float:
    """Robust sigma (MAD) of a host frame from every second row and column (a quarter of
    the pixels: 0.5 % relative precision on a 640x480 frame, four times faster)."""
    sub = r[::2, ::2] if r.shape[0] > 1 and r.shape[1] > 1 and r.size >= 64 else r
    sub = sub.ravel()
    med = np.median(sub)
    return float(MAD_FACTOR * np.median(np.abs(sub - med)))


def estimate_background(
    frames: Any,
    method: str = "median",
    size: int = 31,
    *,
    clip_sigma: float = 3.0,
    iterations: int = 1,
) -> Any:
    """Smooth background of each frame (float64, same shape, on the input's backend).

    Parameters
    ----------
    method : {"median", "opening", "mean", "sigma_clip"}
        ``median``: median filter of ``size`` x ``size``. ``mean``: local mean. ``opening``: grey opening with a
        ``size`` square (removes bright objects narrower than ``size``). ``sigma_clip``:
        local mean of ``size`` x ``size`` repeated ``iterations`` times, each time ignoring
        pixels more than ``clip_sigma`` robust sigmas above the current background (the
        sigma is the MAD of the residual on every second row and column).
    size : int
        Window side in pixels; make it several times a hotspot's diameter.

    Notes
    -----
    ``scipy.ndimage`` on the host (reflect borders), one call per filter for the whole
    stack (the window has extent 1 along the batch axis).
    """
    check_frames(frames)
    if size < 1:
        raise InvalidInput("size", f"must be >= 1, got {size}")
    m = str(method).lower()
    if m not in ("median", "opening", "mean", "sigma_clip"):
        raise InvalidInput(
            "method",
            f"unknown background method {method!r}; choose median, opening, mean or sigma_clip",
        )
    a = _host_stack(frames)
    win = (1, size, size)  # one scipy call filters the whole stack, never across frames
    if m == "median":
        out = ndimage.median_filter(a, size=win, mode="reflect")
    elif m == "opening":
        out = ndimage.grey_opening(a, size=win, mode="reflect")
    elif m == "mean":
        out = ndimage.uniform_filter(a, size=win, mode="reflect")
    else:
        out = ndimage.uniform_filter(a, size=win, mode="reflect")
        for _ in range(max(1, iterations)):
            r = a - out
            sig = np.array([host_mad_sigma(x) or 1.0 for x in r])
            keep = (r <= clip_sigma * sig[:, None, None]).astype(np.float64)
            num = ndimage.uniform_filter(a * keep, size=win, mode="reflect")
            den = ndimage.uniform_filter(keep, size=win, mode="reflect")
            out = np.where(den > 1e-12, num / np.maximum(den, 1e-12), out)
    return _back(out, frames)


def white_tophat(frames: Any, size: int = 9) -> Any:
    """Frame minus its grey opening by a ``size`` square: bright details narrower than ``size``.

    ``scipy.ndimage.white_tophat`` on the host, frame by frame; float64 out.
    """
    check_frames(frames)
    if size < 1:
        raise InvalidInput("size", f"must be >= 1, got {size}")
    a = _host_stack(frames)
    out = np.stack([ndimage.white_tophat(f, size=(size, size), mode="reflect") for f in a])
    return _back(out, frames)
