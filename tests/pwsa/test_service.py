"""PwsaService: conversions against closed forms, the original fusion's reference values,
information fusion, the track lifecycle and its events, persistence, prediction and ranking,
detection, concurrency."""

from __future__ import annotations

import math
import sqlite3
import threading

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.pwsa.geometry import ellipse_outline, spherical_to_enu
from prism_kernels.pwsa.kalman import azel
from prism_kernels.pwsa.sensor_fusion import fuse_sensor_inputs, fuse_targets
from prism_kernels.pwsa.service import PwsaService
from prism_kernels.pwsa.trajectory import predict as kernel_predict
from prism_kernels.store import Store

BALLISTIC = (np.array([[1.0e5, 2.0e5, 6.0e4]]), np.array([[1200.0, -300.0, -400.0]]))
AIRCRAFT = (np.array([[-2.0e5, 1.0e5, 1.0e4]]), np.array([[220.0, 30.0, 0.0]]))


def _service(store=None):
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    return PwsaService(store or Store(":memory:"), bus), events


def _scan(svc, p0, v, ks, sigma=10.0, t0=0.0, rng=None, sensor="s"):
    out = None
    for k in ks:
        z = p0 + v * k + (0 if rng is None else rng.normal(0, sigma, p0.shape))
        out = svc.track_scan(sensor, t0 + k, [{"position": p.tolist(), "sigma": sigma} for p in z])
    return out


# ---------------------------------------------------------------- conversions


def test_spherical_to_enu_matches_azel_and_monte_carlo(rng):
    r, az, el = 150_000.0, 37.0, 21.0
    z, R = spherical_to_enu(r, az, el, [10.0, -20.0, 5.0], range_sigma=50.0, angle_sigma=1e-3)
    # independent: kalman.azel uses the mathematical azimuth (counter-clockwise from east)
    a = azel(z, np.array([10.0, -20.0, 5.0]))
    assert a[0] == pytest.approx(math.radians(90.0 - az))
    assert a[1] == pytest.approx(math.radians(el))
    assert np.linalg.norm(z - [10.0, -20.0, 5.0]) == pytest.approx(r)
    # first-order covariance against a Monte Carlo of the same noise (small angles: linear regime)
    n = 200_000
    rr = r + rng.normal(0, 50.0, n)
    aa = math.radians(az) + rng.normal(0, 1e-3, n)
    ee = math.radians(el) + rng.normal(0, 1e-3, n)
    pts = np.stack(
        [rr * np.cos(ee) * np.sin(aa), rr * np.cos(ee) * np.cos(aa), rr * np.sin(ee)], axis=1
    )
    C = np.cov(pts.T)
    assert np.allclose(np.diag(R), np.diag(C), rtol=0.03)
    assert np.allclose(R, R.T) and np.linalg.eigvalsh(R).min() > 0


def test_spherical_to_enu_rejects_bad_values():
    with pytest.raises(InvalidInput, match="range"):
        spherical_to_enu(0.0, 10.0, 10.0)
    with pytest.raises(InvalidInput, match="elevation"):
        spherical_to_enu(100.0, 10.0, 95.0)
    with pytest.raises(InvalidInput):
        spherical_to_enu(100.0, float("nan"), 1.0)


def test_ellipse_outline_axes():
    out = ellipse_outline(
        [1.0, 2.0], {"semi_major": 3.0, "semi_minor": 1.0, "orientation_deg": 90.0}, n=4
    )
    assert out.shape == (5, 2)
    assert np.allclose(out[0], [1.0, 5.0]) and np.allclose(
        out[1], [0.0, 2.0]
    )  # major axis along north


# ---------------------------------------------------------------- fusion


def _si(sv, t, cx, cy):
    return {"sv_id": sv, "timestamp": t, "centroid": [cx, cy]}


def test_fuse_sensor_inputs_reproduces_the_original():
    out = fuse_sensor_inputs([_si(42, 100, 320, 240), _si(42, 101, 330, 245), _si(1, 5, 7, 8)])
    by = {t["track_id"]: t for t in out["fused_tracks"]}
    # original API appendix A (a port of the Rust filter)
    assert by["sv-42"]["position"] == pytest.approx([326.711, 243.355, 250.0], abs=1e-3)
    assert by["sv-42"]["velocity"] == pytest.approx([3.355, 1.678, 0.0], abs=1e-3)
    assert by["sv-1"]["position"] == pytest.approx([7, 8, 250]) and by["sv-1"]["velocity"] == [
        0,
        0,
        0,
    ]
    assert [t["track_id"] for t in out["fused_tracks"]] == ["sv-1", "sv-42"]  # deterministic order
    assert out["sensors_used"] == 3 and out["num_tracks"] == 2
    assert fuse_sensor_inputs([])["num_tracks"] == 0


def test_fuse_targets_is_information_fusion_and_associates_without_ids(rng):
    truth = np.array([[1e4, 2e4, 3e4], [5e4, -1e4, 2e4], [-3e4, 4e4, 1e4]])
    s1, s2 = 100.0, 300.0
    z1 = truth + rng.normal(0, s1, truth.shape)
    z2 = truth + rng.normal(0, s2, truth.shape)
    order = [2, 0, 1]  # sensor b lists the targets in another order, without ids
    out = fuse_targets(
        {
            "a": {"targets": [{"position": z.tolist(), "sigma": s1} for z in z1]},
            "b": {"targets": [{"position": z2[i].tolist(), "sigma": s2} for i in order]},
        }
    )
    assert out["num_tracks"] == 3
    w1, w2 = 1 / s1**2, 1 / s2**2
    expect = (w1 * z1 + w2 * z2) / (w1 + w2)
    got = np.array([t["position"] for t in out["tracks"]])
    assert np.allclose(got, expect, rtol=0, atol=1e-6)
    for t in out["tracks"]:
        assert np.allclose(np.diag(t["covariance"]), 1 / (w1 + w2))
        assert t["sensors"] == ["a", "b"] and 0 < t["confidence"] <= 1
    assert out["fusion_quality"] == pytest.approx(1 - (1 / (w1 + w2)) / s1**2)


def test_fuse_targets_keeps_far_targets_apart():
    out = fuse_targets(
        {
            "a": {"targets": [{"position": [0, 0, 1e4], "sigma": 10.0}]},
            "b": {"targets": [{"position": [5e4, 0, 1e4], "sigma": 10.0}]},
        }
    )
    assert out["num_tracks"] == 2 and out["fusion_quality"] == 0.0
    assert all(
        t["confidence"] == pytest.approx(0.5) for t in out["tracks"]
    )  # seen by 1 of 2 sensors


# ---------------------------------------------------------------- tracking


def test_lifecycle_events_and_listing(rng):
    svc, events = _service()
    p0 = np.vstack([BALLISTIC[0], AIRCRAFT[0]])
    v = np.vstack([BALLISTIC[1], AIRCRAFT[1]])
    r0 = _scan(svc, p0, v, [0])
    assert r0["active_tracks"] == 0 and r0["new_tracks"] == 0
    r1 = _scan(svc, p0, v, [1], t0=0.0)
    assert r1["new_tracks"] == 2 and r1["tentative_tracks"] == 2
    r2 = _scan(svc, p0, v, [2])
    assert r2["new_detections"] == 2 and r2["active_tracks"] == 2
    kinds = {t["threat_type"] for t in r2["tracks"]}
    assert kinds == {"ballistic_missile", "aircraft"}
    threats = [e for e in events if e.type == "ThreatDetected"]
    assert len(threats) == 1 and threats[0].data["threat_type"] == "ballistic_missile"
    ids = sorted(t["track_id"] for t in r2["tracks"])
    assert sorted(t["track_id"] for t in svc.tracks(status="active")) == ids
    # three empty scans: both tracks lost, stored with status "lost"
    for k in (3, 4, 5):
        last = svc.track_scan("s", float(k), [])
    assert last["lost_tracks"] == 2 and last["active_tracks"] == 0
    assert sorted(t["track_id"] for t in svc.tracks(status="lost")) == ids
    assert svc.track(ids[0])["status"] == "lost"
    assert svc.tracks(status="active") == []
    with pytest.raises(NotFound):
        svc.track("trk-999999")
    h = svc.health()
    assert h["scans_processed"] == 6 and h["active_tracks"] == 0 and h["processing_latency_ms"] > 0


def test_track_estimates_follow_the_truth(rng):
    svc, _ = _service()
    p0, v = BALLISTIC
    res = _scan(svc, p0, v, range(8), sigma=30.0, rng=rng)
    (t,) = res["tracks"]
    assert np.linalg.norm(np.subtract(t["position"], p0[0] + 7 * v[0])) < 4 * 30.0
    assert np.linalg.norm(np.subtract(t["velocity"], v[0])) < 60.0
    std = np.sqrt(np.diag(t["covariance"])[:3])
    assert np.allclose(t["position_std"], std) and np.all(std < 30.0)
    assert t["ellipse"]["semi_major"] >= t["ellipse"]["semi_minor"] > 0


def test_per_measurement_noise_groups_and_validation():
    svc, _ = _service()
    res = svc.track_scan(
        "s",
        0.0,
        [
            {"position": [0, 0, 1e4], "sigma": 10.0},
            {"position": [1e5, 0, 1e4], "sigma": [5.0, 5.0, 20.0]},
            {"position": [2e5, 0, 1e4]},
        ],
    )
    assert res["measurements"] == 3
    assert {"s", "s#1", "s#2"} <= set(svc.tracker.sensors)
    assert np.allclose(svc.tracker.sensors["s#1"], np.diag([25.0, 25.0, 400.0]))
    bad = [
        ([{"position": [0, 0]}], "measurements.0.position"),
        (
            [{"position": [0, 0, 1], "covariance": [[1, 2, 0], [2, 1, 0], [0, 0, 1]]}],
            "measurements.0.covariance",
        ),
        ([{"position": [0, 0, 1], "sigma": 0.0}], "measurements.0.sigma"),
        (np.zeros((2, 2)), "measurements"),
        ([[0.0, float("nan"), 1.0]], "measurements"),
    ]
    for meas, field in bad:
        with pytest.raises(InvalidInput) as exc:
            svc.track_scan("s", 1.0, meas)
        assert exc.value.field == field
    with pytest.raises(InvalidInput) as exc:
        svc.track_scan("s", -1.0, [])
    assert exc.value.field == "timestamp"


def test_state_survives_a_restart(tmp_path):
    path = tmp_path / "prism.sqlite"
    svc, _ = _service(Store(path))
    res = _scan(svc, *BALLISTIC, range(4))
    (tid,) = [t["track_id"] for t in res["tracks"]]
    svc.store.close()  # no close() of the service: every scan was committed when it returned
    again, _ = _service(Store(path))
    assert again.restored and again.scans_processed == 4
    assert [t["track_id"] for t in again.tracks()] == [tid]
    nxt = _scan(again, *BALLISTIC, [4])
    assert [t["track_id"] for t in nxt["tracks"]] == [tid] and nxt["new_tracks"] == 0
    again.store.close()
    # another tracker configuration does not load a state it cannot use
    other = PwsaService(Store(path), EventBus(), tracker={"predictor": "imm"})
    assert not other.restored and other.tracker.n_tracks == 0
    assert [t["track_id"] for t in other.tracks()] == [tid]  # the stored history is still listed


def test_tracks_pagination_and_status_validation():
    svc, _ = _service()
    p0 = np.array([[i * 1e5, 0.0, 5e4] for i in range(5)])
    v = np.tile([[300.0, 0.0, 0.0]], (5, 1))
    _scan(svc, p0, v, range(3))
    all_ = svc.tracks(limit=100)
    assert len(all_) == 5
    assert [t["track_id"] for t in svc.tracks(limit=2, offset=1)] == [
        t["track_id"] for t in all_[1:3]
    ]
    assert len(svc.tracks(status="active")) == 5 and svc.tracks(status="lost") == []
    with pytest.raises(InvalidInput):
        svc.tracks(status="exploded")


# ---------------------------------------------------------------- prediction and ranking


def test_predict_from_history_equals_the_kernel(rng):
    svc, _ = _service()
    hist = [
        {
            "timestamp": float(t),
            "position": [100.0 * t, 50.0 * t, 20_000.0 + 300 * t - 4.903325 * t * t],
        }
        for t in range(10)
    ]
    out = svc.predict(history=hist, prediction_horizon=40.0, dt=2.0, model="kalman_filter")
    ref = kernel_predict(hist, horizon=40.0, dt=2.0, model="ballistic")
    assert out["time_to_impact"] == pytest.approx(ref.time_to_impact)
    assert np.allclose([p["position"] for p in out["predictions"]], ref.positions)
    assert out["track_id"] is None and out["computation_time_ms"] >= 0


def test_predict_from_a_track_and_unknown_ids():
    svc, _ = _service()
    res = _scan(svc, *BALLISTIC, range(4))
    tid = res["tracks"][0]["track_id"]
    out = svc.predict(track_id=tid, prediction_horizon=30.0, dt=1.0)
    assert out["predictions"][0]["timestamp"] == pytest.approx(4.0)
    p, v = BALLISTIC[0][0] + 3 * BALLISTIC[1][0], BALLISTIC[1][0]
    t_hit = (v[2] + math.sqrt(v[2] ** 2 + 2 * 9.80665 * p[2])) / 9.80665
    assert out["time_to_impact"] == pytest.approx(t_hit, rel=0.05)
    with pytest.raises(NotFound):
        svc.predict(track_id="nope")
    with pytest.raises(InvalidInput):
        svc.predict()


def test_prioritize_defaults_to_the_tracks():
    svc, _ = _service()
    p0 = np.vstack([BALLISTIC[0], AIRCRAFT[0]])
    v = np.vstack([BALLISTIC[1], AIRCRAFT[1]])
    _scan(svc, p0, v, range(4))
    rep = svc.prioritize(interceptors_available=0, assets=[{"name": "base", "position": [0, 0, 0]}])
    assert rep["source"] == "tracks" and rep["total_threats"] == 2
    top = rep["prioritized_threats"][0]
    assert (
        top["threat_type"] == "ballistic_missile"
        and top["components"]["asset_proximity"] is not None
    )
    assert all(
        r["recommended_action"] != "engage" for r in rep["prioritized_threats"]
    )  # no interceptors
    given = svc.prioritize(
        [
            {
                "threat_id": "x",
                "threat_type": "ballistic_missile",
                "time_to_impact": 60,
                "confidence": 1,
            }
        ]
    )
    assert given["source"] == "request" and given["prioritized_threats"][0][
        "risk_score"
    ] == pytest.approx(120 / 180)


# ---------------------------------------------------------------- detection


def _frame(h=30, w=40, x0=20.4, y0=11.7, amp=5000.0, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    return 1000 + rng.normal(0, 10, (h, w)) + amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 4.5)


def test_detect_paths_and_events():
    svc, events = _service()
    img = _frame()
    base = {"sv_id": 3, "timestamp": 7.0}
    d = svc.detect(**base, pixels=img.reshape(-1).tolist(), width=40, height=30)
    assert d["hotspot_count"] == 1 and d["centroid"] == pytest.approx([20.4, 11.7], abs=0.15)
    d0 = svc.detect(**base, centroid=[5, 5], hotspot_count=0)
    assert d0["threat_type"] == "none" and d0["recommended_action"] == "none"
    n_before = len(events)
    d1 = svc.detect(
        **base,
        centroid=[5, 5],
        hotspot_count=2,
        position=BALLISTIC[0][0].tolist(),
        velocity=BALLISTIC[1][0].tolist(),
    )
    assert d1["threat_type"] == "ballistic_missile" and d1["time_to_impact"] > 0
    (ev,) = events[n_before:]
    assert ev.type == "ThreatDetected" and ev.data["threat_id"] == d1["threat_id"]
    assert svc.health()["detections_processed"] == 3
    assert svc.detections.get(d1["threat_id"])["threat_type"] == "ballistic_missile"


def test_concurrent_calls_are_safe():
    svc, _ = _service()
    errors = []

    def scans():
        try:
            _scan(svc, *BALLISTIC, range(30))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def readers():
        try:
            for _ in range(30):
                svc.tracks(status="all")
                svc.health()
                svc.prioritize()
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=scans)] + [
        threading.Thread(target=readers) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert svc.scans_processed == 30 and len(svc.tracks()) == 1


# ---------------------------------------------------------------- state safety


def _state(svc):
    """Everything a scan could change: the tracker, the counters, the stored documents."""
    stored = svc.saved_state.get("state") if svc.saved_state.exists("state") else None
    return (
        svc.tracker.to_dict(),
        svc.scans_processed,
        dict(svc.sensor_scan_time),
        stored,
        svc.stored_tracks.page(limit=None),
        [t["track_id"] for t in svc.tracks(status="all")],
    )


def test_rejected_scans_change_nothing(tmp_path):
    svc, _ = _service(Store(tmp_path / "prism.sqlite"))
    _scan(svc, *BALLISTIC, range(4), t0=100.0)
    before = _state(svc)
    z = [{"position": (BALLISTIC[0][0] + 4 * BALLISTIC[1][0]).tolist(), "sigma": 10.0}]
    bad = [
        ("s", 1e308, z, "timestamp"),  # issue 10 item 3: once moved the shared clock
        ("other", 1e308, z, "timestamp"),
        ("s", -1e11, z, "timestamp"),
        ("s", float("inf"), z, "timestamp"),
        ("s", 102.0, z, "timestamp"),  # earlier than this sensor's last scan
        ("other", 95.0, z, "timestamp"),  # 8 s behind the clock: beyond the 5 s tolerance
        ("s", 104.0, [{"position": [0.0, float("nan"), 1.0]}], "measurements.0.position"),
        ("s", 104.0, [{"position": [0, 0, 1], "sigma": -1.0}], "measurements.0.sigma"),
    ]
    for sensor, t, meas, field in bad:
        with pytest.raises(InvalidInput) as exc:
            svc.track_scan(sensor, t, meas)
        assert exc.value.field == field
        assert _state(svc) == before, (sensor, t)
    # the tracker is usable: a normal scan from another sensor, then from the first one
    r = svc.track_scan("other", 104.0, z)
    assert r["associated"] == 1 and r["new_tracks"] == 0
    r = svc.track_scan("s", 105.0, [{"position": (BALLISTIC[0][0] + 5 * BALLISTIC[1][0]).tolist()}])
    assert r["associated"] == 1 and len(r["tracks"]) == 1


def test_a_scan_that_fails_half_way_changes_nothing(tmp_path, monkeypatch):
    """A store that refuses the commit (a full disk) rolls the tracker back: the scan was not
    acknowledged, so nothing of it remains."""
    svc, events = _service(Store(tmp_path / "prism.sqlite"))
    p0 = np.vstack([BALLISTIC[0], AIRCRAFT[0]])
    v = np.vstack([BALLISTIC[1], AIRCRAFT[1]])
    _scan(svc, p0, v, range(2))
    before, n_events = _state(svc), len(events)

    def full_disk(*args, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as m:
        m.setattr(svc.saved_state, "put", full_disk)
        with pytest.raises(sqlite3.OperationalError):
            _scan(svc, p0, v, [2])  # would confirm both tracks and publish a threat
    assert _state(svc) == before and len(events) == n_events
    r = _scan(svc, p0, v, [2])
    assert r["new_detections"] == 2 and len(events) == n_events + 1


def test_sensors_keep_their_own_order_within_the_late_tolerance():
    svc, _ = _service()
    z = [{"position": [1e5, 2e5, 6e4], "sigma": 10.0}]
    svc.track_scan("a", 10.0, z)
    svc.track_scan("b", 8.0, z)  # 2 s late: within 5 s, processed at its own time
    assert svc.tracker.time == 10.0 and svc.health()["last_scan_time"] == 10.0
    svc.track_scan("b", 8.0, z)  # equal times from one sensor are in order
    for sensor, t in (("b", 7.5), ("a", 9.0), ("c", 4.9)):
        with pytest.raises(InvalidInput) as exc:
            svc.track_scan(sensor, t, z)
        assert exc.value.field == "timestamp"
    svc.track_scan("c", 5.0, z)  # exactly at the tolerance


def test_reset_starts_afresh_and_is_persisted(tmp_path):
    path = tmp_path / "prism.sqlite"
    svc, _ = _service(Store(path))
    _scan(svc, *BALLISTIC, range(4), t0=1e9)
    assert svc.tracks() and svc.stored_tracks.count() == 1
    out = svc.reset()
    assert out["tracks_dropped"] == 1 and out["scans_dropped"] == 4
    assert svc.tracks(status="all") == [] and svc.tracker.time is None
    assert svc.stored_tracks.count() == 0
    assert svc.saved_state.get("state")["tracker"]["tracks"] == []  # the empty tracker, committed
    svc.track_scan("s", 0.0, [])  # any time again
    svc.store.close()
    again, _ = _service(Store(path))
    assert again.scans_processed == 1 and again.tracks(status="all") == []


def test_restart_reconciles_track_documents_with_the_tracker(tmp_path):
    """A crash between the tracker state and a track document loses nothing: the restored
    tracker is the truth, the documents follow it."""
    path = tmp_path / "prism.sqlite"
    svc, _ = _service(Store(path))
    p0 = np.vstack([BALLISTIC[0], AIRCRAFT[0]])
    v = np.vstack([BALLISTIC[1], AIRCRAFT[1]])
    res = _scan(svc, p0, v, range(3))
    a, b = sorted(t["track_id"] for t in res["tracks"])
    svc.stored_tracks.delete(a)  # its confirmation document never got written
    svc.stored_tracks.put("trk-999999", {**svc.track(b), "track_id": "trk-999999"})  # stale
    svc.store.close()
    again, _ = _service(Store(path))
    assert again.stored_tracks.get(a)["status"] == "active"
    assert again.stored_tracks.get("trk-999999")["status"] == "lost"
    assert {t["track_id"] for t in again.tracks(status="active")} == {a, b}
