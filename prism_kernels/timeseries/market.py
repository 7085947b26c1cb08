"""Per-symbol return and volatility forecasts and a correlation forecast for a set of symbols.

Input: ``prices`` ``(n, k)`` (``n`` days, ``k`` symbols, positive) or ``returns`` ``(n, k)``
(simple fractional returns, 0.01 = 1 %). Prices become log returns
``r_t = log(p_t / p_{t-1})``. Every symbol is modelled as a constant-mean GARCH(1,1) (or
GJR-GARCH, ``asymmetric=True``) with normal errors, fitted on percent returns (``100 r``;
GARCH optimisers are best conditioned near unit variance) and reported back in fractions.

Per symbol and day ``h = 1..horizon``:

* expected return ``mu`` (the GARCH constant mean; flat);
* volatility ``sqrt(sigma2_{n+h})`` from the closed-form GARCH variance forecast
  (:func:`prism_kernels.timeseries.volatility.variance_forecast`), or, with
  ``include_volatility=False``, the sample standard deviation (flat);
* a central interval ``mu -/+ z sigma_{n+h}`` for that day's return at ``level``;
* over the whole horizon: cumulative expected return ``horizon * mu`` and volatility
  ``sqrt(sum_h sigma2_{n+h})`` (returns are uncorrelated in time under the model).

Correlation forecast ``(k, k)`` at the horizon's last day (and per day in ``correlation_path``):
``"dcc"`` (DCC(1,1), the default when ``k >= 2``), ``"constant"`` (CCC), ``"ewma"``
(RiskMetrics, lambda 0.94) or ``"sample"`` (plain sample correlation of the returns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.arrays import mT
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import correlation as C
from prism_kernels.timeseries.core import check_horizon, check_level, z_value
from prism_kernels.timeseries.volatility import MIN_POINTS, garch_fit, variance_forecast

CORRELATIONS = ("dcc", "constant", "ewma", "sample")
PERCENT = 100.0


@dataclass
class MarketForecast:
    """Forecasts for ``k`` symbols over ``h`` days (fractions: 0.01 = 1 %).

    Attributes
    ----------
    expected_returns : array (k, h)
        Expected daily (log) return per symbol and day.
    volatility : array (k, h)
        Daily return standard deviation per symbol and day.
    lower, upper : array (k, h)
        Central interval of each day's return at ``level``.
    cumulative_return, cumulative_volatility : array (k,)
        Over days ``1..h``: ``h mu`` and ``sqrt(sum sigma2)``.
    correlation : array (k, k)
        Forecast correlation on day ``h``.
    correlation_path : array (h, k, k)
    correlation_method : str
    level : float
    models : list of dict
        Per symbol: the fitted GARCH (percent units) or the sample moments.
    extra : dict
        ``{"dcc": {"a", "b"}}`` etc.
    """

    expected_returns: Any
    volatility: Any
    lower: Any
    upper: Any
    cumulative_return: Any
    cumulative_volatility: Any
    correlation: Any
    correlation_path: Any
    correlation_method: str
    level: float
    models: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def prices_to_returns(prices: Any, field: str = "prices") -> Any:
    """Log returns ``(n-1, k)`` of positive prices ``(n, k)`` (checked)."""
    p = C.check_panel(prices, field, min_length=2)
    xp = get_namespace(p)
    if not bool(xp.all(p > 0)):
        raise InvalidInput(field, "prices must be positive")
    return xp.log(p[1:, :] / p[:-1, :])


def market_forecast(
    prices: Any = None,
    horizon_days: int = 5,
    *,
    returns: Any = None,
    include_volatility: bool = True,
    correlation: str | None = None,
    asymmetric: bool = False,
    level: float = 0.95,
) -> MarketForecast:
    """Return, volatility and correlation forecasts (see the module docstring).

    Parameters
    ----------
    prices : array (n, k), optional
        Positive prices, oldest first. Exactly one of ``prices`` / ``returns``.
    horizon_days : int
        Days ahead (>= 1).
    returns : array (n, k), optional
        Log (or simple) daily returns as fractions.
    include_volatility : bool
        Fit GARCH per symbol (needs :data:`MIN_POINTS` returns); otherwise sample moments
        (needs 3 returns) and a sample correlation.
    correlation : {"dcc", "constant", "ewma", "sample"}, optional
        Default ``"dcc"`` with GARCH and ``k >= 2``, else ``"sample"``.
    asymmetric : bool
        GJR-GARCH(1,1,1) instead of GARCH(1,1).
    level : float
        Coverage of the daily return intervals (0.95 or 95).

    Raises
    ------
    InvalidInput
        Both or neither of prices/returns; NaN/inf; non-positive prices; too few points;
        constant series (with GARCH); unknown ``correlation``; bad horizon or level.
    """
    horizon = check_horizon(horizon_days, "horizon_days")
    level = check_level(level)
    if (prices is None) == (returns is None):
        raise InvalidInput("prices", "give exactly one of prices or returns")
    if prices is not None:
        r = prices_to_returns(prices)
        src = "prices"
    else:
        r = C.check_panel(returns, "returns", min_length=2)
        src = "returns"
    xp = get_namespace(r)
    n, k = r.shape
    if correlation is None:
        correlation = "dcc" if (include_volatility and k >= 2) else "sample"
    if correlation not in CORRELATIONS:
        raise InvalidInput(
            "correlation", f"unknown method {correlation!r}; use {', '.join(CORRELATIONS)}"
        )
    need = MIN_POINTS if (include_volatility or correlation in ("dcc", "constant")) else 3
    if n < need:
        what = f"{need + 1} prices" if src == "prices" else f"{need} returns"
        raise InvalidInput(src, f"needs at least {what} per symbol, got {n + (src == 'prices')}")
    if correlation == "dcc" and k < 2:
        raise InvalidInput("correlation", "DCC needs at least 2 symbols")

    sd_all = xp.std(r, axis=0)
    if bool(xp.any(sd_all <= 1e-12 * (xp.max(xp.abs(r), axis=0) + 1e-300))):
        raise InvalidInput(src, "a symbol has constant returns: its volatility cannot be estimated")
    z = z_value(level)
    models: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    ones = xp.ones((k, horizon), dtype=xp.float64)
    gfit = None
    if include_volatility or correlation in ("dcc", "constant"):
        gfit = garch_fit(mT(r) * PERCENT, o=int(asymmetric), mean="constant")
    if include_volatility:
        assert gfit is not None
        mu = gfit.params[:, 0] / PERCENT
        var = variance_forecast(gfit, horizon) / PERCENT**2
        for m in gfit.models():
            m["units"] = "percent returns"
            models.append(m)
    else:
        mu = xp.mean(r, axis=0)
        sd = xp.std(r, axis=0, correction=1)
        var = (sd**2)[:, None] * ones
        mun, sdn = to_numpy(mu), to_numpy(sd)
        models = [
            {"name": "sample moments", "params": {"mean": float(a), "sd": float(b)}}
            for a, b in zip(mun, sdn, strict=True)
        ]
    vol = xp.sqrt(var)
    mean = mu[:, None] * ones
    if correlation == "dcc":
        assert gfit is not None
        dcc = C.dcc_fit_standardised(gfit)
        path = C.dcc_forecast(dcc, horizon)
        extra["dcc"] = {"a": dcc.a, "b": dcc.b, "converged": dcc.converged}
    elif correlation == "constant":
        assert gfit is not None
        zres = mT(gfit.resid / xp.sqrt(gfit.sigma2))
        zc = zres - xp.mean(zres, axis=0, keepdims=True)
        R = C.cov_to_corr(mT(zc) @ zc)
        path = xp.stack([R] * horizon, axis=0)
    elif correlation == "ewma":
        R = C.ewma_covariance(r).correlation()
        path = xp.stack([R] * horizon, axis=0)
        extra["ewma"] = {"lambda": C.RISKMETRICS_LAMBDA}
    else:
        rc = r - xp.mean(r, axis=0, keepdims=True)
        R = C.cov_to_corr(mT(rc) @ rc)
        path = xp.stack([R] * horizon, axis=0)
    return MarketForecast(
        expected_returns=mean,
        volatility=vol,
        lower=mean - z * vol,
        upper=mean + z * vol,
        cumulative_return=horizon * mu,
        cumulative_volatility=xp.sqrt(xp.sum(var, axis=1)),
        correlation=path[-1],
        correlation_path=path,
        correlation_method=correlation,
        level=level,
        models=models,
        extra=extra,
    )


def as_numpy_dict(f: MarketForecast) -> dict[str, Any]:
    """The forecast as plain lists (for JSON), arrays on the host."""
    out: dict[str, Any] = {}
    for name in (
        "expected_returns",
        "volatility",
        "lower",
        "upper",
        "cumulative_return",
        "cumulative_volatility",
        "correlation",
    ):
        out[name] = np.asarray(to_numpy(getattr(f, name))).tolist()
    out.update(
        correlation_method=f.correlation_method, level=f.level, models=f.models, extra=f.extra
    )
    return out
