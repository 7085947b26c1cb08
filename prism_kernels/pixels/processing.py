"""Frame statistics of IR frames, and the imaging-core estimators the pixels API names.

Frames are (H, W) or stacks (B, H, W) of ``uint8``, ``uint16`` or float. Statistics are
backend-generic (array-API calls on the input's namespace; integer frames are promoted to
float64); percentiles and medians are exact selections (:mod:`~prism_kernels.imaging.order`),
never full sorts (a 2048 x 2048 frame in about 65 ms on one CPU core). Validation, robust
noise and background estimation are the shared imaging core's (:mod:`prism_kernels.imaging`);
they are re-exported here under the names the pixels package has always used:
:func:`estimate_background`, :func:`noise_sigma` (the white-noise sigma from pixel
differences) and :func:`check_frames`.
"""

from __future__ import annotations

from typing import Any

from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.background import estimate_background
from prism_kernels.imaging.frames import check_frames
from prism_kernels.imaging.noise import difference_sigma as noise_sigma
from prism_kernels.imaging.noise import robust_sigma
from prism_kernels.imaging.order import quantiles

__all__ = [
    "PERCENTILES",
    "check_frames",
    "estimate_background",
    "frame_stats",
    "noise_sigma",
    "white_tophat",
]

#: Percentiles reported by :func:`frame_stats`.
PERCENTILES = (1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0)


def frame_stats(frames: Any, percentiles: tuple[float, ...] = PERCENTILES) -> dict[str, Any]:
    """Per-frame statistics.

    Parameters
    ----------
    frames : array, (H, W) or (B, H, W)
        Counts, any array library.
    percentiles : tuple of float
        In [0, 100].

    Returns
    -------
    dict of arrays on the input's backend (0-d for one frame, (B,) for a stack), counts:
        ``mean, std`` (population), ``min, max``, ``median``, ``mad_sigma`` (robust sigma of
        the values, :func:`~prism_kernels.imaging.noise.robust_sigma`), ``noise_sigma`` (see
        :func:`noise_sigma`) and ``p<q>`` for each percentile (linear interpolation, as
        ``numpy.percentile``). A statistic that overflows float64 (values near 1e308) is inf.
    """
    frames = check_frames(frames)
    for q in percentiles:
        if not 0.0 <= q <= 100.0:
            raise InvalidInput("percentiles", f"must lie in [0, 100], got {q}")
    xp = get_namespace(frames)
    f = frames if frames.dtype == xp.float64 else xp.astype(frames, xp.float64)
    x = xp.reshape(f, (1, -1)) if f.ndim == 2 else xp.reshape(f, (f.shape[0], -1))
    qv = quantiles(x, (50.0, *percentiles))  # one selection for every percentile
    out: dict[str, Any] = {
        "mean": xp.mean(x, axis=-1),
        "std": xp.std(x, axis=-1),
        "min": xp.min(x, axis=-1),
        "max": xp.max(x, axis=-1),
        "median": qv[:, 0],
        "mad_sigma": robust_sigma(x),
    }
    for i, q in enumerate(percentiles):
        out[f"p{q:g}"] = qv[:, i + 1]
    one = frames.ndim == 2
    out = {k: (v[0] if one else v) for k, v in out.items()}
    out["noise_sigma"] = noise_sigma(frames)
    return out


def white_tophat(frames: Any, size: int = 9) -> Any:
    """Frame minus its grey opening by a ``size`` square: bright details narrower than ``size``.

    ``frames - estimate_background(frames, "opening", size)`` (equal to
    ``scipy.ndimage.white_tophat`` with reflect borders); float64, on the input's library.
    """
    frames = check_frames(frames)
    xp = get_namespace(frames)
    f = frames if frames.dtype == xp.float64 else xp.astype(frames, xp.float64)
    return f - estimate_background(f, "opening", size)
