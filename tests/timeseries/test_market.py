"""Market forecasts: per-symbol GARCH return/volatility forecasts and correlations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from arch import arch_model

from prism_kernels import backend
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import market as M
from prism_kernels.timeseries.core import z_value
from tests.timeseries.test_volatility import simulate_garch


@pytest.fixture(scope="module")
def returns():
    # three symbols, daily returns as fractions (about 1 % daily volatility)
    cols = [simulate_garch(400, 0.05, 0.05, 0.08, 0.0, 0.88, 30 + s) / 100 for s in range(3)]
    return np.stack(cols, axis=1)


@pytest.fixture(scope="module")
def prices(returns):
    return 100.0 * np.exp(np.vstack([np.zeros((1, 3)), np.cumsum(returns, axis=0)]))


def test_prices_and_returns_agree(prices, returns):
    a = M.market_forecast(prices, 5)
    b = M.market_forecast(returns=returns, horizon_days=5)
    np.testing.assert_allclose(a.volatility, b.volatility, rtol=1e-6)
    np.testing.assert_allclose(a.expected_returns, b.expected_returns, rtol=1e-6, atol=1e-9)


def test_garch_forecasts_match_arch(returns):
    h = 7
    f = M.market_forecast(returns=returns, horizon_days=h)
    assert f.expected_returns.shape == (3, h) and f.volatility.shape == (3, h)
    for i in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = arch_model(
                100 * returns[:, i], vol="GARCH", p=1, o=0, q=1, mean="Constant", rescale=False
            ).fit(disp="off")
            var = res.forecast(horizon=h).variance.values[-1]
        assert f.expected_returns[i, 0] == pytest.approx(res.params["mu"] / 100, abs=1e-5)
        np.testing.assert_allclose(f.volatility[i], np.sqrt(var) / 100, rtol=1e-3)
    z = z_value(0.95)
    np.testing.assert_allclose(f.lower, f.expected_returns - z * f.volatility, rtol=1e-12)
    np.testing.assert_allclose(f.upper, f.expected_returns + z * f.volatility, rtol=1e-12)
    np.testing.assert_allclose(f.cumulative_return, h * f.expected_returns[:, 0], rtol=1e-12)
    np.testing.assert_allclose(
        f.cumulative_volatility, np.sqrt((f.volatility**2).sum(axis=1)), rtol=1e-12
    )
    assert len(f.models) == 3 and f.models[0]["name"] == "GARCH(1,1)"


@pytest.mark.parametrize("method", ["dcc", "constant", "ewma", "sample"])
def test_correlation_methods(returns, method):
    f = M.market_forecast(returns=returns, horizon_days=4, correlation=method)
    R = f.correlation
    assert f.correlation_method == method
    assert f.correlation_path.shape == (4, 3, 3)
    np.testing.assert_allclose(R, f.correlation_path[-1])
    np.testing.assert_allclose(np.diag(R), 1.0, rtol=1e-12)
    np.testing.assert_allclose(R, R.T, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(R) > 0)
    if method == "sample":
        np.testing.assert_allclose(R, np.corrcoef(returns.T), rtol=1e-10)
    if method == "dcc":
        assert 0 <= f.extra["dcc"]["a"] and f.extra["dcc"]["a"] + f.extra["dcc"]["b"] < 1


def test_sample_moments_without_volatility(returns):
    r = returns[:10]
    f = M.market_forecast(returns=r, horizon_days=3, include_volatility=False)
    np.testing.assert_allclose(f.expected_returns[:, 2], r.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(f.volatility[:, 0], r.std(axis=0, ddof=1), rtol=1e-12)
    assert f.correlation_method == "sample"


def test_torch(returns):
    import torch

    f = M.market_forecast(returns=torch.as_tensor(returns), horizon_days=3, correlation="ewma")
    assert isinstance(f.volatility, torch.Tensor)
    g = M.market_forecast(returns=returns, horizon_days=3, correlation="ewma")
    np.testing.assert_allclose(backend.to_numpy(f.volatility), g.volatility, rtol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(f.correlation), g.correlation, rtol=1e-10)


def test_bad_input(prices, returns):
    cases = [
        (dict(prices=prices, returns=returns), "prices"),
        (dict(), "prices"),
        (dict(prices=-prices), "prices"),
        (dict(prices=prices[:20]), "prices"),
        (dict(returns=returns[:2], include_volatility=False), "returns"),
        (dict(returns=returns, correlation="copula"), "correlation"),
        (dict(returns=returns[:, :1], correlation="dcc"), "correlation"),
        (dict(returns=returns, horizon_days=0), "horizon_days"),
        (dict(returns=returns, level=1.5e2), "confidence_level"),
    ]
    for kwargs, field in cases:
        kwargs.setdefault("horizon_days", 3)
        with pytest.raises(InvalidInput) as e:
            M.market_forecast(**kwargs)
        assert e.value.field == field, kwargs
    bad = prices.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InvalidInput) as e:
        M.market_forecast(bad, 3)
    assert e.value.field == "prices"
    flat = returns.copy()
    flat[:, 2] = 0.001
    with pytest.raises(InvalidInput) as e:
        M.market_forecast(returns=flat, horizon_days=3)
    assert e.value.field == "returns"
    flat_prices = prices.copy()
    flat_prices[:, 0] = 50.0
    with pytest.raises(InvalidInput) as e:
        M.market_forecast(flat_prices, 3, include_volatility=False, correlation="sample")
    assert e.value.field == "prices"
