"""Measurement geometry: sensor measurements as ENU positions with their noise covariances.

Frames and units: local east-north-up (ENU), metres, ground at ``z = 0``. A radar (or any
range/angle sensor) measures ``{range, azimuth, elevation}``: azimuth clockwise from north,
elevation above the horizontal, degrees unless ``degrees=False``, relative to the sensor's
ENU position (default the origin). :func:`spherical_to_enu` converts one such measurement to
an ENU position and its first-order covariance; :func:`measurement_covariance` reads the
noise of a position measurement; :func:`group_by_noise` batches a sensor's measurements by
noise covariance (the tracker updates one batch per covariance); :func:`ellipse_outline`
draws an uncertainty ellipse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput

#: Default noise of range/angle measurements by sensor kind: (range sigma in m, angle sigma
#: in rad).
SENSOR_NOISE: dict[str, tuple[float, float]] = {
    "radar": (20.0, 2e-3),
    "ir": (1000.0, 5e-5),
    "default": (100.0, 1e-3),
}


def as_vec3(v: Any, field: str) -> np.ndarray:
    """``v`` as a finite float64 vector (3,); :class:`InvalidInput` naming ``field`` otherwise."""
    try:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "expected three numbers [x, y, z]") from exc
    if a.size != 3:
        raise InvalidInput(field, f"expected three numbers [x, y, z], got {a.size}")
    if not np.all(np.isfinite(a)):
        raise InvalidInput(field, "contains NaN or inf")
    return a


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
    from north), plus ``sensor_position`` (m). The covariance (m^2) is the first-order
    transform ``J diag(range_sigma^2, angle_sigma^2, angle_sigma^2) J^T`` (``range_sigma`` in
    m, ``angle_sigma`` in radians).
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
    s0 = (
        as_vec3(sensor_position, f"{field}.sensor_position")
        if sensor_position is not None
        else np.zeros(3)
    )
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


def radar_to_enu(
    radar: Mapping[str, Any], field: str = "radar", kind: str = "radar"
) -> tuple[np.ndarray, np.ndarray]:
    """One range/angle measurement ``{range, azimuth, elevation, sensor_position?,
    range_sigma?, angle_sigma?, degrees?}`` as an ENU position (3,) and covariance (3, 3).

    Missing sigmas take the defaults of the sensor ``kind`` (:data:`SENSOR_NOISE`);
    ``degrees`` defaults to true. See :func:`spherical_to_enu`.
    """
    rs, asig = SENSOR_NOISE.get(kind, SENSOR_NOISE["default"])
    missing = [k for k in ("range", "azimuth", "elevation") if radar.get(k) is None]
    if missing:
        raise InvalidInput(f"{field}.{missing[0]}", "missing")
    try:
        r, az, el = (float(radar[k]) for k in ("range", "azimuth", "elevation"))
        rsig, asig_given = radar.get("range_sigma"), radar.get("angle_sigma")
        range_sigma = float(rs if rsig is None else rsig)
        angle_sigma = float(asig if asig_given is None else asig_given)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "range, azimuth, elevation and sigmas must be numbers") from exc
    return spherical_to_enu(
        r,
        az,
        el,
        radar.get("sensor_position"),
        degrees=bool(radar.get("degrees", True)),
        range_sigma=range_sigma,
        angle_sigma=angle_sigma,
        field=field,
    )


def measurement_covariance(
    m: Mapping[str, Any], default: np.ndarray | None, field: str
) -> np.ndarray | None:
    """The (3, 3) noise covariance (m^2) of one position measurement.

    ``covariance`` (3x3, or 3 variances), else ``sigma`` (one number, or three per-axis
    sigmas, m), else ``default``.
    """
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


def group_by_noise(
    sensor_id: str, measurements: Any, default: np.ndarray, field: str = "measurements"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One sensor's measurements as batches of equal noise: ``{key: (Z (K, 3), R (3, 3))}``.

    ``measurements``: a (K, 3) array of ENU positions (m), all with noise ``default``, or a
    list of ``{position: [x, y, z], sigma | covariance}`` (without either, ``default``). The
    first batch is keyed ``sensor_id``, the others ``sensor_id#1``, ``sensor_id#2``...
    Validates everything (finite positions, positive definite covariances) and changes
    nothing.
    """
    if isinstance(measurements, np.ndarray) or (
        isinstance(measurements, Sequence)
        and measurements
        and not isinstance(measurements[0], Mapping)
    ):
        Z = np.asarray(measurements, dtype=np.float64)
        if Z.size == 0:
            Z = Z.reshape(0, 3)
        if Z.ndim != 2 or Z.shape[1] != 3:
            raise InvalidInput(field, f"expected (K, 3) positions, got shape {Z.shape}")
        if not np.all(np.isfinite(Z)):
            raise InvalidInput(field, "contains NaN or inf")
        return {sensor_id: (Z, default)}
    if not isinstance(measurements, Sequence) or isinstance(measurements, (str, bytes)):
        raise InvalidInput(field, "expected a list of {position, sigma | covariance}")
    groups: dict[bytes, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, m in enumerate(measurements):
        if not isinstance(m, Mapping) or m.get("position") is None:
            raise InvalidInput(f"{field}.{i}.position", "each measurement needs a position")
        z = as_vec3(m["position"], f"{field}.{i}.position")
        R = measurement_covariance(m, default, f"{field}.{i}")
        groups.setdefault(R.tobytes(), []).append((z, R))
    if not groups:
        return {sensor_id: (np.zeros((0, 3)), default)}
    out = {}
    for j, items in enumerate(groups.values()):
        key = sensor_id if j == 0 else f"{sensor_id}#{j}"
        out[key] = (np.stack([z for z, _ in items]), items[0][1])
    return out


def ellipse_outline(
    center: Sequence[float],
    ellipse: Mapping[str, float],
    n: int = 36,
    scale: float = 1.0,
    magnify: float = 1.0,
) -> np.ndarray:
    """Closed outline (n + 1, 2) of an ellipse ``{semi_major, semi_minor, orientation_deg}``
    around ``center`` [x, y].

    The axes are multiplied by ``magnify`` (to show a small ellipse on a large map; say so
    where it is shown), then every coordinate by ``scale`` (a unit change, e.g. 1e-3 for km).
    ``orientation_deg`` is the angle of the major axis counter-clockwise from east.
    """
    th = np.linspace(0.0, 2.0 * math.pi, n + 1)
    a = float(ellipse["semi_major"]) * magnify
    b = float(ellipse["semi_minor"]) * magnify
    phi = math.radians(float(ellipse["orientation_deg"]))
    u = a * np.cos(th)
    v = b * np.sin(th)
    x = center[0] + u * math.cos(phi) - v * math.sin(phi)
    y = center[1] + u * math.sin(phi) + v * math.cos(phi)
    return np.stack([x, y], axis=1) * scale
