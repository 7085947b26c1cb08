"""Backtests against a straightforward pandas day-by-day reference.

Tolerance: equity curves equal the reference within 1e-10 relative; NumPy and PyTorch within
1e-12.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from prism_kernels.backend import to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.finance.backtest import backtest, optimizer_strategy, rebalance_schedule


@pytest.fixture
def prices(rng):
    T, n = 400, 5
    r = rng.normal(0.0004, 0.012, (T - 1, n))
    p = 100 * np.vstack([np.ones((1, n)), np.cumprod(1 + r, axis=0)])
    return pd.DataFrame(p, index=pd.bdate_range("2021-01-04", periods=T), columns=list("ABCDE"))


def reference(prices: pd.DataFrame, rebalance_days, target, cost_bps=0.0, capital=1.0):
    """Day loop in pandas: drift holdings, trade to target on rebalance days, pay costs."""
    rets = prices.pct_change()
    h = pd.Series(0.0, index=prices.columns)
    cash = capital
    equity = []
    for t in range(len(prices)):
        if t > 0:
            h = h * (1 + rets.iloc[t])
        V = h.sum() + cash
        if t in rebalance_days:
            w = pd.Series(target(t), index=prices.columns)
            trade = w * V - h
            V = V - cost_bps / 1e4 * trade.abs().sum()
            h = w * V
            cash = V - h.sum()
        equity.append(V)
    return np.array(equity)


def test_buy_and_hold_matches_reference_and_closed_form(prices):
    w = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
    res = backtest(prices, "buy_and_hold", weights=w, cost_bps=0)
    closed = (prices.to_numpy() / prices.to_numpy()[0]) @ w
    np.testing.assert_allclose(res.equity, closed, rtol=1e-12)
    ref = reference(prices, {0}, lambda t: w, cost_bps=25, capital=1e6)
    res = backtest(prices, "buy_and_hold", weights=w, cost_bps=25, initial_capital=1e6)
    np.testing.assert_allclose(res.equity, ref, rtol=1e-10)
    assert res.stats["n_rebalances"] == 1
    assert abs(res.costs[0] - 1e6 * 25e-4) < 1e-6  # buying from cash trades the whole capital
    assert abs(res.turnover[0] - 1.0) < 1e-15


def test_equal_weight_monthly_with_costs_matches_reference(prices):
    d = prices.index
    days = {0} | {t for t in range(1, len(d) - 1) if d[t].month != d[t - 1].month}
    n = prices.shape[1]
    ref = reference(prices, days, lambda t: np.full(n, 1 / n), cost_bps=10, capital=1e6)
    res = backtest(prices, "equal_weight", rebalance="monthly", cost_bps=10, initial_capital=1e6)
    np.testing.assert_allclose(res.equity, ref, rtol=1e-10)
    assert set(res.rebalance_indices.tolist()) == days
    np.testing.assert_allclose(res.returns, ref[1:] / ref[:-1] - 1, rtol=1e-9, atol=1e-13)
    dd = ref / np.maximum.accumulate(ref) - 1
    np.testing.assert_allclose(res.drawdown, dd, atol=1e-12)
    assert abs(res.stats["max_drawdown"] + dd.min()) < 1e-12
    # stats from the reference equity
    r = ref[1:] / ref[:-1] - 1
    assert abs(res.stats["annualized_volatility"] - r.std(ddof=1) * np.sqrt(252)) < 1e-10
    assert abs(res.stats["sharpe_ratio"] - r.mean() / r.std(ddof=1) * np.sqrt(252)) < 1e-8
    cagr = (ref[-1] / 1e6) ** (252 / (len(ref) - 1)) - 1  # from the capital, before the first costs
    assert abs(res.stats["annualized_return"] - cagr) < 1e-10
    # costs: turnover-weighted and monotone in the rate
    assert abs(res.stats["total_cost"] - 10e-4 * sum(np.abs(res.trades).sum(axis=1))) < 1e-8
    free = backtest(prices, "equal_weight", rebalance="monthly", cost_bps=0)
    assert free.equity[-1] * 1e6 > res.equity[-1]


def test_every_k_periods_and_daily_rebalance_closed_form(prices):
    n = prices.shape[1]
    ref = reference(prices, set(range(0, len(prices) - 1, 21)), lambda t: np.full(n, 1 / n), 5)
    res = backtest(prices, "equal_weight", rebalance=21, cost_bps=5)
    np.testing.assert_allclose(res.equity, ref, rtol=1e-10)
    daily = backtest(prices, "equal_weight", rebalance=1)
    np.testing.assert_allclose(
        daily.returns, prices.pct_change().iloc[1:].mean(axis=1), rtol=1e-10, atol=1e-14
    )


def test_fixed_weights_with_cash_and_shorts(prices):
    w = np.array([0.5, 0.3, -0.2, 0.1, 0.0])  # 30 % cash, one short
    ref = reference(prices, set(range(0, len(prices) - 1, 10)), lambda t: w, 7)
    res = backtest(prices, w, rebalance=10, cost_bps=7)
    np.testing.assert_allclose(res.equity, ref, rtol=1e-10)


def test_window_strategy_no_lookahead_and_reference(prices):
    seen = []
    L = 60

    def inv_vol(window):
        seen.append(np.array(window))
        iv = 1 / np.std(window, axis=0, ddof=1)
        return iv / iv.sum()

    res = backtest(prices, inv_vol, lookback=L, rebalance=21, cost_bps=10)
    R = prices.pct_change().to_numpy()
    days = list(range(L, len(prices) - 1, 21))
    assert res.rebalance_indices.tolist() == days
    for t, win in zip(days, seen, strict=True):
        # the window is the L returns ending at close t (R[t] is close t-1 -> t): nothing later
        np.testing.assert_array_equal(win, R[t - L + 1 : t + 1])

    def target(t):
        iv = 1 / np.std(R[t - L + 1 : t + 1], axis=0, ddof=1)
        return iv / iv.sum()

    ref = reference(prices, set(days), target, 10)
    np.testing.assert_allclose(res.equity, ref, rtol=1e-10)
    assert np.all(res.equity[: L + 1] <= 1.0) and res.equity[0] == 1.0
    named = backtest(prices, "inverse_volatility", lookback=L, rebalance=21, cost_bps=10)
    np.testing.assert_allclose(named.equity, res.equity, rtol=1e-12)


def test_optimizer_strategy_plugs_in(prices):
    from prism_kernels.finance import estimators
    from prism_kernels.finance.optimize import optimize

    strat = optimizer_strategy("min_volatility", covariance="sample")
    res = backtest(prices, strat, lookback=120, rebalance="monthly", cost_bps=10)
    assert strat.counts["calls"] == res.stats["n_rebalances"]
    R = prices.pct_change().to_numpy()
    t0 = int(res.rebalance_indices[0])
    win = R[t0 - 119 : t0 + 1]
    direct = optimize(
        estimators.mean_returns(win), estimators.sample_cov(win), "min_volatility"
    ).weights
    np.testing.assert_allclose(res.weights[0], to_numpy(direct), atol=1e-12)
    np.testing.assert_allclose(res.weights.sum(axis=1), 1.0, atol=1e-6)
    by_name = backtest(prices, "MinVolatility", lookback=120, rebalance="monthly")
    assert by_name.strategy == "min_volatility"


def test_numpy_and_torch_agree(xp, to_xp, prices):
    P = prices.to_numpy().copy()
    a = backtest(to_xp(P), "equal_weight", rebalance=21, cost_bps=10)
    b = backtest(P, "equal_weight", rebalance=21, cost_bps=10)
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-12)
    c = backtest(to_xp(P), "inverse_volatility", lookback=40, rebalance=15, cost_bps=3)
    d = backtest(P, "inverse_volatility", lookback=40, rebalance=15, cost_bps=3)
    np.testing.assert_allclose(c.equity, d.equity, rtol=1e-12)


def test_result_to_dict_is_json(prices):
    res = backtest(prices, "equal_weight", rebalance="monthly", cost_bps=10)
    d = res.to_dict()
    s = json.dumps(d, allow_nan=False)
    assert isinstance(d["trades"], list) and d["n_trades"] == len(d["trades"]) > 0
    assert d["trades"][0]["side"] == "buy" and d["trades"][0]["date"].startswith("2021-01-04")
    assert len(d["equity_curve"]) == len(prices) and "sharpe_ratio" in d
    assert len(s) > 1000
    assert abs(sum(t["cost"] for t in d["trades"]) - res.stats["total_cost"]) < 1e-12


def test_schedule():
    assert rebalance_schedule(10, 3) == [0, 3, 6]
    assert rebalance_schedule(10, 3, start=2) == [2, 5, 8]
    assert rebalance_schedule(10, "never", start=4) == [4]
    assert rebalance_schedule(10, [7, 2, 2, 9]) == [0, 2, 7]  # 9 is the last close: no trade
    dates = pd.bdate_range("2024-01-25", periods=30)
    s = rebalance_schedule(30, "monthly", dates=dates)
    assert [dates[t].day for t in s[1:]] == [1, 1]


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"prices": np.array([[1.0, np.nan], [1.0, 1.0]])}, "prices"),
        ({"prices": np.array([[1.0, 2.0]])}, "prices"),
        ({"prices": np.array([[1.0, -2.0], [1.0, 1.0]])}, "prices"),
        ({"prices": np.zeros((0, 2))}, "prices"),
        ({"strategy": "buy_and_hold", "weights": [0.5, 0.5, 0.0]}, "weights"),
        ({"strategy": [0.5, 0.5, 0.0]}, "strategy"),
        ({"strategy": lambda w: np.ones(2)}, "lookback"),
        ({"strategy": lambda w: np.ones(3) / 3, "lookback": 2}, "strategy"),
        ({"strategy": lambda w: np.array([np.nan, 0.5]), "lookback": 2}, "strategy"),
        ({"strategy": "inverse_volatility", "lookback": 100}, "lookback"),
        ({"strategy": "momentum_magic"}, "strategy"),
        ({"cost_bps": -1}, "cost_bps"),
        ({"cost_bps": float("nan")}, "cost_bps"),
        ({"rebalance": 0}, "rebalance"),
        ({"rebalance": "monthly"}, "rebalance"),
        ({"rebalance": "fortnightly"}, "rebalance"),
        ({"initial_capital": 0}, "initial_capital"),
        ({"asset_names": ["x"]}, "asset_names"),
        ({"start": 50}, "start"),
    ],
)
def test_invalid_inputs_name_the_field(kwargs, field):
    base = {
        "prices": 100 + np.arange(20.0)[:, None] * np.array([[1.0, 0.5]]),
        "strategy": "equal_weight",
    }
    base.update(kwargs)
    p = base.pop("prices")
    s = base.pop("strategy")
    with pytest.raises(InvalidInput) as e:
        backtest(p, s, **base)
    assert e.value.field == field


def test_initial_capital_too_large_is_refused():
    from prism_kernels.errors import InvalidInput
    from prism_kernels.finance.backtest import backtest

    prices = np.cumprod(1 + np.full((30, 2), 0.01), axis=0)
    with pytest.raises(InvalidInput) as exc:
        backtest(prices, "equal_weight", initial_capital=1e308)
    assert exc.value.field == "initial_capital"
