"""Rebalancing backtests with proportional transaction costs.

Model (close to close, fractional holdings)
------------------------------------------
``prices`` is ``(T, n)``: row ``t`` is the close of period ``t``. The portfolio starts as
``initial_capital`` in cash. At each rebalance time ``t`` (at the close, after prices are
known) the strategy gives target weights ``w`` (fractions of the portfolio value; ``1 -
sum(w)`` stays in cash at zero interest, negative weights are shorts). With pre-trade value
``V`` and holdings ``h`` (money per asset), the traded notional is ``|w V - h|`` per asset,
the cost is ``cost_bps / 1e4 * sum |w V - h|`` (charged on the pre-cost target, the usual
approximation), and the new holdings are ``w (V - cost)``. Between rebalances holdings drift
with prices: ``h_t = h_{t-1} (1 + r_t)``. The first purchase from cash is a trade and pays
costs too.

A strategy is one of

* ``"buy_and_hold"``: buy ``weights`` (default equal) at the start, never trade again;
* ``"equal_weight"``: ``1/n`` at every rebalance;
* ``"inverse_volatility"``: ``1/sigma_i`` normalised, from the look-back window;
* an array of weights: rebalance back to them (constant mix);
* any callable ``weights = f(window)`` where ``window`` is the ``(lookback, n)`` array of
  the returns observed up to and including the rebalance time (no look-ahead), on the
  backend of ``prices``. An optimiser plugs in here.

Kernels are backend-generic (``xp``); the time loop runs over rebalances only (between two
rebalances holdings grow by a cumulative product).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.arrays import as_float, device_of
from prism_kernels.backend import backend_name, get_namespace, to_numpy
from prism_kernels.errors import Infeasible, InvalidInput
from prism_kernels.finance import estimators
from prism_kernels.finance.optimize import normalize_objective, optimize
from prism_kernels.finance.risk import to_float_array
from prism_kernels.names import snake_case as _snake

MAX_CAPITAL = 1e15  # currency units; larger capitals risk overflowing the equity curve

__all__ = ["BacktestResult", "backtest", "optimizer_strategy", "rebalance_schedule", "STRATEGIES"]

STRATEGIES = ("buy_and_hold", "equal_weight", "inverse_volatility")
_CALENDAR = {
    "daily": None,
    "weekly": "W",
    "monthly": "M",
    "quarterly": "Q",
    "yearly": "Y",
    "annual": "Y",
}


@dataclass
class BacktestResult:
    """What a backtest produced.

    Series (NumPy, host): ``equity`` (T,) portfolio value after each close (after costs),
    ``returns`` (T-1,) period returns of the equity, ``drawdown`` (T,) ``equity/peak - 1``.
    Per rebalance: ``rebalance_indices`` (m,), ``weights`` (m, n) targets, ``trades`` (m, n)
    signed traded notional (buys > 0), ``turnover`` (m,) traded notional / pre-trade value,
    ``costs`` (m,) money. ``stats``: total and annualised return, annualised volatility,
    Sharpe, maximum drawdown, total cost, mean turnover, win rate...
    """

    equity: np.ndarray
    returns: np.ndarray
    drawdown: np.ndarray
    rebalance_indices: np.ndarray
    weights: np.ndarray
    trades: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray
    stats: dict[str, Any]
    asset_names: list[str]
    dates: list[Any] | None = None
    strategy: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def trade_list(self, min_notional: float = 0.0) -> list[dict[str, Any]]:
        """One record per (rebalance, asset) with ``|notional| > min_notional``."""
        out = []
        for i, t in enumerate(self.rebalance_indices):
            total = float(np.sum(np.abs(self.trades[i]))) or 1.0
            for j, name in enumerate(self.asset_names):
                q = float(self.trades[i, j])
                if abs(q) > min_notional:
                    out.append(
                        {
                            "index": int(t),
                            "date": _iso(self.dates[t]) if self.dates is not None else None,
                            "symbol": name,
                            "side": "buy" if q > 0 else "sell",
                            "notional": q,
                            "weight": float(self.weights[i, j]),
                            "cost": float(self.costs[i]) * abs(q) / total,
                        }
                    )
        return out

    def to_dict(
        self, include_series: bool = True, max_trades: int | None = 10_000
    ) -> dict[str, Any]:
        """JSON-able summary: ``stats`` at the top level plus series and trades when asked."""
        d: dict[str, Any] = {"strategy": self.strategy, **self.stats, "params": self.params}
        d["asset_names"] = list(self.asset_names)
        trades = self.trade_list()
        d["n_trades"] = len(trades)
        d["trades"] = trades if max_trades is None else trades[:max_trades]
        d["rebalances"] = [
            {
                "index": int(t),
                "date": _iso(self.dates[t]) if self.dates is not None else None,
                "turnover": float(self.turnover[i]),
                "cost": float(self.costs[i]),
                "weights": self.weights[i].tolist(),
            }
            for i, t in enumerate(self.rebalance_indices)
        ]
        if include_series:
            d["equity_curve"] = self.equity.tolist()
            d["returns"] = self.returns.tolist()
            d["drawdown"] = self.drawdown.tolist()
            d["dates"] = [_iso(x) for x in self.dates] if self.dates is not None else None
        return d


def _iso(x: Any) -> Any:
    if x is None:
        return None
    if hasattr(x, "isoformat"):
        return x.isoformat()
    if isinstance(x, np.datetime64):
        return str(x)
    return x if isinstance(x, (int, float, str)) else str(x)


def rebalance_schedule(
    n_periods: int, rebalance: int | str | Sequence[int], start: int = 0, dates: Any = None
) -> list[int]:
    """Rebalance times (price-row indices) in ``[start, n_periods - 2]``, always including ``start``.

    ``rebalance``: an int ``k`` (every ``k`` periods from ``start``), ``"never"`` (only at
    ``start``), a calendar name (``"daily"``, ``"weekly"``, ``"monthly"``, ``"quarterly"``,
    ``"yearly"``: the first period of each new calendar period, needs ``dates``), or an
    explicit sequence of indices.
    """
    last = n_periods - 2  # trading at the final close changes nothing but costs
    if isinstance(rebalance, str):
        key = _snake(rebalance)
        if key in ("never", "none", "buy_and_hold"):
            return [start]
        if key not in _CALENDAR:
            raise InvalidInput(
                "rebalance",
                f"unknown schedule {rebalance!r}; an int, 'never' or one of {list(_CALENDAR)}",
            )
        if key == "daily":
            return list(range(start, last + 1))
        if dates is None:
            raise InvalidInput(
                "rebalance", f"{rebalance!r} needs dates (give a DataFrame or dates=...)"
            )
        import pandas as pd

        idx = pd.DatetimeIndex(pd.to_datetime(list(dates)))
        per = idx.to_period(_CALENDAR[key])
        new = np.nonzero(np.asarray(per[1:] != per[:-1]))[0] + 1
        return sorted({start, *(int(t) for t in new if start < t <= last)})
    if isinstance(rebalance, (int, np.integer)) and not isinstance(rebalance, bool):
        k = int(rebalance)
        if k < 1:
            raise InvalidInput("rebalance", f"must be a positive number of periods; got {k}")
        return list(range(start, last + 1, k)) if last >= start else [start]
    try:
        idx = sorted({int(t) for t in rebalance})
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            "rebalance", "must be an int, a schedule name or a list of indices"
        ) from exc
    if any(t < 0 or t >= n_periods for t in idx):
        raise InvalidInput("rebalance", f"indices must lie in [0, {n_periods - 1}]")
    return sorted({start, *(t for t in idx if start < t <= last)})


def optimizer_strategy(
    objective: str = "min_volatility",
    *,
    constraints: Any = None,
    covariance: str = "ledoit_wolf",
    periods_per_year: float = 252.0,
    risk_free_rate: float = 0.0,
    fallback: str | None = "min_volatility",
    **kwargs: Any,
) -> Callable[[Any], Any]:
    """A window strategy that re-optimises at each rebalance with
    :func:`prism_kernels.finance.optimize.optimize`.

    On each ``(lookback, n)`` window: expected returns are the annualised mean, the
    covariance the annualised ``"sample"`` or ``"ledoit_wolf"`` estimate; ``objective``,
    ``constraints`` and ``kwargs`` go to the optimiser (``hrp`` also gets the window).
    When a window makes the objective infeasible (``max_sharpe`` with no asset above the
    risk-free rate, say) the ``fallback`` objective is solved instead and counted in
    ``strategy.counts["fallbacks"]`` (``counts["calls"]`` counts rebalances);
    ``fallback=None`` lets the error propagate.
    """
    obj = normalize_objective(objective)
    cov_key = _snake(covariance)
    if cov_key not in ("sample", "ledoit_wolf"):
        raise InvalidInput("covariance", f"must be 'sample' or 'ledoit_wolf'; got {covariance!r}")
    ppy = int(periods_per_year)

    def strategy(window: Any) -> Any:
        strategy.counts["calls"] += 1
        mu = estimators.mean_returns(window, periods_per_year=ppy)
        if cov_key == "sample":
            cov = estimators.sample_cov(window, periods_per_year=ppy)
        else:
            cov = estimators.ledoit_wolf(window, periods_per_year=ppy)[0]
        extra = dict(kwargs)
        if obj in ("hrp", "min_cvar"):
            extra.setdefault("returns", window)
        try:
            res = optimize(mu, cov, obj, constraints, risk_free_rate=risk_free_rate, **extra)
        except Infeasible:
            if fallback is None or normalize_objective(fallback) == obj:
                raise
            strategy.counts["fallbacks"] += 1
            res = optimize(
                mu, cov, normalize_objective(fallback), constraints, risk_free_rate=risk_free_rate
            )
        return res.weights

    strategy.__name__ = obj
    strategy.counts = {"calls": 0, "fallbacks": 0}  # type: ignore[attr-defined]
    return strategy


def _prices_input(prices: Any, asset_names: Any, dates: Any) -> tuple[Any, list[str], Any]:
    if hasattr(prices, "columns") and hasattr(prices, "index"):  # pandas DataFrame
        if asset_names is None:
            asset_names = [str(c) for c in prices.columns]
        if dates is None:
            dates = list(prices.index)
        prices = prices.to_numpy(dtype=np.float64)
    elif hasattr(prices, "index") and hasattr(prices, "to_numpy"):  # Series
        if asset_names is None:
            asset_names = [str(prices.name) if prices.name is not None else "asset_0"]
        if dates is None:
            dates = list(prices.index)
        prices = prices.to_numpy(dtype=np.float64)
    P = to_float_array(prices, "prices")
    if P.ndim == 1:
        P = P[:, None]
    if P.ndim != 2:
        raise InvalidInput("prices", f"must be (T, n); got shape {tuple(P.shape)}")
    T, n = P.shape
    if T < 2:
        raise InvalidInput("prices", f"needs at least 2 periods; got {T}", periods=T)
    if n == 0:
        raise InvalidInput("prices", "has no assets")
    xp = get_namespace(P)
    if not bool(xp.all(xp.isfinite(P))):
        raise InvalidInput("prices", "contains NaN or infinite values (fill or drop them first)")
    if bool(xp.any(P <= 0)):
        raise InvalidInput("prices", "must be positive")
    names = (
        [f"asset_{j}" for j in range(n)] if asset_names is None else [str(a) for a in asset_names]
    )
    if len(names) != n:
        raise InvalidInput("asset_names", f"has {len(names)} names for {n} assets")
    if dates is not None:
        dates = list(dates)
        if len(dates) != T:
            raise InvalidInput("dates", f"has {len(dates)} labels for {T} periods")
    return P, names, dates


def _weights_vector(w: Any, n: int, ref: Any, field: str) -> Any:
    try:
        a = to_float_array(w, field)
    except InvalidInput:
        raise
    if backend_name(a) != backend_name(ref):
        a = as_float(to_numpy(a), get_namespace(ref), like=ref)
    if a.ndim != 1 or a.shape[0] != n:
        raise InvalidInput(
            field, f"must have {n} entries (one per asset); got shape {tuple(a.shape)}"
        )
    xp = get_namespace(a)
    if not bool(xp.all(xp.isfinite(a))):
        raise InvalidInput(field, "contains NaN or infinite values")
    return a


def backtest(
    prices: Any,
    strategy: str | Callable[[Any], Any] | Any = "equal_weight",
    *,
    weights: Any = None,
    rebalance: int | str | Sequence[int] = 21,
    lookback: int | None = None,
    start: int | None = None,
    cost_bps: float = 0.0,
    initial_capital: float = 1.0,
    periods_per_year: float = 252.0,
    risk_free: float = 0.0,
    asset_names: Sequence[str] | None = None,
    dates: Sequence[Any] | None = None,
) -> BacktestResult:
    """Run a rebalancing strategy over a price history (see the module docstring for the model).

    Parameters
    ----------
    prices : (T, n) array or pandas DataFrame (dates and names taken from it)
        Positive closes, no NaN.
    strategy : "buy_and_hold" | "equal_weight" | "inverse_volatility" | array (n,) | callable
    weights : (n,), optional
        Initial weights for ``buy_and_hold`` (default equal).
    rebalance : int | str | sequence of int
        Every ``k`` periods, a calendar name (``"monthly"``...), ``"never"`` or explicit
        indices; see :func:`rebalance_schedule`. Ignored by ``buy_and_hold``.
    lookback : int, optional
        Rows of returns handed to a callable / inverse-volatility strategy (required for them).
    start : int, optional
        Index of the first rebalance (default ``lookback`` for window strategies, else 0);
        the portfolio is cash until then.
    cost_bps : float
        Proportional cost in basis points of traded notional (10 = 0.1 %).
    initial_capital : float
    periods_per_year : float
        For annualised figures (252 for daily data).
    risk_free : float
        Per-period risk-free rate for the Sharpe ratio.

    Returns
    -------
    BacktestResult
    """
    P, names, dates = _prices_input(prices, asset_names, dates)
    xp = get_namespace(P)
    T, n = P.shape
    try:
        cost_rate = float(cost_bps) / 1e4
    except (TypeError, ValueError) as exc:
        raise InvalidInput("cost_bps", "must be a number") from exc
    if not math.isfinite(cost_rate) or cost_rate < 0 or cost_rate >= 1:
        raise InvalidInput("cost_bps", f"must be in [0, 10000); got {cost_bps}")
    V0 = float(initial_capital)
    if not math.isfinite(V0) or V0 <= 0:
        raise InvalidInput("initial_capital", f"must be positive; got {initial_capital}")
    if V0 > MAX_CAPITAL:
        # Equity is capital times a product of gross returns: keep it far from float overflow.
        raise InvalidInput(
            "initial_capital", f"must be at most {MAX_CAPITAL:g}; got {initial_capital}"
        )

    # strategy resolution
    if isinstance(strategy, str):
        kind = _snake(strategy)
        if kind in ("buyandhold", "hold", "buy_hold"):
            kind = "buy_and_hold"
        if kind in ("equal", "equal_weights", "equally_weighted", "1/n"):
            kind = "equal_weight"
        if kind in ("inverse_vol", "inv_vol"):
            kind = "inverse_volatility"
        if kind not in STRATEGIES:
            try:
                strategy = optimizer_strategy(strategy, periods_per_year=periods_per_year)
            except InvalidInput:
                raise InvalidInput(
                    "strategy",
                    f"unknown strategy {strategy!r}; one of {STRATEGIES}, an optimiser objective "
                    "(min_volatility, max_sharpe, risk_parity, hrp...), weights or a callable",
                ) from None
            kind, label = "callable", strategy.__name__
        else:
            label = kind
    elif callable(strategy):
        kind, label = "callable", getattr(strategy, "__name__", "custom")
    else:
        fixed = _weights_vector(strategy, n, P, "strategy")
        kind, label = "fixed", "fixed_weights"
    needs_window = kind in ("callable", "inverse_volatility")
    if lookback is not None:
        try:
            lookback = int(lookback)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("lookback", "must be an integer number of periods") from exc
        if lookback < 1 or lookback > T - 2:
            raise InvalidInput(
                "lookback", f"must be in [1, {T - 2}] for {T} periods; got {lookback}"
            )
    elif needs_window:
        raise InvalidInput("lookback", f"is required for the {label!r} strategy")
    if start is None:
        start = lookback if needs_window else 0
    start = int(start)
    if start < 0 or start > T - 2:
        raise InvalidInput("start", f"must be in [0, {T - 2}]; got {start}")
    if needs_window and start < lookback:
        raise InvalidInput("start", f"must be >= lookback ({lookback}) so the first window is full")
    w_bh = None
    if kind == "buy_and_hold":
        w_bh = (
            xp.full((n,), 1.0 / n, dtype=xp.float64, device=device_of(P))
            if weights is None
            else _weights_vector(weights, n, P, "weights")
        )
        schedule = [start]
    else:
        if weights is not None and kind != "fixed":
            raise InvalidInput(
                "weights", f"is only used by buy_and_hold; the {label!r} strategy sets its own"
            )
        schedule = rebalance_schedule(T, rebalance, start, dates)

    R = P[1:, :] / P[:-1, :] - 1.0  # (T-1, n); R[t-1] is the return from close t-1 to close t

    def target(t: int) -> Any:
        if kind == "buy_and_hold":
            return w_bh
        if kind == "equal_weight":
            return xp.full((n,), 1.0 / n, dtype=xp.float64, device=device_of(P))
        if kind == "fixed":
            return fixed
        window = R[t - lookback : t, :]
        if kind == "inverse_volatility":
            sd = xp.std(window, axis=0, correction=1)
            if bool(xp.any(sd <= 0)):
                raise InvalidInput(
                    "prices", f"an asset has zero volatility in the window ending at {t}"
                )
            iv = 1.0 / sd
            return iv / xp.sum(iv)
        try:
            out = strategy(window)
        except InvalidInput:
            raise
        return _weights_vector(out, n, P, "strategy")

    zeros = xp.zeros((n,), dtype=xp.float64, device=device_of(P))
    values = [xp.full((start + 1,), V0, dtype=xp.float64, device=device_of(P))]
    tw, tr, turn, cst = [], [], [], []
    h = zeros
    cash = V0
    for i, t in enumerate(schedule):
        # value at the close of t before trading: holdings were carried to t below
        V_pre = float(xp.sum(h)) + cash
        w = target(t)
        trade = w * V_pre - h
        traded = float(xp.sum(xp.abs(trade)))
        cost = cost_rate * traded
        V_post = V_pre - cost
        if V_post <= 0:
            raise InvalidInput("cost_bps", f"costs exhaust the portfolio at period {t}")
        h = w * V_post
        cash = V_post - float(xp.sum(h))
        values[-1] = xp.concat(
            [values[-1][:-1], xp.asarray([V_post], dtype=xp.float64, device=device_of(P))]
        )
        tw.append(w)
        tr.append(trade)
        turn.append(traded / V_pre)
        cst.append(cost)
        end = schedule[i + 1] if i + 1 < len(schedule) else T - 1
        if end > t:
            growth = xp.cumulative_prod(1.0 + R[t:end, :], axis=0)  # closes t+1 .. end
            H = h[None, :] * growth
            values.append(xp.sum(H, axis=1) + cash)
            h = H[-1, :]
    equity_x = xp.concat(values, axis=0)
    equity = np.asarray(to_numpy(equity_x), dtype=np.float64)
    if equity.shape[0] != T:  # pragma: no cover - internal consistency
        raise RuntimeError(f"equity has {equity.shape[0]} points for {T} periods")
    port_ret = equity[1:] / equity[:-1] - 1.0
    drawdown = equity / np.maximum.accumulate(equity) - 1.0
    active = port_ret[start:]
    n_per = T - 1 - start
    total = equity[-1] / V0 - 1.0
    growth_active = equity[-1] / equity[start] if n_per > 0 else 1.0
    ann_ret = (equity[-1] / V0) ** (periods_per_year / (T - 1)) - 1.0
    sd = float(np.std(active, ddof=1)) if active.size > 1 else float("nan")
    mean = float(np.mean(active)) if active.size else float("nan")
    stats = {
        "initial_capital": V0,
        "final_value": float(equity[-1]),
        "total_return": float(total),
        "annualized_return": float(ann_ret),
        "annualized_volatility": sd * math.sqrt(periods_per_year),
        "sharpe_ratio": (mean - risk_free) / sd * math.sqrt(periods_per_year) if sd > 0 else None,
        "max_drawdown": float(-drawdown.min()),
        "total_cost": float(sum(cst)),
        "total_turnover": float(sum(turn)),
        "mean_turnover": float(np.mean(turn)),
        "n_rebalances": len(schedule),
        "win_rate": float(np.mean(active > 0)) if active.size else None,
        "n_periods": int(T),
        "active_periods": int(n_per),
        "active_return": float(growth_active - 1.0),
    }
    for k in ("annualized_volatility",):
        if not math.isfinite(stats[k]):
            stats[k] = None
    W = np.stack([np.asarray(to_numpy(x), dtype=np.float64) for x in tw])
    TR = np.stack([np.asarray(to_numpy(x), dtype=np.float64) for x in tr])
    params = {
        "rebalance": rebalance if isinstance(rebalance, (int, str)) else "custom",
        "lookback": lookback,
        "start": start,
        "cost_bps": float(cost_bps),
        "periods_per_year": periods_per_year,
        "backend": backend_name(P),
    }
    return BacktestResult(
        equity=equity,
        returns=port_ret,
        drawdown=drawdown,
        rebalance_indices=np.asarray(schedule, dtype=np.int64),
        weights=W,
        trades=TR,
        turnover=np.asarray(turn),
        costs=np.asarray(cst),
        stats=stats,
        asset_names=names,
        dates=dates,
        strategy=label,
        params=params,
    )
