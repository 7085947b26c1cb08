"""Frames from JSON: the original flat ``pixels`` list and a compact base64 form.

Two request forms decode to a 2-D NumPy array (row-major, ``frame[y, x]``):

* original: ``{"width": W, "height": H, "pixels": [..W*H numbers..]}`` (the PRISM-AI
  ``u16`` list; integers in ``[0, 65535]`` become ``uint16``, other numbers ``float64``);
* compact: ``{"pixels_b64": "...", "dtype": "uint16", "shape": [H, W]}``: base64 of the raw
  little-endian bytes, dtype one of :data:`DTYPES`. ``shape`` may also be ``(B, H, W)`` for
  a stack.

Every failure is an :class:`~prism_kernels.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.frames import check_frames

#: dtypes of the compact form.
DTYPES = ("uint8", "uint16", "float32", "float64")


def _dims(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidInput(field, f"must be an integer, got {value!r}")
    if value <= 0:
        raise InvalidInput(field, f"must be a positive integer, got {value}")
    return int(value)


def validate_frame(frame: Any, field: str = "frame", allow_stack: bool = False) -> np.ndarray:
    """A frame (or, with ``allow_stack``, a stack) already in memory, checked, as a NumPy array.

    :func:`prism_kernels.imaging.frames.check_frames` on the host copy: a wrong rank, zero
    size, a non-numeric dtype or NaN/inf in a float frame raise :class:`InvalidInput`
    naming ``field``; the dtype is kept (booleans become ``uint8``).
    """
    return np.asarray(check_frames(to_numpy(frame), field, stack=allow_stack))


def from_pixels(pixels: Any, width: Any, height: Any, dtype: str | None = None) -> np.ndarray:
    """Frame from the original form: a flat row-major ``pixels`` list, ``width``, ``height``.

    Parameters
    ----------
    pixels : sequence of numbers (or a 1-D array)
    width, height : int
        Positive; ``len(pixels)`` must equal ``width * height``.
    dtype : str, optional
        Force one of :data:`DTYPES`; by default integers in ``[0, 65535]`` give ``uint16``
        and anything else ``float64``.

    Returns
    -------
    ndarray, (height, width)
    """
    w = _dims(width, "width")
    h = _dims(height, "height")
    if pixels is None or isinstance(pixels, (str, bytes, Mapping)):
        raise InvalidInput("pixels", "must be a list of numbers")
    try:
        a = np.asarray(pixels)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("pixels", f"must be a flat list of numbers ({exc})") from exc
    if a.ndim != 1:
        raise InvalidInput("pixels", f"must be a flat list, got {a.ndim} dimensions")
    if a.size != w * h:
        raise InvalidInput(
            "pixels",
            f"Pixel data size mismatch: expected {w * h} (width*height = {w}*{h}), got {a.size}",
            expected=w * h,
            received=int(a.size),
        )
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        raise InvalidInput("pixels", f"must hold numbers, got dtype {a.dtype}")
    if dtype is not None:
        a = _cast(a, _dtype(dtype), "pixels")
    elif np.issubdtype(a.dtype, np.integer):
        a = _cast(a, np.dtype(np.uint16), "pixels")
    else:
        if not np.isfinite(a).all():
            raise InvalidInput("pixels", "contains NaN or infinite values")
        a = a.astype(np.float64)
    return validate_frame(a.reshape(h, w), "pixels")


def _dtype(name: Any) -> np.dtype:
    if str(name).lower() not in DTYPES:
        raise InvalidInput("dtype", f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return np.dtype(str(name).lower())


def _cast(a: np.ndarray, dt: np.dtype, field: str) -> np.ndarray:
    if np.issubdtype(dt, np.integer):
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all() or not np.all(a == np.round(a)):
                raise InvalidInput(field, f"{dt} frames need whole numbers")
        info = np.iinfo(dt)
        lo, hi = a.min(), a.max()
        if lo < info.min or hi > info.max:
            raise InvalidInput(
                field, f"values must lie in [{info.min}, {info.max}] for {dt}, got [{lo}, {hi}]"
            )
    return a.astype(dt)


def from_b64(pixels_b64: Any, dtype: Any, shape: Any) -> np.ndarray:
    """Frame (or stack) from the compact form: base64 little-endian bytes, dtype, shape."""
    dt = _dtype(dtype)
    if (
        not isinstance(shape, Sequence)
        or isinstance(shape, (str, bytes))
        or len(shape) not in (2, 3)
    ):
        raise InvalidInput(
            "shape", f"must be [height, width] or [batch, height, width], got {shape!r}"
        )
    dims = tuple(_dims(s, f"shape.{i}") for i, s in enumerate(shape))
    if not isinstance(pixels_b64, (str, bytes)):
        raise InvalidInput("pixels_b64", "must be a base64 string")
    try:
        raw = base64.b64decode(pixels_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("pixels_b64", f"is not valid base64 ({exc})") from exc
    n = int(np.prod(dims))
    if len(raw) != n * dt.itemsize:
        raise InvalidInput(
            "pixels_b64",
            f"size mismatch: shape {list(dims)} of {dt} needs {n * dt.itemsize} bytes, got {len(raw)}",
            expected=n * dt.itemsize,
            received=len(raw),
        )
    a = np.frombuffer(raw, dtype=dt.newbyteorder("<")).astype(dt, copy=True).reshape(dims)
    return validate_frame(a, "pixels_b64", allow_stack=True)


def encode_frame(frame: Any) -> dict[str, Any]:
    """The compact JSON form of a frame or stack: ``{pixels_b64, dtype, shape}``."""
    a = validate_frame(frame, allow_stack=True)
    if a.dtype.name not in DTYPES:
        a = a.astype(np.float64 if np.issubdtype(a.dtype, np.floating) else np.uint16)
    le = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return {
        "pixels_b64": base64.b64encode(le.tobytes()).decode("ascii"),
        "dtype": a.dtype.name,
        "shape": [int(s) for s in a.shape],
    }


def decode_frame(payload: Mapping[str, Any]) -> np.ndarray:
    """Frame from either JSON form (compact when ``pixels_b64`` is present)."""
    if not isinstance(payload, Mapping):
        raise InvalidInput("frame", "must be an object")
    if payload.get("pixels_b64") is not None:
        for key in ("dtype", "shape"):
            if key not in payload:
                raise InvalidInput(key, "is required with pixels_b64")
        return from_b64(payload["pixels_b64"], payload["dtype"], payload["shape"])
    for key in ("pixels", "width", "height"):
        if key not in payload:
            raise InvalidInput(key, "is required (or send pixels_b64, dtype and shape)")
    return from_pixels(payload["pixels"], payload["width"], payload["height"], payload.get("dtype"))
