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

Coordinates: ``x`` is the column, ``y`` the row, in pixels, pixel centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.background import Background, stack_background
from prism_kernels.imaging.frames import as_frames

#: Largest PSF width (pixels) a caller may give.
MAX_PSF_SIGMA = 20.0

#: A windowed centroid has converged when its step is under this (pixels).
_TOL = 1e-9


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


@dataclass
class Detection:
    """What :func:`detect` found in a stack (host NumPy arrays; (B, H, W) unless noted).

    Attributes
    ----------
    hotspots : Hotspots
    mask : bool array
        Pixels above threshold (after dropping small components).
    labels : int32 array
        Component labels, unique across the stack (0 = background).
    residual : float64 array
        Frame minus background (counts).
    background : Background
        Model (on the frames' library), noise sigma, centre and level per frame.
    threshold : ndarray, (B,)
        Residual threshold ``center + k_sigma * sigma`` (counts); ``nan`` where the noise
        could not be estimated.
    k_sigma : float
    """

    hotspots: Hotspots
    mask: np.ndarray
    labels: np.ndarray
    residual: np.ndarray
    background: Background
    threshold: np.ndarray
    k_sigma: float

    def per_frame(self) -> list[np.ndarray]:
        """Indices into :attr:`hotspots` of each frame's hotspots, in label order."""
        b = self.mask.shape[0]
        order = np.argsort(self.hotspots.frame, kind="stable")
        cuts = np.searchsorted(self.hotspots.frame[order], np.arange(1, b))
        return np.split(order, cuts)


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
    total = np.zeros(frame.size)
    count = np.zeros(frame.size)
    for dr, dc, inside in (
        (0, 1, (col > 0) & (col < w - 1)),
        (1, 0, (row > 0) & (row < h - 1)),
    ):
        a = residual[frame, np.clip(row - dr, 0, h - 1), np.clip(col - dc, 0, w - 1)]
        b = residual[frame, row, col]
        c = residual[frame, np.clip(row + dr, 0, h - 1), np.clip(col + dc, 0, w - 1)]
        ok = inside & (a > 0) & (b > 0) & (c > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = np.log(np.where(ok, a, 1.0)) - 2 * np.log(np.where(ok, b, 1.0))
            d2 = d2 + np.log(np.where(ok, c, 1.0))
            est = np.sqrt(-1.0 / np.where(ok & (d2 < 0), d2, -1.0))
        use = ok & (d2 < 0)
        total += np.where(use, est, 0.0)
        count += use
    return np.where(count > 0, np.clip(total / np.maximum(count, 1), 0.5, 4.0), 1.0)


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
    k = frame.size
    if k == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    _, h, w = residual.shape
    rad = int(min(12, math.ceil(4.0 * float(np.max(psf_sigma)))))
    off = np.arange(-rad, rad + 1)
    x = x0.astype(np.float64).copy()
    y = y0.astype(np.float64).copy()
    cols = np.rint(x0).astype(np.int64)[:, None, None] + off[None, None, :]  # (K, 1, P)
    rows = np.rint(y0).astype(np.int64)[:, None, None] + off[None, :, None]  # (K, P, 1)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    vals = np.where(
        inside,
        residual[frame[:, None, None], np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)],
        0.0,
    )
    colsf = cols[:, 0, :].astype(np.float64)  # (K, P)
    rowsf = rows[:, :, 0].astype(np.float64)  # (K, P)
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

    Returns
    -------
    Detection

    Raises
    ------
    InvalidInput
        Invalid frames or options (checked before any computation).
    """
    _check_options(k_sigma, min_area, min_distance, psf_sigma, connectivity)
    x = as_frames(frames, field)
    if isinstance(background, Background):
        if tuple(background.model.shape) != tuple(x.shape):
            raise InvalidInput(
                "background",
                f"model shape {tuple(background.model.shape)} does not match frames {tuple(x.shape)}",
            )
        bg, r = background, x - background.model
    else:
        bg, r = Background.of(x, stack_background(x, background, size, order=order))
    resid = np.asarray(to_numpy(r), dtype=np.float64)
    threshold = bg.center + float(k_sigma) * bg.sigma
    mask = resid > threshold[:, None, None]  # nan threshold: nothing
    labels, n = label_stack(mask, connectivity)
    if split_peaks and n:
        labels, n = split_components(resid, mask, labels, min_distance, connectivity)
    if min_area > 1 and n:
        labels, n = _compact(labels, np.bincount(labels.ravel(), minlength=n + 1) >= min_area)
        mask = labels > 0
    m = measure_components(resid, labels, n)
    fr, row, col = m["frame"], m["row"], m["col"]
    if psf_sigma is None:
        s = psf_width(resid, fr, row, col)
    else:
        s = np.full(n, float(psf_sigma))
    xs, ys, flux = windowed_centroids(
        resid, fr, m["x_weighted"], m["y_weighted"], s, n_iter=30 if refine else 0
    )
    raw = np.asarray(to_numpy(x), dtype=np.float64)
    hs = Hotspots(
        frame=fr,
        x=xs,
        y=ys,
        x_weighted=m["x_weighted"],
        y_weighted=m["y_weighted"],
        row=row,
        col=col,
        peak=m["peak"],
        value=raw[fr, row, col],
        area=m["area"],
        integrated=m["integrated"],
        flux=flux,
        psf_sigma=s,
        snr=m["peak"] / bg.sigma[fr],
        bbox=m["bbox"],
    )
    return Detection(hs, mask, labels, resid, bg, threshold, float(k_sigma))
