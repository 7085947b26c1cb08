"""The synthetic market generator and the bundled S&P 500 data.

Moments are checked against the generator's stated true mu/cov with tolerances set from
standard errors (normal, single regime: 4 standard errors; regimes with fat tails: loose
relative bounds, since regime persistence inflates the sampling error).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prism_kernels.errors import InvalidInput, Unavailable
from prism_kernels.finance import data
from prism_kernels.finance.market import generate_market
from prism_kernels.seeds import SEED_MAX, check_seed


def test_shapes_names_and_price_identity():
    m = generate_market(12, 300, n_sectors=3, seed=5)
    assert (
        m.prices.shape == (300, 12) and m.returns.shape == (299, 12) and m.regimes.shape == (299,)
    )
    assert len(m.names) == len(set(m.names)) == 12 and set(m.sectors) == {"TECH", "FIN", "ENERGY"}
    np.testing.assert_allclose(m.prices[1:], m.prices[:-1] * (1 + m.returns), rtol=1e-14)
    assert np.all(m.prices[0] == 100.0)
    assert m.mu.shape == (12,) and m.cov.shape == (12, 12)
    np.testing.assert_allclose(m.cov, m.cov.T, atol=0)
    assert np.all(np.linalg.eigvalsh(m.cov) > 0)
    df = m.to_frame()
    assert list(df.columns) == m.names and isinstance(df.index, pd.DatetimeIndex) and len(df) == 300
    assert m.returns_frame().shape == (299, 12)


def test_seeded():
    a, b, c = (
        generate_market(5, 100, seed=1),
        generate_market(5, 100, seed=1),
        generate_market(5, 100, seed=2),
    )
    np.testing.assert_array_equal(a.prices, b.prices)
    assert not np.allclose(a.prices, c.prices)


def test_true_moments_single_regime_normal():
    T = 60_000
    m = generate_market(6, T + 1, n_sectors=2, seed=3, dof=None, regimes=False)
    assert m.regimes.sum() == 0
    sd = np.sqrt(np.diag(m.cov))
    assert np.all(np.abs(m.returns.mean(axis=0) - m.mu) < 4 * sd / np.sqrt(T))
    S = np.cov(m.returns.T)
    # standard error of a covariance entry: sqrt((s_ii s_jj + s_ij^2) / T)
    se = np.sqrt((np.outer(sd**2, sd**2) + m.cov**2) / T)
    assert np.all(np.abs(S - m.cov) < 5 * se)


def test_regimes_fat_tails_and_mixture_moments():
    m = generate_market(6, 200_001, n_sectors=2, seed=4, dof=5)
    assert abs(m.regimes.mean() - m.stationary[1]) < 0.02
    S = np.cov(m.returns.T)
    assert np.linalg.norm(S - m.cov) / np.linalg.norm(m.cov) < 0.08
    assert np.all(np.abs(m.returns.mean(axis=0) - m.mu) < 0.1 * np.sqrt(np.diag(m.cov)))
    calm, stressed = m.returns[m.regimes == 0], m.returns[m.regimes == 1]
    assert np.all(stressed.std(axis=0) > 2 * calm.std(axis=0))
    np.testing.assert_allclose(np.cov(calm.T), m.regime_cov[0], rtol=0.1, atol=2e-6)
    # stressed days are more correlated (the market factor dominates) and drift down
    corr = lambda x: np.corrcoef(x.T)[np.triu_indices(6, 1)].mean()  # noqa: E731
    assert stressed.mean() < 0 < calm.mean()
    assert corr(stressed) >= corr(calm) - 0.02
    # fat tails in calm days: clearly positive excess kurtosis (normal would be 0)
    assert np.all(stats.kurtosis(calm, axis=0) > 1.0)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"n_assets": 0}, "n_assets"),
        ({"n_periods": 1}, "n_periods"),
        ({"n_sectors": 0}, "n_sectors"),
        ({"n_assets": 3, "n_sectors": 4}, "n_sectors"),
        ({"dof": 2}, "dof"),
        ({"p_calm_to_stressed": 1.5}, "p_calm_to_stressed"),
        ({"idio_vol": -0.1}, "idio_vol"),
    ],
)
def test_invalid(kwargs, field):
    with pytest.raises(InvalidInput) as e:
        generate_market(**kwargs)
    assert e.value.field == field


# ----------------------------------------------------------------------------- data


def test_sp500_loads_offline_from_the_package():
    df = data.load_sp500()
    assert df.shape[1] == 20 and len(df) > 8000
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.is_monotonic_increasing
    assert not df.isna().to_numpy().any() and (df.to_numpy() > 0).all()
    part = data.load_sp500("2019-01-01", "2019-12-31", ["aapl", "JPM"])
    assert (
        list(part.columns) == ["AAPL", "JPM"] and part.index[0].year == part.index[-1].year == 2019
    )
    idx = data.load_sp500_index("2019-01-01", "2019-01-31")
    assert idx.shape[1] == 1 and len(idx) > 15
    r = data.prices_to_returns(part)
    np.testing.assert_allclose(r.to_numpy(), part.pct_change().iloc[1:].to_numpy())
    np.testing.assert_allclose(data.prices_to_returns(part.to_numpy()), r.to_numpy(), rtol=1e-14)
    np.testing.assert_allclose(
        data.prices_to_returns(part.to_numpy(), log=True), np.log1p(r.to_numpy()), atol=1e-15
    )


def test_sp500_errors(monkeypatch):
    with pytest.raises(InvalidInput) as e:
        data.load_sp500(assets=["NOPE"])
    assert e.value.field == "assets"
    with pytest.raises(InvalidInput):
        data.load_sp500("2030-01-01")
    monkeypatch.setitem(sys.modules, "skfolio", None)
    monkeypatch.setitem(sys.modules, "skfolio.datasets", None)
    with pytest.raises(Unavailable, match="skfolio"):
        data.load_sp500()


@pytest.mark.parametrize("seed", [-1, -9276, SEED_MAX + 1, 1.5, "7", True])
def test_bad_seed_is_invalid_input(seed):
    """numpy's default_rng raises a bare ValueError on a negative seed: checked first."""
    with pytest.raises(InvalidInput) as e:
        generate_market(3, 10, seed=seed)
    assert e.value.field == "seed"


def test_check_seed_accepts_the_full_range():
    assert check_seed(None) is None
    assert check_seed(np.uint64(SEED_MAX)) == SEED_MAX and check_seed(np.int32(0)) == 0
    a = generate_market(3, 50, seed=SEED_MAX).prices
    b = generate_market(3, 50, seed=SEED_MAX).prices
    np.testing.assert_array_equal(a, b)
