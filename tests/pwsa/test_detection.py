"""IR hotspot detection, classification and information metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from skimage.measure import label as sk_label
from skimage.measure import regionprops

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.background import fit_background
from prism_kernels.imaging.entropy import histogram_entropy
from prism_kernels.pwsa.detection import (
    CLASS_MODEL,
    as_frames,
    classify,
    detect_frame,
    find_hotspots,
    link_hotspots,
    normalize_type,
    track_features,
)
from prism_kernels.pwsa.infometrics import (
    frame_info_metrics,
    mutual_information_bits,
    series_info_metrics,
)

SIZE = 48
PSF = 1.5
NOISE = 10.0


def _frame(rng, spots, size=SIZE, noise=NOISE, grad=(0.5, -0.3)):
    yy, xx = np.mgrid[0:size, 0:size]
    img = 1000.0 + grad[0] * xx + grad[1] * yy + rng.normal(0, noise, (size, size))
    for x0, y0, peak in spots:
        img += peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * PSF**2))
    return img


def _centroid_errors(snr: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    errs = []
    for _ in range(n):
        x0, y0 = rng.uniform(12, SIZE - 12, 2)
        res = detect_frame(_frame(rng, [(x0, y0, snr * NOISE)]), compute_metrics=False)
        assert res.n_hotspots >= 1
        errs.append([res.primary.x - x0, res.primary.y - y0])
    return np.array(errs)


def test_centroid_accuracy_at_snr_10_is_near_cramer_rao():
    # Peak SNR 10 with a Gaussian PSF: the Cramer-Rao bound per axis is
    # 1 / (SNR sqrt(pi / 2)) = 0.080 px, so no estimator puts *every* centroid within
    # 0.1 px; we require an unbiased, near-efficient estimate.
    e = _centroid_errors(10.0, 120, seed=1)
    crlb = 1.0 / (10.0 * math.sqrt(math.pi / 2))
    rms = np.sqrt((e**2).mean(axis=0))
    assert np.all(np.abs(e.mean(axis=0)) < 0.03)
    assert np.all(rms <= 0.1)
    assert np.all(rms <= 1.3 * crlb)


def test_centroid_within_tenth_pixel_at_snr_30():
    e = _centroid_errors(30.0, 100, seed=2)
    assert np.max(np.abs(e)) < 0.1


def test_noiseless_centroid_exact():
    rng = np.random.default_rng(0)
    img = _frame(rng, [(20.3, 17.8, 500.0), (35.6, 30.1, 300.0)], noise=0.0)
    img += rng.normal(0, 1e-3, img.shape)  # tiny noise so the MAD is defined
    res = detect_frame(img, compute_metrics=False)
    got = sorted((round(h.x, 3), round(h.y, 3)) for h in res.hotspots)
    np.testing.assert_allclose(got, [(20.3, 17.8), (35.6, 30.1)], atol=2e-3)
    assert all(abs(h.psf_sigma - PSF) < 0.02 for h in res.hotspots)


def test_no_hotspot_on_pure_noise_at_default_threshold():
    # 100 frames x 64 x 64 = 409 600 pixels; at 5 sigma the expected false count is 0.12.
    rng = np.random.default_rng(2024)
    frames = 1000.0 + rng.normal(0, 10.0, (100, 64, 64))
    hot, bg = find_hotspots(as_frames(frames))
    assert hot == []
    np.testing.assert_allclose(bg.sigma, 10.0, rtol=0.06)


def test_components_match_scikit_image(rng):
    img = _frame(rng, [(10.2, 12.7, 200.0), (30.5, 33.3, 120.0), (40.0, 8.0, 80.0)])
    res = detect_frame(img, compute_metrics=False)
    bg = fit_background(img, "polynomial")
    resid = img - to_numpy(bg.model)[0]
    mask = resid > np.median(resid) + 5.0 * bg.sigma[0]  # the detector's threshold rule
    props = regionprops(sk_label(mask, connectivity=2), intensity_image=resid)
    assert len(props) == res.n_hotspots == 3
    ours = sorted((h.n_pixels, round(h.integrated, 6), round(h.peak, 6)) for h in res.hotspots)
    ref = sorted(
        (
            int(p.area),
            round(float(p.image_intensity[p.image].sum()), 6),
            round(float(p.intensity_max), 6),
        )
        for p in props
    )
    assert ours == ref


def test_background_plane_and_backends(xp_name, to_xp):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:40, 0:50]
    truth = 500.0 + 2.0 * xx - 1.5 * yy
    img = truth + rng.normal(0, 3.0, truth.shape)
    img[10:13, 20:23] += 400  # a hotspot must not pull the surface
    bg = fit_background(to_xp(img), "polynomial")
    model = to_numpy(bg.model)[0]
    assert np.max(np.abs(model - truth)) < 1.5
    assert bg.sigma[0] == pytest.approx(3.0, rel=0.08)
    ref = fit_background(img, "polynomial")
    np.testing.assert_allclose(model, to_numpy(ref.model)[0], rtol=1e-9)
    res = detect_frame(to_xp(img), compute_metrics=False)
    assert res.n_hotspots == 1


def test_flat_u16_input_with_width_height(rng):
    img = np.clip(_frame(rng, [(20.0, 25.0, 300.0)]), 0, 65535).astype(np.uint16)
    res = detect_frame(img.reshape(-1).tolist(), width=SIZE, height=SIZE)
    assert res.n_hotspots == 1
    assert abs(res.centroid[0] - 20.0) < 0.15 and abs(res.centroid[1] - 25.0) < 0.15
    d = res.to_dict()
    json.dumps(d)
    assert d["hotspot_count"] == 1 and d["threat_type"] in CLASS_MODEL["extent"]


def test_edge_cases():
    with pytest.raises(InvalidInput):
        detect_frame(np.zeros((0, 0)))
    with pytest.raises(InvalidInput):
        detect_frame([])
    with pytest.raises(InvalidInput):
        detect_frame(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(InvalidInput) as ei:
        detect_frame(list(range(10)), width=4, height=3)
    assert ei.value.field == "pixels"
    with pytest.raises(InvalidInput):
        detect_frame(np.zeros((2, 3, 4, 5)))
    with pytest.raises(InvalidInput):
        detect_frame(np.ones((8, 8)), k_sigma=0)
    one = detect_frame(np.array([[1234.0]]))
    assert one.n_hotspots == 0 and one.noise_sigma is None and one.threat_type == "none"
    assert one.info_metrics.channel_capacity is None and one.info_metrics.fisher_information is None
    flat = detect_frame(np.full((16, 16), 700.0))
    assert flat.n_hotspots == 0 and flat.confidence is None


def test_classify_scenario_truth_kinematics():
    from prism_kernels.pwsa.scenario import generate_scenario

    sc = generate_scenario(n_targets=40, n_scans=20, seed=3, frame_shape=None)
    correct = total = 0
    for o in sc.objects:
        for k in range(0, len(o.times), 5):
            f = track_features(
                {
                    "position": o.positions[k],
                    "velocity": o.velocities[k],
                    "acceleration": o.accelerations[k],
                }
            )
            f["log_intensity"] = math.log10(o.intensity[k] * 0.6)  # ~range loss at the sensor
            c = classify(f)
            correct += c.threat_type == o.object_type
            total += 1
    assert correct / total >= 0.85


def test_classify_confidence_is_posterior():
    c = classify({})
    assert c.confidence == pytest.approx(1 / 6)
    rich = classify(
        {"log_speed": math.log10(5001), "log_altitude": math.log10(40_010), "log_accel": 1.0}
    )
    assert rich.threat_type == "hypersonic_glide_vehicle" and rich.confidence > 0.9
    assert sum(rich.probabilities.values()) == pytest.approx(1.0)
    only_img = classify({"log_intensity": 3.8})
    assert only_img.confidence < rich.confidence
    pri = classify({}, priors={"aircraft": 3, "decoy": 1})
    assert pri.threat_type == "aircraft" and pri.confidence == pytest.approx(0.75)
    with pytest.raises(InvalidInput):
        classify({"colour": 1.0})
    with pytest.raises(InvalidInput):
        classify({"log_speed": float("inf")})


def test_normalize_type_spellings():
    assert normalize_type("BallisticMissile") == "ballistic_missile"
    assert normalize_type("hypersonic") == "hypersonic_glide_vehicle"
    assert normalize_type("HypersonicGlideVehicle") == "hypersonic_glide_vehicle"
    with pytest.raises(InvalidInput):
        normalize_type("spaceship")


def test_decaying_flare_sequence_growth_and_class():
    rng = np.random.default_rng(8)
    tau = 4.0
    frames = np.stack(
        [_frame(rng, [(20.0 + 0.3 * k, 24.0, 2000.0 * math.exp(-k / tau))]) for k in range(6)]
    )
    res = detect_frame(frames, frame_interval=1.0)
    assert res.primary.track_length == 6
    assert res.primary.growth_rate == pytest.approx(-1 / tau, rel=0.05)
    assert res.threat_type == "decoy"
    assert res.info_metrics.transfer_entropy is not None
    assert res.info_metrics.mutual_information_reference == "previous_frame"


def test_link_hotspots_chains():
    rng = np.random.default_rng(9)
    frames = np.stack(
        [_frame(rng, [(10.0 + k, 10.0, 300.0), (35.0, 35.0 - k, 300.0)]) for k in range(4)]
    )
    hot, _ = find_hotspots(as_frames(frames))
    chains = link_hotspots(hot, np.arange(4.0), gate_px=2.0)
    assert sorted(len(c) for c in chains) == [4, 4]
    assert all(abs(h.growth_rate) < 0.05 for h in hot)


# ---- information metrics -------------------------------------------------------------


def test_series_info_metrics_reference_values():
    m = series_info_metrics([320.0, 240.0, 5.0])
    assert m.entropy == pytest.approx(math.log2(3), abs=1e-7)
    assert m.entropy_rate == 0.0
    assert m.channel_capacity == pytest.approx(22.34683, abs=1e-5)
    assert m.fisher_information == pytest.approx(1.6785825e-4, rel=1e-6)
    assert m.mutual_information is None and m.transfer_entropy is None and m.kl_divergence is None
    const = series_info_metrics([2.0, 2.0, 2.0])
    assert const.fisher_information is None and const.to_dict()["fisher_information"] is None
    # Rounding is half away from zero: 0.05 -> 1 and -0.05 -> -1 are distinct symbols.
    assert series_info_metrics([0.05, -0.05]).entropy == pytest.approx(1.0)
    with pytest.raises(InvalidInput):
        series_info_metrics([])


def test_entropy_and_mutual_information_properties(rng):
    u = rng.uniform(0, 1, 200_000)
    assert histogram_entropy(u, bins=16) == pytest.approx(4.0, abs=0.01)
    assert histogram_entropy(np.full(50, 3.0)) == 0.0
    x = rng.normal(size=20_000)
    assert mutual_information_bits(x, x, bins=16) == pytest.approx(
        histogram_entropy(x, bins=16), rel=1e-12
    )
    y = rng.normal(size=20_000)
    assert mutual_information_bits(x, y, bins=16) < 0.02  # plug-in bias ~ 225 / (2 N ln 2)
    # Gaussian pair with correlation r: I = -log2(1 - r^2) / 2; binning loses a little.
    r = 0.8
    z = r * x + math.sqrt(1 - r * r) * y
    ref = -0.5 * math.log2(1 - r * r)
    assert 0.85 * ref < mutual_information_bits(x, z, bins=32) < 1.1 * ref
    with pytest.raises(InvalidInput):
        mutual_information_bits(x, y[:10])


def test_frame_metrics_capacity_kl_and_fisher():
    rng = np.random.default_rng(21)
    bg_only = _frame(rng, [])
    m0 = frame_info_metrics(bg_only)
    # The background model explains a noise-only frame: KL is at the plug-in bias,
    # (bins - 1) / (2 N ln 2) = 0.020 bits for 64 bins and 48 x 48 pixels.
    assert m0.kl_divergence < 0.03
    assert m0.channel_capacity < 0.05
    assert m0.fisher_information is None and m0.transfer_entropy is None
    # Known signal: capacity from its power.
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    signal = 30.0 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    img = 1000.0 + signal + rng.normal(0, NOISE, signal.shape)
    m1 = frame_info_metrics(img, background=np.full((SIZE, SIZE), 1000.0), noise_sigma=NOISE)
    ref = math.log2(1 + float(np.mean(signal**2)) / NOISE**2)
    assert m1.channel_capacity == pytest.approx(ref, rel=0.1)
    hot = detect_frame(_frame(rng, [(24.0, 24.0, 200.0)]))
    assert hot.info_metrics.kl_divergence > 10 * m0.kl_divergence
    fi = hot.info_metrics.fisher_information
    # Continuum formula for a Gaussian PSF: J = (A / s)^2 * pi / 2 per axis.
    assert fi == pytest.approx((hot.primary.peak / hot.noise_sigma) ** 2 * math.pi / 2, rel=0.05)
    json.dumps(hot.info_metrics.to_dict())


def test_transfer_entropy_noise_floor_and_structure():
    rng = np.random.default_rng(4)
    noise = np.stack([_frame(rng, []) for _ in range(8)])
    moving = np.stack(
        [_frame(rng, [(8.0 + k, 10.0 + 6 * j, 400.0) for j in range(6)]) for k in range(8)]
    )
    te_noise = frame_info_metrics(noise).transfer_entropy
    te_moving = frame_info_metrics(moving).transfer_entropy
    # White noise: only the plug-in bias of the 8 x 8 x 8 histogram (about 0.02 bits).
    assert 0.0 <= te_noise < 0.03
    # Moving hot spots: a pixel's neighbours announce its next value.
    assert te_moving > 2 * te_noise
