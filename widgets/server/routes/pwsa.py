"""``/api/v1/pwsa``: IR detection, multi-target tracking, sensor fusion, trajectory
prediction and threat prioritisation, all through :class:`prism_kernels.pwsa.service.PwsaService`.

Positions are metres in local east-north-up (ground at ``z = 0``), times seconds. Requests
accept the original server's shapes (``SensorInput``, the ``fuse`` array) and those of the
original Python client and notebook 02 (``fuse`` object with per-sensor targets,
``predict``/``prioritize``/``track`` payloads); enum names in snake_case or PascalCase. The
request models turn them into the service's plain arguments (``args()``); each handler makes
one service call.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, Field, RootModel, field_validator, model_validator

from prism_kernels.errors import InvalidInput
from prism_kernels.pwsa.prioritize import STRATEGIES
from prism_kernels.pwsa.service import MAX_TIMESTAMP, PwsaService
from widgets.server.models import ApiModel, ApiResponse, DomainHealth, NameChoice, Page, Timed
from widgets.server.routing import Request, RouteGroup


class PwsaHealth(DomainHealth):
    """``GET /api/v1/pwsa/health``: the shared fields and the tracker's state."""

    sensors_online: int = Field(description="Sensors that sent a scan in the last 60 s")
    sensors_seen: int = Field(description="Sensors that ever sent a scan")
    active_tracks: int = Field(description="Confirmed tracks")
    tentative_tracks: int
    stored_tracks: int = Field(description="Track documents kept (active and lost)")
    scans_processed: int
    detections_processed: int
    threats_detected: int
    processing_latency_ms: float | None = Field(description="Mean scan latency (ms)")
    latency_p95_ms: float | None = Field(description="95th percentile of scan latency (ms)")
    last_scan_time: float | None = Field(description="The tracker's clock: newest scan (s)")
    restored: bool = Field(description="The tracker state was restored at start")
    tracker: dict[str, Any] = Field(description="The tracker's configuration")


ROUTES = RouteGroup(
    "pwsa",
    "Missile-warning tracking: detection, tracking, fusion, prediction",
    service=PwsaService,
    health=PwsaHealth,
)

Vec3 = Annotated[list[float], Field(min_length=3, max_length=3, description="[x, y, z]")]
Vec2or3 = Annotated[
    list[float], Field(min_length=2, max_length=3, description="[x, y] or [x, y, z]")
]
Matrix3 = Annotated[list[Vec3], Field(min_length=3, max_length=3, description="3x3 matrix")]
AngleUnit = NameChoice(
    "deg",
    "rad",
    aliases={"degrees": "deg", "radians": "rad"},
    description="Unit of azimuth and elevation",
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

    def checked_pixels(self, field: str) -> list[float] | None:
        """The pixels, after checking that there are ``width * height`` of them."""
        if self.pixels is not None and len(self.pixels) != self.width * self.height:
            raise InvalidInput(
                f"{field}.pixels",
                f"{len(self.pixels)} pixel values do not match {field}.width * {field}.height "
                f"= {self.width} * {self.height} = {self.width * self.height}",
                expected=self.width * self.height,
                received=len(self.pixels),
            )
        return self.pixels


class RadarTrack(ApiModel):
    track_id: str
    position: Vec3 = Field(description="ENU position (m)")
    velocity: Vec3 = Field(description="ENU velocity (m/s)")
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
    angle_unit: AngleUnit = "deg"

    def kernel(self) -> dict[str, Any]:
        """The measurement as :func:`prism_kernels.pwsa.geometry.radar_to_enu` takes it."""
        d = self.model_dump(exclude_none=True, exclude={"angle_unit"})
        return {**d, "degrees": self.angle_unit == "deg"}


class SensorInput(ApiModel):
    sv_id: int = Field(ge=0, description="Satellite vehicle id")
    timestamp: float = Field(description="Seconds (Unix epoch in the original API)")
    ir_frame: IrFrame
    radar_tracks: list[RadarTrack] | None = Field(None, description="Radar tracks cueing the frame")
    radar: RadarMeasurement | None = Field(None, description="One radar measurement of the target")

    def args(self) -> dict[str, Any]:
        """``PwsaService.detect`` arguments."""
        ir = self.ir_frame
        pixels = ir.checked_pixels("ir_frame")
        out: dict[str, Any] = {"sv_id": self.sv_id, "timestamp": self.timestamp}
        if pixels is not None:
            out.update(pixels=pixels, width=ir.width, height=ir.height)
        else:
            out.update(centroid=[ir.centroid_x, ir.centroid_y], hotspot_count=ir.hotspot_count)
        if self.radar_tracks:
            out.update(
                position=self.radar_tracks[0].position, velocity=self.radar_tracks[0].velocity
            )
        elif self.radar is not None:
            out["radar"] = self.radar.kernel()
        return out

    def fusion_input(self, i: int) -> dict[str, Any]:
        """One element of ``fuse_sensor_inputs``'s list (``i``: its place in the body)."""
        self.ir_frame.checked_pixels(f"{i}.ir_frame")
        out: dict[str, Any] = {
            "sv_id": self.sv_id,
            "timestamp": self.timestamp,
            "centroid": [self.ir_frame.centroid_x, self.ir_frame.centroid_y],
        }
        if self.radar is not None:
            out["radar"] = self.radar.kernel()
        return out


# ---------------------------------------------------------------- detect


class ThreatAssessment(Timed):
    timing_aliases: ClassVar[tuple[str, ...]] = ("processing_time_ms",)

    threat_id: str
    sv_id: int | None = None
    timestamp: float | None = None
    threat_type: str = Field(
        description="ballistic_missile, hypersonic_glide_vehicle, ..., unknown, none"
    )
    is_threat: bool
    confidence: float | None = Field(description="Posterior probability of threat_type")
    probabilities: dict[str, float] | None = Field(description="Posterior of every class")
    threat_level: str | None = Field(description="high, medium or low")
    position: list[float] | None = Field(description="ENU (m); null without range information")
    velocity: list[float] | None = Field(description="ENU (m/s)")
    estimated_trajectory: list[list[float]] = Field(description="Predicted positions (m)")
    time_to_impact: float | None = Field(description="Seconds")
    impact_point: list[float] | None = Field(description="ENU (m)")
    recommended_action: str = Field(description="engage, track, monitor or none")
    centroid: list[float] | None = Field(description="Hotspot centroid (pixels)")
    hotspot_count: int
    hotspots: list[dict[str, Any]]
    noise_sigma: float | None = Field(description="Robust noise of the frame (counts)")
    info_metrics: dict[str, Any] | None
    processing_time_ms: float = Field(description="Same as computation_time_ms (original name)")


DETECT_EXAMPLE = {
    "sv_id": 42,
    "timestamp": 1_700_000_000.0,
    "ir_frame": {
        "width": 640,
        "height": 480,
        "centroid_x": 320.0,
        "centroid_y": 240.0,
        "hotspot_count": 1,
    },
    "radar_tracks": [
        {
            "track_id": "r-1",
            "position": [10_000.0, 20_000.0, 80_000.0],
            "velocity": [1500.0, 200.0, -1500.0],
            "rcs": 0.5,
        }
    ],
}


@ROUTES.post(
    "/detect",
    request=SensorInput,
    response=ThreatAssessment,
    example=DETECT_EXAMPLE,
    summary="Detect and classify a threat in one sensor frame (publishes ThreatDetected)",
)
def detect(req: Request) -> dict:
    return req.service(PwsaService).detect(**req.body.args())


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
    timestamp: float = Field(
        description=f"Scan time (s), |t| <= {MAX_TIMESTAMP:g}; each sensor's scans in time "
        "order; up to the tracker's late_tolerance (5 s) behind the newest scan of any sensor"
    )
    measurements: list[Measurement] | None = Field(None, max_length=100_000)
    radar: RadarMeasurement | None = Field(
        None, description="Notebook 02 shape: one radar measurement"
    )
    ir_frame: IrFrame | None = None

    def args(self) -> dict[str, Any]:
        """``PwsaService.track_scan`` arguments."""
        sensor = self.sensor_id or (f"sv-{self.sv_id}" if self.sv_id is not None else "default")
        out: dict[str, Any] = {"sensor_id": sensor, "timestamp": self.timestamp}
        if self.measurements is not None:
            out["measurements"] = [m.model_dump(exclude_none=True) for m in self.measurements]
        elif self.radar is not None:
            out["radar"] = self.radar.kernel()
        return out


class Ellipse(ApiResponse):
    semi_major: float = Field(description="m")
    semi_minor: float = Field(description="m")
    orientation_deg: float = Field(description="Major axis, counter-clockwise from east")
    sigma: float = Field(description="Size in standard deviations (2)")


class TrackOut(ApiResponse):
    track_id: str
    status: str = Field(description="active, tentative or lost")
    position: list[float] = Field(description="ENU (m)")
    velocity: list[float] = Field(description="ENU (m/s)")
    acceleration: list[float] | None = Field(None, description="ENU (m/s^2), 9-state models")
    speed: float = Field(description="m/s")
    covariance: list[list[float]] = Field(description="6x6 position/velocity covariance")
    position_std: list[float] | None = Field(None, description="m")
    confidence: float
    threat_type: str
    threat_probability: float | None = None
    is_threat: bool | None = None
    ellipse: Ellipse | None = Field(None, description="Horizontal 2-sigma ellipse")
    last_updated: float = Field(description="Time of the last measurement (s)")
    time: float | None = Field(None, description="Time of the state (s)")
    created: float | None = None
    hits: int | None = None
    consecutive_misses: int | None = None
    sensors: list[str] | None = None
    mode_probabilities: list[float] | None = None


class TrackScanResult(ApiResponse):
    timestamp: float
    scan: int = Field(description="Scans processed so far")
    sensors: list[str]
    active_tracks: int
    tentative_tracks: int
    new_detections: int = Field(description="Tracks confirmed in this scan")
    new_tracks: int = Field(description="Tentative tracks started in this scan")
    lost_tracks: int
    lost_track_ids: list[str]
    confirmed_track_ids: list[str]
    measurements: int
    associated: int
    latency_ms: float = Field(description="Time to process and commit the scan (ms)")
    tracks: list[TrackOut]


TRACK_EXAMPLE = {
    "sensor_id": "sat-1",
    "timestamp": 1_700_000_000.0,
    "measurements": [
        {"position": [100_000.0, 200_000.0, 60_000.0], "sigma": 50.0},
        {"position": [-150_000.0, 50_000.0, 10_000.0], "sigma": [30.0, 30.0, 80.0]},
    ],
}


@ROUTES.post(
    "/track",
    request=TrackScan,
    response=TrackScanResult,
    example=TRACK_EXAMPLE,
    summary="Run one tracker scan on a sensor's measurements",
)
def track(req: Request) -> dict:
    return req.service(PwsaService).track_scan(**req.body.args())


class TrackQuery(Page):
    limit: int = Field(20, ge=1, le=1000, description="At most this many tracks")
    status: (
        NameChoice(
            "active",
            "tentative",
            "lost",
            "all",
            aliases={"confirmed": "active", "terminated": "lost"},
        )
        | None
    ) = Field(None, description="active (confirmed), tentative, lost (terminated) or all")

    def args(self) -> dict[str, Any]:
        return {"limit": self.limit, "offset": self.offset, "status": self.status}


class TrackList(RootModel[list[TrackOut]]):
    """Tracks, most recently updated first (the original API's ``data`` was an array)."""


@ROUTES.get(
    "/tracks",
    query=TrackQuery,
    response=TrackList,
    summary="List tracks, most recently updated first (persisted across restarts)",
)
def tracks(req: Request) -> list:
    return req.service(PwsaService).tracks(**req.query.args())


@ROUTES.get("/track/{track_id}", response=TrackOut, summary="One track (404 when unknown)")
def track_one(req: Request) -> dict:
    return req.service(PwsaService).track(req.path["track_id"])


class ResetResult(Timed):
    reset: bool
    tracks_dropped: int
    scans_dropped: int


class ResetRequest(ApiModel):
    """No parameters: the whole tracker is reset."""


@ROUTES.post(
    "/reset",
    request=ResetRequest,
    response=ResetResult,
    role="admin",
    example={},
    summary="Drop every track and start a fresh tracker (admin)",
)
def reset(req: Request) -> dict:
    return req.service(PwsaService).reset()


# ---------------------------------------------------------------- fuse


class FuseTarget(ApiModel):
    id: str | int | None = Field(
        None,
        validation_alias=AliasChoices("id", "target_id"),
        description="Target id; equal ids across sensors are one target",
    )
    range: float | None = Field(None, gt=0, description="m")
    azimuth: float | None = None
    elevation: float | None = None
    position: Vec3 | None = Field(
        None, description="ENU position (m) instead of range/azimuth/elevation"
    )
    velocity: float | Vec3 | None = Field(None, description="Speed (m/s) or velocity vector")
    sigma: float | Vec3 | None = Field(None, description="Position noise (m) with position")
    covariance: Matrix3 | None = None
    range_sigma: float | None = Field(None, gt=0, description="m")
    angle_sigma: float | None = Field(None, gt=0, description="rad")
    ir_signature: float | None = None
    radar_cross_section: float | None = None


class FuseSensor(ApiModel):
    type: str | None = Field(None, description="radar or ir (default: from the sensor's name)")
    targets: list[FuseTarget]
    sensor_position: Vec3 | None = None
    range_sigma: float | None = Field(None, gt=0, description="m")
    angle_sigma: float | None = Field(None, gt=0, description="rad")
    angle_unit: AngleUnit | None = None
    position_sigma: float | None = Field(None, gt=0, description="m")

    def kernel(self) -> dict[str, Any]:
        """The sensor as :func:`prism_kernels.pwsa.sensor_fusion.fuse_targets` takes it."""
        d = self.model_dump(exclude_none=True, exclude={"angle_unit", "targets"})
        d["targets"] = [t.model_dump(exclude_none=True) for t in self.targets]
        if self.angle_unit is not None:
            d["degrees"] = self.angle_unit == "deg"
        return d


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

    def args(self) -> dict[str, Any]:
        """``PwsaService.fuse`` arguments."""
        if self.inputs is not None:
            return {"inputs": [s.fusion_input(i) for i, s in enumerate(self.inputs)]}
        if self.sensors is None:
            raise InvalidInput(
                "sensors", "missing: send an array of SensorInput or {sv_id, timestamp, sensors}"
            )
        return {
            "sensors": {k: v.kernel() for k, v in self.sensors.items()},
            "timestamp": self.timestamp,
            "sv_id": self.sv_id,
        }


class FusedTrackInfo(ApiResponse):
    """The original ``TrackInfo``."""

    track_id: str
    position: list[float] = Field(description="ENU (m)")
    velocity: list[float] | None = Field(description="ENU (m/s)")
    status: str
    last_updated: float | None = Field(description="s")


class FusedTrack(ApiResponse):
    """One fused target (the Kalman path or the information-fusion path)."""

    track_id: str
    target_id: str | int | None = None
    position: list[float] = Field(description="ENU (m)")
    velocity: float | list[float] | None = Field(
        None, description="Kalman path: vector (m/s); target path: speed (m/s)"
    )
    velocity_vector: list[float] | None = None
    speed: float | None = Field(None, description="m/s")
    covariance: list[list[float]]
    position_std: list[float] = Field(description="m")
    confidence: float
    consistency: float | None = None
    sensors: list[str] | None = None
    threat_type: str | None = None
    threat_probability: float | None = None
    threat_level: str | None = None
    status: str | None = None
    last_updated: float | None = None
    measurements: int | None = None


class FusionResult(Timed):
    timing_aliases: ClassVar[tuple[str, ...]] = ("processing_time_ms",)

    sv_id: int | None = None
    timestamp: float | None = None
    fused_tracks: list[FusedTrackInfo]
    num_tracks: int
    fusion_quality: float | None
    tracks: list[FusedTrack]
    sensors_used: int
    confidence: float | None
    method: str = Field(description="kalman_cv or information_fusion")
    processing_time_ms: float = Field(description="Same as computation_time_ms (original name)")


FUSE_EXAMPLE = {
    "sv_id": 42,
    "timestamp": 1_700_000_000.0,
    "sensors": {
        "ir": {
            "targets": [
                {
                    "id": "TGT-001",
                    "azimuth": 45.2,
                    "elevation": 12.5,
                    "range": 150_000.0,
                    "velocity": 2500.0,
                }
            ]
        },
        "radar": {
            "targets": [
                {
                    "id": "TGT-001",
                    "azimuth": 45.25,
                    "elevation": 12.5,
                    "range": 150_040.0,
                    "velocity": 2510.0,
                }
            ]
        },
    },
}


@ROUTES.post(
    "/fuse",
    request=FuseRequest,
    response=FusionResult,
    example=FUSE_EXAMPLE,
    summary="Multi-sensor fusion (Kalman per sv_id, or information-form fusion of targets)",
)
def fuse(req: Request) -> dict:
    return req.service(PwsaService).fuse(**req.body.args())


# ---------------------------------------------------------------- predict


class HistoryPoint(ApiModel):
    timestamp: float = Field(description="s")
    position: Vec3 = Field(description="ENU (m)")
    velocity: float | Vec3 | None = Field(
        None,
        description="ENU velocity (m/s): with it, two points are enough. A scalar speed has "
        "no direction and is not used",
    )


class PredictRequest(ApiModel):
    track_id: str | None = Field(None, description="A known track (used alone when no history)")
    history: list[HistoryPoint] | None = Field(None, max_length=100_000)
    prediction_horizon: float = Field(60.0, gt=0, le=86_400, description="Seconds ahead")
    model: NameChoice(
        "ballistic",
        "constant_velocity",
        aliases={
            "kalman_filter": "ballistic",
            "kalman": "ballistic",
            "gravity": "ballistic",
            "cv": "constant_velocity",
            "linear": "constant_velocity",
        },
        description="ballistic (aliases kalman_filter, kalman, gravity) or constant_velocity "
        "(cv, linear)",
    ) = "ballistic"
    dt: float = Field(1.0, gt=0, le=86_400, description="Output step (s)")
    measurement_sigma: float | None = Field(
        None, gt=0, description="History noise (m); else from residuals"
    )
    ballistic_coefficient: float | None = Field(
        None, gt=0, description="kg/m^2; adds atmospheric drag"
    )

    def args(self) -> dict[str, Any]:
        """``PwsaService.predict`` arguments."""
        history = None
        if self.history:
            history = {
                "times": [h.timestamp for h in self.history],
                "positions": [h.position for h in self.history],
                "velocities": [h.velocity for h in self.history],
            }
        return {
            "track_id": self.track_id,
            "history": history,
            "prediction_horizon": self.prediction_horizon,
            "model": self.model,
            "dt": self.dt,
            "measurement_sigma": self.measurement_sigma,
            "drag": self.ballistic_coefficient,
        }


# Non-finite values (a filter pushed past float range by extreme input) are written as null.
Num = float | None


class PredictedPoint(ApiResponse):
    timestamp: float = Field(description="s")
    position: list[Num] = Field(description="ENU (m)")
    std: list[Num] = Field(description="Per-axis standard deviation (m)")


class PredictedUncertainty(ApiResponse):
    std: list[Num] = Field(description="m")
    covariance: list[list[Num]] = Field(description="m^2")


class FittedState(ApiResponse):
    position: list[Num] = Field(description="ENU (m) at the epoch")
    velocity: list[Num] = Field(description="ENU (m/s) at the epoch")
    covariance: list[list[Num]] = Field(description="6x6 position/velocity covariance")


class ImpactEllipse(ApiResponse):
    semi_major: float = Field(description="m")
    semi_minor: float = Field(description="m")
    orientation_deg: float
    confidence: float


class ImpactPoint(ApiResponse):
    position: list[float] = Field(description="ENU (m), z = 0")
    covariance: list[list[float]] = Field(description="Horizontal 2x2 (m^2)")
    time: float = Field(description="Seconds after the epoch")
    time_std: float | None = Field(description="s")
    ellipse: ImpactEllipse
    method: str
    fraction_found: float | None
    timestamp: float = Field(description="Absolute time of impact (s)")


class PredictionResult(Timed):
    track_id: str | None
    model: str
    epoch: float = Field(description="Time of the fitted state (s)")
    state: FittedState
    predictions: list[PredictedPoint]
    uncertainty: list[PredictedUncertainty]
    impact_point: ImpactPoint | None
    time_to_impact: float | None = Field(description="Seconds after the epoch")
    time_to_impact_std: float | None
    confidence: float | None = Field(description="Goodness of fit p-value (with sigma)")
    rms_residual: float | None = Field(description="m")


PREDICT_EXAMPLE = {
    "track_id": "TRK-001",
    "history": [
        {"timestamp": 0.0, "position": [0.0, 0.0, 50_000.0], "velocity": [800.0, 300.0, 600.0]},
        {
            "timestamp": 2.0,
            "position": [1600.0, 600.0, 51_180.4],
            "velocity": [800.0, 300.0, 580.4],
        },
    ],
    "prediction_horizon": 30,
    "model": "kalman_filter",
}


@ROUTES.post(
    "/predict",
    request=PredictRequest,
    response=PredictionResult,
    example=PREDICT_EXAMPLE,
    summary="Predict a trajectory and its impact from a history or a known track",
)
def predict(req: Request) -> dict:
    return req.service(PwsaService).predict(**req.body.args())


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

    def threat(self, i: int) -> dict[str, Any]:
        """The threat as :func:`prism_kernels.pwsa.prioritize.prioritize` takes it."""
        d = self.model_dump(exclude_none=True, exclude={"id", "type", "impact_point"})
        tid = self.threat_id if self.threat_id is not None else self.id
        d["threat_id"] = tid if tid is not None else f"threat-{i + 1}"
        if self.threat_type is not None or self.type is not None:
            d["threat_type"] = self.threat_type if self.threat_type is not None else self.type
        imp = self.impact_point
        if isinstance(imp, ImpactIn):
            d["impact_point"] = imp.model_dump() if imp.covariance is not None else imp.position
        elif imp is not None:
            d["impact_point"] = imp
        return d


class Asset(ApiModel):
    name: str | None = None
    position: Vec2or3 = Field(description="ENU (m)")
    radius: float = Field(0.0, ge=0, description="m")
    value: float = Field(1.0, ge=0)


class DefensiveAssets(ApiModel):
    interceptors_available: int | None = Field(None, ge=0)
    max_engagement_range: float | None = Field(None, ge=0, description="m")
    assets: list[Asset] | None = None


class PrioritizeRequest(ApiModel):
    threats: list[ThreatIn] | None = Field(None, description="Default: the active tracks")
    prioritization_strategy: NameChoice(*STRATEGIES) = Field(
        "time_weighted_risk",
        validation_alias=AliasChoices("prioritization_strategy", "strategy"),
        description=f"One of {', '.join(STRATEGIES)}",
    )
    defensive_assets: DefensiveAssets | None = None
    assets: list[Asset] | None = None
    engage_threshold: float = Field(0.6, ge=0, le=1)
    track_threshold: float = Field(0.3, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _asset_list(cls, v: Any) -> Any:
        if isinstance(v, dict) and isinstance(v.get("defensive_assets"), list):
            v = {**v, "assets": v["defensive_assets"], "defensive_assets": None}
        return v

    def args(self) -> dict[str, Any]:
        """``PwsaService.prioritize`` arguments."""
        assets = [a.model_dump(exclude_none=True) for a in self.assets or []]
        out: dict[str, Any] = {
            "threats": [t.threat(i) for i, t in enumerate(self.threats or [])] or None,
            "strategy": self.prioritization_strategy,
            "engage_threshold": self.engage_threshold,
            "track_threshold": self.track_threshold,
        }
        da = self.defensive_assets
        if da is not None:
            assets += [a.model_dump(exclude_none=True) for a in da.assets or []]
            for k in ("interceptors_available", "max_engagement_range"):
                if getattr(da, k) is not None:
                    out[k] = getattr(da, k)
        out["assets"] = assets or None
        return out


class RiskComponents(ApiResponse):
    urgency: float
    confidence: float
    type_weight: float
    asset_proximity: float | None


class RankedThreat(ApiResponse):
    rank: int
    threat_id: str | int
    threat_type: str
    risk_score: float = Field(description="0 to 1")
    components: RiskComponents
    time_to_impact: float | None = Field(description="s")
    impact_point: list[float] | None = Field(description="ENU (m)")
    nearest_asset: str | None
    nearest_asset_distance: float | None = Field(description="m")
    engageable: bool
    strategy: str
    recommended_action: str = Field(description="engage, track or monitor")
    velocity: float | None = Field(None, description="The speed the request gave (m/s)")


class PrioritizationResult(Timed):
    timing_aliases: ClassVar[tuple[str, ...]] = ("processing_time_ms",)

    prioritized_threats: list[RankedThreat] = Field(description="Ranked, highest risk first")
    strategy_used: str
    total_threats: int
    engageable_threats: int
    engage_count: int = Field(description="Threats recommended for engagement")
    source: str = Field(description="request, or tracks when no threats were given")
    processing_time_ms: float = Field(description="Same as computation_time_ms (original name)")


PRIORITIZE_EXAMPLE = {
    "threats": [
        {
            "threat_id": "T-001",
            "type": "ballistic_missile",
            "position": [100e3, 200e3, 50e3],
            "velocity": 2500,
            "time_to_impact": 120,
            "confidence": 0.95,
        },
        {
            "threat_id": "T-002",
            "type": "HypersonicGlideVehicle",
            "position": [150e3, 180e3, 30e3],
            "velocity": 5000,
            "time_to_impact": 60,
            "confidence": 0.88,
        },
    ],
    "prioritization_strategy": "time_weighted_risk",
    "defensive_assets": {"interceptors_available": 1, "max_engagement_range": 500e3},
}


@ROUTES.post(
    "/prioritize",
    request=PrioritizeRequest,
    response=PrioritizationResult,
    example=PRIORITIZE_EXAMPLE,
    summary="Rank threats (or the active tracks) by risk and recommend actions",
)
def prioritize(req: Request) -> dict:
    return req.service(PwsaService).prioritize(**req.body.args())
