"""``/api/v1/robotics``: collision-free motion planning, inverse kinematics and simulated
execution through :class:`prism_kernels.robotics.service.RoboticsService`.

Units: metres, radians, seconds. Quaternions are ``[x, y, z, w]`` (the original server's
own ``[0, 0, 0, 1]`` is the identity). Obstacles are axis-aligned boxes whose ``position`` is
the box's **centre** and ``size`` its **full extents** ``[sx, sy, sz]`` (not half sizes), or
spheres (``obstacle_type: "sphere"`` with ``radius``). A mobile robot is a sphere of the
model's radius moving in x, y (z ignored for a planar robot); an arm's state is its
``joint_angles`` (the tool pose in ``position``/``orientation`` is computed from them).

Payloads: the original ``{robot_id, start_state, goal_state, obstacles, constraints}`` of
``POST /plan`` (RobotState ``{position, orientation, joint_angles, velocity}``; constraints
``{max_velocity, max_acceleration, max_jerk, collision_margin}``), plus this API's own
``planner``, ``time_budget_s``, ``seed``, ``rate_hz``. ``POST /execute`` takes the original
``MotionPlan`` object (the answer of ``/plan``, which carries ``plan_id``), or a ``plan_id``.
A problem with no solution (start or goal in collision, an unreachable pose, the time budget
spent) is answered with a JSON error naming the field and the reason, never with a path
through an obstacle.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field, RootModel, field_validator, model_validator

from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.models import MODELS
from prism_kernels.robotics.service import PLANNERS, RoboticsService
from widgets.server.models import ApiModel, ApiResponse, DomainHealth, NameChoice, Timed
from widgets.server.routing import Request, RouteGroup

MAX_OBSTACLES = 500
MAX_TARGETS = 1000
MAX_JOINTS = 16
MAX_COORD = 1e4  # metres
MAX_LIMIT = 1e6  # velocity, acceleration, jerk limits (per s, s^2, s^3)
MIN_LIMIT = 1e-3
MAX_MARGIN = 10.0  # metres
MAX_BUDGET_S = 10.0
MAX_RATE_HZ = 500.0
MAX_SEEDS = 128


class RoboticsHealth(DomainHealth):
    """``GET /api/v1/robotics/health``: the shared fields and the registry's."""

    robots: int = Field(description="Robots in the registry")
    robots_online: int = Field(description="Robots whose simulated controller answers (all)")
    robots_executing: int = Field(description="Robots following a plan now")
    models: list[str] = Field(description="Built-in robot models")
    planners: list[str]
    plans_made: int = Field(description="Plans computed since start")
    planning_latency_ms: float | None = Field(
        description="Mean of the recent plans' computation times (ms)"
    )
    avg_planning_time_ms: float | None = Field(
        description="The original API's name for planning_latency_ms"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "planning_latency_ms" in data:
            data = {**data, "avg_planning_time_ms": data["planning_latency_ms"]}
        return data


ROUTES = RouteGroup(
    "robotics",
    "Motion planning around obstacles, inverse kinematics, simulated execution",
    service=RoboticsService,
    health=RoboticsHealth,
)

RobotModelName = NameChoice(
    *MODELS,
    aliases={"franka": "panda", "franka_panda": "panda", "sphere": "mobile"},
    description="A built-in robot model: mobile (a sphere of radius 0.25 m), panda or ur5e",
)
Planner = NameChoice(
    *PLANNERS,
    aliases={"rrt": "rrt_connect", "rrtconnect": "rrt_connect", "lazy_prm": "prm"},
    description="rrt_connect (RRT-Connect) or prm (lazy PRM); a free straight path is used first",
)


def _bounded(v: list[float], field: str, lo: float, hi: float) -> list[float]:
    for x in v:
        if not lo <= x <= hi:
            raise ValueError(f"{field} values must lie in [{lo:g}, {hi:g}]")
    return v


# ---------------------------------------------------------------- states and obstacles in


class RobotStateIn(ApiModel):
    """The original ``RobotState``. Mobile robots use ``position``; arms ``joint_angles`` (a
    goal may instead give the tool's ``position`` + ``orientation``: solved by IK)."""

    position: list[float] | None = Field(
        None,
        min_length=2,
        max_length=3,
        description="[x, y, z] (m): a mobile robot's centre, or an arm goal's tool position",
    )
    orientation: list[float] | None = Field(
        None,
        min_length=4,
        max_length=4,
        description="Quaternion [x, y, z, w] (identity [0, 0, 0, 1]); an arm goal's tool "
        "orientation (normalised here)",
    )
    joint_angles: list[float] | None = Field(
        None, max_length=MAX_JOINTS, description="An arm's joint angles (rad), one per joint"
    )
    velocity: list[float] | None = Field(
        None, max_length=3, description="Accepted as the original sent it; plans start at rest"
    )

    @field_validator("position")
    @classmethod
    def _pos(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        v = _bounded(v, "position", -MAX_COORD, MAX_COORD)
        return v + [0.0] * (3 - len(v))

    @field_validator("orientation")
    @classmethod
    def _quat(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        v = _bounded(v, "orientation", -1e3, 1e3)
        n = sum(x * x for x in v) ** 0.5
        if not n > 1e-9:
            raise ValueError("a quaternion [x, y, z, w] of norm 0 is no rotation")
        return [x / n for x in v]

    @field_validator("joint_angles")
    @classmethod
    def _joints(cls, v: list[float] | None) -> list[float] | None:
        return None if v is None else _bounded(v, "joint_angles", -100.0, 100.0)

    def to_kernel(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "orientation": self.orientation,
            "joint_angles": self.joint_angles or None,
        }


class ObstacleIn(ApiModel):
    """A box (``position`` = its centre, ``size`` = its full extents [sx, sy, sz], m) or a
    sphere (``obstacle_type: sphere``, ``radius`` m). The original's ``static``/``dynamic``
    types are boxes (obstacles are static while a plan is made)."""

    id: str | None = Field(None, max_length=200)
    position: list[float] = Field(
        min_length=2, max_length=3, description="Box centre (or sphere centre) [x, y, z] (m)"
    )
    size: list[float] | None = Field(
        None,
        min_length=1,
        max_length=3,
        description="Box full extents [sx, sy, sz] (m), each >= 0 (not half sizes)",
    )
    radius: float | None = Field(None, ge=0, le=MAX_COORD, description="Sphere radius (m)")
    obstacle_type: str = Field(
        "static",
        max_length=40,
        validation_alias=AliasChoices("obstacle_type", "type"),
        description="static or dynamic (boxes), box, or sphere",
    )

    @field_validator("position")
    @classmethod
    def _pos(cls, v: list[float]) -> list[float]:
        v = _bounded(v, "position", -MAX_COORD, MAX_COORD)
        return v + [0.0] * (3 - len(v))

    @field_validator("size")
    @classmethod
    def _size(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        for x in v:
            if x < 0:
                raise ValueError("sizes are full extents (m) and must be >= 0")
        return _bounded(v, "size", 0.0, MAX_COORD)

    @model_validator(mode="after")
    def _kind(self) -> ObstacleIn:
        kind = self.obstacle_type.strip().lower()
        if kind in ("static", "dynamic", "box"):
            if self.size is None or len(self.size) not in (2, 3):
                raise ValueError("a box needs size [sx, sy, sz] (full extents, m)")
            if len(self.size) == 2:
                self.size = self.size + [0.0]
        elif kind == "sphere":
            if self.radius is None and self.size is None:
                raise ValueError("a sphere needs a radius (m)")
        else:
            raise ValueError("obstacle_type must be static, dynamic, box or sphere")
        return self

    def to_kernel(self) -> dict[str, Any]:
        kind = self.obstacle_type.strip().lower()
        if kind == "sphere":
            r = self.radius if self.radius is not None else self.size[0] / 2
            return {"position": self.position, "radius": r, "obstacle_type": "sphere"}
        return {"position": self.position, "size": self.size, "obstacle_type": "box"}


class ConstraintsIn(ApiModel):
    """Caps on the motion; the robot model's own per-joint limits also apply (the smaller wins).
    Velocity, acceleration and jerk limits are per axis (mobile: m/s, m/s^2, m/s^3 along each
    of x, y, z) or per joint (arm: rad/s, rad/s^2, rad/s^3)."""

    max_velocity: float | None = Field(None, ge=MIN_LIMIT, le=MAX_LIMIT)
    max_acceleration: float | None = Field(None, ge=MIN_LIMIT, le=MAX_LIMIT)
    max_jerk: float | None = Field(None, ge=MIN_LIMIT, le=MAX_LIMIT)
    collision_margin: float = Field(
        0.0, ge=0, le=MAX_MARGIN, description="Clearance kept from every obstacle (m)"
    )


# ---------------------------------------------------------------- plan


class PlanRequest(ApiModel):
    robot_id: str = Field(min_length=1, max_length=200, description="A robot of the registry")
    start_state: RobotStateIn | None = Field(None, description="Default: the robot's last state")
    goal_state: RobotStateIn
    obstacles: list[ObstacleIn] = Field(default_factory=list, max_length=MAX_OBSTACLES)
    constraints: ConstraintsIn = Field(default_factory=ConstraintsIn)
    planner: Planner = "rrt_connect"
    time_budget_s: float = Field(
        2.0, gt=0, le=MAX_BUDGET_S, description="Planner's wall-time budget (s)"
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the sampling planner")
    rate_hz: float = Field(
        50.0, ge=1, le=MAX_RATE_HZ, description="Sampling rate of the trajectory (Hz)"
    )
    save: bool = Field(True, description="Keep the plan (plan_id) for /execute")

    def args(self) -> dict[str, Any]:
        """:meth:`RoboticsService.plan`'s arguments."""
        return {
            "robot_id": self.robot_id,
            "start_state": None if self.start_state is None else self.start_state.to_kernel(),
            "goal_state": self.goal_state.to_kernel(),
            "obstacles": [o.to_kernel() for o in self.obstacles],
            "constraints": self.constraints.model_dump(),
            "planner": self.planner,
            "time_budget_s": self.time_budget_s,
            "seed": self.seed,
            "rate_hz": self.rate_hz,
            "save": self.save,
        }


class RobotStateOut(ApiResponse):
    position: list[float] = Field(description="[x, y, z] (m): centre (mobile) or tool (arm)")
    orientation: list[float] = Field(description="Quaternion [x, y, z, w]")
    joint_angles: list[float] = Field(description="rad; [] for a mobile robot")
    velocity: list[float] = Field(description="[vx, vy, vz] (m/s): centre or tool")


class Waypoint(ApiResponse):
    time: float = Field(description="s from the start")
    state: RobotStateOut


class LimitsOut(ApiResponse):
    max_velocity: list[float] = Field(description="Per axis or joint, as honoured")
    max_acceleration: list[float]
    max_jerk: list[float]
    collision_margin: float


class IKInfo(ApiResponse):
    solutions_found: int
    collision_free_solutions: int
    joint_angles: list[float] = Field(description="The goal chosen: free, nearest the start")


class PlanResult(Timed):
    """The original ``MotionPlan`` and what this API adds."""

    timing_aliases: ClassVar[tuple[str, ...]] = ("planning_time_ms",)

    robot_id: str
    model: str
    plan_id: str | None = None
    trajectory: list[Waypoint] = Field(description="Samples at rate_hz plus each waypoint")
    total_time: float = Field(description="s")
    total_distance: float = Field(
        description="Path length in configuration space (m for mobile robots, rad of "
        "joint-space length for arms)"
    )
    is_collision_free: bool = Field(
        description="Every segment between consecutive samples checked against the obstacles "
        "inflated by the margin (link spheres for arms), independently of the planner"
    )
    planning_time_ms: float = Field(
        description="The original's name for computation_time_ms: IK, planning, time "
        "parameterisation and the collision check (ms); the search alone is statistics.time_ms"
    )
    planner: str
    statistics: dict[str, Any] = Field(description="iterations, nodes, collision checks, time")
    path: list[list[float]] = Field(description="The planner's waypoints (configuration space)")
    positions: list[list[float]] = Field(description="Configuration at each sample")
    velocities: list[list[float]]
    accelerations: list[list[float]]
    jerks: list[list[float]]
    times: list[float]
    limits: LimitsOut
    rate_hz: float
    ik: IKInfo | None = Field(None, description="How an arm's pose goal was solved")


EXAMPLE_PLAN = {
    "robot_id": "mobile-1",
    "start_state": {
        "position": [0.0, 0.0, 0.0],
        "orientation": [0.0, 0.0, 0.0, 1.0],
        "joint_angles": [],
        "velocity": [0.0, 0.0, 0.0],
    },
    "goal_state": {
        "position": [4.0, 0.0, 0.0],
        "orientation": [0.0, 0.0, 0.0, 1.0],
        "joint_angles": [],
        "velocity": [0.0, 0.0, 0.0],
    },
    "obstacles": [
        {
            "id": "crate",
            "position": [2.0, 0.0, 0.0],
            "size": [1.0, 1.0, 1.0],
            "obstacle_type": "static",
        }
    ],
    "constraints": {
        "max_velocity": 1.0,
        "max_acceleration": 2.0,
        "max_jerk": 10.0,
        "collision_margin": 0.05,
    },
}


@ROUTES.post(
    "/plan",
    request=PlanRequest,
    response=PlanResult,
    example=EXAMPLE_PLAN,
    summary="Collision-free, jerk-limited motion (IK first for an arm's pose goal)",
    description="Obstacle position = box centre, size = full extents [sx, sy, sz] (m); "
    "quaternions [x, y, z, w]. A straight path when it is free, else RRT-Connect or lazy PRM "
    "with batched collision checks and shortcutting; then a jerk-limited S-curve per segment "
    "(stopping at each waypoint, so the motion stays on the checked path). No path: a JSON "
    "error (422) whose details.field names the start, the goal or the time budget and whose "
    "details.reason says why.",
)
def plan(req: Request) -> dict:
    return req.service(RoboticsService).plan(**req.body.args())


# ---------------------------------------------------------------- ik


class PoseIn(ApiModel):
    position: list[float] = Field(min_length=3, max_length=3, description="Tool [x, y, z] (m)")
    orientation: list[float] = Field(
        [0.0, 0.0, 0.0, 1.0], min_length=4, max_length=4, description="Quaternion [x, y, z, w]"
    )

    _pos = field_validator("position")(
        classmethod(lambda cls, v: _bounded(v, "position", -MAX_COORD, MAX_COORD))
    )
    _quat = field_validator("orientation")(RobotStateIn._quat.__func__)

    def to_kernel(self) -> dict[str, Any]:
        return {"position": self.position, "orientation": self.orientation}


class IKRequest(ApiModel):
    robot_id: str | None = Field(None, min_length=1, max_length=200)
    model: str | None = Field(None, max_length=40, description="A built-in model (panda, ur5e)")
    targets: list[PoseIn] = Field(
        min_length=1,
        max_length=MAX_TARGETS,
        validation_alias=AliasChoices("targets", "poses"),
        description="Tool poses in the robot's base frame",
    )
    target: PoseIn | None = Field(None, description="One pose (instead of targets)")
    n_seeds: int = Field(32, ge=1, le=MAX_SEEDS, description="Random starts per target")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    q_hint: list[float] | None = Field(
        None, max_length=MAX_JOINTS, description="Joint angles to start one seed from"
    )

    @model_validator(mode="before")
    @classmethod
    def _one(cls, data: Any) -> Any:
        if isinstance(data, dict) and "targets" not in data and "poses" not in data:
            if "target" in data:
                data = {**data, "targets": [data["target"]]}
        return data

    def args(self) -> dict[str, Any]:
        return {
            "targets": [t.to_kernel() for t in self.targets],
            "robot_id": self.robot_id,
            "model": self.model,
            "n_seeds": self.n_seeds,
            "seed": self.seed,
            "q_hint": self.q_hint,
        }


class IKSolution(ApiResponse):
    success: bool = Field(description="Within 0.1 mm and 1e-3 rad, inside the joint limits")
    joint_angles: list[float] = Field(description="The best solution (rad)")
    position_error: float = Field(description="m")
    orientation_error: float = Field(description="rad")
    solutions: list[list[float]] = Field(description="Distinct solutions found (rad)")


class IKResult(Timed):
    model: str
    results: list[IKSolution]
    success_rate: float
    n_seeds: int


@ROUTES.post(
    "/ik",
    request=IKRequest,
    response=IKResult,
    example={
        "robot_id": "panda-1",
        "targets": [
            {"position": [0.4, 0.1, 0.5], "orientation": [1.0, 0.0, 0.0, 0.0]},
            {"position": [0.3, -0.2, 0.4], "orientation": [1.0, 0.0, 0.0, 0.0]},
        ],
    },
    summary="Joint angles of tool poses: batched damped least squares from many seeds",
)
def ik(req: Request) -> dict:
    return req.service(RoboticsService).ik(**req.body.args())


# ---------------------------------------------------------------- execute, robots


class PlanRef(ApiModel):
    """What ``/execute`` reads of a posted plan."""

    plan_id: str | None = Field(None, min_length=1, max_length=200)
    robot_id: str | None = Field(None, min_length=1, max_length=200)


class ExecuteRequest(ApiModel):
    """A plan to follow: ``plan_id``, or the original ``MotionPlan`` object (the answer of
    ``/plan``, which carries its ``plan_id``), or a ``goal_state`` (planned first from the
    robot's current state, with ``obstacles``, ``constraints``, ``planner``, ``seed``,
    ``time_budget_s`` as ``/plan`` takes them); with none, the robot's last plan."""

    robot_id: str | None = Field(None, min_length=1, max_length=200)
    plan_id: str | None = Field(None, min_length=1, max_length=200)
    plan: PlanRef | None = Field(None, description="The answer of /plan")
    goal_state: RobotStateIn | None = Field(None, description="Plan to here first")
    obstacles: list[ObstacleIn] = Field(default_factory=list, max_length=MAX_OBSTACLES)
    constraints: ConstraintsIn = Field(default_factory=ConstraintsIn)
    planner: Planner = "rrt_connect"
    time_budget_s: float = Field(2.0, gt=0, le=MAX_BUDGET_S)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    time_scale: float = Field(
        1.0, gt=0, le=1000, description="Simulated seconds per wall second (10: ten times faster)"
    )

    @model_validator(mode="before")
    @classmethod
    def _bare_plan(cls, data: Any) -> Any:
        # The original posted the MotionPlan itself ({trajectory, total_time, ...}, and here
        # plan_id, planner...): only its plan_id and robot_id are read.
        if isinstance(data, dict) and "plan" not in data and "trajectory" in data:
            data = {
                "plan": {"plan_id": data.get("plan_id"), "robot_id": data.get("robot_id")},
                **{k: data[k] for k in ("time_scale",) if k in data},
            }
        return data

    def args(self) -> dict[str, Any]:
        plan = self.plan
        if plan is not None and self.plan_id is None and plan.plan_id is None:
            raise InvalidInput(
                "plan.plan_id",
                "this server executes the plans it made: post the answer of /plan (it carries "
                "plan_id), a plan_id, or a goal_state",
            )
        out: dict[str, Any] = {
            "robot_id": self.robot_id or (plan.robot_id if plan is not None else None),
            "plan_id": self.plan_id or (plan.plan_id if plan is not None else None),
            "time_scale": self.time_scale,
        }
        if out["plan_id"] is None and self.goal_state is not None:
            out.update(
                goal_state=self.goal_state.to_kernel(),
                obstacles=[o.to_kernel() for o in self.obstacles],
                constraints=self.constraints.model_dump(),
                planner=self.planner,
                time_budget_s=self.time_budget_s,
                seed=self.seed,
            )
        return out


class ExecutionResult(ApiResponse):
    execution_id: str
    robot_id: str
    plan_id: str
    status: str = Field(description="executing, completed or cancelled")
    progress: float = Field(description="0..1 of the trajectory's time")
    time_scale: float
    started: float = Field(description="Unix s")
    estimated_completion: float = Field(description="Unix s")
    estimated_completion_time: float = Field(
        description="Seconds from the start to completion (the original's field)"
    )
    total_time: float = Field(description="The plan's duration (s, simulated)")
    current_state: RobotStateOut


@ROUTES.post(
    "/execute",
    request=ExecuteRequest,
    response=ExecutionResult,
    example={
        "robot_id": "mobile-1",
        "goal_state": {"position": [1.0, 0.5, 0.0]},
        "constraints": {"max_velocity": 1.0, "max_acceleration": 2.0, "max_jerk": 10.0},
        "time_scale": 10.0,
    },
    summary="Follow a plan on the robot's simulated controller",
)
def execute(req: Request) -> dict:
    return req.service(RoboticsService).execute(**req.body.args())


class CancelRequest(ApiModel):
    robot_id: str = Field(min_length=1, max_length=200)


class CancelResult(ApiResponse):
    robot_id: str
    cancelled: bool = Field(description="False when nothing was running")
    execution: ExecutionResult | None = Field(description="The robot's last execution")


@ROUTES.post(
    "/cancel",
    request=CancelRequest,
    response=CancelResult,
    example={"robot_id": "mobile-1"},
    summary="Stop the robot's execution where it is",
)
def cancel(req: Request) -> dict:
    return req.service(RoboticsService).cancel(req.body.robot_id)


@ROUTES.get(
    "/execution/{execution_id}",
    response=ExecutionResult,
    summary="One execution: status, progress, the robot's state (404 when unknown)",
)
def execution(req: Request) -> dict:
    return req.service(RoboticsService).execution(req.path["execution_id"])


class RobotOut(ApiResponse):
    id: str
    name: str
    model: str
    kind: str = Field(description="mobile or arm")
    dof: int
    online: bool = Field(description="Simulated controllers always answer")
    current_state: RobotStateOut
    task_status: str = Field(description="idle, executing, completed or cancelled")
    progress: float = Field(description="0..1 of the current or last execution")
    last_plan_id: str | None
    execution_id: str | None
    estimated_completion: float | None = Field(
        None, description="Unix s when the running execution ends"
    )
    radius: float = Field(description="Mobile robot's sphere radius (m); 0 for arms")
    joint_limits: list[list[float]] = Field(description="Per joint or axis [low, high]")
    max_velocity: list[float]
    max_acceleration: list[float]
    max_jerk: list[float]
    updated: float = Field(description="Unix s")


@ROUTES.get(
    "/robot/{robot_id}",
    response=RobotOut,
    summary="A robot's live state and progress (404 when unknown)",
)
def robot(req: Request) -> dict:
    return req.service(RoboticsService).robot(req.path["robot_id"])


class RobotList(RootModel[list[RobotOut]]):
    """The registry, as the original listed it (a JSON array)."""


@ROUTES.get("/robots", response=RobotList, summary="The robot registry")
def robots(req: Request) -> dict:
    return req.service(RoboticsService).robots_list()


class RegisterRequest(ApiModel):
    id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        validation_alias=AliasChoices("id", "robot_id"),
        description="The new robot's id (letters, digits, - _ .)",
    )
    model: RobotModelName
    name: str | None = Field(None, max_length=200)

    def args(self) -> dict[str, Any]:
        return {"robot_id": self.id, "model": self.model, "name": self.name}


@ROUTES.post(
    "/robots",
    request=RegisterRequest,
    response=RobotOut,
    example={"id": "panda-2", "model": "panda", "name": "Franka Panda 2"},
    summary="Register a robot of a built-in model (again with the same model: unchanged)",
)
def register(req: Request) -> dict:
    return req.service(RoboticsService).register(**req.body.args())
