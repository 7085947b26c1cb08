"""Baseline forecasters: naive, seasonal naive and random walk with drift.

Each works on a batch ``y`` of shape ``(B, n)`` on any array backend and returns a
:class:`~prism_kernels.timeseries.core.Forecast` with the analytic normal prediction intervals
of Hyndman & Athanasopoulos, *Forecasting: Principles and Practice* (3rd ed.), §5.5, table 5.2:

=================  =========================================  ===============================
method             point forecast at step h                   forecast sd at step h
=================  =========================================  ===============================
naive              ``y_n``                                    ``sigma * sqrt(h)``
seasonal naive     ``y_{n + h - m(k+1)}``, ``k = (h-1)//m``   ``sigma * sqrt(k + 1)``
drift              ``y_n + h (y_n - y_1) / (n - 1)``          ``sigma * sqrt(h (1 + h/(n-1)))``
=================  =========================================  ===============================

``sigma`` is the residual standard deviation ``sqrt(sum(e_t^2) / (T - K - M))`` with ``T = n``
observations, ``M`` missing residuals (1, ``m`` and 1) and ``K`` estimated parameters (0, 0 and
1: the drift), as FPP3 §5.5 defines it (R's ``rwf``/``snaive`` use the same; StatsForecast's
``RandomWalkWithDrift`` divides by ``n - 1`` instead of ``n - 2`` for the drift).
"""

from __future__ import annotations

import math
from typing import Any

from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import (
    Forecast,
    as_batch,
    check_horizon,
    check_level,
    check_season_length,
    horizon_steps,
    normal_interval,
)


def _nan_column(y: Any, k: int) -> Any:
    """A ``(B, k)`` block of NaN on ``y``'s backend and device."""
    xp = get_namespace(y)
    return xp.full((y.shape[0], k), math.nan, dtype=xp.float64, device=y.device)


def _finish(
    y: Any,
    mean: Any,
    sd: Any,
    fitted: Any,
    level: float,
    method: str,
    sigma: Any,
    name: str,
    extra: list[dict] | None = None,
) -> Forecast:
    lower, upper = normal_interval(mean, sd, level)
    sig = [float(s) for s in sigma]
    models = []
    for i, s in enumerate(sig):
        m = {"name": name, "sigma": s, "sigma2": s * s}
        if extra is not None:
            m.update(extra[i])
        models.append(m)
    return Forecast(
        mean=mean,
        lower=lower,
        upper=upper,
        level=level,
        method=method,
        models=models,
        fitted=fitted,
        residuals=y - fitted,
    )


def naive(
    y: Any, horizon: int, level: float = 0.95, season_length: int = 1, **options: Any
) -> Forecast:
    """Naive forecast: every future value equals the last observation.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        Series, ``n >= 2`` (the residual sd needs one difference).
    horizon : int
        Steps ahead ``h``.
    level : float
        Interval coverage (0.95 or 95).
    season_length : int
        Accepted for a uniform signature; unused.

    Returns
    -------
    Forecast
        ``mean = y_n``, sd ``sigma sqrt(h)`` with ``sigma^2 = sum (y_t - y_{t-1})^2 / (n - 1)``.
    """
    _no_options(options)
    h = check_horizon(horizon)
    level = check_level(level)
    check_season_length(season_length)
    y = as_batch(y, min_length=2)
    xp = get_namespace(y)
    n = y.shape[1]
    fitted = xp.concat([_nan_column(y, 1), y[:, :-1]], axis=1)
    e = y[:, 1:] - y[:, :-1]
    sigma = xp.sqrt(xp.sum(e * e, axis=1) / (n - 1))
    steps = horizon_steps(h, xp, y)
    mean = xp.broadcast_to(y[:, -1:], (y.shape[0], h)) + 0.0 * steps
    sd = sigma[:, None] * xp.sqrt(steps)[None, :]
    return _finish(y, mean, sd, fitted, level, "naive", sigma, "Naive")


def seasonal_naive(
    y: Any, horizon: int, level: float = 0.95, season_length: int = 1, **options: Any
) -> Forecast:
    """Seasonal naive forecast: each value equals the last observed value of the same season.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        Series, ``n >= season_length + 1``.
    horizon : int
        Steps ahead ``h``.
    level : float
        Interval coverage.
    season_length : int
        Period ``m`` (1 gives the naive forecast).

    Returns
    -------
    Forecast
        ``mean[h] = y[n - m + (h-1) % m]``, sd ``sigma sqrt(floor((h-1)/m) + 1)`` with
        ``sigma^2 = sum (y_t - y_{t-m})^2 / (n - m)``.
    """
    _no_options(options)
    h = check_horizon(horizon)
    level = check_level(level)
    m = check_season_length(season_length)
    y = as_batch(y, min_length=m + 1)
    xp = get_namespace(y)
    n = y.shape[1]
    fitted = xp.concat([_nan_column(y, m), y[:, :-m]], axis=1)
    e = y[:, m:] - y[:, :-m]
    sigma = xp.sqrt(xp.sum(e * e, axis=1) / (n - m))
    idx = [n - m + (j % m) for j in range(h)]
    mean = xp.take(y, xp.asarray(idx, device=y.device), axis=1)
    k = xp.asarray([float(j // m + 1) for j in range(h)], dtype=xp.float64, device=y.device)
    sd = sigma[:, None] * xp.sqrt(k)[None, :]
    return _finish(
        y,
        mean,
        sd,
        fitted,
        level,
        "seasonal_naive",
        sigma,
        f"SeasonalNaive[{m}]",
        [{"season_length": m}] * y.shape[0],
    )


def drift(
    y: Any, horizon: int, level: float = 0.95, season_length: int = 1, **options: Any
) -> Forecast:
    """Random walk with drift: the line through the first and last observations, extended.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        Series, ``n >= 3`` (a drift and a residual sd need two differences).
    horizon : int
        Steps ahead ``h``.
    level : float
        Interval coverage.
    season_length : int
        Accepted for a uniform signature; unused.

    Returns
    -------
    Forecast
        ``mean[h] = y_n + h c`` with ``c = (y_n - y_1)/(n - 1)``; sd
        ``sigma sqrt(h (1 + h/(n-1)))`` (the drift's own error included) with
        ``sigma^2 = sum (y_t - y_{t-1} - c)^2 / (n - 2)``.
    """
    _no_options(options)
    h = check_horizon(horizon)
    level = check_level(level)
    check_season_length(season_length)
    y = as_batch(y, min_length=3)
    xp = get_namespace(y)
    n = y.shape[1]
    slope = (y[:, -1] - y[:, 0]) / (n - 1)
    fitted = xp.concat([_nan_column(y, 1), y[:, :-1] + slope[:, None]], axis=1)
    e = y[:, 1:] - y[:, :-1] - slope[:, None]
    sigma = xp.sqrt(xp.sum(e * e, axis=1) / (n - 2))
    steps = horizon_steps(h, xp, y)
    mean = y[:, -1:] + slope[:, None] * steps[None, :]
    sd = sigma[:, None] * xp.sqrt(steps * (1.0 + steps / (n - 1)))[None, :]
    extra = [{"drift": float(c)} for c in slope]
    return _finish(y, mean, sd, fitted, level, "drift", sigma, "RandomWalkWithDrift", extra)


def _no_options(options: dict) -> None:
    if options:
        name = sorted(options)[0]
        raise InvalidInput(name, "is not an option of this method")
