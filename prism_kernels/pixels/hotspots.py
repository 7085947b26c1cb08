"""Hotspots of IR scenes: the imaging core's detector with the pixels defaults and output.

:func:`detect_hotspots` runs :func:`prism_kernels.imaging.hotspots.detect` (one call for a
whole (B, H, W) stack: background, robust noise, threshold, labelling, measures, windowed
centroids) with the defaults that suit large scenes: a local-mean background of
``background_size`` pixels (``sigma_clip`` is more robust beside large bright objects at about
twice the cost, ``median`` slower still; ``tophat_size`` uses a white top-hat instead), a
threshold of 6 robust sigmas (about 1e-9 false pixels per pixel for Gaussian noise) and a
Gaussian PSF of 1.5 pixels for the centroid window. Each hotspot comes back as a dict (the
``/pixels/process`` form, see :func:`hotspot_dicts`) with a detection ``confidence``.

Coordinates: ``x`` is the column, ``y`` the row, pixel centres at integers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtr

from prism_kernels.backend import to_numpy
from prism_kernels.imaging.hotspots import Detection, detect, label_stack

__all__ = ["HotspotDetection", "detect_hotspots", "hotspot_dicts", "label_stack"]


class HotspotDetection:
    """Result of :func:`detect_hotspots` for a stack.

    ``hotspots[b]`` lists frame ``b``'s hotspots as dicts (see :func:`hotspot_dicts`).
    ``noise_sigma`` and ``threshold`` are (B,) arrays (counts; ``nan`` where a frame is too
    small to estimate its noise). ``detection`` is the imaging core's full result. The
    per-pixel maps, (B, H, W) NumPy arrays, come from it and are computed on first access:
    ``mask`` (bool), ``labels`` (int32), ``background`` and ``residual`` (float64, counts).
    """

    def __init__(self, hotspots: list[list[dict[str, Any]]], detection: Detection) -> None:
        self.hotspots = hotspots
        self.detection = detection
        self.noise_sigma = detection.background.sigma
        self.threshold = detection.threshold

    @property
    def counts(self) -> list[int]:
        return [len(h) for h in self.hotspots]

    @property
    def mask(self) -> np.ndarray:
        return self.detection.mask

    @property
    def labels(self) -> np.ndarray:
        return self.detection.labels

    @property
    def residual(self) -> np.ndarray:
        return self.detection.residual

    @property
    def background(self) -> np.ndarray:
        return np.asarray(to_numpy(self.detection.background.model), dtype=np.float64)

    def __repr__(self) -> str:
        return f"HotspotDetection(counts={self.counts}, noise_sigma={self.noise_sigma!r})"


def hotspot_dicts(det: Detection) -> list[list[dict[str, Any]]]:
    """The hotspots of each frame as dicts, in label order.

    Each dict holds ``id`` (1-based within its frame), ``frame``, ``x, y`` and ``centroid``
    [x, y] (pixels; refined), ``centroid_weighted`` [x, y], ``area`` (pixels), ``peak``
    (largest residual, counts), ``intensity`` (frame value at the peak, counts),
    ``integrated`` (residual summed over the component, counts), ``bbox`` and
    ``bounding_box`` [x, y, width, height] (pixels), ``snr`` (peak / noise sigma),
    ``radius`` (``sqrt(area / pi)``, pixels) and ``confidence``: 1 minus the chance that pure
    Gaussian noise gives such a peak somewhere in the frame, ``max(0, 1 - H W Q(snr))``.
    """
    h = det.hotspots
    _, rows, cols = det.shape
    conf = np.clip(1.0 - rows * cols * ndtr(-np.minimum(h.snr, 1e6)), 0.0, 1.0)
    out: list[list[dict[str, Any]]] = []
    for idx in det.per_frame():
        frame = []
        for i in idx:
            r0, c0, r1, c1 = (int(v) for v in h.bbox[i])
            bbox = [c0, r0, c1 - c0, r1 - r0]
            x, y = float(h.x[i]), float(h.y[i])
            frame.append(
                {
                    "id": len(frame) + 1,
                    "frame": int(h.frame[i]),
                    "x": x,
                    "y": y,
                    "centroid": [x, y],
                    "centroid_weighted": [float(h.x_weighted[i]), float(h.y_weighted[i])],
                    "area": int(h.area[i]),
                    "peak": float(h.peak[i]),
                    "intensity": float(h.value[i]),
                    "integrated": float(h.integrated[i]),
                    "bbox": bbox,
                    "bounding_box": list(bbox),
                    "snr": float(h.snr[i]),
                    "radius": float(np.sqrt(h.area[i] / np.pi)),
                    "confidence": float(conf[i]),
                }
            )
        out.append(frame)
    return out


def detect_hotspots(
    frames: Any,
    k_sigma: float = 6.0,
    *,
    background: str = "mean",
    background_size: int = 31,
    tophat_size: int | None = None,
    min_area: int = 1,
    connectivity: int = 8,
    split_peaks: bool = False,
    min_distance: int = 3,
    psf_sigma: float | None = 1.5,
    workers: int | None = None,
) -> HotspotDetection:
    """Detect hotspots in one frame (H, W) or a stack (B, H, W).

    Parameters
    ----------
    k_sigma : float
        Threshold in robust noise sigmas above the residual's median.
    background, background_size
        Background estimator and window side in pixels (see
        :func:`~prism_kernels.imaging.background.estimate_background`); ignored with
        ``tophat_size``.
    tophat_size : int, optional
        Use a white top-hat of this square size (the ``"opening"`` background) instead.
    min_area : int
        Drop components smaller than this (pixels).
    split_peaks : bool
        Split components with several local maxima (at least ``min_distance`` apart) by a
        watershed on the residual.
    psf_sigma : float or None
        Gaussian window (pixels) of the centroid refinement; None keeps the
        intensity-weighted centroid.
    workers : int, optional
        Threads of the fused detector (default: the CPUs this process may use, for large
        stacks; see :func:`prism_kernels.imaging.hotspots.detect`).

    Returns
    -------
    HotspotDetection
        For a single frame the arrays still carry a leading batch axis of 1.
    """
    det = detect(
        frames,
        k_sigma,
        background="opening" if tophat_size else background,
        size=int(tophat_size) if tophat_size else background_size,
        min_area=min_area,
        connectivity=connectivity,
        split_peaks=split_peaks,
        min_distance=min_distance,
        psf_sigma=psf_sigma,
        refine=psf_sigma is not None,
        workers=workers,
    )
    return HotspotDetection(hotspot_dicts(det), det)
