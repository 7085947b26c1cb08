"""``/api/v1/pwsa``: IR detection, multi-target tracking, sensor fusion, trajectory
prediction and threat prioritisation, all through :class:`prism_kernels.pwsa.service.PwsaService`.

Positions are metres in local east-north-up (ground at ``z = 0``), times seconds. Requests
accept the original server's shapes (``SensorInput``, the ``fuse`` array) and those of the
original Python client and notebook 02 (``fuse`` object with per-sensor targets,
``predict``/``prioritize``/``track`` payloads); enum names in snake_case or PascalCase.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, RootModel, field_validator, model_validator

from prism_kernels.errors import InvalidInput
from prism_kernels.names import snake_case as _snake
from prism_kernels.pwsa.prioritize import STRATEGIES
from prism_kernels.pwsa.service import PwsaService, radar_to_enu
from widgets.server.models import ApiModel, ApiResponse
from widgets.server.routing import Request, RouteGroup

ROUTES = RouteGroup("pwsa", "Missile-warning tracking: detection, tracking, fusion, prediction")

Vec3 = Annotated[list[float], Field(min_length=3, max_length=3, description="[x, y, z]")]
Vec2or3 = Annotated[
    list[float], Field(min_length=2, max_length=3, description="[x, y] or [x, y, z]")
]
Matrix3 = Annotated[list[Vec3], Field(min_length=3, max_length=3, description="3x3 matrix")]

PREDICTION_MODELS = (
    "ballistic",
    "kalman_filter",
    "kalman",
    "gravity",
    "constant_velocity",
    "cv",
    "linear",
)


# ---------------------------------------------------------------- shared input types


class IrFrame(ApiModel):
    width: int = Field(ge=1, le=16384, description="Frame width (pixels)")
    height: int = Field(ge=1, le=16384, description="Frame height (pixels)")
    centroid_x: float = Field(description="Hotspot centroid, pixel x (column)")
    centroid_y: float = Field(description="Hotspot centroid, pixel y (row)")
    hotspot_count: int = Field(ge=0, description="Number of hotspots")
    pixels: list[float] | None = Field(
        None, description="Row-major intensities, width*height values"
    )


class RadarTrack(ApiModel):
    track_id: str
    position: Vec3
    velocity: Vec3
    rcs: float = Field(description="Radar cross-section (m^2)")


class RadarMeasurement(ApiModel):
    range: float = Field(gt=0, description="Slant range (m)")
    azimuth: float = Field(description="Clockwise from north (degrees unless angle_unit='rad')")
    elevation: float = Field(description="Above the horizontal (degrees unless angle_unit='rad')")
    sensor_position: Vec3 | None = Field(
        None, description="Sensor ENU position (m); default the origin"
    )
    range_sigma: float | None = Field(None, gt=0, description="Range noise (m), default 20")
    angle_sigma: float | None = Field(None, gt=0, description="Angle noise (rad), default 2e-3")
    angle_unit: str = Field("deg", pattern="^(deg|degrees|rad|radians)$")


class SensorInput(ApiModel):
    sv_id: int = Field(ge=0, description="Satellite vehicle id")
    timestamp: float = Field(description="Seconds (Unix epoch in the original API)")
    ir_frame: IrFrame
    radar_tracks: list[RadarTrack] | None = Field(None, description="Radar tracks cueing the frame")
    radar: RadarMeasurement | None = Field(None, description="One radar measurement of the target")


def _check_pixels(ir: IrFrame, field: str = "ir_frame") -> None:
    if ir.pixels is not None and len(ir.pixels) != ir.width * ir.height:
        raise InvalidInput(
            f"{field}.pixels",
            f"{len(ir.pixels)} pixel values do not match {field}.width * {field}.height = "
            f"{ir.width} * {ir.height} = {ir.width * ir.height}",
            expected=ir.width * ir.height,
            received=len(ir.pixels),
        )


def _sensor_dict(s: SensorInput) -> dict:
    d = s.model_dump(exclude_none=True)
    if s.radar is not None:
        d["radar"] = s.radar.model_dump(exclude_none=True)
    return d


# ---------------------------------------------------------------- detect


class ThreatAssessment(ApiResponse):
    threat_id: str
    threat_type: str = Field(
        description="ballistic_missile, hypersonic_glide_vehicle, ..., unknown, none"
    )
    confidence: float | None = Field(description="Posterior probability of threat_type")
    position: list[float] | None = Field(description="ENU (m); null without range information")
    velocity: list[float] | None
    estimated_trajectory: list[list[float]]
    time_to_impact: float | None
    recommended_action: str = Field(description="engage, track, monitor or none")
    info_metrics: dict | None
    hotspots: list[dict]


@ROUTES.post(
    "/detect",
    request=SensorInput,
    response=ThreatAssessment,
    summary="Detect and classify a threat in one sensor frame (publishes ThreatDetected)",
)
def detect(req: Request) -> dict:
    _check_pixels(req.body.ir_frame)
    return req.service(PwsaService).detect(_sensor_dict(req.body))


# ---------------------------------------------------------------- track


class Measurement(ApiModel):
    position: Vec3 = Field(description="ENU position (m)")
    sigma: float | Vec3 | None = Field(None, description="Noise sigma (m): one, or per axis")
    covariance: Matrix3 | None = Field(None, description="3x3 noise covariance (m^2)")

    @field_validator("sigma")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        vals = v if isinstance(v, list) else [v] if v is not None else []
        if any(x <= 0 for x in vals):
            raise ValueError("sigma must be positive")
        return v


class TrackScan(ApiModel):
    sensor_id: str | None = Field(
        None, description="Sensor id (default sv-<sv_id>, else 'default')"
    )
    sv_id: int | None = Field(None, ge=0)
    timestamp: float = Field(description="Scan time (s); scans must come in time order")
    measurements: list[Measurement] | None = Field(None, max_length=100_000)
    radar: RadarMeasurement | None = Field(
        None, description="Notebook 02 shape: one radar measurement"
    )
    ir_frame: IrFrame | None = None


class TrackOut(ApiResponse):
    track_id: str
    status: str = Field(description="active, tentative or lost")
    position: list[float]
    velocity: list[float]
    speed: float
    covariance: list[list[float]]
    confidence: float
    threat_type: str
    last_updated: float


class TrackScanResult(ApiResponse):
    active_tracks: int
    new_detections: int = Field(description="Tracks confirmed in this scan")
    lost_tracks: int
    latency_ms: float
    tracks: list[TrackOut]


@ROUTES.post(
    "/track",
    request=TrackScan,
    response=TrackScanResult,
    summary="Run one tracker scan on a sensor's measurements",
)
def track(req: Request) -> dict:
    b: TrackScan = req.body
    if b.measurements is not None:
        meas = [m.model_dump(exclude_none=True) for m in b.measurements]
    elif b.radar is not None:
        z, R = radar_to_enu(b.radar.model_dump(exclude_none=True), "radar")
        meas = [{"position": z.tolist(), "covariance": R.tolist()}]
    else:
        raise InvalidInput(
            "measurements", "missing: give measurements [{position, sigma}] or radar"
        )
    sensor = b.sensor_id or (f"sv-{b.sv_id}" if b.sv_id is not None else "default")
    return req.service(PwsaService).track_scan(sensor, b.timestamp, meas)


class TrackQuery(ApiModel):
    limit: int = Field(20, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    status: str | None = Field(
        None, description="active, lost, tentative or all (default active and lost)"
    )

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: Any) -> Any:
        v = _snake(v)
        if v is not None and v not in (
            "active",
            "confirmed",
            "lost",
            "terminated",
            "tentative",
            "all",
        ):
            raise ValueError("expected one of active, lost, tentative, all")
        return v


class TrackList(RootModel[list[TrackOut]]):
    """Tracks, most recently updated first (the original API's ``data`` was an array)."""


@ROUTES.get(
    "/tracks",
    query=TrackQuery,
    response=TrackList,
    summary="List tracks (persisted across restarts)",
)
def tracks(req: Request) -> list:
    q = req.query
    return req.service(PwsaService).tracks(q.limit, q.offset, q.status)


@ROUTES.get("/track/{track_id}", response=TrackOut, summary="One track (404 when unknown)")
def track_one(req: Request) -> dict:
    return req.service(PwsaService).track(req.path["track_id"])


# ---------------------------------------------------------------- fuse


class FuseTarget(ApiModel):
    id: str | int | None = Field(
        None, description="Target id; equal ids across sensors are one target"
    )
    range: float | None = Field(None, gt=0)
    azimuth: float | None = None
    elevation: float | None = None
    position: Vec3 | None = Field(
        None, description="ENU position (m) instead of range/azimuth/elevation"
    )
    velocity: float | Vec3 | None = Field(None, description="Speed (m/s) or velocity vector")
    sigma: float | Vec3 | None = Field(None, description="Position noise (m) with position")
    covariance: Matrix3 | None = None
    range_sigma: float | None = Field(None, gt=0)
    angle_sigma: float | None = Field(None, gt=0)
    ir_signature: float | None = None
    radar_cross_section: float | None = None


class FuseSensor(ApiModel):
    type: str | None = Field(None, description="radar or ir (default: from the sensor's name)")
    targets: list[FuseTarget]
    sensor_position: Vec3 | None = None
    range_sigma: float | None = Field(None, gt=0)
    angle_sigma: float | None = Field(None, gt=0)
    angle_unit: str | None = Field(None, pattern="^(deg|degrees|rad|radians)$")
    position_sigma: float | None = Field(None, gt=0)


class FuseRequest(ApiModel):
    """Either the original array of ``SensorInput`` (sent as the whole body; shown here as
    ``inputs``) or the client's ``{sv_id, timestamp, sensors: {name: {targets: [...]}}}``."""

    inputs: list[SensorInput] | None = Field(None, description="The original API's array body")
    sv_id: int | None = None
    timestamp: float | None = None
    sensors: dict[str, FuseSensor] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {"inputs": v}
        if isinstance(v, dict) and isinstance(v.get("sensors"), list):
            return {**v, "inputs": v["sensors"], "sensors": None}
        return v


class FusionResult(ApiResponse):
    fused_tracks: list[dict]
    num_tracks: int
    fusion_quality: float | None
    tracks: list[dict]
    processing_time_ms: float
    sensors_used: int
    confidence: float | None


@ROUTES.post(
    "/fuse",
    request=FuseRequest,
    response=FusionResult,
    summary="Multi-sensor fusion (Kalman per sv_id, or information-form fusion of targets)",
)
def fuse(req: Request) -> dict:
    b: FuseRequest = req.body
    svc = req.service(PwsaService)
    if b.inputs is not None:
        for i, s in enumerate(b.inputs):
            _check_pixels(s.ir_frame, f"{i}.ir_frame")
        return svc.fuse([_sensor_dict(s) for s in b.inputs])
    if b.sensors is None:
        raise InvalidInput(
            "sensors", "missing: send an array of SensorInput or {sv_id, timestamp, sensors}"
        )
    sensors = {k: v.model_dump(exclude_none=True) for k, v in b.sensors.items()}
    return svc.fuse({"sv_id": b.sv_id, "timestamp": b.timestamp, "sensors": sensors})


# ---------------------------------------------------------------- predict


class HistoryPoint(ApiModel):
    timestamp: float
    position: Vec3
    velocity: float | Vec3 | None = Field(None, description="Accepted; the fit uses positions")


class PredictRequest(ApiModel):
    track_id: str | None = Field(None, description="A known track (used alone when no history)")
    history: list[HistoryPoint] | None = Field(None, max_length=100_000)
    prediction_horizon: float = Field(60.0, gt=0, le=86_400, description="Seconds ahead")
    model: str = Field(
        "ballistic", description="ballistic (alias kalman_filter) or constant_velocity"
    )
    dt: float = Field(1.0, gt=0, description="Output step (s)")
    measurement_sigma: float | None = Field(
        None, gt=0, description="History noise (m); else from residuals"
    )
    ballistic_coefficient: float | None = Field(
        None, gt=0, description="kg/m^2; adds atmospheric drag"
    )

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> Any:
        v = _snake(v)
        if isinstance(v, str) and v not in PREDICTION_MODELS:
            raise ValueError(f"unknown model; expected one of {', '.join(PREDICTION_MODELS)}")
        return v


class PredictionResult(ApiResponse):
    track_id: str | None
    model: str
    predictions: list[dict] = Field(description="[{timestamp, position, std}]")
    uncertainty: list[dict] = Field(description="[{std, covariance}]")
    impact_point: dict | None = Field(description="{position, covariance, time, ellipse}")
    time_to_impact: float | None
    confidence: float | None
    computation_time_ms: float


@ROUTES.post(
    "/predict",
    request=PredictRequest,
    response=PredictionResult,
    summary="Predict a trajectory and its impact from a history or a known track",
)
def predict(req: Request) -> dict:
    b: PredictRequest = req.body
    history = [h.model_dump(exclude_none=True) for h in b.history] if b.history else None
    return req.service(PwsaService).predict(
        track_id=b.track_id,
        history=history,
        prediction_horizon=b.prediction_horizon,
        model=b.model,
        dt=b.dt,
        measurement_sigma=b.measurement_sigma,
        drag=b.ballistic_coefficient,
    )


# ---------------------------------------------------------------- prioritize


class ImpactIn(ApiModel):
    position: Vec2or3
    covariance: (
        Annotated[
            list[Annotated[list[float], Field(min_length=2, max_length=2)]],
            Field(min_length=2, max_length=2),
        ]
        | None
    ) = None


class ThreatIn(ApiModel):
    threat_id: str | int | None = None
    id: str | int | None = None
    threat_type: str | None = None
    type: str | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    position: Vec3 | None = None
    velocity: float | Vec3 | None = None
    time_to_impact: float | None = Field(None, ge=0)
    impact_point: Vec2or3 | ImpactIn | None = None


class Asset(ApiModel):
    name: str | None = None
    position: Vec2or3
    radius: float = Field(0.0, ge=0)
    value: float = Field(1.0, ge=0)


class DefensiveAssets(ApiModel):
    interceptors_available: int | None = Field(None, ge=0)
    max_engagement_range: float | None = Field(None, ge=0, description="m")
    assets: list[Asset] | None = None


class PrioritizeRequest(ApiModel):
    threats: list[ThreatIn] | None = Field(None, description="Default: the active tracks")
    prioritization_strategy: str = Field(
        "time_weighted_risk", description=f"One of {', '.join(STRATEGIES)}"
    )
    defensive_assets: DefensiveAssets | None = None
    assets: list[Asset] | None = None
    engage_threshold: float = Field(0.6, ge=0, le=1)
    track_threshold: float = Field(0.3, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = dict(v)
            if "strategy" in v and "prioritization_strategy" not in v:
                v["prioritization_strategy"] = v.pop("strategy")
            if isinstance(v.get("defensive_assets"), list):
                v["assets"] = v.pop("defensive_assets")
        return v

    @field_validator("prioritization_strategy", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        v = _snake(v)
        if isinstance(v, str) and v not in STRATEGIES:
            raise ValueError(f"unknown strategy; expected one of {', '.join(STRATEGIES)}")
        return v


class PrioritizationResult(ApiResponse):
    prioritized_threats: list[dict] = Field(
        description="Ranked: risk_score, components, recommended_action"
    )
    strategy_used: str
    total_threats: int
    engageable_threats: int
    processing_time_ms: float


@ROUTES.post(
    "/prioritize",
    request=PrioritizeRequest,
    response=PrioritizationResult,
    summary="Rank threats (or the active tracks) by risk and recommend actions",
)
def prioritize(req: Request) -> dict:
    b: PrioritizeRequest = req.body
    threats = [t.model_dump(exclude_none=True) for t in b.threats] if b.threats else None
    da = b.defensive_assets.model_dump(exclude_none=True) if b.defensive_assets else None
    assets = [a.model_dump(exclude_none=True) for a in b.assets] if b.assets else None
    if threats:
        for i, t in enumerate(threats):
            if isinstance(t.get("impact_point"), dict) and "covariance" not in t["impact_point"]:
                t["impact_point"] = t["impact_point"]["position"]
            if t.get("threat_id") is None and t.get("id") is None:
                t["threat_id"] = f"threat-{i + 1}"
    return req.service(PwsaService).prioritize(
        threats,
        b.prioritization_strategy,
        da,
        assets,
        engage_threshold=b.engage_threshold,
        track_threshold=b.track_threshold,
    )


# ---------------------------------------------------------------- health


class PwsaHealth(ApiResponse):
    status: str
    sensors_online: int
    active_tracks: int
    scans_processed: int
    processing_latency_ms: float | None


@ROUTES.get(
    "/health", response=PwsaHealth, summary="Tracker state: tracks, scans processed, latency"
)
def health(req: Request) -> dict:
    return req.service(PwsaService).health()
