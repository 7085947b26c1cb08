"""Classical seasonal decomposition (moving-average trend, per-position seasonal indices),
as statsmodels ``seasonal_decompose`` computes it: anomaly scores use its residuals, the Theta
method its seasonal indices.
"""

from __future__ import annotations

from typing import Any

from prism_kernels.arrays import device_of
from prism_kernels.backend import get_namespace
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import as_batch, check_season_length


def decompose(y: Any, season_length: int, model: str = "additive") -> dict[str, Any]:
    """Classical seasonal decomposition, as statsmodels ``seasonal_decompose`` (two-sided).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        At least two full seasons; positive values for ``model="multiplicative"``.
    season_length : int
        ``s >= 2``.
    model : {"additive", "multiplicative"}

    Returns
    -------
    dict
        ``trend``, ``seasonal``, ``resid`` (each (B, n) on the input's backend; NaN in the
        first and last ``s // 2`` points of ``trend`` and ``resid``).
    """
    yb = as_batch(y, "values")
    xp = get_namespace(yb)
    s = check_season_length(season_length)
    if s < 2:
        raise InvalidInput("season_length", "must be >= 2 for a seasonal decomposition")
    if model not in ("additive", "multiplicative"):
        raise InvalidInput("model", f"must be 'additive' or 'multiplicative', got {model!r}")
    B, n = yb.shape
    if n < 2 * s:
        raise InvalidInput("values", f"needs at least two seasons ({2 * s} points), got {n}")
    if model == "multiplicative" and bool(xp.any(yb <= 0)):
        raise InvalidInput("values", "must be > 0 for a multiplicative decomposition")
    if s % 2 == 0:
        taps = [0.5 / s] + [1.0 / s] * (s - 1) + [0.5 / s]
    else:
        taps = [1.0 / s] * s
    h = len(taps) // 2
    body = taps[0] * yb[:, 0 : n - 2 * h]
    for k in range(1, len(taps)):
        body = body + taps[k] * yb[:, k : n - 2 * h + k]
    nan = xp.full((B, h), xp.nan, dtype=yb.dtype, device=device_of(yb))
    trend = xp.concat([nan, body, nan], axis=1)
    detr = yb - trend if model == "additive" else yb / trend
    m = -(-n // s)  # seasons, the last possibly partial
    pad = xp.full((B, m * s - n), xp.nan, dtype=yb.dtype, device=device_of(yb))
    grid = xp.reshape(xp.concat([detr, pad], axis=1), (B, m, s))
    ok = ~xp.isnan(grid)
    cnt = xp.sum(xp.astype(ok, yb.dtype), axis=1)
    avg = xp.sum(xp.where(ok, grid, xp.zeros_like(grid)), axis=1) / cnt  # (B, s)
    if model == "additive":
        avg = avg - xp.mean(avg, axis=1, keepdims=True)
    else:
        avg = avg / xp.mean(avg, axis=1, keepdims=True)
    seasonal = xp.reshape(xp.broadcast_to(avg[:, None, :], (B, m, s)), (B, m * s))[:, :n]
    resid = detr - seasonal if model == "additive" else yb / seasonal / trend
    return {"trend": trend, "seasonal": seasonal, "resid": resid}
