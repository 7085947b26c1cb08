"""The Finance Viewer renders as a notebook cell, shows what the service computes (frontier,
weights, VaR/CVaR on the return distribution, backtest equity and drawdown), recomputes only
the results a control affects, saves the portfolio shown into the runtime's book, reports bad
constraints instead of raising, re-ranges its plots when the data source changes, and is
served at /finance."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from prism_kernels.finance.constraints import PortfolioConstraints
from prism_kernels.finance.service import FinanceService
from prism_kernels.runtime import Runtime, set_runtime
from widgets.finance import HOLD, SP500, FinanceViewer

COUNTED = ("optimize", "frontier", "risk", "backtest", "price_history", "save_optimum")


@pytest.fixture(scope="module")
def runtime():
    """A fresh process runtime: the book the viewer shares with the API."""
    from prism_kernels import runtime as rt

    previous = rt._runtime
    r = set_runtime(Runtime())
    yield r
    set_runtime(previous)


@pytest.fixture(scope="module")
def viewer(runtime):
    return FinanceViewer()


class CountingService(FinanceService):
    """A FinanceService that counts the calls the viewer makes (the kernels behind them)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls = dict.fromkeys(COUNTED, 0)

    def __getattribute__(self, name):
        attr = super().__getattribute__(name)
        if name in COUNTED:
            calls = super().__getattribute__("calls")

            def counted(*a, **kw):
                calls[name] += 1
                return attr(*a, **kw)

            return counted
        return attr

    def reset(self) -> None:
        self.calls = dict.fromkeys(COUNTED, 0)


@pytest.fixture
def counted():
    svc = CountingService()
    v = FinanceViewer(service=svc)
    svc.reset()
    return v, svc


def _layers(overlay, kind, label=None):
    return [e for e in overlay if isinstance(e, kind) and (label is None or e.label == label)]


def test_renders_like_a_notebook_cell(viewer):
    root = pn.panel(viewer).get_root()  # what display(viewer) does in JupyterLab
    assert root is not None and root.children
    assert len(viewer.assets) == 10 and viewer.years == 2
    assert "**max_sharpe** on 10 assets" in viewer.summary() and viewer.status == ""
    assert set(viewer.value) == {"market", "optimum", "frontier", "risk", "backtest"}
    # a second session (another document) renders too: no Bokeh model is shared between them
    from bokeh.document import Document

    for _ in range(2):
        doc = Document()
        doc.add_root(pn.panel(FinanceViewer()).get_root(doc))


def test_views_show_the_service_results(viewer):
    svc = FinanceService()  # an independent service on the same prices
    syms = list(viewer.assets)
    P = viewer.prices(syms)
    assert P.shape == (505, 10)
    ref = svc.optimize(syms, "max_sharpe", PortfolioConstraints(lower=0.0, upper=0.3), prices=P)
    opt = viewer.value["optimum"]
    w = np.asarray(opt["weights"])
    assert opt["symbols"] == syms
    np.testing.assert_allclose(w, ref["weights"], atol=1e-9)
    assert abs(w.sum() - 1) < 1e-8 and w.max() <= 0.3 + 1e-8

    bars = viewer.weights_plot()
    np.testing.assert_allclose(bars.dimension_values("weight"), w)
    assert bars.vdims[0].label == "Weight (% of the portfolio)"

    front = viewer.frontier_plot()
    (curve,) = _layers(front, hv.Curve)
    vols, rets = curve.dimension_values(0), curve.dimension_values(1)
    assert len(vols) == 25 and np.all(np.diff(rets) > 0)
    assert curve.kdims[0].label == "Volatility (annual, %)"
    (star,) = _layers(front, hv.Points, "chosen portfolio")
    assert star.dimension_values(0)[0] == pytest.approx(opt["volatility"])
    # the chosen max-Sharpe portfolio lies on the frontier: no frontier point beats its Sharpe
    assert opt["sharpe_ratio"] >= np.max(rets / vols) - 1e-4
    # the legend sits outside the axes, so it covers no asset point or marker
    assert front.opts.get("plot").kwargs["legend_position"] == "right"

    dist = viewer.distribution_plot()
    r = viewer.value["risk"]
    (var_line,) = _layers(dist, hv.Curve, "VaR 95.0%")
    (cvar_line,) = _layers(dist, hv.Curve, "CVaR 95.0%")  # in the legend: Curves, not VLines
    assert set(var_line.dimension_values(0)) == {-r["var_pct"]}
    assert set(cvar_line.dimension_values(0)) == {-r["cvar_pct"]}
    assert r["var_pct"] <= r["cvar_pct"]
    pr = np.asarray(r["portfolio_returns"])
    assert pr.size == 504
    np.testing.assert_allclose(pr, (P[1:] / P[:-1] - 1) @ w, atol=1e-12)
    assert r["var_pct"] == pytest.approx(-np.quantile(pr, 0.05), rel=1e-9)
    (hist,) = _layers(dist, hv.Histogram)
    assert hist.dimension_values(1).sum() == pr.size
    assert hist.vdims[0].label == "Days" and hist.kdims[0].label == "Return over 1 day (%)"

    eq, dd = viewer.backtest_plot().values()
    b = viewer.value["backtest"]
    e = eq.dimension_values(1)
    assert e[-1] / 1e6 - 1 == pytest.approx(b["total_return"], rel=1e-9)
    assert eq.vdims[0].label == "Equity (USD)" and dd.vdims[0].label == "Drawdown (%)"
    np.testing.assert_allclose(
        -dd.dimension_values(1), 1 - e / np.maximum.accumulate(e), atol=1e-12
    )


def test_cost_bps_reruns_only_the_backtest(counted):
    v, svc = counted
    before = dict(v.value)
    versions = {n: getattr(v, f"{n}_version") for n in before}
    v.cost_bps = 25.0
    assert svc.calls == {**dict.fromkeys(COUNTED, 0), "backtest": 1}
    for name in ("market", "optimum", "frontier", "risk"):
        assert v.value[name] is before[name]
        assert getattr(v, f"{name}_version") == versions[name]
    assert v.backtest_version == versions["backtest"] + 1
    assert v.value["backtest"]["params"]["cost_bps"] == 25.0
    # the risk controls re-run the risk alone, the objective everything but the market
    svc.reset()
    v.confidence = 0.99
    assert svc.calls == {**dict.fromkeys(COUNTED, 0), "risk": 1}
    svc.reset()
    v.objective = "min_volatility"
    assert svc.calls == {
        **dict.fromkeys(COUNTED, 0),
        "optimize": 1,
        "frontier": 1,
        "risk": 1,
        "backtest": 1,
    }
    svc.reset()
    v.seed = 3
    assert svc.calls["price_history"] == 1 and svc.calls["optimize"] == 1


def test_controls_recompute(viewer):
    viewer.param.update(
        objective="min_volatility",
        strategy=HOLD,
        rebalance="quarterly",
        horizon_days=5,
        confidence=0.99,
    )
    assert "**min_volatility**" in viewer.summary()
    vol_min = viewer.value["optimum"]["volatility"]
    assert vol_min == pytest.approx(min(viewer.value["frontier"]["volatilities"]), rel=1e-3)
    r = viewer.value["risk"]
    assert r["time_horizon_days"] == 5 and r["confidence_level"] == 0.99
    assert len(r["portfolio_returns"]) == 500
    assert viewer.value["backtest"]["strategy"] == "fixed_weights"
    viewer.assets = viewer.assets[:4]
    assert viewer.value["optimum"]["symbols"] == list(viewer.assets)
    assert len(viewer.value["optimum"]["weights"]) == 4


def test_min_weight_and_shorts(viewer):
    # the floor's slider reads from 0 (long only); shorting is its own control
    assert viewer.param.min_weight.bounds == (0.0, 0.5)
    ten = viewer.param.assets.objects[:10]
    viewer.param.update(objective="max_sharpe", assets=ten, allow_short=True, max_weight=0.4)
    c = viewer.constraints()
    assert c.lower == -0.4 and c.upper == 0.4
    w = np.asarray(viewer.value["optimum"]["weights"])
    assert w.min() >= -0.4 - 1e-8 and w.max() <= 0.4 + 1e-8
    viewer.param.update(allow_short=False, max_weight=0.3)
    assert min(viewer.value["optimum"]["weights"]) >= -1e-8


def test_bad_constraints_are_reported_not_raised(viewer):
    viewer.param.update(objective="min_volatility", assets=viewer.param.assets.objects[:4])
    assert "optimum" in viewer.value and viewer.status == ""
    viewer.max_weight = 0.2  # four assets capped at 0.2 cannot sum to 1
    assert "optimum" not in viewer.value
    assert "Max weight" in viewer.status and "cannot sum to 1" in viewer.status
    assert viewer.assets == viewer.param.assets.objects[:4]  # the choice is kept
    viewer.cost_bps = 11.0  # a result downstream of the missing optimum says so, calmly
    assert "no portfolio" in viewer.status
    viewer.max_weight = 0.5
    assert viewer.status == "" and len(viewer.value["optimum"]["symbols"]) == 4


def test_save_stores_the_portfolio_shown(runtime):
    svc = CountingService(runtime.store, runtime.bus)
    v = FinanceViewer(service=svc)
    events = []
    token = svc.bus.subscribe(events.append)
    shown = v.value["optimum"]
    n = svc.count()
    svc.reset()
    v.param.trigger("save")
    svc.bus.unsubscribe(token)
    assert svc.calls["optimize"] == 0 and svc.calls["save_optimum"] == 1  # never re-optimised
    assert svc.count() == n + 1 and "Saved as" in v.status
    pid = v.book.value.iloc[0]["Id"]  # the book lists the newest first
    doc = svc.get_portfolio(pid)
    assert doc["assets"] == shown["symbols"] and doc["objective"] == shown["objective"]
    w = np.asarray(shown["weights"])
    np.testing.assert_allclose(doc["weights"], w / w.sum(), atol=1e-15)
    assert doc["metadata"]["optimum"] == {
        k: shown[k] for k in ("expected_return", "volatility", "sharpe_ratio")
    }
    last = v.prices(shown["symbols"])[-1]  # bought at the window's last closes
    shares = np.array([p["shares"] for p in doc["positions"]])
    assert shares @ last == pytest.approx(1e6, rel=1e-12)
    assert any(e.type == "PortfolioUpdate" and e.data["portfolio_id"] == pid for e in events)
    assert list(v.book.value.columns) == [
        "Id",
        "Name",
        "Objective",
        "Assets",
        "Value (USD)",
        "Return since inception (%)",
        "Created (UTC)",
    ]


def _ranges(plot) -> tuple[tuple[float, float], tuple[float, float]]:
    x, y = plot.handles["x_range"], plot.handles["y_range"]
    return (x.start, x.end), (y.start, y.end)


def _inside(values, rng) -> bool:
    values = np.asarray(values, dtype=float)
    return bool(np.all((values >= rng[0]) & (values <= rng[1])))


@pytest.mark.slow
def test_shipped_sp500_source_reranges_and_shows_its_assets(runtime):
    v = FinanceViewer()
    sidebar = v.sidebar()[0]
    main = v.main()
    frontier_pane, dist_pane = main[1][0], main[2]
    frontier = hv.renderer("bokeh").get_plot(frontier_pane.object)
    dist = hv.renderer("bokeh").get_plot(dist_pane.object)
    before = _ranges(frontier)
    v.source = SP500  # first use imports skfolio (seconds)
    assert v.status == ""
    held = v.value["optimum"]["symbols"]
    assert held[:3] == ["AAPL", "AMD", "BAC"] and len(held) == 10
    assert v.value["market"]["window"] == ("2020-12-28", "2022-12-28")
    assert v.value["risk"]["method"] == "historical"
    # the Assets box shows the tickers the weights show: its options and value together
    box = sidebar._widgets["assets"]
    assert list(box.value) == held == list(v.assets)
    assert set(box.value) <= set(box.options) and len(box.options) == 20
    # the frontier re-ranged: the curve, min-vol, max-Sharpe and the chosen marker are inside
    xr, yr = _ranges(frontier)
    assert (xr, yr) != before
    f, o = v.value["frontier"], v.value["optimum"]
    marks_x = f["volatilities"] + f["asset_volatilities"] + [o["volatility"]]
    marks_y = f["expected_returns"] + f["asset_returns"] + [o["expected_return"]]
    marks_x += [f["min_volatility"]["volatility"], f["max_sharpe"]["volatility"]]
    marks_y += [f["min_volatility"]["expected_return"], f["max_sharpe"]["expected_return"]]
    assert _inside(marks_x, xr) and _inside(marks_y, yr)
    r = v.value["risk"]
    dx, _ = _ranges(dist)
    assert _inside(r["portfolio_returns"] + [-r["var_pct"], -r["cvar_pct"]], dx)


def test_served_at_finance(server):
    import httpx

    assert httpx.get(server.url + "/finance", timeout=60).status_code == 302  # sign in first
    with server.login("readonly") as c:
        r = c.get("/finance", timeout=60)
    assert r.status_code == 200 and "<html" in r.text.lower() and "bokeh" in r.text.lower()
