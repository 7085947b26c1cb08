"""Portfolio objectives on the batched QP solver: one call solves one portfolio, B portfolios or
a whole efficient frontier.

Units: ``mu`` are annual expected returns (fractions), ``cov`` annual covariances, so
``volatility`` is annual and ``sharpe = (expected_return - risk_free_rate) / volatility`` is
of ordinary size.

Objectives (:data:`OBJECTIVES`): ``max_sharpe`` (homogenised: ``min y'Σy`` s.t.
``(mu - rf)'y = 1`` with every linear constraint scaled by ``kappa = sum y``, then
``w = y / kappa``), ``min_volatility``, ``target_return`` (``mu'w >= r``, the
PyPortfolioOpt ``efficient_return``), ``target_volatility`` (max return with volatility
``<= sigma``, found by a batched search over the risk-aversion), ``max_quadratic_utility``
(``mu'w - risk_aversion/2 w'Σw``), ``risk_parity`` (equal or budgeted risk contributions,
batched Newton), ``hrp`` (see :mod:`prism_kernels.finance.hrp`), ``min_cvar`` (scenario
LP, see :func:`min_cvar`).

``max_return`` (the highest return the constraints allow: a linear program; with a
``max_total_risk`` cap, the highest return within it, on the frontier at the cap).

Infeasible constraint sets raise :class:`prism_kernels.errors.Infeasible` naming the field; a
singular or non-positive-semi-definite covariance is rejected with
:class:`~prism_kernels.errors.InvalidInput` naming ``cov`` (the one rule of
:func:`prism_kernels.finance.estimators.check_covariance`), never silently regularised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import Infeasible, InvalidInput
from prism_kernels.finance.constraints import (
    LinearSystem,
    PortfolioConstraints,
    check_feasible,
    linprog_box,
)
from prism_kernels.finance.estimators import check_covariance, sample_cov
from prism_kernels.finance.hrp import hrp_weights
from prism_kernels.finance.optimize.qp import solve_qp
from prism_kernels.names import snake_case

OBJECTIVES = (
    "max_sharpe",
    "min_volatility",
    "target_return",
    "target_volatility",
    "max_quadratic_utility",
    "max_return",
    "risk_parity",
    "hrp",
    "min_cvar",
)


def normalize_objective(name: str) -> str:
    """The objective's name in snake_case (``"MinVolatility"`` -> ``"min_volatility"``), checked
    against :data:`OBJECTIVES`. Other names clients use (``"maximize_sharpe"``...) are the REST
    layer's to translate."""
    key = snake_case(str(name))
    if key not in OBJECTIVES:
        raise InvalidInput(
            "objective", f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}"
        )
    return key


@dataclass
class PortfolioResult:
    """Optimal portfolio(s). Arrays live on the input backend.

    ``weights`` ``(n,)`` (or ``(B, n)`` for a batch); ``expected_return`` (annual),
    ``volatility`` (annual), ``sharpe`` scalars (or ``(B,)``); ``risk_contributions``
    ``w_i (Σw)_i / volatility``, which sum to the volatility; ``converged`` bool (or
    ``(B,)``); ``iterations`` solver iterations; ``info`` objective-specific extras
    (``risk_capped``, ``cvar``...).
    """

    objective: str
    weights: Any
    expected_return: Any
    volatility: Any
    sharpe: Any
    risk_contributions: Any
    converged: Any
    iterations: Any
    risk_free_rate: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, symbols: list[str] | None = None) -> dict[str, Any]:
        """Plain Python values (lists and floats), for JSON."""

        def py(v: Any) -> Any:
            a = to_numpy(v)
            return a.tolist() if getattr(a, "ndim", 0) else a.item() if hasattr(a, "item") else v

        d = {
            "objective": self.objective,
            "weights": py(self.weights),
            "expected_return": py(self.expected_return),
            "volatility": py(self.volatility),
            "sharpe": py(self.sharpe),
            "risk_contributions": py(self.risk_contributions),
            "converged": py(self.converged),
            "iterations": py(self.iterations),
            "risk_free_rate": float(self.risk_free_rate),
        }
        if symbols is not None and np.ndim(d["weights"]) == 1:
            d["weights_by_symbol"] = dict(zip(symbols, d["weights"], strict=True))
        d.update({k: py(v) if hasattr(v, "shape") else v for k, v in self.info.items()})
        return d


@dataclass
class FrontierResult:
    """An efficient frontier: ``returns``, ``volatilities``, ``sharpe`` ``(points,)`` and
    ``weights`` ``(points, n)`` on the input backend."""

    returns: Any
    volatilities: Any
    sharpe: Any
    weights: Any
    converged: Any
    risk_free_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "returns": to_numpy(self.returns).tolist(),
            "volatilities": to_numpy(self.volatilities).tolist(),
            "sharpe": to_numpy(self.sharpe).tolist(),
            "weights": to_numpy(self.weights).tolist(),
            "converged": to_numpy(self.converged).tolist(),
            "risk_free_rate": float(self.risk_free_rate),
        }


# ----------------------------------------------------------------------------- validation


def validate_inputs(mu: Any, cov: Any, need_mu: bool = True) -> tuple[Any, Any, Any, bool]:
    """Check and batch ``mu`` ``(n,)|(B, n)`` and ``cov`` ``(n, n)|(B, n, n)``.

    The covariance goes through :func:`~prism_kernels.finance.estimators.check_covariance`
    (symmetric, positive definite; a singular one is rejected naming ``cov``).

    Returns ``(xp, mu (B, n), cov (B|1, n, n), batched)``.
    """
    if cov is None:
        raise InvalidInput("cov", "a covariance matrix is required")
    xp = get_namespace(cov) if mu is None else get_namespace(mu, cov)
    cov = xp.asarray(cov, dtype=xp.float64)
    dev = cov.device
    if cov.ndim not in (2, 3) or cov.shape[-1] != cov.shape[-2] or cov.shape[-1] < 1:
        raise InvalidInput(
            "cov", f"expected an (n, n) or (B, n, n) matrix, got shape {tuple(cov.shape)}"
        )
    n = cov.shape[-1]
    if mu is None:
        if need_mu:
            raise InvalidInput(
                "expected_returns", "expected returns are required for this objective"
            )
        mu = xp.zeros(cov.shape[:-1], dtype=xp.float64, device=dev)
    mu = xp.asarray(mu, dtype=xp.float64, device=dev)
    if mu.ndim not in (1, 2) or mu.shape[-1] != n:
        raise InvalidInput(
            "expected_returns",
            f"expected {n} values (one per covariance column), got shape {tuple(mu.shape)}",
        )
    if not bool(xp.all(xp.isfinite(mu))):
        raise InvalidInput("expected_returns", "contains NaN or infinite values")
    batched = mu.ndim == 2 or cov.ndim == 3
    B = max(mu.shape[0] if mu.ndim == 2 else 1, cov.shape[0] if cov.ndim == 3 else 1)
    if mu.ndim == 2 and cov.ndim == 3 and mu.shape[0] != cov.shape[0]:
        raise InvalidInput(
            "cov", f"batch of {cov.shape[0]} covariances for {mu.shape[0]} return vectors"
        )
    mu = xp.asarray(xp.broadcast_to(mu, (B, n)), copy=True)
    cov = check_covariance(cov[None] if cov.ndim == 2 else cov, "cov")  # (1, n, n) when shared
    return xp, mu, cov, batched


def _per_problem(xp: Any, v: Any, B: int, name: str, dev: Any) -> Any:
    a = xp.asarray(v, dtype=xp.float64, device=dev)
    if a.ndim == 0:
        a = xp.full((B,), float(a), dtype=xp.float64, device=dev)
    if a.ndim != 1 or a.shape[0] not in (1, B):
        raise InvalidInput(name, f"expected a scalar or {B} values, got shape {tuple(a.shape)}")
    if not bool(xp.all(xp.isfinite(a))):
        raise InvalidInput(name, "contains NaN or infinite values")
    return xp.asarray(xp.broadcast_to(a, (B,)), copy=True)


# ----------------------------------------------------------------------------- helpers


def _pad(xp: Any, a: Any, N: int) -> Any:
    """Pad the last axis of ``a`` with zeros to length N (lifted turnover variables)."""
    n = a.shape[-1]
    if N == n:
        return a
    z = xp.zeros(a.shape[:-1] + (N - n,), dtype=a.dtype, device=a.device)
    return xp.concat([a, z], axis=-1)


def _lift_P(xp: Any, cov: Any, N: int) -> Any:
    B, n, _ = cov.shape
    if N == n:
        return cov
    P = xp.zeros((B, N, N), dtype=xp.float64, device=cov.device)
    top = xp.concat([cov, xp.zeros((B, n, N - n), dtype=xp.float64, device=cov.device)], axis=-1)
    return xp.concat([top, P[:, n:, :]], axis=-2)


def _stats(xp: Any, w: Any, mu: Any, cov: Any, rf: float) -> tuple[Any, Any, Any, Any]:
    Sw = (cov @ w[..., None])[..., 0]
    var = xp.sum(w * Sw, axis=-1)
    vol = xp.sqrt(xp.maximum(var, xp.zeros_like(var)))
    ret = xp.sum(w * mu, axis=-1)
    safe = xp.where(vol > 0, vol, xp.ones_like(vol))
    sharpe = xp.where(vol > 0, (ret - rf) / safe, xp.zeros_like(vol))
    rc = w * Sw / safe[..., None]
    return ret, vol, sharpe, rc


def _result(
    objective: str,
    xp: Any,
    w: Any,
    mu: Any,
    cov: Any,
    rf: float,
    converged: Any,
    iterations: Any,
    batched: bool,
    info: dict | None = None,
) -> PortfolioResult:
    ret, vol, sharpe, rc = _stats(xp, w, mu, cov, rf)
    if not batched:
        w, ret, vol, sharpe, rc = w[0], ret[0], vol[0], sharpe[0], rc[0]
        converged = bool(converged[0])
        iterations = int(iterations[0])
    return PortfolioResult(
        objective, w, ret, vol, sharpe, rc, converged, iterations, rf, info or {}
    )


def _mv_qp(xp: Any, cov: Any, q: Any, ls: LinearSystem, extra: tuple | None = None) -> Any:
    """Solve ``min 0.5 x'P x + q'x`` over the (lifted) linear system ``ls``, batched.

    ``cov`` ``(B, n, n)`` or ``(1, n, n)`` (shared by the batch), ``q`` ``(B, N)``;
    ``extra`` = (G (B|1, k, N), L (B, k), U (B, k)) rows added to ``ls``. When the covariance
    and the rows are shared, the solver factorises once for the whole batch.
    """
    B = q.shape[0]
    dev = cov.device
    N = ls.lb.size
    shared = cov.shape[0] == 1 and (extra is None or extra[0].shape[0] == 1)
    Bm = 1 if shared else B
    P = _lift_P(xp, cov, N)
    if not shared and P.shape[0] != B:
        P = xp.broadcast_to(P, (B, N, N))
    G = xp.broadcast_to(xp.asarray(ls.G, dtype=xp.float64, device=dev), (Bm,) + ls.G.shape)
    L = xp.broadcast_to(xp.asarray(ls.L, dtype=xp.float64, device=dev), (B, ls.L.size))
    U = xp.broadcast_to(xp.asarray(ls.U, dtype=xp.float64, device=dev), (B, ls.U.size))
    if extra is not None:
        Ge = (
            extra[0]
            if extra[0].shape[0] == Bm
            else xp.broadcast_to(extra[0], (Bm,) + tuple(extra[0].shape[1:]))
        )
        G = xp.concat([G, Ge], axis=-2)
        L = xp.concat([L, extra[1]], axis=-1)
        U = xp.concat([U, extra[2]], axis=-1)
    if shared:
        P, G = P[0], G[0]
    lb = xp.asarray(ls.lb, dtype=xp.float64, device=dev)
    ub = xp.asarray(ls.ub, dtype=xp.float64, device=dev)
    return solve_qp(P, q, lb, ub, G, L, U)


def _return_range(mu_np: np.ndarray, ls: LinearSystem) -> tuple[np.ndarray, np.ndarray]:
    """Min and max achievable ``mu'w`` per problem (host LPs, one per distinct ``mu``)."""
    N = ls.lb.size
    uniq, inv = np.unique(mu_np, axis=0, return_inverse=True)
    lo, hi = [], []
    if (
        ls.rows == ["budget"]
        and N == mu_np.shape[1]
        and np.all(np.isfinite(ls.lb))
        and np.all(np.isfinite(ls.ub))
    ):
        # bounds and budget only: greedy closed form (start at the lower bounds, fill the best first)
        for m in uniq:
            for sign, out in ((-1.0, hi), (1.0, lo)):
                order = np.argsort(sign * m, kind="stable")
                w = ls.lb.copy()
                room = 1.0 - w.sum()
                for j in order:
                    add = min(ls.ub[j] - ls.lb[j], room)
                    w[j] += add
                    room -= add
                    if room <= 0:
                        break
                out.append(float(m @ w))
        inv = np.asarray(inv).reshape(-1)
        return np.asarray(lo)[inv], np.asarray(hi)[inv]
    for m in uniq:
        c = np.concatenate([m, np.zeros(N - m.size)])
        _, _, vmax = linprog_box(-c, ls.lb, ls.ub, ls.G, ls.L, ls.U)
        _, _, vmin = linprog_box(c, ls.lb, ls.ub, ls.G, ls.L, ls.U)
        hi.append(-vmax)
        lo.append(vmin)
    inv = np.asarray(inv).reshape(-1)
    return np.asarray(lo)[inv], np.asarray(hi)[inv]


# ----------------------------------------------------------------------------- objectives


def _min_vol(xp: Any, mu: Any, cov: Any, ls: LinearSystem) -> tuple[Any, Any, Any]:
    B = mu.shape[0]
    q = xp.zeros((B, ls.lb.size), dtype=xp.float64, device=cov.device)
    s = _mv_qp(xp, cov, q, ls)
    return s.x[:, : mu.shape[1]], s.converged, s.iterations


def _target_return(xp: Any, mu: Any, cov: Any, ls: LinearSystem, r: Any) -> tuple[Any, Any, Any]:
    B = r.shape[0]
    n = mu.shape[1]
    N = ls.lb.size
    dev = cov.device
    _, hi = _return_range(to_numpy(mu), ls)
    r_np = to_numpy(r)
    hi = np.array(np.broadcast_to(hi, r_np.shape))
    bad = np.nonzero(r_np > hi + 1e-9 * np.maximum(1.0, np.abs(hi)))[0]
    if bad.size:
        raise Infeasible(
            "target_return",
            f"target return {r_np[bad[0]]:.6g} is above the maximum achievable {hi[bad[0]]:.6g} under the constraints",
        )
    r = xp.minimum(r, xp.asarray(hi, dtype=xp.float64, device=dev))
    G = _pad(xp, mu, N)[:, None, :]
    inf = xp.full((B, 1), float("inf"), dtype=xp.float64, device=dev)
    q = xp.zeros((B, N), dtype=xp.float64, device=dev)
    s = _mv_qp(xp, cov, q, ls, (G, r[:, None], inf))
    return s.x[:, :n], s.converged, s.iterations


def _utility(xp: Any, mu: Any, cov: Any, ls: LinearSystem, delta: Any) -> tuple[Any, Any, Any]:
    """``max mu'w - delta/2 w'Σw`` solved as ``min 0.5 w'Σw - (1/delta) mu'w``."""
    n = mu.shape[1]
    q = -_pad(xp, mu, ls.lb.size) / delta[:, None]
    s = _mv_qp(xp, cov, q, ls)
    return s.x[:, :n], s.converged, s.iterations


def _max_sharpe(xp: Any, mu: Any, cov: Any, ls: LinearSystem, rf: float) -> tuple[Any, Any, Any]:
    """Homogenised max-Sharpe: variables (y, kappa), every linear constraint scaled by kappa."""
    B, n = mu.shape
    dev = cov.device
    N = ls.lb.size
    _, hi = _return_range(to_numpy(mu), ls)
    if np.any(hi <= rf + 1e-12):
        b = int(np.argmax(hi <= rf + 1e-12))
        raise Infeasible(
            "expected_returns",
            f"no feasible portfolio earns more than the risk-free rate {rf} (best {hi[b]:.6g}): "
            "the maximum Sharpe ratio is undefined",
        )
    short = bool(np.any(ls.lb[:n] < 0))
    rows, Lr, Ur = [], [], []
    for g, lo, up in zip(ls.G, ls.L, ls.U, strict=True):
        if lo == up:
            rows.append(np.append(g, -lo))
            Lr.append(0.0)
            Ur.append(0.0)
            continue
        if np.isfinite(lo):
            rows.append(np.append(g, -lo))
            Lr.append(0.0)
            Ur.append(np.inf)
        if np.isfinite(up):
            rows.append(np.append(g, -up))
            Lr.append(-np.inf)
            Ur.append(0.0)
    vlb = np.full(N + 1, -np.inf)
    vub = np.full(N + 1, np.inf)
    vlb[N] = 0.0
    for j in range(N):
        if ls.lb[j] == 0.0:
            vlb[j] = 0.0
        elif np.isfinite(ls.lb[j]):
            e = np.zeros(N + 1)
            e[j], e[N] = 1.0, -ls.lb[j]
            rows.append(e)
            Lr.append(0.0)
            Ur.append(np.inf)
        if np.isfinite(ls.ub[j]) and not (j < n and not short and ls.ub[j] >= 1.0):
            e = np.zeros(N + 1)
            e[j], e[N] = 1.0, -ls.ub[j]
            rows.append(e)
            Lr.append(-np.inf)
            Ur.append(0.0)
    Gh = xp.broadcast_to(
        xp.asarray(np.vstack(rows), dtype=xp.float64, device=dev), (B, len(rows), N + 1)
    )
    ex = _pad(xp, mu - rf, N + 1)[:, None, :]
    G = xp.concat([ex, Gh], axis=-2)
    one = xp.ones((B, 1), dtype=xp.float64, device=dev)
    L = xp.concat(
        [one, xp.broadcast_to(xp.asarray(Lr, dtype=xp.float64, device=dev), (B, len(Lr)))], axis=-1
    )
    U = xp.concat(
        [one, xp.broadcast_to(xp.asarray(Ur, dtype=xp.float64, device=dev), (B, len(Ur)))], axis=-1
    )
    P = _lift_P(xp, cov, N + 1)
    q = xp.zeros((B, N + 1), dtype=xp.float64, device=dev)
    s = solve_qp(P, q, xp.asarray(vlb, device=dev), xp.asarray(vub, device=dev), G, L, U)
    kappa = s.x[:, N]
    w = s.x[:, :n] / kappa[:, None]
    return w, s.converged, s.iterations


def _max_return(xp: Any, mu: Any, ls: LinearSystem) -> tuple[Any, Any, Any]:
    """The highest ``mu'w`` the linear constraints allow: one host LP per distinct ``mu``
    (HiGHS; the optimum is a vertex, so there is no QP to solve)."""
    B, n = mu.shape
    N = ls.lb.size
    mu_np = to_numpy(mu)
    uniq, inv = np.unique(mu_np, axis=0, return_inverse=True)
    sols = []
    for m in uniq:
        _, x, _ = linprog_box(np.concatenate([-m, np.zeros(N - n)]), ls.lb, ls.ub, ls.G, ls.L, ls.U)
        if x is None:
            raise InvalidInput("constraints", "the return is unbounded: give finite weight bounds")
        sols.append(x[:n])
    w = np.asarray(sols)[np.asarray(inv).reshape(-1)]
    dev = mu.device
    return (
        xp.asarray(w, dtype=xp.float64, device=dev),
        xp.ones((B,), dtype=xp.bool, device=dev),
        xp.zeros((B,), dtype=xp.int64, device=dev),
    )


def _target_vol(
    xp: Any,
    mu: Any,
    cov: Any,
    ls: LinearSystem,
    sigma: Any,
    field_: str,
    rounds: int = 4,
    G: int = 16,
) -> tuple[Any, Any, Any]:
    """Max return with volatility <= sigma: a batched search over ``t`` in
    ``min 0.5 w'Σw - t mu'w`` (volatility grows with t), then exact interpolation inside the
    final bracket, where the weights are affine in t."""
    B, n = mu.shape
    dev = cov.device
    N = ls.lb.size
    sig = to_numpy(sigma)
    w0, conv0, it0 = _min_vol(xp, mu, cov, ls)
    v0 = to_numpy(_stats(xp, w0, mu, cov, 0.0)[1])
    bad = np.nonzero(v0 > sig * (1 + 1e-9) + 1e-12)[0]
    if bad.size:
        raise Infeasible(
            field_,
            f"volatility {sig[bad[0]]:.6g} is below the minimum achievable {v0[bad[0]]:.6g} under the constraints",
        )
    cov_np = to_numpy(cov)
    mu_np = to_numpy(mu)
    cov_np = np.broadcast_to(cov_np, (B, n, n))
    scale = np.mean(np.diagonal(cov_np, axis1=1, axis2=2), axis=1) / np.maximum(
        np.max(np.abs(mu_np), axis=1), 1e-12
    )
    grid0 = np.concatenate([[0.0], np.logspace(-6, 6, 4 * G + 1)])
    t_lo = np.zeros(B)
    t_hi = np.zeros(B)
    w_lo = to_numpy(w0)
    w_hi = np.zeros_like(w_lo)
    conv = to_numpy(conv0).copy()
    iters = to_numpy(it0).copy()
    capped = np.zeros(B, bool)

    def solve_grid(tgrid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        k = tgrid.shape[1]
        if cov.shape[0] == 1:
            covk = cov
        else:
            covk = xp.reshape(xp.broadcast_to(cov[:, None], (B, k, n, n)), (B * k, n, n))
        muk = xp.reshape(xp.broadcast_to(mu[:, None], (B, k, n)), (B * k, n))
        t = xp.asarray(tgrid.reshape(-1), dtype=xp.float64, device=dev)
        q = -_pad(xp, muk, N) * t[:, None]
        s = _mv_qp(xp, covk, q, ls)
        w = s.x[:, :n]
        vol = to_numpy(_stats(xp, w, muk, covk, 0.0)[1]).reshape(B, k)
        return (
            to_numpy(w).reshape(B, k, n),
            vol,
            to_numpy(s.converged).reshape(B, k),
            to_numpy(s.iterations).reshape(B, k),
        )

    tg = grid0[None, :] * scale[:, None]
    for rnd in range(rounds + 1):
        W, V, C, It = solve_grid(tg)
        iters = iters + It.max(axis=1)
        for b in range(B):
            below = np.nonzero(V[b] <= sig[b])[0]
            i = int(below[-1]) if below.size else 0
            if i == tg.shape[1] - 1:
                if rnd == 0:  # even the largest t stays inside the cap: the cap does not bind
                    capped[b] = True
                    w_lo[b] = w_hi[b] = W[b, i]
                    t_lo[b] = t_hi[b] = tg[b, i]
                    conv[b] &= C[b, i]
                continue
            t_lo[b], t_hi[b] = tg[b, i], tg[b, i + 1]
            w_lo[b], w_hi[b] = W[b, i], W[b, i + 1]
            conv[b] &= C[b, i] & C[b, i + 1]
        if rnd < rounds:
            tg = np.linspace(t_lo, t_hi, G).T
    out = w_lo.copy()
    for b in range(B):
        if capped[b]:
            continue
        d = w_hi[b] - w_lo[b]
        S = cov_np[b]
        a2 = d @ S @ d
        a1 = 2 * w_lo[b] @ S @ d
        a0 = w_lo[b] @ S @ w_lo[b] - sig[b] ** 2
        if a2 <= 0:
            continue
        disc = max(a1 * a1 - 4 * a2 * a0, 0.0)
        s_ = min(max((-a1 + np.sqrt(disc)) / (2 * a2), 0.0), 1.0)
        out[b] = w_lo[b] + s_ * d
    return (
        xp.asarray(out, dtype=xp.float64, device=dev),
        xp.asarray(conv, device=dev),
        xp.asarray(iters, device=dev),
    )


def risk_parity_weights(
    cov: Any, budgets: Any = None, tol: float = 1e-14, max_iter: int = 200
) -> tuple[Any, Any, Any]:
    """Long-only risk parity: ``w_i (Σw)_i / w'Σw = b_i`` (equal risk contributions by default).

    Batched damped Newton on the strictly convex ``0.5 x'Σx - sum b_i log x_i`` (Spinu 2013),
    then ``w = x / sum x``. ``cov`` ``(B, n, n)``, ``budgets`` ``(n,)`` or ``(B, n)``, positive.
    Returns ``(w (B, n), converged (B,), iterations (B,))``.
    """
    xp = get_namespace(cov)
    B, n, _ = cov.shape
    dev = cov.device
    if budgets is None:
        b = xp.full((B, n), 1.0 / n, dtype=xp.float64, device=dev)
    else:
        b = xp.asarray(budgets, dtype=xp.float64, device=dev)
        if b.shape[-1] != n or b.ndim > 2:
            raise InvalidInput("budgets", f"expected {n} risk budgets, got shape {tuple(b.shape)}")
        if not bool(xp.all(xp.isfinite(b))) or not bool(xp.all(b > 0)):
            raise InvalidInput("budgets", "risk budgets must be finite and > 0")
        b = xp.asarray(xp.broadcast_to(b, (B, n)), copy=True)
        b = b / xp.sum(b, axis=-1, keepdims=True)
    d = xp.sqrt(xp.linalg.diagonal(cov))
    S = cov / (d[:, :, None] * d[:, None, :])  # correlation: scale-free Newton
    x = xp.sqrt(b) / xp.sqrt(
        xp.sum(b * (S @ xp.sqrt(b)[..., None])[..., 0], axis=-1, keepdims=True)
    )

    def f(z: Any) -> Any:
        return 0.5 * xp.sum(z * (S @ z[..., None])[..., 0], axis=-1) - xp.sum(
            b * xp.log(z), axis=-1
        )

    conv = xp.zeros((B,), dtype=xp.bool, device=dev)
    iters = xp.zeros((B,), dtype=xp.int64, device=dev)
    eye = xp.eye(n, dtype=xp.float64, device=dev)
    for _ in range(max_iter):
        g = (S @ x[..., None])[..., 0] - b / x
        gn = xp.max(xp.abs(g * x), axis=-1)
        conv = gn <= tol * 10
        if bool(xp.all(conv)):
            break
        H = S + eye * (b / x**2)[:, None, :]
        dx = -xp.linalg.solve(H, g[..., None])[..., 0]
        # largest step keeping x > 0, then backtracking on f
        ratio = xp.where(
            dx < 0, -x / xp.where(dx < 0, dx, -xp.ones_like(dx)), xp.full_like(dx, float("inf"))
        )
        step = xp.minimum(
            xp.ones((B,), dtype=xp.float64, device=dev), 0.99 * xp.min(ratio, axis=-1)
        )
        f0 = f(x)
        for _ls in range(30):
            xn = x + step[:, None] * dx
            ok = f(xn) <= f0 + 1e-14 * xp.abs(f0)
            if bool(xp.all(ok | conv)):
                break
            step = xp.where(ok | conv, step, step / 2)
        x = xp.where(conv[:, None], x, x + step[:, None] * dx)
        iters = xp.where(conv, iters, iters + 1)
    x = x / d
    return x / xp.sum(x, axis=-1, keepdims=True), conv, iters


def min_cvar(
    scenarios: Any,
    constraints: PortfolioConstraints | dict | None = None,
    beta: float = 0.95,
    target_return: float | None = None,
    expected_returns: Any = None,
) -> tuple[np.ndarray, float]:
    """Minimum-CVaR weights on return scenarios ``(T, n)`` (Rockafellar-Uryasev LP).

    ``min alpha + 1/((1-beta) T) sum_t max(0, -r_t'w - alpha)`` over the constraint set,
    optionally with ``mu'w >= target_return``. Solved with ``scipy.optimize.linprog``
    (HiGHS) on the host: there is no array-API LP solver, so this is an edge copy.

    Returns ``(w (n,), cvar)``, CVaR as a positive loss per scenario period.
    """
    R = to_numpy(scenarios).astype(float)
    if R.ndim != 2 or R.shape[0] < 2:
        raise InvalidInput("scenarios", f"expected a (T, n) array with T >= 2, got shape {R.shape}")
    if not np.all(np.isfinite(R)):
        raise InvalidInput("scenarios", "contains NaN or infinite values")
    if not 0 < beta < 1:
        raise InvalidInput("beta", "beta must be in (0, 1)")
    T, n = R.shape
    c = (
        PortfolioConstraints.from_dict(constraints)
        if not isinstance(constraints, PortfolioConstraints)
        else constraints
    )
    ls = check_feasible(c, n)
    N = ls.lb.size
    # variables: x (N), alpha, u (T)
    nv = N + 1 + T
    Rp = np.hstack([R, np.zeros((T, N - n))])
    G = [
        np.hstack([ls.G, np.zeros((ls.G.shape[0], 1 + T))]),
        np.hstack([-Rp, -np.ones((T, 1)), -np.eye(T)]),
    ]
    L = [ls.L, np.full(T, -np.inf)]
    U = [ls.U, np.zeros(T)]
    if target_return is not None:
        mu = to_numpy(expected_returns if expected_returns is not None else R.mean(axis=0)).astype(
            float
        )
        _, hi = _return_range(mu[None], ls)
        if target_return > hi[0] + 1e-9:
            raise Infeasible(
                "target_return", f"target return {target_return} is above the maximum {hi[0]:.6g}"
            )
        G.append(np.concatenate([mu, np.zeros(nv - n)])[None])
        L.append([target_return])
        U.append([np.inf])
    cost = np.concatenate([np.zeros(N), [1.0], np.full(T, 1.0 / ((1 - beta) * T))])
    lb = np.concatenate([ls.lb, [-np.inf], np.zeros(T)])
    ub = np.concatenate([ls.ub, [np.inf], np.full(T, np.inf)])
    feas, x, val = linprog_box(cost, lb, ub, np.vstack(G), np.concatenate(L), np.concatenate(U))
    if not feas or x is None:
        raise Infeasible("constraints", "the CVaR problem has no solution")
    return x[:n], float(val)


# ----------------------------------------------------------------------------- public API


def optimize(
    expected_returns: Any,
    cov: Any,
    objective: str = "max_sharpe",
    constraints: PortfolioConstraints | dict | None = None,
    *,
    risk_free_rate: float = 0.0,
    target_return: Any = None,
    target_volatility: Any = None,
    risk_aversion: Any = 1.0,
    budgets: Any = None,
    returns: Any = None,
    scenarios: Any = None,
    beta: float = 0.95,
) -> PortfolioResult:
    """Optimal weights for one portfolio or a batch of B portfolios in one call.

    Parameters
    ----------
    expected_returns : ``(n,)`` or ``(B, n)`` annual expected returns (may be None for
        ``min_volatility``, ``risk_parity`` and ``hrp``).
    cov : ``(n, n)`` or ``(B, n, n)`` annual covariance.
    objective : one of :data:`OBJECTIVES`, in snake_case or PascalCase (``"MinVolatility"``).
    constraints : :class:`PortfolioConstraints` or a dict for it (shared by the batch).
    target_return, target_volatility, risk_aversion : scalar or ``(B,)``.
    budgets : risk budgets for ``risk_parity``.
    returns : ``(T, n)`` period returns for ``hrp`` (else HRP clusters the covariance's correlation).
    scenarios : ``(T, n)`` return scenarios for ``min_cvar`` (default: ``returns``).

    Raises
    ------
    InvalidInput
        Bad shapes or values (the field is named).
    Infeasible
        Constraints that no portfolio satisfies, a target above the achievable, no asset
        above the risk-free rate for ``max_sharpe``.
    """
    obj = normalize_objective(objective)
    c = PortfolioConstraints.from_dict(constraints)
    rf = float(risk_free_rate)
    if not np.isfinite(rf):
        raise InvalidInput("risk_free_rate", "must be finite")
    need_mu = obj in (
        "max_sharpe",
        "target_return",
        "target_volatility",
        "max_quadratic_utility",
        "max_return",
    )
    if obj == "min_cvar":
        sc = scenarios if scenarios is not None else returns
        if sc is None:
            raise InvalidInput("scenarios", "min_cvar needs return scenarios (or returns)")
        w, cv = min_cvar(sc, c, beta, target_return, expected_returns)
        xp = get_namespace(cov) if cov is not None else get_namespace(sc)
        if cov is None:
            cov = sample_cov(xp.asarray(to_numpy(sc)), annualize=True)
        mu = (
            expected_returns
            if expected_returns is not None
            else xp.mean(xp.asarray(to_numpy(sc)), axis=0) * 252
        )
        xp, mu, cov, batched = validate_inputs(mu, cov)
        wx = xp.asarray(w[None], dtype=xp.float64, device=cov.device)
        one = xp.ones((1,), dtype=xp.bool, device=cov.device)
        it = xp.zeros((1,), dtype=xp.int64, device=cov.device)
        return _result(obj, xp, wx, mu, cov, rf, one, it, False, {"cvar": cv, "beta": beta})
    if obj == "hrp":
        if not c.is_default():
            raise InvalidInput(
                "constraints", "hrp takes no constraints (its weights are long-only and sum to 1)"
            )
        xp0 = get_namespace(cov) if cov is not None else get_namespace(returns)
        w_np = hrp_weights(returns=returns, cov=None if returns is not None else cov)
        if cov is None:
            cov = sample_cov(xp0.asarray(to_numpy(returns)))
        xp, mu, cov, batched = validate_inputs(expected_returns, cov, need_mu=False)
        wx = xp.asarray(w_np[None], dtype=xp.float64, device=cov.device)
        one = xp.ones((1,), dtype=xp.bool, device=cov.device)
        it = xp.zeros((1,), dtype=xp.int64, device=cov.device)
        return _result(obj, xp, wx, mu, cov, rf, one, it, False)

    xp, mu, cov, batched = validate_inputs(expected_returns, cov, need_mu=need_mu)
    B, n = mu.shape
    dev = cov.device
    # a vector of targets / risk aversions makes a batch over one (mu, cov)
    param = {"target_return": target_return, "target_volatility": target_volatility}.get(obj)
    if obj == "max_quadratic_utility":
        param = risk_aversion
    psize = int(np.size(to_numpy(param))) if param is not None else 1
    if psize > 1 and B == 1:
        B = psize
        mu = xp.asarray(xp.broadcast_to(mu, (B, n)), copy=True)
        batched = True
    if obj == "risk_parity":
        if not c.is_default():
            raise InvalidInput(
                "constraints", "risk_parity is long-only and takes no other constraints"
            )
        w, conv, it = risk_parity_weights(xp.broadcast_to(cov, (B, n, n)), budgets)
        return _result(obj, xp, w, mu, cov, rf, conv, it, batched)

    ls = check_feasible(c, n)
    cap = c.max_total_risk
    if cap is not None and (not np.isfinite(cap) or cap <= 0):
        raise InvalidInput("constraints.max_total_risk", "must be a positive annual volatility")
    info: dict[str, Any] = {}
    if obj == "min_volatility":
        w, conv, it = _min_vol(xp, mu, cov, ls)
    elif obj == "target_return":
        if target_return is None:
            raise InvalidInput("target_return", "target_return is required for this objective")
        w, conv, it = _target_return(
            xp, mu, cov, ls, _per_problem(xp, target_return, B, "target_return", dev)
        )
    elif obj == "max_quadratic_utility":
        d = _per_problem(xp, risk_aversion, B, "risk_aversion", dev)
        if not bool(xp.all(d > 0)):
            raise InvalidInput("risk_aversion", "risk_aversion must be > 0")
        w, conv, it = _utility(xp, mu, cov, ls, d)
    elif obj == "max_sharpe":
        w, conv, it = _max_sharpe(xp, mu, cov, ls, rf)
    elif obj == "max_return":
        w, conv, it = _max_return(xp, mu, ls)
    else:  # target_volatility
        if target_volatility is None:
            raise InvalidInput(
                "target_volatility", "target_volatility is required for this objective"
            )
        sig = _per_problem(xp, target_volatility, B, "target_volatility", dev)
        if not bool(xp.all(sig > 0)):
            raise InvalidInput("target_volatility", "must be > 0")
        if cap is not None:
            sig = xp.minimum(sig, xp.asarray(float(cap), dtype=xp.float64, device=dev))
        w, conv, it = _target_vol(xp, mu, cov, ls, sig, "target_volatility")
    if cap is not None and obj != "target_volatility":
        vol = to_numpy(_stats(xp, w, mu, cov, rf)[1])
        over = vol > cap * (1 + 1e-9)
        if np.any(over):
            if obj in ("min_volatility", "target_return"):
                what = "minimum" if obj == "min_volatility" else "target-return"
                raise Infeasible(
                    "constraints.max_total_risk",
                    f"the {what} portfolio has volatility {vol[over][0]:.6g} above the cap {cap}",
                )
            # return-seeking objectives: the best portfolio inside the cap lies on the frontier at the cap
            capv = xp.full((B,), float(cap), dtype=xp.float64, device=dev)
            w2, conv2, it2 = _target_vol(xp, mu, cov, ls, capv, "constraints.max_total_risk")
            m = xp.asarray(over, device=dev)
            w = xp.where(m[:, None], w2, w)
            conv = xp.where(m, conv2, conv)
            it = it + it2
            info["risk_capped"] = over.tolist() if batched else bool(over[0])
    return _result(obj, xp, w, mu, cov, rf, conv, it, batched, info)


def efficient_frontier(
    expected_returns: Any,
    cov: Any,
    points: int = 100,
    constraints: PortfolioConstraints | dict | None = None,
    risk_free_rate: float = 0.0,
    target_returns: Any = None,
) -> FrontierResult:
    """The efficient frontier, all points solved in one batched call.

    By default ``points`` target returns evenly spaced from the minimum-volatility
    portfolio's return to 99.9 % of the way to the maximum achievable return; ``target_returns`` ``(P,)`` gives
    them explicitly (each must be achievable). ``expected_returns`` ``(n,)``, ``cov``
    ``(n, n)``. Returns :class:`FrontierResult`.
    """
    c = PortfolioConstraints.from_dict(constraints)
    xp, mu, cov, batched = validate_inputs(expected_returns, cov)
    if batched:
        raise InvalidInput(
            "expected_returns",
            "efficient_frontier takes one (n,) return vector and one (n, n) covariance",
        )
    if c.max_total_risk is not None:
        raise InvalidInput(
            "constraints.max_total_risk",
            "not supported by efficient_frontier: the frontier spans all risks",
        )
    n = mu.shape[1]
    dev = cov.device
    ls = check_feasible(c, n)
    if target_returns is None:
        if not isinstance(points, int) or points < 2:
            raise InvalidInput("points", "points must be an integer >= 2")
        w0, _, _ = _min_vol(xp, mu, cov, ls)
        r0 = float(xp.sum(w0 * mu))
        _, hi = _return_range(to_numpy(mu), ls)
        # the top end stops 0.1 % of the range below the maximum return: at and right next to
        # the maximum the feasible set shrinks to a degenerate vertex, slow for ADMM
        r1 = r0 + (1.0 - 1e-3) * (float(hi[0]) - r0)
        targets = xp.asarray(np.linspace(r0, r1, points), dtype=xp.float64, device=dev)
    else:
        t = to_numpy(target_returns).astype(float).reshape(-1)
        if t.size < 1 or not np.all(np.isfinite(t)):
            raise InvalidInput("target_returns", "expected finite target returns")
        targets = xp.asarray(t, dtype=xp.float64, device=dev)
    w, conv, _ = _target_return(xp, mu, cov, ls, targets)
    ret, vol, sharpe, _ = _stats(xp, w, mu, cov, float(risk_free_rate))
    return FrontierResult(ret, vol, sharpe, w, conv, float(risk_free_rate))
