"""Background estimators against scipy.ndimage and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.background import Background, estimate_background, fit_background


@pytest.mark.parametrize(
    "method, reference",
    [
        ("mean", ndimage.uniform_filter),
        ("median", ndimage.median_filter),
        ("opening", ndimage.grey_opening),
    ],
)
def test_window_methods_equal_scipy(rng, method, reference):
    f = rng.normal(100.0, 5.0, (37, 45))
    got = estimate_background(f, method, 9)
    np.testing.assert_allclose(got, reference(f, size=9, mode="reflect"), rtol=1e-12, atol=1e-12)
    # A stack is filtered frame by frame: frames never mix.
    stack = np.stack([f, f[::-1], 2 * f])
    got = estimate_background(stack, method, 9)
    for k in range(3):
        ref = reference(stack[k], size=9, mode="reflect")
        np.testing.assert_allclose(got[k], ref, rtol=1e-12, atol=1e-12)


def test_polynomial_recovers_a_surface_exactly(to_xp):
    yy, xx = np.mgrid[0:30, 0:40]
    u, v = 2 * xx / 39 - 1, 2 * yy / 29 - 1
    plane = 500.0 + 20.0 * u - 7.0 * v
    quad = plane + 3.0 * u * u - 2.0 * u * v + 5.0 * v * v
    for order, truth in ((1, plane), (2, quad)):
        got = to_numpy(estimate_background(to_xp(truth), "polynomial", order=order))
        # Exact but for the fit's ridge (1e-9 x pixels on the normal equations' diagonal).
        np.testing.assert_allclose(got, truth, rtol=1e-8, atol=0)


def test_polynomial_ignores_a_hotspot(rng, to_xp):
    yy, xx = np.mgrid[0:40, 0:50]
    truth = 500.0 + 2.0 * xx - 1.5 * yy
    img = truth + rng.normal(0, 3.0, truth.shape)
    img[10:13, 20:23] += 400.0
    bg = fit_background(to_xp(img), "polynomial")
    assert isinstance(bg, Background)
    assert np.max(np.abs(to_numpy(bg.model)[0] - truth)) < 1.5
    assert bg.sigma[0] == pytest.approx(3.0, rel=0.08)
    assert abs(bg.center[0]) < 0.3 and bg.level[0] == pytest.approx(np.median(truth), rel=1e-3)
    ref = fit_background(img, "polynomial")
    np.testing.assert_allclose(to_numpy(bg.model), to_numpy(ref.model), rtol=1e-9)


def test_sigma_clip_stays_below_bright_objects(rng):
    f = np.full((64, 64), 100.0) + rng.normal(0, 2.0, (64, 64))
    f[20:30, 20:30] += 1000.0  # a bright block pulls a plain mean up
    mean = estimate_background(f, "mean", 31)
    clipped = estimate_background(f, "sigma_clip", 31, iterations=3)
    far = (slice(15, 35), slice(35, 50))  # beside the block
    assert np.median(np.abs(clipped[far] - 100.0)) < 0.25 * np.median(np.abs(mean[far] - 100.0))


def test_tiny_frames_and_shapes():
    # Two by two: the polynomial drops to a constant (3 pixels per coefficient).
    got = estimate_background(np.array([[1.0, 2.0], [3.0, 4.0]]), "polynomial")
    np.testing.assert_allclose(got, np.full((2, 2), 2.5))
    one = fit_background(np.array([[7.0]]), "mean")
    assert one.model.shape == (1, 1, 1) and np.isnan(one.sigma[0])
    assert estimate_background(np.ones((2, 5, 6)), "median", 3).shape == (2, 5, 6)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"method": "mode"}, "method"),
        ({"size": 0}, "size"),
        ({"size": 2.5}, "size"),
        ({"method": "polynomial", "order": 3}, "order"),
        ({"clip_sigma": 0.0}, "clip_sigma"),
        ({"iterations": -1}, "iterations"),
    ],
)
def test_invalid_options(kwargs, field):
    with pytest.raises(InvalidInput) as e:
        estimate_background(np.ones((8, 8)), **kwargs)
    assert e.value.field == field


def test_invalid_frames():
    with pytest.raises(InvalidInput) as e:
        estimate_background(np.array([[1.0, np.inf]]), field="pixels")
    assert e.value.field == "pixels"
    with pytest.raises(InvalidInput):
        fit_background(np.zeros((0, 4)))
