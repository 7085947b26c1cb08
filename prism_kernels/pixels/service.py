"""The pixels service: a bounded frame archive with the results computed for each frame.

State only: the math is in :mod:`prism_kernels.pixels.analysis` (and the kernel modules it
calls). One document of kind ``"frame"`` per frame id (a :class:`~prism_kernels.service.Collection`):
``frame_id``, ``shape``, ``width``, ``height``, ``dtype``, ``created``/``updated`` (Unix
seconds), whether the pixels are kept, ``status`` (``stored`` or ``processed``), the last
``computation_time_ms`` and ``results``: ``stats``, ``hotspots``, ``entropy``,
``segmentation``, ``topology`` and ``classification`` summaries (small JSON: no per-pixel
maps). The pixels are kept with the document as a compressed array when the frame has at
most :data:`PIXEL_CAP` pixels (1024 x 1024); larger frames are processed but only their
results are kept. The archive keeps the newest ``max_frames`` frames (default
:data:`MAX_FRAMES`) and lists them newest first.

Methods take a frame (array, any backend) and/or a ``frame_id``: with a frame, it is
(re)stored under the id (a fresh id when none is given); with an id only, the stored pixels
are used (``NotFound`` when the id is unknown, ``InvalidInput`` when its pixels were over the
cap). Every request is validated and computed before anything is written: a refused request
changes nothing. Thread-safe: the lock guards each read and each write.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.pixels import analysis, topology
from prism_kernels.pixels.frames import validate_frame
from prism_kernels.service import TIMING_KEY, DomainService
from prism_kernels.store import Store

#: Frames with at most this many pixels keep their pixels in the archive (compressed).
PIXEL_CAP = 1024 * 1024
#: Default number of frames the archive keeps.
MAX_FRAMES = 500
#: Classes that raise a ``ThreatDetected`` event when accepted by :meth:`PixelsService.classify`.
THREAT_CLASSES = ("missile_plume",)


@dataclass
class _Frame:
    """A frame a request works on: its id, pixels, and whether the archive must (re)write it."""

    fid: str
    pixels: np.ndarray
    new: bool  # not in the archive as these pixels: write the frame with the results
    metadata: dict[str, Any]


class PixelsService(DomainService):
    """Frame archive plus the pixel analyses (hotspots, entropy, segmentation, topology, classes).

    Parameters
    ----------
    store : Store, optional
    bus : EventBus, optional
        ``ThreatDetected`` is published when :meth:`classify` accepts a class of
        :data:`THREAT_CLASSES`.
    max_frames : int
        Bound of the frame archive.
    """

    domain = "pixels"
    events = ("ThreatDetected",)

    def __init__(
        self, store: Store | None = None, bus: EventBus | None = None, max_frames: int = MAX_FRAMES
    ) -> None:
        if isinstance(max_frames, bool) or int(max_frames) != max_frames or max_frames < 1:
            raise InvalidInput("max_frames", "must be an integer >= 1")
        super().__init__(store, bus)
        self.max_frames = int(max_frames)
        self.frames = self.collection("frame", max_items=self.max_frames, label="frame")

    # ------------------------------------------------------------------ archive

    @staticmethod
    def _frame_id(frame_id: Any) -> str:
        if frame_id is None:
            return f"frame-{uuid.uuid4().hex[:12]}"
        if isinstance(frame_id, bool) or not isinstance(frame_id, (str, int, np.integer)):
            raise InvalidInput(
                "frame_id", f"must be a string or an integer, got {type(frame_id).__name__}"
            )
        s = str(frame_id)
        if not s or len(s) > 200:
            raise InvalidInput("frame_id", "must be 1 to 200 characters")
        return s

    @staticmethod
    def _new_doc(fid: str, a: np.ndarray, metadata: dict[str, Any]) -> dict[str, Any]:
        """The document of a frame just received (no results yet)."""
        now = time.time()
        keep = a.size <= PIXEL_CAP
        return {
            "frame_id": fid,
            "shape": [int(s) for s in a.shape],
            "width": int(a.shape[1]),
            "height": int(a.shape[0]),
            "dtype": str(a.dtype),
            "created": now,
            "updated": now,
            "pixels_stored": keep,
            "pixels_nbytes": int(a.nbytes) if keep else 0,
            "metadata": dict(metadata),
            "results": {},
            TIMING_KEY: None,
            "status": "stored",
        }

    def _put(self, fid: str, doc: dict[str, Any], a: np.ndarray) -> None:
        self.frames.put(fid, doc, {"pixels": a} if doc["pixels_stored"] else None)

    @staticmethod
    def _record(doc: dict[str, Any], results: dict[str, Any]) -> None:
        doc["results"].update(results)
        doc["updated"] = time.time()
        doc["status"] = "processed"
        doc["processed_count"] = int(doc.get("processed_count", 0)) + 1

    def put_frame(
        self, frame: Any, frame_id: str | int | None = None, metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Store a frame (replacing any frame and results of the same id); returns its record."""
        a = validate_frame(frame)
        fid = self._frame_id(frame_id)
        with self.lock:
            self._put(fid, self._new_doc(fid, a, metadata or {}), a)
            return self.get_frame(fid)

    def get_frame(self, frame_id: str | int) -> dict[str, Any]:
        """The stored record of a frame (no pixels), with ``id`` and ``timestamp``; ``NotFound``."""
        fid = self._frame_id(frame_id)
        doc = self.frames.get(fid)
        doc["id"] = fid
        doc["timestamp"] = doc["updated"]
        return doc

    def get_pixels(self, frame_id: str | int) -> np.ndarray:
        """The stored pixels; ``NotFound`` for an unknown id, ``InvalidInput`` when not kept."""
        fid = self._frame_id(frame_id)
        arrays = self.frames.arrays(fid)
        if "pixels" not in arrays:
            raise InvalidInput(
                "frame_id",
                f"frame {fid!r} is archived without pixels (over {PIXEL_CAP} pixels); send the frame again",
            )
        return arrays["pixels"]

    def list_frames(self, limit: int | None = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries, newest first: ``frame_id, shape, created, updated, status, results``."""
        return [
            {
                "frame_id": fid,
                "shape": d["shape"],
                "created": d["created"],
                "updated": d["updated"],
                "status": d["status"],
                "results": sorted(d["results"]),
            }
            for fid, d in self.frames.page(limit, offset)
        ]

    def delete_frame(self, frame_id: str | int) -> None:
        """Delete a frame and its results; ``NotFound`` when there is none."""
        with self.lock:
            self.frames.delete(self._frame_id(frame_id))

    def _resolve(self, frame: Any, frame_id: str | int | None) -> _Frame:
        """The frame a request works on; writes nothing."""
        if frame is None:
            if frame_id is None:
                raise InvalidInput("frame", "give a frame or the frame_id of a stored frame")
            fid = self._frame_id(frame_id)
            return _Frame(fid, self.get_pixels(fid), False, {})
        a = validate_frame(frame)
        fid = self._frame_id(frame_id)
        with self.lock:
            if not self.frames.exists(fid):
                return _Frame(fid, a, True, {})
            doc = self.frames.get(fid)
            same = (
                doc["shape"] == list(a.shape)
                and doc["dtype"] == str(a.dtype)
                and doc.get("pixels_stored")
                and np.array_equal(self.frames.arrays(fid).get("pixels"), a)
            )
            return _Frame(fid, a, not same, doc.get("metadata") or {})

    def _save(self, fr: _Frame, results: dict[str, Any], ms: float) -> None:
        """Record results under the frame (one store write). A stored frame that the archive's
        bound dropped meanwhile is not resurrected; a frame sent with the request is written."""
        with self.lock:
            if fr.new:
                doc = self._new_doc(fr.fid, fr.pixels, fr.metadata)
            else:
                try:
                    doc = self.frames.get(fr.fid)
                except NotFound:
                    return
            self._record(doc, results)
            doc[TIMING_KEY] = ms
            self._put(fr.fid, doc, fr.pixels)

    # ------------------------------------------------------------------ analyses

    def process(
        self, frame: Any = None, frame_id: str | int | None = None, **options: Any
    ) -> dict[str, Any]:
        """Statistics, hotspots and, on request, features, entropy, topology and segmentation.

        ``options`` are those of :func:`prism_kernels.pixels.analysis.process_frame` (``detect``,
        ``k_sigma``, ``min_hotspot_size``, ``compute_entropy``, ``entropy_window_size``,
        ``compute_tda``, ``tda_threshold``, ``compute_segmentation``,
        ``segmentation_method``, ``extract_features``, ``return_maps``), which gives the
        result; adds ``frame_id`` and ``computation_time_ms``. Stored: ``stats`` (with the
        extracted features), ``hotspots`` (count and the
        :data:`~prism_kernels.pixels.analysis.MAX_STORED_ITEMS` brightest), and each optional
        analysis.
        """
        with self.timed("process") as t:
            fr = self._resolve(frame, frame_id)
            out = analysis.process_frame(fr.pixels, **options)
        res: dict[str, Any] = {
            "stats": {"stats": out["stats"], "extracted_features": out.get("extracted_features")}
        }
        if "hotspots" in out:
            top = sorted(out["hotspots"], key=lambda h: -(h["peak"] or 0.0))
            res["hotspots"] = {
                "count": out["num_hotspots"],
                "hotspots": top[: analysis.MAX_STORED_ITEMS],
            }
        stored_as = {
            "entropy": "entropy",
            "tda_features": "topology",
            "segmentation": "segmentation",
        }
        res.update({name: out[key] for key, name in stored_as.items() if key in out})
        self._save(fr, res, t.ms)
        return {"frame_id": fr.fid, **out, TIMING_KEY: t.ms}

    def entropy(
        self,
        frame: Any = None,
        frame_id: str | int | None = None,
        window_size: int = 7,
        window: str = "disk",
        percentile: float = 90.0,
        return_maps: bool = True,
    ) -> dict[str, Any]:
        """Local Shannon entropy (:func:`prism_kernels.pixels.analysis.entropy_analysis`), with
        ``frame_id`` and ``computation_time_ms``; ``entropy_map`` only with ``return_maps``."""
        with self.timed("entropy") as t:
            fr = self._resolve(frame, frame_id)
            res = analysis.finite(
                analysis.entropy_analysis(fr.pixels, window_size, window, percentile)
            )
        emap = res.pop("entropy_map")
        self._save(fr, {"entropy": res}, t.ms)
        maps = {"entropy_map": emap} if return_maps else {}
        return {"frame_id": fr.fid, **res, **maps, TIMING_KEY: t.ms}

    def segment(
        self,
        frame: Any = None,
        frame_id: str | int | None = None,
        method: str = "otsu",
        threshold: float | None = None,
        min_object_size: int = 0,
        *,
        max_objects: int | None = None,
        return_maps: bool = True,
        **options: Any,
    ) -> dict[str, Any]:
        """Segmentation (:func:`prism_kernels.pixels.analysis.segment_analysis`): ``objects``
        (the first ``max_objects``; ``objects_listed`` says how many), ``num_objects``,
        ``threshold``, ``method``, ``foreground_fraction``, ``frame_id``,
        ``computation_time_ms`` and, with ``return_maps``, ``segmentation_mask``."""
        with self.timed("segment") as t:
            fr = self._resolve(frame, frame_id)
            res = analysis.finite(
                analysis.segment_analysis(fr.pixels, method, threshold, min_object_size, **options)
            )
        mask = res.pop("segmentation_mask")
        objects = res.pop("objects")
        stored = {**res, "objects": objects[: analysis.MAX_STORED_ITEMS]}
        self._save(fr, {"segmentation": stored}, t.ms)
        listed = objects if max_objects is None else objects[: int(max_objects)]
        maps = {"segmentation_mask": mask} if return_maps else {}
        return {
            "frame_id": fr.fid,
            **res,
            "objects": listed,
            "objects_listed": len(listed),
            **maps,
            TIMING_KEY: t.ms,
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
        """Persistent homology of the frame (:func:`prism_kernels.pixels.topology.tda_summary`),
        with ``frame_id`` and ``computation_time_ms``."""
        with self.timed("tda") as t:
            fr = self._resolve(frame, frame_id)
            res = analysis.finite(
                topology.tda_summary(
                    fr.pixels,
                    threshold=threshold,
                    filtration=filtration,  # type: ignore[arg-type]
                    connectivity=connectivity,
                    min_persistence=min_persistence,
                    max_points=max_points,
                    method=method,
                )
            )
        self._save(fr, {"topology": res}, t.ms)
        return {"frame_id": fr.fid, **res, TIMING_KEY: t.ms}

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
        """Signature classification (:func:`prism_kernels.pixels.analysis.classify_signatures`)
        of ``features``, ``tracks``, or the hotspots of a frame / ``frame_id``.

        Classifications below ``confidence_threshold`` are listed with ``"accepted": False``.
        Stored under the frame when one is involved (the result then carries ``frame_id``);
        ``ThreatDetected`` is published for each accepted class of :data:`THREAT_CLASSES`.
        """
        with self.timed("classify") as t:
            fr = None
            if frame is not None or frame_id is not None:
                if features is not None or tracks is not None:
                    raise InvalidInput(
                        "features", "give exactly one of features, tracks, or a frame / frame_id"
                    )
                fr = self._resolve(frame, frame_id)
            out = analysis.classify_signatures(
                fr.pixels if fr is not None else None,
                tracks=tracks,
                features=features,
                dt=dt,
                k_sigma=k_sigma,
                confidence_threshold=confidence_threshold,
            )
        out[TIMING_KEY] = t.ms
        if fr is not None:
            self._save(fr, {"classification": dict(out)}, t.ms)
            out["frame_id"] = fr.fid
        for r in out["classifications"]:
            if r["accepted"] and r["class"] in THREAT_CLASSES:
                self.publish(
                    "ThreatDetected",
                    {
                        "source": "pixels",
                        "frame_id": fr.fid if fr is not None else None,
                        "class": r["class"],
                        "confidence": r["confidence"],
                        "bbox": r.get("bbox"),
                    },
                )
        return out

    # ------------------------------------------------------------------ health

    def health_details(self) -> dict[str, Any]:
        """The archive's real state: counts, bytes held, the last processed frame."""
        rows = self.frames.page(limit=None)
        processed = [d for _, d in rows if d.get("status") == "processed"]
        last = max(processed, key=lambda d: d["updated"]) if processed else None
        doc_bytes = sum(len(json.dumps(d)) for _, d in rows)
        pix_bytes = sum(int(d.get("pixels_nbytes", 0)) for _, d in rows)
        return {
            "frames_stored": len(rows),
            "frames_processed": len(processed),
            "frames_with_pixels": sum(1 for _, d in rows if d.get("pixels_stored")),
            "pixel_bytes": pix_bytes,
            "document_bytes": doc_bytes,
            "bytes": pix_bytes + doc_bytes,
            "max_frames": self.max_frames,
            "pixel_cap": PIXEL_CAP,
            "last_processed": None
            if last is None
            else {"frame_id": last["frame_id"], "timestamp": last["updated"]},
        }
