"""Batched forward kinematics, geometric Jacobians, link spheres and pose helpers.

Everything runs on the array namespace of the configuration (NumPy, PyTorch, CuPy) with
array-API calls only; every function takes leading batch dimensions ``(...)``. Units: metres,
radians. Poses are homogeneous transforms ``(..., 4, 4)`` in the robot's world frame (the
model's ``base`` applied). Quaternions are ``(x, y, z, w)`` (scalar last, the convention of
ROS, SciPy's ``Rotation.as_quat`` and three.js).

For a mobile robot the configuration is the position of its centre: its pose is a pure
translation (z = 0 for a 2-D robot) and its Jacobian the identity on the position rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.robotics.models import RobotModel

__all__ = [
    "check_configuration",
    "fk",
    "jacobian",
    "fk_jacobian",
    "link_frames",
    "link_spheres",
    "pose_error",
    "pose_from_position_quaternion",
    "quaternion_from_rotation",
    "rotation_error_vector",
]


def _const(xp: Any, a: np.ndarray, like: Any) -> Any:
    return xp.asarray(np.array(a, dtype=np.float64), dtype=xp.float64, device=device_of(like))


def check_configuration(
    model: RobotModel, q: Any, field: str = "q", check_limits: bool = False, tol: float = 1e-9
) -> Any:
    """``q`` as a float64 array ``(..., dof)`` of its own namespace, validated.

    Raises
    ------
    InvalidInput
        Naming ``field``: not an array of numbers, last axis not ``model.dof`` long (the
        message gives both lengths), NaN or inf, or (with ``check_limits``) a joint outside
        ``model.joint_limits`` by more than ``tol``.
    """
    if not hasattr(q, "shape") or isinstance(q, np.generic):
        try:
            q = np.asarray(q, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(field, "expected an array of numbers") from exc
    xp = get_namespace(q)
    if q.ndim == 0 or q.shape[-1] != model.dof:
        raise InvalidInput(
            field,
            f"expected {model.dof} values per configuration for {model.name}, got shape "
            f"{tuple(q.shape)}",
            expected=model.dof,
            received=list(q.shape),
        )
    q = xp.asarray(q, dtype=xp.float64)
    if not bool(xp.all(xp.isfinite(q))):
        raise InvalidInput(field, "contains NaN or inf")
    if check_limits and math.prod(q.shape):
        lim = _const(xp, model.joint_limits, q)
        bad = (q < lim[:, 0] - tol) | (q > lim[:, 1] + tol)
        if bool(xp.any(bad)):
            j = int(np.nonzero(to_numpy(xp.any(xp.reshape(bad, (-1, model.dof)), axis=0)))[0][0])
            raise InvalidInput(
                field,
                f"joint {j} outside its limits [{model.joint_limits[j, 0]:.4f}, "
                f"{model.joint_limits[j, 1]:.4f}]",
                joint=j,
            )
    return q


def _stack44(rows: list[list[Any]], xp: Any) -> Any:
    return xp.stack([xp.stack(r, axis=-1) for r in rows], axis=-2)


def _joint_transforms(model: RobotModel, q: Any) -> Any:
    """Link ``i-1`` -> link ``i`` transforms ``(..., dof, 4, 4)`` of an arm."""
    xp = get_namespace(q)
    dh = _const(xp, model.dh, q)
    a, alpha, d, off = dh[:, 0], dh[:, 1], dh[:, 2], dh[:, 3]
    th = q + off
    ct, st = xp.cos(th), xp.sin(th)
    ca = xp.broadcast_to(xp.cos(alpha), ct.shape)
    sa = xp.broadcast_to(xp.sin(alpha), ct.shape)
    a = xp.broadcast_to(a, ct.shape)
    d = xp.broadcast_to(d, ct.shape)
    zero = xp.zeros_like(ct)
    one = xp.ones_like(ct)
    if model.dh_convention == "modified":
        # Rx(alpha) Tx(a) Rz(theta) Tz(d)
        rows = [
            [ct, -st, zero, a],
            [st * ca, ct * ca, -sa, -sa * d],
            [st * sa, ct * sa, ca, ca * d],
            [zero, zero, zero, one],
        ]
    else:
        # Rz(theta) Tz(d) Tx(a) Rx(alpha)
        rows = [
            [ct, -st * ca, st * sa, a * ct],
            [st, ct * ca, -ct * sa, a * st],
            [zero, sa, ca, d],
            [zero, zero, zero, one],
        ]
    return _stack44(rows, xp)


def _mobile_frame(model: RobotModel, q: Any) -> Any:
    xp = get_namespace(q)
    p = q if model.dof == 3 else xp.concat([q, xp.zeros_like(q[..., :1])], axis=-1)
    zero = xp.zeros_like(p[..., 0])
    one = xp.ones_like(zero)
    rows = [
        [one, zero, zero, p[..., 0]],
        [zero, one, zero, p[..., 1]],
        [zero, zero, one, p[..., 2]],
        [zero, zero, zero, one],
    ]
    return _stack44(rows, xp)


def _frames(model: RobotModel, q: Any) -> list[Any]:
    """World frames: base, links 1..dof, tool (arms), each ``(..., 4, 4)``."""
    xp = get_namespace(q)
    if model.kind == "mobile":
        return [_mobile_frame(model, q)]
    A = _joint_transforms(model, q)
    T = xp.broadcast_to(_const(xp, model.base, q), (*q.shape[:-1], 4, 4))
    out = [T]
    for i in range(model.dof):
        T = T @ A[..., i, :, :]
        out.append(T)
    out.append(T @ _const(xp, model.tool, q))
    return out


def link_frames(model: RobotModel, q: Any) -> Any:
    """World poses of every link frame.

    Parameters
    ----------
    model : RobotModel
    q : array (..., dof)
        Joint angles (rad) or, for a mobile robot, positions (m).

    Returns
    -------
    array (..., L, 4, 4)
        ``L = dof + 2`` for an arm (base, links 1..dof, tool), 1 for a mobile robot.
    """
    q = check_configuration(model, q)
    return get_namespace(q).stack(_frames(model, q), axis=-3)


def fk(model: RobotModel, q: Any) -> Any:
    """Forward kinematics: the tool pose (arms, tool transform included) or the robot's pose
    (mobile robots), ``(..., 4, 4)``, for configurations ``q (..., dof)``."""
    q = check_configuration(model, q)
    return _frames(model, q)[-1]


def _cross(a: Any, b: Any, xp: Any) -> Any:
    return xp.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def _fk_jacobian(model: RobotModel, q: Any) -> tuple[Any, Any]:
    xp = get_namespace(q)
    frames = _frames(model, q)
    T = frames[-1]
    if model.kind == "mobile":
        J = xp.zeros((*q.shape[:-1], 6, model.dof), dtype=xp.float64, device=device_of(q))
        eye = _const(xp, np.eye(6, model.dof), q)
        return T, J + eye
    # joint i rotates about z of frame i (modified DH) or of frame i-1 (standard DH)
    axes = frames[1 : model.dof + 1] if model.dh_convention == "modified" else frames[: model.dof]
    Z = xp.stack([F[..., :3, 2] for F in axes], axis=-2)  # (..., dof, 3)
    origins = xp.stack([F[..., :3, 3] for F in axes], axis=-2)
    Jv = _cross(Z, T[..., None, :3, 3] - origins, xp)
    return T, xp.moveaxis(xp.concat([Jv, Z], axis=-1), -1, -2)


def fk_jacobian(model: RobotModel, q: Any) -> tuple[Any, Any]:
    """Tool pose ``(..., 4, 4)`` and geometric Jacobian ``(..., 6, dof)`` in one pass."""
    q = check_configuration(model, q)
    return _fk_jacobian(model, q)


def jacobian(model: RobotModel, q: Any) -> Any:
    """Geometric Jacobian of the tool frame in the world (base) frame, ``(..., 6, dof)``.

    Rows 0-2 map joint rates to the tool origin's linear velocity (m/s), rows 3-5 to the
    angular velocity (rad/s), both expressed in the world frame (the Robotics Toolbox's
    ``jacob0``).
    """
    return fk_jacobian(model, q)[1]


def link_spheres(model: RobotModel, q: Any) -> tuple[Any, Any]:
    """World centres of the model's collision spheres and their radii.

    Returns
    -------
    centres : array (..., S, 3)
        Metres, on the namespace and device of ``q``.
    radii : array (S,)
        Metres (the same for every configuration).
    """
    q = check_configuration(model, q)
    xp = get_namespace(q)
    F = xp.stack(_frames(model, q), axis=-3)  # (..., L, 4, 4)
    idx = _const(xp, np.zeros(0), q)  # device anchor
    link = xp.asarray(np.array(model.sphere_link), device=device_of(idx))
    Fs = xp.take(F, link, axis=F.ndim - 3)  # (..., S, 4, 4)
    c = _const(xp, model.sphere_centres, q)
    centres = xp.sum(Fs[..., :3, :3] * c[:, None, :], axis=-1) + Fs[..., :3, 3]
    return centres, _const(xp, model.sphere_radii, q)


# --------------------------------------------------------------------------------------------
# Poses
# --------------------------------------------------------------------------------------------


def pose_from_position_quaternion(p: Any, quat: Any) -> Any:
    """Homogeneous transforms ``(..., 4, 4)`` from positions ``(..., 3)`` (m) and unit
    quaternions ``(..., 4)`` in ``(x, y, z, w)`` order (normalised here; ``q`` and ``-q`` give
    the same pose).

    Raises
    ------
    InvalidInput
        ``position``/``orientation`` of the wrong shape, non-finite, or a zero quaternion.
    """
    xp = get_namespace(p, quat)
    p = xp.asarray(p, dtype=xp.float64)
    quat = xp.asarray(quat, dtype=xp.float64, device=device_of(p))
    if p.ndim == 0 or p.shape[-1] != 3:
        raise InvalidInput("position", f"expected (..., 3), got shape {tuple(p.shape)}")
    if quat.ndim == 0 or quat.shape[-1] != 4:
        raise InvalidInput("orientation", f"expected (..., 4) xyzw, got {tuple(quat.shape)}")
    if not bool(xp.all(xp.isfinite(p))):
        raise InvalidInput("position", "contains NaN or inf")
    if not bool(xp.all(xp.isfinite(quat))):
        raise InvalidInput("orientation", "contains NaN or inf")
    n = xp.linalg.vector_norm(quat, axis=-1)
    if bool(xp.any(n < 1e-12)):
        raise InvalidInput("orientation", "zero quaternion")
    quat = quat / n[..., None]
    shape = tuple(np.broadcast_shapes(tuple(p.shape[:-1]), tuple(quat.shape[:-1])))
    p = xp.broadcast_to(p, (*shape, 3))
    quat = xp.broadcast_to(quat, (*shape, 4))
    x, y, z, w = quat[..., 0], quat[..., 1], quat[..., 2], quat[..., 3]
    zero = xp.zeros_like(x)
    one = xp.ones_like(x)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w), p[..., 0]],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w), p[..., 1]],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y), p[..., 2]],
        [zero, zero, zero, one],
    ]
    return _stack44(rows, xp)


def quaternion_from_rotation(R: Any) -> Any:
    """Unit quaternions ``(..., 4)`` (x, y, z, w; w >= 0) of rotation matrices ``(..., 3, 3)``
    (or the rotation block of ``(..., 4, 4)`` poses), by Shepperd's method (the largest of
    the four candidate components is computed first, so it is stable near 180 degrees)."""
    xp = get_namespace(R)
    R = R[..., :3, :3]
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    tr = m00 + m11 + m22
    # four candidates, each exact where its denominator is largest
    s0 = xp.sqrt(xp.clip(1 + tr, 1e-300, None)) * 2  # 4w
    s1 = xp.sqrt(xp.clip(1 + m00 - m11 - m22, 1e-300, None)) * 2  # 4x
    s2 = xp.sqrt(xp.clip(1 - m00 + m11 - m22, 1e-300, None)) * 2  # 4y
    s3 = xp.sqrt(xp.clip(1 - m00 - m11 + m22, 1e-300, None)) * 2  # 4z
    q0 = xp.stack(
        [
            (R[..., 2, 1] - R[..., 1, 2]) / s0,
            (R[..., 0, 2] - R[..., 2, 0]) / s0,
            (R[..., 1, 0] - R[..., 0, 1]) / s0,
            s0 / 4,
        ],
        axis=-1,
    )
    q1 = xp.stack(
        [
            s1 / 4,
            (R[..., 0, 1] + R[..., 1, 0]) / s1,
            (R[..., 0, 2] + R[..., 2, 0]) / s1,
            (R[..., 2, 1] - R[..., 1, 2]) / s1,
        ],
        axis=-1,
    )
    q2 = xp.stack(
        [
            (R[..., 0, 1] + R[..., 1, 0]) / s2,
            s2 / 4,
            (R[..., 1, 2] + R[..., 2, 1]) / s2,
            (R[..., 0, 2] - R[..., 2, 0]) / s2,
        ],
        axis=-1,
    )
    q3 = xp.stack(
        [
            (R[..., 0, 2] + R[..., 2, 0]) / s3,
            (R[..., 1, 2] + R[..., 2, 1]) / s3,
            s3 / 4,
            (R[..., 1, 0] - R[..., 0, 1]) / s3,
        ],
        axis=-1,
    )
    big = xp.argmax(xp.stack([tr, m00, m11, m22], axis=-1), axis=-1)[..., None]
    q = xp.where(big == 0, q0, xp.where(big == 1, q1, xp.where(big == 2, q2, q3)))
    q = q / xp.linalg.vector_norm(q, axis=-1)[..., None]
    return xp.where(q[..., 3:4] < 0, -q, q)


def rotation_error_vector(R_current: Any, R_target: Any) -> Any:
    """Rotation vector (axis times angle, rad, world frame) ``(..., 3)`` that turns
    ``R_current`` into ``R_target`` (``exp([e]x) R_current = R_target``); accepts ``(..., 3, 3)``
    or ``(..., 4, 4)`` arguments. Exact at every angle including pi."""
    xp = get_namespace(R_current, R_target)
    Rc = R_current[..., :3, :3]
    Rt = R_target[..., :3, :3]
    Re = Rt @ xp.moveaxis(Rc, -1, -2)
    li = xp.stack(
        [
            Re[..., 2, 1] - Re[..., 1, 2],
            Re[..., 0, 2] - Re[..., 2, 0],
            Re[..., 1, 0] - Re[..., 0, 1],
        ],
        axis=-1,
    )
    ln = xp.linalg.vector_norm(li, axis=-1)
    tr = Re[..., 0, 0] + Re[..., 1, 1] + Re[..., 2, 2]
    angle = xp.atan2(ln, tr - 1)
    safe = xp.where(ln > 1e-12, ln, xp.ones_like(ln))
    generic = li * (angle / safe)[..., None]
    # near pi: axis from the diagonal of (R + I) / 2 = n n^T, sign fixed by the largest entry
    d = xp.stack([Re[..., 0, 0], Re[..., 1, 1], Re[..., 2, 2]], axis=-1)
    B = (Re + xp.moveaxis(Re, -1, -2)) / 2
    k = xp.argmax(d, axis=-1)[..., None]
    B = B + xp.eye(3, dtype=B.dtype, device=device_of(B))  # (R + I) / 2 = n n^T at pi
    col = xp.where(k == 0, B[..., :, 0], xp.where(k == 1, B[..., :, 1], B[..., :, 2]))
    n = col / xp.clip(xp.linalg.vector_norm(col, axis=-1), 1e-300, None)[..., None]
    return xp.where(((ln > 1e-6) | (tr > 0))[..., None], generic, n * np.pi)


def pose_error(T_current: Any, T_target: Any) -> tuple[Any, Any]:
    """Position error (m) and orientation error (rad, the angle of ``R_target R_current^T``)
    between poses ``(..., 4, 4)``; each ``(...)``."""
    xp = get_namespace(T_current, T_target)
    dp = T_target[..., :3, 3] - T_current[..., :3, 3]
    Re = T_target[..., :3, :3] @ xp.moveaxis(T_current[..., :3, :3], -1, -2)
    li = xp.stack(
        [
            Re[..., 2, 1] - Re[..., 1, 2],
            Re[..., 0, 2] - Re[..., 2, 0],
            Re[..., 1, 0] - Re[..., 0, 1],
        ],
        axis=-1,
    )
    tr = Re[..., 0, 0] + Re[..., 1, 1] + Re[..., 2, 2]
    return xp.linalg.vector_norm(dp, axis=-1), xp.atan2(xp.linalg.vector_norm(li, axis=-1), tr - 1)
