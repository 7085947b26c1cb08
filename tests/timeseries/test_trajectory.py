"""Kinematic trajectory forecasts against closed-form straight lines and ballistic arcs."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import trajectory as TR

G = 9.80665
P0 = np.array([1000.0, 2000.0, 500.0])


def line(t, v=np.array([100.0, -50.0, 10.0])):
    return P0 + t[:, None] * v, v


def arc(t, v0=np.array([200.0, 100.0, 300.0])):
    pos = P0 + t[:, None] * v0 + np.outer(0.5 * t**2, [0.0, 0.0, -G])
    vel = v0 + np.outer(t, [0.0, 0.0, -G])
    return pos, vel


def test_straight_line(xp_name):
    rng = np.random.default_rng(21)
    t = np.arange(200) * 0.2
    truth, v = line(t)
    meas = truth + 2.0 * rng.standard_normal(truth.shape)
    f = TR.trajectory_forecast(
        backend.asarray(meas, backend=xp_name), backend.asarray(t, backend=xp_name), 5.0
    )
    tt = backend.to_numpy(f.timestamps)
    np.testing.assert_allclose(tt, t[-1] + 0.1 * np.arange(1, 51))
    pos = backend.to_numpy(f.positions)
    sig = backend.to_numpy(f.position_sigma)
    ref, _ = line(tt)
    err = np.abs(pos - ref)
    # within 4 sigma everywhere (the filter's own uncertainty), and a few metres
    assert np.all(err < 4 * sig) and err.max() < 15.0
    np.testing.assert_allclose(
        backend.to_numpy(f.velocities), np.broadcast_to(v, pos.shape), atol=3.0
    )
    # noise estimated from third differences (197 of them): near the true 2 m
    np.testing.assert_allclose(backend.to_numpy(f.measurement_sigma), 2.0, rtol=0.3)
    assert np.all(np.diff(sig, axis=0) > 0)
    assert np.all(np.diff(backend.to_numpy(f.velocity_sigma), axis=0) >= 0)


@pytest.mark.parametrize("model", ["ca", "ballistic"])
def test_ballistic_arc(model):
    rng = np.random.default_rng(5)
    t = np.arange(80) * 0.25
    truth, _ = arc(t)
    meas = truth + 1.0 * rng.standard_normal(truth.shape)
    f = TR.trajectory_forecast(meas, t, 3.0, model=model, process_noise=0.01, measurement_sigma=1.0)
    ref, vref = arc(f.timestamps)
    err = np.abs(f.positions - ref)
    assert np.all(err < 4 * f.position_sigma), err.max()
    assert err.max() < (5.0 if model == "ca" else 2.0)
    np.testing.assert_allclose(f.velocities, vref, atol=3.0)
    assert np.all(np.diff(f.position_sigma, axis=0) > 0)
    # the covariance grows: P(tau2) - P(tau1) is positive semi-definite for the positions
    Pp = f.covariance[:, :3, :3]
    assert np.all(np.linalg.eigvalsh(Pp[-1] - Pp[0]) > 0)


def test_cv_cannot_follow_an_arc_but_ca_can():
    rng = np.random.default_rng(6)
    t = np.arange(80) * 0.25
    truth, _ = arc(t)
    meas = truth + rng.standard_normal(truth.shape)
    cv = TR.trajectory_forecast(meas, t, 3.0, model="cv", process_noise=0.01)
    ca = TR.trajectory_forecast(meas, t, 3.0, model="ca", process_noise=0.01)
    ref, _ = arc(cv.timestamps)
    assert np.abs(cv.positions - ref)[:, 2].max() > 10 * np.abs(ca.positions - ref)[:, 2].max()


def test_batch_of_tracks_equals_single():
    rng = np.random.default_rng(8)
    t = np.cumsum(rng.uniform(0.2, 0.4, 40))
    a, _ = line(t)
    b, _ = arc(t)
    tracks = np.stack([a, b]) + rng.standard_normal((2, 40, 3))
    fb = TR.trajectory_forecast(tracks, t, 2.0, dt=0.5, measurement_sigma=1.0)
    for i in range(2):
        fi = TR.trajectory_forecast(tracks[i], t, 2.0, dt=0.5, measurement_sigma=1.0)
        np.testing.assert_allclose(fb.positions[i], fi.positions, rtol=1e-12)
        np.testing.assert_allclose(fb.position_sigma[i], fi.position_sigma, rtol=1e-12)
    assert fb.positions.shape == (2, 4, 3)


def test_bad_input():
    t = np.arange(10.0)
    p, _ = line(t)
    cases = [
        (dict(positions=p, timestamps=t[:-1]), "timestamps"),
        (dict(positions=p, timestamps=t[::-1].copy()), "timestamps"),
        (dict(positions=p, timestamps=np.r_[t[:5], t[4:9]]), "timestamps"),
        (dict(positions=p, timestamps=np.r_[t[:9], np.nan]), "timestamps"),
        (dict(positions=np.r_[p[:9], [[np.nan, 0, 0]]], timestamps=t), "positions"),
        (dict(positions=p[:, :2], timestamps=t), "positions"),
        (dict(positions=np.empty((0, 3)), timestamps=np.empty(0)), "positions"),
        (dict(positions=p[:1], timestamps=t[:1], measurement_sigma=1.0), "positions"),
        (dict(positions=p[:3], timestamps=t[:3]), "positions"),
        (dict(positions=p, timestamps=t, horizon_seconds=0.0), "horizon_seconds"),
        (dict(positions=p, timestamps=t, horizon_seconds=0.05), "horizon_seconds"),
        (dict(positions=p, timestamps=t, dt=-1.0), "dt"),
        (dict(positions=p, timestamps=t, horizon_seconds=1e6, dt=1e-3), "dt"),
        (dict(positions=p, timestamps=t, model="singer"), "model"),
        (dict(positions=p, timestamps=t, measurement_sigma=-1.0), "measurement_sigma"),
        (dict(positions=p, timestamps=t, measurement_sigma=[1.0, 2.0]), "measurement_sigma"),
        (dict(positions=p, timestamps=t, process_noise=-1.0), "q"),
    ]
    for kw, field in cases:
        kw.setdefault("horizon_seconds", 1.0)
        with pytest.raises(InvalidInput) as e:
            TR.trajectory_forecast(**kw)
        assert e.value.field == field, kw
