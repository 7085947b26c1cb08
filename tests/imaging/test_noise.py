"""Robust noise against scipy.stats.median_abs_deviation and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import median_abs_deviation

from prism_kernels.backend import to_numpy
from prism_kernels.imaging.noise import (
    MAD_FACTOR,
    MIN_NOISE_PIXELS,
    difference_sigma,
    frame_noise,
    median,
    robust_sigma,
)


def test_factor_is_the_gaussian_consistency_constant():
    from scipy.special import ndtri

    assert MAD_FACTOR == pytest.approx(1.0 / ndtri(0.75), rel=1e-15)


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_median_and_robust_sigma_against_scipy(rng, to_xp, n):
    x = rng.normal(3.0, 2.0, (4, n))
    np.testing.assert_allclose(to_numpy(median(to_xp(x))), np.median(x, axis=-1), rtol=1e-14)
    ref = median_abs_deviation(x, axis=-1, scale="normal")
    got, med = robust_sigma(to_xp(x), return_median=True)
    np.testing.assert_allclose(to_numpy(got), ref, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(med), np.median(x, axis=-1), rtol=1e-14)


def test_robust_sigma_recovers_sigma_and_ignores_outliers(rng):
    x = rng.normal(0.0, 5.0, 200_000)
    # Standard error of the estimate ~ 1.17 sigma / sqrt(n): 0.26 % here.
    assert float(robust_sigma(x)) == pytest.approx(5.0, rel=0.01)
    y = x.copy()
    y[:40_000] = 1e6  # 20 % wild outliers
    assert 5.0 < float(robust_sigma(y)) < 10.0  # biased up, but on the noise's scale
    assert np.std(y) > 1e5


def test_frame_noise_per_frame(rng):
    r = rng.normal(0.0, 3.0, (5, 40, 50))
    r[:, 10, 10] = 500.0  # a hotspot does not move it
    center, sigma, level = frame_noise(r)
    ref = median_abs_deviation(r.reshape(5, -1), axis=-1, scale="normal")
    np.testing.assert_allclose(sigma, ref, rtol=1e-12)  # 2000 pixels: no subsampling
    np.testing.assert_allclose(center, np.median(r.reshape(5, -1), axis=-1))
    assert np.all(level == 0.0)


def test_frame_noise_subsamples_large_frames(rng):
    r = rng.normal(0.0, 2.0, (2, 240, 320))
    _, sigma, _ = frame_noise(r)
    ref = median_abs_deviation(r[:, ::2, ::2].reshape(2, -1), axis=-1, scale="normal")
    np.testing.assert_allclose(sigma, ref, rtol=1e-12)
    assert np.all(np.abs(sigma - 2.0) < 0.05)


def test_frame_noise_fallback_floor_and_small_frames():
    q = np.zeros((1, 10, 10))
    q[0, :2, :] = 4.0  # over half the residuals equal: the robust sigma is 0
    _, sigma, _ = frame_noise(q)
    assert sigma[0] == pytest.approx(np.std(q))
    flat = np.zeros((1, 10, 10))
    model = np.full((1, 10, 10), 5000.0)
    _, sigma, level = frame_noise(flat, model)
    assert level[0] == 5000.0 and sigma[0] == pytest.approx(5000.0 * 1e-6)
    _, sigma, _ = frame_noise(np.ones((1, 2, 4)))
    assert 2 * 4 < MIN_NOISE_PIXELS and math.isnan(sigma[0])
    _, sigma, _ = frame_noise(np.ones((1, 1)))
    assert math.isnan(sigma[0])


def test_difference_sigma_ignores_a_smooth_background(rng, to_xp):
    yy, xx = np.mgrid[0:200, 0:240]
    f = 1000.0 + 3.0 * xx + 0.01 * (yy - 100) ** 2 + rng.normal(0.0, 8.0, xx.shape)
    got = float(to_numpy(difference_sigma(to_xp(f))))
    ref = median_abs_deviation(np.diff(f, axis=1).ravel(), scale="normal") / math.sqrt(2)
    assert got == pytest.approx(ref, rel=1e-12)
    assert got == pytest.approx(8.0, rel=0.03)
    stack = to_numpy(difference_sigma(np.stack([f, 2 * f])))
    assert stack.shape == (2,) and stack[1] == pytest.approx(2 * stack[0], rel=1e-12)
    assert float(difference_sigma(np.ones((1, 1)))) == 0.0
    col = np.arange(10.0)[:, None] * 0 + rng.normal(0, 1.0, (10, 1))
    assert float(difference_sigma(col)) > 0  # one column: vertical differences
