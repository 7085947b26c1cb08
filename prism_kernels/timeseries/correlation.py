"""Covariance and correlation forecasts for ``k`` assets: RiskMetrics EWMA, constant
conditional correlation (CCC) and Engle's (2002) dynamic conditional correlation DCC(1,1).

Inputs are returns ``(n, k)`` (time down, assets across). The recursions are array-API code
(NumPy, PyTorch, CuPy; one step per observation, matrices ``(k, k)``); the two DCC
parameters are estimated on the host with SciPy.

EWMA (RiskMetrics 1996, zero mean, ``lambda = 0.94`` for daily data)::

    S_1 = (1/n) sum_t r_t r_t^T                      (the sample second moment)
    S_{t+1} = lambda S_t + (1 - lambda) r_t r_t^T,   t = 1..n

``S_{n+1}`` is the forecast for every future day (the EWMA forecast is flat in ``h``).

DCC(1,1) on standardised residuals ``z_t = e_t / sigma_t`` (from univariate GARCH(1,1) fits,
:func:`prism_kernels.timeseries.volatility.garch_fit`)::

    Q_1 = Qbar = (1/n) sum_t z_t z_t^T
    Q_{t+1} = (1 - a - b) Qbar + a z_t z_t^T + b Q_t,     a, b >= 0, a + b < 1
    R_t = diag(Q_t)^(-1/2) Q_t diag(Q_t)^(-1/2)

Second (correlation) step of the two-step QML: maximise
``L_C(a, b) = -1/2 sum_t (log det R_t + z_t^T R_t^-1 z_t - z_t^T z_t)``.
Forecasts: ``Q_{n+1}`` is known at time ``n``; for ``h >= 2`` the usual approximation
``E[z z^T] ~ Q`` gives ``Q_{n+h} = Qbar + (a + b)^(h-1) (Q_{n+1} - Qbar)`` (Engle & Sheppard
2001), each normalised to a correlation matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from prism_kernels.arrays import as_float, check_finite, mT
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.compiled import njit, warmer
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import check_horizon
from prism_kernels.timeseries.volatility import MIN_POINTS, garch_fit, variance_forecast

RISKMETRICS_LAMBDA = 0.94


def check_panel(returns: Any, field: str = "returns", min_length: int = 2) -> Any:
    """``returns`` as a checked float64 ``(n, k)`` panel (a 1-D series is one asset)."""
    xp = get_namespace(returns) if hasattr(returns, "shape") else get_namespace()
    r = as_float(returns, xp)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise InvalidInput(field, f"expected returns (n, k), got shape {tuple(r.shape)}")
    if r.shape[0] == 0 or r.shape[1] == 0:
        raise InvalidInput(field, "is empty")
    if r.shape[0] < min_length:
        raise InvalidInput(field, f"needs at least {min_length} observations, got {r.shape[0]}")
    check_finite(r, field)
    return r


def cov_to_corr(S: Any) -> Any:
    """Correlation matrices from covariance matrices ``(..., k, k)``."""
    xp = get_namespace(S)
    d = xp.sqrt(xp.linalg.diagonal(S))
    return S / (d[..., :, None] * d[..., None, :])


def _outer(v: Any) -> Any:
    return v[..., :, None] * v[..., None, :]


# --------------------------------------------------------------------------- EWMA


@dataclass
class EwmaCovariance:
    """RiskMetrics EWMA covariance.

    Attributes
    ----------
    forecast : array (k, k)
        ``S_{n+1}``: the one-day-ahead covariance, also the forecast for every later day.
    path : array (n, k, k) or None
        ``S_t`` for ``t = 1..n`` (the covariance each day's return was drawn under).
    lam : float
    """

    forecast: Any
    path: Any
    lam: float

    def correlation(self) -> Any:
        return cov_to_corr(self.forecast)


def ewma_covariance(
    returns: Any, lam: float = RISKMETRICS_LAMBDA, keep_path: bool = False
) -> EwmaCovariance:
    """RiskMetrics EWMA covariance of zero-mean returns ``(n, k)`` (see module docstring).

    Raises :class:`InvalidInput` for ``lam`` outside (0, 1), empty/NaN returns, or fewer
    than 2 observations.
    """
    if not (isinstance(lam, (int, float)) and 0.0 < lam < 1.0):
        raise InvalidInput("lam", f"decay must be in (0, 1), got {lam!r}")
    r = check_panel(returns)
    xp = get_namespace(r)
    n = r.shape[0]
    S = (mT(r) @ r) / n
    path = []
    for t in range(n):
        if keep_path:
            path.append(S)
        S = lam * S + (1.0 - lam) * _outer(r[t, :])
    return EwmaCovariance(
        forecast=S, path=xp.stack(path, axis=0) if keep_path else None, lam=float(lam)
    )


# --------------------------------------------------------------------------- DCC


def _standardised(returns: Any, o: int = 0) -> tuple[Any, Any]:
    """GARCH(1,1) fits per asset (constant mean) and the standardised residuals (n, k)."""
    fit = garch_fit(mT(returns), o=o, mean="constant")
    xp = get_namespace(fit.resid)
    z = mT(fit.resid / xp.sqrt(fit.sigma2))
    return fit, z


def dcc_recursion(z: Any, a: float, b: float, Qbar: Any = None) -> tuple[Any, Any]:
    """``Q_t`` for ``t = 1..n+1`` (n+1, k, k) and ``R_t`` (n+1, k, k) (array API)."""
    xp = get_namespace(z)
    n = z.shape[0]
    if Qbar is None:
        Qbar = (mT(z) @ z) / n
    Q = Qbar
    Qs = []
    for t in range(n):
        Qs.append(Q)
        Q = (1.0 - a - b) * Qbar + a * _outer(z[t, :]) + b * Q
    Qs.append(Q)
    Qs = xp.stack(Qs, axis=0)
    return Qs, cov_to_corr(Qs)


def dcc_loglike(z: Any, a: float, b: float, Qbar: Any = None) -> Any:
    """Correlation part of the DCC log-likelihood (a 0-d array, natural log):
    ``-1/2 sum_t (log det R_t + z_t^T R_t^-1 z_t - z_t^T z_t)``."""
    xp = get_namespace(z)
    _, R = dcc_recursion(z, a, b, Qbar)
    R = R[:-1]
    L = xp.linalg.cholesky(R)
    logdet = 2.0 * xp.sum(xp.log(xp.linalg.diagonal(L)), axis=-1)
    sol = xp.linalg.solve(R, z[..., None])[..., 0]
    quad = xp.sum(z * sol, axis=-1)
    return -0.5 * xp.sum(logdet + quad - xp.sum(z * z, axis=-1))


@njit
def _dcc_nll(theta, z, Qbar):  # pragma: no cover - compiled
    """Mean negative correlation log-likelihood (compiled host path of :func:`dcc_loglike`)."""
    a, b = theta[0], theta[1]
    n, k = z.shape
    Q = Qbar.copy()
    R = np.empty((k, k))
    L = np.zeros((k, k))
    y = np.empty(k)
    d = np.empty(k)
    total = 0.0
    for t in range(n):
        for i in range(k):
            d[i] = 1.0 / math.sqrt(Q[i, i])
        for i in range(k):
            for j in range(k):
                R[i, j] = Q[i, j] * d[i] * d[j]
        # Cholesky R = L L^T
        for i in range(k):
            for j in range(i + 1):
                s = R[i, j]
                for m in range(j):
                    s -= L[i, m] * L[j, m]
                if i == j:
                    if s <= 0.0:
                        return 1e10
                    L[i, i] = math.sqrt(s)
                else:
                    L[i, j] = s / L[j, j]
        logdet = 0.0
        quad = 0.0
        zz = 0.0
        for i in range(k):
            s = z[t, i]
            for m in range(i):
                s -= L[i, m] * y[m]
            y[i] = s / L[i, i]
            logdet += 2.0 * math.log(L[i, i])
            quad += y[i] * y[i]
            zz += z[t, i] * z[t, i]
        total += logdet + quad - zz
        for i in range(k):
            for j in range(k):
                Q[i, j] = (1.0 - a - b) * Qbar[i, j] + a * z[t, i] * z[t, j] + b * Q[i, j]
    return 0.5 * total / n


@dataclass
class DccFit:
    """A fitted DCC(1,1).

    Attributes
    ----------
    a, b : float
        News and decay parameters.
    Qbar : array (k, k)
        Unconditional correlation target (sample second moment of ``z``).
    Q_next : array (k, k)
        ``Q_{n+1}``.
    R : array (n+1, k, k)
        In-sample conditional correlations and, last, ``R_{n+1}``.
    loglik : float
        Maximised correlation log-likelihood.
    garch : GarchFit
        The first-step univariate fits (one per asset).
    z : array (n, k)
        Standardised residuals.
    converged : bool
    """

    a: float
    b: float
    Qbar: Any
    Q_next: Any
    R: Any
    loglik: float
    garch: Any
    z: Any
    converged: bool


def dcc_fit(returns: Any, o: int = 0) -> DccFit:
    """Two-step QML DCC(1,1) (Engle 2002): GARCH(1,1) (``o=1``: GJR) per asset, then
    ``(a, b)`` by maximising :func:`dcc_loglike` (see :func:`dcc_fit_standardised`).

    ``returns`` (n, k), ``k >= 2``, ``n >= 30``.
    """
    r = check_panel(returns, min_length=MIN_POINTS)
    if r.shape[1] < 2:
        raise InvalidInput("returns", "DCC needs at least 2 assets (columns)")
    fit, _ = _standardised(r, o)
    return dcc_fit_standardised(fit)


def dcc_fit_standardised(garch: Any) -> DccFit:
    """Second DCC step on the standardised residuals of ``garch`` (a GarchFit of k >= 2
    assets): ``(a, b)`` maximise :func:`dcc_loglike` (compiled; SLSQP from the best point
    of a small grid, ``a, b >= 0``, ``a + b <= 0.999``)."""
    xp = get_namespace(garch.resid)
    z = mT(garch.resid / xp.sqrt(garch.sigma2))
    if z.shape[1] < 2:
        raise InvalidInput("returns", "DCC needs at least 2 assets (columns)")
    zn = np.ascontiguousarray(to_numpy(z))
    Qbar = zn.T @ zn / zn.shape[0]
    grid = [np.array([a, s - a]) for s in (0.5, 0.8, 0.9, 0.95, 0.98) for a in (0.01, 0.03, 0.1)]
    x0 = min(grid, key=lambda th: _dcc_nll(th, zn, Qbar))
    best = minimize(
        _dcc_nll,
        x0,
        args=(zn, Qbar),
        method="SLSQP",
        bounds=[(0.0, 1.0), (0.0, 1.0)],
        constraints=[{"type": "ineq", "fun": lambda t: 0.999 - t[0] - t[1]}],
        options={"ftol": 1e-12, "maxiter": 200},
    )
    a, b = float(best.x[0]), float(best.x[1])
    Qb = as_float(Qbar, xp, z)
    Qs, R = dcc_recursion(z, a, b, Qb)
    return DccFit(
        a=a,
        b=b,
        Qbar=Qb,
        Q_next=Qs[-1],
        R=R,
        loglik=-float(best.fun) * zn.shape[0],
        garch=garch,
        z=z,
        converged=bool(best.success),
    )


def dcc_forecast(fit: DccFit, horizon: int) -> Any:
    """Correlation forecasts ``R_{n+h}``, ``h = 1..horizon``, shape (h, k, k)."""
    horizon = check_horizon(horizon)
    xp = get_namespace(fit.Q_next)
    s = fit.a + fit.b
    w = as_float(np.array([s**i for i in range(horizon)]), xp, fit.Q_next)
    Q = fit.Qbar[None] + w[:, None, None] * (fit.Q_next - fit.Qbar)[None]
    return cov_to_corr(Q)


# --------------------------------------------------------------------------- CCC


@dataclass
class ConstantCorrelation:
    """Constant conditional correlation (Bollerslev 1990): ``R`` of the standardised
    residuals, the same for every future day."""

    R: Any
    garch: Any
    z: Any


def constant_correlation(returns: Any, o: int = 0) -> ConstantCorrelation:
    """GARCH(1,1) per asset, then the sample correlation of the standardised residuals."""
    r = check_panel(returns, min_length=MIN_POINTS)
    fit, z = _standardised(r, o)
    xp = get_namespace(z)
    zc = z - xp.mean(z, axis=0, keepdims=True)
    return ConstantCorrelation(R=cov_to_corr(mT(zc) @ zc), garch=fit, z=z)


def covariance_forecast(garch_fit_: Any, R: Any, horizon: int) -> Any:
    """``H_{n+h} = D_h R_h D_h`` (h, k, k) from GARCH variance forecasts (k fits) and
    correlations ``R`` (k, k) or (h, k, k)."""
    v = variance_forecast(garch_fit_, horizon)  # (k, h)
    xp = get_namespace(v)
    sd = xp.sqrt(mT(v))  # (h, k)
    if R.ndim == 2:
        R = R[None]
    return R * sd[:, :, None] * sd[:, None, :]


def half_life(lam: float) -> float:
    """Days for an EWMA weight to halve: ``log(0.5) / log(lam)``."""
    return math.log(0.5) / math.log(lam)


@warmer
def _warm() -> None:
    """Compile the DCC recursion (a small panel)."""
    dcc_fit(np.random.default_rng(0).standard_normal((200, 2)))
