"""Histogram entropy against numpy.histogram + scipy.stats.entropy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy as sp_entropy

from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.entropy import (
    entropy_of_counts,
    histogram_entropy,
    quantize,
    uniform_codes,
)

TOL = 1e-12


@pytest.mark.parametrize("bins", [1, 2, 16, 64, 256, 1000])
def test_uniform_codes_are_numpy_histogram_bins(rng, bins):
    x = np.concatenate([rng.normal(size=20_000), np.linspace(-3, 3, 7919)])  # many exact edges
    ours = np.bincount(uniform_codes(x, bins), minlength=bins)
    np.testing.assert_array_equal(ours, np.histogram(x, bins)[0])


def test_float_entropy_equals_scipy_of_numpy_histogram(rng, to_xp):
    x = rng.gamma(2.0, 3.0, (120, 90))
    for bins in (8, 64, 256):
        ref = sp_entropy(np.histogram(x, bins)[0], base=2)
        assert histogram_entropy(to_xp(x), bins) == pytest.approx(ref, abs=TOL)


def test_integer_levels_are_the_values_present(rng):
    u8 = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    ref = sp_entropy(np.unique(u8, return_counts=True)[1], base=2)
    assert histogram_entropy(u8) == pytest.approx(ref, abs=TOL)
    wide = rng.choice([0, 5000, 40_000, 65_535], (50, 50)).astype(np.uint16)  # > 4096 apart
    codes, n = quantize(wide)
    assert n == 4 and set(np.unique(codes)) == {0, 1, 2, 3}
    ref = sp_entropy(np.unique(wide, return_counts=True)[1], base=2)
    assert histogram_entropy(wide) == pytest.approx(ref, abs=TOL)
    codes, n = quantize(np.array([[3, 4], [4, 9]], dtype=np.int32))
    assert n == 7 and codes.tolist() == [[0, 1], [1, 6]]


def test_closed_forms():
    assert entropy_of_counts([5, 5, 5, 5]) == pytest.approx(2.0, abs=TOL)
    assert entropy_of_counts([1, 0, 3]) == pytest.approx(
        -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)), abs=TOL
    )
    assert entropy_of_counts([]) == 0.0 and entropy_of_counts([0, 0]) == 0.0
    assert histogram_entropy(np.full((7, 3), 4.2)) == 0.0
    assert histogram_entropy(np.array([[1.0]])) == 0.0
    ramp = np.arange(4096.0)  # uniform over 256 bins of 16 values
    assert histogram_entropy(ramp, 256) == pytest.approx(8.0, abs=TOL)


def test_value_range_and_its_end_bins():
    x = np.array([-5.0, 0.0, 0.49, 0.5, 0.99, 1.0, 7.0])
    assert uniform_codes(x, 2, (0.0, 1.0)).tolist() == [0, 0, 0, 1, 1, 1, 1]
    # A range wider than float64 can hold is binned without overflow.
    huge = np.array([-1e308, 0.0, 1e308])
    assert uniform_codes(huge, 4).tolist() == [0, 2, 3]
    assert uniform_codes(np.array([-1e308, 0.5, 1e308]), 4, (0, 1)).tolist() == [0, 2, 3]


def test_refusals():
    with pytest.raises(InvalidInput):
        histogram_entropy(np.zeros((0, 3)))
    with pytest.raises(InvalidInput):
        histogram_entropy(np.array([1.0, np.nan]))
    with pytest.raises(InvalidInput) as e:
        uniform_codes(np.ones(3), 0)
    assert e.value.field == "bins"
    with pytest.raises(InvalidInput) as e:
        uniform_codes(np.ones(3), 4, (2.0, 1.0))
    assert e.value.field == "value_range"
    with pytest.raises(InvalidInput):
        quantize(np.array([["a"]]))
