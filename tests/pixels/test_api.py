"""``/api/v1/pixels``: every route through the real session server, bad input answered with a
JSON 400/404/413 naming the field, the compact form for a 2048 x 2048 frame, and stored frames
read back by id."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from prism_kernels.pixels.scene import thermal_scene
from tests.apiutil import assert_error
from tests.apiutil import ok as _ok

_error = assert_error


API = "/api/v1/pixels"
H, W = 96, 128


@pytest.fixture(scope="module")
def scene():
    frame, truth = thermal_scene(H, W, n_hotspots=3, snr=30.0, dtype="uint16", seed=7)
    return frame, truth


def _flat(frame: np.ndarray, **kw) -> dict:
    h, w = frame.shape
    return {"width": w, "height": h, "pixels": frame.ravel().tolist(), **kw}


def _compact(frame: np.ndarray, **kw) -> dict:
    le = np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<"))
    return {
        "pixels_b64": base64.b64encode(le.tobytes()).decode(),
        "dtype": frame.dtype.name,
        "shape": list(frame.shape),
        **kw,
    }


def _matches(found: list[dict], truth: np.ndarray, tol: float = 1.0) -> None:
    """Every true centroid has exactly one hotspot within ``tol`` pixels, and nothing else."""
    assert len(found) == len(truth), found
    for x, y in truth:
        d = [math.hypot(h["x"] - x, h["y"] - y) for h in found]
        assert min(d) < tol, (x, y, d)


def test_process_original_payload(api, scene):
    frame, truth = scene
    body = _flat(
        frame,
        frame_id="px-orig-1",
        processing_options={
            "compute_entropy": True,
            "compute_tda": True,
            "compute_segmentation": True,
            "extract_features": True,
            "entropy_window_size": 7,
            "tda_threshold": None,
        },
    )
    d = _ok(api.post(f"{API}/process", json=body))
    assert d["frame_id"] == "px-orig-1" and (d["width"], d["height"]) == (W, H)
    _matches(d["hotspots"], truth.centroids)
    assert d["num_hotspots"] == 3
    assert len(d["entropy_map"]) == W * H and len(d["segmentation_mask"]) == W * H
    assert set(d["segmentation_mask"]) <= {0, 1}
    assert len(d["processed_pixels"]) == W * H and len(d["detection_mask"]) == W * H
    # The detection mask covers the hotspots' pixels.
    dm = np.array(d["detection_mask"]).reshape(H, W)
    for x, y in truth.centroids:
        assert dm[round(y), round(x)] == 1
    ef = d["extracted_features"]
    assert ef["mean_intensity"] == pytest.approx(float(frame.mean()), rel=1e-9)
    assert ef["std_intensity"] == pytest.approx(float(frame.std()), rel=1e-6)
    tf = d["tda_features"]
    assert {
        "persistence_diagram",
        "betti_numbers",
        "connected_components",
        "topological_entropy",
    } <= set(tf)
    assert tf["betti_numbers"][2] == 0
    assert d["processing_time_ms"] > 0 and d["computation_time_ms"] > 0


def test_process_notebook_payload_int_frame_id(api, scene):
    frame, truth = scene
    # Notebook 02/04 and the Python client: an integer frame_id and their own option names.
    body = _flat(
        frame,
        frame_id=4242,
        processing_options={
            "detect_hotspots": True,
            "threshold_method": "Otsu",
            "min_hotspot_size": 5,
            "denoise": True,
            "apply_tda": True,
        },
    )
    d = _ok(api.post(f"{API}/process", json=body))
    assert d["frame_id"] == "4242"
    _matches(d["hotspots"], truth.centroids)
    for h in d["hotspots"]:
        assert {"x", "y", "radius", "intensity", "area", "confidence"} <= set(h)
        assert h["area"] >= 5
    assert "persistence_diagram" in d["tda_features"]
    rec = _ok(api.get(f"{API}/frame/4242"))
    assert rec["id"] == "4242" and rec["status"] == "processed"
    assert (rec["width"], rec["height"]) == (W, H)
    assert rec["results"]["hotspots"]["count"] == 3


def test_process_compact_form_and_stored_frame_reuse(api, scene):
    frame, truth = scene
    d = _ok(api.post(f"{API}/process", json=_compact(frame, frame_id="px-compact")))
    _matches(d["hotspots"], truth.centroids)
    assert d.get("entropy_map") is None and d.get("processed_pixels") is None  # compact: no maps
    # Maps in compact form on request.
    d2 = _ok(
        api.post(f"{API}/process", json=_compact(frame, frame_id="px-compact", return_maps=True))
    )
    pp = d2["processed_pixels"]
    assert pp["dtype"] == "float32" and pp["shape"] == [H, W]
    res = np.frombuffer(base64.b64decode(pp["pixels_b64"]), dtype="<f4").reshape(H, W)
    x, y = truth.centroids[0]
    assert (
        res[round(y), round(x)] > 10 * truth.noise_sigma
    )  # the hotspot stands out of the residual
    # Only the id: the archive's pixels are used.
    d3 = _ok(api.post(f"{API}/segment", json={"frame_id": "px-compact", "method": "otsu"}))
    assert d3["frame_id"] == "px-compact" and d3["num_objects"] >= 1


def test_entropy_window_size_both_spellings(api, scene):
    frame, _ = scene
    a = _ok(api.post(f"{API}/entropy", json=_flat(frame, frame_id="px-ent", window_size=9)))
    b = _ok(
        api.post(
            f"{API}/entropy",
            json=_flat(
                frame,
                frame_id=77,
                processing_options={
                    "compute_entropy": True,
                    "entropy_window_size": 9,
                    "entropy_method": "shannon",
                },
            ),
        )
    )
    assert a["window_size"] == b["window_size"] == 9
    assert a["entropy_map"] == b["entropy_map"] and len(a["entropy_map"]) == W * H
    assert 0 < a["global_entropy"] <= 16
    assert a["max_local_entropy"] >= a["mean_local_entropy"] > 0
    for r in a["high_entropy_regions"]:
        assert {"x", "y", "width", "height", "entropy", "mean_entropy"} <= set(r)
    # A different window gives a different map.
    c = _ok(api.post(f"{API}/entropy", json=_flat(frame, window_size=3)))
    assert c["entropy_map"] != a["entropy_map"]


def test_segment_methods(api, scene):
    frame, truth = scene
    d = _ok(
        api.post(
            f"{API}/segment", json=_flat(frame, frame_id="px-seg", threshold=1e9, min_object_size=0)
        )
    )
    assert d["num_objects"] == 0 and set(d["segmentation_mask"]) == {0}
    # A fixed threshold between background and the hotspot peaks finds exactly the targets.
    thr = float(truth.background.max() + 8 * truth.noise_sigma)
    d = _ok(api.post(f"{API}/segment", json=_flat(frame, threshold=thr, min_object_size=2)))
    assert d["method"] == "fixed" and d["num_objects"] == 3
    for o in d["objects"]:
        assert {"id", "centroid", "bounding_box", "area", "mean_intensity"} <= set(o)
    d = _ok(api.post(f"{API}/segment", json=_flat(frame, method="AdaptiveMean", block_size=15)))
    assert d["method"] == "adaptive_mean" and d["threshold"] is None


def test_tda_diagram_and_notebook_list(api, scene):
    frame, truth = scene
    d = _ok(
        api.post(f"{API}/tda", json=_flat(frame, frame_id="px-tda", threshold=float(frame.mean())))
    )
    pd_ = d["persistence_diagram"]
    assert pd_ and all({"dimension", "birth", "death"} <= set(p) for p in pd_)
    essential = [p for p in pd_ if p["death"] is None]
    assert len(essential) == 1 and essential[0]["dimension"] == 0
    assert essential[0]["birth"] == pytest.approx(
        float(frame.max())
    )  # superlevel: born at the peak
    assert len(d["betti_numbers"]) == 3 and d["betti_numbers"][0] >= 1 and d["betti_2"] == 0
    # The three most persistent H0 classes are the three targets (one of them the essential class).
    h0 = [p for p in pd_ if p["dimension"] == 0]
    assert len(h0) >= 3
    # Notebook 04: options inside processing_options, the list form in tda_features.
    n = _ok(
        api.post(
            f"{API}/tda",
            json=_flat(
                frame,
                frame_id=5,
                processing_options={
                    "apply_tda": True,
                    "tda_dimensions": [0],
                    "persistence_threshold": 100.0,
                },
            ),
        )
    )
    assert n["tda_features"] and all(p["dimension"] == 0 for p in n["tda_features"])
    assert all(p["persistence"] is None or p["persistence"] > 100.0 for p in n["tda_features"])
    assert len(n["tda_features"]) >= 3  # the targets (SNR 30, noise 10) persist far beyond 100


def test_classify_frame_features_and_options(api, scene):
    frame, truth = scene
    d = _ok(
        api.post(
            f"{API}/classify",
            json=_flat(
                frame,
                frame_id="px-cls",
                processing_options={
                    "classify_signatures": True,
                    "classification_model": "cnn",
                    "confidence_threshold": 0.7,
                },
            ),
        )
    )
    assert d["num_classified"] == 3 and d["model_used"] and d["model_requested"] == "cnn"
    assert d["confidence_threshold"] == 0.7
    for c in d["classifications"]:
        assert c["class"] in d["class_counts"] and 0 <= c["confidence"] <= 1
        assert c["accepted"] == (c["confidence"] >= 0.7)
        assert {"x", "y", "width", "height"} <= set(c["bbox"])
        assert sum(c["probabilities"].values()) == pytest.approx(1.0)
    assert sum(d["class_counts"].values()) == sum(c["accepted"] for c in d["classifications"])
    rec = _ok(api.get(f"{API}/frame/px-cls"))
    assert rec["results"]["classification"]["num_classified"] == 3
    f = _ok(
        api.post(
            f"{API}/classify", json={"features": {"log_peak_intensity": 3.5, "log_mean_size": 1.2}}
        )
    )
    assert f["num_classified"] == 1 and f.get("frame_id") is None
    assert f["classifications"][0]["class"] in f["class_counts"]


def test_frame_readback_health_and_list(api, scene):
    frame, _ = scene
    _ok(api.post(f"{API}/process", json=_flat(frame, frame_id="px-read")))
    rec = _ok(api.get(f"{API}/frame/px-read"))
    assert rec["frame_id"] == "px-read" and rec["shape"] == [H, W] and rec["dtype"] == "uint16"
    assert rec["pixels_stored"] is True and rec["processing_time_ms"] > 0
    assert "stats" in rec["results"] and "hotspots" in rec["results"]
    h = _ok(api.get(f"{API}/health"))
    assert h["status"] == "healthy" and h["frames_stored"] >= 1 and h["frames_processed"] >= 1
    assert h["avg_processing_time_ms"] > 0 and h["bytes"] > frame.nbytes
    assert h["last_processed"]["frame_id"]
    ids = [f["frame_id"] for f in _ok(api.get(f"{API}/frames", params={"limit": 1000}))]
    assert "px-read" in ids


def test_unknown_frame_is_404(api):
    _error(api.get(f"{API}/frame/no-such-frame"), 404)
    _error(api.post(f"{API}/entropy", json={"frame_id": "no-such-frame", "window_size": 5}), 404)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"width": 4, "height": 4, "pixels": [1] * 15}, "pixels"),
        ({"width": 0, "height": 0, "pixels": []}, "width"),
        ({"width": 2, "height": 2, "pixels": [1, 2, 3, "x"]}, "pixels.3"),
        ({"width": 2, "height": 2, "pixels": [1, 2, 3, 70000]}, "pixels"),
        ({"pixels": [1, 2, 3, 4]}, "width"),
        ({}, "pixels"),
        (
            {"pixels_b64": base64.b64encode(b"\0" * 8).decode(), "dtype": "int7", "shape": [2, 2]},
            "dtype",
        ),
        (
            {
                "pixels_b64": base64.b64encode(b"\0" * 8).decode(),
                "dtype": "uint16",
                "shape": [3, 2],
            },
            "pixels_b64",
        ),
        (
            {"pixels_b64": base64.b64encode(b"").decode(), "dtype": "uint8", "shape": [0, 4]},
            "shape.0",
        ),
        ({"pixels_b64": "@@not base64@@", "dtype": "uint8", "shape": [2, 2]}, "pixels_b64"),
        ({"pixels_b64": base64.b64encode(b"\0" * 8).decode(), "dtype": "uint16"}, "shape"),
    ],
)
def test_bad_frames_are_400(api, body, field):
    for route in ("process", "entropy"):
        _error(api.post(f"{API}/{route}", json=body), 400, field)


def test_nan_frames_are_400(api):
    # JSON has no NaN: a literal NaN is malformed JSON, and a NaN in a compact float frame
    # is found after decoding.
    raw = '{"width": 2, "height": 1, "pixels": [1.0, NaN]}'
    r = api.post(f"{API}/process", content=raw, headers={"Content-Type": "application/json"})
    _error(r, 400)
    nan = np.array([[1.0, np.nan]], dtype="<f8")
    _error(api.post(f"{API}/entropy", json=_compact(nan)), 400, "pixels_b64")


def test_bad_options_are_400(api, scene):
    frame, _ = scene
    small = frame[:16, :16]
    _error(api.post(f"{API}/entropy", json=_flat(small, window_size=0)), 400, "window_size")
    _error(
        api.post(
            f"{API}/entropy", json=_flat(small, processing_options={"entropy_method": "renyi"})
        ),
        400,
        "processing_options.entropy_method",
    )
    _error(api.post(f"{API}/segment", json=_flat(small, method="kmeans")), 400, "method")
    _error(api.post(f"{API}/tda", json=_flat(small, filtration="sideways")), 400, "filtration")
    _error(
        api.post(f"{API}/tda", json=_flat(small, processing_options={"tda_dimensions": [3]})),
        400,
        "processing_options.tda_dimensions",
    )
    _error(
        api.post(
            f"{API}/process", json=_flat(small, processing_options={"threshold_method": "magic"})
        ),
        400,
        "processing_options.threshold_method",
    )
    _error(
        api.post(f"{API}/classify", json={"features": {"log_peak_intensity": 3.0}, **_flat(small)}),
        400,
        "features",
    )
    _error(api.post(f"{API}/process", json=_flat(small, frame_id="")), 400, "frame_id")
    _error(
        api.post(
            f"{API}/process", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        400,
    )


def test_oversized_body_is_413(api):
    # The session server keeps the default PRISM_MAX_BODY_MB of 16.
    body = (
        b'{"pixels_b64": "' + b"A" * (17 * 1024 * 1024) + b'", "dtype": "uint8", "shape": [1, 1]}'
    )
    r = api.post(f"{API}/process", content=body, headers={"Content-Type": "application/json"})
    body = _error(r, 413)
    assert body["error"] == "PayloadTooLarge"


def test_large_frame_compact_form(api):
    """A 2048 x 2048 uint16 frame (8 MiB raw, 11 MiB base64) through /entropy and back by id."""
    rng = np.random.default_rng(3)
    big = rng.normal(1000.0, 10.0, (2048, 2048))
    spots = [(300, 400), (1500, 1700), (1024, 90)]
    for x, y in spots:
        big[y - 1 : y + 2, x - 1 : x + 2] += 400.0
    big = np.clip(np.rint(big), 0, 65535).astype(np.uint16)
    d = _ok(api.post(f"{API}/entropy", json=_compact(big, frame_id="px-big", window_size=3)))
    assert d["frame_id"] == "px-big" and "entropy_map" not in d
    assert 0 < d["mean_local_entropy"] <= d["max_local_entropy"] <= math.log2(9) + 1e-9
    rec = _ok(api.get(f"{API}/frame/px-big"))
    assert rec["shape"] == [2048, 2048] and rec["dtype"] == "uint16"
    assert rec["pixels_stored"] is False  # over the archive's pixel cap: results only
    assert rec["results"]["entropy"]["window_size"] == 3
    # Its pixels were not kept: a later call by id alone is a 400 saying so.
    _error(api.post(f"{API}/segment", json={"frame_id": "px-big"}), 400, "frame_id")


def test_openapi_documents_pixels(api):
    doc = api.get("/api/v1/openapi.json").json()
    for p in ("process", "entropy", "segment", "tda", "classify", "frame/{frame_id}", "health"):
        assert f"{API}/{p}" in doc["paths"], p
    text = json.dumps(doc["paths"][f"{API}/tda"])
    assert "persistence_diagram" in text or "$ref" in text
