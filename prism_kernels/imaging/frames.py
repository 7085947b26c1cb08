"""Frame validation: the one rule every imaging kernel applies to its input.

A *frame* is a 2-D array ``(H, W)`` of intensities, row-major (``frame[y, x]``: ``x`` the
column, ``y`` the row, pixel centres at integers); a *stack* is ``(B, H, W)``, ``B`` frames of
one shape. A valid frame or stack is non-empty, numeric (booleans count as 0/1, complex and
object arrays do not) and, when floating, finite.

Both functions work on any array library the input comes from (NumPy, PyTorch, CuPy) through
array-API calls; Python lists and tuples are read as NumPy arrays. Every refusal is an
:class:`~prism_kernels.errors.InvalidInput` naming the caller's ``field``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput


def _array(frames: Any, field: str) -> Any:
    """``frames`` as an array (lists and scalars through NumPy)."""
    if frames is None:
        raise InvalidInput(field, "no frame given")
    if hasattr(frames, "shape") and hasattr(frames, "dtype") and not isinstance(frames, np.generic):
        return frames
    try:
        return np.asarray(frames)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be an array of numbers ({exc})") from exc


def check_frames(
    frames: Any, field: str = "frame", *, stack: bool = True, finite: bool = True
) -> Any:
    """Validate one frame ``(H, W)`` or, with ``stack``, also a stack ``(B, H, W)``.

    Parameters
    ----------
    frames : array or nested sequence
        Intensities (counts, any unit), integer or floating, on any array library.
    field : str
        The name a refusal carries (``"frame"``, ``"pixels"``...).
    stack : bool
        Accept ``(B, H, W)`` as well as ``(H, W)``.
    finite : bool
        Also refuse NaN/inf (one pass over the data). A kernel that reads every value anyway
        may skip it and call this function again, with ``finite=True``, when it meets one.

    Returns
    -------
    array
        The input itself, its dtype kept (a boolean array becomes ``uint8``; a list becomes a
        NumPy array).

    Raises
    ------
    InvalidInput
        Wrong rank, a zero-length axis, a non-numeric dtype, or NaN/inf in a floating frame
        (the message counts the bad values).
    """
    x = _array(frames, field)
    ranks = (2, 3) if stack else (2,)
    shape = tuple(int(s) for s in x.shape)
    if len(shape) not in ranks:
        want = "(H, W) frame or a (B, H, W) stack" if stack else "(H, W) frame"
        raise InvalidInput(field, f"expected a {want}, got shape {shape}", received=list(shape))
    if 0 in shape:
        raise InvalidInput(field, f"empty frame of shape {shape}", received=list(shape))
    xp = get_namespace(x)
    if xp.isdtype(x.dtype, "bool"):
        return xp.astype(x, xp.uint8)
    if xp.isdtype(x.dtype, "integral"):
        return x
    if not xp.isdtype(x.dtype, "real floating"):
        raise InvalidInput(field, f"unsupported dtype {x.dtype}; give integers or floats")
    if not finite:
        return x
    ok = xp.isfinite(x)
    if not bool(xp.all(ok)):
        bad = int(xp.sum(xp.astype(~ok, xp.int64)))
        raise InvalidInput(field, f"contains {bad} NaN or infinite value(s)", count=bad)
    return x


def as_frames(
    frames: Any,
    field: str = "frame",
    *,
    width: int | None = None,
    height: int | None = None,
    finite: bool = True,
) -> Any:
    """A validated float64 stack ``(B, H, W)`` on the input's array library.

    Parameters
    ----------
    frames : array or sequence
        ``(H, W)``, ``(B, H, W)``, or with ``width`` and ``height`` a flat row-major
        sequence of ``width * height`` values (one frame).
    field : str
        The name a refusal carries.
    width, height : int, optional
        Shape of a flat frame (pixels); both or neither.
    finite : bool
        As :func:`check_frames`.

    Returns
    -------
    array, float64, (B, H, W)
        A single frame gets a leading axis of 1.

    Raises
    ------
    InvalidInput
        As :func:`check_frames`; also a ``width``/``height`` that is not a positive integer
        (field ``width``) or a value count that differs from ``width * height``.
    """
    x = _array(frames, field)
    if width is not None or height is not None:
        w, h = _positive(width, "width"), _positive(height, "height")
        n = 1
        for s in x.shape:
            n *= int(s)
        if n != w * h:
            raise InvalidInput(
                field,
                f"{n} pixel values do not match width*height = {w}*{h} = {w * h}",
                expected=w * h,
                received=n,
            )
        x = get_namespace(x).reshape(x, (h, w))
    x = check_frames(x, field, finite=finite)
    xp = get_namespace(x)
    if x.ndim == 2:
        x = x[None, ...]
    return x if x.dtype == xp.float64 else xp.astype(x, xp.float64)


def _positive(v: Any, field: str) -> int:
    if isinstance(v, bool) or v is None:
        raise InvalidInput(field, "width and height must both be positive integers")
    try:
        i = int(v)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"must be a positive integer, got {v!r}") from exc
    if i != v or i < 1:
        raise InvalidInput(field, f"must be a positive integer, got {v!r}")
    return i
