"""Gating and global-nearest-neighbour (GNN) data association.

* :func:`mahalanobis_matrix` computes the full tracks x measurements matrix of squared
  Mahalanobis distances ``d2[i, k] = (z_k - zhat_i)^T S_i^-1 (z_k - zhat_i)`` on the
  device in one batched pass.
* :func:`chi2_gate` gives the chi-square gate for a probability (``scipy.stats.chi2``, a
  scalar computed on the host).
* :func:`gnn_assign` solves the assignment with ``scipy.optimize.linear_sum_assignment``
  (Jonker-Volgenant). This is a **host edge**: the assignment has no array-API form, so
  the cost matrix is copied to NumPy with :func:`prism_kernels.backend.to_numpy`, and the
  result (small integer index arrays) stays on the host.

The assignment minimises the total cost where each track takes at most one measurement,
each measurement goes to at most one track, pairs outside the gate are forbidden and a
track left unassigned costs ``miss_cost`` (default: the gate threshold). This is done by
appending one private "miss" column per track to the cost matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import chi2

from prism_kernels.arrays import as_float, check_finite, check_shape, device_of, inv_det_small
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.kalman import wrap_angle_dims


def chi2_gate(ndim: int, probability: float = 0.99) -> float:
    """Chi-square gate threshold on the squared Mahalanobis distance (``ndim`` dof)."""
    if ndim < 1:
        raise InvalidInput("ndim", "must be >= 1")
    if not 0.0 < probability < 1.0:
        raise InvalidInput("probability", "must be in (0, 1)")
    return float(chi2.ppf(probability, ndim))


def mahalanobis_matrix(
    zhat: Any, S: Any, Z: Any, angle_dims: tuple[int, ...] = ()
) -> tuple[Any, Any]:
    """Squared Mahalanobis distances between predicted and received measurements.

    Parameters
    ----------
    zhat : (N, m) predicted measurements of N tracks
    S : (N, m, m) innovation covariances
    Z : (K, m) measurements
    angle_dims : components that are angles (differences wrapped to (-pi, pi])

    Returns
    -------
    d2 : (N, K) squared distances
    log_det_S : (N,) ``log det S_i`` (for likelihood-based costs)
    """
    xp = get_namespace(zhat)
    Z = as_float(Z, xp, zhat)
    if zhat.ndim != 2:
        raise InvalidInput("zhat", f"expected shape (N, m), got {tuple(zhat.shape)}")
    m = zhat.shape[-1]
    if Z.ndim != 2 or Z.shape[-1] != m:
        raise InvalidInput("measurements", f"expected shape (K, {m}), got {tuple(Z.shape)}")
    check_shape(S, "S", (m, m))
    if S.shape[0] != zhat.shape[0]:
        raise InvalidInput("S", f"expected {zhat.shape[0]} covariances, got {S.shape[0]}")
    check_finite(Z, "measurements")
    Sinv, det = inv_det_small(S)
    N, K = zhat.shape[0], Z.shape[0]
    if angle_dims or N * K <= 65536:
        d = Z[None, :, :] - zhat[:, None, :]  # (N, K, m)
        if angle_dims:
            d = wrap_angle_dims(d, angle_dims)
        d2 = xp.sum(xp.matmul(d, Sinv) * d, axis=-1)
        return d2, xp.log(det)
    # Large N x K: expand the quadratic form into matrix products (no (N, K, m) temporaries):
    # d2 = z^T A z - 2 zhat^T A z + zhat^T A zhat, A = S^-1, coordinates centred first.
    ref = xp.mean(zhat, axis=0)
    zc, Zc = zhat - ref, Z - ref
    A = xp.reshape(Sinv, (N, m * m))
    ZZ = xp.reshape(Zc[:, :, None] * Zc[:, None, :], (K, m * m))
    Az = xp.matmul(Sinv, zc[..., None])[..., 0]  # (N, m)
    d2 = xp.matmul(A, ZZ.T) - 2.0 * xp.matmul(Az, Zc.T) + xp.sum(Az * zc, axis=-1)[:, None]
    return xp.clip(d2, 0.0, None), xp.log(det)


def euclidean_matrix(A: Any, B: Any) -> Any:
    """Euclidean distances (N, K) between rows of ``A`` (N, d) and ``B`` (K, d).

    Uses ``|a|^2 + |b|^2 - 2 a.b`` on centred coordinates (two matrix products, no
    (N, K, d) temporary); absolute error about ``1e-16 * |a|^2`` in the squared distance.
    """
    xp = get_namespace(A)
    B = as_float(B, xp, A)
    if A.shape[0] == 0 or B.shape[0] == 0:
        return xp.zeros((A.shape[0], B.shape[0]), dtype=xp.float64, device=device_of(A))
    ref = xp.mean(A, axis=0)
    a, b = A - ref, B - ref
    d2 = xp.sum(a * a, axis=-1)[:, None] + xp.sum(b * b, axis=-1)[None, :] - 2.0 * xp.matmul(a, b.T)
    return xp.sqrt(xp.clip(d2, 0.0, None))


@dataclass
class Assignment:
    """GNN result (host NumPy arrays).

    Attributes
    ----------
    tracks, measurements : (L,) int arrays
        Assigned pairs: track ``tracks[l]`` takes measurement ``measurements[l]``.
    unassigned_tracks, unassigned_measurements : int arrays
    cost : float
        Total cost including ``miss_cost`` for each unassigned track.
    """

    tracks: np.ndarray
    measurements: np.ndarray
    unassigned_tracks: np.ndarray
    unassigned_measurements: np.ndarray
    cost: float


def gnn_assign(cost: Any, gate: Any = None, miss_cost: float | None = None) -> Assignment:
    """Global-nearest-neighbour assignment on a (N tracks, K measurements) cost matrix.

    Parameters
    ----------
    cost : (N, K) array (any backend; copied to the host here)
    gate : float or (N, K) bool array, optional
        A float gates ``cost <= gate``; a boolean mask marks allowed pairs. Default: all
        finite costs are allowed.
    miss_cost : float, optional
        Cost of leaving a track unassigned. Default: the float gate, else a value larger
        than any allowed cost (so GNN assigns as many pairs as it can).

    Notes
    -----
    Host edge: ``scipy.optimize.linear_sum_assignment`` runs on NumPy copies.
    """
    C = np.asarray(to_numpy(cost), dtype=np.float64)
    if C.ndim != 2:
        raise InvalidInput("cost", f"expected a 2-D matrix, got shape {C.shape}")
    if np.isnan(C).any():
        raise InvalidInput("cost", "contains NaN")
    N, K = C.shape
    if gate is None:
        allowed = np.isfinite(C)
    elif isinstance(gate, (int, float, np.floating)):
        allowed = np.isfinite(C) & (C <= float(gate))
        if miss_cost is None:
            miss_cost = float(gate)
    else:
        allowed = np.asarray(to_numpy(gate), dtype=bool)
        if allowed.shape != C.shape:
            raise InvalidInput("gate", f"mask shape {allowed.shape} != cost shape {C.shape}")
        allowed = allowed & np.isfinite(C)
    if miss_cost is None:
        finite = C[allowed]
        miss_cost = float(np.abs(finite).sum() + 1.0) if finite.size else 1.0
    empty_i = np.zeros(0, dtype=np.intp)
    if N == 0 or K == 0 or not allowed.any():
        return Assignment(empty_i, empty_i, np.arange(N), np.arange(K), float(N * miss_cost))
    if N * K <= 4096:
        return _solve_block(C, allowed, np.arange(N), np.arange(K), miss_cost, N, K)
    # Split the gated bipartite graph into connected components: with gating most
    # components are one track and one measurement, solved without a call to the solver.
    ti, mi = np.nonzero(allowed)
    graph = coo_matrix((np.ones(len(ti)), (ti, N + mi)), shape=(N + K, N + K))
    _, labels = connected_components(graph, directed=False)
    t_lab, m_lab = labels[:N], labels[N:]
    pair_t: list[np.ndarray] = []
    pair_m: list[np.ndarray] = []
    # singletons: a component with exactly one track and one measurement
    t_count = np.bincount(t_lab, minlength=N + K)
    m_count = np.bincount(m_lab, minlength=N + K)
    single = (t_count[t_lab[ti]] == 1) & (m_count[t_lab[ti]] == 1)
    st, sm = ti[single], mi[single]
    keep = C[st, sm] <= miss_cost
    pair_t.append(st[keep])
    pair_m.append(sm[keep])
    multi = np.unique(t_lab[ti[~single]])
    for lab in multi:
        rows = np.flatnonzero(t_lab == lab)
        cols = np.flatnonzero(m_lab == lab)
        sub = np.where(allowed[np.ix_(rows, cols)], C[np.ix_(rows, cols)], np.inf)
        n = len(rows)
        miss = np.full((n, n), np.inf)
        np.fill_diagonal(miss, miss_cost)
        r, c = linear_sum_assignment(np.concatenate([sub, miss], axis=1))
        real = c < len(cols)
        pair_t.append(rows[r[real]])
        pair_m.append(cols[c[real]])
    t_idx = np.concatenate(pair_t).astype(np.intp)
    m_idx = np.concatenate(pair_m).astype(np.intp)
    order = np.argsort(t_idx)
    t_idx, m_idx = t_idx[order], m_idx[order]
    total = float(C[t_idx, m_idx].sum()) + (N - len(t_idx)) * miss_cost
    un_t = np.setdiff1d(np.arange(N), t_idx)
    un_m = np.setdiff1d(np.arange(K), m_idx)
    return Assignment(t_idx, m_idx, un_t, un_m, total)


def _solve_block(
    C: np.ndarray,
    allowed: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    miss_cost: float,
    N: int,
    K: int,
) -> Assignment:
    """One linear_sum_assignment on the rows/columns that have an allowed pair."""
    rows = rows[allowed[rows][:, cols].any(axis=1)]
    cols = cols[allowed[rows][:, cols].any(axis=0)] if len(rows) else cols[:0]
    t_idx = np.zeros(0, dtype=np.intp)
    m_idx = np.zeros(0, dtype=np.intp)
    if len(rows) and len(cols):
        sub = np.where(allowed[np.ix_(rows, cols)], C[np.ix_(rows, cols)], np.inf)
        n = len(rows)
        miss = np.full((n, n), np.inf)
        np.fill_diagonal(miss, miss_cost)
        r, c = linear_sum_assignment(np.concatenate([sub, miss], axis=1))
        real = c < len(cols)
        t_idx, m_idx = rows[r[real]], cols[c[real]]
        order = np.argsort(t_idx)
        t_idx, m_idx = t_idx[order], m_idx[order]
    total = float(C[t_idx, m_idx].sum()) + (N - len(t_idx)) * miss_cost
    return Assignment(
        t_idx, m_idx, np.setdiff1d(np.arange(N), t_idx), np.setdiff1d(np.arange(K), m_idx), total
    )
