"""The Finance Viewer renders as a notebook cell, shows what the service computes (frontier,
weights, VaR/CVaR on the return distribution, backtest equity and drawdown), saves into the
runtime's book, reports bad constraints instead of raising, and is served at /finance."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import pytest

from prism_kernels.finance.service import FinanceService
from prism_kernels.runtime import Runtime, set_runtime
from widgets.finance import HOLD, SP500, FinanceViewer


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


def test_renders_like_a_notebook_cell(viewer):
    root = pn.panel(viewer).get_root()  # what display(viewer) does in JupyterLab
    assert root is not None and root.children
    assert len(viewer.assets) == 10 and viewer.years == 2
    assert "**max_sharpe** on 10 assets" in viewer.status


def test_views_show_the_service_results(viewer):
    svc = FinanceService()  # an independent service on the same prices
    syms = list(viewer.assets)
    P = viewer.prices()[syms].to_numpy()
    assert P.shape == (505, 10)
    cons = svc.request_constraints({"max_weight": 0.3, "min_weight": 0.0}, syms)
    ref = svc.optimize(syms, cons, "max_sharpe", prices=P)
    w = np.array([x["weight"] for x in viewer.result["optimize"]["weights"]])
    np.testing.assert_allclose(w, [x["weight"] for x in ref["weights"]], atol=1e-9)
    assert abs(w.sum() - 1) < 1e-8 and w.max() <= 0.3 + 1e-8

    bars = viewer.weights_plot()
    np.testing.assert_allclose(bars.dimension_values("weight"), w)

    front = viewer.frontier_plot()
    curve = [el for el in front if isinstance(el, hv.Curve)][0]
    vols, rets = curve.dimension_values(0), curve.dimension_values(1)
    assert len(vols) == 25 and np.all(np.diff(rets) > 0)
    star = [el for el in front if el.label == "chosen portfolio"][0]
    assert star.dimension_values(0)[0] == pytest.approx(viewer.result["optimize"]["expected_risk"])
    # the chosen max-Sharpe portfolio lies on the frontier: no frontier point beats its Sharpe
    assert viewer.result["optimize"]["sharpe_ratio"] >= np.max(rets / vols) - 1e-4

    dist = viewer.distribution_plot()
    r = viewer.result["risk"]
    lines = [el for el in dist if isinstance(el, hv.VLine)]
    assert [ln.data for ln in lines] == [-r["var_pct"], -r["cvar_pct"]]
    assert r["var_pct"] <= r["cvar_pct"]
    pr = np.asarray(r["portfolio_returns"])
    assert pr.size == 504
    np.testing.assert_allclose(pr, (P[1:] / P[:-1] - 1) @ w, atol=1e-12)
    assert r["var_pct"] == pytest.approx(-np.quantile(pr, 0.05), rel=1e-9)
    hist = [el for el in dist if isinstance(el, hv.Histogram)][0]
    assert hist.dimension_values(1).sum() == pr.size

    layout = viewer.backtest_plot()
    eq, dd = layout.values()
    b = viewer.result["backtest"]
    e = eq.dimension_values(1)
    assert e[-1] / 1e6 - 1 == pytest.approx(b["total_return"], rel=1e-9)
    np.testing.assert_allclose(
        -dd.dimension_values(1), 1 - e / np.maximum.accumulate(e), atol=1e-12
    )


def test_controls_recompute(viewer):
    v0 = viewer.version
    viewer.param.update(
        objective="min_volatility",
        strategy=HOLD,
        rebalance="quarterly",
        horizon_days=5,
        confidence=0.99,
    )
    assert viewer.version == v0 + 1 and "**min_volatility**" in viewer.status
    vol_min = viewer.result["optimize"]["expected_risk"]
    assert vol_min == pytest.approx(min(viewer.result["frontier"]["volatilities"]), rel=1e-3)
    r = viewer.result["risk"]
    assert r["time_horizon_days"] == 5 and r["confidence_level"] == 0.99
    assert len(r["portfolio_returns"]) == 500
    assert viewer.result["backtest"]["strategy"] == "fixed_weights"
    viewer.assets = viewer.assets[:4]
    assert len(viewer.result["optimize"]["weights"]) == 4


def test_bad_constraints_are_reported_not_raised(viewer):
    viewer.param.update(objective="max_sharpe", assets=viewer.param.assets.objects[:3])
    good = viewer.version
    viewer.max_weight = 0.2  # three assets capped at 0.2 cannot sum to 1
    assert viewer.version == good and "Cannot compute" in viewer.status
    assert "constraints.max_weight" in viewer.status
    viewer.max_weight = 0.5
    assert viewer.version == good + 1


def test_save_adds_to_the_runtime_book(viewer, runtime):
    book = runtime.service(FinanceService)
    n = book.count()
    viewer.param.trigger("save")
    assert book.count() == n + 1
    assert "Saved as" in viewer.status
    assert len(viewer.book.value) == n + 1
    pid = viewer.book.value.iloc[0]["id"]
    doc = book.get_portfolio(pid)
    assert doc["assets"] == list(viewer.assets)


@pytest.mark.slow
def test_shipped_sp500_source(runtime):
    v = FinanceViewer(source=SP500)  # first use imports skfolio (seconds)
    assert v.assets[:3] == ["AAPL", "AMD", "BAC"] and len(v.assets) == 10
    assert v.result["window"] == ("2020-12-28", "2022-12-28")
    assert v.result["risk"]["method"] == "historical"


def test_served_at_finance(server):
    import httpx

    r = httpx.get(server.url + "/finance", timeout=60)
    assert r.status_code == 200 and "<html" in r.text.lower()
