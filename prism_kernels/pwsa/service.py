"""The PWSA service: the state of missile-warning tracking (one multi-target tracker, its
tracks, the detections) and the operations on it.

:class:`PwsaService` is what the REST routes (``/api/v1/pwsa/...``) and the dashboard call.
It holds a :class:`~prism_kernels.pwsa.tracker.Tracker` (built by
:func:`~prism_kernels.pwsa.tracker.build_tracker`), keeps its tracks and detections in
:class:`~prism_kernels.service.Collection` s and publishes ``ThreatDetected`` when a detection
(or a newly confirmed track) is classified as a threat. The math lives in the kernel modules
beside it (:mod:`.geometry`, :mod:`.sensor_fusion`, :mod:`.summary`, :mod:`.trajectory`,
:mod:`.prioritize`, :mod:`.detection`); every method takes and returns plain Python values.

Scans (:meth:`PwsaService.track_sensors`):

- **Validate first, mutate after.** Time, measurements and noise are checked before the
  tracker is touched; a scan that fails half-way (a numeric failure inside a kernel) puts the
  tracker back where it was. A rejected scan changes nothing, stored or live.
- **Timestamps** are seconds with ``|t| <= MAX_TIMESTAMP`` (1e10 s: the year 2286 as Unix
  time). Each sensor's scans come in time order (equal times allowed). Across sensors, the
  tracker's clock is its newest scan; a scan up to ``late_tolerance`` seconds (default
  :data:`~prism_kernels.pwsa.tracker.DEFAULT_TRACKER` ``late_tolerance`` = 5 s) behind it
  is still processed at its own time (the tracks are retrodicted to it); a later one is
  refused. A sensor whose clock runs ahead makes the others late: :meth:`reset` (an admin
  route) starts the tracker afresh.
- **Durability.** Every acknowledged scan is committed to the store before the method
  returns: the tracker state (one document) and then the documents of the tracks the scan
  confirmed or lost. A restart restores the tracker and reconciles the track documents with
  it (a crash between the two writes loses nothing acknowledged).

Frames and units: local east-north-up (ENU), metres, ground at ``z = 0``, seconds.
Track status: the tracker's ``confirmed`` tracks are reported as ``active`` (the original
API's ``TrackInfo.status``), ``tentative`` and ``lost`` as such.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.pwsa.detection import THREAT_CLASSES, detect_frame
from prism_kernels.pwsa.geometry import (
    as_vec3,
    group_by_noise,
    measurement_covariance,
    radar_to_enu,
)
from prism_kernels.pwsa.infometrics import series_info_metrics
from prism_kernels.pwsa.prioritize import prioritization_report
from prism_kernels.pwsa.sensor_fusion import fuse_sensor_inputs, fuse_targets
from prism_kernels.pwsa.summary import (
    classify_kinematics,
    risk_level,
    threat_of,
    track_summary,
)
from prism_kernels.pwsa.tracker import CONFIRMED, DEFAULT_TRACKER, TENTATIVE, build_tracker
from prism_kernels.pwsa.trajectory import predict
from prism_kernels.service import TIMING_KEY, DomainService
from prism_kernels.store import Store

log = logging.getLogger(__name__)

STATE_ID = "state"

#: Largest |timestamp| (s) of a scan: 1e10 s, the year 2286 as Unix time.
MAX_TIMESTAMP = 1e10

#: Statuses :meth:`PwsaService.tracks` filters on (``None``: active and lost).
TRACK_STATUSES = ("active", "tentative", "lost", "all")

#: A sensor counts as online while its last scan is at most this old (s, wall clock).
ONLINE_WINDOW_S = 60.0


class PwsaService(DomainService):
    """Missile-warning tracking state and operations (see the module docstring).

    Parameters
    ----------
    store, bus : Store, EventBus
        Persistence and events (in-memory ones when omitted).
    tracker : dict, optional
        :func:`~prism_kernels.pwsa.tracker.build_tracker` arguments overriding
        :data:`~prism_kernels.pwsa.tracker.DEFAULT_TRACKER`.
    max_tracks_stored, max_detections_stored : int
        Bounds of the stored track and detection documents (oldest dropped first).
    persist : bool
        Commit the tracker state after each scan and restore it on construction.
    """

    domain = "pwsa"
    events = ("ThreatDetected",)

    def __init__(
        self,
        store: Store | None = None,
        bus: EventBus | None = None,
        *,
        tracker: Mapping[str, Any] | None = None,
        max_tracks_stored: int = 5000,
        max_detections_stored: int = 1000,
        persist: bool = True,
    ) -> None:
        super().__init__(store, bus)
        self.config = {**DEFAULT_TRACKER, **dict(tracker or {})}
        self.tracker = build_tracker(**self.config)
        self.persist = persist
        self.stored_tracks = self.collection(
            "pwsa_track", max_items=max_tracks_stored, label="track"
        )
        self.saved_state = self.collection("pwsa_tracker", max_items=1, label="tracker state")
        self.detections = self.collection(
            "pwsa_detection", max_items=max_detections_stored, label="detection"
        )
        self._active: dict[str, dict[str, Any]] = {}  # summaries of the confirmed tracks
        self.scans_processed = 0
        self.detections_processed = 0
        self.threats_detected = 0
        self.sensor_last_seen: dict[str, float] = {}  # wall clock of each sensor's last scan
        self.sensor_scan_time: dict[str, float] = {}  # scan time of each sensor's last scan
        self.restored = False
        if persist:
            self._restore()

    # ------------------------------------------------------------------ persistence
    def _restore(self) -> None:
        """Load the committed tracker state, then make the track documents agree with it."""
        doc = self.saved_state.get(STATE_ID) if self.saved_state.exists(STATE_ID) else None
        if doc is not None and doc.get("config") != self.config:
            log.warning("stored PWSA tracker has another configuration; starting a fresh one")
            doc = None
        if doc is not None:
            try:
                self.tracker.load_dict(doc["tracker"])
            except (InvalidInput, KeyError) as exc:
                log.warning("stored PWSA tracker state unreadable (%s); starting a fresh one", exc)
                self.tracker = build_tracker(**self.config)
                doc = None
        if doc is not None:
            self.scans_processed = int(doc.get("scans_processed", 0))
            self.detections_processed = int(doc.get("detections_processed", 0))
            self.threats_detected = int(doc.get("threats_detected", 0))
            self.sensor_last_seen = {str(k): float(v) for k, v in doc.get("sensors", {}).items()}
            self.sensor_scan_time = {
                str(k): float(v) for k, v in doc.get("sensor_scan_times", {}).items()
            }
            self.restored = True
        self._active = {t.track_id: track_summary(t) for t in self.tracker.tracks(CONFIRMED)}
        self._reconcile()

    def _reconcile(self) -> None:
        """Track documents as the restored tracker sees them: every confirmed track stored,
        every stored active track that the tracker no longer confirms marked lost."""
        lost = {t.track_id: t for t in self.tracker.lost}
        for tid, d in self.stored_tracks.page(limit=None):
            if d.get("status") == "active" and tid not in self._active:
                gone = track_summary(lost[tid]) if tid in lost else {**d, "status": "lost"}
                self.stored_tracks.put(tid, gone)
        for tid, d in self._active.items():
            if not self.stored_tracks.exists(tid):
                self.stored_tracks.put(tid, d)

    def _save(self, tracker: Any, counters: Mapping[str, Any]) -> None:
        """Commit a tracker state and the counters that go with it (one document)."""
        if self.persist:
            doc = {"config": self.config, "tracker": tracker.to_dict(compact=True), **counters}
            self.saved_state.put(STATE_ID, doc)

    def close(self) -> None:
        """Nothing to flush: every acknowledged scan is already committed."""

    # ------------------------------------------------------------------ tracking
    def reset(self) -> dict[str, Any]:
        """Drop every track (live and stored) and start a fresh tracker (an admin's remedy
        for a tracker whose clock a sensor has run ahead). Detections are kept.

        Returns what was dropped: ``tracks_dropped``, ``scans_dropped``.
        """
        with self.timed("reset") as timing, self.lock:
            tracks_dropped, scans_dropped = self.stored_tracks.count(), self.scans_processed
            fresh = build_tracker(**self.config)
            # the empty tracker first: a crash before the documents are gone restores it
            self._save(
                fresh,
                {
                    "scans_processed": 0,
                    "detections_processed": self.detections_processed,
                    "threats_detected": self.threats_detected,
                    "sensors": {},
                    "sensor_scan_times": {},
                },
            )
            for tid in self.stored_tracks.ids():
                self.stored_tracks.delete(tid)
            self.tracker = fresh
            self.scans_processed = 0
            self._active = {}
            self.sensor_last_seen = {}
            self.sensor_scan_time = {}
            self.restored = False
        return {
            "reset": True,
            "tracks_dropped": tracks_dropped,
            "scans_dropped": scans_dropped,
            TIMING_KEY: timing.ms,
        }

    def track_scan(
        self,
        sensor_id: str,
        timestamp: float,
        measurements: Any = None,
        radar: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One tracker scan of one sensor.

        ``measurements``: a (K, 3) array of ENU positions (m), or a list of
        ``{position: [x, y, z], sigma | covariance}`` (per-measurement noise; without either,
        the sensor's registered noise or the default ``measurement_sigma``). Or ``radar``:
        one range/angle measurement (see :func:`~prism_kernels.pwsa.geometry.radar_to_enu`).

        Returns ``active_tracks``, ``new_detections`` (tracks confirmed in this scan),
        ``new_tracks`` (tentative tracks started), ``lost_tracks``, ``latency_ms``, ``tracks``
        (the active tracks) and the counts of measurements and associations.
        """
        if radar is not None:
            z, R = radar_to_enu(radar, "radar")
            measurements = [{"position": z, "covariance": R}]
        elif measurements is None:
            raise InvalidInput(
                "measurements", "missing: give measurements [{position, sigma}] or radar"
            )
        return self.track_sensors(timestamp, {str(sensor_id): measurements})

    def _scan_time(self, timestamp: Any, sensor_ids: Sequence[str]) -> float:
        """The scan time if every rule allows it (see the module docstring); changes nothing."""
        try:
            t = float(timestamp)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("timestamp", "must be a number of seconds") from exc
        if not math.isfinite(t) or abs(t) > MAX_TIMESTAMP:
            raise InvalidInput(
                "timestamp", f"must be a finite number of seconds within ±{MAX_TIMESTAMP:g}"
            )
        for sid in sensor_ids:
            last = self.sensor_scan_time.get(sid)
            if last is not None and t < last:
                raise InvalidInput(
                    "timestamp",
                    f"scan at {t} s is earlier than sensor {sid!r}'s last scan at {last} s; "
                    "each sensor's scans must come in time order",
                )
        return self.tracker.check_time(t)

    def _batches(self, sensors: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every sensor's measurements, validated, as ``{sensor key: (Z, R)}``."""
        batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for sid, meas in sensors.items():
            sid = str(sid)
            default = self.tracker.sensors.get(sid, self.tracker.default_R)
            if isinstance(meas, Mapping):  # {measurements, covariance | sigma of the sensor}
                default = measurement_covariance(meas, default, f"sensors.{sid}")
                meas = meas.get("measurements", [])
            batches.update(group_by_noise(sid, meas, default))
        return batches

    def track_sensors(self, timestamp: float, sensors: Mapping[str, Any]) -> dict[str, Any]:
        """One scan of several sensors at the same time, fused sequentially (one Kalman update
        per sensor); ``sensors`` maps sensor id to measurements as in :meth:`track_scan`, or to
        ``{"measurements": ..., "covariance": (3, 3) | "sigma": ...}`` giving the sensor's
        noise. Validated before anything changes; committed before it returns."""
        ids = [str(s) for s in sensors]
        with self.timed("track") as timing, self.lock:
            t = self._scan_time(timestamp, ids)
            batches = self._batches(sensors)
            checkpoint = self.tracker.checkpoint()
            try:
                for key, (_, R) in batches.items():
                    self.tracker.add_sensor(key, R)
                res = self.tracker.step({k: Z for k, (Z, _) in batches.items()}, t)
                answer, confirmed, lost = self._commit(res, t, ids)
            except BaseException:
                self.tracker.restore(checkpoint)
                raise
        for d in confirmed:
            if d["is_threat"]:
                self.publish(
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
        answer["latency_ms"] = timing.ms
        return answer

    def _commit(
        self, res: Any, t: float, ids: list[str]
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        """Store what a scan changed (tracker state first, then the track documents), then
        update the service's counters. Raises before any counter changes if a write fails."""
        active = [track_summary(tr) for tr in res.tracks]
        by_id = {d["track_id"]: d for d in active}
        # Stored track documents change on events only (confirmed, lost); listing overlays the
        # live summaries, and the tracker state carries the live tracks.
        confirmed = [by_id[tr.track_id] for tr in res.confirmed if tr.track_id in by_id]
        lost = [track_summary(tr) for tr in res.lost if self.stored_tracks.exists(tr.track_id)]
        now = time.time()
        counters = {
            "scans_processed": self.scans_processed + 1,
            "detections_processed": self.detections_processed,
            "threats_detected": self.threats_detected + sum(d["is_threat"] for d in confirmed),
            "sensors": {**self.sensor_last_seen, **{s: now for s in ids}},
            "sensor_scan_times": {**self.sensor_scan_time, **{s: t for s in ids}},
        }
        self._save(self.tracker, counters)
        for d in confirmed + lost:
            self.stored_tracks.put(d["track_id"], d)
        self.scans_processed = counters["scans_processed"]
        self.threats_detected = counters["threats_detected"]
        self.sensor_last_seen = counters["sensors"]
        self.sensor_scan_time = counters["sensor_scan_times"]
        self._active = by_id
        answer = {
            "timestamp": t,
            "scan": self.scans_processed,
            "sensors": ids,
            "active_tracks": len(active),
            "tentative_tracks": self.tracker.count(TENTATIVE),
            "new_detections": len(confirmed),
            "new_tracks": len(res.new),
            "lost_tracks": len(res.lost),
            "lost_track_ids": [tr.track_id for tr in res.lost],
            "confirmed_track_ids": [d["track_id"] for d in confirmed],
            "measurements": res.n_measurements,
            "associated": res.n_associated,
            "tracks": active,
        }
        return answer, confirmed, lost

    # ------------------------------------------------------------------ track queries
    def candidates(self) -> list[list[float]]:
        """Positions (m) of the measurements that wait for another scan to start a track."""
        with self.lock:
            return self.tracker.candidate_positions().tolist()

    def tracks(
        self, limit: int = 20, offset: int = 0, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Tracks, most recently updated first. ``status``: ``active``, ``lost``,
        ``tentative`` or ``all``; default active and lost."""
        if status is not None and status not in TRACK_STATUSES:
            raise InvalidInput("status", f"expected one of {', '.join(TRACK_STATUSES)}")
        if limit < 0 or offset < 0:
            raise InvalidInput("limit", "limit and offset must be >= 0")
        with self.lock:
            rows: list[dict[str, Any]] = []
            if status in (None, "active", "lost", "all"):
                live = dict(self._active)
                rows = [live.pop(tid, doc) for tid, doc in self.stored_tracks.page(limit=None)]
                rows += list(live.values())  # active tracks whose document the bound dropped
                if status in ("active", "lost"):
                    rows = [r for r in rows if r["status"] == status]
            if status in ("tentative", "all"):
                rows += [track_summary(t) for t in self.tracker.tracks(TENTATIVE)]
        rows.sort(key=lambda r: (-r["last_updated"], r["track_id"]))
        return rows[offset : offset + limit]

    def track(self, track_id: str) -> dict[str, Any]:
        """One track by id (live, recently lost or stored); :class:`NotFound` when unknown."""
        with self.lock:
            try:
                return track_summary(self.tracker.get(track_id))
            except NotFound:
                pass
            return self.stored_tracks.get(track_id)

    # ------------------------------------------------------------------ detection
    def detect(
        self,
        *,
        sv_id: int | None = None,
        timestamp: float | None = None,
        pixels: Any = None,
        width: int | None = None,
        height: int | None = None,
        centroid: Sequence[float] | None = None,
        hotspot_count: int = 0,
        position: Any = None,
        velocity: Any = None,
        radar: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Assess one sensor frame.

        With ``pixels`` (flat row-major with ``width`` and ``height``, or 2-D): hotspot
        detection and classification on the frame
        (:func:`~prism_kernels.pwsa.detection.detect_frame`) and the frame's information
        metrics. Without: the original server's series metrics of ``[centroid_x, centroid_y,
        hotspot_count]`` and the given ``centroid``. Kinematics come from ``position`` and
        ``velocity`` (m, m/s; a radar track cueing the frame) or from one ``radar``
        measurement (position only); with them the class uses altitude and speed, and a
        drag-free ballistic prediction gives ``estimated_trajectory`` and ``time_to_impact``
        (s). Without any range information ``position`` is ``None`` (an IR frame alone gives
        a line of sight, not a 3-D position). Publishes ``ThreatDetected`` for a threat class.
        """
        with self.timed("detect") as timing:
            kin: dict[str, Any] = {}
            if position is not None:
                kin["position"] = as_vec3(position, "position")
                kin["velocity"] = None if velocity is None else as_vec3(velocity, "velocity")
            elif radar is not None:
                kin = {"position": radar_to_enu(radar, "radar")[0], "velocity": None}
            hotspots: list[dict[str, Any]] = []
            if pixels is not None:
                det = detect_frame(pixels, width=width, height=height, track=kin or None)
                hotspots = [h.to_dict() for h in det.hotspots]
                info = det.info_metrics.to_dict() if det.info_metrics is not None else None
                threat_type, confidence = det.threat_type, det.confidence
                probabilities = det.probabilities
                found = list(det.centroid) if det.centroid is not None else None
                count = det.n_hotspots
                noise = det.noise_sigma
            else:
                if centroid is None:
                    raise InvalidInput("centroid", "give the frame's pixels or its centroid")
                cx, cy = (float(v) for v in centroid)
                info = series_info_metrics([cx, cy, hotspot_count]).to_dict()
                found = [cx, cy]
                count = int(hotspot_count)
                noise = None
                if count == 0:
                    threat_type, confidence, probabilities = "none", None, None
                elif kin:
                    c = classify_kinematics(kin["position"], kin.get("velocity"))
                    threat_type, confidence = c["threat_type"], c["confidence"]
                    probabilities = c["probabilities"]
                else:
                    threat_type, confidence, probabilities = "unknown", None, None
            pos = kin["position"].tolist() if kin else None
            vel = kin["velocity"].tolist() if kin and kin.get("velocity") is not None else None
            trajectory, tti, impact_pt = [], None, None
            if pos is not None and vel is not None and pos[2] >= 0:
                pred = predict(
                    state=np.concatenate([kin["position"], kin["velocity"]]), horizon=600.0, dt=5.0
                )
                trajectory = pred.positions.tolist()
                tti = pred.time_to_impact
                if pred.impact is not None:
                    impact_pt = [float(pred.impact.point[0]), float(pred.impact.point[1]), 0.0]
            threat_id = "threat-" + str(uuid.uuid4())
            is_threat = threat_type in THREAT_CLASSES
            action = "none"
            if threat_type != "none":
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
                "sv_id": sv_id,
                "timestamp": timestamp,
                "threat_type": threat_type,
                "is_threat": is_threat,
                "confidence": confidence,
                "probabilities": probabilities,
                "threat_level": risk_level(threat_type, confidence)
                if threat_type != "none"
                else None,
                "position": pos,
                "velocity": vel,
                "estimated_trajectory": trajectory,
                "time_to_impact": tti,
                "impact_point": impact_pt,
                "recommended_action": action,
                "centroid": found,
                "hotspot_count": count,
                "hotspots": hotspots,
                "noise_sigma": noise,
                "info_metrics": info,
            }
            with self.lock:
                self.detections.put(threat_id, {k: v for k, v in out.items() if k != "hotspots"})
                self.detections_processed += 1
                if is_threat:
                    self.threats_detected += 1
        if is_threat:
            self.publish(
                "ThreatDetected",
                {
                    "threat_id": threat_id,
                    "confidence": confidence,
                    "position": pos,
                    "timestamp": timestamp,
                    "threat_type": threat_type,
                    "sv_id": sv_id,
                    "source": "detect",
                },
            )
        out[TIMING_KEY] = timing.ms
        return out

    # ------------------------------------------------------------------ fusion
    def fuse(
        self,
        inputs: Sequence[Mapping[str, Any]] | None = None,
        sensors: Mapping[str, Mapping[str, Any]] | None = None,
        timestamp: float | None = None,
        sv_id: Any = None,
    ) -> dict[str, Any]:
        """Multi-sensor fusion of one moment's reports (no tracker state); two shapes.

        * ``inputs``: per-satellite reports ``{sv_id, timestamp, centroid | radar}``, run
          through the original server's 6-state constant-velocity Kalman filter per
          ``sv_id`` (:func:`~prism_kernels.pwsa.sensor_fusion.fuse_sensor_inputs`).
        * ``sensors``: ``{name: {targets: [...]}}`` target lists associated across sensors
          and fused in information form
          (:func:`~prism_kernels.pwsa.sensor_fusion.fuse_targets`).
        """
        with self.timed("fuse") as timing:
            if inputs is not None:
                out = fuse_sensor_inputs(inputs)
            elif sensors is not None:
                out = fuse_targets(sensors, timestamp, sv_id)
            else:
                raise InvalidInput("sensors", "give per-sensor targets or a list of inputs")
        out[TIMING_KEY] = timing.ms
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

        From ``history`` (``[{timestamp, position, velocity?}]`` or ``{times, positions,
        velocities?}``, fitted by :func:`~prism_kernels.pwsa.trajectory.fit_state`), else
        from the state of ``track_id`` (:class:`NotFound` when unknown).
        """
        with self.timed("predict") as timing:
            if not (math.isfinite(dt) and dt > 0):
                raise InvalidInput("dt", "dt must be positive")
            if prediction_horizon / dt > 10_000:
                raise InvalidInput(
                    "prediction_horizon", "prediction_horizon / dt exceeds 10000 steps"
                )
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
        out[TIMING_KEY] = timing.ms
        return out

    # ------------------------------------------------------------------ prioritization
    def threats_from_tracks(self) -> list[dict[str, Any]]:
        """The active tracks as threats (:func:`~prism_kernels.pwsa.summary.threat_of`)."""
        with self.lock:
            tracks = [track_summary(t) for t in self.tracker.tracks(CONFIRMED)]
        return [threat_of(d) for d in tracks]

    def prioritize(
        self,
        threats: Sequence[Mapping[str, Any]] | None = None,
        strategy: str = "time_weighted_risk",
        assets: Sequence[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Rank ``threats`` (or, when none are given, the active tracks) by risk.

        ``assets``: defended assets ``{name, position, radius, value}``; ``kwargs`` go to
        :func:`~prism_kernels.pwsa.prioritize.prioritize` (``interceptors_available``,
        ``max_engagement_range``, ``engage_threshold``, ``track_threshold``...).
        """
        with self.timed("prioritize") as timing:
            source = "request"
            if not threats:
                threats = self.threats_from_tracks()
                source = "tracks"
            rep = prioritization_report(threats, list(assets or []) or None, strategy, **kwargs)
        rep["source"] = source
        rep[TIMING_KEY] = timing.ms
        return rep

    # ------------------------------------------------------------------ health
    def health_details(self) -> dict[str, Any]:
        """The tracker's real state: tracks by status, scans, scan latency, sensors."""
        scans = self.latency().get("track", {})
        with self.lock:
            now = time.time()
            return {
                "sensors_online": sum(
                    1 for v in self.sensor_last_seen.values() if now - v < ONLINE_WINDOW_S
                ),
                "sensors_seen": len(self.sensor_last_seen),
                "active_tracks": self.tracker.count(CONFIRMED),
                "tentative_tracks": self.tracker.count(TENTATIVE),
                "stored_tracks": self.stored_tracks.count(),
                "scans_processed": self.scans_processed,
                "detections_processed": self.detections_processed,
                "threats_detected": self.threats_detected,
                "processing_latency_ms": scans.get("mean_ms"),
                "latency_p95_ms": scans.get("p95_ms"),
                "last_scan_time": self.tracker.time,
                "restored": self.restored,
                "tracker": dict(self.config),
            }
