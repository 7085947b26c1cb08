"""Compiled (numba) CPU fast path of :mod:`prism_kernels.timeseries.statespace`.

The same Kalman filter and conditional-sum-of-squares recursions, one series at a time with
element loops, for NumPy inputs. The numbers equal the array-API path's (tested): the only
difference is that the steady-state gain is switched on per series here and for the whole
batch at once there, both when the covariance moves by less than ``STEADY_TOL``.
Compiled lazily on first call and cached on disk.
"""

from __future__ import annotations

import numpy as np

from prism_kernels.compiled import njit


@njit
def _stationary_cov(ph, th, r):  # pragma: no cover - compiled
    """P0 (r, r) for phi ``ph`` (pf,) and theta ``th`` (qf,), sigma2 = 1 (see statespace)."""
    pf = ph.shape[0]
    qf = th.shape[0]
    L = max(r, qf + 1)
    phx = np.zeros(r + 1)
    for i in range(pf):
        phx[i] = ph[i]
    thx = np.zeros(max(r, qf + 1) + 1)
    thx[0] = 1.0
    for i in range(qf):
        thx[i + 1] = th[i]
    psi = np.zeros(L)
    psi[0] = 1.0
    for j in range(1, L):
        v = thx[j] if j <= qf else 0.0
        for i in range(1, min(j, pf) + 1):
            v += ph[i - 1] * psi[j - i]
        psi[j] = v
    gam = np.zeros(r + 1 if r + 1 > pf + 1 else pf + 1)
    rhs = np.zeros(pf + 1)
    for k in range(pf + 1):
        acc = 0.0
        for j in range(k, qf + 1):
            acc += thx[j] * psi[j - k]
        rhs[k] = acc
    if pf > 0:
        A = np.zeros((pf + 1, pf + 1))
        for k in range(pf + 1):
            A[k, k] += 1.0
            for i in range(1, pf + 1):
                A[k, abs(k - i)] -= ph[i - 1]
        g = np.linalg.solve(A, rhs)
        for k in range(pf + 1):
            gam[k] = g[k]
        start = pf + 1
    else:
        gam[0] = rhs[0]
        start = 1
    for k in range(start, r + 1):
        acc = 0.0
        for j in range(k, qf + 1):
            acc += thx[j] * psi[j - k]
        for i in range(1, pf + 1):
            acc += ph[i - 1] * gam[k - i]
        gam[k] = acc
    c = np.zeros(r + 1)
    c[0] = gam[0]
    for j in range(1, r):
        acc = 0.0
        for k in range(j, r):
            acc += phx[k] * gam[k + 1 - j] + thx[k] * psi[k - j]
        c[j] = acc
    P = np.zeros((r, r))
    for i in range(r - 1, -1, -1):
        for j in range(r):
            g = phx[i] * c[j + 1] + c[i + 1] * phx[j] + phx[i] * phx[j] * c[0] + thx[i] * thx[j]
            if i + 1 < r and j + 1 < r:
                g += P[i + 1, j + 1]
            P[i, j] = g
    return P


@njit
def kalman_filter(w, phi, theta, mu, tol):  # pragma: no cover - compiled
    """Batched exact Kalman filter: ``(v, F, a, P)`` as in ``statespace.kalman_filter``."""
    B, m = w.shape
    pf = phi.shape[1]
    qf = theta.shape[1]
    r = max(pf, qf + 1)
    v_out = np.empty((B, m))
    F_out = np.empty((B, m))
    a_out = np.empty((B, r))
    P_out = np.empty((B, r, r))
    phr = np.zeros(r)
    R = np.zeros(r)
    a = np.zeros(r)
    af = np.zeros(r)
    K = np.zeros(r)
    Pf = np.zeros((r, r))
    M1 = np.zeros((r, r))
    Pn = np.zeros((r, r))
    for b in range(B):
        for i in range(r):
            phr[i] = phi[b, i] if i < pf else 0.0
            R[i] = 1.0 if i == 0 else (theta[b, i - 1] if i - 1 < qf else 0.0)
            a[i] = 0.0
        P = _stationary_cov(phi[b], theta[b], r)
        steady = False
        F = 1.0
        for t in range(m):
            v = w[b, t] - mu[b] - a[0]
            if not steady:
                F = P[0, 0]
                for i in range(r):
                    K[i] = P[i, 0] / F
            for i in range(r):
                af[i] = a[i] + K[i] * v
            for i in range(r):
                a[i] = phr[i] * af[0] + (af[i + 1] if i + 1 < r else 0.0)
            v_out[b, t] = v
            F_out[b, t] = F
            if not steady:
                for i in range(r):
                    for j in range(r):
                        Pf[i, j] = P[i, j] - P[i, 0] * P[0, j] / F
                for i in range(r):
                    for j in range(r):
                        M1[i, j] = phr[i] * Pf[0, j] + (Pf[i + 1, j] if i + 1 < r else 0.0)
                diff = 0.0
                for i in range(r):
                    for j in range(r):
                        x = phr[j] * M1[i, 0] + (M1[i, j + 1] if j + 1 < r else 0.0) + R[i] * R[j]
                        d = abs(x - P[i, j])
                        if d > diff:
                            diff = d
                        Pn[i, j] = x
                for i in range(r):
                    for j in range(r):
                        P[i, j] = Pn[i, j]
                if (t + 1) % 4 == 0 and diff < tol:
                    steady = True
                    F = P[0, 0]
        for i in range(r):
            a_out[b, i] = a[i]
            for j in range(r):
                P_out[b, i, j] = P[i, j]
    return v_out, F_out, a_out, P_out


@njit
def css_residuals(w, phi, theta, mu, ncond):  # pragma: no cover - compiled
    """Batched CSS residuals as ``statespace.css_residuals``."""
    B, m = w.shape
    pf = phi.shape[1]
    qf = theta.shape[1]
    out = np.zeros((B, m - ncond))
    for b in range(B):
        for t in range(ncond, m):
            u = w[b, t] - mu[b]
            for i in range(1, pf + 1):
                u -= phi[b, i - 1] * (w[b, t - i] - mu[b])
            for j in range(1, qf + 1):
                if t - j >= ncond:
                    u -= theta[b, j - 1] * out[b, t - j - ncond]
            out[b, t - ncond] = u
    return out


@njit
def _pacf_block(x, start, k, sign, out):  # pragma: no cover - compiled
    """Monahan/Jones transform of x[start:start+k] into out[:k] (see statespace)."""
    prev = np.zeros(k)
    cur = np.zeros(k)
    for j in range(k):
        rj = x[start + j] / np.sqrt(1.0 + x[start + j] * x[start + j])
        for i in range(j):
            cur[i] = prev[i] - rj * prev[j - 1 - i]
        cur[j] = rj
        for i in range(j + 1):
            prev[i] = cur[i]
    for i in range(k):
        out[i] = sign * prev[i]


@njit
def _polys_from_x(x, p, q, P, Q, s, const):  # pragma: no cover - compiled
    """Unconstrained row ``x`` -> (mu, phi (p + sP,), theta (q + sQ,))."""
    i = 0
    mu = 0.0
    if const:
        mu = x[0]
        i = 1
    ar = np.zeros(p)
    ma = np.zeros(q)
    sar = np.zeros(P)
    sma = np.zeros(Q)
    _pacf_block(x, i, p, 1.0, ar)
    _pacf_block(x, i + p, q, -1.0, ma)
    _pacf_block(x, i + p + q, P, 1.0, sar)
    _pacf_block(x, i + p + q + P, Q, -1.0, sma)
    phi = np.zeros(p + s * P)
    for a in range(p):
        phi[a] += ar[a]
    for b in range(P):
        phi[s * (b + 1) - 1] += sar[b]
        for a in range(p):
            phi[s * (b + 1) + a] -= ar[a] * sar[b]
    theta = np.zeros(q + s * Q)
    for a in range(q):
        theta[a] += ma[a]
    for b in range(Q):
        theta[s * (b + 1) - 1] += sma[b]
        for a in range(q):
            theta[s * (b + 1) + a] += ma[a] * sma[b]
    return mu, phi, theta


@njit
def css_from_x(w, x, idx, p, q, P, Q, s, const, ncond):  # pragma: no cover - compiled
    """CSS residuals (len(idx), m - ncond) of rows ``w[idx]`` at unconstrained ``x``."""
    nb = idx.shape[0]
    m = w.shape[1]
    out = np.zeros((nb, m - ncond))
    for r in range(nb):
        b = idx[r]
        mu, phi, theta = _polys_from_x(x[r], p, q, P, Q, s, const)
        pf = phi.shape[0]
        qf = theta.shape[0]
        for t in range(ncond, m):
            u = w[b, t] - mu
            for i in range(1, pf + 1):
                u -= phi[i - 1] * (w[b, t - i] - mu)
            for j in range(1, qf + 1):
                if t - j >= ncond:
                    u -= theta[j - 1] * out[r, t - j - ncond]
            out[r, t - ncond] = u
    return out


@njit
def ml_from_x(w, x, idx, p, q, P, Q, s, const, tol):  # pragma: no cover - compiled
    """Concentrated-likelihood residuals ``v / sqrt(F) * (prod F)^(1/2m)`` (len(idx), m)."""
    nb = idx.shape[0]
    m = w.shape[1]
    out = np.empty((nb, m))
    one = np.empty((1, m))
    for r in range(nb):
        b = idx[r]
        mu, phi, theta = _polys_from_x(x[r], p, q, P, Q, s, const)
        for t in range(m):
            one[0, t] = w[b, t]
        v, F, _, _ = kalman_filter(
            one,
            phi.reshape((1, phi.shape[0])),
            theta.reshape((1, theta.shape[0])),
            np.full(1, mu),
            tol,
        )
        lg = 0.0
        for t in range(m):
            lg += np.log(F[0, t])
        g = np.exp(0.5 * lg / m)
        for t in range(m):
            out[r, t] = v[0, t] / np.sqrt(F[0, t]) * g
    return out
