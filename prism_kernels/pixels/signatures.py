"""Seeded hotspot signatures: short time series of an IR hotspot for four classes.

Each signature is what a hotspot tracker sees frame by frame: peak intensity (counts above
background), size (pixels above threshold), a two-band spectral ratio (mid-wave over
long-wave IR radiance, MWIR/LWIR) and the centroid position, from which speed and
acceleration follow. The distributions are physically motivated and deliberately overlap,
so no classifier gets every case right:

``missile_plume``
    Boost-phase rocket exhaust: bright, growing as the motor climbs and the plume expands
    (exponential intensity growth), very hot gas with strong CO2/H2O emission in the
    mid-wave band (high MWIR/LWIR ratio), accelerating along its track; it persists.
``aircraft``
    Engine exhaust and airframe: moderate, steady intensity, cooler (ratio near 1), a steady
    cruise speed with little acceleration.
``flare_decoy``
    Pyrotechnic flare: ignites within a frame or two, burns very hot (highest ratio, a
    grey body at ~2000 K) for a few seconds, then fades; ejected fast and slowed by drag
    (negative along-track acceleration).
``clutter``
    Sun glint, cloud edges, hot ground: dim to moderate, flickering, ratio from cool to
    glint-hot, nearly stationary in the image apart from jitter.

All randomness comes from a ``numpy.random.Generator`` seeded by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput

CLASSES: tuple[str, ...] = ("missile_plume", "aircraft", "flare_decoy", "clutter")

#: Detection threshold on peak intensity (counts above background) used for ``duration``.
DETECTION_THRESHOLD = 60.0


@dataclass(frozen=True)
class Signature:
    """One hotspot's time series (``n`` frames, ``dt`` seconds apart).

    ``intensity`` is peak counts above background (0 when nothing is seen), ``size`` is the
    number of pixels above threshold, ``band_ratio`` MWIR/LWIR (NaN where not seen),
    ``x``/``y`` the centroid in pixels.
    """

    label: str
    dt: float
    intensity: np.ndarray
    size: np.ndarray
    band_ratio: np.ndarray
    x: np.ndarray
    y: np.ndarray

    def frames(self) -> list[dict[str, float]]:
        """Per-frame hotspot statistics, the form :func:`~prism_kernels.pixels.classify.track_features` reads."""
        out = []
        for i in range(self.intensity.size):
            out.append(
                {
                    "t": i * self.dt,
                    "peak": float(self.intensity[i]),
                    "area": float(self.size[i]),
                    "band_ratio": float(self.band_ratio[i]),
                    "x": float(self.x[i]),
                    "y": float(self.y[i]),
                }
            )
        return out


def _track(
    rng: np.random.Generator, n: int, dt: float, speed: float, accel: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centroid path with a random heading, along-track ``accel`` and pixel jitter."""
    t = np.arange(n) * dt
    heading = rng.uniform(0, 2 * np.pi)
    turn = rng.normal(0.0, 0.05)  # rad/s
    along = (
        np.maximum(speed * t + 0.5 * accel * t * t, 0.0)
        if accel < 0
        else speed * t + 0.5 * accel * t * t
    )
    ang = heading + turn * t
    jitter = 0.3
    x = 320 + along * np.cos(ang) + rng.normal(0, jitter, n)
    y = 240 + along * np.sin(ang) + rng.normal(0, jitter, n)
    return x, y


def generate_signature(
    label: str, rng: np.random.Generator, n: int = 40, dt: float = 0.1
) -> Signature:
    """One signature of class ``label`` (``n`` frames, ``dt`` s apart)."""
    if label not in CLASSES:
        raise InvalidInput("label", f"unknown class {label!r}; choose one of {', '.join(CLASSES)}")
    if n < 3:
        raise InvalidInput("n", "a signature needs at least 3 frames")
    t = np.arange(n) * dt
    noise = rng.normal(0.0, 1.0, n)
    if label == "missile_plume":
        i0 = rng.lognormal(np.log(250), 0.6)
        growth = rng.normal(0.55, 0.3)  # 1/s
        intensity = i0 * np.exp(growth * t) * (1 + 0.08 * noise)
        size = rng.lognormal(np.log(14), 0.4) * np.exp(0.5 * growth * t)
        ratio = rng.normal(1.9, 0.35) + 0.08 * rng.normal(size=n)
        speed, accel = rng.lognormal(np.log(12), 0.6), rng.normal(18, 10)
        on, off = 0, n
    elif label == "aircraft":
        i0 = rng.lognormal(np.log(200), 0.6)
        growth = rng.normal(0.0, 0.12)
        intensity = i0 * np.exp(growth * t) * (1 + 0.06 * noise)
        size = rng.lognormal(np.log(12), 0.45) * np.ones(n)
        ratio = rng.normal(1.05, 0.3) + 0.06 * rng.normal(size=n)
        speed, accel = rng.lognormal(np.log(15), 0.6), rng.normal(0, 3)
        on, off = 0, n
    elif label == "flare_decoy":
        i0 = rng.lognormal(np.log(700), 0.6)
        burn = rng.uniform(1.2, 5.0)  # s
        on = int(rng.integers(0, max(1, n // 3)))
        off = min(n, on + int(round(burn / dt)))
        tau = t - on * dt
        rise = 1 - np.exp(-np.maximum(tau, 0) / 0.15)
        fade = np.exp(-np.maximum(tau, 0) / max(0.5 * burn, 0.3))
        intensity = i0 * rise * fade * (1 + 0.12 * noise)
        size = rng.lognormal(np.log(8), 0.5) * (0.5 + rise * fade)
        ratio = rng.normal(2.3, 0.4) + 0.12 * rng.normal(size=n)
        speed, accel = rng.lognormal(np.log(30), 0.5), -rng.lognormal(np.log(20), 0.5)
    else:  # clutter
        i0 = rng.lognormal(np.log(110), 0.7)
        flicker = 1 + rng.uniform(0.1, 0.5) * np.sin(
            2 * np.pi * rng.uniform(0.2, 2.0) * t + rng.uniform(0, 6.3)
        )
        intensity = i0 * flicker * (1 + 0.2 * noise)
        size = rng.lognormal(np.log(20), 0.7) * (1 + 0.15 * rng.normal(size=n))
        ratio = rng.normal(1.1, 0.5) + 0.15 * rng.normal(size=n)
        speed, accel = rng.lognormal(np.log(1.5), 0.8), rng.normal(0, 2)
        on = int(rng.integers(0, n // 2)) if rng.random() < 0.4 else 0
        off = n if on == 0 else int(rng.integers(on + 3, n + 1))
    x, y = _track(rng, n, dt, speed, accel)
    mask = np.zeros(n, dtype=bool)
    mask[on:off] = True
    intensity = np.where(mask, np.maximum(intensity, 0.0), 0.0)
    size = np.where(mask, np.maximum(size, 1.0), 0.0)
    ratio = np.where(mask, np.maximum(ratio, 0.05), np.nan)
    return Signature(label, dt, intensity, size, ratio, x, y)


def generate_dataset(
    n_per_class: int, seed: int = 0, n: int = 40, dt: float = 0.1
) -> tuple[list[Signature], np.ndarray]:
    """``n_per_class`` signatures of each class, interleaved, and their integer labels."""
    if n_per_class < 1:
        raise InvalidInput("n_per_class", "must be at least 1")
    rng = np.random.default_rng(seed)
    sigs: list[Signature] = []
    labels = []
    for _ in range(n_per_class):
        for c, name in enumerate(CLASSES):
            sigs.append(generate_signature(name, rng, n=n, dt=dt))
            labels.append(c)
    return sigs, np.asarray(labels, dtype=np.int64)


def signature_summary(sig: Signature) -> dict[str, Any]:
    """A JSON-able view of a signature (for notebooks and the API)."""
    return {
        "label": sig.label,
        "dt": sig.dt,
        "intensity": sig.intensity.tolist(),
        "size": sig.size.tolist(),
        "band_ratio": [None if not np.isfinite(v) else float(v) for v in sig.band_ratio],
        "x": sig.x.tolist(),
        "y": sig.y.tolist(),
    }
