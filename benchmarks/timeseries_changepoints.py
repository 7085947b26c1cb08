"""Change points: ours against ruptures looped over the series, same data, one process.

(a) PELT, l2 cost (ruptures' default), on 100 seeded regime series of 2,000 points (5 mean
    and scale changes each, :func:`prism_kernels.timeseries.generators.regime_series`),
    ``min_size=2``, ``jump=5``, per-series BIC penalty computed once by ours
    (:func:`prism_kernels.timeseries.changepoints.bic_penalty`) and given to both: ours is one
    batched call (the compiled engine), ruptures is ``Pelt(...).fit(y).predict(pen)`` per
    series.
(b) the same with the normal cost (mean and variance changes).
(c) binary segmentation with ``n_breakpoints=5``, l2 cost.

``extra`` holds the number of series whose breakpoint lists are identical to ruptures' (the
test suite requires all of them). ruptures is timed once (it takes tens of seconds), ours as
the median of 3 calls after one warm-up call (which also loads or compiles the numba code).
``--quick``: 20 series of 500 points.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import ruptures as rpt

from benchmarks.harness import Case, timeit
from prism_kernels.timeseries import changepoints as C
from prism_kernels.timeseries.generators import regime_series


def _data(n_series: int, n: int) -> np.ndarray:
    return regime_series(
        n,
        n_changes=5,
        min_gap=n // 20,
        mean_shift=2.0,
        sd_range=(0.7, 1.5),
        n_series=n_series,
        seed=0,
    )["values"]


def _pelt_case(Y: np.ndarray, cost: str) -> Case:
    pens = C.bic_penalty(Y, cost)
    ours = timeit(lambda: C.pelt(Y, pens, cost, min_size=2, jump=5), repeat=3)
    got = C.pelt(Y, pens, cost, min_size=2, jump=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CostNormal's "new behaviour" notice
        t0 = time.perf_counter()
        ref = [
            rpt.Pelt(model=cost, min_size=2, jump=5).fit(y).predict(pen=float(p))
            for y, p in zip(Y, pens, strict=True)
        ]
        peer = time.perf_counter() - t0
    agree = sum(a == b for a, b in zip(got, ref, strict=True))
    return Case(
        "timeseries_changepoints",
        f"PELT {cost}, {Y.shape[0]} series x {Y.shape[1]} points",
        ours,
        "ruptures Pelt (looped)",
        peer,
        note="same BIC penalty, min_size 2, jump 5",
        extra={
            "series_identical": f"{agree}/{len(ref)}",
            "mean_breakpoints": float(np.mean([len(b) - 1 for b in got])),
        },
    )


def _binseg_case(Y: np.ndarray) -> Case:
    ours = timeit(lambda: C.binseg(Y, n_breakpoints=5, cost="l2"), repeat=3)
    got = C.binseg(Y, n_breakpoints=5, cost="l2")
    t0 = time.perf_counter()
    ref = [rpt.Binseg(model="l2", min_size=2, jump=5).fit(y).predict(n_bkps=5) for y in Y]
    peer = time.perf_counter() - t0
    agree = sum(a == b for a, b in zip(got, ref, strict=True))
    return Case(
        "timeseries_changepoints",
        f"Binseg l2, 5 breakpoints, {Y.shape[0]} series x {Y.shape[1]} points",
        ours,
        "ruptures Binseg (looped)",
        peer,
        note="min_size 2, jump 5",
        extra={"series_identical": f"{agree}/{len(ref)}"},
    )


def run(quick: bool = False) -> list[Case]:
    Y = _data(20, 500) if quick else _data(100, 2000)
    return [_pelt_case(Y, "l2"), _pelt_case(Y, "normal"), _binseg_case(Y)]
