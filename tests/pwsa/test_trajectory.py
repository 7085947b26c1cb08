"""Ballistic propagation, impact and uncertainty against closed forms, SciPy and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.models import ballistic_input, cv_transition
from prism_kernels.pwsa.trajectory import (
    G0,
    Drag,
    error_ellipse,
    fit_state,
    impact,
    impact_distribution,
    predict,
    predict_trajectory,
    propagate,
    sigma_points,
)


def _launch_states(rng: np.random.Generator, n: int) -> np.ndarray:
    speed = rng.uniform(300.0, 3000.0, n)
    el = rng.uniform(0.3, 1.3, n)
    az = rng.uniform(0, 2 * np.pi, n)
    p0 = np.stack([rng.uniform(-1e5, 1e5, n), rng.uniform(-1e5, 1e5, n), np.zeros(n)], axis=1)
    v0 = speed[:, None] * np.stack(
        [np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)], axis=1
    )
    return np.concatenate([p0, v0], axis=1)


def test_impact_matches_closed_form_range_and_time(rng):
    s = _launch_states(rng, 100)
    vh = np.hypot(s[:, 3], s[:, 4])
    t_cf = 2 * s[:, 5] / G0  # from the ground back to the ground
    range_cf = vh * t_cf
    for integ in ("closed", "rk4"):
        imp = impact(s, integrator=integ, dt=0.5)
        rng_ours = np.hypot(imp.position[:, 0] - s[:, 0], imp.position[:, 1] - s[:, 1])
        # The brief's bar is 1 % of range; RK4 is exact on a quadratic and the Hermite
        # crossing on a cubic, so both agree to ~1e-9 relative.
        np.testing.assert_allclose(rng_ours, range_cf, rtol=1e-8)
        np.testing.assert_allclose(imp.time, t_cf, rtol=1e-8)
        assert np.all(imp.found)
        assert np.all(imp.position[:, 2] == 0)


def test_impact_from_altitude_closed_form():
    s = np.array([1000.0, -2000.0, 50_000.0, 800.0, 600.0, -100.0])
    imp = impact(s)
    t = (-100.0 + math.sqrt(100.0**2 + 2 * G0 * 50_000.0)) / G0
    assert imp.time == pytest.approx(t, rel=1e-12)
    np.testing.assert_allclose(imp.position, [1000 + 800 * t, -2000 + 600 * t, 0.0], rtol=1e-12)
    np.testing.assert_allclose(imp.velocity[2], -100.0 - G0 * t, rtol=1e-12)


def test_drag_impact_against_scipy_solve_ivp(rng):
    drag = Drag(beta=3000.0)
    states = _launch_states(rng, 5)
    states[:, 2] = rng.uniform(0, 30_000, 5)
    ours = impact(states, drag=drag, dt=0.1)

    def rhs(_t, y):
        rho = drag.rho0 * math.exp(-y[2] / drag.scale_height)
        v = y[3:]
        a = -rho * np.linalg.norm(v) * v / (2 * drag.beta)
        a[2] -= G0
        return np.concatenate([v, a])

    def ground(_t, y):
        return y[2]

    ground.terminal = True
    ground.direction = -1
    for i, s in enumerate(states):
        sol = solve_ivp(rhs, (0, 5000), s, method="DOP853", rtol=1e-11, atol=1e-9, events=ground)
        t_ref = sol.t_events[0][0]
        p_ref = sol.y_events[0][0]
        assert ours.time[i] == pytest.approx(t_ref, abs=1e-4)
        np.testing.assert_allclose(
            ours.position[i, :2], p_ref[:2], atol=0.05
        )  # 5 cm over 10-100 km
    # Drag shortens the range.
    free = impact(states)
    assert np.all(
        np.hypot(*(ours.position[:, :2] - states[:, :2]).T)
        < np.hypot(*(free.position[:, :2] - states[:, :2]).T)
    )


def test_propagate_closed_vs_rk4_and_torch(rng, to_xp, xp_name):
    s = _launch_states(rng, 50)
    t = np.linspace(0, 40, 9)
    ref = propagate(s, t)
    rk = propagate(s, t, integrator="rk4", dt=0.5)
    np.testing.assert_allclose(rk, ref, rtol=1e-10, atol=1e-6)
    out = propagate(to_xp(s), t)
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-12)
    imp = impact(to_xp(s), drag=Drag(beta=4000.0), dt=0.2)
    imp_np = impact(s, drag=Drag(beta=4000.0), dt=0.2)
    np.testing.assert_allclose(to_numpy(imp.position), imp_np.position, rtol=1e-9)


def test_negligible_drag_converges_to_free_flight():
    s = np.array([0.0, 0.0, 0.0, 500.0, 200.0, 700.0])
    a = impact(s, drag=Drag(beta=1e12), dt=0.1)
    b = impact(s)
    np.testing.assert_allclose(a.position, b.position, rtol=1e-6)


def test_sigma_point_mean_matches_monte_carlo():
    state = np.array([20_000.0, -5_000.0, 80_000.0, 1500.0, 300.0, 400.0])
    cov = np.diag([400.0**2, 400.0**2, 300.0**2, 30.0**2, 30.0**2, 40.0**2])
    cov[0, 3] = cov[3, 0] = 0.5 * 400 * 30
    ut = impact_distribution(state, cov, method="unscented")
    mc = impact_distribution(state, cov, method="monte_carlo", n_samples=40_000, seed=3)
    se = np.sqrt(np.diag(mc.cov) / 40_000)
    # Means agree within 4 Monte-Carlo standard errors (plus 0.2 m for UT's third-order error).
    assert np.all(np.abs(ut.point - mc.point) <= 4 * se + 0.2)
    assert abs(ut.time - mc.time) <= 4 * mc.time_std / math.sqrt(40_000) + 1e-3
    np.testing.assert_allclose(ut.cov, mc.cov, rtol=0.05, atol=1e3)
    assert ut.time_std == pytest.approx(mc.time_std, rel=0.05)
    assert ut.semi_major >= ut.semi_minor > 0


def test_sigma_points_reproduce_mean_and_covariance(rng):
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + 6 * np.eye(6)
    mean = rng.normal(size=6)
    pts, wm, wc = sigma_points(mean, cov, alpha=0.5, beta=2.0, kappa=1.0)
    m = wm @ pts
    d = pts - m
    np.testing.assert_allclose(m, mean, atol=1e-12)
    np.testing.assert_allclose((wc[:, None] * d).T @ d, cov, rtol=1e-10)
    with pytest.raises(InvalidInput):
        sigma_points(mean, -cov)


def test_error_ellipse_axes_and_orientation():
    th = math.radians(30)
    r = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    cov = r @ np.diag([100.0**2, 20.0**2]) @ r.T
    a, b, ang = error_ellipse(cov, 0.95)
    k = math.sqrt(-2 * math.log(0.05))
    assert a == pytest.approx(100 * k) and b == pytest.approx(20 * k) and ang == pytest.approx(30.0)


def test_predict_noiseless_history_recovers_impact():
    s0 = np.array([0.0, 0.0, 0.0, 1200.0, 900.0, 1500.0])
    t = np.arange(0, 30.0, 2.0)
    traj = propagate(s0, t)
    hist = [
        {"timestamp": float(ti), "position": p[:3].tolist()} for ti, p in zip(t, traj, strict=True)
    ]
    pred = predict(hist, horizon=60, dt=5, model="kalman_filter")
    t_imp = 2 * 1500 / G0
    rng_cf = math.hypot(1200, 900) * t_imp
    ip = pred.impact.point
    assert math.hypot(*ip) == pytest.approx(rng_cf, rel=1e-9)  # brief: 1 %; actual ~1e-12
    assert pred.epoch + pred.time_to_impact == pytest.approx(t_imp, rel=1e-9)
    np.testing.assert_allclose(
        pred.positions, propagate(s0, pred.times)[:, :3], rtol=1e-9, atol=1e-6
    )
    d = pred.to_dict()
    assert len(d["predictions"]) == 12 and d["impact_point"]["position"][2] == 0.0
    assert d["confidence"] is None


def test_predict_uncertainty_is_calibrated():
    """True impact falls inside the 95 % ellipse about 95 % of the time (noisy histories)."""
    s0 = np.array([0.0, 0.0, 20_000.0, 900.0, -400.0, 800.0])
    t = np.arange(0, 20.0, 1.0)
    clean = propagate(s0, t)[:, :3]
    truth = impact(propagate(s0, [t[-1]])[0])
    rng = np.random.default_rng(11)
    inside = 0
    n = 300
    for _ in range(n):
        noisy = clean + rng.normal(0, 50.0, clean.shape)
        pred = predict({"times": t, "positions": noisy}, horizon=10, measurement_sigma=50.0)
        d = truth.position[:2] - pred.impact.point
        m2 = d @ np.linalg.solve(pred.impact.cov, d)
        inside += m2 <= -2 * math.log(0.05)
    assert 0.91 <= inside / n <= 0.985
    assert pred.confidence is not None and 0.0 <= pred.confidence <= 1.0


def test_constant_velocity_model_and_alias():
    hist = {
        "times": [0.0, 1.0, 2.0, 3.0],
        "positions": [[0, 0, 300.0], [10, 0, 290.0], [20, 0, 280.0], [30, 0, 270.0]],
    }
    pred = predict_trajectory(history=hist, prediction_horizon=5.0, model="constant_velocity")
    assert pred.time_to_impact == pytest.approx(27.0)
    np.testing.assert_allclose(pred.impact.point, [300.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(pred.positions[-1], [80, 0, 220], atol=1e-9)


def test_predict_with_drag_and_state_cov():
    s0 = np.array([0.0, 0.0, 30_000.0, 800.0, 0.0, -200.0])
    cov = np.diag([100.0, 100.0, 100.0, 4.0, 4.0, 4.0])
    p = predict(state=s0, cov=cov, epoch=100.0, horizon=20, dt=2, drag={"beta": 2000.0})
    assert p.times[0] == pytest.approx(102.0)
    assert np.all(np.diff(p.covariances[:, 0, 0]) > 0)  # uncertainty grows
    p_free = predict(state=s0, cov=cov, horizon=20, dt=2)
    assert p.positions[-1, 0] < p_free.positions[-1, 0]  # drag slows it


def test_fit_state_covariance_matches_least_squares_theory(rng):
    t = np.linspace(0, 10, 11)
    s0 = np.array([0, 0, 5000.0, 100.0, 50.0, 10.0])
    clean = propagate(s0, t)[:, :3]
    est = np.array(
        [
            fit_state(
                {"times": t, "positions": clean + rng.normal(0, 5.0, clean.shape)},
                measurement_sigma=5.0,
            ).state
            for _ in range(400)
        ]
    )
    fit = fit_state({"times": t, "positions": clean}, measurement_sigma=5.0)
    emp = np.cov(est, rowvar=False)
    np.testing.assert_allclose(np.diag(emp), np.diag(fit.cov), rtol=0.2)
    err = np.abs(est.mean(axis=0) - propagate(s0, [10.0])[0])
    assert np.all(err <= 4 * np.sqrt(np.diag(fit.cov) / 400) + 1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"state": [0, 0, 1, 1, 1, float("nan")]},
        {"state": [0, 0, 1, 1, 1]},
        {"state": [0, 0, -5, 1, 1, 1]},
        {"history": [{"timestamp": 0, "position": [0, 0, 1]}]},
        {
            "history": [
                {"timestamp": 0, "position": [0, 0, 1]},
                {"timestamp": 0, "position": [0, 0, 2]},
                {"timestamp": 1, "position": [0, 0, 2]},
            ]
        },
        {"history": {"times": [0, 1, 2], "positions": [[0, 0], [0, 0], [0, 0]]}},
        {"state": [0, 0, 1, 1, 1, 1], "horizon": -1},
        {"state": [0, 0, 1, 1, 1, 1], "model": "warp_drive"},
        {"state": [0, 0, 1, 1, 1, 1], "cov": np.ones((3, 3))},
        {},
    ],
)
def test_predict_invalid_inputs(kwargs):
    history = kwargs.pop("history", None)
    with pytest.raises(InvalidInput):
        predict(history, **kwargs)


def test_impact_invalid_inputs():
    with pytest.raises(InvalidInput):
        impact(np.zeros((3, 5)))
    with pytest.raises(InvalidInput):
        impact(np.array([0, 0, -1.0, 0, 0, 0]))
    with pytest.raises(InvalidInput):
        Drag(beta=-1)
    with pytest.raises(InvalidInput):
        propagate(np.zeros(6), [2.0, 1.0])
    empty = impact(np.zeros((0, 6)))
    assert empty.time.shape == (0,)


# ---------------------------------------------------------------- histories with velocities


def _ballistic(t, p0=(0.0, 0.0, 50_000.0), v0=(800.0, 300.0, 600.0)):
    t = np.asarray(t, dtype=float)[..., None]
    g = np.array([0.0, 0.0, G0])
    return np.asarray(p0) + np.asarray(v0) * t - 0.5 * g * t * t, np.asarray(v0) - g * t


def test_two_points_with_velocities_are_a_full_state():
    """The original client's README: two history points that carry velocities. A position and
    a velocity are a full state, so the fit needs no third point."""
    p, v = _ballistic([0.0, 2.0])
    hist = [
        {"timestamp": 0.0, "position": p[0].tolist(), "velocity": v[0].tolist()},
        {"timestamp": 2.0, "position": p[1].tolist(), "velocity": v[1].tolist()},
    ]
    fit = fit_state(hist, "ballistic")
    np.testing.assert_allclose(fit.state, np.r_[p[1], v[1]], atol=1e-6)
    assert fit.dof == 6
    pred = predict(hist, horizon=30.0, dt=1.0, model="kalman_filter")
    vz, z0 = v[1][2], p[1][2]
    t_hit = (vz + math.sqrt(vz * vz + 2 * G0 * z0)) / G0  # closed form from the last point
    assert pred.time_to_impact == pytest.approx(t_hit, rel=1e-9)
    # scalar speeds carry no direction: two points without velocity vectors are still too few
    with pytest.raises(InvalidInput, match="velocities"):
        fit_state([{**h, "velocity": 900.0} for h in hist])


def test_velocity_fit_is_the_kalman_batch_solution(rng):
    """Positions and velocities weighted as documented (sigma_v = sqrt(2) sigma / dt) give
    the estimate and covariance of a Kalman filter (diffuse prior, no process noise) that
    updates on the same measurements, in time order, predicting to the last time."""
    t = np.array([0.0, 1.5, 3.0, 4.5])
    p, v = _ballistic(t)
    sigma, dt = 20.0, 1.5
    zp = p + rng.normal(0, sigma, p.shape)
    zv = v + rng.normal(0, math.sqrt(2) * sigma / dt, v.shape)
    keep_v = [True, False, True, True]  # one point without a velocity
    hist = [
        {"timestamp": float(ti), "position": zp[i].tolist()}
        | ({"velocity": zv[i].tolist()} if keep_v[i] else {})
        for i, ti in enumerate(t)
    ]
    fit = fit_state(hist, "ballistic", measurement_sigma=sigma)
    x, P = np.zeros(6), np.eye(6) * 1e14
    Hp, Hv = np.eye(6)[:3], np.eye(6)[3:]
    clock = t[0]
    for i, ti in enumerate(t):
        step = np.asarray(ti - clock)
        x, P = kf_predict(x, P, cv_transition(step), np.zeros((6, 6)), ballistic_input(step))
        clock = ti
        up = kf_update(x, P, zp[i], Hp, np.eye(3) * sigma**2)
        x, P = up.x, up.P
        if keep_v[i]:
            up = kf_update(x, P, zv[i], Hv, np.eye(3) * 2 * sigma**2 / dt**2)
            x, P = up.x, up.P
    np.testing.assert_allclose(fit.state, x, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(fit.cov, P, rtol=1e-5, atol=1e-8)
