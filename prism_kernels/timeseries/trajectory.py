"""Kinematic forecasts of 3-D positions and velocities with uncertainty that grows with time.

A track's history of positions (metres) with timestamps (seconds) is filtered with the
batched Kalman filter of :mod:`prism_kernels.pwsa.kalman` under a linear motion model of
:mod:`prism_kernels.pwsa.models`:

* ``"cv"``: constant velocity, white-noise acceleration ``q`` (m^2/s^3), state
  ``[x, y, z, vx, vy, vz]``;
* ``"ca"``: constant acceleration, white-noise jerk ``q`` (m^2/s^5), 9 states;
* ``"ballistic"``: constant velocity plus gravity ``(0, 0, -9.80665)`` m/s^2 (known input).

The filter starts at the first measurement with the position measured and the velocity (and
acceleration) unknown: a diffuse prior, variance ``1e4 ((S / T)^2 + (S / T^2)^2)`` with ``S``
the range of the positions plus 1 m and ``T`` the history's duration; then it alternates
predict / update at each timestamp.
From the last filtered state ``(x, P)`` the forecast at ``tau = dt, 2 dt, ...,
horizon_seconds`` after the last timestamp is the model's open-loop prediction
``x(tau) = F(tau) x (+ u(tau))``, ``P(tau) = F(tau) P F(tau)^T + Q(tau)``: all steps in one
batched call, so the 1-sigma position uncertainty ``sqrt(diag P(tau))`` grows with ``tau``.

Measurement noise: ``measurement_sigma`` (m, per axis or one number); by default it is
estimated from the history's third differences (which cancel any constant acceleration):
``sigma = 1.4826 MAD(d3 p) / sqrt(20)`` per axis (``Var(d3 e) = 20 sigma^2`` for white noise
``e``; exact for equally spaced samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.arrays import as_float, check_finite
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.kalman import kf_predict, kf_update
from prism_kernels.pwsa.models import MotionModel, position_selector

MODELS = ("cv", "ca", "ballistic")
MAX_STEPS = 100_000


@dataclass
class TrajectoryForecast:
    """Predicted kinematics every ``dt`` after the last observation.

    Attributes
    ----------
    timestamps : array (h,)
        Absolute times (s), ``t_last + dt * (1..h)``.
    positions, velocities : array (..., h, 3)
        Predicted mean position (m) and velocity (m/s).
    position_sigma, velocity_sigma : array (..., h, 3)
        1-sigma uncertainty per axis (m, m/s).
    covariance : array (..., h, n, n)
        Full state covariance per step.
    filtered_state, filtered_covariance : array (..., n), (..., n, n)
        The filter's estimate at the last observation.
    model : str
    measurement_sigma : array (..., 3)
        Measurement noise used (given or estimated), m.
    process_noise : float
    """

    timestamps: Any
    positions: Any
    velocities: Any
    position_sigma: Any
    velocity_sigma: Any
    covariance: Any
    filtered_state: Any
    filtered_covariance: Any
    model: str
    measurement_sigma: Any
    process_noise: float


def _check_inputs(positions: Any, timestamps: Any) -> tuple[Any, Any, bool]:
    xp = get_namespace(positions) if hasattr(positions, "shape") else get_namespace()
    p = as_float(positions, xp)
    single = p.ndim == 2
    if single:
        p = p[None]
    if p.ndim != 3 or p.shape[-1] != 3:
        raise InvalidInput(
            "positions", f"expected (n, 3) or (tracks, n, 3) positions, got {tuple(p.shape)}"
        )
    if p.shape[1] == 0:
        raise InvalidInput("positions", "is empty")
    check_finite(p, "positions")
    t = as_float(timestamps, xp, p)
    if t.ndim != 1:
        raise InvalidInput("timestamps", f"expected (n,) seconds, got shape {tuple(t.shape)}")
    if t.shape[0] != p.shape[1]:
        raise InvalidInput(
            "timestamps",
            f"{t.shape[0]} timestamps for {p.shape[1]} positions: lengths must match",
        )
    check_finite(t, "timestamps")
    if t.shape[0] > 1 and not bool(xp.all(t[1:] > t[:-1])):
        raise InvalidInput("timestamps", "must be strictly increasing")
    return p, t, single


def estimate_measurement_sigma(positions: Any) -> Any:
    """Per-axis measurement noise (m) from third differences: ``1.4826 MAD / sqrt(20)``.

    ``positions`` (..., n, 3), ``n >= 4``; returns (..., 3). Computed on the host.
    """
    p = to_numpy(positions)
    if p.shape[-2] < 4:
        raise InvalidInput("positions", "needs at least 4 points to estimate the noise")
    d3 = np.diff(p, n=3, axis=-2)
    med = np.median(d3, axis=-2, keepdims=True)
    mad = np.median(np.abs(d3 - med), axis=-2)
    return 1.4826 * mad / math.sqrt(20.0)


def trajectory_forecast(
    positions: Any,
    timestamps: Any,
    horizon_seconds: float,
    *,
    dt: float = 0.1,
    model: str = "cv",
    process_noise: float = 1.0,
    measurement_sigma: Any = None,
) -> TrajectoryForecast:
    """Filter a track history and forecast positions and velocities every ``dt`` seconds.

    Parameters
    ----------
    positions : array (n, 3) or (tracks, n, 3)
        Measured positions (m), oldest first.
    timestamps : array (n,)
        Measurement times (s), strictly increasing (shared by the tracks).
    horizon_seconds : float
        How far past the last timestamp to forecast (s), > 0.
    dt : float
        Forecast spacing (s); ``floor(horizon / dt)`` steps (at most :data:`MAX_STEPS`).
    model : {"cv", "ca", "ballistic"}
    process_noise : float
        ``q``: m^2/s^3 (cv, ballistic) or m^2/s^5 (ca).
    measurement_sigma : float or array (3,) or (tracks, 3), optional
        Position noise (m); estimated from the history when omitted (needs 4 points).

    Returns
    -------
    TrajectoryForecast

    Raises
    ------
    InvalidInput
        Mismatched lengths, non-increasing or non-finite timestamps, NaN positions, too
        few points (2 for cv/ballistic, 3 for ca, 4 to estimate the noise), bad
        ``horizon_seconds``, ``dt``, ``model``, ``process_noise`` or ``measurement_sigma``.
    """
    if model not in MODELS:
        raise InvalidInput("model", f"unknown motion model {model!r}; use {', '.join(MODELS)}")
    p, t, single = _check_inputs(positions, timestamps)
    xp = get_namespace(p)
    N, n, _ = p.shape
    need = 3 if model == "ca" else 2
    if n < need:
        raise InvalidInput("positions", f"model {model!r} needs at least {need} points, got {n}")
    for name, v in (("horizon_seconds", horizon_seconds), ("dt", dt)):
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InvalidInput(name, f"must be a positive number of seconds, got {v!r}")
    steps = int(math.floor(horizon_seconds / dt + 1e-9))
    if steps < 1:
        raise InvalidInput("horizon_seconds", f"must be at least dt ({dt} s)")
    if steps > MAX_STEPS:
        raise InvalidInput("dt", f"horizon / dt gives {steps} steps; at most {MAX_STEPS}")
    mm = MotionModel(model if model != "ca" else "ca", float(process_noise), model == "ca")
    if measurement_sigma is None:
        sig = as_float(estimate_measurement_sigma(p), xp, p)
    else:
        sig = as_float(measurement_sigma, xp, p)
        if sig.ndim == 0:
            sig = sig * xp.ones((N, 3), dtype=xp.float64, device=p.device)
        elif sig.shape == (3,):
            sig = xp.broadcast_to(sig[None], (N, 3))
        if sig.shape != (N, 3):
            raise InvalidInput("measurement_sigma", "expected a number, (3,) or (tracks, 3)")
        check_finite(sig, "measurement_sigma")
        if not bool(xp.all(sig > 0)):
            raise InvalidInput("measurement_sigma", "must be > 0")
    floor = 1e-9 * (1.0 + xp.max(xp.abs(p)))
    sig = xp.where(sig > floor, sig, floor + 0.0 * sig)
    ns = mm.ndim_state
    H = position_selector(ns, xp, p)
    var = sig**2
    R = var[:, :, None] * xp.eye(3, dtype=xp.float64, device=p.device)[None]
    # diffuse prior on the derivatives: (span of the data / first interval)^2 scale
    span = float(to_numpy(xp.max(p) - xp.min(p))) + 1.0
    t_np = to_numpy(t)
    t_all = float(t_np[-1] - t_np[0]) if n > 1 else 1.0
    big = 1e4 * (span / max(t_all, 1e-9)) ** 2 + 1e4 * (span / max(t_all, 1e-9) ** 2) ** 2
    x = xp.concat([p[:, 0, :], xp.zeros((N, ns - 3), dtype=xp.float64, device=p.device)], axis=1)
    diag = xp.concat([var, big * xp.ones((N, ns - 3), dtype=xp.float64, device=p.device)], axis=1)
    P = diag[:, :, None] * xp.eye(ns, dtype=xp.float64, device=p.device)[None]
    for i in range(1, n):
        F, Q, u = mm.matrices(float(t_np[i] - t_np[i - 1]), xp, p)
        x, P = kf_predict(x, P, F, Q, u, validate=False)
        upd = kf_update(x, P, p[:, i, :], H, R, validate=False)
        x, P = upd.x, upd.P
    taus = as_float(dt * np.arange(1, steps + 1, dtype=np.float64), xp, p)
    F, Q, u = mm.matrices(taus, xp, p)  # (h, ns, ns)
    xs, Ps = kf_predict(x[:, None, :], P[:, None, :, :], F[None], Q[None], validate=False)
    if u is not None:
        xs = xs + u[None]
    dvar = xp.linalg.diagonal(Ps)
    out_t = float(t_np[-1]) + taus
    pos, vel = xs[..., :3], xs[..., 3:6]
    psig, vsig = xp.sqrt(dvar[..., :3]), xp.sqrt(dvar[..., 3:6])
    if single:
        pos, vel, psig, vsig, Ps = pos[0], vel[0], psig[0], vsig[0], Ps[0]
        x, P, sig = x[0], P[0], sig[0]
    return TrajectoryForecast(
        timestamps=out_t,
        positions=pos,
        velocities=vel,
        position_sigma=psig,
        velocity_sigma=vsig,
        covariance=Ps,
        filtered_state=x,
        filtered_covariance=P,
        model=model,
        measurement_sigma=sig,
        process_noise=float(process_noise),
    )
