"""Thresholds, segmentation and region statistics for IR frames.

* :func:`otsu_threshold`: Otsu's threshold, the same histogram and tie rule as
  ``skimage.filters.threshold_otsu`` (integer frames: one bin per integer value present;
  float frames: ``nbins`` equal-width bins over min..max, threshold at a bin centre).
  Backend-generic (array-API calls on the input's namespace).
* :func:`multi_otsu_thresholds`: ``skimage.filters.threshold_multiotsu`` on the host.
* :func:`adaptive_threshold`: local mean or Gaussian-weighted mean minus ``offset``
  (as ``skimage.filters.threshold_local``), ``scipy.ndimage`` on the host.
* :func:`watershed_segment`: ``skimage.segmentation.watershed`` on the host.
* :func:`region_stats` and :func:`segment`: labelled objects with area, centroid,
  bounding box and mean intensity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu
from skimage.segmentation import watershed

from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.frames import check_frames


def _histogram(frame: Any, nbins: int) -> tuple[Any, Any]:
    xp = get_namespace(frame)
    x = xp.reshape(frame, (-1,))
    if xp.isdtype(frame.dtype, "integral"):
        lo, hi = int(xp.min(x)), int(xp.max(x))
        codes = xp.astype(x, xp.int64) - lo
        counts = xp.zeros(hi - lo + 1, dtype=xp.float64)
        counts = _bincount(codes, hi - lo + 1)
        centers = xp.astype(xp.arange(lo, hi + 1), xp.float64)
        return counts, centers
    xf = xp.astype(x, xp.float64)
    lo, hi = float(xp.min(xf)), float(xp.max(xf))
    # numpy.histogram's rule: bin i holds lo + i*w <= x < lo + (i+1)*w, max in the last bin
    w = (hi - lo) / nbins
    idx = xp.astype(xp.floor((xf - lo) / w), xp.int64)
    idx = xp.clip(idx, 0, nbins - 1)
    edges = np.linspace(lo, hi, nbins + 1)
    counts = _bincount(idx, nbins)
    centers = xp.asarray((edges[:-1] + edges[1:]) / 2, dtype=xp.float64)
    return counts, centers


def _bincount(codes: Any, n: int) -> Any:
    xp = get_namespace(codes)
    if hasattr(codes, "bincount"):  # torch
        return xp.astype(codes.bincount(minlength=n), xp.float64)
    mod = type(codes).__module__.split(".")[0]
    lib = np if mod == "numpy" else __import__(mod)
    return xp.astype(lib.bincount(codes, minlength=n), xp.float64)


def otsu_threshold(frame: Any, nbins: int = 256) -> float:
    """Otsu's threshold of a frame (pixels ``> threshold`` are foreground).

    Equals ``skimage.filters.threshold_otsu(frame, nbins)``; a constant frame returns its
    value.
    """
    check_frames(frame)
    if nbins < 2:
        raise InvalidInput("nbins", f"must be >= 2, got {nbins}")
    xp = get_namespace(frame)
    x = xp.reshape(frame, (-1,))
    if bool(xp.all(x == x[0])):
        return float(x[0])
    counts, centers = _histogram(frame, nbins)
    w1 = xp.cumulative_sum(counts)
    w2 = xp.flip(xp.cumulative_sum(xp.flip(counts)))
    cc = counts * centers
    m1 = xp.cumulative_sum(cc) / xp.where(w1 > 0, w1, 1.0)
    m2 = xp.flip(xp.cumulative_sum(xp.flip(cc))) / xp.where(w2 > 0, w2, 1.0)
    var = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return float(centers[int(xp.argmax(var))])


def multi_otsu_thresholds(frame: Any, classes: int = 3, nbins: int = 256) -> list[float]:
    """``classes - 1`` thresholds maximising between-class variance (skimage, on the host)."""
    check_frames(frame)
    if classes < 2:
        raise InvalidInput("classes", f"must be >= 2, got {classes}")
    a = to_numpy(frame)
    if np.unique(a).size < classes:
        raise InvalidInput("classes", f"the frame has fewer than {classes} distinct values")
    return [float(t) for t in threshold_multiotsu(a, classes=classes, nbins=nbins)]


def adaptive_threshold(
    frame: Any, block_size: int = 35, method: str = "gaussian", offset: float = 0.0
) -> np.ndarray:
    """Local threshold map (float64, the frame's shape), as ``skimage.filters.threshold_local``.

    ``method="mean"``: mean over a ``block_size`` square; ``"gaussian"``: Gaussian of sigma
    ``(block_size - 1) / 6``. Both with reflect borders, minus ``offset``.
    """
    check_frames(frame)
    if block_size < 1 or block_size % 2 == 0:
        raise InvalidInput("block_size", f"must be an odd positive integer, got {block_size}")
    a = to_numpy(frame).astype(np.float64)
    if method == "mean":
        t = ndimage.uniform_filter(a, size=block_size, mode="reflect")
    elif method == "gaussian":
        t = ndimage.gaussian_filter(a, sigma=(block_size - 1) / 6.0, mode="reflect")
    else:
        raise InvalidInput("method", f"unknown adaptive method {method!r}; choose mean or gaussian")
    return t - offset


def watershed_segment(
    frame: Any, mask: Any | None = None, markers: Any | None = None, min_distance: int = 5
) -> np.ndarray:
    """Split bright objects by a watershed on the inverted frame (skimage, on the host).

    Markers default to local maxima at least ``min_distance`` apart inside ``mask``
    (default: Otsu foreground). Returns an int32 label image (0 = background).
    """
    check_frames(frame)
    a = to_numpy(frame).astype(np.float64)
    m = a > otsu_threshold(a) if mask is None else to_numpy(mask).astype(bool)
    if m.shape != a.shape:
        raise InvalidInput("mask", f"shape {m.shape} does not match the frame {a.shape}")
    if markers is None:
        size = 2 * int(min_distance) + 1
        peaks = (a == ndimage.maximum_filter(a, size=size, mode="constant")) & m
        markers, _ = ndimage.label(peaks, structure=np.ones((3, 3), dtype=bool))
    else:
        markers = to_numpy(markers)
    return watershed(-a, markers, mask=m).astype(np.int32)


def region_stats(labels: Any, frame: Any) -> list[dict[str, Any]]:
    """Statistics per label (> 0) of a label image over a frame.

    Returns
    -------
    list of dict
        ``id``/``label``, ``area`` (pixels), ``centroid`` [x, y] (unweighted, pixel
        centres at integers), ``centroid_rc`` [row, col], ``bounding_box`` and ``bbox``
        [x, y, width, height], ``mean_intensity``, ``max_intensity``, ordered by label.
    """
    lab = to_numpy(labels)
    a = to_numpy(frame).astype(np.float64)
    if lab.shape != a.shape:
        raise InvalidInput("labels", f"shape {lab.shape} does not match the frame {a.shape}")
    n = int(lab.max()) if lab.size else 0
    if n <= 0:
        return []
    flat = lab.ravel().astype(np.intp)
    yy, xx = np.indices(a.shape)
    area = np.bincount(flat, minlength=n + 1)
    sx = np.bincount(flat, weights=xx.ravel(), minlength=n + 1)
    sy = np.bincount(flat, weights=yy.ravel(), minlength=n + 1)
    si = np.bincount(flat, weights=a.ravel(), minlength=n + 1)
    mx = ndimage.maximum(a, lab, np.arange(1, n + 1))
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab.astype(np.intp)), start=1):
        if sl is None or area[k] == 0:
            continue
        bbox = [
            int(sl[1].start),
            int(sl[0].start),
            int(sl[1].stop - sl[1].start),
            int(sl[0].stop - sl[0].start),
        ]
        cx, cy = sx[k] / area[k], sy[k] / area[k]
        out.append(
            {
                "id": k,
                "label": k,
                "area": int(area[k]),
                "centroid": [float(cx), float(cy)],
                "centroid_rc": [float(cy), float(cx)],
                "bounding_box": bbox,
                "bbox": bbox,
                "mean_intensity": float(si[k] / area[k]),
                "max_intensity": float(mx[k - 1]),
            }
        )
    return out


def segment(
    frame: Any,
    method: str = "otsu",
    threshold: float | None = None,
    min_object_size: int = 0,
    *,
    block_size: int = 35,
    offset: float = 0.0,
    classes: int = 3,
    connectivity: int = 8,
) -> dict[str, Any]:
    """Segment bright objects and describe them.

    Parameters
    ----------
    method : {"otsu", "multi_otsu", "adaptive", "adaptive_mean", "watershed", "fixed"}
        ``fixed`` (or any method when ``threshold`` is given) uses ``frame > threshold``;
        ``multi_otsu`` keeps the brightest of ``classes`` classes; ``adaptive`` compares
        with a Gaussian local threshold (``adaptive_mean``: local mean).
    min_object_size : int
        Objects with fewer pixels are dropped (and cleared from the mask).

    Returns
    -------
    dict
        ``segmentation_mask`` (uint8 (H, W), 1 = object), ``labels`` (int32 (H, W)),
        ``objects`` (see :func:`region_stats`), ``num_objects``, ``threshold`` (float, or
        None for local methods), ``method``.
    """
    check_frames(frame)
    a = to_numpy(frame)
    if a.ndim != 2:
        raise InvalidInput("frame", f"expected one (H, W) frame, got shape {a.shape}")
    if min_object_size < 0:
        raise InvalidInput("min_object_size", f"must be >= 0, got {min_object_size}")
    m = str(method).lower()
    af = a.astype(np.float64)
    thr: float | None = None
    if threshold is not None or m == "fixed":
        if threshold is None:
            raise InvalidInput("threshold", "is required with method 'fixed'")
        thr = float(threshold)
        mask = af > thr
    elif m == "otsu":
        thr = otsu_threshold(a)
        mask = af > thr
    elif m == "multi_otsu":
        thr = multi_otsu_thresholds(a, classes=classes)[-1]
        mask = af > thr
    elif m in ("adaptive", "adaptive_gaussian", "adaptive_mean"):
        kind = "mean" if m == "adaptive_mean" else "gaussian"
        mask = af > adaptive_threshold(a, block_size=block_size, method=kind, offset=offset)
    elif m == "watershed":
        thr = otsu_threshold(a)
        labels = watershed_segment(a, mask=af > thr)
        mask = labels > 0
    else:
        raise InvalidInput(
            "method",
            f"unknown method {method!r}; choose otsu, multi_otsu, adaptive, adaptive_mean, watershed, fixed",
        )
    if m != "watershed" or threshold is not None:
        struct = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
        labels, _ = ndimage.label(mask, structure=struct)
    if min_object_size > 1:
        area = np.bincount(labels.ravel())
        keep = area >= min_object_size
        keep[0] = False
        new = np.zeros(area.size, dtype=np.int32)
        new[keep] = np.arange(1, int(keep.sum()) + 1)
        labels = new[labels]
    labels = labels.astype(np.int32)
    objects = region_stats(labels, af)
    return {
        "segmentation_mask": (labels > 0).astype(np.uint8),
        "labels": labels,
        "objects": objects,
        "num_objects": len(objects),
        "threshold": thr,
        "method": m,
    }
