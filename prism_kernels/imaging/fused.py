"""The detector fused into one compiled pass per frame (background, noise, threshold, components).

:func:`detect_frames` does, frame by frame and without materialising any stack-sized array,
what :func:`prism_kernels.imaging.hotspots.detect` does with whole-stack NumPy/SciPy steps,
and gives the same numbers, bit for bit for the ``"mean"`` and given backgrounds, to rounding
(~1e-15 relative in the background) for ``"sigma_clip"``:

1. the background: the ``"mean"`` window (:mod:`~prism_kernels.imaging.boxfilter`, SciPy's
   running sums), the ``"sigma_clip"`` window (the mean, then ``iterations`` times the mean
   of the kept pixels, ``keep = frame - model <= clip_sigma * sigma``, computed from the few
   rejected pixels only: :func:`_clipped_mean`) or a given model;
2. the noise of the residual (:func:`~prism_kernels.imaging.noise.frame_noise`): medians by
   exact selection (:func:`~prism_kernels.imaging.order.median_of`) of every second row and
   column, the level from a grid of the model, the same floor;
3. the threshold ``center + k_sigma * sigma`` and the connected components above it, found
   by a flood fill from each unvisited pixel in raster order (so labels come in the order of
   ``scipy.ndimage.label``), with 8- or 4-connectivity;
4. each component's measures summed over its pixels in raster order (as ``numpy.bincount``
   sums them), the residual around its peak (for the PSF width) and a ``(2 rad + 1)^2``
   patch of residual around its weighted centroid (for the windowed centroid).

A frame the fast path cannot finish exactly returns a status instead: 1 when over half its
residuals are equal (the noise then falls back to a standard deviation: the caller uses the
NumPy path), 2 when it holds a NaN or an infinity (the caller raises the validation error).

Measures come back in one float64 table (:data:`FIELDS`, one row per component) and a patch
array; the per-frame centre, sigma and level in three arrays.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from prism_kernels.compiled import njit
from prism_kernels.imaging.boxfilter import box_frame, window_table
from prism_kernels.imaging.noise import (
    LEVEL_SAMPLES,
    MAD_FACTOR,
    MIN_NOISE_PIXELS,
    RELATIVE_FLOOR,
    SUBSAMPLE_MIN,
)
from prism_kernels.imaging.order import BINS, median_mad, median_of, sort_inplace

#: Columns of the measures table.
FIELDS = (
    "frame",
    "row",
    "col",
    "peak",
    "value",
    "area",
    "integrated",
    "x_weighted",
    "y_weighted",
    "row_start",
    "col_start",
    "row_stop",
    "col_stop",
    "r_left",
    "r_centre",
    "r_right",
    "r_up",
    "r_down",
)
_NF = len(FIELDS)

#: Background codes of :func:`detect_frames`.
GIVEN, MEAN, SIGMA_CLIP = 0, 1, 2
#: Frame status codes.
OK, FALLBACK, NOT_FINITE = 0, 1, 2


@njit
def _noise(f, m, sub, lev, samp, counts, buf, hint):  # pragma: no cover - compiled
    """Median and MAD sigma of ``f - m`` over every ``sub``-th row and column, and the
    median of ``m`` over every ``lev``-th (the level). ``hint`` holds the last median and MAD
    (updated here): the selections look near them first (:func:`median_mad`)."""
    h, w = f.shape
    k = 0
    lo = np.inf
    hi = -np.inf
    for y in range(0, h, sub):
        fy = f[y]
        my = m[y]
        for x in range(0, w, sub):
            v = np.float64(fy[x]) - my[x]
            samp[k] = v
            lo = min(lo, v)
            hi = max(hi, v)
            k += 1
    med, mad = median_mad(samp[:k], lo, hi, counts, buf, hint[0], hint[1])
    hint[0] = med
    hint[1] = mad
    sig = MAD_FACTOR * mad
    k = 0
    for y in range(0, h, lev):
        my = m[y]
        for x in range(0, w, lev):
            samp[k] = my[x]
            k += 1
    return med, sig, median_of(samp[:k], counts, buf)


@njit
def _images(p, n, lo, hi, out):  # pragma: no cover - compiled
    """Every index ``i`` in ``[lo, hi]`` that SciPy's ``"reflect"`` maps to ``p`` (of an axis
    of length ``n``), into ``out``; returns their count."""
    period = 2 * n
    k = 0
    for j in range(lo // period - 1, hi // period + 2):
        for base in (p, period - 1 - p):
            i = base + j * period
            if lo <= i <= hi:
                out[k] = i
                k += 1
    return k


@njit
def _clipped_mean(f, m, m0, first, thr, size, pix):  # pragma: no cover - compiled
    """One sigma-clip pass from the rejected pixels only.

    With ``keep = f - m <= thr``, the mean of the kept pixels of each window is
    ``(N m0 - S) / (N - C)``, ``N = size^2``, ``m0`` the plain window mean (``box(f)``), ``S``
    and ``C`` the sum and count of the rejected pixels in the window (each counted as often as
    SciPy's reflected window holds it). Rejected pixels are few (0.13 % of Gaussian noise
    beyond 3 sigma, and the hotspots): each (each reflected image of it) covers a rectangle
    of output pixels. Going down the rows, the rectangles covering the row are kept as a list
    of their left and right edges sorted by column (an edge is inserted when its rectangle
    starts, dropped when it ends); between two edges ``S`` and ``C`` are constant, so the row
    is updated segment by segment in vectorised loops, instead of filtering two whole
    frames. ``m`` is updated in place: where ``C == 0`` it becomes ``m0`` (already is on the
    ``first`` pass, where ``m0`` is ``m``), where ``C == N`` (all rejected) it stays. Equal
    to ``box(f keep) / box(keep)`` to rounding (~1e-15 relative). ``pix`` (int64, H W) is
    scratch."""
    h, w = f.shape
    if not (thr == thr):  # nan (a frame too small for a noise estimate): nothing is kept
        return
    nn = size * size
    r1 = size // 2
    r2 = size - 1 - r1
    nrej = 0
    for y in range(h):
        fy = f[y]
        my = m[y]
        hit = False
        for x in range(w):  # a vectorised look at the row first (measured fastest)
            hit |= np.float64(fy[x]) - my[x] > thr  # finite here: not (<= thr)
        if hit:
            for x in range(w):  # then the rare ones: a well-predicted branch
                if np.float64(fy[x]) - my[x] > thr:
                    pix[nrej] = y * w + x
                    nrej += 1
    # Rectangles of output pixels each rejected pixel (each reflected image of it) falls in.
    ri = np.empty(2 * (size // (2 * h) + 3), np.int64)
    ci = np.empty(2 * (size // (2 * w) + 3), np.int64)
    cap = nrej * ri.size * ci.size
    ey0 = np.empty(cap, np.int64)
    ey1 = np.empty(cap, np.int64)
    ex0 = np.empty(cap, np.int64)
    ex1 = np.empty(cap, np.int64)
    ev = np.empty(cap)
    ne = 0
    for k in range(nrej):
        q = pix[k]
        py = q // w
        px = q - py * w
        v = np.float64(f[py, px])
        nr = _images(py, h, -r1, h - 1 + r2, ri)
        nc = _images(px, w, -r1, w - 1 + r2, ci)
        for a in range(nr):
            for b in range(nc):
                ey0[ne] = max(ri[a] - r2, 0)
                ey1[ne] = min(ri[a] + r1, h - 1)
                ex0[ne] = max(ci[b] - r2, 0)
                ex1[ne] = min(ci[b] + r1, w - 1) + 1
                ev[ne] = v
                ne += 1
    # Rectangles by first row (a counting sort).
    start = np.zeros(h + 1, np.int64)
    for e in range(ne):
        start[ey0[e] + 1] += 1
    for y in range(h):
        start[y + 1] += start[y]
    order = np.empty(ne, np.int64)
    for e in range(ne):
        order[start[ey0[e]]] = e
        start[ey0[e]] += 1
    # Edges of the rectangles covering the row, sorted by column: (column, rectangle, +-1).
    edx = np.empty(2 * ne, np.int64)
    ede = np.empty(2 * ne, np.int64)
    eds = np.empty(2 * ne, np.int64)
    nd = 0
    nxt = 0
    for y in range(h):
        k = 0
        for a in range(nd):  # drop the edges of rectangles that ended above
            if ey1[ede[a]] >= y:
                edx[k] = edx[a]
                ede[k] = ede[a]
                eds[k] = eds[a]
                k += 1
        nd = k
        while nxt < ne and ey0[order[nxt]] <= y:  # insert those starting here
            e = order[nxt]
            nxt += 1
            for side in range(2):
                xe = ex0[e] if side == 0 else ex1[e]
                a = nd
                while a > 0 and edx[a - 1] > xe:
                    edx[a] = edx[a - 1]
                    ede[a] = ede[a - 1]
                    eds[a] = eds[a - 1]
                    a -= 1
                edx[a] = xe
                ede[a] = e
                eds[a] = 1 - 2 * side
                nd += 1
        my = m[y]
        m0y = m0[y]
        sr = 0.0
        cr = 0
        pos = 0
        for a in range(nd + 1):
            xe = edx[a] if a < nd else w
            if xe > pos:  # the segment [pos, xe) has constant S and C
                if cr == 0:
                    if not first:
                        for x in range(pos, xe):
                            my[x] = m0y[x]
                elif cr < nn:
                    den = 1.0 / (nn - cr)
                    if first:  # one array (m0 is m): no aliasing check, vectorised
                        for x in range(pos, xe):
                            my[x] = (nn * my[x] - sr) * den
                    else:
                        for x in range(pos, xe):
                            my[x] = (nn * m0y[x] - sr) * den
                pos = xe
            if a < nd:
                cr += eds[a]
                sr = sr + eds[a] * ev[ede[a]] if cr > 0 else 0.0


@njit
def _grow(table, patches):  # pragma: no cover - compiled
    # Element loops, not slice assignments: those make numba compile its shape-mismatch
    # error message (string formatting), seconds of compile time for nothing.
    n, nf = table.shape
    _, ph, pw = patches.shape
    t2 = np.empty((2 * n, nf))
    p2 = np.empty((2 * n, ph, pw))
    for i in range(n):
        for j in range(nf):
            t2[i, j] = table[i, j]
        for a in range(ph):
            for b in range(pw):
                p2[i, a, b] = patches[i, a, b]
    return t2, p2


@njit
def _components(f, m, b, thr, conn8, min_area, rad, lab, queue, table, patches, count):
    # pragma: no cover - compiled
    """Components of ``f - m > thr`` of frame ``b``: measures appended to ``table``."""
    h, w = f.shape
    p = 2 * rad + 1
    touched = 0
    for y0 in range(h):
        fr = f[y0]
        mr = m[y0]
        hit = False
        for x0 in range(w):  # a vectorised look first: most rows hold nothing
            hit |= np.float64(fr[x0]) - mr[x0] > thr
        if not hit:
            continue
        for x0 in range(w):
            s = y0 * w + x0
            if lab[s] != 0 or not (np.float64(f[y0, x0]) - m[y0, x0] > thr):
                continue
            lab[s] = 1
            head = touched
            tail = touched + 1
            queue[head] = s
            while head < tail:
                cur = queue[head]
                head += 1
                cy = cur // w
                cx = cur - cy * w
                for dy in range(-1, 2):
                    yy = cy + dy
                    if yy < 0 or yy >= h:
                        continue
                    for dx in range(-1, 2):
                        if (dy == 0 and dx == 0) or (not conn8 and dy != 0 and dx != 0):
                            continue
                        xx = cx + dx
                        if xx < 0 or xx >= w:
                            continue
                        q = yy * w + xx
                        if lab[q] == 0 and np.float64(f[yy, xx]) - m[yy, xx] > thr:
                            lab[q] = 1
                            queue[tail] = q
                            tail += 1
            pix = queue[touched:tail].copy()
            sort_inplace(pix)
            touched = tail
            area = pix.size
            if area < min_area:
                continue
            integ = 0.0
            sw = 0.0
            sx = 0.0
            sy = 0.0
            best = -np.inf
            bi = pix[0]
            r0 = h
            c0 = w
            r1 = -1
            c1 = -1
            for i in range(area):
                q = pix[i]
                yy = q // w
                xx = q - yy * w
                r = np.float64(f[yy, xx]) - m[yy, xx]
                wt = max(r, 0.0)
                integ += r
                sw += wt
                sx += wt * xx
                sy += wt * yy
                if r > best:
                    best = r
                    bi = q
                r0 = min(r0, yy)
                r1 = max(r1, yy)
                c0 = min(c0, xx)
                c1 = max(c1, xx)
            py = bi // w
            px = bi - py * w
            safe = sw if sw > 0 else 1.0
            xw = sx / safe if sw > 0 else np.float64(px)
            yw = sy / safe if sw > 0 else np.float64(py)
            if count == table.shape[0]:
                table, patches = _grow(table, patches)
            t = table[count]
            t[0] = b
            t[1] = py
            t[2] = px
            t[3] = best
            t[4] = np.float64(f[py, px])
            t[5] = area
            t[6] = integ
            t[7] = xw
            t[8] = yw
            t[9] = r0
            t[10] = c0
            t[11] = r1 + 1
            t[12] = c1 + 1
            cl = max(px - 1, 0)
            cr = min(px + 1, w - 1)
            ru = max(py - 1, 0)
            rd = min(py + 1, h - 1)
            t[13] = np.float64(f[py, cl]) - m[py, cl]
            t[14] = best
            t[15] = np.float64(f[py, cr]) - m[py, cr]
            t[16] = np.float64(f[ru, px]) - m[ru, px]
            t[17] = np.float64(f[rd, px]) - m[rd, px]
            cy = np.int64(np.rint(yw))
            cx = np.int64(np.rint(xw))
            patch = patches[count]
            for i in range(p):
                yy = cy - rad + i
                for j in range(p):
                    xx = cx - rad + j
                    if 0 <= yy < h and 0 <= xx < w:
                        patch[i, j] = np.float64(f[yy, xx]) - m[yy, xx]
                    else:
                        patch[i, j] = 0.0
            count += 1
    for i in range(touched):
        lab[queue[i]] = 0
    return table, patches, count


@njit
def _all_finite(f):  # pragma: no cover - compiled
    h, w = f.shape
    ok = True
    for y in range(h):
        for x in range(w):
            ok &= np.isfinite(np.float64(f[y, x]))
    return ok


@njit
def _detect_range(
    frames,
    model,
    b0,
    b1,
    method,
    size,
    clip_sigma,
    iterations,
    k_sigma,
    sub,
    lev,
    tiny,
    conn8,
    min_area,
    rad,
    have_noise,
    center,
    sigma,
    level,
    status,
):  # pragma: no cover - compiled
    """Frames ``b0 <= b < b1``: per-frame noise into the given arrays; the measures table,
    patches and count returned."""
    _, h, w = frames.shape
    n = h * w
    mbuf = np.empty((h, w))
    t1 = np.empty((h, w))
    t2 = np.empty((h, w))
    ty = window_table(h, size)
    tx = window_table(w, size)
    samp = np.empty(n)
    buf = np.empty(n)
    counts = np.zeros(BINS, np.int64)
    lab = np.zeros(n, np.int32)
    queue = np.empty(n, np.int64)
    # The last median and MAD, where the next ones are looked for: of the final residual, and
    # of each sigma-clip pass's (a different residual: its own hints, else none would be near).
    hint = np.full(2, np.nan)
    hints = np.full((max(1, iterations), 2), np.nan)
    p = 2 * rad + 1
    table = np.empty((64, _NF))
    patches = np.empty((64, p, p))
    count = 0
    for b in range(b0, b1):
        f = frames[b]
        if method == GIVEN:
            m = model[b]
            if not _all_finite(f):
                status[b] = NOT_FINITE
                continue
        else:
            m = mbuf
            if not box_frame(f, m, t1, size, ty, tx):
                status[b] = NOT_FINITE
                continue
            if method == SIGMA_CLIP:
                bad = False
                m0 = m
                if iterations > 1:  # later passes need the plain mean: a copy
                    m0 = t2
                    for y in range(h):
                        for x in range(w):
                            m0[y, x] = m[y, x]
                for it in range(max(1, iterations)):
                    _, sg, lv = _noise(f, m, sub, lev, samp, counts, buf, hints[it])
                    if not (sg > 0):
                        bad = True
                        break
                    sg = max(sg, RELATIVE_FLOOR * max(abs(lv), 1.0))
                    if tiny:
                        sg = np.nan
                    _clipped_mean(f, m, m0, it == 0, clip_sigma * sg, size, queue)
                if bad:
                    status[b] = FALLBACK
                    continue
        if have_noise:
            c = center[b]
            sg = sigma[b]
        else:
            c, sg, lv = _noise(f, m, sub, lev, samp, counts, buf, hint)
            if not (sg > 0):
                status[b] = FALLBACK
                continue
            sg = max(sg, RELATIVE_FLOOR * max(abs(lv), 1.0))
            if tiny:
                sg = np.nan
            center[b] = c
            sigma[b] = sg
            level[b] = lv
        status[b] = OK
        thr = c + k_sigma * sg
        table, patches, count = _components(
            f, m, b, thr, conn8, min_area, rad, lab, queue, table, patches, count
        )
    return table, patches, count


def detect_frames(
    frames: np.ndarray,
    *,
    method: int,
    model: np.ndarray | None = None,
    size: int = 31,
    clip_sigma: float = 3.0,
    iterations: int = 1,
    k_sigma: float = 6.0,
    connectivity: int = 8,
    min_area: int = 1,
    rad: int = 12,
    workers: int = 1,
    noise: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Run the fused detector over a host stack.

    Parameters
    ----------
    frames : ndarray, (B, H, W)
        Counts, float64 or uint16 (other dtypes: convert first), C-contiguous.
    method : {GIVEN, MEAN, SIGMA_CLIP}
        Background; ``GIVEN`` reads ``model`` (float64, frames' shape).
    size, clip_sigma, iterations
        Window side (pixels), clipping level (robust sigmas) and passes of the window methods.
    k_sigma : float
        Threshold in noise sigmas above the residual's median.
    connectivity : {8, 4}
    min_area : int
        Components with fewer pixels are skipped.
    rad : int
        Half side of the residual patch stored around each weighted centroid (pixels).
    workers : int
        Threads, each over a contiguous block of frames (the kernel releases the GIL).
    noise : (center, sigma), optional
        Per-frame residual centre and noise sigma (B,) already known (e.g. a fitted
        :class:`~prism_kernels.imaging.background.Background`); otherwise estimated.

    Returns
    -------
    dict
        ``table`` (K, len(FIELDS)) float64, ``patches`` (K, 2 rad + 1, 2 rad + 1),
        ``center``, ``sigma``, ``level`` (B,) float64 and ``status`` (B,) int8 (OK,
        FALLBACK, NOT_FINITE), components in frame order.
    """
    b, h, w = frames.shape
    sub = 2 if h > 1 and w > 1 and ((h + 1) // 2) * ((w + 1) // 2) >= SUBSAMPLE_MIN else 1
    lev = max(1, math.ceil(math.sqrt(h * w / LEVEL_SAMPLES)))
    center = np.zeros(b)
    sigma = np.zeros(b)
    level = np.zeros(b)
    if noise is not None:
        center[:] = np.asarray(noise[0], dtype=np.float64)
        sigma[:] = np.asarray(noise[1], dtype=np.float64)
    status = np.zeros(b, dtype=np.int8)
    mdl = model if model is not None else np.empty((0, h, w))
    args = (
        int(method),
        int(size),
        float(clip_sigma),
        int(iterations),
        float(k_sigma),
        sub,
        lev,
        h * w < MIN_NOISE_PIXELS,
        connectivity == 8,
        int(min_area),
        int(rad),
        noise is not None,
        center,
        sigma,
        level,
        status,
    )
    edges = np.linspace(0, b, max(1, min(int(workers), b)) + 1).astype(int)
    spans = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
    if len(spans) == 1:
        parts = [_detect_range(frames, mdl, 0, b, *args)]
    else:
        with ThreadPoolExecutor(max_workers=len(spans)) as pool:
            jobs = [pool.submit(_detect_range, frames, mdl, s0, s1, *args) for s0, s1 in spans]
            parts = [j.result() for j in jobs]
    table = np.concatenate([t[:k] for t, _, k in parts])
    patches = np.concatenate([p[:k] for _, p, k in parts])
    return {
        "table": table,
        "patches": patches,
        "center": center,
        "sigma": sigma,
        "level": level,
        "status": status,
    }
