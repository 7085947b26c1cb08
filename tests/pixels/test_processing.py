"""Frame statistics, background, hotspot detection against truth and scipy/skimage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pixels.hotspots import detect_hotspots, label_stack
from prism_kernels.pixels.processing import (
    estimate_background,
    frame_stats,
    noise_sigma,
    white_tophat,
)
from prism_kernels.pixels.scene import thermal_batch, thermal_scene


def test_frame_stats_against_numpy(rng, to_xp):
    stack = rng.normal(100, 5, (3, 31, 17))
    st = frame_stats(to_xp(stack))
    flat = stack.reshape(3, -1)
    np.testing.assert_allclose(to_numpy(st["mean"]), flat.mean(1), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(st["std"]), flat.std(1), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(st["min"]), flat.min(1))
    np.testing.assert_allclose(to_numpy(st["max"]), flat.max(1))
    for q in (1, 5, 25, 50, 75, 95, 99):
        np.testing.assert_allclose(
            to_numpy(st[f"p{q}"]), np.percentile(flat, q, axis=1), rtol=1e-12
        )
    mad = 1.482602218505602 * np.median(np.abs(flat - np.median(flat, 1)[:, None]), 1)
    np.testing.assert_allclose(to_numpy(st["mad_sigma"]), mad, rtol=1e-12)


def _sorted_stats(x: np.ndarray, qs) -> dict[str, np.ndarray]:
    """The statistics frame_stats computed by full sorts before it selected: the reference."""
    s = np.sort(x.reshape(x.shape[0], -1).astype(np.float64), axis=-1)
    n = s.shape[-1]
    out = {"min": s[:, 0], "max": s[:, -1]}
    for name, q in [("median", 50.0)] + [(f"p{q:g}", q) for q in qs]:
        pos = q / 100.0 * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        out[name] = s[:, lo] + (s[:, hi] - s[:, lo]) * (pos - lo)
    return out


def test_frame_stats_equal_the_sorted_reference_and_without_numba(rng, monkeypatch):
    from prism_kernels import compiled
    from prism_kernels.pixels.processing import PERCENTILES

    stack = rng.normal(1000.0, 20.0, (2, 123, 157))
    stack[0, :5, :5] = 5000.0  # hot corner: a long tail
    u16 = rng.integers(0, 4096, (1, 90, 80)).astype(np.uint16)
    fast = [frame_stats(stack), frame_stats(u16)]
    for st, x in zip(fast, (stack, u16), strict=True):
        for k, v in _sorted_stats(x, PERCENTILES).items():
            np.testing.assert_array_equal(np.atleast_1d(to_numpy(st[k])), v, err_msg=k)
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    for st, x in zip(fast, (stack, u16), strict=True):
        slow = frame_stats(x)
        for k in st:
            np.testing.assert_array_equal(to_numpy(st[k]), to_numpy(slow[k]), err_msg=k)


def test_frame_stats_order_statistics_identical_on_every_backend(rng, to_xp):
    stack = rng.normal(100.0, 5.0, (3, 41, 37))
    ref = frame_stats(stack)
    got = frame_stats(to_xp(stack))
    for k in ("min", "max", "median", "mad_sigma", "noise_sigma", "p1", "p5", "p50", "p99"):
        np.testing.assert_array_equal(to_numpy(got[k]), ref[k], err_msg=k)


def test_frame_stats_uint_and_one_pixel():
    st = frame_stats(np.array([[7]], dtype=np.uint16))
    assert float(st["mean"]) == 7.0 and float(st["std"]) == 0.0 and float(st["p99"]) == 7.0
    st = frame_stats(np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert float(st["median"]) == 5.5


def test_noise_sigma_recovers_noise():
    f, truth = thermal_scene(200, 240, 4, snr=20, noise_sigma=8.0, seed=3)
    assert float(noise_sigma(f)) == pytest.approx(8.0, rel=0.05)


@pytest.mark.parametrize("method", ["median", "opening", "sigma_clip"])
def test_background_tracks_truth(method):
    f, truth = thermal_scene(96, 128, 3, snr=20, noise_sigma=5.0, seed=4)
    bg = estimate_background(f, method=method, size=21)
    err = np.abs(bg - truth.background)[15:-15, 15:-15]
    # median / clipped mean within ~1.5 noise sigma; opening sits below (a min filter first)
    assert np.median(err) < (12.0 if method == "opening" else 2.5)


def test_background_matches_scipy(rng):
    f = rng.normal(size=(40, 50))
    np.testing.assert_allclose(
        estimate_background(f, "median", 7), ndimage.median_filter(f, 7, mode="reflect")
    )
    np.testing.assert_allclose(white_tophat(f, 5), ndimage.white_tophat(f, size=5, mode="reflect"))


def _match(hs, truth):
    c = np.array([h["centroid"] for h in hs])
    d = np.linalg.norm(c[:, None] - truth.centroids[None], axis=2)
    return d.min(axis=0)


def test_centroids_high_snr_within_0p1_px():
    # Cramer-Rao for a point-sampled Gaussian PSF: sigma_x = noise / (A sqrt(pi/2)) per axis,
    # so 0.1 px for every hotspot needs peak SNR ~30; at SNR 10 the bound itself is 0.08 px.
    errs = []
    for seed in range(4):
        f, truth = thermal_scene(128, 160, 5, snr=(30, 60), seed=seed)
        det = detect_hotspots(f)
        assert det.counts == [5]
        errs.append(_match(det.hotspots[0], truth))
    assert np.max(np.concatenate(errs)) < 0.1


def test_centroids_snr10_near_cramer_rao():
    errs = []
    for seed in range(6):
        f, truth = thermal_scene(128, 160, 5, snr=10, seed=10 + seed)
        det = detect_hotspots(f)
        assert det.counts == [5]
        errs.append(_match(det.hotspots[0], truth))
    e = np.concatenate(errs)
    crlb = 1.0 / (10 * np.sqrt(np.pi / 2))  # per axis
    assert np.sqrt(np.mean(e**2)) < 1.6 * crlb * np.sqrt(2)  # radial RMS
    assert np.median(e) < 0.15 and e.max() < 0.35


def test_no_false_hotspots_on_noise():
    frames, _ = thermal_batch(100, 64, 64, n_hotspots=0, seed=500)
    det = detect_hotspots(frames)
    assert sum(det.counts) == 0


def test_batched_equals_per_frame_and_skimage():
    frames, truths = thermal_batch(4, 96, 112, n_hotspots=4, snr=(15, 40), seed=7)
    det = detect_hotspots(frames)
    for b in range(4):
        one = detect_hotspots(frames[b])
        assert len(one.hotspots[0]) == len(det.hotspots[b]) == 4
        for h1, h2 in zip(one.hotspots[0], det.hotspots[b], strict=True):
            assert h1["centroid"] == pytest.approx(h2["centroid"], abs=1e-9)
            assert h1["area"] == h2["area"]
        # component statistics against skimage.measure.regionprops on the same mask
        lab = sk_label(det.mask[b], connectivity=2)
        props = sorted(regionprops(lab, intensity_image=det.residual[b]), key=lambda p: p.bbox)
        ours = sorted(det.hotspots[b], key=lambda h: (h["bbox"][1], h["bbox"][0]))
        for p, h in zip(props, ours, strict=True):
            assert h["area"] == p.area
            assert h["peak"] == pytest.approx(p.intensity_max)
            assert h["integrated"] == pytest.approx(p.intensity_mean * p.area)
            r0, c0, r1, c1 = p.bbox
            assert h["bbox"] == [c0, r0, c1 - c0, r1 - r0]
            wc = p.centroid_weighted  # (row, col); weights = residual, all > 0 inside the mask
            assert h["centroid_weighted"] == pytest.approx([wc[1], wc[0]], abs=1e-9)
        assert all(h["snr"] > 6 and 0 <= h["confidence"] <= 1 for h in det.hotspots[b])


def test_numpy_and_torch_give_same_hotspots(to_xp):
    f, _ = thermal_scene(64, 80, 3, snr=25, seed=2)
    a = detect_hotspots(f).hotspots[0]
    b = detect_hotspots(to_xp(f)).hotspots[0]
    assert len(a) == len(b) == 3
    np.testing.assert_allclose([h["centroid"] for h in a], [h["centroid"] for h in b], atol=1e-9)


def test_tophat_and_split_peaks():
    f, truth = thermal_scene(96, 96, 2, snr=40, min_separation=7.0, seed=11)
    det = detect_hotspots(f, tophat_size=11, k_sigma=8, split_peaks=True, min_distance=2)
    assert det.counts[0] == 2
    assert np.max(_match(det.hotspots[0], truth)) < 0.3


def test_label_stack_never_joins_frames():
    m = np.zeros((2, 3, 3), bool)
    m[:, 1, 1] = True
    lab, n = label_stack(m)
    assert n == 2 and lab[0, 1, 1] != lab[1, 1, 1]


@pytest.mark.parametrize(
    "frame, kwargs, field",
    [
        (np.zeros((0, 5)), {}, "frame"),
        (np.array([[1.0, np.nan]]), {}, "frame"),
        (np.zeros(5), {}, "frame"),
        (np.zeros((4, 4)), {"k_sigma": 0}, "k_sigma"),
        (np.zeros((4, 4)), {"background": "mode"}, "method"),
        (np.zeros((4, 4)), {"connectivity": 6}, "connectivity"),
    ],
)
def test_invalid(frame, kwargs, field):
    with pytest.raises(InvalidInput) as e:
        detect_hotspots(frame, **kwargs)
    assert e.value.field == field


def test_one_pixel_frame():
    det = detect_hotspots(np.array([[3.0]]))
    assert det.counts == [0]
