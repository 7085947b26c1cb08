"""Order statistics by selection against full sorts: the same values, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import compiled
from prism_kernels.backend import to_numpy
from prism_kernels.imaging.order import (
    kth_smallest,
    median,
    median_and_mad,
    quantiles,
    radix_sort_by,
    select_inplace,
)


def _rows(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(B, N) float64 data sets that exercise every path of the selection."""
    crowded = rng.normal(0.0, 1e-9, (2, 6000))
    crowded[:, :3] = [-1e6, 1e6, 5e5]  # one bin holds nearly everything: selected again
    huge = rng.normal(size=(2, 500)) * 1e300  # the bin width overflows: sorted instead
    zeros = np.zeros((2, 40))
    zeros[:, ::3] = -0.0
    zeros[:, 1::7] = 1.0
    return {
        "normal+outliers": np.concatenate(
            [rng.normal(3.0, 2.0, (3, 5000)), rng.uniform(50, 200, (3, 40))], axis=1
        ),
        "ties": rng.integers(0, 7, (3, 1001)).astype(float),
        "constant": np.full((2, 17), 4.5),
        "one": rng.normal(size=(4, 1)),
        "two": rng.normal(size=(4, 2)),
        "crowded": crowded,
        "huge": huge,
        "signed zeros": zeros,
        "cauchy": rng.standard_cauchy((2, 3000)),
    }


@pytest.mark.parametrize("engine", ["compiled", "numpy"])
def test_kth_smallest_equals_the_sorted_values(rng, monkeypatch, engine):
    if engine == "numpy":
        monkeypatch.setattr(compiled, "AVAILABLE", False)
    for name, x in _rows(rng).items():
        n = x.shape[-1]
        ks = sorted({0, n - 1, n // 2, (n - 1) // 2, n // 3, (9 * n) // 10})
        ks = ks[::-1] + ks[:1]  # any order, repeats allowed
        got = kth_smallest(x, ks)
        want = np.sort(x, axis=-1)[:, ks]
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_kth_smallest_shapes_dtypes_and_errors(rng):
    x = rng.integers(0, 1000, (2, 3, 50)).astype(np.uint16)
    got = kth_smallest(x, [0, 49, 25])
    assert got.shape == (2, 3, 3) and got.dtype == np.float64
    np.testing.assert_array_equal(got, np.sort(x, axis=-1)[..., [0, 49, 25]].astype(float))
    one = kth_smallest(np.array([5.0, 1.0, 3.0]), [1])
    assert one.shape == (1,) and one[0] == 3.0
    with pytest.raises(ValueError):
        kth_smallest(np.ones(4), [4])


def test_median_quantiles_and_mad_equal_numpy(rng, to_xp):
    for name, x in _rows(rng).items():
        np.testing.assert_array_equal(to_numpy(median(to_xp(x))), np.median(x, axis=-1), name)
        med, mad = median_and_mad(x)
        np.testing.assert_array_equal(med, np.median(x, axis=-1), name)
        ref = np.median(np.abs(x - np.median(x, axis=-1)[:, None]), axis=-1)
        np.testing.assert_array_equal(mad, ref, name)
        qs = (0.0, 1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0, 100.0)
        got = to_numpy(quantiles(to_xp(x), qs))
        s = np.sort(x, axis=-1)
        n = x.shape[-1]
        for i, q in enumerate(qs):  # the linear rule, as frame_stats always computed it
            pos = q / 100.0 * (n - 1)
            lo = int(np.floor(pos))
            hi = min(lo + 1, n - 1)
            want = s[:, lo] + (s[:, hi] - s[:, lo]) * (pos - lo)
            np.testing.assert_array_equal(got[:, i], want, err_msg=f"{name} q={q}")
            if np.all(np.isfinite(s)) and np.ptp(s) < 1e200:
                np.testing.assert_allclose(got[:, i], np.percentile(x, q, axis=-1), rtol=1e-12)


def test_median_and_mad_without_numba(rng, monkeypatch):
    monkeypatch.setattr(compiled, "AVAILABLE", False)
    x = rng.normal(size=(3, 1001))
    med, mad = median_and_mad(x)
    np.testing.assert_array_equal(med, np.median(x, axis=-1))
    np.testing.assert_array_equal(mad, np.median(np.abs(x - med[:, None]), axis=-1))


def test_radix_sort_is_stable_and_orders_floats(rng):
    for keys in (
        rng.normal(size=2000),
        rng.integers(-3, 3, 2000).astype(float),
        np.array([0.0, -0.0, -1.0, np.inf, -np.inf, 1e-310, -1e-310, 0.0, -0.0]),
        rng.standard_cauchy(5000) * 1e200,
        np.array([7.0]),
    ):
        n = keys.size
        p = np.arange(n)
        radix_sort_by(
            keys, p, np.empty(n, np.uint64), np.empty(n, np.uint64), np.empty(n, np.int64)
        )
        np.testing.assert_array_equal(p, np.argsort(keys, kind="stable"))


def test_median_and_mad_from_hints_good_or_bad(rng):
    from prism_kernels.imaging.order import BINS, median_mad

    x = rng.normal(2.0, 3.0, 20_001)
    x[:100] = 500.0
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    counts, buf = np.zeros(BINS, np.int64), np.empty(x.size)
    for hint in [
        (med, mad),
        (med + 0.01, mad * 1.01),
        (med + 50.0, mad),
        (np.nan, np.nan),
        (0.0, 0.0),
    ]:
        got = median_mad(x, x.min(), x.max(), counts, buf, *hint)
        assert got == (med, mad), hint


@pytest.mark.parametrize("kind", ["normal", "few-levels", "constant", "sorted", "reversed"])
def test_select_inplace_equals_the_sorted_values(rng, kind):
    for n in (1, 2, 3, 7, 64, 1000, 20_000):
        a = {
            "normal": rng.normal(size=n),
            "few-levels": rng.integers(0, 3, n).astype(np.float64),
            "constant": np.full(n, 2.5),
            "sorted": np.sort(rng.normal(size=n)),
            "reversed": np.sort(rng.normal(size=n))[::-1].copy(),
        }[kind]
        ranks = np.unique(rng.integers(0, n, 4))
        out = np.empty(ranks.size)
        work = a.copy()
        select_inplace(work, ranks, out)
        np.testing.assert_array_equal(out, np.sort(a)[ranks])
        np.testing.assert_array_equal(np.sort(work), np.sort(a))  # reordered, nothing lost
