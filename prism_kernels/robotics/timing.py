"""Jerk-limited time parameterisation of a piecewise-linear path (stop at every waypoint).

A planner returns a polyline in configuration space whose straight segments were collision
checked. :func:`time_parameterize` moves along exactly that polyline: each segment is
travelled from rest to rest with a time-optimal S-curve (the seven-phase jerk profile
``+J, 0, -J, 0, -J, 0, +J`` of Biagiotti & Melchiorri, *Trajectory Planning for Automatic
Machines and Robots*, Springer 2008, section 3.4, with phases that shrink to zero where a
limit is not reached), so every configuration the robot passes through lies on a checked
segment. The price of staying on the path is a stop at every interior waypoint; run the
planner's shortcutting first so there are few of them.

All joints (axes) of a segment move together along the segment's direction ``u`` (unit
vector of the displacement), so the motion is synchronised by construction. Per-axis limits
bound the segment's path speed, acceleration and jerk through the direction's components:
``V = min_j max_velocity_j / |u_j|`` (likewise ``A`` and ``J``), so axis ``j`` moves at
``|u_j| * s'(t) <= max_velocity_j``; within those path limits the profile is time-optimal for
the segment.

Units: positions in the configuration's units (metres for a mobile robot, radians for an
arm's joints), time in seconds; velocities per second, accelerations per second squared,
jerks per second cubed. Distances along the path (``total_distance``) are Euclidean lengths
of the segments in configuration space, summed over the segments (metres for a mobile robot,
radians of joint-space Euclidean length for an arm).

The segment profiles are computed with array-API calls on the namespace of the path, so the
whole computation (one path, or :func:`minimum_time` over a batch of paths) runs on NumPy,
PyTorch and CuPy alike; only the choice of sample instants is host bookkeeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from prism_kernels.arrays import as_float, device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput

#: Limit names, in the order the functions take them (kernel names; the REST spelling is
#: ``constraints.max_velocity`` etc.).
LIMIT_FIELDS = ("max_velocity", "max_acceleration", "max_jerk")

#: Most samples a trajectory may have (a guard against a tiny limit or a huge rate).
MAX_SAMPLES = 1_000_000

#: Sample instants closer than this to a waypoint arrival (s) are merged into it.
_MERGE_S = 1e-9


class Sample(NamedTuple):
    """A trajectory evaluated at given times: each ``(..., dof)`` (``...`` = shape of t)."""

    position: Any
    velocity: Any
    acceleration: Any
    jerk: Any


class SCurve(NamedTuple):
    """Rest-to-rest S-curve parameters of segments (arrays of the segments' batch shape).

    Attributes
    ----------
    length : distance travelled (path units).
    jerk : the jerk magnitude used, ``J`` (path units / s^3).
    t_jerk : duration of each constant-jerk phase, ``Tj`` (s).
    t_accel : duration of the whole acceleration phase (and of the deceleration), ``Ta`` (s).
    t_cruise : duration at constant speed, ``Tv`` (s; 0 when the speed limit is not reached).
    peak_velocity : speed reached, ``vp`` (path units / s).
    duration : ``2 Ta + Tv`` (s).
    """

    length: Any
    jerk: Any
    t_jerk: Any
    t_accel: Any
    t_cruise: Any
    peak_velocity: Any
    duration: Any


def s_curve(length: Any, v_max: Any, a_max: Any, j_max: Any) -> SCurve:
    """Time-optimal rest-to-rest S-curve over ``length`` with speed, acceleration and jerk limits.

    Three regimes (Biagiotti & Melchiorri 2008, section 3.4, zero initial and final speed):

    * the speed limit is reached: ``Tj = min(A/J, sqrt(V/J))``, ``Ta = Tj + V/A`` when ``A``
      is reached (``V J >= A^2``) else ``2 Tj``, ``Tv = L/V - Ta``;
    * it is not but the acceleration limit is (``L >= 2 A^3 / J^2``): ``Tj = A/J``, the peak
      speed solves ``vp^2/A + vp A/J = L``, ``Ta = Tj + vp/A``, ``Tv = 0``;
    * only jerk limits: ``Tj = (L / 2J)^(1/3)``, ``Ta = 2 Tj``, ``Tv = 0``.

    Parameters
    ----------
    length : array ``(...)``, >= 0
        Distances to travel (path units).
    v_max, a_max, j_max : arrays broadcastable to ``length``, > 0
        Path speed, acceleration and jerk limits (may be ``inf`` for an axis-free direction
        only if another limit is finite; the caller validates).

    Returns
    -------
    SCurve
        Arrays of the broadcast shape; a zero length gives a zero-duration profile.
    """
    xp = get_namespace(length, v_max, a_max, j_max)
    L, V, A, J = length, v_max, a_max, j_max
    zero = xp.zeros_like(L)
    # Regime 1: speed limit reached.
    a_reachable = V * J >= A * A
    tj1 = xp.where(a_reachable, A / J, xp.sqrt(V / J))
    ta1 = xp.where(a_reachable, tj1 + V / A, 2.0 * tj1)
    reach_v = L >= V * ta1
    # Regime 2: acceleration limit reached, speed limit not (numerically stable root).
    tj2 = A / J + zero
    vp2 = 2.0 * L / (tj2 + xp.sqrt(tj2 * tj2 + 4.0 * L / A))
    ta2 = tj2 + vp2 / A
    reach_a = L >= 2.0 * A * A * A / (J * J)
    # Regime 3: jerk limit only.
    tj3 = xp.pow(L / (2.0 * J), 1.0 / 3.0)
    ta3 = 2.0 * tj3
    vp3 = J * tj3 * tj3

    tj = xp.where(reach_v, tj1, xp.where(reach_a, tj2, tj3))
    ta = xp.where(reach_v, ta1, xp.where(reach_a, ta2, ta3))
    vp = xp.where(reach_v, V + zero, xp.where(reach_a, vp2, vp3))
    safe_vp = xp.where(vp > 0, vp, xp.ones_like(vp))
    tv = xp.where(reach_v, L / safe_vp - ta, zero)
    tv = xp.where(tv > 0, tv, zero)
    return SCurve(L + zero, J + zero, tj, ta, tv, vp, 2.0 * ta + tv)


def _accel_half(tau: Any, p: SCurve) -> tuple[Any, Any, Any, Any]:
    """Distance, speed, acceleration, jerk ``tau`` seconds after a rest start (accel + cruise).

    Valid for ``0 <= tau``; beyond ``Ta`` the profile cruises at ``vp``. Arrays broadcast with
    the fields of ``p``.
    """
    xp = get_namespace(tau, p.jerk)
    J, tj, ta, vp = p.jerk, p.t_jerk, p.t_accel, p.peak_velocity
    zero = xp.zeros_like(tau + J)
    ap = J * tj
    # phase 1: jerk +J
    s1 = J * tau**3 / 6.0
    v1 = J * tau**2 / 2.0
    a1 = J * tau
    # phase 2: constant acceleration ap
    d = tau - tj
    vs = J * tj**2 / 2.0
    ss = J * tj**3 / 6.0
    s2 = ss + vs * d + ap * d**2 / 2.0
    v2 = vs + ap * d
    # phase 3: jerk -J, written from the end of the acceleration (r = Ta - tau)
    r = ta - tau
    s3 = vp * ta / 2.0 - vp * r + J * r**3 / 6.0
    v3 = vp - J * r**2 / 2.0
    a3 = J * r
    # cruise
    s4 = vp * ta / 2.0 + vp * (tau - ta)

    in1 = tau < tj
    in2 = tau < ta - tj
    in3 = tau < ta
    s = xp.where(in1, s1, xp.where(in2, s2, xp.where(in3, s3, s4)))
    v = xp.where(in1, v1, xp.where(in2, v2, xp.where(in3, v3, vp + zero)))
    a = xp.where(in1, a1, xp.where(in2, ap + zero, xp.where(in3, a3, zero)))
    j = xp.where(in1, J + zero, xp.where(in2, zero, xp.where(in3, -J + zero, zero)))
    return s, v, a, j


def s_curve_eval(t: Any, p: SCurve) -> tuple[Any, Any, Any, Any, Any]:
    """Evaluate S-curves at local times ``t`` (s), clamped to ``[0, duration]``.

    The second half is the mirror of the first (``s(t) = L - g(T - t)``), so the profile ends
    at exactly ``L`` and at rest.

    Returns
    -------
    second_half : bool array, ``t > T/2`` (then ``remaining`` is ``L - s``, computed directly)
    s_or_remaining : distance from the start (first half) or still to go (second half)
    v, a, j : path speed, acceleration and jerk at ``t``
    """
    xp = get_namespace(t, p.jerk)
    T = p.duration
    t = xp.where(t < 0, xp.zeros_like(t), t)
    t = xp.where(t > T, T + xp.zeros_like(t), t)
    second = t > T / 2.0
    tau = xp.where(second, T - t, t)
    g, v, a, j = _accel_half(tau, p)
    a = xp.where(second, -a, a)
    return second, g, v, a, j


def _as_limit(value: Any, name: str, dof: int) -> np.ndarray:
    """Validate one limit (scalar or (dof,)) on the host and return it as float64 (dof,)."""
    try:
        arr = np.asarray(to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(name, f"must be a number or {dof} numbers: {exc}") from exc
    if arr.ndim == 0:
        arr = np.full(dof, float(arr))
    if arr.shape != (dof,):
        raise InvalidInput(
            name,
            f"expected a scalar or {dof} values (one per axis), got shape {arr.shape}",
            expected=[dof],
            received=list(arr.shape),
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidInput(name, "must be finite")
    if not np.all(arr > 0):
        raise InvalidInput(name, "must be positive")
    return arr


def _check_path(path: Any) -> Any:
    """Validate ``path`` (k, dof) and return it as float64 on its own backend."""
    if path is None:
        raise InvalidInput("path", "missing")
    if not hasattr(path, "shape") or isinstance(path, np.generic):
        try:
            path = np.asarray(path, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("path", f"must be a (k, dof) array of numbers: {exc}") from exc
    if path.ndim != 2:
        raise InvalidInput("path", f"expected shape (k, dof), got {tuple(path.shape)}")
    k, dof = path.shape
    if k < 1:
        raise InvalidInput("path", "needs at least one waypoint")
    if dof < 1:
        raise InvalidInput("path", "waypoints need at least one coordinate (dof >= 1)")
    xp = get_namespace(path)
    path = as_float(path, xp, like=path)
    if not bool(xp.all(xp.isfinite(path))):
        raise InvalidInput("path", "contains NaN or inf")
    return path


def _path_limits(direction: Any, limit: Any) -> Any:
    """Path-space limit along unit directions (S, dof) from per-axis limits (dof,): (S,)."""
    xp = get_namespace(direction, limit)
    mag = xp.abs(direction)
    moving = mag > 0
    ratio = xp.where(moving, limit / xp.where(moving, mag, xp.ones_like(mag)), xp.inf)
    return xp.min(ratio, axis=-1)


def _segment_profiles(path: Any, vmax: Any, amax: Any, jmax: Any) -> tuple[Any, Any, SCurve]:
    """Directions (..., S, dof), lengths (..., S) and S-curves of a path's segments."""
    xp = get_namespace(path)
    delta = path[..., 1:, :] - path[..., :-1, :]
    length = xp.linalg.vector_norm(delta, axis=-1)
    safe = xp.where(length > 0, length, xp.ones_like(length))
    direction = delta / safe[..., None]
    # A zero-length segment has no direction (its path limits would be inf): give it unit
    # limits, which with a zero length yield a zero-duration profile, then zero it exactly.
    nonzero = length > 0
    one = xp.ones_like(length)
    lims = [xp.where(nonzero, _path_limits(direction, m), one) for m in (vmax, amax, jmax)]
    prof = s_curve(length, *lims)
    zero = xp.zeros_like(length)
    prof = SCurve(*(xp.where(nonzero, f, zero) for f in prof))
    return direction, length, prof


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A jerk-limited trajectory along a polyline, stopping at every waypoint.

    Attributes
    ----------
    times : ``(N,)`` sample instants (s): the grid ``0, 1/rate_hz, 2/rate_hz, ...`` merged with
        the instant the robot comes to rest at each waypoint (so linear interpolation between
        consecutive samples also stays on the checked polyline); the last is ``total_time``.
    positions : ``(N, dof)`` configuration at each instant (the last equals the goal exactly).
    velocities, accelerations, jerks : ``(N, dof)`` per-axis derivatives (per s, s^2, s^3).
    total_time : duration (s).
    total_distance : Euclidean length of the polyline in configuration space (metres for a
        mobile robot, radians of joint-space length for an arm), summed over segments.
    rate_hz : the sampling rate of the grid (Hz).
    waypoints : ``(K, dof)`` the path without consecutive duplicates (the robot rests at each).
    waypoint_times : ``(K,)`` instant the robot is at each waypoint (s).
    max_velocity, max_acceleration, max_jerk : ``(dof,)`` the per-axis limits honoured.

    :meth:`sample` evaluates the trajectory analytically at any instant.
    """

    times: Any
    positions: Any
    velocities: Any
    accelerations: Any
    jerks: Any
    total_time: float
    total_distance: float
    rate_hz: float
    waypoints: Any
    waypoint_times: Any
    max_velocity: np.ndarray
    max_acceleration: np.ndarray
    max_jerk: np.ndarray
    _directions: Any = field(repr=False, default=None)
    _profiles: SCurve | None = field(repr=False, default=None)

    @property
    def dof(self) -> int:
        """Number of axes (joints or workspace coordinates)."""
        return int(self.waypoints.shape[-1])

    def sample(self, t: Any) -> Sample:
        """Evaluate the trajectory at instants ``t`` (s; scalar or array), clamped to
        ``[0, total_time]``.

        Returns
        -------
        Sample
            ``position``, ``velocity``, ``acceleration``, ``jerk``, each ``(*t.shape, dof)``
            on the trajectory's backend.
        """
        xp = get_namespace(self.waypoints)
        t = as_float(t, xp, like=self.waypoints)
        shape = tuple(t.shape)
        t = xp.reshape(t, (-1,))
        wp = self.waypoints
        n_seg = wp.shape[0] - 1
        if n_seg == 0:
            pos = xp.broadcast_to(wp[0:1, :], (t.shape[0], self.dof))
            zeros = xp.zeros((t.shape[0], self.dof), dtype=xp.float64, device=device_of(wp))
            out = (xp.asarray(pos, copy=True), zeros, zeros, zeros)
        else:
            starts = self.waypoint_times[:-1]
            idx = xp.searchsorted(starts, t, side="right") - 1
            idx = xp.clip(idx, 0, n_seg - 1)
            p = self._profiles
            seg = SCurve(*(xp.take(f, idx, axis=0) for f in p))
            local = t - xp.take(starts, idx, axis=0)
            second, g, v, a, j = s_curve_eval(local, seg)
            u = xp.take(self._directions, idx, axis=0)
            p0 = xp.take(wp[:-1, :], idx, axis=0)
            p1 = xp.take(wp[1:, :], idx, axis=0)
            pos = xp.where(second[:, None], p1 - u * g[:, None], p0 + u * g[:, None])
            # at or past the segment's end instant (the same cumulative times that place the
            # waypoints): exactly the next waypoint, whatever the rounding of ``local``
            ends = xp.take(self.waypoint_times[1:], idx, axis=0)
            pos = xp.where((t >= ends)[:, None], p1, pos)
            out = (pos, u * v[:, None], u * a[:, None], u * j[:, None])
        return Sample(*(xp.reshape(o, (*shape, self.dof)) for o in out))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description from which :meth:`from_dict` rebuilds the same trajectory."""
        return {
            "waypoints": to_numpy(self.waypoints).tolist(),
            "max_velocity": self.max_velocity.tolist(),
            "max_acceleration": self.max_acceleration.tolist(),
            "max_jerk": self.max_jerk.tolist(),
            "rate_hz": float(self.rate_hz),
            "total_time": float(self.total_time),
            "total_distance": float(self.total_distance),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        """Rebuild a trajectory saved by :meth:`to_dict` (recomputed; NumPy backend)."""
        try:
            waypoints = data["waypoints"]
            limits = [data[name] for name in LIMIT_FIELDS]
            rate = data.get("rate_hz", 50.0)
        except (KeyError, TypeError) as exc:
            raise InvalidInput("trajectory", f"not a saved trajectory: missing {exc}") from exc
        return time_parameterize(np.asarray(waypoints, dtype=np.float64), *limits, rate_hz=rate)


def _sample_times(waypoint_times: np.ndarray, total: float, rate_hz: float) -> np.ndarray:
    """The rate grid merged with the waypoint instants (host), strictly increasing."""
    n_grid = int(math.floor(total * rate_hz * (1 + 1e-12))) + 1
    if n_grid + waypoint_times.size > MAX_SAMPLES:
        raise InvalidInput(
            "rate_hz",
            f"{total:.6g} s at {rate_hz:g} Hz would take {n_grid} samples "
            f"(at most {MAX_SAMPLES}); lower the rate or raise the limits",
        )
    grid = np.arange(n_grid, dtype=np.float64) / rate_hz
    pos = np.searchsorted(waypoint_times, grid)
    lo = np.abs(grid - waypoint_times[np.clip(pos - 1, 0, None)])
    hi = np.abs(grid - waypoint_times[np.clip(pos, None, waypoint_times.size - 1)])
    keep = np.minimum(lo, hi) > _MERGE_S
    times = np.union1d(grid[keep], waypoint_times)
    return times[times <= total]


def time_parameterize(
    path: Any,
    max_velocity: Any,
    max_acceleration: Any,
    max_jerk: Any,
    rate_hz: float = 50.0,
) -> Trajectory:
    """Jerk-limited, time-optimal-per-segment trajectory along a polyline, sampled at a rate.

    The robot starts at rest at ``path[0]``, follows each straight segment with a synchronised
    seven-phase S-curve (see the module docstring), rests for an instant at every waypoint and
    ends at rest exactly on ``path[-1]`` at ``total_time``. Consecutive duplicate waypoints are
    dropped (a zero-length segment takes no time).

    Parameters
    ----------
    path : array ``(k, dof)``, ``k >= 1``
        Waypoints (metres for a mobile robot, radians for an arm), e.g. a planner's output.
        NumPy, PyTorch or CuPy; the trajectory's arrays are on the same backend.
    max_velocity, max_acceleration, max_jerk : float or array ``(dof,)``
        Per-axis limits (units/s, units/s^2, units/s^3), positive and finite.
    rate_hz : float, default 50
        Sampling rate of ``times`` (Hz), positive and finite.

    Returns
    -------
    Trajectory

    Raises
    ------
    InvalidInput
        ``path`` not ``(k, dof)``, empty or with NaN/inf; a limit not positive, not finite or
        of the wrong length (field ``max_velocity``, ``max_acceleration``, ``max_jerk``);
        ``rate_hz`` not positive or giving more than :data:`MAX_SAMPLES` samples.
    """
    path = _check_path(path)
    xp = get_namespace(path)
    dof = int(path.shape[1])
    limits_np = [
        _as_limit(v, name, dof)
        for v, name in zip((max_velocity, max_acceleration, max_jerk), LIMIT_FIELDS, strict=True)
    ]
    try:
        rate = float(rate_hz)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("rate_hz", "must be a number") from exc
    if not (math.isfinite(rate) and rate > 0):
        raise InvalidInput("rate_hz", "must be positive and finite")

    # Drop consecutive duplicates (host decision on a (k,) mask; data stays on the backend).
    host = to_numpy(path)
    keep = np.ones(host.shape[0], dtype=bool)
    keep[1:] = np.any(host[1:] != host[:-1], axis=1)
    if not keep.all():
        index = xp.asarray(np.nonzero(keep)[0], device=device_of(path))
        path = xp.take(path, index, axis=0)
    limits = [as_float(v, xp, like=path) for v in limits_np]
    direction, length, prof = _segment_profiles(path, *limits)

    wp_times_np = np.concatenate([[0.0], np.cumsum(to_numpy(prof.duration))])
    total = float(wp_times_np[-1])
    total_distance = float(np.sum(to_numpy(length)))
    times_np = _sample_times(wp_times_np, total, rate)

    traj = Trajectory(
        times=as_float(times_np, xp, like=path),
        positions=None,
        velocities=None,
        accelerations=None,
        jerks=None,
        total_time=total,
        total_distance=total_distance,
        rate_hz=rate,
        waypoints=path,
        waypoint_times=as_float(wp_times_np, xp, like=path),
        max_velocity=limits_np[0],
        max_acceleration=limits_np[1],
        max_jerk=limits_np[2],
        _directions=direction,
        _profiles=prof,
    )
    s = traj.sample(traj.times)
    for name, value in zip(("positions", "velocities", "accelerations", "jerks"), s, strict=True):
        object.__setattr__(traj, name, value)
    return traj


def minimum_time(paths: Any, max_velocity: Any, max_acceleration: Any, max_jerk: Any) -> Any:
    """Duration (s) of :func:`time_parameterize`'s trajectory for a batch of paths, in one call.

    Useful to rank candidate paths by travel time rather than length.

    Parameters
    ----------
    paths : array ``(..., k, dof)``, ``k >= 1``
        Equal-length polylines (pad a shorter one by repeating its last waypoint: a
        zero-length segment takes no time).
    max_velocity, max_acceleration, max_jerk : float or ``(dof,)``
        Per-axis limits shared by the batch.

    Returns
    -------
    array ``(...)``
        Total times on the paths' backend.
    """
    if not hasattr(paths, "shape") or isinstance(paths, np.generic):
        try:
            paths = np.asarray(paths, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("paths", f"must be a (..., k, dof) array: {exc}") from exc
    if paths.ndim < 2 or paths.shape[-2] < 1 or paths.shape[-1] < 1:
        raise InvalidInput("paths", f"expected shape (..., k, dof), got {tuple(paths.shape)}")
    xp = get_namespace(paths)
    paths = as_float(paths, xp, like=paths)
    if not bool(xp.all(xp.isfinite(paths))):
        raise InvalidInput("paths", "contains NaN or inf")
    dof = int(paths.shape[-1])
    limits = [
        as_float(_as_limit(v, name, dof), xp, like=paths)
        for v, name in zip((max_velocity, max_acceleration, max_jerk), LIMIT_FIELDS, strict=True)
    ]
    _, _, prof = _segment_profiles(paths, *limits)
    return xp.sum(prof.duration, axis=-1)


def limit_usage(values: Any, limits: Any) -> np.ndarray:
    """Worst-axis share of a limit at each sample: ``max_j |values[:, j]| / limits[j]``.

    Parameters
    ----------
    values : array (N, dof)
        Velocities, accelerations or jerks of a trajectory's samples.
    limits : array (dof,) or scalar
        The matching limits (> 0).

    Returns
    -------
    ndarray (N,)
        1.0 means the busiest axis is exactly at its limit.
    """
    v = np.asarray(to_numpy(values), dtype=np.float64)
    lim = np.broadcast_to(np.asarray(to_numpy(limits), dtype=np.float64), v.shape[-1:])
    if v.ndim != 2 or np.any(lim <= 0):
        raise InvalidInput("limits", "expected values (N, dof) and limits > 0")
    return np.max(np.abs(v) / lim, axis=1)
