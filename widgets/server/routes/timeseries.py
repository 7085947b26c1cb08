"""``/api/v1/timeseries``: forecasts with intervals and held-out metrics, backtests, anomalies,
change points, market, traffic and trajectory forecasts, and the series store, through
:class:`prism_kernels.timeseries.service.TimeseriesService`.

Payloads: the original API's (reference §1.9): ``/forecast`` takes ``series_id``,
``historical_data``, ``timestamps`` (optional here; any integer unit), ``horizon``, ``method``
and ``include_uncertainty``, as the Rust server and the Python client send them. ``method`` is:

- a name, in any spelling (``"auto_arima"``, ``"AutoARIMA"``, ``"ets"``, ``"theta"``, ``"naive"``,
  ``"seasonal_naive"``, ``"drift"``, ``"arima"`` with ``order``, ``"lstm"``, ``"gru"``); the
  original's ``"exponential_smoothing"`` is ETS (with automatic model choice); the original's
  ``"prophet"`` ran an automatic ARIMA order search (Prophet was never called), and Prophet is
  not installed here: it runs ``auto_arima`` and ``method_used`` says so;
- the original's objects ``{"arima": {"p", "d", "q"}}`` (also ``P``, ``D``, ``Q`` or
  ``seasonal_order``, ``include_constant``), ``{"lstm": {"hidden_dim", "num_layers"}}``,
  ``{"gru": {"hidden_dim"}}``, in any case spelling of the key (``{"Arima": {...}}``); the
  client's ``{"arima": {}}`` (no order) is the automatic order search.

``series`` sends many series in one request (arrays or ``{series_id, values, timestamps}``);
series of equal length are fitted as one batch. A ``series_id`` with values stores the series;
a ``series_id`` alone forecasts the stored one. ``confidence_level`` defaults to 0.95 (95 is
read as 0.95). ``metrics`` are computed on held-out data (the last ``min(horizon, n // 4)``
points, the model refitted without them; ``metrics.holdout`` says so), never invented.

Bounds (the fuzzing tests send extremes): at most 100 000 points per request, 10 000 series,
``horizon`` 1..10 000 (series x horizon at most 1 000 000), values within +-1e100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    RootModel,
    ValidationError,
    model_validator,
)

from prism_kernels.errors import InvalidInput
from prism_kernels.names import snake_case
from prism_kernels.timeseries.anomalies import METHODS as ANOMALY_METHODS
from prism_kernels.timeseries.changepoints import COSTS
from prism_kernels.timeseries.market import CORRELATIONS
from prism_kernels.timeseries.models import METHODS
from prism_kernels.timeseries.service import MAX_POINTS, MAX_SERIES, TimeseriesService
from prism_kernels.timeseries.trajectory import MODELS as TRAJECTORY_MODELS
from widgets.server.models import ApiModel, ApiResponse, DomainHealth, NameChoice, Page, Timed
from widgets.server.routing import Request, RouteGroup

MAX_ABS = 1e100  # |value| bound: squares and sums of 100 000 of them stay finite
MAX_HORIZON = 10_000
I64_MIN, I64_MAX = -(2**63), 2**63 - 1

Value = Annotated[float, Field(ge=-MAX_ABS, le=MAX_ABS)]
Timestamp = Annotated[int, Field(ge=I64_MIN, le=I64_MAX)]
Values = Annotated[list[Value], Field(max_length=MAX_POINTS)]
Timestamps = Annotated[list[Timestamp], Field(max_length=MAX_POINTS)]
SeriesId = Annotated[str, Field(min_length=1, max_length=200)]
UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
TimestampUnit = NameChoice(
    *UNIT_SECONDS,
    aliases={"seconds": "s", "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"},
    description="Unit of the integer timestamps: s, ms, us or ns",
)
ChangepointMethod = NameChoice(
    "pelt",
    "binseg",
    aliases={"binary_segmentation": "binseg", "bin_seg": "binseg"},
    description="pelt or binseg (binary segmentation)",
)
Cost = NameChoice(*COSTS, description=", ".join(COSTS))
Correlation = NameChoice(
    *CORRELATIONS,
    aliases={"ccc": "constant", "riskmetrics": "ewma"},
    description=", ".join(CORRELATIONS),
)
MotionModel = NameChoice(
    *TRAJECTORY_MODELS,
    aliases={"constant_velocity": "cv", "constant_acceleration": "ca", "kalman_filter": "cv"},
    description=", ".join(TRAJECTORY_MODELS),
)


class TimeseriesHealth(DomainHealth):
    """``GET /api/v1/timeseries/health``: the shared fields and the series store's."""

    series_tracked: int = Field(description="Series in the store")
    forecasts_run: int = Field(description="Forecast requests answered since start")
    forecast_latency_ms: float | None = Field(description="Mean recent forecast time (ms)")
    avg_forecast_time_ms: float | None = Field(description="The original API's name for it")
    methods: list[str] = Field(description="Forecasting methods served")
    datasets: list[str] = Field(description="Real series shipped (GET /datasets)")

    @model_validator(mode="before")
    @classmethod
    def _legacy_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "forecast_latency_ms" in data:
            data = {**data, "avg_forecast_time_ms": data["forecast_latency_ms"]}
        return data


ROUTES = RouteGroup(
    "timeseries",
    "Time series: batched ARIMA/ETS/Theta/LSTM forecasts with intervals, backtests, anomalies, "
    "change points, volatility, traffic and trajectories",
    service=TimeseriesService,
    health=TimeseriesHealth,
)


# ---------------------------------------------------------------- the method


@dataclass(frozen=True)
class MethodChoice:
    """A method as the kernels name it, its options, and a note for ``method_used``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


ALIASES = {
    "exponential_smoothing": "ets",
    "exponentialsmoothing": "ets",
    "holt_winters": "ets",
    "auto_ets": "ets",
    "autoarima": "auto_arima",
    "auto": "auto_arima",
    "sarima": "arima",
    "sarimax": "arima",
    "snaive": "seasonal_naive",
    "random_walk": "naive",
    "auto_theta": "theta",
}
PROPHET_NOTE = (
    "Prophet is not installed; the original server also answered 'prophet' with an automatic "
    "ARIMA order search, which is what ran"
)


def _seasonal_order(v: list[int] | None) -> list[int] | None:
    if v is not None and (max(v[:3]) > 5 or v[1] > 2 or (len(v) == 4 and v[3] < 1)):
        raise ValueError("(P, D, Q[, season_length]): P, Q <= 5, D <= 2, season_length >= 1")
    return v


Order = Annotated[
    list[Annotated[int, Field(ge=0, le=10)]],
    Field(min_length=3, max_length=3, description="(p, d, q), d <= 2"),
    AfterValidator(lambda v: v if v[1] <= 2 else _raise("d must be <= 2")),
]
SeasonalOrder = Annotated[
    list[Annotated[int, Field(ge=0, le=10_000)]],
    Field(min_length=3, max_length=4, description="(P, D, Q) or (P, D, Q, season_length)"),
    AfterValidator(_seasonal_order),
]


def _raise(message: str) -> Any:
    raise ValueError(message)


class ArimaOptions(ApiModel):
    p: int | None = Field(None, ge=0, le=10)
    d: int | None = Field(None, ge=0, le=2)
    q: int | None = Field(None, ge=0, le=10)
    P: int | None = Field(None, ge=0, le=5)  # noqa: N815 - the seasonal order's usual names
    D: int | None = Field(None, ge=0, le=1)  # noqa: N815
    Q: int | None = Field(None, ge=0, le=5)  # noqa: N815
    order: Order | None = None
    seasonal_order: SeasonalOrder | None = None
    include_constant: bool | None = None


class RecurrentOptions(ApiModel):
    """The original's ``hidden_dim`` and ``num_layers`` and the kernel's own options, bounded
    (an LSTM's cost grows with each)."""

    hidden: int | None = Field(
        None, ge=1, le=256, validation_alias=AliasChoices("hidden_dim", "hidden")
    )
    num_layers: int | None = Field(None, ge=1, le=4)
    epochs: int | None = Field(None, ge=1, le=200)
    lookback: int | None = Field(None, ge=1, le=1000)
    lr: float | None = Field(None, gt=0, le=1)
    batch_size: int | None = Field(None, ge=1, le=4096)
    calibration: int | None = Field(None, ge=1, le=MAX_POINTS)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)


class AutoArimaOptions(ApiModel):
    stepwise: bool | None = None
    max_p: int | None = Field(None, ge=0, le=5)
    max_q: int | None = Field(None, ge=0, le=5)
    max_P: int | None = Field(None, ge=0, le=2)  # noqa: N815
    max_Q: int | None = Field(None, ge=0, le=2)  # noqa: N815
    max_order: int | None = Field(None, ge=0, le=10)


class EtsOptions(ApiModel):
    model: str | None = Field(
        None, pattern=r"^[AMZ][ANZ]d?[AMNZ]$", description="e.g. ZZZ (auto), AAdN, MAM"
    )
    damped: bool | None = None
    ic: Literal["aicc", "aic", "bic"] | None = None


class ThetaOptions(ApiModel):
    theta: float | None = Field(None, gt=0, le=100)
    deseasonalize: bool | Literal["auto"] | None = None


OPTION_MODELS: dict[str, type[ApiModel]] = {
    "auto_arima": AutoArimaOptions,
    "lstm": RecurrentOptions,
    "gru": RecurrentOptions,
    "ets": EtsOptions,
    "theta": ThetaOptions,
}


def _orders(o: ArimaOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if o.order is not None:
        out["order"] = tuple(o.order)
    elif any(v is not None for v in (o.p, o.d, o.q)):
        out["order"] = (o.p or 0, o.d or 0, o.q or 0)
    if o.seasonal_order is not None:
        out["seasonal_order"] = tuple(o.seasonal_order[:3])
        if len(o.seasonal_order) == 4:
            out["season_length"] = o.seasonal_order[3]
    elif any(v is not None for v in (o.P, o.D, o.Q)):
        out["seasonal_order"] = (o.P or 0, o.D or 0, o.Q or 0)
    if o.include_constant is not None:
        out["include_constant"] = o.include_constant
    return out


def parse_method(v: Any) -> MethodChoice:
    """A ``method`` as sent (a name or a one-key object, any spelling) -> :class:`MethodChoice`."""
    if isinstance(v, MethodChoice):
        return v
    if isinstance(v, str):
        key, opts = v, {}
    elif isinstance(v, dict) and len(v) == 1:
        key, opts = next(iter(v.items()))
        opts = {} if opts is None else opts
        if not isinstance(opts, dict):
            raise ValueError(f"the options of {key!r} must be an object")
    else:
        raise ValueError('give a method name or a one-key object such as {"arima": {"p": 1, ...}}')
    name = snake_case(key)
    note = None
    if name == "prophet":
        name, note = "auto_arima", PROPHET_NOTE
    name = ALIASES.get(name, name)
    if name not in METHODS:
        raise ValueError(
            f"unknown method {key!r}; choose from {sorted(METHODS)} (or exponential_smoothing, "
            "prophet)"
        )
    try:
        if name == "arima":
            extra = _orders(ArimaOptions.model_validate(opts))
            if "order" not in extra:
                # the client's {"arima": {}}: no order given, so the order is chosen (AICc)
                return MethodChoice("auto_arima", {}, note)
            return MethodChoice("arima", extra, note)
        model = OPTION_MODELS.get(name)
        if model is not None:
            options = model.model_validate(opts).model_dump(exclude_none=True)
            return MethodChoice(name, options, note)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e["loc"])
        raise ValueError(f"{key}.{where}: {e['msg']}") from None
    if opts:
        raise ValueError(f"{key!r} takes no options; got {sorted(opts)}")
    return MethodChoice(name, {}, note)


Method = Annotated[
    str | dict[str, dict[str, Any] | None],
    AfterValidator(parse_method),
    Field(
        description=(
            "auto_arima, arima (with order), ets (= exponential_smoothing), theta, naive, "
            "seasonal_naive, drift, lstm, gru, prophet (runs auto_arima); or "
            '{"arima": {"p", "d", "q"}}, {"lstm": {"hidden_dim", "num_layers"}}, '
            '{"gru": {"hidden_dim"}}'
        ),
    ),
]


# ---------------------------------------------------------------- series in


def _bare_list(v: Any) -> Any:
    return {"values": v} if isinstance(v, list) else v


class SeriesIn(ApiModel):
    """One series: values (or the id of a stored one) and optional timestamps."""

    series_id: SeriesId | None = Field(None, validation_alias=AliasChoices("series_id", "id"))
    values: Values | None = Field(
        None, validation_alias=AliasChoices("values", "historical_data", "data")
    )
    timestamps: Timestamps | None = None
    frequency: str | None = Field(None, max_length=50)
    name: str | None = Field(None, max_length=200)


class SeriesRequest(ApiModel):
    """Where the series come from: ``historical_data`` (or ``values``) with ``series_id`` and
    ``timestamps``; or ``series`` (many); or a stored ``series_id`` alone."""

    series_id: SeriesId | None = Field(None, validation_alias=AliasChoices("series_id", "id"))
    historical_data: Values | None = Field(
        None, validation_alias=AliasChoices("historical_data", "values", "data")
    )
    timestamps: Timestamps | None = Field(
        None, description="One per value, strictly increasing, any integer unit; may be []"
    )
    series: list[Annotated[SeriesIn, BeforeValidator(_bare_list)]] | None = Field(
        None,
        max_length=MAX_SERIES,
        description="Many series: arrays or {series_id, values, timestamps}",
    )
    frequency: str | None = Field(None, max_length=50, description="e.g. 1h, daily, monthly")
    season_length: int | None = Field(
        None, ge=1, le=10_000, description="Steps per season (default: the stored series' or 1)"
    )

    series_field: ClassVar[str] = "historical_data"

    def series_list(self) -> list[dict[str, Any]]:
        """The service's ``series`` argument (each with the request field naming its values)."""
        if self.series is not None:
            if self.historical_data is not None:
                raise InvalidInput("series", "give historical_data or series, not both")
            total = sum(len(s.values or []) for s in self.series)
            if total > MAX_POINTS:
                raise InvalidInput("series", f"{total} points; at most {MAX_POINTS} per request")
            return [
                {
                    "series_id": s.series_id,
                    "values": s.values,
                    "timestamps": s.timestamps,
                    "frequency": s.frequency,
                    "name": s.name,
                    "field": f"series.{i}.values",
                    "ts_field": f"series.{i}.timestamps",
                    "id_field": f"series.{i}.series_id",
                }
                for i, s in enumerate(self.series)
            ]
        if self.historical_data is None and self.series_id is None:
            raise InvalidInput(
                self.series_field, f"give {self.series_field}, series, or a stored series_id"
            )
        return [
            {
                "series_id": self.series_id,
                "values": self.historical_data,
                "timestamps": self.timestamps,
                "frequency": self.frequency,
                "field": self.series_field,
            }
        ]


# ---------------------------------------------------------------- forecast


class ForecastRequest(SeriesRequest):
    """The original ``TimeSeriesForecastRequest`` and more (see the module docstring)."""

    horizon: int = Field(10, ge=1, le=MAX_HORIZON, description="Steps ahead")
    method: Method = Field("auto_arima", validate_default=True)
    order: Order | None = Field(None, description="ARIMA (p, d, q) for method arima")
    seasonal_order: SeasonalOrder | None = Field(
        None, description="(P, D, Q) or (P, D, Q, season_length)"
    )
    include_constant: bool | None = Field(None, description="ARIMA constant/drift (default: auto)")
    include_uncertainty: bool = Field(
        True, description="Prediction intervals (confidence_intervals); false: null"
    )
    confidence_level: float = Field(
        0.95,
        gt=0,
        lt=100,
        validation_alias=AliasChoices("confidence_level", "level"),
        description="Interval coverage, 0.95 or 95",
    )
    evaluate: bool = Field(
        True, description="Held-out metrics (refits the model without the last points)"
    )

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.forecast`'s arguments."""
        m: MethodChoice = self.method  # type: ignore[assignment]
        options = dict(m.options)
        name = m.name
        top = _orders(
            ArimaOptions(
                order=self.order,
                seasonal_order=self.seasonal_order,
                include_constant=self.include_constant,
            )
        )
        if top:
            if name not in ("arima", "auto_arima"):
                raise InvalidInput("order", f"order and seasonal_order apply to arima, not {name}")
            if "order" in top:
                name = "arima"
            elif name == "auto_arima":
                top.pop("seasonal_order", None)
            options.update(top)
        season = options.pop("season_length", None)
        if season is not None and self.season_length is not None and season != self.season_length:
            raise InvalidInput("seasonal_order", "its season length differs from season_length")
        return {
            "series": self.series_list(),
            "horizon": self.horizon,
            "method": name,
            "options": options,
            "level": self.confidence_level,
            "season_length": self.season_length if season is None else season,
            "include_intervals": self.include_uncertainty,
            "evaluate": self.evaluate,
            "note": m.note,
        }


class Interval(ApiResponse):
    lower: float | None
    upper: float | None
    confidence_level: float


class ForecastMetrics(ApiResponse):
    """Accuracy on held-out data (never on the data the model was fitted to)."""

    mae: float | None
    rmse: float | None
    mape: float | None = Field(description="percent; steps where the actual value is 0 left out")
    smape: float | None = Field(description="percent, 0..200")
    mase: float | None = Field(description="MAE over the in-sample seasonal-naive MAE")
    interval_coverage: float | None = Field(
        description="Share of held-out points inside the intervals"
    )
    holdout: str = Field(description="How the data was held out")
    train_points: int
    test_points: int
    season_length: int


class SeriesForecast(ApiResponse):
    series_id: str | None
    predictions: list[float | None]
    timestamps: list[int] = Field(description="last + i * avg_interval (the original's rule)")
    confidence_intervals: list[Interval] | None
    method_used: str = Field(description="The model fitted, with its order or form")
    model: dict[str, Any] = Field(description="Fitted parameters, information criteria")
    metrics: ForecastMetrics | None
    metrics_note: str | None = Field(description="Why there are no metrics, when there are none")
    data_points: int
    residual_sd: float | None = None


class ForecastResult(Timed):
    """The original response fields (of the first series: the only one for historical_data)
    and ``forecasts``, one per series."""

    series_id: str | None
    predictions: list[float | None]
    timestamps: list[int]
    confidence_intervals: list[Interval] | None
    method_used: str
    metrics: ForecastMetrics | None
    metrics_note: str | None
    forecasts: list[SeriesForecast]
    method: str
    horizon: int
    confidence_level: float
    season_length: int

    @classmethod
    def shaped(cls, out: dict[str, Any]) -> dict[str, Any]:
        first = out["forecasts"][0]
        keys = (
            "series_id",
            "predictions",
            "timestamps",
            "confidence_intervals",
            "method_used",
            "metrics",
            "metrics_note",
        )
        return {**{k: first[k] for k in keys}, **out}


EXAMPLE_FORECAST = {
    "series_id": "example-sales",
    "historical_data": [
        112.0,
        118.0,
        132.0,
        129.0,
        121.0,
        135.0,
        148.0,
        148.0,
        136.0,
        119.0,
        104.0,
        118.0,
        115.0,
        126.0,
        141.0,
        135.0,
        125.0,
        149.0,
        170.0,
        170.0,
        158.0,
        133.0,
        114.0,
        140.0,
        145.0,
        150.0,
        178.0,
        163.0,
        172.0,
        178.0,
        199.0,
        199.0,
        184.0,
        162.0,
        146.0,
        166.0,
    ],
    "horizon": 6,
    "method": {"arima": {"p": 1, "d": 1, "q": 1}},
    "include_uncertainty": True,
}


@ROUTES.post(
    "/forecast",
    request=ForecastRequest,
    response=ForecastResult,
    example=EXAMPLE_FORECAST,
    summary="Forecast one or many series with intervals and held-out metrics",
)
def forecast(req: Request) -> dict:
    return ForecastResult.shaped(req.service(TimeseriesService).forecast(**req.body.args()))


# ---------------------------------------------------------------- backtest


class BacktestRequest(SeriesRequest):
    """Rolling-origin backtest of several methods on the same series and windows."""

    methods: list[Method] = Field(
        default_factory=lambda: ["naive", "seasonal_naive", "theta", "ets"],
        min_length=1,
        max_length=12,
        description="Methods compared (names or objects as in /forecast)",
        validate_default=True,
    )
    horizon: int = Field(12, ge=1, le=1000, description="Steps ahead per window")
    windows: int = Field(3, ge=1, le=50, description="Forecast origins at the end of each series")
    step: int | None = Field(
        None, ge=1, le=10_000, description="Steps between origins (default: the horizon)"
    )
    confidence_level: float = Field(
        0.95, gt=0, lt=100, validation_alias=AliasChoices("confidence_level", "level")
    )

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.backtest`'s arguments."""
        ms: list[MethodChoice] = self.methods  # type: ignore[assignment]
        seen: dict[str, MethodChoice] = {}
        for j, m in enumerate(ms):
            if m.name in seen and seen[m.name].options != m.options:
                raise InvalidInput(f"methods.{j}", f"{m.name} is listed twice with other options")
            seen[m.name] = m
        return {
            "series": self.series_list(),
            "methods": list(seen),
            "options": {k: m.options for k, m in seen.items() if m.options},
            "horizon": self.horizon,
            "windows": self.windows,
            "step": self.step,
            "season_length": self.season_length,
            "level": self.confidence_level,
        }


class BacktestRow(ApiResponse):
    method: str
    mae: float | None
    rmse: float | None
    mape: float | None = Field(description="percent")
    smape: float | None = Field(description="percent, 0..200")
    mase: float | None
    coverage: float | None = Field(
        None, description="Share of held-out points inside the intervals"
    )
    series: int | None = None
    windows: int | None = None


class SeriesBacktest(ApiResponse):
    series_id: str | None
    rows: list[BacktestRow]


class BacktestResult(Timed):
    rows: list[BacktestRow] = Field(description="Per method: mean over series and windows")
    per_series: list[SeriesBacktest]
    holdout: str = Field(description="How the windows were held out")
    horizon: int
    windows: int
    season_length: int


@ROUTES.post(
    "/backtest",
    request=BacktestRequest,
    response=BacktestResult,
    example={
        "series_id": "example-sales",
        "historical_data": EXAMPLE_FORECAST["historical_data"],
        "season_length": 12,
        "methods": ["naive", "seasonal_naive", "theta"],
        "horizon": 3,
        "windows": 2,
    },
    summary="Rolling-origin backtest of several methods: MAE, RMSE, MAPE, sMAPE, MASE",
)
def backtest(req: Request) -> dict:
    return req.service(TimeseriesService).backtest(**req.body.args())


# ---------------------------------------------------------------- anomalies

AnomalyMethod = NameChoice(
    *ANOMALY_METHODS,
    aliases={
        "rolling_zscore": "zscore",
        "z_score": "zscore",
        "rolling": "zscore",
        "robust": "robust_zscore",
        "mad": "robust_zscore",
        "modified_zscore": "robust_zscore",
        "seasonal_decomposition": "seasonal",
        "decomposition": "seasonal",
        "residuals": "residual",
        "model_residuals": "residual",
    },
    description=(
        "zscore or robust_zscore (against the window before each point), seasonal (classical "
        "decomposition residuals), residual (one-step residuals of forecast_method)"
    ),
)
Decomposition = NameChoice("additive", "multiplicative", description="additive or multiplicative")


class AnomaliesRequest(SeriesRequest):
    method: AnomalyMethod = "robust_zscore"
    threshold: float = Field(3.5, gt=0, le=1e6, description="Score beyond which a point is flagged")
    window: int | None = Field(
        None, ge=2, le=MAX_POINTS, description="Rolling window (rolling methods)"
    )
    decomposition: Decomposition = "additive"
    forecast_method: Method = Field(
        "ets",
        validate_default=True,
        description="Model whose residuals are scored (method residual)",
    )

    series_field: ClassVar[str] = "values"

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.anomalies`'s arguments."""
        fm: MethodChoice = self.forecast_method  # type: ignore[assignment]
        return {
            "series": self.series_list(),
            "method": self.method,
            "threshold": self.threshold,
            "window": self.window,
            "season_length": self.season_length,
            "decomposition": self.decomposition,
            "forecast_method": fm.name,
            "forecast_options": fm.options,
        }


class SeriesAnomalies(ApiResponse):
    series_id: str | None
    indices: list[int] = Field(description="Flagged points (0-based)")
    values: list[float]
    anomaly_scores: list[float | None] = Field(description="Scores of the flagged points")
    timestamps: list[int] | None = Field(description="Timestamps of the flagged points")
    scores: list[float | None] = Field(description="Every point's score (null: no score)")
    count: int


class AnomaliesResult(Timed):
    indices: list[int] = Field(description="Of the first series")
    scores: list[float | None] = Field(description="Of the first series")
    results: list[SeriesAnomalies]
    method: str
    threshold: float
    season_length: int
    window: int | None = Field(description="Trailing window of the z-scores")

    @classmethod
    def shaped(cls, out: dict[str, Any]) -> dict[str, Any]:
        first = out["results"][0]
        return {"indices": first["indices"], "scores": first["scores"], **out}


@ROUTES.post(
    "/anomalies",
    request=AnomaliesRequest,
    response=AnomaliesResult,
    example={
        "values": [
            10.0,
            10.4,
            9.8,
            10.1,
            10.3,
            9.9,
            10.2,
            10.1,
            10.0,
            9.7,
            10.1,
            10.4,
            9.9,
            10.0,
            25.0,
            10.2,
            9.8,
            10.1,
        ],
        "method": "robust_zscore",
        "window": 8,
        "threshold": 3.5,
    },
    summary="Anomalous points: rolling, robust, residual or seasonal-decomposition scores",
)
def anomalies(req: Request) -> dict:
    return AnomaliesResult.shaped(req.service(TimeseriesService).anomalies(**req.body.args()))


# ---------------------------------------------------------------- change points


class ChangepointsRequest(SeriesRequest):
    method: ChangepointMethod = "pelt"
    cost: Cost = "l2"
    penalty: float | Literal["bic"] | None = Field(
        None, description="Per-segment penalty (>= 0, cost units) or 'bic' (default for pelt)"
    )
    n_breakpoints: int | None = Field(
        None, ge=0, le=1000, description="binseg: this many change points (instead of a penalty)"
    )
    min_size: int = Field(2, ge=1, le=MAX_POINTS, description="Shortest segment (ruptures: 2)")
    jump: int = Field(5, ge=1, le=MAX_POINTS, description="Grid of candidate points (ruptures: 5)")

    series_field: ClassVar[str] = "values"

    @model_validator(mode="after")
    def _penalty_range(self) -> ChangepointsRequest:
        if isinstance(self.penalty, float) and not 0 <= self.penalty <= 1e12:
            raise ValueError("penalty must be in [0, 1e12] or 'bic'")
        return self

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.changepoints`'s arguments."""
        pen = self.penalty
        if self.method == "pelt" and self.n_breakpoints is not None:
            raise InvalidInput("n_breakpoints", "applies to binseg; pelt takes a penalty")
        if pen is None and (self.method == "pelt" or self.n_breakpoints is None):
            pen = "bic"
        return {
            "series": self.series_list(),
            "method": self.method,
            "cost": self.cost,
            "penalty": pen,
            "n_breakpoints": self.n_breakpoints,
            "min_size": self.min_size,
            "jump": self.jump,
        }


class Segment(ApiResponse):
    start: int
    end: int = Field(description="Exclusive")
    n: int
    mean: float | None
    std: float | None = Field(description="ddof 0")


class SeriesChangepoints(ApiResponse):
    series_id: str | None
    breakpoints: list[int] = Field(description="Segment ends as ruptures gives them (last: n)")
    changepoints: list[int] = Field(description="Indices where a new segment starts")
    timestamps: list[int] | None
    segments: list[Segment]
    penalty: float | None = Field(description="The penalty used (null with n_breakpoints)")


class ChangepointsResult(Timed):
    breakpoints: list[int] = Field(description="Of the first series")
    segments: list[Segment] = Field(description="Of the first series")
    results: list[SeriesChangepoints]
    method: str
    cost: str

    @classmethod
    def shaped(cls, out: dict[str, Any]) -> dict[str, Any]:
        first = out["results"][0]
        return {"breakpoints": first["breakpoints"], "segments": first["segments"], **out}


@ROUTES.post(
    "/changepoints",
    request=ChangepointsRequest,
    response=ChangepointsResult,
    example={
        "values": [
            0.1,
            -0.2,
            0.0,
            0.3,
            -0.1,
            0.2,
            0.0,
            -0.3,
            5.1,
            4.8,
            5.2,
            4.9,
            5.0,
            5.3,
            4.7,
            5.1,
        ],
        "method": "pelt",
        "cost": "l2",
        "penalty": 3.0,
        "jump": 1,
    },
    summary="Change points (PELT or binary segmentation) and per-segment statistics",
)
def changepoints(req: Request) -> dict:
    return ChangepointsResult.shaped(req.service(TimeseriesService).changepoints(**req.body.args()))


# ---------------------------------------------------------------- market


class MarketBar(ApiModel):
    """The original ``MarketData``: one time step, a price (and volume) per symbol."""

    timestamp: Timestamp | None = None
    prices: list[Annotated[float, Field(gt=0, le=MAX_ABS)]] = Field(max_length=1000)
    volumes: list[Annotated[float, Field(ge=0, le=MAX_ABS)]] = Field(
        default_factory=list, max_length=1000
    )


class MarketRequest(ApiModel):
    symbols: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        min_length=1, max_length=500
    )
    historical_data: list[MarketBar] | None = Field(
        None, max_length=20_000, description="Oldest first; prices[j] is symbols[j]'s"
    )
    prices: list[list[Annotated[float, Field(gt=0, le=MAX_ABS)]]] | None = Field(
        None, max_length=20_000, description="(n days, k symbols) positive prices"
    )
    returns: list[list[Annotated[float, Field(ge=-1e6, le=1e6)]]] | None = Field(
        None, max_length=20_000, description="(n days, k symbols) returns as fractions"
    )
    horizon_days: int = Field(5, ge=1, le=365)
    include_volatility: bool = Field(True, description="GARCH volatility (false: sample moments)")
    correlation: Correlation | None = None
    asymmetric: bool = Field(False, description="GJR-GARCH instead of GARCH(1,1)")
    confidence_level: float = Field(
        0.95, gt=0, lt=100, validation_alias=AliasChoices("confidence_level", "level")
    )

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.market`'s arguments."""
        given = [x is not None for x in (self.historical_data, self.prices, self.returns)]
        if sum(given) != 1:
            raise InvalidInput("historical_data", "give one of historical_data, prices, returns")
        k = len(self.symbols)
        if len(set(self.symbols)) != k:
            raise InvalidInput("symbols", "symbols must be distinct")
        prices = returns = None
        if self.historical_data is not None:
            for i, bar in enumerate(self.historical_data):
                if len(bar.prices) != k:
                    raise InvalidInput(
                        f"historical_data.{i}.prices",
                        f"has {len(bar.prices)} prices for {k} symbols",
                    )
            prices = [bar.prices for bar in self.historical_data]
            field = "historical_data"
        else:
            rows = self.prices if self.prices is not None else self.returns
            field = "prices" if self.prices is not None else "returns"
            for i, row in enumerate(rows):
                if len(row) != k:
                    raise InvalidInput(f"{field}.{i}", f"has {len(row)} values for {k} symbols")
            if self.prices is not None:
                prices = rows
            else:
                returns = rows
        return {
            "symbols": self.symbols,
            "prices": prices,
            "returns": returns,
            "field": field,
            "horizon_days": self.horizon_days,
            "include_volatility": self.include_volatility,
            "correlation": self.correlation,
            "asymmetric": self.asymmetric,
            "level": self.confidence_level,
        }


class MarketResult(Timed):
    symbols: list[str]
    predicted_returns: list[list[float | None]] = Field(description="(symbols, days), fractions")
    predicted_volatility: list[list[float | None]] | None = Field(
        description="(symbols, days) daily sd (GARCH); null when include_volatility is false"
    )
    lower: list[list[float | None]]
    upper: list[list[float | None]]
    cumulative_return: list[float | None]
    cumulative_volatility: list[float | None]
    correlation_forecast: list[list[float | None]] = Field(description="(symbols, symbols)")
    correlation_method: str
    confidence_level: float
    models: list[dict[str, Any]]
    extra: dict[str, Any]


def _market_example() -> dict[str, Any]:
    """Two symbols over 61 days: a deterministic, positive price path (no randomness needed)."""
    bars = []
    for t in range(61):
        a = 100.0 * math.exp(0.0004 * t + 0.02 * math.sin(0.9 * t) + 0.01 * math.sin(2.3 * t))
        b = 50.0 * math.exp(
            0.0002 * t + 0.015 * math.sin(0.9 * t + 0.4) + 0.012 * math.cos(1.7 * t)
        )
        bars.append(
            {
                "timestamp": 1_700_000_000 + 86_400 * t,
                "prices": [round(a, 4), round(b, 4)],
                "volumes": [1e6, 5e5],
            }
        )
    return {
        "symbols": ["AAA", "BBB"],
        "historical_data": bars,
        "horizon_days": 5,
        "include_volatility": True,
    }


@ROUTES.post(
    "/market",
    request=MarketRequest,
    response=MarketResult,
    example=_market_example(),
    summary="Per-symbol return and GARCH volatility forecasts and a correlation forecast",
)
def market(req: Request) -> dict:
    return req.service(TimeseriesService).market(**req.body.args())


# ---------------------------------------------------------------- the store


class SeriesPut(ApiModel):
    """Store a series: values (with timestamps), or a shipped dataset by name."""

    series_id: SeriesId | None = Field(None, validation_alias=AliasChoices("series_id", "id"))
    values: Values | None = Field(None, validation_alias=AliasChoices("values", "historical_data"))
    timestamps: Timestamps | None = None
    dataset: str | None = Field(
        None, max_length=100, description="A shipped dataset (GET /datasets)"
    )
    name: str | None = Field(None, max_length=200)
    frequency: str | None = Field(None, max_length=50)
    season_length: int | None = Field(None, ge=1, le=10_000)

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.save_series`'s arguments."""
        if (self.values is None) == (self.dataset is None):
            raise InvalidInput("values", "give values or a dataset, not both or neither")
        return self.model_dump()


class SeriesRecord(ApiResponse):
    id: str
    name: str
    data_points: int
    frequency: str | None
    season_length: int | None
    source: str
    interval: int | None = Field(description="Average step between timestamps (their unit)")
    first_timestamp: int | None
    last_timestamp: int | None
    created: float = Field(description="Unix seconds")
    last_updated: float = Field(description="Unix seconds")
    last_forecast: dict[str, Any] | None
    last_backtest: dict[str, Any] | None
    dates: list[str] | None = Field(description="First and last date (shipped datasets)")
    values: list[float] | None = None
    timestamps: list[int] | None = None


@ROUTES.post(
    "/series",
    request=SeriesPut,
    response=SeriesRecord,
    example={"series_id": "air", "dataset": "airpassengers"},
    summary="Store a series (values, or a shipped dataset)",
)
def put_series(req: Request) -> dict:
    return req.service(TimeseriesService).save_series(**req.body.args())


@ROUTES.get(
    "/series/{series_id}",
    response=SeriesRecord,
    summary="A stored series with its values, last forecast and last backtest (404 when unknown)",
)
def get_series(req: Request) -> dict:
    return req.service(TimeseriesService).get_series(req.path["series_id"])


class SeriesSummary(ApiResponse):
    id: str
    name: str
    data_points: int
    frequency: str | None
    season_length: int | None
    source: str
    last_updated: float
    last_forecast: str | None = Field(description="method_used of the last forecast")


class SeriesList(RootModel[list[SeriesSummary]]):
    """Newest first."""


@ROUTES.get("/series", query=Page, response=SeriesList, summary="Stored series, newest first")
def list_series(req: Request) -> list:
    return req.service(TimeseriesService).list_series(req.query.limit, req.query.offset)


class DatasetInfo(ApiResponse):
    name: str
    description: str
    data_points: int
    frequency: str = Field(description="pandas offset alias: MS month start, QS, YS")
    season_length: int
    units: str | None
    source: str = Field(description="Citation")
    first_date: str
    last_date: str


class DatasetList(RootModel[list[DatasetInfo]]):
    """The real series shipped with the installed packages."""


@ROUTES.get("/datasets", response=DatasetList, summary="Real series shipped (no download)")
def datasets(req: Request) -> list:
    return req.service(TimeseriesService).datasets()


# ---------------------------------------------------------------- traffic


class TrafficRequest(ApiModel):
    """The original ``TrafficForecastRequest`` and more: utilisation samples, their timestamps
    (seconds unless ``timestamp_unit``), the horizon in minutes."""

    node_id: str | None = Field(None, max_length=200)
    historical_utilization: Values = Field(
        validation_alias=AliasChoices("historical_utilization", "utilization", "values"),
        description="Equally spaced samples, oldest first (fractions of capacity by default)",
    )
    timestamps: Timestamps | None = Field(None, description="One per sample")
    timestamp_unit: TimestampUnit = Field("s", description="s, ms, us or ns")
    interval_seconds: float | None = Field(
        None, gt=0, le=86_400, description="Sampling interval (default: from the timestamps)"
    )
    horizon_minutes: float = Field(60, gt=0, le=60 * 24 * 28, description="How far ahead")
    capacity: float = Field(1.0, gt=0, le=MAX_ABS, description="In the samples' unit")
    method: Method = Field(
        "seasonal_naive", validate_default=True, description="Forecaster (as in /forecast)"
    )
    confidence_level: float = Field(
        0.95, gt=0, lt=100, validation_alias=AliasChoices("confidence_level", "level")
    )
    buffer_packets: int = Field(100, ge=1, le=1_000_000, description="K of the M/M/1/K queue")

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.traffic`'s arguments."""
        m: MethodChoice = self.method  # type: ignore[assignment]
        return {
            "utilization": self.historical_utilization,
            "timestamps": self.timestamps,
            "timestamp_unit_s": UNIT_SECONDS[self.timestamp_unit],
            "interval_seconds": self.interval_seconds,
            "horizon_minutes": self.horizon_minutes,
            "node_id": self.node_id,
            "capacity": self.capacity,
            "method": m.name,
            "options": m.options,
            "level": self.confidence_level,
            "buffer_packets": self.buffer_packets,
        }


class TrafficResult(Timed):
    node_id: str | None
    predicted_utilization: list[float | None]
    lower: list[float | None]
    upper: list[float | None]
    confidence_level: float
    prob_exceed_capacity: list[float | None] = Field(description="P(utilisation > capacity)")
    load: list[float | None] = Field(description="Forecast mean / capacity")
    predicted_packet_loss: list[float | None] = Field(description="M/M/1/K loss at the load")
    packet_loss_upper: list[float | None] = Field(description="The same at the upper bound")
    timestamps: list[int] = Field(description="In the timestamps' unit")
    interval_seconds: float
    horizon_steps: int
    season_length: int = Field(description="Samples per day")
    capacity: float
    buffer_packets: int
    queue_model: str
    method_used: str


def _traffic_example() -> dict[str, Any]:
    """Two days of hourly utilisation with a daily cycle (deterministic)."""
    u = [
        round(0.45 + 0.3 * math.sin(2 * math.pi * (t % 24 - 8) / 24) + 0.02 * math.sin(1.3 * t), 4)
        for t in range(48)
    ]
    return {
        "node_id": "router-1",
        "historical_utilization": u,
        "timestamps": [1_700_000_000 + 3600 * t for t in range(48)],
        "horizon_minutes": 360,
    }


@ROUTES.post(
    "/traffic",
    request=TrafficRequest,
    response=TrafficResult,
    example=_traffic_example(),
    summary="Utilisation forecast (daily season), probability of exceeding capacity, packet loss",
)
def traffic(req: Request) -> dict:
    return req.service(TimeseriesService).traffic(**req.body.args())


# ---------------------------------------------------------------- trajectory

Position = Annotated[
    list[Annotated[float, Field(ge=-1e12, le=1e12)]], Field(min_length=3, max_length=3)
]


class TrajectoryRequest(ApiModel):
    """The original ``TrajectoryForecastRequest``: positions (m), velocities (m/s), timestamps
    (seconds unless ``timestamp_unit``) and how far ahead; plus the motion model."""

    track_id: str | None = Field(None, max_length=200)
    historical_positions: list[Position] = Field(
        min_length=1,
        max_length=100_000,
        validation_alias=AliasChoices("historical_positions", "positions"),
    )
    historical_velocities: list[Position] | None = Field(
        None,
        max_length=100_000,
        description="Checked against the positions; the filter estimates velocity",
    )
    timestamps: list[Annotated[float, Field(ge=-1e18, le=1e18)]] = Field(
        max_length=100_000, description="One per position, strictly increasing"
    )
    timestamp_unit: TimestampUnit = Field("s", description="s, ms, us or ns")
    horizon_seconds: float = Field(gt=0, le=1e6, description="How far past the last timestamp (s)")
    dt: float = Field(0.1, ge=1e-3, le=1e5, description="Forecast spacing (s); the original's 0.1")
    model: MotionModel = "cv"
    process_noise: float = Field(1.0, gt=0, le=1e9, description="m^2/s^3 (cv), m^2/s^5 (ca)")
    measurement_sigma: float | None = Field(
        None, gt=0, le=1e9, description="Position noise (m); estimated when omitted"
    )

    def args(self) -> dict[str, Any]:
        """:meth:`TimeseriesService.trajectory`'s arguments."""
        return {
            "positions": self.historical_positions,
            "velocities": self.historical_velocities,
            "timestamps": self.timestamps,
            "timestamp_unit_s": UNIT_SECONDS[self.timestamp_unit],
            "horizon_seconds": self.horizon_seconds,
            "dt": self.dt,
            "model": self.model,
            "process_noise": self.process_noise,
            "measurement_sigma": self.measurement_sigma,
            "track_id": self.track_id,
        }


class TrajectoryResult(Timed):
    track_id: str | None
    predicted_positions: list[list[float | None]] = Field(description="(steps, 3), m")
    predicted_velocities: list[list[float | None]] = Field(description="(steps, 3), m/s")
    timestamps: list[float] = Field(description="In the timestamps' unit")
    position_sigma: list[list[float | None]] = Field(description="1-sigma per axis (m)")
    velocity_sigma: list[list[float | None]] = Field(description="1-sigma per axis (m/s)")
    uncertainty: list[float | None] = Field(description="1-sigma position error norm (m)")
    model: str
    measurement_sigma: list[float | None] = Field(description="Per axis (m), given or estimated")
    process_noise: float
    dt: float


@ROUTES.post(
    "/trajectory",
    request=TrajectoryRequest,
    response=TrajectoryResult,
    example={
        "track_id": "track-1",
        "historical_positions": [
            [1000.0 + 250.0 * t + 0.5 * (-1) ** t, 2000.0 - 40.0 * t, 10000.0 + 5.0 * t]
            for t in range(8)
        ],
        "historical_velocities": [[250.0, -40.0, 5.0] for _ in range(8)],
        "timestamps": list(range(8)),
        "horizon_seconds": 2.0,
    },
    summary="Kinematic forecast of positions and velocities, uncertainty growing with time",
)
def trajectory(req: Request) -> dict:
    return req.service(TimeseriesService).trajectory(**req.body.args())
