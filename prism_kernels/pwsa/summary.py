"""What a track means to a person: status, kinematic class, 2-sigma ellipse, threat description.

:func:`track_summary` turns a tracker :class:`~prism_kernels.pwsa.tracker.Track` into plain
values (lists and floats, JSON-ready) that the service stores, lists and returns;
:func:`classify_kinematics` classifies an object from its altitude, speed and acceleration;
:func:`threat_of` describes a summarised track as a threat for
:func:`~prism_kernels.pwsa.prioritize.prioritize` (with its predicted ground impact);
:func:`risk_level` is the coarse level the original API reported.

Units: metres, seconds, ENU (ground at ``z = 0``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.detection import classify, track_features
from prism_kernels.pwsa.prioritize import TYPE_WEIGHTS
from prism_kernels.pwsa.tracker import CONFIRMED, LOST, TENTATIVE, Track
from prism_kernels.pwsa.trajectory import error_ellipse, impact_distribution

#: Tracker status -> reported status (the original API calls a confirmed track "active").
STATUS_OUT = {CONFIRMED: "active", TENTATIVE: "tentative", LOST: "lost"}

#: Probability inside the 2-sigma ellipse of a 2-D Gaussian: P(chi2_2 <= 4) = 1 - exp(-2).
TWO_SIGMA_2D = 1.0 - math.exp(-2.0)


def classify_kinematics(
    position: Any, velocity: Any = None, acceleration: Any = None
) -> dict[str, Any]:
    """Object class from kinematics (altitude, speed, acceleration) with the naive-Bayes
    model of :func:`prism_kernels.pwsa.detection.classify`.

    Returns ``threat_type``, ``confidence`` (its posterior probability), ``is_threat`` and
    ``probabilities`` (every class).
    """
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


def risk_level(threat_type: str, confidence: float | None) -> str:
    """``high`` / ``medium`` / ``low`` from type weight times confidence (>= 0.6, >= 0.3)."""
    s = TYPE_WEIGHTS.get(threat_type, 0.5) * (confidence or 0.0)
    return "high" if s >= 0.6 else "medium" if s >= 0.3 else "low"


def track_summary(track: Track) -> dict[str, Any]:
    """A track as plain values.

    ``track_id``, ``status`` (``active``, ``tentative`` or ``lost``), ``position`` (m),
    ``velocity`` (m/s), ``acceleration`` (m/s^2, 9-state models), ``speed`` (m/s),
    ``covariance`` (6x6 position/velocity block), ``position_std`` (m), ``confidence``,
    ``threat_type`` with ``threat_probability`` and ``is_threat``, ``ellipse`` (horizontal
    2-sigma ellipse: ``semi_major``/``semi_minor`` in m, ``orientation_deg``), the times
    ``last_updated``, ``time``, ``created`` (s), and the tracker's bookkeeping (``hits``,
    ``consecutive_misses``, ``sensors``, ``mode_probabilities``).
    """
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


def threat_of(summary: dict[str, Any]) -> dict[str, Any]:
    """A summarised track (:func:`track_summary`) as a threat for ``prioritize``.

    Class and probability come from kinematics (``confidence`` = class probability times
    track confidence); above the ground, the impact point (with its 2x2 covariance, m^2)
    and time to impact (s) come from the unscented transform of the track covariance
    through the drag-free ballistic impact. A track that never reaches the ground has
    neither.
    """
    th: dict[str, Any] = {
        "threat_id": summary["track_id"],
        "threat_type": summary["threat_type"],
        "confidence": float(summary["threat_probability"] * summary["confidence"]),
        "position": summary["position"],
        "velocity": summary["velocity"],
    }
    if summary["position"][2] >= 0:
        try:
            st = np.concatenate([summary["position"], summary["velocity"]])
            imp = impact_distribution(st, np.asarray(summary["covariance"]))
        except InvalidInput:
            return th  # no ground impact: prioritize treats it as having no impact time
        th["impact_point"] = {
            "position": [float(imp.point[0]), float(imp.point[1]), 0.0],
            "covariance": imp.cov.tolist(),
        }
        th["time_to_impact"] = float(imp.time)
    return th
