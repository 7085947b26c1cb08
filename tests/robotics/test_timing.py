"""Jerk-limited time parameterisation: closed-form S-curve times, an independent LP
time-optimality reference, limits checked by finite differences of sampled positions, exact
endpoints, staying on the checked polyline, duplicates, batching, backends and validation.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import linprog

from prism_kernels.backend import backend_name, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.timing import (
    MAX_SAMPLES,
    Trajectory,
    limit_usage,
    minimum_time,
    s_curve,
    time_parameterize,
)

# Tolerances: analytic derivatives are exact up to rounding; finite differences of positions
# are weighted averages of the next derivative (so within the limit) plus rounding noise of
# about 8 eps |p| / h^k.
RTOL_LIMIT = 1e-9
FD_H = 2e-3


def textbook_time(L: float, V: float, A: float, J: float) -> float:
    """Rest-to-rest S-curve duration, written out per regime (Biagiotti & Melchiorri 3.4)."""
    if V * J >= A * A:  # the acceleration limit is reachable before the speed limit
        if L >= V * (A / J + V / A):
            return L / V + V / A + A / J  # reaches V and A
    elif L >= 2.0 * V * math.sqrt(V / J):
        return L / V + 2.0 * math.sqrt(V / J)  # reaches V, never A
    if L >= 2.0 * A**3 / J**2:
        return A / J + math.sqrt((A / J) ** 2 + 4.0 * L / A)  # reaches A, not V
    return 4.0 * (L / (2.0 * J)) ** (1.0 / 3.0)  # jerk-limited only


@pytest.mark.parametrize(
    ("L", "V", "A", "J", "regime"),
    [
        (3.0, 1.0, 2.0, 10.0, "v and a"),
        (3.0, 1.0, 2.0, 2.0, "v only"),  # V J = 2 < A^2 = 4
        (0.5, 1.0, 2.0, 20.0, "a only"),
        (0.01, 1.0, 2.0, 10.0, "jerk only"),
        (2.0 * 2.0**3 / 10.0**2, 100.0, 2.0, 10.0, "a boundary"),
    ],
)
def test_single_segment_total_time_is_textbook(L, V, A, J, regime):
    traj = time_parameterize(np.array([[0.0], [L]]), V, A, J)
    assert traj.total_time == pytest.approx(textbook_time(L, V, A, J), rel=1e-12)
    assert traj.total_distance == pytest.approx(L, rel=1e-15)
    peak_v = np.abs(traj.sample(np.linspace(0, traj.total_time, 2001)).velocity).max()
    peak_a = np.abs(traj.sample(np.linspace(0, traj.total_time, 2001)).acceleration).max()
    if regime in ("v and a", "v only"):
        assert peak_v == pytest.approx(V, rel=1e-12)
    else:
        assert peak_v < V
    if regime in ("v and a", "a only", "a boundary"):
        assert peak_a == pytest.approx(A, rel=1e-3)  # sampled: the plateau may be short
    else:
        assert peak_a < A * (1 - 1e-6)


def test_diagonal_segment_uses_binding_axis_limits():
    """Per-axis limits bound the path speed through the direction's components."""
    d = np.array([3.0, -4.0])  # |d| = 5, u = (0.6, -0.8)
    vmax, amax, jmax = np.array([1.0, 2.0]), np.array([0.5, 3.0]), np.array([10.0, 4.0])
    u = np.abs(d) / 5.0
    V, A, J = (float(np.min(m / u)) for m in (vmax, amax, jmax))
    traj = time_parameterize(np.array([[0.0, 0.0], d]), vmax, amax, jmax, rate_hz=200)
    assert traj.total_time == pytest.approx(textbook_time(5.0, V, A, J), rel=1e-12)
    # the binding axis reaches each limit, the other stays within
    peaks = [np.abs(x).max(axis=0) for x in (traj.velocities, traj.accelerations, traj.jerks)]
    for peak, lim in zip(peaks, (vmax, amax, jmax), strict=True):
        assert np.all(peak <= lim * (1 + RTOL_LIMIT))
        assert np.max(peak / lim) == pytest.approx(1.0, rel=1e-2)


def _lp_min_time(L: float, V: float, A: float, J: float, n: int = 120) -> float:
    """Minimum time of a discretised rest-to-rest move found by LP feasibility + bisection.

    Piecewise-constant jerk on n equal steps, speed/acceleration bounded at the knots:
    independent of the closed form (no regimes, no switching times).
    """

    def feasible(T: float) -> bool:
        dt = T / n
        Ar, Vr, Sr = np.zeros(n), np.zeros(n), np.zeros(n)
        rows_a, rows_v = [], []
        for k in range(n):
            e = np.zeros(n)
            e[k] = 1.0
            Sr = Sr + Vr * dt + Ar * dt**2 / 2 + e * dt**3 / 6
            Vr = Vr + Ar * dt + e * dt**2 / 2
            Ar = Ar + e * dt
            rows_a.append(Ar.copy())
            rows_v.append(Vr.copy())
        G = np.vstack([rows_a, [-r for r in rows_a], rows_v, [-r for r in rows_v]])
        h = np.concatenate([np.full(n, A), np.full(n, A), np.full(n, V), np.full(n, V)])
        res = linprog(
            np.zeros(n),
            A_ub=G,
            b_ub=h,
            A_eq=np.vstack([Ar, Vr, Sr]),
            b_eq=[0.0, 0.0, L],
            bounds=[(-J, J)] * n,
            method="highs",
        )
        return res.status == 0

    lo, hi = 0.0, 1.0
    while not feasible(hi):
        lo, hi = hi, 2 * hi
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if feasible(mid) else (mid, hi)
    return hi


@pytest.mark.parametrize(
    ("L", "V", "A", "J"), [(3.0, 1.0, 2.0, 10.0), (0.5, 1.0, 2.0, 20.0), (0.01, 1.0, 2.0, 10.0)]
)
def test_segment_time_matches_independent_lp_optimum(L, V, A, J):
    ours = float(to_numpy(s_curve(np.array(L), V, A, J).duration))
    lp = _lp_min_time(L, V, A, J)
    # the LP (piecewise-constant jerk on a 120-step grid, bounds at the knots) converges to
    # the continuous optimum as the grid refines; measured gap here <= 3e-4 relative
    assert abs(lp - ours) / ours < 2e-3, (lp, ours)


def _random_path(rng, k=6, dof=3, scale=1.0):
    path = rng.uniform(-scale, scale, size=(k, dof))
    path[2] = path[1]  # a duplicate waypoint
    return path


def _fd_checks(traj: Trajectory, h: float = FD_H):
    """Finite differences of densely sampled positions stay within the per-axis limits."""
    t = np.arange(0.0, traj.total_time + h, h)
    pos = to_numpy(traj.sample(t).position)
    lim = [traj.max_velocity, traj.max_acceleration, traj.max_jerk]
    scale = max(1.0, float(np.abs(pos).max()))
    for order, limit in enumerate(lim, start=1):
        fd = np.diff(pos, n=order, axis=0) / h**order
        noise = (2**order) * 4 * np.finfo(float).eps * scale / h**order
        excess = np.abs(fd) - limit * (1 + RTOL_LIMIT) - noise
        assert excess.max() <= 0, (order, excess.max())


def test_limits_hold_by_finite_differences(xp, to_xp, rng):
    for trial in range(5):
        path = _random_path(rng, k=5 + trial, dof=2 + trial % 3)
        dof = path.shape[1]
        vmax = rng.uniform(0.5, 2.0, dof)
        amax = rng.uniform(1.0, 5.0, dof)
        jmax = rng.uniform(5.0, 50.0, dof)
        traj = time_parameterize(to_xp(path), vmax, amax, jmax, rate_hz=100)
        assert backend_name(traj.positions) == backend_name(to_xp(path))
        for arr, lim in (
            (traj.velocities, vmax),
            (traj.accelerations, amax),
            (traj.jerks, jmax),
        ):
            assert np.all(np.abs(to_numpy(arr)) <= lim * (1 + RTOL_LIMIT))
        _fd_checks(traj)


def test_analytic_derivatives_integrate_to_positions(rng):
    """Velocity, acceleration and jerk are the derivatives of the positions (trapezoid
    integration on a fine grid, error O(h^2) for smooth parts and O(J h) per jerk switch)."""
    path = _random_path(rng, k=5, dof=3)
    traj = time_parameterize(path, [1.0, 0.7, 1.3], 2.0, [20.0, 15.0, 30.0])
    h = 1e-4
    t = np.arange(0.0, traj.total_time, h)
    s = traj.sample(t)
    pos, vel, acc, jerk = (to_numpy(x) for x in s)

    def cumtrapz(y):
        return np.concatenate([np.zeros((1, y.shape[1])), np.cumsum((y[1:] + y[:-1]) * h / 2, 0)])

    np.testing.assert_allclose(pos, pos[0] + cumtrapz(vel), atol=1e-7)
    np.testing.assert_allclose(vel, cumtrapz(acc), atol=1e-6)
    n_switch = 7 * (len(traj.waypoints) - 1)
    np.testing.assert_allclose(acc, cumtrapz(jerk), atol=n_switch * 30.0 * h)
    # central differences of positions agree with the analytic velocity (error <= J h^2 / 6)
    fd = (pos[2:] - pos[:-2]) / (2 * h)
    np.testing.assert_allclose(fd, vel[1:-1], atol=30.0 * h**2 + 1e-8)


def test_endpoints_exact_and_rest(rng, xp, to_xp):
    path = _random_path(rng, k=7, dof=6, scale=2.5)
    traj = time_parameterize(to_xp(path), 1.0, 3.0, 30.0, rate_hz=50)
    pos = to_numpy(traj.positions)
    assert np.array_equal(pos[0], path[0])
    assert np.array_equal(pos[-1], path[-1])
    times = to_numpy(traj.times)
    assert times[0] == 0.0 and times[-1] == traj.total_time
    for arr in (traj.velocities, traj.accelerations):
        a = to_numpy(arr)
        assert np.all(a[0] == 0.0) and np.all(np.abs(a[-1]) < 1e-12)
    end = traj.sample(traj.total_time + 5.0)
    assert np.array_equal(to_numpy(end.position), path[-1])
    assert np.all(to_numpy(end.velocity) == 0.0)
    start = traj.sample(-1.0)
    assert np.array_equal(to_numpy(start.position), path[0])


def test_waypoints_hit_exactly_at_their_instants(rng, xp, to_xp):
    for _ in range(20):
        path = rng.uniform(-3, 3, size=(int(rng.integers(2, 9)), int(rng.integers(1, 8))))
        traj = time_parameterize(to_xp(path), rng.uniform(0.3, 2), 1.7, 13.0, rate_hz=50)
        got = to_numpy(traj.sample(traj.waypoint_times).position)
        assert np.array_equal(got, path)
        assert np.array_equal(to_numpy(traj.sample(traj.total_time).position), path[-1])
        assert tuple(traj.sample(0.1).position.shape) == (path.shape[1],)
        assert tuple(traj.sample(np.zeros((2, 3))).velocity.shape) == (2, 3, path.shape[1])


def test_stays_on_polyline_and_rests_at_waypoints(rng):
    path = _random_path(rng, k=6, dof=3)
    traj = time_parameterize(path, 1.0, 2.0, 10.0, rate_hz=20)
    wp, wt = traj.waypoints, traj.waypoint_times
    times, pos = traj.times, traj.positions
    # every waypoint is a sample, reached exactly, at rest
    for p, t in zip(wp, wt, strict=True):
        i = int(np.flatnonzero(times == t)[0])
        assert np.array_equal(pos[i], p)
        assert np.all(np.abs(traj.velocities[i]) < 1e-12)
    # every sample lies on the segment active at its time (distance to the segment ~ 0)
    dense_t = np.linspace(0, traj.total_time, 5000)
    dense = traj.sample(dense_t).position
    seg = np.clip(np.searchsorted(wt, dense_t, side="right") - 1, 0, len(wp) - 2)
    a, b = wp[seg], wp[seg + 1]
    ab = b - a
    lam = np.einsum("ij,ij->i", dense - a, ab) / np.einsum("ij,ij->i", ab, ab)
    assert np.all(lam >= -1e-12) and np.all(lam <= 1 + 1e-12)
    off = np.linalg.norm(dense - (a + lam[:, None] * ab), axis=1)
    assert off.max() < 1e-12
    # progress along the path never goes back
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    assert np.all(np.diff(lam + seg) >= -1e-12)
    assert arc[-1] == pytest.approx(traj.total_distance, rel=1e-9)


def test_sample_grid_and_rate(rng):
    path = _random_path(rng, k=4, dof=2)
    traj = time_parameterize(path, 1.0, 2.0, 10.0, rate_hz=25)
    times = traj.times
    assert np.all(np.diff(times) > 0)
    assert np.diff(times).max() <= 1 / 25 + 1e-12
    grid = np.arange(0, traj.total_time, 1 / 25)
    # every grid instant is a sample (or merged into a waypoint instant within 1 ns)
    assert np.abs(times[np.searchsorted(times, grid - 1e-9)] - grid).max() <= 1e-9
    assert len(times) <= len(grid) + len(traj.waypoints) + 1
    np.testing.assert_allclose(traj.positions, traj.sample(times).position, atol=0)


def test_total_distance_is_sum_of_euclidean_segments(rng):
    path = rng.normal(size=(9, 7))
    traj = time_parameterize(path, 1.0, 1.0, 1.0)
    assert traj.total_distance == pytest.approx(
        np.linalg.norm(np.diff(path, axis=0), axis=1).sum(), rel=1e-14
    )
    # and the total time is the sum of the segments' textbook times (stop at each waypoint)
    u = np.diff(path, axis=0)
    lengths = np.linalg.norm(u, axis=1)
    limits = [1.0 / np.abs(u / lengths[:, None]).max(axis=1) for _ in range(3)]
    expected = sum(textbook_time(L, V, A, J) for L, V, A, J in zip(lengths, *limits, strict=True))
    assert traj.total_time == pytest.approx(expected, rel=1e-12)


def test_duplicate_waypoints():
    path = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 2.0]])
    traj = time_parameterize(path, 1.0, 2.0, 10.0)
    ref = time_parameterize(path[[0, 2, 5]], 1.0, 2.0, 10.0)
    assert traj.total_time == ref.total_time
    np.testing.assert_array_equal(traj.positions, ref.positions)
    np.testing.assert_array_equal(traj.waypoints, path[[0, 2, 5]])
    # all duplicates: the robot stays where it is
    still = time_parameterize(np.ones((4, 3)), 1.0, 1.0, 1.0)
    assert still.total_time == 0.0 and still.total_distance == 0.0
    assert still.positions.shape == (1, 3) and np.all(still.positions == 1.0)
    assert np.all(still.sample([0.0, 1.0]).velocity == 0.0)


def test_single_waypoint_and_tiny_segment():
    one = time_parameterize([[0.5, -0.25]], 1.0, 1.0, 1.0)
    assert one.total_time == 0.0 and one.times.tolist() == [0.0]
    assert one.positions.tolist() == [[0.5, -0.25]]
    tiny = time_parameterize([[0.0], [1e-12]], 1.0, 1.0, 1.0)
    assert tiny.total_time == pytest.approx(4 * (1e-12 / 2) ** (1 / 3), rel=1e-12)
    assert tiny.positions[-1, 0] == 1e-12


def test_torch_equals_numpy(rng, xp, to_xp):
    path = _random_path(rng, k=6, dof=4)
    ref = time_parameterize(path, [1, 2, 1, 0.5], 3.0, 25.0, rate_hz=40)
    got = time_parameterize(to_xp(path), [1, 2, 1, 0.5], 3.0, 25.0, rate_hz=40)
    assert got.total_time == pytest.approx(ref.total_time, rel=1e-14)
    for name in ("times", "positions", "velocities", "accelerations", "jerks"):
        np.testing.assert_allclose(
            to_numpy(getattr(got, name)), getattr(ref, name), rtol=1e-12, atol=1e-12
        )


def test_minimum_time_batched_equals_loop(rng, xp, to_xp):
    paths = rng.uniform(-1, 1, size=(20, 5, 3))
    paths[3, 4] = paths[3, 3]  # a padded (repeated) last waypoint
    vmax, amax, jmax = [1.0, 0.5, 2.0], 2.0, [10.0, 20.0, 5.0]
    got = to_numpy(minimum_time(to_xp(paths), vmax, amax, jmax))
    ref = [time_parameterize(p, vmax, amax, jmax).total_time for p in paths]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    # leading batch dimensions broadcast
    got2 = to_numpy(minimum_time(to_xp(paths.reshape(4, 5, 5, 3)), vmax, amax, jmax))
    np.testing.assert_allclose(got2.reshape(-1), ref, rtol=1e-12)
    with pytest.raises(InvalidInput) as e:
        minimum_time(np.full((2, 3, 2), np.nan), 1, 1, 1)
    assert e.value.field == "paths"


def test_many_waypoints(rng):
    path = np.cumsum(rng.normal(scale=0.05, size=(3000, 2)), axis=0)
    traj = time_parameterize(path, 0.5, 1.0, 5.0, rate_hz=50)
    assert np.array_equal(traj.positions[-1], path[-1])
    for arr, lim in ((traj.velocities, 0.5), (traj.accelerations, 1.0), (traj.jerks, 5.0)):
        assert np.abs(arr).max() <= lim * (1 + RTOL_LIMIT)


def test_round_trip_json(rng):
    traj = time_parameterize(_random_path(rng), [1, 2, 3], 2.0, 10.0, rate_hz=30)
    data = json.loads(json.dumps(traj.to_dict()))
    back = Trajectory.from_dict(data)
    assert back.total_time == traj.total_time
    np.testing.assert_array_equal(back.positions, traj.positions)
    with pytest.raises(InvalidInput) as e:
        Trajectory.from_dict({"waypoints": [[0.0]]})
    assert e.value.field == "trajectory"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"path": [[0.0, np.nan], [1.0, 1.0]]}, "path"),
        ({"path": [[0.0, np.inf]]}, "path"),
        ({"path": np.zeros((0, 2))}, "path"),
        ({"path": np.zeros((2, 0))}, "path"),
        ({"path": [0.0, 1.0]}, "path"),
        ({"path": np.zeros((2, 2, 2))}, "path"),
        ({"path": [["a", "b"]]}, "path"),
        ({"max_velocity": 0.0}, "max_velocity"),
        ({"max_velocity": -1.0}, "max_velocity"),
        ({"max_velocity": [1.0, 1.0, 1.0]}, "max_velocity"),
        ({"max_velocity": [1.0, np.nan]}, "max_velocity"),
        ({"max_acceleration": np.inf}, "max_acceleration"),
        ({"max_acceleration": [1.0, -2.0]}, "max_acceleration"),
        ({"max_jerk": np.nan}, "max_jerk"),
        ({"max_jerk": [[1.0, 1.0]]}, "max_jerk"),
        ({"max_jerk": "fast"}, "max_jerk"),
        ({"rate_hz": 0.0}, "rate_hz"),
        ({"rate_hz": np.nan}, "rate_hz"),
        ({"rate_hz": 1e9}, "rate_hz"),  # more than MAX_SAMPLES samples
    ],
)
def test_invalid_input_names_field(kwargs, field):
    args = {
        "path": [[0.0, 0.0], [1.0, 2.0]],
        "max_velocity": 1.0,
        "max_acceleration": 1.0,
        "max_jerk": 1.0,
        "rate_hz": 50.0,
    }
    args.update(kwargs)
    with pytest.raises(InvalidInput) as e:
        time_parameterize(**args)
    assert e.value.field == field


def test_sample_count_guard_is_stated():
    traj = time_parameterize([[0.0], [1.0]], 1.0, 1.0, 1.0, rate_hz=1000)
    assert len(traj.times) < MAX_SAMPLES


def test_limit_usage_is_the_worst_axis_share():
    v = np.array([[1.0, -3.0], [0.5, 0.5]])
    np.testing.assert_allclose(limit_usage(v, [2.0, 4.0]), [0.75, 0.25])
    with pytest.raises(InvalidInput):
        limit_usage(v, [0.0, 1.0])
