"""A simulated controller: the honest stand-in for a robot's hardware following a trajectory.

There is no robot behind PRISM's execute route; :class:`SimulatedController` plays a
:class:`~prism_kernels.robotics.timing.Trajectory` against a clock and reports where an ideal
robot tracking it perfectly would be. Its state is *computed from the clock* each time it is
read (no thread, no timer): ``trajectory.sample(time_scale * (now - started_at))``.

Cancelling is an instantaneous stop of the simulated robot: the position freezes where it
was at the cancel instant and the velocity drops to zero at once (a real robot would need a
braking trajectory; the simulation does not pretend to model one).

A controller's :meth:`~SimulatedController.snapshot` is JSON-able so a service can persist it
and :meth:`~SimulatedController.restore` it after a restart: the time that passed while the
process was down is measured with a wall clock (``time.time`` by default), which survives a
restart, and re-expressed in the new process's clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.timing import Trajectory

#: The statuses an execution goes through.
STATUSES = ("pending", "executing", "completed", "cancelled")

_SNAPSHOT_VERSION = 1


def _check_time_scale(time_scale: Any) -> float:
    try:
        scale = float(time_scale)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("time_scale", "must be a number") from exc
    if not (math.isfinite(scale) and scale > 0):
        raise InvalidInput("time_scale", "must be positive and finite")
    return scale


class SimulatedController:
    """Plays a trajectory in real time (or ``time_scale`` times faster) against a clock.

    Parameters
    ----------
    trajectory : Trajectory
        What to follow (see :func:`~prism_kernels.robotics.timing.time_parameterize`).
    time_scale : float, default 1
        Trajectory seconds per clock second: 2 plays twice as fast, 0.5 at half speed.
        Reported velocities are rates of change per *clock* second (``time_scale`` times the
        trajectory's), so a scale above 1 may exceed the limits the trajectory honours.
    clock : callable, default ``time.monotonic``
        Returns the current time in seconds; tests inject a clock they advance by hand.
    wall_clock : callable, default ``time.time``
        A clock that survives a process restart, used only by :meth:`snapshot` and
        :meth:`restore` to account for the time between them.

    Notes
    -----
    ``state(now)`` and the other methods take ``now`` (a reading of ``clock``) so a caller can
    evaluate several things at one instant; by default they read the clock.
    """

    def __init__(
        self,
        trajectory: Trajectory,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(trajectory, Trajectory):
            raise InvalidInput("trajectory", "must be a Trajectory (from time_parameterize)")
        self.trajectory = trajectory
        self.time_scale = _check_time_scale(time_scale)
        self.clock = clock
        self.wall_clock = wall_clock
        self._started_at: float | None = None
        self._cancelled_at: float | None = None  # trajectory time (s) when cancelled
        self._cancelled_elapsed: float | None = None  # clock seconds from start to cancel

    # ------------------------------------------------------------------ lifecycle
    def _now(self, now: float | None) -> float:
        value = float(self.clock() if now is None else now)
        if not math.isfinite(value):
            raise InvalidInput("now", "must be finite")
        return value

    @property
    def duration_s(self) -> float:
        """Clock seconds the whole trajectory takes at this time scale."""
        return self.trajectory.total_time / self.time_scale

    @property
    def started(self) -> bool:
        return self._started_at is not None

    def start(self, now: float | None = None) -> dict[str, Any]:
        """Start following the trajectory at ``now`` (default: the clock); returns the state.

        Raises
        ------
        InvalidInput
            (field ``status``) when already started or cancelled.
        """
        if self._cancelled_at is not None:
            raise InvalidInput("status", "execution was cancelled; start a new one")
        if self._started_at is not None:
            raise InvalidInput("status", "execution already started")
        t = self._now(now)
        self._started_at = t
        return self.state(t)

    def cancel(self, now: float | None = None) -> dict[str, Any]:
        """Stop the simulated robot instantly where it is at ``now``; returns the state.

        Cancelling a completed execution changes nothing (it stays ``completed``); cancelling
        twice keeps the first stop; cancelling before the start leaves the robot at the start.
        """
        t = self._now(now)
        if self._cancelled_at is not None:
            return self.state(t)
        if self._started_at is None:
            self._cancelled_at, self._cancelled_elapsed = 0.0, 0.0
            return self.state(t)
        elapsed = max(0.0, t - self._started_at)
        traj_t = min(elapsed * self.time_scale, self.trajectory.total_time)
        if elapsed * self.time_scale >= self.trajectory.total_time:
            return self.state(t)  # already completed
        self._cancelled_at, self._cancelled_elapsed = traj_t, elapsed
        return self.state(t)

    # ------------------------------------------------------------------ state
    def status(self, now: float | None = None) -> str:
        """``"pending"``, ``"executing"``, ``"completed"`` or ``"cancelled"`` at ``now``."""
        return self.state(now)["status"]

    def state(self, now: float | None = None) -> dict[str, Any]:
        """Where the simulated robot is at ``now`` (default: the clock).

        Returns
        -------
        dict
            ``position`` (dof floats), ``velocity`` (dof floats, per clock second; zeros when
            not moving), ``acceleration`` (dof floats, per clock second squared),
            ``progress`` (fraction of the trajectory's duration done, 0..1, non-decreasing),
            ``status`` (one of :data:`STATUSES`), ``elapsed_s`` (clock seconds since the start,
            frozen at a cancel, 0 before the start), ``trajectory_time_s`` (trajectory seconds
            played), ``estimated_completion_s`` (clock seconds from the start to completion:
            ``total_time / time_scale``; ``None`` once cancelled) and ``remaining_s`` (clock
            seconds left; 0 when completed, ``None`` once cancelled).
        """
        total = self.trajectory.total_time
        scale = self.time_scale
        moving = False
        if self._cancelled_at is not None:
            status, traj_t, elapsed = "cancelled", self._cancelled_at, self._cancelled_elapsed
        elif self._started_at is None:
            status, traj_t, elapsed = "pending", 0.0, 0.0
        else:
            elapsed = max(0.0, self._now(now) - self._started_at)
            if elapsed * scale >= total:
                status, traj_t = "completed", total
            else:
                status, traj_t, moving = "executing", elapsed * scale, True
        sample = self.trajectory.sample(traj_t)
        position = to_numpy(sample.position).astype(float)
        if moving:
            velocity = to_numpy(sample.velocity) * scale
            acceleration = to_numpy(sample.acceleration) * scale**2
        else:
            velocity = np.zeros_like(position)
            acceleration = np.zeros_like(position)
        if status == "cancelled":
            estimated, remaining = None, None
        else:
            estimated = self.duration_s
            remaining = max(0.0, estimated - float(elapsed))
        if total > 0:
            progress = traj_t / total
        else:  # a trajectory that does not move is done once started
            progress = 1.0 if status == "completed" else 0.0
        return {
            "position": [float(x) for x in position],
            "velocity": [float(x) for x in velocity],
            "acceleration": [float(x) for x in acceleration],
            "progress": float(min(1.0, max(0.0, progress))),
            "status": status,
            "elapsed_s": float(elapsed),
            "trajectory_time_s": float(traj_t),
            "estimated_completion_s": estimated,
            "remaining_s": remaining,
        }

    # ------------------------------------------------------------------ persistence
    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """JSON-able state (trajectory included) for :meth:`restore`, taken at ``now``."""
        t = self._now(now)
        elapsed = None if self._started_at is None else max(0.0, t - self._started_at)
        return {
            "version": _SNAPSHOT_VERSION,
            "trajectory": self.trajectory.to_dict(),
            "time_scale": self.time_scale,
            "started": self._started_at is not None,
            "elapsed_s": elapsed,
            "cancelled_at": self._cancelled_at,
            "cancelled_elapsed_s": self._cancelled_elapsed,
            "wall_time": float(self.wall_clock()),
        }

    @classmethod
    def restore(
        cls,
        data: dict[str, Any],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        now: float | None = None,
    ) -> SimulatedController:
        """Rebuild a controller from :meth:`snapshot`, in a new process or with a new clock.

        The time since the snapshot is measured by ``wall_clock`` (negative gaps, from a
        wall clock set back, count as zero), so an execution that was running keeps running
        as if no restart had happened, and one that should have finished meanwhile reads
        ``completed``.
        """
        try:
            if data.get("version") != _SNAPSHOT_VERSION:
                raise InvalidInput("snapshot", f"unknown snapshot version {data.get('version')!r}")
            traj = Trajectory.from_dict(data["trajectory"])
            ctl = cls(traj, data["time_scale"], clock=clock, wall_clock=wall_clock)
            t = ctl._now(now)
            if data["cancelled_at"] is not None:
                ctl._cancelled_at = float(data["cancelled_at"])
                ctl._cancelled_elapsed = float(data["cancelled_elapsed_s"])
            if data["started"]:
                gap = max(0.0, float(wall_clock()) - float(data["wall_time"]))
                ctl._started_at = t - float(data["elapsed_s"]) - gap
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput("snapshot", f"not a controller snapshot: {exc!r}") from exc
        return ctl
