"""Cubical persistence of IR frames: our batched union-find H0 (and H1 by duality) vs GUDHI.

The peer is GUDHI's fastest interface for 2-D images,
``gudhi.sklearn.cubical_persistence.CubicalPersistence`` on top-dimensional cells (its
dedicated 2-D code; it always computes H0 and H1 together). Ours uses the same convention
(pixels as squares, 8-connectivity for H0). Correctness is recorded with every timing:
the bottleneck distance to GUDHI's diagram and whether the two multisets of points are
identical.
"""

from __future__ import annotations

import gudhi
import numpy as np
from gudhi.sklearn.cubical_persistence import CubicalPersistence

from benchmarks.harness import Case, timeit
from prism_kernels.pixels import topology as T

PEER = f"gudhi {gudhi.__version__} CubicalPersistence"


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a = a[np.lexsort((a[:, 1], a[:, 0]))]
    b = b[np.lexsort((b[:, 1], b[:, 0]))]
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _gudhi(dims):
    cp = CubicalPersistence(homology_dimensions=dims, n_jobs=1)
    return lambda frames: cp.fit_transform(list(frames))


def cubical_cases(quick: bool = False) -> list[Case]:
    """H0 and H0+H1 of one frame, and H0 of a batch of frames."""
    rng = np.random.default_rng(0)
    size = 128 if quick else 512
    repeat = 3 if quick else 5
    img = rng.random((size, size))
    cases: list[Case] = []

    g0 = _gudhi(0)
    ours0 = T.h0_diagrams(img)[0]
    ref0 = g0([img])[0]
    cases.append(
        Case(
            "pixels_tda",
            f"H0 {size}x{size} random",
            timeit(lambda: T.h0_diagrams(img), repeat=repeat),
            PEER,
            timeit(lambda: g0([img]), repeat=repeat),
            note="peer computes H0+H1 internally",
            extra={
                "points": len(ours0),
                "bottleneck": gudhi.bottleneck_distance(ours0, ref0),
                "identical": _same(ours0, ref0),
            },
        )
    )

    g01 = _gudhi([0, 1])
    ref = g01([img])[0]
    ours1 = T.h1_diagrams(img)[0]
    cases.append(
        Case(
            "pixels_tda",
            f"H0+H1 {size}x{size} random",
            timeit(lambda: (T.h0_diagrams(img), T.h1_diagrams(img)), repeat=repeat),
            PEER,
            timeit(lambda: g01([img]), repeat=repeat),
            note="ours: H1 by duality",
            extra={
                "bottleneck_h1": gudhi.bottleneck_distance(ours1, ref[1]),
                "identical": _same(ours0, ref[0]) and _same(ours1, ref[1]),
            },
        )
    )

    # A smooth frame (few minima: the IR case) and a batch of frames in one call.
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(rng.normal(size=(size, size)), 4)
    o = T.h0_diagrams(smooth)[0]
    r = g0([smooth])[0]
    cases.append(
        Case(
            "pixels_tda",
            f"H0 {size}x{size} smooth",
            timeit(lambda: T.h0_diagrams(smooth), repeat=repeat),
            PEER,
            timeit(lambda: g0([smooth]), repeat=repeat),
            extra={
                "points": len(o),
                "bottleneck": gudhi.bottleneck_distance(o, r),
                "identical": _same(o, r),
            },
        )
    )

    nb, side = (8, 64) if quick else (32, 128)
    stack = rng.random((nb, side, side))
    ours_b = T.h0_diagrams(stack)
    ref_b = g0(stack)
    cases.append(
        Case(
            "pixels_tda",
            f"H0 batch {nb}x{side}x{side}",
            timeit(lambda: T.h0_diagrams(stack), repeat=repeat),
            PEER,
            timeit(lambda: g0(stack), repeat=repeat),
            note="ours: one call; peer: one call, frames in sequence (n_jobs=1)",
            extra={"identical": all(_same(a, b) for a, b in zip(ours_b, ref_b, strict=True))},
        )
    )
    return cases


def run(quick: bool = False) -> list[Case]:
    return cubical_cases(quick)
