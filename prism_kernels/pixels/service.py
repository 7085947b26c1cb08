"""The pixels service: a bounded frame archive with the results computed for each frame.

One document of kind ``"frame"`` per frame id in :class:`prism_kernels.store.Store`:
``frame_id``, ``shape``, ``dtype``, ``created``/``updated`` (Unix seconds), whether the pixels
are kept, and ``results``: ``stats``, ``hotspots``, ``entropy``, ``segmentation``,
``topology`` and ``classification`` summaries (small JSON: no per-pixel maps). The pixels
are kept with the document as a compressed array when the frame has at most
:data:`PIXEL_CAP` pixels (1024 x 1024); larger frames are processed but only their results
are kept. The archive keeps the newest ``max_frames`` frames (default
:data:`MAX_FRAMES`); older ones are dropped by the store.

Methods take a frame (array, any backend) and/or a ``frame_id``: with a frame, it is
(re)stored under the id (a fresh id when none is given); with an id only, the stored
pixels are used (``NotFound`` when the id is unknown, ``InvalidInput`` when its pixels
were over the cap). Every method returns plain dicts (NumPy arrays only for per-pixel
maps, under keys that say so). Thread-safe: one lock around each read-modify-write.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from typing import Any

import numpy as np
from scipy import ndimage

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.pixels import classify as _classify
from prism_kernels.pixels import topology
from prism_kernels.pixels.entropy import global_entropy, high_entropy_regions, local_entropy
from prism_kernels.pixels.frames import validate_frame
from prism_kernels.pixels.hotspots import detect_hotspots
from prism_kernels.pixels.processing import frame_stats
from prism_kernels.pixels.segment import segment as _segment
from prism_kernels.store import Bound, Store

KIND = "frame"
#: Frames with at most this many pixels keep their pixels in the archive (compressed).
PIXEL_CAP = 1024 * 1024
#: Default number of frames the archive keeps.
MAX_FRAMES = 500
#: Hotspots kept per frame in the stored results (the brightest first).
MAX_STORED_HOTSPOTS = 200
#: Classes that raise a ``ThreatDetected`` event when classified above the threshold.
THREAT_CLASSES = ("missile_plume",)

# A Sobel component of white noise with sigma s has std sqrt(12) s; its magnitude exceeds
# sqrt(24 ln 1000) s with probability 1e-3 (Rayleigh tail).
_EDGE_K = math.sqrt(24.0 * math.log(1000.0))


def _scalar(v: Any) -> float:
    return float(np.asarray(v).reshape(-1)[0]) if np.size(v) == 1 else float(v)


class PixelsService:
    """Frame archive plus the pixel kernels (hotspots, entropy, segmentation, topology, classification).

    Parameters
    ----------
    store : Store
    bus : EventBus, optional
        ``ThreatDetected`` is published when :meth:`classify` finds a class of
        :data:`THREAT_CLASSES` with confidence at or above its ``confidence_threshold``.
    max_frames : int
        Bound of the ``"frame"`` kind in the store.
    """

    def __init__(
        self, store: Store, bus: EventBus | None = None, max_frames: int = MAX_FRAMES
    ) -> None:
        if max_frames < 1:
            raise InvalidInput("max_frames", "must be at least 1")
        self.store = store
        self.bus = bus
        self.max_frames = int(max_frames)
        self.store.set_bound(KIND, Bound(max_items=self.max_frames))
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ archive

    def _new_id(self) -> str:
        return f"frame-{uuid.uuid4().hex[:12]}"

    def _frame_id(self, frame_id: str | int | None) -> str:
        if frame_id is None:
            return self._new_id()
        if isinstance(frame_id, bool) or not isinstance(frame_id, (str, int, np.integer)):
            raise InvalidInput(
                "frame_id", f"must be a string or an integer, got {type(frame_id).__name__}"
            )
        s = str(frame_id)
        if not s or len(s) > 200:
            raise InvalidInput("frame_id", "must be 1 to 200 characters")
        return s

    def put_frame(
        self, frame: Any, frame_id: str | int | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store a frame (replacing any results of the same id); returns its record."""
        a = validate_frame(frame)
        fid = self._frame_id(frame_id)
        with self._lock:
            self._write(fid, a, metadata)
            return self.get_frame(fid)

    def _write(self, fid: str, a: np.ndarray, metadata: dict[str, Any] | None) -> dict[str, Any]:
        now = time.time()
        keep = a.size <= PIXEL_CAP
        doc = {
            "frame_id": fid,
            "shape": [int(s) for s in a.shape],
            "width": int(a.shape[1]),
            "height": int(a.shape[0]),
            "dtype": str(a.dtype),
            "created": now,
            "updated": now,
            "pixels_stored": keep,
            "pixels_nbytes": int(a.nbytes) if keep else 0,
            "metadata": dict(metadata or {}),
            "results": {},
            "processing_time_ms": None,
            "status": "stored",
        }
        self.store.put(KIND, fid, doc, {"pixels": a} if keep else None)
        return doc

    def _doc(self, fid: str) -> dict[str, Any]:
        return self.store.get(KIND, fid)

    def get_frame(self, frame_id: str | int) -> dict[str, Any]:
        """The stored record of a frame (no pixels); raises ``NotFound``."""
        fid = self._frame_id(frame_id)
        doc = self._doc(fid)
        doc["id"] = fid
        doc["timestamp"] = doc["updated"]
        return doc

    def get_pixels(self, frame_id: str | int) -> np.ndarray:
        """The stored pixels; ``NotFound`` for an unknown id, ``InvalidInput`` when not kept."""
        fid = self._frame_id(frame_id)
        arrays = self.store.get_arrays(KIND, fid)
        if "pixels" not in arrays:
            raise InvalidInput(
                "frame_id",
                f"frame {fid!r} is archived without pixels (over {PIXEL_CAP} pixels); send the frame again",
            )
        return arrays["pixels"]

    def list_frames(self, limit: int | None = 100) -> list[dict[str, Any]]:
        """Newest-last summaries: ``frame_id, shape, created, updated, status, results`` keys present."""
        rows = self.store.list(KIND)
        if limit is not None:
            rows = rows[-int(limit) :]
        return [
            {
                "frame_id": fid,
                "shape": d["shape"],
                "created": d["created"],
                "updated": d["updated"],
                "status": d["status"],
                "results": sorted(d["results"]),
            }
            for fid, d in rows
        ]

    def delete_frame(self, frame_id: str | int) -> bool:
        with self._lock:
            return self.store.delete(KIND, self._frame_id(frame_id))

    def _resolve(self, frame: Any, frame_id: str | int | None) -> tuple[str, np.ndarray]:
        """Store a given frame, or load a stored one (under the lock)."""
        if frame is None:
            if frame_id is None:
                raise InvalidInput("frame", "give a frame or the frame_id of a stored frame")
            fid = self._frame_id(frame_id)
            return fid, self.get_pixels(fid)
        a = validate_frame(frame)
        fid = self._frame_id(frame_id)
        if self.store.exists(KIND, fid):
            doc = self._doc(fid)
            if (
                doc["shape"] != list(a.shape)
                or doc["dtype"] != str(a.dtype)
                or not self._same(fid, a, doc)
            ):
                self._write(fid, a, doc.get("metadata"))
        else:
            self._write(fid, a, None)
        return fid, a

    def _same(self, fid: str, a: np.ndarray, doc: dict[str, Any]) -> bool:
        if not doc.get("pixels_stored"):
            return False
        return bool(np.array_equal(self.store.get_arrays(KIND, fid).get("pixels"), a))

    def _save(self, fid: str, results: dict[str, Any], elapsed_ms: float) -> None:
        """Record results under a stored frame (one store write). A frame dropped meanwhile by
        the archive's bound is not resurrected."""
        try:
            doc = self._doc(fid)
            arrays = self.store.get_arrays(KIND, fid)
        except NotFound:
            return
        doc["results"].update(results)
        doc["updated"] = time.time()
        doc["processing_time_ms"] = elapsed_ms
        doc["status"] = "processed"
        doc["processed_count"] = int(doc.get("processed_count", 0)) + 1
        self.store.put(KIND, fid, doc, arrays or None)

    # ------------------------------------------------------------------ kernels

    def process(
        self,
        frame: Any = None,
        frame_id: str | int | None = None,
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
        """Statistics, hotspots and (optionally) entropy and topology of one frame.

        Returns
        -------
        dict
            ``frame_id``, ``width``, ``height``, ``stats`` (mean, std, min, max, median,
            percentiles, noise sigma), ``hotspots`` ([{x, y, radius, intensity, peak, area,
            bbox, snr, confidence, ...}]), ``num_hotspots``, ``extracted_features``
            (``mean_intensity, std_intensity, shannon_entropy`` (bits, 256-bin histogram),
            ``edge_density`` (fraction of pixels whose Sobel gradient exceeds
            ``sqrt(24 ln 1000)`` noise sigmas: 1e-3 of pure noise), ``convolution_features``
            (mean Sobel magnitude, mean Laplacian magnitude)), ``entropy`` and ``tda_features``
            and ``segmentation`` (summary) when asked, ``computation_time_ms``;
            ``detection_mask``, ``entropy_map`` and ``segmentation_mask`` (NumPy arrays) only
            with ``return_maps``.
        """
        t0 = time.perf_counter()
        with self._lock:
            fid, a = self._resolve(frame, frame_id)
        f = a.astype(np.float64)
        stats = {k: _scalar(v) for k, v in frame_stats(f).items()}
        out: dict[str, Any] = {
            "frame_id": fid,
            "width": int(a.shape[1]),
            "height": int(a.shape[0]),
            "stats": stats,
        }
        mask = None
        if detect:
            det = detect_hotspots(f, k_sigma=k_sigma, min_area=max(1, int(min_hotspot_size)))
            hs = det.hotspots[0]
            out["hotspots"] = hs
            out["num_hotspots"] = len(hs)
            mask = det.mask[0]
        if extract_features:
            gx, gy = ndimage.sobel(f, axis=1), ndimage.sobel(f, axis=0)
            mag = np.hypot(gx, gy)
            sigma = stats.get("noise_sigma", 0.0)
            thr = _EDGE_K * sigma if sigma > 0 else float(np.mean(mag) + 2 * np.std(mag))
            out["extracted_features"] = {
                "mean_intensity": stats["mean"],
                "std_intensity": stats["std"],
                "shannon_entropy": global_entropy(a),
                "edge_density": float(np.mean(mag > thr)),
                "convolution_features": [
                    float(np.mean(mag)),
                    float(np.mean(np.abs(ndimage.laplace(f)))),
                ],
            }
        if compute_entropy:
            ent = self._entropy(a, entropy_window_size or 7, "disk", 90.0)
            emap = ent.pop("entropy_map")
            out["entropy"] = ent
            if return_maps:
                out["entropy_map"] = emap
        if compute_tda:
            out["tda_features"] = topology.tda_summary(f, threshold=tda_threshold)
        if compute_segmentation:
            seg = self._segment(a, segmentation_method, None, max(0, int(min_hotspot_size)))
            out["segmentation"] = seg["summary"]
            if return_maps:
                out["segmentation_mask"] = seg["segmentation_mask"]
        if return_maps and mask is not None:
            out["detection_mask"] = mask
        elapsed = (time.perf_counter() - t0) * 1e3
        out["computation_time_ms"] = elapsed
        with self._lock:
            res: dict[str, Any] = {
                "stats": {"stats": stats, "extracted_features": out.get("extracted_features")}
            }
            if detect:
                top = sorted(out["hotspots"], key=lambda h: -h["peak"])[:MAX_STORED_HOTSPOTS]
                res["hotspots"] = {"count": out["num_hotspots"], "hotspots": top}
            if compute_entropy:
                res["entropy"] = out["entropy"]
            if compute_tda:
                res["topology"] = out["tda_features"]
            if compute_segmentation:
                res["segmentation"] = out["segmentation"]
            self._save(fid, res, elapsed)
        return out

    def _entropy(
        self, a: np.ndarray, window_size: int, window: str, percentile: float
    ) -> dict[str, Any]:
        if isinstance(window_size, bool) or int(window_size) != window_size or window_size < 1:
            raise InvalidInput("window_size", f"must be a positive integer, got {window_size!r}")
        # The REST contract's window_size is a side length; a disk of that diameter.
        size = max(1, int(window_size) // 2) if window == "disk" else int(window_size)
        emap = local_entropy(a, window=window, size=size)
        regions = high_entropy_regions(emap, percentile=percentile)
        return {
            "entropy_map": emap,
            "global_entropy": global_entropy(a),
            "mean_local_entropy": float(np.mean(emap)),
            "max_local_entropy": float(np.max(emap)),
            "p90_local_entropy": float(np.percentile(emap, 90)),
            "high_entropy_regions": regions[:100],
            "num_high_entropy_regions": len(regions),
            "window": window,
            "window_size": int(window_size),
        }

    def entropy(
        self,
        frame: Any = None,
        frame_id: str | int | None = None,
        window_size: int = 7,
        window: str = "disk",
        percentile: float = 90.0,
    ) -> dict[str, Any]:
        """Local Shannon entropy (bits): ``entropy_map`` (ndarray), ``global_entropy``,
        ``high_entropy_regions``, summary numbers and ``computation_time_ms``."""
        t0 = time.perf_counter()
        with self._lock:
            fid, a = self._resolve(frame, frame_id)
        res = self._entropy(a, window_size, window, percentile)
        elapsed = (time.perf_counter() - t0) * 1e3
        summary = {k: v for k, v in res.items() if k != "entropy_map"}
        with self._lock:
            self._save(fid, {"entropy": summary}, elapsed)
        return {"frame_id": fid, **res, "computation_time_ms": elapsed}

    def _segment(
        self, a: np.ndarray, method: str, threshold: float | None, min_object_size: int, **kw: Any
    ) -> dict[str, Any]:
        res = _segment(a, method=method, threshold=threshold, min_object_size=min_object_size, **kw)
        mask = res["segmentation_mask"]
        summary = {
            "method": res["method"],
            "threshold": res["threshold"],
            "num_objects": res["num_objects"],
            "objects": res["objects"][:MAX_STORED_HOTSPOTS],
            "foreground_fraction": float(np.mean(mask > 0)),
        }
        return {"summary": summary, "segmentation_mask": mask, "objects": res["objects"]}

    def segment(
        self,
        frame: Any = None,
        frame_id: str | int | None = None,
        method: str = "otsu",
        threshold: float | None = None,
        min_object_size: int = 0,
        **options: Any,
    ) -> dict[str, Any]:
        """Segmentation (:func:`prism_kernels.pixels.segment.segment`): ``segmentation_mask``
        (uint8 ndarray), ``objects``, ``num_objects``, ``threshold``, ``method``,
        ``foreground_fraction``, ``computation_time_ms``."""
        t0 = time.perf_counter()
        with self._lock:
            fid, a = self._resolve(frame, frame_id)
        res = self._segment(a, method, threshold, min_object_size, **options)
        elapsed = (time.perf_counter() - t0) * 1e3
        with self._lock:
            self._save(fid, {"segmentation": res["summary"]}, elapsed)
        return {
            "frame_id": fid,
            **res["summary"],
            "objects": res["objects"],
            "segmentation_mask": res["segmentation_mask"],
            "computation_time_ms": elapsed,
        }

    def tda(
        self,
        frame: Any = None,
        frame_id: str | int | None = None,
        threshold: float | None = None,
        filtration: str = "superlevel",
        connectivity: int = 8,
        min_persistence: float = 0.0,
        max_points: int | None = 500,
        method: str = "ours",
    ) -> dict[str, Any]:
        """Persistent homology of the frame (see :func:`prism_kernels.pixels.topology.tda_summary`)."""
        t0 = time.perf_counter()
        with self._lock:
            fid, a = self._resolve(frame, frame_id)
        res = topology.tda_summary(
            a,
            threshold=threshold,
            filtration=filtration,  # type: ignore[arg-type]
            connectivity=connectivity,
            min_persistence=min_persistence,
            max_points=max_points,
            method=method,
        )
        elapsed = (time.perf_counter() - t0) * 1e3
        with self._lock:
            self._save(fid, {"topology": res}, elapsed)
        return {"frame_id": fid, **res, "computation_time_ms": elapsed}

    def classify(
        self,
        frame: Any = None,
        frame_id: str | int | None = None,
        *,
        tracks: list[list[dict[str, Any]]] | None = None,
        features: dict[str, Any] | None = None,
        dt: float = 0.1,
        k_sigma: float = 6.0,
        confidence_threshold: float = 0.0,
    ) -> dict[str, Any]:
        """Signature classification with the shipped model (:mod:`prism_kernels.pixels.classify`).

        Give one of: ``features`` (a dict of named features: one classification), ``tracks``
        (per-frame hotspot statistics of each tracked hotspot, oldest first: one per track),
        or a frame/``frame_id`` (each hotspot detected in the frame is classified from what one
        frame shows, its peak and area; the time-series features are imputed, see
        ``imputed``). Classifications below ``confidence_threshold`` are listed with
        ``"accepted": False``. Stored under the frame when one is involved.

        Returns
        -------
        dict
            ``classifications`` ([{class, confidence, probabilities, contributions,
            imputed, accepted, bbox{x, y, width, height} for frame hotspots}]),
            ``class_counts``, ``model_used``, ``computation_time_ms``, and ``frame_id`` when a
            frame was used.
        """
        if not 0.0 <= confidence_threshold <= 1.0:
            raise InvalidInput("confidence_threshold", "must lie in [0, 1]")
        given = sum(x is not None for x in (features, tracks)) + (
            frame is not None or frame_id is not None
        )
        if given != 1:
            raise InvalidInput(
                "features", "give exactly one of features, tracks, or a frame / frame_id"
            )
        t0 = time.perf_counter()
        fid = None
        results: list[dict[str, Any]] = []
        if features is not None:
            results.append(_classify.classify(features))
        elif tracks is not None:
            if not tracks:
                raise InvalidInput("tracks", "is empty")
            for i, tr in enumerate(tracks):
                try:
                    results.append(_classify.classify_track(tr, dt))
                except InvalidInput as exc:
                    raise InvalidInput(f"tracks.{i}", exc.message) from exc
        else:
            with self._lock:
                fid, a = self._resolve(frame, frame_id)
            det = detect_hotspots(a.astype(np.float64), k_sigma=k_sigma)
            for h in det.hotspots[0]:
                r = _classify.classify(
                    {
                        "log_peak_intensity": math.log10(max(h["peak"], 1e-12)),
                        "log_mean_size": math.log10(h["area"]),
                    }
                )
                x, y, w, hh = h["bbox"]
                r["bbox"] = {"x": x, "y": y, "width": w, "height": hh}
                r["hotspot_id"] = h["id"]
                r["x"], r["y"] = h["x"], h["y"]
                results.append(r)
        for r in results:
            r["accepted"] = r["confidence"] >= confidence_threshold
            r.pop("features", None)
        counts = {c: 0 for c in _classify.CLASSES}
        for r in results:
            if r["accepted"]:
                counts[r["class"]] += 1
        elapsed = (time.perf_counter() - t0) * 1e3
        out: dict[str, Any] = {
            "classifications": results,
            "class_counts": counts,
            "num_classified": len(results),
            "model_used": "multinomial_logistic_regression",
            "model_held_out_accuracy": _classify.default_classifier().training.get(
                "held_out_accuracy"
            ),
            "computation_time_ms": elapsed,
        }
        if fid is not None:
            out["frame_id"] = fid
            with self._lock:
                self._save(
                    fid,
                    {"classification": {k: v for k, v in out.items() if k != "frame_id"}},
                    elapsed,
                )
        if self.bus is not None:
            for r in results:
                if r["accepted"] and r["class"] in THREAT_CLASSES:
                    self.bus.publish(
                        "ThreatDetected",
                        {
                            "source": "pixels",
                            "frame_id": fid,
                            "class": r["class"],
                            "confidence": r["confidence"],
                            "bbox": r.get("bbox"),
                        },
                    )
        return out

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """The archive's real state: counts, bytes held, last processed frame, timings."""
        with self._lock:
            rows = self.store.list(KIND)
        processed = [d for _, d in rows if d.get("status") == "processed"]
        times = [
            d["processing_time_ms"] for d in processed if d.get("processing_time_ms") is not None
        ]
        last = max(processed, key=lambda d: d["updated"]) if processed else None
        doc_bytes = sum(len(json.dumps(d)) for _, d in rows)
        pix_bytes = sum(int(d.get("pixels_nbytes", 0)) for _, d in rows)
        return {
            "status": "healthy",
            "frames_stored": len(rows),
            "frames_processed": len(processed),
            "frames_with_pixels": sum(1 for _, d in rows if d.get("pixels_stored")),
            "pixel_bytes": pix_bytes,
            "document_bytes": doc_bytes,
            "bytes": pix_bytes + doc_bytes,
            "max_frames": self.max_frames,
            "pixel_cap": PIXEL_CAP,
            "avg_processing_time_ms": float(np.mean(times)) if times else None,
            "last_processed": None
            if last is None
            else {"frame_id": last["frame_id"], "timestamp": last["updated"]},
        }
