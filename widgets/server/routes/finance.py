"""``/api/v1/finance``: portfolio optimisation, the efficient frontier, a persistent book of
portfolios, risk (VaR/CVaR and more) and backtests, all through
:class:`prism_kernels.finance.service.FinanceService`.

Units: ``expected_return``, ``volatility``, ``covariance`` and ``max_total_risk`` are annual
fractions (252 trading days); weights are fractions of the portfolio value; ``prices`` are
daily closes, oldest first. Requests accept the original server's shapes (``assets`` with
``symbol``/``expected_return``/``volatility``, ``constraints`` with ``min_position_size`` /
``max_position_size``, ``risk`` with ``confidence_level``/``time_horizon_days``, ``backtest``
with ``strategy``/``start_date``/``end_date``) and those of the original Python client
(``risk`` with ``positions``/``risk_metrics``, ``backtest`` with ``strategy_id`` /
``parameters``/``historical_data``); objective and strategy names in snake_case or PascalCase.
Infeasible constraints are a 400 naming the field, never a silent renormalisation.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import numpy as np
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    RootModel,
    WithJsonSchema,
    field_validator,
)

from prism_kernels.errors import InvalidInput
from prism_kernels.finance.service import FinanceService
from prism_kernels.names import snake_case as _snake
from widgets.server.models import ApiModel, ApiResponse
from widgets.server.routing import Request, RouteGroup

ROUTES = RouteGroup("finance", "Portfolio optimisation, risk and backtesting")

Matrix = list[list[float]]


def _table(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return v
    raise ValueError("must be rows [[p_asset0, p_asset1, ...], ...] or {symbol: [p0, p1, ...]}")


def _num(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"must be numbers; got {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError("must be finite numbers")
    return v


def _weights(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _num(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_num(x) for x in v]
    raise ValueError("must be a list of weights or {symbol: weight}")


def _bound(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _num(v)
    return _weights(v)


# Unions are checked by the service (align_prices, _parse_weights) so that a 400 names the
# offending entry (``prices.AAPL``, ``prices.3``) rather than a pydantic union branch.
PriceInput = Annotated[
    Any,
    BeforeValidator(_table),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "number"}},
                },
            ],
            "description": "Daily closes, oldest first: T x n rows, or {symbol: [closes]}",
        }
    ),
]
WeightInput = Annotated[
    Any,
    BeforeValidator(_weights),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "array", "items": {"type": "number"}},
                {"type": "object", "additionalProperties": {"type": "number"}},
            ],
            "description": "One weight per asset, or {symbol: weight}",
        }
    ),
]
BoundInput = Annotated[
    Any,
    BeforeValidator(_bound),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "number"},
                {"type": "array", "items": {"type": "number"}},
                {"type": "object", "additionalProperties": {"type": "number"}},
            ],
            "description": "One bound for all assets, one per asset, or {symbol: bound}",
        }
    ),
]


def _svc(req: Request) -> FinanceService:
    return req.service(FinanceService)


# ---------------------------------------------------------------- shared input types


class Asset(ApiModel):
    symbol: str = Field(
        min_length=1,
        max_length=64,
        validation_alias=AliasChoices("symbol", "ticker", "name"),
        description="Ticker",
    )
    expected_return: float | None = Field(
        None, description="Annual expected return, fraction (0.12 = 12 %)"
    )
    volatility: float | None = Field(None, ge=0, description="Annual volatility, fraction")
    current_price: float | None = Field(None, gt=0, description="Last price (money)")
    sector: str | None = Field(None, description="Sector label, for sector_limits")
    min_weight: float | None = Field(None, description="This asset's weight floor")
    max_weight: float | None = Field(None, description="This asset's weight cap")
    current_weight: float | None = Field(None, description="Current weight, for turnover")


class SectorLimit(ApiModel):
    sector: str = Field(min_length=1)
    max_allocation: float | None = Field(None, description="Cap on the sector's total weight")
    min_allocation: float | None = Field(None, description="Floor on the sector's total weight")


class Constraints(ApiModel):
    max_position_size: float | None = Field(None, description="Per-asset weight cap (original API)")
    min_position_size: float | None = Field(
        None, description="Per-asset weight floor; negative allows shorts (original API)"
    )
    min_weight: BoundInput | None = Field(
        None, description="Weight floor: one number, one per asset or {symbol: floor}"
    )
    max_weight: BoundInput | None = Field(
        None, description="Weight cap: one number, one per asset or {symbol: cap}"
    )
    weight_bounds: list[float] | None = Field(None, min_length=2, max_length=2)
    long_only: bool | None = Field(None, description="false allows shorts (floor -1 by default)")
    allow_short: bool | None = None
    max_total_risk: float | None = Field(None, gt=0, description="Annual volatility cap")
    sector_limits: list[SectorLimit] | None = None
    sectors: list[str] | dict[str, str] | None = Field(
        None, description="Sector per asset (else assets[].sector)"
    )
    turnover: float | None = Field(
        None,
        ge=0,
        validation_alias=AliasChoices("turnover", "max_turnover"),
        description="sum |w - current_weights| limit",
    )
    current_weights: WeightInput | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(exclude_none=True)
        if self.sector_limits is not None:
            d["sector_limits"] = [x.model_dump(exclude_none=True) for x in self.sector_limits]
        return d


Objective = str | dict[str, dict[str, float] | None]


class MarketInputs(ApiModel):
    """Where the moments come from: history, a covariance, a correlation, or the assets alone."""

    assets: list[Asset] = Field(
        min_length=1, max_length=500, description="Assets, or plain tickers (with a history)"
    )
    constraints: Constraints = Field(default_factory=Constraints)
    covariance: Matrix | None = Field(
        None,
        validation_alias=AliasChoices("covariance", "cov", "covariance_matrix"),
        description="n x n annual covariance",
    )
    correlation: Matrix | None = Field(
        None,
        validation_alias=AliasChoices("correlation", "correlation_matrix"),
        description="n x n correlation, used with assets[].volatility",
    )
    prices: PriceInput | None = Field(
        None, description="Daily closes: T x n rows, or {symbol: [closes]}"
    )
    returns: Matrix | None = Field(None, description="Daily simple returns, T x n")
    dataset: str | None = Field(
        None, description="'sp500' (shipped real closes) or 'synthetic' for the history"
    )
    start_date: str | None = None
    end_date: str | None = None
    risk_free_rate: float = Field(0.0, ge=-1, le=1, description="Annual, fraction")

    @field_validator("assets", mode="before")
    @classmethod
    def _tickers(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"symbol": a} if isinstance(a, str) else a for a in v]
        return v


def _inputs(req: Request) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Assets, the optimiser's constraint dict, and the moment keyword arguments."""
    b = req.body
    svc = _svc(req)
    assets = [a.model_dump(exclude_none=True) for a in b.assets]
    symbols = [a["symbol"] for a in assets]
    info = assets
    given = sum(x is not None for x in (b.prices, b.returns, b.covariance))
    if given > 1:
        raise InvalidInput("prices", "give one of prices, returns or covariance")
    kw: dict[str, Any] = {}
    if b.prices is not None:
        kw["prices"] = svc.align_prices(b.prices, symbols)[0]
    elif b.returns is not None:
        kw["returns"] = _matrix(b.returns, "returns", len(symbols))
    elif b.covariance is not None:
        kw["cov"] = b.covariance
    elif b.dataset is not None or any(a.get("expected_return") is None for a in info):
        if b.correlation is not None:
            raise InvalidInput("assets", "a correlation needs assets[].expected_return")
        df = svc.price_history(
            b.dataset or "sp500", symbols, b.start_date or "2021-01-01", b.end_date
        )
        kw["prices"] = df.to_numpy()
    if b.correlation is not None:
        kw["correlation"] = b.correlation
    cons = svc.request_constraints(b.constraints.to_dict(), symbols, info)
    return assets, cons, kw


def _matrix(rows: list[list[float]], field: str, n: int | None = None) -> np.ndarray:
    if rows and any(len(r) != len(rows[0]) for r in rows):
        i = next(i for i, r in enumerate(rows) if len(r) != len(rows[0]))
        raise InvalidInput(f"{field}.{i}", f"has {len(rows[i])} values; row 0 has {len(rows[0])}")
    a = np.asarray(rows, dtype=np.float64)
    if n is not None and (a.ndim != 2 or a.shape[1] != n):
        raise InvalidInput(field, f"needs {n} columns (one per asset); got shape {a.shape}")
    return a


# ---------------------------------------------------------------- optimize


class OptimizeRequest(MarketInputs):
    objective: Objective = Field(
        "max_sharpe",
        description="max_sharpe (maximize_sharpe), min_volatility (minimize_risk), "
        "maximize_return, target_return, target_volatility, max_quadratic_utility, "
        "risk_parity, hrp, min_cvar, or {'custom': {'risk_aversion': x}}",
    )
    target_return: float | None = Field(None, description="Annual, for target_return")
    target_volatility: float | None = Field(None, gt=0, description="Annual, for target_volatility")
    risk_aversion: float | None = Field(None, gt=0, description="For max_quadratic_utility")
    save: bool = Field(True, description="Store the portfolio in the book (portfolio_id)")
    name: str | None = Field(None, max_length=200)
    value: float = Field(1_000_000.0, gt=0, description="Money value of the stored portfolio")

    @field_validator("objective", mode="before")
    @classmethod
    def _obj(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {_snake(k): x for k, x in v.items()}
        return _snake(v)


class WeightRow(ApiResponse):
    symbol: str
    weight: float


class OptimizedPortfolio(ApiResponse):
    weights: list[WeightRow] = Field(description="[{symbol, weight}] in input order")
    weights_by_symbol: dict[str, float]
    expected_return: float = Field(description="Annual")
    expected_risk: float = Field(description="Annual volatility")
    volatility: float
    portfolio_risk: float
    sharpe_ratio: float | None = Field(description="(expected_return - risk_free_rate) / risk")
    risk_contributions: list[float] | None
    objective: str
    converged: bool
    assumptions: dict = Field(description="Where the moments came from (correlation assumed...)")
    optimization_time_ms: float
    portfolio_id: str | None = None


@ROUTES.post(
    "/optimize",
    request=OptimizeRequest,
    response=OptimizedPortfolio,
    summary="Optimal weights under constraints (publishes PortfolioUpdate when saved)",
)
def optimize(req: Request) -> dict:
    b = req.body
    assets, cons, kw = _inputs(req)
    for k in ("target_return", "target_volatility", "risk_aversion"):
        if getattr(b, k) is not None:
            kw[k] = getattr(b, k)
    return _svc(req).optimize(
        assets,
        cons,
        b.objective,
        risk_free_rate=b.risk_free_rate,
        save=b.save,
        name=b.name,
        value=b.value,
        **kw,
    )


# ---------------------------------------------------------------- frontier


class FrontierRequest(MarketInputs):
    points: int = Field(20, ge=2, le=200, description="Portfolios on the frontier")


class FrontierPoint(ApiResponse):
    expected_return: float
    volatility: float
    sharpe_ratio: float | None
    weights: list[float]


class Frontier(ApiResponse):
    symbols: list[str]
    points: list[FrontierPoint] = Field(description="In increasing expected return")
    expected_returns: list[float]
    volatilities: list[float]
    sharpe_ratios: list[float | None]
    min_volatility: FrontierPoint | None
    max_sharpe: FrontierPoint | None
    assumptions: dict
    computation_time_ms: float


@ROUTES.post(
    "/frontier",
    request=FrontierRequest,
    response=Frontier,
    summary="The efficient frontier: `points` portfolios solved in one batched call",
)
def frontier(req: Request) -> dict:
    b = req.body
    assets, cons, kw = _inputs(req)
    return _svc(req).frontier(assets, cons, b.points, risk_free_rate=b.risk_free_rate, **kw)


# ---------------------------------------------------------------- the book


class Position(ApiModel):
    symbol: str = Field(min_length=1)
    weight: float | None = None
    value: float | None = None
    shares: float | None = None
    current_price: float | None = Field(None, gt=0)
    avg_cost: float | None = None


class Portfolio(ApiResponse):
    id: str
    name: str
    value: float
    cash: float
    positions: list[dict]
    assets: list[str]
    weights: list[float]
    objective: str
    statistics: dict
    history: list[dict]
    created: str
    last_updated: str


@ROUTES.get(
    "/portfolio/{portfolio_id}",
    response=Portfolio,
    summary="One stored portfolio (404 when unknown)",
)
def portfolio(req: Request) -> dict:
    return _svc(req).get_portfolio(req.path["portfolio_id"])


class Page(ApiModel):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000_000)


class PortfolioSummary(ApiResponse):
    id: str
    name: str
    value: float
    return_since_inception: float
    n_assets: int
    objective: str
    created: str
    last_updated: str


class PortfolioList(RootModel[list[PortfolioSummary]]):
    """The stored portfolios, oldest first (the original API's ``data`` was an array too)."""


@ROUTES.get(
    "/portfolios", query=Page, response=PortfolioList, summary="Stored portfolios, oldest first"
)
def portfolios(req: Request) -> list:
    return _svc(req).list_portfolios(req.query.limit, req.query.offset)


# ---------------------------------------------------------------- risk

RISK_METRICS = {
    "var": "var",
    "cvar": "cvar",
    "expected_shortfall": "cvar",
    "volatility": "volatility",
    "expected_return": "expected_return",
    "sharpe": "sharpe_ratio",
    "sharpe_ratio": "sharpe_ratio",
    "sortino": "sortino_ratio",
    "sortino_ratio": "sortino_ratio",
    "max_drawdown": "max_drawdown",
    "drawdown": "max_drawdown",
    "beta": "beta",
    "component_var": "component_var",
    "correlation": "correlation_matrix",
    "correlation_matrix": "correlation_matrix",
}

_METRIC_KEYS = {k.replace("_", ""): k for k in RISK_METRICS}


class RiskRequest(ApiModel):
    portfolio_id: str | None = Field(None, description="A stored portfolio (404 when unknown)")
    confidence_level: float = Field(
        0.95, gt=0.5, lt=1.0, validation_alias=AliasChoices("confidence_level", "confidence")
    )
    time_horizon_days: int = Field(
        1,
        ge=1,
        le=252,
        validation_alias=AliasChoices("time_horizon_days", "horizon_days", "horizon"),
    )
    positions: list[Position] | None = Field(
        None, description="[{symbol, weight | value | shares+current_price}] (client shape)"
    )
    risk_metrics: list[str] | None = Field(None, description="Metrics echoed in `metrics`")
    weights: WeightInput | None = None
    assets: list[str] | None = Field(None, description="Symbols of `weights`")
    prices: PriceInput | None = Field(None, description="Daily closes, T x n or {symbol: [..]}")
    returns: Matrix | None = Field(None, description="Daily simple returns, T x n")
    covariance: Matrix | None = Field(
        None,
        validation_alias=AliasChoices("covariance", "cov", "covariance_matrix"),
        description="Annual covariance (n x n)",
    )
    expected_returns: list[float] | None = Field(None, description="Annual, with covariance")
    method: str | None = Field(
        None, description="historical | parametric_normal | parametric_t | monte_carlo"
    )
    notional: float | None = Field(None, gt=0, description="Money at risk (default 1,000,000)")
    mc_paths: int = Field(20_000, ge=0, le=200_000)
    seed: int = 0
    dataset: str | None = None
    start_date: str | None = None
    end_date: str | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _m(cls, v: Any) -> Any:
        return _snake(v)

    @field_validator("risk_metrics", mode="before")
    @classmethod
    def _rm(cls, v: Any) -> Any:
        # "VaR", "CVaR", "max-drawdown", "SharpeRatio" -> the canonical metric names
        def canon(x: Any) -> Any:
            if not isinstance(x, str):
                return x
            key = re.sub(r"[\s_\-]+", "", x).lower()
            return _METRIC_KEYS.get(key, x)

        return [canon(x) for x in v] if isinstance(v, list) else v


class RiskResult(ApiResponse):
    portfolio_id: str | None
    var: float = Field(description="Value at risk, money at `notional`, positive = loss")
    cvar: float = Field(description="Conditional VaR (expected shortfall), money")
    var_pct: float
    cvar_pct: float
    method: str
    confidence_level: float
    time_horizon_days: int
    notional: float
    var_by_method: dict
    cvar_by_method: dict
    max_drawdown: float | None
    beta: float | None
    volatility: float | None = Field(description="Annual")
    sharpe_ratio: float | None
    correlation_matrix: list[list[float | None]] | None = Field(
        description="A real correlation matrix"
    )
    covariance_matrix: list[list[float | None]] | None = Field(description="Per-day covariance")
    metrics: dict | None


@ROUTES.post(
    "/risk",
    request=RiskRequest,
    response=RiskResult,
    summary="VaR, CVaR, drawdown, beta... of a stored portfolio or of given weights",
)
def risk(req: Request) -> dict:
    b = req.body
    svc = _svc(req)
    if b.risk_metrics is not None:
        for i, m in enumerate(b.risk_metrics):
            if m not in RISK_METRICS:
                raise InvalidInput(
                    f"risk_metrics.{i}", f"unknown metric {m!r}; one of {sorted(RISK_METRICS)}"
                )
    kw: dict[str, Any] = {}
    assets = b.assets
    if b.prices is not None:
        if b.weights is None and b.positions is None and b.portfolio_id is None:
            raise InvalidInput("weights", "give weights, positions or a portfolio_id")
        syms = assets or ([p.symbol for p in b.positions] if b.positions else None)
        P, names = svc.align_prices(b.prices, syms)
        if isinstance(b.weights, list) and len(b.weights) != P.shape[1]:
            raise InvalidInput(
                "weights", f"has {len(b.weights)} entries for {P.shape[1]} price columns"
            )
        kw["prices"] = P
        if assets is None and names is not None and b.positions is None:
            assets = names
    if b.returns is not None:
        kw["returns"] = _matrix(b.returns, "returns")
    if b.covariance is not None:
        kw["cov"] = b.covariance
        kw["annual"] = True
        if b.expected_returns is not None:
            kw["mu"] = b.expected_returns
    elif b.expected_returns is not None:
        raise InvalidInput("expected_returns", "is used with covariance only")
    if (
        b.weights is not None
        and not isinstance(b.weights, dict)
        and assets is not None
        and len(b.weights) != len(assets)
    ):
        raise InvalidInput("weights", f"has {len(b.weights)} entries for {len(assets)} assets")
    if isinstance(b.weights, dict) and assets is None:
        assets = list(b.weights)
    positions = None
    if b.positions is not None and b.portfolio_id is None:
        positions = [p.model_dump(exclude_none=True) for p in b.positions]
    out = svc.risk(
        b.portfolio_id,
        weights=b.weights,
        assets=assets,
        positions=positions,
        confidence=b.confidence_level,
        horizon=b.time_horizon_days,
        notional=b.notional
        if b.notional is not None
        else (None if (b.portfolio_id or positions) else 1_000_000.0),
        method=b.method,
        mc_paths=b.mc_paths,
        seed=b.seed,
        dataset=b.dataset,
        start_date=b.start_date,
        end_date=b.end_date,
        **kw,
    )
    out.pop("report", None)
    out["metrics"] = (
        {RISK_METRICS[m]: out.get(RISK_METRICS[m]) for m in b.risk_metrics}
        if b.risk_metrics
        else None
    )
    return out


# ---------------------------------------------------------------- backtest

BACKTEST_PARAMETERS = (
    "rebalance",
    "lookback",
    "cost_bps",
    "weights",
    "assets",
    "dataset",
    "seed",
    "strategy",
    "start_date",
    "end_date",
)


class BacktestRequest(ApiModel):
    strategy: str | list[float] | None = Field(
        None,
        description="buy_and_hold, equal_weight, inverse_volatility, an optimiser objective "
        "(min_volatility, max_sharpe, risk_parity, hrp...), or fixed weights",
    )
    strategy_id: str | None = Field(None, description="The original client's name for strategy")
    parameters: dict[str, Any] | None = Field(
        None, description=f"Any of {', '.join(BACKTEST_PARAMETERS)} (client shape)"
    )
    start_date: str | None = Field(None, description="Inclusive, e.g. 2021-01-01")
    end_date: str | None = None
    initial_capital: float = Field(1_000_000.0, gt=0, le=1e15)
    prices: PriceInput | None = Field(None, description="Daily closes, T x n or {symbol: [..]}")
    historical_data: PriceInput | None = Field(None, description="Client name for prices")
    assets: list[str] | None = Field(None, description="Tickers (of the S&P 500 data or prices)")
    weights: WeightInput | None = Field(None, description="For buy_and_hold / fixed weights")
    portfolio_id: str | None = Field(None, description="Backtest a stored portfolio's weights")
    dataset: str | None = Field(None, description="'sp500' (default) or 'synthetic'")
    rebalance: str | int | None = Field(None, description="monthly (default), weekly, 21...")
    lookback: int | None = Field(None, ge=2, description="Window of the optimiser strategies")
    cost_bps: float = Field(10.0, ge=0, lt=10_000)
    seed: int = 0
    include_series: bool = True

    @field_validator("strategy", "strategy_id", "rebalance", "dataset", mode="before")
    @classmethod
    def _s(cls, v: Any) -> Any:
        return _snake(v)


class BacktestResult(ApiResponse):
    strategy: str
    total_return: float
    annualized_return: float
    annualized_volatility: float | None
    sharpe_ratio: float | None
    max_drawdown: float
    win_rate: float | None
    total_cost: float
    trades: list[dict] = Field(description="Every trade {index, date, symbol, side, notional...}")
    n_trades: int
    rebalances: list[dict]
    equity_curve: list[float] | None = None
    drawdown: list[float] | None = None
    dates: list[str] | None = None
    start_date: str | None
    end_date: str | None


def _date(v: str | None, field: str) -> Any:
    if v is None:
        return None
    import pandas as pd

    try:
        return pd.Timestamp(v)
    except (ValueError, TypeError):
        raise InvalidInput(field, f"not a date: {v!r} (use YYYY-MM-DD)") from None


@ROUTES.post(
    "/backtest",
    request=BacktestRequest,
    response=BacktestResult,
    summary="Backtest a rebalancing strategy on shipped, synthetic or given prices",
)
def backtest(req: Request) -> dict:
    b = req.body
    svc = _svc(req)
    p = dict(b.parameters or {})
    unknown = sorted(set(p) - set(BACKTEST_PARAMETERS))
    if unknown:
        raise InvalidInput(
            f"parameters.{unknown[0]}",
            f"unknown parameter; accepted: {', '.join(BACKTEST_PARAMETERS)}",
        )

    def pick(name: str) -> Any:
        v = getattr(b, name)
        return v if v is not None else p.get(name)

    strategy = b.strategy if b.strategy is not None else b.strategy_id
    if strategy is None:
        strategy = _snake(p.get("strategy")) if p.get("strategy") is not None else None
    start, end = pick("start_date"), pick("end_date")
    t0, t1 = _date(start, "start_date"), _date(end, "end_date")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise InvalidInput("end_date", f"must be after start_date ({start})")
    assets = pick("assets")
    weights = pick("weights")
    prices = b.prices if b.prices is not None else b.historical_data
    field = "prices" if b.prices is not None else "historical_data"
    if prices is not None:
        P, names = svc.align_prices(prices, assets, field)
        import pandas as pd

        cols = names or assets or [f"A{j}" for j in range(P.shape[1])]
        prices = pd.DataFrame(P, columns=cols)
    elif b.portfolio_id is None and start is None and (pick("dataset") or "sp500") == "sp500":
        start = "2021-01-01"  # two years of the shipped data by default
    if isinstance(strategy, list):
        strategy = np.asarray(strategy, dtype=np.float64)
    elif strategy in ("fixed", "fixed_weights", "constant_mix") and weights is not None:
        strategy, weights = (
            np.asarray(list(weights.values()) if isinstance(weights, dict) else weights, float),
            None,
        )
    rebalance = pick("rebalance") or "monthly"
    if isinstance(rebalance, str) and rebalance.isdigit():
        rebalance = int(rebalance)
    return svc.backtest(
        strategy,
        prices=prices,
        portfolio_id=b.portfolio_id,
        dataset=pick("dataset"),
        assets=assets,
        start_date=start,
        end_date=end,
        weights=weights,
        rebalance=rebalance,
        lookback=pick("lookback"),
        cost_bps=p.get("cost_bps", b.cost_bps),
        initial_capital=b.initial_capital,
        seed=int(p.get("seed", b.seed)),
        include_series=b.include_series,
    )


# ---------------------------------------------------------------- health


class FinanceHealth(ApiResponse):
    status: str
    portfolios_tracked: int | None
    optimization_latency_ms: float | None = Field(description="Mean of the last 100 optimisations")
    optimizations_run: int
    optimizer_available: bool
    store_available: bool
    sp500_data_available: bool


@ROUTES.get("/health", response=FinanceHealth, summary="The portfolio book's real state")
def health(req: Request) -> dict:
    return _svc(req).health()
