"""The Finance dashboard: pick assets (the shipped S&P 500 closes or a seeded synthetic
market), an objective and constraints; see the efficient frontier with the chosen portfolio
on it, its weights, its return distribution with VaR and CVaR marked, and a backtest equity
curve with drawdown. Served at ``/finance``; in a notebook, display ``FinanceViewer()``.

Every number comes from :class:`prism_kernels.finance.service.FinanceService` (the runtime's
instance, so *Save to book* adds the portfolio to the same book the REST API serves and
publishes ``PortfolioUpdate``); this module only lays results out.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from prism_kernels.errors import PrismError
from prism_kernels.finance.backtest import optimizer_strategy
from prism_kernels.finance.service import FinanceService
from prism_kernels.runtime import get_runtime
from widgets.base import DomainViewer

hv.extension("bokeh", logo=False)
pn.extension("tabulator", sizing_mode="stretch_width")

SP500 = "S&P 500 (shipped closes)"
SYNTHETIC = "Synthetic market (seeded)"
SP500_END = "2022-12-28"  # the last close in the shipped file
OBJECTIVES = [
    "max_sharpe",
    "min_volatility",
    "max_quadratic_utility",
    "target_volatility",
    "maximize_return",
    "risk_parity",
    "hrp",
    "min_cvar",
]
UNCONSTRAINED = ("risk_parity", "hrp")  # long-only by construction, no other constraints
WALK_FORWARD = "walk-forward (re-optimise)"
HOLD = "rebalance to the chosen weights"
STRATEGIES = [WALK_FORWARD, HOLD, "equal_weight", "inverse_volatility"]
BOOK_COLUMNS = ["id", "name", "objective", "n_assets", "value", "created"]


class FinanceViewer(DomainViewer):
    """Portfolio optimisation, frontier, risk and backtest on one screen.

    Parameters
    ----------
    source : the shipped S&P 500 closes (first use imports skfolio: a few seconds) or a
        seeded synthetic market (instant; the default, so the dashboard opens quickly).
    assets : tickers to hold (from the chosen universe).
    years : history used (the last ``years`` of the S&P 500 file, or synthetic days).
    objective, risk_aversion, target_volatility : what the optimiser seeks.
    min_weight, max_weight, max_total_risk : constraints (0 risk cap = none).
    confidence, horizon_days : VaR/CVaR level and horizon.
    strategy, rebalance, lookback, cost_bps : the backtest.
    """

    title = param.String(default="Finance", precedence=-1)
    slug = "finance"
    order = 20
    description = (
        "Efficient frontier, optimal weights, VaR/CVaR and a backtest on real S&P 500 or synthetic prices"
    )
    probe = ("objective", "min_volatility")  # the browser test's control (widgets.base)
    source = param.Selector(default=SYNTHETIC, objects=[SYNTHETIC, SP500])
    assets = param.ListSelector(default=[], objects=[], doc="Assets to hold")
    years = param.Selector(default=2, objects=[1, 2, 3, 5, 10], doc="Years of daily history")
    seed = param.Integer(default=0, bounds=(0, 100_000), doc="Synthetic market seed")
    objective = param.Selector(default="max_sharpe", objects=OBJECTIVES)
    risk_aversion = param.Number(default=4.0, bounds=(0.1, 100.0), doc="max_quadratic_utility")
    target_volatility = param.Number(
        default=0.2, bounds=(0.01, 2.0), doc="Annual, target_volatility"
    )
    min_weight = param.Number(default=0.0, bounds=(-1.0, 0.5), step=0.01, doc="Per-asset floor")
    max_weight = param.Number(default=0.3, bounds=(0.05, 1.0), step=0.01, doc="Per-asset cap")
    max_total_risk = param.Number(
        default=0.0, bounds=(0.0, 1.0), step=0.01, doc="Annual volatility cap (0 = none)"
    )
    confidence = param.Selector(default=0.95, objects=[0.9, 0.95, 0.975, 0.99])
    horizon_days = param.Integer(default=1, bounds=(1, 20))
    strategy = param.Selector(default=WALK_FORWARD, objects=STRATEGIES)
    rebalance = param.Selector(default="monthly", objects=["weekly", "monthly", "quarterly"])
    lookback = param.Integer(
        default=126, bounds=(20, 504), doc="Days of history per re-optimisation"
    )
    cost_bps = param.Number(default=10.0, bounds=(0.0, 100.0))
    save = param.Event(label="Save to book")
    refresh = param.Event(label="Refresh book")

    version = param.Integer(default=0, precedence=-1)
    status = param.String(default="", precedence=-1)

    N_UNIVERSE = 20
    N_DEFAULT = 10

    def __init__(self, service: FinanceService | None = None, **params: Any) -> None:
        self._svc = service
        self._universe: dict[tuple, pd.DataFrame] = {}
        self.result: dict[str, Any] = {}
        super().__init__(**params)
        self.book = pn.widgets.Tabulator(
            pd.DataFrame(columns=BOOK_COLUMNS),
            disabled=True,
            show_index=False,
            height=200,
            pagination=None,
        )
        self._load_universe(keep=bool(self.assets))
        self._refresh_book()

    # ------------------------------------------------------------------ state

    @property
    def service(self) -> FinanceService:
        """The runtime's finance service (the API's book), or the one given."""
        return self._svc if self._svc is not None else get_runtime().service(FinanceService)

    def _window(self) -> tuple:
        if self.source == SP500:
            start = pd.Timestamp(SP500_END) - pd.DateOffset(years=int(self.years))
            return (self.source, start.strftime("%Y-%m-%d"), SP500_END)
        return (self.source, int(self.years), int(self.seed))

    def prices(self) -> pd.DataFrame:
        """Daily closes of the whole universe for the current source and window (cached)."""
        key = self._window()
        if key not in self._universe:
            if self.source == SP500:
                df = self.service.price_history("sp500", None, key[1], key[2])
            else:
                df = self.service.price_history(
                    "synthetic",
                    None,
                    n_assets=self.N_UNIVERSE,
                    n_periods=252 * int(self.years) + 1,
                    seed=int(self.seed),
                )
            self._universe = {key: df}  # one window kept
        return self._universe[key]

    @param.depends("source", "years", "seed", watch=True)
    def _load_universe(self, keep: bool = True) -> None:
        try:
            df = self.prices()
        except PrismError as exc:
            self.status = f"**Could not load prices:** {exc}"
            return
        names = [str(c) for c in df.columns]
        chosen = [a for a in self.assets if a in names] if keep else []
        if len(chosen) < 2:
            chosen = names[: self.N_DEFAULT]
        self.param.assets.objects = names
        with param.parameterized.discard_events(self):
            self.assets = chosen
        self.compute()

    def _constraints(self, symbols: list[str]) -> dict[str, Any]:
        if self.objective in UNCONSTRAINED:
            return {}
        c: dict[str, Any] = {
            "min_weight": float(self.min_weight),
            "max_weight": float(self.max_weight),
        }
        if self.min_weight < 0:
            c["allow_short"] = True
        if self.max_total_risk > 0:
            c["max_total_risk"] = float(self.max_total_risk)
        return self.service.request_constraints(c, symbols)

    def _objective_kwargs(self) -> dict[str, Any]:
        if self.objective == "max_quadratic_utility":
            return {"risk_aversion": float(self.risk_aversion)}
        if self.objective == "target_volatility":
            return {"target_volatility": float(self.target_volatility)}
        return {}

    @param.depends(
        "assets",
        "objective",
        "risk_aversion",
        "target_volatility",
        "min_weight",
        "max_weight",
        "max_total_risk",
        "confidence",
        "horizon_days",
        "strategy",
        "rebalance",
        "lookback",
        "cost_bps",
        watch=True,
    )
    def compute(self) -> None:
        """Optimise, trace the frontier, measure risk and backtest; results in ``self.result``."""
        svc = self.service
        symbols = list(self.assets)
        if len(symbols) < 2:
            self.status = "Pick at least two assets."
            return
        try:
            df = self.prices()[symbols]
            P = df.to_numpy()
            cons = self._constraints(symbols)
            opt = svc.optimize(
                symbols, cons, self.objective, prices=P, save=False, **self._objective_kwargs()
            )
            fcons = {} if self.objective in UNCONSTRAINED else cons
            front = svc.frontier(symbols, fcons, 25, prices=P)
            w = [x["weight"] for x in opt["weights"]]
            risk = svc.risk(
                weights=w,
                assets=symbols,
                prices=P,
                confidence=float(self.confidence),
                horizon=int(self.horizon_days),
                notional=1_000_000.0,
                mc_paths=20_000,
                include_returns=True,
            )
            bt = svc.backtest(
                self._strategy(cons, w),
                prices=df,
                rebalance=self.rebalance,
                lookback=self._lookback(len(df)),
                cost_bps=float(self.cost_bps),
                initial_capital=1_000_000.0,
            )
        except PrismError as exc:
            self.status = f"**Cannot compute:** {exc}"
            return
        self.result = {
            "symbols": symbols,
            "optimize": opt,
            "frontier": front,
            "risk": risk,
            "backtest": bt,
            "window": (str(df.index[0].date()), str(df.index[-1].date())),
        }
        self.status = self._summary()
        self.version += 1

    def _strategy(self, cons: dict[str, Any], w: list[float]) -> Any:
        if self.strategy == WALK_FORWARD:
            kw = self._objective_kwargs()
            return optimizer_strategy(self.objective, constraints=cons or None, **kw)
        if self.strategy == HOLD:
            return w
        return self.strategy

    def _lookback(self, T: int) -> int | None:
        if self.strategy in (WALK_FORWARD, "inverse_volatility"):
            return max(2, min(int(self.lookback), T - 3))
        return None

    def _summary(self) -> str:
        o, r, b = self.result["optimize"], self.result["risk"], self.result["backtest"]
        a = self.result["frontier"]["assumptions"]
        start, end = self.result["window"]
        h = self.horizon_days
        lines = [
            f"**{o['objective']}** on {len(self.result['symbols'])} assets, {start} .. {end}",
            f"Expected return {o['expected_return']:.2%}, volatility {o['expected_risk']:.2%}, "
            f"Sharpe {o['sharpe_ratio']:.2f}"
            if o["sharpe_ratio"] is not None
            else f"Expected return {o['expected_return']:.2%}, volatility {o['expected_risk']:.2%}",
            f"{h}-day VaR {self.confidence:.1%}: **{r['var']:,.0f}**, CVaR **{r['cvar']:,.0f}** "
            f"per 1,000,000 ({r['method']})",
            f"Backtest ({b['strategy']}): total return {b['total_return']:.2%}, max drawdown "
            f"{b['max_drawdown']:.2%}, costs {b['total_cost']:,.0f}",
            f"Moments: {a.get('moments', a.get('correlation'))}",
        ]
        return "\n\n".join(lines)

    @param.depends("save", watch=True)
    def _save(self) -> None:
        if not self.result:
            return
        symbols = self.result["symbols"]
        try:
            d = self.service.optimize(
                symbols,
                self._constraints(symbols),
                self.objective,
                prices=self.prices()[symbols].to_numpy(),
                save=True,
                name=f"{self.objective} ({self.source.split(' ')[0]}, {len(symbols)} assets)",
                **self._objective_kwargs(),
            )
        except PrismError as exc:
            self.status = f"**Cannot save:** {exc}"
            return
        self.status = f"Saved as `{d['portfolio_id']}`.\n\n" + self._summary()
        self._refresh_book()

    @param.depends("refresh", watch=True)
    def _refresh_book(self) -> None:
        rows = self.service.list_portfolios(limit=None)
        df = (
            pd.DataFrame(rows, columns=BOOK_COLUMNS) if rows else pd.DataFrame(columns=BOOK_COLUMNS)
        )
        self.book.value = df.iloc[::-1].reset_index(drop=True)  # newest first

    # ------------------------------------------------------------------ plots

    def frontier_plot(self, version: int = 0) -> hv.Overlay:
        """Frontier curve, the assets, min-volatility, max-Sharpe and the chosen portfolio
        (the same layers every time, so the dashboard updates them in place)."""
        f = self.result.get("frontier") or {}
        o = self.result.get("optimize") or {}
        kd = ["volatility", "expected return"]

        def pts(p: dict | None) -> list:
            return [(p["volatility"], p["expected_return"])] if p else []

        curve = hv.Curve(
            (f.get("volatilities", []), f.get("expected_returns", [])),
            kd[0],
            kd[1],
            label="efficient frontier",
        ).opts(line_width=2)
        assets = hv.Points(
            pd.DataFrame(
                {
                    "volatility": f.get("asset_volatilities", []),
                    "expected return": f.get("asset_returns", []),
                    "asset": f.get("symbols", []),
                }
            ),
            kd,
            ["asset"],
            label="assets",
        ).opts(size=7, color="gray", tools=["hover"])
        mv = hv.Points(pts(f.get("min_volatility")), kd, label="min volatility").opts(
            size=11, color="green", marker="diamond"
        )
        ms = hv.Points(pts(f.get("max_sharpe")), kd, label="max Sharpe").opts(
            size=11, color="orange", marker="diamond"
        )
        chosen = [(o["expected_risk"], o["expected_return"])] if o else []
        star = hv.Points(chosen, kd, label="chosen portfolio").opts(
            size=18, color="red", marker="star"
        )
        title = f"Efficient frontier (annual), chosen: {o.get('objective', '-')}"
        return hv.Overlay([curve, assets, mv, ms, star]).opts(
            title=title,
            height=330,
            responsive=True,
            legend_position="bottom_right",
            xformatter="%.2f",
            yformatter="%.2f",
        )

    def weights_plot(self, version: int = 0) -> hv.Bars:
        rows = (self.result.get("optimize") or {}).get("weights", [])
        df = pd.DataFrame(rows, columns=["symbol", "weight"])
        return hv.Bars(df, "symbol", "weight").opts(
            title="Weights",
            height=330,
            responsive=True,
            tools=["hover"],
            xrotation=45,
            color="steelblue",
        )

    def distribution_plot(self, version: int = 0) -> hv.Overlay:
        """Histogram of the portfolio's horizon returns with -VaR and -CVaR marked."""
        r = self.result.get("risk") or {}
        returns = r.get("portfolio_returns") or []
        data = hv.Dataset(pd.DataFrame({"return": np.asarray(returns, dtype=float)}), "return")
        hist = hv.operation.histogram(data, dimension="return", num_bins=60, normed=False)
        var_line = hv.VLine(-r["var_pct"] if r else 0.0, label="VaR").opts(
            color="orange", line_width=2
        )
        cvar_line = hv.VLine(-r["cvar_pct"] if r else 0.0, label="CVaR").opts(
            color="red", line_width=2, line_dash="dashed"
        )
        title = (
            f"{r['time_horizon_days']}-day returns: VaR and CVaR at {r['confidence_level']:.1%} "
            f"({r['method']})"
            if r
            else "Return distribution"
        )
        return hv.Overlay([hist.relabel("returns"), var_line, cvar_line]).opts(
            hv.opts.Histogram(alpha=0.6, color="steelblue"),
            hv.opts.Overlay(title=title, height=300, responsive=True, xformatter="%.3f"),
        )

    def equity_plot(self, version: int = 0) -> hv.Curve:
        if not self.result:
            return hv.Curve([], "date", "equity")
        b = self.result["backtest"]
        return hv.Curve((pd.to_datetime(b["dates"]), b["equity_curve"]), "date", "equity").opts(
            title=f"Backtest: {b['strategy']} ({self.rebalance}, {self.cost_bps:g} bps)",
            height=250,
            responsive=True,
            tools=["hover"],
            yformatter="%.0f",
        )

    def drawdown_plot(self, version: int = 0) -> hv.Area:
        if not self.result:
            return hv.Area([], "date", "drawdown")
        b = self.result["backtest"]
        return hv.Area((pd.to_datetime(b["dates"]), b["drawdown"]), "date", "drawdown").opts(
            title="Drawdown",
            height=160,
            responsive=True,
            color="firebrick",
            alpha=0.5,
            yformatter="%.2f",
        )

    def backtest_plot(self, version: int = 0) -> hv.Layout:
        """Equity curve above drawdown (what the dashboard shows, as one layout)."""
        return (self.equity_plot() + self.drawdown_plot()).cols(1)

    # ------------------------------------------------------------------ layout

    def sidebar(self) -> list:
        controls = pn.Param(
            self,
            parameters=[
                "source",
                "assets",
                "years",
                "seed",
                "objective",
                "risk_aversion",
                "target_volatility",
                "min_weight",
                "max_weight",
                "max_total_risk",
                "confidence",
                "horizon_days",
                "strategy",
                "rebalance",
                "lookback",
                "cost_bps",
                "save",
                "refresh",
            ],
            widgets={
                "assets": {"type": pn.widgets.MultiChoice},
                "save": {"type": pn.widgets.Button},
                "refresh": {"type": pn.widgets.Button},
            },
            show_name=False,
        )
        return [controls]

    def main(self) -> list:
        # DynamicMaps update their Bokeh plots in place when ``version`` moves (cheap),
        # instead of re-rendering whole figures.
        stream = hv.streams.Params(self, ["version"])

        def dmap(fn: Any) -> pn.pane.HoloViews:
            return pn.pane.HoloViews(hv.DynamicMap(fn, streams=[stream]).opts(framewise=True))

        return [
            pn.pane.Markdown(self.param.status),
            pn.Row(dmap(self.frontier_plot), dmap(self.weights_plot)),
            dmap(self.distribution_plot),
            dmap(self.equity_plot),
            dmap(self.drawdown_plot),
            pn.pane.Markdown("### Portfolio book (shared with the REST API)"),
            self.book,
        ]
