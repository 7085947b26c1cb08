"""State-space pieces of (seasonal) ARIMA on a batch of series, array-API only.

The ARMA part of the (already differenced) series ``w`` (``B`` series, ``m`` points) is written
in Harvey's representation: state dimension ``r = max(pf, qf + 1)`` with ``pf = p + s P`` and
``qf = q + s Q`` the orders of the expanded polynomials,

    w_t - mu = Z a_t,  a_{t+1} = T a_t + R eps_{t+1},  Z = e_1,
    T[:, 0] = (phi_1, ..., phi_r), T[i, i+1] = 1,  R = (1, theta_1, ..., theta_{r-1}),

and ``a_1 ~ N(0, sigma2 P0)`` with ``P0`` the stationary covariance (``P0 = T P0 T' + R R'``),
computed exactly from the ARMA autocovariances. This is the representation and the initial
state of statsmodels' ``SARIMAX(..., simple_differencing=True)`` and of R's ``arima``.

Everything is scaled by ``sigma2`` (``sigma2 = 1`` inside the filter): the filter returns the
innovations ``v_t`` and their scaled variances ``F_t``; the exact log-likelihood is

    -m/2 log(2 pi sigma2) - 1/2 sum log F_t - 1/2 sum v_t^2 / (sigma2 F_t).

Companion structure keeps one filter step at ``O(r^2)`` per series. Once the predicted
covariance stops moving for every series of the batch (largest change below ``tol``) the
filter continues with the steady-state gain (``O(r)`` per step), as statsmodels does.
"""

from __future__ import annotations

from typing import Any

from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace

#: Largest change of the predicted covariance (scaled by sigma2) at which the filter freezes
#: the gain; far below any tolerance the likelihood is compared at.
STEADY_TOL = 1e-13


def _zeros(xp: Any, shape: tuple[int, ...], like: Any) -> Any:
    return xp.zeros(shape, dtype=xp.float64, device=device_of(like))


def pacf_to_coefs(x: Any, sign: float = 1.0) -> Any:
    """Unconstrained values to the coefficients of a stationary (invertible) polynomial.

    Monahan/Jones: ``x`` (B, k) maps to partial autocorrelations ``x / sqrt(1 + x^2)`` in
    (-1, 1), then the Durbin-Levinson recursion gives ``a`` (B, k) with every root of
    ``1 - a_1 z - ... - a_k z^k`` outside the unit circle. ``sign=-1`` returns ``-a`` (MA
    coefficients of an invertible ``1 + theta_1 z + ...``).
    """
    xp = get_namespace(x)
    k = x.shape[-1]
    if k == 0:
        return x
    r = x / xp.sqrt(1.0 + x * x)
    cols = [r[:, 0]]
    for j in range(1, k):
        rj = r[:, j]
        new = [cols[i] - rj * cols[j - 1 - i] for i in range(j)]
        cols = new + [rj]
    a = xp.stack(cols, axis=1)
    return sign * a


def coefs_to_pacf(a: Any, sign: float = 1.0, clip: float = 0.98) -> Any:
    """Inverse of :func:`pacf_to_coefs` (partial autocorrelations clipped to ``+-clip``)."""
    xp = get_namespace(a)
    k = a.shape[-1]
    if k == 0:
        return a
    cols = [sign * a[:, i] for i in range(k)]
    rs = [None] * k
    for j in range(k - 1, -1, -1):
        rj = xp.clip(cols[j], -clip, clip)
        rs[j] = rj
        den = 1.0 - rj * rj
        cols = [(cols[i] + rj * cols[j - 1 - i]) / den for i in range(j)]
    r = xp.stack(rs, axis=1)
    return r / xp.sqrt(1.0 - r * r)


def expand_ar(ar: Any, sar: Any, s: int) -> Any:
    """Coefficients ``phi`` (B, p + s P) of ``(1 - sum ar_i L^i)(1 - sum sar_j L^(s j))``
    written as ``1 - sum phi_k L^k``."""
    return -_poly_mul(-ar, -sar, s)


def expand_ma(ma: Any, sma: Any, s: int) -> Any:
    """Coefficients ``theta`` (B, q + s Q) of ``(1 + sum ma_i L^i)(1 + sum sma_j L^(s j))``
    written as ``1 + sum theta_k L^k``."""
    return _poly_mul(ma, sma, s)


def _poly_mul(a: Any, b: Any, s: int) -> Any:
    """Coefficients 1..deg of ``(1 + sum a_i L^i)(1 + sum b_j L^(s j))``, shape (B, p + s P)."""
    xp = get_namespace(a, b)
    p, P = a.shape[1], b.shape[1]
    deg = p + s * P
    B = a.shape[0]
    zero = _zeros(xp, (B,), a)
    cols = [zero for _ in range(deg)]
    for i in range(1, p + 1):
        cols[i - 1] = cols[i - 1] + a[:, i - 1]
    for j in range(1, P + 1):
        cols[s * j - 1] = cols[s * j - 1] + b[:, j - 1]
        for i in range(1, p + 1):
            cols[s * j + i - 1] = cols[s * j + i - 1] + a[:, i - 1] * b[:, j - 1]
    if deg == 0:
        return _zeros(xp, (B, 0), a)
    return xp.stack(cols, axis=1)


def psi_weights(phi: Any, theta: Any, n: int) -> Any:
    """MA(infinity) weights ``psi_0..psi_{n-1}`` (B, n) of ``theta(L) / phi(L)``.

    ``phi`` (B, pf) in the ``1 - sum phi_k L^k`` convention (it may hold unit roots: the
    weights of an integrated model grow, as they should); ``theta`` (B, qf).
    """
    xp = get_namespace(phi, theta)
    pf, qf = phi.shape[1], theta.shape[1]
    psi = [xp.ones(phi.shape[0], dtype=xp.float64, device=device_of(phi))]
    for j in range(1, n):
        v = theta[:, j - 1] if j <= qf else psi[0] * 0.0
        for i in range(1, min(j, pf) + 1):
            v = v + phi[:, i - 1] * psi[j - i]
        psi.append(v)
    return xp.stack(psi, axis=1)


def stationary_cov(phi: Any, theta: Any, r: int) -> Any:
    """Stationary state covariance ``P0`` (B, r, r) of the Harvey form (``sigma2 = 1``).

    Solves ``P0 = T P0 T' + R R'`` exactly: the ARMA autocovariances ``gamma_0..gamma_r``
    (a ``(pf+1)``-square linear system, then the AR recursion) give the first row
    ``P0[0, j] = cov(w_t, a_t[j])``; the rest follows from the Lyapunov equation written
    elementwise, ``P0[i, j] = P0[i+1, j+1] + G[i, j]``, filled from the last row up.
    """
    xp = get_namespace(phi, theta)
    B = phi.shape[0]
    pf, qf = phi.shape[1], theta.shape[1]
    one = xp.ones(B, dtype=xp.float64, device=device_of(phi))
    zero = one * 0.0
    ph = [phi[:, i] for i in range(pf)] + [zero] * (r + 1 - pf)  # phi_1..phi_{r+1}
    th = [one] + [theta[:, i] for i in range(qf)] + [zero] * (r + 1 - qf)  # theta_0..
    psi = psi_weights(phi, theta, max(r, qf + 1))
    ps = [psi[:, j] for j in range(psi.shape[1])]
    # rhs_k = sum_{j=k}^{qf} theta_j psi_{j-k}
    rhs = []
    for k in range(pf + 1):
        acc = zero
        for j in range(k, qf + 1):
            acc = acc + th[j] * ps[j - k]
        rhs.append(acc)
    if pf > 0:
        rows = []
        for k in range(pf + 1):
            row = [zero for _ in range(pf + 1)]
            row[k] = row[k] + 1.0
            for i in range(1, pf + 1):
                row[abs(k - i)] = row[abs(k - i)] - ph[i - 1]
            rows.append(xp.stack(row, axis=1))
        A = xp.stack(rows, axis=1)
        g = xp.linalg.solve(A, xp.stack(rhs, axis=1)[..., None])[..., 0]
        gam = [g[:, k] for k in range(pf + 1)]
    else:
        gam = [rhs[0]]
    for k in range(len(gam), r + 1):
        acc = zero
        for j in range(k, qf + 1):
            acc = acc + th[j] * ps[j - k]
        for i in range(1, pf + 1):
            acc = acc + ph[i - 1] * gam[k - i]
        gam.append(acc)
    # first row c_j = cov(w_t, a_t[j])
    c = [gam[0]]
    for j in range(1, r):
        acc = zero
        for k in range(j, r):
            acc = acc + ph[k] * gam[k + 1 - j] + th[k] * ps[k - j]
        c.append(acc)
    c.append(zero)  # c_r = 0 (beyond the state)
    cvec = xp.stack(c, axis=1)  # (B, r+1)
    phv = xp.stack(ph[: r + 1], axis=1)  # phi_1..phi_{r+1}: index i -> phi_{i+1}
    thv = xp.stack(th[:r], axis=1)  # theta_0..theta_{r-1}
    phr = phv[:, :r]
    c1 = cvec[:, 1 : r + 1]  # P0[0, i+1]
    G = (
        phr[:, :, None] * c1[:, None, :]
        + c1[:, :, None] * phr[:, None, :]
        + phr[:, :, None] * phr[:, None, :] * cvec[:, 0][:, None, None]
        + thv[:, :, None] * thv[:, None, :]
    )
    rows = [None] * r
    prev = G[:, r - 1, :]
    rows[r - 1] = prev
    for i in range(r - 2, -1, -1):
        shifted = xp.concat([prev[:, 1:], zero[:, None]], axis=1)
        prev = G[:, i, :] + shifted
        rows[i] = prev
    P0 = xp.stack(rows, axis=1)
    return P0


def state_dim(pf: int, qf: int) -> int:
    """Harvey state dimension ``max(pf, qf + 1)``."""
    return max(pf, qf + 1)


def _pad(xp: Any, c: Any, r: int) -> Any:
    if c.shape[1] >= r:
        return c[:, :r]
    return xp.concat([c, _zeros(xp, (c.shape[0], r - c.shape[1]), c)], axis=1)


def kalman_filter(w: Any, phi: Any, theta: Any, mu: Any, tol: float = STEADY_TOL):
    """Innovations of the exact Kalman filter of ARMA(``phi``, ``theta``) + mean ``mu``.

    Parameters
    ----------
    w : array (B, m)
        Differenced series.
    phi : array (B, pf), theta : array (B, qf)
        Expanded AR and MA coefficients (stationary, invertible).
    mu : array (B,)
        Mean of ``w``.

    Returns
    -------
    v : array (B, m)
        Innovations ``w_t - E[w_t | w_<t]``.
    F : array (B, m)
        Their variances divided by ``sigma2``.
    a : array (B, r)
        Predicted state for ``t = m + 1`` (without the mean).
    P : array (B, r, r)
        Its covariance divided by ``sigma2``.
    """
    xp = get_namespace(w, phi, theta)
    B, m = w.shape
    r = state_dim(phi.shape[1], theta.shape[1])
    P = stationary_cov(phi, theta, r)
    phr = _pad(xp, phi, r)
    one = xp.ones((B, 1), dtype=xp.float64, device=device_of(w))
    R = xp.concat([one, _pad(xp, theta, r - 1)], axis=1) if r > 1 else one
    RR = R[:, :, None] * R[:, None, :]
    zrow = _zeros(xp, (B, 1, r), w)
    zcol = _zeros(xp, (B, r, 1), w)
    zvec = _zeros(xp, (B, 1), w)
    a = _zeros(xp, (B, r), w)
    wc = w - mu[:, None]
    vs, Fs = [], []
    t = 0
    steady = False
    while t < m:
        v = wc[:, t] - a[:, 0]
        F = P[:, 0, 0]
        Pc = P[:, :, 0]
        af = a + Pc * (v / F)[:, None]
        a = phr * af[:, 0:1] + xp.concat([af[:, 1:], zvec], axis=1)
        vs.append(v)
        Fs.append(F)
        t += 1
        if not steady:
            Pf = P - Pc[:, :, None] * Pc[:, None, :] / F[:, None, None]
            M1 = phr[:, :, None] * Pf[:, 0:1, :] + xp.concat([Pf[:, 1:, :], zrow], axis=1)
            Pn = phr[:, None, :] * M1[:, :, 0:1] + xp.concat([M1[:, :, 1:], zcol], axis=2) + RR
            if t % 4 == 0 and bool(xp.max(xp.abs(Pn - P)) < tol):
                steady = True
                K = Pc / F[:, None]
            P = Pn
        if steady:
            break
    if steady:
        F = P[:, 0, 0]
        while t < m:
            v = wc[:, t] - a[:, 0]
            af = a + K * v[:, None]
            a = phr * af[:, 0:1] + xp.concat([af[:, 1:], zvec], axis=1)
            vs.append(v)
            Fs.append(F)
            t += 1
    return xp.stack(vs, axis=1), xp.stack(Fs, axis=1), a, P


def css_residuals(w: Any, phi: Any, theta: Any, mu: Any, ncond: int) -> Any:
    """Conditional-sum-of-squares residuals ``e_t``, ``t = ncond..m-1`` (B, m - ncond).

    ``e_t = (w_t - mu) - sum phi_i (w_{t-i} - mu) - sum theta_j e_{t-j}`` with ``e_t = 0``
    for ``t < ncond`` (R's ``arima(method="CSS")``; ``ncond >= pf``).
    """
    xp = get_namespace(w, phi, theta)
    B, m = w.shape
    pf, qf = phi.shape[1], theta.shape[1]
    wc = w - mu[:, None]
    u = wc[:, ncond:]
    for i in range(1, pf + 1):
        u = u - phi[:, i - 1 : i] * wc[:, ncond - i : m - i]
    if qf == 0:
        return u
    th = xp.flip(theta, axis=1)  # theta_qf..theta_1
    hist = _zeros(xp, (B, qf), w)
    es = []
    for t in range(m - ncond):
        e = u[:, t] - xp.sum(th * hist, axis=1)
        es.append(e)
        hist = xp.concat([hist[:, 1:], e[:, None]], axis=1)
    return xp.stack(es, axis=1)
