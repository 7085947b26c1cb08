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
send them, inside ``processing_options`` (top-level values win). The request models adapt
both (their ``args()`` give the service its plain arguments); the response models encode the
maps in the request's form. A statistic that is not a finite number is ``null``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, RootModel, WithJsonSchema, field_validator, model_validator

from prism_kernels.errors import InvalidInput
from prism_kernels.pixels.frames import decode_frame, encode_frame
from prism_kernels.pixels.service import PixelsService
from widgets.server.models import ApiModel, ApiResponse, DomainHealth, NameChoice, Page, Timed
from widgets.server.routing import Request, RouteGroup

MAX_SIDE = 16384
SEGMENT_METHODS = ("otsu", "multi_otsu", "adaptive", "adaptive_mean", "watershed", "fixed")
SegmentMethod = NameChoice(*SEGMENT_METHODS, description="Segmentation method")
Filtration = NameChoice(
    "superlevel", "sublevel", description="superlevel: a hotspot is a class born at its peak"
)
TdaMethod = NameChoice(
    "ours",
    "gudhi",
    description=(
        "ours (the compiled union-find, the default: faster than GUDHI on a CPU) "
        "or gudhi (GUDHI's C++; the same diagram)"
    ),
)

#: A small frame that every POST example uses: 8 x 8 counts of 100 with one hot pixel.
_EXAMPLE_FRAME = {"width": 8, "height": 8, "pixels": [100] * 27 + [1000] + [100] * 36}

Num = float | None  # a computed statistic: null when it is not a finite number


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
        None,
        description="Flat form: width*height intensities (counts), row-major (u16 in the original)",
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

    def map_form(self) -> bool:
        """True when maps go back in the compact form (the form the frame came in)."""
        return self.compact()

    def option(self, name: str, default: Any = None, alias: str | None = None) -> Any:
        """A top-level option, else the same (or ``alias``) name in ``processing_options``."""
        v = getattr(self, name, None)
        if v is not None:
            return v
        opts = getattr(self, "processing_options", None)
        for n in (name, alias):
            v = getattr(opts, n, None) if n is not None else None
            if v is not None:
                return v
        return default


class CompactArray(ApiResponse):
    """A per-pixel map in the compact form."""

    pixels_b64: str = Field(description="base64 of the little-endian bytes")
    dtype: str
    shape: list[int] = Field(description="[height, width]")


#: A flat map: width*height values, row-major, keeping their JSON type (booleans for masks,
#: integers for labels, floats). Its items are not validated one by one: a 640 x 480 map is
#: 307,200 of them (0.4 s per map for a per-item union check; the list itself is checked).
FlatMap = Annotated[
    list[Any],
    WithJsonSchema({"type": "array", "items": {"type": ["number", "boolean", "null"]}}),
]
MapOut = FlatMap | CompactArray | None


class MapsResult(Timed):
    """A result that may carry per-pixel maps; :meth:`from_service` encodes them."""

    timing_aliases: ClassVar[tuple[str, ...]] = ("processing_time_ms",)
    #: Map keys and the decimals their flat form is rounded to (None: exact).
    MAPS: ClassVar[dict[str, int | None]] = {}

    processing_time_ms: float = Field(description="Same as computation_time_ms (original name)")

    @classmethod
    def from_service(cls, result: Mapping[str, Any], compact: bool) -> dict[str, Any]:
        """The service's result with its maps as flat row-major lists, or compact objects."""
        out = dict(result)
        for key, decimals in cls.MAPS.items():
            if out.get(key) is None:
                continue
            m = np.asarray(out[key])
            if compact:
                out[key] = encode_frame(m.astype(np.float32) if m.dtype.kind == "f" else m)
            else:  # flat, as an array: the server's JSON conversion is one tolist() call
                if decimals is not None and m.dtype.kind == "f":
                    m = np.round(m, decimals)
                out[key] = m.ravel()
        return out


# ---------------------------------------------------------------- shared result parts


class FrameStats(ApiResponse):
    """Statistics of the frame's values (counts)."""

    mean: Num
    std: Num = Field(description="Population standard deviation")
    min: Num
    max: Num
    median: Num
    mad_sigma: Num = Field(description="Robust sigma of the values (1.4826 x median |x - median|)")
    noise_sigma: Num = Field(description="White-noise sigma from neighbouring-pixel differences")
    p1: Num
    p5: Num
    p25: Num
    p50: Num
    p75: Num
    p95: Num
    p99: Num


class ExtractedFeatures(ApiResponse):
    mean_intensity: Num = Field(description="counts")
    std_intensity: Num = Field(description="counts")
    shannon_entropy: Num = Field(description="bits, 256-level histogram")
    edge_density: Num = Field(description="Fraction of pixels with a significant Sobel gradient")
    convolution_features: list[Num] = Field(
        description="Mean Sobel magnitude, mean Laplacian magnitude (counts per pixel)"
    )


class Hotspot(ApiResponse):
    id: int = Field(description="1-based within the frame")
    frame: int
    x: Num = Field(description="Centroid column (pixels)")
    y: Num = Field(description="Centroid row (pixels)")
    centroid: list[Num] = Field(description="[x, y] (pixels), refined")
    centroid_weighted: list[Num] = Field(description="[x, y] (pixels), intensity-weighted")
    area: int = Field(description="pixels")
    peak: Num = Field(description="Largest residual above background (counts)")
    intensity: Num = Field(description="Frame value at the peak (counts)")
    integrated: Num = Field(description="Residual summed over the hotspot (counts)")
    bbox: list[int] = Field(description="[x, y, width, height] (pixels)")
    bounding_box: list[int] = Field(description="Same as bbox")
    snr: Num = Field(description="Peak / noise sigma")
    radius: Num = Field(description="sqrt(area / pi) (pixels)")
    confidence: Num = Field(description="1 - chance that noise alone gives such a peak")


class EntropyRegion(ApiResponse):
    x: int
    y: int
    width: int
    height: int
    area: int = Field(description="pixels")
    entropy: Num = Field(description="Mean local entropy over the region (bits)")
    mean_entropy: Num = Field(description="bits")
    max_entropy: Num = Field(description="bits")


class EntropySummary(ApiResponse):
    global_entropy: Num = Field(description="bits")
    mean_local_entropy: Num = Field(description="bits")
    max_local_entropy: Num = Field(description="bits")
    p90_local_entropy: Num = Field(description="bits")
    high_entropy_regions: list[EntropyRegion]
    num_high_entropy_regions: int
    window: str
    window_size: int = Field(description="pixels")


class SegmentObject(ApiResponse):
    id: int
    label: int
    area: int = Field(description="pixels")
    centroid: list[Num] = Field(description="[x, y] (pixels)")
    centroid_rc: list[Num] = Field(description="[row, column] (pixels)")
    bounding_box: list[int] = Field(description="[x, y, width, height] (pixels)")
    bbox: list[int] = Field(description="Same as bounding_box")
    mean_intensity: Num = Field(description="counts")
    max_intensity: Num = Field(description="counts")


class SegmentationSummary(ApiResponse):
    method: str
    threshold: Num = Field(description="counts; null for local methods")
    num_objects: int
    objects: list[SegmentObject]
    foreground_fraction: Num


class PersistencePoint(ApiResponse):
    dimension: int
    birth: Num = Field(description="counts")
    death: Num = Field(description="counts; null for a class that never dies")
    persistence: Num = Field(None, description="|death - birth| (counts)")


class TdaSummary(ApiResponse):
    persistence_diagram: list[PersistencePoint]
    betti_numbers: list[int]
    betti_0: int
    betti_1: int
    betti_2: int
    connected_components: int
    topological_entropy: Num = Field(description="Persistent entropy of H0 and H1 (bits)")
    persistent_entropy_h0: Num = None
    persistent_entropy_h1: Num = None
    total_persistence_h0: Num = None
    total_persistence_h1: Num = None
    num_points: int
    threshold: Num = Field(description="Level of betti_numbers (counts)")
    filtration: str
    connectivity: int | None = None
    method: str | None = None


class BBox(ApiResponse):
    x: int
    y: int
    width: int
    height: int


class Classification(ApiResponse):
    class_: str = Field(alias="class")
    confidence: float
    probabilities: dict[str, float]
    contributions: dict[str, float] | None = None
    bias: float | None = None
    imputed: list[str] | None = None
    model: str | None = None
    accepted: bool = Field(description="confidence >= confidence_threshold")
    bbox: BBox | None = None
    hotspot_id: int | None = None
    x: Num = Field(None, description="Hotspot column (pixels)")
    y: Num = Field(None, description="Hotspot row (pixels)")

    model_config = {"extra": "forbid", "serialize_by_alias": True}


class ClassificationSummary(ApiResponse):
    classifications: list[Classification]
    class_counts: dict[str, int] = Field(description="Accepted classifications per class")
    num_classified: int
    model_used: str
    model_held_out_accuracy: Num = None
    confidence_threshold: float
    computation_time_ms: float | None = None


# ---------------------------------------------------------------- process


class ProcessOptions(ApiModel):
    """``processing_options`` of the original server, the client and notebooks 02/04."""

    detect_hotspots: bool | None = Field(None, description="Detect hotspots (default true)")
    compute_entropy: bool | None = None
    compute_tda: bool | None = None
    apply_tda: bool | None = Field(None, description="Notebook 02's name for compute_tda")
    compute_segmentation: bool | None = None
    extract_features: bool | None = Field(None, description="Default true (false with fast_mode)")
    entropy_window_size: int | None = Field(None, ge=1, le=63, description="pixels")
    tda_threshold: float | None = Field(None, description="counts")
    threshold_method: SegmentMethod | None = Field(
        None, description="Segmentation method (otsu, adaptive, ...) used with compute_segmentation"
    )
    segmentation_method: SegmentMethod | None = None
    min_hotspot_size: int | None = Field(None, ge=1, le=1_000_000, description="pixels")
    k_sigma: float | None = Field(
        None, gt=0, le=1000, description="Detection threshold in noise sigmas"
    )
    fast_mode: bool | None = Field(None, description="Skip the extracted features unless asked")
    denoise: bool | None = Field(
        None, description="Accepted; detection always works on the background-subtracted residual"
    )


class ProcessRequest(FrameIn):
    processing_options: ProcessOptions | None = None
    k_sigma: float | None = Field(None, gt=0, le=1000, description="noise sigmas")

    def args(self) -> dict[str, Any]:
        """The service's arguments (options at the top level or in processing_options)."""
        fast = bool(self.option("fast_mode", False))
        return {
            "frame": self.frame(),
            "frame_id": self.frame_id,
            "detect": bool(self.option("detect_hotspots", True)),
            "k_sigma": float(self.option("k_sigma", 6.0)),
            "min_hotspot_size": int(self.option("min_hotspot_size", 1)),
            "compute_entropy": bool(self.option("compute_entropy", False)),
            "entropy_window_size": self.option("entropy_window_size"),
            "compute_tda": bool(self.option("compute_tda", False, alias="apply_tda")),
            "tda_threshold": self.option("tda_threshold"),
            "compute_segmentation": bool(self.option("compute_segmentation", False)),
            "segmentation_method": self.option(
                "segmentation_method", "otsu", alias="threshold_method"
            ),
            "extract_features": bool(self.option("extract_features", not fast)),
            "return_maps": self.maps_wanted(),
        }


class ProcessResult(MapsResult):
    MAPS: ClassVar[dict[str, int | None]] = {
        "entropy_map": 4,
        "segmentation_mask": None,
        "detection_mask": None,
        "processed_pixels": 2,
    }

    frame_id: str
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    stats: FrameStats
    hotspots: list[Hotspot] | None = None
    num_hotspots: int | None = None
    extracted_features: ExtractedFeatures | None = None
    entropy: EntropySummary | None = None
    tda_features: TdaSummary | None = None
    segmentation: SegmentationSummary | None = None
    entropy_map: MapOut = Field(None, description="bits per pixel")
    segmentation_mask: MapOut = Field(None, description="1 = object")
    detection_mask: MapOut = Field(None, description="1 = above the detection threshold")
    processed_pixels: MapOut = Field(
        None, description="Background-subtracted frame the detector thresholds (counts)"
    )


# ---------------------------------------------------------------- health


class LastProcessed(ApiResponse):
    frame_id: str
    timestamp: float = Field(description="Unix seconds")


class PixelsHealth(DomainHealth):
    frames_stored: int
    frames_processed: int
    frames_with_pixels: int
    pixel_bytes: int
    document_bytes: int
    bytes: int = Field(description="Pixels and documents held")
    max_frames: int
    pixel_cap: int = Field(description="Frames with more pixels keep only their results")
    avg_processing_time_ms: float | None = Field(
        None, description="Same as mean_computation_time_ms (original name)"
    )
    last_processed: LastProcessed | None

    @model_validator(mode="before")
    @classmethod
    def _legacy_mean(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "mean_computation_time_ms" in data:
            data = {**data}
            data.setdefault("avg_processing_time_ms", data["mean_computation_time_ms"])
        return data


ROUTES = RouteGroup(
    "pixels",
    "IR frames: hotspots, entropy, segmentation, topology, classification",
    service=PixelsService,
    health=PixelsHealth,
)


@ROUTES.post(
    "/process",
    request=ProcessRequest,
    response=ProcessResult,
    summary="Statistics, hotspots and optionally entropy, topology and segmentation of one frame",
    example={
        **_EXAMPLE_FRAME,
        "processing_options": {"detect_hotspots": True, "compute_entropy": True},
    },
)
def process(req: Request) -> dict:
    return ProcessResult.from_service(
        req.service(PixelsService).process(**req.body.args()), req.body.map_form()
    )


# ---------------------------------------------------------------- entropy


class EntropyOptions(ApiModel):
    compute_entropy: bool | None = None
    entropy_window_size: int | None = Field(None, ge=1, le=63, description="pixels")
    entropy_method: NameChoice("shannon", description="Only 'shannon' (bits)") | None = None


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

    def args(self) -> dict[str, Any]:
        return {
            "frame": self.frame(),
            "frame_id": self.frame_id,
            "window_size": int(self.option("window_size", 7, alias="entropy_window_size")),
            "window": self.window,
            "percentile": self.percentile,
            "return_maps": self.maps_wanted(),
        }


class EntropyResult(MapsResult, EntropySummary):
    MAPS: ClassVar[dict[str, int | None]] = {"entropy_map": 4}

    frame_id: str
    entropy_map: MapOut = Field(None, description="bits per pixel")


@ROUTES.post(
    "/entropy",
    request=EntropyRequest,
    response=EntropyResult,
    summary="Local Shannon entropy map (bits), global entropy and high-entropy regions",
    example={**_EXAMPLE_FRAME, "window_size": 3},
)
def entropy(req: Request) -> dict:
    return EntropyResult.from_service(
        req.service(PixelsService).entropy(**req.body.args()), req.body.map_form()
    )


# ---------------------------------------------------------------- segment


class SegmentOptions(ApiModel):
    threshold_method: SegmentMethod | None = Field(None, description="Same as method")


class SegmentRequest(FrameIn):
    method: SegmentMethod | None = Field(None, description="default otsu (fixed with a threshold)")
    threshold: float | None = Field(
        None,
        description="A fixed intensity threshold (frame > threshold, counts); overrides the method",
    )
    min_object_size: int = Field(
        0, ge=0, le=10_000_000, description="Drop smaller objects (pixels)"
    )
    block_size: int = Field(35, ge=3, le=255, description="Adaptive methods: window side (pixels)")
    offset: float = Field(
        0.0, description="Adaptive methods: subtracted from the local threshold (counts)"
    )
    classes: int = Field(3, ge=2, le=5, description="multi_otsu: number of classes")
    max_objects: int = Field(1000, ge=0, le=100_000, description="At most this many objects listed")
    processing_options: SegmentOptions | None = Field(
        None, description="threshold_method is read from here too"
    )

    def args(self) -> dict[str, Any]:
        method = self.option("method", None, alias="threshold_method")
        return {
            "frame": self.frame(),
            "frame_id": self.frame_id,
            "method": method or ("fixed" if self.threshold is not None else "otsu"),
            "threshold": self.threshold,
            "min_object_size": self.min_object_size,
            "block_size": self.block_size,
            "offset": self.offset,
            "classes": self.classes,
            "max_objects": self.max_objects,
            "return_maps": self.maps_wanted(),
        }


class SegmentResult(MapsResult):
    MAPS: ClassVar[dict[str, int | None]] = {"segmentation_mask": None}

    frame_id: str
    segmentation_mask: MapOut = Field(None, description="1 = object")
    objects: list[SegmentObject]
    num_objects: int
    objects_listed: int
    threshold: Num = Field(description="counts; null for local methods")
    method: str
    foreground_fraction: Num


@ROUTES.post(
    "/segment",
    request=SegmentRequest,
    response=SegmentResult,
    summary="Threshold segmentation (Otsu, multi-Otsu, adaptive, watershed or fixed) and object statistics",
    example={**_EXAMPLE_FRAME, "method": "otsu"},
)
def segment(req: Request) -> dict:
    return SegmentResult.from_service(
        req.service(PixelsService).segment(**req.body.args()), req.body.map_form()
    )


# ---------------------------------------------------------------- tda


class TdaOptions(ApiModel):
    apply_tda: bool | None = None
    tda_dimensions: list[int] | None = Field(
        None, description="Dimensions listed in tda_features (0, 1; 2 is empty)"
    )
    persistence_threshold: float | None = Field(
        None, ge=0, description="Same as min_persistence (counts)"
    )
    tda_threshold: float | None = Field(None, description="counts")

    @field_validator("tda_dimensions")
    @classmethod
    def _dims(cls, v: Any) -> Any:
        if v is not None and not set(v) <= {0, 1, 2}:
            raise ValueError("dimensions are 0, 1 and 2")
        return v


class TdaRequest(FrameIn):
    threshold: float | None = Field(
        None, description="Level of betti_numbers (counts; default: the frame mean)"
    )
    filtration: Filtration = "superlevel"
    connectivity: Literal[4, 8] = 8
    min_persistence: float | None = Field(
        None, ge=0, description="List only pairs living longer (counts)"
    )
    max_points: int | None = Field(
        500, ge=1, le=100_000, description="At most this many pairs listed"
    )
    method: TdaMethod = "ours"
    processing_options: TdaOptions | None = None

    def args(self) -> dict[str, Any]:
        return {
            "frame": self.frame(),
            "frame_id": self.frame_id,
            "threshold": self.option("threshold", None, alias="tda_threshold"),
            "filtration": self.filtration,
            "connectivity": self.connectivity,
            "min_persistence": float(
                self.option("min_persistence", 0.0, alias="persistence_threshold")
            ),
            "max_points": self.max_points,
            "method": self.method,
        }

    def dimensions(self) -> list[int]:
        """The dimensions listed in ``tda_features`` (default 0 and 1)."""
        o = self.processing_options
        return sorted(set(o.tda_dimensions)) if o is not None and o.tda_dimensions else [0, 1]


class TdaResult(Timed, TdaSummary):
    timing_aliases: ClassVar[tuple[str, ...]] = ("processing_time_ms",)

    frame_id: str
    tda_features: list[PersistencePoint] = Field(
        description="The diagram's points of the requested dimensions (notebook 04)"
    )
    processing_time_ms: float

    @classmethod
    def from_service(cls, result: Mapping[str, Any], dimensions: list[int]) -> dict[str, Any]:
        """The service's result with ``tda_features``: its points of ``dimensions``."""
        dims = set(dimensions)
        pts = [p for p in result["persistence_diagram"] if p["dimension"] in dims]
        return {**result, "tda_features": pts}


@ROUTES.post(
    "/tda",
    request=TdaRequest,
    response=TdaResult,
    summary="Cubical persistent homology (H0, H1) of the frame, Betti numbers and summaries",
    example={**_EXAMPLE_FRAME, "max_points": 10},
)
def tda(req: Request) -> dict:
    return TdaResult.from_service(
        req.service(PixelsService).tda(**req.body.args()), req.body.dimensions()
    )


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
        6.0, gt=0, le=1000, description="Hotspot detection threshold (frame input; noise sigmas)"
    )
    confidence_threshold: float | None = Field(None, ge=0, le=1)
    processing_options: ClassifyOptions | None = None

    def args(self) -> dict[str, Any]:
        if self.features is not None or self.tracks is not None:
            if self.pixels is not None or self.pixels_b64 is not None:
                raise InvalidInput(
                    "features", "give exactly one of features, tracks, or a frame / frame_id"
                )
            frame, fid = None, None
        else:
            frame, fid = self.frame(), self.frame_id
        return {
            "frame": frame,
            "frame_id": fid,
            "tracks": self.tracks,
            "features": self.features,
            "dt": self.dt,
            "k_sigma": self.k_sigma,
            "confidence_threshold": float(self.option("confidence_threshold", 0.0)),
        }

    def model_requested(self) -> str | None:
        o = self.processing_options
        return o.classification_model if o is not None else None


class ClassifyResult(Timed, ClassificationSummary):
    timing_aliases: ClassVar[tuple[str, ...]] = ("processing_time_ms",)

    model_requested: str | None = None
    frame_id: str | None = None
    computation_time_ms: float
    processing_time_ms: float

    @classmethod
    def from_service(cls, result: Mapping[str, Any], requested: str | None) -> dict[str, Any]:
        """The service's result, with the model the client asked for when it named one."""
        return {**result, "model_requested": requested} if requested is not None else dict(result)


@ROUTES.post(
    "/classify",
    request=ClassifyRequest,
    response=ClassifyResult,
    summary="Signature classification (shipped model) of a frame's hotspots, of tracks, or of features",
    example={"features": {"log_peak_intensity": 3.5, "log_mean_size": 1.2}},
)
def classify(req: Request) -> dict:
    return ClassifyResult.from_service(
        req.service(PixelsService).classify(**req.body.args()), req.body.model_requested()
    )


# ---------------------------------------------------------------- archive


class HotspotsSummary(ApiResponse):
    count: int
    hotspots: list[Hotspot] = Field(description="The brightest (at most 200)")


class StatsSummary(ApiResponse):
    stats: FrameStats
    extracted_features: ExtractedFeatures | None = None


class StoredResults(ApiResponse):
    """The summaries stored under a frame, one per analysis run on it (the last run's)."""

    stats: StatsSummary | None = None
    hotspots: HotspotsSummary | None = None
    entropy: EntropySummary | None = None
    segmentation: SegmentationSummary | None = None
    topology: TdaSummary | None = None
    classification: ClassificationSummary | None = None


class FrameRecord(Timed):
    timing_aliases: ClassVar[tuple[str, ...]] = ("processing_time_ms",)

    id: str
    frame_id: str
    status: str = Field(description="stored or processed")
    timestamp: float = Field(description="Last update (Unix seconds)")
    created: float = Field(description="Unix seconds")
    updated: float = Field(description="Unix seconds")
    width: int = Field(description="pixels")
    height: int = Field(description="pixels")
    shape: list[int]
    dtype: str
    pixels_stored: bool
    pixels_nbytes: int
    metadata: dict[str, Any]
    processed_count: int | None = None
    computation_time_ms: float | None = Field(description="Time of the last computation (ms)")
    processing_time_ms: float | None
    results: StoredResults


@ROUTES.get(
    "/frame/{frame_id}",
    response=FrameRecord,
    summary="A stored frame's record and the results computed for it (404 when unknown)",
)
def frame_record(req: Request) -> dict:
    return req.service(PixelsService).get_frame(req.path["frame_id"])


class FrameSummary(ApiResponse):
    frame_id: str
    shape: list[int]
    created: float = Field(description="Unix seconds")
    updated: float = Field(description="Unix seconds")
    status: str
    results: list[str]


class FrameList(RootModel[list[FrameSummary]]):
    """Newest first."""


@ROUTES.get(
    "/frames",
    query=Page,
    response=FrameList,
    summary="The archive's frames, newest first",
)
def frames(req: Request) -> list:
    return req.service(PixelsService).list_frames(req.query.limit, req.query.offset)
