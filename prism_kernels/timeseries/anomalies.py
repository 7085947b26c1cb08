"""Anomaly scores for a batch of series: rolling and robust z-scores, model residuals, and
seasonal-decomposition residuals.

Every detector takes ``y`` of shape ``(B, n)`` (or ``(n,)``) on any array backend and returns
:class:`Anomalies`: ``scores`` ``(B, n)`` on the input's backend (NaN where a point has no
score: the first ``window`` points of a rolling score, the ends of a decomposition's trend),
and per series the indices whose ``|score| > threshold`` (NaN is never flagged). Where the
reference scale is 0 (a constant window), a point equal to the centre scores 0 and any other
scores ``+/-inf`` (flagged).

- :func:`rolling_zscore`: ``(y_t - mean) / sd`` over the ``window`` points *before* ``t``
  (``sd`` with ``ddof=1``, two-pass per window; 0 exactly when the window is constant), so
  an outlier does not hide in its own baseline;
- :func:`robust_zscore`: ``(y_t - median) / (1.4826 * MAD)`` over the same trailing window
  (1.4826 makes the MAD a consistent estimate of a normal standard deviation);
- :func:`residual_scores`: scores of residuals a model already produced (e.g.
  ``Forecast.residuals``): ``r / (1.4826 * MAD(r))`` per series (``robust=True``) or
  ``(r - mean) / sd``; NaN residuals (points without a fit) are ignored;
- :func:`seasonal_scores`: classical decomposition, the same as statsmodels
  ``seasonal_decompose`` (centred moving-average trend, ``2 x s`` for even ``s``; per-phase
  means of the detrended series, centred to sum 0 (additive) or to mean 1 (multiplicative);
  residual ``y - trend - season`` or ``y / (trend * season)``), then the robust scores of that
  residual (the multiplicative residual, near 1, is scored as ``resid - 1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.arrays import as_float, device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import as_batch
from prism_kernels.timeseries.decomposition import decompose

MAD_TO_SD = 1.4826
_CHUNK = 4_000_000  # elements per sorted block of windows


@dataclass
class Anomalies:
    """Scores and flagged points for a batch of series.

    Attributes
    ----------
    scores : array, shape (B, n)
        Signed scores on the input's backend (NaN: no score at that point).
    indices : list of list of int
        Per series, the points with ``|score| > threshold``, increasing.
    threshold : float
    method : str
    components : dict
        Extra arrays (B, n) that produced the scores (``trend``, ``seasonal``, ``resid`` for
        :func:`seasonal_scores`; ``center``, ``scale`` for the rolling scores).
    """

    scores: Any
    indices: list[list[int]]
    threshold: float
    method: str
    components: dict[str, Any]


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not (math.isfinite(t) and t > 0):
        raise InvalidInput("threshold", f"must be a finite number > 0, got {threshold!r}")
    return t


def _check_window(window: int, n: int) -> int:
    if isinstance(window, bool) or int(window) != window or not 2 <= window < n:
        raise InvalidInput(
            "window", f"must be an integer from 2 to n - 1 = {n - 1}, got {window!r}"
        )
    return int(window)


def _ratio(xp: Any, dev: Any, scale: Any) -> Any:
    """``dev / scale`` with a zero scale giving 0 (dev == 0) or +/-inf; NaN stays NaN."""
    safe = xp.where(scale > 0, scale, xp.ones_like(scale))
    z = dev / safe
    big = xp.full_like(dev, math.inf)
    inf = xp.where(dev > 0, big, -big)
    z0 = xp.where(dev == 0, xp.zeros_like(dev), inf)
    z0 = xp.where(xp.isnan(dev), dev, z0)
    return xp.where(scale > 0, z, xp.where(xp.isnan(scale), scale, z0))


def _flag(scores: Any, threshold: float) -> list[list[int]]:
    s = to_numpy(scores)
    with np.errstate(invalid="ignore"):
        hit = np.abs(s) > threshold
    return [np.flatnonzero(row).tolist() for row in hit]


def _nan_head(xp: Any, a: Any, w: int, like: Any) -> Any:
    """Prepend ``w`` NaN columns to ``a`` (B, n - w) -> (B, n)."""
    head = xp.full((a.shape[0], w), xp.nan, dtype=a.dtype, device=device_of(like))
    return xp.concat([head, a], axis=1)


def rolling_zscore(y: Any, window: int = 30, threshold: float = 3.0) -> Anomalies:
    """Trailing-window z-score of every point against the ``window`` points before it.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    window : int
        Points in the baseline (2 <= window < n).
    threshold : float
        Flag ``|score| > threshold``.

    Returns
    -------
    Anomalies
        ``scores[:, :window]`` are NaN; ``components``: ``center`` (mean), ``scale`` (sd).
    """
    yb = as_batch(y, "values", min_length=3)
    xp = get_namespace(yb)
    w = _check_window(window, yb.shape[1])
    thr = _check_threshold(threshold)
    means, sds = [], []
    for win in _windows(xp, yb, w):
        m = xp.mean(win, axis=-1)
        d = win - m[..., None]
        sd = xp.sqrt(xp.sum(d * d, axis=-1) / (w - 1))
        const = xp.max(win, axis=-1) == xp.min(win, axis=-1)
        means.append(m)
        sds.append(xp.where(const, xp.zeros_like(sd), sd))
    mean = xp.concat(means, axis=1)
    sd = xp.concat(sds, axis=1)
    scores = _nan_head(xp, _ratio(xp, yb[:, w:] - mean, sd), w, yb)
    return Anomalies(
        scores,
        _flag(scores, thr),
        thr,
        "zscore",
        {"center": _nan_head(xp, mean, w, yb), "scale": _nan_head(xp, sd, w, yb)},
    )


def _windows(xp: Any, yb: Any, w: int):
    """The trailing windows ``yb[:, t - w:t]`` for ``t = w..n-1``, in blocks (B, T, w).

    Blocks hold at most ~4 million values, so memory stays bounded for long series.
    """
    B, n = yb.shape
    dev_ = device_of(yb)
    step = max(1, _CHUNK // max(1, B * w))
    offs = xp.arange(w, device=dev_)
    for t0 in range(w, n, step):
        t1 = min(n, t0 + step)
        starts = xp.arange(t0 - w, t1 - w, device=dev_)
        idx = xp.reshape(starts[:, None] + offs[None, :], (-1,))
        yield xp.reshape(xp.take(yb, idx, axis=1), (B, t1 - t0, w))


def _median_last(xp: Any, a: Any) -> Any:
    """Median along the last axis (no NaN), as NumPy computes it."""
    k = a.shape[-1]
    s = xp.sort(a, axis=-1)
    if k % 2 == 1:
        return s[..., k // 2]
    return (s[..., k // 2 - 1] + s[..., k // 2]) / 2.0


def robust_zscore(y: Any, window: int = 30, threshold: float = 3.5) -> Anomalies:
    """Trailing-window robust z-score ``(y_t - median) / (1.4826 * MAD)``.

    The median and the MAD (median absolute deviation from that median) are over the
    ``window`` points before ``t`` (gathered and sorted in bounded blocks).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    window : int
    threshold : float
        3.5 is Iglewicz and Hoaglin's rule for modified z-scores.

    Returns
    -------
    Anomalies
        ``scores[:, :window]`` are NaN; ``components``: ``center`` (median), ``scale``
        (1.4826 * MAD).
    """
    yb = as_batch(y, "values", min_length=3)
    xp = get_namespace(yb)
    w = _check_window(window, yb.shape[1])
    thr = _check_threshold(threshold)
    meds, scales = [], []
    for win in _windows(xp, yb, w):
        med = _median_last(xp, win)
        mad = _median_last(xp, xp.abs(win - med[..., None]))
        meds.append(med)
        scales.append(MAD_TO_SD * mad)
    med = xp.concat(meds, axis=1)
    scale = xp.concat(scales, axis=1)
    scores = _nan_head(xp, _ratio(xp, yb[:, w:] - med, scale), w, yb)
    return Anomalies(
        scores,
        _flag(scores, thr),
        thr,
        "robust_zscore",
        {"center": _nan_head(xp, med, w, yb), "scale": _nan_head(xp, scale, w, yb)},
    )


def _nanmedian_rows(r: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        out = np.full(r.shape[0], np.nan)
        for i, row in enumerate(r):
            ok = row[np.isfinite(row)]
            if ok.size:
                out[i] = np.median(ok)
    return out


def residual_scores(residuals: Any, threshold: float = 3.5, robust: bool = True) -> Anomalies:
    """Scores of given model residuals, standardised per series.

    Parameters
    ----------
    residuals : array, shape (B, n) or (n,)
        ``y - fitted`` from any model (NaN where the model has no fit; inf is refused).
    threshold : float
    robust : bool
        ``r / (1.4826 * MAD(r))`` (MAD about the median, centre 0: a residual's expected
        value) when True; ``(r - mean(r)) / sd(r)`` (``ddof=1``) when False.

    Returns
    -------
    Anomalies
        ``components``: ``scale`` (B, 1).

    Notes
    -----
    The per-series median is taken on the host (no array-API median with NaN).
    """
    xp = get_namespace(residuals) if hasattr(residuals, "shape") else get_namespace()
    r = as_float(residuals, xp)
    if r.ndim == 1:
        r = r[None, :]
    if r.ndim != 2 or r.shape[0] == 0 or r.shape[1] == 0:
        raise InvalidInput(
            "residuals", f"expected a non-empty (n,) or (B, n), got {tuple(r.shape)}"
        )
    if bool(xp.any(xp.isinf(r))):
        raise InvalidInput("residuals", "contains inf")
    ok = ~xp.isnan(r)
    if bool(xp.any(xp.sum(xp.astype(ok, xp.int64), axis=1) < 2)):
        raise InvalidInput("residuals", "every series needs at least 2 non-NaN residuals")
    thr = _check_threshold(threshold)
    if robust:
        rn = to_numpy(r)
        med = _nanmedian_rows(rn)
        mad = _nanmedian_rows(np.abs(rn - med[:, None]))
        scale = as_float(MAD_TO_SD * mad, xp, r)[:, None]
        dev = r
    else:
        cnt = xp.sum(xp.astype(ok, r.dtype), axis=1, keepdims=True)
        r0 = xp.where(ok, r, xp.zeros_like(r))
        mean = xp.sum(r0, axis=1, keepdims=True) / cnt
        d0 = xp.where(ok, r - mean, xp.zeros_like(r))
        scale = xp.sqrt(xp.sum(d0 * d0, axis=1, keepdims=True) / (cnt - 1))
        dev = r - mean
    scores = _ratio(xp, dev, xp.broadcast_to(scale, dev.shape))
    return Anomalies(scores, _flag(scores, thr), thr, "residual", {"scale": scale})


def seasonal_scores(
    y: Any, season_length: int, threshold: float = 3.5, model: str = "additive"
) -> Anomalies:
    """Robust scores of classical-decomposition residuals (:func:`~prism_kernels.timeseries.decomposition.decompose`).

    Points in the first and last ``season_length // 2`` positions have no trend, hence no
    score (NaN, never flagged).

    Returns
    -------
    Anomalies
        ``components``: ``trend``, ``seasonal``, ``resid``, ``scale`` (B, 1).
    """
    parts = decompose(y, season_length, model)
    resid = parts["resid"]
    centred = resid - 1.0 if model == "multiplicative" else resid
    r = residual_scores(centred, threshold=threshold, robust=True)
    return Anomalies(
        r.scores, r.indices, r.threshold, "seasonal", {**parts, "scale": r.components["scale"]}
    )


METHODS = {
    "zscore": rolling_zscore,
    "robust_zscore": robust_zscore,
    "seasonal": seasonal_scores,
    "residual": residual_scores,
}


def detect(y: Any, method: str = "robust_zscore", **options: Any) -> Anomalies:
    """Run the detector named ``method`` (a key of :data:`METHODS`) with its ``options``.

    Raises
    ------
    InvalidInput
        Unknown method (field ``method``, the message lists the choices).
    """
    if method not in METHODS:
        raise InvalidInput(
            "method", f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
        )
    return METHODS[method](y, **options)
