"""The Robotics dashboard: a robot of the registry (a mobile sphere robot, a Franka Panda, a
UR5e) planning around obstacles, drawn in a top view (x-y) and a side view (x-z) with the
obstacles, the planned path, the robot (its sphere, or an arm's link spheres) at the playback
instant and the arm's swept link centres; the goal and the first obstacle move with the
controls and the plan is redrawn; the plan is played back (a player over the trajectory) or
executed on the robot's simulated controller (the API's), the robot moving as it reports;
joint (or axis) positions, velocities, accelerations and jerks plotted as fractions of their
limits. Served at ``/robotics``; in a notebook, display ``RoboticsViewer()``.

Every number comes from :class:`prism_kernels.robotics.service.RoboticsService` (the runtime's
instance, the REST API's) and the robotics kernels; this module only lays results out. The
results and what they depend on::

    info     <- robot
    plan     <- info, scene, goal, first obstacle, margin, limits, planner, seed
    spheres  <- plan           (arms: link spheres at every trajectory sample)
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from prism_kernels.robotics import kinematics as rob_kin
from prism_kernels.robotics import models as rob_models
from prism_kernels.robotics.service import PLANNERS, RoboticsService
from prism_kernels.robotics.timing import limit_usage
from widgets.base import DomainViewer, Result, rerange

#: Scenes a mobile robot plans through: boxes ``(centre, full size)`` in metres.
MOBILE_SCENES: dict[str, list[tuple[tuple[float, float, float], tuple[float, float, float]]]] = {
    "clutter (8 crates)": [
        ((2.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
        ((1.0, 2.0, 0.0), (0.8, 0.8, 1.0)),
        ((3.5, 2.5, 0.0), (1.0, 0.6, 1.0)),
        ((0.5, -2.0, 0.0), (1.2, 0.6, 1.0)),
        ((4.0, -1.5, 0.0), (0.6, 1.4, 1.0)),
        ((-1.5, 1.0, 0.0), (0.6, 0.6, 1.0)),
        ((2.8, -3.2, 0.0), (0.8, 0.8, 1.0)),
        ((5.5, 0.8, 0.0), (0.8, 0.8, 1.0)),
    ],
    "wall with a gap": [
        ((2.5, 2.25, 0.0), (0.4, 4.5, 4.0)),
        ((2.5, -3.25, 0.0), (0.4, 4.5, 4.0)),
    ],
    "empty": [],
}
#: Scenes an arm plans through (base at the origin, z up).
ARM_SCENES: dict[str, list[tuple[tuple[float, float, float], tuple[float, float, float]]]] = {
    "post": [((0.55, 0.2, 0.2), (0.06, 0.06, 0.4))],
    "post and crate": [
        ((0.55, 0.2, 0.2), (0.06, 0.06, 0.4)),
        ((0.3, -0.4, 0.1), (0.2, 0.2, 0.2)),
    ],
    "empty": [],
}
MOBILE_GOAL = (6.0, 1.5, 0.0)
ARM_GOAL = (0.4, 0.3, 0.3)
ARM_GOAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0)  # xyzw: tool z pointing down
SEGMENTS = 24  # vertices of a drawn circle


def _circles(centres: np.ndarray, radii: np.ndarray, a: int, b: int) -> tuple:
    """Outlines of the spheres' projections on axes ``a``, ``b``, as one line broken by NaN
    between circles (for drawing)."""
    t = np.append(np.linspace(0, 2 * np.pi, SEGMENTS), np.nan)
    u = (centres[:, a, None] + radii[:, None] * np.cos(t)).ravel()
    v = (centres[:, b, None] + radii[:, None] * np.sin(t)).ravel()
    return u, v


class RoboticsViewer(DomainViewer):
    """Plan, play back and execute motions of the registry's robots around obstacles.

    Parameters
    ----------
    robot : a robot of the registry (the REST API's).
    scene : a set of boxes to plan through.
    goal_x, goal_y, goal_z : the goal (mobile: the centre, m; arm: the tool position, m,
        tool pointing down, solved by IK).
    obstacle_x, obstacle_y : centre of the scene's first obstacle (m).
    margin : clearance kept from the obstacles (m).
    max_velocity, max_acceleration, max_jerk : caps per axis or joint (the model's own
        limits also apply).
    planner, seed : the sampling planner and its seed.
    playback : the instant shown, as a fraction of the plan's duration.
    time_scale : simulated seconds per wall second when executing.
    """

    title = param.String(default="Robotics", precedence=-1)
    slug = "robotics"
    order = 50
    description = (
        "Motion planning around obstacles (RRT-Connect, lazy PRM), IK for the Panda and UR5e, "
        "jerk-limited trajectories, simulated execution"
    )
    service_class = RoboticsService
    probe = ("scene", "wall with a gap")
    source_probe = ("robot", "panda-1")
    outputs = (
        Result("info", ("robot",)),
        Result(
            "plan",
            (
                "info",
                "scene",
                "goal_x",
                "goal_y",
                "goal_z",
                "obstacle_x",
                "obstacle_y",
                "margin",
                "max_velocity",
                "max_acceleration",
                "max_jerk",
                "planner",
                "seed",
            ),
        ),
        Result("spheres", ("plan",)),
    )

    robot = param.Selector(default="mobile-1", objects=["mobile-1"], label="Robot")
    scene = param.Selector(
        default=list(MOBILE_SCENES)[0], objects=list(MOBILE_SCENES), label="Scene"
    )
    goal_x = param.Number(default=MOBILE_GOAL[0], bounds=(-9.0, 9.0), step=0.05, label="Goal x (m)")
    goal_y = param.Number(default=MOBILE_GOAL[1], bounds=(-9.0, 9.0), step=0.05, label="Goal y (m)")
    goal_z = param.Number(default=MOBILE_GOAL[2], bounds=(-9.0, 9.0), step=0.05, label="Goal z (m)")
    obstacle_x = param.Number(
        default=2.0, bounds=(-9.0, 9.0), step=0.05, label="First obstacle x (m)"
    )
    obstacle_y = param.Number(
        default=0.0, bounds=(-9.0, 9.0), step=0.05, label="First obstacle y (m)"
    )
    margin = param.Number(default=0.05, bounds=(0.0, 0.5), step=0.01, label="Margin (m)")
    max_velocity = param.Number(
        default=1.0, bounds=(0.05, 5.0), step=0.05, label="Max velocity (per s)"
    )
    max_acceleration = param.Number(
        default=2.0, bounds=(0.1, 20.0), step=0.1, label="Max acceleration (per s²)"
    )
    max_jerk = param.Number(default=10.0, bounds=(0.5, 200.0), step=0.5, label="Max jerk (per s³)")
    planner = param.Selector(default=PLANNERS[0], objects=list(PLANNERS), label="Planner")
    seed = param.Integer(default=0, bounds=(0, 100_000), label="Planner seed")
    playback = param.Number(default=1.0, bounds=(0.0, 1.0), step=0.01, label="Playback (fraction)")
    time_scale = param.Number(
        default=2.0, bounds=(0.1, 20.0), step=0.1, label="Execution speed (× real time)"
    )
    execution = param.String(default="", precedence=-1, doc="Text of the last execution")

    def __init__(self, service: RoboticsService | None = None, **params: Any) -> None:
        self._syncing = False
        self._poll: Any = None
        self._execution_id: str | None = None
        super().__init__(service=service, **params)
        ids = sorted(r["id"] for r in self.service.robots_list())
        self.param.robot.objects = ids
        if self.robot not in ids:
            self.robot = ids[0]
        self._set_defaults(self.robot)
        self.refresh()

    # ------------------------------------------------------------------ controls

    def _kind(self, robot_id: str) -> str:
        return self.service.robot(robot_id)["kind"]

    def _set_defaults(self, robot_id: str) -> None:
        """Scenes, goal and obstacle defaults for the robot's kind (no recomputation)."""
        arm = self._kind(robot_id) == "arm"
        scenes = ARM_SCENES if arm else MOBILE_SCENES
        goal = ARM_GOAL if arm else MOBILE_GOAL
        first = next(iter(scenes.values()))[0][0]
        bound = (-1.2, 1.2) if arm else (-9.0, 9.0)
        self._syncing = True
        try:
            self.param.scene.objects = list(scenes)
            for name in ("goal_x", "goal_y", "goal_z", "obstacle_x", "obstacle_y"):
                self.param[name].bounds = bound
                self.param[name].step = 0.01 if arm else 0.05
            self.param.update(
                scene=list(scenes)[0],
                goal_x=goal[0],
                goal_y=goal[1],
                goal_z=goal[2],
                obstacle_x=first[0],
                obstacle_y=first[1],
                max_velocity=1.0,
                max_acceleration=2.0 if not arm else 4.0,
                max_jerk=10.0 if not arm else 40.0,
            )
        finally:
            self._syncing = False

    def _controls_changed(self, *events: param.parameterized.Event) -> None:
        if self._syncing:
            return
        names = {e.name for e in events}
        if "robot" in names:
            self._set_defaults(self.robot)
        if "scene" in names and "robot" not in names:
            boxes = self._scene_boxes(first_moved=False)
            if boxes:
                self._syncing = True
                try:
                    self.param.update(obstacle_x=boxes[0][0][0], obstacle_y=boxes[0][0][1])
                finally:
                    self._syncing = False
        self.refresh(self.stale(names))

    def _scene_boxes(self, first_moved: bool = True) -> list:
        scenes = ARM_SCENES if self.value.get("info", {}).get("kind") == "arm" else MOBILE_SCENES
        boxes = [list(b) for b in scenes.get(self.scene, [])]
        if first_moved and boxes:
            c = boxes[0][0]
            boxes[0][0] = (self.obstacle_x, self.obstacle_y, c[2])
        return boxes

    def obstacles(self) -> list[dict[str, Any]]:
        """The scene as the API's obstacle list (position = centre, size = full extents)."""
        return [
            {
                "id": f"box-{i + 1}",
                "position": list(c),
                "size": list(s),
                "obstacle_type": "box",
            }
            for i, (c, s) in enumerate(self._scene_boxes())
        ]

    # ------------------------------------------------------------------ results

    def compute_info(self) -> dict[str, Any]:
        return self.service.robot(self.robot)

    def compute_plan(self) -> dict[str, Any]:
        info = self.value["info"]
        goal: dict[str, Any] = {"position": [self.goal_x, self.goal_y, self.goal_z]}
        if info["kind"] == "arm":
            goal["orientation"] = list(ARM_GOAL_ORIENTATION)
        return self.service.plan(
            self.robot,
            goal_state=goal,
            obstacles=self.obstacles(),
            constraints={
                "max_velocity": self.max_velocity,
                "max_acceleration": self.max_acceleration,
                "max_jerk": self.max_jerk,
                "collision_margin": self.margin,
            },
            planner=self.planner,
            seed=self.seed,
            time_budget_s=2.0,
        )

    def compute_spheres(self) -> dict[str, Any] | None:
        plan = self.value.get("plan")
        if plan is None or self.value["info"]["kind"] != "arm":
            return None
        model = rob_models.get_model(plan["model"])
        centres, radii = rob_kin.link_spheres(model, plan["positions"])
        return {"centres": np.asarray(centres), "radii": np.asarray(radii)}

    def after_refresh(self, names: list[str]) -> None:
        if "plan" in names:
            self.playback = 1.0

    # ------------------------------------------------------------------ execution

    def execute(self, *_: Any) -> None:
        """Run the plan on the robot's simulated controller; the views follow its state."""
        plan = self.value.get("plan")
        if plan is None or not plan.get("plan_id"):
            self.status = "**Execute:** no plan to execute"
            return
        ex = self.service.execute(self.robot, plan["plan_id"], time_scale=self.time_scale)
        self._execution_id = ex["execution_id"]
        self._show_execution(ex)
        if pn.state.curdoc is not None and getattr(pn.state.curdoc, "session_context", None):
            if self._poll is not None:
                self._poll.stop()
            self._poll = pn.state.add_periodic_callback(self.poll, period=200)

    def poll(self) -> None:
        """Read the execution's state (the robot's live state) once."""
        if self._execution_id is None:
            return
        ex = self.service.execution(self._execution_id)
        self._show_execution(ex)
        if ex["status"] != "executing" and self._poll is not None:
            self._poll.stop()
            self._poll = None

    def _show_execution(self, ex: dict[str, Any]) -> None:
        self.playback = float(ex["progress"])
        self.execution = (
            f"Execution {ex['execution_id']}: **{ex['status']}**, "
            f"{100 * ex['progress']:.0f} % at {ex['time_scale']:g}× real time "
            f"({ex['estimated_completion_time']:.2f} s in all)."
        )

    # ------------------------------------------------------------------ views

    def _index(self) -> int:
        plan = self.value.get("plan")
        t = np.asarray(plan["times"])
        return int(
            np.searchsorted(t, self.playback * plan["total_time"], side="left").clip(0, t.size - 1)
        )

    @param.depends("plan_version", "info_version", "execution", "status")
    def summary(self) -> pn.pane.Markdown:
        info, plan = self.value.get("info"), self.value.get("plan")
        if info is None:
            return pn.pane.Markdown("")
        lines = [
            f"**{info['name']}** ({info['model']}, {info['kind']}, {info['dof']} "
            f"{'joints' if info['kind'] == 'arm' else 'axes'}); scene **{self.scene}**, "
            f"{len(self.obstacles())} obstacles, margin {self.margin:.2f} m."
        ]
        if plan is None:
            lines.append("No plan: see the status line.")
        else:
            stats = plan["statistics"]
            lines.append(
                f"**Plan** by {plan['planner']}: {len(plan['path'])} waypoints, "
                f"{plan['total_time']:.2f} s, length {plan['total_distance']:.3f} "
                f"{'rad' if info['kind'] == 'arm' else 'm'}, planned in "
                f"{plan['computation_time_ms']:.1f} ms "
                f"({stats.get('collision_checks', 0)} collision checks); collision-free "
                f"(checked): **{plan['is_collision_free']}**."
            )
            if plan.get("ik"):
                ik = plan["ik"]
                lines.append(
                    f"Goal pose by IK: {ik['collision_free_solutions']} of "
                    f"{ik['solutions_found']} distinct solutions collision-free; the nearest "
                    "to the start was chosen."
                )
        if self.execution:
            lines.append(self.execution)
        return pn.pane.Markdown("\n\n".join(lines), sizing_mode="stretch_width")

    def scene_plot(self, view: str = "top", **_: Any) -> hv.Overlay:
        """Top (x-y) or side (x-z) view: obstacles, path, robot at the playback instant."""
        a, b = (0, 1) if view == "top" else (0, 2)
        names = ("x", "y", "z")
        kx = (names[a], f"{names[a]} (m)")
        ky = (names[b], f"{names[b]} (m)")
        info, plan = self.value.get("info"), self.value.get("plan")
        layers = []
        boxes = self._scene_boxes() if info is not None else []
        if boxes:
            rect = pd.DataFrame(
                [
                    (c[a] - s[a] / 2, c[b] - s[b] / 2, c[a] + s[a] / 2, c[b] + s[b] / 2)
                    for c, s in boxes
                ],
                columns=[kx[0], ky[0], "x1", "y1"],
            )
            layers.append(
                hv.Rectangles(rect, [kx, ky, "x1", "y1"], label="obstacles").opts(
                    color="grey", alpha=0.6, line_color="black"
                )
            )
        goal = [self.goal_x, self.goal_y, self.goal_z]
        layers.append(
            hv.Points([(goal[a], goal[b])], [kx, ky], label="goal").opts(
                marker="star", size=16, color="green"
            )
        )
        if plan is not None:
            pts = np.asarray([w["state"]["position"] for w in plan["trajectory"]])
            i = self._index()
            what = "path" if info["kind"] != "arm" else "tool path"
            layers.append(
                hv.Curve((pts[:, a], pts[:, b]), kx, ky, label=what).opts(
                    color="royalblue", line_width=3
                )
            )
            sph = self.value.get("spheres")
            if sph is not None:
                sw = sph["centres"][:: max(1, len(pts) // 40)].reshape(-1, 3)
                layers.append(
                    hv.Points(
                        pd.DataFrame({kx[0]: sw[:, a], ky[0]: sw[:, b]}),
                        [kx, ky],
                        label="swept link centres",
                    ).opts(color="orange", alpha=0.25, size=3)
                )
                centres, radii = sph["centres"][i], sph["radii"]
            else:
                centres = pts[i : i + 1]
                radii = np.asarray([float(info.get("radius", 0.25))])
            layers.append(
                hv.Curve(_circles(centres, radii, a, b), kx, ky, label="robot").opts(
                    color="crimson", line_width=2
                )
            )
        title = "Top view (x-y)" if view == "top" else "Side view (x-z)"
        return hv.Overlay(layers).opts(
            title=title,
            width=460,
            height=460,
            data_aspect=1,
            legend_position="bottom",
            show_legend=True,
        )

    def limits_plot(self, **_: Any) -> hv.Overlay:
        """Velocity, acceleration and jerk of every axis as fractions of its limit (|x| <= 1
        is within the limit), and positions as fractions of the joint range."""
        plan = self.value.get("plan")
        if plan is None:
            return hv.Overlay([hv.Curve([], "time (s)", "fraction of the limit")])
        t = np.asarray(plan["times"])
        lim = plan["limits"]
        layers = []
        for key, what, dash in (
            ("velocities", "max_velocity", "solid"),
            ("accelerations", "max_acceleration", "dashed"),
            ("jerks", "max_jerk", "dotted"),
        ):
            peak = limit_usage(plan[key], lim[what])
            layers.append(
                hv.Curve(
                    (t, peak),
                    ("t", "time (s)"),
                    ("f", "|value| / limit (worst axis)"),
                    label=f"{key[:-1] if key != 'velocities' else 'velocity'}",
                ).opts(line_dash=dash, line_width=2)
            )
        layers.append(
            hv.Curve(
                ([t[0], t[-1]], [1.0, 1.0]),
                ("t", "time (s)"),
                ("f", "|value| / limit"),
                label="limit",
            ).opts(color="red", line_width=1)
        )
        i = self._index()
        layers.append(
            hv.Scatter(
                ([t[i]], [0.0]), ("t", "time (s)"), ("f", "|value| / limit"), label="now"
            ).opts(color="black", size=10, marker="triangle")
        )
        return hv.Overlay(layers).opts(
            title="Velocity, acceleration, jerk against their limits",
            height=280,
            responsive=True,
            legend_position="right",
        )

    def joints_plot(self, **_: Any) -> hv.Overlay:
        """Each joint (or axis) position against time, with its limits."""
        plan, info = self.value.get("plan"), self.value.get("info")
        unit = "rad" if info is not None and info["kind"] == "arm" else "m"
        if plan is None:
            return hv.Overlay([hv.Curve([], "time (s)", f"position ({unit})")])
        t = np.asarray(plan["times"])
        q = np.asarray(plan["positions"])
        layers = [
            hv.Curve(
                (t, q[:, j]),
                ("t", "time (s)"),
                ("q", f"position ({unit})"),
                label=f"{'joint' if unit == 'rad' else 'axis'} {j + 1}",
            )
            for j in range(q.shape[1])
        ]
        if unit == "rad":
            lim = np.asarray(info["joint_limits"])
            layers += [
                hv.Curve(
                    ([t[0], t[-1]], [v, v]),
                    ("t", "time (s)"),
                    ("q", "position (rad)"),
                    label="joint limits",
                ).opts(color="red", line_dash="dashed", line_width=1)
                for v in (lim[:, 0].min(), lim[:, 1].max())
            ]
        return hv.Overlay(layers).opts(
            title="Positions" + (" (with the widest joint limits)" if unit == "rad" else ""),
            height=280,
            responsive=True,
            legend_position="right",
        )

    # ------------------------------------------------------------------ layout

    def sidebar(self) -> list:
        player = pn.widgets.Player(
            label="Play back the plan",
            start=0,
            end=100,
            value=100,
            loop_policy="once",
            interval=100,
            show_loop_controls=False,
            sizing_mode="stretch_width",
        )
        player.param.watch(lambda e: setattr(self, "playback", e.new / 100), "value")
        button = pn.widgets.Button(label="Execute in simulation", color="primary")
        button.on_click(self.execute)
        controls = pn.Param(
            self,
            parameters=[
                "robot",
                "scene",
                "goal_x",
                "goal_y",
                "goal_z",
                "obstacle_x",
                "obstacle_y",
                "margin",
                "max_velocity",
                "max_acceleration",
                "max_jerk",
                "planner",
                "seed",
                "playback",
                "time_scale",
            ],
            show_name=False,
        )
        return [controls, player, button]

    # Each view is drawn afresh when its results change (an arm and a mobile robot draw
    # different layers, which a DynamicMap, fixed to its first frame's layers, would not show),
    # in panes whose axes are not linked to each other's.
    def _views(self) -> dict[str, Any]:
        return {
            "top": rerange(self.scene_plot(view="top")),
            "side": rerange(self.scene_plot(view="side")),
            "limits": rerange(self.limits_plot()),
            "joints": rerange(self.joints_plot()),
        }

    def main(self) -> list:
        views = self._views()
        panes = {
            k: pn.pane.HoloViews(
                v,
                linked_axes=False,
                **(
                    {"width": 470, "height": 470}
                    if k in ("top", "side")
                    else {"sizing_mode": "stretch_width", "height": 290}
                ),
            )
            for k, v in views.items()
        }

        def redraw(*_: Any) -> None:
            for k, v in self._views().items():
                panes[k].object = v

        self.param.watch(redraw, ["plan_version", "spheres_version", "info_version", "playback"])
        return [
            self.summary,
            pn.Row(panes["top"], panes["side"]),
            panes["limits"],
            panes["joints"],
        ]
