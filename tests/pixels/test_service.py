"""PixelsService: the frame archive, its results, persistence across reopening, health."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.pixels import service as S
from prism_kernels.pixels import topology
from prism_kernels.pixels.scene import thermal_scene
from prism_kernels.pixels.service import PixelsService
from prism_kernels.pixels.signatures import generate_signature
from prism_kernels.service import TIMING_KEY, DomainService
from prism_kernels.store import Store


@pytest.fixture
def svc():
    return PixelsService(Store(":memory:"), EventBus())


@pytest.fixture
def scene():
    return thermal_scene(96, 128, n_hotspots=3, snr=25.0, seed=4, dtype="uint16")


def test_put_and_get_frame(svc, rng):
    img = rng.integers(0, 4000, (20, 30)).astype(np.uint16)
    rec = svc.put_frame(img, 42)
    assert rec["frame_id"] == "42" and rec["shape"] == [20, 30] and rec["dtype"] == "uint16"
    assert rec["pixels_stored"] and rec["status"] == "stored"
    got = svc.get_pixels(42)
    assert got.dtype == np.uint16 and np.array_equal(got, img)
    assert svc.get_frame("42")["id"] == "42"
    with pytest.raises(NotFound):
        svc.get_frame("nope")
    with pytest.raises(NotFound):
        svc.tda(frame_id="nope")
    auto = svc.put_frame(img)
    assert auto["frame_id"].startswith("frame-")


def test_process_finds_the_scene_hotspots_and_stores_results(svc, scene):
    img, truth = scene
    out = svc.process(
        img, "scene", compute_entropy=True, compute_tda=True, compute_segmentation=True
    )
    json.dumps({k: v for k, v in out.items()}, allow_nan=False)
    assert out["num_hotspots"] == len(truth.centroids)
    found = np.array([[h["x"], h["y"]] for h in out["hotspots"]])
    for c in np.asarray(truth.centroids):
        assert np.min(np.hypot(*(found - c).T)) < 1.0
    assert out["stats"]["mean"] == pytest.approx(float(img.mean()))
    ef = out["extracted_features"]
    assert 0.0 <= ef["edge_density"] <= 1.0 and ef["shannon_entropy"] > 0
    assert out["tda_features"]["betti_numbers"][2] == 0
    doc = svc.get_frame("scene")
    assert doc["status"] == "processed"
    assert set(doc["results"]) >= {"stats", "hotspots", "entropy", "topology", "segmentation"}
    assert doc["results"]["segmentation"]["num_objects"] == out["segmentation"]["num_objects"] >= 1
    assert doc["results"]["hotspots"]["count"] == out["num_hotspots"]
    # the stored topology is what the kernel computes on the stored pixels
    assert doc["results"]["topology"] == json.loads(json.dumps(topology.tda_summary(img)))


def test_methods_on_stored_frame_id(svc, scene):
    img, _ = scene
    svc.put_frame(img, "a")
    e = svc.entropy(frame_id="a", window_size=7)
    assert e["entropy_map"].shape == img.shape
    assert e["global_entropy"] > 0 and e["high_entropy_regions"]
    t = svc.tda(frame_id="a", threshold=float(np.median(img)), min_persistence=50.0)
    assert t["frame_id"] == "a" and t["connected_components"] >= 3
    sg = svc.segment(frame_id="a", method="fixed", threshold=float(np.percentile(img, 99.5)))
    assert sg["segmentation_mask"].shape == img.shape and sg["num_objects"] >= 1
    assert sg["foreground_fraction"] == pytest.approx(np.mean(img > np.percentile(img, 99.5)))
    assert set(svc.get_frame("a")["results"]) == {"entropy", "topology", "segmentation"}
    # sending different pixels under the same id replaces the frame and its results
    svc.put_frame(img[:10, :10], "a")
    assert svc.get_frame("a")["results"] == {}


def test_classify_tracks_features_and_frame(svc, scene):
    events = []
    svc.bus.subscribe(events.append)
    rng = np.random.default_rng(9)
    tracks = [generate_signature(c, rng).frames() for c in ("missile_plume", "aircraft")]
    out = svc.classify(tracks=tracks, confidence_threshold=0.5)
    assert [r["class"] for r in out["classifications"]] == ["missile_plume", "aircraft"]
    assert out["class_counts"]["missile_plume"] == 1
    assert [e.type for e in events] == ["ThreatDetected"]
    one = svc.classify(features={"band_ratio": 2.6, "acceleration": -40.0, "duration": 1.0})
    assert one["num_classified"] == 1
    img, truth = scene
    fr = svc.classify(img, "s")
    assert fr["num_classified"] == len(truth.centroids)
    assert {"x", "y", "width", "height"} == set(fr["classifications"][0]["bbox"])
    assert "classification" in svc.get_frame("s")["results"]
    with pytest.raises(InvalidInput):
        svc.classify()
    with pytest.raises(InvalidInput):
        svc.classify(features={"speed": 1.0}, tracks=tracks)
    with pytest.raises(InvalidInput):
        svc.classify(tracks=[[{"peak": 0.0}]])


def test_survives_reopening_the_sqlite_file(tmp_path, scene):
    img, _ = scene
    path = tmp_path / "prism.sqlite"
    store = Store(path)
    s1 = PixelsService(store, EventBus())
    s1.process(img, 7, compute_tda=True)
    before = s1.get_frame(7)
    store.close()
    s2 = PixelsService(Store(path), EventBus())
    assert s2.get_frame(7) == before
    assert np.array_equal(s2.get_pixels(7), img)
    h = s2.health()
    assert h["frames_stored"] == 1 and h["frames_processed"] == 1
    assert h["last_processed"]["frame_id"] == "7"


def test_bound_pixel_cap_and_health(monkeypatch, rng):
    svc = PixelsService(Store(":memory:"), max_frames=3)
    h0 = svc.health()
    assert h0["frames_stored"] == 0 and h0["last_processed"] is None and h0["bytes"] == 0
    for i in range(5):
        svc.put_frame(rng.random((8, 8)), i)
    # The archive lists newest first (the shared order of every domain).
    assert [f["frame_id"] for f in svc.list_frames()] == ["4", "3", "2"]
    assert [f["frame_id"] for f in svc.list_frames(limit=1, offset=1)] == ["3"]
    with pytest.raises(NotFound):
        svc.get_frame(0)
    h = svc.health()
    assert (
        h["frames_stored"] == 3
        and h["pixel_bytes"] == 3 * 8 * 8 * 8
        and h["bytes"] > h["pixel_bytes"]
    )
    monkeypatch.setattr(S, "PIXEL_CAP", 50)
    big = rng.random((10, 10))
    out = svc.tda(big, "big")
    assert out["num_points"] >= 1
    assert not svc.get_frame("big")["pixels_stored"]
    with pytest.raises(InvalidInput):
        svc.get_pixels("big")
    with pytest.raises(InvalidInput):
        svc.tda(frame_id="big")


def test_invalid_frames(svc):
    with pytest.raises(InvalidInput):
        svc.process(np.array([[1.0, np.nan]]))
    with pytest.raises(InvalidInput):
        svc.process(np.empty((0, 3)))
    with pytest.raises(InvalidInput):
        svc.tda(np.zeros(4))
    with pytest.raises(InvalidInput):
        svc.put_frame(np.ones((2, 2)), frame_id=1.5)
    with pytest.raises(InvalidInput):
        svc.tda()
    one = svc.tda(np.array([[3.0]]), "px")
    assert one["persistence_diagram"] == [
        {"dimension": 0, "birth": 3.0, "death": None, "persistence": None}
    ]
    const = svc.process(np.full((16, 16), 9, dtype=np.uint16), "c")
    assert const["num_hotspots"] == 0 and const["stats"]["std"] == 0.0


def test_concurrent_processing(rng):
    svc = PixelsService(Store(":memory:"), EventBus())
    frames = {f"t{i}": rng.random((24, 24)) for i in range(8)}
    errors = []

    def work(fid, img):
        try:
            svc.tda(img, fid)
            svc.entropy(frame_id=fid, window_size=5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=kv) for kv in frames.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for fid in frames:
        assert set(svc.get_frame(fid)["results"]) == {"topology", "entropy"}
    assert svc.health()["frames_processed"] == 8


def test_shared_shape_delete_and_timing(svc, scene):
    img, _ = scene
    assert isinstance(svc, DomainService) and svc.domain == "pixels"
    assert svc.events == ("ThreatDetected",)
    out = svc.process(img, "t")
    assert out[TIMING_KEY] > 0 and "processing_time_ms" not in out
    assert svc.get_frame("t")[TIMING_KEY] == out[TIMING_KEY]
    h = svc.health()
    assert h["domain"] == "pixels" and h["stored"] == {"frame": 1}
    assert h["operations"]["process"]["count"] == 1
    svc.delete_frame("t")
    with pytest.raises(NotFound):
        svc.delete_frame("t")
    with pytest.raises(NotFound):
        svc.get_frame("t")


def test_refused_request_changes_nothing(svc, scene):
    img, _ = scene
    with pytest.raises(InvalidInput):
        svc.entropy(img, "new", window_size=0)
    with pytest.raises(InvalidInput):
        svc.segment(img, "new", method="kmeans")
    with pytest.raises(InvalidInput):
        svc.process(img, "new", k_sigma=-1.0)
    assert svc.list_frames() == []
    svc.put_frame(img, "kept")
    before = svc.get_frame("kept")
    with pytest.raises(InvalidInput):
        svc.tda(frame_id="kept", min_persistence=-1.0)
    with pytest.raises(InvalidInput):  # other pixels under the same id, refused: old ones stay
        svc.segment(img[:20, :20], "kept", method="kmeans")
    assert svc.get_frame("kept") == before
    assert np.array_equal(svc.get_pixels("kept"), img)


def test_small_frame_with_one_hot_pixel_is_answered(svc):
    # Issue 10 item 6: a valid 8x8 frame with one hot pixel used to be refused because a
    # derived statistic (the SNR over a zero noise estimate) was infinite.
    f = np.full((8, 8), 100, dtype=np.uint16)
    f[3, 4] = 1000
    out = svc.process(f, "hot", compute_entropy=True, compute_tda=True, compute_segmentation=True)
    json.dumps(svc.get_frame("hot"), allow_nan=False)
    for h in out["hotspots"]:
        assert h["snr"] is None or math.isfinite(h["snr"])
    assert [(round(h["x"]), round(h["y"])) for h in out["hotspots"]] == [(4, 3)]
    cls = svc.classify(frame_id="hot")
    assert cls["num_classified"] == 1
    json.dumps(cls, allow_nan=False)


def test_non_finite_statistics_are_none(svc):
    # Values near the float64 limit overflow sums: such statistics come back as None.
    f = np.full((8, 8), 1e308)
    f[::2] = -1e308
    out = svc.process(f, "huge")
    assert out["stats"]["mean"] is None or math.isfinite(out["stats"]["mean"])
    assert out["stats"]["std"] is None
    json.dumps({k: v for k, v in out.items()}, allow_nan=False)
    json.dumps(svc.get_frame("huge"), allow_nan=False)
