"""The standard Theta method (Assimakopoulos & Nikolopoulos 2000), batched over series.

As Hyndman & Billah (2003) showed, the method is simple exponential smoothing (SES) with a
drift equal to half the slope of the linear trend; with ``theta = 2`` (statsmodels
``ThetaModel.forecast`` notation)::

    f_{n+h} = l_n + (1 - 1/theta) b0 (h - 1 + 1/alpha - (1 - alpha)^n / alpha)

where ``b0`` is the least-squares slope of the (deseasonalised) series on ``t = 0..n-1`` and
``l_n`` the SES level with ``alpha`` chosen to minimise the in-sample one-step squared error,
the SES started at ``l_0 = y_0`` (statsmodels ``ThetaModel(...).fit()``'s default two-step
estimate). ``alpha`` is found by a batched golden-section search on ``[1e-4, 1]`` (every series
at once, array-API only, so it runs on NumPy, PyTorch and CuPy).

Seasonal series (``season_length > 1``): the series is tested for seasonality at lag ``m`` as
R ``forecast::thetaf`` does (``|r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n)``, 90 %) unless
``deseasonalize`` is forced; seasonal series are divided by the seasonal indices of a classical
multiplicative decomposition (centred moving average; statsmodels ``seasonal_decompose``; an
additive decomposition when some value is not positive) and the forecasts multiplied back.

Intervals: the Theta method is the ARIMA(0,1,1)-with-drift / ETS(A,N,N)-with-drift model, whose
h-step forecast variance is ``sigma^2 (1 + (h - 1) alpha^2)`` (Hyndman et al. 2008, table 6.1);
``sigma^2`` is the mean squared one-step in-sample error (deseasonalised scale, ``n - 3``
degrees of freedom: ``alpha``, ``b0`` and the first point). The bounds are reseasonalised like
the mean. (statsmodels' ``prediction_intervals`` uses ``1 + (h-1)(1 + (alpha-1)^2)`` with a
SARIMAX ``sigma^2``; we do not reproduce it.)
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
from prism_kernels.timeseries.decomposition import decompose
from prism_kernels.timeseries.diagnostics import acf

ALPHA_MIN = 1e-4
GOLDEN_ITERS = 60


def seasonality_test(y: Any, m: int) -> Any:
    """R ``thetaf``'s 90 % test for a season at lag ``m``; bool (B,)."""
    xp = get_namespace(y)
    n = y.shape[1]
    r = acf(y, m)
    lim = 1.6448536269514722 * xp.sqrt((1.0 + 2.0 * xp.sum(r[:, 1:m] ** 2, axis=1)) / n)
    return xp.abs(r[:, m]) > lim


def _ses(y: Any, alpha: Any) -> tuple[Any, Any]:
    """SES from ``l_0 = y_0``: SSE of the one-step errors (B,) and levels (B, n) after each y."""
    xp = get_namespace(y)
    n = y.shape[1]
    lvl = y[:, 0]
    sse = 0.0 * lvl
    levels = [lvl]
    for t in range(1, n):
        e = y[:, t] - lvl
        sse = sse + e * e
        lvl = lvl + alpha * e
        levels.append(lvl)
    return sse, xp.stack(levels, axis=1)


def fit_ses_alpha(y: Any, iters: int = GOLDEN_ITERS) -> Any:
    """The SSE-minimising SES ``alpha`` in ``[1e-4, 1]`` for each series (golden section)."""
    xp = get_namespace(y)
    B = y.shape[0]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a = xp.full((B,), ALPHA_MIN, dtype=xp.float64, device=y.device)
    b = xp.full((B,), 1.0, dtype=xp.float64, device=y.device)
    c = b - g * (b - a)
    d = a + g * (b - a)
    fc, _ = _ses(y, c)
    fd, _ = _ses(y, d)
    for _ in range(iters):
        left = fc < fd  # the minimum lies in [a, d]: drop (d, b]; else drop [a, c)
        a, b = xp.where(left, a, c), xp.where(left, d, b)
        probe = xp.where(left, b - g * (b - a), a + g * (b - a))
        fp, _ = _ses(y, probe)
        c, d = xp.where(left, probe, d), xp.where(left, c, probe)
        fc, fd = xp.where(left, fp, fd), xp.where(left, fc, fp)
    alpha = (a + b) / 2.0
    # the boundary alpha = 1 is allowed (a random walk); check the end points too
    cands = xp.stack([alpha, a * 0 + ALPHA_MIN, a * 0 + 1.0], axis=1)
    f = xp.stack([_ses(y, cands[:, i])[0] for i in range(3)], axis=1)
    best = xp.argmin(f, axis=1)
    out = cands[:, 0]
    for i in (1, 2):
        out = xp.where(best == i, cands[:, i], out)
    return out


def theta(
    y: Any,
    horizon: int,
    level: float = 0.95,
    season_length: int = 1,
    deseasonalize: bool | str = "auto",
    theta: float = 2.0,
) -> Forecast:
    """Theta-method forecasts with intervals for a batch of series.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        Series, ``n >= 4`` (``>= 2 m`` to deseasonalise).
    horizon : int
    level : float
    season_length : int
        ``m``; 1 for none.
    deseasonalize : bool or "auto"
        ``"auto"``: test each series for a season at lag ``m`` (R ``thetaf``'s test);
        True: always (when ``m > 1``); False: never.
    theta : float
        The theta coefficient (>= 1); 2 is the standard method.

    Returns
    -------
    Forecast
        ``models[i]``: ``alpha``, ``b0`` (trend slope per step), ``deseasonalized``,
        ``seasonal`` (indices, when used), ``sigma2``.
    """
    h = check_horizon(horizon)
    level = check_level(level)
    m = check_season_length(season_length)
    if deseasonalize not in (True, False, "auto"):
        raise InvalidInput("deseasonalize", f"must be true, false or 'auto', got {deseasonalize!r}")
    theta_c = float(theta)
    if not (math.isfinite(theta_c) and theta_c >= 1.0):
        raise InvalidInput("theta", f"must be a number >= 1, got {theta!r}")
    y = as_batch(y, min_length=4)
    xp = get_namespace(y)
    B, n = y.shape
    seasonal = m > 1 and deseasonalize is not False
    if seasonal and n < 2 * m:
        if deseasonalize is True:
            raise InvalidInput(
                "values", f"deseasonalising needs at least 2 seasons ({2 * m} points), got {n}"
            )
        seasonal = False
    if seasonal:
        mult = bool(xp.all(y > 0))
        model = "multiplicative" if mult else "additive"
        idx = decompose(y, m, model)["seasonal"][:, :m]  # index p is for times t % m == p
        if deseasonalize == "auto":
            use = seasonality_test(y, m)
            neutral = xp.ones_like(idx) if mult else xp.zeros_like(idx)
            idx = xp.where(use[:, None], idx, neutral)
        reps = -(-(n + h) // m)
        tiled = xp.concat([idx] * reps, axis=1)
        s_in, s_out = tiled[:, :n], tiled[:, n : n + h]
        ya = y / s_in if mult else y - s_in
    else:
        mult, idx = True, None
        ya = y
    # trend slope on t = 0..n-1
    t = horizon_steps(n, xp, y) - 1.0
    tc = t - xp.mean(t)
    b0 = xp.sum((ya - xp.mean(ya, axis=1, keepdims=True)) * tc[None, :], axis=1) / xp.sum(tc * tc)
    alpha = fit_ses_alpha(ya)
    _, levels = _ses(ya, alpha)
    w = 1.0 - 1.0 / theta_c
    steps = horizon_steps(h, xp, y)
    a = alpha[:, None]
    mean_a = levels[:, -1:] + w * b0[:, None] * (
        steps[None, :] - 1.0 + 1.0 / a - (1.0 - a) ** n / a
    )
    # in-sample one-step forecasts from the first T = t observations
    tt = horizon_steps(n - 1, xp, y)[None, :]
    fit_a = levels[:, :-1] + w * b0[:, None] * (1.0 / a - (1.0 - a) ** tt / a)
    e = ya[:, 1:] - fit_a
    sigma2 = xp.sum(e * e, axis=1) / max(n - 3, 1)
    sd = xp.sqrt(sigma2[:, None] * (1.0 + (steps[None, :] - 1.0) * a * a))
    lo_a, hi_a = normal_interval(mean_a, sd, level)
    nan = xp.full((B, 1), math.nan, dtype=xp.float64, device=y.device)
    fitted_a = xp.concat([nan, fit_a], axis=1)
    if seasonal:
        if mult:
            mean, lower, upper, fitted = mean_a * s_out, lo_a * s_out, hi_a * s_out, fitted_a * s_in
        else:
            mean, lower, upper, fitted = mean_a + s_out, lo_a + s_out, hi_a + s_out, fitted_a + s_in
    else:
        mean, lower, upper, fitted = mean_a, lo_a, hi_a, fitted_a
    models = []
    for i in range(B):
        d = {
            "name": "Theta",
            "theta": theta_c,
            "alpha": float(alpha[i]),
            "b0": float(b0[i]),
            "drift": float(w * b0[i]),
            "sigma2": float(sigma2[i]),
            "deseasonalized": False,
        }
        if seasonal:
            ind = [float(v) for v in idx[i]]
            neutral = 1.0 if mult else 0.0
            used = any(v != neutral for v in ind)
            d["deseasonalized"] = used
            if used:
                d["seasonal"] = ind
                d["seasonal_method"] = "multiplicative" if mult else "additive"
                d["season_length"] = m
        models.append(d)
    return Forecast(
        mean=mean,
        lower=lower,
        upper=upper,
        level=level,
        method="theta",
        models=models,
        fitted=fitted,
        residuals=y - fitted,
    )
