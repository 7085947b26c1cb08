"""Rolling-origin backtest: one batched call equals a plain loop over series and windows;
metrics are computed on the held-out points only; bad input."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import metrics as M
from prism_kernels.timeseries.backtest import backtest
from prism_kernels.timeseries.models import forecast


def _data(seed=0, B=4, n=80):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.stack(
        [
            50 + 0.3 * t + 5 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6)) + rng.normal(0, 1, n)
            for _ in range(B)
        ]
    )


def _loop(y, method, h, W, step, window, L, m, **kw):
    B, n = y.shape
    origins = [n - h - (W - 1 - k) * step for k in range(W)]
    mean = np.empty((B, W, h))
    lower = np.empty((B, W, h))
    upper = np.empty((B, W, h))
    mase = np.empty((B, W))
    for b in range(B):
        for w, o in enumerate(origins):
            tr = y[b, o - L : o] if window == "fixed" else y[b, :o]
            f = forecast(tr, method, h, season_length=m, **kw)
            mean[b, w], lower[b, w], upper[b, w] = f.mean[0], f.lower[0], f.upper[0]
            scale = np.mean(np.abs(tr[m:] - tr[:-m]))
            mase[b, w] = np.mean(np.abs(y[b, o : o + h] - f.mean[0])) / scale
    return origins, mean, lower, upper, mase


@pytest.mark.parametrize(
    "method,window,kw",
    [
        ("seasonal_naive", "fixed", {}),
        ("theta", "fixed", {}),
        ("drift", "expanding", {}),
        ("ets", "fixed", {"model": "AAdN"}),
    ],
)
def test_equals_a_loop_over_windows(method, window, kw):
    y = _data()
    h, W, step, m = 6, 4, 5, 12
    bt = backtest(y, method, h, n_windows=W, step=step, window=window, season_length=m, **kw)
    L = 80 - h - (W - 1) * step
    origins, mean, lower, upper, mase = _loop(y, method, h, W, step, window, L, m, **kw)
    assert bt.origins == origins
    assert bt.train_lengths == ([L] * W if window == "fixed" else origins)
    np.testing.assert_allclose(bt.mean, mean, rtol=1e-8)
    np.testing.assert_allclose(bt.lower, lower, rtol=1e-8)
    np.testing.assert_allclose(bt.upper, upper, rtol=1e-8)
    actual = np.stack([y[:, o : o + h] for o in origins], axis=1)
    np.testing.assert_array_equal(bt.actual, actual)
    np.testing.assert_allclose(bt.per_window["mase"], mase, rtol=1e-8)
    err = actual - mean
    np.testing.assert_allclose(bt.per_window["mae"], np.abs(err).mean(-1), rtol=1e-8)
    np.testing.assert_allclose(bt.per_series["rmse"], np.sqrt((err**2).mean((1, 2))), rtol=1e-8)
    np.testing.assert_allclose(
        bt.per_series["mape"], 100 * np.abs(err / actual).mean((1, 2)), rtol=1e-8
    )
    np.testing.assert_allclose(
        bt.per_series["smape"],
        200 * (np.abs(err) / (np.abs(actual) + np.abs(mean))).mean((1, 2)),
        rtol=1e-8,
    )
    assert bt.overall["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-10)
    assert bt.overall["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-10)
    assert bt.overall["mase"] == pytest.approx(mase.mean(), rel=1e-10)
    cov = ((actual >= lower) & (actual <= upper)).mean()
    assert bt.overall["coverage"] == pytest.approx(cov)
    assert "never saw" in bt.held_out and str(origins) in bt.held_out
    assert len(bt.models) == W and len(bt.models[0]) == 4


def test_held_out_values_are_never_seen():
    """Changing the future after each origin changes the scores, never the forecasts."""
    y = _data(1)
    a = backtest(y, "theta", 5, n_windows=1)
    z = y.copy()
    z[:, -5:] += 100.0
    b = backtest(z, "theta", 5, n_windows=1)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert b.overall["mae"] > a.overall["mae"] + 50


def test_train_length_option():
    y = _data(2)
    bt = backtest(y, "naive", 4, n_windows=3, train_length=20)
    assert bt.train_lengths == [20, 20, 20]
    np.testing.assert_array_equal(bt.mean[:, 0, 0], y[:, 80 - 12 - 1])
    assert bt.per_window["mase"].shape == (4, 3)
    expect = M.mase(bt.actual, bt.mean, np.stack([y[:, o - 20 : o] for o in bt.origins], 1))
    np.testing.assert_allclose(bt.per_window["mase"], expect)


def test_bad_input():
    y = _data()
    for kw, field in [
        (dict(method="nope"), "method"),
        (dict(n_windows=0), "n_windows"),
        (dict(n_windows=30), "n_windows"),
        (dict(step=0), "step"),
        (dict(window="sliding"), "window"),
        (dict(train_length=1), "train_length"),
        (dict(train_length=100), "train_length"),
        (dict(horizon=0), "horizon"),
    ]:
        args = {"method": "naive", "horizon": 4, **kw}
        with pytest.raises(InvalidInput) as e:
            backtest(y, **args)
        assert e.value.field == field, kw
    with pytest.raises(InvalidInput) as e:
        backtest(y, "naive", 4, bogus=3)
    assert e.value.field == "bogus"
    with pytest.raises(InvalidInput) as e:
        backtest([1.0, np.nan, 3.0, 4.0, 5.0, 6.0], "naive", 2)
    assert e.value.field == "values"
