"""Information-theoretic measures of IR frames (``InfoTheoryMetrics``, original API section 1.3).

All quantities are in bits. They are plug-in (histogram) estimates computed on the host
(NumPy: histograms have no array-API form; inputs from other libraries are copied with
``to_numpy``). A metric that the input does not define is ``None``, never a filler number.

Definitions, for the *current* frame ``X`` (the last of a stack), background model ``B`` and
robust noise sigma ``s`` from :func:`prism_kernels.imaging.background.fit_background` (the
polynomial surface of :mod:`prism_kernels.pwsa.detection`). Histograms, their binning and
entropies are the imaging core's (:mod:`prism_kernels.imaging.entropy`):

``entropy``
    ``H(X) = -sum p_k log2 p_k`` of the intensity histogram with ``bins`` equal-width bins
    over ``[min X, max X]``. 0 for a constant frame.
``entropy_rate``
    First-order (Markov) entropy rate along rows: ``H(X_i | X_{i-1}) = H(X_{i-1}, X_i) -
    H(X_{i-1})`` over horizontally adjacent pixel pairs, ``joint_bins`` equal-width bins.
    ``None`` when the frame has fewer than 2 columns.
``mutual_information``
    ``I(X; Y) = H(X) + H(Y) - H(X, Y)`` over co-located pixels with ``joint_bins`` bins per
    axis, where ``Y`` is the previous frame when a stack is given (pooled over consecutive
    pairs), else the background model ``B``. ``mutual_information_reference`` says which.
    Plug-in bias is about ``(joint_bins - 1)^2 / (2 N ln 2)`` bits for ``N`` pixels.
``transfer_entropy``
    Needs at least two frames. ``TE(Y -> X) = I(X_t; Y_{t-1} | X_{t-1})`` pooled over interior
    pixels and consecutive frame pairs of the background-subtracted frames, with ``X`` a
    pixel and ``Y`` the mean of its 8 neighbours: how much the neighbourhood's past tells about a pixel's present beyond the
    pixel's own past (a moving hotspot makes it positive). Each variable is binned in
    ``te_bins`` equiprobable (quantile) bins.
``channel_capacity``
    Shannon capacity ``log2(1 + SNR)`` bits per pixel use, ``SNR = max(mean((X - B)^2) - s^2,
    0) / s^2`` (signal power per pixel over noise power). ``None`` when ``s`` is 0 or not
    estimable (fewer than 9 pixels).
``fisher_information``
    Fisher information (px^-2, mean of the x and y diagonal terms) of the primary hotspot's
    centroid under white Gaussian noise ``s`` and a Gaussian PSF of the measured peak and
    width: ``J = sum_pixels (d mu / d x0)^2 / s^2``. Its inverse square root,
    ``centroid_crlb_px``, is the Cramer-Rao bound on the centroid error. ``None`` without a
    hotspot or without ``s``.
``kl_divergence``
    ``D_KL(P_X || Q_B) = sum_k P_k log2(P_k / Q_k)``, ``P`` the frame's intensity histogram
    (``bins`` bins over its range, end bins open), ``Q`` the histogram the background model
    predicts: per pixel ``N(B_ij, s^2)``, averaged over pixels. About 0 for a frame that is
    background plus noise (plug-in bias about ``(bins - 1) / (2 N ln 2)``); large when
    hotspots put mass where the model has none. ``None`` without ``s``.

:func:`series_info_metrics` reproduces the original server's algorithm on a plain value
series (used when a request carries no pixels).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.background import Background, fit_background
from prism_kernels.imaging.entropy import entropy_of_counts, histogram_entropy, uniform_codes
from prism_kernels.imaging.frames import as_frames
from prism_kernels.imaging.noise import frame_noise


@dataclass
class InfoTheoryMetrics:
    """Original API ``InfoTheoryMetrics`` plus two descriptive fields (see module docstring)."""

    entropy: float
    entropy_rate: float | None
    mutual_information: float | None
    transfer_entropy: float | None
    channel_capacity: float | None
    fisher_information: float | None
    kl_divergence: float | None
    mutual_information_reference: str | None = None
    centroid_crlb_px: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():  # JSON has no inf/nan: serde wrote them as null
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d


def _quantile_codes(x: np.ndarray, bins: int) -> np.ndarray:
    """Equiprobable bin index (edges at quantiles; ties collapse bins)."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, x, side="right").astype(np.int64)


def _joint_entropy(*codes: np.ndarray) -> float:
    key = np.zeros(codes[0].shape, dtype=np.int64)
    for c in codes:
        key = key * (int(c.max()) + 1) + c
    _, counts = np.unique(key, return_counts=True)
    return entropy_of_counts(counts)


def mutual_information_bits(x: Any, y: Any, bins: int = 16) -> float:
    """Plug-in ``I(X; Y)`` in bits of paired samples, equal-width ``bins`` per variable."""
    a = np.asarray(to_numpy(x), dtype=np.float64).reshape(-1)
    b = np.asarray(to_numpy(y), dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise InvalidInput("reference", f"shapes differ: {a.size} vs {b.size} values")
    if a.size == 0:
        raise InvalidInput("pixels", "empty input")
    ca, cb = uniform_codes(a, bins, field="pixels"), uniform_codes(b, bins, field="reference")
    mi = _joint_entropy(ca) + _joint_entropy(cb) - _joint_entropy(ca, cb)
    return float(max(mi, 0.0))


def _transfer_entropy(frames: np.ndarray, bins: int) -> float | None:
    b, h, w = frames.shape
    if b < 2 or h < 3 or w < 3:
        return None
    prev = frames[:-1]
    cur = frames[1:]
    nb = (
        prev[:, :-2, :-2]
        + prev[:, :-2, 1:-1]
        + prev[:, :-2, 2:]
        + prev[:, 1:-1, :-2]
        + prev[:, 1:-1, 2:]
        + prev[:, 2:, :-2]
        + prev[:, 2:, 1:-1]
        + prev[:, 2:, 2:]
    ) / 8.0
    xt = _quantile_codes(cur[:, 1:-1, 1:-1].reshape(-1), bins)
    xp_ = _quantile_codes(prev[:, 1:-1, 1:-1].reshape(-1), bins)
    yp = _quantile_codes(nb.reshape(-1), bins)
    te = (
        _joint_entropy(xt, xp_)
        - _joint_entropy(xp_)
        - _joint_entropy(xt, xp_, yp)
        + _joint_entropy(xp_, yp)
    )
    return float(max(te, 0.0))


def _kl_to_background(x: np.ndarray, model: np.ndarray, sigma: float, bins: int) -> float:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        hi = lo + sigma
    edges = np.linspace(lo, hi, bins + 1)
    p = np.bincount(uniform_codes(x, bins), minlength=bins).astype(np.float64)
    p /= p.sum()
    # Model mass per bin: inner edges only, end bins open to +-inf. The smooth model is
    # grouped on a sigma/64 grid first (exact to ~1e-3 sigma, far below bin widths).
    grid = np.rint(model.reshape(-1) * (64.0 / sigma))
    vals, cnt = np.unique(grid, return_counts=True)
    z = (edges[None, 1:-1] - vals[:, None] * (sigma / 64.0)) / sigma
    cdf = (cnt[:, None] * ndtr(z)).sum(axis=0) / cnt.sum()
    cdf = np.concatenate([[0.0], cdf, [1.0]])
    q = np.maximum(np.diff(cdf), 1e-300)
    nz = p > 0
    return float(max((p[nz] * np.log2(p[nz] / q[nz])).sum(), 0.0))


def _fisher_centroid(hotspot: Any, sigma: float, shape: tuple[int, int]) -> float | None:
    if hotspot is None or not (sigma > 0) or hotspot.peak <= 0:
        return None
    h, w = shape
    s = float(hotspot.psf_sigma)
    rad = int(math.ceil(5 * s))
    cx, cy = int(round(hotspot.x)), int(round(hotspot.y))
    cols = np.arange(max(cx - rad, 0), min(cx + rad + 1, w))
    rows = np.arange(max(cy - rad, 0), min(cy + rad + 1, h))
    dx = cols[None, :] - hotspot.x
    dy = rows[:, None] - hotspot.y
    g = hotspot.peak * np.exp(-(dx * dx + dy * dy) / (2 * s * s))
    jx = ((g * dx / (s * s)) ** 2).sum() / sigma**2
    jy = ((g * dy / (s * s)) ** 2).sum() / sigma**2
    return float(0.5 * (jx + jy))


def frame_info_metrics(
    frames: Any,
    background: Any = None,
    hotspot: Any = None,
    bins: int = 64,
    joint_bins: int = 16,
    te_bins: int = 8,
    noise_sigma: float | None = None,
) -> InfoTheoryMetrics:
    """Information metrics of the last frame of ``frames`` (see the module docstring).

    Parameters
    ----------
    frames : array
        ``(H, W)`` or ``(B, H, W)``, time-ordered; the last frame is assessed.
    background : Background or array, optional
        A :class:`~prism_kernels.imaging.background.Background` (model and sigma) or a
        background model array shaped like ``frames``; estimated when omitted.
    hotspot : Hotspot, optional
        The primary hotspot, for ``fisher_information``.
    noise_sigma : float, optional
        Known noise standard deviation (counts); otherwise the background's robust
        estimate, or that of ``X - B``
        (:func:`~prism_kernels.imaging.noise.frame_noise`) when a bare background array is
        given.
    """
    for name, val in (("bins", bins), ("joint_bins", joint_bins), ("te_bins", te_bins)):
        if int(val) < 2:
            raise InvalidInput(name, "need at least 2 bins")
    fr = as_frames(frames, "pixels")
    if background is None:
        background = fit_background(fr, "polynomial")
    if isinstance(background, Background):
        model = np.asarray(to_numpy(background.model), dtype=np.float64)
        sigma = float(background.sigma[-1])
    else:
        model = np.asarray(to_numpy(background), dtype=np.float64)
        if model.ndim == 2:
            model = model[None]
        sigma = float("nan")
    host = np.asarray(to_numpy(fr), dtype=np.float64)
    if model.shape[-2:] != host.shape[-2:]:
        raise InvalidInput(
            "background", f"background shape {model.shape} does not match frames {host.shape}"
        )
    if not np.all(np.isfinite(model)):
        raise InvalidInput("background", "background contains NaN or infinite values")
    cur = host[-1]
    bmod = model[-1]
    if noise_sigma is not None:
        if not (math.isfinite(noise_sigma) and noise_sigma > 0):
            raise InvalidInput("noise_sigma", "noise_sigma must be positive")
        sigma = float(noise_sigma)
    if not math.isfinite(sigma):
        sigma = float(frame_noise(cur - bmod, bmod)[1][0])
    sig_ok = math.isfinite(sigma) and sigma > 0

    ent = histogram_entropy(cur, bins)
    rate = None
    if cur.shape[1] >= 2:
        left = uniform_codes(cur, joint_bins)
        a, b = left[:, :-1].reshape(-1), left[:, 1:].reshape(-1)
        rate = float(max(_joint_entropy(a, b) - _joint_entropy(a), 0.0))
    if host.shape[0] >= 2:
        mi = float(
            np.mean(
                [
                    mutual_information_bits(host[k], host[k + 1], joint_bins)
                    for k in range(host.shape[0] - 1)
                ]
            )
        )
        mi_ref = "previous_frame"
    else:
        mi = mutual_information_bits(cur, bmod, joint_bins)
        mi_ref = "background"
    te = _transfer_entropy(host - model, te_bins) if model.shape[0] in (1, host.shape[0]) else None
    cap = kl = fisher = crlb = None
    if sig_ok:
        snr = max(float(np.mean((cur - bmod) ** 2)) - sigma**2, 0.0) / sigma**2
        cap = math.log2(1.0 + snr)
        kl = _kl_to_background(cur.reshape(-1), bmod, sigma, bins)
        fisher = _fisher_centroid(hotspot, sigma, cur.shape)
        if fisher is not None and fisher > 0:
            crlb = 1.0 / math.sqrt(fisher)
    return InfoTheoryMetrics(
        entropy=ent,
        entropy_rate=rate,
        mutual_information=mi,
        transfer_entropy=te,
        channel_capacity=cap,
        fisher_information=fisher,
        kl_divergence=kl,
        mutual_information_reference=mi_ref,
        centroid_crlb_px=crlb,
    )


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def series_info_metrics(values: Any) -> InfoTheoryMetrics:
    """The original server's metrics of a value series (original API section 1.4).

    Values are discretised as ``round(10 x)`` (half away from zero); ``entropy`` is the
    Shannon entropy of their histogram; ``entropy_rate = H(5-blocks) - H(4-blocks)`` over
    sliding windows (0 below 6 values); ``channel_capacity = log2(1 + mean(x^2) / 0.1^2)``;
    ``fisher_information = n / var(x)`` (population variance; ``None`` when var <= 1e-10).
    Mutual information, transfer entropy and KL need a reference signal: ``None``.
    """
    x = np.asarray(to_numpy(values), dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise InvalidInput("values", "empty series")
    if not np.all(np.isfinite(x)):
        raise InvalidInput("values", "series contains NaN or infinite values")
    d = _round_half_away(x * 10.0).astype(np.int64)

    def block_entropy(k: int) -> float:
        win = np.lib.stride_tricks.sliding_window_view(d, k)
        _, counts = np.unique(win, axis=0, return_counts=True)
        return entropy_of_counts(counts)

    _, counts = np.unique(d, return_counts=True)
    ent = entropy_of_counts(counts)
    rate = block_entropy(5) - block_entropy(4) if x.size >= 6 else 0.0
    cap = math.log2(1.0 + float(np.mean(x * x)) / 0.01)
    var = float(np.var(x))
    fisher = x.size / var if var > 1e-10 else None
    return InfoTheoryMetrics(
        entropy=ent,
        entropy_rate=float(rate),
        mutual_information=None,
        transfer_entropy=None,
        channel_capacity=cap,
        fisher_information=fisher,
        kl_divergence=None,
    )
