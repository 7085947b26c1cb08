"""Seasonal ARIMA on a batch of series: exact likelihood, lock-step fit, order search, forecasts.

Model (R's ``arima`` / statsmodels' ``SARIMAX(..., simple_differencing=True)``): the series
``y`` (B, n) is differenced first, ``w = (1 - L)^d (1 - L^s)^D y`` (``m = n - d - s D``
points), and ``w - mu`` is a stationary, invertible ARMA

    (1 - ar(L)) (1 - sar(L^s)) (w_t - mu) = (1 + ma(L)) (1 + sma(L^s)) eps_t,
    eps_t ~ N(0, sigma2),

with ``mu`` the mean of the differenced series (``include_constant``: a mean for ``d + D =
0``, a drift for ``d + D = 1``; R's rules). The exact Gaussian log-likelihood of ``w`` comes
from the Kalman filter of :mod:`.statespace`; it equals SARIMAX's ``loglike`` at the same
parameters (tested to 1e-6 relative).

Fitting is maximum likelihood in lock-step over the batch: a Monahan/Jones (partial
autocorrelation) transform keeps every AR polynomial stationary and every MA polynomial
invertible, ``sigma2`` is concentrated out, and the batched Levenberg-Marquardt of
:mod:`.optimize` minimises the sum of squares of ``v_t / sqrt(F_t) * (prod F)^(1/(2m))``
(the concentrated likelihood); it starts from a conditional-sum-of-squares (CSS) fit (R's
default ``CSS-ML``). Everything is array-API code (NumPy, PyTorch, CuPy); on NumPy the two
recursions (filter and CSS) run compiled by numba with the same numbers (tested).

:func:`auto_arima` chooses ``D`` by seasonal strength and ``d`` by repeated KPSS tests (R's
``forecast::auto.arima`` defaults), then the orders by AICc: every model of a small grid is
fitted by CSS for the whole batch at once, the best few per series are refitted by exact
maximum likelihood and the exact AICc decides (R's ``approximation = TRUE`` search).
Forecasts integrate the ARMA forecast; the interval variances are the exact forecast-error
variances of the integrated model given the parameters (the filter's last state covariance
carried h steps), i.e. ``sigma2 * sum_{j<h} psi_j^2`` with ``psi`` the weights of
``theta(L) / (phi(L) (1 - L)^d (1 - L^s)^D)`` once the state is known; they equal SARIMAX's
``get_forecast`` intervals (tested). Parameter uncertainty is not included (as in R and
statsmodels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels import compiled
from prism_kernels.arrays import as_float, device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import _arima_numba as nb
from prism_kernels.timeseries import statespace as ss
from prism_kernels.timeseries.core import (
    Forecast,
    as_batch,
    check_horizon,
    check_level,
    check_season_length,
    z_value,
)
from prism_kernels.timeseries.decomposition import decompose
from prism_kernels.timeseries.optimize import levenberg_marquardt

MAX_ORDER = 12  #: Largest p, q, P or Q accepted.
MAX_DIFF = 2  #: Largest d or D accepted.
KPSS_CRIT_5PCT = 0.463  #: KPSS (level) 5 % critical value (Kwiatkowski et al. 1992, Table 1).
SIGMA2_FLOOR = 1e-300  #: Innovation variance of a perfect fit (a constant series), kept > 0.
SEASONAL_STRENGTH = 0.64  #: Seasonal-strength threshold for D = 1 (R's ``nsdiffs(test="seas")``).


# --------------------------------------------------------------------------- model spec


@dataclass(frozen=True)
class Spec:
    """A (seasonal) ARIMA order: ``(p, d, q)(P, D, Q)[s]`` with or without a constant."""

    p: int
    d: int
    q: int
    P: int = 0
    D: int = 0
    Q: int = 0
    s: int = 1
    constant: bool = False

    @property
    def k(self) -> int:
        """Number of mean/ARMA coefficients (sigma2 not counted)."""
        return int(self.constant) + self.p + self.q + self.P + self.Q

    @property
    def pf(self) -> int:
        return self.p + self.s * self.P

    @property
    def qf(self) -> int:
        return self.q + self.s * self.Q

    @property
    def nd(self) -> int:
        """Points lost to differencing."""
        return self.d + self.s * self.D

    @property
    def seasonal(self) -> bool:
        return self.s > 1 and (self.P + self.D + self.Q) > 0

    def param_names(self) -> list[str]:
        """Coefficient names in SARIMAX's order (the constant first, as an exog would be)."""
        names = ["mean" if self.nd == 0 else "drift"] if self.constant else []
        names += [f"ar.L{i}" for i in range(1, self.p + 1)]
        names += [f"ma.L{i}" for i in range(1, self.q + 1)]
        names += [f"ar.S.L{self.s * i}" for i in range(1, self.P + 1)]
        names += [f"ma.S.L{self.s * i}" for i in range(1, self.Q + 1)]
        return names

    @property
    def name(self) -> str:
        """R's label, e.g. ``ARIMA(1,1,1)(0,1,1)[12] with drift``."""
        out = f"ARIMA({self.p},{self.d},{self.q})"
        if self.seasonal:
            out += f"({self.P},{self.D},{self.Q})[{self.s}]"
        if self.constant:
            out += " with non-zero mean" if self.nd == 0 else " with drift"
        return out

    def min_length(self) -> int:
        """Fewest points ``n`` the model can be fitted on."""
        return self.nd + max(self.pf, 1) + self.k + 3


def _as_order(order: Any, field: str) -> tuple[int, int, int]:
    try:
        vals = tuple(order)
    except TypeError:
        raise InvalidInput(field, f"must be three integers, got {order!r}") from None
    if len(vals) == 4 and field == "seasonal_order":
        vals = vals[:3]
    if len(vals) != 3:
        raise InvalidInput(field, f"must be three integers, got {order!r}")
    out = []
    for name, v in zip(("p", "d", "q") if field == "order" else ("P", "D", "Q"), vals, strict=True):
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, np.integer))
            and not (isinstance(v, float) and v.is_integer())
        ):
            raise InvalidInput(field, f"{name} must be an integer, got {v!r}")
        v = int(v)
        top = MAX_DIFF if name in ("d", "D") else MAX_ORDER
        if not 0 <= v <= top:
            raise InvalidInput(field, f"{name} must be from 0 to {top}, got {v}")
        out.append(v)
    return out[0], out[1], out[2]


def make_spec(
    order: Any,
    seasonal_order: Any = (0, 0, 0),
    season_length: int = 1,
    include_constant: bool | None = None,
) -> Spec:
    """Validated :class:`Spec`; ``include_constant=None`` follows R (a constant only when
    ``d + D <= 1``). ``seasonal_order`` may be ``(P, D, Q)`` or ``(P, D, Q, s)``."""
    p, d, q = _as_order(order, "order")
    so = tuple(seasonal_order) if hasattr(seasonal_order, "__iter__") else seasonal_order
    if isinstance(so, tuple) and len(so) == 4 and int(so[3]) > 1:
        season_length = int(so[3])
    P, D, Q = _as_order(seasonal_order, "seasonal_order")
    s = check_season_length(season_length)
    if s == 1 and (P or D or Q):
        raise InvalidInput("seasonal_order", "needs season_length > 1")
    if s == 1:
        P = D = Q = 0
    if include_constant is None:
        include_constant = d + D <= 1
    return Spec(p, d, q, P, D, Q, s, bool(include_constant))


# --------------------------------------------------------------------------- building blocks


def difference(y: Any, d: int, D: int, s: int) -> Any:
    """``(1 - L)^d (1 - L^s)^D y`` along the last axis, shape (B, n - d - s D)."""
    for _ in range(D):
        y = y[:, s:] - y[:, :-s]
    for _ in range(d):
        y = y[:, 1:] - y[:, :-1]
    return y


def _diff_poly(d: int, D: int, s: int) -> np.ndarray:
    """``delta`` with ``(1 - L)^d (1 - L^s)^D = 1 - sum_k delta_k L^k`` (k = 1..d + sD)."""
    c = np.array([1.0])
    for _ in range(d):
        c = np.convolve(c, [1.0, -1.0])
    for _ in range(D):
        seas = np.zeros(s + 1)
        seas[0], seas[s] = 1.0, -1.0
        c = np.convolve(c, seas)
    return -c[1:]


def _engine(engine: str, xp: Any) -> str:
    if engine not in ("auto", "numba", "array"):
        raise InvalidInput("engine", f"must be auto, numba or array, got {engine!r}")
    is_np = xp.__name__.endswith("numpy")
    if engine == "auto":
        return "numba" if is_np and compiled.enabled() else "array"
    if engine == "numba" and not (is_np and compiled.enabled()):
        raise InvalidInput("engine", "numba runs on NumPy arrays only (and needs numba)")
    return engine


def _filter(w: Any, phi: Any, theta: Any, mu: Any, engine: str):
    if engine == "numba":
        return nb.kalman_filter(
            np.ascontiguousarray(w),
            np.ascontiguousarray(phi),
            np.ascontiguousarray(theta),
            np.ascontiguousarray(mu),
            ss.STEADY_TOL,
        )
    return ss.kalman_filter(w, phi, theta, mu)


def _css(w: Any, phi: Any, theta: Any, mu: Any, ncond: int, engine: str) -> Any:
    if engine == "numba":
        return nb.css_residuals(
            np.ascontiguousarray(w),
            np.ascontiguousarray(phi),
            np.ascontiguousarray(theta),
            np.ascontiguousarray(mu),
            ncond,
        )
    return ss.css_residuals(w, phi, theta, mu, ncond)


def _split(params: Any, spec: Spec) -> tuple[Any, Any, Any, Any, Any]:
    """Columns of natural parameters (B, k) -> mu (B,), ar, ma, sar, sma (B, .)."""
    xp = get_namespace(params)
    i = 0
    if spec.constant:
        mu = params[:, 0]
        i = 1
    else:
        mu = xp.zeros(params.shape[0], dtype=xp.float64, device=device_of(params))
    ar = params[:, i : i + spec.p]
    i += spec.p
    ma = params[:, i : i + spec.q]
    i += spec.q
    sar = params[:, i : i + spec.P]
    i += spec.P
    sma = params[:, i : i + spec.Q]
    return mu, ar, ma, sar, sma


def _polys(params: Any, spec: Spec) -> tuple[Any, Any, Any]:
    mu, ar, ma, sar, sma = _split(params, spec)
    return mu, ss.expand_ar(ar, sar, spec.s), ss.expand_ma(ma, sma, spec.s)


def _to_natural(x: Any, spec: Spec, scale: Any) -> Any:
    """Unconstrained (B, k) -> natural parameters (B, k) (mean in the data's units)."""
    xp = get_namespace(x)
    mu, ar, ma, sar, sma = _split(x, spec)
    cols = [mu[:, None] * scale[:, None]] if spec.constant else []
    cols += [
        ss.pacf_to_coefs(ar),
        ss.pacf_to_coefs(ma, -1.0),
        ss.pacf_to_coefs(sar),
        ss.pacf_to_coefs(sma, -1.0),
    ]
    return xp.concat(cols, axis=1)


def _to_unconstrained(params: Any, spec: Spec, scale: Any) -> Any:
    xp = get_namespace(params)
    mu, ar, ma, sar, sma = _split(params, spec)
    cols = [(mu / scale)[:, None]] if spec.constant else []
    cols += [
        ss.coefs_to_pacf(ar),
        ss.coefs_to_pacf(ma, -1.0),
        ss.coefs_to_pacf(sar),
        ss.coefs_to_pacf(sma, -1.0),
    ]
    return xp.concat(cols, axis=1)


def _ints(spec: Spec) -> tuple[int, int, int, int, int, bool]:
    return spec.p, spec.q, spec.P, spec.Q, spec.s, spec.constant


def _exact_terms(w: Any, params: Any, spec: Spec, engine: str):
    mu, phi, theta = _polys(params, spec)
    return _filter(w, phi, theta, mu, engine)


def _loglik_from(v: Any, F: Any, sigma2: Any) -> Any:
    xp = get_namespace(v)
    m = v.shape[1]
    return (
        -0.5 * m * xp.log(2.0 * math.pi * sigma2)
        - 0.5 * xp.sum(xp.log(F), axis=1)
        - 0.5 * xp.sum(v * v / F, axis=1) / sigma2
    )


# --------------------------------------------------------------------------- likelihood


def arima_loglike(
    y: Any,
    params: Any,
    order: Any,
    seasonal_order: Any = (0, 0, 0),
    season_length: int = 1,
    include_constant: bool = False,
    engine: str = "auto",
) -> Any:
    """Exact Gaussian log-likelihood of seasonal ARIMA at given parameters.

    Parameters
    ----------
    y : array (B, n) or (n,)
        Series (undifferenced).
    params : array (B, k + 1) or (k + 1,)
        In SARIMAX's order: ``[mean or drift (if include_constant), ar.L1.., ma.L1..,
        ar.S.Ls.., ma.S.Ls.., sigma2]``. AR and MA parts must be stationary and invertible.
    order, seasonal_order, season_length, include_constant
        The model (see :func:`make_spec`; here ``include_constant`` defaults to False).
    engine : {"auto", "numba", "array"}
        ``auto``: numba on NumPy, the array-API filter otherwise.

    Returns
    -------
    array (B,)
        Log-likelihood of the differenced series ``w`` (``m = n - d - s D`` points), as
        ``SARIMAX(y, order, seasonal_order, simple_differencing=True).loglike(params)``
        computes it (constant: SARIMAX on ``w`` with a column of ones as ``exog``).
    """
    spec = make_spec(order, seasonal_order, season_length, include_constant)
    y = as_batch(y, "values", min_length=spec.nd + 1)
    xp = get_namespace(y)
    par = as_float(params, xp, like=y)
    if par.ndim == 1:
        par = xp.broadcast_to(par[None, :], (y.shape[0], par.shape[0]))
    if par.ndim != 2 or par.shape != (y.shape[0], spec.k + 1):
        raise InvalidInput(
            "params", f"expected shape ({y.shape[0]}, {spec.k + 1}), got {tuple(par.shape)}"
        )
    if not bool(xp.all(xp.isfinite(par))):
        raise InvalidInput("params", "contains NaN or inf")
    sigma2 = par[:, -1]
    if not bool(xp.all(sigma2 > 0)):
        raise InvalidInput("params", "sigma2 (the last column) must be > 0")
    w = difference(y, spec.d, spec.D, spec.s)
    eng = _engine(engine, xp)
    v, F, *_ = _exact_terms(w, par[:, :-1], spec, eng)
    if eng == "numba":
        v, F = xp.asarray(v), xp.asarray(F)
    return _loglik_from(v, F, sigma2)


# --------------------------------------------------------------------------- fitting


@dataclass
class ArimaFit:
    """A fitted batch (every array on the input's backend).

    Attributes
    ----------
    spec : Spec
    params : array (B, k)
        Coefficients in the order of ``spec.param_names()``.
    sigma2, loglik, aicc : array (B,)
        Innovation variance, log-likelihood (exact for ML, conditional for CSS), AICc.
    converged : array (B,) bool
    v, F : array (B, m)
        Innovations and their variances / sigma2 (ML fits; for CSS fits: residuals, ones).
    state : array (B, r)
        Predicted state after the last point (ML fits).
    state_cov : array (B, r, r)
        Its covariance divided by sigma2 (ML fits).
    method : str
    """

    spec: Spec
    params: Any
    sigma2: Any
    loglik: Any
    aicc: Any
    converged: Any
    v: Any = None
    F: Any = None
    state: Any = None
    state_cov: Any = None
    method: str = "ml"


def _aicc(loglik: Any, k: int, nobs: int) -> Any:
    npar = k + 1
    aic = -2.0 * loglik + 2.0 * npar
    den = nobs - npar - 1
    return aic + (2.0 * npar * (npar + 1) / den if den > 0 else math.inf)


CSS_TOL = {"ftol": 1e-5, "xtol": 1e-3, "max_iter": 30}  #: LM tolerances of CSS fits (order search)


def _fit_css(w: Any, spec: Spec, engine: str, ncond: int, tol: dict | None = None):
    """CSS fit of ``w`` (B, m); returns unconstrained x, natural params, sigma2, loglik."""
    xp = get_namespace(w)
    B, m = w.shape
    scale = xp.sqrt(xp.mean((w - xp.mean(w, axis=1, keepdims=True)) ** 2, axis=1))
    scale = xp.where(scale > 0, scale, 1.0)
    ws = w / scale[:, None]
    x0 = xp.zeros((B, spec.k), dtype=xp.float64, device=device_of(w))
    if spec.constant:
        x0[:, 0] = xp.mean(ws, axis=1)

    def fun(x: Any, idx: Any) -> Any:
        if engine == "numba":
            return nb.css_from_x(ws, x, idx, *_ints(spec), ncond)
        params = _to_natural(x, spec, xp.ones(x.shape[0], dtype=xp.float64, device=device_of(x)))
        mu, phi, theta = _polys(params, spec)
        return _css(xp.take(ws, idx, axis=0), phi, theta, mu, ncond, engine)

    res = levenberg_marquardt(fun, x0, **(tol or CSS_TOL))
    nobs = m - ncond
    sigma2 = xp.maximum(res.cost / nobs * scale * scale, SIGMA2_FLOOR)
    loglik = -0.5 * nobs * (xp.log(2.0 * math.pi * sigma2) + 1.0)
    params = _to_natural(res.x, spec, scale)
    return res, params, sigma2, loglik


def _fit_ml(w: Any, spec: Spec, engine: str, x0: Any, max_iter: int = 100):
    xp = get_namespace(w)
    scale = xp.sqrt(xp.mean((w - xp.mean(w, axis=1, keepdims=True)) ** 2, axis=1))
    scale = xp.where(scale > 0, scale, 1.0)
    ws = w / scale[:, None]
    one = xp.ones(w.shape[0], dtype=xp.float64, device=device_of(w))

    def fun(x: Any, idx: Any) -> Any:
        if engine == "numba":
            return nb.ml_from_x(ws, x, idx, *_ints(spec), ss.STEADY_TOL)
        params = _to_natural(x, spec, xp.take(one, idx, axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):  # rejected steps (NumPy only)
            v, F, *_ = _exact_terms(xp.take(ws, idx, axis=0), params, spec, engine)
            g = xp.exp(0.5 * xp.mean(xp.log(F), axis=1))
            return v / xp.sqrt(F) * g[:, None]

    if x0 is None:
        x0 = xp.zeros((w.shape[0], spec.k), dtype=xp.float64, device=device_of(w))
    else:
        x0 = _to_unconstrained(x0, spec, scale)
    res = levenberg_marquardt(fun, x0, max_iter=max_iter, ftol=1e-12, xtol=1e-9)
    return res, _to_natural(res.x, spec, scale)


def fit_arima(
    y: Any,
    order: Any = (1, 0, 0),
    seasonal_order: Any = (0, 0, 0),
    season_length: int = 1,
    include_constant: bool | None = None,
    method: str = "css-ml",
    engine: str = "auto",
) -> ArimaFit:
    """Fit one (seasonal) ARIMA order to every series of a batch, in lock-step.

    Parameters
    ----------
    y : array (B, n) or (n,)
        Series (finite).
    order, seasonal_order, season_length, include_constant
        The model (:func:`make_spec`).
    method : {"css-ml", "ml", "css"}
        ``css-ml`` (default, as R): exact maximum likelihood started from the CSS estimate;
        ``ml``: exact ML from zero coefficients; ``css``: conditional sum of squares only.
    engine : {"auto", "numba", "array"}
        Recursions compiled by numba (NumPy only) or the array-API code.

    Returns
    -------
    ArimaFit
    """
    spec = make_spec(order, seasonal_order, season_length, include_constant)
    if method not in ("css-ml", "ml", "css"):
        raise InvalidInput("method", f"must be css-ml, ml or css, got {method!r}")
    y = as_batch(y, "values")
    if y.shape[1] < spec.min_length():
        raise InvalidInput(
            "values",
            f"{spec.name} needs at least {spec.min_length()} points, got {y.shape[1]}",
        )
    xp = get_namespace(y)
    eng = _engine(engine, xp)
    return _fit(y, spec, method, eng)


def _fit(y: Any, spec: Spec, method: str, eng: str, start: Any = None) -> ArimaFit:
    xp = get_namespace(y)
    w = difference(y, spec.d, spec.D, spec.s)
    m = w.shape[1]
    x0 = start
    if method in ("css", "css-ml") and start is None:
        tol = {"ftol": 1e-10, "xtol": 1e-8, "max_iter": 100} if method == "css" else None
        res, params, sigma2, loglik = _fit_css(w, spec, eng, ncond=spec.pf, tol=tol)
        if method == "css":
            nobs = m - spec.pf
            return ArimaFit(
                spec,
                params,
                sigma2,
                loglik,
                _aicc(loglik, spec.k, nobs),
                res.converged,
                method="css",
            )
        x0 = params
    res, params = _fit_ml(w, spec, eng, x0)
    v, F, a, Pa = _exact_terms(w, params, spec, eng)
    if eng == "numba":
        v, F, a, Pa = xp.asarray(v), xp.asarray(F), xp.asarray(a), xp.asarray(Pa)
    sigma2 = xp.maximum(xp.mean(v * v / F, axis=1), SIGMA2_FLOOR)
    loglik = _loglik_from(v, F, sigma2)
    return ArimaFit(
        spec, params, sigma2, loglik, _aicc(loglik, spec.k, m), res.converged, v, F, a, Pa, "ml"
    )


# --------------------------------------------------------------------------- forecasting


def _forecast(y: Any, fit: ArimaFit, horizon: int, level: float) -> tuple[Any, Any, Any]:
    """Mean, lower, upper (B, h) of the fitted model ``fit`` on ``y``."""
    xp = get_namespace(y)
    spec = fit.spec
    B, n = y.shape
    mu, phi, theta = _polys(fit.params, spec)
    r = fit.state.shape[1]
    phr = ss._pad(xp, phi, r)
    a = fit.state
    zvec = xp.zeros((B, 1), dtype=xp.float64, device=device_of(y))
    wf = []
    for _ in range(horizon):
        wf.append(a[:, 0] + mu)
        a = phr * a[:, 0:1] + xp.concat([a[:, 1:], zvec], axis=1)
    delta = _diff_poly(spec.d, spec.D, spec.s)
    nd = delta.shape[0]
    hist = [y[:, n - nd + i] for i in range(nd)]  # oldest first
    out = []
    for j in range(horizon):
        val = wf[j]
        for k in range(1, nd + 1):
            if delta[k - 1] != 0.0:
                val = val + float(delta[k - 1]) * hist[len(hist) - k]
        hist.append(val)
        out.append(val)
    mean = xp.stack(out, axis=1)
    var = _forecast_variance(fit, phr, theta, delta, horizon)
    z = z_value(level)
    sd = xp.sqrt(var)
    return mean, mean - z * sd, mean + z * sd


def _forecast_variance(fit: ArimaFit, phr: Any, theta: Any, delta: np.ndarray, h: int) -> Any:
    """Exact h-step forecast-error variances (B, h) of the integrated model.

    The error vector ``x_j = (state error at n+j (r), y errors at n+j-1 .. n+j-nd)`` starts
    at ``(N(0, sigma2 P_{n+1|n}), 0)`` and moves linearly: ``state <- T state + R eta``,
    ``e^y_{n+j} = Z state + sum_k delta_k e^y_{n+j-k}``. With a known state (``P = R R'``
    after the filter has converged) this is ``sigma2 * sum_{i<j} psi_i^2`` with ``psi`` the
    weights of ``theta(L) / (phi(L) (1 - L)^d (1 - L^s)^D)``.
    """
    xp = get_namespace(fit.state)
    B, r = fit.state.shape
    nd = delta.shape[0]
    N = r + nd
    dev = device_of(fit.state)
    Z = np.zeros(N)
    Z[0] = 1.0
    Z[r:] = delta
    u = as_float(Z, xp, like=fit.state)
    # transition (B, N, N)
    base = np.zeros((N, N))
    for i in range(r - 1):
        base[i, i + 1] = 1.0
    if nd:
        base[r, 0] = 1.0
        base[r, r:] = delta
        for i in range(1, nd):
            base[r + i, r + i - 1] = 1.0
    Tm = as_float(base, xp, like=fit.state)
    col = xp.concat([phr, xp.zeros((B, nd), dtype=xp.float64, device=dev)], axis=1)
    e0 = as_float(np.eye(N)[:, 0], xp, like=fit.state)
    Tm = Tm[None, :, :] + col[:, :, None] * e0[None, None, :]
    one = xp.ones((B, 1), dtype=xp.float64, device=dev)
    R = xp.concat([one, ss._pad(xp, theta, r - 1)], axis=1) if r > 1 else one
    Rf = xp.concat([R, xp.zeros((B, nd), dtype=xp.float64, device=dev)], axis=1)
    Q = Rf[:, :, None] * Rf[:, None, :]
    C = xp.zeros((B, N, N), dtype=xp.float64, device=dev)
    C[:, :r, :r] = fit.state_cov
    out = []
    for _ in range(h):
        out.append(xp.sum(xp.matmul(C, u) * u, axis=1))
        C = xp.matmul(xp.matmul(Tm, C), xp.matrix_transpose(Tm)) + Q
    return xp.stack(out, axis=1) * fit.sigma2[:, None]


def _models(fit: ArimaFit) -> list[dict[str, Any]]:
    spec = fit.spec
    names = spec.param_names()
    P = to_numpy(fit.params)
    s2, ll, ac = to_numpy(fit.sigma2), to_numpy(fit.loglik), to_numpy(fit.aicc)
    conv = to_numpy(fit.converged)
    out = []
    for b in range(P.shape[0]):
        out.append(
            {
                "name": spec.name,
                "order": [spec.p, spec.d, spec.q],
                "seasonal_order": [spec.P, spec.D, spec.Q, spec.s],
                "include_constant": spec.constant,
                "params": {nm: float(P[b, i]) for i, nm in enumerate(names)},
                "sigma2": float(s2[b]),
                "loglik": float(ll[b]),
                "aicc": float(ac[b]) if math.isfinite(float(ac[b])) else None,
                "converged": bool(conv[b]),
            }
        )
    return out


def _in_sample(y: Any, fit: ArimaFit) -> tuple[Any, Any]:
    xp = get_namespace(y)
    nd = fit.spec.nd
    nan = xp.full((y.shape[0], nd), math.nan, dtype=xp.float64, device=device_of(y))
    resid = xp.concat([nan, fit.v], axis=1)
    return y - resid, resid


def arima(
    y: Any,
    horizon: int,
    level: float = 0.95,
    season_length: int = 1,
    order: Any = (1, 0, 0),
    seasonal_order: Any = (0, 0, 0),
    include_constant: bool | None = None,
    method: str = "css-ml",
    engine: str = "auto",
) -> Forecast:
    """Fit ``ARIMA(order)(seasonal_order)[season_length]`` to every series and forecast.

    Parameters
    ----------
    y : array (B, n) or (n,)
        Equal-length series.
    horizon : int
        Steps ahead (>= 1).
    level : float
        Interval coverage (0.95 or 95).
    season_length, order, seasonal_order, include_constant, method, engine
        See :func:`fit_arima`.

    Returns
    -------
    Forecast
        ``mean``/``lower``/``upper`` (B, horizon); ``models`` per series (name, order,
        seasonal_order, params by name, sigma2, loglik, aicc); ``fitted``/``residuals``
        (B, n), NaN for the first ``d + s D`` points.
    """
    horizon = check_horizon(horizon)
    level = check_level(level)
    y = as_batch(y, "values")
    fit = fit_arima(y, order, seasonal_order, season_length, include_constant, method, engine)
    if fit.method != "ml":
        raise InvalidInput("method", "forecasts need an exact (ml or css-ml) fit")
    mean, lower, upper = _forecast(y, fit, horizon, level)
    fitted, resid = _in_sample(y, fit)
    return Forecast(mean, lower, upper, level, "arima", _models(fit), fitted, resid)


# --------------------------------------------------------------------------- order search


def kpss_statistic(x: Any) -> Any:
    """KPSS level-stationarity statistic per series (B,), Bartlett long-run variance with
    ``trunc(3 sqrt(n) / 13)`` lags (as ``forecast::ndiffs`` calls ``urca::ur.kpss``)."""
    xp = get_namespace(x)
    n = x.shape[1]
    e = x - xp.mean(x, axis=1, keepdims=True)
    S = xp.cumulative_sum(e, axis=1)
    eta = xp.sum(S * S, axis=1) / (n * n)
    lags = int(3.0 * math.sqrt(n) / 13.0)
    s2 = xp.sum(e * e, axis=1) / n
    for lag in range(1, lags + 1):
        wgt = 1.0 - lag / (lags + 1.0)
        s2 = s2 + 2.0 * wgt * xp.sum(e[:, lag:] * e[:, :-lag], axis=1) / n
    return eta / xp.where(s2 > 0, s2, math.inf)


def seasonal_strength(x: Any, s: int) -> Any:
    """Seasonal strength ``max(0, 1 - var(R) / var(S + R))`` per series (B,).

    From the classical additive decomposition
    (:func:`~prism_kernels.timeseries.decomposition.decompose`), over the points where its
    centred moving-average trend exists; R's ``nsdiffs(test="seas")`` computes the same
    strength from an STL decomposition. Needs ``n >= 2 s``.
    """
    xp = get_namespace(x)
    n = x.shape[1]
    parts = decompose(x, s, "additive")
    h = s // 2  # the trend is NaN in the first and last h points
    seas = parts["seasonal"][:, h : n - h]
    rem = parts["resid"][:, h : n - h]
    sr = seas + rem
    vr = xp.mean((rem - xp.mean(rem, axis=1, keepdims=True)) ** 2, axis=1)
    vsr = xp.mean((sr - xp.mean(sr, axis=1, keepdims=True)) ** 2, axis=1)
    return xp.clip(1.0 - vr / xp.where(vsr > 0, vsr, math.inf), 0.0, 1.0)


def choose_differences(
    y: Any, season_length: int, max_d: int = 2, max_D: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``D`` by seasonal strength (>= 0.64, and at least ``2s + 1`` points), then ``d`` by
    KPSS at 5 % on the seasonally differenced series, repeated up to ``max_d`` (R's
    ``nsdiffs`` / ``ndiffs`` defaults). Returns NumPy int arrays ``d``, ``D`` (B,)."""
    xp = get_namespace(y)
    B, n = y.shape
    s = season_length
    D = np.zeros(B, dtype=np.int64)
    if s > 1 and max_D > 0 and n >= 2 * s + 1:
        D = (to_numpy(seasonal_strength(y, s)) > SEASONAL_STRENGTH).astype(np.int64)
    d = np.zeros(B, dtype=np.int64)
    for Dv in np.unique(D):
        rows = np.nonzero(D == Dv)[0]
        x = difference(xp.take(y, xp.asarray(rows, device=device_of(y)), axis=0), 0, int(Dv), s)
        pending = np.ones(rows.shape[0], dtype=bool)
        for _ in range(max_d):
            if x.shape[1] < 4:
                break
            const = to_numpy(xp.max(x, axis=1) - xp.min(x, axis=1)) <= 0
            stat = to_numpy(kpss_statistic(x))
            step = pending & ~const & (stat > KPSS_CRIT_5PCT)
            d[rows[step]] += 1
            pending = step
            if not pending.any():
                break
            x = x[:, 1:] - x[:, :-1]
    return d, D


def _grid(d: int, D: int, s: int, max_p: int, max_q: int, max_P: int, max_Q: int, max_order: int):
    out = []
    consts = (False, True) if d + D <= 1 else (False,)
    for p in range(max_p + 1):
        for q in range(max_q + 1):
            for P in range(max_P + 1 if s > 1 else 1):
                for Q in range(max_Q + 1 if s > 1 else 1):
                    if p + q + P + Q > max_order:
                        continue
                    for c in consts:
                        out.append(Spec(p, d, q, P, D, Q, s, c))
    return out


def auto_arima(
    y: Any,
    horizon: int,
    level: float = 0.95,
    season_length: int = 1,
    stepwise: bool = True,
    max_p: int = 2,
    max_q: int = 2,
    max_P: int = 1,
    max_Q: int = 1,
    max_order: int = 5,
    max_d: int = 2,
    max_D: int = 1,
    d: int | None = None,
    D: int | None = None,
    n_refit: int = 2,
    engine: str = "auto",
) -> Forecast:
    """Choose a seasonal ARIMA per series by AICc and forecast (R's ``auto.arima``).

    ``D`` by seasonal strength, ``d`` by KPSS (:func:`choose_differences`; or given).
    Constants follow R: a mean/drift is tried only when ``d + D <= 1``. The search is
    exhaustive over the grid ``p <= max_p, q <= max_q, P <= max_P, Q <= max_Q,
    p + q + P + Q <= max_order`` (with and without the constant): every model of the grid is
    fitted by CSS to the whole batch in one lock-step call (all candidates conditioned on the
    same first ``max_p + s max_P`` points, so their CSS AICc compare), then the ``n_refit``
    best per series are refitted by exact ML and the exact AICc picks. ``stepwise`` is
    accepted for compatibility: the grid search covers every model a stepwise search within
    those bounds can visit, so it gives the same or a lower AICc.

    Returns
    -------
    Forecast
        As :func:`arima`, ``method="auto_arima"``; ``models[b]`` describes series b's model.
    """
    del stepwise
    horizon = check_horizon(horizon)
    level = check_level(level)
    s = check_season_length(season_length)
    for name, v in (
        ("max_p", max_p),
        ("max_q", max_q),
        ("max_P", max_P),
        ("max_Q", max_Q),
        ("max_order", max_order),
        ("n_refit", n_refit),
    ):
        if isinstance(v, bool) or int(v) != v or not 0 <= v <= MAX_ORDER:
            raise InvalidInput(name, f"must be an integer from 0 to {MAX_ORDER}, got {v!r}")
    n_refit = max(1, int(n_refit))
    y = as_batch(y, "values", min_length=6)
    xp = get_namespace(y)
    eng = _engine(engine, xp)
    B, n = y.shape
    if s > 1 and n <= 2 * s:  # R: too short for a seasonal model
        s = 1
    if d is not None or D is not None:
        dd = np.full(B, int(d if d is not None else 0))
        DD = np.full(B, int(D if D is not None else 0))
        if d is None or D is None:
            d0, D0 = choose_differences(y, s, max_d, max_D)
            dd = dd if d is not None else d0
            DD = DD if D is not None else D0
        if not (0 <= dd.max() <= MAX_DIFF and 0 <= DD.max() <= MAX_DIFF):
            raise InvalidInput("d", f"d and D must be from 0 to {MAX_DIFF}")
    else:
        dd, DD = choose_differences(y, s, max_d, max_D if s > 1 else 0)
    if s == 1:
        DD[:] = 0
    chosen: list[tuple[Spec, Any, ArimaFit] | None] = [None] * B
    for dv, Dv in sorted(set(zip(dd.tolist(), DD.tolist(), strict=True))):
        rows = np.nonzero((dd == dv) & (DD == Dv))[0]
        yr = xp.take(y, xp.asarray(rows, device=device_of(y)), axis=0)
        w = difference(yr, dv, Dv, s)
        m = w.shape[1]
        mp, mP = max_p, max_P if s > 1 else 0
        while mp + s * mP + mp + 4 > m and (mp > 0 or mP > 0):  # shrink the grid for short data
            if mP > 0:
                mP -= 1
            else:
                mp -= 1
        mq, mQ = max_q, max_Q if s > 1 else 0
        while mq + s * mQ + 4 > m and (mq > 0 or mQ > 0):
            if mQ > 0:
                mQ -= 1
            else:
                mq -= 1
        specs = _grid(dv, Dv, s, mp, mq, mP, mQ, max_order)
        ncond = mp + s * mP
        scores = np.empty((len(specs), rows.shape[0]))
        for i, spec in enumerate(specs):
            *_, loglik = _fit_css(w, spec, eng, ncond=ncond)
            a = to_numpy(_aicc(loglik, spec.k, m - ncond))
            scores[i] = np.where(np.isfinite(a), a, np.inf)
        order = np.argsort(scores, axis=0, kind="stable")[: min(n_refit, len(specs))]
        best_aicc = np.full(rows.shape[0], np.inf)
        best_spec = np.full(rows.shape[0], -1)
        fits: dict[int, tuple[np.ndarray, ArimaFit]] = {}
        for i in np.unique(order):
            sel = np.nonzero((order == i).any(axis=0))[0]
            spec = specs[int(i)]
            fit = _fit(
                xp.take(yr, xp.asarray(sel, device=device_of(y)), axis=0), spec, "css-ml", eng
            )
            fits[int(i)] = (sel, fit)
            ac = to_numpy(fit.aicc)
            ac = np.where(np.isfinite(ac), ac, np.inf)
            better = ac < best_aicc[sel]
            best_aicc[sel[better]] = ac[better]
            best_spec[sel[better]] = int(i)
        for loc in range(rows.shape[0]):
            i = int(best_spec[loc]) if best_spec[loc] >= 0 else int(order[0, loc])
            sel, fit = fits[i]
            j = int(np.nonzero(sel == loc)[0][0])
            chosen[int(rows[loc])] = (specs[i], j, fit)
    return _assemble(y, chosen, horizon, level)


def _subfit(fit: ArimaFit, idx: Any) -> ArimaFit:
    xp = get_namespace(fit.params)
    t = lambda a: xp.take(a, idx, axis=0)  # noqa: E731
    return ArimaFit(
        fit.spec,
        t(fit.params),
        t(fit.sigma2),
        t(fit.loglik),
        t(fit.aicc),
        t(fit.converged),
        t(fit.v),
        t(fit.F),
        t(fit.state),
        t(fit.state_cov),
        fit.method,
    )


def _assemble(y: Any, chosen: list, horizon: int, level: float) -> Forecast:
    """Forecast each series with its chosen fit (grouped by fit), back in input order."""
    xp = get_namespace(y)
    B, n = y.shape
    dev = device_of(y)
    groups: dict[int, tuple[ArimaFit, list[int], list[int]]] = {}
    for b, (_, j, fit) in enumerate(chosen):
        g = groups.setdefault(id(fit), (fit, [], []))
        g[1].append(b)
        g[2].append(j)
    mean = xp.zeros((B, horizon), dtype=xp.float64, device=dev)
    lower = xp.zeros((B, horizon), dtype=xp.float64, device=dev)
    upper = xp.zeros((B, horizon), dtype=xp.float64, device=dev)
    fitted = xp.zeros((B, n), dtype=xp.float64, device=dev)
    resid = xp.zeros((B, n), dtype=xp.float64, device=dev)
    models: list[dict[str, Any]] = [{}] * B
    for fit, bs, js in groups.values():
        bi = xp.asarray(np.asarray(bs), device=dev)
        sub = _subfit(fit, xp.asarray(np.asarray(js), device=dev))
        yb = xp.take(y, bi, axis=0)
        mu, lo, up = _forecast(yb, sub, horizon, level)
        fi, re = _in_sample(yb, sub)
        mean[bi, ...] = mu
        lower[bi, ...] = lo
        upper[bi, ...] = up
        fitted[bi, ...] = fi
        resid[bi, ...] = re
        for b, md in zip(bs, _models(sub), strict=True):
            models[b] = md
    return Forecast(mean, lower, upper, level, "auto_arima", models, fitted, resid)


@compiled.warmer
def _warm() -> None:
    """Compile the filter, CSS and optimiser kernels (a small seasonal batch, both fits)."""
    t = np.arange(40.0)
    y = np.stack([10.0 + np.sin(t * 1.57) + 0.1 * t, 5.0 + np.cos(t * 1.57) - 0.05 * t])
    arima(y, 2, season_length=4, order=(1, 1, 1), seasonal_order=(0, 1, 1), engine="numba")
    arima(y, 2, order=(1, 0, 1), include_constant=True, engine="numba")
