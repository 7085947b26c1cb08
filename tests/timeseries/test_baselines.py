"""Naive, seasonal naive and drift: the FPP3 §5.5 closed forms, StatsForecast's models on the
same data, PyTorch equal to NumPy, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from statsforecast.models import Naive, RandomWalkWithDrift, SeasonalNaive

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.baselines import drift, naive, seasonal_naive


def _series(rng, B=5, n=60):
    return np.cumsum(rng.normal(0.3, 1.0, (B, n)), axis=1) + 20.0


def test_naive_closed_form_and_statsforecast(rng):
    y = _series(rng)
    f = naive(y, 9, level=0.9)
    z = norm.ppf(0.95)
    for i in range(y.shape[0]):
        sigma = np.sqrt(np.sum(np.diff(y[i]) ** 2) / (y.shape[1] - 1))
        sd = sigma * np.sqrt(np.arange(1, 10))
        np.testing.assert_allclose(f.mean[i], y[i, -1], rtol=0, atol=0)
        np.testing.assert_allclose(f.upper[i], y[i, -1] + z * sd, rtol=1e-12)
        p = Naive().fit(y[i]).predict(9, level=[90])
        np.testing.assert_allclose(f.mean[i], p["mean"], rtol=1e-12)
        np.testing.assert_allclose(f.lower[i], p["lo-90"], rtol=1e-12)
        np.testing.assert_allclose(f.upper[i], p["hi-90"], rtol=1e-12)
    np.testing.assert_allclose(f.fitted[:, 1:], y[:, :-1])
    assert np.all(np.isnan(f.fitted[:, 0]))
    assert f.models[0]["name"] == "Naive" and f.level == 0.9


@pytest.mark.parametrize("m", [1, 4, 12])
def test_seasonal_naive_closed_form_and_statsforecast(rng, m):
    y = _series(rng, n=50)
    h = 2 * m + 3
    f = seasonal_naive(y, h, level=95, season_length=m)
    assert f.level == 0.95
    for i in range(y.shape[0]):
        e = y[i, m:] - y[i, :-m]
        sigma = np.sqrt(np.sum(e**2) / (50 - m))
        k = np.arange(h) // m
        np.testing.assert_array_equal(f.mean[i], y[i, 50 - m + np.arange(h) % m])
        np.testing.assert_allclose(
            f.upper[i] - f.mean[i], norm.ppf(0.975) * sigma * np.sqrt(k + 1), rtol=1e-12
        )
        p = SeasonalNaive(season_length=m).fit(y[i]).predict(h, level=[95])
        np.testing.assert_allclose(f.mean[i], p["mean"], rtol=1e-12)
        np.testing.assert_allclose(f.lower[i], p["lo-95"], rtol=1e-12)


def test_drift_closed_form_and_statsforecast(rng):
    y = _series(rng, n=40)
    h = 8
    f = drift(y, h)
    n = 40
    steps = np.arange(1, h + 1)
    for i in range(y.shape[0]):
        c = (y[i, -1] - y[i, 0]) / (n - 1)
        e = np.diff(y[i]) - c
        sigma = np.sqrt(np.sum(e**2) / (n - 2))  # FPP3: T - K - M = n - 1 - 1
        np.testing.assert_allclose(f.mean[i], y[i, -1] + c * steps, rtol=1e-12)
        sd = sigma * np.sqrt(steps * (1 + steps / (n - 1)))
        np.testing.assert_allclose(f.upper[i] - f.mean[i], norm.ppf(0.975) * sd, rtol=1e-12)
        assert f.models[i]["drift"] == pytest.approx(c, rel=1e-12)
        p = RandomWalkWithDrift().fit(y[i]).predict(h, level=[95])
        np.testing.assert_allclose(f.mean[i], p["mean"], rtol=1e-12)
        # StatsForecast divides the squared residuals by n - 1, FPP3 and R by n - 2
        np.testing.assert_allclose(
            (f.upper[i] - f.mean[i]) * np.sqrt((n - 2) / (n - 1)),
            p["hi-95"] - p["mean"],
            rtol=1e-10,
        )


@pytest.mark.parametrize(
    "fn,kw", [(naive, {}), (seasonal_naive, {"season_length": 7}), (drift, {})]
)
def test_torch_equals_numpy(rng, to_xp, xp_name, fn, kw):
    y = _series(rng, B=3, n=30)
    a = fn(y, 10, **kw)
    b = fn(to_xp(y), 10, **kw)
    for k in ("mean", "lower", "upper", "fitted", "residuals"):
        np.testing.assert_allclose(to_numpy(getattr(b, k)), getattr(a, k), rtol=1e-12)
    for mb, ma in zip(b.models, a.models, strict=True):
        assert mb.keys() == ma.keys()
        for k in ma:
            assert mb[k] == (pytest.approx(ma[k], rel=1e-12) if isinstance(ma[k], float) else ma[k])


def test_drift_interval_coverage_on_seeded_random_walks():
    """95 % drift intervals on 2000 seeded random walks with drift: 93-97 % of the true
    next-10 values fall inside (20000 checks; the estimated drift's error is included)."""
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(0.5, 2.0, (2000, 110)), axis=1)
    f = drift(y[:, :100], 10)
    inside = (y[:, 100:] >= f.lower) & (y[:, 100:] <= f.upper)
    assert 0.93 <= inside.mean() <= 0.97


@pytest.mark.parametrize("fn", [naive, seasonal_naive, drift])
def test_bad_input(fn):
    with pytest.raises(InvalidInput) as e:
        fn([], 3)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        fn([1.0], 3)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        fn([1.0, np.nan, 3.0, 4.0], 3)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        fn([1.0, np.inf, 3.0, 4.0], 3)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        fn([1.0, 2.0, 3.0, 4.0], 0)
    assert e.value.field == "horizon"
    with pytest.raises(InvalidInput) as e:
        fn([1.0, 2.0, 3.0, 4.0], 2, level=1.5e2)
    assert e.value.field == "confidence_level"
    with pytest.raises(InvalidInput) as e:
        fn(np.ones((2, 2, 2)), 2)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        fn([1.0, 2.0, 3.0, 4.0], 2, bogus=1)
    assert e.value.field == "bogus"


def test_seasonal_naive_needs_a_season_of_data():
    with pytest.raises(InvalidInput) as e:
        seasonal_naive(np.arange(12.0), 3, season_length=12)
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        seasonal_naive(np.arange(12.0), 3, season_length=0)
    assert e.value.field == "season_length"


def test_one_series_and_huge_horizon(rng):
    f = naive(np.array([3.0, 5.0]), 1)
    assert f.mean.shape == (1, 1) and f.mean[0, 0] == 5.0
    assert f.upper[0, 0] - f.mean[0, 0] == pytest.approx(norm.ppf(0.975) * 2.0)
    with pytest.raises(InvalidInput) as e:
        naive(np.arange(5.0), 10**9)
    assert e.value.field == "horizon"
