"""Gating and GNN assignment against brute force and direct formulas."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import chi2

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.association import (
    chi2_gate,
    euclidean_matrix,
    gnn_assign,
    mahalanobis_matrix,
)


def _brute(C, allowed, miss):
    N, K = C.shape
    best = np.inf
    for choice in itertools.product(range(-1, K), repeat=N):
        used = [c for c in choice if c >= 0]
        if len(used) != len(set(used)):
            continue
        if any(c >= 0 and not allowed[i, c] for i, c in enumerate(choice)):
            continue
        best = min(best, sum(C[i, c] if c >= 0 else miss for i, c in enumerate(choice)))
    return best


def test_gnn_equals_brute_force(rng):
    """300 random cost matrices up to 5 x 5 with a gate: optimal cost equal within 1e-9."""
    for _ in range(300):
        N, K = rng.integers(0, 6, size=2)
        C = rng.random((N, K)) * 10
        gate = float(rng.uniform(2, 10))
        a = gnn_assign(C, gate=gate)
        assert a.cost == pytest.approx(_brute(C, C <= gate, gate), abs=1e-9)
        # consistency: pairs gated, unique, complements
        assert np.all(C[a.tracks, a.measurements] <= gate)
        assert len(set(a.measurements.tolist())) == len(a.measurements)
        assert sorted(a.tracks.tolist() + a.unassigned_tracks.tolist()) == list(range(N))
        assert sorted(a.measurements.tolist() + a.unassigned_measurements.tolist()) == list(
            range(K)
        )


def test_gnn_large_sparse_uses_components_and_matches_dense(rng):
    """A gated 120 x 150 problem (component split) has the same optimum as one dense solve."""
    from scipy.optimize import linear_sum_assignment

    N, K = 120, 150
    C = rng.random((N, K)) * 50
    gate = 2.0
    a = gnn_assign(C, gate=gate)
    big = np.concatenate(
        [np.where(C <= gate, C, np.inf), np.where(np.eye(N) > 0, gate, np.inf)], axis=1
    )
    r, c = linear_sum_assignment(big)
    assert a.cost == pytest.approx(big[r, c].sum(), rel=1e-12)


def test_gnn_edge_cases():
    a = gnn_assign(np.zeros((0, 3)), gate=1.0)
    assert len(a.tracks) == 0 and a.unassigned_measurements.tolist() == [0, 1, 2]
    a = gnn_assign(np.zeros((2, 0)), gate=1.0)
    assert a.unassigned_tracks.tolist() == [0, 1]
    a = gnn_assign(np.array([[0.5]]), gate=1.0)
    assert a.tracks.tolist() == [0] and a.measurements.tolist() == [0]
    a = gnn_assign(np.array([[5.0]]), gate=1.0)
    assert len(a.tracks) == 0
    with pytest.raises(InvalidInput):
        gnn_assign(np.array([[np.nan]]))
    with pytest.raises(InvalidInput):
        gnn_assign(np.zeros(3))
    with pytest.raises(InvalidInput):
        gnn_assign(np.zeros((2, 2)), gate=np.ones((3, 3), bool))


def test_mahalanobis_matrix_direct_and_expanded(xp, to_xp, rng):
    """Both code paths (small: direct; large: expanded products) equal the per-pair formula."""
    for N, K in [(4, 7), (300, 400)]:
        zhat = rng.normal(size=(N, 3)) * 1e5
        A = rng.normal(size=(N, 3, 3))
        S = A @ A.transpose(0, 2, 1) + np.eye(3) * 100.0
        Z = zhat[rng.integers(0, N, K)] + rng.normal(size=(K, 3)) * 30
        d2, logdet = mahalanobis_matrix(to_xp(zhat), to_xp(S), to_xp(Z))
        d2 = to_numpy(d2)
        d = Z[None] - zhat[:, None]
        ref = np.einsum("nki,nki->nk", d, np.linalg.solve(S[:, None], d[..., None])[..., 0])
        # expanded form: absolute error ~ eps * |z|^2 / lambda_min(S)
        np.testing.assert_allclose(d2, ref, rtol=1e-9, atol=1e-3)
        np.testing.assert_allclose(to_numpy(logdet), np.linalg.slogdet(S)[1], rtol=1e-12)
    with pytest.raises(InvalidInput):
        mahalanobis_matrix(to_xp(zhat), to_xp(S), to_xp(np.zeros((2, 2))))
    with pytest.raises(InvalidInput):
        mahalanobis_matrix(to_xp(zhat), to_xp(S), to_xp(np.full((1, 3), np.nan)))


def test_angle_dims_wrap(rng):
    zhat = np.array([[np.pi - 0.01, 0.1]])
    S = np.eye(2)[None] * 1e-4
    Z = np.array([[-np.pi + 0.01, 0.1]])
    d2, _ = mahalanobis_matrix(zhat, S, Z, angle_dims=(0,))
    assert d2[0, 0] == pytest.approx(0.02**2 / 1e-4, rel=1e-9)


def test_chi2_gate_and_euclidean(rng):
    assert chi2_gate(3, 0.99) == pytest.approx(chi2.ppf(0.99, 3))
    with pytest.raises(InvalidInput):
        chi2_gate(3, 1.5)
    A, B = rng.normal(size=(5, 3)) * 1e3, rng.normal(size=(6, 3)) * 1e3
    np.testing.assert_allclose(
        euclidean_matrix(A, B), np.linalg.norm(A[:, None] - B[None], axis=-1), rtol=1e-10, atol=1e-8
    )
