"""Multi-target tracking metrics: OSPA and GOSPA (alpha = 2) with its decomposition.

Both compare a set of estimates ``X`` (n, d) with a set of truths ``Y`` (m, d) at one time.
Distances are computed on the arrays' own backend; the optimal assignment is
``scipy.optimize.linear_sum_assignment`` on a host copy (a host edge: the assignment has no
array-API form).

* OSPA (Schuhmacher, Vo & Vo 2008), cut-off ``c``, order ``p``::

      d = ( (min_pi sum_i min(d(x_i, y_pi(i)), c)^p + c^p |n - m|) / max(n, m) )^(1/p)

* GOSPA (Rahmathullah, Garcia-Fernandez & Svensson 2017) with ``alpha = 2``::

      d^p = min over partial assignments  sum_assigned d^p + c^p / 2 (#missed + #false)

  where only pairs with ``d < c`` may be assigned. The decomposition (Stone Soup's
  ``GOSPAMetric``) reports ``localisation`` (sum of assigned ``d^p``), ``missed`` and
  ``false`` (``c^p / 2`` per missed truth / false estimate), so
  ``gospa = (localisation + missed + false)^(1/p)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from prism_kernels.arrays import as_float
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput


def _check(X: Any, Y: Any, c: float, p: float) -> tuple[np.ndarray, np.ndarray]:
    if not (np.isfinite(c) and c > 0):
        raise InvalidInput("c", "cut-off must be finite and > 0")
    if not (np.isfinite(p) and p >= 1):
        raise InvalidInput("p", "order must be finite and >= 1")
    out = []
    for name, A in (("estimates", X), ("truths", Y)):
        A = to_numpy(A) if hasattr(A, "shape") else np.asarray(A, dtype=np.float64)
        A = np.asarray(A, dtype=np.float64)
        if A.size == 0:
            A = A.reshape(0, A.shape[-1] if A.ndim == 2 else 0)
        if A.ndim != 2:
            raise InvalidInput(name, f"expected shape (n, d), got {A.shape}")
        if not np.all(np.isfinite(A)):
            raise InvalidInput(name, "contains NaN or inf")
        out.append(A)
    Xh, Yh = out
    if len(Xh) and len(Yh) and Xh.shape[1] != Yh.shape[1]:
        raise InvalidInput(
            "estimates", f"dimension {Xh.shape[1]} != truths dimension {Yh.shape[1]}"
        )
    return Xh, Yh


def distance_matrix(X: Any, Y: Any) -> Any:
    """Euclidean distances (n, m) on the backend of ``X``."""
    xp = get_namespace(X)
    Y = as_float(to_numpy(Y) if get_namespace(Y) is not xp else Y, xp, X)
    d = X[:, None, :] - Y[None, :, :]
    return xp.sqrt(xp.sum(d * d, axis=-1))


def ospa(X: Any, Y: Any, c: float, p: float = 2.0) -> float:
    """OSPA distance between estimates ``X`` (n, d) and truths ``Y`` (m, d).

    Returns 0 for two empty sets and ``c`` when exactly one is empty.
    """
    Xh, Yh = _check(X, Y, c, p)
    n, m = len(Xh), len(Yh)
    if n == 0 and m == 0:
        return 0.0
    if n == 0 or m == 0:
        return float(c)
    D = np.minimum(to_numpy(distance_matrix(_to_backend(X, Xh), Yh)), c) ** p
    r, k = linear_sum_assignment(D)
    total = D[r, k].sum() + c**p * abs(n - m)
    return float((total / max(n, m)) ** (1.0 / p))


@dataclass
class GospaResult:
    """GOSPA value and decomposition (alpha = 2).

    ``localisation``, ``missed`` and ``false`` are the p-th-power contributions, so
    ``gospa == (localisation + missed + false) ** (1 / p)``. ``assignment`` lists the
    ``(estimate, truth)`` index pairs with distance below ``c``.
    """

    gospa: float
    localisation: float
    missed: float
    false: float
    n_missed: int
    n_false: int
    assignment: list[tuple[int, int]]


def gospa(X: Any, Y: Any, c: float, p: float = 2.0) -> GospaResult:
    """GOSPA (alpha = 2) between estimates ``X`` (n, d) and truths ``Y`` (m, d)."""
    Xh, Yh = _check(X, Y, c, p)
    n, m = len(Xh), len(Yh)
    half = c**p / 2.0
    if n == 0 or m == 0:
        miss, false = half * m, half * n
        return GospaResult(float((miss + false) ** (1.0 / p)), 0.0, miss, false, m, n, [])
    D = to_numpy(distance_matrix(_to_backend(X, Xh), Yh))
    # assigning a pair at distance >= c costs c^p = cost of one missed + one false: cap at c
    Cp = np.minimum(D, c) ** p
    r, k = linear_sum_assignment(Cp)
    real = D[r, k] < c
    pairs = [(int(a), int(b)) for a, b in zip(r[real], k[real], strict=True)]
    loc = float((D[r[real], k[real]] ** p).sum())
    n_ass = len(pairs)
    n_missed, n_false = m - n_ass, n - n_ass
    miss, false = half * n_missed, half * n_false
    return GospaResult(
        float((loc + miss + false) ** (1.0 / p)), loc, miss, false, n_missed, n_false, pairs
    )


def _to_backend(X: Any, Xh: np.ndarray) -> Any:
    return X if hasattr(X, "shape") and not isinstance(X, list) and X.ndim == 2 else Xh
