"""FinanceService: the portfolio book (store, events, bounds, reopening), optimize, risk, backtest."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.finance import risk
from prism_kernels.finance.constraints import PortfolioConstraints
from prism_kernels.finance.market import generate_market
from prism_kernels.finance.service import FinanceService
from prism_kernels.store import Store

ASSETS = [
    {"symbol": "AAPL", "expected_return": 0.12, "volatility": 0.25, "current_price": 150.0},
    {"symbol": "GOOGL", "expected_return": 0.15, "volatility": 0.30, "current_price": 2800.0},
    {"symbol": "MSFT", "expected_return": 0.13, "volatility": 0.22, "current_price": 380.0},
]
SYMS = [a["symbol"] for a in ASSETS]
MU = [a["expected_return"] for a in ASSETS]
VOL = [a["volatility"] for a in ASSETS]


@pytest.fixture
def svc():
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    s = FinanceService(Store(":memory:"), bus)
    s.received = events
    return s


def test_create_get_list_and_event(svc):
    doc = svc.create_portfolio(
        "Growth", SYMS, [0.5, 0.3, 0.2], objective="manual", value=1e6, asset_info=ASSETS
    )
    assert doc["id"].startswith("pf-") and svc.get_portfolio(doc["id"]) == doc
    assert [p["shares"] for p in doc["positions"]] == pytest.approx(
        [5e5 / 150, 3e5 / 2800, 2e5 / 380]
    )
    st = doc["statistics"]
    w, mu, vol = (
        np.array([0.5, 0.3, 0.2]),
        np.array([0.12, 0.15, 0.13]),
        np.array([0.25, 0.30, 0.22]),
    )
    assert st["expected_return"] == pytest.approx(w @ mu, abs=1e-15)
    assert st["volatility"] == pytest.approx(np.sqrt(np.sum((w * vol) ** 2)), abs=1e-15)
    (ev,) = svc.received
    assert (
        ev.type == "PortfolioUpdate"
        and ev.data["event"] == "created"
        and ev.data["portfolio_id"] == doc["id"]
    )
    json.dumps(ev.to_message(), allow_nan=False)
    summary = svc.list_portfolios()
    assert (
        summary[0]["id"] == doc["id"] and summary[0]["value"] == 1e6 and summary[0]["n_assets"] == 3
    )
    by_symbol = svc.create_portfolio("B", ["X", "Y"], {"X": 0.25, "Y": 0.75})
    assert by_symbol["weights"] == [0.25, 0.75]
    assert svc.count() == 2


def test_revalue_prices_and_history(svc):
    doc = svc.create_portfolio("P", SYMS, [0.5, 0.3, 0.2], value=1e6, asset_info=ASSETS)
    new = {"AAPL": 165.0, "GOOGL": 2660.0, "MSFT": 399.0}
    out = svc.revalue(doc["id"], new, note="close")
    expected = 5e5 * 165 / 150 + 3e5 * 2660 / 2800 + 2e5 * 399 / 380
    assert out["value"] == pytest.approx(expected, rel=1e-14)
    assert out["history"][-1]["return"] == pytest.approx(expected / 1e6 - 1, rel=1e-12)
    assert out["history"][-1]["note"] == "close" and len(out["history"]) == 2
    assert sum(out["weights"]) == pytest.approx(1.0)
    assert out["positions"][0]["unrealized_gain"] == pytest.approx(5e5 / 150 * 15)
    assert svc.received[-1].data["event"] == "revalued"
    assert svc.received[-1].data["previous_value"] == 1e6
    assert svc.get_portfolio(doc["id"])["value"] == out["value"]


def test_revalue_returns_recomputes_statistics(svc):
    m = generate_market(4, 300, seed=1)
    doc = svc.create_portfolio("S", m.names, None, returns=m.returns[:200])
    before = doc["statistics"]
    assert before["source"] == "returns" and before["n_periods"] == 200
    out = svc.revalue(doc["id"], returns=m.returns[200:])
    growth = np.prod(1 + m.returns[200:], axis=0)
    assert out["value"] == pytest.approx(1e6 * np.mean(growth), rel=1e-12)
    assert out["statistics"]["n_periods"] == 299
    rep = risk.risk_report(
        np.asarray(out["weights"]), m.returns, mc_paths=0, notional=out["value"], fit_t=False
    )
    assert out["statistics"]["var_95_1d"] == pytest.approx(
        rep["var_amount"]["historical"], rel=1e-12
    )


def test_history_and_kind_are_bounded():
    s = FinanceService(Store(":memory:"), EventBus(), max_portfolios=3, max_history=4)
    ids = [s.create_portfolio(f"p{i}", ["A", "B"], value=100.0)["id"] for i in range(5)]
    assert s.count() == 3
    with pytest.raises(NotFound):
        s.get_portfolio(ids[0])
    for _ in range(6):
        d = s.revalue(ids[-1], returns=[[0.01, 0.0]])
    assert len(d["history"]) == 4
    assert d["value"] == pytest.approx(100 * (0.5 * 1.01**6 + 0.5), rel=1e-12)


def test_survives_reopening_the_sqlite_file(tmp_path):
    path = tmp_path / "book.sqlite"
    m = generate_market(3, 100, seed=2)
    s1 = FinanceService(Store(path), EventBus())
    doc = s1.create_portfolio("Persisted", m.names, [0.2, 0.3, 0.5], prices=m.prices)
    s1.revalue(doc["id"], m.prices[-1] * 1.01)
    before = s1.get_portfolio(doc["id"])
    s1.store.close()
    s2 = FinanceService(Store(path), EventBus())
    after = s2.get_portfolio(doc["id"])
    assert after == before and len(after["history"]) == 2
    np.testing.assert_array_equal(
        s2.store.get_arrays("portfolio", doc["id"])["returns"], m.prices[1:] / m.prices[:-1] - 1
    )
    r = s2.risk(doc["id"])
    assert r["method"] == "historical" and r["notional"] == pytest.approx(after["value"])
    s2.revalue(doc["id"], m.prices[-1])
    assert len(s2.get_portfolio(doc["id"])["history"]) == 3
    s2.store.close()


def test_thread_safe_concurrent_revaluations(svc):
    doc = svc.create_portfolio("T", ["A", "B"], value=1000.0)
    errors = []

    def work():
        try:
            for _ in range(10):
                svc.revalue(doc["id"], returns=[[0.001, 0.002]])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    d = svc.get_portfolio(doc["id"])
    assert len(d["history"]) == 61
    assert d["value"] == pytest.approx(500 * 1.001**60 + 500 * 1.002**60, rel=1e-12)


@pytest.mark.parametrize(
    "call,field",
    [
        (lambda s: s.create_portfolio("", ["A"]), "name"),
        (lambda s: s.create_portfolio("x", []), "assets"),
        (lambda s: s.create_portfolio("x", ["A", "A"]), "assets.1.symbol"),
        (lambda s: s.create_portfolio("x", ["A", "B"], [0.5]), "weights"),
        (lambda s: s.create_portfolio("x", ["A", "B"], [0.5, 0.6]), "weights"),
        (lambda s: s.create_portfolio("x", ["A", "B"], [np.nan, 1.0]), "weights"),
        (lambda s: s.create_portfolio("x", ["A", "B"], {"C": 1.0}), "weights"),
        (lambda s: s.create_portfolio("x", ["A", "B"], value=-1), "value"),
        (lambda s: s.create_portfolio("x", ["A", "B"], returns=np.zeros((5, 3))), "returns"),
        (
            lambda s: s.create_portfolio("x", ["A", "B"], prices=[[1.0, np.nan], [1.0, 1.0]]),
            "prices",
        ),
        (lambda s: s.risk(weights=[0.5, 0.5], returns=np.zeros((5, 3))), "weights"),
        (lambda s: s.risk(), "weights"),
    ],
)
def test_invalid_inputs(svc, call, field):
    with pytest.raises(InvalidInput) as e:
        call(svc)
    assert e.value.field == field


def test_revalue_errors(svc):
    with pytest.raises(NotFound):
        svc.revalue("nope", returns=[[0.0]])
    doc = svc.create_portfolio("x", ["A", "B"])
    for kw, field in [
        ({}, "prices"),
        ({"prices": {"A": 1.0}}, "prices"),
        ({"prices": [1.0, 2.0]}, "prices"),
        ({"returns": [[0.1, np.nan]]}, "returns"),
    ]:
        with pytest.raises(InvalidInput) as e:
            svc.revalue(doc["id"], **kw)
        assert e.value.field == field
    with pytest.raises(NotFound):
        svc.delete_portfolio("nope")
    svc.delete_portfolio(doc["id"])
    assert svc.count() == 0
    with pytest.raises(NotFound):
        svc.delete_portfolio(doc["id"])


def test_optimize_matches_the_optimiser_and_saves(svc):
    from prism_kernels.finance.optimize import optimize

    cons = PortfolioConstraints(lower=0.1, upper=0.5, max_total_risk=1.0)
    out = svc.optimize(
        SYMS,
        "max_sharpe",
        cons,
        expected_returns=MU,
        volatilities=VOL,
        save=True,
        name="ms",
        asset_info=ASSETS,
    )
    cov = np.diag(np.array(VOL) ** 2)
    ref = optimize(np.array(MU), cov, "max_sharpe", cons)
    w = np.array(out["weights"])
    np.testing.assert_allclose(w, np.asarray(ref.weights), atol=1e-10)
    assert np.all(w >= 0.1 - 1e-7) and np.all(w <= 0.5 + 1e-7)
    assert out["sharpe_ratio"] == pytest.approx(
        out["expected_return"] / out["volatility"], rel=1e-9
    )
    assert out["symbols"] == SYMS and out["computation_time_ms"] > 0
    assert out["assumptions"]["correlation"] == "identity"
    saved = svc.get_portfolio(out["portfolio_id"])
    assert saved["objective"] == "max_sharpe" and saved["name"] == "ms"
    np.testing.assert_allclose(saved["weights"], w / w.sum(), atol=1e-15)
    assert saved["metadata"]["optimum"]["sharpe_ratio"] == out["sharpe_ratio"]
    assert saved["positions"][0]["shares"] == pytest.approx(saved["weights"][0] * 1e6 / 150.0)
    mv = svc.optimize(SYMS, "min_volatility", cons, expected_returns=MU, volatilities=VOL)
    assert mv["objective"] == "min_volatility" and "portfolio_id" not in mv
    json.dumps(out, allow_nan=False)
    health = svc.health()
    assert health["optimization_latency_ms"] > 0 and health["optimizations_run"] == 2
    assert health["portfolios_tracked"] == 1 and health["stored"] == {"portfolio": 1}
    assert health["operations"]["optimize"]["count"] == 2


def test_max_return_is_the_optimisers(svc):
    """The highest return the bounds allow (an LP), and within a risk cap the frontier at the
    cap: the objective the original API called maximize_return."""
    cons = PortfolioConstraints(lower=0.1, upper=0.5)
    out = svc.optimize(SYMS, "max_return", cons, expected_returns=MU, volatilities=VOL)
    # bounds and budget only: fill the best asset to its cap, then the next (closed form)
    np.testing.assert_allclose(out["weights"], [0.1, 0.5, 0.4], atol=1e-9)
    assert out["objective"] == "max_return"
    capped = svc.optimize(
        SYMS,
        "max_return",
        PortfolioConstraints(lower=0.1, upper=0.5, max_total_risk=0.16),
        expected_returns=MU,
        volatilities=VOL,
    )
    tv = svc.optimize(
        SYMS,
        "target_volatility",
        cons,
        expected_returns=MU,
        volatilities=VOL,
        target_volatility=0.16,
    )
    assert capped["risk_capped"] is True and capped["volatility"] == pytest.approx(0.16, rel=1e-6)
    np.testing.assert_allclose(capped["weights"], tv["weights"], atol=1e-9)


def test_a_singular_covariance_is_rejected_everywhere(svc):
    """One rule (estimators.check_covariance): a singular covariance is a 400-style error
    naming the argument, from the service and from the optimiser alike."""
    from prism_kernels.finance.optimize import optimize

    S = np.array([[0.04, 0.04, 0.0], [0.04, 0.04, 0.0], [0.0, 0.0, 0.04]])
    with pytest.raises(InvalidInput, match="singular") as e:
        svc.optimize(SYMS, "min_volatility", expected_returns=MU, covariance=S)
    assert e.value.field == "covariance"
    with pytest.raises(InvalidInput, match="singular") as e:
        svc.risk(assets=["A", "B", "C"], weights=[0.4, 0.3, 0.3], covariance=S, mc_paths=0)
    assert e.value.field == "covariance"
    with pytest.raises(InvalidInput, match="singular") as e:
        optimize(np.array(MU), S, "min_volatility")
    assert e.value.field == "cov"
    assert svc.computations() == 0  # rejected requests are not computations


def test_optimize_from_history(svc):
    m = generate_market(5, 400, seed=9)
    out = svc.optimize(m.names, "min_volatility", prices=m.prices)
    assert sum(out["weights"]) == pytest.approx(1.0, abs=1e-6)
    assert out["assumptions"]["periods"] == 399


def test_risk_matches_kernel(svc):
    m = generate_market(4, 500, seed=6)
    w = [0.4, 0.3, 0.2, 0.1]
    doc = svc.create_portfolio("R", m.names, w, returns=m.returns, value=2e6)
    r = svc.risk(doc["id"], confidence=0.99, horizon=10, mc_paths=20_000)
    rep = risk.risk_report(
        np.array(w), m.returns, confidence=0.99, horizon=10, notional=2e6, mc_paths=20_000
    )
    assert r["var"] == pytest.approx(rep["var_amount"]["historical"], rel=1e-14)
    assert r["var_pct"] == pytest.approx(rep["var"]["historical"], rel=1e-14)
    assert r["max_drawdown"] == pytest.approx(rep["max_drawdown"]["value"], rel=1e-14)
    assert r["var_by_method"]["monte_carlo"] == pytest.approx(
        rep["var_amount"]["monte_carlo"], rel=1e-14
    )
    assert sum(r["component_var"]) == pytest.approx(
        rep["var_amount"]["parametric_normal"], rel=1e-12
    )
    mc = svc.risk(doc["id"], method="monte_carlo", mc_paths=20_000)
    assert mc["method"] == "monte_carlo"
    # a portfolio without history: parametric from its asset assumptions
    d2 = svc.create_portfolio("A", SYMS, [0.4, 0.3, 0.3], value=1e6, asset_info=ASSETS)
    r2 = svc.risk(d2["id"], confidence=0.95, horizon=30, mc_paths=0)
    w2, mu2, vol2 = (
        np.array([0.4, 0.3, 0.3]),
        np.array([0.12, 0.15, 0.13]) / 252,
        np.array([0.25, 0.3, 0.22]),
    )
    sd = np.sqrt(np.sum((w2 * vol2) ** 2) / 252)
    assert r2["method"] == "parametric_normal"
    assert r2["var"] == pytest.approx(
        1e6 * risk.normal_var_cvar(w2 @ mu2, sd, 0.95, 30)[0], rel=1e-12
    )
    with pytest.raises(InvalidInput) as e:
        svc.risk(d2["id"], method="historical", mc_paths=0)
    assert e.value.field == "method"
    json.dumps(r, allow_nan=False)


def test_backtest_through_the_service(svc):
    m = generate_market(3, 300, seed=8)
    out = svc.backtest(
        "equal_weight",
        prices=m.prices,
        assets=m.names,
        rebalance=21,
        cost_bps=10,
        initial_capital=1e6,
    )
    assert out["asset_names"] == m.names
    assert out["n_trades"] > 0 and len(out["equity_curve"]) == 300
    doc = svc.create_portfolio("bh", m.names, [0.6, 0.3, 0.1])
    bh = svc.backtest(prices=m.to_frame(), portfolio_id=doc["id"], cost_bps=0)
    closed = 1e6 * (m.prices / m.prices[0]) @ np.array([0.6, 0.3, 0.1])
    np.testing.assert_allclose(bh["equity_curve"], closed, rtol=1e-12)
    sp = svc.backtest(
        "min_volatility",
        dataset="sp500",
        assets=["AAPL", "JPM", "XOM"],
        start_date="2019-01-01",
        end_date="2019-12-31",
        include_series=False,
    )
    assert sp["start_date"] == "2019-01-01" and sp["n_rebalances"] >= 5
    syn = svc.backtest("equal_weight", dataset="synthetic", seed=1)
    assert syn["asset_names"][0].startswith(("TECH", "FIN"))
    json.dumps(sp, allow_nan=False)
    with pytest.raises(InvalidInput) as e:
        svc.backtest(dataset="bloomberg")
    assert e.value.field == "dataset"
