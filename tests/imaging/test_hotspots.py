"""The hotspot detector against scipy.ndimage / scikit-image and closed forms."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from prism_kernels import compiled
from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging import fused
from prism_kernels.imaging.background import fit_background
from prism_kernels.imaging.hotspots import (
    Hotspots,
    detect,
    label_stack,
    measure_components,
    psf_width,
    windowed_centroids,
)


def _gaussians(shape, spots, psf=1.5):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.zeros(shape)
    for x0, y0, peak in spots:
        img += peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * psf**2))
    return img


def test_label_stack_equals_scipy_per_frame_and_never_joins_frames(rng):
    m = rng.random((3, 30, 40)) > 0.7
    lab, n = label_stack(m, 8)
    total = 0
    for b in range(3):
        ref, k = ndimage.label(m[b], structure=np.ones((3, 3)))
        total += k
        # The same partition: a one-to-one map between our labels and scipy's.
        pairs = {(int(a), int(r)) for a, r in zip(lab[b][m[b]], ref[m[b]], strict=True)}
        assert len(pairs) == k == len({a for a, _ in pairs})
    assert n == total
    diag = np.zeros((1, 3, 3), bool)
    diag[0, 0, 0] = diag[0, 1, 1] = True
    assert label_stack(diag, 8)[1] == 1 and label_stack(diag, 4)[1] == 2
    both = np.zeros((2, 3, 3), bool)
    both[:, 1, 1] = True
    assert label_stack(both)[1] == 2
    with pytest.raises(InvalidInput) as e:
        label_stack(m, 6)
    assert e.value.field == "connectivity"


def test_measures_equal_regionprops(rng):
    resid = rng.normal(0, 1.0, (2, 48, 64)) + np.stack(
        [
            _gaussians((48, 64), [(10.3, 12.6, 30.0), (40.2, 30.7, 18.0)]),
            _gaussians((48, 64), [(50.5, 8.2, 25.0)]),
        ]
    )
    lab, n = label_stack(resid > 4.0)
    m = measure_components(resid, lab, n)
    assert n >= 3
    k = 0
    for b in range(2):
        props = regionprops(sk_label(resid[b] > 4.0, connectivity=2), intensity_image=resid[b])
        for p in props:  # both in raster order of the first pixel
            assert m["frame"][k] == b and m["area"][k] == p.area
            assert m["peak"][k] == pytest.approx(p.intensity_max, rel=1e-15)
            assert m["integrated"][k] == pytest.approx(p.intensity_mean * p.area, rel=1e-12)
            r, c = p.centroid_weighted  # weights = residual, all > 0 inside the mask
            assert (m["y_weighted"][k], m["x_weighted"][k]) == pytest.approx((r, c), abs=1e-9)
            assert list(m["bbox"][k]) == list(p.bbox)
            assert resid[b, m["row"][k], m["col"][k]] == p.intensity_max
            k += 1
    empty = measure_components(resid, np.zeros_like(lab), 0)
    assert all(len(v) == 0 for v in empty.values())


def test_peak_ties_take_the_first_pixel():
    r = np.zeros((1, 3, 4))
    r[0, 1, 1] = r[0, 1, 2] = 5.0
    lab, n = label_stack(r > 1)
    m = measure_components(r, lab, n)
    assert (m["row"][0], m["col"][0]) == (1, 1)


def test_psf_width_is_exact_for_a_sampled_gaussian():
    for s in (0.8, 1.5, 2.7):
        r = _gaussians((21, 21), [(10.0, 10.0, 100.0)], psf=s)[None]
        got = psf_width(r, np.array([0]), np.array([10]), np.array([10]))
        assert got[0] == pytest.approx(s, rel=1e-12)
    edge = _gaussians((5, 5), [(0.0, 0.0, 100.0)])[None]
    assert psf_width(edge, np.array([0]), np.array([0]), np.array([0]))[0] == 1.0


def test_windowed_centroid_fixed_point_and_flux():
    x0, y0, a, s = 20.37, 17.82, 500.0, 1.5
    r = _gaussians((40, 40), [(x0, y0, a)], psf=s)[None]
    x, y, flux = windowed_centroids(
        r, np.array([0]), np.array([20.0]), np.array([18.0]), np.array([s])
    )
    assert abs(x[0] - x0) < 1e-6 and abs(y[0] - y0) < 1e-6
    # Within 3 s of the centre a 2-D Gaussian holds 1 - exp(-9/2) of its 2 pi a s^2 volume.
    assert flux[0] == pytest.approx(2 * math.pi * a * s * s * (1 - math.exp(-4.5)), rel=0.02)
    none = windowed_centroids(r, np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0))
    assert all(v.size == 0 for v in none)


def test_detect_finds_targets_and_nothing_on_noise(rng):
    spots = [(12.3, 15.6, 120.0), (40.8, 33.1, 80.0), (25.0, 40.4, 150.0)]
    frames = np.stack([1000.0 + _gaussians((56, 56), spots) + rng.normal(0, 5.0, (56, 56))] * 2)
    frames[1] += rng.normal(0, 5.0, (56, 56))
    det = detect(frames, 6.0, background="polynomial")
    assert len(det.hotspots) == 6
    for idx in det.per_frame():
        got = sorted(zip(det.hotspots.x[idx], det.hotspots.y[idx], strict=True))
        for (gx, gy), (tx, ty, _) in zip(got, sorted(spots), strict=True):
            assert math.hypot(gx - tx, gy - ty) < 0.15
    assert np.all(det.hotspots.snr > 6.0)
    # One call over the stack equals one call per frame.
    one = detect(frames[1], 6.0, background="polynomial")
    np.testing.assert_allclose(one.hotspots.x, det.hotspots.x[det.per_frame()[1]], atol=1e-12)
    noise = 1000.0 + rng.normal(0, 5.0, (50, 64, 64))
    assert len(detect(noise, 6.0, background="mean").hotspots) == 0


def test_detect_with_a_given_background(rng):
    img = 200.0 + _gaussians((32, 32), [(16.0, 16.0, 60.0)]) + rng.normal(0, 1.0, (32, 32))
    bg = fit_background(img, "polynomial")
    det = detect(img, 5.0, background=bg)
    assert len(det.hotspots) == 1 and det.background is bg
    assert det.threshold[0] == pytest.approx(bg.center[0] + 5.0 * bg.sigma[0])
    with pytest.raises(InvalidInput) as e:
        detect(img[:16], 5.0, background=bg)
    assert e.value.field == "background"


def test_edge_cases():
    one = detect(np.array([[3.0]]))
    assert len(one.hotspots) == 0 and math.isnan(one.threshold[0])
    flat = detect(np.full((16, 16), 9, dtype=np.uint16))
    assert len(flat.hotspots) == 0
    hot = np.full((8, 8), 100.0)
    hot[3, 4] = 1000.0
    d = detect(hot)  # the robust sigma is 0 here: the fallback keeps the SNR finite
    assert len(d.hotspots) == 1 and np.isfinite(d.hotspots.snr[0])
    for frame, kwargs, field in [
        (np.zeros((0, 5)), {}, "frame"),
        (np.array([[1.0, np.nan]]), {}, "frame"),
        (np.zeros(5), {}, "frame"),
        (np.zeros((4, 4)), {"k_sigma": 0}, "k_sigma"),
        (np.zeros((4, 4)), {"k_sigma": float("nan")}, "k_sigma"),
        (np.zeros((4, 4)), {"background": "mode"}, "method"),
        (np.zeros((4, 4)), {"connectivity": 6}, "connectivity"),
        (np.zeros((4, 4)), {"min_area": 0}, "min_area"),
        (np.zeros((4, 4)), {"psf_sigma": 0.0}, "psf_sigma"),
    ]:
        with pytest.raises(InvalidInput) as e:
            detect(frame, **kwargs)
        assert e.value.field == field


# --------------------------------------------------------------- the fused detector


_FIELDS = tuple(f.name for f in dataclasses.fields(Hotspots))


def _scene(rng, b=3, h=70, w=90):
    yy, xx = np.mgrid[0:h, 0:w]
    frames = 500.0 + 0.8 * xx - 0.3 * yy + rng.normal(0.0, 4.0, (b, h, w))
    for k in range(b):
        spots = [
            (rng.uniform(5, w - 5), rng.uniform(5, h - 5), rng.uniform(40, 300)) for _ in range(5)
        ]
        frames[k] += _gaussians((h, w), spots, psf=rng.uniform(0.9, 2.0))
    frames[1, 30:34, 40:44] += 2000.0  # a bright block (the sigma clip matters)
    return frames


def _same_detection(a, b, rtol=0.0):
    """The same detection: integer measures, masks and labels identical; floating ones equal
    to ``rtol`` (and 1e-9 counts absolute, for values near 0 such as the residual's centre),
    or bit for bit when ``rtol`` is 0."""
    atol = 1e-9 if rtol else 0.0
    for f in _FIELDS:
        got, want = getattr(a.hotspots, f), getattr(b.hotspots, f)
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol, atol, err_msg=f)
        else:
            np.testing.assert_array_equal(got, want, err_msg=f)
    for f in ("sigma", "center", "level"):
        got, want = getattr(a.background, f), getattr(b.background, f)
        np.testing.assert_allclose(got, want, rtol, atol, err_msg=f)
    np.testing.assert_allclose(a.threshold, b.threshold, rtol, atol)
    np.testing.assert_array_equal(a.residual, b.residual)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(to_numpy(a.background.model), to_numpy(b.background.model))
    assert a.shape == b.shape and a.k_sigma == b.k_sigma


@pytest.mark.parametrize(
    "kwargs",
    [
        {"background": "mean"},
        {"background": "sigma_clip", "size": 15},
        {"background": "median", "size": 9},
        {"background": "opening", "size": 11},
        {"background": "polynomial", "order": 2},
        {"background": "mean", "min_area": 4, "connectivity": 4, "psf_sigma": 1.5},
        {"background": "sigma_clip", "refine": False, "k_sigma": 4.0},
    ],
    ids=["mean", "sigma_clip", "median", "opening", "polynomial", "min_area-4conn", "no-refine"],
)
def test_fused_detector_equals_the_numpy_steps(rng, monkeypatch, kwargs):
    frames = _scene(rng)
    fast = detect(frames, **{"k_sigma": 6.0, **kwargs})
    assert len(fast.hotspots) >= 10
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    slow = detect(frames, **{"k_sigma": 6.0, **kwargs})
    # The fused sigma clip sums the rejected pixels only: equal to rounding, same hotspots.
    _same_detection(fast, slow, 1e-12 if kwargs["background"] == "sigma_clip" else 0.0)


def test_fused_detector_with_a_given_background_and_threads(rng, monkeypatch):
    frames = _scene(rng, b=5)
    bg = fit_background(frames, "polynomial")
    fast = detect(frames, 5.0, background=bg, workers=1)
    assert fast.background is bg
    _same_detection(fast, detect(frames, 5.0, background=bg, workers=3))
    _same_detection(detect(frames, 5.0), detect(frames, 5.0, workers=4))
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    _same_detection(fast, detect(frames, 5.0, background=bg))


@pytest.mark.parametrize("background", ["mean", "sigma_clip", "polynomial"])
def test_fused_detector_same_on_every_backend(rng, to_xp, background):
    frames = _scene(rng, b=2)
    ref = detect(frames, 6.0, background=background, size=15)
    got = detect(to_xp(frames), 6.0, background=background, size=15)
    # The window backgrounds run on the host: identical. The polynomial is fitted on the
    # input's library (its own matmul and solve): equal to rounding.
    rtol = 1e-12 if background == "polynomial" else 0.0
    for f in _FIELDS:
        np.testing.assert_allclose(getattr(got.hotspots, f), getattr(ref.hotspots, f), rtol, 0, f)
    np.testing.assert_allclose(got.background.sigma, ref.background.sigma, rtol)
    np.testing.assert_array_equal(got.mask, ref.mask)


def test_fused_detector_falls_back_and_refuses_like_the_numpy_steps(rng, monkeypatch):
    frames = _scene(rng, b=3, h=80, w=80)
    frames[2] = 100.0  # flat: the robust sigma is 0, the standard-deviation fallback runs
    frames[2, 41, 7] = 1000.0
    assert list(fused.detect_frames(frames, method=fused.MEAN)["status"]) == [0, 0, fused.FALLBACK]
    fast = detect(frames, 5.0)
    assert len(fast.hotspots.frame) and fast.hotspots.frame[-1] == 2
    bad = frames.copy()
    bad[1, 3, 4] = np.nan
    with pytest.raises(InvalidInput) as e_fast:
        detect(bad, 5.0, field="pixels")
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    _same_detection(fast, detect(frames, 5.0))
    with pytest.raises(InvalidInput) as e_slow:
        detect(bad, 5.0, field="pixels")
    assert (e_fast.value.field, str(e_fast.value)) == (e_slow.value.field, str(e_slow.value))


def _clip_reference(f, m, thr, size):
    """One sigma-clip pass as the NumPy steps do it: ``box(f keep) / box(keep)``."""
    keep = (f - m <= thr).astype(np.float64)
    num = ndimage.uniform_filter(f * keep, size, mode="reflect")
    den = ndimage.uniform_filter(keep, size, mode="reflect")
    return np.where(den > 1e-12, num / np.maximum(den, 1e-12), m)


@pytest.mark.parametrize(
    "h, w, size, thr, first",
    [
        (48, 64, 7, 2.0, True),
        (30, 20, 31, 2.0, True),  # window wider than the frame: pixels counted twice
        (5, 3, 9, 0.5, True),
        (1, 7, 3, 0.2, True),
        (40, 40, 15, 1.0, False),  # a later pass: the model is not the plain mean
        (64, 64, 3, -10.0, True),  # everything rejected: the model stays
        (64, 64, 5, 1e9, False),  # nothing rejected: the plain mean
        (16, 16, 1, 0.5, True),
        (20, 20, 5, float("nan"), True),  # no noise estimate: nothing kept
    ],
)
def test_clipped_mean_from_rejected_pixels_equals_the_window_filters(rng, h, w, size, thr, first):
    f = rng.normal(100.0, 1.0, (h, w))
    f[h // 2, w // 2] += 30.0
    m0 = ndimage.uniform_filter(f, size, mode="reflect")
    m = m0.copy() if first else m0 + rng.normal(0.0, 0.3, (h, w))
    want = _clip_reference(f, m, thr, size)
    got = m.copy()
    fused._clipped_mean(f, got, got if first else m0, first, thr, size, np.empty(h * w, np.int64))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
