"""The robotics service: the robot registry, plans and simulated executions (the state), and
thin calls into the robotics kernels.

State, in :class:`~prism_kernels.service.Collection` s (so it survives a restart):

- ``robot``: the registry. One document per robot: its model (a built-in
  :data:`~prism_kernels.robotics.models.MODELS` name), its last known state (position,
  orientation, joint angles, velocity), its last plan and its current execution. At first
  start (an empty registry) one robot of each built-in model is registered
  (:data:`SEED_ROBOTS`: ``mobile-1``, ``panda-1``, ``ur5e-1``), so a new server can plan at once.
- ``plan``: the plans computed (newest first, bounded), with their trajectories as arrays.
- ``execution``: simulated executions (newest first, bounded): the trajectory followed, the
  wall-clock start, the time scale, and the state when it completed or was cancelled.

Execution is simulated (:class:`~prism_kernels.robotics.execution.SimulatedController`, the
honest stand-in for hardware): the state at any moment is computed from the wall clock
(``time.time``, so that a restarted server finds an execution where it would be), with no
thread driving it. Completion is detected in two ways, whichever comes first: when a robot's
state is read (``robot``, ``robots``, ``execution``) and by a timer set for the estimated
completion time (``threading.Timer``, one per running execution, re-armed at start-up for the
executions a restart finds running). Each start, completion and cancellation publishes
``RobotStatus`` (``robot_id``, ``execution_id``, ``status``, ``progress``, the state,
``timestamp``).

Units: metres, radians, seconds; quaternions ``(x, y, z, w)``; obstacle ``position`` is a
box's centre and ``size`` its full extents.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput, Unsolvable
from prism_kernels.robotics import collision as _collision
from prism_kernels.robotics import ik as _ik
from prism_kernels.robotics import kinematics as _kin
from prism_kernels.robotics import models as _models
from prism_kernels.robotics import planners as _planners
from prism_kernels.robotics import timing as _timing
from prism_kernels.robotics.execution import SimulatedController
from prism_kernels.service import TIMING_KEY, DomainService

SEED_ROBOTS = (
    ("mobile-1", "Mobile robot 1", "mobile"),
    ("panda-1", "Franka Panda 1", "panda"),
    ("ur5e-1", "UR5e 1", "ur5e"),
)
"""``(id, name, model)`` of the robots registered at first start."""

PLANNERS = _planners.PLANNERS
DEFAULT_RATE_HZ = 50.0
MAX_TRAJECTORY_SAMPLES = 20_000
IDENTITY_QUATERNION = (0.0, 0.0, 0.0, 1.0)
EXECUTING, COMPLETED, CANCELLED = "executing", "completed", "cancelled"


def _now() -> float:
    return time.time()


class RoboticsService(DomainService):
    """Robot registry, motion planning, inverse kinematics and simulated execution.

    Parameters
    ----------
    store, bus : see :class:`~prism_kernels.service.DomainService`.
    clock : the wall clock executions are timed by (seconds; ``time.time``).
    max_plans, max_executions : how many plans and executions are kept (oldest dropped first).
    timers : arm a completion timer per running execution (off in tests that drive the clock).
    """

    domain = "robotics"
    events = ("RobotStatus",)

    def __init__(
        self,
        store: Any = None,
        bus: Any = None,
        *,
        clock: Any = _now,
        max_plans: int = 200,
        max_executions: int = 200,
        timers: bool = True,
    ) -> None:
        super().__init__(store, bus)
        self.clock = clock
        self.use_timers = bool(timers)
        self.robots = self.collection("robot", max_items=1000, label="robot")
        self.plans = self.collection("plan", max_items=int(max_plans), label="plan")
        self.executions = self.collection(
            "execution", max_items=int(max_executions), label="execution"
        )
        self._controllers: dict[str, SimulatedController] = {}
        self._timers: dict[str, threading.Timer] = {}
        with self.lock:
            if self.robots.count() == 0:
                for rid, name, model in SEED_ROBOTS:
                    self._register(rid, name, model)
            for _, doc in self.robots.page(limit=None):
                eid = doc.get("execution_id")
                running = doc.get("task_status") == EXECUTING
                if eid and running and self.executions.exists(eid):
                    self._arm_timer(eid)

    # ------------------------------------------------------------------ the registry

    def _register(self, robot_id: str, name: str, model_name: str) -> dict[str, Any]:
        model = _models.get_model(model_name)
        if model.kind == "arm":
            q = np.asarray(model.home, float)
            state = self._arm_state(model, q[None, :], np.zeros((1, model.dof)))[0]
        else:
            p = np.zeros(3)
            p[: model.dof] = model.home
            state = {
                "position": p.tolist(),
                "orientation": list(IDENTITY_QUATERNION),
                "joint_angles": [],
                "velocity": [0.0, 0.0, 0.0],
            }
        doc = {
            "id": robot_id,
            "name": name,
            "model": model.name,
            "kind": model.kind,
            "dof": int(model.dof),
            "state": state,
            "task_status": "idle",
            "last_plan_id": None,
            "execution_id": None,
            "created": _now(),
            "updated": _now(),
        }
        self.robots.put(robot_id, doc)
        return doc

    def register(self, robot_id: str, model: str, name: str | None = None) -> dict[str, Any]:
        """Add a robot of a built-in ``model`` (``mobile``, ``panda``, ``ur5e``) at the model's
        home state. Registering an existing id again with the same model changes nothing
        (its name excepted); with another model it is refused (field ``model``)."""
        mdl = _models.get_model(model)  # InvalidInput naming the model when unknown
        with self.lock:
            if self.robots.exists(robot_id):
                doc = self.robots.get(robot_id)
                if doc["model"] != mdl.name:
                    raise InvalidInput(
                        "model",
                        f"robot {robot_id!r} exists already as a {doc['model']}, not a {mdl.name}",
                    )
                if name and name != doc["name"]:
                    doc.update(name=name, updated=_now())
                    self.robots.put(robot_id, doc)
            else:
                self._register(robot_id, name or robot_id, mdl.name)
        return self.robot(robot_id)

    def _model(self, doc: Mapping[str, Any]) -> Any:
        return _models.get_model(doc["model"])

    def robot(self, robot_id: str) -> dict[str, Any]:
        """One robot: model and limits, its live state (its execution's, computed now, while
        one runs), progress, task status, last plan; :class:`NotFound` when unknown."""
        doc = self.robots.get(robot_id)
        eid = doc.get("execution_id")
        live = None
        if eid and self.executions.exists(eid):
            ex, live = self._advance(eid)
            doc = self.robots.get(robot_id)
        model = self._model(doc)
        out = {
            "id": doc["id"],
            "name": doc["name"],
            "model": doc["model"],
            "kind": doc["kind"],
            "dof": doc["dof"],
            "online": True,
            "current_state": doc["state"] if live is None else live["robot_state"],
            "task_status": doc["task_status"],
            "progress": float(doc.get("progress", 0.0) if live is None else live["progress"]),
            "last_plan_id": doc.get("last_plan_id"),
            "execution_id": eid,
            "joint_limits": model.joint_limits.tolist(),
            "max_velocity": model.max_velocity.tolist(),
            "max_acceleration": model.max_acceleration.tolist(),
            "max_jerk": model.max_jerk.tolist(),
            "radius": float(model.radius),
            "updated": doc["updated"],
        }
        if live is not None:
            out["estimated_completion"] = ex["estimated_completion"]
        return out

    def robots_list(self) -> list[dict[str, Any]]:
        """Every robot (newest registration first), states brought up to date."""
        out = []
        for rid in self.robots.ids():
            out.append(self.robot(rid))
        return out

    # ------------------------------------------------------------------ states

    def _arm_state(self, model: Any, q: np.ndarray, qd: np.ndarray) -> list[dict[str, Any]]:
        """RobotStates of an arm at joint angles ``q`` (N, dof) moving at ``qd`` (N, dof):
        the tool's position and orientation (quaternion xyzw) from forward kinematics, the
        tool's linear velocity ``J[:3] @ qd``."""
        T = np.asarray(_kin.fk(model, q))
        quat = np.asarray(_kin.quaternion_from_rotation(T[..., :3, :3]))
        J = np.asarray(_kin.jacobian(model, q))
        v = np.einsum("nij,nj->ni", J[:, :3, :], qd)
        return [
            {
                "position": T[i, :3, 3].tolist(),
                "orientation": quat[i].tolist(),
                "joint_angles": q[i].tolist(),
                "velocity": v[i].tolist(),
            }
            for i in range(q.shape[0])
        ]

    def _mobile_states(
        self, model: Any, p: np.ndarray, v: np.ndarray, orientation: Sequence[float]
    ) -> list[dict[str, Any]]:
        n, d = p.shape
        P = np.zeros((n, 3))
        V = np.zeros((n, 3))
        P[:, :d] = p
        V[:, :d] = v
        o = [float(x) for x in orientation]
        return [
            {
                "position": P[i].tolist(),
                "orientation": o,
                "joint_angles": [],
                "velocity": V[i].tolist(),
            }
            for i in range(n)
        ]

    def _states(
        self, model: Any, q: np.ndarray, qd: np.ndarray, orientation: Sequence[float]
    ) -> list[dict[str, Any]]:
        q = np.atleast_2d(np.asarray(q, float))
        qd = np.atleast_2d(np.asarray(qd, float))
        if model.kind == "arm":
            return self._arm_state(model, q, qd)
        return self._mobile_states(model, q, qd, orientation)

    # ------------------------------------------------------------------ inputs

    def _mobile_point(self, model: Any, state: Mapping[str, Any] | None, field: str) -> np.ndarray:
        pos = None if state is None else state.get("position")
        if pos is None:
            raise InvalidInput(f"{field}.position", "a mobile robot needs a position [x, y, z]")
        p = np.asarray(pos, float)
        if p.shape != (3,):
            raise InvalidInput(f"{field}.position", f"has {p.size} values; want 3 (x, y, z)")
        p = p[: model.dof]
        lim = np.asarray(model.joint_limits, float)
        out = np.flatnonzero((p < lim[:, 0]) | (p > lim[:, 1]))
        if out.size:
            j = int(out[0])
            raise InvalidInput(
                f"{field}.position.{j}",
                f"{'xyz'[j]} = {p[j]:.6g} m is outside the workspace "
                f"[{lim[j, 0]:g}, {lim[j, 1]:g}] m of the {model.name} robot",
            )
        return p

    def _joints(self, model: Any, q: Sequence[float], field: str) -> np.ndarray:
        q = np.asarray(q, float)
        if q.shape != (model.dof,):
            raise InvalidInput(
                field, f"has {q.size} values; the {model.name} has {model.dof} joints"
            )
        lim = np.asarray(model.joint_limits, float)
        bad = np.flatnonzero((q < lim[:, 0] - 1e-9) | (q > lim[:, 1] + 1e-9))
        if bad.size:
            j = int(bad[0])
            raise InvalidInput(
                f"{field}.{j}",
                f"joint {j + 1} = {q[j]:.6g} rad is outside its limits "
                f"[{lim[j, 0]:.4f}, {lim[j, 1]:.4f}] rad",
            )
        return q

    def _limits(self, model: Any, constraints: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        """Per-axis (mobile) or per-joint (arm) limits: the request's, capped by the model's."""
        out = []
        for key in ("max_velocity", "max_acceleration", "max_jerk"):
            own = np.asarray(getattr(model, key), float)
            given = constraints.get(key)
            out.append(own if given is None else np.minimum(own, float(given)))
        return tuple(out)

    # ------------------------------------------------------------------ planning

    def plan(
        self,
        robot_id: str,
        goal_state: Mapping[str, Any],
        start_state: Mapping[str, Any] | None = None,
        obstacles: Sequence[Mapping[str, Any]] = (),
        constraints: Mapping[str, Any] | None = None,
        planner: str = "rrt_connect",
        time_budget_s: float = 2.0,
        seed: int = 0,
        rate_hz: float = DEFAULT_RATE_HZ,
        save: bool = True,
    ) -> dict[str, Any]:
        """A collision-free, time-parameterised motion of robot ``robot_id``.

        ``start_state``/``goal_state`` give ``position`` (mobile robots: ``[x, y, z]``) or
        ``joint_angles`` (arms; a goal with only ``position`` + ``orientation`` is solved by
        IK first, choosing the collision-free solution nearest the start). Without a start,
        the robot's last state. ``obstacles``: boxes ``{id, position (centre), size (full
        extents), obstacle_type}`` (and spheres ``{position, radius}``). ``constraints``:
        ``max_velocity``, ``max_acceleration``, ``max_jerk`` (per axis or per joint; the
        model's own limits cap them) and ``collision_margin`` (m).

        Returns the trajectory (``times``, ``positions`` (N, dof), velocities, accelerations,
        jerks and the RobotState at each sample), ``total_time``, ``total_distance``,
        ``is_collision_free`` (an independent dense check of every trajectory segment),
        ``computation_time_ms`` (IK, planning, timing and the check), ``planner`` and its
        statistics (``time_ms``: the search alone), ``plan_id`` (when saved).
        No path: :class:`Unsolvable` naming the start, the goal or the time budget, with why.
        """
        constraints = dict(constraints or {})
        doc = self.robots.get(robot_id)
        model = self._model(doc)
        current = self.robot(robot_id)["current_state"] if start_state is None else None
        if planner not in PLANNERS:
            raise InvalidInput("planner", f"unknown planner {planner!r}; choose {PLANNERS}")
        margin = float(constraints.get("collision_margin") or 0.0)
        if not np.isfinite(margin) or margin < 0:
            raise InvalidInput("constraints.collision_margin", "must be >= 0 (m)")
        scene = _collision.Scene.from_obstacles(list(obstacles))
        vmax, amax, jmax = self._limits(model, constraints)
        orientation = IDENTITY_QUATERNION
        with self.timed("plan") as t:
            if model.kind == "arm":
                js = None if start_state is None else start_state.get("joint_angles")
                if js is None or len(js) == 0:
                    q0 = np.asarray(
                        (current or self.robot(robot_id)["current_state"])["joint_angles"], float
                    )
                else:
                    q0 = self._joints(
                        model, start_state["joint_angles"], "start_state.joint_angles"
                    )
                q1, ik_info = self._arm_goal(model, scene, margin, q0, goal_state, seed)
            else:
                if start_state is None or start_state.get("position") is None:
                    cur = current or self.robot(robot_id)["current_state"]
                    q0 = np.asarray(cur["position"], float)[: model.dof]
                    orientation = cur.get("orientation", IDENTITY_QUATERNION)
                else:
                    q0 = self._mobile_point(model, start_state, "start_state")
                    orientation = start_state.get("orientation")
                    if orientation is None:
                        orientation = IDENTITY_QUATERNION
                q1 = self._mobile_point(model, goal_state, "goal_state")
                ik_info = None
            res = _planners.plan(
                model,
                scene,
                q0,
                q1,
                planner=planner,
                margin=margin,
                seed=int(seed),
                time_budget_s=float(time_budget_s),
            )
            if not res.success:
                raise Unsolvable(
                    self._reason_field(res.reason),
                    f"no collision-free path: {res.reason}",
                    reason=res.reason,
                    planner=res.planner,
                    statistics=dict(res.stats),
                )
            path = np.asarray(res.path, float)
            traj = _timing.time_parameterize(path, vmax, amax, jmax, rate_hz=float(rate_hz))
            times = np.asarray(traj.times, float)
            if times.size > MAX_TRAJECTORY_SAMPLES:
                raise InvalidInput(
                    "rate_hz",
                    f"the trajectory lasts {float(traj.total_time):.4g} s: {times.size} samples "
                    f"at {rate_hz:g} Hz, more than {MAX_TRAJECTORY_SAMPLES}; lower rate_hz or "
                    "raise the limits",
                )
            pos = np.asarray(traj.positions, float)
            # Independent check of what will be executed: every segment between consecutive
            # samples, densely, against the inflated obstacles (link spheres for arms).
            free = self._trajectory_free(model, scene, pos, margin)
            states = self._states(model, pos, np.asarray(traj.velocities, float), orientation)
        out = {
            "robot_id": robot_id,
            "model": model.name,
            "times": times,
            "positions": pos,
            "velocities": np.asarray(traj.velocities, float),
            "accelerations": np.asarray(traj.accelerations, float),
            "jerks": np.asarray(traj.jerks, float),
            "path": path,
            "trajectory": [
                {"time": float(times[i]), "state": states[i]} for i in range(len(states))
            ],
            "total_time": float(traj.total_time),
            "total_distance": float(traj.total_distance),
            "is_collision_free": bool(free),
            "planner": res.planner,
            "statistics": dict(res.stats),
            "limits": {
                "max_velocity": np.atleast_1d(vmax).tolist(),
                "max_acceleration": np.atleast_1d(amax).tolist(),
                "max_jerk": np.atleast_1d(jmax).tolist(),
                "collision_margin": margin,
            },
            "rate_hz": float(rate_hz),
            "ik": ik_info,
            TIMING_KEY: t.ms,
        }
        if not free:
            raise Unsolvable(
                "obstacles",
                "the time-parameterised trajectory failed the independent collision check",
                reason="trajectory check failed",
                planner=res.planner,
            )
        if save:
            plan_id = f"plan-{uuid.uuid4().hex[:12]}"
            out["plan_id"] = plan_id
            with self.lock:
                self.plans.put(
                    plan_id,
                    {
                        "id": plan_id,
                        "robot_id": robot_id,
                        "model": model.name,
                        "total_time": out["total_time"],
                        "total_distance": out["total_distance"],
                        "planner": res.planner,
                        "orientation": [float(x) for x in orientation],
                        "trajectory": traj.to_dict(),
                        "created": _now(),
                    },
                    {
                        "times": times,
                        "positions": pos,
                        "velocities": out["velocities"],
                        "accelerations": out["accelerations"],
                        "jerks": out["jerks"],
                    },
                )
                doc = self.robots.get(robot_id)
                doc.update(last_plan_id=plan_id, updated=_now())
                self.robots.put(robot_id, doc)
        return out

    @staticmethod
    def _reason_field(reason: str) -> str:
        r = (reason or "").lower()
        if "start" in r:
            return "start_state"
        if "budget" in r or "iteration" in r:
            return "time_budget_s"
        return "goal_state"

    @staticmethod
    def _trajectory_free(model: Any, scene: Any, pos: np.ndarray, margin: float) -> bool:
        """Every segment between consecutive samples (exact capsules for a mobile robot, link
        spheres at <= 0.01 rad steps for an arm), and every sample, clear of the scene
        inflated by ``margin``."""
        hit = bool(np.any(np.asarray(_collision.configs_collide(model, scene, pos, margin))))
        if pos.shape[0] > 1:
            edges = _collision.edges_collide(model, scene, pos[:-1], pos[1:], margin, 0.01)
            hit = hit or bool(np.any(np.asarray(edges)))
        return not hit

    def _arm_goal(
        self,
        model: Any,
        scene: Any,
        margin: float,
        q0: np.ndarray,
        goal: Mapping[str, Any],
        seed: int,
    ) -> tuple[np.ndarray, dict[str, Any] | None]:
        if goal.get("joint_angles") is not None and len(goal["joint_angles"]) > 0:
            return self._joints(model, goal["joint_angles"], "goal_state.joint_angles"), None
        if goal.get("position") is None:
            raise InvalidInput(
                "goal_state", "an arm's goal needs joint_angles, or a position and orientation"
            )
        quat = goal.get("orientation")
        quat = IDENTITY_QUATERNION if quat is None else quat
        target = np.asarray(
            _kin.pose_from_position_quaternion(
                np.asarray(goal["position"], float)[None, :], np.asarray(quat, float)[None, :]
            )
        )
        res = _ik.solve_ik(model, target, seed=int(seed), q_hint=q0[None, :])
        if not bool(np.asarray(res.success)[0]):
            raise Unsolvable(
                "goal_state",
                "no joint configuration reaches the goal pose within "
                "0.1 mm and 1e-3 rad (inverse kinematics)",
                reason="goal unreachable",
                position_error=float(np.asarray(res.position_error)[0]),
                orientation_error=float(np.asarray(res.orientation_error)[0]),
            )
        sols = np.atleast_2d(np.asarray(res.solutions[0], float))
        hit = np.asarray(_collision.configs_collide(model, scene, sols, margin), bool)
        free = sols[~hit]
        if free.shape[0] == 0:
            raise Unsolvable(
                "goal_state",
                f"every one of the {sols.shape[0]} inverse-kinematics solutions of the goal "
                "pose is in collision",
                reason="goal in collision",
            )
        q1 = free[np.argmin(np.abs(free - q0).sum(axis=1))]
        return q1, {
            "solutions_found": int(sols.shape[0]),
            "collision_free_solutions": int(free.shape[0]),
            "joint_angles": q1.tolist(),
        }

    # ------------------------------------------------------------------ inverse kinematics

    def ik(
        self,
        targets: Sequence[Mapping[str, Any]],
        robot_id: str | None = None,
        model: str | None = None,
        n_seeds: int = 32,
        seed: int = 0,
        q_hint: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        """Joint solutions of one or many tool poses (``{position, orientation xyzw}``) for a
        robot's arm (or a built-in ``model``): per target success, the best solution, its
        position (m) and orientation (rad) errors and the distinct solutions found."""
        if robot_id is not None:
            mdl = self._model(self.robots.get(robot_id))
        elif model is not None:
            mdl = _models.get_model(model)
        else:
            raise InvalidInput("robot_id", "give a robot_id or a model")
        if mdl.kind != "arm":
            raise InvalidInput("robot_id", f"the {mdl.name} robot has no joints to solve for")
        if len(targets) == 0:
            raise InvalidInput("targets", "give at least one target pose")
        p = np.asarray([t["position"] for t in targets], float)
        quat = np.asarray(
            [
                IDENTITY_QUATERNION if t.get("orientation") is None else t["orientation"]
                for t in targets
            ],
            float,
        )
        hint = None if q_hint is None else self._joints(mdl, q_hint, "q_hint")
        with self.timed("ik") as tm:
            T = _kin.pose_from_position_quaternion(p, quat)
            res = _ik.solve_ik(mdl, T, n_seeds=int(n_seeds), seed=int(seed), q_hint=hint)
        succ = np.asarray(res.success, bool)
        q = np.asarray(res.q, float)
        pe = np.asarray(res.position_error, float)
        oe = np.asarray(res.orientation_error, float)
        rows = [
            {
                "success": bool(succ[i]),
                "joint_angles": q[i].tolist(),
                "position_error": float(pe[i]),
                "orientation_error": float(oe[i]),
                "solutions": np.atleast_2d(np.asarray(res.solutions[i], float)).tolist()
                if len(res.solutions[i])
                else [],
            }
            for i in range(len(targets))
        ]
        return {
            "model": mdl.name,
            "results": rows,
            "success_rate": float(succ.mean()),
            "n_seeds": int(n_seeds),
            TIMING_KEY: tm.ms,
        }

    # ------------------------------------------------------------------ execution

    def execute(
        self,
        robot_id: str | None = None,
        plan_id: str | None = None,
        time_scale: float = 1.0,
        goal_state: Mapping[str, Any] | None = None,
        **plan_options: Any,
    ) -> dict[str, Any]:
        """Start following a plan on the robot's simulated controller (``time_scale``
        trajectory seconds per wall second: 10 runs ten times faster than real time).

        The plan: ``plan_id`` (a stored plan), else a ``goal_state`` (planned here first from
        the robot's current state, with ``plan_options`` as :meth:`plan` takes them), else
        the robot's last plan. A running execution of the robot is cancelled first. Returns
        :meth:`execution` (id, status, progress, estimated completion).
        """
        if plan_id is None and goal_state is not None:
            if robot_id is None:
                raise InvalidInput("robot_id", "give the robot to move to goal_state")
            if self.robots.get(robot_id).get("task_status") == EXECUTING:
                self.cancel(robot_id)  # plan from where the robot stops
            plan_id = self.plan(robot_id, goal_state, **plan_options)["plan_id"]
        if plan_id is None:
            if robot_id is None:
                raise InvalidInput("plan_id", "give a plan_id, a goal_state or a robot_id")
            plan_id = self.robots.get(robot_id).get("last_plan_id")
            if plan_id is None:
                raise InvalidInput("plan_id", f"robot {robot_id!r} has no plan yet: plan first")
        pdoc = self.plans.get(plan_id)
        robot_id = robot_id or pdoc["robot_id"]
        if robot_id != pdoc["robot_id"]:
            raise InvalidInput(
                "robot_id", f"plan {plan_id!r} was made for {pdoc['robot_id']!r}, not {robot_id!r}"
            )
        self.robots.get(robot_id)  # NotFound when the robot went away
        traj = _timing.Trajectory.from_dict(pdoc["trajectory"])
        ctl = SimulatedController(traj, time_scale, clock=self.clock, wall_clock=self.clock)
        eid = f"exec-{uuid.uuid4().hex[:12]}"
        with self.lock:
            doc = self.robots.get(robot_id)
            if doc.get("execution_id") and doc.get("task_status") == EXECUTING:
                self.cancel(robot_id)
            st = ctl.start()
            started = self.clock()
            ex = {
                "id": eid,
                "robot_id": robot_id,
                "plan_id": plan_id,
                "model": pdoc["model"],
                "orientation": pdoc["orientation"],
                "time_scale": ctl.time_scale,
                "started": started,
                "total_time": float(traj.total_time),
                "estimated_completion": started + ctl.duration_s,
                "status": st["status"],
                "ended": None,
                "snapshot": ctl.snapshot(),
            }
            self.executions.put(eid, ex)
            self._controllers[eid] = ctl
            doc = self.robots.get(robot_id)
            doc.update(execution_id=eid, task_status=EXECUTING, progress=0.0, updated=self.clock())
            self.robots.put(robot_id, doc)
            self._arm_timer(eid)
        self._status_event(ex, self._live(ex, st))
        return self.execution(eid)

    def _ctl(self, ex: Mapping[str, Any]) -> SimulatedController:
        """The execution's controller (restored from its snapshot after a restart)."""
        ctl = self._controllers.get(ex["id"])
        if ctl is None:
            ctl = SimulatedController.restore(
                ex["snapshot"], clock=self.clock, wall_clock=self.clock
            )
            self._controllers[ex["id"]] = ctl
        return ctl

    def _live(self, ex: Mapping[str, Any], st: Mapping[str, Any]) -> dict[str, Any]:
        """The controller's state ``st`` with the robot's RobotState."""
        model = _models.get_model(ex["model"])
        state = self._states(
            model,
            np.asarray(st["position"], float),
            np.asarray(st["velocity"], float),
            ex["orientation"],
        )[0]
        return {**st, "robot_state": state}

    def _advance(self, eid: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(execution document, live state)`` now. An execution found finished is recorded
        (status, end time, the robot's final state) and announced once (RobotStatus)."""
        with self.lock:
            ex = self.executions.get(eid)
            ctl = self._ctl(ex)
            now = self.clock()
            st = self._live(ex, ctl.state(now))
            finished = ex["status"] == EXECUTING and st["status"] != EXECUTING
            if finished:
                ex.update(status=st["status"], ended=now, snapshot=ctl.snapshot(now))
                self.executions.put(eid, ex)
                timer = self._timers.pop(eid, None)
                if timer is not None:
                    timer.cancel()
                if self.robots.exists(ex["robot_id"]):
                    doc = self.robots.get(ex["robot_id"])
                    if doc.get("execution_id") == eid:
                        doc.update(
                            state=st["robot_state"],
                            task_status=st["status"],
                            progress=st["progress"],
                            updated=now,
                        )
                        self.robots.put(ex["robot_id"], doc)
        if finished:
            self._status_event(ex, st)
        return ex, st

    def execution(self, execution_id: str) -> dict[str, Any]:
        """One execution: status, progress (0..1), the robot's state now, estimated
        completion (Unix s, and seconds from the start as the original reported it)."""
        ex, st = self._advance(execution_id)
        return {
            "execution_id": execution_id,
            "robot_id": ex["robot_id"],
            "plan_id": ex["plan_id"],
            "status": ex["status"],
            "progress": float(st["progress"]),
            "time_scale": ex["time_scale"],
            "started": ex["started"],
            "estimated_completion": ex["estimated_completion"],
            "estimated_completion_time": ex["total_time"] / ex["time_scale"],
            "total_time": ex["total_time"],
            "current_state": st["robot_state"],
        }

    def cancel(self, robot_id: str) -> dict[str, Any]:
        """Stop the robot's running execution where it is (the simulated robot stops at once;
        its state stays there). Returns ``{robot_id, cancelled, execution}``: ``cancelled``
        is false when nothing was running (``execution`` is then the last one, or None)."""
        doc = self.robots.get(robot_id)
        eid = doc.get("execution_id")
        if not eid or not self.executions.exists(eid):
            return {"robot_id": robot_id, "cancelled": False, "execution": None}
        cancelled = False
        with self.lock:
            ex, _ = self._advance(eid)
            if ex["status"] == EXECUTING:
                ctl = self._ctl(ex)
                now = self.clock()
                st = self._live(ex, ctl.cancel(now))
                ex.update(status=CANCELLED, ended=now, snapshot=ctl.snapshot(now))
                self.executions.put(eid, ex)
                timer = self._timers.pop(eid, None)
                if timer is not None:
                    timer.cancel()
                doc = self.robots.get(robot_id)
                doc.update(
                    state=st["robot_state"],
                    task_status=CANCELLED,
                    progress=st["progress"],
                    updated=now,
                )
                self.robots.put(robot_id, doc)
                self._status_event(ex, st)
                cancelled = True
        return {"robot_id": robot_id, "cancelled": cancelled, "execution": self.execution(eid)}

    def _arm_timer(self, eid: str) -> None:
        """A timer that records the execution's completion when it is due (completion is
        also detected whenever the state is read)."""
        if not self.use_timers:
            return
        ex = self.executions.get(eid)
        delay = max(0.0, float(ex["estimated_completion"]) - self.clock()) + 0.05
        timer = threading.Timer(delay, self._timer_fired, args=(eid,))
        timer.daemon = True
        old = self._timers.pop(eid, None)
        if old is not None:
            old.cancel()
        self._timers[eid] = timer
        timer.start()

    def _timer_fired(self, eid: str) -> None:
        self._timers.pop(eid, None)
        try:
            self._advance(eid)
        except Exception:  # the store closed under a stopping server: no one to tell
            pass

    def _status_event(self, ex: Mapping[str, Any], st: Mapping[str, Any]) -> None:
        self.publish(
            "RobotStatus",
            {
                "robot_id": ex["robot_id"],
                "execution_id": ex["id"],
                "plan_id": ex["plan_id"],
                "status": ex["status"],
                "progress": float(st["progress"]),
                "state": st["robot_state"],
                "timestamp": int(time.time()),
            },
        )

    # ------------------------------------------------------------------ the store

    def get_plan(self, plan_id: str) -> dict[str, Any]:
        """A stored plan's summary with its trajectory arrays."""
        return {**self.plans.get(plan_id), **self.plans.arrays(plan_id)}

    def health_details(self) -> dict[str, Any]:
        ops = self.latency().get("plan", {})
        docs = [d for _, d in self.robots.page(limit=None)]
        return {
            "robots": len(docs),
            "robots_online": len(docs),
            "robots_executing": sum(1 for d in docs if d.get("task_status") == EXECUTING),
            "models": sorted(_models.MODELS),
            "planners": list(PLANNERS),
            "plans_made": int(ops.get("count", 0) or 0),
            "planning_latency_ms": ops.get("mean_ms"),
        }

    def close(self) -> None:
        for t in list(self._timers.values()):
            t.cancel()
        self._timers.clear()
