"""Cubical persistence of IR frames: our compiled union-find (H0, and H1 by duality) vs GUDHI.

The peer is GUDHI's fastest interface for 2-D images,
``gudhi.sklearn.cubical_persistence.CubicalPersistence`` on top-dimensional cells (its
dedicated 2-D code; it always computes H0 and H1 together), one job. Ours uses the same
convention (pixels as squares, 8-connectivity for H0) and one thread; ``engine`` says which
code ran (``numba``: :func:`prism_kernels.pixels.topology.diagrams` compiled; ``numpy``: the
array formulation). Correctness is recorded with every timing: whether each diagram is the
same multiset of points as GUDHI's, and the bottleneck distance to GUDHI's diagram of the
(first) frame: GUDHI's exact one (``e=0``) up to a few thousand points, else 0 from the
identical multisets (see :func:`_bottleneck`).

Timing: the harness's rule (wall clock, ``gc.collect()`` before every call, the median of
``repeat`` calls after one warm-up) with the two codes called in alternation, so a busy
machine slows both alike; ``fastest`` is the ratio of the fastest calls.
"""

from __future__ import annotations

import gc
import statistics
import time

import gudhi
import numpy as np
from gudhi.sklearn.cubical_persistence import CubicalPersistence
from scipy import ndimage

from benchmarks.harness import Case
from prism_kernels.compiled import engine
from prism_kernels.pixels import topology as T

PEER = f"gudhi {gudhi.__version__} CubicalPersistence"

#: Diagrams up to this many points get GUDHI's exact bottleneck distance (e=0).
EXACT_POINTS = 4000


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    b = b[np.lexsort((b[:, 1], b[:, 0]))]
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _bottleneck(pairs: list[tuple[np.ndarray, np.ndarray]], identical: bool) -> tuple[float, str]:
    """The largest bottleneck distance over ``(ours, peer)`` diagram pairs, and how it was
    found: ``"exact"`` (GUDHI, e=0, all diagrams small enough), ``"identical"`` (the same
    multisets of points: 0 by definition; GUDHI's exact algorithm runs out of memory on tens
    of thousands of points) or ``"approx"`` (GUDHI's default, an additive error of the
    smallest positive double)."""
    if max(max(len(a), len(b)) for a, b in pairs) <= EXACT_POINTS:
        return max(float(gudhi.bottleneck_distance(a, b, e=0)) for a, b in pairs), "exact"
    if identical:
        return 0.0, "identical"
    return max(float(gudhi.bottleneck_distance(a, b)) for a, b in pairs), "approx"


def _timed_pair(ours_fn, peer_fn, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds of ``repeat`` calls of each, alternating (one warm-up call each first)."""
    ours_fn()
    peer_fn()
    ours: list[float] = []
    peer: list[float] = []
    for _ in range(repeat):
        for fn, out in ((ours_fn, ours), (peer_fn, peer)):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return ours, peer


def _gudhi(dims):
    cp = CubicalPersistence(homology_dimensions=dims, n_jobs=1)
    return lambda frames: cp.fit_transform(list(frames))


def _row(name, ours_fn, peer_fn, repeat, ours, ref, note=""):
    """One case: ``ours``/``ref`` are lists (per frame) of lists (per dimension) of diagrams."""
    identical = all(
        _same(o, r) for fo, fr in zip(ours, ref, strict=True) for o, r in zip(fo, fr, strict=True)
    )
    dist, how = _bottleneck(list(zip(ours[0], ref[0], strict=True)), identical)
    t_ours, t_peer = _timed_pair(ours_fn, peer_fn, repeat)
    extra = {
        "points": int(sum(len(o) for fo in ours for o in fo)),
        "identical": identical,
        "bottleneck": dist,
        "bottleneck_by": how,
        "engine": engine(),
        "fastest": f"{min(t_peer) / min(t_ours):.2f}x",
    }
    return Case(
        "pixels_tda",
        name,
        statistics.median(t_ours),
        PEER,
        statistics.median(t_peer),
        note=note,
        extra=extra,
    )


def cubical_cases(quick: bool = False) -> list[Case]:
    """H0, and H0+H1, of one random frame, of one smooth frame and of a batch of frames."""
    rng = np.random.default_rng(0)
    size = 128 if quick else 512
    repeat = 3 if quick else 15
    nb, side = (8, 64) if quick else (32, 128)
    sets = [
        (f"{size}x{size} random", rng.random((1, size, size)), ""),
        (
            f"{size}x{size} smooth",
            ndimage.gaussian_filter(rng.normal(size=(size, size)), 4)[None],
            "",
        ),
        (
            f"batch {nb}x{side}x{side}",
            rng.random((nb, side, side)),
            "ours: one call; peer: one call, frames in sequence (n_jobs=1)",
        ),
    ]
    g0, g01 = _gudhi(0), _gudhi([0, 1])
    cases: list[Case] = []
    for label, frames, note in sets:
        cases.append(
            _row(
                f"H0 {label}",
                lambda f=frames: T.h0_diagrams(f),
                lambda f=frames: g0(f),
                repeat,
                [[d] for d in T.h0_diagrams(frames)],
                [[d] for d in g0(frames)],
                note=note or "peer computes H0+H1 internally",
            )
        )
        h0, h1 = T.diagrams(frames)
        cases.append(
            _row(
                f"H0+H1 {label}",
                lambda f=frames: T.diagrams(f),
                lambda f=frames: g01(f),
                repeat,
                [list(p) for p in zip(h0, h1, strict=True)],
                g01(frames),
                note=note or "ours: H1 by duality, one pass",
            )
        )
    return cases


def run(quick: bool = False) -> list[Case]:
    return cubical_cases(quick)
