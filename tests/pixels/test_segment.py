"""Thresholds and segmentation against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.filters import threshold_local, threshold_multiotsu, threshold_otsu
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from prism_kernels.backend import asarray
from prism_kernels.errors import InvalidInput
from prism_kernels.pixels.scene import thermal_scene
from prism_kernels.pixels.segment import (
    adaptive_threshold,
    multi_otsu_thresholds,
    otsu_threshold,
    region_stats,
    segment,
    watershed_segment,
)


def _frames(rng):
    return [
        rng.integers(0, 256, (50, 60), dtype=np.uint8),
        rng.integers(100, 5000, (40, 30)).astype(np.uint16),
        rng.normal(size=(40, 30)),
        np.concatenate([rng.normal(0, 1, 500), rng.normal(5, 1, 300)]).reshape(20, 40),
        thermal_scene(64, 64, 3, snr=30, seed=1)[0],
    ]


def test_otsu_equals_skimage(rng, xp_name):
    for f in _frames(rng):
        ref = threshold_otsu(f)
        assert otsu_threshold(f) == ref  # exact: same histogram and argmax
        g = f.astype(np.int64) if f.dtype == np.uint16 else f  # torch has no uint16 math
        assert otsu_threshold(asarray(g, backend=xp_name)) == pytest.approx(
            ref, rel=1e-12, abs=1e-12
        )


def test_otsu_constant_and_one_pixel():
    assert otsu_threshold(np.full((3, 3), 4, np.uint8)) == 4.0
    assert otsu_threshold(np.array([[2.5]])) == 2.5


def test_multi_otsu_and_adaptive(rng):
    f = thermal_scene(64, 80, 3, snr=30, seed=2)[0]
    np.testing.assert_allclose(multi_otsu_thresholds(f, 3), threshold_multiotsu(f, 3))
    for method in ("mean", "gaussian"):
        np.testing.assert_allclose(
            adaptive_threshold(f, 15, method, offset=1.5),
            threshold_local(f, 15, method, offset=1.5),
            atol=1e-9,
        )


def test_region_stats_against_regionprops():
    f = thermal_scene(80, 96, 5, snr=40, seed=3)[0]
    res = segment(f, "multi_otsu")
    lab = sk_label(res["segmentation_mask"] > 0, connectivity=2)
    props = regionprops(lab, intensity_image=f)
    assert res["num_objects"] == len(props) > 0
    for o, p in zip(res["objects"], props, strict=True):
        assert o["area"] == p.area
        assert o["centroid"] == pytest.approx([p.centroid[1], p.centroid[0]], abs=1e-9)
        assert o["mean_intensity"] == pytest.approx(p.intensity_mean, rel=1e-12)
        r0, c0, r1, c1 = p.bbox
        assert o["bounding_box"] == [c0, r0, c1 - c0, r1 - r0]


def test_segment_methods_find_hotspots():
    f, truth = thermal_scene(96, 96, 4, snr=50, clutter=0, gradient=0, seed=5)
    for method in ("multi_otsu", "watershed"):
        res = segment(f, method, min_object_size=3)
        assert res["num_objects"] >= 4
        assert (
            res["segmentation_mask"].dtype == np.uint8 and res["segmentation_mask"].shape == f.shape
        )
    res = segment(f, threshold=float(f.mean() + 15 * 10), min_object_size=2)
    assert res["num_objects"] == 4
    cents = np.array([o["centroid"] for o in res["objects"]])
    d = np.linalg.norm(cents[:, None] - truth.centroids[None], axis=2).min(0)
    assert d.max() < 0.5


def test_min_object_size_drops_small():
    m = np.zeros((10, 10))
    m[1, 1] = 10
    m[5:8, 5:8] = 10
    res = segment(m, "fixed", threshold=5, min_object_size=2)
    assert res["num_objects"] == 1 and res["objects"][0]["area"] == 9
    assert res["segmentation_mask"][1, 1] == 0


def test_watershed_splits_touching_blobs():
    yy, xx = np.mgrid[0:40, 0:60]
    f = np.exp(-((xx - 22) ** 2 + (yy - 20) ** 2) / 30.0) + np.exp(
        -((xx - 36) ** 2 + (yy - 20) ** 2) / 30.0
    )
    lab = watershed_segment(f, mask=f > 0.2)
    assert lab.max() == 2
    assert region_stats(lab, f)[0]["area"] > 20


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"frame": np.zeros((0, 2))}, "frame"),
        ({"frame": np.array([[np.inf, 1.0]])}, "frame"),
        ({"frame": np.ones((4, 4)), "method": "kmeans"}, "method"),
        ({"frame": np.ones((4, 4)), "method": "fixed"}, "threshold"),
        ({"frame": np.ones((4, 4)), "min_object_size": -1}, "min_object_size"),
        ({"frame": np.ones((4, 4)), "method": "adaptive", "block_size": 4}, "block_size"),
    ],
)
def test_invalid(kwargs, field):
    with pytest.raises(InvalidInput) as e:
        segment(**kwargs)
    assert e.value.field == field
