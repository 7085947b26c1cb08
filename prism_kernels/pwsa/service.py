"""The PWSA service: one multi-target tracker, detection, fusion, prediction and ranking.

:class:`PwsaService` is what the REST routes (``/api/v1/pwsa/...``) and the dashboard call.
It holds a :class:`~prism_kernels.pwsa.tracker.Tracker` built from swappable parts
(:func:`build_tracker`), counts the scans it processed and their latency, persists its tracks
in the :class:`~prism_kernels.store.Store` (bounded per kind) so a restarted server still
lists them and carries on tracking, and publishes ``ThreatDetected`` on the
:class:`~prism_kernels.events.EventBus` when a detection (or a newly confirmed track) is
classified as a threat. Every method takes and returns plain Python values (dicts, lists,
floats) and is thread-safe (one re-entrant lock around the state).

Frames and units: local east-north-up (ENU), metres, ground at ``z = 0``, seconds.
Radar measurements ``{range, azimuth, elevation}`` are converted with
:func:`spherical_to_enu`: azimuth clockwise from north, elevation above the horizontal,
degrees unless ``angle_unit="rad"``, relative to ``sensor_position`` (default the ENU origin).

Track status: the tracker's ``confirmed`` tracks are reported as ``active`` (the original
API's ``TrackInfo.status``), ``tentative`` and ``lost`` as such.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.pwsa.detection import (
    THREAT_CLASSES,
    classify,
    detect_frame,
    track_features,
)
from prism_kernels.pwsa.fusion import information_fusion
from prism_kernels.pwsa.imm import IMM
from prism_kernels.pwsa.infometrics import series_info_metrics
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.models import Ballistic, ConstantVelocity, cv_transition
from prism_kernels.pwsa.prioritize import TYPE_WEIGHTS, prioritization_report
from prism_kernels.pwsa.tracker import (
    CONFIRMED,
    LOST,
    TENTATIVE,
    GNNAssociator,
    IMMPredictor,
    KalmanPredictor,
    MissCovarianceDeleter,
    MofNInitiator,
    Track,
    Tracker,
)
from prism_kernels.pwsa.trajectory import error_ellipse, impact_distribution, predict
from prism_kernels.store import Bound, Store

log = logging.getLogger(__name__)

KIND_TRACK = "pwsa_track"
KIND_STATE = "pwsa_tracker"
KIND_DETECTION = "pwsa_detection"
STATE_ID = "state"

#: Tracker status -> reported status (the original API calls a confirmed track "active").
STATUS_OUT = {CONFIRMED: "active", TENTATIVE: "tentative", LOST: "lost"}
_STATUS_IN = {
    "active": "active",
    "confirmed": "active",
    "tentative": "tentative",
    "lost": "lost",
    "terminated": "lost",
    "all": "all",
}

#: 2-sigma region of a 2-D Gaussian: P(chi2_2 <= 4) = 1 - exp(-2).
TWO_SIGMA_2D = 1.0 - math.exp(-2.0)

#: Default noise of radar and IR range/angle measurements, by sensor kind:
#: (range sigma in m, angle sigma in rad).
SENSOR_NOISE = {
    "radar": (20.0, 2e-3),
    "ir": (1000.0, 5e-5),
    "default": (100.0, 1e-3),
}

#: Tracker defaults (see :func:`build_tracker`).
DEFAULT_TRACKER = {
    "predictor": "cv",
    "q": 400.0,
    "gate_probability": 0.999,
    "confirm_m": 3,
    "confirm_n": 4,
    "max_speed": 8000.0,
    "max_misses": 3,
    "measurement_sigma": 100.0,
    "max_lost_history": 50,
}


def build_tracker(
    predictor: str = "cv",
    q: float = 400.0,
    gate_probability: float = 0.999,
    confirm_m: int = 3,
    confirm_n: int = 4,
    max_speed: float = 8000.0,
    max_misses: int = 3,
    measurement_sigma: float = 100.0,
    max_lost_history: int = 50,
    backend: str | None = None,
) -> Tracker:
    """A :class:`Tracker` from named parts.

    Parameters
    ----------
    predictor : {"cv", "ballistic", "imm"}
        Constant velocity, constant velocity plus gravity, or the CV/CA/ballistic IMM.
    q : float
        Process-noise intensity (m^2/s^3) of the CV / ballistic model.
    gate_probability : float
        Chi-square gate of the GNN association.
    confirm_m, confirm_n : int
        M-of-N confirmation.
    max_speed : float
        Largest speed (m/s) for pairing two measurements into a new track.
    max_misses : int
        Consecutive missed scans before a confirmed track is lost.
    measurement_sigma : float
        Position noise (m, per axis) of measurements that carry no covariance.
    """
    name = str(predictor).lower()
    if name == "cv":
        pred: Any = KalmanPredictor(ConstantVelocity(q))
    elif name == "ballistic":
        pred = KalmanPredictor(Ballistic(q))
    elif name == "imm":
        pred = IMMPredictor(IMM.cv_ca_ballistic(10.0, 10.0, 1.0))
    else:
        raise InvalidInput("predictor", "expected one of cv, ballistic, imm")
    if not (math.isfinite(measurement_sigma) and measurement_sigma > 0):
        raise InvalidInput("measurement_sigma", "must be a positive number of metres")
    return Tracker(
        pred,
        associator=GNNAssociator(gate_probability),
        initiator=MofNInitiator(m=confirm_m, n=confirm_n, max_speed=max_speed),
        deleter=MissCovarianceDeleter(max_misses=max_misses),
        default_R=np.eye(3) * float(measurement_sigma) ** 2,
        backend=backend,
        max_lost_history=max_lost_history,
    )


# --------------------------------------------------------------------------- conversions


def spherical_to_enu(
    range_m: float,
    azimuth: float,
    elevation: float,
    sensor_position: Sequence[float] | None = None,
    *,
    degrees: bool = True,
    range_sigma: float = 100.0,
    angle_sigma: float = 1e-3,
    field: str = "radar",
) -> tuple[np.ndarray, np.ndarray]:
    """ENU position (3,) and its covariance (3, 3) of a range/azimuth/elevation measurement.

    ``e = r cos(el) sin(az)``, ``n = r cos(el) cos(az)``, ``u = r sin(el)`` (azimuth clockwise
    from north), plus ``sensor_position``. The covariance is the first-order transform
    ``J diag(range_sigma^2, angle_sigma^2, angle_sigma^2) J^T`` (``angle_sigma`` in radians).
    """
    vals = [range_m, azimuth, elevation, range_sigma, angle_sigma]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals):
        raise InvalidInput(field, "range, azimuth, elevation and their sigmas must be finite")
    if range_m <= 0:
        raise InvalidInput(f"{field}.range", "range must be positive (metres)")
    if range_sigma <= 0 or angle_sigma <= 0:
        raise InvalidInput(field, "range_sigma and angle_sigma must be positive")
    az = math.radians(azimuth) if degrees else float(azimuth)
    el = math.radians(elevation) if degrees else float(elevation)
    if abs(el) > math.pi / 2 + 1e-12:
        raise InvalidInput(f"{field}.elevation", "elevation must be within [-90, 90] degrees")
    s0 = _vec3(sensor_position, f"{field}.sensor_position") if sensor_position is not None else 0
    ce, se, ca, sa = math.cos(el), math.sin(el), math.cos(az), math.sin(az)
    r = float(range_m)
    z = np.array([r * ce * sa, r * ce * ca, r * se]) + s0
    J = np.array(
        [
            [ce * sa, r * ce * ca, -r * se * sa],
            [ce * ca, -r * ce * sa, -r * se * ca],
            [se, 0.0, r * ce],
        ]
    )
    R = J @ np.diag([range_sigma**2, angle_sigma**2, angle_sigma**2]) @ J.T
    return z, 0.5 * (R + R.T)


def _vec3(v: Any, field: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "expected three numbers [x, y, z]") from exc
    if a.size != 3:
        raise InvalidInput(field, f"expected three numbers [x, y, z], got {a.size}")
    if not np.all(np.isfinite(a)):
        raise InvalidInput(field, "contains NaN or inf")
    return a


def measurement_covariance(m: Mapping[str, Any], default: np.ndarray, field: str) -> np.ndarray:
    """The (3, 3) noise covariance of one measurement dict: ``covariance`` (3x3, or 3
    variances), ``sigma`` (one number, or three per-axis sigmas, m), else ``default``."""
    cov, sig = m.get("covariance"), m.get("sigma")
    if cov is not None:
        try:
            c = np.asarray(cov, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{field}.covariance", "expected a 3x3 matrix of numbers") from exc
        if c.shape == (3,):
            c = np.diag(c)
        if c.shape != (3, 3):
            raise InvalidInput(
                f"{field}.covariance", f"expected a 3x3 matrix (or 3 variances), got {c.shape}"
            )
        if not np.all(np.isfinite(c)):
            raise InvalidInput(f"{field}.covariance", "contains NaN or inf")
        if not np.allclose(c, c.T) or np.linalg.eigvalsh(0.5 * (c + c.T)).min() <= 0:
            raise InvalidInput(f"{field}.covariance", "must be symmetric positive definite")
        return 0.5 * (c + c.T)
    if sig is not None:
        s = np.asarray(sig, dtype=np.float64).reshape(-1)
        if s.size not in (1, 3):
            raise InvalidInput(f"{field}.sigma", "expected one sigma or three per-axis sigmas")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise InvalidInput(f"{field}.sigma", "sigma must be positive and finite (metres)")
        return np.diag(np.broadcast_to(s, (3,)) ** 2)
    return default


# --------------------------------------------------------------------------- outputs


def classify_kinematics(
    position: Any, velocity: Any = None, acceleration: Any = None
) -> dict[str, Any]:
    """Object class from kinematics (altitude, speed, acceleration) with the naive-Bayes
    model of :func:`prism_kernels.pwsa.detection.classify`."""
    feats = track_features(
        {"position": position, "velocity": velocity, "acceleration": acceleration}
    )
    c = classify(feats)
    return {
        "threat_type": c.threat_type,
        "confidence": c.confidence,
        "is_threat": c.is_threat,
        "probabilities": c.probabilities,
    }


def track_summary(track: Track) -> dict[str, Any]:
    """The REST form of a track: ``track_id``, ``status``, ``position``, ``velocity``,
    ``speed``, ``covariance`` (6x6 position/velocity block), ``position_std``, ``confidence``,
    ``threat_type`` (and its probability), ``last_updated``, ``ellipse`` (2-sigma,
    horizontal), plus the tracker's bookkeeping."""
    x = np.asarray(track.state["x"], dtype=np.float64)
    P = np.asarray(track.state["P"], dtype=np.float64)
    pos, vel = x[:3], x[3:6]
    acc = x[6:9] if x.size >= 9 else None
    cls = classify_kinematics(pos, vel, acc)
    a, b, ang = error_ellipse(P[:2, :2], TWO_SIGMA_2D)
    mu = track.mode_probabilities
    return {
        "track_id": track.track_id,
        "status": STATUS_OUT.get(track.status, track.status),
        "position": pos.tolist(),
        "velocity": vel.tolist(),
        "acceleration": None if acc is None else acc.tolist(),
        "speed": float(np.linalg.norm(vel)),
        "covariance": P[:6, :6].tolist(),
        "position_std": np.sqrt(np.clip(np.diag(P)[:3], 0.0, None)).tolist(),
        "confidence": track.confidence,
        "threat_type": cls["threat_type"],
        "threat_probability": cls["confidence"],
        "is_threat": cls["is_threat"],
        "ellipse": {"semi_major": a, "semi_minor": b, "orientation_deg": ang, "sigma": 2.0},
        "last_updated": float(track.last_updated),
        "time": float(track.time),
        "created": float(track.created),
        "hits": int(sum(track.hits)),
        "consecutive_misses": int(track.consecutive_misses),
        "sensors": list(track.sensors),
        "mode_probabilities": None if mu is None else np.asarray(mu).tolist(),
    }


def ellipse_outline(
    center: Sequence[float], ellipse: Mapping[str, float], n: int = 36, scale: float = 1.0
) -> np.ndarray:
    """Closed outline (n + 1, 2) of an ellipse ``{semi_major, semi_minor, orientation_deg}``
    (as in :func:`track_summary`) around ``center`` [x, y], all coordinates times ``scale``."""
    th = np.linspace(0.0, 2.0 * math.pi, n + 1)
    a, b = float(ellipse["semi_major"]), float(ellipse["semi_minor"])
    phi = math.radians(float(ellipse["orientation_deg"]))
    u = a * np.cos(th)
    v = b * np.sin(th)
    x = center[0] + u * math.cos(phi) - v * math.sin(phi)
    y = center[1] + u * math.sin(phi) + v * math.cos(phi)
    return np.stack([x, y], axis=1) * scale


def _risk_level(threat_type: str, confidence: float | None) -> str:
    s = TYPE_WEIGHTS.get(threat_type, 0.5) * (confidence or 0.0)
    return "high" if s >= 0.6 else "medium" if s >= 0.3 else "low"


# --------------------------------------------------------------------------- the service


class PwsaService:
    """Missile-warning tracking state and operations (see the module docstring).

    Parameters
    ----------
    store, bus : Store, EventBus
        Persistence and events (in-memory ones when omitted).
    tracker : dict, optional
        :func:`build_tracker` arguments overriding :data:`DEFAULT_TRACKER`.
    max_tracks_stored : int
        Bound of the stored track documents (oldest dropped first).
    persist : bool
        Save the tracker state after each scan and restore it on construction.
    """

    def __init__(
        self,
        store: Store | None = None,
        bus: EventBus | None = None,
        *,
        tracker: Mapping[str, Any] | None = None,
        max_tracks_stored: int = 5000,
        max_detections_stored: int = 1000,
        persist: bool = True,
        save_interval_s: float = 1.0,
    ) -> None:
        self.store = store if store is not None else Store(":memory:")
        self.bus = bus if bus is not None else EventBus()
        self.config = {**DEFAULT_TRACKER, **dict(tracker or {})}
        self.tracker = build_tracker(**self.config)
        self.persist = persist
        self.save_interval_s = float(save_interval_s)
        self._last_save = 0.0
        self._active: dict[str, dict[str, Any]] = {}  # summaries of the confirmed tracks
        self.store.set_bound(KIND_TRACK, Bound(max_items=max_tracks_stored))
        self.store.set_bound(KIND_DETECTION, Bound(max_items=max_detections_stored))
        self._lock = threading.RLock()
        self.scans_processed = 0
        self.detections_processed = 0
        self.threats_detected = 0
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=1000)
        self.sensor_last_seen: dict[str, float] = {}
        self.started = time.time()
        self.restored = False
        if persist:
            self._restore()

    # ------------------------------------------------------------------ persistence
    def _restore(self) -> None:
        if not self.store.exists(KIND_STATE, STATE_ID):
            return
        doc = self.store.get(KIND_STATE, STATE_ID)
        if doc.get("config") != self.config:
            log.warning("stored PWSA tracker has another configuration; starting a fresh one")
            self._retire_stored_tracks()
            return
        try:
            self.tracker.load_dict(doc["tracker"])
        except (InvalidInput, KeyError) as exc:
            log.warning("stored PWSA tracker state unreadable (%s); starting a fresh one", exc)
            self.tracker = build_tracker(**self.config)
            self._retire_stored_tracks()
            return
        self.scans_processed = int(doc.get("scans_processed", 0))
        self.detections_processed = int(doc.get("detections_processed", 0))
        self.threats_detected = int(doc.get("threats_detected", 0))
        self.sensor_last_seen = {str(k): float(v) for k, v in doc.get("sensors", {}).items()}
        self._active = {t.track_id: track_summary(t) for t in self.tracker.tracks(CONFIRMED)}
        self.restored = True

    def _retire_stored_tracks(self) -> None:
        """Stored tracks that a fresh tracker no longer follows are reported as lost."""
        for tid, d in self.store.list(KIND_TRACK):
            if d.get("status") != "lost":
                self.store.put(KIND_TRACK, tid, {**d, "status": "lost"})

    def _save_state(self) -> None:
        if not self.persist:
            return
        self._last_save = time.monotonic()
        self.store.put(
            KIND_STATE,
            STATE_ID,
            {
                "config": self.config,
                "tracker": self.tracker.to_dict(),
                "scans_processed": self.scans_processed,
                "detections_processed": self.detections_processed,
                "threats_detected": self.threats_detected,
                "sensors": self.sensor_last_seen,
            },
        )

    def close(self) -> None:
        """Save the tracker state (the runtime calls this when the server stops)."""
        with self._lock:
            if self.scans_processed:
                self._save_state()

    # ------------------------------------------------------------------ tracking
    def reset(self) -> None:
        """Drop every track (live and stored) and start a fresh tracker."""
        with self._lock:
            self.tracker = build_tracker(**self.config)
            for tid, _ in self.store.list(KIND_TRACK):
                self.store.delete(KIND_TRACK, tid)
            self.store.delete(KIND_STATE, STATE_ID)
            self.scans_processed = 0
            self._active = {}
            self.latencies_ms.clear()
            self.sensor_last_seen.clear()

    def track_scan(self, sensor_id: str, timestamp: float, measurements: Any) -> dict[str, Any]:
        """One tracker scan of one sensor.

        ``measurements``: a (K, 3) array of ENU positions (m), or a list of
        ``{position: [x, y, z], sigma | covariance}`` (per-measurement noise; without either,
        the sensor's registered noise or the default ``measurement_sigma``).
        Returns ``active_tracks``, ``new_detections`` (tracks confirmed in this scan),
        ``new_tracks`` (tentative tracks started), ``lost_tracks``, ``latency_ms``, ``tracks``
        (the active tracks) and the counts of measurements and associations.
        """
        return self.track_sensors(timestamp, {str(sensor_id): measurements})

    def track_sensors(self, timestamp: float, sensors: Mapping[str, Any]) -> dict[str, Any]:
        """One scan of several sensors at the same time, fused sequentially (one Kalman update
        per sensor); ``sensors`` maps sensor id to measurements as in :meth:`track_scan`, or to
        ``{"measurements": ..., "covariance": (3, 3)}`` giving the sensor's noise."""
        t0 = time.perf_counter()
        try:
            t = float(timestamp)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("timestamp", "must be a number of seconds") from exc
        if not math.isfinite(t):
            raise InvalidInput("timestamp", "must be finite")
        with self._lock:
            batches: dict[str, np.ndarray] = {}
            for sid, meas in sensors.items():
                sid = str(sid)
                sensor_R = None
                if isinstance(meas, Mapping):
                    if meas.get("covariance") is not None or meas.get("sigma") is not None:
                        sensor_R = measurement_covariance(meas, None, f"sensors.{sid}")
                    meas = meas.get("measurements", [])
                default = (
                    sensor_R
                    if sensor_R is not None
                    else self.tracker.sensors.get(sid, self.tracker.default_R)
                )
                for key, (Z, R) in self._group(sid, meas, default).items():
                    self.tracker.add_sensor(key, R)
                    batches[key] = Z
            if self.tracker.time is not None and t < self.tracker.time:
                raise InvalidInput(
                    "timestamp",
                    f"scan at {t} s is earlier than the tracker's last scan at "
                    f"{self.tracker.time} s; scans must come in time order",
                )
            res = self.tracker.step(batches, t)
            self.scans_processed += 1
            now = time.time()
            for sid in sensors:
                self.sensor_last_seen[str(sid)] = now
            active = [track_summary(tr) for tr in res.tracks]
            by_id = {d["track_id"]: d for d in active}
            self._active = by_id
            # Stored documents change on events only (confirmed, lost); listing overlays the
            # live summaries, and the tracker state (saved below) carries the live tracks.
            confirmed = [by_id[tr.track_id] for tr in res.confirmed if tr.track_id in by_id]
            for d in confirmed:
                self.store.put(KIND_TRACK, d["track_id"], d)
            lost = []
            for tr in res.lost:
                if self.store.exists(KIND_TRACK, tr.track_id):  # it had been confirmed
                    d = track_summary(tr)
                    self.store.put(KIND_TRACK, tr.track_id, d)
                    lost.append(d["track_id"])
            for d in confirmed:
                if d["is_threat"]:
                    self.threats_detected += 1
                    self.bus.publish(
                        "ThreatDetected",
                        {
                            "threat_id": d["track_id"],
                            "confidence": d["threat_probability"] * d["confidence"],
                            "position": d["position"],
                            "timestamp": t,
                            "threat_type": d["threat_type"],
                            "source": "track",
                        },
                    )
            if confirmed or lost or time.monotonic() - self._last_save >= self.save_interval_s:
                self._save_state()
            latency = (time.perf_counter() - t0) * 1e3
            self.latencies_ms.append(latency)
            return {
                "timestamp": t,
                "scan": self.scans_processed,
                "sensors": list(sensors),
                "active_tracks": len(active),
                "tentative_tracks": sum(1 for m in self.tracker._meta if m.status == TENTATIVE),
                "new_detections": len(confirmed),
                "new_tracks": len(res.new),
                "lost_tracks": len(res.lost),
                "lost_track_ids": [tr.track_id for tr in res.lost],
                "confirmed_track_ids": [d["track_id"] for d in confirmed],
                "measurements": res.n_measurements,
                "associated": res.n_associated,
                "latency_ms": latency,
                "tracks": active,
            }

    def _group(
        self, sid: str, meas: Any, default: np.ndarray
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Measurements of one sensor grouped by noise covariance: ``{sensor key: (Z, R)}``."""
        field = "measurements"
        if isinstance(meas, np.ndarray) or (
            isinstance(meas, Sequence) and meas and not isinstance(meas[0], Mapping)
        ):
            Z = np.asarray(meas, dtype=np.float64)
            if Z.size == 0:
                Z = Z.reshape(0, 3)
            if Z.ndim != 2 or Z.shape[1] != 3:
                raise InvalidInput(field, f"expected (K, 3) positions, got shape {Z.shape}")
            if not np.all(np.isfinite(Z)):
                raise InvalidInput(field, "contains NaN or inf")
            return {sid: (Z, default)}
        if not isinstance(meas, Sequence):
            raise InvalidInput(field, "expected a list of {position, sigma | covariance}")
        groups: dict[bytes, list[tuple[np.ndarray, np.ndarray]]] = {}
        for i, m in enumerate(meas):
            if not isinstance(m, Mapping) or m.get("position") is None:
                raise InvalidInput(f"{field}.{i}.position", "each measurement needs a position")
            z = _vec3(m["position"], f"{field}.{i}.position")
            R = measurement_covariance(m, default, f"{field}.{i}")
            groups.setdefault(R.tobytes(), []).append((z, R))
        if not groups:
            return {sid: (np.zeros((0, 3)), default)}
        out = {}
        for j, items in enumerate(groups.values()):
            key = sid if j == 0 else f"{sid}#{j}"
            out[key] = (np.stack([z for z, _ in items]), items[0][1])
        return out

    # ------------------------------------------------------------------ track queries
    def tracks(
        self, limit: int = 20, offset: int = 0, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Tracks, most recently updated first. ``status``: ``active`` (alias ``confirmed``),
        ``lost`` (alias ``terminated``), ``tentative``, ``all``; default active and lost."""
        want = None if status is None else _STATUS_IN.get(str(status).lower())
        if status is not None and want is None:
            raise InvalidInput("status", "expected one of active, lost, tentative, all")
        if limit < 0 or offset < 0:
            raise InvalidInput("limit", "limit and offset must be >= 0")
        with self._lock:
            rows: list[dict[str, Any]] = []
            if want in (None, "active", "lost", "all"):
                live = dict(self._active)
                rows = [live.pop(tid, doc) for tid, doc in self.store.list(KIND_TRACK)]
                rows += list(live.values())  # active tracks whose document the bound dropped
                if want in ("active", "lost"):
                    rows = [r for r in rows if r["status"] == want]
            if want in ("tentative", "all"):
                rows += [track_summary(t) for t in self.tracker.tracks(TENTATIVE)]
        rows.sort(key=lambda r: (-r["last_updated"], r["track_id"]))
        return rows[offset : offset + limit]

    def track(self, track_id: str) -> dict[str, Any]:
        """One track by id (live, recently lost or stored); :class:`NotFound` when unknown."""
        with self._lock:
            try:
                return track_summary(self.tracker.get(track_id))
            except NotFound:
                pass
            if self.store.exists(KIND_TRACK, track_id):
                return self.store.get(KIND_TRACK, track_id)
        raise NotFound("track", track_id)

    # ------------------------------------------------------------------ detection
    def detect(self, sensor_input: Mapping[str, Any]) -> dict[str, Any]:
        """Assess one sensor frame (a ``SensorInput``: ``sv_id``, ``timestamp``, ``ir_frame``
        ``{width, height, centroid_x, centroid_y, hotspot_count, pixels?}``, optional
        ``radar_tracks`` and ``radar {range, azimuth, elevation}``).

        With ``pixels``: hotspot detection and classification on the frame
        (:func:`~prism_kernels.pwsa.detection.detect_frame`) and the frame's information
        metrics. Without: the original server's series metrics of ``[centroid_x, centroid_y,
        hotspot_count]`` and the given centroid. Kinematics (position, velocity) come from
        ``radar_tracks[0]`` or ``radar``; with them the class uses altitude and speed, and a
        drag-free ballistic prediction gives ``estimated_trajectory`` and ``time_to_impact``.
        Without any range information ``position`` is ``null`` (an IR frame alone gives a
        line of sight, not a 3-D position). Publishes ``ThreatDetected`` for a threat class.
        """
        t0 = time.perf_counter()
        ir = sensor_input.get("ir_frame")
        if not isinstance(ir, Mapping):
            raise InvalidInput("ir_frame", "missing ir_frame")
        kin = self._kinematics(sensor_input)
        pixels = ir.get("pixels")
        hotspots: list[dict[str, Any]] = []
        if pixels is not None:
            det = detect_frame(
                pixels,
                width=int(ir["width"]),
                height=int(ir["height"]),
                track=kin or None,
            )
            hotspots = [h.to_dict() for h in det.hotspots]
            info = det.info_metrics.to_dict() if det.info_metrics is not None else None
            threat_type, confidence = det.threat_type, det.confidence
            probabilities = det.probabilities
            centroid = list(det.centroid) if det.centroid is not None else None
            count = det.n_hotspots
            noise = det.noise_sigma
        else:
            cx, cy, n = ir["centroid_x"], ir["centroid_y"], ir["hotspot_count"]
            info = series_info_metrics([cx, cy, n]).to_dict()
            centroid = [float(cx), float(cy)]
            count = int(n)
            noise = None
            if count == 0:
                threat_type, confidence, probabilities = "none", None, None
            elif kin:
                c = classify_kinematics(kin["position"], kin.get("velocity"))
                threat_type, confidence = c["threat_type"], c["confidence"]
                probabilities = c["probabilities"]
            else:
                threat_type, confidence, probabilities = "unknown", None, None
        position = kin["position"].tolist() if kin else None
        velocity = kin["velocity"].tolist() if kin and kin.get("velocity") is not None else None
        trajectory, tti, impact_pt = [], None, None
        if position is not None and velocity is not None and position[2] >= 0:
            pred = predict(
                state=np.concatenate([kin["position"], kin["velocity"]]), horizon=600.0, dt=5.0
            )
            trajectory = pred.positions.tolist()
            tti = pred.time_to_impact
            if pred.impact is not None:
                impact_pt = [float(pred.impact.point[0]), float(pred.impact.point[1]), 0.0]
        threat_id = "threat-" + str(uuid.uuid4())
        is_threat = threat_type in THREAT_CLASSES
        if threat_type == "none":
            action = "none"
        else:
            ranked = prioritization_report(
                [
                    {
                        "threat_id": threat_id,
                        "threat_type": threat_type,
                        "confidence": confidence if confidence is not None else 0.5,
                        "time_to_impact": tti,
                        "impact_point": impact_pt,
                    }
                ],
                strategy="time_weighted_risk",
            )["prioritized_threats"][0]
            action = ranked["recommended_action"]
        out = {
            "threat_id": threat_id,
            "sv_id": sensor_input.get("sv_id"),
            "timestamp": sensor_input.get("timestamp"),
            "threat_type": threat_type,
            "is_threat": is_threat,
            "confidence": confidence,
            "probabilities": probabilities,
            "threat_level": _risk_level(threat_type, confidence) if threat_type != "none" else None,
            "position": position,
            "velocity": velocity,
            "estimated_trajectory": trajectory,
            "time_to_impact": tti,
            "impact_point": impact_pt,
            "recommended_action": action,
            "centroid": centroid,
            "hotspot_count": count,
            "hotspots": hotspots,
            "noise_sigma": noise,
            "info_metrics": info,
        }
        with self._lock:
            self.detections_processed += 1
            doc = {k: v for k, v in out.items() if k != "hotspots"}
            self.store.put(KIND_DETECTION, threat_id, doc)
            if is_threat:
                self.threats_detected += 1
        if is_threat:
            self.bus.publish(
                "ThreatDetected",
                {
                    "threat_id": threat_id,
                    "confidence": confidence,
                    "position": position,
                    "timestamp": sensor_input.get("timestamp"),
                    "threat_type": threat_type,
                    "sv_id": sensor_input.get("sv_id"),
                    "source": "detect",
                },
            )
        out["processing_time_ms"] = (time.perf_counter() - t0) * 1e3
        return out

    @staticmethod
    def _kinematics(sensor_input: Mapping[str, Any]) -> dict[str, Any]:
        radar_tracks = sensor_input.get("radar_tracks") or []
        if radar_tracks:
            rt = radar_tracks[0]
            return {
                "position": _vec3(rt.get("position"), "radar_tracks.0.position"),
                "velocity": _vec3(rt.get("velocity"), "radar_tracks.0.velocity"),
            }
        radar = sensor_input.get("radar")
        if radar:
            z, _ = radar_to_enu(radar, "radar")
            return {"position": z, "velocity": None}
        return {}

    # ------------------------------------------------------------------ fusion
    def fuse(self, request: Any) -> dict[str, Any]:
        """Multi-sensor fusion; two request shapes.

        * A list of ``SensorInput`` (the original API): grouped by ``sv_id``, each group's
          measurements run through the original server's 6-state constant-velocity Kalman
          filter (:func:`fuse_sensor_inputs`). One ``fused_tracks`` entry ``sv-<id>`` each.
        * ``{sv_id, timestamp, sensors: {name: {targets: [...]}}}`` (the Python client and
          notebook 02): each target ``{id?, range, azimuth, elevation}`` (or ``position``)
          is converted to ENU with its covariance, targets are associated across sensors
          (same ``id``, else global nearest neighbour within a chi-square gate) and fused in
          information form (:func:`~prism_kernels.pwsa.fusion.information_fusion`).
        """
        t0 = time.perf_counter()
        if isinstance(request, Sequence) and not isinstance(request, (str, bytes)):
            out = fuse_sensor_inputs(request)
        elif isinstance(request, Mapping):
            sensors = request.get("sensors")
            if isinstance(sensors, Sequence) and not isinstance(sensors, (str, bytes)):
                out = fuse_sensor_inputs(sensors)
            elif isinstance(sensors, Mapping):
                out = fuse_targets(sensors, request.get("timestamp"), request.get("sv_id"))
            else:
                raise InvalidInput("sensors", "expected {name: {targets: [...]}} or a list")
        else:
            raise InvalidInput(
                "body", "expected a list of SensorInput or {sv_id, timestamp, sensors}"
            )
        out["processing_time_ms"] = (time.perf_counter() - t0) * 1e3
        return out

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        track_id: str | None = None,
        history: Any = None,
        prediction_horizon: float = 60.0,
        model: str = "ballistic",
        dt: float = 1.0,
        measurement_sigma: float | None = None,
        drag: Any = None,
    ) -> dict[str, Any]:
        """Trajectory prediction with covariances and the impact estimate.

        From ``history`` (``[{timestamp, position}]``, fitted by least squares), else from
        the stored state of ``track_id`` (:class:`NotFound` when unknown).
        """
        t0 = time.perf_counter()
        if not (math.isfinite(dt) and dt > 0):
            raise InvalidInput("dt", "dt must be positive")
        if prediction_horizon / dt > 10_000:
            raise InvalidInput("prediction_horizon", "prediction_horizon / dt exceeds 10000 steps")
        if history:
            pred = predict(
                history,
                horizon=prediction_horizon,
                dt=dt,
                model=model,
                measurement_sigma=measurement_sigma,
                drag=drag,
            )
        elif track_id is not None:
            tr = self.track(str(track_id))
            state = np.concatenate([np.asarray(tr["position"]), np.asarray(tr["velocity"])])
            if state[2] < 0:
                raise InvalidInput("track_id", "the track is below the ground (z < 0)")
            pred = predict(
                state=state,
                cov=np.asarray(tr["covariance"]),
                epoch=tr["time"],
                horizon=prediction_horizon,
                dt=dt,
                model=model,
                drag=drag,
            )
        else:
            raise InvalidInput("history", "give a history or the track_id of a known track")
        out = pred.to_dict()
        out["track_id"] = track_id
        out["computation_time_ms"] = (time.perf_counter() - t0) * 1e3
        return out

    # ------------------------------------------------------------------ prioritization
    def threats_from_tracks(self) -> list[dict[str, Any]]:
        """The active tracks as threats for :func:`prioritize`: class and probability from
        kinematics, impact point and time (unscented transform of the track covariance
        through the drag-free ballistic impact) where the track is above ground."""
        with self._lock:
            tracks = [track_summary(t) for t in self.tracker.tracks(CONFIRMED)]
        out = []
        for d in tracks:
            th = {
                "threat_id": d["track_id"],
                "threat_type": d["threat_type"],
                "confidence": float(d["threat_probability"] * d["confidence"]),
                "position": d["position"],
                "velocity": d["velocity"],
            }
            if d["position"][2] >= 0:
                try:
                    st = np.concatenate([d["position"], d["velocity"]])
                    imp = impact_distribution(st, np.asarray(d["covariance"]))
                    th["impact_point"] = {
                        "position": [float(imp.point[0]), float(imp.point[1]), 0.0],
                        "covariance": imp.cov.tolist(),
                    }
                    th["time_to_impact"] = float(imp.time)
                except InvalidInput:
                    pass  # no ground impact: prioritize treats it as having no impact time
            out.append(th)
        return out

    def prioritize(
        self,
        threats: Sequence[Mapping[str, Any]] | None = None,
        strategy: str = "time_weighted_risk",
        defensive_assets: Any = None,
        assets: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Rank ``threats`` (or, when none are given, the active tracks) by risk.

        ``defensive_assets``: ``{interceptors_available, max_engagement_range, assets}`` or a
        list of assets ``{name, position, radius, value}``.
        """
        t0 = time.perf_counter()
        source = "request"
        if not threats:
            threats = self.threats_from_tracks()
            source = "tracks"
        da = defensive_assets
        asset_list = list(assets or [])
        if isinstance(da, Mapping):
            for k in ("interceptors_available", "max_engagement_range"):
                if da.get(k) is not None and k not in kwargs:
                    kwargs[k] = da[k]
            asset_list += list(da.get("assets") or [])
        elif isinstance(da, Sequence) and not isinstance(da, (str, bytes)):
            asset_list += list(da)
        elif da is not None:
            raise InvalidInput("defensive_assets", "expected an object or a list of assets")
        rep = prioritization_report(threats, asset_list or None, strategy, **kwargs)
        rep["source"] = source
        rep["processing_time_ms"] = (time.perf_counter() - t0) * 1e3
        return rep

    # ------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        """The tracker's real state: tracks by status, scans, latency, sensors."""
        with self._lock:
            lat = np.asarray(self.latencies_ms, dtype=np.float64)
            now = time.time()
            n_active = sum(1 for m in self.tracker._meta if m.status == CONFIRMED)
            n_tent = sum(1 for m in self.tracker._meta if m.status == TENTATIVE)
            return {
                "status": "healthy",
                "sensors_online": sum(1 for v in self.sensor_last_seen.values() if now - v < 60.0),
                "sensors_seen": len(self.sensor_last_seen),
                "active_tracks": n_active,
                "tentative_tracks": n_tent,
                "stored_tracks": self.store.count(KIND_TRACK),
                "scans_processed": self.scans_processed,
                "detections_processed": self.detections_processed,
                "threats_detected": self.threats_detected,
                "processing_latency_ms": float(lat.mean()) if lat.size else None,
                "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else None,
                "last_scan_time": self.tracker.time,
                "restored": self.restored,
                "uptime_s": now - self.started,
                "tracker": dict(self.config),
            }


# --------------------------------------------------------------------------- fusion helpers


def radar_to_enu(radar: Mapping[str, Any], field: str) -> tuple[np.ndarray, np.ndarray]:
    """``{range, azimuth, elevation, sensor_position?, range_sigma?, angle_sigma?,
    angle_unit?}`` to an ENU position and covariance (:func:`spherical_to_enu`)."""
    unit = str(radar.get("angle_unit", "deg")).lower()
    if unit not in ("deg", "degrees", "rad", "radians"):
        raise InvalidInput(f"{field}.angle_unit", "expected deg or rad")
    degrees = unit.startswith("deg")
    rs, asig = SENSOR_NOISE["radar"]
    try:
        r, az, el = (float(radar[k]) for k in ("range", "azimuth", "elevation"))
    except KeyError as exc:
        raise InvalidInput(f"{field}.{exc.args[0]}", "missing") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "range, azimuth and elevation must be numbers") from exc
    return spherical_to_enu(
        r,
        az,
        el,
        radar.get("sensor_position"),
        degrees=degrees,
        range_sigma=float(radar.get("range_sigma", rs)),
        angle_sigma=float(radar.get("angle_sigma", asig)),
        field=field,
    )


#: The original server's fusion filter (original API section 1.4): P0, Q (not scaled by
#: dt), R, and the fixed altitude it gives a pixel centroid.
ORIGINAL_FILTER = {"p0_pos": 10.0**2, "p0_vel": 5.0**2, "q_pos": 0.1**2, "q_vel": 1.0**2, "r": 1.0}
ORIGINAL_ALTITUDE = 250.0


def fuse_sensor_inputs(inputs: Sequence[Any]) -> dict[str, Any]:
    """The original API's ``fuse``: per ``sv_id``, a 6-state constant-velocity Kalman filter
    over the inputs' measurements in array order.

    Each input's measurement is its ``radar`` (ENU, with its covariance) when given, else the
    original's ``[centroid_x, centroid_y, 250]`` with ``R = I``. As in the original: the
    state starts at the first measurement with zero velocity, ``P0 = diag(10^2, 5^2)``,
    ``Q = diag(0.1^2, 1^2)`` per step, and the filter clock starts at 0 (so the first
    predict spans the first timestamp); a predict runs only when ``dt > 0``. The result
    reproduces the original's reference values. ``confidence`` per track is the chi-square
    p-value of its summed normalised innovations (1 with a single measurement).
    """
    from scipy.stats import chi2

    groups: dict[int, list[tuple[float, np.ndarray, np.ndarray]]] = {}
    for i, s in enumerate(inputs):
        if not isinstance(s, Mapping):
            raise InvalidInput(f"{i}", "each element must be a SensorInput object")
        try:
            sv = int(s["sv_id"])
            ts = float(s["timestamp"])
        except KeyError as exc:
            raise InvalidInput(f"{i}.{exc.args[0]}", "missing") from None
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{i}", "sv_id and timestamp must be numbers") from exc
        if s.get("radar"):
            z, R = radar_to_enu(s["radar"], f"{i}.radar")
        else:
            ir = s.get("ir_frame")
            if not isinstance(ir, Mapping):
                raise InvalidInput(f"{i}.ir_frame", "missing ir_frame")
            z = np.array([float(ir["centroid_x"]), float(ir["centroid_y"]), ORIGINAL_ALTITUDE])
            R = np.eye(3) * ORIGINAL_FILTER["r"]
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


def _target_measurement(
    t: Mapping[str, Any], sensor: Mapping[str, Any], kind: str, field: str
) -> tuple[np.ndarray, np.ndarray]:
    rs, asig = SENSOR_NOISE.get(kind, SENSOR_NOISE["default"])
    if t.get("position") is not None:
        z = _vec3(t["position"], f"{field}.position")
        default = np.eye(3) * float(sensor.get("position_sigma", SENSOR_NOISE["default"][0])) ** 2
        return z, measurement_covariance(t, default, field)
    spec = {
        "range_sigma": t.get("range_sigma", sensor.get("range_sigma", rs)),
        "angle_sigma": t.get("angle_sigma", sensor.get("angle_sigma", asig)),
        "angle_unit": t.get("angle_unit", sensor.get("angle_unit", "deg")),
        "sensor_position": t.get("sensor_position", sensor.get("sensor_position")),
    }
    missing = [k for k in ("range", "azimuth", "elevation") if t.get(k) is None]
    if missing:
        raise InvalidInput(
            f"{field}.{missing[0]}", "each target needs a position or range, azimuth, elevation"
        )
    return radar_to_enu({**spec, **{k: t[k] for k in ("range", "azimuth", "elevation")}}, field)


def fuse_targets(
    sensors: Mapping[str, Any], timestamp: Any = None, sv_id: Any = None
) -> dict[str, Any]:
    """Fuse per-sensor target reports (see :meth:`PwsaService.fuse`, object form).

    A sensor's kind (``radar``, ``ir``) comes from its ``type`` or its name and sets the
    default range/angle noise (:data:`SENSOR_NOISE`). Targets match across sensors by ``id``;
    a target without a matching id joins the nearest fused group within the 99.9 %
    chi-square gate (squared Mahalanobis distance on ``P_a + P_b``), by global nearest
    neighbour; the rest start groups. Each group is fused in information form.

    Per track: ``confidence`` = coverage (sensors that saw it / sensors) times the chi-square
    p-value of the sensors' consistency ``sum_s (x_s - x)^T P_s^-1 (x_s - x)`` (3 (S - 1)
    degrees of freedom; 1 for a single sensor). ``fusion_quality`` = mean over tracks of
    ``1 - trace(P_fused) / min_s trace(P_s)``, the uncertainty removed by fusing (0 when
    every target is seen by one sensor).
    """
    from scipy.stats import chi2

    from prism_kernels.pwsa.association import chi2_gate, gnn_assign

    gate = chi2_gate(3, 0.999)
    groups: list[dict[str, Any]] = []  # {id, zs, Rs, sensors, speeds, vels, extra}
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
        kind = str(sensor.get("type", name)).lower()
        kind = "radar" if "radar" in kind else "ir" if kind in ("ir", "eo_ir", "infrared") else kind
        meas = []
        for j, t in enumerate(targets):
            f = f"sensors.{name}.targets.{j}"
            if not isinstance(t, Mapping):
                raise InvalidInput(f, "each target must be an object")
            z, R = _target_measurement(t, sensor, kind, f)
            meas.append((t, z, R))
        free = []
        for t, z, R in meas:
            tid = t.get("id", t.get("target_id"))
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
            g = {
                "id": t.get("id", t.get("target_id")),
                "zs": [],
                "Rs": [],
                "sensors": [],
                "speeds": [],
                "vels": [],
            }
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
        track = {
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
            "threat_level": _risk_level(cls["threat_type"], cls["confidence"]),
        }
        tracks.append(track)
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


__all__ = [
    "PwsaService",
    "build_tracker",
    "classify_kinematics",
    "ellipse_outline",
    "fuse_sensor_inputs",
    "fuse_targets",
    "radar_to_enu",
    "spherical_to_enu",
    "track_summary",
]
