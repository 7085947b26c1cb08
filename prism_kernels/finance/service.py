"""The finance service: the book of portfolios (the state), and thin calls into the kernels.

The book is a :class:`~prism_kernels.service.Collection` of kind ``"portfolio"`` (bounded by
``max_portfolios``, newest first, :class:`~prism_kernels.errors.NotFound` for an unknown id),
with each portfolio's return history stored as an array beside its document. Creating or
revaluing a portfolio publishes ``PortfolioUpdate``.

Optimisation, the frontier, risk and backtests take plain, already-adapted Python and NumPy
arguments (the REST request models translate what clients send), call the kernels
(:mod:`~prism_kernels.finance.estimators`, :mod:`~prism_kernels.finance.optimize`,
:mod:`~prism_kernels.finance.risk`, :mod:`~prism_kernels.finance.backtest`) and report their
time under ``computation_time_ms``.

Units: weights are fractions of the portfolio value; expected returns, volatilities and
covariances are annual (252 trading days); VaR/CVaR are money at the notional (``*_pct``:
fractions); return histories are per-period (daily) simple returns; prices are daily closes.
"""

from __future__ import annotations

import importlib.util
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from prism_kernels import distributed
from prism_kernels.errors import Infeasible, InvalidInput, NotFound, Unavailable
from prism_kernels.finance import data, estimators, holdings
from prism_kernels.finance import risk as _risk
from prism_kernels.finance.backtest import backtest
from prism_kernels.finance.constraints import PortfolioConstraints
from prism_kernels.finance.optimize import efficient_frontier, optimize
from prism_kernels.service import TIMING_KEY, DomainService

PERIODS_PER_YEAR = 252
DEFAULT_START = "2021-01-01"  # shipped closes used when a request names no window: two years
WINDOW_STRATEGY_LOOKBACK = 126  # periods of history behind each re-optimisation by default
FIXED_STRATEGIES = ("buy_and_hold", "equal_weight")  # strategies that need no look-back


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"


class FinanceService(DomainService):
    """The book of portfolios, with optimisation, the frontier, risk and backtests.

    Parameters
    ----------
    store, bus : see :class:`~prism_kernels.service.DomainService`.
    max_portfolios : int
        Portfolios kept in the book (the oldest dropped first).
    max_history : int
        Revaluations kept per portfolio (the oldest dropped first).
    """

    domain = "finance"
    events = ("PortfolioUpdate",)

    def __init__(
        self,
        store: Any = None,
        bus: Any = None,
        *,
        max_portfolios: int = 1000,
        max_history: int = 500,
    ) -> None:
        super().__init__(store, bus)
        self.portfolios = self.collection(
            "portfolio", max_items=int(max_portfolios), label="portfolio"
        )
        self.max_history = int(max_history)

    # ------------------------------------------------------------------ the book

    def create_portfolio(
        self,
        name: str,
        assets: Sequence[str],
        weights: Sequence[float] | Mapping[str, float] | np.ndarray | None = None,
        *,
        objective: str = "custom",
        value: float = 1_000_000.0,
        returns: Any = None,
        prices: Any = None,
        asset_info: Sequence[Mapping[str, Any]] | None = None,
        portfolio_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add a portfolio to the book and publish ``PortfolioUpdate`` (event ``"created"``).

        Parameters
        ----------
        name : str
        assets : tickers ``(n,)``, distinct.
        weights : ``(n,)``, ``{symbol: weight}`` or None (equal); they must sum to 1.
        objective : how the weights were chosen (recorded).
        value : money value of the portfolio.
        returns : ``(T, n)`` per-period returns, or ``prices`` ``(T + 1, n)`` closes: the
            history kept for statistics and risk (with prices the positions get share counts
            at the last close).
        asset_info : per asset ``{symbol, expected_return?, volatility?, current_price?,
            sector?}`` (annual fractions; money): statistics without a history, shares at
            ``current_price``.
        portfolio_id : optional id (must be new); default a fresh ``pf-`` id.

        Returns
        -------
        dict: the stored portfolio (``id``, ``name``, ``assets``, ``weights``, ``objective``,
        ``value``, ``initial_value``, ``cash``, ``positions``, ``statistics``, ``history``,
        ``asset_info``, ``metadata``, ``created``, ``last_updated``).
        """
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name", "must be a non-empty string")
        symbols = holdings.check_symbols(assets)
        n = len(symbols)
        info = self._asset_info(asset_info, symbols)
        w = holdings.weight_vector(weights, symbols)
        v = holdings.finite(value)
        if v is None or v <= 0:
            raise InvalidInput("value", f"must be a positive number; got {value}")
        R = holdings.history(returns, prices, n)
        last = None
        if prices is not None:
            last = np.asarray(_risk.to_float_array(prices, "prices"))[-1]
        elif all(a.get("current_price") is not None for a in info):
            last = holdings.price_vector(
                [a["current_price"] for a in info], symbols, "asset_info.current_price"
            )
        mu, vol = self._assumptions(info)
        stats = _risk.portfolio_statistics(w, R, expected_returns=mu, volatilities=vol, notional=v)
        positions = holdings.open_positions(symbols, w, v, last)
        now = _iso(time.time())
        with self.lock:
            pid = str(portfolio_id) if portfolio_id else f"pf-{uuid.uuid4().hex[:12]}"
            if portfolio_id and self.portfolios.exists(pid):
                raise InvalidInput("id", f"portfolio {pid!r} already exists")
            doc = {
                "id": pid,
                "name": name.strip(),
                "assets": symbols,
                "asset_info": info,
                "weights": w.tolist(),
                "objective": str(objective),
                "value": v,
                "initial_value": v,
                "cash": float(v - sum(p["value"] for p in positions)),
                "positions": positions,
                "statistics": stats,
                "created": now,
                "last_updated": now,
                "history": [{"timestamp": now, "value": v, "return": 0.0, "event": "created"}],
                "metadata": dict(metadata or {}),
            }
            self.portfolios.put(pid, doc, arrays={"returns": R} if R is not None else None)
        self._announce("created", doc)
        return doc

    def save_optimum(
        self,
        optimum: Mapping[str, Any],
        name: str,
        *,
        value: float = 1_000_000.0,
        returns: Any = None,
        prices: Any = None,
        asset_info: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Store a computed optimum (what :meth:`optimize` returned) as it is, without solving
        again: its weights (rescaled to sum to exactly 1: the solver's budget row holds to its
        tolerance), its objective, and its figures and assumptions in ``metadata``."""
        w = np.asarray(optimum["weights"], dtype=np.float64)
        return self.create_portfolio(
            name,
            optimum["symbols"],
            w / w.sum(),
            objective=optimum["objective"],
            value=value,
            returns=returns,
            prices=prices,
            asset_info=asset_info,
            metadata={
                "assumptions": optimum.get("assumptions", {}),
                "risk_free_rate": float(optimum.get("risk_free_rate", 0.0)),
                "optimum": {
                    k: optimum.get(k) for k in ("expected_return", "volatility", "sharpe_ratio")
                },
            },
        )

    def get_portfolio(self, portfolio_id: str) -> dict[str, Any]:
        """The stored portfolio; raises :class:`NotFound`."""
        return self.portfolios.get(portfolio_id)

    def list_portfolios(self, limit: int | None = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries ``{id, name, value, return_since_inception, n_assets, objective, created,
        last_updated}``, newest first."""
        return [
            {
                "id": pid,
                "name": d["name"],
                "value": d["value"],
                "return_since_inception": d["value"] / d["initial_value"] - 1.0,
                "n_assets": len(d["assets"]),
                "objective": d["objective"],
                "created": d["created"],
                "last_updated": d["last_updated"],
            }
            for pid, d in self.portfolios.page(limit, offset)
        ]

    def delete_portfolio(self, portfolio_id: str) -> None:
        """Remove a portfolio from the book; raises :class:`NotFound`."""
        with self.lock:
            self.portfolios.delete(portfolio_id)

    def count(self) -> int:
        """Portfolios in the book."""
        return self.portfolios.count()

    def revalue(
        self,
        portfolio_id: str,
        prices: Any = None,
        *,
        returns: Any = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Mark a portfolio to market and/or extend its return history; publishes
        ``PortfolioUpdate`` (event ``"revalued"``).

        Parameters
        ----------
        prices : ``{symbol: price}`` or ``(n,)`` new prices (the positions need share counts:
            the portfolio was created with prices or ``current_price``); else give
        returns : ``(T, n)`` new per-period returns, appended to the history (the newest
            :data:`~prism_kernels.finance.holdings.MAX_RETURN_ROWS` kept); without prices the
            value compounds through them (buy and hold within the window).

        Returns
        -------
        dict: the updated portfolio, with a new ``history`` entry ``{timestamp, value, return,
        event}``.
        """
        if prices is None and returns is None:
            raise InvalidInput("prices", "give new prices or new returns")
        with self.lock:
            doc = self.portfolios.get(portfolio_id)
            R_old = self.portfolios.arrays(portfolio_id).get("returns")
            symbols = doc["assets"]
            old_value = float(doc["value"])
            positions = doc["positions"]
            R_new = holdings.history(returns, None, len(symbols)) if returns is not None else None
            if prices is not None:
                holdings.mark_to_market(positions, holdings.price_vector(prices, symbols))
            elif R_new is not None:
                holdings.grow_positions(positions, R_new)
            new_value = holdings.reweight(positions, doc["cash"])
            doc["value"] = new_value
            doc["weights"] = [q["weight"] for q in positions]
            R = R_old
            if R_new is not None:
                R = R_new if R_old is None or R_old.size == 0 else np.vstack([R_old, R_new])
                R = R[-holdings.MAX_RETURN_ROWS :]
            mu, vol = self._assumptions(doc["asset_info"])
            doc["statistics"] = _risk.portfolio_statistics(
                np.asarray(doc["weights"]),
                R,
                expected_returns=mu,
                volatilities=vol,
                notional=max(new_value, 1e-300),
            )
            now = _iso(time.time())
            doc["last_updated"] = now
            period_return = new_value / old_value - 1.0 if old_value > 0 else None
            entry = {
                "timestamp": now,
                "value": new_value,
                "return": period_return,
                "event": "revalued",
            }
            if note:
                entry["note"] = str(note)
            doc["history"] = (doc["history"] + [entry])[-self.max_history :]
            self.portfolios.put(portfolio_id, doc, arrays={"returns": R} if R is not None else None)
        self._announce("revalued", doc, {"return": period_return, "previous_value": old_value})
        return doc

    # ------------------------------------------------------------------ market data

    def price_history(
        self,
        dataset: str = "sp500",
        assets: Sequence[str] | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        *,
        n_assets: int = 10,
        n_periods: int = 504,
        seed: int = 0,
    ) -> Any:
        """Daily closes as a DataFrame (see :func:`prism_kernels.finance.data.load_prices`)."""
        with self.timed("price_history"):
            return data.load_prices(
                dataset,
                assets,
                start_date,
                end_date,
                n_assets=n_assets,
                n_periods=n_periods,
                seed=seed,
            )

    # ------------------------------------------------------------------ analytics

    def optimize(
        self,
        assets: Sequence[str],
        objective: str = "max_sharpe",
        constraints: PortfolioConstraints | None = None,
        *,
        target_return: float | None = None,
        target_volatility: float | None = None,
        risk_aversion: float | None = None,
        risk_free_rate: float = 0.0,
        save: bool = False,
        name: str | None = None,
        value: float = 1_000_000.0,
        asset_info: Sequence[Mapping[str, Any]] | None = None,
        **market: Any,
    ) -> dict[str, Any]:
        """Optimal weights (:func:`prism_kernels.finance.optimize.optimize`).

        ``market`` says where the annual moments come from (:meth:`_moments`): a ``prices``
        ``(T, n)`` or ``returns`` history, or a ``dataset``'s closes of ``assets`` between
        ``start_date`` and ``end_date``; else ``expected_returns`` with a ``covariance``, or
        with ``volatilities`` and a ``correlation`` (identity when none, said in
        ``assumptions``). ``objective`` is one of the optimiser's
        (:data:`~prism_kernels.finance.optimize.OBJECTIVES`), ``constraints`` its
        :class:`~prism_kernels.finance.constraints.PortfolioConstraints`. ``save=True`` adds
        the result to the book (:meth:`save_optimum`).

        Returns
        -------
        dict: ``symbols``, ``weights`` ``(n,)``, ``objective``, ``expected_return`` and
        ``volatility`` (annual), ``sharpe_ratio``, ``risk_contributions``, ``converged``,
        ``risk_free_rate``, ``assumptions``, ``computation_time_ms`` (and ``risk_capped``,
        ``cvar`` when the objective reports them; ``portfolio_id`` when saved).
        """
        with self.timed("optimize") as t:
            m = self._moments(assets, **market)
            kw: dict[str, Any] = {
                k: v
                for k, v in (
                    ("target_return", target_return),
                    ("target_volatility", target_volatility),
                    ("risk_aversion", risk_aversion),
                )
                if v is not None
            }
            if objective in ("hrp", "min_cvar") and m.returns is not None:
                kw["returns"] = m.returns
            elif objective == "min_cvar":
                raise InvalidInput("prices", "min_cvar needs a price or return history (scenarios)")
            res = optimize(
                m.mu, m.cov, objective, constraints, risk_free_rate=risk_free_rate, **kw
            ).to_dict()
        out = {
            "symbols": list(assets),
            "weights": res["weights"],
            "objective": res["objective"],
            "expected_return": res["expected_return"],
            "volatility": res["volatility"],
            "sharpe_ratio": res["sharpe"],
            "risk_contributions": res["risk_contributions"],
            "converged": res["converged"],
            "risk_free_rate": float(risk_free_rate),
            "assumptions": m.assumptions,
            **{k: res[k] for k in ("risk_capped", "cvar") if k in res},
            TIMING_KEY: t.ms,
        }
        if save:
            doc = self.save_optimum(
                out,
                name or f"{out['objective']} portfolio",
                value=value,
                returns=m.returns,
                asset_info=asset_info,
            )
            out["portfolio_id"] = doc["id"]
        return out

    def frontier(
        self,
        assets: Sequence[str],
        constraints: PortfolioConstraints | None = None,
        points: int = 20,
        *,
        risk_free_rate: float = 0.0,
        **market: Any,
    ) -> dict[str, Any]:
        """The efficient frontier (:func:`prism_kernels.finance.optimize.efficient_frontier`,
        every point in one batched solve) with the minimum-volatility and maximum-Sharpe
        portfolios. Moments as in :meth:`optimize`. A ``max_total_risk`` cap does not cut the
        frontier: each point says whether it lies ``within_risk_cap``.

        Returns
        -------
        dict: ``points`` ``[{expected_return, volatility, sharpe_ratio, weights}]`` (in
        increasing return), ``expected_returns``, ``volatilities``, ``sharpe_ratios``,
        ``weights`` (points x n), ``converged``, ``symbols``, ``min_volatility``,
        ``max_sharpe`` (None when no portfolio beats the risk-free rate), ``asset_returns``,
        ``asset_volatilities``, ``risk_free_rate``, ``max_total_risk``, ``assumptions``,
        ``computation_time_ms``.
        """
        if not isinstance(points, (int, np.integer)) or not 2 <= points <= 500:
            raise InvalidInput("points", f"must be an integer in [2, 500]; got {points}")
        c = constraints if constraints is not None else PortfolioConstraints()
        cap = c.max_total_risk
        c = replace(c, max_total_risk=None)
        with self.timed("frontier") as t:
            m = self._moments(assets, **market)
            if distributed.scheduler_address() is None:
                fr = efficient_frontier(m.mu, m.cov, int(points), c, risk_free_rate).to_dict()
                ends = {
                    obj: self._corner(m, obj, c, risk_free_rate)
                    for obj in ("min_volatility", "max_sharpe")
                }
            else:
                # three Dask tasks: the frontier (its points stay one batched solve: they share
                # the solver's step size, so splitting them would move the answers) and the
                # two corner portfolios
                fr, lo, hi = distributed.run_calls(
                    [
                        (efficient_frontier, (m.mu, m.cov, int(points), c, risk_free_rate), {}),
                        (self._corner, (m, "min_volatility", c, risk_free_rate), {}),
                        (self._corner, (m, "max_sharpe", c, risk_free_rate), {}),
                    ],
                    desc="frontier",
                )
                fr = fr.to_dict()
                ends = {"min_volatility": lo, "max_sharpe": hi}
        pts = []
        for r, v, s, w in zip(
            fr["returns"], fr["volatilities"], fr["sharpe"], fr["weights"], strict=True
        ):
            p = {"expected_return": r, "volatility": v, "sharpe_ratio": s, "weights": w}
            if cap is not None:
                p["within_risk_cap"] = bool(v <= float(cap) * (1 + 1e-9))
            pts.append(p)
        return {
            "symbols": list(assets),
            "points": pts,
            "expected_returns": fr["returns"],
            "volatilities": fr["volatilities"],
            "sharpe_ratios": fr["sharpe"],
            "weights": fr["weights"],
            "converged": fr["converged"],
            **ends,
            "risk_free_rate": float(risk_free_rate),
            "max_total_risk": cap,
            "asset_returns": m.mu.tolist(),
            "asset_volatilities": np.sqrt(np.diag(m.cov)).tolist(),
            "assumptions": m.assumptions,
            TIMING_KEY: t.ms,
        }

    def risk(
        self,
        portfolio_id: str | None = None,
        *,
        assets: Sequence[str] | None = None,
        weights: Sequence[float] | Mapping[str, float] | np.ndarray | None = None,
        notional: float | None = None,
        prices: Any = None,
        returns: Any = None,
        covariance: Any = None,
        expected_returns: Any = None,
        dataset: str = "sp500",
        start_date: str | None = None,
        end_date: str | None = None,
        confidence: float = 0.95,
        horizon: int = 1,
        method: str | None = None,
        mc_paths: int = 100_000,
        seed: int | None = 0,
        benchmark: Any = None,
        dof: float | None = None,
        include_returns: bool = False,
    ) -> dict[str, Any]:
        """VaR/CVaR and the other risk figures of a stored portfolio or of given holdings
        (:func:`prism_kernels.finance.risk.risk_report`).

        A ``portfolio_id`` in the book: its weights, return history and value (the notional)
        are used, and holdings given here are ignored. Otherwise the holdings are ``assets``
        with ``weights`` (and ``notional``, default 1,000,000), and an unknown
        ``portfolio_id`` is only echoed (without holdings it is a :class:`NotFound`). Their
        history is ``prices`` ``(T, n)`` or ``returns``, else the ``dataset``'s closes between
        ``start_date`` (default 2021-01-01) and ``end_date``, unless an annual ``covariance``
        (with annual ``expected_returns``) is given. ``window`` says which history was used.

        ``method`` picks the headline ``var``/``cvar`` (``historical`` when there is a
        history, else ``parametric_normal``); every method is in ``var_by_method`` /
        ``cvar_by_method``.

        Returns
        -------
        dict: ``var``, ``cvar`` (money at ``notional``), ``var_pct``, ``cvar_pct``,
        ``method``, ``max_drawdown``, ``beta``, ``volatility`` and ``expected_return``
        (annual), ``sharpe_ratio``, ``sortino_ratio``, ``component_var`` (money per asset),
        ``asset_names``, ``correlation_matrix``, ``covariance_matrix`` (per day),
        ``confidence_level``, ``time_horizon_days``, ``notional``, ``window``,
        ``portfolio_returns`` (with ``include_returns``: the overlapping ``horizon``-day
        portfolio returns the historical VaR is the quantile of), ``computation_time_ms``.
        """
        with self.timed("risk") as t:
            window: dict[str, Any] | None = None
            mu = cov = None
            stored = portfolio_id is not None and self.portfolios.exists(portfolio_id)
            if stored:
                doc = self.portfolios.get(portfolio_id)
                names = list(doc["assets"])
                w = np.asarray(doc["weights"], dtype=np.float64)
                R = self.portfolios.arrays(portfolio_id).get("returns")
                notional = doc["value"] if notional is None else notional
                if R is not None and R.shape[0] >= 2:
                    window = {"source": "book", "start": None, "end": None, "periods": R.shape[0]}
                else:
                    R = None
                    a_mu, a_vol = self._assumptions(doc["asset_info"])
                    if a_mu is None:
                        raise InvalidInput(
                            "portfolio_id",
                            "this portfolio has no return history or volatility assumptions",
                        )
                    mu, cov = a_mu / PERIODS_PER_YEAR, np.diag(a_vol**2) / PERIODS_PER_YEAR
            else:
                if weights is None:
                    if portfolio_id is not None:
                        raise NotFound("portfolio", portfolio_id)
                    raise InvalidInput("weights", "give a portfolio_id, weights or positions")
                names = holdings.check_symbols(assets) if assets is not None else None
                w = (
                    holdings.weight_vector(weights, names)
                    if names is not None
                    else np.asarray(weights, dtype=np.float64)
                )
                notional = 1_000_000.0 if notional is None else notional
                # without names, a history of the wrong width is the weights' fault (risk_report)
                R = holdings.history(returns, prices, len(names) if names is not None else None)
                if R is not None:
                    window = {"source": "given", "start": None, "end": None, "periods": R.shape[0]}
                elif covariance is not None:
                    cov = estimators.check_covariance(covariance, "covariance")
                    if cov.shape != (len(w), len(w)):
                        raise InvalidInput(
                            "covariance", f"must be ({len(w)}, {len(w)}) to match the weights"
                        )
                    cov = np.asarray(cov) / PERIODS_PER_YEAR
                    if expected_returns is not None:
                        mu = np.asarray(expected_returns, dtype=np.float64) / PERIODS_PER_YEAR
                elif names is not None:
                    R, window = self._shipped_history(names, dataset, start_date, end_date)
            rep = _risk.risk_report(
                w,
                R,
                cov=cov,
                mu=mu,
                confidence=confidence,
                horizon=horizon,
                benchmark=benchmark,
                notional=float(notional),
                dof=dof,
                mc_paths=mc_paths,
                seed=seed,
                asset_names=names,
            )
            key = method or (
                "historical" if rep["var"].get("historical") is not None else "parametric_normal"
            )
            if key not in rep["var"]:
                raise InvalidInput("method", f"unknown method {key!r}; one of {list(rep['var'])}")
            if rep["var"][key] is None:
                raise InvalidInput("method", f"{key} needs data this request does not have")
            horizon_returns = (
                self._horizon_returns(w, R, rep["horizon_days"])
                if include_returns and R is not None
                else None
            )
        N = rep["notional"]
        return {
            "portfolio_id": portfolio_id,
            "confidence_level": rep["confidence"],
            "time_horizon_days": rep["horizon_days"],
            "notional": N,
            "method": key,
            "var": rep["var_amount"][key],
            "cvar": rep["cvar_amount"][key],
            "var_pct": rep["var"][key],
            "cvar_pct": rep["cvar"][key],
            "var_by_method": rep["var_amount"],
            "cvar_by_method": rep["cvar_amount"],
            "max_drawdown": rep["max_drawdown"]["value"] if rep["max_drawdown"] else None,
            "beta": rep["beta"],
            "volatility": rep["volatility_annual"],
            "expected_return": rep["expected_return_annual"],
            "sharpe_ratio": rep["sharpe_ratio"],
            "sortino_ratio": rep["sortino_ratio"],
            "component_var": None
            if rep["component_var"] is None
            else [x * N for x in rep["component_var"]],
            "asset_names": rep["asset_names"],
            "correlation_matrix": rep["correlation_matrix"],
            "covariance_matrix": rep["covariance"],
            "window": window,
            "portfolio_returns": horizon_returns,
            TIMING_KEY: t.ms,
        }

    def backtest(
        self,
        strategy: str | Sequence[float] | np.ndarray | Callable[[Any], Any] | None = None,
        *,
        prices: Any = None,
        assets: Sequence[str] | None = None,
        portfolio_id: str | None = None,
        dataset: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        weights: Sequence[float] | Mapping[str, float] | None = None,
        rebalance: int | str = "monthly",
        lookback: int | None = None,
        cost_bps: float = 10.0,
        initial_capital: float = 1_000_000.0,
        seed: int = 0,
        include_series: bool = True,
    ) -> dict[str, Any]:
        """Backtest a strategy (:func:`prism_kernels.finance.backtest.backtest`).

        ``strategy``: ``buy_and_hold``, ``equal_weight``, ``inverse_volatility``, an optimiser
        objective (re-optimised at each rebalance on a ``lookback`` window, 126 periods by
        default), fixed weights ``(n,)`` or a window callable. Prices: ``prices`` (a DataFrame,
        or ``(T, n)`` closes named by ``assets``), else the ``dataset`` (``"sp500"``, the
        default when skfolio is installed, sliced by ``start_date``/``end_date`` and
        ``assets``; else ``"synthetic"``, seeded by ``seed``). With ``portfolio_id`` the stored
        weights and symbols are used (buy and hold of them unless another strategy is named);
        without a strategy, ``equal_weight``.

        Returns
        -------
        dict: ``strategy``, ``total_return``, ``annualized_return``, ``annualized_volatility``,
        ``sharpe_ratio``, ``max_drawdown``, ``win_rate``, ``total_cost``, ``trades``,
        ``n_trades``, ``rebalances``, ``portfolio_id``, ``start_date``, ``end_date``,
        ``computation_time_ms`` and, with ``include_series``, ``equity_curve``, ``returns``,
        ``drawdown``, ``dates``.
        """
        with self.timed("backtest") as t:
            if portfolio_id is not None:
                doc = self.portfolios.get(portfolio_id)
                assets = doc["assets"] if assets is None else assets
                if weights is None and (strategy is None or strategy == "buy_and_hold"):
                    weights, strategy = doc["weights"], "buy_and_hold"
            strategy = "equal_weight" if strategy is None else strategy
            if prices is None:
                prices = self._backtest_prices(dataset, assets, start_date, end_date, seed)
            if isinstance(weights, Mapping):  # by symbol: in the order of the price columns
                columns = prices.columns if hasattr(prices, "columns") else assets or []
                weights = [float(weights.get(str(c), 0.0)) for c in columns]
            if (
                lookback is None
                and not (isinstance(strategy, str) and strategy in FIXED_STRATEGIES)
                and not isinstance(strategy, (list, tuple, np.ndarray))
            ):
                lookback = WINDOW_STRATEGY_LOOKBACK
            res = backtest(
                prices,
                strategy,
                weights=weights,
                rebalance=rebalance,
                lookback=lookback,
                cost_bps=cost_bps,
                initial_capital=initial_capital,
                asset_names=None if hasattr(prices, "columns") else assets,
            )
        out = res.to_dict(include_series=include_series)
        dates = out.get("dates") if include_series else None
        out["portfolio_id"] = portfolio_id
        out["start_date"] = dates[0] if dates else start_date
        out["end_date"] = dates[-1] if dates else end_date
        out[TIMING_KEY] = t.ms
        return out

    # ------------------------------------------------------------------ health

    def health_details(self) -> dict[str, Any]:
        """The book's size, the optimiser's latency and what data is installed."""
        opt = self.latency().get("optimize", {})
        try:
            count, store_ok = self.count(), True
        except Exception:  # a broken store is reported, not raised
            count, store_ok = None, False
        return {
            "status": "healthy" if store_ok else "degraded",
            "portfolios_tracked": count,
            "optimization_latency_ms": opt.get("mean_ms"),
            "optimizations_run": opt.get("count", 0),
            "optimizer_available": True,
            "store_available": store_ok,
            "sp500_data_available": self._sp500_installed(),
        }

    # ------------------------------------------------------------------ private

    def _announce(self, event: str, doc: dict[str, Any], extra: dict | None = None) -> None:
        self.publish(
            "PortfolioUpdate",
            {
                "portfolio_id": doc["id"],
                "name": doc["name"],
                "event": event,
                "value": doc["value"],
                "weights": dict(zip(doc["assets"], doc["weights"], strict=True)),
                "statistics": doc["statistics"],
                "timestamp": doc["last_updated"],
                **(extra or {}),
            },
        )

    @staticmethod
    def _asset_info(
        info: Sequence[Mapping[str, Any]] | None, symbols: list[str]
    ) -> list[dict[str, Any]]:
        if info is None:
            return [{"symbol": s} for s in symbols]
        if len(info) != len(symbols):
            raise InvalidInput("asset_info", f"must have {len(symbols)} entries (one per asset)")
        out = []
        for i, (a, s) in enumerate(zip(info, symbols, strict=True)):
            if a.get("symbol", s) != s:
                raise InvalidInput(f"asset_info.{i}.symbol", f"is {a['symbol']!r}, not {s!r}")
            out.append({"symbol": s, **{k: v for k, v in a.items() if k != "symbol"}})
        return out

    @staticmethod
    def _assumptions(info: Sequence[Mapping[str, Any]]) -> tuple[Any, Any]:
        """Annual expected returns and volatilities ``(n,)`` when every asset states both."""
        mu = [holdings.finite(a.get("expected_return")) for a in info]
        vol = [holdings.finite(a.get("volatility")) for a in info]
        if any(x is None for x in mu + vol):
            return None, None
        return np.asarray(mu), np.asarray(vol)

    def _moments(
        self,
        assets: Sequence[str],
        *,
        prices: Any = None,
        returns: Any = None,
        covariance: Any = None,
        correlation: Any = None,
        expected_returns: Any = None,
        volatilities: Any = None,
        dataset: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
    ) -> estimators.Moments:
        """Annual moments (:func:`~prism_kernels.finance.estimators.estimate_moments`) of
        ``assets`` from ``prices`` ``(T, n)`` closes or ``returns``, else the ``dataset``'s
        closes between the dates, else ``expected_returns`` (annual) with ``covariance``
        (annual) or ``volatilities`` (annual) and ``correlation``."""
        symbols = holdings.check_symbols(assets)
        if dataset is not None and prices is None and returns is None and covariance is None:
            prices = data.load_prices(dataset, symbols, start_date, end_date).to_numpy()
        R = holdings.history(returns, prices, len(symbols))
        return estimators.estimate_moments(
            len(symbols),
            returns=R,
            expected_returns=expected_returns,
            volatilities=volatilities,
            covariance=covariance,
            correlation=correlation,
            periods_per_year=PERIODS_PER_YEAR,
            returns_field="prices" if prices is not None else "returns",
        )

    @staticmethod
    def _corner(
        m: estimators.Moments, objective: str, c: PortfolioConstraints, rf: float
    ) -> dict[str, Any] | None:
        try:
            d = optimize(m.mu, m.cov, objective, c, risk_free_rate=rf).to_dict()
        except Infeasible:
            return None
        return {
            "expected_return": d["expected_return"],
            "volatility": d["volatility"],
            "sharpe_ratio": d["sharpe"],
            "weights": d["weights"],
        }

    @staticmethod
    def _shipped_history(
        symbols: list[str], dataset: str, start: str | None, end: str | None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Returns of ``symbols`` from the shipped closes, and the window they cover."""
        try:
            df = data.load_prices(dataset, symbols, start or DEFAULT_START, end)
        except InvalidInput as exc:
            raise InvalidInput(
                "prices",
                f"give prices, returns or covariance (annual) for these assets: {exc.message}",
                **exc.details,
            ) from None
        R = holdings.history(None, df.to_numpy(), len(symbols))
        window = {
            "source": dataset,
            "start": str(df.index[0].date()),
            "end": str(df.index[-1].date()),
            "periods": int(R.shape[0]),
        }
        return R, window

    @staticmethod
    def _backtest_prices(
        dataset: str | None,
        assets: Sequence[str] | None,
        start: str | None,
        end: str | None,
        seed: int,
    ) -> Any:
        ds = dataset or "sp500"
        if ds == "sp500":
            try:
                return data.load_prices("sp500", assets, start, end)
            except Unavailable:
                if dataset is not None:
                    raise
                ds = "synthetic"  # the default source is missing: a seeded market instead
        return data.load_prices(
            ds, assets, start or "2020-01-01", end, n_assets=10, n_periods=756, seed=seed
        )

    @staticmethod
    def _horizon_returns(w: np.ndarray, R: np.ndarray, h: int) -> list[float]:
        """Overlapping ``h``-period sums of the portfolio's per-period returns (as risk.py)."""
        r = np.asarray(R, dtype=np.float64) @ np.asarray(w, dtype=np.float64)
        if h > 1:
            c = np.concatenate([[0.0], np.cumsum(r)])
            r = c[h:] - c[: r.size - h + 1]
        return r.tolist()

    @staticmethod
    def _sp500_installed() -> bool:
        """Whether skfolio's bundled S&P 500 file is installed (without importing skfolio)."""
        try:
            spec = importlib.util.find_spec("skfolio")
            base = spec.submodule_search_locations[0] if spec is not None else None
            return base is not None and os.path.exists(
                os.path.join(base, "datasets", "data", "sp500_dataset.csv.gz")
            )
        except Exception:  # a broken install: not available
            return False
