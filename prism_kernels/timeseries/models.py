"""Every forecaster by name, and :func:`forecast`, the one entry point that dispatches to them.

Each method is a function ``name(y, horizon, level=0.95, season_length=1, **options) ->
Forecast`` on a batch ``y`` of shape ``(B, n)``; the options each accepts are its own keyword
arguments (``order``/``seasonal_order`` for ``arima``, ``model`` for ``ets``, ``epochs`` for the
recurrent nets...). An unknown option is an :class:`InvalidInput` naming it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.arima import arima, auto_arima
from prism_kernels.timeseries.baselines import drift, naive, seasonal_naive
from prism_kernels.timeseries.core import Forecast
from prism_kernels.timeseries.ets import ets
from prism_kernels.timeseries.recurrent import gru, lstm
from prism_kernels.timeseries.theta import theta

METHODS: dict[str, Callable[..., Forecast]] = {
    "naive": naive,
    "seasonal_naive": seasonal_naive,
    "drift": drift,
    "arima": arima,
    "auto_arima": auto_arima,
    "ets": ets,
    "theta": theta,
    "lstm": lstm,
    "gru": gru,
}

_COMMON = ("y", "horizon", "level", "season_length")


def method_options(method: str) -> list[str]:
    """The option names (beyond ``y, horizon, level, season_length``) a method accepts."""
    fn = _lookup(method)
    return [p for p in inspect.signature(fn).parameters if p not in _COMMON and p != "options"]


def _lookup(method: str) -> Callable[..., Forecast]:
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidInput(
            "method", f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
        )
    return METHODS[method]


def forecast(
    y: Any,
    method: str,
    horizon: int,
    level: float = 0.95,
    season_length: int = 1,
    **options: Any,
) -> Forecast:
    """Forecast a batch ``y`` (B, n) with ``method`` (a key of :data:`METHODS`).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    method : str
        ``naive``, ``seasonal_naive``, ``drift``, ``arima``, ``auto_arima``, ``ets``,
        ``theta``, ``lstm`` or ``gru``.
    horizon : int
    level : float
        Interval coverage (0.95 or 95).
    season_length : int
    **options
        The method's own keyword arguments; an unknown one raises ``InvalidInput`` naming it.

    Returns
    -------
    Forecast
        With intervals for every method.
    """
    fn = _lookup(method)
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any:
        allowed = [p for p in params if p not in _COMMON]
        for k in options:
            if k not in allowed:
                raise InvalidInput(
                    k,
                    f"is not an option of {method}; options: {', '.join(allowed) or 'none'}",
                )
    return fn(y, horizon, level=level, season_length=season_length, **options)
