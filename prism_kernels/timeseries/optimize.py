"""Batched Levenberg-Marquardt: many independent least-squares problems in lock-step.

Each row ``b`` of ``x`` (B, k) is its own problem ``min_x sum_t e_b(x)_t^2``; the Jacobian is
taken by forward differences (all k perturbed points of all rows in one call of the residual function), the damped normal equations of all rows are solved as one
batched ``(B, k, k)`` system, and every row keeps its own damping and stops on its own
(stopped rows are no longer evaluated). Array-API only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace


@dataclass
class LMResult:
    """Solution ``x`` (B, k), final residuals' sum of squares ``cost`` (B,), iterations used
    per row ``n_iter`` (B,), and whether each row met the tolerance ``converged`` (B,)."""

    x: Any
    cost: Any
    n_iter: Any
    converged: Any


def _take(xp: Any, a: Any, idx: Any) -> Any:
    return xp.take(a, idx, axis=0)


def levenberg_marquardt(
    fun: Callable[[Any, Any], Any],
    x0: Any,
    max_iter: int = 100,
    ftol: float = 1e-10,
    xtol: float = 1e-8,
    step: float = 1e-7,
) -> LMResult:
    """Minimise ``sum(fun(x, idx)**2, axis=1)`` row by row.

    Parameters
    ----------
    fun : callable
        ``fun(x, idx)`` -> residuals (len(idx), N) of the problems ``idx`` (int index array)
        at parameters ``x`` (len(idx), k). Non-finite residuals reject a step.
    x0 : array (B, k)
        Starting points.
    max_iter : int
        Most Jacobian evaluations per row.
    ftol, xtol : float
        A row stops when an accepted step lowers its cost by less than ``ftol`` (relative)
        or moves no parameter by more than ``xtol * (1 + |x|)``.
    step : float
        Relative forward-difference step.
    """
    xp = get_namespace(x0)
    B, k = x0.shape
    dev = device_of(x0)
    allidx = xp.arange(B, device=dev)
    x = xp.asarray(x0, copy=True)
    e = fun(x, allidx)
    cost = xp.sum(e * e, axis=1)
    cost = xp.where(xp.isfinite(cost), cost, xp.inf)
    lam = xp.full((B,), 1e-3, dtype=xp.float64, device=dev)
    active = xp.ones((B,), dtype=xp.bool, device=dev)
    converged = xp.zeros((B,), dtype=xp.bool, device=dev)
    n_iter = xp.zeros((B,), dtype=xp.int64, device=dev)
    fresh = xp.ones((B,), dtype=xp.bool, device=dev)
    A = xp.zeros((B, k, k), dtype=xp.float64, device=dev)
    g = xp.zeros((B, k), dtype=xp.float64, device=dev)
    eye = xp.eye(k, dtype=xp.float64, device=dev)
    if k == 0:
        return LMResult(x, cost, n_iter, xp.ones((B,), dtype=xp.bool, device=dev))
    for _ in range(4 * max_iter):
        need = xp.nonzero(active & fresh)[0]
        if need.shape[0] > 0:
            xn = _take(xp, x, need)
            en = _take(xp, e, need)
            h = step * xp.maximum(xp.abs(xn), 1.0)
            nb_ = need.shape[0]
            xs = xp.concat(
                [xn + xp.where(xp.arange(k, device=dev) == j, h, 0.0) for j in range(k)], axis=0
            )
            es = fun(xs, xp.concat([need] * k, axis=0))  # all k perturbations in one call
            es = xp.reshape(es, (k, nb_, es.shape[1]))
            J = xp.permute_dims(
                (es - en[None, :, :]) / xp.permute_dims(h, (1, 0))[:, :, None], (1, 2, 0)
            )
            J = xp.where(xp.isfinite(J), J, 0.0)
            An = xp.matmul(xp.matrix_transpose(J), J)
            gn = xp.sum(J * en[:, :, None], axis=1)
            A[need, ...] = An
            g[need, ...] = gn
            n_iter[need] = n_iter[need] + 1
            fresh[need] = False
        act = xp.nonzero(active)[0]
        if act.shape[0] == 0:
            break
        Aa, ga, la = _take(xp, A, act), _take(xp, g, act), _take(xp, lam, act)
        diag = xp.sum(Aa * eye, axis=2)
        damp = la[:, None] * xp.maximum(diag, 1e-12)
        M = Aa + damp[:, :, None] * eye + 1e-14 * eye
        delta = -xp.linalg.solve(M, ga[:, :, None])[:, :, 0]
        xa = _take(xp, x, act)
        xnew = xa + delta
        enew = fun(xnew, act)
        cnew = xp.sum(enew * enew, axis=1)
        ca = _take(xp, cost, act)
        ok = xp.isfinite(cnew) & (cnew <= ca)
        small_f = ok & ((ca - cnew) <= ftol * ca)
        small_x = ok & xp.all(xp.abs(delta) <= xtol * (1.0 + xp.abs(xa)), axis=1)
        x[act, ...] = xp.where(ok[:, None], xnew, xa)
        e[act, ...] = xp.where(ok[:, None], enew, _take(xp, e, act))
        cost[act] = xp.where(ok, cnew, ca)
        lam[act] = xp.where(ok, xp.maximum(la / 3.0, 1e-10), la * 4.0)
        fresh[act] = ok
        done = small_f | small_x
        stuck = (~ok) & (la * 4.0 > 1e10)
        out_of_iter = _take(xp, n_iter, act) >= max_iter
        converged[act] = done
        active[act] = ~(done | stuck | out_of_iter)
        if not bool(xp.any(active)):
            break
    return LMResult(x, cost, n_iter, converged)
