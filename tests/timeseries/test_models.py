"""``forecast`` dispatches to every method by name and equals the direct call; every method
returns intervals; unknown methods and options are named."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.timeseries import models
from prism_kernels.timeseries.arima import arima, auto_arima
from prism_kernels.timeseries.models import METHODS, forecast, method_options


def _data(seed=0, B=3, n=72):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.stack(
        [
            50 + 0.3 * t + 5 * np.sin(2 * np.pi * t / 12 + rng.uniform(0, 6)) + rng.normal(0, 1, n)
            for _ in range(B)
        ]
    )


def test_methods_table():
    assert list(METHODS) == [
        "naive",
        "seasonal_naive",
        "drift",
        "arima",
        "auto_arima",
        "ets",
        "theta",
        "lstm",
        "gru",
    ]
    assert METHODS["arima"] is arima and METHODS["auto_arima"] is auto_arima
    assert "order" in method_options("arima") and "model" in method_options("ets")


OPTIONS = {
    "arima": dict(order=(1, 1, 0), seasonal_order=(0, 1, 0)),
    "auto_arima": {},
    "ets": dict(model="AAA"),
    "lstm": dict(epochs=3),
    "gru": dict(epochs=3),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_forecasts_with_intervals(method):
    y = _data()
    kw = OPTIONS.get(method, {})
    f = forecast(y, method, 6, level=0.9, season_length=12, **kw)
    g = METHODS[method](y, 6, level=0.9, season_length=12, **kw)
    assert f.mean.shape == f.lower.shape == f.upper.shape == (3, 6)
    assert f.lower is not None and f.upper is not None
    assert np.all(f.lower <= f.mean) and np.all(f.mean <= f.upper)
    assert np.all(f.upper - f.lower > 0)
    assert f.level == pytest.approx(0.9)
    assert len(f.models) == 3 and all("name" in m for m in f.models)
    np.testing.assert_allclose(f.mean, g.mean, rtol=1e-12)  # same call, deterministic
    np.testing.assert_allclose(f.upper, g.upper, rtol=1e-12)


def test_unknown_method_and_option():
    y = _data()
    with pytest.raises(InvalidInput) as e:
        forecast(y, "prophet", 3)
    assert e.value.field == "method" and "auto_arima" in e.value.message
    with pytest.raises(InvalidInput) as e:
        forecast(y, "theta", 3, order=(1, 0, 0))
    assert e.value.field == "order"
    with pytest.raises(InvalidInput) as e:
        forecast(y, "naive", 0)
    assert e.value.field == "horizon"
    with pytest.raises(InvalidInput) as e:
        models.method_options("nope")
    assert e.value.field == "method"
