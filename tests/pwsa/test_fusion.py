"""Track-to-track fusion against closed forms and a grid search."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.fusion import covariance_intersection, information_fusion
from prism_kernels.pwsa.kalman import kf_update
from prism_kernels.pwsa.models import position_selector


def _spd(rng, *shape, n=3, scale=1.0):
    A = rng.normal(size=(*shape, n, n))
    return scale * (A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(n))


def test_information_fusion_equals_sequential_kalman(xp, to_xp, rng):
    """Fusing a prior with two independent position measurements in information form equals
    two sequential Kalman updates (H = I), within 1e-9."""
    N = 10
    x0 = rng.normal(size=(N, 3)) * 100
    P0 = _spd(rng, N, scale=50.0)
    z = rng.normal(size=(2, N, 3)) * 100
    R = _spd(rng, 2, N, scale=10.0)
    fused = information_fusion(to_xp(np.stack([x0, z[0], z[1]])), to_xp(np.stack([P0, R[0], R[1]])))
    H = np.eye(3)
    u1 = kf_update(x0, P0, z[0], H, R[0])
    u2 = kf_update(u1.x, u1.P, z[1], H, R[1])
    np.testing.assert_allclose(to_numpy(fused.x), u2.x, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(to_numpy(fused.P), u2.P, rtol=1e-9, atol=1e-9)


def test_covariance_intersection_optimum_and_consistency(xp, to_xp, rng):
    """omega from the batched golden-section search matches a fine grid; the fused
    covariance is no larger (trace) than either input and CI bounds hold."""
    N = 12
    xa, xb = rng.normal(size=(N, 3)), rng.normal(size=(N, 3))
    Pa, Pb = _spd(rng, N), _spd(rng, N)
    Pa[0] = np.eye(3) * 1e-2  # one source dominates: the optimum is at an end point
    Pb[0] = np.eye(3) * 1e2
    f = covariance_intersection(to_xp(np.stack([xa, xb])), to_xp(np.stack([Pa, Pb])))
    w = to_numpy(f.weights)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    grid = np.linspace(0, 1, 2001)
    Ya, Yb = np.linalg.inv(Pa), np.linalg.inv(Pb)
    for i in range(N):
        tr = [np.trace(np.linalg.inv(g * Ya[i] + (1 - g) * Yb[i])) for g in grid]
        best = float(np.min(tr))
        got = np.trace(to_numpy(f.P)[i])
        assert got <= best + 1e-9 * max(1.0, best)
        assert got <= min(np.trace(Pa[i]), np.trace(Pb[i])) + 1e-12
        om = w[0, i]
        Yw = om * Ya[i] + (1 - om) * Yb[i]
        np.testing.assert_allclose(to_numpy(f.P)[i], np.linalg.inv(Yw), rtol=1e-9)
        np.testing.assert_allclose(
            to_numpy(f.x)[i],
            np.linalg.solve(Yw, om * Ya[i] @ xa[i] + (1 - om) * Yb[i] @ xb[i]),
            rtol=1e-9,
            atol=1e-12,
        )
    assert w[0, 0] == pytest.approx(1.0)


def test_ci_logdet_explicit_weights_and_many_sources(rng):
    x = rng.normal(size=(3, 5, 3))
    P = _spd(rng, 3, 5)
    f = covariance_intersection(x, P, weights=[0.2, 0.3, 0.5])
    Y = np.linalg.inv(P)
    Yw = 0.2 * Y[0] + 0.3 * Y[1] + 0.5 * Y[2]
    np.testing.assert_allclose(f.P, np.linalg.inv(Yw), rtol=1e-9)
    g = covariance_intersection(x, P)  # fast CI weights
    np.testing.assert_allclose(g.weights.sum(axis=0), 1.0)
    h = covariance_intersection(x[:2], P[:2], criterion="logdet")
    grid = np.linspace(0, 1, 2001)
    for i in range(5):
        vals = [-np.linalg.slogdet(o * Y[0, i] + (1 - o) * Y[1, i])[1] for o in grid]
        assert np.linalg.slogdet(h.P[i])[1] <= min(vals) + 1e-8


def test_fusion_edge_cases():
    one = information_fusion(np.ones((1, 2, 3)), np.stack([np.eye(3)] * 2)[None])
    np.testing.assert_allclose(one.x, 1.0)
    with pytest.raises(InvalidInput):
        information_fusion(np.ones((2, 3)), np.ones((2, 4, 4)))
    with pytest.raises(InvalidInput):
        covariance_intersection(np.full((2, 1, 3), np.nan), np.stack([np.eye(3)[None]] * 2))
    with pytest.raises(InvalidInput):
        covariance_intersection(
            np.ones((2, 1, 3)), np.stack([np.eye(3)[None]] * 2), weights=[-1, 2]
        )
    with pytest.raises(InvalidInput):
        covariance_intersection(np.ones((2, 1, 3)), np.stack([np.eye(3)[None]] * 2), criterion="x")
    # H for positions embeds in the state: fusion of 6-state estimates works too
    assert position_selector(6).shape == (3, 6)
