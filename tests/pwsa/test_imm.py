"""IMM against FilterPy's IMMEstimator, probability invariants, and a manoeuvring target."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.kalman import IMMEstimator, KalmanFilter

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.imm import IMM, mix
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.models import GRAVITY, ConstantVelocity, position_selector

H9 = position_selector(9)


def _filterpy_imm(imm, x0, P0, dt, R):
    fs = []
    for mdl in imm.models:
        F, Q, u = mdl.matrices(dt)
        kf = KalmanFilter(dim_x=9, dim_z=3)
        kf.x, kf.P, kf.F, kf.Q, kf.H, kf.R = x0.copy(), P0.copy(), F, Q, H9, R
        kf.B = np.eye(9)
        kf.u_known = np.zeros(9) if u is None else u
        fs.append(kf)
    return IMMEstimator(fs, np.ones(3) / 3, imm.transition)


def _filterpy_imm_step(f, z):
    """IMMEstimator.predict with each model's own known input, then update."""
    xs, Ps = [], []
    for j in range(len(f.filters)):
        w = f.omega[:, j]
        xm = sum(wi * kf.x for wi, kf in zip(w, f.filters, strict=True))
        Pm = sum(
            wi * (np.outer(kf.x - xm, kf.x - xm) + kf.P)
            for wi, kf in zip(w, f.filters, strict=True)
        )
        xs.append(xm)
        Ps.append(Pm)
    for j, kf in enumerate(f.filters):
        kf.x, kf.P = xs[j], Ps[j]
        kf.predict(u=kf.u_known)
    f.update(z)


def test_matches_filterpy_imm(rng, xp, to_xp):
    """CV/CA/ballistic IMM, 5 tracks, 8 steps: x, P, mu equal FilterPy within 1e-9 (relative)."""
    imm = IMM.cv_ca_ballistic(q_cv=5.0, q_ca=2.0, q_ballistic=1.0, p_stay=0.9)
    N, dt = 5, 0.7
    R = np.diag([4.0, 9.0, 16.0])
    x0 = rng.normal(size=(N, 9)) * 10
    P0 = np.stack([np.eye(9) * 50] * N)
    st = imm.initiate(to_xp(x0), to_xp(P0))
    ref = [_filterpy_imm(imm, x0[i], P0[i], dt, R) for i in range(N)]
    for k in range(8):
        z = rng.normal(size=(N, 3)) * 10 + 5 * k
        st = imm.predict(st, dt)
        st, ll = imm.update(st, to_xp(z), to_xp(H9), to_xp(R))
        for i, f in enumerate(ref):
            _filterpy_imm_step(f, z[i])
        mu = to_numpy(st.mu)
        np.testing.assert_allclose(mu.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(mu, np.stack([f.mu for f in ref]), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(
            to_numpy(st.x), np.stack([f.x for f in ref]), rtol=1e-9, atol=1e-9
        )
        np.testing.assert_allclose(
            to_numpy(st.P), np.stack([f.P for f in ref]), rtol=1e-9, atol=1e-8
        )
        assert np.all(np.isfinite(to_numpy(ll)))


def test_per_track_dt_and_mixing_invariants(rng):
    imm = IMM.cv_ca_ballistic()
    N = 6
    st = imm.initiate(rng.normal(size=(N, 9)), np.stack([np.eye(9)] * N), mu=[0.7, 0.2, 0.1])
    x0, P0, cbar = mix(st.xm, st.Pm, st.mu, imm.transition)
    np.testing.assert_allclose(cbar.sum(axis=1), 1.0)
    np.testing.assert_allclose(x0, st.xm)  # identical modes: mixing changes nothing
    st = imm.predict(st, rng.uniform(0.1, 3.0, N))
    st, _ = imm.update(st, rng.normal(size=(N, 3)), H9, np.eye(3))
    np.testing.assert_allclose(st.mu.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(st.mu >= 0)
    # extreme likelihoods do not underflow to NaN
    st, _ = imm.update(imm.predict(st, 1.0), np.full((N, 3), 1e6), H9, np.eye(3) * 1e-6)
    assert np.all(np.isfinite(st.mu)) and np.allclose(st.mu.sum(axis=1), 1.0)


def test_invalid_inputs():
    with pytest.raises(InvalidInput):
        IMM([ConstantVelocity(1.0), ConstantVelocity(1.0, embed=True)], np.eye(2))
    with pytest.raises(InvalidInput):
        IMM.cv_ca_ballistic().__class__(IMM.cv_ca_ballistic().models, np.ones((3, 3)))
    imm = IMM.cv_ca_ballistic()
    st = imm.initiate(np.zeros((2, 9)), np.stack([np.eye(9)] * 2))
    with pytest.raises(InvalidInput):
        imm.update(st, np.array([[np.nan, 0, 0], [0, 0, 0]]), H9, np.eye(3))
    with pytest.raises(InvalidInput):
        imm.update(st, np.zeros((3, 3)), H9, np.eye(3))


def _manoeuvring_truth(rng, n_runs, n_steps, dt):
    """Constant velocity, then a 60 m/s^2 turn-like acceleration, then free ballistic flight."""
    X = np.zeros((n_runs, n_steps, 6))
    x = np.zeros((n_runs, 6))
    x[:, 3:] = rng.normal(size=(n_runs, 3)) * 50 + np.array([1500.0, 300.0, 800.0])
    for k in range(n_steps):
        if k < 15:
            a = np.zeros((n_runs, 3))
        elif k < 30:
            a = np.tile([0.0, 60.0, 40.0], (n_runs, 1))
        else:
            a = np.tile([0.0, 0.0, -GRAVITY], (n_runs, 1))
        x[:, :3] += x[:, 3:] * dt + 0.5 * a * dt**2
        x[:, 3:] += a * dt
        X[:, k] = x
    return X


def test_imm_beats_cv_on_manoeuvring_target(rng):
    """Position RMSE over 40 seeded runs: IMM (CV/CA/ballistic) below a single CV filter."""
    n_runs, n_steps, dt, sig = 40, 45, 1.0, 30.0
    truth = _manoeuvring_truth(rng, n_runs, n_steps, dt)
    Z = truth[..., :3] + rng.normal(size=truth[..., :3].shape) * sig
    R = np.eye(3) * sig**2
    imm = IMM.cv_ca_ballistic(q_cv=1.0, q_ca=50.0, q_ballistic=1.0, p_stay=0.9)
    x0 = np.zeros((n_runs, 9))
    x0[:, :6] = truth[:, 0]
    P0 = np.stack([np.diag([sig**2] * 3 + [100.0] * 3 + [100.0] * 3)] * n_runs)
    st = imm.initiate(x0, P0)
    cv = ConstantVelocity(1.0)
    F, Q, _ = cv.matrices(dt)
    xc, Pc = x0[:, :6].copy(), P0[:, :6, :6].copy()
    H6 = position_selector(6)
    err_imm, err_cv = [], []
    for k in range(1, n_steps):
        st = imm.predict(st, dt)
        st, _ = imm.update(st, Z[:, k], H9, R)
        xc, Pc = kf_predict(xc, Pc, F, Q)
        up = kf_update(xc, Pc, Z[:, k], H6, R)
        xc, Pc = up.x, up.P
        np.testing.assert_allclose(st.mu.sum(axis=1), 1.0, atol=1e-12)
        err_imm.append(np.sum((st.x[:, :3] - truth[:, k, :3]) ** 2, axis=1))
        err_cv.append(np.sum((xc[:, :3] - truth[:, k, :3]) ** 2, axis=1))
    rmse_imm = np.sqrt(np.mean(err_imm))
    rmse_cv = np.sqrt(np.mean(err_cv))
    assert rmse_imm < 0.9 * rmse_cv, (rmse_imm, rmse_cv)
    # the last 15 steps are free ballistic flight: the ballistic mode dominates
    assert int(np.argmax(st.mu.mean(axis=0))) == 2
