"""PELT and binary segmentation against ruptures (the reference) on seeded series.

Our l1 cost sums ``|x - median|`` in NumPy's pairwise order, as ruptures does, so exact ties
(frequent with l1) break the same way; 20 integer-valued series test those ties directly.

Counts: for each of the three costs, 40 seeded series (length 30-160, 0-3 mean/variance
changes, random ``min_size`` 1-4, ``jump`` 1-5 and penalty) for PELT, binary segmentation
with a penalty and with ``n_breakpoints``: 3 x 40 x 3 = 360 comparisons with ruptures, every
one required to be equal (the breakpoint lists, exactly). The array-API engine is checked
against the compiled one on NumPy and PyTorch (12 series per cost and detector).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import ruptures as rpt

from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import changepoints as C

COSTS = ("l1", "l2", "normal")
N_SERIES = 40


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    k = int(rng.integers(0, 4))
    cps = np.sort(rng.choice(np.arange(5, n - 5), k, replace=False))
    mu, sd = np.zeros(n), np.ones(n)
    for c in cps:
        mu[c:] += rng.normal(0, 3)
        sd[c:] *= rng.uniform(0.5, 2)
    return 10.0 + mu + sd * rng.normal(size=n)


def _cases(cost: str, count: int, seed: int):
    rng = np.random.default_rng([seed, COSTS.index(cost)])
    for _ in range(count):
        n = int(rng.integers(30, 160))
        yield (
            _series(rng, n),
            int(rng.integers(1, 5)),
            int(rng.integers(1, 6)),
            float(rng.uniform(2, 25)),
            int(rng.integers(1, 4)),
        )


def _rpt(cls, cost, min_size, jump):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CostNormal's "new behaviour" notice
        return cls(model=cost, min_size=min_size, jump=jump)


@pytest.mark.parametrize("cost", COSTS)
def test_pelt_equals_ruptures(cost):
    diffs = []
    for y, ms, j, pen, _ in _cases(cost, N_SERIES, 1):
        ref = _rpt(rpt.Pelt, cost, ms, j).fit(y).predict(pen=pen)
        ours = C.pelt(y, pen, cost, ms, j)[0]
        if ours != ref:
            diffs.append((len(y), ms, j, pen, ours, ref))
    assert not diffs, f"{len(diffs)}/{N_SERIES} differ: {diffs[:3]}"


@pytest.mark.parametrize("cost", COSTS)
def test_binseg_equals_ruptures(cost):
    diffs = []
    for y, ms, j, pen, k in _cases(cost, N_SERIES, 2):
        est = _rpt(rpt.Binseg, cost, ms, j).fit(y)
        if C._sanity(len(y), k, j, max(ms, C._COST_MIN_SIZE[cost])):
            ref_k = est.predict(n_bkps=k)
            ours_k = C.binseg(y, n_breakpoints=k, cost=cost, min_size=ms, jump=j)[0]
            if ours_k != ref_k:
                diffs.append(("n_bkps", k, ours_k, ref_k))
        ref_p = est.predict(pen=pen)
        ours_p = C.binseg(y, penalty=pen, cost=cost, min_size=ms, jump=j)[0]
        if ours_p != ref_p:
            diffs.append(("pen", pen, ours_p, ref_p))
    assert not diffs, diffs[:3]


@pytest.mark.parametrize("cost", COSTS)
def test_batch_equals_one_by_one(cost):
    cases = list(_cases(cost, 6, 3))
    n = 120
    rng = np.random.default_rng(7)
    Y = np.stack([_series(rng, n) for _ in range(6)])
    pens = np.array([c[3] for c in cases])
    batch = C.pelt(Y, pens, cost, 3, 2)
    assert batch == [C.pelt(Y[i], pens[i], cost, 3, 2)[0] for i in range(6)]
    batch = C.binseg(Y, n_breakpoints=2, cost=cost, min_size=3, jump=2)
    assert batch == [
        C.binseg(Y[i], n_breakpoints=2, cost=cost, min_size=3, jump=2)[0] for i in range(6)
    ]


@pytest.mark.parametrize("cost", COSTS)
def test_array_engine_equals_compiled(cost, to_xp):
    rng = np.random.default_rng([11, COSTS.index(cost)])
    for _ in range(3):
        n = int(rng.integers(30, 80))
        Y = np.stack([_series(rng, n) for _ in range(4)])
        if cost == "l1":
            # integer values: every l1 sum is exact in any order, so the engines' tie-breaks
            # (frequent with l1) are compared, not their summation orders.
            Y = np.round(Y)
        ms, j, pen = int(rng.integers(1, 4)), int(rng.integers(1, 4)), float(rng.uniform(3, 15))
        Yx = to_xp(Y)
        assert C.pelt(Yx, pen, cost, ms, j, engine="array") == C.pelt(Y, pen, cost, ms, j)
        assert C.binseg(Yx, n_breakpoints=2, cost=cost, min_size=ms, jump=j, engine="array") == (
            C.binseg(Y, n_breakpoints=2, cost=cost, min_size=ms, jump=j)
        )
        assert C.binseg(Yx, penalty=pen, cost=cost, min_size=ms, jump=j, engine="array") == (
            C.binseg(Y, penalty=pen, cost=cost, min_size=ms, jump=j)
        )


def test_l1_ties_break_like_ruptures():
    """Integer-valued series: many exactly equal l1 gains; ruptures' tie-breaks must hold."""
    rng = np.random.default_rng(21)
    for _ in range(20):
        n = int(rng.integers(30, 120))
        y = np.round(_series(rng, n) / 2.0)
        ms, j = int(rng.integers(2, 4)), int(rng.integers(1, 4))
        assert C.pelt(y, 3.0, "l1", ms, j)[0] == _rpt(rpt.Pelt, "l1", ms, j).fit(y).predict(pen=3.0)
        est = _rpt(rpt.Binseg, "l1", ms, j).fit(y)
        assert C.binseg(y, n_breakpoints=2, cost="l1", min_size=ms, jump=j)[0] == est.predict(
            n_bkps=2
        )
        assert C.binseg(y, penalty=3.0, cost="l1", min_size=ms, jump=j)[0] == est.predict(pen=3.0)


def test_auto_engine_runs_on_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    y = np.r_[rng.normal(0, 1, 60), rng.normal(4, 1, 60)]
    assert C.pelt(torch.tensor(y), 10.0) == C.pelt(y, 10.0)


def test_bic_penalty_closed_form_and_recovery():
    rng = np.random.default_rng(3)
    n, sigma = 600, 0.5
    truth = [150, 400, n]
    levels = [0.0, 2.0, -1.0]
    y = np.concatenate(
        [np.full(b - a, m) for a, b, m in zip([0, 150, 400], truth, levels, strict=True)]
    )
    y = y + rng.normal(0, sigma, n)
    d = np.diff(y)
    sig = 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2)
    assert abs(sig - sigma) < 0.05  # robust to the level shifts
    assert C.bic_penalty(y, "l2")[0] == pytest.approx(2 * math.log(n) * sig**2, rel=1e-12)
    assert C.bic_penalty(y, "l1")[0] == pytest.approx(2 * math.log(n) * sig / (2 * math.sqrt(2)))
    assert C.bic_penalty(y, "normal")[0] == pytest.approx(3 * math.log(n))
    for cost in COSTS:
        bk = C.pelt(y, "bic", cost, jump=1)[0]
        assert len(bk) == 3 and all(abs(a - b) <= 3 for a, b in zip(bk, truth, strict=True)), (
            cost,
            bk,
        )
        pen = float(C.bic_penalty(y, cost)[0])
        j = 5 if cost == "l1" else 1  # ruptures' l1 with jump 1 takes seconds here
        assert C.pelt(y, "bic", cost, jump=j)[0] == _rpt(rpt.Pelt, cost, 2, j).fit(y).predict(
            pen=pen
        )
    bs = C.binseg(y, penalty="bic", jump=1)[0]
    assert len(bs) == 3 and all(abs(a - b) <= 3 for a, b in zip(bs, truth, strict=True))


@pytest.mark.parametrize("cost", COSTS)
def test_edge_cases_like_ruptures(cost):
    const = np.full(50, 3.0)
    assert C.pelt(const, 1.0, cost)[0] == [50]
    assert C.pelt(const, 1.0, cost)[0] == _rpt(rpt.Pelt, cost, 2, 5).fit(const).predict(pen=1.0)
    assert C.binseg(const, penalty=1.0, cost=cost)[0] == [50]
    # n < 2 * min_size: one segment only (PELT), no room for a breakpoint (binseg)
    y = np.array([0.0, 5.0, 0.0, 5.0, 1.0])
    assert C.pelt(y, 0.1, cost, min_size=3, jump=1)[0] == [5]
    assert _rpt(rpt.Pelt, cost, 3, 1).fit(y).predict(pen=0.1) == [5]
    with pytest.raises(InvalidInput) as e:
        C.binseg(y, n_breakpoints=1, cost=cost, min_size=3, jump=1)
    assert e.value.field == "n_breakpoints"
    # one point: no segment of min_size fits
    with pytest.raises(InvalidInput) as e:
        C.pelt([1.0], 1.0, cost, min_size=2)
    assert e.value.field == "values"


def test_l2_one_point_is_one_segment():
    assert C.pelt([1.0], 1.0, "l2", min_size=1, jump=1) == [[1]]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"y": [1.0, np.nan, 2.0, 3.0]}, "values"),
        ({"y": [1.0, np.inf, 2.0, 3.0]}, "values"),
        ({"y": []}, "values"),
        ({"y": np.zeros((2, 3, 4))}, "values"),
        ({"cost": "rbf"}, "cost"),
        ({"penalty": -1.0}, "penalty"),
        ({"penalty": "aic"}, "penalty"),
        ({"penalty": [1.0, 2.0]}, "penalty"),
        ({"penalty": float("nan")}, "penalty"),
        ({"jump": 0}, "jump"),
        ({"min_size": 0}, "min_size"),
        ({"engine": "gpu"}, "engine"),
    ],
)
def test_invalid_input_names_field(kwargs, field):
    args = {"y": np.arange(20.0), "penalty": 1.0, **kwargs}
    with pytest.raises(InvalidInput) as e:
        C.pelt(**args)
    assert e.value.field == field


def test_huge_input_refused_before_work(monkeypatch):
    monkeypatch.setattr(C, "MAX_POINTS", 1000)
    with pytest.raises(InvalidInput) as e:
        C.pelt(np.zeros((2, 600)), 1.0)
    assert e.value.field == "values"
    monkeypatch.setattr(C, "MAX_L1_ARRAY", 1000)
    with pytest.raises(InvalidInput) as e:
        C.pelt(np.zeros((1, 200)), 1.0, "l1", engine="array")
    assert e.value.field == "values" and "compiled" in e.value.message


def test_binseg_needs_one_rule():
    y = np.arange(20.0)
    with pytest.raises(InvalidInput):
        C.binseg(y)
    with pytest.raises(InvalidInput):
        C.binseg(y, n_breakpoints=1, penalty=1.0)


def test_segment_stats_closed_form():
    rng = np.random.default_rng(9)
    Y = rng.normal(size=(2, 30))
    bks = [[10, 30], [5, 17, 30]]
    stats = C.segment_stats(Y, bks)
    for s, bk in enumerate(bks):
        starts = [0, *bk[:-1]]
        assert [d["start"] for d in stats[s]] == starts
        for d, a, b in zip(stats[s], starts, bk, strict=True):
            assert d["end"] == b and d["n"] == b - a
            assert d["mean"] == pytest.approx(Y[s, a:b].mean(), rel=1e-12)
            assert d["std"] == pytest.approx(Y[s, a:b].std(), rel=1e-12)
    assert C.segment_stats(Y[0], [10, 30]) == [stats[0]]
    with pytest.raises(InvalidInput) as e:
        C.segment_stats(Y, [[10, 29], [30]])
    assert e.value.field == "breakpoints.0"
    with pytest.raises(InvalidInput) as e:
        C.segment_stats(Y, [[30]])
    assert e.value.field == "breakpoints"
