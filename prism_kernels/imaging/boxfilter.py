"""The local mean over a square window, compiled, equal bit for bit to ``scipy.ndimage``.

``scipy.ndimage.uniform_filter(frame, size, mode="reflect")`` filters the rows' axis, then
the columns' axis, each with a running sum kept undivided (``s += entering - leaving``, the
output ``s / size``). The kernels here do the same additions in the same order, so their
result is identical to SciPy's; they are faster because the first pass runs down all columns
at once (vectorised) and the second keeps four rows' sums in flight and divides afterwards.

Borders are SciPy's ``"reflect"`` (``d c b a | a b c d | d c b a``), for any window size,
also one larger than the frame. ``size == 1`` returns the frame unchanged, as SciPy does.

:func:`box_mean` is the entry point for a host ``(B, H, W)`` stack; the ``@njit`` helpers are
shared with the fused detector (:mod:`~prism_kernels.imaging.fused`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from prism_kernels import compiled
from prism_kernels.compiled import njit


@njit
def reflect(i, n):  # pragma: no cover - compiled
    """SciPy's ``"reflect"`` index: ``i`` mapped into ``[0, n)``."""
    if n == 1:
        return 0
    period = 2 * n
    i = i % period
    if i < 0:
        i += period
    return i if i < n else period - 1 - i


@njit
def window_table(n, size):  # pragma: no cover - compiled
    """Indices of a running window along an axis of length ``n``.

    Returns ``first`` (the ``size`` indices summed for output 0) and ``enter``, ``leave``
    (for output ``i >= 1``: ``s += x[enter[i]] - x[leave[i]]``)."""
    r1 = size // 2
    first = np.empty(size, np.int64)
    for k in range(size):
        first[k] = reflect(k - r1, n)
    enter = np.zeros(n, np.int64)
    leave = np.zeros(n, np.int64)
    for i in range(1, n):
        enter[i] = reflect(i + size - 1 - r1, n)
        leave[i] = reflect(i - 1 - r1, n)
    return first, enter, leave


@njit
def vertical_mean(f, out, size, first, enter, leave):  # pragma: no cover - compiled
    """Running mean down each column of ``f`` (H, W) into ``out`` (float64).

    Returns False when ``f`` holds a NaN or an infinity (``out`` is then meaningless)."""
    h, w = f.shape
    s = np.zeros(w)
    ok = True
    for k in range(size):
        row = f[first[k]]
        for x in range(w):
            s[x] += row[x]
    o = out[0]
    for x in range(w):
        o[x] = s[x] / size
    for y in range(1, h):
        fa = f[enter[y]]
        fb = f[leave[y]]
        o = out[y]
        for x in range(w):
            t = s[x] + (np.float64(fa[x]) - np.float64(fb[x]))
            s[x] = t
            o[x] = t / size
    for x in range(w):  # a non-finite input leaves a non-finite sum
        ok &= np.isfinite(s[x])
    return ok


@njit
def horizontal_sums(v, out, size, first, enter, leave):  # pragma: no cover - compiled
    """Undivided running sums along each row of ``v`` (H, W) into ``out`` (four rows at once)."""
    h, w = v.shape
    y = 0
    while y + 4 <= h:
        r0 = v[y]
        r1 = v[y + 1]
        r2 = v[y + 2]
        r3 = v[y + 3]
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        for k in range(size):
            j = first[k]
            t0 += r0[j]
            t1 += r1[j]
            t2 += r2[j]
            t3 += r3[j]
        o0 = out[y]
        o1 = out[y + 1]
        o2 = out[y + 2]
        o3 = out[y + 3]
        o0[0] = t0
        o1[0] = t1
        o2[0] = t2
        o3[0] = t3
        for x in range(1, w):
            a = enter[x]
            b = leave[x]
            t0 += r0[a] - r0[b]
            t1 += r1[a] - r1[b]
            t2 += r2[a] - r2[b]
            t3 += r3[a] - r3[b]
            o0[x] = t0
            o1[x] = t1
            o2[x] = t2
            o3[x] = t3
        y += 4
    while y < h:
        r0 = v[y]
        t0 = 0.0
        for k in range(size):
            t0 += r0[first[k]]
        o0 = out[y]
        o0[0] = t0
        for x in range(1, w):
            t0 += r0[enter[x]] - r0[leave[x]]
            o0[x] = t0
        y += 1


@njit
def box_frame(f, out, tmp, size, ty, tx):  # pragma: no cover - compiled
    """``uniform_filter(f, size, mode="reflect")`` of one frame into ``out``; ``tmp`` scratch.

    ``ty``/``tx`` are :func:`window_table` of the rows and columns. Returns False for a
    non-finite input."""
    h, w = f.shape
    if size == 1:
        ok = True
        for y in range(h):
            for x in range(w):
                v = np.float64(f[y, x])
                out[y, x] = v
                ok &= np.isfinite(v)
        return ok
    ok = vertical_mean(f, tmp, size, ty[0], ty[1], ty[2])
    y = 0
    while y < h:  # four rows of sums, then their division while they are in cache
        nr = min(4, h - y)
        horizontal_sums(tmp[y : y + nr], out[y : y + nr], size, tx[0], tx[1], tx[2])
        for r in range(y, y + nr):
            o = out[r]
            for x in range(w):
                o[x] = o[x] / size
        y += nr
    return ok


@njit
def _box_stack(frames, out, size):  # pragma: no cover - compiled
    b, h, w = frames.shape
    tmp = np.empty((h, w))
    ty = window_table(h, size)
    tx = window_table(w, size)
    ok = True
    for i in range(b):
        ok &= box_frame(frames[i], out[i], tmp, size, ty, tx)
    return ok


def box_mean(frames: np.ndarray, size: int) -> np.ndarray:
    """Local mean over ``size`` x ``size`` windows of each frame of a host stack.

    Parameters
    ----------
    frames : ndarray, (B, H, W)
        Counts (float64, or any real dtype: copied to float64 where not compiled).
    size : int
        Window side in pixels (>= 1).

    Returns
    -------
    ndarray, float64, (B, H, W)
        Equal to ``scipy.ndimage.uniform_filter(frames, (1, size, size), mode="reflect")``.
    """
    if not compiled.enabled() or frames.dtype != np.float64:
        a = np.asarray(frames, dtype=np.float64)
        return ndimage.uniform_filter(a, size=(1, size, size), mode="reflect")
    a = np.ascontiguousarray(frames)
    out = np.empty(a.shape)
    _box_stack(a, out, int(size))
    return out


@compiled.warmer
def _warm() -> None:
    """Compile the box filter (:func:`compiled.warm`)."""
    box_mean(np.random.default_rng(0).normal(size=(1, 12, 10)), 5)
