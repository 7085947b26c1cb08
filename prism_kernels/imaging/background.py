"""Background of IR frames: the smooth level a hotspot stands on.

One entry point, :func:`estimate_background`, with the estimators both domains use:

``"mean"``
    Local mean over a ``size`` x ``size`` window (one filter pass over the whole stack).
``"median"``
    Local median over the window (robust beside bright objects, slower).
``"opening"``
    Grey opening with a ``size`` square: removes bright objects narrower than ``size``
    (frame minus this is the white top-hat).
``"sigma_clip"``
    Local mean repeated ``iterations`` times (default 1), each time ignoring pixels more than
    ``clip_sigma`` robust sigmas above the current background.
``"polynomial"``
    A global surface ``sum c_ij u^i v^j`` (``i + j <= order``; ``u, v`` the column and row
    scaled to [-1, 1]; order 0, 1 (a plane: a sensor gradient) or 2) fitted by least squares,
    then refitted ``iterations`` times (default 3) on the pixels within ``clip_sigma`` robust
    sigmas, so hotspots do not pull it. Suits small frames with a smooth background; batched
    over frames on the input's array library (``linalg.solve``). The order drops where fewer
    than three pixels per coefficient would remain.

The window methods run on the host (reflect borders, frames never mix) and copy the result
back to the input's library: the means by the compiled box filter
(:mod:`~prism_kernels.imaging.boxfilter`, equal bit for bit to ``scipy.ndimage.uniform_filter``),
the median and the opening by ``scipy.ndimage``.

:func:`fit_background` adds what a detector needs besides the surface: the residual's centre,
its robust noise sigma and the background level per frame
(:func:`~prism_kernels.imaging.noise.frame_noise`). :func:`stack_background` is
:func:`estimate_background` for a stack that was already validated (the detector's path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from prism_kernels.backend import asarray, backend_name, get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.imaging.boxfilter import box_mean
from prism_kernels.imaging.frames import as_frames
from prism_kernels.imaging.noise import frame_noise, robust_sigma

#: The estimators of :func:`estimate_background`.
METHODS = ("mean", "median", "opening", "sigma_clip", "polynomial")

_DEFAULT_ITERATIONS = {"sigma_clip": 1, "polynomial": 3}
_N_COEF = {0: 1, 1: 3, 2: 6}


class Background:
    """Background model of a stack and the noise of what is left.

    Attributes
    ----------
    model : array, (B, H, W)
        The background (counts, float64) on the frames' array library (for a background the
        fused detector estimated, computed on first access and kept).
    sigma : ndarray, (B,)
        Robust noise sigma of ``frames - model`` (counts); ``nan`` for frames under
        :data:`~prism_kernels.imaging.noise.MIN_NOISE_PIXELS` pixels.
    level : ndarray, (B,)
        Median of the model (counts).
    center : ndarray, (B,)
        Median of ``frames - model`` (counts): a detection threshold is taken above it.
    """

    def __init__(
        self, model: Any, sigma: np.ndarray, level: np.ndarray, center: np.ndarray
    ) -> None:
        self._model = model
        self._make: Callable[[], Any] | None = None
        self.sigma = sigma
        self.level = level
        self.center = center

    @classmethod
    def lazy(
        cls, make: Callable[[], Any], sigma: np.ndarray, level: np.ndarray, center: np.ndarray
    ) -> Background:
        """A background whose ``model`` is ``make()``, called on first access."""
        bg = cls(None, sigma, level, center)
        bg._make = make
        return bg

    @property
    def model(self) -> Any:
        if self._model is None and self._make is not None:
            self._model = self._make()
            self._make = None
        return self._model

    @model.setter
    def model(self, value: Any) -> None:
        self._model, self._make = value, None

    def __repr__(self) -> str:
        return f"Background(sigma={self.sigma!r}, level={self.level!r}, center={self.center!r})"

    @classmethod
    def of(cls, frames: Any, model: Any) -> tuple[Background, Any]:
        """The background ``model`` of validated float64 ``frames`` (B, H, W) with the noise of
        what is left, and that residual ``frames - model`` (on the frames' library)."""
        residual = frames - model
        center, sigma, level = frame_noise(residual, model)
        return cls(model, sigma, level, center), residual


def check_method(
    method: str,
    size: int,
    order: int = 1,
    clip_sigma: float = 3.0,
    iterations: int | None = None,
) -> str:
    """The estimator's name in lower case, or :class:`InvalidInput` naming the bad option
    (``method``, ``size``, ``order``, ``clip_sigma``, ``iterations``)."""
    m = str(method).lower()
    if m not in METHODS:
        raise InvalidInput(
            "method", f"unknown background method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise InvalidInput("size", f"must be an integer >= 1, got {size!r}")
    if order not in _N_COEF:
        raise InvalidInput("order", f"polynomial order must be 0, 1 or 2, got {order!r}")
    if not clip_sigma > 0:
        raise InvalidInput("clip_sigma", f"must be > 0, got {clip_sigma!r}")
    if iterations is not None and (int(iterations) != iterations or iterations < 0):
        raise InvalidInput("iterations", f"must be an integer >= 0, got {iterations!r}")
    return m


def _window(a: np.ndarray, method: str, size: int, clip_sigma: float, iterations: int) -> Any:
    """Window estimators on a host (B, H, W) float64 stack."""
    win = (1, size, size)
    if method == "median":
        return ndimage.median_filter(a, size=win, mode="reflect")
    if method == "opening":
        return ndimage.grey_opening(a, size=win, mode="reflect")
    out = box_mean(a, size)
    if method == "mean":
        return out
    for _ in range(max(1, iterations)):
        _, sig, _ = frame_noise(a - out, out)
        keep = (a - out <= clip_sigma * sig[:, None, None]).astype(np.float64)
        num = box_mean(a * keep, size)
        den = box_mean(keep, size)
        out = np.where(den > 1e-12, num / np.maximum(den, 1e-12), out)
    return out


def _polynomial(x: Any, order: int, clip_sigma: float, iterations: int) -> Any:
    """Clipped least-squares surface of a (B, H, W) float64 stack, on its library."""
    xp = get_namespace(x)
    b, h, w = x.shape
    p = h * w
    while order > 0 and p < 3 * _N_COEF[order]:  # at least 3 pixels per coefficient
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
    eye = xp.eye(m, dtype=xp.float64)
    mask = xp.ones((b, p), dtype=xp.float64)
    model = None
    for k in range(iterations + 1):
        aw = a[None, :, :] * mask[:, :, None]  # (B, P, m)
        at = xp.permute_dims(aw, (0, 2, 1))
        lhs = xp.matmul(at, a[None, :, :]) + 1e-9 * p * eye
        coef = xp.linalg.solve(lhs, xp.matmul(at, y[:, :, None]))
        model = xp.matmul(a[None, :, :], coef)[:, :, 0]
        if k == iterations:
            break
        r = y - model
        sig, med = robust_sigma(r, return_median=True)
        dev = xp.abs(r - med[:, None])
        mask = xp.astype(dev <= clip_sigma * xp.maximum(sig, 1e-12)[:, None], xp.float64)
        # A frame whose clip leaves too few pixels keeps every pixel.
        few = xp.sum(mask, axis=-1) < 3 * m
        mask = xp.where(few[:, None], xp.ones_like(mask), mask)
    return xp.reshape(model, (b, h, w))


def stack_background(
    x: Any,
    method: str = "mean",
    size: int = 31,
    *,
    order: int = 1,
    clip_sigma: float = 3.0,
    iterations: int | None = None,
) -> Any:
    """Background of a stack already validated by :func:`~prism_kernels.imaging.frames.as_frames`.

    Parameters
    ----------
    x : array, float64, (B, H, W)
        Counts, any array library (not checked again).
    method : {"mean", "median", "opening", "sigma_clip", "polynomial"}
        See the module docstring.
    size : int
        Window side in pixels for the window methods; make it several hotspot diameters.
    order : int
        Polynomial order (0, 1 or 2) of ``"polynomial"``.
    clip_sigma : float
        Clipping level of ``"sigma_clip"`` and ``"polynomial"``, in robust sigmas.
    iterations : int, optional
        Clipping passes (default 1 for ``"sigma_clip"``, 3 for ``"polynomial"``).

    Returns
    -------
    array, float64, (B, H, W)
        On the input's library.
    """
    m = check_method(method, size, order, clip_sigma, iterations)
    it = _DEFAULT_ITERATIONS.get(m, 0) if iterations is None else int(iterations)
    if m == "polynomial":
        return _polynomial(x, order, clip_sigma, it)
    out = _window(to_numpy(x), m, int(size), clip_sigma, it)
    name = backend_name(x)
    return out if name == "numpy" else asarray(out, backend=name)


def estimate_background(
    frames: Any, method: str = "mean", size: int = 31, *, field: str = "frame", **options: Any
) -> Any:
    """Smooth background of each frame (see the module docstring for the methods).

    Parameters
    ----------
    frames : array, (H, W) or (B, H, W)
        Counts, any array library (validated by :func:`~prism_kernels.imaging.frames.as_frames`).
    method, size, **options
        As :func:`stack_background` (``order``, ``clip_sigma``, ``iterations``).
    field : str
        The name a refusal of the frames carries.

    Returns
    -------
    array
        float64, the shape of ``frames``, on the input's library.
    """
    model = stack_background(as_frames(frames, field), method, size, **options)
    return model if getattr(frames, "ndim", np.ndim(frames)) == 3 else model[0]


def fit_background(
    frames: Any, method: str = "mean", size: int = 31, *, field: str = "frame", **options: Any
) -> Background:
    """:func:`estimate_background` of a stack with the noise of its residual.

    Parameters are those of :func:`estimate_background`.

    Returns
    -------
    Background
        ``model`` (B, H, W) on the input's library; ``sigma``, ``center`` and ``level`` from
        :func:`~prism_kernels.imaging.noise.frame_noise` of ``frames - model``.
    """
    x = as_frames(frames, field)
    return Background.of(x, stack_background(x, method, size, **options))[0]
