"""IR hotspot detection and threat classification from sensor frames.

Pipeline (one call, :func:`detect_frame`):

1. **Hotspots** (:func:`find_hotspots`): the shared imaging core's detector
   (:func:`prism_kernels.imaging.hotspots.detect`) with a low-order polynomial background
   (order 1 = plane, so a sensor gradient is removed) fitted by least squares with iterative
   3-sigma clipping, batched over frames on the input's array library; the robust noise
   sigma of the residual (:mod:`prism_kernels.imaging.noise`); a threshold of ``k_sigma``
   (default 5) sigmas above the residual's median; 8-connected components on the host;
   per hotspot the peak and integrated background-subtracted intensity, size, peak SNR
   (``peak / sigma``), integrated SNR (``integrated / (sigma * sqrt(n_pixels))``) and a
   sub-pixel centroid from the Gaussian-windowed ``XWIN`` iteration, its window the PSF width
   (given, or measured from the peak's log-curvature). For a symmetric PSF the fixed point is
   the true centre; its noise is close to the Cramer-Rao bound. Noise can split one faint
   PSF into several components whose centroids then converge: those are merged here.
2. **Classification** (:func:`classify`): a naive-Bayes likelihood model over the features
   that are available (see :data:`CLASS_MODEL`).
3. **Information metrics** (:func:`prism_kernels.pwsa.infometrics.frame_info_metrics`).

Pixel coordinates: ``x`` is the column, ``y`` the row, both in pixels, pixel centres at
integers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.background import Background
from prism_kernels.imaging.frames import as_frames
from prism_kernels.imaging.hotspots import detect
from prism_kernels.pwsa.infometrics import frame_info_metrics

#: Object classes, snake_case as in the original API's ``threat_type`` enum (section 1.4)
#: where it has them; ``cruise_missile``, ``decoy`` and ``clutter`` are additions.
OBJECT_TYPES: tuple[str, ...] = (
    "ballistic_missile",
    "hypersonic_glide_vehicle",
    "cruise_missile",
    "aircraft",
    "decoy",
    "clutter",
)
#: Types that are threats to defended assets.
THREAT_CLASSES: frozenset[str] = frozenset(
    {"ballistic_missile", "hypersonic_glide_vehicle", "cruise_missile"}
)
#: Every name accepted on input (the original's enum adds these three).
KNOWN_TYPES: tuple[str, ...] = (*OBJECT_TYPES, "satellite", "space_debris", "unknown", "none")

_ALIASES = {
    "hypersonic": "hypersonic_glide_vehicle",
    "hgv": "hypersonic_glide_vehicle",
    "bm": "ballistic_missile",
    "ballistic": "ballistic_missile",
    "cruise": "cruise_missile",
    "flare": "decoy",
}


def normalize_type(name: Any, field_name: str = "threat_type") -> str:
    """Canonical snake_case type from snake_case, PascalCase or a short alias.

    ``"BallisticMissile"``, ``"ballistic_missile"`` and ``"bm"`` all give
    ``"ballistic_missile"``. Raises :class:`InvalidInput` for anything else.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(field_name, f"expected a type name, got {name!r}")
    s = name.strip()
    snake = "".join("_" + c.lower() if c.isupper() else c for c in s).lstrip("_")
    snake = snake.replace("-", "_").replace(" ", "_").lower()
    snake = _ALIASES.get(snake, snake)
    if snake not in KNOWN_TYPES:
        raise InvalidInput(
            field_name, f"unknown type {name!r}; expected one of {', '.join(KNOWN_TYPES)}"
        )
    return snake


# --------------------------------------------------------------------------------------
# Hotspots
# --------------------------------------------------------------------------------------


@dataclass
class Hotspot:
    """One connected region above threshold.

    Attributes
    ----------
    frame_index : int
        Index in the frame stack.
    x, y : float
        Sub-pixel centroid (column, row) in pixels.
    peak : float
        Peak background-subtracted intensity (counts).
    peak_value : float
        Raw pixel value at the peak (counts).
    integrated : float
        Sum of background-subtracted intensity over the component (counts).
    n_pixels : int
        Component size in pixels.
    snr : float
        Peak SNR, ``peak / sigma``.
    integrated_snr : float
        ``integrated / (sigma * sqrt(n_pixels))``.
    psf_sigma : float
        Width (pixels) of the Gaussian window used for the centroid.
    bbox : list[int]
        ``[row_min, col_min, row_max, col_max]`` inclusive (of the brightest component
        when noise split a spot into several, which are merged).
    flux : float
        Aperture flux: background-subtracted sum within ``3 psf_sigma`` of the centroid
        (counts); the intensity used for growth rates and classification.
    growth_rate : float or None
        ``d ln(flux) / dt`` (1/s) over the frames the hotspot was linked through.
    """

    frame_index: int
    x: float
    y: float
    peak: float
    peak_value: float
    integrated: float
    n_pixels: int
    snr: float
    integrated_snr: float
    psf_sigma: float
    bbox: list[int]
    flux: float = 0.0
    growth_rate: float | None = None
    track_length: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["intensity"] = self.flux
        return d


def find_hotspots(
    frames: Any,
    k_sigma: float = 5.0,
    background_order: int = 1,
    min_pixels: int = 1,
    psf_sigma: float | None = None,
    background: Background | None = None,
) -> tuple[list[Hotspot], Background]:
    """Hotspots in every frame of ``frames`` ``(B, H, W)``.

    Parameters
    ----------
    frames : array
        ``(H, W)`` or ``(B, H, W)`` pixels (validated by
        :func:`~prism_kernels.imaging.frames.as_frames`).
    k_sigma : float
        Detection threshold in robust noise sigmas above the residual's median.
    background_order : int
        Polynomial order of the background surface (0, 1, 2).
    min_pixels : int
        Smallest component kept.
    psf_sigma : float, optional
        PSF width in pixels for the centroid window; measured per hotspot when omitted.
    background : Background, optional
        A background already fitted to ``frames``
        (:func:`~prism_kernels.imaging.background.fit_background`).

    Returns
    -------
    (list[Hotspot], Background)
        Hotspots sorted by frame then decreasing peak; the background with its noise sigma
        (``nan`` below 9 pixels: nothing is detected there).
    """
    det = detect(
        frames,
        k_sigma,
        background=background if background is not None else "polynomial",
        order=background_order,
        min_area=max(int(min_pixels), 1),
        psf_sigma=psf_sigma,
        field="pixels",
    )
    h = det.hotspots
    sig = det.background.sigma
    # Noise can split one faint PSF into several components whose windowed centroids then
    # converge to the same point: merge components of a frame whose centroids lie within
    # max(1, s) px of a brighter one (sizes and sums add up, the brighter one's peak wins).
    into = np.full(len(h), -1)
    kept: list[int] = []
    for j in sorted(range(len(h)), key=lambda j: (h.frame[j], -h.peak[j])):
        for q in kept:
            if h.frame[q] == h.frame[j] and math.hypot(h.x[q] - h.x[j], h.y[q] - h.y[j]) <= max(
                1.0, h.psf_sigma[q]
            ):
                into[j] = q
                break
        else:
            kept.append(j)
    integ = h.integrated.astype(np.float64).copy()
    area = h.area.astype(np.int64).copy()
    for j in np.flatnonzero(into >= 0):
        integ[into[j]] += h.integrated[j]
        area[into[j]] += h.area[j]
    hot: list[Hotspot] = []
    for j in kept:
        sg = float(sig[h.frame[j]])
        r0, c0, r1, c1 = (int(v) for v in h.bbox[j])
        hot.append(
            Hotspot(
                frame_index=int(h.frame[j]),
                x=float(h.x[j]),
                y=float(h.y[j]),
                peak=float(h.peak[j]),
                peak_value=float(h.value[j]),
                integrated=float(integ[j]),
                n_pixels=int(area[j]),
                snr=float(h.peak[j] / sg),
                integrated_snr=float(integ[j] / (sg * math.sqrt(area[j]))),
                flux=float(h.flux[j]),
                psf_sigma=float(h.psf_sigma[j]),
                bbox=[r0, c0, r1 - 1, c1 - 1],
            )
        )
    hot.sort(key=lambda hs: (hs.frame_index, -hs.peak))
    return hot, det.background


def link_hotspots(
    hotspots: Sequence[Hotspot], times: Sequence[float], gate_px: float = 3.0
) -> list[list[Hotspot]]:
    """Chain hotspots across consecutive frames by greedy nearest centroid within ``gate_px``.

    Each hotspot of frame ``k`` continues the closest unclaimed chain that ended in frame
    ``k - 1`` within the gate, brightest first. Sets ``growth_rate`` (1/s), the least-squares
    slope of ``ln(flux)`` against time over the chain (``None`` for chains of one or
    with a non-positive intensity), and ``track_length`` on every member.
    """
    by_frame: dict[int, list[Hotspot]] = {}
    for hs in hotspots:
        by_frame.setdefault(hs.frame_index, []).append(hs)
    chains: list[list[Hotspot]] = []
    open_chains: list[list[Hotspot]] = []
    for k in sorted(by_frame):
        new_open: list[list[Hotspot]] = []
        claimed: set[int] = set()
        for hs in sorted(by_frame[k], key=lambda h: -h.peak):
            best, best_d = None, gate_px
            for ci, ch in enumerate(open_chains):
                if ci in claimed or ch[-1].frame_index != k - 1:
                    continue
                d = math.hypot(ch[-1].x - hs.x, ch[-1].y - hs.y)
                if d <= best_d:
                    best, best_d = ci, d
            if best is None:
                ch = [hs]
                chains.append(ch)
            else:
                claimed.add(best)
                ch = open_chains[best]
                ch.append(hs)
            new_open.append(ch)
        open_chains = new_open
    t = np.asarray(times, dtype=np.float64)
    for ch in chains:
        growth = None
        if len(ch) >= 2 and all(h.flux > 0 for h in ch):
            tt = t[[h.frame_index for h in ch]]
            li = np.log([h.flux for h in ch])
            tc = tt - tt.mean()
            den = float(np.dot(tc, tc))
            if den > 0:
                growth = float(np.dot(tc, li - li.mean()) / den)
        for h in ch:
            h.growth_rate = growth
            h.track_length = len(ch)
    return chains


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------

#: Naive-Bayes class model: for each feature, per class ``(mean, std)`` of a Gaussian
#: likelihood in the transformed feature. Features and transforms:
#:
#: * ``log_intensity``: ``log10`` of the hotspot's aperture flux (background-subtracted counts).
#: * ``extent``: PSF-window width in pixels (unresolved point targets ~1.5, extended ground
#:   clutter wider).
#: * ``growth``: ``d ln(intensity) / dt`` in 1/s across linked frames (flares decay fast).
#: * ``log_speed``: ``log10(speed + 1)``, speed in m/s from a track.
#: * ``log_accel``: ``log10(|acceleration| + 0.1)``, m/s^2 from a track.
#: * ``log_altitude``: ``log10(max(z, 0) + 10)``, z in metres from a track.
#:
#: The numbers describe the physical regimes the classes occupy (and that
#: :mod:`prism_kernels.pwsa.scenario` simulates): ballistic missiles fly at km/s with an
#: acceleration of about g after burnout, glide vehicles at ~5 km/s at 20-60 km altitude,
#: cruise missiles at ~250 m/s below 1 km, aircraft at ~220 m/s near 10 km, flares decay
#: within seconds under drag, clutter is static on the ground.
CLASS_MODEL: dict[str, dict[str, tuple[float, float]]] = {
    "log_intensity": {
        "ballistic_missile": (3.8, 0.9),
        "hypersonic_glide_vehicle": (3.8, 0.35),
        "cruise_missile": (3.1, 0.35),
        "aircraft": (3.3, 0.35),
        "decoy": (4.0, 0.6),
        "clutter": (3.0, 0.4),
    },
    "extent": {
        "ballistic_missile": (1.5, 0.3),
        "hypersonic_glide_vehicle": (1.5, 0.3),
        "cruise_missile": (1.5, 0.3),
        "aircraft": (1.5, 0.3),
        "decoy": (1.5, 0.3),
        "clutter": (3.0, 0.7),
    },
    "growth": {
        "ballistic_missile": (0.0, 0.05),
        "hypersonic_glide_vehicle": (0.0, 0.03),
        "cruise_missile": (0.0, 0.03),
        "aircraft": (0.0, 0.03),
        "decoy": (-0.2, 0.1),
        "clutter": (0.0, 0.1),
    },
    "log_speed": {
        "ballistic_missile": (3.35, 0.3),
        "hypersonic_glide_vehicle": (3.7, 0.1),
        "cruise_missile": (2.4, 0.1),
        "aircraft": (2.35, 0.12),
        "decoy": (2.4, 0.5),
        "clutter": (0.3, 0.6),
    },
    "log_accel": {
        "ballistic_missile": (1.2, 0.35),
        "hypersonic_glide_vehicle": (1.0, 0.5),
        "cruise_missile": (0.6, 0.6),
        "aircraft": (0.2, 0.6),
        "decoy": (1.6, 0.4),
        "clutter": (-0.7, 0.5),
    },
    "log_altitude": {
        "ballistic_missile": (4.8, 0.5),
        "hypersonic_glide_vehicle": (4.6, 0.15),
        "cruise_missile": (2.1, 0.3),
        "aircraft": (4.0, 0.1),
        "decoy": (4.0, 0.8),
        "clutter": (1.0, 0.2),
    },
}


@dataclass
class Classification:
    """Result of :func:`classify`.

    ``confidence`` is the posterior probability of ``threat_type``; ``probabilities`` holds
    every class's posterior; ``features`` the transformed features used.
    """

    threat_type: str
    confidence: float
    probabilities: dict[str, float]
    features: dict[str, float]
    is_threat: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def track_features(track: Mapping[str, Any] | None) -> dict[str, float]:
    """Transformed kinematic features from a track ``{position, velocity, acceleration}``."""
    feats: dict[str, float] = {}
    if not track:
        return feats

    def vec(key: str) -> np.ndarray | None:
        val = track.get(key)
        if val is None:
            return None
        a = np.asarray(val, dtype=np.float64).reshape(-1)
        if a.size != 3 or not np.all(np.isfinite(a)):
            raise InvalidInput(f"track.{key}", "expected three finite numbers")
        return a

    p, v, a = vec("position"), vec("velocity"), vec("acceleration")
    if p is not None:
        feats["log_altitude"] = math.log10(max(p[2], 0.0) + 10.0)
    if v is not None:
        feats["log_speed"] = math.log10(float(np.linalg.norm(v)) + 1.0)
    if a is not None:
        feats["log_accel"] = math.log10(float(np.linalg.norm(a)) + 0.1)
    return feats


def hotspot_features(hs: Hotspot) -> dict[str, float]:
    """Transformed image features of a hotspot (intensity, extent, growth when linked)."""
    feats = {"extent": float(hs.psf_sigma)}
    if hs.flux > 0:
        feats["log_intensity"] = math.log10(hs.flux)
    if hs.growth_rate is not None:
        feats["growth"] = float(hs.growth_rate)
    return feats


def classify(
    features: Mapping[str, float], priors: Mapping[str, float] | None = None
) -> Classification:
    """Posterior class probabilities from transformed features (naive Bayes).

    ``log p(c | f) = log prior(c) + sum_k log N(f_k; mu_ck, sd_ck) - log Z``, the sum over
    the features present (a missing feature is marginalised out, so fewer features give a
    flatter posterior). Priors default to uniform over :data:`OBJECT_TYPES`. The returned
    ``confidence`` is the largest posterior, the probability of the chosen class under
    this model.
    """
    classes = list(OBJECT_TYPES)
    if priors is None:
        logp = np.zeros(len(classes))
    else:
        pr = np.array([float(priors.get(c, 0.0)) for c in classes])
        if np.any(pr < 0) or pr.sum() <= 0 or not np.all(np.isfinite(pr)):
            raise InvalidInput("priors", "priors must be non-negative with a positive sum")
        with np.errstate(divide="ignore"):
            logp = np.log(pr / pr.sum())
    used: dict[str, float] = {}
    for name, val in features.items():
        if name not in CLASS_MODEL:
            raise InvalidInput(
                f"features.{name}", f"unknown feature; expected one of {', '.join(CLASS_MODEL)}"
            )
        if val is None:
            continue
        val = float(val)
        if not math.isfinite(val):
            raise InvalidInput(f"features.{name}", "feature must be finite")
        used[name] = val
        for j, c in enumerate(classes):
            mu, sd = CLASS_MODEL[name][c]
            logp[j] += -0.5 * ((val - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)
    mx = np.max(logp)
    post = np.exp(logp - mx)
    post /= post.sum()
    k = int(np.argmax(post))
    return Classification(
        threat_type=classes[k],
        confidence=float(post[k]),
        probabilities={c: float(q) for c, q in zip(classes, post, strict=True)},
        features=used,
        is_threat=classes[k] in THREAT_CLASSES,
    )


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


@dataclass
class DetectionResult:
    """Hotspots and threat assessment of a frame (or of the last frame of a sequence).

    ``threat_type`` / ``confidence`` / ``probabilities`` classify the primary hotspot, the
    brightest one in the last frame; ``"none"`` with ``confidence=None`` when no hotspot
    passes the threshold. ``noise_sigma`` is ``None`` when the frame is too small (< 9
    pixels) to estimate noise, in which case nothing is detected. ``threshold`` is the
    residual level (counts above background) a pixel had to exceed: the residual's median
    plus ``k_sigma`` noise sigmas.
    """

    frame_shape: tuple[int, int]
    n_frames: int
    background_level: float
    noise_sigma: float | None
    threshold: float | None
    k_sigma: float
    hotspots: list[Hotspot]
    threat_type: str
    confidence: float | None
    probabilities: dict[str, float] | None
    centroid: tuple[float, float] | None
    primary: Hotspot | None
    info_metrics: Any = None
    features: dict[str, float] = field(default_factory=dict)

    @property
    def n_hotspots(self) -> int:
        return len(self.hotspots)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_shape": list(self.frame_shape),
            "n_frames": self.n_frames,
            "background_level": self.background_level,
            "noise_sigma": self.noise_sigma,
            "threshold": self.threshold,
            "k_sigma": self.k_sigma,
            "hotspot_count": self.n_hotspots,
            "hotspots": [h.to_dict() for h in self.hotspots],
            "threat_type": self.threat_type,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "centroid": list(self.centroid) if self.centroid is not None else None,
            "primary": self.primary.to_dict() if self.primary is not None else None,
            "features": dict(self.features),
            "info_metrics": self.info_metrics.to_dict() if self.info_metrics is not None else None,
        }


def detect_frame(
    pixels: Any,
    *,
    width: int | None = None,
    height: int | None = None,
    k_sigma: float = 5.0,
    background_order: int = 1,
    min_pixels: int = 1,
    psf_sigma: float | None = None,
    frame_interval: float = 1.0,
    track: Mapping[str, Any] | None = None,
    priors: Mapping[str, float] | None = None,
    compute_metrics: bool = True,
) -> DetectionResult:
    """Detect and classify hotspots in an IR frame or a time-ordered frame stack.

    Parameters
    ----------
    pixels : array or sequence
        ``(H, W)``, ``(B, H, W)`` (frames ``frame_interval`` seconds apart, the last one
        assessed), or flat row-major values with ``width`` and ``height``. u16 or float.
    k_sigma : float
        Threshold in robust noise sigmas (default 5: about 3e-7 false pixels per pixel
        for Gaussian noise).
    track : dict, optional
        ``{position, velocity, acceleration}`` of the track this frame's primary hotspot
        belongs to (metres, m/s, m/s^2, ENU); adds altitude/speed/acceleration features.
    priors : dict, optional
        Class priors for :func:`classify`.
    compute_metrics : bool
        Also compute :class:`~prism_kernels.pwsa.infometrics.InfoTheoryMetrics`.

    Raises
    ------
    InvalidInput
        Empty frames, NaN/inf pixels, a pixel count that does not match ``width*height``,
        a non-positive ``k_sigma`` or ``frame_interval``.
    """
    frames = as_frames(pixels, "pixels", width=width, height=height)
    if not (frame_interval > 0 and math.isfinite(frame_interval)):
        raise InvalidInput("frame_interval", "frame_interval must be a positive number of seconds")
    hot, bg = find_hotspots(
        frames,
        k_sigma=k_sigma,
        background_order=background_order,
        min_pixels=min_pixels,
        psf_sigma=psf_sigma,
    )
    b, h, w = frames.shape
    times = np.arange(b) * float(frame_interval)
    if b > 1 and hot:
        link_hotspots(hot, times)
    last = [hs for hs in hot if hs.frame_index == b - 1]
    primary = max(last, key=lambda hs: hs.peak) if last else None
    sig = float(bg.sigma[-1]) if np.isfinite(bg.sigma[-1]) else None
    thr = float(bg.center[-1]) + k_sigma * sig if sig is not None else None
    metrics = None
    if compute_metrics:
        metrics = frame_info_metrics(frames, background=bg, hotspot=primary)
    feats: dict[str, float] = {}
    if primary is None:
        return DetectionResult(
            frame_shape=(h, w),
            n_frames=b,
            background_level=float(bg.level[-1]),
            noise_sigma=sig,
            threshold=thr,
            k_sigma=float(k_sigma),
            hotspots=hot,
            threat_type="none",
            confidence=None,
            probabilities=None,
            centroid=None,
            primary=None,
            info_metrics=metrics,
        )
    feats.update(hotspot_features(primary))
    feats.update(track_features(track))
    cls = classify(feats, priors=priors)
    return DetectionResult(
        frame_shape=(h, w),
        n_frames=b,
        background_level=float(bg.level[-1]),
        noise_sigma=sig,
        threshold=thr,
        k_sigma=float(k_sigma),
        hotspots=hot,
        threat_type=cls.threat_type,
        confidence=cls.confidence,
        probabilities=cls.probabilities,
        centroid=(primary.x, primary.y),
        primary=primary,
        info_metrics=metrics,
        features=cls.features,
    )
