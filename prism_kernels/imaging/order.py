"""Order statistics by selection: exact k-th smallest values without sorting the data.

:func:`kth_smallest` returns, along the last axis, the values a full sort would put at the
given ranks, bit for bit, on every array library:

* NumPy, compiled (:mod:`~prism_kernels.compiled`): a histogram selection per row.
  One pass finds which of :data:`BINS` equal-width bins between the row's minimum and maximum
  holds each wanted rank (bins are monotone in the value, so the count of the bins before it
  says which rank each of its values can have); a second pass copies only the values of
  those bins, among which the ranks are then found by quickselect (:func:`select_inplace`)
  or, when a bin is crowded, by the same two passes inside it. Three passes over the data
  whatever the number of ranks; no full sort.
* NumPy without numba: ``numpy.partition`` (introselect).
* PyTorch: ``torch.kthvalue`` per rank (a selection).
* CuPy and other libraries: ``xp.partition`` where the library has it, else a sort.

:func:`quantiles` builds NumPy's default (linear) percentiles on top, and :func:`median`
the median (the mean of the two middle values for an even count), both along the last axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from prism_kernels import compiled
from prism_kernels.backend import backend_name, get_namespace
from prism_kernels.compiled import njit

#: Bins of one selection pass.
BINS = 4096

#: A bin holding at most this many of the values is ordered by a sort.
_SMALL = 2048


@njit
def _hist(x, c, absdev, lo, scale, counts):  # pragma: no cover - compiled
    """Counts per bin of ``v = x`` (or ``v = |x - c|`` with ``absdev``)."""
    top = counts.size - 1
    for j in range(counts.size):
        counts[j] = 0
    for i in range(x.size):
        v = abs(x[i] - c) if absdev else x[i]
        counts[min(int((v - lo) * scale), top)] += 1


@njit
def _fill_segments(x, c, absdev, lo, scale, jlo, jhi, start, fill, buf):  # pragma: no cover
    """Copy each value ``v`` whose bin ``b`` (``jlo <= b <= jhi``) has a segment into it."""
    top = start.size - 1
    for i in range(x.size):
        v = abs(x[i] - c) if absdev else x[i]
        b = min(int((v - lo) * scale), top)
        if jlo <= b <= jhi:
            s = start[b]
            if s >= 0:
                buf[s + fill[b]] = v
                fill[b] += 1


@njit
def sort_inplace(a):  # pragma: no cover - compiled
    """Sort the 1-D array ``a`` in place (Shell's sort with Tokuda's gaps).

    Used instead of ``numpy.sort`` inside compiled kernels: it compiles in a tenth of the time,
    and it sorts the few hundred values of a histogram bin as fast."""
    n = a.size
    gap = 1
    while gap < n:  # Tokuda: g_k = ceil((9 (9/4)^k - 4) / 5): 1, 4, 9, 20, 46, 103, ...
        gap = (9 * gap + 4) // 4 + 1
    while gap > 1:
        gap = max(1, (4 * gap - 4) // 9)
        for i in range(gap, n):
            t = a[i]
            j = i
            while j >= gap and a[j - gap] > t:
                a[j] = a[j - gap]
                j -= gap
            a[j] = t


@njit
def select_inplace(a, ranks, out):  # pragma: no cover - compiled
    """``out[q]`` = the value at rank ``ranks[q]`` of the 1-D ``a`` (``ranks`` sorted, in
    ``[0, a.size)``); ``a`` is reordered.

    Quickselect (Hoare partition around a median of three), each rank searched only right
    of the previous one; a range still unsettled after 64 partitions is sorted
    (:func:`sort_inplace`), which bounds the worst case. Exact: the values a sort would put
    there."""
    n = a.size
    lo = 0
    for q in range(ranks.size):
        k = ranks[q]
        left = lo
        right = n - 1
        depth = 0
        while right > left:
            depth += 1
            if depth > 64:
                sort_inplace(a[left : right + 1])
                break
            x = a[left]
            y = a[(left + right) // 2]
            z = a[right]
            pivot = max(min(x, y), min(max(x, y), z))
            i = left
            j = right
            while i <= j:
                while a[i] < pivot:
                    i += 1
                while a[j] > pivot:
                    j -= 1
                if i <= j:
                    t = a[i]
                    a[i] = a[j]
                    a[j] = t
                    i += 1
                    j -= 1
            if k <= j:
                right = j
            elif k >= i:
                left = i
            else:  # j < k < i: a[k] equals the pivot, in place
                break
        out[q] = a[k]
        lo = k + 1


@njit
def _rank_bins(counts, ranks):  # pragma: no cover - compiled
    """The bin holding each of the sorted ``ranks`` and the count of values before it."""
    rbin = np.empty(ranks.size, np.int64)
    rbefore = np.empty(ranks.size, np.int64)
    acc = 0
    j = 0
    for q in range(ranks.size):
        while acc + counts[j] <= ranks[q]:
            acc += counts[j]
            j += 1
        rbin[q] = j
        rbefore[q] = acc
    return rbin, rbefore


@njit
def _gather(x, c, absdev, lo, hi, ranks, out, counts, buf):  # pragma: no cover - compiled
    """Values at sorted ``ranks`` of ``v = x`` (or ``v = |x - c|`` with ``absdev``) into ``out``.

    ``lo <= v <= hi`` for every value, ``lo < hi``. Returns False when the bin width is not
    representable (the caller then sorts)."""
    nb = counts.size
    width = hi - lo
    scale = nb / width
    if not (width < np.inf and scale < np.inf):  # an overflowing range or a subnormal width
        return False
    _hist(x, c, absdev, lo, scale, counts)
    nr = ranks.size
    rbin, rbefore = _rank_bins(counts, ranks)
    # Segments of buf, one per wanted bin (in bin order).
    start = np.full(nb, -1, np.int64)
    fill = np.zeros(nb, np.int64)
    m = 0
    for q in range(nr):
        b = rbin[q]
        if start[b] < 0:
            start[b] = m
            m += counts[b]
    _fill_segments(x, c, absdev, lo, scale, rbin[0], rbin[nr - 1], start, fill, buf)
    # Each wanted bin: sorted when small, selected again when crowded.
    q = 0
    while q < nr:
        b = rbin[q]
        r = q
        while r < nr and rbin[r] == b:
            r += 1
        seg = buf[start[b] : start[b] + counts[b]]
        local = np.empty(r - q, np.int64)  # ranks inside the bin (loops, not array
        for t in range(q, r):  # expressions: numba compiles those slowly)
            local[t - q] = ranks[t] - rbefore[q]
        slo = seg[0]
        shi = seg[0]
        for i in range(seg.size):
            slo = min(slo, seg[i])
            shi = max(shi, seg[i])
        if slo == shi:
            for t in range(q, r):
                out[t] = slo
        elif seg.size <= _SMALL:
            sub = np.empty(r - q)
            select_inplace(seg, local, sub)
            for t in range(q, r):
                out[t] = sub[t - q]
        else:
            sub = np.empty(r - q)
            inner = np.zeros(counts.size, np.int64)
            tmp = np.empty(seg.size)
            if _gather2(seg, slo, shi, local, sub, inner, tmp):
                for t in range(q, r):  # a loop: a slice assignment compiles slowly
                    out[t] = sub[t - q]
            else:
                sort_inplace(seg)
                for t in range(q, r):
                    out[t] = seg[local[t - q]]
        q = r
    return True


@njit
def _gather2(x, lo, hi, ranks, out, counts, buf):  # pragma: no cover - compiled
    """One more level of :func:`_gather` (numba compiles no recursion here), then sorts."""
    n = x.size
    nb = counts.size
    width = hi - lo
    scale = nb / width
    if not (width < np.inf and scale < np.inf):  # an overflowing range or a subnormal width
        return False
    _hist(x, 0.0, _false(x), lo, scale, counts)
    rbin, rbefore = _rank_bins(counts, ranks)
    for q in range(ranks.size):
        m = 0
        for i in range(n):
            v = x[i]
            if min(int((v - lo) * scale), nb - 1) == rbin[q]:
                buf[m] = v
                m += 1
        one = np.empty(1)
        rank = np.empty(1, np.int64)
        rank[0] = ranks[q] - rbefore[q]
        select_inplace(buf[:m], rank, one)
        out[q] = one[0]
    return True


@njit
def _select(x, c, absdev, lo, hi, ranks, out, counts, buf):  # pragma: no cover - compiled
    if lo == hi:
        for q in range(out.size):
            out[q] = lo
        return
    if not _gather(x, c, absdev, lo, hi, ranks, out, counts, buf):
        v = np.empty(x.size)
        for i in range(x.size):
            v[i] = abs(x[i] - c) if absdev else x[i]
        sort_inplace(v)
        for q in range(ranks.size):
            out[q] = v[ranks[q]]


@njit
def select_row(x, ranks, out, counts, buf):  # pragma: no cover - compiled
    """Values of the 1-D float64 ``x`` at the sorted, distinct ``ranks`` into ``out``."""
    lo = x[0]
    hi = x[0]
    for i in range(x.size):
        v = x[i]
        lo = min(lo, v)
        hi = max(hi, v)
    _select(x, 0.0, _false(x), lo, hi, ranks, out, counts, buf)


@njit
def _false(x):  # pragma: no cover - compiled
    """``False``, as a run-time value: given a literal ``False``, numba compiles a copy of
    :func:`_gather` that runs three times slower (measured), so flags are never literals."""
    return x.size < 0


@njit
def _select_rows(x, ranks, out):  # pragma: no cover - compiled
    counts = np.zeros(BINS, np.int64)
    buf = np.empty(x.shape[1])
    for b in range(x.shape[0]):
        select_row(x[b], ranks, out[b], counts, buf)


@njit
def _middle(n):  # pragma: no cover - compiled
    if n % 2:
        return np.array([n // 2], np.int64)
    return np.array([n // 2 - 1, n // 2], np.int64)


@njit
def _select_near(x, c, absdev, a, b, ranks, out, buf):  # pragma: no cover - compiled
    """Values at sorted ``ranks`` of ``v = x`` (or ``|x - c|``) when they lie in ``[a, b]``.

    One pass counts the values below ``a`` and copies those in ``[a, b]``; if every rank falls
    among the copied ones, those ranks are selected among them (:func:`select_inplace`,
    exact) and True is returned, else
    False (nothing is known: the caller selects by histogram)."""
    below = 0
    m = 0
    for i in range(x.size):
        v = abs(x[i] - c) if absdev else x[i]
        below += v < a
        buf[m] = v  # written always, kept when inside: no branch
        m += (v >= a) & (v <= b)
    for q in range(ranks.size):
        if ranks[q] < below or ranks[q] >= below + m:
            return False
    local = np.empty(ranks.size, np.int64)
    for q in range(ranks.size):
        local[q] = ranks[q] - below
    select_inplace(buf[:m], local, out)
    return True


@njit
def median_mad(x, lo, hi, counts, buf, hint_med=np.nan, hint_mad=np.nan):
    # pragma: no cover - compiled
    """``numpy.median`` of the 1-D float64 ``x`` (its values in ``[lo, hi]``) and the median of
    ``|x - median|`` (each the mean of the two middle values when the count is even).

    ``hint_med``, ``hint_mad``: values these are expected close to (a previous frame's, a
    previous iteration's). Each is then first looked for in a window of 0.03 ``hint_mad``
    around its hint (:func:`_select_near`: one pass), by histogram when it is not there; the
    result is the same either way."""
    n = x.size
    ranks = _middle(n)
    two = np.empty(2)
    half = 0.03 * hint_mad
    near = half > 0 and np.isfinite(hint_med) and np.isfinite(half)
    if not (
        near and _select_near(x, 0.0, _false(x), hint_med - half, hint_med + half, ranks, two, buf)
    ):
        _select(x, 0.0, _false(x), lo, hi, ranks, two, counts, buf)
    med = two[0] if n % 2 else 0.5 * (two[0] + two[1])
    t = not _false(x)
    if not (near and _select_near(x, med, t, hint_mad - half, hint_mad + half, ranks, two, buf)):
        _select(x, med, t, 0.0, max(med - lo, hi - med), ranks, two, counts, buf)
    return med, (two[0] if n % 2 else 0.5 * (two[0] + two[1]))


@njit
def median_of(x, counts, buf):  # pragma: no cover - compiled
    """``numpy.median`` of a 1-D float64 array (the mean of the two middle values when even)."""
    n = x.size
    two = np.empty(2)
    select_row(x, _middle(n), two, counts, buf)
    return two[0] if n % 2 else 0.5 * (two[0] + two[1])


@njit
def float_key(x):  # pragma: no cover - compiled
    """The bits of the float64 ``x`` as a uint64 in the same order (``-0.0`` as ``+0.0``)."""
    u = np.array([x + 0.0]).view(np.uint64)[0]
    top = np.uint64(1) << np.uint64(63)
    return (~u) if (u & top) else (u | top)


@njit
def radix_sort_keys(kb, payload, kb2, pb2):  # pragma: no cover - compiled
    """Stable sort of ``payload`` (in place) by the uint64 keys ``kb`` (overwritten).

    Least-significant-digit radix sort, six passes of 11 bits; a pass whose digit is the
    same for every key is skipped. ``kb2`` (uint64) and ``pb2`` (payload's dtype) are
    scratch at least as long. Equal keys keep their input order."""
    n = kb.size
    bits = 11
    nbin = 1 << bits
    npass = 6
    hist = np.zeros((npass, nbin), np.int64)
    mask = np.uint64(nbin - 1)
    for i in range(n):
        u = kb[i]
        for d in range(npass):
            hist[d, (u >> np.uint64(d * bits)) & mask] += 1
    src_k = kb[:n]
    src_p = payload[:n]
    dst_k = kb2[:n]
    dst_p = pb2[:n]
    swapped = False
    for d in range(npass):
        h = hist[d]
        trivial = False
        for j in range(nbin):
            if h[j] != 0:
                trivial = h[j] == n
                break
        if trivial:
            continue
        acc = 0
        for j in range(nbin):
            c = h[j]
            h[j] = acc
            acc += c
        sh = np.uint64(d * bits)
        for i in range(n):
            u = src_k[i]
            j = (u >> sh) & mask
            pos = h[j]
            h[j] = pos + 1
            dst_k[pos] = u
            dst_p[pos] = src_p[i]
        src_k, dst_k = dst_k, src_k
        src_p, dst_p = dst_p, src_p
        swapped = not swapped
    if swapped:
        for i in range(n):
            payload[i] = src_p[i]


@njit
def radix_sort_by(keys, payload, kb, kb2, pb2):  # pragma: no cover - compiled
    """Stable sort of ``payload`` (in place) by the float64 ``keys`` (same length); ``kb``,
    ``kb2`` (uint64) and ``pb2`` (payload's dtype) scratch. Equal keys keep their input order,
    so a payload listed by index comes out ordered by ``(key, index)``."""
    n = keys.size
    for i in range(n):
        kb[i] = float_key(keys[i])
    radix_sort_keys(kb[:n], payload, kb2, pb2)


@njit
def _median_mad_rows(x, med, mad):  # pragma: no cover - compiled
    counts = np.zeros(BINS, np.int64)
    buf = np.empty(x.shape[1])
    for b in range(x.shape[0]):
        row = x[b]
        lo = row[0]
        hi = row[0]
        for i in range(row.size):
            lo = min(lo, row[i])
            hi = max(hi, row[i])
        med[b], mad[b] = median_mad(row, lo, hi, counts, buf)


def median_and_mad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.median`` along the last axis and the median of ``|x - median|``, for a host
    float64 array ``(..., N)``, N >= 1 (compiled: no temporary array, no sort).

    Returns two arrays of shape ``(...)``; without numba, ``numpy.median`` twice."""
    if not compiled.enabled():
        med = np.median(x, axis=-1)
        return med, np.median(np.abs(x - med[..., None]), axis=-1)
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    med = np.empty(flat.shape[0])
    mad = np.empty(flat.shape[0])
    _median_mad_rows(flat, med, mad)
    return med.reshape(x.shape[:-1]), mad.reshape(x.shape[:-1])


def _ranks(ks: Sequence[int], n: int) -> np.ndarray:
    r = np.asarray(ks, dtype=np.int64).reshape(-1)
    if r.size and (r.min() < 0 or r.max() >= n):
        raise ValueError(f"ranks must lie in [0, {n}); got {ks}")
    return r


def kth_smallest(x: Any, ks: Sequence[int]) -> Any:
    """The values at ranks ``ks`` (0-based) of each row of ``x`` in ascending order.

    Parameters
    ----------
    x : array, (..., N), real, finite
        Any array library.
    ks : sequence of int
        Ranks in ``[0, N)``, in any order, repeats allowed.

    Returns
    -------
    array, (..., len(ks))
        On the input's library, in ``x``'s floating dtype (integers become float64); entry
        ``[..., i]`` is what ``sort(x)[..., ks[i]]`` holds.
    """
    xp = get_namespace(x)
    n = int(x.shape[-1])
    r = _ranks(ks, n)
    uniq, inv = np.unique(r, return_inverse=True)
    if not xp.isdtype(x.dtype, "real floating"):
        x = xp.astype(x, xp.float64)
    name = backend_name(x)
    lead = tuple(int(s) for s in x.shape[:-1])
    if name == "numpy":
        flat = np.ascontiguousarray(x.reshape(-1, n))
        if compiled.enabled() and flat.dtype == np.float64 and n > 0:
            vals = np.empty((flat.shape[0], uniq.size))
            _select_rows(flat, uniq, vals)
        else:
            vals = np.partition(flat, uniq, axis=-1)[:, uniq]
        return vals[:, inv].reshape(*lead, r.size)
    if name == "torch":
        import torch

        flat = x.reshape(-1, n)
        cols = [torch.kthvalue(flat, int(k) + 1, dim=-1).values for k in uniq]
        vals = torch.stack(cols, dim=-1) if cols else flat[:, :0]
        return vals[:, torch.as_tensor(inv, device=flat.device)].reshape(*lead, r.size)
    flat = xp.reshape(x, (-1, n))
    part = getattr(xp, "partition", None)
    if part is not None:
        srt = part(flat, [int(k) for k in uniq], axis=-1)
    else:
        srt = xp.sort(flat, axis=-1)
    idx = xp.asarray(uniq[inv])
    return xp.reshape(xp.take(srt, idx, axis=-1), (*lead, r.size))


def quantiles(x: Any, qs: Sequence[float]) -> Any:
    """Percentiles ``qs`` (in [0, 100]) along the last axis, as ``numpy.percentile`` (linear).

    Returns an array ``(..., len(qs))`` on the input's library: with ``pos = q / 100 (N - 1)``,
    ``lo = floor(pos)``, the value ``s[lo] + (s[lo + 1] - s[lo]) (pos - lo)`` of the sorted row
    ``s`` (``s[lo]`` at the top), from :func:`kth_smallest` of the ranks involved.
    """
    xp = get_namespace(x)
    n = int(x.shape[-1])
    los, his, fracs = [], [], []
    for q in qs:
        pos = float(q) / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        los.append(lo)
        his.append(min(lo + 1, n - 1))
        fracs.append(pos - lo)
    v = kth_smallest(x, los + his)
    k = len(los)
    cols = [v[..., i] + (v[..., k + i] - v[..., i]) * fracs[i] for i in range(k)]
    return xp.stack(cols, axis=-1)


def median(x: Any) -> Any:
    """Median along the last axis (the mean of the two middle values for an even count).

    Parameters
    ----------
    x : array, (..., N), N >= 1

    Returns
    -------
    array, (...)
        On the input's library.
    """
    n = int(x.shape[-1])
    if n % 2:
        return kth_smallest(x, [n // 2])[..., 0]
    v = kth_smallest(x, [n // 2 - 1, n // 2])
    return 0.5 * (v[..., 0] + v[..., 1])


@compiled.warmer
def _warm() -> None:
    """Compile the selections (:func:`compiled.warm`)."""
    x = np.random.default_rng(0).normal(size=(2, 5001))
    kth_smallest(x, [0, 2500, 5000])
    quantiles(x[0], [1.0, 50.0, 99.0])
    median_and_mad(x)
