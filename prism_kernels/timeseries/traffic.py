"""Network traffic: utilisation forecasts with a daily season, the probability of exceeding
capacity, and packet loss from an M/M/1/K queue.

* Season: samples every ``interval_seconds`` give ``m = 86400 / interval_seconds`` samples per
  day (must be a whole number, e.g. 300 s -> 288); the forecaster gets ``season_length=m``.
* Forecast: any forecaster of :mod:`prism_kernels.timeseries.models` by name (default the
  seasonal naive forecast, which needs one day plus one sample; ETS/ARIMA suit hourly data,
  ``m = 24``). Its interval at ``level`` gives the forecast distribution as a normal with
  ``sd = (upper - lower) / (2 z)`` (exact for the analytic intervals; an approximation for the
  conformal ones of the recurrent models).
* Probability of exceeding capacity ``c`` at step ``h``: ``P(U_h > c) = 1 - Phi((c - mean_h) /
  sd_h)``.
* Packet loss: each link is an M/M/1/K queue (Poisson arrivals, exponential service, one
  server, at most ``K = buffer_packets`` packets in the system including the one in
  service) with offered load ``rho = mean_h / c``. By PASTA the fraction of packets dropped is
  the blocking probability (Kleinrock 1975, §3.6)::

      P_K(rho) = (1 - rho) rho^K / (1 - rho^(K+1)),  rho != 1;   1 / (K + 1),  rho = 1

  evaluated at the forecast mean and at the upper interval bound (a pessimistic figure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.special import ndtr

from prism_kernels.arrays import as_float
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import Forecast, as_batch, check_horizon, check_level, z_value
from prism_kernels.timeseries.models import forecast as run_forecast

SECONDS_PER_DAY = 86400.0


@dataclass
class TrafficForecast:
    """Utilisation forecast with capacity risk and packet loss, per link and step.

    Attributes
    ----------
    forecast : Forecast
        The utilisation forecast (mean/lower/upper (B, h) in the input's units).
    timestamps : array (h,)
        Seconds after the last sample: ``interval_seconds * (1..h)``.
    season_length : int
        Samples per day.
    capacity : array (B,)
    prob_exceed : array (B, h)
        ``P(U_h > capacity)``.
    load : array (B, h)
        Offered load ``rho = mean / capacity`` (clipped at 0).
    packet_loss : array (B, h)
        M/M/1/K blocking probability at ``rho``.
    packet_loss_upper : array (B, h)
        The same at the interval's upper bound.
    buffer_packets : int
    """

    forecast: Forecast
    timestamps: Any
    season_length: int
    capacity: Any
    prob_exceed: Any
    load: Any
    packet_loss: Any
    packet_loss_upper: Any
    buffer_packets: int


def season_length_for(interval_seconds: float, field: str = "interval_seconds") -> int:
    """Samples per day for a sampling interval (seconds); must divide a day evenly."""
    dt = float(interval_seconds)
    if not (math.isfinite(dt) and 0.0 < dt <= SECONDS_PER_DAY):
        raise InvalidInput(field, f"must be in (0, 86400] seconds, got {interval_seconds!r}")
    m = SECONDS_PER_DAY / dt
    if abs(m - round(m)) > 1e-6 * m:
        raise InvalidInput(field, f"must divide a day (86400 s) evenly, got {dt} s")
    return int(round(m))


def mm1k_blocking(rho: Any, buffer_packets: int) -> Any:
    """M/M/1/K blocking probability ``P_K(rho)`` (see module docstring), elementwise.

    ``rho`` >= 0 (any array shape); ``buffer_packets`` = K >= 1 (system capacity, packets).
    Written in a form that neither overflows for ``rho > 1`` nor divides by 0 at ``rho = 1``.
    """
    K = _check_buffer(buffer_packets)
    xp = get_namespace(rho)
    rho = xp.where(rho < 0, 0.0 * rho, rho)
    near = xp.abs(rho - 1.0) < 1e-9
    small = rho < 1.0
    r_lo = xp.where(small & ~near, rho, 0.5 + 0.0 * rho)
    lo = (1.0 - r_lo) * r_lo**K / (1.0 - r_lo ** (K + 1))
    r_hi = xp.where(~small & ~near, rho, 2.0 + 0.0 * rho)
    x = 1.0 / r_hi
    hi = (r_hi - 1.0) / (r_hi * (1.0 - x ** (K + 1)))
    return xp.where(near, 1.0 / (K + 1) + 0.0 * rho, xp.where(small, lo, hi))


def _check_buffer(buffer_packets: int) -> int:
    if isinstance(buffer_packets, bool) or int(buffer_packets) != buffer_packets:
        raise InvalidInput("buffer_packets", f"must be an integer >= 1, got {buffer_packets!r}")
    if not 1 <= int(buffer_packets) <= 10_000_000:
        raise InvalidInput("buffer_packets", f"must be from 1 to 1e7, got {buffer_packets!r}")
    return int(buffer_packets)


def exceed_probability(mean: Any, sd: Any, capacity: Any) -> Any:
    """``P(X > capacity)`` for ``X ~ N(mean, sd^2)``; a step function where ``sd = 0``."""
    xp = get_namespace(mean)
    safe = xp.where(sd > 0, sd, 1.0 + 0.0 * sd)
    p = _normal_sf((capacity - mean) / safe)
    step = xp.where(mean > capacity, 1.0 + 0.0 * mean, 0.0 * mean)
    return xp.where(sd > 0, p, step)


def _normal_sf(x: Any) -> Any:
    """``1 - Phi(x)`` (the array API has no erf: computed by SciPy on the host, (B, h) only)."""
    xp = get_namespace(x)
    return as_float(ndtr(-to_numpy(x)), xp, x)


def traffic_forecast(
    utilisation: Any,
    interval_seconds: float,
    horizon: int,
    *,
    capacity: Any = 1.0,
    method: str = "seasonal_naive",
    level: float = 0.95,
    buffer_packets: int = 100,
    **options: Any,
) -> TrafficForecast:
    """Forecast link utilisation with a daily season; capacity risk and packet loss.

    Parameters
    ----------
    utilisation : array (B, n) or (n,)
        Per link, equally spaced samples (e.g. fraction of capacity, or Mbit/s with
        ``capacity`` in Mbit/s), oldest first.
    interval_seconds : float
        Sampling interval; ``86400 / interval_seconds`` samples per day.
    horizon : int
        Steps ahead.
    capacity : float or array (B,)
        Link capacity in the units of ``utilisation`` (1.0 for fractions).
    method : str
        A forecaster of :data:`prism_kernels.timeseries.models.METHODS`.
    level : float
        Interval coverage (0.95 or 95).
    buffer_packets : int
        ``K`` of the M/M/1/K queue.
    **options
        Passed to the forecaster.

    Raises
    ------
    InvalidInput
        Bad series (NaN, empty, fewer than a day plus one sample for the seasonal
        methods), interval, horizon, capacity, buffer or method.
    """
    K = _check_buffer(buffer_packets)
    h = check_horizon(horizon)
    level = check_level(level)
    m = season_length_for(interval_seconds)
    y = as_batch(utilisation, "utilisation", min_length=2)
    xp = get_namespace(y)
    B, n = y.shape
    if bool(xp.any(y < 0)):
        raise InvalidInput("utilisation", "must be >= 0")
    cap = xp.asarray(capacity, dtype=xp.float64, device=y.device)
    if cap.ndim == 0:
        cap = cap * xp.ones((B,), dtype=xp.float64, device=y.device)
    if cap.shape != (B,) or not bool(xp.all(xp.isfinite(cap) & (cap > 0))):
        raise InvalidInput("capacity", f"must be a positive number or one per link ({B})")
    if n < m + 1 and method in ("seasonal_naive",):
        raise InvalidInput(
            "utilisation",
            f"needs at least one day plus one sample ({m + 1} samples at {interval_seconds} s)"
            f" for a daily season, got {n}",
        )
    fc = run_forecast(y, method, h, level=level, season_length=m, **options)
    z = z_value(level)
    sd = (fc.upper - fc.lower) / (2.0 * z)
    sd = xp.where(sd > 0, sd, 0.0 * sd)
    capc = cap[:, None]
    prob = exceed_probability(fc.mean, sd, capc)
    load = fc.mean / capc
    load = xp.where(load > 0, load, 0.0 * load)
    up = fc.upper / capc
    up = xp.where(up > 0, up, 0.0 * up)
    steps = xp.arange(1, h + 1, dtype=xp.float64, device=y.device)
    return TrafficForecast(
        forecast=fc,
        timestamps=float(interval_seconds) * steps,
        season_length=m,
        capacity=cap,
        prob_exceed=prob,
        load=load,
        packet_loss=mm1k_blocking(load, K),
        packet_loss_upper=mm1k_blocking(up, K),
        buffer_packets=K,
    )
