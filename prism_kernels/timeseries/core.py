"""What every forecaster shares: the :class:`Forecast` it returns and the input checks.

Series come as a batch ``y`` of shape ``(B, n)`` (``B`` series of equal length ``n``, the
series as the batch axis) on any array backend; a 1-D ``(n,)`` series is a batch of one.
Series of different lengths are grouped by length by the caller (the service).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtri

from prism_kernels.arrays import as_float, check_finite
from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput

MAX_HORIZON = 10_000


@dataclass
class Forecast:
    """Point forecasts and prediction intervals for a batch of series.

    Attributes
    ----------
    mean : array, shape (B, h)
        Point forecasts for steps 1..h after the last observation.
    lower, upper : array, shape (B, h), or None
        Bounds of the central prediction interval at ``level`` (None only for a method
        that was asked for no intervals).
    level : float
        Nominal coverage of ``[lower, upper]`` in (0, 1), e.g. 0.95.
    method : str
        The forecaster's name (``"arima"``, ``"ets"``...).
    models : list of dict
        Per series: what was fitted, e.g. ``{"name": "ARIMA(1,1,1)(0,1,1)[12]", "order":
        [1, 1, 1], "seasonal_order": [0, 1, 1, 12], "params": {...}, "sigma2": ..., "aicc":
        ...}``; JSON-able plain Python values.
    fitted : array, shape (B, n), or None
        One-step-ahead in-sample predictions (NaN where the model has none).
    residuals : array, shape (B, n), or None
        ``y - fitted``.
    """

    mean: Any
    lower: Any
    upper: Any
    level: float
    method: str
    models: list[dict[str, Any]] = field(default_factory=list)
    fitted: Any = None
    residuals: Any = None


def as_batch(y: Any, field: str = "values", min_length: int = 1) -> Any:
    """``y`` as a float64 ``(B, n)`` batch on its own backend, checked.

    Raises :class:`InvalidInput` naming ``field`` for: not 1-D or 2-D, empty, fewer than
    ``min_length`` points, NaN or inf.
    """
    xp = get_namespace(y) if hasattr(y, "shape") else get_namespace()
    y = as_float(y, xp)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise InvalidInput(
            field, f"expected a series (n,) or a batch (B, n), got shape {tuple(y.shape)}"
        )
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise InvalidInput(field, "is empty")
    if y.shape[1] < min_length:
        raise InvalidInput(field, f"needs at least {min_length} points, got {y.shape[1]}")
    check_finite(y, field)
    return y


def check_horizon(horizon: int, field: str = "horizon") -> int:
    """``horizon`` as a positive int no larger than :data:`MAX_HORIZON`."""
    if isinstance(horizon, bool) or int(horizon) != horizon or not 1 <= horizon <= MAX_HORIZON:
        raise InvalidInput(field, f"must be an integer from 1 to {MAX_HORIZON}, got {horizon!r}")
    return int(horizon)


def check_level(level: float, field: str = "confidence_level") -> float:
    """Interval coverage as a fraction in (0, 1); 95 (percent) is read as 0.95."""
    level = float(level)
    if 1.0 < level < 100.0:
        level = level / 100.0
    if not (math.isfinite(level) and 0.0 < level < 1.0):
        raise InvalidInput(field, f"must be in (0, 1) (or a percentage), got {level!r}")
    return level


def check_season_length(season_length: int, field: str = "season_length") -> int:
    """Season length as an int >= 1 (1: no season)."""
    if isinstance(season_length, bool) or int(season_length) != season_length or season_length < 1:
        raise InvalidInput(field, f"must be an integer >= 1, got {season_length!r}")
    return int(season_length)


def z_value(level: float) -> float:
    """Two-sided standard-normal quantile for central coverage ``level`` (1.95996 for 0.95)."""
    return float(ndtri(0.5 + level / 2.0))


def normal_interval(mean: Any, sd: Any, level: float) -> tuple[Any, Any]:
    """``mean -/+ z * sd`` for central coverage ``level``; shapes broadcast."""
    z = z_value(level)
    return mean - z * sd, mean + z * sd


def horizon_steps(horizon: int, xp: Any = np, like: Any = None) -> Any:
    """``[1, 2, ..., horizon]`` as float64 (for variance growth with the step)."""
    return as_float(np.arange(1, horizon + 1, dtype=np.float64), xp, like)
