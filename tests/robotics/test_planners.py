"""Planners: every returned path is checked here by dense sampling against the inflated
obstacles (closed-form point/box distances written in this file, link spheres for arms),
starts at the start, ends at the goal, and is reproducible from its seed."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.backend import namespace
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.collision import Scene
from prism_kernels.robotics.kinematics import link_spheres
from prism_kernels.robotics.models import MOBILE, PANDA
from prism_kernels.robotics.planners import plan


def _clearance(scene: Scene, p: np.ndarray) -> np.ndarray:
    """Distance from points (N, 3) to the nearest obstacle surface (negative inside spheres)."""
    best = np.full(p.shape[0], np.inf)
    for c, s in zip(scene.box_centres, scene.box_sizes, strict=True):
        e = np.maximum(np.abs(p - c) - s / 2, 0.0)
        best = np.minimum(best, np.sqrt((e**2).sum(1)))
    for c, r in zip(scene.sphere_centres, scene.sphere_radii, strict=True):
        best = np.minimum(best, np.linalg.norm(p - c, axis=1) - r)
    return best


def _dense(path: np.ndarray, step: float) -> np.ndarray:
    out = [path[:1]]
    for a, b in zip(path[:-1], path[1:], strict=True):
        n = max(1, int(np.ceil(np.abs(b - a).max() / step)))
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + t * (b - a))
    return np.vstack(out)


def _assert_valid(model, scene, res, start, goal, margin):
    assert res.success, res.reason
    path = res.path
    assert np.array_equal(path[0], start) and np.array_equal(path[-1], goal)
    lo, hi = model.joint_limits.T
    assert np.all(path >= lo - 1e-12) and np.all(path <= hi + 1e-12)
    if model.kind == "mobile":
        q = _dense(path, 0.002)
        assert _clearance(scene, q).min() > model.radius + margin
    else:
        q = _dense(path, 0.002)
        cen, rad = link_spheres(model, q)
        cl = _clearance(scene, cen.reshape(-1, 3)).reshape(cen.shape[:2])
        # the planner sweeps each sphere along chords between samples 0.05 rad apart; the
        # true motion leaves a chord by at most about L * 0.05**2 / 8 (0.4 mm at L = 1.2 m)
        assert np.all(cl > rad + margin - 4e-4)
        skip = {tuple(p) for p in model.skip_pairs}
        for i in range(rad.size):
            for j in range(i + 1, rad.size):
                li, lj = sorted((int(model.sphere_link[i]), int(model.sphere_link[j])))
                if li != lj and (li, lj) not in skip:
                    d = np.linalg.norm(cen[:, i] - cen[:, j], axis=1)
                    assert np.all(d >= rad[i] + rad[j])
    assert res.stats["path_length"] == pytest.approx(
        np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    )


def _clutter(seed: int, n: int = 40) -> Scene:
    rng = np.random.default_rng(seed)
    return Scene(rng.uniform(-8, 8, (n, 3)), rng.uniform(0.5, 3.0, (n, 3)),
                 rng.uniform(-8, 8, (10, 3)), rng.uniform(0.3, 1.5, 10))  # fmt: skip


def _free_pair(scene, seed):
    rng = np.random.default_rng(seed)
    while True:
        s, g = rng.uniform(-9.5, 9.5, (2, 3))
        if np.linalg.norm(s - g) > 12 and _clearance(scene, np.stack([s, g])).min() > 0.4:
            return s, g


@pytest.mark.parametrize("planner", ["rrt_connect", "prm"])
def test_mobile_cluttered(planner):
    margin = 0.05
    for seed in range(3):
        sc = _clutter(seed)
        s, g = _free_pair(sc, seed)
        res = plan(MOBILE, sc, s, g, planner=planner, margin=margin, seed=seed, time_budget_s=20)
        _assert_valid(MOBILE, sc, res, s, g, margin)
        assert res.stats["collision_checks"] > 0 and res.stats["time_ms"] > 0


def test_mobile_wall_forces_detour():
    sc = Scene([[0, 0, 0]], [[0.4, 14, 20]])  # a wall, open at |y| > 7
    s, g = np.array([-3.0, 0, 0]), np.array([3.0, 0, 0])
    for planner in ("rrt_connect", "prm"):
        res = plan(MOBILE, sc, s, g, planner=planner, seed=1)
        _assert_valid(MOBILE, sc, res, s, g, 0.0)
        assert res.planner == planner
        # around the wall's end: at least 2 * hypot(3, 7.25)
        assert res.stats["path_length"] >= 2 * np.hypot(3 - 0.45, 7.25) - 1e-6


def test_straight_path_when_free():
    sc = Scene([[0, 5, 0]], [[1, 1, 1]])
    res = plan(MOBILE, sc, [-3, 0, 0], [3, 0, 0])
    assert res.success and res.planner == "straight" and res.path.shape == (2, 3)


@pytest.mark.parametrize("planner", ["rrt_connect", "prm"])
def test_same_seed_same_path(planner):
    sc = _clutter(7)
    s, g = _free_pair(sc, 7)
    a = plan(MOBILE, sc, s, g, planner=planner, seed=3, time_budget_s=20)
    b = plan(MOBILE, sc, s, g, planner=planner, seed=3, time_budget_s=20)
    assert a.success and np.array_equal(a.path, b.path)


def test_torch_checks_same_path():
    sc = _clutter(4)
    s, g = _free_pair(sc, 4)
    a = plan(MOBILE, sc, s, g, seed=2, time_budget_s=20)
    b = plan(MOBILE, sc, s, g, seed=2, time_budget_s=20, xp=namespace("torch"))
    assert a.success and np.array_equal(a.path, b.path)


def test_failures_with_reasons():
    sc = Scene([[0, 0, 0]], [[1, 1, 1]])
    r = plan(MOBILE, sc, [0, 0, 0.2], [5, 5, 5])
    assert not r.success and r.reason == "start in collision" and r.path.shape == (0, 3)
    r = plan(MOBILE, sc, [5, 5, 5], [0.7, 0, 0], margin=0.0)
    assert not r.success and r.reason == "goal in collision"
    # free at margin 0, in collision at margin 0.1 (0.2 from the face, radius 0.25)
    assert plan(MOBILE, sc, [5, 5, 5], [0.5 + 0.3, 0, 0]).success
    r = plan(MOBILE, sc, [5, 5, 5], [0.5 + 0.3, 0, 0], margin=0.1)
    assert r.reason == "goal in collision"


def _walled(goal: np.ndarray, inner: float = 1.0, t: float = 0.2) -> Scene:
    """Six slabs forming a closed hollow cube around ``goal``."""
    c, s = [], []
    for ax in range(3):
        for sign in (-1, 1):
            off = np.zeros(3)
            off[ax] = sign * (inner + t / 2)
            size = np.full(3, 2 * inner + 2 * t)
            size[ax] = t
            c.append(goal + off)
            s.append(size)
    return Scene(np.array(c), np.array(s))


@pytest.mark.parametrize("planner", ["rrt_connect", "prm"])
def test_walled_goal_fails_with_reason(planner):
    g = np.array([4.0, 4.0, 4.0])
    sc = _walled(g)
    r = plan(MOBILE, sc, [-5, -5, -5], g, planner=planner, time_budget_s=1.0)
    assert not r.success and r.reason == "time budget spent" and r.path.shape == (0, 3)
    r = plan(MOBILE, sc, [-5, -5, -5], g, planner=planner, max_iterations=30, time_budget_s=60)
    assert not r.success and r.reason == "iteration limit reached"


def test_bad_input():
    sc = Scene()
    for kw, field in (
        ({"start": [0, 0, 11], "goal": [0, 0, 0]}, "start.2"),
        ({"start": [0, 0, 0], "goal": [0, 0]}, "goal"),
        ({"start": [0, 0, np.nan], "goal": [0, 0, 0]}, "start"),
        ({"start": [0, 0, 0], "goal": [1, 1, 1], "planner": "astar"}, "planner"),
        ({"start": [0, 0, 0], "goal": [1, 1, 1], "time_budget_s": -1}, "time_budget_s"),
        ({"start": [0, 0, 0], "goal": [1, 1, 1], "margin": -0.1}, "margin"),
    ):
        with pytest.raises(InvalidInput) as e:
            plan(MOBILE, sc, **kw)
        assert e.value.field == field


def _arm_scene() -> Scene:
    # a table in front of the arm, a post and a shelf board above the table
    return Scene([[0.55, 0.0, 0.1], [0.5, 0.0, 0.45], [0.5, 0.0, 0.75]],
                 [[0.5, 1.2, 0.04], [0.06, 0.06, 0.6], [0.4, 0.6, 0.03]])  # fmt: skip


@pytest.mark.parametrize("planner", ["rrt_connect", "prm"])
def test_panda_around_post(planner):
    sc = _arm_scene()
    s = np.array([0.9, 0.3, 0.0, -2.0, 0.0, 2.2, 0.785])
    g = np.array([-0.9, 0.3, 0.0, -2.0, 0.0, 2.2, 0.785])
    margin = 0.01
    res = plan(PANDA, sc, s, g, planner=planner, margin=margin, seed=0, time_budget_s=60,
               resolution=0.05)  # fmt: skip
    _assert_valid(PANDA, sc, res, s, g, margin)
    assert res.planner == planner  # the straight sweep hits the post


def test_planar_mobile_robot():
    """A 2-D robot plans in the scene projected on the x-y plane."""
    from prism_kernels.robotics.models import mobile_model

    model = mobile_model(bounds=[[-5, 5], [-5, 5]], radius=0.3)
    sc = Scene([[0, -1, 0], [2, 2, 5]], [[0.5, 8, 1], [1, 1, 1]])
    # projected, both boxes are rectangles (z ignored)
    s, g = np.array([-2.0, 0.0]), np.array([2.0, -1.0])
    for planner in ("rrt_connect", "prm"):
        res = plan(model, sc, s, g, planner=planner, seed=0)
        assert res.success and res.planner == planner
        q = _dense(res.path, 0.002)
        best = np.full(q.shape[0], np.inf)
        for c, size in zip(sc.box_centres, sc.box_sizes, strict=True):
            e = np.maximum(np.abs(q - c[:2]) - size[:2] / 2, 0.0)
            best = np.minimum(best, np.sqrt((e**2).sum(1)))
        assert best.min() > 0.3
        assert np.array_equal(res.path[0], s) and np.array_equal(res.path[-1], g)
