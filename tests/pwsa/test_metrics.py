"""OSPA / GOSPA against Stone Soup's GOSPAMetric / OSPAMetric and brute force."""

from __future__ import annotations

import datetime
import itertools

import numpy as np
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.metrics import gospa, ospa


def _brute_gospa(X, Y, c, p):
    n, m = len(X), len(Y)
    best = np.inf
    for choice in itertools.product(range(-1, m), repeat=n):
        used = [k for k in choice if k >= 0]
        if len(used) != len(set(used)):
            continue
        ds = [np.linalg.norm(X[i] - Y[k]) for i, k in enumerate(choice) if k >= 0]
        if any(d >= c for d in ds):
            continue
        best = min(best, sum(d**p for d in ds) + c**p / 2 * (n + m - 2 * len(ds)))
    return best ** (1 / p)


def _brute_ospa(X, Y, c, p):
    n, m = len(X), len(Y)
    if n > m:
        X, Y, n, m = Y, X, m, n
    if m == 0:
        return 0.0
    if n == 0:
        return c
    best = min(
        sum(min(np.linalg.norm(X[i] - Y[perm[i]]), c) ** p for i in range(n))
        for perm in itertools.permutations(range(m), n)
    )
    return ((best + c**p * (m - n)) / m) ** (1 / p)


def test_against_stonesoup_and_brute_force(xp, to_xp, rng):
    """GOSPA value and decomposition equal Stone Soup's GOSPAMetric and brute force within
    1e-9; OSPA equals brute force for p = 2 and Stone Soup for p = 1 (Stone Soup solves the
    OSPA assignment on d rather than d^p, which is only optimal for p = 1)."""
    from stonesoup.measures import Euclidean
    from stonesoup.metricgenerator.ospametric import GOSPAMetric, OSPAMetric
    from stonesoup.types.state import State

    t = datetime.datetime(2026, 1, 1)
    c = 3.0
    g_ss = GOSPAMetric(c=c, p=2, measure=Euclidean())
    o_ss = OSPAMetric(c=c, p=1, measure=Euclidean())
    for _ in range(60):
        n, m = rng.integers(0, 6, size=2)
        X, Y = rng.random((n, 2)) * 6, rng.random((m, 2)) * 6
        r = gospa(to_xp(X), to_xp(Y), c, 2)
        assert r.gospa == pytest.approx(_brute_gospa(X, Y, c, 2), abs=1e-9)
        assert r.gospa == pytest.approx((r.localisation + r.missed + r.false) ** 0.5, abs=1e-9)
        assert ospa(to_xp(X), to_xp(Y), c, 2) == pytest.approx(_brute_ospa(X, Y, c, 2), abs=1e-9)
        if n + m == 0:
            continue
        sx = [State(x.reshape(-1, 1), timestamp=t) for x in X]
        sy = [State(y.reshape(-1, 1), timestamp=t) for y in Y]
        v = g_ss.compute_gospa_metric(sx, sy)[0].value
        for key in ("localisation", "missed", "false"):
            assert getattr(r, key) == pytest.approx(v[key], abs=1e-9)
        assert r.gospa == pytest.approx(v["distance"], abs=1e-9)
        assert ospa(X, Y, c, 1) == pytest.approx(o_ss.compute_OSPA_distance(sx, sy).value, abs=1e-9)


def test_gospa_counts_and_edges():
    X = np.array([[0.0, 0.0], [10.0, 0.0]])
    Y = np.array([[0.5, 0.0], [50.0, 50.0], [60.0, 60.0]])
    r = gospa(X, Y, c=5.0, p=2)
    assert (r.n_missed, r.n_false) == (2, 1)
    assert r.localisation == pytest.approx(0.25)
    assert r.assignment == [(0, 0)]
    assert gospa(np.zeros((0, 3)), np.zeros((0, 3)), 1.0).gospa == 0.0
    assert ospa(np.zeros((0, 3)), np.ones((2, 3)), 4.0) == 4.0
    assert gospa(np.zeros((0, 3)), np.ones((2, 3)), 2.0).gospa == pytest.approx(np.sqrt(4.0))
    with pytest.raises(InvalidInput):
        gospa(np.full((1, 2), np.nan), Y, 1.0)
    with pytest.raises(InvalidInput):
        gospa(X, np.ones((2, 3)), 1.0)
    with pytest.raises(InvalidInput):
        ospa(X, Y, c=-1.0)
    assert to_numpy(np.zeros(1)).shape == (1,)
