"""Rolling-origin backtests of any forecaster over many series and windows in one batch.

For ``W`` forecast origins ``o_1 < ... < o_W`` (the last one ``horizon`` points before the end,
the others ``step`` apart) each series is cut at every origin; the method forecasts
``horizon`` points from what precedes the origin and is scored on the ``horizon`` points that
follow it, which it never saw. Two ways to cut:

- ``window="fixed"`` (default): every training window has the same length ``L``
  (``train_length``, by default as long as the first origin allows), so the ``B x W`` windows
  are stacked into **one** ``(B W, L)`` batch and the method is called **once**;
- ``window="expanding"``: each window starts at the first point; windows of equal length (one
  per origin, all series) are one batch, so the method is called ``W`` times.

Scores are :mod:`prism_kernels.timeseries.metrics` on held-out data only: per window
``(B, W)``, per series ``(B,)`` (MAE, MAPE, sMAPE and interval coverage averaged over all
held-out points of the series; RMSE from the mean squared error over them; MASE the mean over
windows, each scaled by its own training window's in-sample seasonal-naive MAE) and overall
(the same over all series; MASE the mean of the per-series values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import metrics as M
from prism_kernels.timeseries.core import as_batch, check_horizon, check_level, check_season_length
from prism_kernels.timeseries.models import METHODS, forecast

MAX_WINDOWS = 500


@dataclass
class Backtest:
    """Result of :func:`backtest` (host NumPy arrays).

    Attributes
    ----------
    method : str
    origins : list of int
        Index of the first held-out point of each window (``y[:, :o]`` or ``y[:, o-L:o]``
        was seen).
    train_lengths : list of int
        Points seen per window.
    mean, lower, upper, actual : array, shape (B, W, h)
    per_window : dict of (B, W) arrays
        ``mae, rmse, mape, smape, mase, coverage``.
    per_series : dict of (B,) arrays
    overall : dict of float (NaN where undefined)
    held_out : str
        How the data were held out, in words.
    models : list of list of dict
        ``models[w][b]``: what the method fitted in window ``w`` for series ``b``.
    """

    method: str
    origins: list[int]
    train_lengths: list[int]
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    actual: np.ndarray
    per_window: dict[str, np.ndarray]
    per_series: dict[str, np.ndarray]
    overall: dict[str, float]
    held_out: str
    level: float
    models: list = field(default_factory=list)


def _origins(n: int, h: int, n_windows: int, step: int) -> list[int]:
    return [n - h - (n_windows - 1 - k) * step for k in range(n_windows)]


def backtest(
    y: Any,
    method: str,
    horizon: int,
    n_windows: int = 3,
    step: int | None = None,
    window: str = "fixed",
    train_length: int | None = None,
    level: float = 0.95,
    season_length: int = 1,
    **options: Any,
) -> Backtest:
    """Rolling-origin backtest of ``method`` on a batch ``y`` (B, n).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
    method : str
        A key of :data:`~prism_kernels.timeseries.models.METHODS`.
    horizon : int
        Steps forecast (and scored) from each origin.
    n_windows : int
        Number of origins ``W``.
    step : int, optional
        Points between consecutive origins (default ``horizon``: non-overlapping test windows).
    window : {"fixed", "expanding"}
    train_length : int, optional
        Fixed-window length ``L`` (default: the first origin, the longest that fits).
    level, season_length, **options
        Passed to the method; ``season_length`` is also MASE's ``m``.

    Returns
    -------
    Backtest
    """
    if method not in METHODS:
        raise InvalidInput(
            "method", f"unknown method {method!r}; choose one of {', '.join(METHODS)}"
        )
    h = check_horizon(horizon)
    level = check_level(level)
    m = check_season_length(season_length)
    if (
        isinstance(n_windows, bool)
        or int(n_windows) != n_windows
        or not 1 <= n_windows <= MAX_WINDOWS
    ):
        raise InvalidInput(
            "n_windows", f"must be an integer from 1 to {MAX_WINDOWS}, got {n_windows!r}"
        )
    n_windows = int(n_windows)
    step = h if step is None else step
    if isinstance(step, bool) or int(step) != step or step < 1:
        raise InvalidInput("step", f"must be an integer >= 1, got {step!r}")
    step = int(step)
    if window not in ("fixed", "expanding"):
        raise InvalidInput("window", f"must be 'fixed' or 'expanding', got {window!r}")
    y = as_batch(y)
    xp = get_namespace(y)
    B, n = y.shape
    origins = _origins(n, h, n_windows, step)
    min_train = m + 1 if m > 1 else 2
    if origins[0] < min_train:
        raise InvalidInput(
            "n_windows",
            f"{n_windows} windows of {h} steps, {step} apart, leave {origins[0]} points before "
            f"the first origin of a series of {n}; need at least {min_train}",
        )
    W = n_windows
    if window == "fixed":
        L = origins[0] if train_length is None else train_length
        if isinstance(L, bool) or int(L) != L or not min_train <= L <= origins[0]:
            raise InvalidInput(
                "train_length", f"must be an integer from {min_train} to {origins[0]}, got {L!r}"
            )
        L = int(L)
        train = xp.stack([y[:, o - L : o] for o in origins], axis=1)  # (B, W, L)
        f = forecast(
            xp.reshape(train, (B * W, L)), method, h, level=level, season_length=m, **options
        )
        mean = to_numpy(f.mean).reshape(B, W, h)
        lower = to_numpy(f.lower).reshape(B, W, h)
        upper = to_numpy(f.upper).reshape(B, W, h)
        models = [[f.models[b * W + w] for b in range(B)] for w in range(W)]
        trains = to_numpy(train)
        lengths = [L] * W
        how = f"a fixed-length window of the {L} points before each origin"
        calls = "one batched call"
    else:
        means, lows, ups, models, trains = [], [], [], [], []
        for o in origins:
            f = forecast(y[:, :o], method, h, level=level, season_length=m, **options)
            means.append(to_numpy(f.mean))
            lows.append(to_numpy(f.lower))
            ups.append(to_numpy(f.upper))
            models.append(list(f.models))
        mean, lower, upper = (np.stack(a, axis=1) for a in (means, lows, ups))
        lengths = list(origins)
        how = "an expanding window of all points before each origin"
        calls = f"{W} batched calls (one per origin)"
        trains = None
    yh = to_numpy(y)
    actual = np.stack([yh[:, o : o + h] for o in origins], axis=1)
    per_window = {
        "mae": M.mae(actual, mean),
        "rmse": M.rmse(actual, mean),
        "mape": M.mape(actual, mean),
        "smape": M.smape(actual, mean),
        "coverage": np.mean((actual >= lower) & (actual <= upper), axis=-1),
    }
    if trains is not None:
        per_window["mase"] = M.mase(actual, mean, trains, m)
    else:
        per_window["mase"] = np.stack(
            [M.mase(actual[:, w], mean[:, w], yh[:, :o], m) for w, o in enumerate(origins)], axis=1
        )
    flat_a = actual.reshape(B, W * h)
    flat_f = mean.reshape(B, W * h)
    per_series = {
        "mae": M.mae(flat_a, flat_f),
        "rmse": M.rmse(flat_a, flat_f),
        "mape": M.mape(flat_a, flat_f),
        "smape": M.smape(flat_a, flat_f),
        "mase": _nanmean_rows(per_window["mase"]),
        "coverage": per_window["coverage"].mean(axis=1),
    }
    all_a, all_f = flat_a.reshape(1, -1), flat_f.reshape(1, -1)
    overall = {
        "mae": float(M.mae(all_a, all_f)[0]),
        "rmse": float(M.rmse(all_a, all_f)[0]),
        "mape": float(M.mape(all_a, all_f)[0]),
        "smape": float(M.smape(all_a, all_f)[0]),
        "mase": float(_nanmean_rows(per_series["mase"][None, :])[0]),
        "coverage": float(per_window["coverage"].mean()),
    }
    held_out = (
        f"rolling origin: {W} windows of {h} steps, origins at t = {origins} "
        f"({step} apart, the last {h} points of each series being the final test window); "
        f"each forecast was made from {how} ({calls} over {B} series x {W} windows) and scored "
        f"only on the {h} points after its origin, which the method never saw; MASE scaled by "
        f"the in-sample seasonal-naive (m = {m}) MAE of each training window; coverage of the "
        f"{level:.0%} intervals counted on the same held-out points"
    )
    return Backtest(
        method=method,
        origins=origins,
        train_lengths=lengths,
        mean=mean,
        lower=lower,
        upper=upper,
        actual=actual,
        per_window=per_window,
        per_series=per_series,
        overall=overall,
        held_out=held_out,
        level=level,
        models=models,
    )


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN for an all-NaN row (no warning)."""
    ok = ~np.isnan(a)
    cnt = ok.sum(axis=-1)
    tot = np.where(ok, a, 0.0).sum(axis=-1)
    return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
