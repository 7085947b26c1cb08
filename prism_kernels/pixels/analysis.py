"""What the pixels service computes for one frame, as plain results (no state, no storage).

Each function takes a validated NumPy frame (H, W) and options, and returns a dict of plain
numbers, lists and, for per-pixel maps only, NumPy arrays under keys that say so
(``entropy_map``, ``segmentation_mask``, ``detection_mask``, ``processed_pixels``).
:class:`~prism_kernels.pixels.service.PixelsService` stores their summaries under the frame.

A statistic that cannot be computed as a finite number (a frame of values near 1e308
overflows a sum) is returned as ``None`` by :func:`finite`, never as inf or NaN: a valid frame
is never refused because of what it computes to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.entropy import histogram_entropy
from prism_kernels.pixels import classify as signature_model
from prism_kernels.pixels import topology
from prism_kernels.pixels.entropy import high_entropy_regions, local_entropy
from prism_kernels.pixels.hotspots import detect_hotspots
from prism_kernels.pixels.processing import frame_stats
from prism_kernels.pixels.segment import segment

#: A Sobel component of white noise with sigma s has std sqrt(12) s; its magnitude exceeds
#: ``EDGE_K`` s = sqrt(24 ln 1000) s with probability 1e-3 (Rayleigh tail).
EDGE_K = math.sqrt(24.0 * math.log(1000.0))

#: Objects and hotspots kept in a stored summary (the first ones; the brightest hotspots).
MAX_STORED_ITEMS = 200


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (inf, NaN; NumPy scalars too) replaced by ``None``.

    Dicts, lists and tuples are walked; NumPy arrays (per-pixel maps) are left as they are.
    """
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _scalars(stats: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in stats.items()}


def extracted_features(frame: np.ndarray, stats: Mapping[str, float]) -> dict[str, Any]:
    """Whole-frame features of one frame.

    Returns
    -------
    dict
        ``mean_intensity``, ``std_intensity`` (counts), ``shannon_entropy`` (bits, the
        256-level histogram of :func:`~prism_kernels.imaging.entropy.histogram_entropy`),
        ``edge_density`` (fraction of pixels whose Sobel gradient exceeds :data:`EDGE_K`
        noise sigmas: 1e-3 of pure noise; mean + 2 std of the gradient when the noise sigma is
        0) and ``convolution_features`` (mean Sobel magnitude, mean Laplacian magnitude;
        counts per pixel).
    """
    f = frame.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        mag = np.hypot(ndimage.sobel(f, axis=1), ndimage.sobel(f, axis=0))
        sigma = stats.get("noise_sigma") or 0.0
        thr = EDGE_K * sigma if sigma > 0 else float(np.mean(mag) + 2 * np.std(mag))
        return {
            "mean_intensity": stats["mean"],
            "std_intensity": stats["std"],
            "shannon_entropy": histogram_entropy(frame),
            "edge_density": float(np.mean(mag > thr)),
            "convolution_features": [
                float(np.mean(mag)),
                float(np.mean(np.abs(ndimage.laplace(f)))),
            ],
        }


def entropy_analysis(
    frame: np.ndarray, window_size: int = 7, window: str = "disk", percentile: float = 90.0
) -> dict[str, Any]:
    """Local Shannon entropy (bits) of a frame and its summary.

    Parameters
    ----------
    window_size : int
        Window side in pixels: a disk of that diameter (radius ``window_size // 2``) or a
        square of that side.
    window : {"disk", "square"}
    percentile : float
        High-entropy regions lie above this percentile of the map.

    Returns
    -------
    dict
        ``entropy_map`` (ndarray, bits), ``global_entropy`` (bits), ``mean_local_entropy``,
        ``max_local_entropy``, ``p90_local_entropy`` (bits), ``high_entropy_regions`` (the
        100 largest), ``num_high_entropy_regions``, ``window``, ``window_size``.
    """
    if isinstance(window_size, bool) or int(window_size) != window_size or window_size < 1:
        raise InvalidInput("window_size", f"must be a positive integer, got {window_size!r}")
    size = max(1, int(window_size) // 2) if window == "disk" else int(window_size)
    emap = local_entropy(frame, window=window, size=size)
    regions = high_entropy_regions(emap, percentile=percentile)
    return {
        "entropy_map": emap,
        "global_entropy": histogram_entropy(frame),
        "mean_local_entropy": float(np.mean(emap)),
        "max_local_entropy": float(np.max(emap)),
        "p90_local_entropy": float(np.percentile(emap, 90)),
        "high_entropy_regions": regions[:100],
        "num_high_entropy_regions": len(regions),
        "window": window,
        "window_size": int(window_size),
    }


def segment_analysis(
    frame: np.ndarray,
    method: str = "otsu",
    threshold: float | None = None,
    min_object_size: int = 0,
    **options: Any,
) -> dict[str, Any]:
    """Segmentation (:func:`prism_kernels.pixels.segment.segment`) and its summary.

    Returns
    -------
    dict
        ``segmentation_mask`` (uint8 ndarray), ``objects`` (all of them), ``method``,
        ``threshold`` (counts, ``None`` for local methods), ``num_objects`` and
        ``foreground_fraction``.
    """
    res = segment(
        frame, method=method, threshold=threshold, min_object_size=min_object_size, **options
    )
    mask = res["segmentation_mask"]
    return {
        "segmentation_mask": mask,
        "objects": res["objects"],
        "method": res["method"],
        "threshold": res["threshold"],
        "num_objects": res["num_objects"],
        "foreground_fraction": float(np.mean(mask > 0)),
    }


def process_frame(
    frame: np.ndarray,
    *,
    detect: bool = True,
    k_sigma: float = 6.0,
    min_hotspot_size: int = 1,
    compute_entropy: bool = False,
    entropy_window_size: int | None = None,
    compute_tda: bool = False,
    tda_threshold: float | None = None,
    compute_segmentation: bool = False,
    segmentation_method: str = "otsu",
    extract_features: bool = True,
    return_maps: bool = False,
) -> dict[str, Any]:
    """Statistics, hotspots and, on request, features, entropy, topology and segmentation.

    Returns
    -------
    dict
        ``width``, ``height`` (pixels), ``stats`` (:func:`~prism_kernels.pixels.processing.frame_stats`,
        counts), ``hotspots`` and ``num_hotspots`` with ``detect``
        (:func:`~prism_kernels.pixels.hotspots.detect_hotspots`), ``extracted_features``,
        ``entropy`` (the summary of :func:`entropy_analysis`), ``tda_features``
        (:func:`~prism_kernels.pixels.topology.tda_summary`) and ``segmentation`` (summary of
        :func:`segment_analysis`, at most :data:`MAX_STORED_ITEMS` objects) when asked. With
        ``return_maps`` also ``detection_mask``, ``processed_pixels`` (the residual the
        detector thresholds, counts), ``entropy_map`` and ``segmentation_mask`` (ndarrays).
    """
    f = frame.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        stats = _scalars(frame_stats(f))
    out: dict[str, Any] = {"width": int(frame.shape[1]), "height": int(frame.shape[0])}
    out["stats"] = stats
    if detect:
        with np.errstate(over="ignore", invalid="ignore"):
            det = detect_hotspots(f, k_sigma=k_sigma, min_area=max(1, int(min_hotspot_size)))
        out["hotspots"] = det.hotspots[0]
        out["num_hotspots"] = len(det.hotspots[0])
        if return_maps:
            out["detection_mask"] = det.mask[0]
            out["processed_pixels"] = det.residual[0]
    if extract_features:
        out["extracted_features"] = extracted_features(frame, stats)
    if compute_entropy:
        ent = entropy_analysis(frame, entropy_window_size or 7)
        emap = ent.pop("entropy_map")
        out["entropy"] = ent
        if return_maps:
            out["entropy_map"] = emap
    if compute_tda:
        out["tda_features"] = topology.tda_summary(f, threshold=tda_threshold)
    if compute_segmentation:
        seg = segment_analysis(frame, segmentation_method, None, max(0, int(min_hotspot_size)))
        mask = seg.pop("segmentation_mask")
        seg["objects"] = seg["objects"][:MAX_STORED_ITEMS]
        out["segmentation"] = seg
        if return_maps:
            out["segmentation_mask"] = mask
    return finite(out)


def _hotspot_features(h: Mapping[str, Any]) -> dict[str, float | None]:
    """What one frame shows of a hotspot, as signature features (a non-finite one: missing)."""
    peak = h.get("peak")
    log_peak = math.log10(max(peak, 1e-12)) if peak is not None and math.isfinite(peak) else None
    return {"log_peak_intensity": log_peak, "log_mean_size": math.log10(h["area"])}


def classify_signatures(
    frame: np.ndarray | None = None,
    *,
    tracks: Sequence[Sequence[Mapping[str, Any]]] | None = None,
    features: Mapping[str, Any] | None = None,
    dt: float = 0.1,
    k_sigma: float = 6.0,
    confidence_threshold: float = 0.0,
) -> dict[str, Any]:
    """Signature classification with the shipped model (:mod:`prism_kernels.pixels.classify`).

    Exactly one of ``features`` (one classification), ``tracks`` (per-frame hotspot statistics
    of each tracked hotspot, oldest first: one classification per track) or ``frame`` (each
    hotspot detected at ``k_sigma`` is classified from what one frame shows, its peak and
    area; the time-series features are imputed, see ``imputed``).

    Returns
    -------
    dict
        ``classifications`` ([{class, confidence, probabilities, contributions, bias,
        imputed, model, accepted, and for frame hotspots hotspot_id, x, y (pixels), bbox
        {x, y, width, height}}]): ``accepted`` is ``confidence >= confidence_threshold``;
        ``class_counts`` (accepted ones per class), ``num_classified``, ``model_used``,
        ``model_held_out_accuracy``, ``confidence_threshold``.
    """
    if not 0.0 <= confidence_threshold <= 1.0:
        raise InvalidInput("confidence_threshold", "must lie in [0, 1]")
    given = (features is not None) + (tracks is not None) + (frame is not None)
    if given != 1:
        raise InvalidInput(
            "features", "give exactly one of features, tracks, or a frame / frame_id"
        )
    results: list[dict[str, Any]] = []
    if features is not None:
        results.append(signature_model.classify(features))
    elif tracks is not None:
        if not tracks:
            raise InvalidInput("tracks", "is empty")
        for i, tr in enumerate(tracks):
            try:
                results.append(signature_model.classify_track(tr, dt))
            except InvalidInput as exc:
                raise InvalidInput(f"tracks.{i}", exc.message) from exc
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            det = detect_hotspots(np.asarray(frame, dtype=np.float64), k_sigma=k_sigma)
        for h in finite(det.hotspots[0]):
            r = signature_model.classify(_hotspot_features(h))
            x, y, w, hh = h["bbox"]
            r["bbox"] = {"x": x, "y": y, "width": w, "height": hh}
            r["hotspot_id"] = h["id"]
            r["x"], r["y"] = h["x"], h["y"]
            results.append(r)
    counts = {c: 0 for c in signature_model.CLASSES}
    for r in results:
        r.pop("features", None)
        r["accepted"] = r["confidence"] >= confidence_threshold
        counts[r["class"]] += r["accepted"]
    return finite(
        {
            "classifications": results,
            "class_counts": counts,
            "num_classified": len(results),
            "model_used": "multinomial_logistic_regression",
            "model_held_out_accuracy": signature_model.default_classifier().training.get(
                "held_out_accuracy"
            ),
            "confidence_threshold": float(confidence_threshold),
        }
    )
