"""Hotspot detection: the one detector both domains use (PWSA frames and IR scenes).

Pipeline, one call (:func:`detect`) for a whole ``(B, H, W)`` stack:

1. **Background and noise** (:func:`~prism_kernels.imaging.background.fit_background`): any
   estimator of :mod:`~prism_kernels.imaging.background`, or a given
   :class:`~prism_kernels.imaging.background.Background`; the residual ``r = frame - model``,
   its centre ``c`` (median) and robust noise sigma ``s`` per frame.
2. **Threshold** ``r > c + k_sigma * s`` (no detection in a frame whose noise cannot be
   estimated).
3. **Connected components** (:func:`label_stack`): one ``scipy.ndimage.label`` call on the
   host for the whole stack, with a structure that never joins two frames (8- or
   4-connectivity inside a frame); optionally split at local maxima by a watershed
   (:func:`split_components`); components smaller than ``min_area`` dropped.
4. **Measures** (:func:`measure_components`), vectorised over every component of every frame
   (``bincount`` reductions): area, peak (the first pixel in raster order holding the
   maximum), integrated residual, bounding box, intensity-weighted centroid (weights
   ``max(r, 0)``), peak SNR ``peak / s``.
5. **Centroid refinement** (:func:`windowed_centroids`): the Gaussian-windowed iteration of
   SExtractor's ``XWIN`` positions, ``x <- x + 2 sum(w r (x_i - x)) / sum(w r)`` with
   ``w = exp(-d^2 / 2 p^2)``, ``p`` the PSF width (given, or measured from the peak's
   log-curvature by :func:`psf_width`), started at the weighted centroid. For a symmetric
   PSF its fixed point is the true centre and its noise is close to the Cramer-Rao bound,
   unlike a thresholded moment (biased by where the threshold cuts). A centroid that wanders
   more than ``max_shift`` pixels from its start falls back to the weighted centroid. The
   aperture flux (residual summed within ``3 p`` of the centroid, 98.9 % of a Gaussian PSF)
   comes with it.

Everything after the background runs on the host (labelling has no array-API form): the
residual is copied there once with :func:`~prism_kernels.backend.to_numpy`.

With the compiled kernels (:mod:`~prism_kernels.compiled`) steps 1-4 run fused, one
pass per frame over a thread pool (:mod:`~prism_kernels.imaging.fused`), for the ``"mean"`` and
``"sigma_clip"`` backgrounds (computed inside the pass) and for any other model once it is
computed: no stack-sized residual, mask or label array is made unless asked for
(:attr:`Detection.residual`, :attr:`Detection.mask`, :attr:`Detection.labels`,
:attr:`Background.model` are computed on first access, by the NumPy steps above). The
numbers are the same, bit for bit for the ``"mean"`` and given backgrounds, to rounding for
``"sigma_clip"`` (its fused pass sums only the rejected pixels: background ~1e-15 relative,
the same hotspots); ``split_peaks`` and frames whose noise needs the standard-deviation
fallback take the NumPy steps.

Coordinates: ``x`` is the column, ``y`` the row, in pixels, pixel centres at integers.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from prism_kernels import compiled
from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging import fused
from prism_kernels.imaging.background import (
    Background,
    check_method,
    fit_background,
    stack_background,
)
from prism_kernels.imaging.frames import as_frames, check_frames

#: Largest PSF width (pixels) a caller may give.
MAX_PSF_SIGMA = 20.0

#: A windowed centroid has converged when its step is under this (pixels).
_TOL = 1e-9

#: Largest half side of the centroid window (pixels).
_MAX_RAD = 12


@dataclass
class Hotspots:
    """Measured components, one entry per hotspot (NumPy arrays of length K).

    Ordered by label: frame by frame, in raster order of each component's first pixel.

    Attributes
    ----------
    frame : int array
        Index of the frame in the stack.
    x, y : float arrays
        Centroid (column, row; pixels): refined when the detector refines, else the weighted one.
    x_weighted, y_weighted : float arrays
        Intensity-weighted centroid (weights: residual clipped at 0).
    row, col : int arrays
        The peak pixel.
    peak : float array
        Largest residual (counts above background).
    value : float array
        Frame value at the peak pixel (counts).
    area : int array
        Pixels in the component.
    integrated : float array
        Residual summed over the component (counts).
    flux : float array
        Aperture flux: residual summed within ``3 psf_sigma`` of the centroid (counts).
    psf_sigma : float array
        Width of the centroid window (pixels).
    snr : float array
        ``peak / sigma`` of the frame.
    bbox : int array, (K, 4)
        ``[row_start, col_start, row_stop, col_stop)`` (stop exclusive).
    """

    frame: np.ndarray
    x: np.ndarray
    y: np.ndarray
    x_weighted: np.ndarray
    y_weighted: np.ndarray
    row: np.ndarray
    col: np.ndarray
    peak: np.ndarray
    value: np.ndarray
    area: np.ndarray
    integrated: np.ndarray
    flux: np.ndarray
    psf_sigma: np.ndarray
    snr: np.ndarray
    bbox: np.ndarray

    def __len__(self) -> int:
        return int(self.frame.size)


class Detection:
    """What :func:`detect` found in a stack.

    Attributes
    ----------
    hotspots : Hotspots
    background : Background
        Model (on the frames' library), noise sigma, centre and level per frame.
    threshold : ndarray, (B,)
        Residual threshold ``center + k_sigma * sigma`` (counts); ``nan`` where the noise
        could not be estimated.
    k_sigma : float
    shape : tuple of int
        ``(B, H, W)`` of the stack.
    residual : float64 ndarray, (B, H, W)
        Frame minus background (counts).
    mask : bool ndarray, (B, H, W)
        Pixels above threshold (after dropping small components).
    labels : int32 ndarray, (B, H, W)
        Component labels, unique across the stack (0 = background).

    ``residual``, ``mask`` and ``labels`` are host NumPy arrays; after the fused detector
    they are computed on first access (and kept).
    """

    def __init__(
        self,
        hotspots: Hotspots,
        background: Background,
        threshold: np.ndarray,
        k_sigma: float,
        shape: tuple[int, ...],
        *,
        residual: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        segment: Any = None,
    ) -> None:
        self.hotspots = hotspots
        self.background = background
        self.threshold = threshold
        self.k_sigma = float(k_sigma)
        self.shape = tuple(int(v) for v in shape)
        self._maps = (residual, mask, labels) if residual is not None else None
        self._segment = segment

    def _get(self, i: int) -> np.ndarray:
        if self._maps is None:
            self._maps = self._segment()
        return self._maps[i]

    @property
    def residual(self) -> np.ndarray:
        return self._get(0)

    @property
    def mask(self) -> np.ndarray:
        return self._get(1)

    @property
    def labels(self) -> np.ndarray:
        return self._get(2)

    def per_frame(self) -> list[np.ndarray]:
        """Indices into :attr:`hotspots` of each frame's hotspots, in label order."""
        b = self.shape[0]
        order = np.argsort(self.hotspots.frame, kind="stable")
        cuts = np.searchsorted(self.hotspots.frame[order], np.arange(1, b))
        return np.split(order, cuts)

    def __repr__(self) -> str:
        return (
            f"Detection({len(self.hotspots)} hotspots in {self.shape[0]} frame(s) of "
            f"{self.shape[1]}x{self.shape[2]}, k_sigma={self.k_sigma:g})"
        )


def _structure(connectivity: int, ndim: int) -> np.ndarray:
    if connectivity not in (4, 8):
        raise InvalidInput("connectivity", f"must be 4 or 8, got {connectivity!r}")
    plane = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    if ndim == 2:
        return plane
    struct = np.zeros((3, 3, 3), dtype=bool)
    struct[1] = plane  # neighbours inside a frame only
    return struct


def label_stack(mask: Any, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of every frame of an (H, W) or (B, H, W) boolean mask.

    One ``scipy.ndimage.label`` call on the host; labels are unique across the stack and no
    component crosses frames. ``connectivity`` is 4 or 8.

    Returns
    -------
    labels : int32 ndarray, the mask's shape
    n : int
        Number of components.
    """
    m = np.asarray(to_numpy(mask), dtype=bool)
    if m.ndim not in (2, 3):
        raise InvalidInput("mask", f"expected (H, W) or (B, H, W), got shape {m.shape}")
    lab, n = ndimage.label(m, structure=_structure(connectivity, m.ndim))
    return lab.astype(np.int32, copy=False), int(n)


def _compact(labels: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 1..n over the labels where ``keep`` (indexed by label) is true."""
    keep = keep.copy()
    keep[0] = False
    lut = np.zeros(keep.size, dtype=np.int32)
    n = int(keep.sum())
    lut[keep] = np.arange(1, n + 1, dtype=np.int32)
    return lut[labels], n


def split_components(
    residual: np.ndarray,
    mask: np.ndarray,
    labels: np.ndarray,
    min_distance: int = 3,
    connectivity: int = 8,
) -> tuple[np.ndarray, int]:
    """Split components with several local maxima by a watershed on the residual.

    Markers are the pixels of the mask that are the maximum of their ``2 min_distance + 1``
    square; ``skimage.segmentation.watershed`` of ``-residual`` inside the mask, frame by
    frame. Returns labels unique across the stack and their count.
    """
    size = 2 * int(min_distance) + 1
    peaks = (
        residual == ndimage.maximum_filter(residual, size=(1, size, size), mode="constant")
    ) & (mask)
    markers, _ = label_stack(peaks, 8)
    out = np.zeros_like(labels)
    off = 0
    for b in range(residual.shape[0]):
        ws = watershed(
            -residual[b], markers[b], mask=mask[b], connectivity=1 if connectivity == 4 else 2
        )
        present = np.zeros(int(ws.max()) + 1, dtype=bool)
        present[np.unique(ws)] = True
        ws, k = _compact(ws, present)
        out[b] = np.where(ws > 0, ws + off, 0)
        off += k
    return out, off


def measure_components(residual: np.ndarray, labels: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Per-component measures of labels ``1..n`` over a (B, H, W) residual, vectorised.

    Returns
    -------
    dict of ndarray (length n, label order)
        ``frame, row, col`` (peak pixel: the first in raster order holding the maximum),
        ``peak``, ``area``, ``integrated``, ``x_weighted, y_weighted`` (weights
        ``max(r, 0)``; the peak pixel where every weight is 0) and ``bbox`` (n, 4)
        ``[row_start, col_start, row_stop, col_stop)``.
    """
    if n == 0:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        return {
            **{k: empty_i for k in ("frame", "row", "col", "area")},
            **{k: empty_f for k in ("peak", "integrated", "x_weighted", "y_weighted")},
            "bbox": np.zeros((0, 4), dtype=np.int64),
        }
    flat = labels.ravel()
    sel = np.flatnonzero(flat)
    lab = flat[sel]
    r = residual.ravel()[sel]
    w = np.maximum(r, 0.0)
    bi, yi, xi = np.unravel_index(sel, labels.shape)
    area = np.bincount(lab, minlength=n + 1)[1:]
    sw = np.bincount(lab, weights=w, minlength=n + 1)[1:]
    integ = np.bincount(lab, weights=r, minlength=n + 1)[1:]
    safe = np.where(sw > 0, sw, 1.0)
    xw = np.bincount(lab, weights=w * xi, minlength=n + 1)[1:] / safe
    yw = np.bincount(lab, weights=w * yi, minlength=n + 1)[1:] / safe
    # Peak: sorted by (label, residual, -position), the last entry of each label is its
    # largest residual at the smallest position.
    order = np.lexsort((-sel, r, lab))
    last = np.flatnonzero(np.r_[lab[order][1:] != lab[order][:-1], True])
    pk = order[last]
    pb, py, px = bi[pk], yi[pk], xi[pk]
    xw = np.where(sw > 0, xw, px)
    yw = np.where(sw > 0, yw, py)
    bbox = np.zeros((n, 4), dtype=np.int64)
    for k, sl in enumerate(ndimage.find_objects(labels)):
        bbox[k] = (sl[1].start, sl[2].start, sl[1].stop, sl[2].stop)
    return {
        "frame": pb.astype(np.int64),
        "row": py.astype(np.int64),
        "col": px.astype(np.int64),
        "peak": r[pk],
        "area": area.astype(np.int64),
        "integrated": integ,
        "x_weighted": xw.astype(np.float64),
        "y_weighted": yw.astype(np.float64),
        "bbox": bbox,
    }


def psf_width(
    residual: np.ndarray, frame: np.ndarray, row: np.ndarray, col: np.ndarray
) -> np.ndarray:
    """PSF width (pixels) at each peak from the log-intensity curvature.

    For a Gaussian ``A exp(-d^2 / 2 p^2)`` sampled at the peak and its two neighbours along an
    axis, ``ln r[-1] - 2 ln r[0] + ln r[1] = -1 / p^2`` exactly. The estimate is the mean
    over the axes where the three residuals are positive and the curvature negative,
    clipped to [0.5, 4] pixels; 1 pixel where neither axis allows it.
    """
    _, h, w = residual.shape

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return residual[frame, np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)]

    return _psf_from_samples(
        at(row, col - 1),
        at(row, col),
        at(row, col + 1),
        at(row - 1, col),
        at(row + 1, col),
        row,
        col,
        (h, w),
    )


def _psf_from_samples(
    left: np.ndarray,
    centre: np.ndarray,
    right: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """:func:`psf_width` from the residual at each peak and its four neighbours (clipped to
    the frame ``shape`` = (H, W))."""
    h, w = shape
    total = np.zeros(row.size)
    count = np.zeros(row.size)
    for a, c, inside in (
        (left, right, (col > 0) & (col < w - 1)),
        (up, down, (row > 0) & (row < h - 1)),
    ):
        b = centre
        ok = inside & (a > 0) & (b > 0) & (c > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = np.log(np.where(ok, a, 1.0)) - 2 * np.log(np.where(ok, b, 1.0))
            d2 = d2 + np.log(np.where(ok, c, 1.0))
            est = np.sqrt(-1.0 / np.where(ok & (d2 < 0), d2, -1.0))
        use = ok & (d2 < 0)
        total += np.where(use, est, 0.0)
        count += use
    return np.where(count > 0, np.clip(total / np.maximum(count, 1), 0.5, 4.0), 1.0)


def _window_radius(psf_sigma: np.ndarray) -> int:
    """Half side (pixels) of the centroid window: ``min(12, ceil(4 max p))``."""
    return int(min(_MAX_RAD, math.ceil(4.0 * float(np.max(psf_sigma)))))


def windowed_centroids(
    residual: np.ndarray,
    frame: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    psf_sigma: np.ndarray,
    n_iter: int = 30,
    max_shift: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-windowed centroids and aperture fluxes, vectorised over hotspots.

    Parameters
    ----------
    residual : ndarray, (B, H, W)
        Background-subtracted frames (counts).
    frame, x0, y0 : ndarray, (K,)
        Frame index and starting centroid (column, row; pixels) of each hotspot.
    psf_sigma : ndarray, (K,)
        Window width ``p`` (pixels).
    n_iter : int
        Most iterations (0: only the aperture flux at ``(x0, y0)``); each hotspot stops when
        its step is under 1e-9 pixel.
    max_shift : float
        A centroid that moves further than this from its start (pixels) returns to it.

    Returns
    -------
    x, y : ndarray, (K,)
        Refined centroids (see the module docstring).
    flux : ndarray, (K,)
        Residual summed within ``3 p`` of the centroid (counts).
    """
    if frame.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    _, h, w = residual.shape
    rad = _window_radius(psf_sigma)
    off = np.arange(-rad, rad + 1)
    cols = np.rint(x0).astype(np.int64)[:, None, None] + off[None, None, :]  # (K, 1, P)
    rows = np.rint(y0).astype(np.int64)[:, None, None] + off[None, :, None]  # (K, P, 1)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    vals = np.where(
        inside,
        residual[frame[:, None, None], np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)],
        0.0,
    )
    return _windowed(vals, x0, y0, psf_sigma, n_iter, max_shift)


def _windowed(
    vals: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    psf_sigma: np.ndarray,
    n_iter: int,
    max_shift: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`windowed_centroids` given each hotspot's ``(K, P, P)`` residual patch centred
    on ``rint(x0), rint(y0)`` (zeros outside the frame)."""
    k = x0.size
    rad = vals.shape[1] // 2
    off = np.arange(-rad, rad + 1)
    x = x0.astype(np.float64).copy()
    y = y0.astype(np.float64).copy()
    colsf = (np.rint(x0).astype(np.int64)[:, None] + off[None, :]).astype(np.float64)  # (K, P)
    rowsf = (np.rint(y0).astype(np.int64)[:, None] + off[None, :]).astype(np.float64)  # (K, P)
    inv = 1.0 / (2.0 * psf_sigma * psf_sigma)
    # The window is separable, exp(-dx^2 / 2p^2) exp(-dy^2 / 2p^2). Each hotspot iterates
    # until its own step is under _TOL (so its centroid does not depend on the others in the
    # batch), wanders off, or n_iter passes are done; only the active ones are computed.
    active = np.ones(k, dtype=bool)
    for _ in range(n_iter):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        dx = colsf[a] - x[a, None]
        dy = rowsf[a] - y[a, None]
        gx = np.exp(-dx * dx * inv[a, None])
        gy = np.exp(-dy * dy * inv[a, None])
        wv = vals[a] * gy[:, :, None] * gx[:, None, :]  # (A, rows, cols)
        tot = wv.sum(axis=(1, 2))
        ok = tot > 0
        safe = np.where(ok, tot, 1.0)
        nx = np.where(ok, x[a] + 2.0 * (wv.sum(axis=1) * dx).sum(axis=1) / safe, x[a])
        ny = np.where(ok, y[a] + 2.0 * (wv.sum(axis=2) * dy).sum(axis=1) / safe, y[a])
        wander = (np.abs(nx - x0[a]) > max_shift) | (np.abs(ny - y0[a]) > max_shift)
        nx = np.where(wander, x0[a], nx)
        ny = np.where(wander, y0[a], ny)
        step = np.maximum(np.abs(nx - x[a]), np.abs(ny - y[a]))
        x[a], y[a] = nx, ny
        active[a] = ~wander & ok & (step >= _TOL)
    dx = colsf - x[:, None]
    dy = rowsf - y[:, None]
    ap = (dy * dy)[:, :, None] + (dx * dx)[:, None, :] <= (3.0 * psf_sigma[:, None, None]) ** 2
    return x, y, np.where(ap, vals, 0.0).sum(axis=(1, 2))


def _check_options(
    k_sigma: float, min_area: int, min_distance: int, psf_sigma: float | None, connectivity: int
) -> None:
    try:
        ok = math.isfinite(float(k_sigma)) and float(k_sigma) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidInput("k_sigma", f"must be a positive number, got {k_sigma!r}")
    if isinstance(min_area, bool) or int(min_area) != min_area or min_area < 1:
        raise InvalidInput("min_area", f"must be an integer >= 1, got {min_area!r}")
    if int(min_distance) != min_distance or min_distance < 1:
        raise InvalidInput("min_distance", f"must be an integer >= 1, got {min_distance!r}")
    if psf_sigma is not None and not (0 < psf_sigma <= MAX_PSF_SIGMA):
        raise InvalidInput("psf_sigma", f"must be in (0, {MAX_PSF_SIGMA:g}] pixels")
    _structure(connectivity, 2)


def detect(
    frames: Any,
    k_sigma: float = 6.0,
    *,
    background: str | Background = "mean",
    size: int = 31,
    order: int = 1,
    min_area: int = 1,
    connectivity: int = 8,
    split_peaks: bool = False,
    min_distance: int = 3,
    psf_sigma: float | None = None,
    refine: bool = True,
    field: str = "frame",
    workers: int | None = None,
) -> Detection:
    """Hotspots of every frame of an (H, W) frame or (B, H, W) stack (see the module docstring).

    Parameters
    ----------
    frames : array
        Counts, any array library (validated by :func:`~prism_kernels.imaging.frames.as_frames`).
    k_sigma : float
        Threshold in robust noise sigmas above the residual's median.
    background : str or Background
        An estimator of :func:`~prism_kernels.imaging.background.estimate_background`
        (``"mean"``, ``"median"``, ``"opening"`` (white top-hat), ``"sigma_clip"``,
        ``"polynomial"``) or a :class:`Background` already fitted to these frames.
    size, order
        Window side (pixels) of the window estimators; order of ``"polynomial"``.
    min_area : int
        Drop components with fewer pixels.
    connectivity : {8, 4}
    split_peaks : bool
        Split components with several local maxima at least ``min_distance`` apart.
    psf_sigma : float, optional
        Width of the centroid window (pixels); measured per hotspot (:func:`psf_width`) when
        omitted.
    refine : bool
        Refine centroids (:func:`windowed_centroids`); otherwise keep the weighted centroid.
    field : str
        The name a refusal of the frames carries.
    workers : int, optional
        Threads of the fused detector (default: the CPUs this process may use, for stacks of
        a few million pixels and more); the result does not depend on it.

    Returns
    -------
    Detection

    Raises
    ------
    InvalidInput
        Invalid frames or options (checked before any computation; NaN/inf, which the fused
        detector finds while reading the frames, before any result is returned).
    """
    _check_options(k_sigma, min_area, min_distance, psf_sigma, connectivity)
    fast = compiled.enabled() and not split_peaks
    x = as_frames(frames, field, finite=not fast)
    if isinstance(background, Background):
        if tuple(background.model.shape) != tuple(x.shape):
            raise InvalidInput(
                "background",
                f"model shape {tuple(background.model.shape)} does not match frames {tuple(x.shape)}",
            )
    opts = {
        "k_sigma": float(k_sigma),
        "min_area": int(min_area),
        "connectivity": int(connectivity),
        "split_peaks": bool(split_peaks),
        "min_distance": int(min_distance),
    }
    if fast:
        det = _detect_fused(x, background, size, order, opts, psf_sigma, refine, workers, field)
        if det is not None:
            return det
        check_frames(x, field)  # NaN/inf: the refusal the NumPy path gives (or nothing)
    if isinstance(background, Background):
        bg, r = background, x - background.model
    else:
        bg, r = Background.of(x, stack_background(x, background, size, order=order))
    resid = np.asarray(to_numpy(r), dtype=np.float64)
    threshold = bg.center + float(k_sigma) * bg.sigma
    mask, labels, n = _segment(resid, threshold, opts)
    m = measure_components(resid, labels, n)
    fr, row, col = m["frame"], m["row"], m["col"]
    s = psf_width(resid, fr, row, col) if psf_sigma is None else np.full(n, float(psf_sigma))
    xs, ys, flux = windowed_centroids(
        resid, fr, m["x_weighted"], m["y_weighted"], s, n_iter=30 if refine else 0
    )
    raw = np.asarray(to_numpy(x), dtype=np.float64)
    hs = _hotspots(m, raw[fr, row, col], xs, ys, flux, s, bg.sigma)
    return Detection(hs, bg, threshold, k_sigma, x.shape, residual=resid, mask=mask, labels=labels)


def _segment(
    resid: np.ndarray, threshold: np.ndarray, opts: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mask, labels and count of the components of ``resid > threshold`` (steps 2-3)."""
    mask = resid > threshold[:, None, None]  # nan threshold: nothing
    labels, n = label_stack(mask, opts["connectivity"])
    if opts["split_peaks"] and n:
        labels, n = split_components(
            resid, mask, labels, opts["min_distance"], opts["connectivity"]
        )
    if opts["min_area"] > 1 and n:
        keep = np.bincount(labels.ravel(), minlength=n + 1) >= opts["min_area"]
        labels, n = _compact(labels, keep)
        mask = labels > 0
    return mask, labels, n


def _hotspots(
    m: dict[str, np.ndarray],
    value: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    psf: np.ndarray,
    sigma: np.ndarray,
) -> Hotspots:
    return Hotspots(
        frame=m["frame"],
        x=x,
        y=y,
        x_weighted=m["x_weighted"],
        y_weighted=m["y_weighted"],
        row=m["row"],
        col=m["col"],
        peak=m["peak"],
        value=value,
        area=m["area"],
        integrated=m["integrated"],
        flux=flux,
        psf_sigma=psf,
        snr=m["peak"] / sigma[m["frame"]],
        bbox=m["bbox"],
    )


#: Pixels a thread of the fused detector gets at least by default (below, a thread's start
#: and the shared caches cost more than it saves).
_PIXELS_PER_WORKER = 2_000_000


def _n_workers(workers: int | None, shape: tuple[int, ...]) -> int:
    """Threads for a (B, H, W) stack: ``workers`` when given, else the CPUs this process may
    use, at most one per :data:`_PIXELS_PER_WORKER` pixels and one per frame."""
    if workers is not None:
        return max(1, int(workers))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    b, h, w = (int(v) for v in shape)
    return max(1, min(cpus, b, (b * h * w) // _PIXELS_PER_WORKER))


def _detect_fused(
    x: Any,
    background: str | Background,
    size: int,
    order: int,
    opts: dict[str, Any],
    psf_sigma: float | None,
    refine: bool,
    workers: int | None,
    field: str,
) -> Detection | None:
    """:func:`detect` by the fused kernel; ``None`` when a frame needs the NumPy path (NaN/inf
    or the noise's standard-deviation fallback)."""
    given = isinstance(background, Background)
    method = str(background).lower() if not given else ""
    if method in ("mean", "sigma_clip"):
        check_method(method, size, order)
        code, model = (fused.MEAN if method == "mean" else fused.SIGMA_CLIP), None
    else:
        if not given:  # the NumPy estimators read the frames first: refuse NaN/inf before
            check_frames(x, field)
        model = background.model if given else stack_background(x, method, size, order=order)
        code = fused.GIVEN
    rad = _MAX_RAD if psf_sigma is None else _window_radius(np.array([psf_sigma]))
    host = np.ascontiguousarray(to_numpy(x), dtype=np.float64)
    out = fused.detect_frames(
        host,
        method=code,
        model=None if model is None else np.ascontiguousarray(to_numpy(model), dtype=np.float64),
        size=int(size),
        k_sigma=opts["k_sigma"],
        connectivity=opts["connectivity"],
        min_area=opts["min_area"],
        rad=rad,
        workers=_n_workers(workers, tuple(x.shape)),
        noise=(background.center, background.sigma) if given else None,
    )
    if np.any(out["status"] != fused.OK):
        return None
    if given:
        bg = background
    elif model is not None:
        bg = Background(model, out["sigma"], out["level"], out["center"])
    else:
        bg = Background.lazy(
            lambda: stack_background(x, method, size, order=order),
            out["sigma"],
            out["level"],
            out["center"],
        )
    threshold = bg.center + opts["k_sigma"] * bg.sigma
    t = out["table"]
    col = {name: t[:, i] for i, name in enumerate(fused.FIELDS)}
    ints = {k: col[k].astype(np.int64) for k in ("frame", "row", "col", "area")}
    m = {
        **ints,
        "peak": col["peak"],
        "integrated": col["integrated"],
        "x_weighted": col["x_weighted"],
        "y_weighted": col["y_weighted"],
        "bbox": t[:, 9:13].astype(np.int64),
    }
    n = t.shape[0]
    if psf_sigma is None:
        s = _psf_from_samples(
            col["r_left"],
            col["r_centre"],
            col["r_right"],
            col["r_up"],
            col["r_down"],
            ints["row"],
            ints["col"],
            x.shape[1:],
        )
    else:
        s = np.full(n, float(psf_sigma))
    if n:
        rad = _window_radius(s)
        c = out["patches"].shape[1] // 2
        vals = out["patches"][:, c - rad : c + rad + 1, c - rad : c + rad + 1]
        xs, ys, flux = _windowed(
            vals, m["x_weighted"], m["y_weighted"], s, 30 if refine else 0, 2.0
        )
    else:
        xs, ys, flux = np.zeros(0), np.zeros(0), np.zeros(0)
    hs = _hotspots(m, col["value"], xs, ys, flux, s, bg.sigma)

    def segment() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        resid = np.asarray(to_numpy(x - bg.model), dtype=np.float64)
        mask, labels, _ = _segment(resid, threshold, opts)
        return resid, mask, labels

    return Detection(hs, bg, threshold, opts["k_sigma"], x.shape, segment=segment)


@compiled.warmer
def _warm() -> None:
    """Compile the fused detector (:func:`compiled.warm`): the mean, sigma-clip and given
    backgrounds, 8- and 4-connectivity."""
    frames = np.random.default_rng(0).normal(100.0, 1.0, (2, 40, 40))
    frames[:, 18:21, 18:21] += 40.0
    detect(frames, 5.0, background="mean", size=7, workers=1)
    detect(frames, 5.0, background="sigma_clip", size=7, connectivity=4, workers=2)
    detect(frames, 5.0, background=fit_background(frames, "polynomial"), psf_sigma=1.0)
