"""Change points: PELT and binary segmentation with the l1, l2 and normal costs of ruptures.

Both detectors take a batch ``y`` of shape ``(B, n)`` (or one series ``(n,)``) and return,
per series, the breakpoints the way ``ruptures`` returns them: the sorted end indices of the
segments, the last one being ``n`` (``[n]`` means "no change"). The segment costs are the
ruptures definitions (``CostL1``, ``CostL2``, ``CostNormal`` with its default
``add_small_diag=True``), for a segment ``x = y[a:b]`` of length ``L = b - a``:

- ``"l1"``: ``sum |x - median(x)|`` (least absolute deviation);
- ``"l2"``: ``sum (x - mean(x))**2 = L * var(x)`` (least squares);
- ``"normal"``: ``L * log(var(x) + 1e-6)`` (Gaussian mean-and-variance change; ``var`` with
  ``ddof=0``; the ``1e-6`` is ruptures' bias for truly constant segments).

``min_size`` (shortest segment, raised to the cost's own minimum: 2 for l1 and normal, 1 for
l2) and ``jump`` (PELT: breakpoints only at multiples of ``jump``; binary segmentation:
candidate splits at ``start + k * jump`` of each segment) have ruptures' meaning and defaults
(2 and 5); the searches, tie-breaks and PELT's pruning rule are ruptures' own
(``Pelt._seg``, ``Binseg._seg``), so for the same cost, penalty, ``min_size`` and ``jump`` the
breakpoints are the same (tests/timeseries/test_changepoints.py).

Segment costs come from cumulative sums of the (per-series centred) values, O(1) per segment
for l2 and normal; l1 needs each segment's median. Two engines compute the same thing:

- ``"numba"``: the compiled loop (NumPy input), ruptures' algorithm per series;
- ``"array"``: array-API code vectorised over the batch and PELT's candidate set (one Python
  step per candidate end point), so it runs on NumPy, PyTorch and CuPy. Its l1 cost sorts a
  ``(B, K, t)`` window per step (memory ``B * n**2 / jump`` at the last step): fine for short
  series, use the NumPy engine for long ones.

``engine="auto"`` uses numba for NumPy input and the array engine otherwise.

The BIC penalty (``penalty="bic"``) is ``(p + 1) * log(n) * s`` per series: ``p`` parameters
per segment model (1 for l1 and l2, the median or the mean; 2 for normal, mean and variance)
plus one for the change point's location, in units of ``-2 log-likelihood``; ``s`` converts
the cost into those units: ``s = sigma**2`` for l2 (Gaussian, known variance), ``s = sigma /
(2 sqrt 2)`` for l1 (Laplace of scale ``b = sigma / sqrt 2``, cost ``= (b / 2) * -2 log L``),
``s = 1`` for normal (its cost is ``-2 log L`` up to a constant). ``sigma`` is the robust noise
standard deviation ``1.4826 * MAD(diff(y)) / sqrt 2`` (first differences, so level shifts do
not inflate it); when it is 0 the sample standard deviation of ``y``, and 1 if that is 0 too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prism_kernels.arrays import as_float, device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.compiled import njit, warmer
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import as_batch

COSTS = ("l1", "l2", "normal")
_COST_CODE = {"l1": 0, "l2": 1, "normal": 2}
_COST_MIN_SIZE = {"l1": 2, "l2": 1, "normal": 2}
_NORMAL_BIAS = 1e-6  # ruptures CostNormal(add_small_diag=True)
ENGINES = ("auto", "numba", "array")
MAX_POINTS = 50_000_000  # B * n per call
MAX_L1_ARRAY = 200_000_000  # values sorted per step by the array engine's l1 cost


# ---------------------------------------------------------------- validation and penalties


def _check_cost(cost: str) -> str:
    if cost not in COSTS:
        raise InvalidInput("cost", f"unknown cost {cost!r}; choose one of {', '.join(COSTS)}")
    return cost


def _check_int(value: Any, field: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidInput(field, f"must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_engine(engine: str, xp: Any) -> str:
    if engine not in ENGINES:
        raise InvalidInput("engine", f"unknown engine {engine!r}; choose one of {ENGINES}")
    is_numpy = xp.__name__.endswith("numpy")
    if engine == "numba" and not is_numpy:
        raise InvalidInput("engine", "the numba engine takes NumPy input; use 'array' or 'auto'")
    if engine == "auto":
        return "numba" if is_numpy else "array"
    return engine


def _sanity(n: int, n_bkps: int, jump: int, min_size: int) -> bool:
    """ruptures.utils.sanity_check: can ``n_bkps`` breakpoints exist at all?"""
    if n_bkps > n // jump:
        return False
    return n_bkps * math.ceil(min_size / jump) * jump + min_size <= n


def noise_sigma(y: Any) -> np.ndarray:
    """Robust noise standard deviation per series, ``1.4826 * MAD(diff(y)) / sqrt(2)``.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)

    Returns
    -------
    numpy.ndarray, shape (B,)
        Falls back to the sample standard deviation of ``y`` where the MAD is 0, and to 1
        where that is 0 too (a constant series). Computed on the host (a median has no
        array-API form).
    """
    y = to_numpy(as_batch(y, "values"))
    if y.shape[1] < 3:
        sig = np.zeros(y.shape[0])
    else:
        d = np.diff(y, axis=1)
        mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
        sig = 1.4826 * mad / math.sqrt(2.0)
    sd = y.std(axis=1)
    sig = np.where(sig > 0, sig, sd)
    return np.where(sig > 0, sig, 1.0)


def bic_penalty(y: Any, cost: str = "l2") -> np.ndarray:
    """BIC penalty per series for ``cost``: ``(p + 1) * log(n) * s`` (see the module docstring).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    cost : {"l1", "l2", "normal"}

    Returns
    -------
    numpy.ndarray, shape (B,)
        Penalty in the cost's units (added once per segment).
    """
    cost = _check_cost(cost)
    yb = to_numpy(as_batch(y, "values"))
    n = yb.shape[1]
    logn = math.log(max(n, 2))
    if cost == "normal":
        return np.full(yb.shape[0], 3.0 * logn)
    sig = noise_sigma(yb)
    scale = sig**2 if cost == "l2" else sig / (2.0 * math.sqrt(2.0))
    return 2.0 * logn * scale


def _penalties(penalty: Any, y: Any, cost: str, B: int) -> np.ndarray:
    if isinstance(penalty, str):
        if penalty.lower() != "bic":
            raise InvalidInput(
                "penalty", f"must be a number, an array (B,) or 'bic', got {penalty!r}"
            )
        return bic_penalty(y, cost)
    try:
        pen = np.asarray(to_numpy(penalty) if hasattr(penalty, "shape") else penalty, float)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("penalty", f"must be a number, an array (B,) or 'bic': {exc}") from None
    if pen.ndim == 0:
        pen = np.full(B, float(pen))
    if pen.shape != (B,):
        raise InvalidInput("penalty", f"expected a scalar or shape ({B},), got {pen.shape}")
    if not np.all(np.isfinite(pen)) or np.any(pen < 0):
        raise InvalidInput("penalty", "must be finite and >= 0")
    return pen


def _prepare(y: Any, cost: str, min_size: int, jump: int) -> tuple[Any, Any, int, int]:
    cost = _check_cost(cost)
    jump = _check_int(jump, "jump", 1)
    min_size = max(_check_int(min_size, "min_size", 1), _COST_MIN_SIZE[cost])
    yb = as_batch(y, "values")
    xp = get_namespace(yb)
    B, n = yb.shape
    if B * n > MAX_POINTS:
        raise InvalidInput("values", f"{B} x {n} points is more than {MAX_POINTS:,} per call")
    return yb, xp, min_size, jump


def _cumsums(yb: Any, xp: Any) -> tuple[Any, Any]:
    """Cumulative sums (B, n+1) of the per-series centred values and of their squares."""
    z = yb - xp.mean(yb, axis=1, keepdims=True)
    zero = xp.zeros((yb.shape[0], 1), dtype=yb.dtype, device=_dev(yb))
    S1 = xp.concat([zero, xp.cumulative_sum(z, axis=1)], axis=1)
    S2 = xp.concat([zero, xp.cumulative_sum(z * z, axis=1)], axis=1)
    return S1, S2


def _dev(a: Any) -> Any:
    return device_of(a)


# ------------------------------------------------------------------------ compiled engine


@njit
def _block_sum(a, lo, n):  # pragma: no cover - compiled
    """NumPy's pairwise-sum leaf (n <= 128): 8 accumulators, then the tail in order."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    m = n - (n % 8)
    while i < m:
        k = lo + i
        r0 += a[k]
        r1 += a[k + 1]
        r2 += a[k + 2]
        r3 += a[k + 3]
        r4 += a[k + 4]
        r5 += a[k + 5]
        r6 += a[k + 6]
        r7 += a[k + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit
def _pairwise_sum(a, lo, n):  # pragma: no cover - compiled
    """``a[lo:lo + n].sum()`` in NumPy's own order (pairwise, 8 accumulators, leaves <= 128).

    ruptures' l1 cost is ``abs(x - median).sum()``; summing in the same order makes equal
    gains (frequent with the l1 cost) equal here too, so ties break the same way. NumPy
    recurses (``sum(a[:n2]) + sum(a[n2:])``, ``n2 = n // 2`` rounded down to a multiple of
    8); this walks the same tree with an explicit stack (a recursive function cannot be
    cached reliably by numba).
    """
    if n <= 128:
        return _block_sum(a, lo, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    stage = np.empty(64, np.int64)  # 0: fresh, 1: left child pending, 2: right child pending
    left = np.empty(64)
    sp = 1
    los[0], ns[0], stage[0] = lo, n, 0
    val = 0.0
    have = False  # ``val`` holds a finished child's sum to hand to the frame on top
    while sp > 0:
        top = sp - 1
        if have:
            if stage[top] == 1:
                left[top] = val
                stage[top] = 2
                n2 = ns[top] // 2
                n2 -= n2 % 8
                los[sp], ns[sp], stage[sp] = los[top] + n2, ns[top] - n2, 0
                sp += 1
                have = False
            else:
                val = left[top] + val
                sp -= 1
            continue
        if ns[top] <= 128:
            val = _block_sum(a, los[top], ns[top])
            sp -= 1
            have = True
            continue
        n2 = ns[top] // 2
        n2 -= n2 % 8
        stage[top] = 1
        los[sp], ns[sp], stage[sp] = los[top], n2, 0
        sp += 1
    return val


@njit
def _cost_nb(code, y, S1, S2, a, b):  # pragma: no cover - compiled
    L = b - a
    if code == 0:
        seg = np.sort(y[a:b])
        m = L // 2
        if L % 2 == 1:
            med = seg[m]
        else:
            med = (seg[m - 1] + seg[m]) / 2.0
        dev = np.empty(L)
        for i in range(L):
            dev[i] = abs(y[a + i] - med)
        return _pairwise_sum(dev, 0, L)
    s1 = S1[b] - S1[a]
    s2 = S2[b] - S2[a]
    if code == 1:
        c = s2 - s1 * s1 / L
        return c if c > 0.0 else 0.0
    v = s2 / L - (s1 / L) * (s1 / L)
    if v < 0.0:
        v = 0.0
    return L * math.log(v + 1e-6)


@njit
def _pelt_nb(code, Y, S1, S2, pens, min_size, jump, out, counts):  # pragma: no cover - compiled
    B, n = Y.shape
    first = ((min_size + jump - 1) // jump) * jump
    if first == 0:
        first = jump
    ng = 0
    for _k in range(first, n, jump):
        ng += 1
    grid = np.empty(ng + 1, np.int64)
    j = 0
    for k in range(first, n, jump):
        grid[j] = k
        j += 1
    grid[ng] = n
    F = np.empty(n + 1)
    prev = np.empty(n + 1, np.int64)
    valid = np.zeros(n + 1, np.bool_)
    adm = np.empty(ng + 3, np.int64)
    vals = np.empty(ng + 3)
    for s in range(B):
        y = Y[s]
        s1 = S1[s]
        s2 = S2[s]
        pen = pens[s]
        valid[:] = False
        valid[0] = True
        F[0] = 0.0
        m = 0
        for g in range(ng + 1):
            bkp = grid[g]
            adm[m] = ((bkp - min_size) // jump) * jump
            m += 1
            best = np.inf
            bt = -1
            k = 0
            for i in range(m):
                t = adm[i]
                if not valid[t]:  # ruptures: KeyError, no subproblem
                    continue
                v = F[t] + (_cost_nb(code, y, s1, s2, t, bkp) + pen)
                vals[k] = v
                k += 1
                if v < best:
                    best = v
                    bt = t
            F[bkp] = best
            prev[bkp] = bt
            valid[bkp] = True
            # ruptures zips the admissible list with the subproblems (truncating).
            mm = 0
            for i in range(k):
                if vals[i] <= best + pen:
                    adm[mm] = adm[i]
                    mm += 1
            m = mm
        c = 0
        t = n
        while t > 0:
            out[s, c] = t
            c += 1
            t = prev[t]
        counts[s] = c
        # reverse in place
        for i in range(c // 2):
            tmp = out[s, i]
            out[s, i] = out[s, c - 1 - i]
            out[s, c - 1 - i] = tmp


@njit
def _single_bkp_nb(code, y, S1, S2, start, end, min_size, jump):  # pragma: no cover
    seg_cost = _cost_nb(code, y, S1, S2, start, end)
    best_g = -np.inf
    best_b = -1
    for b in range(start, end, jump):
        if b - start >= min_size and end - b >= min_size:
            g = (seg_cost - _cost_nb(code, y, S1, S2, start, b)) - _cost_nb(code, y, S1, S2, b, end)
            if best_b < 0 or g >= best_g:  # max over (gain, bkp): ties -> larger bkp
                best_g = g
                best_b = b
    if best_b < 0:
        return -1, 0.0
    return best_b, best_g


@njit
def _binseg_nb(
    code, Y, S1, S2, n_bkps, pens, use_pen, min_size, jump, out, counts
):  # pragma: no cover
    B, n = Y.shape
    bk = np.empty(n + 1, np.int64)
    cb = np.empty(n + 1, np.int64)
    cg = np.empty(n + 1)
    ce = np.empty(n + 1, np.int64)
    for s in range(B):
        y = Y[s]
        s1 = S1[s]
        s2 = S2[s]
        nb = 1
        bk[0] = n
        ce[:] = -1
        while True:
            best_g = 0.0
            best_b = -1
            start = 0
            for i in range(nb):
                end = bk[i]
                if ce[start] != end:
                    b, g = _single_bkp_nb(code, y, s1, s2, start, end, min_size, jump)
                    cb[start] = b
                    cg[start] = g
                    ce[start] = end
                if i == 0 or cg[start] > best_g:  # max(): first maximal segment
                    best_g = cg[start]
                    best_b = cb[start]
                start = end
            if best_b < 0:
                break
            if use_pen:
                if not best_g > pens[s]:
                    break
            elif not nb - 1 < n_bkps:
                break
            # insert best_b, keep bk sorted
            i = nb
            while i > 0 and bk[i - 1] > best_b:
                bk[i] = bk[i - 1]
                i -= 1
            bk[i] = best_b
            nb += 1
        for i in range(nb):
            out[s, i] = bk[i]
        counts[s] = nb


# ------------------------------------------------------------------- array-API engine


def _costs_xp(xp: Any, cost: str, yb: Any, S1: Any, S2: Any, starts: Any, end: int) -> Any:
    """Costs (B, K) of the segments ``[starts[k], end)`` of every series, array-API."""
    L = float(end) - xp.astype(starts, yb.dtype)  # (K,)
    if cost == "l1":
        B = yb.shape[0]
        K = starts.shape[0]
        w = yb[:, None, :end]  # (B, 1, end)
        pos = xp.arange(end, device=_dev(yb))
        inside = pos[None, :] >= starts[:, None]  # (K, end)
        big = xp.asarray(xp.inf, dtype=yb.dtype, device=_dev(yb))
        win = xp.where(inside[None, :, :], w, big)  # (B, K, end)
        srt = xp.sort(win, axis=-1)
        Li = end - starts  # (K,): the segment's sorted values sit at [0, L), inf fill after
        lo = xp.reshape((Li - 1) // 2, (1, K, 1))
        hi = xp.reshape(Li // 2, (1, K, 1))
        lo = xp.broadcast_to(lo, (B, K, 1))
        hi = xp.broadcast_to(hi, (B, K, 1))
        m_lo = xp.take_along_axis(srt, lo, axis=-1)[..., 0]
        m_hi = xp.take_along_axis(srt, hi, axis=-1)[..., 0]
        odd = xp.reshape((Li % 2) == 1, (1, K))
        med = xp.where(odd, m_lo, (m_lo + m_hi) / 2.0)  # (B, K)
        dev = xp.where(inside[None, :, :], xp.abs(w - med[:, :, None]), 0.0)
        return xp.sum(dev, axis=-1)
    s1 = S1[:, end : end + 1] - xp.take(S1, starts, axis=1)
    s2 = S2[:, end : end + 1] - xp.take(S2, starts, axis=1)
    if cost == "l2":
        return xp.clip(s2 - s1 * s1 / L, min=0.0)
    v = xp.clip(s2 / L - (s1 / L) * (s1 / L), min=0.0)
    return L * xp.log(v + _NORMAL_BIAS)


def _pelt_xp(xp, cost, yb, pens, min_size, jump) -> list[list[int]]:
    B, n = yb.shape
    dev = _dev(yb)
    S1, S2 = _cumsums(yb, xp)
    first = max(((min_size + jump - 1) // jump) * jump, jump)
    grid = list(range(first, n, jump)) + [n]
    positions = [0] + grid[:-1]  # every admissible start, in ruptures' order
    K = len(positions)
    pos = xp.asarray(positions, dtype=xp.int64, device=dev)
    pen = as_float(pens, xp, yb)  # (B,)
    F = xp.zeros((B, K + 1), dtype=yb.dtype, device=dev)  # F at positions, then at n
    alive = xp.ones((B, K), dtype=xp.bool, device=dev)
    prev = []
    inf = xp.asarray(xp.inf, dtype=yb.dtype, device=dev)
    for bkp in grid:
        k = sum(1 for p in positions if p <= bkp - min_size)  # eligible prefix
        c = _costs_xp(xp, cost, yb, S1, S2, pos[:k], bkp)
        vals = F[:, :k] + (c + pen[:, None])
        vals = xp.where(alive[:, :k], vals, inf)
        arg = xp.argmin(vals, axis=1)
        best = xp.min(vals, axis=1)
        prev.append(arg)
        keep = vals <= (best + pen)[:, None]
        if k < K:
            alive = xp.concat([alive[:, :k] & keep, alive[:, k:]], axis=1)
        else:
            alive = alive & keep
        if bkp < n:
            j = positions.index(bkp)
            F = xp.concat([F[:, :j], best[:, None], F[:, j + 1 :]], axis=1)
    P = np.stack([to_numpy(a) for a in prev], axis=1)  # (B, len(grid)) index into positions
    index_of = {p: i for i, p in enumerate(grid)}
    out = []
    for s in range(B):
        bk = []
        t = n
        while t > 0:
            bk.append(t)
            t = positions[int(P[s, index_of[t]])]
        out.append(bk[::-1])
    return out


def _single_bkp_xp(xp, cost, ys, s1, s2, start, end, min_size, jump) -> tuple[int, float]:
    """Best split of ``[start, end)`` of one series (1, n): ruptures ``Binseg.single_bkp``."""
    dev = _dev(ys)
    cand = [b for b in range(start, end, jump) if b - start >= min_size and end - b >= min_size]
    if not cand:
        return -1, 0.0
    st = xp.asarray([start], dtype=xp.int64, device=dev)
    whole = _costs_xp(xp, cost, ys, s1, s2, st, end)
    right = _costs_xp(xp, cost, ys, s1, s2, xp.asarray(cand, dtype=xp.int64, device=dev), end)
    left = xp.concat([_costs_xp(xp, cost, ys, s1, s2, st, b) for b in cand], axis=1)
    g = to_numpy((whole - left) - right)[0]
    i = len(g) - 1 - int(np.argmax(g[::-1]))  # max over (gain, bkp): ties -> larger bkp
    return cand[i], float(g[i])


def _binseg_xp(xp, cost, yb, n_bkps, pens, min_size, jump) -> list[list[int]]:
    """Binary segmentation, array-API: each segment's split gains in one vectorised step."""
    B, n = yb.shape
    S1, S2 = _cumsums(yb, xp)
    out = []
    for s in range(B):
        ys, s1, s2 = yb[s : s + 1], S1[s : s + 1], S2[s : s + 1]
        cache: dict[tuple[int, int], tuple[int, float]] = {}
        bkps = [n]
        while True:
            best_b, best_g = -1, 0.0
            start = 0
            for i, end in enumerate(bkps):
                if (start, end) not in cache:
                    cache[(start, end)] = _single_bkp_xp(
                        xp, cost, ys, s1, s2, start, end, min_size, jump
                    )
                b, g = cache[(start, end)]
                if i == 0 or g > best_g:
                    best_b, best_g = b, g
                start = end
            if best_b < 0:
                break
            if n_bkps is None:
                if not best_g > pens[s]:
                    break
            elif not len(bkps) - 1 < n_bkps:
                break
            bkps = sorted(bkps + [best_b])
        out.append(bkps)
    return out


# ------------------------------------------------------------------------------ public


def pelt(
    y: Any,
    penalty: float | str | Any = "bic",
    cost: str = "l2",
    min_size: int = 2,
    jump: int = 5,
    engine: str = "auto",
) -> list[list[int]]:
    """Penalised change points by PELT (ruptures ``Pelt``), batched over series.

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        Series (finite values).
    penalty : float, array (B,) or "bic"
        Penalty added per segment, in the cost's units (>= 0), or ``"bic"``
        (:func:`bic_penalty`).
    cost : {"l1", "l2", "normal"}
    min_size : int
        Shortest segment (raised to the cost's minimum).
    jump : int
        Breakpoints only at multiples of ``jump`` (1: anywhere).
    engine : {"auto", "numba", "array"}

    Returns
    -------
    list of list of int
        Per series, sorted segment end indices; the last is ``n``.

    Raises
    ------
    InvalidInput
        Bad values (empty, NaN/inf, wrong shape), unknown cost or engine, ``min_size`` or
        ``jump`` < 1, a bad penalty, or ``n < min_size`` (field ``values``).
    """
    yb, xp, min_size, jump = _prepare(y, cost, min_size, jump)
    B, n = yb.shape
    if not _sanity(n, 0, jump, min_size):
        raise InvalidInput("values", f"{n} points cannot hold one segment of min_size {min_size}")
    pens = _penalties(penalty, yb, cost, B)
    eng = _check_engine(engine, xp)
    if eng == "array" and cost == "l1" and B * (n // jump + 1) * n > MAX_L1_ARRAY:
        raise InvalidInput(
            "values",
            f"too large for the array engine's l1 cost ({B} x {n}); pass NumPy input "
            "(the compiled engine)",
        )
    if eng == "array":
        return _pelt_xp(xp, cost, yb, pens, min_size, jump)
    Y = np.ascontiguousarray(to_numpy(yb))
    S1, S2 = (np.ascontiguousarray(a) for a in _cumsums(Y, get_namespace(Y)))
    out = np.zeros((B, n + 1), np.int64)
    counts = np.zeros(B, np.int64)
    _pelt_nb(_COST_CODE[cost], Y, S1, S2, pens, min_size, jump, out, counts)
    return [out[s, : counts[s]].tolist() for s in range(B)]


def binseg(
    y: Any,
    n_breakpoints: int | None = None,
    penalty: float | str | Any | None = None,
    cost: str = "l2",
    min_size: int = 2,
    jump: int = 5,
    engine: str = "auto",
) -> list[list[int]]:
    """Change points by binary segmentation (ruptures ``Binseg``), batched over series.

    Give exactly one stopping rule: ``n_breakpoints`` (split until that many breakpoints, or
    until no admissible split is left) or ``penalty`` (split while the best gain exceeds it;
    a number, an array (B,) or ``"bic"``).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    n_breakpoints : int, optional
    penalty : float, array (B,) or "bic", optional
    cost : {"l1", "l2", "normal"}
    min_size, jump : int
        As in ruptures (candidate splits at ``start + k * jump`` of each segment).
    engine : {"auto", "numba", "array"}

    Returns
    -------
    list of list of int
        Per series, sorted segment end indices; the last is ``n``.
    """
    yb, xp, min_size, jump = _prepare(y, cost, min_size, jump)
    B, n = yb.shape
    if (n_breakpoints is None) == (penalty is None):
        raise InvalidInput("n_breakpoints", "give exactly one of n_breakpoints and penalty")
    if n_breakpoints is not None:
        n_breakpoints = _check_int(n_breakpoints, "n_breakpoints", 0)
        if not _sanity(n, n_breakpoints, jump, min_size):
            raise InvalidInput(
                "n_breakpoints",
                f"{n_breakpoints} breakpoints do not fit in {n} points with min_size {min_size}"
                f" and jump {jump}",
            )
        pens = np.zeros(B)
    else:
        if not _sanity(n, 0, jump, min_size):
            raise InvalidInput("values", f"{n} points cannot hold a segment of min_size {min_size}")
        pens = _penalties(penalty, yb, cost, B)
    eng = _check_engine(engine, xp)
    if eng == "array":
        return _binseg_xp(xp, cost, yb, n_breakpoints, pens, min_size, jump)
    Y = np.ascontiguousarray(to_numpy(yb))
    S1, S2 = (np.ascontiguousarray(a) for a in _cumsums(Y, get_namespace(Y)))
    out = np.zeros((B, n + 1), np.int64)
    counts = np.zeros(B, np.int64)
    nb = -1 if n_breakpoints is None else n_breakpoints
    _binseg_nb(
        _COST_CODE[cost], Y, S1, S2, nb, pens, n_breakpoints is None, min_size, jump, out, counts
    )
    return [out[s, : counts[s]].tolist() for s in range(B)]


def segment_stats(y: Any, breakpoints: list[list[int]] | list[int]) -> list[list[dict[str, Any]]]:
    """Per series and segment: ``start``, ``end`` (exclusive), ``n``, ``mean``, ``std`` (ddof=0).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    breakpoints : list of list of int (one per series) or one list for a single series
        Segment end indices, the last being ``n`` (as :func:`pelt` returns them).

    Returns
    -------
    list of list of dict
        JSON-able plain floats and ints.
    """
    yb = to_numpy(as_batch(y, "values"))
    B, n = yb.shape
    if len(breakpoints) and not isinstance(breakpoints[0], (list, tuple, np.ndarray)):
        breakpoints = [breakpoints]  # type: ignore[list-item]
    if len(breakpoints) != B:
        raise InvalidInput(
            "breakpoints", f"expected {B} lists (one per series), got {len(breakpoints)}"
        )
    out = []
    for s, bk in enumerate(breakpoints):
        bk = [int(b) for b in bk]
        if not bk or bk[-1] != n or any(b <= a for a, b in zip([0, *bk[:-1]], bk, strict=True)):
            raise InvalidInput(
                f"breakpoints.{s}", f"must increase strictly from > 0 and end with n={n}"
            )
        segs = []
        start = 0
        for end in bk:
            x = yb[s, start:end]
            segs.append(
                {
                    "start": start,
                    "end": end,
                    "n": end - start,
                    "mean": float(x.mean()),
                    "std": float(x.std()),
                }
            )
            start = end
        out.append(segs)
    return out


@warmer
def _warm() -> None:
    """Compile the PELT and binary-segmentation loops for every cost (small inputs)."""
    y = np.repeat([0.0, 3.0, 1.0], 12)[None, :] + np.linspace(0.0, 0.1, 36)[None, :]
    for cost in COSTS:
        pelt(y, penalty=5.0, cost=cost, engine="numba")
        binseg(y, penalty=5.0, cost=cost, engine="numba")
        binseg(y, n_breakpoints=2, cost=cost, engine="numba")
