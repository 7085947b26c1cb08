"""Local Shannon entropy of a frame, in bits, by a sliding histogram.

The entropy at a pixel is that of the grey levels inside a footprint (a square or a
disk) centred on it::

    H(y, x) = log2(N) - (1/N) * sum_v c_v * log2(c_v)

where ``c_v`` is the count of level ``v`` in the footprint and ``N`` the number of
footprint pixels that lie inside the frame (pixels outside the frame do not count, as in
``skimage.filters.rank.entropy``, whose footprint centre ``shape // 2`` we also use).

Algorithm
---------
Compiled (numba, when installed: the default path). Rows are independent: along each
row the window moves one column at a time, and each step removes, for every run of
footprint cells in a footprint row, the pixel leaving at its left edge and adds the one
entering at its right edge (two pixels per footprint row for a disk or a square). The
row keeps a histogram of the levels in the footprint, the count ``N`` of in-frame
footprint pixels and ``S = sum_v c_v log2 c_v``, updated from a table of
``f(c+1) - f(c)`` with ``f(c) = c log2 c``; pixels outside the frame are skipped (bounds
are only tested near the borders). Counting is exact integer arithmetic; ``S`` is float64,
restarted at each row, and the result agrees with scikit-image to ~1e-13 bits. The rows
are split into contiguous blocks run on a thread pool (the kernel releases the GIL), one
histogram of ``n_levels`` int32 per thread. The kernel is compiled on the first call in
a process (several seconds: 13-21 s measured on a heavily loaded 2-core machine), and
cached on disk by numba where the package directory or the user cache directory is
writable, so later processes load it in about a second (editing this file invalidates
the cache).

NumPy fallback (when numba is not importable): the window slides down the rows instead;
all columns of the frame, and ``K`` independent horizontal strips of rows, advance
together, so one step is a handful of ``ufunc.at`` and ``take`` calls over ``K * W``
count tables (uint8 counts when the footprint holds fewer than 255 pixels, so a table
stays cache-resident). It is about 4-6x faster than ``skimage.filters.rank.entropy`` on
a 1024x1024 uint8 frame with a disk of radius 7; the compiled path is well above 10x.

PyTorch and CuPy inputs are copied to the host at this edge and the map is copied back
to the input's library (no device kernel in this module).

Levels
------
The grey levels are :func:`prism_kernels.imaging.entropy.quantize`'s (the imaging core's
one rule, shared with the whole-frame :func:`global_entropy`): ``uint8`` keeps its 256
levels; other integers the values present, so the result equals scikit-image's (which uses
``max(3, image.max()) + 1`` bins and warns above 1024) while keeping the histograms small;
floats ``bins`` equal-width bins (default 256) over ``value_range`` (default: the frame's own
min..max), ``numpy.histogram``'s rule, values outside ``value_range`` in the end bins.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import ndimage

from prism_kernels import compiled
from prism_kernels.backend import asarray, backend_name, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.entropy import histogram_entropy as global_entropy
from prism_kernels.imaging.entropy import quantize
from prism_kernels.imaging.frames import check_frames

__all__ = [
    "disk",
    "engine",
    "footprint",
    "global_entropy",
    "high_entropy_regions",
    "local_entropy",
    "quantize",
    "square",
]

#: Upper bound on the entries of the (states, levels) count table (int32): ~64 MB.
_HIST_BUDGET = 16_000_000


def disk(radius: int) -> np.ndarray:
    """Disk footprint, identical to ``skimage.morphology.disk(radius)`` (bool, (2r+1, 2r+1))."""
    if radius < 0:
        raise InvalidInput("radius", f"must be >= 0, got {radius}")
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius


def square(size: int) -> np.ndarray:
    """Square footprint of side ``size`` (centre at ``size // 2``, as scikit-image)."""
    if size < 1:
        raise InvalidInput("window_size", f"must be >= 1, got {size}")
    return np.ones((size, size), dtype=bool)


def footprint(window: str = "disk", size: int = 7) -> np.ndarray:
    """Footprint by name: ``"disk"`` (``size`` is the radius) or ``"square"`` (side)."""
    kind = str(window).lower()
    if kind == "disk":
        return disk(int(size))
    if kind == "square":
        return square(int(size))
    raise InvalidInput("window", f"unknown window {window!r}; choose 'disk' or 'square'")


def _sliding_entropy_numpy(codes: np.ndarray, n_levels: int, fp: np.ndarray) -> np.ndarray:
    """NumPy fallback of :func:`_sliding_entropy` (vertical slide, vectorised over columns)."""
    h, w = codes.shape
    fh, fw = fp.shape
    cy, cx = fh // 2, fw // 2
    nl = n_levels + 1  # one extra level counts the footprint pixels outside the frame
    # Column blocks keep the count table (strips x columns x levels) within budget.
    bw = max(1, min(w, _HIST_BUDGET // (nl * 4)))
    padded = np.full((h + fh - 1, w + fw - 1), n_levels, dtype=np.intp)
    padded[cy : cy + h, cx : cx + w] = codes
    out = np.empty((h, w), dtype=np.float64)
    for x0 in range(0, w, bw):
        x1 = min(w, x0 + bw)
        out[:, x0:x1] = _slide_block(padded[:, x0 : x1 + fw - 1], h, n_levels, fp)
    return out


def _slide_block(padded: np.ndarray, h: int, n_levels: int, fp: np.ndarray) -> np.ndarray:
    fh, fw = fp.shape
    w = padded.shape[1] - fw + 1
    p = int(fp.sum())
    nl = n_levels + 1
    cdt = np.uint8 if p < 255 else (np.uint16 if p < 65535 else np.uint32)
    # K strips of rows slide side by side (K * w histograms); 4 strips keep the
    # uint8 count table cache-resident for 8-bit frames while amortising the Python loop.
    k = max(1, min(4, h // 16, _HIST_BUDGET // (w * nl)))
    strip = -(-h // k)
    k = -(-h // strip)
    rt = k * strip
    if padded.shape[0] < rt + fh - 1:  # "outside" rows so every strip has the same length
        extra = np.full((rt + fh - 1 - padded.shape[0], padded.shape[1]), n_levels, np.intp)
        padded = np.concatenate([padded, extra])
    ns = k * w
    base = (np.arange(ns, dtype=np.intp) * nl).reshape(k, w)

    fpp = np.zeros((fh + 2, fw), dtype=bool)
    fpp[1:-1] = fp
    enter = [(int(i), int(j)) for i, j in np.argwhere(fpp[1:-1] & ~fpp[2:])]
    leave = [(int(i), int(j)) for i, j in np.argwhere(fpp[1:-1] & ~fpp[:-2])]
    cells = [(int(i), int(j)) for i, j in np.argwhere(fp)]

    c = np.arange(p + 2, dtype=np.float64)
    f = np.zeros_like(c)
    f[1:] = c[1:] * np.log2(c[1:])  # f(c) = c log2 c
    up = np.zeros(p + 2)
    up[1:] = np.diff(f)  # count became c by +1: f(c) - f(c-1)
    down = np.append(np.diff(f), 0.0)  # count became c by -1: f(c+1) - f(c)
    log2n = np.log2(np.arange(p + 1).clip(1))

    def rows(r0: int, j: int) -> np.ndarray:
        # levels of padded[s * strip + r0, x + j] for every strip s and column x: (k, w)
        return padded[r0 : r0 + rt : strip, j : j + w]

    init = np.concatenate([(base + rows(i, j)).ravel() for i, j in cells])
    hist = np.bincount(init, minlength=ns * nl).astype(cdt)
    s_acc = f[hist].reshape(ns, nl).sum(axis=1)
    out = np.empty((rt, w), dtype=np.float64)
    sent_idx = (base + n_levels).ravel()
    nmax = max(len(enter), len(leave), 1)
    ibuf = np.empty((nmax, k, w), dtype=np.intp)
    cbuf = np.empty((nmax, ns), dtype=cdt)
    one = cdt(1)

    def emit(t: int) -> None:
        cs = hist.take(sent_idx).astype(np.intp)
        n = p - cs
        out[t::strip] = (log2n[n] - (s_acc - f[cs]) / np.maximum(n, 1)).reshape(k, w)

    emit(0)
    for t in range(1, strip):
        for o, (i, j) in enumerate(leave):
            idx = np.add(base, rows(t - 1 + i, j), out=ibuf[o]).reshape(-1)
            np.subtract.at(hist, idx, one)
            hist.take(idx, out=cbuf[o])
        s_acc -= down.take(cbuf[: len(leave)]).sum(axis=0)
        for o, (i, j) in enumerate(enter):
            idx = np.add(base, rows(t + i, j), out=ibuf[o]).reshape(-1)
            np.add.at(hist, idx, one)
            hist.take(idx, out=cbuf[o])
        s_acc += up.take(cbuf[: len(enter)]).sum(axis=0)
        emit(t)
    out = out[:h]
    out[out < 1e-12] = 0.0  # float rounding of log2(N) - S/N for a single level
    return out


def _rows_kernel(flat, h, w, n_levels, ci, cj, li, lj, ei, ej, cy, cx, y0, y1, out):
    """Entropy of rows ``y0 <= y < y1`` into ``out`` (compiled by numba; see the docstring).

    ``flat`` holds the level codes (C order, ``h * w``); ``(ci, cj)`` are the footprint
    cells, ``(li, lj)`` the left edges of its runs (the cells whose left neighbour is not
    in the footprint) and ``(ei, ej)`` the right edges, in the same run order.
    """
    p = ci.size
    m = li.size
    hist = np.zeros(n_levels, np.int32)
    d = np.empty(p + 1)  # d[c] = f(c + 1) - f(c), f(c) = c log2 c
    lg = np.zeros(p + 1)
    for c in range(p + 1):
        f0 = c * math.log2(c) if c > 0 else 0.0
        d[c] = (c + 1) * math.log2(c + 1) - f0
        if c > 0:
            lg[c] = math.log2(c)
    loff = np.empty(m, np.int64)
    eoff = np.empty(m, np.int64)
    xa = 1
    xb = w - 1
    for k in range(m):
        loff[k] = (li[k] - cy) * w + (lj[k] - 1 - cx)
        eoff[k] = (ei[k] - cy) * w + (ej[k] - cx)
        xa = max(xa, 1 + cx - lj[k])
        xb = min(xb, w - 1 + cx - ej[k])
    top = 0
    bottom = 0
    for k in range(p):
        top = max(top, cy - ci[k])
        bottom = max(bottom, ci[k] - cy)
    for y in range(y0, y1):
        s = 0.0
        n = 0
        for k in range(p):
            yy = y + ci[k] - cy
            xx = cj[k] - cx
            if 0 <= yy < h and 0 <= xx < w:
                v = flat[yy * w + xx]
                c = hist[v]
                s += d[c]
                hist[v] = c + 1
                n += 1
        inner = y >= top and y + bottom < h
        for x in range(w):
            if x > 0:
                if inner and xa <= x <= xb:
                    base = y * w + x
                    a0 = 0.0
                    a1 = 0.0
                    for k in range(m):
                        v = flat[base + loff[k]]
                        c = hist[v] - 1
                        hist[v] = c
                        a0 -= d[c]
                        v = flat[base + eoff[k]]
                        c = hist[v]
                        hist[v] = c + 1
                        a1 += d[c]
                    s += a0 + a1
                else:
                    for k in range(m):
                        yy = y + li[k] - cy
                        xx = x - 1 + lj[k] - cx
                        if 0 <= yy < h and 0 <= xx < w:
                            v = flat[yy * w + xx]
                            c = hist[v] - 1
                            hist[v] = c
                            s -= d[c]
                            n -= 1
                    for k in range(m):
                        yy = y + ei[k] - cy
                        xx = x + ej[k] - cx
                        if 0 <= yy < h and 0 <= xx < w:
                            v = flat[yy * w + xx]
                            c = hist[v]
                            hist[v] = c + 1
                            s += d[c]
                            n += 1
            e = lg[n] - s / n if n > 0 else 0.0
            out[y, x] = e if e > 1e-12 else 0.0  # float rounding for a single level
        for k in range(p):  # empty the histogram for the next row
            yy = y + ci[k] - cy
            xx = w - 1 + cj[k] - cx
            if 0 <= yy < h and 0 <= xx < w:
                hist[flat[yy * w + xx]] -= 1


_COMPILED: list[Any] = []  # [dispatcher or None], filled on first use
compiled.KERNEL_MODULES.add(__name__)  # its kernel is cached on disk too (cache_is_warm)


def _compiled_kernel() -> Any:
    """The numba-compiled :func:`_rows_kernel`, or ``None`` when numba is not importable or
    the compiled kernels are switched off (:func:`prism_kernels.compiled.enabled`:
    e.g. while a server warms them up in the background)."""
    if not compiled.enabled():
        return None
    if not _COMPILED:
        try:
            from numba import njit
        except Exception:  # numba missing or broken: NumPy fallback
            _COMPILED.append(None)
        else:
            try:  # on-disk cache where numba finds a writable place, else in-process only
                kern = njit(nogil=True, cache=True)(_rows_kernel)
            except Exception:
                kern = njit(nogil=True, cache=False)(_rows_kernel)
            _COMPILED.append(kern)
    return _COMPILED[0]


def _footprint_cells(fp: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cells, left run edges and right run edges of a footprint, as int64 (row, col) arrays."""
    padded = np.zeros((fp.shape[0], fp.shape[1] + 2), dtype=bool)
    padded[:, 1:-1] = fp
    cells = np.argwhere(fp)
    left = np.argwhere(fp & ~padded[:, :-2])
    right = np.argwhere(fp & ~padded[:, 2:])
    cols = (cells[:, 0], cells[:, 1], left[:, 0], left[:, 1], right[:, 0], right[:, 1])
    return tuple(np.ascontiguousarray(c, dtype=np.int64) for c in cols)


def _n_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _sliding_entropy_numba(
    kern: Any, codes: np.ndarray, n_levels: int, fp: np.ndarray
) -> np.ndarray:
    h, w = codes.shape
    flat = np.ascontiguousarray(codes, dtype=np.int32).reshape(-1)
    out = np.empty((h, w), dtype=np.float64)
    args = (flat, h, w, int(n_levels), *_footprint_cells(fp), fp.shape[0] // 2, fp.shape[1] // 2)
    n = min(_n_threads(), h, max(1, (h * w) // 65536))
    if n == 1:
        kern(*args, 0, h, out)
        return out
    edges = np.linspace(0, h, n + 1).astype(int)
    with ThreadPoolExecutor(max_workers=n) as pool:
        jobs = [
            pool.submit(kern, *args, int(a), int(b), out)
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        for job in jobs:
            job.result()
    return out


def engine() -> str:
    """``"numba"`` when the compiled kernel is used, ``"numpy"`` for the fallback."""
    return "numpy" if _compiled_kernel() is None else "numba"


def _sliding_entropy(codes: np.ndarray, n_levels: int, fp: np.ndarray) -> np.ndarray:
    """Entropy (bits) of integer ``codes`` in ``[0, n_levels)`` over the footprint ``fp``."""
    kern = _compiled_kernel()
    if kern is None:
        return _sliding_entropy_numpy(codes, n_levels, fp)
    return _sliding_entropy_numba(kern, codes, n_levels, fp)


def _as_footprint(window: Any, size: int) -> np.ndarray:
    if isinstance(window, str):
        return footprint(window, size)
    fp = to_numpy(window).astype(bool)
    if fp.ndim != 2 or fp.size == 0 or not fp.any():
        raise InvalidInput("window", "a footprint array must be 2-D with at least one True cell")
    return fp


def local_entropy(
    frame: Any,
    window: Any = "disk",
    size: int = 7,
    *,
    bins: int = 256,
    value_range: tuple[float, float] | None = None,
) -> Any:
    """Local Shannon entropy map, in bits.

    Parameters
    ----------
    frame : array, (H, W) or a stack (B, H, W)
        ``uint8``, ``uint16`` (any integer) or float frame(s).
    window : {"disk", "square"} or 2-D boolean array
        Footprint; its centre is ``shape // 2`` (as scikit-image).
    size : int
        Disk radius, or square side, in pixels.
    bins, value_range
        Binning of float frames (ignored for integers): ``bins`` equal-width levels over
        ``value_range`` (default: each frame's own min..max).

    Returns
    -------
    array of float64, same shape as ``frame``, on the input's array library
        Bits; equals ``skimage.filters.rank.entropy(frame, footprint)`` for uint8/uint16.

    Notes
    -----
    Computed on the host: a numba-compiled sliding histogram over row blocks on a thread
    pool (compiled on the first call in a process, a few seconds, then cached on disk when
    possible), or the NumPy fallback when numba is not installed. PyTorch/CuPy inputs are
    copied to the host at this edge and the map copied back.
    """
    fp = _as_footprint(window, size)
    a = check_frames(to_numpy(frame))
    stack = a if a.ndim == 3 else a[None]
    out = np.empty(stack.shape, dtype=np.float64)
    for b in range(stack.shape[0]):
        codes, n_levels = quantize(stack[b], bins=bins, value_range=value_range)
        out[b] = _sliding_entropy(codes, n_levels, fp)
    out = out if a.ndim == 3 else out[0]
    return _back(out, frame)


def _back(out: np.ndarray, like: Any) -> Any:
    name = backend_name(like)
    return out if name == "numpy" else asarray(out, backend=name)


def high_entropy_regions(
    entropy_map: Any, percentile: float = 90.0, min_area: int = 1
) -> list[dict[str, Any]]:
    """Connected regions of the map above its ``percentile``-th value.

    Labelled with ``scipy.ndimage.label`` (8-connectivity) on the host.

    Returns
    -------
    list of dict
        ``x, y, width, height`` (bounding box, pixels), ``area``, ``entropy`` and
        ``mean_entropy`` (mean bits over the region; the server and the notebook use
        both names), ``max_entropy``; largest area first.
    """
    e = to_numpy(entropy_map)
    if e.ndim != 2 or e.size == 0:
        raise InvalidInput("entropy_map", f"expected a non-empty (H, W) map, got {e.shape}")
    if not 0.0 <= percentile <= 100.0:
        raise InvalidInput("percentile", f"must be in [0, 100], got {percentile}")
    thr = float(np.percentile(e, percentile))
    mask = e > thr if np.any(e > thr) else e >= thr
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    area = ndimage.sum_labels(np.ones_like(e), lab, idx)
    mean = ndimage.mean(e, lab, idx)
    mx = ndimage.maximum(e, lab, idx)
    regions = []
    for k, sl in enumerate(ndimage.find_objects(lab)):
        if sl is None or area[k] < min_area:
            continue
        regions.append(
            {
                "x": int(sl[1].start),
                "y": int(sl[0].start),
                "width": int(sl[1].stop - sl[1].start),
                "height": int(sl[0].stop - sl[0].start),
                "area": int(area[k]),
                "entropy": float(mean[k]),
                "mean_entropy": float(mean[k]),
                "max_entropy": float(mx[k]),
            }
        )
    regions.sort(key=lambda r: -r["area"])
    return regions


@compiled.warmer
def _warm() -> None:
    """Compile the sliding-histogram kernel (:func:`compiled.warm`)."""
    local_entropy(np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8), "disk", 3)
