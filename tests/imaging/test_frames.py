"""Frame validation (the one rule): shapes, dtypes, non-finite values, flat frames."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.frames import as_frames, check_frames


def test_check_frames_keeps_the_array_and_its_dtype(rng):
    a = rng.integers(0, 65535, (7, 9)).astype(np.uint16)
    assert check_frames(a) is a
    s = rng.random((3, 4, 5)).astype(np.float32)
    assert check_frames(s) is s
    b = check_frames(np.eye(3, dtype=bool))
    assert b.dtype == np.uint8 and np.array_equal(b, np.eye(3))
    assert check_frames([[1, 2], [3, 4]]).shape == (2, 2)  # a list is read as NumPy


@pytest.mark.parametrize(
    "frame, stack, message",
    [
        (np.zeros(5), True, "shape (5,)"),
        (np.zeros((2, 2, 2, 2)), True, "shape (2, 2, 2, 2)"),
        (np.zeros((2, 3, 4)), False, "(H, W) frame"),
        (np.zeros((0, 5)), True, "empty"),
        (np.zeros((3, 0, 5)), True, "empty"),
        (np.zeros((2, 2), dtype=complex), True, "dtype"),
        (np.array([["a", "b"]]), True, "dtype"),
        (np.array([[object(), 1]], dtype=object), True, "dtype"),
        ([[1, 2], [3]], True, "array of numbers"),
        (None, True, "no frame"),
    ],
)
def test_check_frames_refuses(frame, stack, message):
    with pytest.raises(InvalidInput) as e:
        check_frames(frame, "pixels", stack=stack)
    assert e.value.field == "pixels" and message in e.value.message


def test_non_finite_values_are_counted():
    a = np.ones((4, 4))
    a[0, 0], a[1, 2], a[3, 3] = np.nan, np.inf, -np.inf
    with pytest.raises(InvalidInput) as e:
        check_frames(a)
    assert e.value.details["count"] == 3 and "3 NaN" in e.value.message
    # Integers cannot hold NaN: no check needed, none made.
    assert check_frames(np.full((2, 2), 2**63 - 1, dtype=np.int64)).dtype == np.int64


def test_as_frames_float64_stack(rng, to_xp):
    f = rng.integers(0, 4096, (6, 8)).astype(np.uint16)
    x = as_frames(to_xp(f))
    assert tuple(x.shape) == (1, 6, 8)
    np.testing.assert_array_equal(to_numpy(x)[0], f.astype(np.float64))
    assert to_numpy(x).dtype == np.float64
    s = rng.random((3, 6, 8))
    assert tuple(as_frames(to_xp(s)).shape) == (3, 6, 8)
    one = as_frames([[5.0]])
    assert one.shape == (1, 1, 1) and float(one[0, 0, 0]) == 5.0


def test_flat_frame_with_width_and_height():
    x = as_frames(list(range(12)), width=4, height=3)
    np.testing.assert_array_equal(x[0], np.arange(12.0).reshape(3, 4))
    with pytest.raises(InvalidInput) as e:
        as_frames(list(range(10)), "pixels", width=4, height=3)
    assert e.value.field == "pixels"
    assert e.value.details == {"expected": 12, "received": 10}
    for w, h in ((0, 3), (None, 3), (2.5, 2), (True, 4)):
        with pytest.raises(InvalidInput) as e:
            as_frames([1.0] * 6, width=w, height=h)
        assert e.value.field in ("width", "height")


def test_a_huge_declared_size_is_refused_without_allocating():
    with pytest.raises(InvalidInput) as e:
        as_frames([1.0, 2.0, 3.0, 4.0], width=10**9, height=10**9)
    assert e.value.details["expected"] == 10**18


def test_as_frames_refuses_what_check_frames_refuses():
    with pytest.raises(InvalidInput) as e:
        as_frames(np.array([[1.0, np.nan]]), "frame")
    assert e.value.field == "frame"
    with pytest.raises(InvalidInput):
        as_frames([])
