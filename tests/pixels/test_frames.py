"""Frame decoding/encoding: both JSON forms, validation errors naming the field."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.pixels.frames import (
    decode_frame,
    encode_frame,
    from_b64,
    from_pixels,
    validate_frame,
)


def test_flat_pixels_row_major(rng):
    a = rng.integers(0, 65536, (3, 5)).astype(np.uint16)
    f = decode_frame({"width": 5, "height": 3, "pixels": a.ravel().tolist()})
    assert f.dtype == np.uint16 and f.shape == (3, 5)
    np.testing.assert_array_equal(f, a)
    assert f[1, 4] == a.ravel()[1 * 5 + 4]


def test_flat_float_pixels():
    f = from_pixels([0.5, 1.5, 2.0, 3.25], 2, 2)
    assert f.dtype == np.float64
    np.testing.assert_array_equal(f, [[0.5, 1.5], [2.0, 3.25]])


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "float64"])
def test_b64_round_trip(rng, dtype):
    dt = np.dtype(dtype)
    if dt.kind == "u":
        a = rng.integers(0, np.iinfo(dt).max + 1, (7, 11)).astype(dt)
    else:
        a = rng.normal(size=(7, 11)).astype(dt)
    enc = encode_frame(a)
    assert enc["dtype"] == dtype and enc["shape"] == [7, 11]
    b = decode_frame(enc)
    assert b.dtype == dt
    np.testing.assert_array_equal(a, b)


def test_b64_is_little_endian():
    raw = base64.b64encode(bytes([1, 0, 0, 1])).decode()
    np.testing.assert_array_equal(from_b64(raw, "uint16", [1, 2]), [[1, 256]])


def test_stack_round_trip(rng):
    a = rng.integers(0, 4000, (3, 4, 5)).astype(np.uint16)
    np.testing.assert_array_equal(decode_frame(encode_frame(a)), a)


def test_size_mismatch_names_field():
    with pytest.raises(InvalidInput) as e:
        from_pixels([1, 2, 3], 2, 2)
    assert e.value.field == "pixels"
    assert e.value.details == {"expected": 4, "received": 3}
    with pytest.raises(InvalidInput) as e:
        from_b64(base64.b64encode(b"\x00" * 6).decode(), "uint16", [2, 2])
    assert e.value.field == "pixels_b64" and e.value.details["expected"] == 8


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"width": 0, "height": 2, "pixels": []}, "width"),
        ({"width": 2, "height": -1, "pixels": [1, 2]}, "height"),
        ({"width": 2, "height": 1, "pixels": [1.0, float("nan")]}, "pixels"),
        ({"width": 2, "height": 1, "pixels": [1.0, float("inf")]}, "pixels"),
        ({"width": 2, "height": 1, "pixels": [1, 70000]}, "pixels"),
        ({"width": 2, "height": 1, "pixels": [1, -3]}, "pixels"),
        ({"width": 2, "height": 1, "pixels": "ab"}, "pixels"),
        ({"width": 2, "height": 1}, "pixels"),
        ({"pixels_b64": "AAAA", "dtype": "int7", "shape": [1, 1]}, "dtype"),
        ({"pixels_b64": "AAAA", "dtype": "uint8", "shape": [0, 3]}, "shape.0"),
        ({"pixels_b64": "AAAA", "dtype": "uint8", "shape": [3]}, "shape"),
        ({"pixels_b64": "@@not-b64", "dtype": "uint8", "shape": [1, 1]}, "pixels_b64"),
        ({"pixels_b64": "AAAA"}, "dtype"),
    ],
)
def test_invalid_inputs(payload, field):
    with pytest.raises(InvalidInput) as e:
        decode_frame(payload)
    assert e.value.field == field


def test_nan_in_float_b64():
    enc = encode_frame(np.array([[1.0, 2.0]]))
    raw = np.frombuffer(base64.b64decode(enc["pixels_b64"]), "<f8").copy()
    raw[1] = np.nan
    enc["pixels_b64"] = base64.b64encode(raw.tobytes()).decode()
    with pytest.raises(InvalidInput):
        decode_frame(enc)


def test_one_pixel_and_validate():
    assert decode_frame({"width": 1, "height": 1, "pixels": [7]}).shape == (1, 1)
    with pytest.raises(InvalidInput):
        validate_frame(np.zeros((0, 4)))
    with pytest.raises(InvalidInput):
        validate_frame(np.zeros(4))


def test_large_frame_decodes(rng):
    a = rng.integers(0, 65536, (2048, 2048)).astype(np.uint16)
    b = decode_frame(encode_frame(a))
    np.testing.assert_array_equal(a, b)
    c = from_pixels(a.ravel(), 2048, 2048)
    np.testing.assert_array_equal(a, c)
