"""Batched inverse kinematics: targets made by forward kinematics of random in-limit
configurations (so a solution exists), checked with the Robotics Toolbox's forward kinematics;
the compiled path against the array-API path; unreachable targets and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics import ik
from prism_kernels.robotics import kinematics as K
from prism_kernels.robotics.models import MOBILE, PANDA, UR5E

rtb = pytest.importorskip("roboticstoolbox")
SE3 = pytest.importorskip("spatialmath").SE3

TOL_P, TOL_O = 1e-4, 1e-3


def _targets(model, n, seed):
    rng = np.random.default_rng(seed)
    lim = model.joint_limits
    q = rng.uniform(lim[:, 0], lim[:, 1], (n, model.dof))
    return q, np.asarray(K.fk(model, q))


def _rtb_errors(model, q, targets):
    """Position and orientation errors of q computed with the toolbox's FK (independent)."""
    if model is PANDA:
        ref = rtb.models.DH.Panda()
        ref.tool = SE3(PANDA.tool)
    else:
        ref = rtb.DHRobot([rtb.RevoluteDH(a=a, alpha=al, d=d) for a, al, d, _ in UR5E.dh])
    T = np.stack([ref.fkine(x).A for x in np.atleast_2d(q)])
    pe = np.linalg.norm(T[:, :3, 3] - targets[:, :3, 3], axis=1)
    Re = targets[:, :3, :3] @ np.swapaxes(T[:, :3, :3], 1, 2)
    oe = np.linalg.norm(Rotation.from_matrix(Re).as_rotvec(), axis=1)
    return pe, oe


def _within_limits(model, q):
    lim = model.joint_limits
    return np.all((q >= lim[:, 0]) & (q <= lim[:, 1]), axis=-1)


@pytest.mark.parametrize("model", [PANDA, UR5E], ids=["panda", "ur5e"])
def test_reaches_targets_with_distinct_solutions(model):
    q_true, targets = _targets(model, 30, seed=3)
    res = ik.solve_ik(model, targets, n_seeds=16, seed=1)
    assert res.success.all()
    q = np.asarray(res.q)
    assert _within_limits(model, q).all()
    pe, oe = _rtb_errors(model, q, targets)
    assert pe.max() < TOL_P and oe.max() < TOL_O
    np.testing.assert_allclose(np.asarray(res.position_error), pe, atol=1e-12)
    counts = [len(s) for s in res.solutions]
    assert min(counts) >= 1 and max(counts) > 1  # redundant / multi-solution arms
    for t, sols in enumerate(res.solutions):
        sols = np.asarray(sols)
        assert _within_limits(model, sols).all()
        spe, soe = _rtb_errors(model, sols, np.repeat(targets[t : t + 1], len(sols), axis=0))
        assert spe.max() < TOL_P and soe.max() < TOL_O
        if len(sols) > 1:  # distinct: some joint differs by more than distinct_tol
            d = np.abs(sols[:, None] - sols[None]).max(-1) + np.eye(len(sols)) * 1e9
            assert d.min() > 1e-2


def test_array_path_runs_on_backends(xp, to_xp):
    _, targets = _targets(PANDA, 10, seed=5)
    res = ik.solve_ik(PANDA, to_xp(targets), n_seeds=8, engine="array")
    assert res.success.all()
    assert type(res.q) is type(to_xp(targets))
    q = to_numpy(res.q)
    pe, oe = _rtb_errors(PANDA, q, targets)
    assert pe.max() < TOL_P and oe.max() < TOL_O and _within_limits(PANDA, q).all()
    # one solution per target, in rounds, with a hint
    one = ik.solve_ik(
        PANDA, to_xp(targets), n_seeds=8, all_solutions=False, q_hint=to_xp(PANDA.home)
    )
    assert one.success.all() and all(len(s) == 1 for s in one.solutions)
    pe, oe = _rtb_errors(PANDA, to_numpy(one.q), targets)
    assert pe.max() < TOL_P and oe.max() < TOL_O


@pytest.mark.parametrize("all_solutions", [True, False])
def test_compiled_path_equals_array_path(all_solutions):
    _, targets = _targets(PANDA, 40, seed=11)
    kw = dict(n_seeds=6, seed=4, all_solutions=all_solutions)
    a = ik.solve_ik(PANDA, targets, engine="array", **kw)
    b = ik.solve_ik(PANDA, targets, engine="numba", **kw)
    np.testing.assert_array_equal(a.success, b.success)
    both = a.success & b.success
    np.testing.assert_allclose(np.asarray(a.q)[both], np.asarray(b.q)[both], atol=1e-6)
    assert [len(s) for s in a.solutions] == [len(s) for s in b.solutions]
    assert a.problems == b.problems


def test_nearest_seeds_compiled_equals_numpy():
    _, targets = _targets(UR5E, 200, seed=2)
    a = ik.nearest_seeds(UR5E, targets, 4, chunk=64)
    b = ik.nearest_seeds(UR5E, targets, 4, engine="numba")
    np.testing.assert_array_equal(a, b)
    # the nearest table entry is nearer (in the seed metric) than the fourth
    qt, feat = ik.seed_table(UR5E)
    f = ik._features(np.asarray(K.fk(UR5E, a[:, 0])))
    g = ik._features(np.asarray(K.fk(UR5E, a[:, 3])))
    ft = ik._features(targets)
    assert np.all(np.sum((f - ft) ** 2, 1) <= np.sum((g - ft) ** 2, 1) + 1e-12)


def test_one_solution_mode_solves_every_reachable_target():
    _, targets = _targets(PANDA, 300, seed=21)
    res = ik.solve_ik(PANDA, targets, n_seeds=50, all_solutions=False)
    assert res.success.all()
    assert all(len(s) == 1 for s in res.solutions)
    assert res.problems < 3 * 300  # restarts only for the targets still unsolved
    pe, oe = _rtb_errors(PANDA, np.asarray(res.q), targets)
    assert pe.max() < TOL_P and oe.max() < TOL_O


def test_targets_with_joints_on_their_limits():
    rng = np.random.default_rng(8)
    lim = PANDA.joint_limits
    q = rng.uniform(lim[:, 0], lim[:, 1], (20, 7))
    j = rng.integers(0, 7, 20)
    q[np.arange(20), j] = lim[j, rng.integers(0, 2, 20)]
    targets = np.asarray(K.fk(PANDA, q))
    res = ik.solve_ik(PANDA, targets, n_seeds=32, all_solutions=False)
    assert res.success.all() and _within_limits(PANDA, np.asarray(res.q)).all()


def test_unreachable_targets_fail_with_their_error():
    _, targets = _targets(PANDA, 3, seed=1)
    far = targets.copy()
    far[:, :3, 3] = [[2.0, 0.0, 0.5], [0.0, -3.0, 0.2], [0.0, 0.0, 2.5]]  # reach is ~0.95 m
    res = ik.solve_ik(PANDA, np.concatenate([targets, far]), n_seeds=8)
    np.testing.assert_array_equal(res.success, [True] * 3 + [False] * 3)
    pe = np.asarray(res.position_error)
    assert np.all(pe[3:] > 0.9) and np.all(np.isfinite(pe))
    assert all(len(s) == 0 for s in res.solutions[3:])
    assert _within_limits(PANDA, np.asarray(res.q)).all()


def test_q_hint_is_the_first_seed():
    q, targets = _targets(UR5E, 4, seed=9)
    res = ik.solve_ik(UR5E, targets, n_seeds=4, q_hint=q, all_solutions=False)
    assert res.success.all() and res.problems == 4 and res.iterations == 0
    np.testing.assert_allclose(np.asarray(res.q), q, atol=1e-12)
    one = ik.solve_ik(UR5E, targets[0], n_seeds=2, q_hint=q[0])  # a single (4, 4) target
    assert one.success.shape == (1,) and one.success[0]


def test_pose_goal_from_position_and_quaternion():
    q, T = _targets(PANDA, 5, seed=12)
    quat = Rotation.from_matrix(T[:, :3, :3]).as_quat()  # (x, y, z, w)
    goal = np.asarray(K.pose_from_position_quaternion(T[:, :3, 3], -quat))  # -q: same pose
    res = ik.solve_ik(PANDA, goal, n_seeds=16, all_solutions=False)
    assert res.success.all()
    pe, oe = _rtb_errors(PANDA, np.asarray(res.q), T)
    assert pe.max() < TOL_P and oe.max() < TOL_O


def test_invalid_input():
    _, T = _targets(PANDA, 2, seed=0)
    cases = [
        (dict(model=MOBILE, targets=T), "model"),
        (dict(targets=np.zeros((2, 3, 4))), "targets"),
        (dict(targets=np.zeros((0, 4, 4))), "targets"),
        (dict(targets=np.where(np.eye(4, dtype=bool), np.nan, T)), "targets"),
        (dict(targets=T * 2.0), "targets"),  # not a rotation
        (dict(targets=[["x"]]), "targets"),
        (dict(targets=T, q_hint=np.zeros(6)), "q_hint"),
        (dict(targets=T, q_hint=np.full(7, np.nan)), "q_hint"),
        (dict(targets=T, q_hint=np.zeros(7)), "q_hint"),  # joint 4 above its -0.07 limit
        (dict(targets=T, q_hint=np.tile(PANDA.home, (3, 1))), "q_hint"),
        (dict(targets=T, n_seeds=0), "n_seeds"),
        (dict(targets=T, max_iters=1.5), "max_iters"),
        (dict(targets=T, tol_position=-1.0), "tol_position"),
        (dict(targets=T, tol_orientation=float("nan")), "tol_orientation"),
        (dict(targets=T, engine="gpu"), "engine"),
        (dict(targets=np.tile(T[:1], (4000, 1, 1)), n_seeds=1024), "n_seeds"),  # too many
    ]
    for kw, field in cases:
        model = kw.pop("model", PANDA)
        with pytest.raises(InvalidInput) as e:
            ik.solve_ik(model, **kw)
        assert e.value.field == field, (kw, e.value)
