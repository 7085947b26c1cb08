"""Domain kernels on CuPy give the NumPy answers (``-m gpu``; skipped without a CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend as B

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not B._cupy_available(), reason="needs CuPy and a CUDA device"),
]


def _cp(a):
    return B.asarray(a, backend="cupy")


def test_kalman_step_on_cupy_matches_numpy(rng):
    from prism_kernels.pwsa.kalman import kf_predict, kf_update
    from prism_kernels.pwsa.models import ConstantVelocity

    n_tracks = 50_000
    F, Q, _ = ConstantVelocity(5.0).matrices(1.0)
    H = np.eye(3, 6)
    A = rng.normal(size=(n_tracks, 3, 3))
    R = A @ A.transpose(0, 2, 1) + 25 * np.eye(3)
    x = rng.normal(size=(n_tracks, 6)) * 100
    P = np.broadcast_to(np.diag([100.0] * 3 + [25.0] * 3), (n_tracks, 6, 6)).copy()
    z = x[:, :3] + rng.normal(size=(n_tracks, 3))
    ref = kf_update(*kf_predict(x, P, F, Q), z, H, R)
    xg, Pg = kf_predict(_cp(x), _cp(P), _cp(F), _cp(Q))
    out = kf_update(xg, Pg, _cp(z), _cp(H), _cp(R))
    assert B.backend_name(out.x) == "cupy"
    np.testing.assert_allclose(B.to_numpy(out.x), ref.x, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(B.to_numpy(out.P), ref.P, rtol=1e-10, atol=1e-8)


def test_frontier_on_cupy_matches_numpy(rng):
    from prism_kernels.finance.optimize import efficient_frontier

    n = 60
    A = rng.normal(size=(n, n)) / np.sqrt(n)
    cov = 0.04 * (A @ A.T + 0.2 * np.eye(n))
    mu = rng.uniform(0.02, 0.15, n)
    ref = efficient_frontier(mu, cov, points=20)
    out = efficient_frontier(_cp(mu), _cp(cov), points=20)
    np.testing.assert_allclose(B.to_numpy(out.weights), B.to_numpy(ref.weights), atol=1e-6)


def test_monte_carlo_var_on_cupy_within_three_standard_errors():
    from prism_kernels.finance.risk import monte_carlo_var, normal_var_cvar

    n = 20
    w = np.full(n, 1.0 / n)
    cov = 1e-4 * (0.3 * np.ones((n, n)) + 0.7 * np.eye(n))
    mu = np.zeros(n)
    mc = monte_carlo_var(
        _cp(w),
        _cp(mu),
        _cp(cov),
        confidence=0.99,
        horizon=1,
        n_paths=2_000_000,
        seed=1,
        compound=False,
    )
    sigma = float(np.sqrt(w @ cov @ w))
    var_ref = normal_var_cvar(0.0, sigma, 0.99, 1)[0]
    assert abs(float(mc.var) - var_ref) < 3 * float(mc.standard_error)


def test_order_statistics_on_cupy_are_the_numpy_values(rng):
    from prism_kernels.imaging.order import kth_smallest, median, quantiles

    x = rng.normal(size=(3, 10_001))
    x[:, :50] = 1e3
    np.testing.assert_array_equal(
        B.to_numpy(kth_smallest(_cp(x), [0, 5000, 10_000, 17])),
        np.sort(x)[:, [0, 5000, 10_000, 17]],
    )
    np.testing.assert_array_equal(B.to_numpy(median(_cp(x))), np.median(x, axis=-1))
    np.testing.assert_array_equal(
        B.to_numpy(quantiles(_cp(x), (1.0, 50.0, 99.0))), quantiles(x, (1.0, 50.0, 99.0))
    )


def test_frame_stats_and_hotspots_on_cupy_match_numpy():
    from prism_kernels.pixels.hotspots import detect_hotspots
    from prism_kernels.pixels.processing import frame_stats
    from prism_kernels.pixels.scene import thermal_batch

    frames, _ = thermal_batch(4, 120, 160, n_hotspots=5, snr=(10, 40), seed=3)
    ref = frame_stats(frames)
    got = frame_stats(_cp(frames))
    for k in ("min", "max", "median", "mad_sigma", "noise_sigma", "p5", "p95"):
        np.testing.assert_array_equal(B.to_numpy(got[k]), ref[k], err_msg=k)
    for bg in ("mean", "sigma_clip"):
        a = detect_hotspots(frames, background=bg)
        b = detect_hotspots(_cp(frames), background=bg)
        assert a.counts == b.counts
        np.testing.assert_array_equal(
            [h["centroid"] for f in a.hotspots for h in f],
            [h["centroid"] for f in b.hotspots for h in f],
        )


def test_persistence_of_cupy_frames_matches_numpy(rng):
    from prism_kernels.pixels import topology as T

    stack = rng.random((4, 40, 50))
    h0, h1 = T.diagrams(stack)
    g0, g1 = T.diagrams(_cp(stack))
    for a, b in zip(h0 + h1, g0 + g1, strict=True):
        np.testing.assert_array_equal(a, b)
