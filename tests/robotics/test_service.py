"""RoboticsService: the seeded registry, plans checked independently (dense sampling of every
trajectory segment against the inflated boxes, by a closed-form point-box distance written
here; link spheres for arms), limits honoured, IK goals, validate first and mutate after,
simulated executions driven by an injected clock (RobotStatus events, cancel freezes, progress
monotone), and the registry, plans and executions across a restart."""

from __future__ import annotations

import time

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.robotics import kinematics as K
from prism_kernels.robotics.models import MOBILE, PANDA, UR5E
from prism_kernels.robotics.service import SEED_ROBOTS, RoboticsService
from prism_kernels.service import TIMING_KEY
from prism_kernels.store import Store

CLUTTER = [
    {"position": [2.0, 0.0, 0.0], "size": [1.0, 1.0, 1.0]},
    {"position": [1.0, 2.0, 0.0], "size": [0.8, 0.8, 1.0]},
    {"position": [3.5, 2.5, 0.0], "size": [1.0, 0.6, 1.0]},
    {"position": [0.5, -2.0, 0.0], "size": [1.2, 0.6, 1.0]},
    {"position": [4.0, -1.5, 0.0], "size": [0.6, 1.4, 1.0]},
    {"position": [5.5, 0.8, 0.0], "size": [0.8, 0.8, 1.0]},
]
LIMITS = {"max_velocity": 1.0, "max_acceleration": 2.0, "max_jerk": 10.0, "collision_margin": 0.05}
DOWN = [1.0, 0.0, 0.0, 0.0]  # xyzw: tool z pointing down


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def box_distance(p: np.ndarray, boxes: list[dict]) -> np.ndarray:
    """Distance (m) from points ``p`` (..., 3) to the nearest box (closed form)."""
    out = np.full(p.shape[:-1], np.inf)
    for b in boxes:
        c, h = np.asarray(b["position"], float), np.asarray(b["size"], float) / 2
        out = np.minimum(out, np.linalg.norm(np.maximum(np.abs(p - c) - h, 0.0), axis=-1))
    return out


def dense(points: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` (or closer) along the polyline ``points`` (N, d), ends included."""
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(1, int(np.ceil(np.abs(b - a).max() / step)))
        s = np.linspace(0.0, 1.0, n + 1)[1:, None]
        out.append(a + s * (b - a))
    return np.concatenate(out)


def assert_within_limits(plan: dict) -> None:
    lim = plan["limits"]
    for key, name in (
        ("velocities", "max_velocity"),
        ("accelerations", "max_acceleration"),
        ("jerks", "max_jerk"),
    ):
        x = np.abs(np.asarray(plan[key]))
        assert np.all(x <= np.asarray(lim[name]) * (1 + 1e-6) + 1e-9), key
    # the velocities are the positions' rate of change (finite differences, 50 Hz)
    t = np.asarray(plan["times"])
    q = np.asarray(plan["positions"])
    fd = np.diff(q, axis=0) / np.diff(t)[:, None]
    assert np.all(np.abs(fd) <= np.asarray(lim["max_velocity"]) * (1 + 1e-6) + 1e-9)


@pytest.fixture
def svc():
    s = RoboticsService(timers=False, clock=Clock())
    yield s
    s.close()


def test_registry_is_seeded_with_one_robot_per_model(svc):
    robots = {r["id"]: r for r in svc.robots_list()}
    assert set(robots) == {rid for rid, _, _ in SEED_ROBOTS}
    assert robots["mobile-1"]["kind"] == "mobile" and robots["mobile-1"]["dof"] == MOBILE.dof
    panda = robots["panda-1"]
    assert panda["model"] == "panda" and panda["dof"] == 7
    q = np.asarray(panda["current_state"]["joint_angles"])
    np.testing.assert_allclose(q, PANDA.home)
    T = np.asarray(K.fk(PANDA, q))
    np.testing.assert_allclose(panda["current_state"]["position"], T[:3, 3], atol=1e-12)
    R = np.asarray(
        K.pose_from_position_quaternion(T[:3, 3], np.asarray(panda["current_state"]["orientation"]))
    )
    np.testing.assert_allclose(R[:3, :3], T[:3, :3], atol=1e-9)
    assert robots["ur5e-1"]["dof"] == UR5E.dof and robots["ur5e-1"]["task_status"] == "idle"
    with pytest.raises(NotFound):
        svc.robot("robot-404")
    h = svc.health()
    assert h["robots"] == 3 and h["stored"]["robot"] == 3 and h["robots_executing"] == 0


def test_mobile_plan_through_clutter_is_free_and_within_limits(svc):
    start, goal = [-1.0, 0.0, 0.0], [6.5, 0.5, 0.0]
    plan = svc.plan(
        "mobile-1",
        goal_state={"position": goal},
        start_state={"position": start},
        obstacles=CLUTTER,
        constraints=LIMITS,
        seed=3,
    )
    q = np.asarray(plan["positions"])
    np.testing.assert_allclose(q[0], start[: MOBILE.dof], atol=1e-12)
    np.testing.assert_allclose(q[-1], goal[: MOBILE.dof], atol=1e-12)
    assert plan["is_collision_free"] is True and plan[TIMING_KEY] > 0
    # the straight line crosses the first crate: the plan went round it
    assert plan["total_distance"] > 7.5 + 1e-6
    pts = dense(np.pad(q, ((0, 0), (0, 3 - q.shape[1]))), 0.005)
    clearance = box_distance(pts, CLUTTER) - MOBILE.radius - LIMITS["collision_margin"]
    assert clearance.min() >= -1e-9, clearance.min()
    assert_within_limits(plan)
    traj = plan["trajectory"]
    assert traj[0]["time"] == 0.0 and traj[-1]["time"] == pytest.approx(plan["total_time"])
    assert traj[-1]["state"]["position"] == pytest.approx(goal)
    assert svc.robot("mobile-1")["last_plan_id"] == plan["plan_id"]


@pytest.mark.parametrize(
    "start,goal,field,reason",
    [
        ([-1.0, 0.0, 0.0], [2.0, 0.0, 0.0], "goal_state", "goal in collision"),
        ([2.0, 0.1, 0.0], [6.5, 0.5, 0.0], "start_state", "start in collision"),
    ],
)
def test_no_path_is_refused_with_the_reason_and_changes_nothing(svc, start, goal, field, reason):
    before = svc.robot("mobile-1")
    with pytest.raises(InvalidInput) as e:
        svc.plan(
            "mobile-1",
            goal_state={"position": goal},
            start_state={"position": start},
            obstacles=CLUTTER,
            constraints=LIMITS,
        )
    assert e.value.field == field and e.value.details["reason"] == reason
    assert type(e.value).__name__ in ("Unsolvable", "InvalidInput")
    assert svc.robot("mobile-1")["last_plan_id"] == before["last_plan_id"]
    assert svc.health()["stored"]["plan"] == 0


def test_bad_input_names_the_field(svc):
    with pytest.raises(InvalidInput) as e:
        svc.plan("panda-1", goal_state={"joint_angles": [0.0] * 6})
    assert e.value.field == "goal_state.joint_angles"
    q = list(PANDA.home)
    q[3] = 0.5  # joint 4 of the Panda lies in [-3.0718, -0.0698]
    with pytest.raises(InvalidInput) as e:
        svc.plan("panda-1", goal_state={"joint_angles": q})
    assert e.value.field == "goal_state.joint_angles.3" and "limits" in e.value.message
    with pytest.raises(InvalidInput) as e:
        svc.plan("mobile-1", goal_state={"position": [1, 0, 0]}, planner="astar")
    assert e.value.field == "planner"
    with pytest.raises(InvalidInput) as e:
        svc.plan(
            "mobile-1",
            goal_state={"position": [1, 0, 0]},
            obstacles=[{"position": [5, 5, 0], "size": [-1, 1, 1]}],
        )
    assert e.value.field.startswith("obstacles.0.size")
    with pytest.raises(NotFound):
        svc.plan("robot-404", goal_state={"position": [1, 0, 0]})
    with pytest.raises(InvalidInput) as e:
        svc.ik([{"position": [0.4, 0, 0.4]}], robot_id="mobile-1")
    assert e.value.field == "robot_id"


def test_panda_pose_goal_by_ik_reaches_the_pose_clear_of_a_post(svc):
    post = [{"position": [0.55, 0.2, 0.2], "size": [0.06, 0.06, 0.4]}]
    target = [0.4, 0.3, 0.3]
    plan = svc.plan(
        "panda-1",
        goal_state={"position": target, "orientation": DOWN},
        obstacles=post,
        constraints={"collision_margin": 0.02},
        seed=1,
    )
    q = np.asarray(plan["positions"])
    lim = PANDA.joint_limits
    assert np.all(q >= lim[:, 0] - 1e-9) and np.all(q <= lim[:, 1] + 1e-9)
    T = np.asarray(K.fk(PANDA, q[-1]))
    assert np.linalg.norm(T[:3, 3] - target) < 1e-4
    goal_T = np.asarray(K.pose_from_position_quaternion(np.asarray(target), np.asarray(DOWN)))
    cos = (np.trace(goal_T[:3, :3].T @ T[:3, :3]) - 1) / 2
    assert np.arccos(np.clip(cos, -1, 1)) < 1e-3
    assert plan["ik"]["collision_free_solutions"] >= 1
    assert plan["planner"] == "rrt_connect"  # the straight joint-space path hits the post
    assert plan["trajectory"][-1]["state"]["position"] == pytest.approx(T[:3, 3].tolist())
    # independent check: link spheres at joint steps of 0.005 rad against the post
    qs = dense(q, 0.005)
    centres, radii = K.link_spheres(PANDA, qs)
    d = box_distance(np.asarray(centres), post) - np.asarray(radii) - 0.02
    assert d.min() >= -1e-3, d.min()  # the planner's sweep tolerance is 1 mm
    # the model's own limits cap the (absent) request limits
    np.testing.assert_allclose(plan["limits"]["max_velocity"], PANDA.max_velocity)
    assert_within_limits(plan)


def test_ik_many_targets_from_forward_kinematics(svc):
    rng = np.random.default_rng(7)
    lim = UR5E.joint_limits
    q = rng.uniform(lim[:, 0] * 0.8, lim[:, 1] * 0.8, size=(6, UR5E.dof))
    T = np.asarray(K.fk(UR5E, q))
    quat = np.asarray(K.quaternion_from_rotation(T))
    targets = [
        {"position": T[i, :3, 3].tolist(), "orientation": quat[i].tolist()} for i in range(6)
    ]
    out = svc.ik(targets, model="ur5e", n_seeds=32, seed=0)
    assert out["success_rate"] == 1.0 and len(out["results"]) == 6
    for i, r in enumerate(out["results"]):
        got = np.asarray(K.fk(UR5E, np.asarray(r["joint_angles"])))
        assert np.linalg.norm(got[:3, 3] - T[i, :3, 3]) < 1e-4
        assert r["position_error"] < 1e-4 and r["orientation_error"] < 1e-3
        assert len(r["solutions"]) >= 1
    # a pose out of reach (3 m away) fails honestly
    far = svc.ik([{"position": [3.0, 0.0, 0.0]}], robot_id="panda-1", n_seeds=8)
    assert far["results"][0]["success"] is False and far["results"][0]["position_error"] > 1.0


def test_execution_follows_the_clock_with_events_and_cancel():
    clock = Clock()
    svc = RoboticsService(timers=False, clock=clock)
    events = []
    svc.bus.subscribe(events.append)
    plan = svc.plan(
        "mobile-1",
        goal_state={"position": [3.0, 0.0, 0.0]},
        start_state={"position": [0.0, 0.0, 0.0]},
        constraints=LIMITS,
    )
    ex = svc.execute("mobile-1", plan["plan_id"], time_scale=2.0)
    assert ex["status"] == "executing" and ex["progress"] == 0.0
    assert ex["estimated_completion"] == pytest.approx(clock.t + plan["total_time"] / 2)
    assert [e.data["status"] for e in events] == ["executing"]
    progress = []
    for _ in range(5):
        clock.t += plan["total_time"] / 2 / 8
        r = svc.robot("mobile-1")
        progress.append(r["progress"])
        assert r["task_status"] == "executing"
    assert np.all(np.diff(progress) > 0) and 0 < progress[-1] < 1
    x = r["current_state"]["position"][0]
    assert 0 < x < 3.0
    clock.t += plan["total_time"]  # past the end
    r = svc.robot("mobile-1")
    assert r["task_status"] == "completed" and r["progress"] == 1.0
    assert r["current_state"]["position"] == pytest.approx([3.0, 0.0, 0.0])
    assert [e.data["status"] for e in events] == ["executing", "completed"]
    assert svc.execution(ex["execution_id"])["status"] == "completed"
    # a second run, cancelled halfway, freezes where it was
    back = svc.plan("mobile-1", goal_state={"position": [0.0, 0.0, 0.0]}, constraints=LIMITS)
    ex2 = svc.execute("mobile-1", back["plan_id"], time_scale=1.0)
    clock.t += back["total_time"] / 2
    c = svc.cancel("mobile-1")
    assert c["cancelled"] is True
    c = c["execution"]
    assert c["status"] == "cancelled" and 0 < c["progress"] < 1
    frozen = c["current_state"]["position"]
    clock.t += 100.0
    r = svc.robot("mobile-1")
    assert r["task_status"] == "cancelled" and r["current_state"]["position"] == frozen
    assert [e.data["status"] for e in events][-2:] == ["executing", "cancelled"]
    assert events[-1].data["execution_id"] == ex2["execution_id"]
    assert svc.cancel("mobile-1")["cancelled"] is False  # nothing running: answered as it is
    with pytest.raises(InvalidInput) as e:
        svc.execute("panda-1", back["plan_id"])
    assert e.value.field == "robot_id"
    with pytest.raises(NotFound):
        svc.execute("mobile-1", "plan-404")
    svc.close()


def test_completion_timer_records_the_end_without_a_read():
    svc = RoboticsService()
    events = []
    svc.bus.subscribe(events.append)
    plan = svc.plan("mobile-1", goal_state={"position": [0.3, 0.0, 0.0]}, constraints=LIMITS)
    svc.execute("mobile-1", plan["plan_id"], time_scale=20.0)
    deadline = time.time() + 10
    while time.time() < deadline and len(events) < 2:
        time.sleep(0.02)
    assert [e.data["status"] for e in events] == ["executing", "completed"]
    svc.close()


def test_registry_plans_and_executions_survive_a_restart(tmp_path):
    path = tmp_path / "prism.sqlite"
    clock = Clock()
    store = Store(path)
    svc = RoboticsService(store=store, timers=False, clock=clock)
    svc.register("panda-2", "panda", name="Second Panda")
    plan = svc.plan("mobile-1", goal_state={"position": [2.0, 1.0, 0.0]}, constraints=LIMITS)
    ex = svc.execute("mobile-1", plan["plan_id"])
    clock.t += plan["total_time"] / 4
    quarter = svc.robot("mobile-1")["progress"]
    svc.close()
    store.close()
    store = Store(path)
    again = RoboticsService(store=store, timers=False, clock=clock)
    ids = {r["id"] for r in again.robots_list()}
    assert ids == {"mobile-1", "panda-1", "ur5e-1", "panda-2"}
    r = again.robot("mobile-1")
    assert r["task_status"] == "executing" and r["progress"] == pytest.approx(quarter)
    assert r["last_plan_id"] == plan["plan_id"] and r["execution_id"] == ex["execution_id"]
    clock.t += plan["total_time"]
    r = again.robot("mobile-1")
    assert r["task_status"] == "completed"
    assert r["current_state"]["position"] == pytest.approx([2.0, 1.0, 0.0])
    assert again.get_plan(plan["plan_id"])["positions"].shape[1] == MOBILE.dof
    assert again.register("panda-2", "Panda")["name"] == "Second Panda"  # again: unchanged
    with pytest.raises(InvalidInput) as e:
        again.register("panda-2", "ur5e")
    assert e.value.field == "model"
    with pytest.raises(InvalidInput) as e:
        again.register("arm-9", "kuka")
    assert e.value.field == "model"
    again.close()
    store.close()
