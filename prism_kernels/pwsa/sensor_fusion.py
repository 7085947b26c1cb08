"""Fusion of one moment's sensor reports into target estimates (no tracker state).

Two kernels, for the two report shapes PRISM accepts:

* :func:`fuse_sensor_inputs` -- the original server's fusion: per satellite (``sv_id``), a
  6-state constant-velocity Kalman filter over that satellite's measurements in order.
* :func:`fuse_targets` -- per-sensor target lists (radar, IR...): targets are associated
  across sensors (same id, else global nearest neighbour in a chi-square gate) and each
  group is fused in information form
  (:func:`~prism_kernels.pwsa.fusion.information_fusion`).

Units: metres, seconds, ENU (ground at ``z = 0``); angles as in :mod:`.geometry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2

from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.association import chi2_gate, gnn_assign
from prism_kernels.pwsa.fusion import information_fusion
from prism_kernels.pwsa.geometry import (
    SENSOR_NOISE,
    as_vec3,
    measurement_covariance,
    radar_to_enu,
)
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.models import cv_transition
from prism_kernels.pwsa.summary import classify_kinematics, risk_level

#: The original server's fusion filter (original API section 1.4): P0, Q (not scaled by
#: dt), R, and the fixed altitude (m) it gives a pixel centroid.
ORIGINAL_FILTER = {"p0_pos": 10.0**2, "p0_vel": 5.0**2, "q_pos": 0.1**2, "q_vel": 1.0**2, "r": 1.0}
ORIGINAL_ALTITUDE = 250.0


def _original_measurement(
    s: Mapping[str, Any], i: int
) -> tuple[int, float, np.ndarray, np.ndarray]:
    try:
        sv = int(s["sv_id"])
        ts = float(s["timestamp"])
    except KeyError as exc:
        raise InvalidInput(f"{i}.{exc.args[0]}", "missing") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{i}", "sv_id and timestamp must be numbers") from exc
    if s.get("radar"):
        z, R = radar_to_enu(s["radar"], f"{i}.radar")
        return sv, ts, z, R
    c = s.get("centroid")
    if c is None:
        raise InvalidInput(f"{i}.centroid", "each input needs a radar measurement or a centroid")
    try:
        cx, cy = (float(v) for v in c)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{i}.centroid", "expected [x, y] pixel coordinates") from exc
    return sv, ts, np.array([cx, cy, ORIGINAL_ALTITUDE]), np.eye(3) * ORIGINAL_FILTER["r"]


def fuse_sensor_inputs(inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The original API's ``fuse``: per ``sv_id``, a 6-state constant-velocity Kalman filter
    over the inputs' measurements in array order.

    Parameters
    ----------
    inputs : sequence of dict
        ``{sv_id, timestamp (s), radar?, centroid?}``: the measurement is ``radar`` (a
        range/angle measurement, see :func:`~prism_kernels.pwsa.geometry.radar_to_enu`, ENU
        with its covariance) when given, else the original's ``[centroid_x, centroid_y, 250]``
        with ``R = I``.

    Notes
    -----
    As in the original: the state starts at the first measurement with zero velocity,
    ``P0 = diag(10^2, 5^2)``, ``Q = diag(0.1^2, 1^2)`` per step, and the filter clock starts
    at 0 (so the first predict spans the first timestamp); a predict runs only when
    ``dt > 0``. The result reproduces the original's reference values. ``confidence`` per
    track is the chi-square p-value of its summed normalised innovations (1 with a single
    measurement).
    """
    groups: dict[int, list[tuple[float, np.ndarray, np.ndarray]]] = {}
    for i, s in enumerate(inputs):
        if not isinstance(s, Mapping):
            raise InvalidInput(f"{i}", "each element must be a sensor input object")
        sv, ts, z, R = _original_measurement(s, i)
        groups.setdefault(sv, []).append((ts, z, R))
    o = ORIGINAL_FILTER
    Q = np.diag([o["q_pos"]] * 3 + [o["q_vel"]] * 3)
    H = np.hstack([np.eye(3), np.zeros((3, 3))])
    fused, tracks = [], []
    for sv in sorted(groups):
        meas = groups[sv]
        x = np.concatenate([meas[0][1], np.zeros(3)])
        P = np.diag([o["p0_pos"]] * 3 + [o["p0_vel"]] * 3)
        clock, nis_sum = 0.0, 0.0
        for k, (ts, z, R) in enumerate(meas):
            dt = ts - clock
            if dt > 0:
                x, P = kf_predict(x, P, cv_transition(np.asarray(dt)), Q)
                clock = ts
            up = kf_update(x, P, z, H, R)
            x, P = up.x, up.P
            if k > 0:  # the first update sees its own measurement (zero innovation)
                nis_sum += float(up.nis)
        dof = 3 * (len(meas) - 1)
        conf = 1.0 if dof == 0 else float(chi2.sf(nis_sum, dof))
        x, P = np.asarray(x), np.asarray(P)
        info = {
            "track_id": f"sv-{sv}",
            "position": x[:3].tolist(),
            "velocity": x[3:6].tolist(),
            "status": "active",
            "last_updated": meas[-1][0],
        }
        fused.append(info)
        tracks.append(
            {
                **info,
                "speed": float(np.linalg.norm(x[3:6])),
                "covariance": P.tolist(),
                "position_std": np.sqrt(np.diag(P)[:3]).tolist(),
                "confidence": conf,
                "measurements": len(meas),
            }
        )
    mean_conf = float(np.mean([t["confidence"] for t in tracks])) if tracks else None
    return {
        "fused_tracks": fused,
        "tracks": tracks,
        "num_tracks": len(tracks),
        "fusion_quality": None,
        "sensors_used": len(inputs),
        "confidence": mean_conf,
        "method": "kalman_cv",
    }


def _sensor_kind(name: str, sensor: Mapping[str, Any]) -> str:
    kind = str(sensor.get("type") or name).lower()
    return "radar" if "radar" in kind else "ir" if kind in ("ir", "eo_ir", "infrared") else kind


def _target_measurement(
    t: Mapping[str, Any], sensor: Mapping[str, Any], kind: str, field: str
) -> tuple[np.ndarray, np.ndarray]:
    if t.get("position") is not None:
        z = as_vec3(t["position"], f"{field}.position")
        sigma = sensor.get("position_sigma")
        sigma = SENSOR_NOISE["default"][0] if sigma is None else float(sigma)
        return z, measurement_covariance(t, np.eye(3) * sigma**2, field)
    missing = [k for k in ("range", "azimuth", "elevation") if t.get(k) is None]
    if missing:
        raise InvalidInput(
            f"{field}.{missing[0]}", "each target needs a position or range, azimuth, elevation"
        )
    spec = {
        k: t[k] if t.get(k) is not None else sensor.get(k)
        for k in ("range_sigma", "angle_sigma", "degrees", "sensor_position")
    }
    spec = {k: v for k, v in spec.items() if v is not None}
    return radar_to_enu(
        {**spec, **{k: t[k] for k in ("range", "azimuth", "elevation")}}, field, kind=kind
    )


def fuse_targets(
    sensors: Mapping[str, Mapping[str, Any]], timestamp: float | None = None, sv_id: Any = None
) -> dict[str, Any]:
    """Fuse per-sensor target reports of one moment.

    Parameters
    ----------
    sensors : mapping of sensor name to ``{type?, targets, sensor_position?, range_sigma?,
        angle_sigma?, degrees?, position_sigma?}``
        Each target is ``{id?, position (m) with sigma | covariance}`` or ``{id?, range (m),
        azimuth, elevation}`` (with the sensor's defaults for what it does not give), and
        optionally ``velocity`` (speed in m/s, or a vector). A sensor's kind (``radar``,
        ``ir``) comes from its ``type`` or its name and sets the default range/angle noise
        (:data:`~prism_kernels.pwsa.geometry.SENSOR_NOISE`).
    timestamp, sv_id :
        Echoed into the result.

    Notes
    -----
    Targets match across sensors by ``id``; a target without a matching id joins the nearest
    fused group within the 99.9 % chi-square gate (squared Mahalanobis distance on
    ``P_a + P_b``), by global nearest neighbour; the rest start groups. Each group is fused
    in information form.

    Per track: ``confidence`` = coverage (sensors that saw it / sensors) times the chi-square
    p-value of the sensors' consistency ``sum_s (x_s - x)^T P_s^-1 (x_s - x)`` (3 (S - 1)
    degrees of freedom; 1 for a single sensor). ``fusion_quality`` = mean over tracks of
    ``1 - trace(P_fused) / min_s trace(P_s)``, the uncertainty removed by fusing (0 when
    every target is seen by one sensor).
    """
    gate = chi2_gate(3, 0.999)
    groups: list[dict[str, Any]] = []  # {id, zs, Rs, sensors, speeds, vels}
    names = [str(n) for n in sensors]
    for name in names:
        sensor = sensors[name]
        if not isinstance(sensor, Mapping):
            raise InvalidInput(f"sensors.{name}", "expected an object with targets")
        targets = sensor.get("targets")
        if targets is None:
            raise InvalidInput(f"sensors.{name}.targets", "missing")
        if not isinstance(targets, Sequence) or isinstance(targets, (str, bytes)):
            raise InvalidInput(f"sensors.{name}.targets", "expected a list")
        kind = _sensor_kind(name, sensor)
        meas = []
        for j, t in enumerate(targets):
            f = f"sensors.{name}.targets.{j}"
            if not isinstance(t, Mapping):
                raise InvalidInput(f, "each target must be an object")
            z, R = _target_measurement(t, sensor, kind, f)
            meas.append((t, z, R))
        free = []
        for t, z, R in meas:
            tid = t.get("id")
            g = next((g for g in groups if tid is not None and g["id"] == tid), None)
            if g is not None and name not in g["sensors"]:
                _join(g, t, z, R, name)
            else:
                free.append((t, z, R))
        cand = [g for g in groups if name not in g["sensors"]]
        if free and cand:
            d2 = np.full((len(cand), len(free)), np.inf)
            for a, g in enumerate(cand):
                xg, Pg = _group_estimate(g)
                for b, (_, z, R) in enumerate(free):
                    d = z - xg
                    d2[a, b] = float(d @ np.linalg.solve(Pg + R, d))
            asg = gnn_assign(d2, gate=gate)
            for a, b in zip(asg.tracks, asg.measurements, strict=True):
                _join(cand[int(a)], *free[int(b)], name)
            taken = set(int(b) for b in asg.measurements)
            free = [f for k, f in enumerate(free) if k not in taken]
        for t, z, R in free:
            g = {"id": t.get("id"), "zs": [], "Rs": [], "sensors": [], "speeds": [], "vels": []}
            _join(g, t, z, R, name)
            groups.append(g)
    tracks, fused, quality = [], [], []
    n_sensors = max(len(names), 1)
    for k, g in enumerate(groups):
        x, P = _group_estimate(g)
        S = len(g["zs"])
        chi = sum(
            float((z - x) @ np.linalg.solve(R, z - x))
            for z, R in zip(g["zs"], g["Rs"], strict=True)
        )
        consistency = 1.0 if S == 1 else float(chi2.sf(chi, 3 * (S - 1)))
        conf = S / n_sensors * consistency
        quality.append(1.0 - float(np.trace(P)) / min(float(np.trace(R)) for R in g["Rs"]))
        vel_vec = np.mean(g["vels"], axis=0) if g["vels"] else None
        speed = (
            float(np.linalg.norm(vel_vec))
            if vel_vec is not None
            else (float(np.mean(g["speeds"])) if g["speeds"] else None)
        )
        feats_v = (
            vel_vec if vel_vec is not None else ([speed, 0.0, 0.0] if speed is not None else None)
        )
        cls = classify_kinematics(x, feats_v)  # only |v| enters the features
        tid = f"fused-{g['id']}" if g["id"] is not None else f"fused-{k + 1}"
        tracks.append(
            {
                "track_id": tid,
                "target_id": g["id"],
                "position": x.tolist(),
                "covariance": P.tolist(),
                "position_std": np.sqrt(np.diag(P)).tolist(),
                "velocity": speed,
                "velocity_vector": None if vel_vec is None else vel_vec.tolist(),
                "confidence": conf,
                "consistency": consistency,
                "sensors": list(g["sensors"]),
                "threat_type": cls["threat_type"],
                "threat_probability": cls["confidence"],
                "threat_level": risk_level(cls["threat_type"], cls["confidence"]),
            }
        )
        fused.append(
            {
                "track_id": tid,
                "position": x.tolist(),
                "velocity": None if vel_vec is None else vel_vec.tolist(),
                "status": "active",
                "last_updated": timestamp,
            }
        )
    return {
        "sv_id": sv_id,
        "timestamp": timestamp,
        "fused_tracks": fused,
        "tracks": tracks,
        "num_tracks": len(tracks),
        "fusion_quality": float(np.mean(quality)) if quality else None,
        "sensors_used": len(names),
        "confidence": float(np.mean([t["confidence"] for t in tracks])) if tracks else None,
        "method": "information_fusion",
    }


def _join(g: dict[str, Any], t: Mapping[str, Any], z: np.ndarray, R: np.ndarray, name: str) -> None:
    g["zs"].append(z)
    g["Rs"].append(R)
    g["sensors"].append(name)
    v = t.get("velocity")
    if v is not None:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
        if a.size == 3 and np.all(np.isfinite(a)):
            g["vels"].append(a)
        elif a.size == 1 and np.isfinite(a[0]):
            g["speeds"].append(float(a[0]))


def _group_estimate(g: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    f = information_fusion(np.stack(g["zs"]), np.stack(g["Rs"]))
    return np.asarray(f.x), np.asarray(f.P)
