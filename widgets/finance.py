"""The Finance dashboard: pick assets (the shipped S&P 500 closes or a seeded synthetic
market), an objective and constraints; see the efficient frontier with the chosen portfolio
on it, its weights, its return distribution with VaR and CVaR marked, and a backtest equity
curve with drawdown. Served at ``/finance``; in a notebook, display ``FinanceViewer()``.

Every number comes from :class:`prism_kernels.finance.service.FinanceService` (the runtime's
instance, so *Save to book* adds the portfolio shown to the same book the REST API serves and
publishes ``PortfolioUpdate``); this module only lays results out. The results and what they
depend on (a control recomputes only what depends on it, off the server's event loop)::

    market   <- source, years, seed
    optimum  <- market, assets, objective, risk_aversion, target_volatility, min_weight,
                max_weight, allow_short, max_total_risk
    frontier <- market, assets, objective, min_weight, max_weight, allow_short
    risk     <- optimum, confidence, horizon_days
    backtest <- optimum, strategy, rebalance, lookback, cost_bps
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import NumeralTickFormatter
from bokeh.models.widgets.tables import NumberFormatter

from prism_kernels.errors import InvalidInput
from prism_kernels.finance.backtest import optimizer_strategy
from prism_kernels.finance.constraints import PortfolioConstraints
from prism_kernels.finance.service import FinanceService
from widgets.base import DomainViewer, Result, rerange, result_table

SP500 = "S&P 500 (shipped closes)"
SYNTHETIC = "Synthetic market (seeded)"
SOURCES = {SYNTHETIC: "synthetic", SP500: "sp500"}
SP500_END = "2022-12-28"  # the last close in the shipped file
OBJECTIVES = [
    "max_sharpe",
    "min_volatility",
    "max_quadratic_utility",
    "target_volatility",
    "max_return",
    "risk_parity",
    "hrp",
    "min_cvar",
]
UNCONSTRAINED = ("risk_parity", "hrp")  # long-only by construction, no other constraints
WALK_FORWARD = "walk-forward (re-optimise)"
HOLD = "rebalance to the chosen weights"
STRATEGIES = [WALK_FORWARD, HOLD, "equal_weight", "inverse_volatility"]
NOTIONAL = 1_000_000.0  # USD: the risk figures and the backtest's capital
FRONTIER_POINTS = 25
MC_PATHS = 20_000
# kernel argument -> the control a person changes
CONTROLS = {
    "constraints.upper": "Max weight",
    "constraints.lower": "Min weight",
    "constraints.max_total_risk": "Max total risk",
    "target_volatility": "Target volatility",
    "expected_returns": "Objective",
}
BOOK_COLUMNS = {
    "id": "Id",
    "name": "Name",
    "objective": "Objective",
    "n_assets": "Assets",
    "value": "Value (USD)",
    "return_since_inception": "Return since inception (%)",
    "created": "Created (UTC)",
}


def _ticks(fmt: str) -> NumeralTickFormatter:
    """A tick formatter (``"0%"``: fractions shown as percent; ``"$0,0"``: US dollars). A new one
    per plot: a Bokeh model belongs to one document (one browser session) only."""
    return NumeralTickFormatter(format=fmt)


class FinanceViewer(DomainViewer):
    """Portfolio optimisation, frontier, risk and backtest on one screen.

    Parameters
    ----------
    source : the shipped S&P 500 closes (first use imports skfolio: a few seconds) or a
        seeded synthetic market (instant; the default, so the dashboard opens quickly).
    assets : tickers to hold (from the chosen universe).
    years : history used (the last ``years`` of the S&P 500 file, or synthetic days).
    objective, risk_aversion, target_volatility : what the optimiser seeks.
    min_weight, max_weight, allow_short, max_total_risk : constraints (0 risk cap = none).
    confidence, horizon_days : VaR/CVaR level and horizon.
    strategy, rebalance, lookback, cost_bps : the backtest.
    """

    title = param.String(default="Finance", precedence=-1)
    slug = "finance"
    order = 20
    description = (
        "Efficient frontier, optimal weights, VaR/CVaR and a backtest on real S&P 500 or "
        "synthetic prices"
    )
    service_class = FinanceService
    probe = ("objective", "min_volatility")  # the browser test's control (widgets.base)
    source_probe = ("source", SP500)
    outputs = (
        Result("market", ("source", "years", "seed")),
        Result(
            "optimum",
            (
                "market",
                "assets",
                "objective",
                "risk_aversion",
                "target_volatility",
                "min_weight",
                "max_weight",
                "allow_short",
                "max_total_risk",
            ),
        ),
        Result(
            "frontier",
            ("market", "assets", "objective", "min_weight", "max_weight", "allow_short"),
        ),
        Result("risk", ("optimum", "confidence", "horizon_days")),
        Result("backtest", ("optimum", "strategy", "rebalance", "lookback", "cost_bps")),
    )

    source = param.Selector(default=SYNTHETIC, objects=[SYNTHETIC, SP500], label="Data source")
    assets = param.ListSelector(default=[], objects=[], doc="Assets to hold", label="Assets")
    years = param.Selector(
        default=2, objects=[1, 2, 3, 5, 10], label="History (years of daily closes)"
    )
    seed = param.Integer(default=0, bounds=(0, 100_000), label="Synthetic market seed")
    objective = param.Selector(default="max_sharpe", objects=OBJECTIVES, label="Objective")
    risk_aversion = param.Number(
        default=4.0, bounds=(0.1, 100.0), label="Risk aversion (max_quadratic_utility)"
    )
    target_volatility = param.Number(
        default=0.2, bounds=(0.01, 2.0), step=0.01, label="Target volatility (annual)"
    )
    min_weight = param.Number(
        default=0.0, bounds=(0.0, 0.5), step=0.01, label="Min weight per asset (long only)"
    )
    max_weight = param.Number(
        default=0.3, bounds=(0.05, 1.0), step=0.01, label="Max weight per asset"
    )
    allow_short = param.Boolean(default=False, label="Allow shorts (each weight in ±max weight)")
    max_total_risk = param.Number(
        default=0.0, bounds=(0.0, 1.0), step=0.01, label="Max total risk (annual vol., 0 = none)"
    )
    confidence = param.Selector(
        default=0.95, objects=[0.9, 0.95, 0.975, 0.99], label="VaR/CVaR confidence"
    )
    horizon_days = param.Integer(default=1, bounds=(1, 20), label="Risk horizon (trading days)")
    strategy = param.Selector(default=WALK_FORWARD, objects=STRATEGIES, label="Backtest strategy")
    rebalance = param.Selector(
        default="monthly", objects=["weekly", "monthly", "quarterly"], label="Rebalance"
    )
    lookback = param.Integer(
        default=126, bounds=(20, 504), label="Look-back (trading days per re-optimisation)"
    )
    cost_bps = param.Number(default=10.0, bounds=(0.0, 100.0), label="Trading cost (bps)")
    save = param.Event(label="Save to book")
    reload_book = param.Event(label="Refresh book")

    N_UNIVERSE = 20
    N_DEFAULT = 10

    def __init__(self, service: FinanceService | None = None, **params: Any) -> None:
        self._syncing = False
        super().__init__(service=service, **params)
        self.book = result_table(
            BOOK_COLUMNS.values(),
            height=200,
            formatters={
                BOOK_COLUMNS["value"]: NumberFormatter(format="$0,0"),
                BOOK_COLUMNS["return_since_inception"]: NumberFormatter(format="0.00%"),
            },
        )
        self.refresh()
        self._refresh_book()

    # ------------------------------------------------------------------ results

    def compute_market(self) -> dict[str, Any]:
        """The universe's daily closes for the source and window, and the assets to hold in
        it (the current choice when it is all in the universe, else the first ten)."""
        years = int(self.years)
        if SOURCES[self.source] == "sp500":
            start = pd.Timestamp(SP500_END) - pd.DateOffset(years=years)
            df = self.service.price_history("sp500", None, start.strftime("%Y-%m-%d"), SP500_END)
        else:
            df = self.service.price_history(
                "synthetic",
                None,
                n_assets=self.N_UNIVERSE,
                n_periods=252 * years + 1,
                seed=int(self.seed),
            )
        names = [str(c) for c in df.columns]
        kept = [a for a in self.assets if a in names]
        return {
            "prices": df,
            "names": names,
            "chosen": kept if len(kept) >= 2 else names[: self.N_DEFAULT],
            "window": (str(df.index[0].date()), str(df.index[-1].date())),
        }

    def compute_optimum(self) -> dict[str, Any]:
        symbols = self.symbols()
        with self._controls_named():
            return self.service.optimize(
                symbols,
                self.objective,
                self.constraints(),
                prices=self.prices(symbols),
                **self._objective_kwargs(),
            )

    def compute_frontier(self) -> dict[str, Any]:
        symbols = self.symbols()
        with self._controls_named():
            return self.service.frontier(
                symbols, self.constraints(), FRONTIER_POINTS, prices=self.prices(symbols)
            )

    def compute_risk(self) -> dict[str, Any]:
        opt = self._optimum()
        return self.service.risk(
            assets=opt["symbols"],
            weights=opt["weights"],
            prices=self.prices(opt["symbols"]),
            confidence=float(self.confidence),
            horizon=int(self.horizon_days),
            notional=NOTIONAL,
            mc_paths=MC_PATHS,
            include_returns=True,
        )

    def compute_backtest(self) -> dict[str, Any]:
        opt = self._optimum()
        df = self.value["market"]["prices"][opt["symbols"]]
        if self.strategy == WALK_FORWARD:
            strategy: Any = optimizer_strategy(
                self.objective, constraints=self.constraints(), **self._objective_kwargs()
            )
        elif self.strategy == HOLD:
            strategy = opt["weights"]
        else:
            strategy = self.strategy
        lookback = None
        if self.strategy in (WALK_FORWARD, "inverse_volatility"):
            lookback = max(2, min(int(self.lookback), len(df) - 3))
        return self.service.backtest(
            strategy,
            prices=df,
            rebalance=self.rebalance,
            lookback=lookback,
            cost_bps=float(self.cost_bps),
            initial_capital=NOTIONAL,
        )

    # ------------------------------------------------------------------ inputs of the service

    def symbols(self) -> list[str]:
        """The assets to hold: the chosen ones when they all belong to the current universe,
        else (the source just changed) those the market result picked."""
        market = self.value["market"]
        if self.assets and set(self.assets) <= set(market["names"]):
            if len(self.assets) < 2:
                raise InvalidInput("Assets", "pick at least two assets")
            return list(self.assets)
        return list(market["chosen"])

    def prices(self, symbols: list[str]) -> np.ndarray:
        """Daily closes (USD) of ``symbols`` in the current window, ``(T, n)``."""
        return self.value["market"]["prices"][symbols].to_numpy()

    def constraints(self) -> PortfolioConstraints | None:
        """The optimiser's constraints from the controls (none for risk parity and HRP)."""
        if self.objective in UNCONSTRAINED:
            return None
        cap = float(self.max_weight)
        return PortfolioConstraints(
            lower=-cap if self.allow_short else float(self.min_weight),
            upper=cap,
            max_total_risk=float(self.max_total_risk) if self.max_total_risk > 0 else None,
        )

    def _objective_kwargs(self) -> dict[str, Any]:
        if self.objective == "max_quadratic_utility":
            return {"risk_aversion": float(self.risk_aversion)}
        if self.objective == "target_volatility":
            return {"target_volatility": float(self.target_volatility)}
        return {}

    def _optimum(self) -> dict[str, Any]:
        opt = self.value.get("optimum")
        if opt is None:
            raise InvalidInput("Optimum", "no portfolio to assess: change the constraints")
        return opt

    @staticmethod
    @contextmanager
    def _controls_named() -> Iterator[None]:
        """Errors of the service name the control to change, not the kernel's argument."""
        try:
            yield
        except InvalidInput as exc:
            if exc.field not in CONTROLS:
                raise
            raise type(exc)(CONTROLS[exc.field], exc.message) from None

    # ------------------------------------------------------------------ the controls

    def _controls_changed(self, *events: param.parameterized.Event) -> None:
        if not self._syncing:  # the viewer itself showing the assets it used
            super()._controls_changed(*events)

    def after_refresh(self, names: list[str]) -> None:
        """After a new market, show its universe and the assets actually held, together, in
        the Assets box (the options and the value in one step)."""
        market = self.value.get("market")
        if market is None or "market" not in names:
            return
        opt = self.value.get("optimum")
        held = opt["symbols"] if opt is not None else market["chosen"]
        self._syncing = True
        try:
            self.param.assets.objects = market["names"]
            self.assets = list(held)
        finally:
            self._syncing = False

    @param.depends("save", watch=True)
    def _save(self) -> None:
        opt = self.value.get("optimum")
        if opt is None:
            self.status = "**Save:** nothing to save: no portfolio is shown"
            return
        name = f"{opt['objective']} ({self.source.split(' ')[0]}, {len(opt['symbols'])} assets)"
        prices = self.prices(opt["symbols"])
        self.run_in_background(
            lambda: self.service.save_optimum(opt, name, value=NOTIONAL, prices=prices),
            self._saved,
        )

    def _saved(self, doc: dict[str, Any]) -> None:
        self.status = f"Saved as `{doc['id']}` in the book."
        self._refresh_book()

    @param.depends("reload_book", watch=True)
    def _refresh_book(self) -> None:
        rows = self.service.list_portfolios(limit=None)  # newest first
        df = pd.DataFrame(rows, columns=list(BOOK_COLUMNS)).rename(columns=BOOK_COLUMNS)
        self.book.value = df.reset_index(drop=True)

    # ------------------------------------------------------------------ views

    @param.depends("optimum_version", "risk_version", "backtest_version")
    def summary(self) -> str:
        """The figures of the portfolio shown, in words and units."""
        o, r, b = (self.value.get(k) for k in ("optimum", "risk", "backtest"))
        market = self.value.get("market")
        if o is None or market is None:
            return ""
        start, end = market["window"]
        sharpe = f", Sharpe {o['sharpe_ratio']:.2f}" if o["sharpe_ratio"] is not None else ""
        lines = [
            f"**{o['objective']}** on {len(o['symbols'])} assets, daily closes {start} .. {end}",
            f"Expected return {o['expected_return']:.2%} a year, volatility "
            f"{o['volatility']:.2%} a year{sharpe}",
        ]
        if r is not None:
            lines.append(
                f"{r['time_horizon_days']}-day VaR at {r['confidence_level']:.1%}: "
                f"**{r['var']:,.0f} USD**, CVaR **{r['cvar']:,.0f} USD** on "
                f"{r['notional']:,.0f} USD ({r['method']})"
            )
        if b is not None:
            lines.append(
                f"Backtest ({b['strategy']}): total return {b['total_return']:.2%}, max "
                f"drawdown {b['max_drawdown']:.2%}, costs {b['total_cost']:,.0f} USD"
            )
        a = o["assumptions"]
        lines.append(f"Moments: {a.get('moments', a.get('correlation'))}")
        return "\n\n".join(lines)

    def frontier_plot(self, **_: Any) -> hv.Overlay:
        """Frontier curve, the assets, min-volatility, max-Sharpe and the chosen portfolio
        (the same layers every time, so the dashboard updates them in place)."""
        f = self.value.get("frontier") or {}
        o = self.value.get("optimum") or {}
        kd = [
            hv.Dimension("volatility", label="Volatility (annual, %)"),
            hv.Dimension("expected_return", label="Expected return (annual, %)"),
        ]

        def pts(p: dict | None) -> list:
            return [(p["volatility"], p["expected_return"])] if p else []

        curve = hv.Curve(
            (f.get("volatilities", []), f.get("expected_returns", [])),
            *kd,
            label="efficient frontier",
        ).opts(line_width=2, color="#1f77b4")
        assets = hv.Points(
            pd.DataFrame(
                {
                    "volatility": f.get("asset_volatilities", []),
                    "expected_return": f.get("asset_returns", []),
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
        star = hv.Points(pts(o or None), kd, label="chosen portfolio").opts(
            size=18, color="red", marker="star"
        )
        title = f"Efficient frontier, chosen: {o.get('objective', '-')}"
        # The legend sits outside, right of the axes: inside, any corner can hold the frontier
        # (a tight max weight keeps it in the top left) or an asset (bottom right).
        return rerange(
            hv.Overlay([curve, assets, mv, ms, star]).opts(
                title=title,
                height=360,
                responsive=True,
                legend_position="right",
                xformatter=_ticks("0%"),
                yformatter=_ticks("0%"),
                padding=0.08,
            )
        )

    def weights_plot(self, **_: Any) -> hv.Bars:
        o = self.value.get("optimum") or {}
        df = pd.DataFrame({"symbol": o.get("symbols", []), "weight": o.get("weights", [])})
        return rerange(
            hv.Bars(
                df,
                hv.Dimension("symbol", label="Asset"),
                hv.Dimension("weight", label="Weight (% of the portfolio)"),
            ).opts(
                title="Weights",
                height=360,
                responsive=True,
                tools=["hover"],
                xrotation=45,
                color="steelblue",
                yformatter=_ticks("0%"),
            )
        )

    def distribution_plot(self, **_: Any) -> hv.Overlay:
        """Histogram of the portfolio's horizon returns with -VaR and -CVaR marked (lines in
        the legend, drawn as vertical curves so they have one)."""
        r = self.value.get("risk") or {}
        returns = np.asarray(r.get("portfolio_returns") or [], dtype=float)
        days = r.get("time_horizon_days", 1)
        x = hv.Dimension("return", label=f"Return over {days} day{'s' if days > 1 else ''} (%)")
        hist = hv.operation.histogram(
            hv.Dataset(pd.DataFrame({"return": returns}), x),
            dimension="return",
            num_bins=60,
            normed=False,
        ).relabel("returns")
        hist = hist.redim(**{hist.vdims[0].name: hv.Dimension(hist.vdims[0].name, label="Days")})
        top = float(hist.dimension_values(1).max()) if returns.size else 1.0
        count = hv.Dimension(hist.vdims[0].name, label="Days")
        level = f"{r['confidence_level']:.1%}" if r else ""
        var_line = hv.Curve(
            [(-r.get("var_pct", 0.0), 0.0), (-r.get("var_pct", 0.0), top)],
            x,
            count,
            label=f"VaR {level}",
        ).opts(color="orange", line_width=2)
        cvar_line = hv.Curve(
            [(-r.get("cvar_pct", 0.0), 0.0), (-r.get("cvar_pct", 0.0), top)],
            x,
            count,
            label=f"CVaR {level}",
        ).opts(color="red", line_width=2, line_dash="dashed")
        title = (
            f"{r['time_horizon_days']}-day returns: VaR and CVaR at {level} ({r['method']})"
            if r
            else "Return distribution"
        )
        return rerange(
            hv.Overlay([hist, var_line, cvar_line]).opts(
                hv.opts.Histogram(alpha=0.6, color="steelblue"),
                hv.opts.Overlay(
                    title=title,
                    height=300,
                    responsive=True,
                    xformatter=_ticks("0.0%"),
                    legend_position="right",
                ),
            )
        )

    def equity_plot(self, **_: Any) -> hv.Curve:
        b = self.value.get("backtest") or {}
        title = (
            f"Backtest: {b.get('strategy', '-')} ({self.rebalance}, {self.cost_bps:g} bps costs)"
        )
        return self._over_time(
            hv.Curve,
            "equity_curve",
            "Equity (USD)",
            "$0,0",
            title=title,
            height=250,
            tools=["hover"],
        )

    def drawdown_plot(self, **_: Any) -> hv.Area:
        return self._over_time(
            hv.Area,
            "drawdown",
            "Drawdown (%)",
            "0%",
            title="Drawdown",
            height=160,
            color="firebrick",
            alpha=0.5,
        )

    def _over_time(self, element: type, key: str, label: str, ticks: str, **opts: Any) -> Any:
        """A backtest series against its dates, re-ranged on each new backtest."""
        b = self.value.get("backtest") or {}
        return rerange(
            element(
                (pd.to_datetime(b.get("dates") or []), b.get(key) or []),
                hv.Dimension("date", label="Date"),
                hv.Dimension(key, label=label),
            ).opts(responsive=True, yformatter=_ticks(ticks), **opts)
        )

    def backtest_plot(self, **_: Any) -> hv.Layout:
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
                "allow_short",
                "max_total_risk",
                "confidence",
                "horizon_days",
                "strategy",
                "rebalance",
                "lookback",
                "cost_bps",
                "save",
                "reload_book",
            ],
            widgets={
                "assets": {"type": pn.widgets.MultiChoice},
                "save": {"type": pn.widgets.Button},
                "reload_book": {"type": pn.widgets.Button},
            },
            show_name=False,
        )
        return [controls]

    def main(self) -> list:
        # DynamicMaps update their Bokeh plots in place when a result's version moves (cheap),
        # instead of re-rendering whole figures; each re-ranges on its new data.
        def dmap(fn: Any, *results: str) -> pn.pane.HoloViews:
            stream = hv.streams.Params(self, [f"{r}_version" for r in results])
            return pn.pane.HoloViews(rerange(hv.DynamicMap(fn, streams=[stream])))

        return [
            pn.pane.Markdown(self.summary, sizing_mode="stretch_width"),
            pn.Row(
                dmap(self.frontier_plot, "frontier", "optimum"),
                dmap(self.weights_plot, "optimum"),
            ),
            dmap(self.distribution_plot, "risk"),
            dmap(self.equity_plot, "backtest"),
            dmap(self.drawdown_plot, "backtest"),
            pn.pane.Markdown("### Portfolio book (shared with the REST API)"),
            self.book,
        ]
