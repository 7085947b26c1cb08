"""``/api/v1/pixels``: IR frame processing, local entropy, segmentation, persistent homology
and signature classification, all through :class:`prism_kernels.pixels.service.PixelsService`
(a bounded frame archive: every frame sent is stored under its ``frame_id``).

Frames come in two forms (see :mod:`prism_kernels.pixels.frames`):

* the original flat form ``{"width": W, "height": H, "pixels": [W*H numbers, row-major]}``;
* the compact form ``{"pixels_b64": "...", "dtype": "uint16", "shape": [H, W]}`` (base64 of
  the little-endian bytes), for large frames: a 2048 x 2048 ``uint16`` frame is 11 MB of
  base64 against about 25 MB of JSON numbers.

With neither, the stored frame of ``frame_id`` is used (404 when unknown). ``frame_id`` may be
a string or an integer (the original client and notebooks send integers). Per-pixel maps
(``entropy_map``, ``segmentation_mask``, ``detection_mask``, ``processed_pixels``) come back
as flat row-major lists when the frame was sent flat, as compact ``{pixels_b64, dtype, shape}``
objects when it was sent compact and ``return_maps`` is true, and not at all with
``return_maps: false`` (the default for compact frames).

Options are accepted at the top level and, as the original server and notebooks 02 and 04
send them, inside ``processing_options`` (top-level values win).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, RootModel, field_validator

from prism_kernels.errors import InvalidInput
from prism_kernels.names import snake_case as _snake
from prism_kernels.pixels.frames import decode_frame, encode_frame
from prism_kernels.pixels.processing import estimate_background
from prism_kernels.pixels.service import PixelsService
from widgets.server.models import ApiModel, ApiResponse
from widgets.server.routing import Request, RouteGroup

ROUTES = RouteGroup(
    "pixels", "IR frames: hotspots, entropy, segmentation, topology, classification"
)

MAX_SIDE = 16384
SEGMENT_METHODS = ("otsu", "multi_otsu", "adaptive", "adaptive_mean", "watershed", "fixed")


# ---------------------------------------------------------------- frames


class FrameIn(ApiModel):
    """A frame in either form, or only the ``frame_id`` of a stored frame."""

    frame_id: str | int | None = Field(
        None, description="Archive id (string or integer); a fresh id when omitted"
    )
    width: int | None = Field(
        None, ge=1, le=MAX_SIDE, description="Flat form: frame width (pixels)"
    )
    height: int | None = Field(
        None, ge=1, le=MAX_SIDE, description="Flat form: frame height (pixels)"
    )
    pixels: list[float] | None = Field(
        None, description="Flat form: width*height intensities, row-major (u16 in the original)"
    )
    pixels_b64: str | None = Field(
        None, description="Compact form: base64 of the raw little-endian pixel bytes"
    )
    dtype: str | None = Field(
        None,
        description="Compact form: uint8, uint16, float32 or float64 (flat form: optional cast)",
    )
    shape: list[int] | None = Field(None, description="Compact form: [height, width]")
    return_maps: bool | None = Field(
        None,
        description="Return per-pixel maps (default: yes for the flat form, no for the compact form)",
    )

    @field_validator("frame_id")
    @classmethod
    def _fid(cls, v: Any) -> Any:
        if isinstance(v, str) and not 1 <= len(v) <= 200:
            raise ValueError("must be 1 to 200 characters")
        return v

    @field_validator("pixels", mode="wrap")
    @classmethod
    def _pixels(cls, v: Any, handler: Any) -> Any:
        # A 640x480 frame is 307 200 numbers: one NumPy conversion (~30 ms) instead of
        # pydantic's per-item validation; anything unusual falls back to pydantic's own
        # messages (which name the offending item).
        if isinstance(v, list):
            try:
                a = np.asarray(v)
            except (TypeError, ValueError):
                return handler(v)
            if a.ndim == 1 and a.dtype.kind in "iuf":
                if a.dtype.kind == "f" and not np.isfinite(a).all():
                    raise ValueError("contains NaN or infinite values")
                return a
            if a.size == 0:
                return np.zeros(0)
        return handler(v)

    def compact(self) -> bool:
        return self.pixels_b64 is not None

    def frame(self) -> np.ndarray | None:
        """The decoded (H, W) frame, or None when only a ``frame_id`` was sent."""
        if self.pixels_b64 is None and self.pixels is None:
            if self.frame_id is None:
                raise InvalidInput(
                    "pixels",
                    "send a frame (pixels, width, height or pixels_b64, dtype, shape) or a frame_id",
                )
            return None
        payload: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("width", "height", "pixels", "pixels_b64", "dtype", "shape")
            if getattr(self, k) is not None
        }
        a = decode_frame(payload)
        if a.ndim != 2:
            raise InvalidInput(
                "shape", f"send one frame [height, width] per request, got {list(a.shape)}"
            )
        return a

    def maps_wanted(self) -> bool:
        return (not self.compact()) if self.return_maps is None else bool(self.return_maps)


def _encode_map(m: np.ndarray, compact: bool, decimals: int | None = None) -> Any:
    """A per-pixel map in the request's form: flat list, or ``{pixels_b64, dtype, shape}``."""
    if compact:
        if m.dtype.kind == "f":
            m = m.astype(np.float32)
        return encode_frame(m)
    if decimals is not None and m.dtype.kind == "f":
        m = np.round(m, decimals)
    return m.ravel().tolist()


def _opt(body: Any, opts: Any, name: str, default: Any = None, alias: str | None = None) -> Any:
    """A top-level option, else the same (or ``alias``) name in ``processing_options``."""
    v = getattr(body, name, None)
    if v is not None:
        return v
    if opts is not None:
        for n in (name, alias):
            if n is not None and getattr(opts, n, None) is not None:
                return getattr(opts, n)
    return default


class CompactArray(ApiResponse):
    pixels_b64: str
    dtype: str
    shape: list[int]


MapOut = list[float] | CompactArray | None


# ---------------------------------------------------------------- process


class ProcessOptions(ApiModel):
    """``processing_options`` of the original server, the client and notebooks 02/04."""

    detect_hotspots: bool | None = Field(None, description="Detect hotspots (default true)")
    compute_entropy: bool | None = None
    compute_tda: bool | None = None
    apply_tda: bool | None = Field(None, description="Notebook 02's name for compute_tda")
    compute_segmentation: bool | None = None
    extract_features: bool | None = Field(None, description="Default true (false with fast_mode)")
    entropy_window_size: int | None = Field(None, ge=1, le=63)
    tda_threshold: float | None = None
    threshold_method: str | None = Field(
        None, description="Segmentation method (otsu, adaptive, ...) used with compute_segmentation"
    )
    segmentation_method: str | None = None
    min_hotspot_size: int | None = Field(None, ge=1, le=1_000_000, description="Pixels")
    k_sigma: float | None = Field(
        None, gt=0, le=1000, description="Detection threshold in noise sigmas"
    )
    fast_mode: bool | None = Field(None, description="Skip the extracted features unless asked")
    denoise: bool | None = Field(
        None, description="Accepted; detection always works on the background-subtracted residual"
    )


class ProcessRequest(FrameIn):
    processing_options: ProcessOptions | None = None
    k_sigma: float | None = Field(None, gt=0, le=1000)


class Hotspot(ApiResponse):
    id: int
    x: float
    y: float
    radius: float
    intensity: float
    peak: float
    area: int
    bbox: list[int]
    snr: float | None = None
    confidence: float | None = None


class ProcessResult(ApiResponse):
    frame_id: str
    width: int
    height: int
    stats: dict
    hotspots: list[Hotspot] | None = None
    num_hotspots: int | None = None
    extracted_features: dict | None = None
    entropy: dict | None = None
    tda_features: dict | None = None
    segmentation: dict | None = None
    entropy_map: MapOut = None
    segmentation_mask: MapOut = None
    detection_mask: MapOut = None
    processed_pixels: MapOut = None
    computation_time_ms: float
    processing_time_ms: float


@ROUTES.post(
    "/process",
    request=ProcessRequest,
    response=ProcessResult,
    summary="Statistics, hotspots and optionally entropy, topology and segmentation of one frame",
)
def process(req: Request) -> dict:
    b: ProcessRequest = req.body
    o = b.processing_options
    frame = b.frame()
    svc: PixelsService = req.service(PixelsService)
    fast = bool(_opt(b, o, "fast_mode", False))
    detect = bool(_opt(b, o, "detect_hotspots", True))
    method = _snake(_opt(b, o, "segmentation_method", None, alias="threshold_method") or "otsu")
    if method not in SEGMENT_METHODS:
        raise InvalidInput(
            "processing_options.threshold_method",
            f"unknown method {method!r}; choose one of {', '.join(SEGMENT_METHODS)}",
        )
    maps = b.maps_wanted()
    out = svc.process(
        frame,
        b.frame_id,
        detect=detect,
        k_sigma=float(_opt(b, o, "k_sigma", 6.0)),
        min_hotspot_size=int(_opt(b, o, "min_hotspot_size", 1)),
        compute_entropy=bool(_opt(b, o, "compute_entropy", False)),
        entropy_window_size=_opt(b, o, "entropy_window_size", None),
        compute_tda=bool(_opt(b, o, "compute_tda", False, alias="apply_tda")),
        tda_threshold=_opt(b, o, "tda_threshold", None),
        compute_segmentation=bool(_opt(b, o, "compute_segmentation", False)),
        segmentation_method=method,
        extract_features=bool(_opt(b, o, "extract_features", not fast)),
        return_maps=maps,
    )
    compact = b.compact()
    for key, dec in (("entropy_map", 4), ("segmentation_mask", None), ("detection_mask", None)):
        if key in out:
            out[key] = _encode_map(np.asarray(out[key]), compact, dec)
    if maps and detect:
        # The background-subtracted frame the detector thresholds (notebooks 02/04 plot it).
        a = frame if frame is not None else svc.get_pixels(out["frame_id"])
        f = a.astype(np.float64)
        residual = f - np.asarray(estimate_background(f, method="mean", size=31))
        out["processed_pixels"] = _encode_map(residual, compact, 2)
    out["processing_time_ms"] = out["computation_time_ms"]
    return out


# ---------------------------------------------------------------- entropy


class EntropyOptions(ApiModel):
    compute_entropy: bool | None = None
    entropy_window_size: int | None = Field(None, ge=1, le=63)
    entropy_method: str | None = Field(None, description="Only 'shannon' (bits)")


class EntropyRequest(FrameIn):
    window_size: int | None = Field(
        None,
        ge=1,
        le=63,
        description="Window side in pixels (default 7; also processing_options.entropy_window_size)",
    )
    window: Literal["disk", "square"] = Field(
        "disk", description="Disk of that diameter, or a square"
    )
    percentile: float = Field(
        90.0, gt=0, lt=100, description="High-entropy regions: above this percentile"
    )
    processing_options: EntropyOptions | None = None


class EntropyRegion(ApiResponse):
    x: int
    y: int
    width: int
    height: int
    entropy: float
    mean_entropy: float | None = None
    max_entropy: float | None = None
    area: int | None = None


class EntropyResult(ApiResponse):
    frame_id: str
    entropy_map: MapOut = None
    global_entropy: float
    mean_local_entropy: float
    max_local_entropy: float
    p90_local_entropy: float
    high_entropy_regions: list[EntropyRegion]
    num_high_entropy_regions: int
    window: str
    window_size: int
    computation_time_ms: float
    processing_time_ms: float


@ROUTES.post(
    "/entropy",
    request=EntropyRequest,
    response=EntropyResult,
    summary="Local Shannon entropy map (bits), global entropy and high-entropy regions",
)
def entropy(req: Request) -> dict:
    b: EntropyRequest = req.body
    o = b.processing_options
    if o is not None and o.entropy_method is not None and _snake(o.entropy_method) != "shannon":
        raise InvalidInput(
            "processing_options.entropy_method", "only 'shannon' entropy is computed"
        )
    ws = _opt(b, o, "window_size", 7, alias="entropy_window_size")
    frame = b.frame()
    out = req.service(PixelsService).entropy(
        frame, b.frame_id, window_size=int(ws), window=b.window, percentile=b.percentile
    )
    emap = out.pop("entropy_map")
    if b.maps_wanted():
        out["entropy_map"] = _encode_map(np.asarray(emap), b.compact(), 4)
    out["processing_time_ms"] = out["computation_time_ms"]
    return out


# ---------------------------------------------------------------- segment


class SegmentRequest(FrameIn):
    method: str | None = Field(
        None, description=f"One of {', '.join(SEGMENT_METHODS)} (default otsu)"
    )
    threshold: float | None = Field(
        None, description="A fixed intensity threshold (frame > threshold); overrides the method"
    )
    min_object_size: int = Field(
        0, ge=0, le=10_000_000, description="Drop smaller objects (pixels)"
    )
    block_size: int = Field(35, ge=3, le=255, description="Adaptive methods: window side (pixels)")
    offset: float = Field(0.0, description="Adaptive methods: subtracted from the local threshold")
    classes: int = Field(3, ge=2, le=5, description="multi_otsu: number of classes")
    max_objects: int = Field(1000, ge=0, le=100_000, description="At most this many objects listed")
    processing_options: dict[str, Any] | None = Field(
        None, description="threshold_method is read from here too"
    )

    @field_validator("method", mode="before")
    @classmethod
    def _m(cls, v: Any) -> Any:
        return _snake(v)


class SegmentObject(ApiResponse):
    id: int
    centroid: list[float]
    bounding_box: list[int]
    area: int
    mean_intensity: float


class SegmentResult(ApiResponse):
    frame_id: str
    segmentation_mask: MapOut = None
    objects: list[SegmentObject]
    num_objects: int
    objects_listed: int
    threshold: float | None
    method: str
    foreground_fraction: float
    computation_time_ms: float
    processing_time_ms: float


@ROUTES.post(
    "/segment",
    request=SegmentRequest,
    response=SegmentResult,
    summary="Threshold segmentation (Otsu, multi-Otsu, adaptive, watershed or fixed) and object statistics",
)
def segment(req: Request) -> dict:
    b: SegmentRequest = req.body
    method = b.method
    if method is None and b.processing_options:
        method = _snake(b.processing_options.get("threshold_method"))
    method = method or ("fixed" if b.threshold is not None else "otsu")
    if method not in SEGMENT_METHODS:
        raise InvalidInput(
            "method", f"unknown method {method!r}; choose one of {', '.join(SEGMENT_METHODS)}"
        )
    frame = b.frame()
    out = req.service(PixelsService).segment(
        frame,
        b.frame_id,
        method=method,
        threshold=b.threshold,
        min_object_size=b.min_object_size,
        block_size=b.block_size,
        offset=b.offset,
        classes=b.classes,
    )
    mask = out.pop("segmentation_mask")
    if b.maps_wanted():
        out["segmentation_mask"] = _encode_map(np.asarray(mask), b.compact())
    out["objects"] = out["objects"][: b.max_objects]
    out["objects_listed"] = len(out["objects"])
    out["processing_time_ms"] = out["computation_time_ms"]
    return out


# ---------------------------------------------------------------- tda


class TdaOptions(ApiModel):
    apply_tda: bool | None = None
    tda_dimensions: list[int] | None = Field(
        None, description="Dimensions listed in tda_features (0, 1; 2 is empty)"
    )
    persistence_threshold: float | None = Field(None, ge=0, description="Same as min_persistence")
    tda_threshold: float | None = None


class TdaRequest(FrameIn):
    threshold: float | None = Field(
        None, description="Level of betti_numbers (default: the frame mean)"
    )
    filtration: Literal["superlevel", "sublevel"] = Field(
        "superlevel", description="superlevel: a hotspot is a class born at its peak"
    )
    connectivity: Literal[4, 8] = 8
    min_persistence: float | None = Field(None, ge=0, description="List only pairs living longer")
    max_points: int | None = Field(
        500, ge=1, le=100_000, description="At most this many pairs listed"
    )
    method: Literal["ours", "gudhi"] = Field(
        "gudhi",
        description="gudhi (C++, fastest on a CPU) or ours (the array union-find; same diagram)",
    )
    processing_options: TdaOptions | None = None

    @field_validator("filtration", "method", mode="before")
    @classmethod
    def _s(cls, v: Any) -> Any:
        return _snake(v)


class PersistencePoint(ApiResponse):
    dimension: int
    birth: float
    death: float | None = Field(description="null for a class that never dies")
    persistence: float | None = None


class TdaResult(ApiResponse):
    frame_id: str
    persistence_diagram: list[PersistencePoint]
    tda_features: list[PersistencePoint]
    betti_numbers: list[int]
    betti_0: int
    betti_1: int
    betti_2: int
    connected_components: int
    topological_entropy: float
    threshold: float
    filtration: str
    num_points: int
    computation_time_ms: float
    processing_time_ms: float


@ROUTES.post(
    "/tda",
    request=TdaRequest,
    response=TdaResult,
    summary="Cubical persistent homology (H0, H1) of the frame, Betti numbers and summaries",
)
def tda(req: Request) -> dict:
    b: TdaRequest = req.body
    o = b.processing_options
    frame = b.frame()
    out = req.service(PixelsService).tda(
        frame,
        b.frame_id,
        threshold=_opt(b, o, "threshold", None, alias="tda_threshold"),
        filtration=b.filtration,
        connectivity=b.connectivity,
        min_persistence=float(_opt(b, o, "min_persistence", 0.0, alias="persistence_threshold")),
        max_points=b.max_points,
        method=b.method,
    )
    dims = set(o.tda_dimensions) if o is not None and o.tda_dimensions else {0, 1}
    if not dims <= {0, 1, 2}:
        raise InvalidInput("processing_options.tda_dimensions", "dimensions are 0, 1 and 2")
    out["tda_features"] = [p for p in out["persistence_diagram"] if p["dimension"] in dims]
    out["processing_time_ms"] = out["computation_time_ms"]
    return out


# ---------------------------------------------------------------- classify


class ClassifyOptions(ApiModel):
    classify_signatures: bool | None = None
    classification_model: str | None = Field(
        None, description="Accepted; the shipped signature model answers (see model_used)"
    )
    confidence_threshold: float | None = Field(None, ge=0, le=1)


class ClassifyRequest(FrameIn):
    features: dict[str, float] | None = Field(
        None, description="Named signature features of one object (one classification)"
    )
    tracks: list[list[dict[str, float]]] | None = Field(
        None, description="Per-frame statistics of each tracked hotspot, oldest first"
    )
    dt: float = Field(0.1, gt=0, le=3600, description="Seconds between track frames")
    k_sigma: float = Field(
        6.0, gt=0, le=1000, description="Hotspot detection threshold (frame input)"
    )
    confidence_threshold: float | None = Field(None, ge=0, le=1)
    processing_options: ClassifyOptions | None = None


class BBox(ApiResponse):
    x: int
    y: int
    width: int
    height: int


class Classification(ApiResponse):
    class_: str = Field(alias="class")
    confidence: float
    probabilities: dict[str, float]
    accepted: bool
    bbox: BBox | None = None


class ClassifyResult(ApiResponse):
    classifications: list[Classification]
    class_counts: dict[str, int]
    num_classified: int
    model_used: str
    model_requested: str | None = None
    confidence_threshold: float
    frame_id: str | None = None
    computation_time_ms: float
    processing_time_ms: float


@ROUTES.post(
    "/classify",
    request=ClassifyRequest,
    response=ClassifyResult,
    summary="Signature classification (shipped model) of a frame's hotspots, of tracks, or of features",
)
def classify(req: Request) -> dict:
    b: ClassifyRequest = req.body
    o = b.processing_options
    thr = float(_opt(b, o, "confidence_threshold", 0.0))
    if b.features is not None or b.tracks is not None:
        if b.pixels is not None or b.pixels_b64 is not None:
            raise InvalidInput(
                "features", "give exactly one of features, tracks, or a frame / frame_id"
            )
        frame, fid = None, None
    else:
        frame, fid = b.frame(), b.frame_id
    out = req.service(PixelsService).classify(
        frame,
        fid,
        tracks=b.tracks,
        features=b.features,
        dt=b.dt,
        k_sigma=b.k_sigma,
        confidence_threshold=thr,
    )
    out["confidence_threshold"] = thr
    if o is not None and o.classification_model is not None:
        out["model_requested"] = o.classification_model
    out["processing_time_ms"] = out["computation_time_ms"]
    return out


# ---------------------------------------------------------------- archive


class FrameRecord(ApiResponse):
    id: str
    frame_id: str
    status: str
    timestamp: float
    created: float
    width: int
    height: int
    shape: list[int]
    dtype: str
    pixels_stored: bool
    processing_time_ms: float | None
    results: dict


@ROUTES.get(
    "/frame/{frame_id}",
    response=FrameRecord,
    summary="A stored frame's record and the results computed for it (404 when unknown)",
)
def frame_record(req: Request) -> dict:
    return req.service(PixelsService).get_frame(req.path["frame_id"])


class FramesQuery(ApiModel):
    limit: int = Field(100, ge=1, le=1000)


class FrameSummary(ApiResponse):
    frame_id: str
    shape: list[int]
    created: float
    updated: float
    status: str
    results: list[str]


class FrameList(RootModel[list[FrameSummary]]):
    """Newest last."""


@ROUTES.get(
    "/frames",
    query=FramesQuery,
    response=FrameList,
    summary="The archive's newest frames (newest last)",
)
def frames(req: Request) -> list:
    return req.service(PixelsService).list_frames(req.query.limit)


class PixelsHealth(ApiResponse):
    status: str
    frames_stored: int
    frames_processed: int
    frames_with_pixels: int
    bytes: int
    max_frames: int
    avg_processing_time_ms: float | None
    last_processed: dict | None


@ROUTES.get("/health", response=PixelsHealth, summary="The frame archive's real state")
def health(req: Request) -> dict:
    return req.service(PixelsService).health()
