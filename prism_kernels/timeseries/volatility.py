"""GARCH(1,1) and GJR-GARCH(1,1,1) with normal errors, fitted by maximum likelihood over a
batch of symbols, and their closed-form variance forecasts.

Model (returns ``r_t``, ``t = 0..n-1``, a batch ``(B, n)`` of symbols, units of the returns)::

    r_t = mu + e_t,   e_t = sigma_t z_t,   z_t ~ N(0, 1)
    sigma2_t = omega + alpha e_{t-1}^2 + gamma e_{t-1}^2 1[e_{t-1} < 0] + beta sigma2_{t-1}

``mean="constant"`` estimates ``mu``; ``mean="zero"`` fixes it at 0. ``o=0`` is GARCH(1,1)
(no ``gamma``); ``o=1`` is GJR-GARCH(1,1,1).

The likelihood is initialised exactly as the ``arch`` package does
(``arch.univariate.GARCH``), so that the same data give the same estimates:

* the *backcast* stands in for ``e_{-1}^2`` and ``sigma2_{-1}`` (and ``0.5`` of it for the
  asymmetric term): the exponentially weighted mean of the first ``tau = min(75, n)``
  squared residuals, weights ``0.94^i`` normalised;
* the conditional variances are kept inside arch's loose *variance bounds*: an EWMA
  (``lambda = 0.94``) of the squared residuals times ``1e-6`` / ``1e6``, floored at
  ``var / 1e8``, the upper one at least ``1 + max e^2`` and at most ``1e7 (1 + max e^2)``;
  above the upper bound ``u`` a value ``s`` becomes ``u + log(s / u)`` (arch's rule);
* both are computed once from the residuals at the starting mean (``r - mean(r)``, or ``r``
  for a zero mean) and held fixed during the optimisation;
* the same bounds (``omega`` in ``[1e-8 v, 10 v]`` with ``v = mean(e^2)``, ``alpha, beta`` in
  ``[0, 1]``, ``gamma`` in ``[-1, 2]``), the same linear constraints (``alpha + gamma >= 0``,
  ``alpha + gamma / 2 + beta <= 1``) and arch's grid of 64 starting values.

Computation: :func:`garch_loglike` / :func:`garch_variance` are array-API code (NumPy,
PyTorch, CuPy; one pass over time, vectorised over the batch). :func:`garch_fit` runs on the
host (inputs on PyTorch/CuPy are copied there and the results go back to the input's
library), with a compiled (numba) likelihood *and its analytic gradient* that equals the
array-API pass (tested): per symbol, arch's best starting point, then a compiled damped
Newton (forward-difference Hessian of the analytic gradient, iterates kept strictly
feasible); a symbol whose optimum is not found in the interior (about 1 % of seeded
symbols: ``alpha = 0`` or ``beta = 0``) is finished by SciPy's SLSQP with arch's bounds and
constraints, restarted from arch's next-best starting points (``method="slsqp"`` uses SLSQP
for every symbol).
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from prism_kernels.arrays import as_float, device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.compiled import enabled as _numba_enabled
from prism_kernels.compiled import njit, warmer
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import as_batch, check_horizon

LOG_2PI = math.log(2.0 * math.pi)
MIN_POINTS = 30
"""Fewest returns a GARCH fit accepts (4-5 parameters need far more to be identified)."""

MEANS = ("constant", "zero")


@dataclass
class GarchFit:
    """A fitted GARCH / GJR-GARCH for a batch of symbols.

    Attributes
    ----------
    params : array (B, k)
        Estimates in the order of ``names``: ``[mu,] omega, alpha, [gamma,] beta``.
    names : list of str
    loglik : array (B,)
        Maximised Gaussian log-likelihood (natural log, arch's convention).
    sigma2 : array (B, n)
        In-sample conditional variances at the estimates (returns' units squared).
    resid : array (B, n)
        ``r - mu``.
    backcast : array (B,)
        The backcast used (fixed during the fit).
    converged : array (B,) of bool
        SLSQP reported success.
    o : int
        1 for GJR-GARCH, 0 for GARCH.
    mean : str
        ``"constant"`` or ``"zero"``.
    """

    params: Any
    names: list[str]
    loglik: Any
    sigma2: Any
    resid: Any
    backcast: Any
    converged: Any
    o: int
    mean: str
    extra: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Any:
        """Column ``name`` of :attr:`params`, shape (B,)."""
        return self.params[:, self.names.index(name)]

    def models(self) -> list[dict[str, Any]]:
        """Per symbol: a JSON-able dict ``{"name", "params", "loglik", "persistence"}``."""
        p = to_numpy(self.params)
        ll = to_numpy(self.loglik)
        name = "GJR-GARCH(1,1,1)" if self.o else "GARCH(1,1)"
        out = []
        for i in range(p.shape[0]):
            d = {k: float(v) for k, v in zip(self.names, p[i], strict=True)}
            pers = d["alpha"] + d.get("gamma", 0.0) / 2.0 + d["beta"]
            out.append(
                {
                    "name": name,
                    "mean": self.mean,
                    "params": d,
                    "loglik": float(ll[i]),
                    "persistence": pers,
                }
            )
        return out


def param_names(o: int = 0, mean: str = "constant") -> list[str]:
    """Parameter names in the order :func:`garch_fit` returns them."""
    names = ["mu"] if mean == "constant" else []
    names += ["omega", "alpha"] + (["gamma"] if o else []) + ["beta"]
    return names


def _check_model(o: int, mean: str) -> tuple[int, str]:
    if isinstance(o, bool) or o not in (0, 1):
        raise InvalidInput("o", f"asymmetry order must be 0 (GARCH) or 1 (GJR-GARCH), got {o!r}")
    if mean not in MEANS:
        raise InvalidInput("mean", f"must be one of {', '.join(MEANS)}, got {mean!r}")
    return int(o), mean


def check_returns(returns: Any, field: str = "returns", min_length: int = MIN_POINTS) -> Any:
    """``returns`` as a checked float64 (B, n) batch; constant series are rejected."""
    r = as_batch(returns, field, min_length)
    xp = get_namespace(r)
    sd = xp.std(r, axis=1)
    scale = xp.max(xp.abs(r), axis=1)
    if bool(xp.any(sd <= 1e-12 * (scale + 1e-300))):
        bad = int(to_numpy(xp.argmax(xp.astype(sd <= 1e-12 * (scale + 1e-300), xp.int8))))
        raise InvalidInput(field, f"series {bad} is constant: its volatility cannot be estimated")
    return r


# --------------------------------------------------------------------------- initialisation


def _ewma_weights(n: int) -> np.ndarray:
    tau = min(75, n)
    w = 0.94 ** np.arange(tau)
    return w / w.sum()


def backcast(resid: Any) -> Any:
    """arch's backcast of ``sigma2_{-1}``: EWMA (0.94) weighted mean of the first
    ``min(75, n)`` squared residuals. ``resid`` (B, n) -> (B,)."""
    xp = get_namespace(resid)
    w = _ewma_weights(resid.shape[1])
    w = as_float(w, xp, resid)
    return xp.sum(resid[:, : w.shape[0]] ** 2 * w, axis=1)


def variance_bounds(resid: Any) -> Any:
    """arch's loose bounds on the conditional variances, shape (B, n, 2) (lower, upper)."""
    xp = get_namespace(resid)
    B, n = resid.shape
    e2 = resid**2
    s = backcast(resid)
    cols = []
    for t in range(n):  # EWMA recursion sigma2_t = 0.06 e_{t-1}^2 + 0.94 sigma2_{t-1}
        cols.append(s)
        s = 0.06 * e2[:, t] + 0.94 * s
    ew = xp.stack(cols, axis=1)
    var = xp.var(resid, axis=1)[:, None]
    mx = 1.0 + xp.max(e2, axis=1)[:, None]
    lo = xp.where(ew / 1e6 < var / 1e8, var / 1e8, ew / 1e6)
    hi = ew * 1e6
    hi = xp.where(hi < mx, mx, hi)
    hi = xp.where(hi > 1e7 * mx, 1e7 * mx, hi)
    return xp.stack([lo, hi], axis=-1)


def _start_resid(r: Any, mean: str) -> Any:
    xp = get_namespace(r)
    return r - xp.mean(r, axis=1, keepdims=True) if mean == "constant" else r


# --------------------------------------------------------------------------- likelihood


def garch_variance(
    params: Any,
    returns: Any,
    o: int = 0,
    mean: str = "constant",
    backcast_value: Any = None,
    bounds: Any = None,
) -> Any:
    """Conditional variances ``sigma2`` (B, n) at ``params`` (B, k) (array API).

    ``backcast_value`` (B,) and ``bounds`` (B, n, 2) default to arch's, computed from the
    residuals at the starting mean (as :func:`garch_fit` does).
    """
    o, mean = _check_model(o, mean)
    xp = get_namespace(returns)
    r = as_float(returns, xp, returns)
    if r.ndim == 1:
        r = r[None, :]
    P = as_float(params, xp, r)
    if P.ndim == 1:
        P = P[None, :]
    k = len(param_names(o, mean))
    if P.shape[-1] != k:
        raise InvalidInput("params", f"expected {k} parameters {param_names(o, mean)}")
    e0 = _start_resid(r, mean)
    bc = backcast(e0) if backcast_value is None else as_float(backcast_value, xp, r)
    vb = variance_bounds(e0) if bounds is None else as_float(bounds, xp, r)
    j = 0
    mu = 0.0
    if mean == "constant":
        mu = P[:, 0:1]
        j = 1
    omega, alpha = P[:, j], P[:, j + 1]
    gamma = P[:, j + 2] if o else None
    beta = P[:, j + 2 + o]
    e = r - mu
    n = r.shape[1]
    out = []
    prev_e2 = bc
    prev_neg = 0.5 * bc
    prev_s = bc
    for t in range(n):
        s = omega + alpha * prev_e2 + beta * prev_s
        if o:
            s = s + gamma * prev_neg
        lo, hi = vb[:, t, 0], vb[:, t, 1]
        s = xp.where(s < lo, lo, xp.where(s > hi, hi + xp.log(s / hi), s))
        out.append(s)
        et = e[:, t]
        prev_e2 = et**2
        prev_neg = xp.where(et < 0, prev_e2, 0.0 * prev_e2)
        prev_s = s
    return xp.stack(out, axis=1)


def garch_loglike(
    params: Any,
    returns: Any,
    o: int = 0,
    mean: str = "constant",
    backcast_value: Any = None,
    bounds: Any = None,
) -> Any:
    """Gaussian log-likelihood (B,) of GARCH/GJR-GARCH at ``params`` (B, k) (array API).

    ``sum_t -0.5 (log 2 pi + log sigma2_t + e_t^2 / sigma2_t)``, arch's value at the same
    parameters (same backcast and variance bounds).
    """
    xp = get_namespace(returns)
    r = as_float(returns, xp, returns)
    if r.ndim == 1:
        r = r[None, :]
    P = as_float(params, xp, r)
    if P.ndim == 1:
        P = P[None, :]
    s2 = garch_variance(P, r, o, mean, backcast_value, bounds)
    mu = P[:, 0:1] if mean == "constant" else 0.0
    e = r - mu
    return -0.5 * xp.sum(LOG_2PI + xp.log(s2) + e**2 / s2, axis=1)


# --------------------------------------------------------------------------- compiled path


@njit
def _nll_grad(theta, y, o, has_mu, bc, lo, hi, grad):  # pragma: no cover - compiled
    """Negative log-likelihood / n and its gradient (into ``grad``) for one series."""
    n = y.shape[0]
    k = theta.shape[0]
    j = 1 if has_mu else 0
    mu = theta[0] if has_mu else 0.0
    omega = theta[j]
    alpha = theta[j + 1]
    gamma = theta[j + 2] if o == 1 else 0.0
    beta = theta[j + 2 + o]
    ds = np.zeros(k)  # d sigma2_{t-1} / d theta
    dn = np.zeros(k)
    for i in range(k):
        grad[i] = 0.0
    prev_e2 = bc
    prev_neg = 0.5 * bc
    prev_s = bc
    prev_e = 0.0
    prev_ind = 0.0
    nll = 0.0
    for t in range(n):
        s = omega + alpha * prev_e2 + gamma * prev_neg + beta * prev_s
        # derivative of the unbounded value
        for i in range(k):
            dn[i] = beta * ds[i]
        dn[j] += 1.0
        dn[j + 1] += prev_e2
        if o == 1:
            dn[j + 2] += prev_neg
        dn[j + 2 + o] += prev_s
        if has_mu and t > 0:
            dn[0] += -2.0 * prev_e * (alpha + gamma * prev_ind)
        if s < lo[t]:
            s = lo[t]
            for i in range(k):
                dn[i] = 0.0
        elif s > hi[t]:
            f = 1.0 / s
            s = hi[t] + math.log(s / hi[t])
            for i in range(k):
                dn[i] *= f
        e = y[t] - mu
        e2 = e * e
        nll += 0.5 * (LOG_2PI + math.log(s) + e2 / s)
        c = 0.5 * (1.0 / s - e2 / (s * s))
        for i in range(k):
            grad[i] += c * dn[i]
            ds[i] = dn[i]
        if has_mu:
            grad[0] += -e / s
        prev_e = e
        prev_e2 = e2
        prev_ind = 1.0 if e < 0 else 0.0
        prev_neg = e2 * prev_ind
        prev_s = s
    for i in range(k):
        grad[i] /= n
    return nll / n


@njit
def _variance_one(theta, y, o, has_mu, bc, lo, hi, out):  # pragma: no cover - compiled
    n = y.shape[0]
    j = 1 if has_mu else 0
    mu = theta[0] if has_mu else 0.0
    omega = theta[j]
    alpha = theta[j + 1]
    gamma = theta[j + 2] if o == 1 else 0.0
    beta = theta[j + 2 + o]
    prev_e2 = bc
    prev_neg = 0.5 * bc
    prev_s = bc
    for t in range(n):
        s = omega + alpha * prev_e2 + gamma * prev_neg + beta * prev_s
        if s < lo[t]:
            s = lo[t]
        elif s > hi[t]:
            s = hi[t] + math.log(s / hi[t])
        out[t] = s
        e = y[t] - mu
        prev_e2 = e * e
        prev_neg = prev_e2 if e < 0 else 0.0
        prev_s = s


def garch_loglike_compiled(
    params: np.ndarray,
    returns: np.ndarray,
    o: int = 0,
    mean: str = "constant",
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy fast path of :func:`garch_loglike` with its analytic gradient.

    Returns ``(loglik (B,), grad (B, k))`` (gradient of the log-likelihood).
    """
    o, mean = _check_model(o, mean)
    r = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    P = np.atleast_2d(np.asarray(params, dtype=np.float64))
    e0 = _start_resid(r, mean)
    bc = backcast(e0)
    vb = np.ascontiguousarray(variance_bounds(e0))
    n = r.shape[1]
    ll = np.empty(r.shape[0])
    g = np.empty_like(P)
    for b in range(r.shape[0]):
        gb = np.empty(P.shape[1])
        ll[b] = -n * _nll_grad(
            P[b], r[b], o, mean == "constant", bc[b], vb[b, :, 0].copy(), vb[b, :, 1].copy(), gb
        )
        g[b] = -n * gb
    return ll, g


# --------------------------------------------------------------------------- fit


def _starting_grid(o: int) -> np.ndarray:
    """arch's 64 starting points as (alpha, gamma, abg) triples (GARCH.starting_values)."""
    a = [0.01, 0.05, 0.1, 0.2]
    return np.array(list(itertools.product(a, a, [0.5, 0.7, 0.9, 0.98])))


@njit
def _grid_nll(cands, e, o, bc, lo, hi):  # pragma: no cover - compiled
    """Negative log-likelihood (zero mean, residuals ``e``) of each candidate row
    ``[omega, alpha, (gamma,) beta]``."""
    out = np.empty(cands.shape[0])
    n = e.shape[0]
    for c in range(cands.shape[0]):
        omega = cands[c, 0]
        alpha = cands[c, 1]
        gamma = cands[c, 2] if o == 1 else 0.0
        beta = cands[c, 2 + o]
        prev_e2 = bc
        prev_neg = 0.5 * bc
        prev_s = bc
        nll = 0.0
        for t in range(n):
            s = omega + alpha * prev_e2 + gamma * prev_neg + beta * prev_s
            if s < lo[t]:
                s = lo[t]
            elif s > hi[t]:
                s = hi[t] + math.log(s / hi[t])
            e2 = e[t] * e[t]
            nll += 0.5 * (LOG_2PI + math.log(s) + e2 / s)
            prev_e2 = e2
            prev_neg = e2 if e[t] < 0 else 0.0
            prev_s = s
        out[c] = nll
    return out


@functools.cache
def _unit_candidates(o: int) -> np.ndarray:
    """arch's distinct starting points ``[1 - abg, alpha, (gamma,) beta]`` in its order (for
    GARCH the gamma grid only repeats rows: the first of each is kept, as arch's argmax
    would pick it)."""
    rows: dict[tuple[float, ...], None] = {}
    for alpha, gamma, agb in _starting_grid(o):
        sv = [1.0 - agb, alpha]
        agb = agb - alpha
        if o:
            sv.append(gamma)
            agb -= gamma / 2.0
        sv.append(agb)
        rows.setdefault(tuple(sv), None)
    return np.array(list(rows))


def _starting_values(
    e0: np.ndarray, o: int, has_mu: bool, mu0: float, bc: float, lo, hi
) -> list[np.ndarray]:
    """arch's starting points, best first (arch takes the first; restarts use the next).

    arch scores them on the volatility alone (the residuals at the starting mean)."""
    cands = _unit_candidates(o).copy()
    cands[:, 0] *= float(np.mean(e0**2))  # omega = (1 - abg) * target
    nll = _grid_nll(cands, e0, o, bc, lo, hi)
    order = np.argsort(nll, kind="stable")[: 1 + RESTARTS]  # ties: arch's first
    return [np.concatenate([[mu0], cands[i]]) if has_mu else cands[i] for i in order]


@njit
def _feasible_step(x, d, lb, ub, j, o):  # pragma: no cover - compiled
    """Largest ``t`` in (0, 1] keeping ``x + t d`` inside the bounds and arch's constraints
    (``alpha + gamma >= 0``, ``alpha + gamma/2 + beta <= 1``), 1 % short of the boundary."""
    t = 1.0
    for i in range(x.shape[0]):
        if d[i] < 0.0 and lb[i] > -np.inf:
            t = min(t, 0.99 * (x[i] - lb[i]) / -d[i])
        elif d[i] > 0.0 and ub[i] < np.inf:
            t = min(t, 0.99 * (ub[i] - x[i]) / d[i])
    ia, ib = j + 1, j + 2 + o
    c1 = x[ia] + (x[j + 2] if o == 1 else 0.0)
    dc1 = d[ia] + (d[j + 2] if o == 1 else 0.0)
    if dc1 < 0.0:
        t = min(t, 0.99 * c1 / -dc1)
    c2 = 1.0 - x[ia] - x[ib] - (0.5 * x[j + 2] if o == 1 else 0.0)
    dc2 = -d[ia] - d[ib] - (0.5 * d[j + 2] if o == 1 else 0.0)
    if dc2 < 0.0:
        t = min(t, 0.99 * c2 / -dc2)
    return max(t, 0.0)


@njit
def _newton(x0, y, o, has_mu, bc, lo, hi, lb, ub, scale, out):  # pragma: no cover - compiled
    """Damped Newton on the mean negative log-likelihood from ``x0`` (strictly feasible),
    iterates kept strictly inside the bounds and constraints; the Hessian is the forward
    difference of the analytic gradient. Writes the estimate to ``out``; returns 0 when the
    Newton decrement is below 1e-13 with the last step not cut by a boundary, else 1 (the
    caller then runs SLSQP, which handles a solution on the boundary)."""
    k = x0.shape[0]
    j = 1 if has_mu else 0
    x = x0.copy()
    g = np.empty(k)
    g2 = np.empty(k)
    H = np.empty((k, k))
    xt = np.empty(k)
    f = _nll_grad(x, y, o, has_mu, bc, lo, hi, g)
    for _ in range(100):
        for i in range(k):
            h = 1e-7 * max(abs(x[i]), scale[i])
            if x[i] + h > ub[i]:
                h = -h
            for m in range(k):
                xt[m] = x[m]
            xt[i] += h
            _nll_grad(xt, y, o, has_mu, bc, lo, hi, g2)
            for m in range(k):
                H[i, m] = (g2[m] - g[m]) / h
        for i in range(k):
            for m in range(i + 1, k):
                v = 0.5 * (H[i, m] + H[m, i])
                H[i, m] = v
                H[m, i] = v
        # Newton direction with Levenberg damping until H + lam I is positive definite
        lam = 0.0
        d = np.zeros(k)
        for _try in range(30):
            A = H.copy()
            for i in range(k):
                A[i, i] += lam * max(abs(H[i, i]), 1e-12)
            ok = True
            L = np.zeros((k, k))
            for i in range(k):
                for m in range(i + 1):
                    sm = A[i, m]
                    for q in range(m):
                        sm -= L[i, q] * L[m, q]
                    if i == m:
                        if sm <= 0.0:
                            ok = False
                            break
                        L[i, i] = math.sqrt(sm)
                    else:
                        L[i, m] = sm / L[m, m]
                if not ok:
                    break
            if ok:
                z = np.empty(k)
                for i in range(k):
                    sm = -g[i]
                    for q in range(i):
                        sm -= L[i, q] * z[q]
                    z[i] = sm / L[i, i]
                for i in range(k - 1, -1, -1):
                    sm = z[i]
                    for q in range(i + 1, k):
                        sm -= L[q, i] * d[q]
                    d[i] = sm / L[i, i]
                break
            lam = 1e-6 if lam == 0.0 else lam * 10.0
        else:
            break
        dec = 0.0
        for i in range(k):
            dec -= g[i] * d[i]
        if dec < 1e-13 and lam == 0.0:
            for i in range(k):
                out[i] = x[i]
            return 0
        tmax = _feasible_step(x, d, lb, ub, j, o)
        t = tmax
        fn = f
        moved = False
        for _ls in range(50):
            for i in range(k):
                xt[i] = x[i] + t * d[i]
            fn = _nll_grad(xt, y, o, has_mu, bc, lo, hi, g2)
            if fn <= f - 1e-4 * t * dec:
                moved = True
                break
            t *= 0.5
        if not moved:
            break
        for i in range(k):
            x[i] = xt[i]
            g[i] = g2[i]
        f = fn
        if tmax < 1.0 and t == tmax:
            for i in range(k):
                out[i] = x[i]
            return 1  # pressed against a boundary: let SLSQP finish
    for i in range(k):
        out[i] = x[i]
    return 1


def _variance_numpy(P, r, o, mean, bc, vb):
    out = np.empty_like(r)
    for b in range(r.shape[0]):
        _variance_one(
            P[b], r[b], o, mean == "constant", bc[b], vb[b, :, 0].copy(), vb[b, :, 1].copy(), out[b]
        )
    return out


RESTARTS = 4
"""Extra SLSQP starts (arch's next-best starting points) when the first ends on a boundary."""


def _on_boundary(x: np.ndarray, j: int, o: int) -> bool:
    """The estimate touches ``alpha (+ gamma) = 0``, ``beta = 0`` or unit persistence, where
    the likelihood can have a second maximum (e.g. ``alpha = 0``: a deterministic variance
    path that any ``beta`` fits)."""
    alpha, beta = x[j + 1], x[j + 2 + o]
    gamma = x[j + 2] if o else 0.0
    eps = 1e-6
    return bool(
        alpha < eps or alpha + gamma < eps or beta < eps or alpha + gamma / 2 + beta > 1 - eps
    )


def garch_fit(
    returns: Any,
    o: int = 0,
    mean: str = "constant",
    *,
    tol: float = 1e-12,
    max_iter: int = 200,
    method: str = "newton",
) -> GarchFit:
    """Fit GARCH(1,1) (``o=0``) or GJR-GARCH(1,1,1) (``o=1``) with normal errors by maximum
    likelihood, one model per symbol.

    Parameters
    ----------
    returns : array (B, n) or (n,)
        Returns (any units; arch's ``rescale=False``: no rescaling is done, so percent
        returns, about 1, condition the optimiser best). At least :data:`MIN_POINTS`.
    o : {0, 1}
        Asymmetric (GJR) term.
    mean : {"constant", "zero"}
    tol : float
        SLSQP ``ftol`` on the mean negative log-likelihood per observation.
    max_iter : int
        SLSQP iteration cap per symbol.
    method : {"newton", "slsqp"}
        ``"newton"`` (default): a compiled damped Newton from arch's best starting point
        (analytic gradient, forward-difference Hessian, iterates kept strictly feasible);
        a symbol whose Newton run does not converge in the interior goes on to SLSQP as
        below. ``"slsqp"``: SLSQP for every symbol.

    SLSQP: from arch's best starting point; when that ends on a boundary of
    the parameter space (``alpha = 0``, ``beta = 0``, unit persistence) or fails, up to
    :data:`RESTARTS` more starts from arch's next-best starting points, keeping the highest
    likelihood (arch itself stops at the first, so there ours can be higher).

    Returns
    -------
    GarchFit
        On the input's array library.

    Raises
    ------
    InvalidInput
        ``returns`` empty, too short, NaN/inf or constant; bad ``o`` / ``mean``.
    """
    o, mean = _check_model(o, mean)
    if method not in ("newton", "slsqp"):
        raise InvalidInput("method", f"must be newton or slsqp, got {method!r}")
    r_in = check_returns(returns)
    xp = get_namespace(r_in)
    r = np.ascontiguousarray(to_numpy(r_in), dtype=np.float64)
    B, n = r.shape
    has_mu = mean == "constant"
    e0 = _start_resid(r, mean)
    bc = backcast(e0)
    vb = np.ascontiguousarray(variance_bounds(e0))
    names = param_names(o, mean)
    k = len(names)
    P = np.empty((B, k))
    ok = np.zeros(B, dtype=bool)
    ll = np.empty(B)
    # constraints as in arch: A theta >= b (theta without mu)
    j = 1 if has_mu else 0
    A = np.zeros((2, k))
    A[0, j + 1] = 1.0  # alpha (+ gamma) >= 0
    if o:
        A[0, j + 2] = 1.0
    A[1, j + 1] = -1.0  # 1 - alpha - gamma/2 - beta >= 0
    if o:
        A[1, j + 2] = -0.5
    A[1, j + 2 + o] = -1.0
    bvec = np.array([0.0, -1.0])
    cons = {"type": "ineq", "fun": lambda th: A @ th - bvec, "jac": lambda th: A}

    def scales(v: float) -> np.ndarray:  # typical magnitudes for finite-difference steps
        sc = [math.sqrt(v) * 1e-2] if has_mu else []
        return np.array(sc + [v * 1e-2] + [1e-2] * (2 + o))

    n_newton = 0
    for b in range(B):
        y = r[b]
        lo, hi = vb[b, :, 0].copy(), vb[b, :, 1].copy()
        v = float(np.mean(e0[b] ** 2))
        bounds = [(-np.inf, np.inf)] if has_mu else []
        bounds += [(1e-8 * v, 10.0 * v), (0.0, 1.0)] + ([(-1.0, 2.0)] if o else []) + [(0.0, 1.0)]
        starts = _starting_values(e0[b], o, has_mu, float(np.mean(y)), float(bc[b]), lo, hi)
        g = np.empty(k)

        def fun(th, y=y, lo=lo, hi=hi, bcb=float(bc[b]), g=g):
            f = _nll_grad(th, y, o, has_mu, bcb, lo, hi, g)
            return f, g.copy()

        if method == "newton":
            lb = np.array([bd[0] for bd in bounds])
            ub = np.array([bd[1] for bd in bounds])
            xn = np.empty(k)
            status = _newton(starts[0], y, o, has_mu, float(bc[b]), lo, hi, lb, ub, scales(v), xn)
            if status == 0 and not _on_boundary(xn, j, o):
                P[b] = xn
                ok[b] = True
                ll[b] = -n * fun(xn)[0]
                n_newton += 1
                continue
        best = None
        for attempt, x0 in enumerate(starts[: 1 + RESTARTS]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = minimize(
                    fun,
                    x0,
                    jac=True,
                    method="SLSQP",
                    bounds=bounds,
                    constraints=[cons],
                    options={"ftol": tol, "maxiter": max_iter},
                )
            if best is None or (res.success, -res.fun) > (best.success, -best.fun):
                best = res
            if attempt == 0 and res.success and not _on_boundary(res.x, j, o):
                break  # interior optimum from arch's own start: done
        P[b] = best.x
        ok[b] = bool(best.success)
        ll[b] = -n * float(best.fun)
    s2 = _variance_numpy(P, r, o, mean, bc, vb)
    resid = r - (P[:, :1] if has_mu else 0.0)

    def back(a):
        return as_float(a, xp, r_in)

    return GarchFit(
        params=back(P),
        names=names,
        loglik=back(ll),
        sigma2=back(s2),
        resid=back(resid),
        backcast=back(bc),
        converged=xp.asarray(ok, device=device_of(r_in)),
        o=o,
        mean=mean,
        extra={
            "engine": ("numba" if _numba_enabled() else "python") + f"+{method}",
            "newton_converged": n_newton,
        },
    )


def gjr_garch_fit(returns: Any, mean: str = "constant", **options: Any) -> GarchFit:
    """:func:`garch_fit` with ``o=1`` (GJR-GARCH(1,1,1))."""
    return garch_fit(returns, o=1, mean=mean, **options)


# --------------------------------------------------------------------------- forecasts


def variance_forecast(fit: GarchFit, horizon: int) -> Any:
    """Conditional variance forecasts ``sigma2_{n+h}``, ``h = 1..horizon``, shape (B, h).

    Closed form: ``s1 = omega + (alpha + gamma 1[e_n < 0]) e_n^2 + beta sigma2_n``; then with
    persistence ``rho = alpha + gamma / 2 + beta`` (``E[1[e<0] e^2] = sigma2 / 2`` for
    symmetric errors), ``sigma2_{n+h} = vbar + rho^(h-1) (s1 - vbar)``, ``vbar = omega /
    (1 - rho)``; for ``rho = 1``, ``s1 + (h - 1) omega``. The same numbers as arch's
    analytic forecasts.
    """
    horizon = check_horizon(horizon)
    xp = get_namespace(fit.params)
    P = fit.params
    j = 1 if fit.mean == "constant" else 0
    omega, alpha, beta = P[:, j], P[:, j + 1], P[:, j + 2 + fit.o]
    gamma = P[:, j + 2] if fit.o else 0.0 * omega
    e = fit.resid[:, -1]
    s = fit.sigma2[:, -1]
    neg = xp.where(e < 0, e**2, 0.0 * e)
    s1 = omega + alpha * e**2 + gamma * neg + beta * s
    rho = alpha + gamma / 2.0 + beta
    h = as_float(np.arange(horizon, dtype=np.float64), xp, P)[None, :]  # h - 1
    unit = xp.abs(1.0 - rho) < 1e-12
    safe = xp.where(unit, 0.5 + 0.0 * rho, 1.0 - rho)
    vbar = omega / safe
    mean_rev = vbar[:, None] + rho[:, None] ** h * (s1 - vbar)[:, None]
    linear = s1[:, None] + h * omega[:, None]
    return xp.where(unit[:, None], linear, mean_rev)


def garch_forecast(
    returns: Any, horizon: int, o: int = 0, mean: str = "constant"
) -> tuple[GarchFit, Any, Any]:
    """Fit and forecast: ``(fit, mean (B, h), variance (B, h))``; the mean forecast is
    ``mu`` (constant) or 0 at every step."""
    fit = garch_fit(returns, o=o, mean=mean)
    var = variance_forecast(fit, horizon)
    xp = get_namespace(var)
    mu = fit.params[:, 0:1] if mean == "constant" else 0.0 * var[:, :1]
    return fit, mu * xp.ones_like(var), var


@warmer
def _warm() -> None:
    """Compile the GARCH and GJR-GARCH likelihood and Newton kernels (a small batch)."""
    r = np.random.default_rng(0).standard_normal((2, 200))
    garch_fit(r, o=0)
    garch_fit(r, o=1)
