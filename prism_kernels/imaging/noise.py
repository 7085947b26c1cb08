"""Robust noise: the one median-absolute-deviation (MAD) estimate of a noise sigma.

For Gaussian noise of standard deviation ``s``, ``median(|x - median(x)|) = s / 1.4826...``,
so :data:`MAD_FACTOR` times the MAD estimates ``s`` while ignoring up to half the samples
being outliers (hotspots, stars, dead pixels). Everything here is built on
:func:`robust_sigma`:

* :func:`robust_sigma`: the estimate along the last axis, any array library;
* :func:`frame_noise`: per frame of a residual stack (frame minus background): the median
  (the residual's centre) and the noise sigma, with the rules a detector needs (subsampling of
  large frames, a fallback when over half the residuals are equal, a floor, ``nan`` when the
  frame is too small to say);
* :func:`difference_sigma`: white-noise sigma from the differences of neighbouring pixels,
  insensitive to any smooth background.

Medians are exact selections (:func:`~prism_kernels.imaging.order.median`), never full sorts,
on every array library.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prism_kernels.backend import backend_name, get_namespace, to_numpy
from prism_kernels.imaging.order import median, median_and_mad

#: ``1 / Phi^-1(3/4)``: sigma = MAD_FACTOR * MAD for Gaussian noise.
MAD_FACTOR = 1.482602218505602

#: Fewer pixels than this give no noise estimate (``nan``): a sigma from a handful of samples
#: would make any threshold meaningless.
MIN_NOISE_PIXELS = 9

#: Frames are subsampled (every second row and column) for :func:`frame_noise` only when the
#: quarter left still holds this many pixels: the relative standard error of the estimate is
#: about ``1.17 / sqrt(n)``, 1.2 % here, 0.4 % for a 640 x 480 frame.
SUBSAMPLE_MIN = 10_000

#: The background level is the median of the model over a regular grid of about this many
#: pixels (every pixel of a smaller frame).
LEVEL_SAMPLES = 10_000

#: A sigma is never below this fraction of the background level (and never below this many
#: counts for a level under 1), so a noiseless frame does not "detect" rounding errors.
RELATIVE_FLOOR = 1e-6


def robust_sigma(x: Any, *, return_median: bool = False) -> Any:
    """``MAD_FACTOR * median(|x - median(x)|)`` along the last axis.

    Parameters
    ----------
    x : array, (..., N), N >= 1
        Samples (any unit; sigma comes in the same unit).
    return_median : bool
        Also return ``median(x)``.

    Returns
    -------
    sigma : array, (...)
        0 when more than half the samples are equal.
    median : array, (...)
        Only with ``return_median``.
    """
    xp = get_namespace(x)
    if backend_name(x) == "numpy" and x.dtype == np.float64 and x.shape[-1] > 0:
        med, mad = median_and_mad(x)  # one compiled pass per row where numba is there
        sig = MAD_FACTOR * mad
    else:
        med = median(x)
        sig = MAD_FACTOR * median(xp.abs(x - med[..., None]))
    return (sig, med) if return_median else sig


def _subsample(r: Any) -> Any:
    """Every second row and column of a (B, H, W) stack when enough pixels remain."""
    _, h, w = r.shape
    if h > 1 and w > 1 and ((h + 1) // 2) * ((w + 1) // 2) >= SUBSAMPLE_MIN:
        return r[:, ::2, ::2]
    return r


def frame_noise(residual: Any, model: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, noise sigma and background level of each frame of a residual stack.

    Parameters
    ----------
    residual : array, (B, H, W) or (H, W)
        Frame minus background (counts), any array library.
    model : array, same shape, optional
        The background that was subtracted; its median gives the level used for the floor.

    Returns
    -------
    center : ndarray, (B,)
        Median of the residual (the threshold is taken above it).
    sigma : ndarray, (B,)
        :func:`robust_sigma` of the residual, over every second row and column when a quarter
        of the frame still holds :data:`SUBSAMPLE_MIN` pixels. Where it is 0 (over half the
        residuals equal: a quantised or noiseless frame) the residual's standard deviation
        is used instead; the result is at least ``RELATIVE_FLOOR * max(|level|, 1)``.
        ``nan`` for frames of fewer than :data:`MIN_NOISE_PIXELS` pixels.
    level : ndarray, (B,)
        Median of ``model`` (over a grid of about :data:`LEVEL_SAMPLES` pixels when the frame
        is larger; 0 without a model).

    All three are host float64 arrays.
    """
    xp = get_namespace(residual)
    r = residual[None, ...] if residual.ndim == 2 else residual
    b, h, w = r.shape
    sub = _subsample(r)
    flat = xp.reshape(sub, (b, -1))
    sig, med = robust_sigma(flat, return_median=True)
    sigma = np.array(to_numpy(sig), dtype=np.float64).reshape(b)
    center = np.array(to_numpy(med), dtype=np.float64).reshape(b)
    if model is not None:
        m = model[None, ...] if model.ndim == 2 else model
        step = max(1, math.ceil(math.sqrt(h * w / LEVEL_SAMPLES)))  # a smooth model: a grid will do
        grid = xp.reshape(m[:, ::step, ::step], (b, -1))
        level = np.array(to_numpy(median(grid)), dtype=np.float64).reshape(b)
    else:
        level = np.zeros(b)
    zero = ~(sigma > 0)
    if np.any(zero):
        std = np.array(to_numpy(xp.std(xp.reshape(r, (b, -1)), axis=-1)), dtype=np.float64)
        sigma = np.where(zero, std, sigma)
    sigma = np.maximum(sigma, RELATIVE_FLOOR * np.maximum(np.abs(level), 1.0))
    if h * w < MIN_NOISE_PIXELS:
        sigma[:] = math.nan
    return center, sigma, level


def difference_sigma(frames: Any) -> Any:
    """White-noise sigma of each frame from horizontal pixel differences.

    ``robust_sigma(x[:, 1:] - x[:, :-1]) / sqrt(2)`` (vertical differences for a frame one
    pixel wide; 0 for a single pixel): a smooth background cancels in the differences and a
    few bright hotspots are outliers.

    Parameters
    ----------
    frames : array, (H, W) or (B, H, W), already validated
        Counts, any array library.

    Returns
    -------
    array
        A 0-d array for one frame, (B,) for a stack, float64, on the input's library.
    """
    xp = get_namespace(frames)
    f = frames if frames.dtype == xp.float64 else xp.astype(frames, xp.float64)
    stack = f[None, ...] if f.ndim == 2 else f
    b = stack.shape[0]
    if stack.shape[-1] > 1:
        d = stack[:, :, 1:] - stack[:, :, :-1]
    else:
        d = stack[:, 1:, :] - stack[:, :-1, :]
    if d.shape[-1] * d.shape[-2] == 0:
        out = xp.zeros((b,), dtype=xp.float64)
    else:
        out = robust_sigma(xp.reshape(d, (b, -1))) / math.sqrt(2.0)
    return out[0] if frames.ndim == 2 else out
