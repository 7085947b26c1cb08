"""Ballistic trajectory propagation, impact prediction and impact uncertainty.

Frame: local east-north-up, metres, ground at ``z = 0``, flat Earth, uniform gravity
``g = 9.80665 m/s^2`` along ``-z``. States are ``(..., 6)`` arrays ``[x, y, z, vx, vy, vz]``.

* Drag-free motion has a closed form, ``p(t) = p0 + v0 t - g t^2 / 2 e_z``, and the impact
  time solves ``z0 + vz t - g t^2 / 2 = 0``: ``t = (vz + sqrt(vz^2 + 2 g z0)) / g``.
* With drag (:class:`Drag`), ``a = -g e_z - rho(z) |v| v / (2 beta)`` with an exponential
  atmosphere ``rho = rho0 exp(-z / H)`` and ballistic coefficient ``beta = m / (Cd A)``
  (kg/m^2), integrated by fixed-step RK4; the ground crossing is found on the cubic Hermite
  interpolant of the last step (position and velocity at both ends), so the impact point
  keeps RK4's accuracy instead of a linear interpolation's.
* Uncertainty: the unscented transform (scaled sigma points) or Monte Carlo of the state
  covariance through the impact map gives the impact-point mean and covariance, an error
  ellipse and the time-to-impact spread.

Propagation, impact and sigma points are batched over leading dimensions and run on the
input's array library (NumPy, PyTorch, CuPy). The small 2x2 ellipse algebra and the
least-squares fit of a track history run on the host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import chi2 as chi2_dist

from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput

G0 = 9.80665


@dataclass(frozen=True)
class Drag:
    """Exponential-atmosphere drag: ``beta`` kg/m^2, ``rho0`` kg/m^3, ``scale_height`` m."""

    beta: float = 5000.0
    rho0: float = 1.225
    scale_height: float = 7200.0

    def __post_init__(self) -> None:
        for name in ("beta", "rho0", "scale_height"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InvalidInput(f"drag.{name}", f"{name} must be a positive number")


def _as_drag(drag: Drag | Mapping[str, Any] | float | None) -> Drag | None:
    if drag is None or isinstance(drag, Drag):
        return drag
    if isinstance(drag, Mapping):
        return Drag(
            **{k: float(v) for k, v in drag.items() if k in ("beta", "rho0", "scale_height")}
        )
    return Drag(beta=float(drag))


def _check_states(states: Any, field_name: str = "state") -> Any:
    if isinstance(states, (list, tuple)):
        states = np.asarray(states, dtype=np.float64)
    xp = get_namespace(states)
    if states.ndim < 1 or states.shape[-1] != 6:
        raise InvalidInput(
            field_name,
            f"expected (..., 6) states [x, y, z, vx, vy, vz], got shape {tuple(states.shape)}",
        )
    if not bool(xp.all(xp.isfinite(states))):
        raise InvalidInput(field_name, "state contains NaN or infinite values")
    return xp.astype(states, xp.float64)


def _like(xp: Any, data: Any, ref: Any) -> Any:
    """``data`` as float64 on ``ref``'s library and device."""
    dev = getattr(ref, "device", None)
    if dev is None:
        return xp.asarray(data, dtype=xp.float64)
    return xp.asarray(data, dtype=xp.float64, device=dev)


def _accel(xp: Any, pos: Any, vel: Any, drag: Drag | None, g: float, gvec: Any = None) -> Any:
    if gvec is None:
        gvec = _like(xp, [0.0, 0.0, g], vel)
    if drag is None:
        return xp.zeros_like(vel) - gvec
    # Only the altitude column matters for the density: (..., 1) work, not (..., 3).
    rho = xp.exp(xp.maximum(pos[..., 2:3], -1e3) * (-1.0 / drag.scale_height))
    speed = xp.sqrt(xp.sum(vel * vel, axis=-1, keepdims=True))
    return ((-0.5 * drag.rho0 / drag.beta) * rho * speed) * vel - gvec


def _rk4_step(xp: Any, s: Any, dt: Any, drag: Drag | None, g: float, gvec: Any = None) -> Any:
    """One classical RK4 step on ``(..., 6)`` states, positions and velocities kept apart."""
    if gvec is None:
        gvec = _like(xp, [0.0, 0.0, g], s)
    p, v = s[..., :3], s[..., 3:]
    h2 = 0.5 * dt
    a1 = _accel(xp, p, v, drag, g, gvec)
    v2 = v + h2 * a1
    a2 = _accel(xp, p + h2 * v, v2, drag, g, gvec)
    v3 = v + h2 * a2
    a3 = _accel(xp, p + h2 * v2, v3, drag, g, gvec)
    v4 = v + dt * a3
    a4 = _accel(xp, p + dt * v3, v4, drag, g, gvec)
    p_new = p + (dt / 6.0) * (v + 2.0 * v2 + 2.0 * v3 + v4)
    v_new = v + (dt / 6.0) * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
    return xp.concat([p_new, v_new], axis=-1)


def propagate(
    states: Any,
    times: Any,
    drag: Drag | Mapping[str, Any] | float | None = None,
    dt: float = 0.1,
    g: float = G0,
    integrator: str = "auto",
) -> Any:
    """States at ``times`` (seconds after the state epoch), batched.

    Parameters
    ----------
    states : array (..., 6)
    times : array (T,)
        Non-decreasing, >= 0.
    drag : Drag, dict or float (beta), optional
    dt : float
        Largest RK4 step, seconds.
    integrator : ``"auto"`` | ``"closed"`` | ``"rk4"``
        ``auto`` uses the closed form without drag and RK4 with it.

    Returns
    -------
    array (..., T, 6)
    """
    s = _check_states(states)
    xp = get_namespace(s)
    drag = _as_drag(drag)
    t_host = np.asarray(to_numpy(times), dtype=np.float64).reshape(-1)
    if t_host.size and (
        np.any(t_host < 0) or np.any(np.diff(t_host) < 0) or not np.all(np.isfinite(t_host))
    ):
        raise InvalidInput("times", "times must be finite, >= 0 and non-decreasing")
    if integrator not in ("auto", "closed", "rk4"):
        raise InvalidInput("integrator", "integrator must be auto, closed or rk4")
    if integrator == "closed" and drag is not None:
        raise InvalidInput("integrator", "no closed form with drag; use rk4")
    if not (dt > 0):
        raise InvalidInput("dt", "dt must be positive")
    if drag is None and integrator != "rk4":
        t = _like(xp, t_host, s)
        p0 = s[..., None, :3]
        v0 = s[..., None, 3:]
        tt = t[:, None]
        grav = _like(xp, [0.0, 0.0, -0.5 * g], s)
        pos = p0 + v0 * tt + grav * tt * tt
        vel = v0 + 2.0 * grav * tt + xp.zeros_like(pos)
        return xp.concat([pos, vel], axis=-1)
    out = []
    cur = s
    gvec = _like(xp, [0.0, 0.0, g], s)
    t_cur = 0.0
    for t_next in t_host:
        span = float(t_next) - t_cur
        if span > 0:
            n = max(int(math.ceil(span / dt - 1e-12)), 1)
            h = span / n
            for _ in range(n):
                cur = _rk4_step(xp, cur, h, drag, g, gvec)
            t_cur = float(t_next)
        out.append(cur)
    if not out:
        return xp.zeros((*s.shape[:-1], 0, 6), dtype=xp.float64)
    return xp.stack(out, axis=-2)


@dataclass
class ImpactPoints:
    """Batched impact: ``time`` (...,), ``position`` (..., 3), ``velocity`` (..., 3) on the
    input's array library; ``found`` (...,) bool, False where no ground crossing occurred
    within ``max_time`` (those entries are NaN)."""

    time: Any
    position: Any
    velocity: Any
    found: Any


def impact(
    states: Any,
    drag: Drag | Mapping[str, Any] | float | None = None,
    dt: float = 0.1,
    max_time: float = 7200.0,
    g: float = G0,
    integrator: str = "auto",
) -> ImpactPoints:
    """Ground-impact time and point (``z = 0`` crossing) of each state, batched.

    Drag-free with ``integrator="auto"|"closed"``: closed form. Otherwise RK4 steps of
    ``dt`` until every object has crossed ``z = 0`` (or ``max_time``), the crossing solved on
    the cubic Hermite interpolant of the step. States must have ``z >= 0``.
    """
    s = _check_states(states)
    xp = get_namespace(s)
    drag = _as_drag(drag)
    if bool(xp.any(s[..., 2] < 0)):
        raise InvalidInput("state", "altitude z must be >= 0 (the ground is z = 0)")
    if integrator not in ("auto", "closed", "rk4"):
        raise InvalidInput("integrator", "integrator must be auto, closed or rk4")
    if drag is None and integrator != "rk4":
        z0, vz = s[..., 2], s[..., 5]
        t = (vz + xp.sqrt(vz * vz + 2.0 * g * z0)) / g
        pos = s[..., :3] + s[..., 3:] * t[..., None]
        pos = xp.concat([pos[..., :2], xp.zeros_like(pos[..., 2:])], axis=-1)
        vel = xp.concat([s[..., 3:5], (vz - g * t)[..., None]], axis=-1)
        return ImpactPoints(
            time=t, position=pos, velocity=vel, found=xp.ones_like(t, dtype=xp.bool)
        )
    if not (dt > 0 and max_time > 0):
        raise InvalidInput("dt", "dt and max_time must be positive")
    nan = float("nan")
    t_imp = xp.full(s.shape[:-1], nan, dtype=xp.float64)
    p_imp = xp.full((*s.shape[:-1], 3), nan, dtype=xp.float64)
    v_imp = xp.full((*s.shape[:-1], 3), nan, dtype=xp.float64)
    done = (s[..., 2] <= 0.0) & (s[..., 5] <= 0.0)
    # An object on the ground and not climbing impacts now.
    t_imp = xp.where(done, 0.0, t_imp)
    p_imp = xp.where(done[..., None], s[..., :3], p_imp)
    v_imp = xp.where(done[..., None], s[..., 3:], v_imp)
    cur = s
    gvec = _like(xp, [0.0, 0.0, g], s)
    t = 0.0
    n_steps = int(math.ceil(max_time / dt))
    for _ in range(n_steps):
        if bool(xp.all(done)):
            break
        nxt = _rk4_step(xp, cur, dt, drag, g, gvec)
        cross = (~done) & (nxt[..., 2] <= 0.0)
        if bool(xp.any(cross)):
            f0 = _accel(xp, cur[..., :3], cur[..., 3:], drag, g, gvec)
            f1 = _accel(xp, nxt[..., :3], nxt[..., 3:], drag, g, gvec)
            tau, pos, vel = _hermite_ground(xp, cur, nxt, f0, f1, dt)
            t_imp = xp.where(cross, t + tau, t_imp)
            p_imp = xp.where(cross[..., None], pos, p_imp)
            v_imp = xp.where(cross[..., None], vel, v_imp)
            done = done | cross
        cur = nxt
        t += dt
    return ImpactPoints(time=t_imp, position=p_imp, velocity=v_imp, found=done)


def _hermite_ground(xp: Any, s0: Any, s1: Any, a0: Any, a1: Any, h: float) -> tuple[Any, Any, Any]:
    """Root of z on the cubic Hermite interpolant over one step; position/velocity there."""
    p0, v0, p1, v1 = s0[..., :3], s0[..., 3:], s1[..., :3], s1[..., 3:]

    def herm(u: Any) -> tuple[Any, Any]:
        u = u[..., None]
        u2, u3 = u * u, u * u * u
        h00, h10, h01, h11 = 2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2
        d00, d10, d01, d11 = 6 * u2 - 6 * u, 3 * u2 - 4 * u + 1, -6 * u2 + 6 * u, 3 * u2 - 2 * u
        pos = h00 * p0 + h10 * h * v0 + h01 * p1 + h11 * h * v1
        dpos = (d00 * p0 + d10 * h * v0 + d01 * p1 + d11 * h * v1) / h
        return pos, dpos

    z0, z1 = p0[..., 2], p1[..., 2]
    den = z0 - z1
    u = xp.where(xp.abs(den) > 0, z0 / xp.where(xp.abs(den) > 0, den, 1.0), 0.0)
    u = xp.clip(u, 0.0, 1.0)
    for _ in range(8):  # Newton on the cubic, from the linear root
        pos, dpos = herm(u)
        dz = dpos[..., 2] * h
        step = xp.where(xp.abs(dz) > 0, pos[..., 2] / xp.where(xp.abs(dz) > 0, dz, 1.0), 0.0)
        u = xp.clip(u - step, 0.0, 1.0)
    pos, _ = herm(u)
    # Velocity: Hermite-consistent interpolation of v with the accelerations at both ends.
    uu = u[..., None]
    u2, u3 = uu * uu, uu * uu * uu
    vel = (
        (2 * u3 - 3 * u2 + 1) * v0
        + (u3 - 2 * u2 + uu) * h * a0
        + (-2 * u3 + 3 * u2) * v1
        + (u3 - u2) * h * a1
    )
    pos = xp.concat([pos[..., :2], xp.zeros_like(pos[..., 2:])], axis=-1)
    return u * h, pos, vel


# --------------------------------------------------------------------------------------
# Uncertainty
# --------------------------------------------------------------------------------------


def sigma_points(
    mean: Any, cov: Any, alpha: float = 1.0, beta: float = 0.0, kappa: float = 0.0
) -> tuple[Any, Any, Any]:
    """Scaled (van der Merwe) sigma points of ``N(mean, cov)``, batched.

    Returns ``(points (..., 2n+1, n), wm (2n+1,), wc (2n+1,))`` with
    ``lambda = alpha^2 (n + kappa) - n``, points ``mean`` and ``mean +- sqrt(n + lambda) L_i``
    (``L`` the Cholesky factor). The defaults (``alpha=1, kappa=0``) give ``2n`` equally
    weighted points at ``+- sqrt(n)`` standard deviations and zero weight on the mean.
    """
    xp = get_namespace(mean, cov)
    n = mean.shape[-1]
    if cov.shape[-2:] != (n, n):
        raise InvalidInput("cov", f"covariance must be ({n}, {n}), got {tuple(cov.shape)}")
    lam = alpha * alpha * (n + kappa) - n
    try:
        chol = xp.linalg.cholesky(cov * (n + lam))
    except Exception as exc:  # numpy LinAlgError / torch error
        raise InvalidInput("cov", "covariance must be symmetric positive definite") from exc
    if not bool(xp.all(xp.isfinite(chol))):
        raise InvalidInput("cov", "covariance must be symmetric positive definite")
    cols = xp.permute_dims(
        chol, (*range(chol.ndim - 2), chol.ndim - 1, chol.ndim - 2)
    )  # rows = columns of L
    m = mean[..., None, :]
    pts = xp.concat([m, m + cols, m - cols], axis=-2)
    wm = np.full(2 * n + 1, 1.0 / (2 * (n + lam)))
    wc = wm.copy()
    wm[0] = lam / (n + lam)
    wc[0] = lam / (n + lam) + (1 - alpha * alpha + beta)
    return pts, wm, wc


def _regularise(cov: np.ndarray) -> np.ndarray:
    """Tiny diagonal jitter for a positive semi-definite covariance (zero rows allowed)."""
    scale = max(float(np.max(np.abs(np.diag(cov)))), 1.0)
    return cov + np.eye(cov.shape[0]) * 1e-12 * scale


@dataclass
class ImpactEstimate:
    """Impact-point distribution of one uncertain state.

    ``point`` [x, y] m and ``cov`` (2x2, m^2); ``time`` / ``time_std`` seconds after the
    state epoch; the error ellipse at ``confidence`` has semi-axes ``semi_major`` /
    ``semi_minor`` (m) and the major axis at ``orientation_deg`` counter-clockwise from east.
    ``method`` is ``"unscented"``, ``"monte_carlo"`` or ``"point"`` (no covariance given).
    """

    point: np.ndarray
    cov: np.ndarray
    time: float
    time_std: float
    semi_major: float
    semi_minor: float
    orientation_deg: float
    confidence: float
    method: str
    fraction_found: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": [float(self.point[0]), float(self.point[1]), 0.0],
            "covariance": self.cov.tolist(),
            "time": self.time,
            "time_std": self.time_std,
            "ellipse": {
                "semi_major": self.semi_major,
                "semi_minor": self.semi_minor,
                "orientation_deg": self.orientation_deg,
                "confidence": self.confidence,
            },
            "method": self.method,
            "fraction_found": self.fraction_found,
        }


def error_ellipse(cov2: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Semi-axes (m) and orientation (deg CCW from east) of the ``confidence`` ellipse of a
    2-D Gaussian with covariance ``cov2``: axes ``sqrt(-2 ln(1 - p) * eigenvalue)``."""
    if not (0 < confidence < 1):
        raise InvalidInput("confidence", "confidence must be in (0, 1)")
    c = np.asarray(to_numpy(cov2), dtype=np.float64)
    c = 0.5 * (c + c.T)
    vals, vecs = np.linalg.eigh(c)
    vals = np.clip(vals, 0.0, None)
    k2 = -2.0 * math.log(1.0 - confidence)
    major = vecs[:, 1]
    ang = math.degrees(math.atan2(major[1], major[0]))
    if ang <= -90:
        ang += 180
    elif ang > 90:
        ang -= 180
    return math.sqrt(k2 * vals[1]), math.sqrt(k2 * vals[0]), ang


def impact_distribution(
    state: Any,
    cov: Any = None,
    drag: Drag | Mapping[str, Any] | float | None = None,
    method: str = "unscented",
    n_samples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    dt: float = 0.1,
) -> ImpactEstimate:
    """Impact point, its covariance and error ellipse, and time-to-impact spread.

    ``method="unscented"`` pushes :func:`sigma_points` of ``N(state, cov)`` through
    :func:`impact` and takes the weighted mean and covariance of ``(x, y, t)``;
    ``"monte_carlo"`` does the same with ``n_samples`` seeded draws (sample mean and
    covariance). Without ``cov`` the point impact is returned with zero spread.
    """
    s = _check_states(state)
    if s.ndim != 1:
        raise InvalidInput("state", "impact_distribution takes one state of shape (6,)")
    xp = get_namespace(s)
    if cov is None:
        imp = impact(s, drag=drag, dt=dt)
        if not bool(imp.found):
            raise InvalidInput("state", "no ground impact within the time limit")
        p = to_numpy(imp.position)[:2].astype(np.float64)
        return ImpactEstimate(
            p, np.zeros((2, 2)), float(imp.time), 0.0, 0.0, 0.0, 0.0, confidence, "point"
        )
    c_host = np.asarray(to_numpy(cov), dtype=np.float64)
    if c_host.shape != (6, 6) or not np.all(np.isfinite(c_host)):
        raise InvalidInput("cov", f"expected a finite (6, 6) covariance, got shape {c_host.shape}")
    if not np.allclose(c_host, c_host.T, rtol=1e-8, atol=1e-12 * max(np.abs(c_host).max(), 1.0)):
        raise InvalidInput("cov", "covariance must be symmetric")
    c_host = _regularise(c_host)
    cov_x = _like(xp, c_host, s)
    if method == "unscented":
        pts, wm, wc = sigma_points(s, cov_x)
        pts = xp.concat([pts[..., :2], xp.maximum(pts[..., 2:3], 0.0), pts[..., 3:]], axis=-1)
        imp = impact(pts, drag=drag, dt=dt)
        y = np.stack(
            [to_numpy(imp.position)[:, 0], to_numpy(imp.position)[:, 1], to_numpy(imp.time)],
            axis=-1,
        )
        found = to_numpy(imp.found).astype(bool)
        if not np.all(found):
            raise InvalidInput(
                "state", "a sigma point found no ground impact within the time limit"
            )
        mean = wm @ y
        d = y - mean
        ycov = (wc[:, None] * d).T @ d
        frac = 1.0
    elif method == "monte_carlo":
        if int(n_samples) < 10:
            raise InvalidInput("n_samples", "need at least 10 samples")
        rng = np.random.default_rng(seed)
        draws = rng.multivariate_normal(
            to_numpy(s).astype(np.float64), c_host, size=int(n_samples), method="cholesky"
        )
        draws[:, 2] = np.maximum(draws[:, 2], 0.0)
        dx = _like(xp, draws, s)
        imp = impact(dx, drag=drag, dt=dt)
        found = to_numpy(imp.found).astype(bool)
        if found.sum() < 10:
            raise InvalidInput("state", "too few samples reach the ground within the time limit")
        pos = to_numpy(imp.position)[found]
        y = np.stack([pos[:, 0], pos[:, 1], to_numpy(imp.time)[found]], axis=-1)
        mean = y.mean(axis=0)
        ycov = np.cov(y, rowvar=False)
        frac = float(found.mean())
    else:
        raise InvalidInput("method", "method must be 'unscented' or 'monte_carlo'")
    a, b, ang = error_ellipse(ycov[:2, :2], confidence)
    return ImpactEstimate(
        point=mean[:2],
        cov=ycov[:2, :2],
        time=float(mean[2]),
        time_std=float(math.sqrt(max(ycov[2, 2], 0.0))),
        semi_major=a,
        semi_minor=b,
        orientation_deg=ang,
        confidence=confidence,
        method=method,
        fraction_found=frac,
    )


# --------------------------------------------------------------------------------------
# Fitting a history and predicting
# --------------------------------------------------------------------------------------

MODELS = ("ballistic", "constant_velocity")
_MODEL_ALIASES = {
    "ballistic": "ballistic",
    "kalman_filter": "ballistic",
    "kalman": "ballistic",
    "gravity": "ballistic",
    "constant_velocity": "constant_velocity",
    "cv": "constant_velocity",
    "linear": "constant_velocity",
}


def _velocity_row(v: Any, field: str) -> list[float]:
    """A velocity vector (3,), or NaNs when absent or a scalar speed (no direction)."""
    if v is None or np.ndim(v) == 0:
        return [math.nan] * 3
    try:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "expected a velocity [vx, vy, vz] (m/s)") from exc
    if a.size != 3 or not np.all(np.isfinite(a)):
        raise InvalidInput(field, "expected three finite numbers [vx, vy, vz] (m/s)")
    return a.tolist()


def _parse_history(history: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (n,), positions (n, 3) and velocities (n, 3; NaN rows where none), time-sorted."""
    if isinstance(history, Mapping):
        times = history.get("times", history.get("timestamps"))
        pos = history.get("positions")
        if times is None or pos is None:
            raise InvalidInput(
                "history", "expected {times, positions} or a list of {timestamp, position}"
            )
        given = history.get("velocities")
        vel = (
            [[math.nan] * 3] * len(pos)
            if given is None
            else [_velocity_row(v, f"history.velocities.{i}") for i, v in enumerate(given)]
        )
    elif isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
        times, pos, vel = [], [], []
        for i, item in enumerate(history):
            if not isinstance(item, Mapping) or "position" not in item:
                raise InvalidInput(f"history.{i}", "each entry needs a timestamp and a position")
            ts = item.get("timestamp", item.get("time", item.get("t")))
            if ts is None:
                raise InvalidInput(f"history.{i}.timestamp", "missing timestamp")
            times.append(ts)
            pos.append(item["position"])
            vel.append(_velocity_row(item.get("velocity"), f"history.{i}.velocity"))
    else:
        raise InvalidInput(
            "history", "expected a list of {timestamp, position} or {times, positions}"
        )
    try:
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        p = np.asarray(pos, dtype=np.float64)
        v = np.asarray(vel, dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("history", f"non-numeric history: {exc}") from exc
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] != t.size:
        raise InvalidInput("history", f"positions must be ({t.size}, 3), got {p.shape}")
    if v.shape[0] != t.size:
        raise InvalidInput("history", f"velocities must be ({t.size}, 3), got {v.shape}")
    if t.size == 0:
        raise InvalidInput("history", "empty history")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise InvalidInput("history", "history contains NaN or infinite values")
    order = np.argsort(t, kind="stable")
    t, p, v = t[order], p[order], v[order]
    if np.any(np.diff(t) <= 0):
        raise InvalidInput("history", "timestamps must be distinct")
    return t, p, v


@dataclass
class StateFit:
    """Least-squares state at ``epoch`` (the last history time) with its covariance."""

    epoch: float
    state: np.ndarray
    cov: np.ndarray
    sigma: float
    dof: int
    chi2: float | None


def fit_state(
    history: Any, model: str = "ballistic", measurement_sigma: float | None = None, g: float = G0
) -> StateFit:
    """Fit ``[p, v]`` at the last history time to the history's positions (and velocities).

    ``ballistic``: ``p_i = p + v tau_i - g tau_i^2 / 2 e_z`` (``tau_i = t_i - t_last``),
    ``constant_velocity`` drops the gravity term. Linear least squares per axis; the
    state covariance is ``sigma^2 (A^T W A)^-1`` per axis, with ``sigma`` the given
    ``measurement_sigma`` (m) or, when omitted, estimated from the residuals. This is the
    exact batch solution of a Kalman filter on the same model with zero process noise and a
    diffuse prior.

    A history point that carries a velocity vector (m/s) measures the velocity too
    (``v_i = v - g tau_i e_z``): a position and a velocity are a full state, so two such
    points are enough. A velocity is weighted as a finite difference of two positions over
    the history's mean step ``dt``: ``sigma_v = sqrt(2) sigma / dt``. A scalar speed has no
    direction and is not used.

    Needs at least 2 points; the noise is estimated from ``3 (n + m - 2)`` degrees of
    freedom (``n`` positions, ``m`` velocities), so without velocities and without
    ``measurement_sigma`` at least 3 points.
    """
    name = _MODEL_ALIASES.get(str(model).lower())
    if name is None:
        raise InvalidInput(
            "model", f"unknown model {model!r}; expected one of {', '.join(_MODEL_ALIASES)}"
        )
    t, p, vel = _parse_history(history)
    n = t.size
    has_v = np.all(np.isfinite(vel), axis=1)
    m = int(has_v.sum())
    if measurement_sigma is not None and not (
        math.isfinite(measurement_sigma) and measurement_sigma > 0
    ):
        raise InvalidInput("measurement_sigma", "measurement_sigma must be positive")
    dof = 3 * (n + m - 2)
    if n < 2 or (dof == 0 and measurement_sigma is None):
        raise InvalidInput(
            "history",
            "need at least 3 positions, or 2 that carry velocities [vx, vy, vz], "
            "or 2 with measurement_sigma",
        )
    tau = t - t[-1]
    y = p.copy()
    if name == "ballistic":
        y[:, 2] += 0.5 * g * tau * tau
    a = np.stack([np.ones(n), tau], axis=1)
    if m:
        # velocity rows v_i = v (- g tau_i on z), weighted (sigma / sigma_v)^2 = dt^2 / 2
        step = (t[-1] - t[0]) / (n - 1)
        sw = step / math.sqrt(2.0)
        yv = vel[has_v].copy()
        if name == "ballistic":
            yv[:, 2] += g * tau[has_v]
        a = np.concatenate([a, sw * np.stack([np.zeros(m), np.ones(m)], axis=1)])
        y = np.concatenate([y, sw * yv])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)  # (2, 3)
    resid = y - a @ coef
    ss = float((resid**2).sum())
    if measurement_sigma is None:
        sigma = math.sqrt(ss / dof) if dof > 0 else 0.0
        chi2 = None
    else:
        sigma = float(measurement_sigma)
        chi2 = ss / sigma**2
    ata_inv = np.linalg.inv(a.T @ a)
    cov = np.zeros((6, 6))
    for ax in range(3):
        idx = [ax, ax + 3]
        cov[np.ix_(idx, idx)] = sigma**2 * ata_inv
    state = np.concatenate([coef[0], coef[1]])
    return StateFit(epoch=float(t[-1]), state=state, cov=cov, sigma=sigma, dof=dof, chi2=chi2)


@dataclass
class Prediction:
    """Predicted path with covariances, and the impact estimate.

    ``times`` (K,) absolute seconds; ``positions`` (K, 3) m; ``covariances`` (K, 3, 3) m^2.
    ``impact`` is ``None`` when the model never reaches the ground (or climbs forever);
    ``time_to_impact`` counts from ``epoch``. ``confidence`` is the chi-square goodness-of-
    fit p-value of the history under the model when ``measurement_sigma`` was given, else
    ``None`` (the residuals then calibrate sigma and cannot test the model).
    """

    model: str
    epoch: float
    state: np.ndarray
    state_cov: np.ndarray
    times: np.ndarray
    positions: np.ndarray
    covariances: np.ndarray
    impact: ImpactEstimate | None
    confidence: float | None
    rms_residual: float | None = None

    @property
    def time_to_impact(self) -> float | None:
        return None if self.impact is None else self.impact.time

    def to_dict(self) -> dict[str, Any]:
        std = np.sqrt(np.clip(np.diagonal(self.covariances, axis1=1, axis2=2), 0.0, None))
        imp = self.impact.to_dict() if self.impact is not None else None
        if imp is not None:
            imp["timestamp"] = self.epoch + self.impact.time
        return {
            "model": self.model,
            "epoch": self.epoch,
            "state": {
                "position": self.state[:3].tolist(),
                "velocity": self.state[3:].tolist(),
                "covariance": self.state_cov.tolist(),
            },
            "predictions": [
                {"timestamp": float(t), "position": p.tolist(), "std": s.tolist()}
                for t, p, s in zip(self.times, self.positions, std, strict=True)
            ],
            "uncertainty": [
                {"std": s.tolist(), "covariance": c.tolist()}
                for s, c in zip(std, self.covariances, strict=True)
            ],
            "impact_point": imp,
            "time_to_impact": self.time_to_impact,
            "time_to_impact_std": None if self.impact is None else self.impact.time_std,
            "confidence": self.confidence,
            "rms_residual": self.rms_residual,
        }


def predict(
    history: Any = None,
    *,
    state: Any = None,
    cov: Any = None,
    epoch: float = 0.0,
    horizon: float = 30.0,
    dt: float = 1.0,
    model: str = "ballistic",
    drag: Drag | Mapping[str, Any] | float | None = None,
    measurement_sigma: float | None = None,
    confidence_level: float = 0.95,
    stop_at_impact: bool = True,
) -> Prediction:
    """Predicted positions over ``horizon`` seconds with covariances, and the impact.

    Give either ``history`` (list of ``{timestamp, position}`` or ``{times, positions}``,
    fitted by :func:`fit_state`) or ``state`` (6,) with optional ``cov`` (6, 6) at ``epoch``.

    Covariances: exact linear propagation ``Phi P Phi^T`` for the drag-free models;
    unscented transform per time step with drag. ``model``: ``ballistic`` (alias
    ``kalman_filter``) or ``constant_velocity``. Prediction times are ``epoch + k dt``,
    ``k = 1..floor(horizon / dt)``, cut at the ground when ``stop_at_impact``.
    """
    name = _MODEL_ALIASES.get(str(model).lower())
    if name is None:
        raise InvalidInput(
            "model", f"unknown model {model!r}; expected one of {', '.join(_MODEL_ALIASES)}"
        )
    if not (math.isfinite(horizon) and horizon > 0):
        raise InvalidInput("horizon", "horizon must be a positive number of seconds")
    if not (math.isfinite(dt) and dt > 0):
        raise InvalidInput("dt", "dt must be positive")
    if horizon / dt > 100_000:
        raise InvalidInput("horizon", "horizon / dt exceeds 100000 steps")
    drag = _as_drag(drag)
    if name == "constant_velocity" and drag is not None:
        raise InvalidInput("drag", "drag applies to the ballistic model only")
    confidence = None
    rms = None
    if history is not None:
        fit = fit_state(history, name, measurement_sigma)
        s0, p0, ep = fit.state, fit.cov, fit.epoch
        rms = fit.sigma if measurement_sigma is None else None
        if fit.chi2 is not None and fit.dof > 0:
            confidence = float(chi2_dist.sf(fit.chi2, fit.dof))
    elif state is not None:
        s0 = np.asarray(to_numpy(state), dtype=np.float64).reshape(-1)
        if s0.size != 6 or not np.all(np.isfinite(s0)):
            raise InvalidInput("state", "expected 6 finite numbers [x, y, z, vx, vy, vz]")
        if cov is None:
            p0 = np.zeros((6, 6))
        else:
            p0 = np.asarray(to_numpy(cov), dtype=np.float64)
            if p0.shape != (6, 6) or not np.all(np.isfinite(p0)):
                raise InvalidInput("cov", "expected a finite (6, 6) covariance")
        ep = float(epoch)
    else:
        raise InvalidInput("history", "give a history or a state")
    if s0[2] < 0:
        raise InvalidInput("state", "altitude z must be >= 0")
    g = G0 if name == "ballistic" else 0.0
    k = np.arange(1, int(math.floor(horizon / dt + 1e-9)) + 1) * dt
    has_cov = bool(np.any(p0 != 0))
    imp_est: ImpactEstimate | None = None
    if name == "ballistic":
        imp_est = impact_distribution(
            s0, p0 if has_cov else None, drag=drag, confidence=confidence_level, method="unscented"
        )
    elif s0[5] < 0:
        t_hit = -s0[2] / s0[5]
        pt = s0[:2] + s0[3:5] * t_hit
        jac = np.zeros((3, 6))  # d(x, y, t)/d state, linear-model impact
        jac[2, 2], jac[2, 5] = -1.0 / s0[5], s0[2] / s0[5] ** 2
        jac[0, 0] = jac[1, 1] = 1.0
        jac[0, 3] = jac[1, 4] = t_hit
        jac[0, :] += s0[3] * jac[2, :]  # x_hit = x + vx t(z, vz)
        jac[1, :] += s0[4] * jac[2, :]
        c3 = jac @ p0 @ jac.T
        a_, b_, ang = error_ellipse(c3[:2, :2], confidence_level)
        imp_est = ImpactEstimate(
            pt,
            c3[:2, :2],
            float(t_hit),
            math.sqrt(max(c3[2, 2], 0.0)),
            a_,
            b_,
            ang,
            confidence_level,
            "linearised",
        )
    if stop_at_impact and imp_est is not None:
        k = k[k <= imp_est.time + 1e-9]
    if drag is None:
        traj = to_numpy(propagate(s0, k, g=g))
        pos = traj[:, :3]
        phi = np.zeros((k.size, 3, 6))
        phi[:, :, :3] = np.eye(3)
        phi[:, :, 3:] = np.eye(3)[None] * k[:, None, None]
        covs = phi @ p0 @ np.transpose(phi, (0, 2, 1))
    else:
        if has_cov:
            pts, wm, wc = sigma_points(s0, _regularise(p0))
            tr = to_numpy(propagate(pts, k, drag=drag))[..., :3]  # (2n+1, K, 3)
            pos = np.einsum("s,skd->kd", wm, tr)
            d = tr - pos[None]
            covs = np.einsum("s,ski,skj->kij", wc, d, d)
        else:
            pos = to_numpy(propagate(s0, k, drag=drag))[:, :3]
            covs = np.zeros((k.size, 3, 3))
    return Prediction(
        model=name,
        epoch=ep,
        state=s0,
        state_cov=p0,
        times=ep + k,
        positions=pos,
        covariances=covs,
        impact=imp_est,
        confidence=confidence,
        rms_residual=rms,
    )


def predict_trajectory(**kwargs: Any) -> Prediction:
    """REST-facing alias of :func:`predict` (keyword arguments only).

    Accepts ``prediction_horizon`` for ``horizon`` (the original notebook's name).
    """
    if "prediction_horizon" in kwargs:
        kwargs["horizon"] = kwargs.pop("prediction_horizon")
    history = kwargs.pop("history", None)
    return predict(history, **kwargs)
