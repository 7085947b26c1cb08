"""Recurrent forecasters (LSTM, GRU) with split-conformal prediction intervals.

One small network per call is trained on the one-step-ahead windows of **all** series of the
batch (each series standardised by the mean and standard deviation of its training part), then
forecasts ``horizon`` steps recursively (each prediction fed back as the next input).

Intervals are never omitted. They are split conformal (Vovk et al. 2005; Lei et al. 2018),
per horizon step: the last ``calibration`` points of every series are held out of training;
from every origin in that tail with ``horizon`` points after it the trained network forecasts
recursively, and the absolute errors at step ``j`` (in each series' standard-deviation units,
pooled over series and origins: ``N_j`` values) give the
``ceil((N_j + 1) level) / N_j`` empirical quantile ``q_j``. The forecast from the end of the
series (the same network, not refitted, the whole series as its input history) gets
``mean_j -/+ q_j sd_b``. The coverage guarantee of split conformal assumes the calibration
errors and the future errors are exchangeable (pooling across series assumes it across series
too); it is checked on held-out data in the tests.

Determinism: PyTorch (imported inside the functions) on the CPU, float32, seeded with
``seed`` in a forked RNG (the global RNG state is left as it was), deterministic algorithms
on, one intra-op thread during the call; the same input and seed give the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from prism_kernels.arrays import as_float
from prism_kernels.backend import get_namespace, to_numpy
from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries.core import (
    Forecast,
    as_batch,
    check_horizon,
    check_level,
    check_season_length,
)


def _int_opt(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise InvalidInput(name, f"must be an integer from {lo} to {hi}, got {v!r}")
    return int(v)


def _recurrent(
    cell: str,
    y: Any,
    horizon: int,
    level: float,
    season_length: int,
    lookback: int | None,
    hidden: int,
    num_layers: int,
    epochs: int,
    lr: float,
    batch_size: int,
    calibration: int | None,
    seed: int,
) -> Forecast:
    import torch

    h = check_horizon(horizon)
    level = check_level(level)
    m = check_season_length(season_length)
    y = as_batch(y, min_length=8)
    xp = get_namespace(y)
    yh = np.asarray(to_numpy(y), dtype=np.float64)
    B, n = yh.shape
    hidden = _int_opt(hidden, "hidden", 1, 1024)
    num_layers = _int_opt(num_layers, "num_layers", 1, 4)
    epochs = _int_opt(epochs, "epochs", 1, 10_000)
    batch_size = _int_opt(batch_size, "batch_size", 1, 1_000_000)
    seed = _int_opt(seed, "seed", 0, 2**63 - 1)
    lr = float(lr)
    if not (math.isfinite(lr) and 0 < lr < 1):
        raise InvalidInput("lr", f"must be in (0, 1), got {lr!r}")
    L = lookback if lookback is not None else max(2 * m, 12)
    L = _int_opt(L, "lookback", 1, 10_000)
    if calibration is None:
        # enough origins in the tail for a conformal quantile at this level: B (c - h + 1)
        # errors per step must reach level / (1 - level)
        needed = math.ceil(level / (1.0 - level) + 1e-9)
        c = max(2 * h, n // 5, h - 1 + math.ceil(needed / B))
    else:
        c = calibration
    c = _int_opt(c, "calibration", h, 10_000_000)
    n_train = n - c
    if n_train < L + 8:
        raise InvalidInput(
            "values",
            f"{n} points leave {n_train} for training after a calibration tail of {c}; "
            f"need at least lookback + 8 = {L + 8} (shorten lookback or calibration)",
        )
    # standardise by the training part
    mu = yh[:, :n_train].mean(axis=1, keepdims=True)
    sd = yh[:, :n_train].std(axis=1, keepdims=True)
    sd = np.where(sd > 0, sd, np.maximum(np.abs(mu), 1.0))
    z = ((yh - mu) / sd).astype(np.float32)

    # one-step training windows from every series' training part
    idx = np.arange(L, n_train)
    X = np.stack([z[:, t - L : t] for t in idx], axis=1).reshape(-1, L)  # (B*T, L)
    Y = np.stack([z[:, t] for t in idx], axis=1).reshape(-1)

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    try:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _Net(cell, hidden, num_layers, torch)
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            rng = np.random.default_rng(seed)
            Xt = torch.from_numpy(X)[..., None]
            Yt = torch.from_numpy(Y)
            N = Xt.shape[0]
            net.train()
            for _ in range(epochs):
                perm = torch.from_numpy(rng.permutation(N))
                for s0 in range(0, N, batch_size):
                    bi = perm[s0 : s0 + batch_size]
                    opt.zero_grad()
                    loss = torch.mean((net(Xt[bi]) - Yt[bi]) ** 2)
                    loss.backward()
                    opt.step()
            net.eval()
            with torch.no_grad():
                # in-sample one-step fitted values (teacher forcing) for t >= L
                all_idx = np.arange(L, n)
                Xf = np.stack([z[:, t - L : t] for t in all_idx], axis=1).reshape(-1, L)
                fz = net(torch.from_numpy(Xf)[..., None]).numpy().reshape(B, -1)
                # calibration: recursive forecasts from every origin o in the tail
                origins = np.arange(n_train, n - h + 1)
                hist = np.stack([z[:, o - L : o] for o in origins], axis=1).reshape(-1, L)
                cal = _recursive(net, hist, h, torch).reshape(B, len(origins), h)
                truth = np.stack([z[:, o : o + h] for o in origins], axis=1)
                # the forecast from the end of the series
                fut = _recursive(net, z[:, n - L :], h, torch)  # (B, h)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)

    err = np.abs(truth.astype(np.float64) - cal.astype(np.float64)).transpose(2, 0, 1)
    err = err.reshape(h, -1)  # (h, N)
    Nc = err.shape[1]
    k = math.ceil((Nc + 1) * level)
    if k > Nc:
        raise InvalidInput(
            "calibration",
            f"{Nc} calibration errors per step cannot give a {level:.0%} conformal interval "
            f"(needs at least {math.ceil(level / (1 - level))}); lengthen the series or the "
            "calibration tail",
        )
    q = np.sort(err, axis=1)[:, k - 1]  # (h,)
    mean_h = fut.astype(np.float64) * sd + mu
    half = q[None, :] * sd
    fitted_h = np.full((B, n), np.nan)
    fitted_h[:, L:] = fz.astype(np.float64) * sd + mu
    name = cell.upper()
    models = [
        {
            "name": f"{name}(hidden={hidden}, layers={num_layers}, lookback={L})",
            "cell": cell,
            "hidden": hidden,
            "num_layers": num_layers,
            "lookback": L,
            "epochs": epochs,
            "seed": seed,
            "trained_on": f"one-step windows of points 0..{n_train - 1} of all {B} series",
            "calibration_points": c,
            "calibration_errors_per_step": Nc,
            "conformal_quantile_sd_units": [float(v) for v in q],
            "intervals": "split conformal, per horizon step, pooled over series",
            "scale": {"mean": float(mu[i, 0]), "sd": float(sd[i, 0])},
        }
        for i in range(B)
    ]
    mean = as_float(mean_h, xp, like=y)
    half_x = as_float(half, xp, like=y)
    fitted = as_float(fitted_h, xp, like=y)
    return Forecast(
        mean=mean,
        lower=mean - half_x,
        upper=mean + half_x,
        level=level,
        method=cell,
        models=models,
        fitted=fitted,
        residuals=y - fitted,
    )


def _recursive(net: Any, hist: np.ndarray, h: int, torch: Any) -> np.ndarray:
    """Feed each prediction back: (N, L) standardised histories -> (N, h) forecasts."""
    win = torch.from_numpy(np.ascontiguousarray(hist, dtype=np.float32))
    out = []
    for _ in range(h):
        p = net(win[..., None])
        out.append(p)
        win = torch.cat([win[:, 1:], p[:, None]], dim=1)
    return torch.stack(out, dim=1).numpy()


def _Net(cell: str, hidden: int, num_layers: int, torch: Any) -> Any:
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rnn = nn.LSTM if cell == "lstm" else nn.GRU
            self.rnn = rnn(
                input_size=1, hidden_size=hidden, num_layers=num_layers, batch_first=True
            )
            self.head = nn.Linear(hidden, 1)

        def forward(self, x: Any) -> Any:
            o, _ = self.rnn(x)
            return self.head(o[:, -1, :])[:, 0] + x[:, -1, 0]  # predict the change

    return Net()


def lstm(
    y: Any,
    horizon: int,
    level: float = 0.95,
    season_length: int = 1,
    lookback: int | None = None,
    hidden: int = 32,
    num_layers: int = 1,
    epochs: int = 20,
    lr: float = 0.01,
    batch_size: int = 256,
    calibration: int | None = None,
    seed: int = 0,
) -> Forecast:
    """LSTM forecasts with split-conformal intervals (see the module notes).

    Parameters
    ----------
    y : array, shape (B, n) or (n,)
        Series on any backend (copied to the host for PyTorch on the CPU).
    horizon : int
    level : float
    season_length : int
        Sets the default ``lookback`` (``max(2 m, 12)``).
    lookback : int, optional
        Input window length ``L``.
    hidden : int
        LSTM state size.
    num_layers : int
        Stacked recurrent layers (1 to 4).
    epochs : int
        Passes over the training windows (Adam, MSE on standardised values).
    lr : float
    batch_size : int
    calibration : int, optional
        Points held out at the end of each series for the conformal quantiles (default
        ``max(2 horizon, n // 5)``, lengthened until the tail gives the ``level / (1 - level)``
        errors per step a conformal quantile needs); at least ``horizon``.
    seed : int

    Returns
    -------
    Forecast
    """
    return _recurrent(
        "lstm",
        y,
        horizon,
        level,
        season_length,
        lookback,
        hidden,
        num_layers,
        epochs,
        lr,
        batch_size,
        calibration,
        seed,
    )


def gru(
    y: Any,
    horizon: int,
    level: float = 0.95,
    season_length: int = 1,
    lookback: int | None = None,
    hidden: int = 32,
    num_layers: int = 1,
    epochs: int = 20,
    lr: float = 0.01,
    batch_size: int = 256,
    calibration: int | None = None,
    seed: int = 0,
) -> Forecast:
    """GRU forecasts with split-conformal intervals; parameters as :func:`lstm`."""
    return _recurrent(
        "gru",
        y,
        horizon,
        level,
        season_length,
        lookback,
        hidden,
        num_layers,
        epochs,
        lr,
        batch_size,
        calibration,
        seed,
    )
