"""Estimators against pandas, scikit-learn and PyPortfolioOpt on seeded prices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.finance import estimators as E


@pytest.fixture
def prices(rng) -> np.ndarray:
    r = rng.normal(0.0004, 0.012, size=(400, 7)) + rng.normal(0, 0.008, size=(400, 1))
    return 100.0 * np.cumprod(1.0 + r, axis=0)


def test_returns_match_pandas(prices):
    df = pd.DataFrame(prices)
    np.testing.assert_allclose(
        E.simple_returns(prices), df.pct_change().dropna().to_numpy(), rtol=0, atol=1e-14
    )
    np.testing.assert_allclose(
        E.log_returns(prices), np.log(df / df.shift(1)).dropna().to_numpy(), rtol=0, atol=1e-14
    )
    np.testing.assert_allclose(E.returns_from_prices(prices, log=True), E.log_returns(prices))


def test_mean_and_sample_cov(prices):
    r = E.simple_returns(prices)
    np.testing.assert_allclose(E.mean_returns(r), r.mean(axis=0) * 252, rtol=1e-13)
    np.testing.assert_allclose(E.sample_cov(r), np.cov(r, rowvar=False) * 252, rtol=1e-12)
    np.testing.assert_allclose(
        E.sample_cov(r, annualize=False), np.cov(r, rowvar=False), rtol=1e-12
    )
    np.testing.assert_allclose(E.annualize_volatility(0.01), 0.01 * np.sqrt(252))
    np.testing.assert_allclose(E.annualize_return(0.001, 12), 0.012)


def test_geometric_mean_matches_pypfopt(prices):
    from pypfopt import expected_returns

    ref = expected_returns.mean_historical_return(pd.DataFrame(prices), compounding=True).to_numpy()
    ours = E.mean_returns(E.simple_returns(prices), method="geometric")
    np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_ledoit_wolf_matches_sklearn(prices):
    from sklearn.covariance import LedoitWolf

    r = E.simple_returns(prices)
    lw = LedoitWolf().fit(r)
    cov, s = E.ledoit_wolf(r, annualize=False)
    np.testing.assert_allclose(cov, lw.covariance_, rtol=1e-10, atol=1e-16)
    assert abs(s - lw.shrinkage_) < 1e-10
    cov_a, _ = E.ledoit_wolf(r)
    np.testing.assert_allclose(cov_a, lw.covariance_ * 252, rtol=1e-10)


def test_ewma_matches_pypfopt(prices):
    from pypfopt import risk_models

    r = E.simple_returns(prices)
    ref = risk_models.exp_cov(pd.DataFrame(r), returns_data=True, span=60, frequency=252).to_numpy()
    np.testing.assert_allclose(E.ewma_cov(r, span=60), ref, rtol=1e-10, atol=1e-14)


def test_cov_to_corr(prices):
    r = E.simple_returns(prices)
    np.testing.assert_allclose(
        E.cov_to_corr(E.sample_cov(r)), np.corrcoef(r, rowvar=False), atol=1e-13
    )


def test_backends_agree(prices, to_xp):
    r_np = E.simple_returns(prices)
    r = E.simple_returns(to_xp(prices))
    np.testing.assert_allclose(to_numpy(r), r_np, atol=1e-15)
    np.testing.assert_allclose(
        to_numpy(E.log_returns(to_xp(prices))), E.log_returns(prices), atol=1e-15
    )
    np.testing.assert_allclose(to_numpy(E.sample_cov(r)), E.sample_cov(r_np), rtol=1e-12)
    np.testing.assert_allclose(to_numpy(E.ledoit_wolf(r)[0]), E.ledoit_wolf(r_np)[0], rtol=1e-12)
    np.testing.assert_allclose(
        to_numpy(E.ewma_cov(r, span=30)), E.ewma_cov(r_np, span=30), rtol=1e-12
    )
    np.testing.assert_allclose(
        to_numpy(E.mean_returns(r, method="geometric")),
        E.mean_returns(r_np, method="geometric"),
        rtol=1e-12,
        atol=1e-12,  # growth ** 252 - 1 near 0 cancels: backends differ by ~3e-14 there
    )


@pytest.mark.parametrize(
    "bad",
    [
        np.array([[1.0, 2.0], [np.nan, 2.1], [1.1, 2.2]]),  # NaN
        np.array([[1.0, 2.0]]),  # fewer than 2 rows
        np.array([[1.0, 2.0], [0.0, 2.1]]),  # non-positive
        np.array([[1.0, 2.0], [-1.0, 2.1]]),
        np.ones((2, 2, 2)),  # wrong rank
    ],
)
def test_invalid_prices_name_the_field(bad):
    with pytest.raises(InvalidInput) as e:
        E.simple_returns(bad)
    assert e.value.field == "prices"


def test_invalid_returns_and_options(prices):
    r = E.simple_returns(prices)
    with pytest.raises(InvalidInput) as e:
        E.sample_cov(r[:1])
    assert e.value.field == "returns"
    with pytest.raises(InvalidInput) as e:
        E.mean_returns(r, method="median")
    assert e.value.field == "method"
    with pytest.raises(InvalidInput):
        E.ewma_cov(r, span=0.5)
