"""A batched convex QP solver for any array backend: OSQP-style ADMM, then an active-set polish.

Problem (B independent problems, solved together)::

    minimise    0.5 x' P x + q' x
    subject to  lb <= x <= ub            (variable bounds, may be +-inf)
                l  <= A x <= u           (general rows; l == u makes an equality)

Method
------
1. ADMM (the OSQP splitting, Stellato et al. 2020) with over-relaxation and per-problem
   adaptive step ``rho``: the linear system ``P + sigma I + rho I + A' diag(rho_g) A`` is
   inverted once per problem (and again only when ``rho`` changes), then each iteration is a
   batched matrix-vector product, a projection and a dual update. Everything is array-API
   calls, so the batch runs on NumPy, PyTorch or CuPy alike.
2. Polish: from the active set that ADMM identifies, a primal-dual active-set loop solves
   the KKT system of the active constraints exactly (batched dense solves, with a tiny
   regularisation removed by iterative refinement), adds violated constraints, releases
   constraints whose multipliers have the wrong sign, and stops when the set repeats. A
   polished solution satisfies the KKT conditions to ~1e-10, far inside the 1e-4 weight
   accuracy the portfolio tests ask of it.

The objective is scaled by the mean of ``diag(P)`` and each general row by its norm
before solving; multipliers are returned in the original units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prism_kernels.backend import get_namespace


@dataclass
class QPSolution:
    """Solution of a batch of QPs (arrays on the input backend).

    ``x`` ``(B, n)``; ``y_bounds`` ``(B, n)`` and ``y_rows`` ``(B, m)`` are multipliers of
    the bounds and the general rows (positive: upper side active, negative: lower side);
    ``converged`` ``(B,)`` bool; ``polished`` ``(B,)`` bool (exact KKT solution found);
    ``iterations`` ``(B,)`` ADMM iterations.
    """

    x: Any
    y_bounds: Any
    y_rows: Any
    converged: Any
    polished: Any
    iterations: Any
    primal_residual: Any
    dual_residual: Any


def _bcast(xp: Any, a: Any, shape: tuple[int, ...], dev: Any) -> Any:
    a = xp.asarray(a, dtype=xp.float64, device=dev)
    return xp.asarray(xp.broadcast_to(a, shape), copy=True)


def _inf_norm(xp: Any, v: Any) -> Any:
    if v.shape[-1] == 0:
        return xp.zeros(v.shape[:-1], dtype=xp.float64, device=v.device)
    return xp.max(xp.abs(v), axis=-1)


def _mv(M: Any, v: Any) -> Any:
    """Batched matrix-vector product ``(B, r, c) @ (B, c) -> (B, r)``."""
    return (M @ v[..., None])[..., 0]


def solve_qp(
    P: Any,
    q: Any,
    lb: Any,
    ub: Any,
    A: Any = None,
    l: Any = None,  # noqa: E741
    u: Any = None,
    *,
    max_iter: int = 4000,
    eps_abs: float = 1e-7,
    eps_rel: float = 1e-7,
    rho: float = 0.1,
    sigma: float = 1e-6,
    alpha: float = 1.6,
    check_every: int = 25,
    polish: bool = True,
    max_polish: int = 30,
) -> QPSolution:
    """Solve a batch of convex QPs (see the module docstring for the problem and method).

    Parameters
    ----------
    P : ``(n, n)`` or ``(B, n, n)``, symmetric positive semidefinite.
    q : ``(n,)`` or ``(B, n)``.
    lb, ub : ``(n,)`` or ``(B, n)``; ``-inf``/``inf`` for no bound.
    A : ``(m, n)`` or ``(B, m, n)``, optional general rows; ``l``, ``u`` ``(m,)`` or ``(B, m)``.

    The batch size B is the broadcast of the leading dimensions. When ``P`` and ``A`` are
    shared by the batch (2-D), one matrix is inverted for all problems and each iteration is a
    single matrix product (a whole frontier costs little more than one portfolio); the step
    ``rho`` is then adapted for the batch as a whole. Polish attempts run on a doubling
    schedule (every problem whose active set settles stops iterating).

    Returns :class:`QPSolution`.
    """
    xp = get_namespace(P, q)
    P = xp.asarray(P, dtype=xp.float64)
    dev = P.device
    n = P.shape[-1]
    q = xp.asarray(q, dtype=xp.float64, device=dev)
    if A is None:
        A = xp.zeros((0, n), dtype=xp.float64, device=dev)
        l = xp.zeros((0,), dtype=xp.float64, device=dev)  # noqa: E741
        u = xp.zeros((0,), dtype=xp.float64, device=dev)
    A = xp.asarray(A, dtype=xp.float64, device=dev)
    m = A.shape[-2]
    shared = P.ndim == 2 and A.ndim == 2
    B = 1
    for a in (P, A):
        if a.ndim == 3:
            B = max(B, a.shape[0])
    for a in (q, lb, ub, l, u):
        sh = getattr(a, "shape", ())
        if len(sh) == 2:
            B = max(B, sh[0])
    if not shared:
        P = _bcast(xp, P, (B, n, n), dev)
        A = _bcast(xp, A, (B, m, n), dev)
    q = _bcast(xp, q, (B, n), dev)
    lb = _bcast(xp, lb, (B, n), dev)
    ub = _bcast(xp, ub, (B, n), dev)
    l = _bcast(xp, l, (B, m), dev)  # noqa: E741
    u = _bcast(xp, u, (B, m), dev)
    one_b = xp.ones((B,), dtype=xp.float64, device=dev)

    # --- scaling: objective by mean diag(P) (or |q|), rows of A to unit norm ---------------
    dP = xp.mean(xp.abs(xp.linalg.diagonal(P)), axis=-1) * one_b
    c = xp.where(dP > 0, dP, xp.maximum(_inf_norm(xp, q), one_b))
    Ps = P / (c[0] if shared else c[:, None, None])
    qs = q / c[:, None]
    if m:
        rn = xp.sqrt(xp.sum(A * A, axis=-1))
        rn = xp.where(rn > 0, rn, xp.ones_like(rn))
        As = A / rn[..., None]
        rnb = rn * xp.ones((B, m), dtype=xp.float64, device=dev)
        ls = l / rnb
        us = u / rnb
    else:
        rnb = xp.ones((B, 0), dtype=xp.float64, device=dev)
        As, ls, us = A, l, u
    AsT = xp.matrix_transpose(As)
    eq = ls == us
    eye = xp.eye(n, dtype=xp.float64, device=dev)

    if shared:

        def Pm(v: Any) -> Any:
            return v @ Ps

        def Am(v: Any) -> Any:
            return v @ AsT

        def ATm(v: Any) -> Any:
            return v @ As
    else:

        def Pm(v: Any) -> Any:
            return _mv(Ps, v)

        def Am(v: Any) -> Any:
            return _mv(As, v)

        def ATm(v: Any) -> Any:
            return _mv(AsT, v)

    def kinv(rho_vec: Any) -> tuple[Any, Any]:
        rg = xp.where(eq, 1e3 * rho_vec[:, None], rho_vec[:, None] * xp.ones_like(ls))
        if shared:
            # rho is one number for the batch; equality rows are shared too when l == u agrees
            r0 = rg[0]
            K = Ps + (sigma + rho_vec[0]) * eye + (AsT * r0[None, :]) @ As
            return xp.linalg.inv(K), rg
        K = Ps + (sigma + rho_vec)[:, None, None] * eye + (AsT * rg[:, None, :]) @ As
        return xp.linalg.inv(K), rg

    if shared and m and not bool(xp.all(eq == eq[0:1, :])):
        # rows that are equalities in some problems only: treat them as one class
        eq = xp.broadcast_to(xp.any(eq, axis=0, keepdims=True), eq.shape)

    rho_v = xp.full((B,), rho, dtype=xp.float64, device=dev)
    Kinv, rho_g = kinv(rho_v)

    def Km(v: Any) -> Any:
        return v @ Kinv if shared else _mv(Kinv, v)

    x = xp.zeros((B, n), dtype=xp.float64, device=dev)
    zb = xp.minimum(xp.maximum(x, lb), ub)
    yb = xp.zeros((B, n), dtype=xp.float64, device=dev)
    zg = xp.minimum(xp.maximum(xp.zeros((B, m), dtype=xp.float64, device=dev), ls), us)
    yg = xp.zeros((B, m), dtype=xp.float64, device=dev)
    done = xp.zeros((B,), dtype=xp.bool, device=dev)
    polished = xp.zeros((B,), dtype=xp.bool, device=dev)
    iters = xp.zeros((B,), dtype=xp.int64, device=dev)
    r_prim = xp.full((B,), float("inf"), dtype=xp.float64, device=dev)
    r_dual = xp.full((B,), float("inf"), dtype=xp.float64, device=dev)
    xo, ybo, ygo = x, yb, yg
    admm_ok = xp.zeros((B,), dtype=xp.bool, device=dev)
    tried = xp.zeros((B,), dtype=xp.bool, device=dev)
    next_polish = 2 * check_every

    it = 0
    while it < max_iter:
        for _ in range(check_every):
            rhs = sigma * x - qs + rho_v[:, None] * zb - yb
            if m:
                rhs = rhs + ATm(rho_g * zg - yg)
            xt = Km(rhs)
            xn = alpha * xt + (1.0 - alpha) * x
            zbr = alpha * xt + (1.0 - alpha) * zb
            zbn = xp.minimum(xp.maximum(zbr + yb / rho_v[:, None], lb), ub)
            ybn = yb + rho_v[:, None] * (zbr - zbn)
            if m:
                zgr = alpha * Am(xt) + (1.0 - alpha) * zg
                zgn = xp.minimum(xp.maximum(zgr + yg / rho_g, ls), us)
                ygn = yg + rho_g * (zgr - zgn)
            else:
                zgn, ygn = zg, yg
            keep = done[:, None]
            x = xp.where(keep, x, xn)
            zb = xp.where(keep, zb, zbn)
            yb = xp.where(keep, yb, ybn)
            zg = xp.where(keep, zg, zgn)
            yg = xp.where(keep, yg, ygn)
        it += check_every
        iters = xp.where(done, iters, iters + check_every)
        # residuals (scaled problem)
        Ax = Am(x) if m else zg
        Px = Pm(x)
        ATy = ATm(yg) if m else xp.zeros_like(x)
        r_prim = xp.maximum(_inf_norm(xp, x - zb), _inf_norm(xp, Ax - zg))
        r_dual = _inf_norm(xp, Px + qs + yb + ATy)
        n_prim = xp.maximum(
            xp.maximum(_inf_norm(xp, x), _inf_norm(xp, zb)),
            xp.maximum(_inf_norm(xp, Ax), _inf_norm(xp, zg)),
        )
        n_dual = xp.maximum(
            xp.maximum(_inf_norm(xp, Px), _inf_norm(xp, ATy + yb)), _inf_norm(xp, qs)
        )
        ok = (r_prim <= eps_abs + eps_rel * n_prim) & (r_dual <= eps_abs + eps_rel * n_dual)
        admm_ok = admm_ok | (ok & ~polished)
        frozen = polished | admm_ok
        untried = admm_ok & ~tried
        final = bool(xp.all(frozen)) or it >= max_iter
        polished_now = False
        if polish and (it >= next_polish or final):
            next_polish = 2 * next_polish
            todo = ~polished & ~(admm_ok & tried)
            if bool(xp.any(todo)):
                polished_now = True
                px, pyb, pyg, pok = _polish(
                    xp, Ps, qs, As, ls, us, lb, ub, x, zb, yb, zg, yg, max_polish, todo, shared
                )
                xo = xp.where(pok[:, None], px, xo)
                ybo = xp.where(pok[:, None], pyb, ybo)
                ygo = xp.where(pok[:, None], pyg, ygo)
                polished = polished | pok
                tried = tried | (todo & admm_ok)
        elif not polish:
            tried = tried | untried
        done = polished | admm_ok
        # Without a polish in this check, done == frozen and ``final`` already read it: one
        # device-to-host synchronisation fewer per check on a GPU.
        if final or (polished_now and bool(xp.all(done))):
            break
        # adaptive rho (OSQP rule), refactorise only when rho moves > 5x
        ratio = (r_prim / (n_prim + 1e-30)) / (r_dual / (n_dual + 1e-30) + 1e-30)
        new_rho = xp.clip(rho_v * xp.sqrt(ratio), 1e-6, 1e6)
        if shared:
            live = xp.where(done, xp.zeros_like(new_rho), xp.log(new_rho))
            g = xp.exp(xp.sum(live) / xp.sum(xp.where(done, xp.zeros_like(new_rho), one_b)))
            new_rho = g * one_b
        change = (~done) & ((new_rho > 5.0 * rho_v) | (new_rho < rho_v / 5.0))
        if bool(xp.any(change)):
            rho_v = new_rho if shared else xp.where(change, new_rho, rho_v)
            Kinv, rho_g = kinv(rho_v)
    left = ~polished
    xo = xp.where(left[:, None], x, xo)
    ybo = xp.where(left[:, None], yb, ybo)
    ygo = xp.where(left[:, None], yg, ygo)
    # back to original units: duals scale with c, general rows with 1/row norm
    return QPSolution(
        x=xo,
        y_bounds=ybo * c[:, None],
        y_rows=ygo * c[:, None] / rnb if m else ygo,
        converged=done,
        polished=polished,
        iterations=iters,
        primal_residual=r_prim,
        dual_residual=r_dual * c,
    )


def _polish(
    xp: Any,
    P: Any,
    q: Any,
    A: Any,
    l: Any,  # noqa: E741
    u: Any,
    lb: Any,
    ub: Any,
    x0: Any,
    zb: Any,
    yb: Any,
    zg: Any,
    yg: Any,
    max_polish: int,
    todo: Any,
    shared: bool,
) -> tuple[Any, Any, Any, Any]:
    """Primal-dual active-set refinement of ADMM points (scaled problem), for the problems
    marked ``todo`` (the others are skipped; the batch is compacted to them).

    State per constraint: -1 lower active, +1 upper active, 0 inactive. Equalities are
    always active. Returns full-batch ``(x, y_bounds, y_rows, polished)``; ``polished`` marks
    the problems whose active set settled to a KKT point.
    """
    Bf, n = x0.shape
    dev = x0.device
    f64 = xp.float64
    idx = xp.nonzero(todo)[0]
    B = int(idx.shape[0])

    def take(a: Any) -> Any:
        return xp.take(a, idx, axis=0)

    q, lb, ub, l, u, x0, zb, yb, zg, yg = (take(a) for a in (q, lb, ub, l, u, x0, zb, yb, zg, yg))  # noqa: E741
    m = l.shape[1]
    if not shared:
        P, A = take(P), take(A)
    eq = l == u
    ones_n = xp.ones((B, n), dtype=f64, device=dev)
    zeros_n = xp.zeros((B, n), dtype=f64, device=dev)
    ones_m = xp.ones((B, m), dtype=f64, device=dev)
    zeros_m = xp.zeros((B, m), dtype=f64, device=dev)
    # initial active set (the OSQP polish rule)
    sb = xp.where((zb - lb) < -yb, -ones_n, zeros_n)
    sb = xp.where((ub - zb) < yb, ones_n, sb)
    sb = xp.where(lb == ub, ones_n, sb)
    sg = xp.where((zg - l) < -yg, -ones_m, zeros_m)
    sg = xp.where((u - zg) < yg, ones_m, sg)
    sg = xp.where(eq, ones_m, sg)
    eye_n = xp.eye(n, dtype=f64, device=dev)
    eye_m = xp.eye(m, dtype=f64, device=dev)
    eye_all = xp.eye(n + m, dtype=f64, device=dev)
    tol_p = 1e-9
    tol_d = 1e-9
    settled = xp.zeros((B,), dtype=xp.bool, device=dev)
    xs, ybs, ygs = x0, yb, yg
    for _ in range(max_polish):
        cur = xp.nonzero(~settled)[0]
        k = int(cur.shape[0])
        if k == 0:
            break

        def sub(a: Any, k: int = k, cur: Any = cur) -> Any:
            return a if k == B else xp.take(a, cur, axis=0)

        if shared:
            Pk = xp.broadcast_to(P, (k, n, n))
            Ak = xp.broadcast_to(A, (k, m, n))
        else:
            Pk, Ak = sub(P), sub(A)
        ATk = xp.matrix_transpose(Ak)
        qk, lbk, ubk, lk, uk, sbk, sgk, eqk = (sub(a) for a in (q, lb, ub, l, u, sb, sg, eq))
        one = ones_n[:k]
        zero_n = zeros_n[:k]
        one_m = ones_m[:k]
        zero_m = zeros_m[:k]
        fixed = sbk != 0
        act = sgk != 0
        bval = xp.where(sbk < 0, lbk, ubk)
        gval = xp.where(sgk < 0, lk, uk)
        top = xp.where(
            fixed[:, :, None],
            xp.concat(
                [xp.broadcast_to(eye_n, (k, n, n)), xp.zeros((k, n, m), dtype=f64, device=dev)],
                axis=-1,
            ),
            xp.concat([Pk, ATk], axis=-1),
        )
        bot = xp.where(
            act[:, :, None],
            xp.concat([Ak, xp.zeros((k, m, m), dtype=f64, device=dev)], axis=-1),
            xp.concat(
                [xp.zeros((k, m, n), dtype=f64, device=dev), xp.broadcast_to(eye_m, (k, m, m))],
                axis=-1,
            ),
        )
        K = xp.concat([top, bot], axis=-2)
        rhs = xp.concat([xp.where(fixed, bval, -qk), xp.where(act, gval, zero_m)], axis=-1)
        # regularised solve + one step of iterative refinement
        dreg = 1e-11 * (xp.max(xp.abs(xp.reshape(Pk, (k, n * n))), axis=-1) + 1.0)
        D = (
            xp.concat([xp.where(fixed, zero_n, one), -xp.where(act, one_m, zero_m)], axis=-1)
            * dreg[:, None]
        )
        Kr = K + D[:, :, None] * eye_all
        try:
            sol = xp.linalg.solve(Kr, rhs[..., None])[..., 0]
            sol = sol + xp.linalg.solve(Kr, (rhs - _mv(K, sol))[..., None])[..., 0]
        except Exception:  # a singular KKT system: keep the ADMM points
            break
        finite = xp.all(xp.isfinite(sol), axis=-1)
        sol = xp.where(xp.isfinite(sol), sol, xp.zeros_like(sol))
        x = sol[:, :n]
        ygn = xp.where(act, sol[:, n:], zero_m)
        grad = _mv(Pk, x) + qk + (_mv(ATk, ygn) if m else zero_n)
        ybn = xp.where(fixed, -grad, zero_n)
        # consistency: primal feasibility of the inactive constraints, dual signs of the active ones
        nb = sbk
        nb = xp.where((sbk == 0) & (x < lbk - tol_p), -one, nb)
        nb = xp.where((sbk == 0) & (x > ubk + tol_p), one, nb)
        nb = xp.where((sbk < 0) & (ybn > tol_d) & (lbk != ubk), zero_n, nb)
        nb = xp.where((sbk > 0) & (ybn < -tol_d) & (lbk != ubk), zero_n, nb)
        Ax = _mv(Ak, x) if m else zero_m
        ng = sgk
        ng = xp.where((sgk == 0) & (Ax < lk - tol_p), -one_m, ng)
        ng = xp.where((sgk == 0) & (Ax > uk + tol_p), one_m, ng)
        ng = xp.where((sgk < 0) & (ygn > tol_d) & ~eqk, zero_m, ng)
        ng = xp.where((sgk > 0) & (ygn < -tol_d) & ~eqk, zero_m, ng)
        ok = xp.all(nb == sbk, axis=-1) & xp.all(ng == sgk, axis=-1) & finite
        if k == B:
            xs, ybs, ygs, settled, sb, sg = x, ybn, ygn, ok, nb, ng
        else:
            xs[cur] = x
            ybs[cur] = ybn
            ygs[cur] = ygn
            settled[cur] = ok
            sb[cur] = nb
            sg[cur] = ng
        xs = xp.asarray(xs, copy=True) if k == B else xs
        ybs = xp.asarray(ybs, copy=True) if k == B else ybs
        ygs = xp.asarray(ygs, copy=True) if k == B else ygs
    # scatter back to the full batch
    out_x = xp.zeros((Bf, n), dtype=f64, device=dev)
    out_yb = xp.zeros((Bf, n), dtype=f64, device=dev)
    out_yg = xp.zeros((Bf, m), dtype=f64, device=dev)
    out_ok = xp.zeros((Bf,), dtype=xp.bool, device=dev)
    out_x[idx] = xs
    out_yb[idx] = ybs
    out_yg[idx] = ygs
    out_ok[idx] = settled
    return out_x, out_yb, out_yg, out_ok
