"""Hotspot detection over batches of IR frames.

Pipeline, one call for a whole (B, H, W) stack:

1. background: :func:`~prism_kernels.pixels.processing.estimate_background` (local mean of
   ``background_size`` by default: one filter pass over the whole stack; ``sigma_clip``
   is more robust beside large bright objects at about 4x the cost, ``median`` slower still), or a white top-hat (``tophat_size``) that keeps only small bright details;
2. residual ``r = frame - background`` and a robust noise sigma per frame
   (``MAD_FACTOR * MAD(r)`` over every second row and column);
3. detection mask ``r > k_sigma * sigma`` (default 6 sigma: about 1e-9 false pixels per
   pixel for Gaussian noise);
4. connected components: ``scipy.ndimage.label`` on the host over the whole stack at once,
   with a structure that never connects two frames; optionally split by local maxima and
   watershed (``split_peaks``, ``skimage.segmentation.watershed`` on the host);
5. per-hotspot statistics, vectorised over all hotspots of all frames (``bincount`` /
   ``ndimage`` reductions): area, peak, integrated intensity above background, bounding
   box, SNR, intensity-weighted centroid, and a refined centroid (Gaussian-windowed
   centroid iterated on a stamp around the peak, unbiased for a symmetric PSF).

Coordinates: ``x`` is the column, ``y`` the row, pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.special import ndtr

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pixels.processing import (
    MAD_FACTOR,
    check_frames,
    estimate_background,
    white_tophat,
)


@dataclass
class HotspotDetection:
    """Result of :func:`detect_hotspots` for a stack (NumPy arrays, (B, H, W) unless noted).

    ``hotspots[b]`` lists frame ``b``'s hotspots as dicts (see :func:`hotspot_stats`).
    ``noise_sigma`` and ``threshold`` are (B,) arrays.
    """

    hotspots: list[list[dict[str, Any]]]
    mask: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    background: np.ndarray = field(repr=False)
    residual: np.ndarray = field(repr=False)
    noise_sigma: np.ndarray
    threshold: np.ndarray

    @property
    def counts(self) -> list[int]:
        return [len(h) for h in self.hotspots]


def label_stack(mask: Any, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Label connected components of every frame of a (B, H, W) (or (H, W)) boolean mask.

    One ``scipy.ndimage.label`` call on the host; labels are unique across the stack and
    no component crosses frames. ``connectivity`` is 4 or 8.
    """
    m = to_numpy(mask).astype(bool)
    if connectivity not in (4, 8):
        raise InvalidInput("connectivity", f"must be 4 or 8, got {connectivity}")
    plane = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    if m.ndim == 2:
        lab, n = ndimage.label(m, structure=plane)
        return lab, int(n)
    struct = np.zeros((3, 3, 3), dtype=bool)
    struct[1] = plane
    lab, n = ndimage.label(m, structure=struct)
    return lab, int(n)


def _refine(
    resid: np.ndarray,
    b: np.ndarray,
    py: np.ndarray,
    px: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    sigma: float,
    iters: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-windowed centroids on (2h+1)^2 stamps around integer peaks, all at once."""
    h = max(2, int(np.ceil(3 * sigma)))
    d = np.arange(-h, h + 1)
    ys = (py[:, None, None] + d[None, :, None]).astype(np.intp)
    xs = (px[:, None, None] + d[None, None, :]).astype(np.intp)
    inside = (ys >= 0) & (ys < resid.shape[1]) & (xs >= 0) & (xs < resid.shape[2])
    stamp = resid[
        b[:, None, None], np.clip(ys, 0, resid.shape[1] - 1), np.clip(xs, 0, resid.shape[2] - 1)
    ]
    stamp = np.where(inside, stamp, 0.0)
    xc, yc = x0.astype(float).copy(), y0.astype(float).copy()
    for _ in range(iters):
        g = np.exp(
            -((xs - xc[:, None, None]) ** 2 + (ys - yc[:, None, None]) ** 2) / (2 * sigma**2)
        )
        w = g * stamp
        sw = w.sum(axis=(1, 2))
        ok = sw > 0
        nx = np.where(ok, (w * xs).sum(axis=(1, 2)) / np.where(ok, sw, 1), xc)
        ny = np.where(ok, (w * ys).sum(axis=(1, 2)) / np.where(ok, sw, 1), yc)
        # stay within the stamp; a wild step means the window lost the source
        nx = np.clip(nx, px - h / 2, px + h / 2)
        ny = np.clip(ny, py - h / 2, py + h / 2)
        done = (
            np.max(np.abs(nx - xc), initial=0.0) < 1e-6
            and np.max(np.abs(ny - yc), initial=0.0) < 1e-6
        )
        xc, yc = nx, ny
        if done:
            break
    return xc, yc


def hotspot_stats(
    frames: np.ndarray,
    residual: np.ndarray,
    labels: np.ndarray,
    n: int,
    noise_sigma: np.ndarray,
    *,
    psf_sigma: float | None = 1.5,
) -> list[list[dict[str, Any]]]:
    """Statistics of labelled hotspots, vectorised over every hotspot of a (B, H, W) stack.

    Each hotspot dict holds: ``id`` (1-based within its frame), ``frame``, ``x, y`` and
    ``centroid`` [x, y] (refined when ``psf_sigma`` is given, else intensity-weighted),
    ``centroid_weighted`` [x, y] (weights: residual above background, clipped at 0),
    ``area`` (pixels), ``peak`` (max residual), ``intensity`` (frame value at the peak),
    ``integrated`` (sum of residual over the component), ``bbox`` and ``bounding_box``
    [x, y, width, height], ``snr`` (peak / noise sigma), ``radius`` (sqrt(area/pi)),
    ``confidence`` (1 minus the chance that pure noise gives such a peak somewhere in
    the frame: ``max(0, 1 - H*W*Q(snr))``).
    """
    nb = labels.shape[0]
    out: list[list[dict[str, Any]]] = [[] for _ in range(nb)]
    if n == 0:
        return out
    flat = labels.ravel()
    sel = np.flatnonzero(flat)
    lab = flat[sel]
    r = residual.ravel()[sel]
    w = np.maximum(r, 0.0)
    bi, yi, xi = np.unravel_index(sel, labels.shape)
    area = np.bincount(lab, minlength=n + 1)[1:]
    sw = np.bincount(lab, weights=w, minlength=n + 1)[1:]
    integ = np.bincount(lab, weights=r, minlength=n + 1)[1:]
    cx_w = np.bincount(lab, weights=w * xi, minlength=n + 1)[1:] / np.where(sw > 0, sw, 1)
    cy_w = np.bincount(lab, weights=w * yi, minlength=n + 1)[1:] / np.where(sw > 0, sw, 1)
    # peak: last element per label after sorting by (label, residual)
    order = np.lexsort((r, lab))
    last = np.flatnonzero(np.r_[lab[order][1:] != lab[order][:-1], True])
    pk = order[last]
    peak = r[pk]
    pb, py, px = bi[pk], yi[pk], xi[pk]
    no_w = sw <= 0
    cx_w = np.where(no_w, px, cx_w)
    cy_w = np.where(no_w, py, cy_w)
    if psf_sigma:
        cx, cy = _refine(residual, pb, py, px, cx_w, cy_w, float(psf_sigma))
    else:
        cx, cy = cx_w, cy_w
    objs = ndimage.find_objects(labels)
    sig = noise_sigma[pb]
    snr = np.where(sig > 0, peak / np.where(sig > 0, sig, 1), np.inf)
    npix = labels.shape[1] * labels.shape[2]
    conf = np.clip(1.0 - npix * ndtr(-np.minimum(snr, 1e6)), 0.0, 1.0)
    raw = frames[pb, py, px]
    for k in range(n):
        sl = objs[k]
        b = int(pb[k])
        bbox = [
            int(sl[2].start),
            int(sl[1].start),
            int(sl[2].stop - sl[2].start),
            int(sl[1].stop - sl[1].start),
        ]
        out[b].append(
            {
                "id": len(out[b]) + 1,
                "frame": b,
                "x": float(cx[k]),
                "y": float(cy[k]),
                "centroid": [float(cx[k]), float(cy[k])],
                "centroid_weighted": [float(cx_w[k]), float(cy_w[k])],
                "area": int(area[k]),
                "peak": float(peak[k]),
                "intensity": float(raw[k]),
                "integrated": float(integ[k]),
                "bbox": bbox,
                "bounding_box": bbox,
                "snr": float(snr[k]),
                "radius": float(np.sqrt(area[k] / np.pi)),
                "confidence": float(conf[k]),
            }
        )
    return out


def detect_hotspots(
    frames: Any,
    k_sigma: float = 6.0,
    *,
    background: str = "mean",
    background_size: int = 31,
    tophat_size: int | None = None,
    min_area: int = 1,
    connectivity: int = 8,
    split_peaks: bool = False,
    min_distance: int = 3,
    psf_sigma: float | None = 1.5,
) -> HotspotDetection:
    """Detect hotspots in one frame (H, W) or a stack (B, H, W).

    Parameters
    ----------
    k_sigma : float
        Threshold in robust noise sigmas above the background.
    background, background_size
        Background estimator (see ``estimate_background``); ignored with ``tophat_size``.
    tophat_size : int, optional
        Use a white top-hat of this square size instead of a background filter.
    min_area : int
        Drop components smaller than this (pixels).
    split_peaks : bool
        Split components with several local maxima (at least ``min_distance`` apart) by a
        watershed on the residual.
    psf_sigma : float or None
        Gaussian window (pixels) for centroid refinement; None keeps the
        intensity-weighted centroid.

    Returns
    -------
    HotspotDetection
        For a single frame the arrays still carry a leading batch axis of 1.
    """
    check_frames(frames)
    if not k_sigma > 0:
        raise InvalidInput("k_sigma", f"must be > 0, got {k_sigma}")
    if min_area < 1:
        raise InvalidInput("min_area", f"must be >= 1, got {min_area}")
    a = to_numpy(frames).astype(np.float64)
    a = a[None] if a.ndim == 2 else a
    if tophat_size:
        resid = to_numpy(white_tophat(a, size=int(tophat_size)))
        bg = a - resid
    else:
        bg = to_numpy(estimate_background(a, method=background, size=background_size))
        resid = a - bg
    sub = (
        resid[:, ::2, ::2]
        if resid.shape[1] > 1 and resid.shape[2] > 1 and resid[0].size >= 64
        else resid
    )
    flat = sub.reshape(resid.shape[0], -1)
    med = np.median(flat, axis=1)
    sig = MAD_FACTOR * np.median(np.abs(flat - med[:, None]), axis=1)
    thr = med + k_sigma * sig
    mask = resid > thr[:, None, None]
    labels, n = label_stack(mask, connectivity)
    if split_peaks and n:
        labels, n = _split(resid, mask, labels, min_distance, connectivity)
    if min_area > 1 and n:
        area = np.bincount(labels.ravel(), minlength=n + 1)
        small = area < min_area
        small[0] = False
        labels = np.where(small[labels], 0, labels)
        mask = labels > 0
        labels, n = label_stack(mask, connectivity) if not split_peaks else _relabel(labels)
    hs = hotspot_stats(a, resid, labels, n, sig, psf_sigma=psf_sigma)
    return HotspotDetection(hs, mask, labels, bg, resid, sig, thr)


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    u, inv = np.unique(labels, return_inverse=True)
    if u[0] != 0:
        inv = inv + 1
    return inv.reshape(labels.shape).astype(np.int32), int((u > 0).sum())


def _split(
    resid: np.ndarray, mask: np.ndarray, labels: np.ndarray, min_distance: int, connectivity: int
) -> tuple[np.ndarray, int]:
    from skimage.segmentation import watershed

    size = 2 * int(min_distance) + 1
    peaks = (resid == ndimage.maximum_filter(resid, size=(1, size, size), mode="constant")) & mask
    markers, _ = label_stack(peaks, 8)
    out = np.zeros_like(labels)
    off = 0
    for b in range(resid.shape[0]):
        ws = watershed(
            -resid[b], markers[b], mask=mask[b], connectivity=1 if connectivity == 4 else 2
        )
        ws, k = _relabel(ws)
        out[b] = np.where(ws > 0, ws + off, 0)
        off += k
    return out, off
