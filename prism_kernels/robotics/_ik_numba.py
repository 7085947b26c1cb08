"""Compiled (numba) CPU fast path of :func:`prism_kernels.robotics.ik.solve_ik` for NumPy.

The same projected Levenberg-Marquardt as the array-API path in ``ik._lm``, step for step
(same error vector, damping, stall rule, stopping rule and the same lockstep order of a
target's seeds), written as scalar loops so that a problem costs a few microseconds per step
instead of NumPy's per-call overhead. The linear solve is a Cholesky factorisation (the matrix
``J^T J + (lambda E + mu) I`` is symmetric positive definite) where the array path calls
``linalg.solve``; results agree to rounding (tests compare the two paths). One thread (a
``prange`` version compiled in over a minute and ran slower on a shared 2-core machine);
compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np

from prism_kernels.compiled import njit


@njit
def _fk_jac(dh, modified, base, tool, q, T, J, M, A, tmp, Z, O):  # pragma: no cover - compiled  # noqa: E741
    n = dh.shape[0]
    M[:, :] = base
    for i in range(n):
        a, al, d, off = dh[i, 0], dh[i, 1], dh[i, 2], dh[i, 3]
        th = q[i] + off
        ct, st = math.cos(th), math.sin(th)
        ca, sa = math.cos(al), math.sin(al)
        if modified:
            A[0, 0], A[0, 1], A[0, 2], A[0, 3] = ct, -st, 0.0, a
            A[1, 0], A[1, 1], A[1, 2], A[1, 3] = st * ca, ct * ca, -sa, -sa * d
            A[2, 0], A[2, 1], A[2, 2], A[2, 3] = st * sa, ct * sa, ca, ca * d
        else:
            for r in range(3):
                Z[i, r] = M[r, 2]
                O[i, r] = M[r, 3]
            A[0, 0], A[0, 1], A[0, 2], A[0, 3] = ct, -st * ca, st * sa, a * ct
            A[1, 0], A[1, 1], A[1, 2], A[1, 3] = st, ct * ca, -ct * sa, a * st
            A[2, 0], A[2, 1], A[2, 2], A[2, 3] = 0.0, sa, ca, d
        A[3, 0], A[3, 1], A[3, 2], A[3, 3] = 0.0, 0.0, 0.0, 1.0
        for r in range(3):
            for c in range(4):
                s = 0.0
                for k in range(4):
                    s += M[r, k] * A[k, c]
                tmp[r, c] = s
        for r in range(3):
            for c in range(4):
                M[r, c] = tmp[r, c]
        if modified:
            for r in range(3):
                Z[i, r] = M[r, 2]
                O[i, r] = M[r, 3]
    for r in range(4):
        for c in range(4):
            s = 0.0
            for k in range(4):
                s += M[r, k] * tool[k, c]
            T[r, c] = s
    for i in range(n):
        rx = T[0, 3] - O[i, 0]
        ry = T[1, 3] - O[i, 1]
        rz = T[2, 3] - O[i, 2]
        zx, zy, zz = Z[i, 0], Z[i, 1], Z[i, 2]
        J[0, i] = zy * rz - zz * ry
        J[1, i] = zz * rx - zx * rz
        J[2, i] = zx * ry - zy * rx
        J[3, i] = zx
        J[4, i] = zy
        J[5, i] = zz


@njit
def _error(T, Tt, e, Re):  # pragma: no cover - compiled
    """Fill e (6,) with the array path's error vector; return (pos err, rot err vector norm)."""
    for r in range(3):
        e[r] = Tt[r, 3] - T[r, 3]
    for r in range(3):
        for c in range(3):
            s = 0.0
            for k in range(3):
                s += Tt[r, k] * T[c, k]
            Re[r, c] = s
    l0 = Re[2, 1] - Re[1, 2]
    l1 = Re[0, 2] - Re[2, 0]
    l2 = Re[1, 0] - Re[0, 1]
    ln = math.sqrt(l0 * l0 + l1 * l1 + l2 * l2)
    tr = Re[0, 0] + Re[1, 1] + Re[2, 2]
    if ln > 1e-6 or tr > 0:
        angle = math.atan2(ln, tr - 1)
        safe = ln if ln > 1e-12 else 1.0
        f = angle / safe
        e[3], e[4], e[5] = l0 * f, l1 * f, l2 * f
    else:
        k = 0
        if Re[1, 1] > Re[k, k]:
            k = 1
        if Re[2, 2] > Re[k, k]:
            k = 2
        c0 = (Re[0, k] + Re[k, 0]) / 2 + (1.0 if k == 0 else 0.0)
        c1 = (Re[1, k] + Re[k, 1]) / 2 + (1.0 if k == 1 else 0.0)
        c2 = (Re[2, k] + Re[k, 2]) / 2 + (1.0 if k == 2 else 0.0)
        nn = max(math.sqrt(c0 * c0 + c1 * c1 + c2 * c2), 1e-300)
        e[3], e[4], e[5] = c0 / nn * math.pi, c1 / nn * math.pi, c2 / nn * math.pi
    pe = math.sqrt(e[0] * e[0] + e[1] * e[1] + e[2] * e[2])
    oe = math.sqrt(e[3] * e[3] + e[4] * e[4] + e[5] * e[5])
    return pe, oe


@njit
def _final_errors(T, Tt):  # pragma: no cover - compiled
    """``kinematics.pose_error``: position error and the angle of R_t R^T."""
    dx, dy, dz = Tt[0, 3] - T[0, 3], Tt[1, 3] - T[1, 3], Tt[2, 3] - T[2, 3]
    Re = np.empty((3, 3))
    for r in range(3):
        for c in range(3):
            s = 0.0
            for k in range(3):
                s += Tt[r, k] * T[c, k]
            Re[r, c] = s
    l0 = Re[2, 1] - Re[1, 2]
    l1 = Re[0, 2] - Re[2, 0]
    l2 = Re[1, 0] - Re[0, 1]
    tr = Re[0, 0] + Re[1, 1] + Re[2, 2]
    return math.sqrt(dx * dx + dy * dy + dz * dz), math.atan2(
        math.sqrt(l0 * l0 + l1 * l1 + l2 * l2), tr - 1
    )


@njit
def _solve_damped(J, e, lam, free, A, g):  # pragma: no cover - compiled
    """g <- (J_f^T J_f + lam I)^-1 J_f^T e, J_f = J with the columns of non-free joints zeroed."""
    n = J.shape[1]
    for i in range(n):
        s = 0.0
        if free[i]:
            for r in range(6):
                s += J[r, i] * e[r]
        g[i] = s
        for j in range(i + 1):
            s = 0.0
            if free[i] and free[j]:
                for r in range(6):
                    s += J[r, i] * J[r, j]
            A[i, j] = s
            A[j, i] = s
        A[i, i] += lam
    # Cholesky A = L L^T (lower part of A overwritten)
    for j in range(n):
        s = A[j, j]
        for k in range(j):
            s -= A[j, k] * A[j, k]
        d = math.sqrt(s)
        A[j, j] = d
        for i in range(j + 1, n):
            s = A[i, j]
            for k in range(j):
                s -= A[i, k] * A[j, k]
            A[i, j] = s / d
    for i in range(n):
        s = g[i]
        for k in range(i):
            s -= A[i, k] * g[k]
        g[i] = s / A[i, i]
    for i in range(n - 1, -1, -1):
        s = g[i]
        for k in range(i + 1, n):
            s -= A[k, i] * g[k]
        g[i] = s / A[i, i]


@njit
def _step(J, e, E, damping, lo, hi, q, A, g, free):  # pragma: no cover - compiled
    """One projected LM step (the array path's ``ik._lm`` step): solve; joints that the step
    pushes through a limit stop at it and the step is solved again without them."""
    n = J.shape[1]
    lam = damping * E + 1e-9
    for i in range(n):
        free[i] = True
    _solve_damped(J, e, lam, free, A, g)
    hit = False
    for i in range(n):
        v = q[i] + g[i]
        if v < lo[i] or v > hi[i]:
            free[i] = False
            hit = True
    if hit:
        for i in range(n):
            if not free[i]:
                v = q[i] + g[i]
                q[i] = min(max(v, lo[i]), hi[i])
        _solve_damped(J, e, lam, free, A, g)
    for i in range(n):
        if free[i]:
            v = q[i] + g[i]
            q[i] = min(max(v, lo[i]), hi[i])


@njit
def _solve_target(
    t,
    dh,
    modified,
    base,
    tool,
    lo,
    hi,
    targets,
    k,
    q,
    pe_out,
    oe_out,
    steps,
    max_iters,
    tol_p,
    tol_o,
    damping,
    patience,
    stop_on_success,
):  # pragma: no cover - compiled
    n = dh.shape[0]
    Tt = targets[t]
    bestE = np.full(k, np.inf)
    stall = np.zeros(k, dtype=np.int64)
    done = np.zeros(k, dtype=np.bool_)
    stop = np.zeros(k, dtype=np.bool_)
    Js = np.empty((k, 6, n))
    es = np.empty((k, 6))
    Es = np.empty(k)
    T = np.empty((4, 4))
    M = np.empty((4, 4))
    A4 = np.empty((4, 4))
    tmp = np.empty((4, 4))
    Z = np.empty((n, 3))
    O = np.empty((n, 3))  # noqa: E741
    Re = np.empty((3, 3))
    AA = np.empty((n, n))
    g = np.empty(n)
    free = np.empty(n, dtype=np.bool_)
    it = 0
    while it <= max_iters:
        solved = False
        n_active = 0
        for s in range(k):
            if done[s]:
                continue
            n_active += 1
            _fk_jac(dh, modified, base, tool, q[t * k + s], T, Js[s], M, A4, tmp, Z, O)
            pe, oe = _error(T, Tt, es[s], Re)
            E = 0.0
            for r in range(6):
                E += es[s, r] * es[s, r]
            E *= 0.5
            Es[s] = E
            ok = pe < tol_p and oe < tol_o
            if E < bestE[s] * (1 - 1e-3):
                bestE[s] = E
                stall[s] = 0
            else:
                stall[s] += 1
            stop[s] = ok or stall[s] > patience or it == max_iters
            if ok:
                solved = True
        if n_active == 0:
            break
        moved = False
        for s in range(k):
            if done[s]:
                continue
            if stop[s] or (stop_on_success and solved):
                done[s] = True
                continue
            _step(Js[s], es[s], Es[s], damping, lo, hi, q[t * k + s], AA, g, free)
            moved = True
        if not moved:
            break
        it += 1
    steps[t] = it
    for s in range(k):
        _fk_jac(dh, modified, base, tool, q[t * k + s], T, Js[s], M, A4, tmp, Z, O)
        pe_out[t * k + s], oe_out[t * k + s] = _final_errors(T, Tt)


@njit
def _lm_round_serial(
    dh,
    modified,
    base,
    tool,
    lo,
    hi,
    targets,
    k,
    q0,
    max_iters,
    tol_p,
    tol_o,
    damping,
    patience,
    stop_on_success,
):  # pragma: no cover - compiled
    nt = targets.shape[0]
    n = dh.shape[0]
    q = q0.copy()
    for p in range(q.shape[0]):
        for i in range(n):
            q[p, i] = min(max(q[p, i], lo[i]), hi[i])
    pe_out = np.empty(q.shape[0])
    oe_out = np.empty(q.shape[0])
    steps = np.zeros(nt, dtype=np.int64)
    for t in range(nt):
        _solve_target(
            t,
            dh,
            modified,
            base,
            tool,
            lo,
            hi,
            targets,
            k,
            q,
            pe_out,
            oe_out,
            steps,
            max_iters,
            tol_p,
            tol_o,
            damping,
            patience,
            stop_on_success,
        )
    return q, pe_out, oe_out, steps


def lm_round(
    dh,
    modified,
    base,
    tool,
    lo,
    hi,
    targets,
    k,
    q0,
    max_iters,
    tol_p,
    tol_o,
    damping,
    patience,
    stop_on_success,
):
    """Seeds ``q0`` (T*k, n), target-major; returns final q, position and orientation errors
    per problem and the steps taken per target."""
    return _lm_round_serial(
        dh,
        modified,
        base,
        tool,
        lo,
        hi,
        targets,
        k,
        q0,
        max_iters,
        tol_p,
        tol_o,
        damping,
        patience,
        stop_on_success,
    )


@njit
def nearest(feat_targets, feat_table, k):  # pragma: no cover - compiled
    """Indices (T, k) of the k table rows nearest each target row (squared distance minus the
    target's own norm, as ``ik.nearest_seeds`` computes it), nearest first."""
    nt, m = feat_targets.shape[0], feat_table.shape[0]
    f2 = np.empty(m)
    for j in range(m):
        s = 0.0
        for c in range(feat_table.shape[1]):
            s += feat_table[j, c] * feat_table[j, c]
        f2[j] = s
    out = np.empty((nt, k), dtype=np.int64)
    for t in range(nt):
        bd = np.full(k, np.inf)
        bi = np.zeros(k, dtype=np.int64)
        for j in range(m):
            s = 0.0
            for c in range(feat_table.shape[1]):
                s += feat_targets[t, c] * feat_table[j, c]
            d = f2[j] - 2.0 * s
            if d < bd[k - 1]:
                p = k - 1
                while p > 0 and bd[p - 1] > d:
                    bd[p] = bd[p - 1]
                    bi[p] = bi[p - 1]
                    p -= 1
                bd[p] = d
                bi[p] = j
        out[t] = bi
    return out
