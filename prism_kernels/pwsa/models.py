"""Motion models for 3-D point targets: constant velocity, constant acceleration, ballistic.

State ordering (blocked, not interleaved), units metres and seconds:

* constant velocity (CV), 6 states: ``[x, y, z, vx, vy, vz]``
* constant acceleration (CA), 9 states: ``[x, y, z, vx, vy, vz, ax, ay, az]``
* ballistic, 6 states like CV, plus the known input of gravity ``g = (0, 0, -9.80665)`` m/s^2:
  ``x_k+1 = F x_k + u``, ``u = [g dt^2/2, g dt]`` (a linear model with known input,
  equivalently ``B g`` with ``B = [dt^2/2 I; dt I]``).

For the IMM every model has a 9-state form (``embed=True``) with the CA ordering: CV
resets the acceleration to 0, ballistic sets it to ``g``, CA propagates it.

Everything is batched: ``dt`` (and ``q``) may be a scalar or an array of shape ``(N,)``
(one interval per track); the matrices come back with shape ``(..., n, n)``.
Process noise is the continuous white-noise model: white acceleration for CV/ballistic
(spectral density ``q`` in m^2/s^3) and white jerk for CA (``q`` in m^2/s^5).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.arrays import as_float
from prism_kernels.arrays import device_of as _dev
from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput

GRAVITY = 9.80665
"""Standard gravity, m/s^2 (acts along -z)."""

GRAVITY_VECTOR = np.array([0.0, 0.0, -GRAVITY])


def _prep(dt: Any, q: Any = None, xp: Any = None, like: Any = None) -> tuple[Any, Any, Any]:
    if xp is None:
        xp = get_namespace(*(a for a in (dt, q, like) if hasattr(a, "shape")))
    dt_a = as_float(dt, xp, like)
    if not bool(xp.all(xp.isfinite(dt_a))) or bool(xp.any(dt_a < 0)):
        raise InvalidInput("dt", "time steps must be finite and >= 0")
    q_a = None
    if q is not None:
        q_a = as_float(q, xp, like if like is not None else dt_a)
        if not bool(xp.all(xp.isfinite(q_a))) or bool(xp.any(q_a < 0)):
            raise InvalidInput("q", "process noise intensity must be finite and >= 0")
    return xp, dt_a, q_a


@functools.lru_cache(maxsize=64)
def _block(k: int, i: int, j: int, d: int) -> np.ndarray:
    e = np.zeros((k, k))
    e[i, j] = 1.0
    out = np.kron(e, np.eye(d))
    return out


def _kron_blocks(coeffs: list[list[Any]], d: int, xp: Any, like: Any) -> Any:
    """Sum_ij coeffs[i][j] (batch) * (E_ij kron I_d): a (..., k*d, k*d) block matrix."""
    k = len(coeffs)
    out = None
    for i in range(k):
        for j in range(k):
            c = coeffs[i][j]
            if c is None:
                continue
            blk = as_float(_block(k, i, j, d), xp, like)
            term = c[..., None, None] * blk
            out = term if out is None else out + term
    return out


def _derivative_transition(order: int, dt: Any, xp: Any, d: int = 3) -> Any:
    """F for a chain of ``order`` derivatives per axis (order 2: CV, 3: CA)."""
    one = xp.ones_like(dt)
    coeffs: list[list[Any]] = [[None] * order for _ in range(order)]
    fact = 1.0
    for i in range(order):
        coeffs[i][i] = one
    for k in range(1, order):
        fact *= k
        for i in range(order - k):
            coeffs[i][i + k] = dt**k / fact
    return _kron_blocks(coeffs, d, xp, dt)


def cv_transition(dt: Any, xp: Any = None) -> Any:
    """Constant-velocity transition matrix F(dt), shape ``dt.shape + (6, 6)``."""
    xp, dt, _ = _prep(dt, xp=xp)
    return _derivative_transition(2, dt, xp)


def cv_process_noise(dt: Any, q: Any, xp: Any = None) -> Any:
    """White-noise-acceleration Q(dt, q) for CV, shape ``broadcast(dt, q).shape + (6, 6)``.

    Per axis ``q * [[dt^3/3, dt^2/2], [dt^2/2, dt]]`` (Stone Soup's ``ConstantVelocity``).
    """
    xp, dt, q = _prep(dt, q, xp=xp)
    c = [[q * dt**3 / 3.0, q * dt**2 / 2.0], [q * dt**2 / 2.0, q * dt]]
    return _kron_blocks(c, 3, xp, dt)


def ca_transition(dt: Any, xp: Any = None) -> Any:
    """Constant-acceleration transition matrix F(dt), shape ``dt.shape + (9, 9)``."""
    xp, dt, _ = _prep(dt, xp=xp)
    return _derivative_transition(3, dt, xp)


def ca_process_noise(dt: Any, q: Any, xp: Any = None) -> Any:
    """White-noise-jerk Q(dt, q) for CA, shape ``(..., 9, 9)``.

    Per axis ``q * [[dt^5/20, dt^4/8, dt^3/6], [dt^4/8, dt^3/3, dt^2/2], [dt^3/6, dt^2/2, dt]]``.
    """
    xp, dt, q = _prep(dt, q, xp=xp)
    c = [
        [q * dt**5 / 20.0, q * dt**4 / 8.0, q * dt**3 / 6.0],
        [q * dt**4 / 8.0, q * dt**3 / 3.0, q * dt**2 / 2.0],
        [q * dt**3 / 6.0, q * dt**2 / 2.0, q * dt],
    ]
    return _kron_blocks(c, 3, xp, dt)


def ballistic_input(dt: Any, xp: Any = None, g: float = GRAVITY) -> Any:
    """Known gravity input ``u = [0, 0, -g dt^2/2, 0, 0, -g dt]``, shape ``dt.shape + (6,)``."""
    xp, dt, _ = _prep(dt, xp=xp)
    z = xp.zeros_like(dt)
    return xp.stack([z, z, -g * dt**2 / 2.0, z, z, -g * dt], axis=-1)


def ballistic_control_matrix(dt: Any, xp: Any = None) -> Any:
    """B(dt) = [dt^2/2 I; dt I], shape ``dt.shape + (6, 3)``, so ``u = B @ GRAVITY_VECTOR``."""
    xp, dt, _ = _prep(dt, xp=xp)
    top = (dt**2 / 2.0)[..., None, None] * as_float(np.eye(3), xp, dt)
    bot = dt[..., None, None] * as_float(np.eye(3), xp, dt)
    return xp.concat([top, bot], axis=-2)


def _embed9(F6: Any, Q6: Any, xp: Any) -> tuple[Any, Any]:
    """Put 6-state F, Q into the 9-state layout with a zero acceleration block."""
    batch = F6.shape[:-2]
    zF = xp.zeros((*batch, 6, 3), dtype=F6.dtype, device=_dev(F6))
    zr = xp.zeros((*batch, 3, 9), dtype=F6.dtype, device=_dev(F6))
    F = xp.concat([xp.concat([F6, zF], axis=-1), zr], axis=-2)
    bq = Q6.shape[:-2]
    zQ = xp.zeros((*bq, 6, 3), dtype=Q6.dtype, device=_dev(Q6))
    zrq = xp.zeros((*bq, 3, 9), dtype=Q6.dtype, device=_dev(Q6))
    Q = xp.concat([xp.concat([Q6, zQ], axis=-1), zrq], axis=-2)
    return F, Q


@dataclass(frozen=True)
class MotionModel:
    """A linear motion model ``x' = F(dt) x + u(dt) + w``, ``w ~ N(0, Q(dt))``.

    Parameters
    ----------
    kind : {"cv", "ca", "ballistic"}
    q : float
        Noise spectral density (m^2/s^3 for CV/ballistic, m^2/s^5 for CA).
    embed : bool
        Use the common 9-state layout (for the IMM); CA is always 9 states.
    """

    kind: str
    q: float
    embed: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("cv", "ca", "ballistic"):
            raise InvalidInput(
                "kind", f"unknown motion model {self.kind!r}; use cv, ca or ballistic"
            )
        if not np.isfinite(self.q) or self.q < 0:
            raise InvalidInput("q", "process noise intensity must be finite and >= 0")

    @property
    def ndim_state(self) -> int:
        return 9 if (self.embed or self.kind == "ca") else 6

    def matrices(self, dt: Any, xp: Any = None, like: Any = None) -> tuple[Any, Any, Any]:
        """``(F, Q, u)`` for step(s) ``dt``; ``u`` is ``None`` when the model has no input.

        Shapes: F, Q ``dt.shape + (n, n)``, u ``dt.shape + (n,)``. ``like`` places the
        result on that array's namespace and device.
        """
        if xp is None:
            xp = get_namespace(*(a for a in (dt, like) if hasattr(a, "shape")))
        dt = as_float(dt, xp, like)
        if self.kind == "ca":
            return ca_transition(dt, xp), ca_process_noise(dt, self.q, xp), None
        F, Q = cv_transition(dt, xp), cv_process_noise(dt, self.q, xp)
        u = ballistic_input(dt, xp) if self.kind == "ballistic" else None
        if not self.embed:
            return F, Q, u
        F, Q = _embed9(F, Q, xp)
        if u is not None:
            g = as_float([0.0, 0.0, -GRAVITY], xp, dt) * xp.ones_like(dt)[..., None]
            u = xp.concat([u, g], axis=-1)
        return F, Q, u


def ConstantVelocity(q: float, embed: bool = False) -> MotionModel:  # noqa: N802
    """Constant-velocity model (white-noise acceleration ``q``, m^2/s^3)."""
    return MotionModel("cv", q, embed)


def ConstantAcceleration(q: float) -> MotionModel:  # noqa: N802
    """Constant-acceleration model (white-noise jerk ``q``, m^2/s^5), 9 states."""
    return MotionModel("ca", q, True)


def Ballistic(q: float, embed: bool = False) -> MotionModel:  # noqa: N802
    """Constant velocity plus gravity along -z (white-noise acceleration ``q``)."""
    return MotionModel("ballistic", q, embed)


def position_selector(n: int, xp: Any = None, like: Any = None) -> Any:
    """H (3, n) that selects the position ``[x, y, z]`` from a 6- or 9-state vector."""
    if xp is None:
        xp = get_namespace(like) if like is not None else get_namespace()
    H = np.zeros((3, n))
    H[:, :3] = np.eye(3)
    return as_float(H, xp, like)
