"""Forecast accuracy: MAE, RMSE, MAPE, sMAPE and MASE, batched over series.

All take ``y_true`` and ``y_pred`` of the same shape ``(..., h)`` (a batch of held-out windows,
the last axis the forecast steps) on any array backend and return one value per leading index,
shape ``(...)``, reduced over the last axis.

NaN handling (documented, not silent): a step where ``y_true`` or ``y_pred`` is NaN is left out
of that series' mean; a series with no valid step gives NaN. MAPE also leaves out steps where
``y_true == 0`` (the percentage is undefined there); sMAPE counts a step where both are 0 as a
perfect 0. MASE is NaN for a series whose in-sample scale is 0 (a constant training series).
Infinite values are not NaN: they propagate.

Definitions (Hyndman & Koehler 2006; FPP3 §5.8), ``e = y_true - y_pred``:

- ``mae = mean |e|``; ``rmse = sqrt(mean e^2)``
- ``mape = 100 mean |e / y_true|`` (percent)
- ``smape = 200 mean |e| / (|y_true| + |y_pred|)`` (percent, 0..200; the M4 definition)
- ``mase = mean |e| / s`` with ``s = mean_t |y_train[t] - y_train[t-m]|``, the in-sample mean
  absolute error of the seasonal naive forecast (``m = season_length``, naive when 1).
"""

from __future__ import annotations

import math
from typing import Any

from prism_kernels.arrays import as_float
from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput

METRICS = ("mae", "rmse", "mape", "smape", "mase")


def _pair(y_true: Any, y_pred: Any) -> tuple[Any, Any, Any]:
    xp = get_namespace(*(a for a in (y_true, y_pred) if hasattr(a, "shape")))
    t = as_float(y_true, xp)
    p = as_float(y_pred, xp, like=t)
    if t.ndim == 0 or p.ndim == 0:
        raise InvalidInput("y_true", "expected arrays with a step axis, got a scalar")
    if tuple(t.shape) != tuple(p.shape):
        raise InvalidInput(
            "y_pred",
            f"shape {tuple(p.shape)} does not match y_true {tuple(t.shape)}",
            expected=list(t.shape),
            received=list(p.shape),
        )
    if t.shape[-1] == 0:
        raise InvalidInput("y_true", "is empty")
    return xp, t, p


def _nanmean(xp: Any, v: Any, valid: Any) -> Any:
    """Mean of ``v`` over the last axis where ``valid``; NaN when nothing is valid."""
    cnt = xp.sum(xp.astype(valid, xp.float64), axis=-1)
    tot = xp.sum(xp.where(valid, v, xp.zeros_like(v)), axis=-1)
    nan = xp.full_like(tot, math.nan)
    return xp.where(cnt > 0, tot / xp.where(cnt > 0, cnt, xp.ones_like(cnt)), nan)


def _valid(xp: Any, t: Any, p: Any) -> Any:
    return xp.logical_not(xp.isnan(t) | xp.isnan(p))


def mae(y_true: Any, y_pred: Any) -> Any:
    """Mean absolute error over the last axis; shape ``(...)``, units of ``y``."""
    xp, t, p = _pair(y_true, y_pred)
    return _nanmean(xp, xp.abs(t - p), _valid(xp, t, p))


def rmse(y_true: Any, y_pred: Any) -> Any:
    """Root mean squared error over the last axis; shape ``(...)``, units of ``y``."""
    xp, t, p = _pair(y_true, y_pred)
    e = t - p
    return xp.sqrt(_nanmean(xp, e * e, _valid(xp, t, p)))


def mape(y_true: Any, y_pred: Any) -> Any:
    """Mean absolute percentage error (percent) over the last axis; steps with
    ``y_true == 0`` are left out."""
    xp, t, p = _pair(y_true, y_pred)
    valid = _valid(xp, t, p) & (t != 0)
    safe = xp.where(valid, t, xp.ones_like(t))
    return 100.0 * _nanmean(xp, xp.abs((t - p) / safe), valid)


def smape(y_true: Any, y_pred: Any) -> Any:
    """Symmetric MAPE (percent, 0..200) over the last axis; ``0/0`` steps count as 0."""
    xp, t, p = _pair(y_true, y_pred)
    den = xp.abs(t) + xp.abs(p)
    valid = _valid(xp, t, p)
    ratio = xp.where(den > 0, xp.abs(t - p) / xp.where(den > 0, den, xp.ones_like(den)), 0.0 * den)
    return 200.0 * _nanmean(xp, ratio, valid)


def mase_scale(y_train: Any, season_length: int = 1) -> Any:
    """In-sample mean absolute seasonal difference ``mean |y_t - y_{t-m}|`` of ``(..., n)``
    training series (NaN-safe as the metrics); shape ``(...)``."""
    xp = get_namespace(y_train) if hasattr(y_train, "shape") else get_namespace()
    y = as_float(y_train, xp)
    m = int(season_length)
    if m < 1:
        raise InvalidInput("season_length", f"must be an integer >= 1, got {season_length!r}")
    if y.ndim == 0 or y.shape[-1] <= m:
        raise InvalidInput("y_train", f"needs more than season_length={m} points")
    d = y[..., m:] - y[..., :-m]
    return _nanmean(xp, xp.abs(d), xp.logical_not(xp.isnan(d)))


def mase(y_true: Any, y_pred: Any, y_train: Any, season_length: int = 1) -> Any:
    """Mean absolute scaled error over the last axis.

    Parameters
    ----------
    y_true, y_pred : array, shape (..., h)
        Held-out values and their forecasts.
    y_train : array, shape (..., n)
        The series each forecast was fitted on (same leading shape), for the scale.
    season_length : int
        ``m`` of the seasonal-naive scale.

    Returns
    -------
    array, shape (...)
        ``mae / scale``; NaN where the scale is 0 or NaN.
    """
    xp, t, p = _pair(y_true, y_pred)
    s = mase_scale(as_float(y_train, xp, like=t), season_length)
    if tuple(s.shape) != tuple(t.shape[:-1]):
        raise InvalidInput(
            "y_train",
            f"leading shape {tuple(s.shape)} does not match y_true {tuple(t.shape[:-1])}",
        )
    a = _nanmean(xp, xp.abs(t - p), _valid(xp, t, p))
    ok = s > 0
    return xp.where(ok, a / xp.where(ok, s, xp.ones_like(s)), xp.full_like(a, math.nan))


def all_metrics(y_true: Any, y_pred: Any, y_train: Any, season_length: int = 1) -> dict:
    """``{"mae", "rmse", "mape", "smape", "mase"}`` arrays of shape ``(...)``."""
    return {
        "mae": mae(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "mape": mape(y_true, y_pred),
        "smape": smape(y_true, y_pred),
        "mase": mase(y_true, y_pred, y_train, season_length),
    }
