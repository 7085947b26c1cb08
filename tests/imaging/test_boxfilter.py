"""The compiled box mean against scipy.ndimage.uniform_filter: identical, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from prism_kernels import compiled
from prism_kernels.imaging.boxfilter import box_mean


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (2, 7, 5), (3, 9, 1), (1, 1, 9), (2, 33, 35), (1, 6, 64)]
)
@pytest.mark.parametrize("size", [1, 2, 3, 8, 31, 41])
def test_box_mean_is_scipy_bit_for_bit(rng, shape, size):
    f = rng.normal(1000.0, 5.0, shape)
    ref = ndimage.uniform_filter(f, size=(1, size, size), mode="reflect")
    np.testing.assert_array_equal(box_mean(f, size), ref)


def test_box_mean_other_dtypes_and_without_numba(rng, monkeypatch):
    f = rng.integers(0, 4096, (2, 20, 30)).astype(np.uint16)
    ref = ndimage.uniform_filter(f.astype(np.float64), size=(1, 9, 9), mode="reflect")
    np.testing.assert_array_equal(box_mean(f, 9), ref)
    g = rng.normal(size=(2, 20, 30))
    fast = box_mean(g, 9)
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    np.testing.assert_array_equal(box_mean(g, 9), fast)
