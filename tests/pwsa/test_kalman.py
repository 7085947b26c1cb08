"""Batched Kalman kernels against FilterPy (step by step) and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from filterpy.kalman import KalmanFilter

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa import models
from prism_kernels.pwsa.kalman import (
    azel,
    azel_jacobian,
    ekf_update_angles,
    kf_predict,
    kf_update,
    wrap_angle,
)

TOL = 1e-9  # float64, relative to values of order 1-100


def _random_system(rng, n, m):
    F = np.eye(n) + 0.2 * rng.normal(size=(n, n))
    H = rng.normal(size=(m, n))
    A = rng.normal(size=(n, n))
    Q = 0.1 * A @ A.T
    B = rng.normal(size=(m, m))
    R = B @ B.T + np.eye(m)
    return F, H, Q, R


@pytest.mark.parametrize(("n", "m"), [(4, 2), (6, 3), (5, 4)])
def test_matches_filterpy_step_by_step(xp, to_xp, rng, n, m):
    """Random F, H, Q, per-track R; 8 tracks, 6 steps; x, P, log-likelihood within 1e-9."""
    n_tracks, n_steps = 8, 6
    F, H, Q, _ = _random_system(rng, n, m)
    Rs = np.stack([_random_system(rng, n, m)[3] for _ in range(n_tracks)])
    x = rng.normal(size=(n_tracks, n))
    P = np.stack([np.eye(n) * (1 + i) for i in range(n_tracks)])
    kfs = []
    for i in range(n_tracks):
        kf = KalmanFilter(dim_x=n, dim_z=m)
        kf.x, kf.P, kf.F, kf.H, kf.Q, kf.R = x[i].copy(), P[i].copy(), F, H, Q, Rs[i]
        kfs.append(kf)
    xb, Pb = to_xp(x), to_xp(P)
    for _ in range(n_steps):
        z = rng.normal(size=(n_tracks, m)) * 3
        xb, Pb = kf_predict(xb, Pb, to_xp(F), to_xp(Q))
        up = kf_update(xb, Pb, to_xp(z), to_xp(H), to_xp(Rs))
        xb, Pb = up.x, up.P
        for i, kf in enumerate(kfs):
            kf.predict()
            kf.update(z[i])
        fx = np.stack([kf.x for kf in kfs])
        fP = np.stack([kf.P for kf in kfs])
        fS = np.stack([kf.S for kf in kfs])
        fK = np.stack([kf.K for kf in kfs])
        fll = np.array([kf.log_likelihood for kf in kfs])
        np.testing.assert_allclose(to_numpy(xb), fx, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(to_numpy(Pb), fP, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(to_numpy(up.S), fS, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(to_numpy(up.K), fK, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(to_numpy(up.log_likelihood), fll, rtol=TOL, atol=TOL)


def test_torch_equals_numpy(rng):
    torch = pytest.importorskip("torch")
    F, H, Q, R = _random_system(rng, 6, 3)
    x = rng.normal(size=(50, 6))
    P = np.broadcast_to(np.eye(6), (50, 6, 6)).copy()
    z = rng.normal(size=(50, 3))
    xn, Pn = kf_predict(x, P, F, Q)
    un = kf_update(xn, Pn, z, H, R)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    xt, Pt = kf_predict(t(x), t(P), t(F), t(Q))
    ut = kf_update(xt, Pt, t(z), t(H), t(R))
    assert isinstance(ut.x, torch.Tensor)
    np.testing.assert_allclose(ut.x.numpy(), un.x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ut.P.numpy(), un.P, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ut.log_likelihood.numpy(), un.log_likelihood, rtol=1e-12, atol=1e-12)


def test_short_form_equals_joseph_for_optimal_gain(rng):
    F, H, Q, R = _random_system(rng, 6, 3)
    x = rng.normal(size=(5, 6))
    P = np.broadcast_to(np.eye(6) * 4, (5, 6, 6)).copy()
    z = rng.normal(size=(5, 3))
    a = kf_update(x, P, z, H, R, joseph=True)
    b = kf_update(x, P, z, H, R, joseph=False)
    np.testing.assert_allclose(a.P, b.P, atol=1e-10)
    np.testing.assert_allclose(a.x, b.x, atol=1e-12)


def test_per_track_dt_and_control(xp, to_xp):
    """CV F/Q match the closed form per track; ballistic input equals B g (FilterPy's B u)."""
    dt = np.array([0.5, 1.0, 2.0])
    F, Q, u = models.ConstantVelocity(2.0).matrices(to_xp(dt))
    F, Q = to_numpy(F), to_numpy(Q)
    for i, d in enumerate(dt):
        f1 = np.array([[1, d], [0, 1]])
        q1 = 2.0 * np.array([[d**3 / 3, d**2 / 2], [d**2 / 2, d]])
        np.testing.assert_allclose(F[i], np.kron(f1, np.eye(3)), atol=1e-15)
        np.testing.assert_allclose(Q[i], np.kron(q1, np.eye(3)), atol=1e-15)
    assert u is None
    Fa, Qa, _ = models.ConstantAcceleration(1.0).matrices(to_xp(dt))
    d = dt[2]
    f1 = np.array([[1, d, d * d / 2], [0, 1, d], [0, 0, 1]])
    np.testing.assert_allclose(to_numpy(Fa)[2], np.kron(f1, np.eye(3)), atol=1e-15)
    q = to_numpy(Qa)[2]
    assert q[0, 0] == pytest.approx(d**5 / 20) and q[0, 6] == pytest.approx(d**3 / 6)
    ub = to_numpy(models.ballistic_input(to_xp(dt)))
    B = models.ballistic_control_matrix(dt)
    np.testing.assert_allclose(ub, B @ models.GRAVITY_VECTOR, atol=1e-14)
    # a noise-free ballistic prediction reproduces the closed-form parabola
    x0 = np.array([[0.0, 0.0, 1000.0, 10.0, 0.0, 50.0]])
    Fb, Qb, ub1 = models.Ballistic(0.0).matrices(3.0)
    xn, _ = kf_predict(x0, np.eye(6)[None], Fb, Qb, ub1)
    assert xn[0, 2] == pytest.approx(1000 + 150 - 0.5 * models.GRAVITY * 9)
    assert xn[0, 5] == pytest.approx(50 - models.GRAVITY * 3)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_edge_cases():
    F, Q, _ = models.ConstantVelocity(1.0).matrices(1.0)
    H = models.position_selector(6)
    R = np.eye(3)
    # zero tracks
    x0, P0 = np.zeros((0, 6)), np.zeros((0, 6, 6))
    xp_, Pp = kf_predict(x0, P0, F, Q)
    assert xp_.shape == (0, 6) and Pp.shape == (0, 6, 6)
    assert kf_update(xp_, Pp, np.zeros((0, 3)), H, R).x.shape == (0, 6)
    # one track
    up = kf_update(np.zeros((1, 6)), np.eye(6)[None], np.ones((1, 3)), H, R)
    np.testing.assert_allclose(up.x[0, :3], 0.5)  # equal prior and noise variance
    # NaN measurement, NaN state, mismatched shapes, negative dt
    with pytest.raises(InvalidInput) as e:
        kf_update(
            np.zeros((2, 6)), np.stack([np.eye(6)] * 2), np.array([[1, 2, np.nan], [0, 0, 0]]), H, R
        )
    assert e.value.field == "z"
    with pytest.raises(InvalidInput):
        kf_predict(np.full((1, 6), np.inf), np.eye(6)[None], F, Q)
    with pytest.raises(InvalidInput) as e:
        kf_update(np.zeros((2, 6)), np.stack([np.eye(6)] * 2), np.zeros((2, 2)), H, R)
    assert e.value.field == "H"
    with pytest.raises(InvalidInput) as e:
        kf_predict(np.zeros((2, 6)), np.stack([np.eye(5)] * 2), F, Q)
    assert e.value.field == "P"
    with pytest.raises(InvalidInput):
        models.ConstantVelocity(1.0).matrices(-1.0)
    with pytest.raises(InvalidInput):
        kf_update(np.zeros((1, 6)), np.zeros((1, 6, 6)), np.zeros((1, 3)), H, np.zeros((3, 3)))


def test_wrap_angle():
    a = np.array([0.0, np.pi, -np.pi, 3 * np.pi, 2 * np.pi + 0.1, -0.1 - 4 * np.pi])
    w = wrap_angle(a)
    assert np.all(w > -np.pi) and np.all(w <= np.pi)
    np.testing.assert_allclose(np.cos(w), np.cos(a), atol=1e-12)
    np.testing.assert_allclose(np.sin(w), np.sin(a), atol=1e-12)


def test_azel_jacobian_matches_finite_differences(rng, xp, to_xp):
    x = rng.normal(size=(7, 6)) * 1000 + np.array([5000, -3000, 2000, 0, 0, 0])
    s = np.array([100.0, 200.0, -50.0])
    J = to_numpy(azel_jacobian(to_xp(x), to_xp(s)))
    h = 1e-4
    for j in range(3):
        e = np.zeros(6)
        e[j] = h
        fd = (to_numpy(azel(to_xp(x + e), s)) - to_numpy(azel(to_xp(x - e), s))) / (2 * h)
        np.testing.assert_allclose(J[:, :, j], fd, rtol=1e-6, atol=1e-10)
    assert np.all(J[:, :, 3:] == 0)


def test_ekf_angles_matches_filterpy_ekf_and_wraps(rng):
    """EKF update equals FilterPy's ExtendedKalmanFilter.update (with a wrapping residual)."""
    from filterpy.kalman import ExtendedKalmanFilter

    s = np.array([0.0, 0.0, 0.0])
    # targets behind the sensor (azimuth near +-pi) exercise the wrapping
    x = np.array([[-10000.0, 10.0, 3000.0, 1, 2, 3], [8000.0, 6000.0, -2000.0, 0, 0, 0]])
    P = np.stack([np.diag([1e4, 1e4, 1e4, 100, 100, 100])] * 2)
    R = np.diag([1e-6, 2e-6])
    z = azel(x, s) + np.array([[0.001, -0.0005], [-0.002, 0.001]])
    z[0, 0] = wrap_angle(np.array(z[0, 0] + 0.0))  # measured just across the +-pi seam
    z[0, 0] = -np.pi + 0.0005 if z[0, 0] > 0 else z[0, 0]
    up = ekf_update_angles(x, P, z, s, R)
    assert abs(up.y[0, 0]) < 0.01  # wrapped, not ~2 pi
    for i in range(2):
        ekf = ExtendedKalmanFilter(dim_x=6, dim_z=2)
        ekf.x, ekf.P, ekf.R = x[i].copy(), P[i].copy(), R

        def resid(a, b):
            d = a - b
            d[0] = wrap_angle(np.array(d[0]))
            return d

        ekf.update(
            z[i],
            HJacobian=lambda xx: azel_jacobian(xx[None], s)[0],
            Hx=lambda xx: azel(xx[None], s)[0],
            residual=resid,
        )
        np.testing.assert_allclose(up.x[i], ekf.x, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(up.P[i], ekf.P, rtol=1e-9, atol=1e-6)
    with pytest.raises(InvalidInput):
        ekf_update_angles(x, P, np.array([[np.nan, 0], [0, 0]]), s, R)
