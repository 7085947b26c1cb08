"""Seeded missile-warning scenarios: objects, a LEO constellation, measurements, IR frames.

Everything is drawn from one ``numpy.random.Generator(seed)``, so a scenario is a pure
function of its arguments. Frame: local east-north-up, metres, flat ground at ``z = 0``,
seconds from the scenario start; scans at ``t_k = k * dt``.

Objects (kinematics are closed forms or a fine-grid integration of a velocity law):

* ``ballistic_missile``: boost with constant thrust acceleration ``a_T`` along a fixed
  launch direction (elevation 50-70 deg) for ``t_b`` s, ``p = p0 + (a_T u - g e_z) t^2 / 2``,
  then drag-free free flight under gravity to the ground (impact in closed form).
* ``hypersonic_glide_vehicle``: a shallow boost to ~5 km/s, then a pull-up (vertical
  velocity relaxing exponentially to a slow sink rate, so altitude flattens near 30-50 km),
  speed decaying slowly and a sinusoidal lateral weave of the heading.
* ``cruise_missile``: 30-300 m altitude, constant ~250 m/s, one coordinated turn, a
  terminal dive over the last 10 s onto its target.
* ``aircraft``: 8-12 km altitude, ~220 m/s, gentle turn, no impact (not a threat).
* ``decoy``: a flare released at altitude, linear drag ``dv/dt = -g e_z - k v`` (closed
  form), intensity decaying as ``exp(-t / tau)``; not a threat.
* ``clutter``: static, extended ground hot spots with flickering intensity; not a threat.

Sensors: ``n_satellites`` on circular orbits at ``altitude`` (550 km) around the Earth's
centre at ``(0, 0, -R_E)``, orbit planes with random headings tilted for a cross-track
offset of the ground track, so each passes over the area at 7.6 km/s. Each scan and
satellite reports, for every object in the surveillance volume, with probability
``p_detect``: a 3-D position (truth + N(0, ``position_sigma``^2 I)) and the line of sight
azimuth/elevation from the satellite (+ N(0, ``angle_sigma``^2)); plus Poisson(``clutter_rate``)
false alarms uniform in the surveillance volume. IR frames: a staring camera on each
satellite pointed at the area centre (pinhole projection), hot spots rendered as Gaussian
PSFs whose integrated counts are the object's radiant intensity scaled by
``(altitude / range)^2``, on a background with a level, a linear gradient and Gaussian
read noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.detection import OBJECT_TYPES, THREAT_CLASSES

G0 = 9.80665
R_EARTH = 6_371_000.0
MU_EARTH = 3.986004418e14

#: Default object mix (fractions of ``n_targets``).
DEFAULT_MIX: dict[str, float] = {
    "ballistic_missile": 0.3,
    "hypersonic_glide_vehicle": 0.15,
    "cruise_missile": 0.15,
    "aircraft": 0.2,
    "decoy": 0.1,
    "clutter": 0.1,
}


def _list(a: Any) -> Any:
    return None if a is None else np.asarray(a).tolist()


@dataclass
class ObjectTruth:
    """Ground truth of one object at the scan times when it exists.

    ``times`` (n,) s; ``positions``, ``velocities``, ``accelerations`` (n, 3) SI;
    ``intensity`` (n,) radiant intensity (detector counts at the reference range);
    ``extent`` PSF width multiplier (1 for point targets). ``launch_*`` / ``impact_*`` are
    ``None`` where they do not apply (aircraft, clutter) or fall outside the simulation.
    """

    object_id: int
    object_type: str
    is_threat: bool
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    intensity: np.ndarray
    extent: float = 1.0
    launch_time: float | None = None
    launch_point: np.ndarray | None = None
    impact_time: float | None = None
    impact_point: np.ndarray | None = None

    def state_at(self, t: float) -> np.ndarray | None:
        """``[x, y, z, vx, vy, vz]`` at scan time ``t`` (``None`` when absent)."""
        k = np.nonzero(np.isclose(self.times, t))[0]
        if k.size == 0:
            return None
        return np.concatenate([self.positions[k[0]], self.velocities[k[0]]])

    def to_dict(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "object_type": self.object_type,
            "is_threat": self.is_threat,
            "times": _list(self.times),
            "positions": _list(self.positions),
            "velocities": _list(self.velocities),
            "accelerations": _list(self.accelerations),
            "intensity": _list(self.intensity),
            "extent": self.extent,
            "launch_time": self.launch_time,
            "launch_point": _list(self.launch_point),
            "impact_time": self.impact_time,
            "impact_point": _list(self.impact_point),
        }


@dataclass
class Satellite:
    """One LEO sensor: ``positions`` / ``velocities`` (T, 3) at the scan times."""

    sat_id: int
    positions: np.ndarray
    velocities: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "sat_id": self.sat_id,
            "positions": _list(self.positions),
            "velocities": _list(self.velocities),
        }


@dataclass
class Scan:
    """Measurements of one satellite at one scan.

    ``positions`` (m, 3) noisy 3-D positions; ``los`` (m, 2) azimuth (rad, clockwise from
    north) and elevation (rad, negative below the satellite's horizon) of the line of sight;
    ``object_ids`` (m,) truth ids, ``-1`` for false alarms; ``position_cov`` (3, 3) and
    ``angle_sigma`` (rad) the noise the measurements were drawn with.
    """

    time: float
    scan_index: int
    sat_id: int
    sensor_position: np.ndarray
    positions: np.ndarray
    los: np.ndarray
    object_ids: np.ndarray
    position_cov: np.ndarray
    angle_sigma: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "scan_index": self.scan_index,
            "sat_id": self.sat_id,
            "sensor_position": _list(self.sensor_position),
            "positions": _list(self.positions),
            "los": _list(self.los),
            "object_ids": _list(self.object_ids),
            "position_cov": _list(self.position_cov),
            "angle_sigma": self.angle_sigma,
        }


@dataclass
class IRFrame:
    """One satellite's IR frame at one scan.

    ``pixels`` (H, W) float32 counts; ``truth`` rows ``[object_id, x_px, y_px, integrated,
    peak, psf_sigma]`` of the hot spots rendered (centre inside the frame).
    """

    time: float
    scan_index: int
    sat_id: int
    pixels: np.ndarray
    truth: np.ndarray
    noise_sigma: float

    def to_dict(self, include_pixels: bool = False) -> dict[str, Any]:
        d = {
            "time": self.time,
            "scan_index": self.scan_index,
            "sat_id": self.sat_id,
            "width": int(self.pixels.shape[1]),
            "height": int(self.pixels.shape[0]),
            "noise_sigma": self.noise_sigma,
            "truth": _list(self.truth),
        }
        if include_pixels:
            d["pixels"] = _list(self.pixels)
        return d


@dataclass
class Scenario:
    """A generated scenario (see the module docstring). ``config`` holds every argument."""

    seed: int
    times: np.ndarray
    objects: list[ObjectTruth]
    satellites: list[Satellite]
    scans: list[Scan]
    frames: list[IRFrame]
    bounds: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def threats(self) -> list[ObjectTruth]:
        return [o for o in self.objects if o.is_threat]

    def scans_at(self, k: int) -> list[Scan]:
        """All satellites' scans at scan index ``k``."""
        return [s for s in self.scans if s.scan_index == k]

    def truth_at(self, t: float) -> dict[int, np.ndarray]:
        """``{object_id: state (6,)}`` of the objects present at scan time ``t``."""
        out = {}
        for o in self.objects:
            st = o.state_at(t)
            if st is not None:
                out[o.object_id] = st
        return out

    def to_dict(self, include_frames: bool = False, include_pixels: bool = False) -> dict[str, Any]:
        d = {
            "seed": self.seed,
            "times": _list(self.times),
            "bounds": _list(self.bounds),
            "config": dict(self.config),
            "objects": [o.to_dict() for o in self.objects],
            "satellites": [s.to_dict() for s in self.satellites],
            "scans": [s.to_dict() for s in self.scans],
        }
        if include_frames:
            d["frames"] = [f.to_dict(include_pixels=include_pixels) for f in self.frames]
        return d


# --------------------------------------------------------------------------------------
# Object kinematics
# --------------------------------------------------------------------------------------

_EZ = np.array([0.0, 0.0, 1.0])


def _heading(az: float) -> np.ndarray:
    """Unit horizontal vector, azimuth clockwise from north (ENU)."""
    return np.array([math.sin(az), math.cos(az), 0.0])


def _ballistic(rng: np.random.Generator, half: float) -> dict[str, Any]:
    p0 = np.array([*rng.uniform(-0.7 * half, 0.7 * half, 2), 0.0])
    az = rng.uniform(0, 2 * math.pi)
    el = math.radians(rng.uniform(50, 70))
    u = math.cos(el) * _heading(az) + math.sin(el) * _EZ
    a_t = rng.uniform(25.0, 35.0)
    tb = rng.uniform(55.0, 75.0)
    acc_b = a_t * u - G0 * _EZ
    pb = p0 + 0.5 * acc_b * tb * tb
    vb = acc_b * tb
    i_boost = rng.uniform(3e4, 6e4)
    i_cold = rng.uniform(2e3, 5e3)
    t_ff = (vb[2] + math.sqrt(vb[2] ** 2 + 2 * G0 * pb[2])) / G0
    t_end = tb + t_ff
    impact = pb + vb * t_ff - 0.5 * G0 * t_ff * t_ff * _EZ
    impact[2] = 0.0

    def kin(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        s = s[:, None]
        boost = s <= tb
        sf = np.clip(s - tb, 0.0, None)
        sb = np.clip(s, 0.0, tb)
        pos = np.where(boost, p0 + 0.5 * acc_b * sb * sb, pb + vb * sf - 0.5 * G0 * sf * sf * _EZ)
        vel = np.where(boost, acc_b * sb, vb - G0 * sf * _EZ)
        acc = np.where(boost, acc_b + 0 * s, -G0 * _EZ + 0 * s)
        inten = np.where(boost[:, 0], i_boost, i_cold)
        return pos, vel, acc, inten

    return {
        "kin": kin,
        "duration": t_end,
        "launch_point": p0,
        "impact_point": impact,
        "extent": 1.0,
    }


def _integrate_path(
    s_grid: np.ndarray, speed: np.ndarray, heading: np.ndarray, z: np.ndarray, p0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative trapezoid of the horizontal velocity on a fine grid; z given."""
    vx = speed * np.sin(heading)
    vy = speed * np.cos(heading)
    ds = np.diff(s_grid)
    x = p0[0] + np.concatenate([[0.0], np.cumsum(0.5 * (vx[1:] + vx[:-1]) * ds)])
    y = p0[1] + np.concatenate([[0.0], np.cumsum(0.5 * (vy[1:] + vy[:-1]) * ds)])
    vz = np.gradient(z, s_grid)
    return np.stack([x, y, z], axis=1), np.stack([vx, vy, vz], axis=1)


def _from_grid(s_grid: np.ndarray, pos: np.ndarray, vel: np.ndarray, inten: np.ndarray) -> Any:
    acc = np.stack([np.gradient(vel[:, i], s_grid) for i in range(3)], axis=1)

    def kin(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def interp(a: np.ndarray) -> np.ndarray:
            return np.stack([np.interp(s, s_grid, a[:, i]) for i in range(a.shape[1])], axis=1)

        return interp(pos), interp(vel), interp(acc), np.interp(s, s_grid, inten)

    return kin


def _hgv(rng: np.random.Generator, half: float) -> dict[str, Any]:
    p0 = np.array([*rng.uniform(-0.7 * half, 0.7 * half, 2), 0.0])
    az = rng.uniform(0, 2 * math.pi)
    el = math.radians(rng.uniform(13, 17))
    tb = rng.uniform(50.0, 65.0)
    v_glide = rng.uniform(4500.0, 5500.0)
    a_t = v_glide / (math.cos(el) * tb)
    u = math.cos(el) * _heading(az) + math.sin(el) * _EZ
    acc_b = a_t * u - G0 * _EZ
    pb = p0 + 0.5 * acc_b * tb * tb
    vb = acc_b * tb
    tau_z = rng.uniform(15.0, 25.0)  # pull-up time constant
    sink = rng.uniform(15.0, 30.0)  # glide sink rate, m/s
    tau_v = rng.uniform(1500.0, 3000.0)  # speed decay time constant
    weave_a = rng.uniform(0.05, 0.12)  # heading weave amplitude, rad
    weave_w = 2 * math.pi / rng.uniform(150.0, 250.0)
    # Glide altitude: z = zb + vzb*tau (1 - e) - sink (s - tau (1 - e)); find ground time.
    zb, vzb = pb[2], vb[2]
    z_peak = zb + vzb * tau_z
    t_glide = (z_peak + sink * tau_z) / sink  # upper bound of the glide duration
    ds = 0.5
    sg = np.arange(0.0, t_glide + ds, ds)
    e = 1 - np.exp(-sg / tau_z)
    zg = zb + vzb * tau_z * e - sink * (sg - tau_z * e)
    ground = np.nonzero(zg <= 0)[0]
    n_g = ground[0] + 1 if ground.size else sg.size
    sg, zg = sg[:n_g], np.maximum(zg[:n_g], 0.0)
    vh0 = float(np.linalg.norm(vb[:2]))
    speed = vh0 * np.exp(-sg / tau_v)
    head = az + weave_a * np.sin(weave_w * sg)
    pos_g, vel_g = _integrate_path(sg, speed, head, zg, pb)
    # Boost segment on the same fine grid, then the glide.
    sbst = np.arange(0.0, tb, ds)
    pos_b = p0 + 0.5 * acc_b * sbst[:, None] ** 2
    vel_b = acc_b * sbst[:, None]
    s_all = np.concatenate([sbst, tb + sg])
    pos = np.concatenate([pos_b, pos_g])
    vel = np.concatenate([vel_b, vel_g])
    i_boost, i_glide = rng.uniform(3e4, 6e4), rng.uniform(4e3, 8e3)
    inten = np.where(s_all < tb, i_boost, i_glide)
    impact = pos[-1].copy()
    impact[2] = 0.0
    return {
        "kin": _from_grid(s_all, pos, vel, inten),
        "duration": float(s_all[-1]),
        "launch_point": p0,
        "impact_point": impact,
        "extent": 1.0,
    }


def _cruise(rng: np.random.Generator, half: float, t_window: float) -> dict[str, Any]:
    p0 = np.array([*rng.uniform(-0.8 * half, 0.8 * half, 2), 0.0])
    alt = rng.uniform(30.0, 300.0)
    v = rng.uniform(230.0, 270.0)
    duration = rng.uniform(max(3 * t_window, 300.0), max(5 * t_window, 600.0))
    ds = 0.5
    s = np.arange(0.0, duration + ds, ds)
    climb = np.clip(s / 20.0, 0.0, 1.0)
    dive = np.clip((duration - s) / 10.0, 0.0, 1.0)
    z = alt * np.minimum(climb, dive)
    t_turn = rng.uniform(0.2, 0.7) * duration
    turn_len = rng.uniform(20.0, 60.0)
    rate = rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.05)
    head0 = rng.uniform(0, 2 * math.pi)
    head = head0 + rate * np.clip(s - t_turn, 0.0, turn_len)
    pos, vel = _integrate_path(s, np.full_like(s, v), head, z, p0)
    inten = np.full_like(s, rng.uniform(1.0e3, 2.0e3))
    impact = pos[-1].copy()
    impact[2] = 0.0
    return {
        "kin": _from_grid(s, pos, vel, inten),
        "duration": float(duration),
        "launch_point": p0,
        "impact_point": impact,
        "extent": 1.0,
    }


def _aircraft(rng: np.random.Generator, half: float, t_window: float) -> dict[str, Any]:
    p0 = np.array([*rng.uniform(-0.8 * half, 0.8 * half, 2), rng.uniform(8000.0, 12000.0)])
    v = rng.uniform(190.0, 250.0)
    ds = 0.5
    s = np.arange(0.0, t_window + ds, ds)
    rate = rng.uniform(-0.01, 0.01)
    head = rng.uniform(0, 2 * math.pi) + rate * s
    pos, vel = _integrate_path(s, np.full_like(s, v), head, np.full_like(s, p0[2]), p0)
    inten = np.full_like(s, rng.uniform(1.5e3, 3.0e3))
    return {"kin": _from_grid(s, pos, vel, inten), "duration": float(t_window), "extent": 1.0}


def _decoy(rng: np.random.Generator, half: float) -> dict[str, Any]:
    p0 = np.array([*rng.uniform(-0.7 * half, 0.7 * half, 2), rng.uniform(3000.0, 15000.0)])
    v0 = (
        rng.uniform(150.0, 300.0) * _heading(rng.uniform(0, 2 * math.pi))
        + rng.uniform(-20, 20) * _EZ
    )
    k = rng.uniform(0.1, 0.3)
    tau = rng.uniform(3.0, 8.0)
    i0 = rng.uniform(2e4, 5e4)
    v_inf = -G0 / k * _EZ
    life = min(tau * math.log(100.0), 60.0)

    def kin(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        e = np.exp(-k * s)[:, None]
        pos = p0 + v_inf * s[:, None] + (v0 - v_inf) * (1 - e) / k
        vel = v_inf + (v0 - v_inf) * e
        acc = -k * (v0 - v_inf) * e
        return pos, vel, acc, i0 * np.exp(-s / tau)

    return {"kin": kin, "duration": life, "launch_point": p0, "extent": 1.0}


def _clutter(rng: np.random.Generator, half: float) -> dict[str, Any]:
    p0 = np.array([*rng.uniform(-0.9 * half, 0.9 * half, 2), 0.0])
    base = rng.uniform(3e3, 8e3)
    f = rng.uniform(0.02, 0.1)
    ph = rng.uniform(0, 2 * math.pi)

    def kin(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        z = np.zeros((s.size, 3))
        return z + p0, z.copy(), z.copy(), base * (1.0 + 0.3 * np.sin(2 * math.pi * f * s + ph))

    return {"kin": kin, "duration": math.inf, "extent": rng.uniform(1.6, 2.4)}


def _counts(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``n`` objects by ``mix`` fractions (deterministic)."""
    tot = sum(mix.values())
    raw = {k: n * v / tot for k, v in mix.items()}
    cnt = {k: int(math.floor(v)) for k, v in raw.items()}
    rest = n - sum(cnt.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - cnt[k]), list(mix).index(k)))[:rest]:
        cnt[k] += 1
    return cnt


# --------------------------------------------------------------------------------------
# Sensors
# --------------------------------------------------------------------------------------


def _orbits(rng: np.random.Generator, n: int, times: np.ndarray, altitude: float, half: float):
    r = R_EARTH + altitude
    w = math.sqrt(MU_EARTH / r**3)
    sats = []
    for i in range(n):
        head = rng.uniform(0, math.pi) + i * math.pi / max(n, 1)
        e_h = _heading(head)
        e_c = np.cross(_EZ, e_h)
        cross = rng.uniform(-0.5, 0.5) * half
        th = rng.uniform(-0.6, 0.6) * half / r - w * times[len(times) // 2]
        ang = th + w * times
        # Orbit plane spanned by e_h and the vertical tilted by the cross-track offset.
        phi = cross / r
        up = math.cos(phi) * _EZ + math.sin(phi) * e_c
        pos = r * (np.cos(ang)[:, None] * up + np.sin(ang)[:, None] * e_h) - R_EARTH * _EZ
        vel = r * w * (-np.sin(ang)[:, None] * up + np.cos(ang)[:, None] * e_h)
        sats.append(Satellite(sat_id=i, positions=pos, velocities=vel))
    return sats


def line_of_sight(sensor: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Azimuth (clockwise from north) and elevation (rad) from ``sensor`` (3,) to ``points`` (m, 3)."""
    d = np.asarray(points, dtype=np.float64) - np.asarray(sensor, dtype=np.float64)
    az = np.arctan2(d[:, 0], d[:, 1])
    el = np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1]))
    return np.stack([az, el], axis=1)


def _camera(sat_pos: np.ndarray, half: float, altitude: float, shape: tuple[int, int]):
    b = -sat_pos / np.linalg.norm(sat_pos)  # boresight to the area centre
    north = np.array([0.0, 1.0, 0.0])
    right = np.cross(b, north)
    if np.linalg.norm(right) < 1e-9:
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(b, right)
    h, w = shape
    f = 0.5 * min(h, w) * altitude / (1.1 * half)
    return b, right, down, f


def _render_many(
    img: np.ndarray, x: np.ndarray, y: np.ndarray, integrated: np.ndarray, s: np.ndarray
) -> np.ndarray:
    """Add Gaussian PSFs (integrated counts, width ``s`` px) at (x, y) to ``img``; return peaks.

    PSFs are cut at ``ceil(4 s)`` px, grouped by that radius so a wide clutter spot does
    not widen every point source's patch.
    """
    h, w = img.shape
    peak = integrated / (2 * math.pi * s * s)
    rads = np.ceil(4 * s).astype(int)
    acc = np.zeros(h * w)
    for rad in np.unique(rads):
        g = rads == rad
        xs, ys, ss, pk = x[g], y[g], s[g], peak[g]
        off = np.arange(-rad, rad + 1)
        cols = np.rint(xs).astype(int)[:, None, None] + off[None, None, :]
        rows = np.rint(ys).astype(int)[:, None, None] + off[None, :, None]
        val = pk[:, None, None] * np.exp(
            -((cols - xs[:, None, None]) ** 2 + (rows - ys[:, None, None]) ** 2)
            / (2 * ss * ss)[:, None, None]
        )
        cols, rows = np.broadcast_to(cols, val.shape), np.broadcast_to(rows, val.shape)
        ok = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        acc += np.bincount(rows[ok] * w + cols[ok], weights=val[ok], minlength=h * w)
    img += acc.reshape(h, w).astype(img.dtype)
    return peak


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def generate_scenario(
    n_targets: int = 20,
    n_satellites: int = 3,
    n_scans: int = 60,
    dt: float = 1.0,
    seed: int = 0,
    mix: dict[str, float] | None = None,
    p_detect: float = 0.9,
    clutter_rate: float = 2.0,
    position_sigma: float = 100.0,
    angle_sigma: float = 2e-5,
    area_half_width: float = 500_000.0,
    ceiling: float = 300_000.0,
    altitude: float = 550_000.0,
    frame_shape: tuple[int, int] | None = (128, 128),
    psf_sigma: float = 1.5,
    background_level: float = 1000.0,
    noise_sigma: float = 10.0,
) -> Scenario:
    """Generate a seeded scenario (see the module docstring for the models).

    Parameters
    ----------
    n_targets : int
        Number of objects of every kind, split by ``mix`` (fractions per type, default
        :data:`DEFAULT_MIX`) with largest remainders.
    n_satellites, n_scans, dt : int, int, float
        Sensors, scans and scan interval (s).
    p_detect : float
        Per-object, per-scan, per-satellite detection probability (0, 1].
    clutter_rate : float
        Mean false alarms per scan and satellite (Poisson), uniform in the volume
        ``[-area_half_width, area_half_width]^2 x [0, ceiling]``.
    position_sigma, angle_sigma : float
        3-D position noise (m) and line-of-sight angle noise (rad).
    frame_shape : (H, W) or None
        IR frame size per satellite and scan; ``None`` skips frames.
    psf_sigma, background_level, noise_sigma : float
        PSF width (px), background counts and read noise (counts) of the frames.
    """
    _check_args(
        n_targets, n_satellites, n_scans, dt, p_detect, clutter_rate, position_sigma, angle_sigma
    )
    if frame_shape is not None:
        if len(frame_shape) != 2 or not all(
            isinstance(v, (int, np.integer)) and 1 <= v <= 4096 for v in frame_shape
        ):
            raise InvalidInput(
                "frame_shape", "frame_shape must be two integers in [1, 4096] or None"
            )
    for name, val in (
        ("psf_sigma", psf_sigma),
        ("noise_sigma", noise_sigma),
        ("altitude", altitude),
    ):
        if not (math.isfinite(val) and val > 0):
            raise InvalidInput(name, f"{name} must be positive")
    mix = dict(DEFAULT_MIX if mix is None else mix)
    for k, v in mix.items():
        if k not in OBJECT_TYPES:
            raise InvalidInput(
                f"mix.{k}", f"unknown object type; expected one of {', '.join(OBJECT_TYPES)}"
            )
        if not (v >= 0 and math.isfinite(v)):
            raise InvalidInput(f"mix.{k}", "fractions must be non-negative")
    if n_targets > 0 and sum(mix.values()) <= 0:
        raise InvalidInput("mix", "mix fractions must have a positive sum")
    rng = np.random.default_rng(seed)
    times = np.arange(n_scans) * float(dt)
    t_win = float(times[-1]) if n_scans > 1 else float(dt)
    half = float(area_half_width)
    counts = _counts(n_targets, mix) if n_targets > 0 else {}

    objects: list[ObjectTruth] = []
    oid = 0
    for typ in OBJECT_TYPES:
        for _ in range(counts.get(typ, 0)):
            if typ == "ballistic_missile":
                spec = _ballistic(rng, half)
            elif typ == "hypersonic_glide_vehicle":
                spec = _hgv(rng, half)
            elif typ == "cruise_missile":
                spec = _cruise(rng, half, t_win)
            elif typ == "aircraft":
                spec = _aircraft(rng, half, t_win)
            elif typ == "decoy":
                spec = _decoy(rng, half)
            else:
                spec = _clutter(rng, half)
            dur = spec["duration"]
            if typ in ("aircraft", "clutter"):
                t0 = 0.0
            elif typ == "decoy":
                t0 = rng.uniform(0.0, 0.6 * t_win)
            else:
                # Launch so that the flight overlaps at least 40 % of the window.
                t0 = rng.uniform(-(dur - 0.4 * t_win), 0.6 * t_win)
            s = times - t0
            alive = (s >= 0) & (s <= dur)
            pos, vel, acc, inten = spec["kin"](s[alive])
            launch_pt = spec.get("launch_point")
            impact_pt = spec.get("impact_point")
            if typ not in ("aircraft", "clutter"):
                # Translate the flight so that it is over the area mid-window.
                s_mid = float(np.clip(0.5 * t_win - t0, 0.0, dur))
                p_mid = spec["kin"](np.array([s_mid]))[0][0]
                shift = np.zeros(3)
                shift[:2] = rng.uniform(-0.6 * half, 0.6 * half, 2) - p_mid[:2]
                pos = pos + shift
                launch_pt = None if launch_pt is None else launch_pt + shift
                impact_pt = None if impact_pt is None else impact_pt + shift
            objects.append(
                ObjectTruth(
                    object_id=oid,
                    object_type=typ,
                    is_threat=typ in THREAT_CLASSES,
                    times=times[alive],
                    positions=pos,
                    velocities=vel,
                    accelerations=acc,
                    intensity=np.asarray(inten, dtype=np.float64),
                    extent=float(spec["extent"]),
                    launch_time=float(t0) if launch_pt is not None else None,
                    launch_point=launch_pt,
                    impact_time=float(t0 + dur) if impact_pt is not None else None,
                    impact_point=impact_pt,
                )
            )
            oid += 1

    sats = _orbits(rng, n_satellites, times, float(altitude), half)
    lo = np.array([-half, -half, 0.0])
    hi = np.array([half, half, float(ceiling)])
    bounds = np.stack([lo, hi])
    cov = np.eye(3) * position_sigma**2

    # Per scan: which objects exist and where (index arrays over all objects).
    idx_at: list[list[tuple[int, int]]] = [[] for _ in range(n_scans)]
    for j, o in enumerate(objects):
        ks = np.rint(o.times / dt).astype(int)
        for r, k in enumerate(ks):
            if np.all(o.positions[r] >= lo) and np.all(o.positions[r] <= hi):
                idx_at[k].append((j, r))

    scans: list[Scan] = []
    frames: list[IRFrame] = []
    for k in range(n_scans):
        present = idx_at[k]
        if present:
            true_pos = np.array([objects[j].positions[r] for j, r in present])
            ids = np.array([objects[j].object_id for j, _ in present])
        else:
            true_pos = np.zeros((0, 3))
            ids = np.zeros(0, dtype=int)
        for sat in sats:
            sp = sat.positions[k]
            det = rng.random(len(present)) < p_detect
            meas = true_pos[det] + rng.normal(0.0, position_sigma, (int(det.sum()), 3))
            los = line_of_sight(sp, true_pos[det]) + rng.normal(
                0.0, angle_sigma, (int(det.sum()), 2)
            )
            n_fa = int(rng.poisson(clutter_rate))
            fa = lo + (hi - lo) * rng.random((n_fa, 3))
            scans.append(
                Scan(
                    time=float(times[k]),
                    scan_index=k,
                    sat_id=sat.sat_id,
                    sensor_position=sp.copy(),
                    positions=np.concatenate([meas, fa]),
                    los=np.concatenate([los, line_of_sight(sp, fa)]),
                    object_ids=np.concatenate([ids[det], -np.ones(n_fa, dtype=int)]).astype(int),
                    position_cov=cov.copy(),
                    angle_sigma=float(angle_sigma),
                )
            )
            if frame_shape is not None:
                frames.append(
                    _frame(
                        rng,
                        objects,
                        present,
                        sat,
                        k,
                        float(times[k]),
                        frame_shape,
                        half,
                        float(altitude),
                        psf_sigma,
                        background_level,
                        noise_sigma,
                    )
                )

    config = {
        "n_targets": n_targets,
        "n_satellites": n_satellites,
        "n_scans": n_scans,
        "dt": dt,
        "mix": mix,
        "p_detect": p_detect,
        "clutter_rate": clutter_rate,
        "position_sigma": position_sigma,
        "angle_sigma": angle_sigma,
        "area_half_width": area_half_width,
        "ceiling": ceiling,
        "altitude": altitude,
        "frame_shape": list(frame_shape) if frame_shape is not None else None,
        "psf_sigma": psf_sigma,
        "background_level": background_level,
        "noise_sigma": noise_sigma,
    }
    return Scenario(
        seed=seed,
        times=times,
        objects=objects,
        satellites=sats,
        scans=scans,
        frames=frames,
        bounds=bounds,
        config=config,
    )


def _frame(
    rng, objects, present, sat, k, t, shape, half, altitude, psf_sigma, level, noise
) -> IRFrame:
    h, w = shape
    b, right, down, f = _camera(sat.positions[k], half, altitude, shape)
    # Gradient fixed per satellite (the sensor's own).
    g_rng = np.random.default_rng([sat.sat_id, 7919])
    gx, gy = g_rng.uniform(-2.0, 2.0, 2)
    ramp_x = (gx * (np.arange(w) - w / 2)).astype(np.float32)
    ramp_y = (gy * (np.arange(h) - h / 2)).astype(np.float32)
    img = rng.standard_normal((h, w), dtype=np.float32)
    img *= np.float32(noise)
    img += np.float32(level) + ramp_y[:, None] + ramp_x[None, :]
    truth = np.zeros((0, 6))
    if present:
        js = [j for j, _ in present]
        pos = np.array([objects[j].positions[r] for j, r in present])
        d = pos - sat.positions[k]
        depth = d @ b
        ok = depth > 0
        depth = np.where(ok, depth, 1.0)
        x = w / 2 - 0.5 + f * (d @ right) / depth
        y = h / 2 - 0.5 + f * (d @ down) / depth
        ok &= (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
        if np.any(ok):
            ids = np.array([objects[j].object_id for j in js])[ok]
            inten = np.array([objects[j].intensity[r] for j, r in present])[ok]
            ext = np.array([objects[j].extent for j in js])[ok]
            rng_m = np.linalg.norm(d[ok], axis=1)
            integ = inten * (altitude / rng_m) ** 2
            sig = psf_sigma * ext
            peak = _render_many(img, x[ok], y[ok], integ, sig)
            truth = np.stack([ids, x[ok], y[ok], integ, peak, sig], axis=1)
    return IRFrame(
        time=t,
        scan_index=k,
        sat_id=sat.sat_id,
        pixels=img,
        truth=truth,
        noise_sigma=float(noise),
    )


def _check_args(
    n_targets, n_satellites, n_scans, dt, p_detect, clutter_rate, position_sigma, angle_sigma
) -> None:
    if not (isinstance(n_targets, (int, np.integer)) and 0 <= n_targets <= 10_000):
        raise InvalidInput("n_targets", "n_targets must be an integer in [0, 10000]")
    if not (isinstance(n_satellites, (int, np.integer)) and 1 <= n_satellites <= 100):
        raise InvalidInput("n_satellites", "n_satellites must be an integer in [1, 100]")
    if not (isinstance(n_scans, (int, np.integer)) and 1 <= n_scans <= 100_000):
        raise InvalidInput("n_scans", "n_scans must be an integer in [1, 100000]")
    if not (math.isfinite(dt) and dt > 0):
        raise InvalidInput("dt", "dt must be a positive number of seconds")
    if not (0 < p_detect <= 1):
        raise InvalidInput("p_detect", "p_detect must be in (0, 1]")
    if not (math.isfinite(clutter_rate) and clutter_rate >= 0):
        raise InvalidInput("clutter_rate", "clutter_rate must be >= 0")
    if not (math.isfinite(position_sigma) and position_sigma >= 0):
        raise InvalidInput("position_sigma", "position_sigma must be >= 0")
    if not (math.isfinite(angle_sigma) and angle_sigma >= 0):
        raise InvalidInput("angle_sigma", "angle_sigma must be >= 0")
