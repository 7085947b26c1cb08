"""``/api/v1/robotics``: every route through the real session server. Plans are checked
independently (dense sampling of every trajectory segment against the inflated boxes by the
closed-form point-box distance of ``test_service``; link spheres for the Panda), start at the
start, end at the goal and keep the limits; bad input (a goal inside an obstacle, joint angles
outside the limits or of the wrong length, negative sizes or limits, an unknown robot) is
answered with a JSON 400/404/422 naming the field; executions run on the simulated controller
with RobotStatus on the WebSocket; the registry survives a restart."""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import pytest
from websockets.sync.client import connect

from prism_kernels.robotics import kinematics as K
from prism_kernels.robotics.models import MOBILE, PANDA
from tests.apiutil import assert_error
from tests.apiutil import ok as _ok
from tests.robotics.test_service import CLUTTER, DOWN, LIMITS, box_distance, dense
from tests.serverutil import KEYS, PrismServer
from widgets.server.routes.robotics import EXAMPLE_PLAN, ROUTES

API = "/api/v1/robotics"
UNSOLVABLE = 422  # a well-formed problem with no solution (prism_kernels.errors.Unsolvable)


def _error(r, status: int, field: str | None = None) -> dict:
    return assert_error(r, status, field, named_in_message=False)


def _mobile(start, goal, obstacles=CLUTTER, **kw) -> dict:
    return {
        "robot_id": "mobile-1",
        "start_state": {
            "position": start,
            "orientation": [0, 0, 0, 1],
            "joint_angles": [],
            "velocity": [0, 0, 0],
        },
        "goal_state": {
            "position": goal,
            "orientation": [0, 0, 0, 1],
            "joint_angles": [],
            "velocity": [0, 0, 0],
        },
        "obstacles": [
            {"id": f"crate-{i}", **o, "obstacle_type": "static"} for i, o in enumerate(obstacles)
        ],
        "constraints": dict(LIMITS),
        **kw,
    }


def test_every_example_answers_200(api):
    """The request examples in the OpenAPI document work as written (twice: the server keeps
    state between them)."""
    posts = [r for r in ROUTES.routes if r.method == "POST"]
    assert {r.path.removeprefix(API) for r in posts} == {
        "/plan",
        "/ik",
        "/execute",
        "/cancel",
        "/robots",
    }
    for _ in range(2):
        for route in posts:
            assert _ok(api.post(route.path, json=route.example)), route.path
    doc = api.get("/api/v1/openapi.json").json()
    body = doc["paths"][f"{API}/plan"]["post"]["requestBody"]["content"]["application/json"]
    assert body["example"]["obstacles"][0]["size"] == [1.0, 1.0, 1.0]
    text = json.dumps(doc["components"]["schemas"])
    assert "full extents" in text and "[x, y, z, w]" in text


def test_plan_original_payload_through_clutter(api):
    start, goal = [-1.0, 0.0, 0.0], [6.5, 0.5, 0.0]
    d = _ok(api.post(f"{API}/plan", json=_mobile(start, goal)))
    traj = d["trajectory"]
    assert traj[0]["state"]["position"] == pytest.approx(start, abs=1e-12)
    assert traj[-1]["state"]["position"] == pytest.approx(goal, abs=1e-12)
    assert traj[-1]["time"] == pytest.approx(d["total_time"]) and traj[0]["time"] == 0.0
    assert d["is_collision_free"] is True and d["planning_time_ms"] > 0
    assert d["planner"] in ("rrt_connect", "straight") and d["statistics"]["collision_checks"] > 0
    assert d["total_distance"] > np.linalg.norm(np.subtract(goal, start))  # went round a crate
    pos = np.asarray([w["state"]["position"] for w in traj])
    clearance = (
        box_distance(dense(pos, 0.005), CLUTTER) - MOBILE.radius - LIMITS["collision_margin"]
    )
    assert clearance.min() >= -1e-9
    t = np.asarray([w["time"] for w in traj])
    v = np.asarray([w["state"]["velocity"] for w in traj])
    assert np.all(np.diff(t) > 0)
    assert np.abs(v).max() <= LIMITS["max_velocity"] * (1 + 1e-9)
    assert np.abs(np.asarray(d["accelerations"])).max() <= LIMITS["max_acceleration"] * (1 + 1e-9)
    assert np.abs(np.asarray(d["jerks"])).max() <= LIMITS["max_jerk"] * (1 + 1e-9)
    fd = np.diff(pos, axis=0) / np.diff(t)[:, None]
    assert np.abs(fd).max() <= LIMITS["max_velocity"] * (1 + 1e-6)
    assert d["plan_id"] and _ok(api.get(f"{API}/robot/mobile-1"))["last_plan_id"] == d["plan_id"]


def test_plan_panda_to_a_pose_by_ik(api):
    post = [{"position": [0.55, 0.2, 0.2], "size": [0.06, 0.06, 0.4]}]
    body = {
        "robot_id": "panda-1",
        "start_state": {"joint_angles": PANDA.home.tolist()},
        "goal_state": {"position": [0.4, 0.3, 0.3], "orientation": DOWN},
        "obstacles": [{**post[0], "obstacle_type": "static"}],
        "constraints": {"collision_margin": 0.02, "max_velocity": 1.0},
        "seed": 1,
    }
    d = _ok(api.post(f"{API}/plan", json=body))
    q = np.asarray(d["positions"])
    np.testing.assert_allclose(q[0], PANDA.home, atol=1e-12)
    T = np.asarray(K.fk(PANDA, q[-1]))
    assert np.linalg.norm(T[:3, 3] - [0.4, 0.3, 0.3]) < 1e-4
    assert d["trajectory"][-1]["state"]["joint_angles"] == pytest.approx(q[-1].tolist())
    assert d["ik"]["collision_free_solutions"] >= 1 and d["is_collision_free"] is True
    centres, radii = K.link_spheres(PANDA, dense(q, 0.005))
    assert (box_distance(np.asarray(centres), post) - np.asarray(radii) - 0.02).min() >= -1e-3
    assert max(d["limits"]["max_velocity"]) <= 1.0
    assert np.abs(np.asarray(d["velocities"])).max() <= 1.0 + 1e-9


@pytest.mark.parametrize(
    "change,status,field",
    [
        # a goal inside an obstacle: no path, and why
        (lambda b: b["goal_state"].update(position=[2.0, 0.0, 0.0]), UNSOLVABLE, "goal_state"),
        (lambda b: b["start_state"].update(position=[2.0, 0.2, 0.0]), UNSOLVABLE, "start_state"),
        (lambda b: b["obstacles"][0].update(size=[-1.0, 1.0, 1.0]), 400, "obstacles.0.size"),
        (lambda b: b["obstacles"][0].update(position=[1.0, 2.0]), 200, None),  # planar: z = 0
        (lambda b: b["obstacles"][0].update(position=[1.0]), 400, "obstacles.0.position"),
        (lambda b: b["constraints"].update(max_velocity=-1.0), 400, "constraints.max_velocity"),
        (lambda b: b["constraints"].update(max_jerk=0.0), 400, "constraints.max_jerk"),
        (
            lambda b: b["constraints"].update(collision_margin=-0.1),
            400,
            "constraints.collision_margin",
        ),
        (lambda b: b.update(robot_id="robot-404"), 404, None),
        (lambda b: b.pop("goal_state"), 400, "goal_state"),
        (lambda b: b.update(planner="astar"), 400, "planner"),
        (lambda b: b.update(time_budget_s=0), 400, "time_budget_s"),
        (lambda b: b["goal_state"].update(orientation=[0, 0, 0, 0]), 400, "goal_state.orientation"),
        (lambda b: b.update(obstacles=b["obstacles"] * 100), 400, "obstacles"),
        (lambda b: b["goal_state"].update(position=[50.0, 0.0, 0.0]), 400, "goal_state"),
    ],
)
def test_plan_bad_input_names_the_field(api, change, status, field):
    body = _mobile([-1.0, 0.0, 0.0], [6.5, 0.5, 0.0])
    change(body)
    r = api.post(f"{API}/plan", json=body)
    if status == 200:
        _ok(r)
        return
    e = _error(r, status)
    if field is not None:
        assert e["details"]["field"].startswith(field), e
    if status == UNSOLVABLE:
        assert e["details"]["reason"] in ("goal in collision", "start in collision"), e
        assert e["details"]["reason"] in e["message"]


@pytest.mark.parametrize(
    "goal,field",
    [
        (PANDA.home.tolist()[:6], "goal_state.joint_angles"),
        ([0.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0], "goal_state.joint_angles.3"),
        ([0.0, 0.0, 0.0, -1.0, 0.0, 4.0, 0.0], "goal_state.joint_angles.5"),
    ],
)
def test_arm_joint_angles_outside_limits_or_wrong_length(api, goal, field):
    body = {"robot_id": "panda-1", "goal_state": {"joint_angles": goal}}
    e = _error(api.post(f"{API}/plan", json=body), 400, field)
    assert "limits" in e["message"] or "joints" in e["message"]


def test_unreachable_pose_is_422(api):
    body = {"robot_id": "panda-1", "goal_state": {"position": [2.0, 0.0, 0.5]}}
    e = _error(api.post(f"{API}/plan", json=body), UNSOLVABLE, "goal_state")
    assert e["details"]["reason"] == "goal unreachable"


def test_non_finite_and_malformed_bodies(api):
    r = api.post(
        f"{API}/plan",
        content=json.dumps(EXAMPLE_PLAN).replace("4.0", "NaN"),
        headers={"Content-Type": "application/json"},
    )
    _error(r, 400)
    _error(api.post(f"{API}/plan", json={"robot_id": "mobile-1"}), 400, "goal_state")
    _error(api.post(f"{API}/ik", json={"robot_id": "panda-1", "targets": []}), 400, "targets")


def test_ik_batch_against_forward_kinematics(api):
    rng = np.random.default_rng(3)
    lim = PANDA.joint_limits
    q = rng.uniform(lim[:, 0] * 0.9 + lim[:, 1] * 0.1, lim[:, 1] * 0.9 + lim[:, 0] * 0.1, (5, 7))
    T = np.asarray(K.fk(PANDA, q))
    quat = np.asarray(K.quaternion_from_rotation(T))
    targets = [
        {"position": T[i, :3, 3].tolist(), "orientation": quat[i].tolist()} for i in range(5)
    ]
    d = _ok(api.post(f"{API}/ik", json={"robot_id": "panda-1", "targets": targets, "seed": 2}))
    assert d["model"] == "panda" and d["success_rate"] == 1.0 and d["computation_time_ms"] > 0
    for i, r in enumerate(d["results"]):
        got = np.asarray(K.fk(PANDA, np.asarray(r["joint_angles"])))
        assert np.linalg.norm(got[:3, 3] - T[i, :3, 3]) < 1e-4 and r["orientation_error"] < 1e-3
        qs = np.asarray(r["solutions"])
        assert np.all(qs >= lim[:, 0] - 1e-9) and np.all(qs <= lim[:, 1] + 1e-9)
    one = _ok(api.post(f"{API}/ik", json={"model": "panda", "target": targets[0]}))
    assert len(one["results"]) == 1 and one["results"][0]["success"] is True
    _error(
        api.post(f"{API}/ik", json={"robot_id": "mobile-1", "targets": targets}), 400, "robot_id"
    )
    _error(api.post(f"{API}/ik", json={"robot_id": "robot-404", "targets": targets}), 404)
    _error(api.post(f"{API}/ik", json={"robot_id": "panda-1", "targets": targets * 201}), 400)


def _wait_status(api, robot_id: str, status: str, timeout: float = 20.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = _ok(api.get(f"{API}/robot/{robot_id}"))
        if r["task_status"] == status:
            return r
        time.sleep(0.05)
    raise AssertionError(f"{robot_id} never {status}: {r}")


def test_execute_and_robot_status_on_websocket(server, api):
    plan = _ok(api.post(f"{API}/plan", json=_mobile([0.0, -3.5, 0.0], [1.0, -3.5, 0.0], [])))
    with connect(
        server.ws_url,
        additional_headers={"Authorization": f"Bearer {KEYS['user']}"},
        open_timeout=10,
    ) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": "RobotStatus"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "Subscribed"
        # the original posted the MotionPlan itself: the answer of /plan carries its plan_id
        ex = _ok(api.post(f"{API}/execute", json={**plan, "time_scale": 4.0}))
        assert ex["status"] == "executing" and ex["plan_id"] == plan["plan_id"]
        assert ex["estimated_completion_time"] == pytest.approx(plan["total_time"] / 4)
        live = _ok(api.get(f"{API}/robot/mobile-1"))
        assert live["execution_id"] == ex["execution_id"] and 0 <= live["progress"] <= 1
        done = _wait_status(api, "mobile-1", "completed")
        assert done["current_state"]["position"] == pytest.approx([1.0, -3.5, 0.0])
        assert done["progress"] == 1.0
        seen = []
        deadline = time.time() + 10
        while time.time() < deadline and "completed" not in seen:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "RobotStatus" and msg["execution_id"] == ex["execution_id"]:
                seen.append(msg["status"])
                assert msg["robot_id"] == "mobile-1" and isinstance(msg["timestamp"], int)
        assert seen == ["executing", "completed"]
    e = _ok(api.get(f"{API}/execution/{ex['execution_id']}"))
    assert e["status"] == "completed" and e["progress"] == 1.0
    _error(api.get(f"{API}/execution/exec-404"), 404)


def test_execute_goal_then_cancel(api):
    _ok(api.post(f"{API}/cancel", json={"robot_id": "mobile-1"}))
    body = {
        "robot_id": "mobile-1",
        "goal_state": {"position": [-3.0, -3.0, 0.0]},
        "constraints": {"max_velocity": 0.2, "max_acceleration": 0.5, "max_jerk": 2.0},
        "time_scale": 1.0,
    }
    ex = _ok(api.post(f"{API}/execute", json=body))
    assert ex["status"] == "executing" and ex["total_time"] > 10
    time.sleep(0.3)
    c = _ok(api.post(f"{API}/cancel", json={"robot_id": "mobile-1"}))
    assert c["cancelled"] is True and c["execution"]["status"] == "cancelled"
    frozen = c["execution"]["current_state"]["position"]
    time.sleep(0.2)
    r = _ok(api.get(f"{API}/robot/mobile-1"))
    assert r["task_status"] == "cancelled" and r["current_state"]["position"] == frozen
    assert _ok(api.post(f"{API}/cancel", json={"robot_id": "mobile-1"}))["cancelled"] is False
    _error(api.post(f"{API}/cancel", json={"robot_id": "robot-404"}), 404)
    _error(api.post(f"{API}/execute", json={"plan_id": "plan-404"}), 404)
    plan = _ok(api.post(f"{API}/plan", json=_mobile([0.0, -3.5, 0.0], [1.0, -3.5, 0.0], [])))
    r = api.post(f"{API}/execute", json={"robot_id": "panda-1", "plan_id": plan["plan_id"]})
    _error(r, 400, "robot_id")
    bare = copy.deepcopy(plan)
    bare.pop("plan_id")
    _error(api.post(f"{API}/execute", json=bare), 400, "plan.plan_id")
    _error(api.post(f"{API}/execute", json={"robot_id": "mobile-1", "time_scale": 0}), 400)


def test_robots_registry_and_health(api):
    robots = {r["id"]: r for r in _ok(api.get(f"{API}/robots"))}
    assert {"mobile-1", "panda-1", "ur5e-1"} <= set(robots)
    assert robots["panda-1"]["kind"] == "arm" and robots["panda-1"]["dof"] == 7
    assert robots["mobile-1"]["radius"] == MOBILE.radius and robots["mobile-1"]["online"]
    _error(api.get(f"{API}/robot/robot-404"), 404)
    reg = _ok(api.post(f"{API}/robots", json={"id": "ur5e-7", "model": "UR5e"}))
    assert reg["model"] == "ur5e" and reg["task_status"] == "idle"
    _error(api.post(f"{API}/robots", json={"id": "ur5e-7", "model": "panda"}), 400, "model")
    _error(api.post(f"{API}/robots", json={"id": "x", "model": "kuka"}), 400, "model")
    _error(api.post(f"{API}/robots", json={"id": "a/b", "model": "panda"}), 400, "id")
    h = _ok(api.get(f"{API}/health"))
    assert h["status"] == "healthy" and h["robots"] >= 4 and h["robots_online"] == h["robots"]
    assert h["models"] == ["mobile", "panda", "ur5e"] and "rrt_connect" in h["planners"]
    assert h["plans_made"] >= 1 and h["avg_planning_time_ms"] > 0


@pytest.mark.slow
def test_registry_survives_a_server_restart(tmp_path):
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("user") as c:
        _ok(c.post(f"{API}/robots", json={"id": "mobile-9", "model": "mobile"}))
        body = _mobile([0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [])
        body["robot_id"] = "mobile-9"
        plan = _ok(c.post(f"{API}/plan", json=body))
        ex = _ok(c.post(f"{API}/execute", json={"plan_id": plan["plan_id"], "time_scale": 20}))
        _wait_status(c, "mobile-9", "completed")
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("user") as c:
        r = _ok(c.get(f"{API}/robot/mobile-9"))
        assert r["model"] == "mobile" and r["task_status"] == "completed"
        assert r["last_plan_id"] == plan["plan_id"] and r["execution_id"] == ex["execution_id"]
        assert r["current_state"]["position"] == pytest.approx([0.5, 0.5, 0.0])
        assert _ok(c.get(f"{API}/execution/{ex['execution_id']}"))["status"] == "completed"
        assert len(_ok(c.get(f"{API}/robots"))) == 4
