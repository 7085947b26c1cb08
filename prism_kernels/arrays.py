"""Array helpers shared by the kernels of every domain: conversion onto a backend and device,
input checks that name the field, and small batched linear algebra.

Everything here uses only array-API calls on the namespace of its inputs, so it runs on
NumPy, PyTorch and CuPy alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import device as _device

from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput


def device_of(x: Any) -> Any:
    """Device of an array (``"cpu"`` for NumPy)."""
    return _device(x)


def as_float(x: Any, xp: Any, like: Any = None) -> Any:
    """``x`` (array, list or scalar) as a float64 array of ``xp``, on the device of ``like``."""
    if not hasattr(x, "shape") or isinstance(x, np.generic):
        x = np.asarray(x, dtype=np.float64)
    if like is not None:
        return xp.asarray(x, dtype=xp.float64, device=device_of(like))
    return xp.asarray(x, dtype=xp.float64)


def mT(a: Any) -> Any:
    """Transpose of the last two axes."""
    xp = get_namespace(a)
    return (
        xp.matrix_transpose(a) if hasattr(xp, "matrix_transpose") else xp.linalg.matrix_transpose(a)
    )


def mv(a: Any, v: Any) -> Any:
    """Batched matrix-vector product ``a @ v`` with broadcasting: (..., r, c) x (..., c) -> (..., r)."""
    xp = get_namespace(a, v)
    if a.ndim == 2:  # shared matrix: one plain matrix product over the whole batch
        return xp.matmul(v, mT(a))
    return xp.matmul(a, v[..., None])[..., 0]


def symmetrize(a: Any) -> Any:
    """``(a + a^T) / 2`` over the last two axes."""
    return 0.5 * (a + mT(a))


def check_finite(a: Any, field: str) -> None:
    """Raise :class:`InvalidInput` naming ``field`` when ``a`` holds NaN or inf."""
    xp = get_namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        raise InvalidInput(field, "contains NaN or inf")


def check_shape(a: Any, field: str, tail: tuple[int, ...], min_ndim: int | None = None) -> None:
    """Raise :class:`InvalidInput` unless ``a.shape`` ends with ``tail``."""
    shape = tuple(a.shape)
    k = len(tail)
    if len(shape) < (min_ndim if min_ndim is not None else k) or shape[len(shape) - k :] != tail:
        raise InvalidInput(
            field,
            f"expected shape (..., {', '.join(map(str, tail))}), got {shape}",
            expected=list(tail),
            received=list(shape),
        )


def eye(n: int, xp: Any, like: Any) -> Any:
    """Identity (n, n) of ``xp`` on the device of ``like``."""
    return xp.eye(n, dtype=xp.float64, device=device_of(like))


def inv_det_small(S: Any) -> tuple[Any, Any]:
    """Inverse and determinant of a batch of small matrices (..., m, m).

    For m <= 3 this is the closed-form adjugate formula evaluated elementwise (one pass over
    the batch, no per-matrix LAPACK call); for larger m it falls back to ``xp.linalg.inv`` and
    ``xp.linalg.det``. Intended for innovation covariances, which are symmetric positive
    definite and well conditioned.
    """
    xp = get_namespace(S)
    m = S.shape[-1]
    if m == 1:
        d = S[..., 0, 0]
        return (1.0 / S), d
    if m == 2:
        a, b, c, e = S[..., 0, 0], S[..., 0, 1], S[..., 1, 0], S[..., 1, 1]
        det = a * e - b * c
        adj = xp.stack([xp.stack([e, -b], axis=-1), xp.stack([-c, a], axis=-1)], axis=-2)
        return adj / det[..., None, None], det
    if m == 3:
        a = [[S[..., i, j] for j in range(3)] for i in range(3)]
        c00 = a[1][1] * a[2][2] - a[1][2] * a[2][1]
        c01 = a[1][2] * a[2][0] - a[1][0] * a[2][2]
        c02 = a[1][0] * a[2][1] - a[1][1] * a[2][0]
        c10 = a[0][2] * a[2][1] - a[0][1] * a[2][2]
        c11 = a[0][0] * a[2][2] - a[0][2] * a[2][0]
        c12 = a[0][1] * a[2][0] - a[0][0] * a[2][1]
        c20 = a[0][1] * a[1][2] - a[0][2] * a[1][1]
        c21 = a[0][2] * a[1][0] - a[0][0] * a[1][2]
        c22 = a[0][0] * a[1][1] - a[0][1] * a[1][0]
        det = a[0][0] * c00 + a[0][1] * c01 + a[0][2] * c02
        # inverse = adjugate / det, adjugate = transpose of the cofactor matrix
        adj = xp.stack(
            [
                xp.stack([c00, c10, c20], axis=-1),
                xp.stack([c01, c11, c21], axis=-1),
                xp.stack([c02, c12, c22], axis=-1),
            ],
            axis=-2,
        )
        return adj / det[..., None, None], det
    return xp.linalg.inv(S), xp.linalg.det(S)


def matmul(a: Any, b: Any) -> Any:
    """Batched ``a @ b`` with broadcasting (the backend's ``matmul``).

    Stacks of small matrices are multiplied by the backend's batched loop, which on NumPy
    does not start BLAS threads (a shared matrix reshaped into one tall product was slower
    on a loaded machine, so it is not used).
    """
    return get_namespace(a, b).matmul(a, b)


def selector_indices(H: Any) -> list[int] | None:
    """Column indices when the 2-D matrix ``H`` only selects state components (each row one
    1, zeros elsewhere), else ``None``. Lets the Kalman update use indexing instead of
    matrix products for the common position-measurement case."""
    if H.ndim != 2:
        return None
    h = np.asarray(to_numpy(H))
    if not np.all((h == 0) | (h == 1)) or not np.all(h.sum(axis=1) == 1):
        return None
    idx = [int(i) for i in np.argmax(h, axis=1)]
    return idx if len(set(idx)) == len(idx) else None
