"""``/api/v1/finance``: portfolio optimisation, the efficient frontier, a persistent book of
portfolios, risk (VaR/CVaR and more) and backtests, through
:class:`prism_kernels.finance.service.FinanceService`.

Units: ``expected_return``, ``volatility``, ``covariance`` and ``max_total_risk`` are annual
fractions (252 trading days); weights are fractions of the portfolio value; ``prices`` are
daily closes, oldest first; VaR, CVaR, values and capitals are money (USD).

The request models below own every client spelling, so each handler makes one service call:
the original server's shapes (``assets`` with ``symbol``/``expected_return``/``volatility``,
``constraints`` with ``min_position_size``/``max_position_size``, ``risk`` with
``confidence_level``/``time_horizon_days``, ``backtest`` with ``strategy``/``start_date``/
``end_date``), those of the original Python client (``risk`` with ``positions`` of
``symbol``/``quantity``/``current_price`` and ``risk_metrics``; ``backtest`` with
``strategy_id``/``parameters``/``historical_data`` and the ``rebalance_days``,
``rebalance_freq``, ``rebalance_frequency`` spellings), objective and strategy names in
snake_case or PascalCase with the aliases they used (``maximize_sharpe``, ``minimize_risk``,
``{"custom": {"risk_aversion": 2}}``). Infeasible constraints are a 400 naming the field,
never a silent renormalisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    RootModel,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from prism_kernels.errors import Infeasible, InvalidInput
from prism_kernels.finance.constraints import PortfolioConstraints
from prism_kernels.finance.data import DATASETS
from prism_kernels.finance.optimize import OBJECTIVES
from prism_kernels.finance.service import FinanceService
from prism_kernels.names import snake_case
from prism_kernels.seeds import SEED_MAX
from widgets.server.models import ApiModel, ApiResponse, DomainHealth, NameChoice, Page, Timed
from widgets.server.routing import Request, RouteGroup


class FinanceHealth(DomainHealth):
    """``GET /api/v1/finance/health``: the shared fields and the book's own."""

    portfolios_tracked: int | None = Field(description="Portfolios in the book")
    optimization_latency_ms: float | None = Field(
        description="Mean of the recent optimisations' computation times (ms)"
    )
    optimizations_run: int = Field(description="Optimisations finished since start")
    optimizer_available: bool
    store_available: bool
    sp500_data_available: bool = Field(description="skfolio's shipped S&P 500 closes installed")


ROUTES = RouteGroup(
    "finance",
    "Portfolio optimisation, risk and backtesting",
    service=FinanceService,
    health=FinanceHealth,
)

Matrix = list[list[float]]

# ---------------------------------------------------------------- names clients send

OBJECTIVE_ALIASES = {
    # the original API and its client (reference sections 1.5, 7, 10.7)
    "maximize_sharpe": "max_sharpe",
    "minimize_risk": "min_volatility",
    "maximize_return": "max_return",
    "custom": "max_quadratic_utility",
    # British spellings, other libraries' names, the names without separators
    "maximise_sharpe": "max_sharpe",
    "maxsharpe": "max_sharpe",
    "maximizesharpe": "max_sharpe",
    "sharpe": "max_sharpe",
    "minimise_risk": "min_volatility",
    "minimizerisk": "min_volatility",
    "min_risk": "min_volatility",
    "min_variance": "min_volatility",
    "minvariance": "min_volatility",
    "minvolatility": "min_volatility",
    "maximise_return": "max_return",
    "maximizereturn": "max_return",
    "efficient_return": "target_return",
    "efficient_risk": "target_volatility",
    "quadratic_utility": "max_quadratic_utility",
    "riskparity": "risk_parity",
    "equal_risk_contribution": "risk_parity",
    "erc": "risk_parity",
    "hierarchical_risk_parity": "hrp",
    "cvar": "min_cvar",
    "mincvar": "min_cvar",
}
Objective = NameChoice(
    *OBJECTIVES, aliases=OBJECTIVE_ALIASES, description="The optimiser's objective"
)
Dataset = NameChoice(
    *DATASETS,
    aliases={"S&P 500": "sp500", "s&p500": "sp500", "sp_500": "sp500", "snp500": "sp500"},
    description="sp500 (the shipped real closes) or synthetic (a seeded market)",
)
STRATEGY_NAMES = ("buy_and_hold", "equal_weight", "inverse_volatility", "fixed_weights")
Strategy = NameChoice(
    *STRATEGY_NAMES,
    *OBJECTIVES,
    aliases={
        **OBJECTIVE_ALIASES,
        "buyandhold": "buy_and_hold",
        "buy_hold": "buy_and_hold",
        "hold": "buy_and_hold",
        "equal": "equal_weight",
        "equal_weights": "equal_weight",
        "equalweight": "equal_weight",
        "equally_weighted": "equal_weight",
        "1/n": "equal_weight",
        "inverse_vol": "inverse_volatility",
        "inv_vol": "inverse_volatility",
        "fixed": "fixed_weights",
        "constant_mix": "fixed_weights",
    },
)
RISK_METRICS = (
    "var",
    "cvar",
    "volatility",
    "expected_return",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "beta",
    "component_var",
    "correlation_matrix",
)
RiskMetric = NameChoice(
    *RISK_METRICS,
    aliases={
        "VaR": "var",
        "CVaR": "cvar",
        "expected_shortfall": "cvar",
        "es": "cvar",
        "sharpe": "sharpe_ratio",
        "sharperatio": "sharpe_ratio",
        "sortino": "sortino_ratio",
        "sortinoratio": "sortino_ratio",
        "drawdown": "max_drawdown",
        "maxdrawdown": "max_drawdown",
        "expectedreturn": "expected_return",
        "componentvar": "component_var",
        "correlation": "correlation_matrix",
    },
)
RiskMethod = NameChoice(
    "historical",
    "parametric_normal",
    "parametric_t",
    "monte_carlo",
    aliases={
        "parametric": "parametric_normal",
        "normal": "parametric_normal",
        "t": "parametric_t",
        "student_t": "parametric_t",
        "mc": "monte_carlo",
        "montecarlo": "monte_carlo",
    },
)
CALENDAR = {"day": "daily", "week": "weekly", "month": "monthly", "quarter": "quarterly"}
CALENDAR.update({"year": "yearly", "d": "daily", "w": "weekly", "m": "monthly", "q": "quarterly"})
CALENDAR.update({"y": "yearly", "annually": "yearly"})


# ---------------------------------------------------------------- input tables


def _table(v: Any) -> Any:
    if isinstance(v, (list, dict)):
        return v
    raise ValueError("must be rows [[p_asset0, p_asset1, ...], ...] or {symbol: [p0, p1, ...]}")


def _weights(v: Any) -> Any:
    def num(x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise ValueError("must be finite numbers")
        return float(x)

    if isinstance(v, dict):
        return {str(k): num(x) for k, x in v.items()}
    if isinstance(v, list):
        return [num(x) for x in v]
    raise ValueError("must be a list of weights or {symbol: weight}")


def _bound(v: Any) -> Any:
    return (
        _weights([v])[0] if isinstance(v, (int, float)) and not isinstance(v, bool) else _weights(v)
    )


# Tables are checked by FinanceRequest.price_matrix, so that a 400 names the offending entry
# (``prices.AAPL``, ``prices.3``) rather than a pydantic union branch.
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
            "description": "Daily closes (USD), oldest first: T x n rows, or {symbol: [closes]}",
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
            "description": "One weight per asset (fractions), or {symbol: weight}",
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


class FinanceRequest(ApiModel):
    """Base of the finance requests: the tables they share, checked entry by entry."""

    @staticmethod
    def price_matrix(
        prices: Any, symbols: list[str] | None = None, field: str = "prices"
    ) -> tuple[np.ndarray, list[str] | None]:
        """A (T, n) array from ``{symbol: [p0, p1, ...]}`` (columns put in ``symbols`` order)
        or rows ``[[...], ...]``, and the column names when the table had them; ragged rows,
        unknown or missing symbols, NaN or non-positive prices raise :class:`InvalidInput`
        naming the entry."""
        names: list[str] | None = None
        if isinstance(prices, Mapping):
            keys = [str(k) for k in prices]
            if symbols is not None:
                missing = [s for s in symbols if s not in prices]
                if missing:
                    raise InvalidInput(field, f"no prices for {missing[:5]}")
                extra = [k for k in keys if k not in symbols]
                if extra:
                    raise InvalidInput(field, f"prices for unknown assets {extra[:5]}")
                keys = list(symbols)
            flat = [k for k in keys if not isinstance(prices[k], list)]
            if flat:
                raise InvalidInput(f"{field}.{flat[0]}", "must be a list of prices")
            lengths = {k: len(prices[k]) for k in keys}
            odd = [k for k in keys if lengths[k] != lengths[keys[0]]]
            if odd:
                raise InvalidInput(
                    f"{field}.{odd[0]}",
                    f"has {lengths[odd[0]]} prices but {keys[0]} has {lengths[keys[0]]}: "
                    "every series needs the same length",
                )
            columns = [FinanceRequest.numbers(prices[k], f"{field}.{k}") for k in keys]
            P = np.stack(columns, axis=1) if columns else np.zeros((0, 0))
            names = keys
        else:
            rows = list(prices)
            flat = [i for i, r in enumerate(rows) if not isinstance(r, list)]
            if flat:
                raise InvalidInput(
                    f"{field}.{flat[0]}", "must be a row of prices (one per asset): [[...], ...]"
                )
            odd = [i for i, r in enumerate(rows) if len(r) != len(rows[0])]
            if odd:
                raise InvalidInput(
                    f"{field}.{odd[0]}",
                    f"row has {len(rows[odd[0]])} values but row 0 has {len(rows[0])}: one "
                    "column per asset in every row",
                )
            P = FinanceRequest.numbers(rows, field)
        if P.ndim != 2 or P.shape[0] < 2:
            raise InvalidInput(field, f"need at least 2 rows of prices; got shape {P.shape}")
        if symbols is not None and P.shape[1] != len(symbols):
            raise InvalidInput(
                field, f"has {P.shape[1]} columns but there are {len(symbols)} assets"
            )
        if not np.all(np.isfinite(P)):
            raise InvalidInput(field, "contains NaN or infinite values")
        if np.any(P <= 0):
            raise InvalidInput(field, "prices must be positive")
        return P, names

    @staticmethod
    def numbers(values: Any, field: str, columns: int | None = None) -> np.ndarray:
        """``values`` (a list or rows of lists) as a float array; rows must be even."""
        if isinstance(values, list) and values and isinstance(values[0], list):
            odd = [i for i, r in enumerate(values) if len(r) != len(values[0])]
            if odd:
                raise InvalidInput(
                    f"{field}.{odd[0]}",
                    f"has {len(values[odd[0]])} values; row 0 has {len(values[0])}",
                )
        try:
            a = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(field, "must be numbers") from None
        if columns is not None and (a.ndim != 2 or a.shape[1] != columns):
            raise InvalidInput(
                field, f"needs {columns} columns (one per asset); got shape {a.shape}"
            )
        return a


# ---------------------------------------------------------------- assets and constraints


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
    volatility: float | None = Field(None, gt=0, description="Annual volatility, fraction")
    current_price: float | None = Field(None, gt=0, description="Last price (USD)")
    sector: str | None = Field(None, description="Sector label, for sector_limits")
    min_weight: float | None = Field(None, description="This asset's weight floor")
    max_weight: float | None = Field(None, description="This asset's weight cap")
    current_weight: float | None = Field(None, description="Current weight, for turnover")


class SectorLimit(ApiModel):
    sector: str = Field(min_length=1)
    max_allocation: float | None = Field(None, description="Cap on the sector's total weight")
    min_allocation: float | None = Field(None, description="Floor on the sector's total weight")


class Constraints(ApiModel):
    """The REST spellings of the optimiser's constraints; :meth:`to_kernel` translates them."""

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

    def to_kernel(self, symbols: list[str], assets: list[Asset]) -> PortfolioConstraints:
        """The optimiser's :class:`PortfolioConstraints` for ``symbols``, checked field by
        field: a 400 names the request field at fault (min above max, bounds that cannot sum
        to 1, a short floor on a long-only portfolio, sectors or current weights missing)."""
        n = len(symbols)
        pos = {s: i for i, s in enumerate(symbols)}

        def per_asset(v: Any, field: str) -> np.ndarray:
            if isinstance(v, Mapping):
                unknown = sorted(set(map(str, v)) - set(symbols))
                if unknown:
                    raise InvalidInput(field, f"unknown symbols {unknown}")
                out = np.full(n, np.nan)
                for k, x in v.items():
                    out[pos[str(k)]] = float(x)
                return out
            a = np.asarray(v, dtype=np.float64)
            if a.ndim == 0:
                return np.full(n, float(a))
            if a.shape != (n,):
                raise InvalidInput(field, f"must be a number or {n} values (one per asset)")
            return a

        def first(*names: str) -> tuple[Any, str | None]:
            for name in names:
                if getattr(self, name) is not None:
                    return getattr(self, name), f"constraints.{name}"
            return None, None

        lo_v, lo_f = first("min_weight", "min_position_size")
        hi_v, hi_f = first("max_weight", "max_position_size")
        if self.weight_bounds is not None:
            if lo_v is None:
                lo_v, lo_f = self.weight_bounds[0], "constraints.weight_bounds"
            if hi_v is None:
                hi_v, hi_f = self.weight_bounds[1], "constraints.weight_bounds"
        long_only, allow_short = self.long_only, self.allow_short
        if allow_short is not None and long_only is not None and allow_short == long_only:
            raise InvalidInput("constraints.allow_short", "contradicts long_only")
        shorts = allow_short is True or long_only is False
        lo = np.full(n, -1.0 if shorts else 0.0)
        hi = np.ones(n)
        lo_fields = [lo_f or "constraints.min_weight"] * n
        hi_fields = [hi_f or "constraints.max_weight"] * n
        for v, f, arr in ((lo_v, lo_f, lo), (hi_v, hi_f, hi)):
            if v is not None:
                a = per_asset(v, f)
                arr[np.isfinite(a)] = a[np.isfinite(a)]
        for i, a in enumerate(assets):
            if a.min_weight is not None:
                lo[i], lo_fields[i] = a.min_weight, f"assets.{i}.min_weight"
            if a.max_weight is not None:
                hi[i], hi_fields[i] = a.max_weight, f"assets.{i}.max_weight"
        if long_only is True or allow_short is False:
            neg = np.nonzero(lo < 0)[0]
            if neg.size:
                raise InvalidInput(
                    lo_fields[neg[0]], "is negative but the portfolio is long-only (long_only)"
                )
        bad = np.nonzero(lo > hi + 1e-12)[0]
        if bad.size:
            i = int(bad[0])
            raise InvalidInput(
                lo_fields[i],
                f"minimum weight {lo[i]:g} is above the maximum {hi[i]:g} "
                f"({hi_fields[i]}) for {symbols[i]}",
            )
        if lo.sum() > 1 + 1e-9:
            raise Infeasible(
                lo_fields[0], f"minimum weights sum to {lo.sum():.6g} > 1: weights cannot sum to 1"
            )
        if hi.sum() < 1 - 1e-9:
            raise Infeasible(
                hi_fields[0],
                f"maximum weights sum to {hi.sum():.6g} < 1 with {n} assets: weights cannot "
                "sum to 1",
            )
        return PortfolioConstraints(
            lower=lo.tolist(),
            upper=hi.tolist(),
            max_total_risk=self.max_total_risk,
            **self._sectors(symbols, assets),
            **self._turnover(assets, per_asset),
        )

    def _sectors(self, symbols: list[str], assets: list[Asset]) -> dict[str, Any]:
        if not self.sector_limits:
            return {}
        if self.sectors is None:
            missing = [a.symbol for a in assets if a.sector is None]
            if missing:
                raise InvalidInput(
                    "constraints.sectors",
                    "sector_limits need a sector for every asset (assets[].sector or "
                    f"constraints.sectors); none for {missing[:5]}",
                )
            labels = [str(a.sector) for a in assets]
        elif isinstance(self.sectors, Mapping):
            missing = [s for s in symbols if s not in self.sectors]
            if missing:
                raise InvalidInput("constraints.sectors", f"no sector for {missing[:5]}")
            labels = [self.sectors[s] for s in symbols]
        else:
            labels = list(self.sectors)
            if len(labels) != len(symbols):
                raise InvalidInput(
                    "constraints.sectors", f"must have {len(symbols)} labels (one per asset)"
                )
        lower = {
            x.sector: x.min_allocation for x in self.sector_limits if x.min_allocation is not None
        }
        upper = {
            x.sector: x.max_allocation for x in self.sector_limits if x.max_allocation is not None
        }
        return {"sectors": labels, "sector_lower": lower, "sector_upper": upper}

    def _turnover(self, assets: list[Asset], per_asset: Any) -> dict[str, Any]:
        if self.turnover is None:
            return {}
        field = "constraints.current_weights"
        cw: Any = self.current_weights
        if cw is None:
            if not all(a.current_weight is not None for a in assets):
                raise InvalidInput(
                    field,
                    "a turnover limit needs the current weights (constraints.current_weights "
                    "or assets[].current_weight)",
                )
            cw = [a.current_weight for a in assets]
        w0 = per_asset(cw, field)
        if isinstance(cw, Mapping):
            w0 = np.nan_to_num(w0, nan=0.0)
        return {"turnover": float(self.turnover), "current_weights": w0.tolist()}


class MarketInputs(FinanceRequest):
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
        None, description="Daily closes (USD): T x n rows, or {symbol: [closes]}"
    )
    returns: Matrix | None = Field(None, description="Daily simple returns (fractions), T x n")
    dataset: Dataset | None = Field(
        None, description="Where the history comes from when none is given: sp500 or synthetic"
    )
    start_date: str | None = Field(None, description="First close of the dataset, YYYY-MM-DD")
    end_date: str | None = Field(None, description="Last close of the dataset, YYYY-MM-DD")
    risk_free_rate: float = Field(0.0, ge=-1, le=1, description="Annual, fraction")

    @field_validator("assets", mode="before")
    @classmethod
    def _tickers(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"symbol": a} if isinstance(a, str) else a for a in v]
        return v

    def symbols(self) -> list[str]:
        """The tickers, in order; a repeated one is a 400 naming it."""
        out: list[str] = []
        for i, a in enumerate(self.assets):
            if a.symbol in out:
                raise InvalidInput(f"assets.{i}.symbol", f"duplicate symbol {a.symbol!r}")
            out.append(a.symbol)
        return out

    def market(self) -> dict[str, Any]:
        """The service's moment arguments: one history, or the assets' own assumptions."""
        symbols = self.symbols()
        n = len(symbols)
        if sum(x is not None for x in (self.prices, self.returns, self.covariance)) > 1:
            raise InvalidInput("prices", "give one of prices, returns or covariance")
        kw: dict[str, Any] = {}
        views = [a.expected_return for a in self.assets]
        if self.prices is not None:
            kw["prices"] = self.price_matrix(self.prices, symbols)[0]
        elif self.returns is not None:
            kw["returns"] = self.numbers(self.returns, "returns", columns=n)
        elif self.covariance is not None:
            kw["covariance"] = self.numbers(self.covariance, "covariance")
            if None in views:
                i = views.index(None)
                raise InvalidInput(f"assets.{i}.expected_return", "is required with a covariance")
        elif self.dataset is not None or None in views:
            if self.correlation is not None:
                raise InvalidInput("assets", "a correlation needs assets[].expected_return")
            kw["dataset"] = self.dataset or "sp500"
            kw["start_date"] = self.start_date or "2021-01-01"
            kw["end_date"] = self.end_date
        else:
            vols = [a.volatility for a in self.assets]
            if None in vols:
                raise InvalidInput(
                    f"assets.{vols.index(None)}.volatility",
                    "is required when no prices, returns or covariance are given",
                )
            kw["volatilities"] = vols
        if None not in views:
            kw["expected_returns"] = views
        if self.correlation is not None:
            kw["correlation"] = self.numbers(self.correlation, "correlation")
        return kw


# ---------------------------------------------------------------- optimize


class OptimizeRequest(MarketInputs):
    objective: Objective = Field(
        "max_sharpe",
        description="max_sharpe (maximize_sharpe), min_volatility (minimize_risk), max_return "
        "(maximize_return), target_return, target_volatility, max_quadratic_utility "
        "({'custom': {'risk_aversion': x}}), risk_parity, hrp or min_cvar",
    )
    target_return: float | None = Field(None, description="Annual, for target_return")
    target_volatility: float | None = Field(None, gt=0, description="Annual, for target_volatility")
    risk_aversion: float | None = Field(None, gt=0, description="For max_quadratic_utility")
    save: bool = Field(True, description="Store the portfolio in the book (portfolio_id)")
    name: str | None = Field(None, max_length=200)
    value: float = Field(1_000_000.0, gt=0, description="USD value of the stored portfolio")

    @model_validator(mode="before")
    @classmethod
    def _objective_object(cls, data: Any) -> Any:
        """``{"custom": {"risk_aversion": 2}}`` -> objective ``custom`` with its parameters;
        ``{"Custom": {"strategy": "RiskParity"}}`` -> ``risk_parity``."""
        obj = data.get("objective") if isinstance(data, Mapping) else None
        if not isinstance(obj, Mapping) or len(obj) != 1:
            return data  # anything else is the objective field's to accept or refuse
        ((name, params),) = obj.items()
        params = dict(params) if isinstance(params, Mapping) else {}
        if snake_case(name) == "custom" and params.get("strategy") is not None:
            name = params["strategy"]
        data = {**data, "objective": name}
        for key in ("risk_aversion", "target_return", "target_volatility"):
            if params.get(key) is not None:
                data.setdefault(key, params[key])
        return data

    def args(self) -> dict[str, Any]:
        """:meth:`FinanceService.optimize`'s arguments."""
        symbols = self.symbols()
        return {
            "assets": symbols,
            "objective": self.objective,
            "constraints": self.constraints.to_kernel(symbols, self.assets),
            **self.market(),
            "target_return": self.target_return,
            "target_volatility": self.target_volatility,
            "risk_aversion": self.risk_aversion,
            "risk_free_rate": self.risk_free_rate,
            "save": self.save,
            "name": self.name,
            "value": self.value,
            "asset_info": [a.model_dump(exclude_none=True) for a in self.assets],
        }


NB01_EXAMPLE = {
    "assets": [
        {"symbol": "AAPL", "expected_return": 0.12, "volatility": 0.25, "current_price": 150.0},
        {"symbol": "GOOGL", "expected_return": 0.15, "volatility": 0.30, "current_price": 2800.0},
        {"symbol": "MSFT", "expected_return": 0.13, "volatility": 0.22, "current_price": 380.0},
    ],
    "constraints": {"max_position_size": 0.5, "min_position_size": 0.1, "max_total_risk": 0.20},
    "objective": "maximize_sharpe",
}


class WeightRow(ApiResponse):
    symbol: str
    weight: float = Field(description="Fraction of the portfolio value")


class OptimizedPortfolio(Timed):
    timing_aliases: ClassVar[tuple[str, ...]] = ("optimization_time_ms",)

    weights: list[WeightRow] = Field(description="[{symbol, weight}] in input order")
    weights_by_symbol: dict[str, float]
    expected_return: float = Field(description="Annual, fraction")
    expected_risk: float = Field(description="Annual volatility, fraction")
    volatility: float = Field(description="Annual, fraction (= expected_risk)")
    portfolio_risk: float = Field(description="Annual volatility (= expected_risk)")
    sharpe_ratio: float | None = Field(description="(expected_return - risk_free_rate) / risk")
    risk_contributions: list[float] | None = Field(
        description="Each asset's share of the annual volatility (they sum to it)"
    )
    objective: str
    converged: bool
    risk_free_rate: float = Field(description="Annual, fraction")
    assumptions: dict[str, Any] = Field(
        description="Where the moments came from (correlation assumed...)"
    )
    risk_capped: bool | None = Field(
        None, description="The max_total_risk cap bound the return-seeking objective"
    )
    cvar: float | None = Field(None, description="min_cvar: the CVaR reached (daily, fraction)")
    optimization_time_ms: float = Field(description="The original API's name for the time (ms)")
    portfolio_id: str | None = Field(None, description="The stored portfolio (save=true)")

    @classmethod
    def from_service(cls, d: dict[str, Any]) -> dict[str, Any]:
        """The REST answer of :meth:`FinanceService.optimize`: weights by row and by symbol,
        the volatility under the original API's names too."""
        rows = dict(zip(d["symbols"], d["weights"], strict=True))
        out = {k: v for k, v in d.items() if k not in ("symbols", "weights")}
        out["weights"] = [{"symbol": s, "weight": w} for s, w in rows.items()]
        out["weights_by_symbol"] = rows
        out["expected_risk"] = out["portfolio_risk"] = d["volatility"]
        return out


@ROUTES.post(
    "/optimize",
    request=OptimizeRequest,
    response=OptimizedPortfolio,
    example=NB01_EXAMPLE,
    summary="Optimal weights under constraints (publishes PortfolioUpdate when saved)",
)
def optimize(req: Request) -> dict:
    return OptimizedPortfolio.from_service(req.service(FinanceService).optimize(**req.body.args()))


# ---------------------------------------------------------------- frontier


class FrontierRequest(MarketInputs):
    points: int = Field(20, ge=2, le=200, description="Portfolios on the frontier")

    def args(self) -> dict[str, Any]:
        """:meth:`FinanceService.frontier`'s arguments."""
        symbols = self.symbols()
        return {
            "assets": symbols,
            "constraints": self.constraints.to_kernel(symbols, self.assets),
            "points": self.points,
            "risk_free_rate": self.risk_free_rate,
            **self.market(),
        }


class FrontierPoint(ApiResponse):
    expected_return: float = Field(description="Annual, fraction")
    volatility: float = Field(description="Annual, fraction")
    sharpe_ratio: float | None
    weights: list[float]
    within_risk_cap: bool | None = Field(None, description="With max_total_risk: inside it")


class Frontier(Timed):
    symbols: list[str]
    points: list[FrontierPoint] = Field(description="In increasing expected return")
    expected_returns: list[float] = Field(description="Annual, fractions")
    volatilities: list[float] = Field(description="Annual, fractions")
    sharpe_ratios: list[float | None]
    weights: list[list[float]] = Field(description="points x assets")
    converged: list[bool]
    min_volatility: FrontierPoint | None
    max_sharpe: FrontierPoint | None = Field(description="None when no portfolio beats the rate")
    risk_free_rate: float = Field(description="Annual, fraction")
    max_total_risk: float | None = Field(description="The cap (annual volatility), if any")
    asset_returns: list[float] = Field(description="Each asset's annual expected return")
    asset_volatilities: list[float] = Field(description="Each asset's annual volatility")
    assumptions: dict[str, Any]


@ROUTES.post(
    "/frontier",
    request=FrontierRequest,
    response=Frontier,
    example={
        "assets": NB01_EXAMPLE["assets"],
        "constraints": {"max_position_size": 0.5, "min_position_size": 0.1},
        "points": 15,
    },
    summary="The efficient frontier: `points` portfolios solved in one batched call",
)
def frontier(req: Request) -> dict:
    return req.service(FinanceService).frontier(**req.body.args())


# ---------------------------------------------------------------- the book


class Position(ApiResponse):
    symbol: str
    weight: float = Field(description="Fraction of the portfolio value")
    value: float = Field(description="USD")
    shares: float | None = None
    avg_cost: float | None = Field(None, description="USD per share")
    current_price: float | None = Field(None, description="USD per share")
    unrealized_gain: float | None = Field(None, description="USD")


class AssetInfo(ApiResponse):
    symbol: str
    expected_return: float | None = None
    volatility: float | None = None
    current_price: float | None = None
    sector: str | None = None
    min_weight: float | None = None
    max_weight: float | None = None
    current_weight: float | None = None


class Statistics(ApiResponse):
    periods_per_year: float
    source: str = Field(description="returns, asset_assumptions (uncorrelated) or none")
    n_periods: int | None = None
    expected_return: float | None = Field(None, description="Annual, fraction")
    volatility: float | None = Field(None, description="Annual, fraction")
    sharpe_ratio: float | None = None
    sortino_ratio: float | None = None
    max_drawdown: float | None = Field(None, description="Fraction of the peak")
    var_95_1d: float | None = Field(None, description="1-day 95 % VaR, USD")
    cvar_95_1d: float | None = Field(None, description="1-day 95 % CVaR, USD")
    var_95_1d_parametric: float | None = Field(None, description="USD")


class Portfolio(ApiResponse):
    id: str
    name: str
    value: float = Field(description="USD")
    initial_value: float = Field(description="USD")
    cash: float = Field(description="USD")
    positions: list[Position]
    assets: list[str]
    asset_info: list[AssetInfo]
    weights: list[float]
    objective: str
    statistics: Statistics
    history: list[dict[str, Any]] = Field(description="{timestamp, value, return, event, note?}")
    metadata: dict[str, Any]
    created: str
    last_updated: str


@ROUTES.get(
    "/portfolio/{portfolio_id}",
    response=Portfolio,
    summary="One stored portfolio (404 when unknown)",
)
def portfolio(req: Request) -> dict:
    return req.service(FinanceService).get_portfolio(req.path["portfolio_id"])


class PortfolioSummary(ApiResponse):
    id: str
    name: str
    value: float = Field(description="USD")
    return_since_inception: float = Field(description="Fraction")
    n_assets: int
    objective: str
    created: str
    last_updated: str


class PortfolioList(RootModel[list[PortfolioSummary]]):
    """The stored portfolios, newest first (the original API's ``data`` was an array too)."""


@ROUTES.get(
    "/portfolios", query=Page, response=PortfolioList, summary="Stored portfolios, newest first"
)
def portfolios(req: Request) -> list:
    return req.service(FinanceService).list_portfolios(req.query.limit, req.query.offset)


# ---------------------------------------------------------------- risk


class PositionIn(ApiModel):
    """One holding: a weight, a value, or a quantity with its current price."""

    symbol: str = Field(min_length=1)
    weight: float | None = Field(None, description="Fraction of the portfolio")
    value: float | None = Field(None, description="USD")
    shares: float | None = Field(
        None, validation_alias=AliasChoices("shares", "quantity"), description="Shares held"
    )
    current_price: float | None = Field(None, gt=0, description="USD per share")
    avg_cost: float | None = Field(
        None, validation_alias=AliasChoices("avg_cost", "entry_price"), description="USD"
    )


class RiskRequest(FinanceRequest):
    portfolio_id: str | None = Field(
        None, description="A stored portfolio; an unknown id is echoed when holdings are given"
    )
    confidence_level: float = Field(
        0.95, gt=0.5, lt=1.0, validation_alias=AliasChoices("confidence_level", "confidence")
    )
    time_horizon_days: int = Field(
        1,
        ge=1,
        le=252,
        validation_alias=AliasChoices("time_horizon_days", "horizon_days", "horizon"),
        description="Trading days",
    )
    positions: list[PositionIn] | None = Field(
        None,
        description="[{symbol, weight | value | quantity (shares) and current_price}] "
        "(the original client's shape)",
    )
    risk_metrics: list[RiskMetric] | None = Field(
        None, description="Metrics echoed in `metrics` (var, cvar, max_drawdown, beta...)"
    )
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
    method: RiskMethod | None = Field(
        None, description="The headline method; every method is in var_by_method"
    )
    notional: float | None = Field(None, gt=0, description="USD at risk (default 1,000,000)")
    mc_paths: int = Field(20_000, ge=0, le=200_000, description="Monte Carlo paths (0: none)")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed of the Monte Carlo draws")
    dataset: Dataset | None = Field(None, description="History when none is given (sp500)")
    start_date: str | None = Field(None, description="First close used (default 2021-01-01)")
    end_date: str | None = Field(None, description="Last close used (default the last shipped)")

    def holdings(self) -> tuple[list[str], list[float], float | None]:
        """Symbols, weights and total value (USD; None for weights) of ``positions``: every
        position gives the same kind of size (weights summing to 1, values, or quantities
        with prices)."""
        syms, sizes, kinds = [], [], set()
        for i, p in enumerate(self.positions or []):
            if p.weight is not None:
                kinds.add("weight")
                size = p.weight
            elif p.value is not None:
                kinds.add("value")
                size = p.value
            elif p.shares is not None and p.current_price is not None:
                kinds.add("value")
                size = p.shares * p.current_price
            else:
                raise InvalidInput(
                    f"positions.{i}", "give weight, value, or quantity with current_price"
                )
            if p.symbol in syms:
                raise InvalidInput(f"positions.{i}.symbol", f"duplicate symbol {p.symbol!r}")
            syms.append(p.symbol)
            sizes.append(float(size))
        if not syms:
            raise InvalidInput("positions", "give at least one position")
        if len(kinds) > 1:
            raise InvalidInput("positions", "mix of weights and values: give one kind for all")
        total = math.fsum(sizes)
        if kinds == {"weight"}:
            return syms, sizes, None
        if total <= 0:
            raise InvalidInput("positions", "the positions' total value must be positive")
        return syms, [s / total for s in sizes], total

    def args(self) -> dict[str, Any]:
        """:meth:`FinanceService.risk`'s arguments."""
        assets, weights, notional = self.assets, self.weights, self.notional
        if self.positions is not None and weights is None:
            assets, weights, total = self.holdings()
            notional = total if notional is None else notional
        kw: dict[str, Any] = {}
        if self.prices is not None:
            if weights is None and self.portfolio_id is None:
                raise InvalidInput("weights", "give weights, positions or a portfolio_id")
            P, names = self.price_matrix(self.prices, assets)
            if isinstance(weights, list) and len(weights) != P.shape[1]:
                raise InvalidInput(
                    "weights", f"has {len(weights)} entries for {P.shape[1]} price columns"
                )
            kw["prices"] = P
            assets = assets or names
        if self.returns is not None:
            kw["returns"] = self.numbers(self.returns, "returns")
        if self.covariance is not None:
            kw["covariance"] = self.numbers(self.covariance, "covariance")
            kw["expected_returns"] = self.expected_returns
        elif self.expected_returns is not None:
            raise InvalidInput("expected_returns", "is used with covariance only")
        if isinstance(weights, dict) and assets is None:
            assets = list(weights)
        if isinstance(weights, list) and assets is not None and len(weights) != len(assets):
            raise InvalidInput("weights", f"has {len(weights)} entries for {len(assets)} assets")
        return {
            "portfolio_id": self.portfolio_id,
            "assets": assets,
            "weights": weights,
            "notional": notional,
            "confidence": self.confidence_level,
            "horizon": self.time_horizon_days,
            "method": self.method,
            "mc_paths": self.mc_paths,
            "seed": self.seed,
            "dataset": self.dataset or "sp500",
            "start_date": self.start_date,
            "end_date": self.end_date,
            **kw,
        }


class RiskWindow(ApiResponse):
    """The return history the figures were computed on."""

    source: str = Field(description="sp500 (shipped closes), synthetic, given or book")
    start: str | None = Field(description="First close (YYYY-MM-DD), when dated")
    end: str | None = Field(description="Last close (YYYY-MM-DD), when dated")
    periods: int = Field(description="Daily returns used")


class RiskResult(Timed):
    portfolio_id: str | None
    var: float = Field(description="Value at risk, USD at `notional`, positive = loss")
    cvar: float = Field(description="Conditional VaR (expected shortfall), USD")
    var_pct: float = Field(description="VaR as a fraction of the notional")
    cvar_pct: float = Field(description="CVaR as a fraction of the notional")
    method: str
    confidence_level: float
    time_horizon_days: int = Field(description="Trading days")
    notional: float = Field(description="USD")
    var_by_method: dict[str, float | None] = Field(description="USD, per method")
    cvar_by_method: dict[str, float | None] = Field(description="USD, per method")
    max_drawdown: float | None = Field(description="Fraction of the peak")
    beta: float | None
    volatility: float | None = Field(description="Annual, fraction")
    expected_return: float | None = Field(description="Annual, fraction")
    sharpe_ratio: float | None
    sortino_ratio: float | None
    component_var: list[float] | None = Field(description="USD per asset (sums to parametric)")
    asset_names: list[str] | None
    correlation_matrix: list[list[float | None]] | None = Field(
        description="A real correlation matrix"
    )
    covariance_matrix: list[list[float | None]] | None = Field(description="Per-day covariance")
    window: RiskWindow | None = Field(description="The history used (None: a covariance)")
    portfolio_returns: list[float] | None = Field(description="Horizon returns (dashboard only)")
    metrics: dict[str, Any] | None = Field(description="The requested risk_metrics, by name")

    @classmethod
    def from_service(cls, d: dict[str, Any], metrics: list[str] | None) -> dict[str, Any]:
        """The service's answer plus the ``risk_metrics`` the client asked for, by name."""
        return {**d, "metrics": {m: d.get(m) for m in metrics} if metrics else None}


@ROUTES.post(
    "/risk",
    request=RiskRequest,
    response=RiskResult,
    example={
        "portfolio_id": "portfolio_001",
        "positions": [
            {"symbol": "AAPL", "quantity": 100, "entry_price": 145.0, "current_price": 150.0},
            {"symbol": "MSFT", "quantity": 50, "entry_price": 240.0, "current_price": 250.0},
        ],
        "risk_metrics": ["var", "cvar", "max_drawdown", "beta"],
    },
    summary="VaR, CVaR, drawdown, beta... of a stored portfolio or of given holdings",
)
def risk(req: Request) -> dict:
    return RiskResult.from_service(
        req.service(FinanceService).risk(**req.body.args()), req.body.risk_metrics
    )


# ---------------------------------------------------------------- backtest

BACKTEST_PARAMETERS = (
    "rebalance",
    "rebalance_days",
    "rebalance_freq",
    "rebalance_frequency",
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
REBALANCE_SPELLINGS = ("rebalance", "rebalance_frequency", "rebalance_freq", "rebalance_days")
# A calendar schedule on prices without dates (the client's historical_data) in trading days.
TRADING_DAYS = {"daily": 1, "weekly": 5, "monthly": 21, "quarterly": 63, "yearly": 252}


class BacktestRequest(FinanceRequest):
    strategy: Any = Field(
        None,
        description="buy_and_hold, equal_weight, inverse_volatility, fixed_weights (with "
        "weights), an optimiser objective (min_volatility, max_sharpe, risk_parity, hrp...), "
        "or fixed weights [w0, w1, ...]",
        json_schema_extra={"oneOf": [{"type": "string"}, {"type": "array"}, {"type": "null"}]},
    )
    strategy_id: Any = Field(None, description="The original client's name for strategy")
    parameters: dict[str, Any] | None = Field(
        None, description=f"Any of {', '.join(BACKTEST_PARAMETERS)} (the client's shape)"
    )
    start_date: str | None = Field(None, description="Inclusive, e.g. 2021-01-01")
    end_date: str | None = None
    initial_capital: float = Field(1_000_000.0, gt=0, le=1e15, description="USD")
    prices: PriceInput | None = Field(None, description="Daily closes, T x n or {symbol: [..]}")
    historical_data: PriceInput | None = Field(None, description="The client's name for prices")
    assets: list[str] | None = Field(None, description="Tickers (of the S&P 500 data or prices)")
    weights: WeightInput | None = Field(None, description="For buy_and_hold / fixed weights")
    portfolio_id: str | None = Field(None, description="Backtest a stored portfolio's weights")
    dataset: Dataset | None = Field(None, description="sp500 (default) or synthetic")
    rebalance: str | int | None = Field(
        None,
        description="monthly (default), weekly, quarterly, never, or every N trading days; on "
        "prices without dates a name counts trading days (weekly 5, monthly 21, quarterly 63)",
    )
    rebalance_days: int | None = Field(None, ge=1, description="Rebalance every N trading days")
    rebalance_freq: str | int | None = Field(None, description="The client's name for rebalance")
    rebalance_frequency: str | int | None = Field(None, description="Another name for it")
    lookback: int | None = Field(None, ge=2, description="Days of history per re-optimisation")
    cost_bps: float | None = Field(None, ge=0, lt=10_000, description="Basis points (default 10)")
    seed: int | None = Field(
        None, ge=0, le=SEED_MAX, description="Seed of the synthetic market (default 0)"
    )
    include_series: bool = True

    @field_validator("strategy", "strategy_id", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        return cls.strategy_name(v)

    @staticmethod
    def strategy_name(v: Any) -> Any:
        """A strategy name in any spelling -> its snake_case name; a list -> float weights."""
        if v is None or isinstance(v, str):
            try:
                return _STRATEGY.validate_python(v) if v is not None else None
            except ValidationError:
                raise ValueError(
                    f"unknown strategy {v!r}; one of {', '.join(STRATEGY_NAMES + OBJECTIVES)}, "
                    "or fixed weights"
                ) from None
        if isinstance(v, list):
            return _weights(v)
        raise ValueError("must be a strategy name or a list of weights")

    def pick(self, name: str) -> Any:
        """A parameter given at the top level or inside ``parameters`` (the top level wins).

        ``parameters`` is a free-form dict, so an entry of it is validated here as the
        top-level field of the same name is (type and bounds): a bad one is a 400 naming
        ``parameters.<name>``, never a value the kernels choke on."""
        v = getattr(self, name, None)
        if v is not None:
            return v
        v = (self.parameters or {}).get(name)
        return None if v is None else _parameter(name, v)

    def source(self, name: str) -> str:
        """Where ``name`` was given: ``name`` at the top level, else ``parameters.<name>``."""
        return name if getattr(self, name, None) is not None else f"parameters.{name}"

    def rebalance_schedule(self) -> int | str:
        """One schedule from the spellings clients use: ``rebalance``, ``rebalance_frequency``,
        ``rebalance_freq`` (a name or a number of days) or ``rebalance_days``."""
        given = {k: self.pick(k) for k in REBALANCE_SPELLINGS}
        given = {self.source(k): v for k, v in given.items() if v is not None}
        values = []
        for k, v in given.items():
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise InvalidInput(k, "must be a schedule name or a number of days")
            if isinstance(v, str) and v.strip().isdigit():
                v = int(v)
            elif isinstance(v, str):
                v = CALENDAR.get(snake_case(v), snake_case(v))
            if k.endswith("rebalance_days") and not isinstance(v, int):
                raise InvalidInput(k, "must be a number of trading days")
            if isinstance(v, int) and v < 1:
                raise InvalidInput(k, "must be at least 1 day")
            values.append((k, v))
        for k, v in values[1:]:
            if v != values[0][1]:
                raise InvalidInput(k, f"says {v!r} but {values[0][0]} says {values[0][1]!r}")
        return values[0][1] if values else "monthly"

    def args(self) -> dict[str, Any]:
        """:meth:`FinanceService.backtest`'s arguments."""
        p = dict(self.parameters or {})
        unknown = sorted(set(p) - set(BACKTEST_PARAMETERS))
        if unknown:
            raise InvalidInput(
                f"parameters.{unknown[0]}",
                f"unknown parameter; accepted: {', '.join(BACKTEST_PARAMETERS)}",
            )
        strategy = self.strategy if self.strategy is not None else self.strategy_id
        if strategy is None and p.get("strategy") is not None:
            try:
                strategy = self.strategy_name(p["strategy"])
            except ValueError as exc:
                raise InvalidInput("parameters.strategy", str(exc)) from None
        start, end = self.pick("start_date"), self.pick("end_date")
        t0 = self.date(start, self.source("start_date"))
        t1 = self.date(end, self.source("end_date"))
        if t0 is not None and t1 is not None and t0 >= t1:
            raise InvalidInput(self.source("end_date"), f"must be after start_date ({start})")
        assets, weights = self.pick("assets"), self.pick("weights")
        dataset = self.pick("dataset")
        table = self.prices if self.prices is not None else self.historical_data
        prices = None
        if table is not None:
            field = "prices" if self.prices is not None else "historical_data"
            prices, names = self.price_matrix(table, assets, field)
            assets = names or assets or [f"A{j}" for j in range(prices.shape[1])]
        elif self.portfolio_id is None and start is None and dataset in (None, "sp500"):
            start = "2021-01-01"  # two years of the shipped closes by default
        if strategy == "fixed_weights":
            if weights is None:
                raise InvalidInput("weights", "the fixed_weights strategy needs weights")
            strategy = list(weights.values()) if isinstance(weights, dict) else weights
            weights = None
        rebalance = self.rebalance_schedule()
        if prices is not None and isinstance(rebalance, str):  # undated rows: count days
            rebalance = TRADING_DAYS.get(rebalance, rebalance)
        cost = self.pick("cost_bps")
        seed = self.pick("seed")
        return {
            "strategy": np.asarray(strategy, dtype=np.float64)
            if isinstance(strategy, list)
            else strategy,
            "prices": prices,
            "assets": assets,
            "portfolio_id": self.portfolio_id,
            "dataset": dataset,
            "start_date": start,
            "end_date": end,
            "weights": weights,
            "rebalance": rebalance,
            "lookback": self.pick("lookback"),
            "cost_bps": 10.0 if cost is None else cost,
            "initial_capital": self.initial_capital,
            "seed": 0 if seed is None else seed,
            "include_series": self.include_series,
        }

    @staticmethod
    def date(v: str | None, field: str) -> Any:
        """``v`` as a timestamp (None stays None); a 400 naming ``field`` when it is no date."""
        if v is None:
            return None
        try:
            return pd.Timestamp(v)
        except (ValueError, TypeError):
            raise InvalidInput(field, f"not a date: {v!r} (use YYYY-MM-DD)") from None


_STRATEGY = TypeAdapter(Strategy)
_PARAMETER_TYPES: dict[str, TypeAdapter] = {}


def _parameter(name: str, value: Any) -> Any:
    """``parameters[name]`` validated by the type and bounds of the top-level field ``name``;
    a :class:`InvalidInput` naming ``parameters.<name>`` when it does not fit."""
    adapter = _PARAMETER_TYPES.get(name)
    if adapter is None:
        f = BacktestRequest.model_fields[name]
        kind = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
        adapter = _PARAMETER_TYPES[name] = TypeAdapter(kind)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInput(f"parameters.{name}", exc.errors()[0]["msg"]) from None


class Trade(ApiResponse):
    index: int = Field(description="Row of the price table")
    date: str | None
    symbol: str
    side: str = Field(description="buy or sell")
    notional: float = Field(description="USD, signed (buys > 0)")
    weight: float = Field(description="Target weight after the trade")
    cost: float = Field(description="USD")


class Rebalance(ApiResponse):
    index: int
    date: str | None
    turnover: float = Field(description="Traded notional / pre-trade value")
    cost: float = Field(description="USD")
    weights: list[float]


class BacktestParams(ApiResponse):
    rebalance: int | str | list[int]
    lookback: int | None = Field(description="Trading days per window")
    start: int = Field(description="Row of the first rebalance")
    cost_bps: float = Field(description="Basis points of traded notional")
    periods_per_year: float
    backend: str


class BacktestResult(Timed):
    strategy: str
    initial_capital: float = Field(description="USD")
    final_value: float = Field(description="USD")
    total_return: float = Field(description="Fraction")
    annualized_return: float = Field(description="Fraction per year")
    annualized_volatility: float | None = Field(description="Fraction, annual")
    sharpe_ratio: float | None
    max_drawdown: float = Field(description="Fraction of the peak")
    win_rate: float | None = Field(description="Share of periods with a gain")
    total_cost: float = Field(description="USD")
    total_turnover: float
    mean_turnover: float
    n_rebalances: int
    n_periods: int = Field(description="Trading days")
    active_periods: int = Field(description="Trading days invested")
    active_return: float = Field(description="Fraction, over the invested days")
    params: BacktestParams
    asset_names: list[str]
    trades: list[Trade] = Field(description="Every trade {index, date, symbol, side, notional...}")
    n_trades: int
    rebalances: list[Rebalance]
    equity_curve: list[float] | None = Field(None, description="USD after each close")
    returns: list[float] | None = Field(None, description="Daily returns of the equity")
    drawdown: list[float] | None = Field(None, description="equity / peak - 1")
    dates: list[str] | None = None
    portfolio_id: str | None
    start_date: str | None
    end_date: str | None


@ROUTES.post(
    "/backtest",
    request=BacktestRequest,
    response=BacktestResult,
    example={
        "strategy_id": "equal_weight",
        "parameters": {"rebalance_days": 21, "cost_bps": 10},
        "historical_data": {
            "AAPL": [150.0, 151.2, 149.8, 152.5, 153.1, 154.0, 152.2, 155.3],
            "MSFT": [250.0, 252.1, 251.0, 249.5, 253.3, 255.0, 256.2, 254.9],
        },
        "initial_capital": 100000.0,
    },
    summary="Backtest a rebalancing strategy on shipped, synthetic or given prices",
)
def backtest(req: Request) -> dict:
    return req.service(FinanceService).backtest(**req.body.args())
