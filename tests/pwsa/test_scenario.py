"""Seeded scenario generator: reproducibility, physics, sensor statistics, frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.detection import detect_frame
from prism_kernels.pwsa.scenario import MU_EARTH, R_EARTH, generate_scenario
from prism_kernels.pwsa.trajectory import G0, impact


@pytest.fixture(scope="module")
def scen():
    return generate_scenario(n_targets=20, n_satellites=3, n_scans=60, seed=7)


def test_reproducible_from_seed(scen):
    again = generate_scenario(n_targets=20, n_satellites=3, n_scans=60, seed=7)
    assert json.dumps(again.to_dict()) == json.dumps(scen.to_dict())
    assert all(
        np.array_equal(a.pixels, b.pixels) for a, b in zip(again.frames, scen.frames, strict=True)
    )
    other = generate_scenario(n_targets=20, n_satellites=3, n_scans=60, seed=8, frame_shape=None)
    assert not np.allclose(other.objects[0].positions[0], scen.objects[0].positions[0])


def test_sizes_mix_and_serialisation(scen):
    assert len(scen.objects) == 20 and len(scen.satellites) == 3
    assert len(scen.scans) == 180 and len(scen.frames) == 180
    kinds = [o.object_type for o in scen.objects]
    assert kinds.count("ballistic_missile") == 6 and kinds.count("aircraft") == 4
    assert {o.object_type for o in scen.threats} <= {
        "ballistic_missile",
        "hypersonic_glide_vehicle",
        "cruise_missile",
    }
    assert all(len(o.times) > 0 for o in scen.objects)
    d = json.loads(json.dumps(scen.to_dict(include_frames=True)))
    assert d["objects"][0]["object_type"] == "ballistic_missile" and "pixels" not in d["frames"][0]


def test_ballistic_truth_is_free_flight_and_impact_consistent(scen):
    checked = 0
    for o in scen.objects:
        if o.object_type != "ballistic_missile":
            continue
        coast = np.nonzero(
            np.allclose(o.accelerations, [0, 0, -G0], atol=1e-9, rtol=0)
            | np.all(np.isclose(o.accelerations, [0, 0, -G0]), axis=1)
        )[0]
        for k in coast:
            state = np.concatenate([o.positions[k], o.velocities[k]])
            imp = impact(state)  # the trajectory module's closed form, a separate code path
            np.testing.assert_allclose(imp.position, o.impact_point, rtol=0, atol=1e-3)
            assert o.times[k] + imp.time == pytest.approx(o.impact_time, abs=1e-6)
            checked += 1
        # Boost: thrust acceleration well above gravity, upward.
        boost = ~np.isclose(o.accelerations[:, 2], -G0)
        assert np.all(o.accelerations[boost, 2] > 0)
    assert checked > 0


def test_kinematic_regimes(scen):
    for o in scen.objects:
        speed = np.linalg.norm(o.velocities, axis=1)
        z = o.positions[:, 2]
        if o.object_type == "cruise_missile":
            assert np.all(z <= 301) and np.all((speed > 200) & (speed < 300))
        elif o.object_type == "aircraft":
            assert np.all((z > 7900) & (z < 12100)) and np.all((speed > 180) & (speed < 260))
        elif o.object_type == "hypersonic_glide_vehicle":
            glide = np.linalg.norm(o.accelerations, axis=1) < 50
            assert np.all(speed[glide] > 2000) and np.all(z[glide] < 90_000)
        elif o.object_type == "decoy":
            assert np.all(np.diff(o.intensity) < 0)  # decaying flare
        elif o.object_type == "clutter":
            assert np.all(z == 0) and np.all(speed == 0)
        # Positions are the integral of velocities (trapezoid between scans).
        if len(o.times) > 2 and o.object_type not in ("ballistic_missile", "clutter"):
            dp = np.diff(o.positions, axis=0)
            vm = 0.5 * (o.velocities[1:] + o.velocities[:-1]) * np.diff(o.times)[:, None]
            np.testing.assert_allclose(dp, vm, atol=0.02 * np.max(np.abs(vm)) + 1.0)


def test_satellites_on_circular_leo(scen):
    r = R_EARTH + 550_000.0
    for s in scen.satellites:
        centre = s.positions + np.array([0, 0, R_EARTH])
        np.testing.assert_allclose(np.linalg.norm(centre, axis=1), r, rtol=1e-12)
        np.testing.assert_allclose(
            np.linalg.norm(s.velocities, axis=1), math.sqrt(MU_EARTH / r), rtol=1e-12
        )
        np.testing.assert_allclose(
            np.diff(s.positions, axis=0), 0.5 * (s.velocities[1:] + s.velocities[:-1]), rtol=1e-3
        )


def test_measurement_statistics():
    sc = generate_scenario(
        n_targets=30,
        n_scans=40,
        seed=3,
        p_detect=0.8,
        clutter_rate=3.0,
        position_sigma=75.0,
        frame_shape=None,
    )
    lo, hi = sc.bounds
    resid, n_true, n_det, n_fa = [], 0, 0, 0
    for scan in sc.scans:
        truth = sc.truth_at(scan.time)
        present = [i for i, st in truth.items() if np.all(st[:3] >= lo) and np.all(st[:3] <= hi)]
        n_true += len(present)
        for pos, oid in zip(scan.positions, scan.object_ids, strict=True):
            if oid < 0:
                n_fa += 1
                assert np.all(pos >= lo) and np.all(pos <= hi)
            else:
                n_det += 1
                resid.append(pos - truth[oid][:3])
    resid = np.array(resid)
    np.testing.assert_allclose(resid.std(axis=0), 75.0, rtol=0.05)
    assert np.all(np.abs(resid.mean(axis=0)) < 5.0)
    pd = n_det / n_true
    assert abs(pd - 0.8) < 4 * math.sqrt(0.8 * 0.2 / n_true)
    lam = n_fa / len(sc.scans)
    assert abs(lam - 3.0) < 4 * math.sqrt(3.0 / len(sc.scans))


def test_line_of_sight_geometry():
    sc = generate_scenario(
        n_targets=10,
        n_scans=5,
        seed=2,
        angle_sigma=0.0,
        clutter_rate=0.0,
        p_detect=1.0,
        frame_shape=None,
    )
    for scan in sc.scans:
        truth = sc.truth_at(scan.time)
        for (az, el), oid in zip(scan.los, scan.object_ids, strict=True):
            d = truth[oid][:3] - scan.sensor_position
            u = np.array([math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])
            np.testing.assert_allclose(u, d / np.linalg.norm(d), atol=1e-12)
            assert el < 0  # looking down from orbit


def test_ir_frames_hotspots_detected_at_truth(scen):
    errs = []
    for fr in scen.frames[::20]:
        res = detect_frame(fr.pixels, compute_metrics=False)
        assert res.noise_sigma == pytest.approx(fr.noise_sigma, rel=0.1)
        for oid, x, y, _integ, peak, s in fr.truth:
            if peak / fr.noise_sigma < 20 or s > 2:
                continue
            others = np.hypot(fr.truth[:, 1] - x, fr.truth[:, 2] - y)
            if np.sum(others < 8) > 1:  # skip blended neighbours
                continue
            d = [math.hypot(h.x - x, h.y - y) for h in res.hotspots]
            assert min(d) < 0.3, (oid, min(d))
            errs.append(min(d))
    assert len(errs) >= 10 and float(np.median(errs)) < 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_targets": -1},
        {"n_satellites": 0},
        {"n_scans": 0},
        {"dt": 0.0},
        {"p_detect": 1.5},
        {"clutter_rate": -1.0},
        {"mix": {"ufo": 1.0}},
        {"mix": {"aircraft": 0.0}},
        {"frame_shape": (0, 10)},
        {"noise_sigma": -1.0},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(InvalidInput):
        generate_scenario(**kwargs)


def test_empty_scenario():
    sc = generate_scenario(n_targets=0, n_scans=3, clutter_rate=0.0, frame_shape=(16, 16))
    assert sc.objects == [] and all(s.positions.shape == (0, 3) for s in sc.scans)
    assert all(f.truth.shape == (0, 6) for f in sc.frames)
