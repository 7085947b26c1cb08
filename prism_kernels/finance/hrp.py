"""Hierarchical risk parity (Lopez de Prado 2016), as PyPortfolioOpt's ``HRPOpt`` computes it.

1. Distance ``d_ij = sqrt(clip((1 - rho_ij) / 2, 0, 1))`` from the correlation matrix.
2. Single-linkage clustering of the condensed distances (``scipy.cluster.hierarchy``,
   any of its linkage methods may be chosen), leaves in the tree's pre-order (quasi-diagonal
   order).
3. Recursive bisection of the ordered list into halves; each pair of halves splits its
   weight in inverse proportion to the inverse-variance-portfolio variance of each half.

Clustering is a sequential tree algorithm with no array-API form, so this kernel copies to
the host (``to_numpy``) at its entry and returns a NumPy array; the O(n^2) distance and the
cluster variances are small next to the linkage.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput


def _cluster_var(cov: np.ndarray, idx: list[int]) -> float:
    c = cov[np.ix_(idx, idx)]
    w = 1.0 / np.diag(c)
    w /= w.sum()
    return float(w @ c @ w)


def hrp_order(corr: np.ndarray, linkage_method: str = "single") -> tuple[list[int], np.ndarray]:
    """Quasi-diagonal order of the assets and the linkage matrix."""
    import scipy.cluster.hierarchy as sch
    import scipy.spatial.distance as ssd

    dist = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, 1.0))
    condensed = ssd.squareform(dist, checks=False)
    try:
        link = sch.linkage(condensed, linkage_method)
    except ValueError as exc:
        raise InvalidInput("linkage_method", str(exc)) from exc
    return list(sch.to_tree(link, rd=False).pre_order()), link


def hrp_allocation(cov: np.ndarray, order: list[int]) -> np.ndarray:
    """Recursive-bisection weights for assets taken in ``order``."""
    w = np.ones(cov.shape[0])
    clusters = [list(order)]
    while clusters:
        clusters = [
            c[j:k]
            for c in clusters
            for j, k in ((0, len(c) // 2), (len(c) // 2, len(c)))
            if len(c) > 1
        ]
        for i in range(0, len(clusters), 2):
            a, b = clusters[i], clusters[i + 1]
            va, vb = _cluster_var(cov, a), _cluster_var(cov, b)
            alpha = 1.0 - va / (va + vb)
            w[a] *= alpha
            w[b] *= 1.0 - alpha
    return w


def hrp_weights(returns: Any = None, cov: Any = None, linkage_method: str = "single") -> np.ndarray:
    """HRP weights ``(n,)`` (long-only, summing to 1), NumPy on the host.

    Parameters
    ----------
    returns : ``(T, n)`` period returns; the sample covariance and correlation come from them
        (as ``HRPOpt(returns)``).
    cov : ``(n, n)`` covariance, used when ``returns`` is None (correlation rounded to 6
        decimals, as ``HRPOpt(cov_matrix=...)``).
    """
    if returns is not None:
        r = to_numpy(returns).astype(float)
        if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 1:
            raise InvalidInput(
                "returns", f"expected a (T, n) array with T >= 2, got shape {r.shape}"
            )
        if not np.all(np.isfinite(r)):
            raise InvalidInput("returns", "contains NaN or infinite values")
        c = np.cov(r, rowvar=False, ddof=1).reshape(r.shape[1], r.shape[1])
        d = np.sqrt(np.diag(c))
        if np.any(d <= 0):
            raise InvalidInput("returns", "an asset has zero variance")
        corr = c / np.outer(d, d)
    elif cov is not None:
        c = to_numpy(cov).astype(float)
        if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 1:
            raise InvalidInput("cov", f"expected an (n, n) matrix, got shape {c.shape}")
        if not np.all(np.isfinite(c)):
            raise InvalidInput("cov", "contains NaN or infinite values")
        d = np.sqrt(np.diag(c))
        if np.any(d <= 0):
            raise InvalidInput("cov", "an asset has zero variance")
        corr = np.round(c / np.outer(d, d), 6)
    else:
        raise InvalidInput("returns", "hrp needs returns or a covariance matrix")
    n = c.shape[0]
    if n == 1:
        return np.ones(1)
    order, _ = hrp_order(corr, linkage_method)
    return hrp_allocation(c, order)
