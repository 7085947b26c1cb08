"""IR hotspot detection and threat classification from sensor frames.

Pipeline (one call, :func:`detect_frame`):

1. **Background** (:func:`estimate_background`): a low-order polynomial surface (order 1 =
   plane, so a sensor gradient is removed) fitted by least squares with iterative
   3-sigma clipping, batched over frames on the input's array library. The noise
   ``sigma`` is the robust MAD estimate ``1.4826 * median(|r - median(r)|)`` of the residuals.
2. **Threshold** at ``background + k_sigma * sigma`` (default ``k_sigma = 5``).
3. **Connected components**: ``scipy.ndimage.label`` (8-connectivity) on the host. This is
   the one host edge: labelling has no array-API form, so the residual map is copied with
   :func:`prism_kernels.backend.to_numpy` there.
4. **Hotspot measures** per component: peak and integrated background-subtracted
   intensity, size in pixels, peak SNR (``peak / sigma``), integrated SNR
   (``integrated / (sigma * sqrt(n_pixels))``) and a sub-pixel centroid.
   The centroid starts at the intensity-weighted first moment of the component and is
   refined by the Gaussian-windowed iteration used for SExtractor's ``XWIN`` positions:
   ``x <- x + 2 * sum(w I (x_i - x)) / sum(w I)`` with ``w = exp(-r^2 / 2 s^2)``, ``s`` the
   PSF width (given, or measured from the peak's log-curvature), over the component and its
   background surroundings (pixels of other components excluded). For a symmetric PSF the
   fixed point is the true centre; its noise is close to the Cramer-Rao bound, unlike a
   thresholded moment which is biased by the threshold cut.
5. **Classification** (:func:`classify`): a naive-Bayes likelihood model over the features
   that are available (see :data:`CLASS_MODEL`).

Pixel coordinates: ``x`` is the column, ``y`` the row, both in pixels, pixel centres at
integers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput

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
# Input handling
# --------------------------------------------------------------------------------------


def as_frames(
    pixels: Any, width: int | None = None, height: int | None = None, field_name: str = "pixels"
) -> Any:
    """Validate pixels and return a float64 array of shape ``(B, H, W)`` on their library.

    ``pixels`` may be ``(H, W)``, ``(B, H, W)`` or a flat row-major sequence with
    ``width`` and ``height`` given (the REST ``IrFrameData`` form).
    """
    if pixels is None:
        raise InvalidInput(field_name, "no pixels given")
    if isinstance(pixels, (list, tuple)):
        try:
            pixels = np.asarray(pixels, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(field_name, f"pixels must be numbers: {exc}") from exc
    xp = get_namespace(pixels)
    x = pixels
    if width is not None or height is not None:
        if width is None or height is None or int(width) < 1 or int(height) < 1:
            raise InvalidInput("ir_frame.width", "width and height must both be positive integers")
        n = 1
        for s in x.shape:
            n *= int(s)
        if n != int(width) * int(height):
            raise InvalidInput(
                field_name,
                f"{n} pixel values do not match width*height = {int(width)}*{int(height)}",
                expected=int(width) * int(height),
                received=n,
            )
        x = xp.reshape(x, (int(height), int(width)))
    if x.ndim == 2:
        x = x[None, ...]
    if x.ndim != 3:
        raise InvalidInput(
            field_name, f"expected a (H, W) frame or a (B, H, W) stack, got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise InvalidInput(field_name, f"empty frame, shape {tuple(x.shape)}")
    x = xp.astype(x, xp.float64)
    if not bool(xp.all(xp.isfinite(x))):
        raise InvalidInput(field_name, "pixels contain NaN or infinite values")
    return x


# --------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------


@dataclass
class Background:
    """Background model of a frame stack.

    ``model`` is ``(B, H, W)`` on the input's array library; ``sigma`` is ``(B,)`` noise
    standard deviations (host floats), ``nan`` where fewer than 9 pixels make the noise
    inestimable; ``level`` is the median background per frame.
    """

    model: Any
    sigma: np.ndarray
    level: np.ndarray


def _median_last(xp: Any, a: Any) -> Any:
    s = xp.sort(a, axis=-1)
    n = s.shape[-1]
    if n % 2:
        return s[..., n // 2]
    return 0.5 * (s[..., n // 2 - 1] + s[..., n // 2])


def estimate_background(
    frames: Any, order: int = 1, clip: float = 3.0, n_iter: int = 3
) -> Background:
    """Robust polynomial background of ``frames`` ``(B, H, W)`` (or ``(H, W)``).

    Fits ``sum c_ij u^i v^j`` (``i + j <= order``, ``u, v`` the column/row coordinates
    scaled to [-1, 1]) by least squares, then refits ``n_iter`` times on the pixels whose
    residual is within ``clip`` robust sigmas, so hotspots do not pull the surface. Batched
    over frames on the input's array library (``xp.linalg.solve``).

    Returns
    -------
    Background
        Surface, MAD noise sigma (``nan`` below 9 pixels) and median level per frame.
    """
    if order not in (0, 1, 2):
        raise InvalidInput("background_order", "order must be 0, 1 or 2")
    x = as_frames(frames)
    xp = get_namespace(x)
    b, h, w = x.shape
    p = h * w
    # Keep the fit well determined: at least 3 pixels per coefficient.
    n_coef = {0: 1, 1: 3, 2: 6}
    while order > 0 and p < 3 * n_coef[order]:
        order -= 1
    y = xp.reshape(x, (b, p))
    cols = xp.astype(xp.arange(p) % w, xp.float64)
    rows = xp.astype(xp.arange(p) // w, xp.float64)
    u = (2.0 * cols / max(w - 1, 1)) - 1.0
    v = (2.0 * rows / max(h - 1, 1)) - 1.0
    terms = [xp.ones_like(u)]
    if order >= 1:
        terms += [u, v]
    if order >= 2:
        terms += [u * u, u * v, v * v]
    a = xp.stack(terms, axis=-1)  # (P, m)
    m = a.shape[-1]
    mask = xp.ones((b, p), dtype=xp.float64)
    eye = xp.eye(m, dtype=xp.float64)
    sigma = None
    for _ in range(n_iter + 1):
        aw = a[None, :, :] * mask[:, :, None]  # (B, P, m)
        at = xp.permute_dims(aw, (0, 2, 1))
        lhs = xp.matmul(at, a[None, :, :]) + 1e-9 * p * eye
        rhs = xp.matmul(at, y[:, :, None])
        coef = xp.linalg.solve(lhs, rhs)
        model = xp.matmul(a[None, :, :], coef)[:, :, 0]
        r = y - model
        med = _median_last(xp, r)
        sigma = 1.4826 * _median_last(xp, xp.abs(r - med[:, None]))
        keep = xp.abs(r - med[:, None]) <= clip * xp.maximum(sigma, 1e-12)[:, None]
        mask = xp.astype(keep, xp.float64)
        # A frame whose clip leaves too few pixels keeps every pixel.
        few = xp.sum(mask, axis=-1) < 3 * m
        mask = xp.where(few[:, None], xp.ones_like(mask), mask)
    sig = to_numpy(sigma).astype(np.float64).copy()
    # A MAD of 0 (over half the pixels equal, e.g. a noiseless or quantised frame) falls
    # back to the residual standard deviation; a floor of 1e-6 of the level keeps a
    # perfectly flat frame from "detecting" rounding errors.
    zero = sig <= 0
    if np.any(zero):
        std = to_numpy(xp.std(r, axis=-1)).astype(np.float64)
        sig = np.where(zero, std, sig)
    lvl = np.abs(to_numpy(_median_last(xp, model)).astype(np.float64))
    sig = np.maximum(sig, 1e-6 * np.maximum(lvl, 1.0))
    if p < 9:
        sig[:] = np.nan
    model3 = xp.reshape(model, (b, h, w))
    level = to_numpy(_median_last(xp, model)).astype(np.float64)
    return Background(model=model3, sigma=sig, level=level)


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


def _log_curvature_sigma(res: np.ndarray, fi: int, r: int, c: int) -> float:
    """PSF width from the log-intensity curvature at the peak (Gaussian: exact)."""
    _, h, w = res.shape
    est = []
    if 0 < c < w - 1:
        trip = res[fi, r, c - 1 : c + 2]
        if np.all(trip > 0):
            d2 = math.log(trip[0]) - 2 * math.log(trip[1]) + math.log(trip[2])
            if d2 < 0:
                est.append(math.sqrt(-1.0 / d2))
    if 0 < r < h - 1:
        trip = res[fi, r - 1 : r + 2, c]
        if np.all(trip > 0):
            d2 = math.log(trip[0]) - 2 * math.log(trip[1]) + math.log(trip[2])
            if d2 < 0:
                est.append(math.sqrt(-1.0 / d2))
    if not est:
        return 1.0
    return float(np.clip(np.mean(est), 0.5, 4.0))


def _windowed_centroids(
    res: np.ndarray,
    frame_idx: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
    s: np.ndarray,
    n_iter: int = 30,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-windowed centroid iteration and aperture flux, vectorised over hotspots."""
    _, h, w = res.shape
    rad = int(min(12, math.ceil(4.0 * float(np.max(s)))))
    off = np.arange(-rad, rad + 1)
    x = x0.copy()
    y = y0.copy()
    cx = np.rint(x0).astype(int)
    cy = np.rint(y0).astype(int)
    cols = cx[:, None, None] + off[None, None, :]  # (K,1,P)
    rows = cy[:, None, None] + off[None, :, None]  # (K,P,1)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    cc = np.clip(cols, 0, w - 1)
    rr = np.clip(rows, 0, h - 1)
    fi = frame_idx[:, None, None]
    vals = np.where(inside, res[fi, rr, cc], 0.0)
    colsf = np.broadcast_to(cols, vals.shape).astype(np.float64)
    rowsf = np.broadcast_to(rows, vals.shape).astype(np.float64)
    s2 = (2.0 * s * s)[:, None, None]
    active = np.ones(x.shape, dtype=bool)
    for _ in range(n_iter):
        dx = colsf - x[:, None, None]
        dy = rowsf - y[:, None, None]
        wgt = np.exp(-(dx * dx + dy * dy) / s2) * vals
        tot = wgt.sum(axis=(1, 2))
        good = active & (tot > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sx = 2.0 * (wgt * dx).sum(axis=(1, 2)) / tot
            sy = 2.0 * (wgt * dy).sum(axis=(1, 2)) / tot
        nx = np.where(good, x + sx, x)
        ny = np.where(good, y + sy, y)
        # Never wander off the component: keep the moment centroid if it does.
        wander = (np.abs(nx - x0) > 2.0) | (np.abs(ny - y0) > 2.0)
        nx = np.where(wander, x0, nx)
        ny = np.where(wander, y0, ny)
        active &= ~wander
        step = np.maximum(np.abs(nx - x), np.abs(ny - y))
        x, y = nx, ny
        if np.all(step < 1e-6):
            break
    # Aperture flux: background-subtracted sum within 3 s of the centroid (98.9 % of a
    # Gaussian PSF), independent of where the threshold cut the component.
    dx = colsf - x[:, None, None]
    dy = rowsf - y[:, None, None]
    ap = (dx * dx + dy * dy) <= (3.0 * s[:, None, None]) ** 2
    flux = np.where(ap, vals, 0.0).sum(axis=(1, 2))
    return x, y, flux


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
        ``(H, W)`` or ``(B, H, W)`` pixels (validated by :func:`as_frames`).
    k_sigma : float
        Detection threshold in robust noise sigmas above the background.
    background_order : int
        Polynomial order of the background surface (0, 1, 2).
    min_pixels : int
        Smallest component kept.
    psf_sigma : float, optional
        PSF width in pixels for the centroid window; measured per hotspot when omitted.

    Returns
    -------
    (list[Hotspot], Background)
        Hotspots sorted by frame then decreasing peak.
    """
    from scipy import ndimage  # host edge: connected components

    if not (k_sigma > 0 and math.isfinite(k_sigma)):
        raise InvalidInput("k_sigma", "k_sigma must be a positive number")
    if psf_sigma is not None and not (0 < psf_sigma <= 20):
        raise InvalidInput("psf_sigma", "psf_sigma must be in (0, 20] pixels")
    frames = as_frames(frames)
    bg = (
        background
        if background is not None
        else estimate_background(frames, order=background_order)
    )
    res = to_numpy(frames - bg.model).astype(np.float64)
    sig = bg.sigma
    hot: list[Hotspot] = []
    valid = np.isfinite(sig)
    if not np.any(valid):
        return hot, bg
    thr = np.where(valid, k_sigma * np.where(np.isfinite(sig), sig, 0.0), np.inf)
    above = res > thr[:, None, None]
    above[~valid] = False
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connectivity inside a frame, never across frames
    labels, n = ndimage.label(above, structure=structure)
    if n == 0:
        return hot, bg
    ids = np.arange(1, n + 1)
    pos = np.clip(res, 0.0, None)
    integ = ndimage.sum_labels(res, labels, ids)
    counts = ndimage.sum_labels(np.ones_like(res), labels, ids).astype(int)
    peaks = ndimage.maximum(res, labels, ids)
    peak_pos = ndimage.maximum_position(res, labels, ids)
    com = ndimage.center_of_mass(pos, labels, ids)
    slices = ndimage.find_objects(labels)
    keep = counts >= max(int(min_pixels), 1)
    if not np.any(keep):
        return hot, bg
    fidx = np.array([p[0] for p in peak_pos], dtype=int)
    x0 = np.array([c[2] for c in com])
    y0 = np.array([c[1] for c in com])
    if psf_sigma is None:
        s = np.array([_log_curvature_sigma(res, p[0], p[1], p[2]) for p in peak_pos])
    else:
        s = np.full(n, float(psf_sigma))
    sel = np.nonzero(keep)[0]
    xs, ys, flux = _windowed_centroids(res, fidx[sel], x0[sel], y0[sel], s[sel])
    raw = to_numpy(frames)
    # Noise can split one faint PSF into several components whose windowed centroids then
    # converge to the same point: merge components of a frame whose centroids lie within
    # max(1, s) px of a brighter one (sizes and sums add up, the brighter one's peak wins).
    merged_into = np.full(sel.size, -1)
    order = sorted(range(sel.size), key=lambda j: (fidx[sel[j]], -peaks[sel[j]]))
    kept: list[int] = []
    for j in order:
        for q in kept:
            if fidx[sel[q]] == fidx[sel[j]] and math.hypot(xs[q] - xs[j], ys[q] - ys[j]) <= max(
                1.0, s[sel[q]]
            ):
                merged_into[j] = q
                break
        else:
            kept.append(j)
    extra_int = np.zeros(sel.size)
    extra_cnt = np.zeros(sel.size, dtype=int)
    for j in range(sel.size):
        q = merged_into[j]
        if q >= 0:
            extra_int[q] += integ[sel[j]]
            extra_cnt[q] += counts[sel[j]]
    for j in kept:
        i = sel[j]
        f, r, c = peak_pos[i]
        sg = float(sig[f])
        sl = slices[i]
        hot.append(
            Hotspot(
                frame_index=int(f),
                x=float(xs[j]),
                y=float(ys[j]),
                peak=float(peaks[i]),
                peak_value=float(raw[f, r, c]),
                integrated=float(integ[i] + extra_int[j]),
                n_pixels=int(counts[i] + extra_cnt[j]),
                snr=float(peaks[i] / sg),
                integrated_snr=float(
                    (integ[i] + extra_int[j]) / (sg * math.sqrt(counts[i] + extra_cnt[j]))
                ),
                flux=float(flux[j]),
                psf_sigma=float(s[i]),
                bbox=[int(sl[1].start), int(sl[2].start), int(sl[1].stop - 1), int(sl[2].stop - 1)],
            )
        )
    hot.sort(key=lambda hs: (hs.frame_index, -hs.peak))
    return hot, bg


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
    pixels) to estimate noise, in which case nothing is detected.
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
    frames = as_frames(pixels, width=width, height=height)
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
    metrics = None
    if compute_metrics:
        from prism_kernels.pwsa.infometrics import frame_info_metrics

        metrics = frame_info_metrics(frames, background=bg, hotspot=primary)
    feats: dict[str, float] = {}
    if primary is None:
        return DetectionResult(
            frame_shape=(h, w),
            n_frames=b,
            background_level=float(bg.level[-1]),
            noise_sigma=sig,
            threshold=k_sigma * sig if sig is not None else None,
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
        threshold=k_sigma * sig if sig is not None else None,
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
