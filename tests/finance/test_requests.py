"""The finance request models own every client spelling: objective and strategy names with the
aliases the original API, its client and its docs sent (reference sections 1.5, 7, 8, 10),
the REST constraint fields translated into the optimiser's ``PortfolioConstraints``, the
client's positions and backtest parameters. Checked on the models alone (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from prism_kernels.errors import Infeasible, InvalidInput
from prism_kernels.finance.constraints import PortfolioConstraints
from tests.finance.payloads import README_RISK
from widgets.server.routes.finance import (
    NB01_EXAMPLE,
    ROUTES,
    BacktestRequest,
    OptimizeRequest,
    RiskRequest,
)

ASSETS = NB01_EXAMPLE["assets"]


@pytest.mark.parametrize(
    "spelling,name",
    [
        ("maximize_sharpe", "max_sharpe"),  # the original server
        ("MaximizeSharpe", "max_sharpe"),  # dual_api examples, PascalCase
        ("max_sharpe", "max_sharpe"),
        ("MinimizeRisk", "min_volatility"),
        ("minimize_risk", "min_volatility"),
        ("MinVariance", "min_volatility"),  # GraphQL's free strings
        ("maximize_return", "max_return"),
        ("HRP", "hrp"),
        ("RiskParity", "risk_parity"),
        ("min-cvar", "min_cvar"),
    ],
)
def test_objective_spellings_are_normalised_once(spelling, name):
    assert (
        OptimizeRequest.model_validate({"assets": ["A"], "objective": spelling}).objective == name
    )


def test_objective_objects():
    r = OptimizeRequest.model_validate(
        {"assets": ["A"], "objective": {"custom": {"risk_aversion": 3.0}}}
    )
    assert r.objective == "max_quadratic_utility" and r.risk_aversion == 3.0
    r = OptimizeRequest.model_validate(
        {"assets": ["A"], "objective": {"Custom": {"strategy": "RiskParity"}}}
    )
    assert r.objective == "risk_parity"
    # a field given beside the object wins over the object's parameter
    r = OptimizeRequest.model_validate(
        {"assets": ["A"], "objective": {"custom": {"risk_aversion": 3.0}}, "risk_aversion": 5}
    )
    assert r.risk_aversion == 5
    for bad in ("moon_shot", {"custom": {}, "other": {}}, 7):
        with pytest.raises(ValidationError) as e:
            OptimizeRequest.model_validate({"assets": ["A"], "objective": bad})
        assert e.value.errors()[0]["loc"][0] == "objective"
        assert "max_sharpe" in str(e.value)  # the choices are listed


def test_rest_constraints_become_the_optimisers():
    body = {
        **NB01_EXAMPLE,
        "assets": [{**ASSETS[0], "sector": "tech", "max_weight": 0.3}, *ASSETS[1:]],
        "constraints": {
            "min_position_size": 0.1,
            "max_position_size": 0.5,
            "max_total_risk": 0.2,
            "sectors": {"AAPL": "tech", "GOOGL": "tech", "MSFT": "soft"},
            "sector_limits": [{"sector": "tech", "max_allocation": 0.6, "min_allocation": 0.2}],
            "max_turnover": 0.5,
            "current_weights": {"AAPL": 0.5, "MSFT": 0.5},
        },
    }
    args = OptimizeRequest.model_validate(body).args()
    c = args["constraints"]
    assert isinstance(c, PortfolioConstraints)
    assert c.lower == [0.1, 0.1, 0.1] and c.upper == [0.3, 0.5, 0.5]
    assert c.max_total_risk == 0.2 and c.sectors == ["tech", "tech", "soft"]
    assert c.sector_upper == {"tech": 0.6} and c.sector_lower == {"tech": 0.2}
    assert c.turnover == 0.5 and c.current_weights == [0.5, 0.0, 0.5]
    assert args["objective"] == "max_sharpe" and args["assets"] == ["AAPL", "GOOGL", "MSFT"]
    np.testing.assert_array_equal(args["expected_returns"], [0.12, 0.15, 0.13])
    np.testing.assert_array_equal(args["volatilities"], [0.25, 0.30, 0.22])
    shorts = OptimizeRequest.model_validate(
        {**NB01_EXAMPLE, "constraints": {"allow_short": True, "max_weight": 2}}
    ).args()["constraints"]
    assert shorts.lower == [-1.0] * 3 and shorts.upper == [2.0] * 3


@pytest.mark.parametrize(
    "constraints,error,field",
    [
        (
            {"min_position_size": 0.6, "max_position_size": 0.5},
            InvalidInput,
            "constraints.min_position_size",
        ),
        ({"weight_bounds": [0.4, 1.0]}, Infeasible, "constraints.weight_bounds"),
        ({"long_only": True, "allow_short": True}, InvalidInput, "constraints.allow_short"),
        ({"min_weight": {"TSLA": 0.1}}, InvalidInput, "constraints.min_weight"),
        ({"turnover": 0.1}, InvalidInput, "constraints.current_weights"),
    ],
)
def test_rest_constraints_name_the_request_field(constraints, error, field):
    with pytest.raises(error) as e:
        OptimizeRequest.model_validate({**NB01_EXAMPLE, "constraints": constraints}).args()
    assert e.value.field == field


def test_moments_come_from_one_place():
    r = OptimizeRequest.model_validate({"assets": ["AAPL", "MSFT"]})
    assert r.market() == {"dataset": "sp500", "start_date": "2021-01-01", "end_date": None}
    r = OptimizeRequest.model_validate({"assets": ["A", "B"], "dataset": "Synthetic"})
    assert r.market()["dataset"] == "synthetic"
    prices = {"B": [1.0, 2.0, 3.0], "A": [2.0, 2.0, 4.0]}
    P = OptimizeRequest.model_validate({"assets": ["A", "B"], "prices": prices}).market()["prices"]
    np.testing.assert_array_equal(P, [[2.0, 1.0], [2.0, 2.0], [4.0, 3.0]])  # in asset order
    for body, field in [
        ({"assets": ["A", "A"], "prices": [[1, 2], [2, 3]]}, "assets.1.symbol"),
        ({"assets": ["A", "B"], "prices": [[1, 2], [2, 3]], "returns": [[0, 0]]}, "prices"),
        ({"assets": [{"symbol": "A", "expected_return": 0.1}]}, "assets.0.volatility"),
        ({"assets": [{"symbol": "A"}], "covariance": [[0.04]]}, "assets.0.expected_return"),
    ]:
        with pytest.raises(InvalidInput) as e:
            OptimizeRequest.model_validate(body).args()
        assert e.value.field == field


def test_readme_positions_are_valued():
    """The client README's assess_risk: positions with quantity, entry and current prices."""
    body = README_RISK
    args = RiskRequest.model_validate(body).args()
    assert args["assets"] == ["AAPL", "TSLA"] and args["notional"] == 24_500.0
    np.testing.assert_allclose(args["weights"], [15_000 / 24_500, 9_500 / 24_500])
    assert args["portfolio_id"] == "portfolio_001" and args["dataset"] == "sp500"
    metrics = RiskRequest.model_validate(
        {**body, "risk_metrics": ["VaR", "CVaR", "expected_shortfall", "SharpeRatio", "drawdown"]}
    ).risk_metrics
    assert metrics == ["var", "cvar", "cvar", "sharpe_ratio", "max_drawdown"]
    with pytest.raises(InvalidInput) as e:
        RiskRequest.model_validate(
            {"positions": [{"symbol": "A", "weight": 0.5}, {"symbol": "B", "value": 10.0}]}
        ).args()
    assert e.value.field == "positions"


@pytest.mark.parametrize(
    "parameters,schedule",
    [
        ({"rebalance_days": 21}, 21),
        ({"rebalance_freq": "monthly"}, "monthly"),
        ({"rebalance_frequency": "Weekly"}, "weekly"),
        ({"rebalance_frequency": "21"}, 21),
        ({"rebalance": "Q"}, "quarterly"),
        ({"rebalance_days": 5, "rebalance_freq": 5}, 5),
        ({}, "monthly"),
    ],
)
def test_backtest_rebalance_spellings(parameters, schedule):
    r = BacktestRequest.model_validate({"strategy_id": "EqualWeight", "parameters": parameters})
    args = r.args()
    assert args["rebalance"] == schedule and args["strategy"] == "equal_weight"
    top = BacktestRequest.model_validate({"strategy": "equal_weight", **parameters}).args()
    assert top["rebalance"] == schedule


def test_backtest_spellings_that_disagree_are_refused():
    r = BacktestRequest.model_validate(
        {
            "strategy": "equal_weight",
            "parameters": {"rebalance_days": 5, "rebalance_freq": "monthly"},
        }
    )
    with pytest.raises(InvalidInput) as e:
        r.args()
    assert e.value.field == "parameters.rebalance_days"  # where the body has it
    with pytest.raises(ValidationError) as e:
        BacktestRequest.model_validate({"strategy": "moon_shot"})
    assert e.value.errors()[0]["loc"] == ("strategy",)
    fixed = BacktestRequest.model_validate(
        {"strategy": "constant_mix", "weights": {"A": 0.25, "B": 0.75}}
    ).args()
    np.testing.assert_array_equal(fixed["strategy"], [0.25, 0.75])
    assert fixed["weights"] is None


def test_every_post_example_is_accepted():
    for route in ROUTES.routes:
        if route.method == "POST":
            route.request.model_validate(route.example).args()
