"""The Robotics viewer: plans computed through the service, the probe and the source switch
change what it shows, an obstacle moved onto the goal is reported (no path drawn through it),
the arm's link spheres follow the plan, playback moves the robot, execution runs on the
service's simulated controller."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from prism_kernels.robotics import kinematics as K
from prism_kernels.robotics.models import PANDA
from prism_kernels.robotics.service import RoboticsService
from widgets.robotics import ARM_GOAL, RoboticsViewer


@pytest.fixture
def viewer():
    return RoboticsViewer(service=RoboticsService(timers=False))


def _text(v) -> str:
    return v.summary().object


def _render(v) -> None:
    for view in ("top", "side"):
        hv.render(v.scene_plot(view=view))
    hv.render(v.limits_plot())
    hv.render(v.joints_plot())


def test_results_probe_and_obstacle_on_the_goal(viewer):
    assert set(viewer.value) == {"info", "plan", "spheres"} and viewer.status == ""
    plan = viewer.value["plan"]
    assert plan["is_collision_free"] and viewer.value["spheres"] is None
    end = plan["trajectory"][-1]["state"]["position"]
    assert end == pytest.approx([viewer.goal_x, viewer.goal_y, viewer.goal_z])
    before = _text(viewer)
    name, value = viewer.probe
    setattr(viewer, name, value)
    after = _text(viewer)
    assert after != before and "wall with a gap" in after and viewer.status == ""
    _render(viewer)
    # the first obstacle moved onto the goal: a message, and no plan drawn
    viewer.param.update(obstacle_x=viewer.goal_x, obstacle_y=viewer.goal_y)
    assert "goal in collision" in viewer.status and "plan" not in viewer.value
    assert "No plan" in _text(viewer)
    _render(viewer)


def test_source_switch_to_the_panda_and_playback(viewer):
    name, value = viewer.source_probe
    setattr(viewer, name, value)
    assert viewer.status == "" and viewer.value["info"]["model"] == "panda"
    assert (viewer.goal_x, viewer.goal_y, viewer.goal_z) == ARM_GOAL
    plan = viewer.value["plan"]
    q = np.asarray(plan["positions"])
    assert np.linalg.norm(np.asarray(K.fk(PANDA, q[-1]))[:3, 3] - ARM_GOAL) < 1e-4
    sph = viewer.value["spheres"]
    assert sph["centres"].shape == (q.shape[0], PANDA.sphere_radii.size, 3)
    viewer.playback = 0.0
    assert viewer._index() == 0
    viewer.playback = 0.5
    assert 0 < viewer._index() < q.shape[0] - 1
    _render(viewer)
    assert "Goal pose by IK" in _text(viewer)
    viewer.__panel__()


def test_execute_runs_on_the_simulated_controller(viewer):
    viewer.time_scale = 20.0
    viewer.execute()
    eid = viewer._execution_id
    ex = viewer.service.execution(eid)
    assert ex["plan_id"] == viewer.value["plan"]["plan_id"] and ex["robot_id"] == "mobile-1"
    assert "Execution" in _text(viewer) and "executing" in viewer.execution
    viewer.poll()
    assert 0.0 <= viewer.playback <= 1.0
