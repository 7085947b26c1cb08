"""Seeded synthetic thermal scenes with known hotspots (for tests, notebooks, benchmarks).

A frame is ``background + hotspots + noise``:

* background: ``level`` plus a linear gradient across the frame plus smooth clutter
  (white noise low-passed by a Gaussian of ``clutter_scale`` pixels, scaled to
  ``clutter`` standard deviation);
* hotspots: Gaussian PSFs ``A exp(-r^2 / (2 psf_sigma^2))`` point-sampled at pixel centres,
  centred at sub-pixel positions, with peak amplitude ``A = snr * noise_sigma``
  (SNR is peak over noise standard deviation);
* noise: white Gaussian of ``noise_sigma``.

Coordinates: ``x`` is the column, ``y`` the row, pixel centres at integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from prism_kernels.errors import InvalidInput


@dataclass
class SceneTruth:
    """What was put into a scene. ``centroids`` is (n, 2) of (x, y) in pixels."""

    centroids: np.ndarray
    amplitudes: np.ndarray
    psf_sigma: float
    noise_sigma: float
    snr: np.ndarray
    background: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "centroids": self.centroids.tolist(),
            "amplitudes": self.amplitudes.tolist(),
            "psf_sigma": self.psf_sigma,
            "noise_sigma": self.noise_sigma,
            "snr": self.snr.tolist(),
        }


def thermal_scene(
    height: int = 480,
    width: int = 640,
    n_hotspots: int = 6,
    snr: float | tuple[float, float] = 20.0,
    *,
    noise_sigma: float = 10.0,
    psf_sigma: float = 1.5,
    level: float = 1000.0,
    gradient: float = 200.0,
    clutter: float = 50.0,
    clutter_scale: float = 30.0,
    min_separation: float | None = None,
    dtype: str = "float64",
    seed: int | None = 0,
) -> tuple[np.ndarray, SceneTruth]:
    """One seeded thermal frame and its truth.

    Parameters
    ----------
    height, width : int
        Frame size in pixels.
    n_hotspots : int
        Number of Gaussian hotspots (placed away from the border and from each other).
    snr : float or (low, high)
        Peak amplitude over ``noise_sigma``; a pair draws each hotspot's SNR uniformly.
    dtype : {"float64", "float32", "uint16"}
        ``uint16`` rounds and clips to ``[0, 65535]``.

    Returns
    -------
    frame : ndarray (height, width)
    truth : SceneTruth
    """
    if height < 1 or width < 1:
        raise InvalidInput("shape", f"height and width must be positive, got {height}x{width}")
    if n_hotspots < 0:
        raise InvalidInput("n_hotspots", f"must be >= 0, got {n_hotspots}")
    if noise_sigma < 0 or psf_sigma <= 0:
        raise InvalidInput("noise_sigma", "noise_sigma must be >= 0 and psf_sigma > 0")
    if dtype not in ("float64", "float32", "uint16"):
        raise InvalidInput("dtype", f"unknown dtype {dtype!r}; choose float64, float32 or uint16")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / max(width - 1, 1) + np.sin(angle) * yy / max(height - 1, 1)
    bg = level + gradient * ramp
    if clutter > 0:
        c = ndimage.gaussian_filter(
            rng.standard_normal((height, width)), clutter_scale, mode="reflect"
        )
        c = c / (c.std() or 1.0)
        bg = bg + clutter * c

    margin = 4.0 * psf_sigma + 2.0
    sep = min_separation if min_separation is not None else 8.0 * psf_sigma + 4.0
    cents: list[tuple[float, float]] = []
    tries = 0
    while len(cents) < n_hotspots and tries < 10000:
        tries += 1
        x = rng.uniform(margin, width - 1 - margin) if width - 1 > 2 * margin else (width - 1) / 2
        y = (
            rng.uniform(margin, height - 1 - margin)
            if height - 1 > 2 * margin
            else (height - 1) / 2
        )
        if all((x - a) ** 2 + (y - b) ** 2 >= sep * sep for a, b in cents):
            cents.append((x, y))
    if len(cents) < n_hotspots:
        raise InvalidInput(
            "n_hotspots", f"cannot place {n_hotspots} separated hotspots in {height}x{width}"
        )
    cen = np.array(cents, dtype=np.float64).reshape(-1, 2)
    if np.ndim(snr) == 0:
        snrs = np.full(len(cen), float(snr))
    else:
        lo, hi = snr  # type: ignore[misc]
        snrs = rng.uniform(float(lo), float(hi), len(cen))
    amps = snrs * noise_sigma
    sig = np.zeros((height, width))
    half = int(np.ceil(5 * psf_sigma))
    for (x, y), a in zip(cen, amps, strict=True):
        x0, x1 = max(0, int(x) - half), min(width, int(x) + half + 2)
        y0, y1 = max(0, int(y) - half), min(height, int(y) + half + 2)
        sub_y, sub_x = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
        sig[y0:y1, x0:x1] += a * np.exp(-((sub_x - x) ** 2 + (sub_y - y) ** 2) / (2 * psf_sigma**2))
    frame = bg + sig + noise_sigma * rng.standard_normal((height, width))
    if dtype == "uint16":
        frame = np.clip(np.rint(frame), 0, 65535).astype(np.uint16)
    else:
        frame = frame.astype(dtype)
    truth = SceneTruth(cen, amps, float(psf_sigma), float(noise_sigma), snrs, bg)
    return frame, truth


def thermal_batch(
    batch: int, height: int = 480, width: int = 640, *, seed: int | None = 0, **kwargs
) -> tuple[np.ndarray, list[SceneTruth]]:
    """``batch`` independent scenes (seeds ``seed, seed+1, ...``) as a (B, H, W) stack."""
    if batch < 1:
        raise InvalidInput("batch", f"must be >= 1, got {batch}")
    base = 0 if seed is None else int(seed)
    frames, truths = [], []
    for b in range(batch):
        f, t = thermal_scene(height, width, seed=None if seed is None else base + b, **kwargs)
        frames.append(f)
        truths.append(t)
    return np.stack(frames), truths
