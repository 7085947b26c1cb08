"""Local entropy against skimage.filters.rank.entropy (bits, base 2), exact to 1e-9."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage.filters.rank import entropy as sk_entropy
from skimage.morphology import disk as sk_disk

from prism_kernels.errors import InvalidInput
from prism_kernels.pixels import entropy as entropy_module
from prism_kernels.pixels.entropy import (
    _sliding_entropy_numpy,
    disk,
    engine,
    global_entropy,
    high_entropy_regions,
    local_entropy,
    quantize,
)

TOL = 1e-9


def _sk(img, fp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about many bins for uint16
        return sk_entropy(img, fp.astype(np.uint8))


@pytest.mark.parametrize("r", [0, 1, 3, 7])
def test_disk_matches_skimage_footprint(r):
    np.testing.assert_array_equal(disk(r), sk_disk(r).astype(bool))


@pytest.mark.parametrize("shape", [(37, 53), (64, 48), (5, 90), (90, 4)])
@pytest.mark.parametrize("r", [1, 3, 7])
def test_u8_disk(rng, shape, r):
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_allclose(local_entropy(img, "disk", r), _sk(img, disk(r)), atol=TOL, rtol=0)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 9])
def test_u8_square(rng, size):
    img = rng.integers(0, 256, (41, 33), dtype=np.uint8)
    ours = local_entropy(img, "square", size)
    np.testing.assert_allclose(ours, _sk(img, np.ones((size, size))), atol=TOL, rtol=0)


def test_u8_few_levels_and_arbitrary_footprint(rng):
    img = rng.integers(0, 3, (50, 40), dtype=np.uint8)
    fp = rng.random((5, 6)) > 0.4
    fp[2, 3] = True
    np.testing.assert_allclose(local_entropy(img, fp), _sk(img, fp), atol=TOL, rtol=0)


@pytest.mark.parametrize("hi", [12, 4096, 65536])
@pytest.mark.parametrize("window", [("disk", 3), ("square", 5)])
def test_u16(rng, hi, window):
    img = rng.integers(0, hi, (40, 36)).astype(np.uint16)
    fp = disk(window[1]) if window[0] == "disk" else np.ones((window[1],) * 2, bool)
    np.testing.assert_allclose(local_entropy(img, *window), _sk(img, fp), atol=TOL, rtol=0)


def test_footprints_without_centre_and_with_gaps(rng):
    img = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    fps = [
        np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]], bool),  # no in-frame pixel at a corner
        np.array([[0, 0, 0, 0, 1]], bool),
        np.array([[1, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 1, 0, 1]], bool),  # several runs
    ]
    for fp in fps:
        np.testing.assert_allclose(local_entropy(img, fp), _sk(img, fp), atol=TOL, rtol=0)


def test_long_rows_threaded(rng):
    # 144k pixels: the compiled path splits the rows over threads; 6000 column steps per row
    img = rng.integers(0, 256, (24, 6000), dtype=np.uint8)
    np.testing.assert_allclose(local_entropy(img, "disk", 7), _sk(img, disk(7)), atol=TOL, rtol=0)


def test_engine_is_compiled_when_numba_is_installed():
    try:
        import numba  # noqa: F401
    except ImportError:
        assert engine() == "numpy"
    else:
        assert engine() == "numba"


@pytest.mark.parametrize(
    "dtype_hi, fp",
    [
        (256, disk(3)),
        (256, np.ones((4, 4), bool)),
        (3, np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 0, 0, 1]], bool)),
        (65536, disk(2)),
    ],
)
def test_numpy_fallback_matches_skimage(rng, monkeypatch, dtype_hi, fp):
    dt = np.uint8 if dtype_hi <= 256 else np.uint16
    img = rng.integers(0, dtype_hi, (37, 29)).astype(dt)
    codes, n = quantize(img)
    ref = _sk(img, fp)
    np.testing.assert_allclose(_sliding_entropy_numpy(codes, n, fp), ref, atol=TOL, rtol=0)
    monkeypatch.setattr(entropy_module, "_COMPILED", [None])  # as without numba
    assert engine() == "numpy"
    np.testing.assert_allclose(local_entropy(img, fp), ref, atol=TOL, rtol=0)


def test_constant_frame_and_one_pixel():
    assert np.all(local_entropy(np.full((9, 7), 5, np.uint8), "disk", 2) == 0.0)
    assert local_entropy(np.zeros((1, 1), np.uint16), "disk", 3).shape == (1, 1)
    assert local_entropy(np.zeros((1, 1), np.uint16), "disk", 3)[0, 0] == 0.0


def test_float_binning_and_stack(rng):
    f = rng.normal(size=(30, 20))
    codes, n = quantize(f, bins=16)
    assert n == 16 and codes.min() == 0 and codes.max() == 15
    # equal-width bins over min..max, the maximum in the last bin, as numpy.histogram
    counts, _ = np.histogram(f, bins=16, range=(f.min(), f.max()))
    np.testing.assert_array_equal(np.bincount(codes.ravel(), minlength=16), counts)
    ours = local_entropy(f, "disk", 2, bins=16)
    np.testing.assert_allclose(ours, _sk(codes.astype(np.uint8), disk(2)), atol=TOL, rtol=0)
    stack = np.stack([f, f * 2 + 1])  # same codes after min-max binning
    out = local_entropy(stack, "disk", 2, bins=16)
    np.testing.assert_allclose(out[0], ours, atol=TOL)
    np.testing.assert_allclose(out[1], ours, atol=TOL)


def test_torch_input_same_as_numpy(rng):
    torch = pytest.importorskip("torch")
    img = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    out = local_entropy(torch.from_numpy(img), "disk", 2)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), local_entropy(img, "disk", 2), atol=0)


def test_global_entropy_closed_form():
    img = np.repeat(np.arange(4, dtype=np.uint8), 25).reshape(10, 10)
    assert global_entropy(img) == pytest.approx(2.0, abs=1e-12)
    assert global_entropy(np.zeros((3, 3), np.uint8)) == 0.0


def test_high_entropy_regions(rng):
    img = np.zeros((60, 60), np.uint8)
    img[10:25, 30:50] = rng.integers(0, 256, (15, 20))
    e = local_entropy(img, "square", 3)
    regions = high_entropy_regions(e, percentile=90)
    assert regions and regions[0]["entropy"] == regions[0]["mean_entropy"]
    r = regions[0]
    assert 28 <= r["x"] <= 31 and 8 <= r["y"] <= 11 and r["width"] >= 18 and r["height"] >= 13


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"frame": np.zeros((0, 3), np.uint8)}, "frame"),
        ({"frame": np.zeros(5, np.uint8)}, "frame"),
        ({"frame": np.array([[1.0, np.nan]])}, "frame"),
        ({"frame": np.zeros((3, 3), np.uint8), "window": "hexagon"}, "window"),
        ({"frame": np.zeros((3, 3), np.uint8), "size": -1}, "radius"),
        ({"frame": np.zeros((3, 3), np.uint8), "window": np.zeros((3, 3))}, "window"),
    ],
)
def test_invalid(kwargs, field):
    with pytest.raises(InvalidInput) as e:
        local_entropy(**kwargs)
    assert e.value.field == field
