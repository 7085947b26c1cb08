"""HRP against PyPortfolioOpt's HRPOpt, risk parity against its defining equations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import threadpoolctl

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.finance.hrp import hrp_weights
from prism_kernels.finance.optimize import optimize, risk_parity_weights


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpoolctl.threadpool_limits(1):
        yield


def returns(n: int, T: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = max(2, n // 8)
    F = rng.normal(0, 0.01, size=(T, k)) @ rng.normal(0, 1, size=(k, n))
    return F + rng.normal(0, 0.01, size=(T, n)) * rng.uniform(0.5, 2.0, n)


@pytest.mark.parametrize("n", [2, 3, 10, 57, 120])
def test_hrp_matches_pypfopt_from_returns(n):
    from pypfopt import HRPOpt

    R = returns(n, seed=n)
    ref = HRPOpt(pd.DataFrame(R)).optimize()
    w_ref = np.array([ref[i] for i in range(n)])
    w = hrp_weights(returns=R)
    assert np.max(np.abs(w - w_ref)) <= 1e-8
    assert abs(w.sum() - 1) < 1e-12 and w.min() > 0


@pytest.mark.parametrize("method", ["single", "average", "ward"])
def test_hrp_matches_pypfopt_from_cov(method):
    from pypfopt import HRPOpt

    R = returns(30, seed=31)
    S = pd.DataFrame(np.cov(R, rowvar=False) * 252)
    ref = HRPOpt(cov_matrix=S).optimize(linkage_method=method)
    w = hrp_weights(cov=S.to_numpy(), linkage_method=method)
    assert np.max(np.abs(w - np.array([ref[i] for i in range(30)]))) <= 1e-8


def test_hrp_through_optimize(xp_name, to_xp):
    R = returns(12, seed=5)
    mu = R.mean(axis=0) * 252
    res = optimize(to_xp(mu), None, "hrp", returns=to_xp(R))
    np.testing.assert_allclose(to_numpy(res.weights), hrp_weights(returns=R), atol=1e-12)
    S = np.cov(R, rowvar=False) * 252
    w = to_numpy(res.weights)
    assert abs(float(res.volatility) - np.sqrt(w @ S @ w)) < 1e-10


def test_hrp_invalid():
    with pytest.raises(InvalidInput) as e:
        hrp_weights(returns=np.full((10, 3), np.nan))
    assert e.value.field == "returns"
    with pytest.raises(InvalidInput) as e:
        hrp_weights(cov=np.ones((2, 3)))
    assert e.value.field == "cov"
    with pytest.raises(InvalidInput) as e:
        hrp_weights()
    assert e.value.field == "returns"
    with pytest.raises(InvalidInput) as e:
        optimize(None, np.eye(3), "hrp", {"upper": 0.5})
    assert e.value.field == "constraints"
    assert hrp_weights(cov=np.array([[0.04]])).tolist() == [1.0]


@pytest.mark.parametrize("n", [2, 10, 80])
def test_risk_parity_equal_contributions(n):
    S = np.cov(returns(n, seed=100 + n), rowvar=False) * 252
    res = optimize(None, S, "risk_parity")
    w = res.weights
    rc = w * (S @ w) / (w @ S @ w)
    assert res.converged
    assert np.max(np.abs(rc - 1.0 / n)) <= 1e-6
    assert abs(w.sum() - 1) < 1e-12 and w.min() > 0
    np.testing.assert_allclose(res.risk_contributions / res.volatility, rc, atol=1e-12)


def test_risk_parity_budgets_and_batch(xp_name, to_xp):
    n = 15
    rng = np.random.default_rng(7)
    S = np.cov(returns(n, seed=7), rowvar=False) * 252
    b = rng.uniform(0.5, 2.0, n)
    b /= b.sum()
    res = optimize(None, to_xp(S), "risk_parity", budgets=to_xp(b))
    w = to_numpy(res.weights)
    assert np.max(np.abs(w * (S @ w) / (w @ S @ w) - b)) <= 1e-6
    # a batch of covariances with their own budgets in one call
    Ss = np.stack([S, S * np.outer(np.linspace(1, 2, n), np.linspace(1, 2, n))])
    bb = np.stack([b, np.full(n, 1.0 / n)])
    W, conv, _ = risk_parity_weights(to_xp(Ss), to_xp(bb))
    W = to_numpy(W)
    assert bool(np.all(to_numpy(conv)))
    for k in range(2):
        rc = W[k] * (Ss[k] @ W[k]) / (W[k] @ Ss[k] @ W[k])
        assert np.max(np.abs(rc - bb[k])) <= 1e-6
    ref = optimize(None, S, "risk_parity", budgets=b).weights
    assert np.max(np.abs(w - ref)) < 1e-8


def test_risk_parity_vs_scipy_closed_check():
    # two uncorrelated assets: ERC weights are inverse volatility
    S = np.diag([0.04, 0.09])
    w = optimize(None, S, "risk_parity").weights
    np.testing.assert_allclose(w, np.array([1 / 0.2, 1 / 0.3]) / (1 / 0.2 + 1 / 0.3), atol=1e-12)
