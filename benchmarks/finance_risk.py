"""Finance risk and backtesting: ours against NumPy, skfolio and a pandas loop, same data.

Cases
-----
* ``mc_var``: Monte Carlo VaR/CVaR at 99 %, 1 day, ``N`` paths x ``n`` assets (1,000,000 x 100
  in the full run). Peer: the straightforward NumPy code (``rng.multivariate_normal`` for all
  paths at once, then ``np.quantile`` and the tail mean). Extra: both VaRs, the parametric
  normal VaR, the differences in units of our reported standard error. skfolio and
  Riskfolio-Lib have no Monte Carlo VaR (their measures take given scenarios), so they are
  the peer of the next case instead. With ``PRISM_BACKEND=torch|cupy`` ours runs there.
* ``hist_var``: historical VaR/CVaR of ``k`` portfolios over ``T`` days in one batched call
  vs ``skfolio.measures.value_at_risk``/``cvar`` on the same (T, k) matrix. skfolio's VaR is
  the empirical ``inverted_cdf`` quantile; its CVaR is Rockafellar-Uryasev (with the
  fractional atom at the VaR), ours is the mean of returns at or below the VaR: the extra
  reports both differences.
* ``backtest``: equal weight, monthly, 10 bps, on skfolio's bundled S&P 500 prices (20
  stocks) vs a day-by-day pandas loop; extra: max relative difference of the equity curves.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.harness import Case, timeit
from prism_kernels import backend
from prism_kernels.finance import risk
from prism_kernels.finance.backtest import backtest


def _cov(rng: np.random.Generator, n: int) -> np.ndarray:
    k = max(2, n // 10)
    B = rng.normal(0, 0.01, (n, k))
    return B @ B.T + np.diag(rng.uniform(0.5e-4, 2e-4, n))


def _numpy_mc(
    mu: np.ndarray, cov: np.ndarray, w: np.ndarray, N: int, c: float, seed: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    X = rng.multivariate_normal(mu, cov, size=N)
    p = X @ w
    q = np.quantile(p, 1 - c)
    return -q, -p[p <= q].mean()


def _case_mc(quick: bool) -> Case:
    N, n, c = (200_000, 50, 0.99) if quick else (1_000_000, 100, 0.99)
    rng = np.random.default_rng(0)
    cov = _cov(rng, n)
    mu = rng.normal(3e-4, 2e-4, n)
    w = rng.dirichlet(np.ones(n))
    name = backend.resolve_backend()
    W, M, S = (backend.asarray(a, backend=name, dtype="float64") for a in (w, mu, cov))
    sync = (lambda: backend.synchronize(S)) if name != "numpy" else None
    res = {}

    def ours() -> None:
        res["mc"] = risk.monte_carlo_var(W, M, S, c, 1, n_paths=N, seed=1)

    t_ours = timeit(ours, repeat=1, warmup=1, sync=sync)
    peer = {}

    def numpy_peer() -> None:
        peer["v"] = _numpy_mc(mu, cov, w, N, c, 2)

    t_peer = timeit(numpy_peer, repeat=1, warmup=0)
    mc = res["mc"]
    pv, pcv = risk.normal_var_cvar(float(w @ mu), math.sqrt(float(w @ cov @ w)), c, 1)
    se = float(mc.standard_error)
    return Case(
        "finance_risk",
        f"mc_var {N:,} paths x {n} assets, 99% 1d ({name})",
        t_ours,
        "numpy multivariate_normal+quantile",
        t_peer,
        note="same model, different seeds",
        extra={
            "var_ours": float(mc.var),
            "var_numpy": float(peer["v"][0]),
            "var_parametric": pv,
            "ours_minus_param_in_se": (float(mc.var) - pv) / se,
            "numpy_minus_param_in_se": (peer["v"][0] - pv) / se,
            "cvar_ours": float(mc.cvar),
            "cvar_parametric": pcv,
            "se": se,
        },
    )


def _case_hist(quick: bool) -> Case:
    T, k = (2500, 200) if quick else (2500, 2000)
    rng = np.random.default_rng(1)
    R = rng.standard_t(4, size=(T, k)) * 0.01
    name = backend.resolve_backend()
    Rb = backend.asarray(R, backend=name, dtype="float64")
    sync = (lambda: backend.synchronize(Rb)) if name != "numpy" else None
    res = {}

    def ours() -> None:
        v, c = risk.historical_var_cvar(Rb, 0.95, method="inverted_cdf")
        res["lin"] = (backend.to_numpy(v), backend.to_numpy(c))

    t_ours = timeit(ours, repeat=3, sync=sync)
    try:
        from skfolio import measures

        def peer() -> None:
            res["sk"] = (measures.value_at_risk(R, 0.95), measures.cvar(R, 0.95))

        t_peer = timeit(peer, repeat=3)
        extra = {
            "max_var_diff": float(np.max(np.abs(res["lin"][0] - res["sk"][0]))),
            "max_cvar_diff": float(np.max(np.abs(res["lin"][1] - res["sk"][1]))),
        }
        note = ""
    except Exception as exc:  # pragma: no cover - depends on the install
        t_peer, extra, note = None, {}, f"skfolio failed: {type(exc).__name__}: {exc}"
    return Case(
        "finance_risk",
        f"hist_var {k} portfolios x {T} days ({name})",
        t_ours,
        "skfolio.measures",
        t_peer,
        note,
        extra,
    )


def _pandas_backtest(prices, cost_bps: float) -> np.ndarray:
    import pandas as pd

    rets = prices.pct_change()
    d = prices.index
    days = {0} | {t for t in range(1, len(d) - 1) if d[t].month != d[t - 1].month}
    n = prices.shape[1]
    w = pd.Series(1.0 / n, index=prices.columns)
    h = pd.Series(0.0, index=prices.columns)
    cash, out = 1.0, []
    for t in range(len(prices)):
        if t > 0:
            h = h * (1 + rets.iloc[t])
        V = h.sum() + cash
        if t in days:
            trade = w * V - h
            V -= cost_bps / 1e4 * trade.abs().sum()
            h = w * V
            cash = V - h.sum()
        out.append(V)
    return np.array(out)


def _case_backtest(quick: bool) -> Case:
    try:
        from prism_kernels.finance.data import load_sp500

        prices = load_sp500("2019-01-01" if quick else "2000-01-01")
        src = "S&P 500 (skfolio bundle)"
    except Exception:
        from prism_kernels.finance.market import generate_market

        prices = generate_market(20, 2000 if quick else 5700, seed=0).to_frame()
        src = "synthetic"
    res = {}

    def ours() -> None:
        res["eq"] = backtest(prices, "equal_weight", rebalance="monthly", cost_bps=10).equity

    t_ours = timeit(ours, repeat=3)

    def peer() -> None:
        res["ref"] = _pandas_backtest(prices, 10)

    t_peer = timeit(peer, repeat=1, warmup=0)
    diff = float(np.max(np.abs(res["eq"] / res["ref"] - 1)))
    return Case(
        "finance_risk",
        f"backtest equal-weight monthly 10bp, {prices.shape[0]} d x {prices.shape[1]} ({src})",
        t_ours,
        "pandas day loop",
        t_peer,
        extra={"max_rel_diff": diff, "final_value": float(res["eq"][-1])},
    )


def run(quick: bool = False) -> list[Case]:
    return [_case_mc(quick), _case_hist(quick), _case_backtest(quick)]


if __name__ == "__main__":
    from benchmarks.harness import format_table

    print(format_table(run(quick=True)))
