"""``/api/v1/timeseries``: every route through the real session server, checked against the
kernels; the original server's and the original client's payloads; bad input answered with a
JSON 400 naming the field; ForecastReady and AnomalyDetected on the WebSocket; a stored series
across a restart."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import numpy as np
import pytest
from websockets.sync.client import connect

from prism_kernels.timeseries import anomalies, datasets
from prism_kernels.timeseries import changepoints as cp
from prism_kernels.timeseries.market import market_forecast
from prism_kernels.timeseries.models import forecast
from tests.apiutil import assert_error
from tests.apiutil import ok as _ok
from tests.serverutil import KEYS, PrismServer
from widgets.server.routes.timeseries import EXAMPLE_FORECAST, ROUTES

API = "/api/v1/timeseries"
AIR = [float(v) for v in datasets.load("airpassengers")["values"]]
CLIENT_FIELDS = {"series_id", "predictions", "timestamps", "confidence_intervals", "metrics"}


def _error(r, status: int, field: str | None = None) -> dict:
    return assert_error(r, status, field, named_in_message=False)


@contextmanager
def _subscribed(server, event_type: str):
    """A WebSocket subscribed to ``event_type``; yields ``next(series_id)`` -> that event."""
    with connect(
        server.ws_url,
        additional_headers={"Authorization": f"Bearer {KEYS['user']}"},
        open_timeout=10,
    ) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": event_type}))
        assert json.loads(ws.recv(timeout=10))["type"] == "Subscribed"

        def next_event(series_id: str) -> dict:
            deadline, msg = time.time() + 10, {}
            while time.time() < deadline:
                msg = json.loads(ws.recv(timeout=10))
                if msg["type"] == event_type and msg.get("series_id") == series_id:
                    return msg
            raise AssertionError(f"no {event_type} for {series_id}; last: {msg}")

        yield next_event


# ---------------------------------------------------------------- forecast


def test_original_client_call_without_timestamps(api):
    """``PrismClient.forecast_timeseries(series_id, historical_data)``: horizon 10,
    ``method: {"arima": {}}``, no timestamps, no include_uncertainty (reference §7)."""
    body = {
        "series_id": "client-1",
        "historical_data": AIR[:48],
        "horizon": 10,
        "method": {"arima": {}},
    }
    t0 = int(time.time())
    d = _ok(api.post(f"{API}/forecast", json=body))
    # the client's TimeSeriesForecast(series_id, predictions, timestamps, confidence_intervals,
    # metrics, computation_time_ms) fits
    assert CLIENT_FIELDS | {"computation_time_ms"} <= set(d)
    assert d["series_id"] == "client-1" and len(d["predictions"]) == 10
    assert d["method_used"].startswith("ARIMA(")  # {"arima": {}}: the order was chosen
    ts = d["timestamps"]
    assert len(ts) == 10 and t0 <= ts[0] - 3600 <= t0 + 60
    assert np.all(np.diff(ts) == 3600)
    ci = d["confidence_intervals"]
    assert len(ci) == 10 and all(c["confidence_level"] == 0.95 for c in ci)
    assert all(c["lower"] < p < c["upper"] for c, p in zip(ci, d["predictions"], strict=True))
    m = d["metrics"]
    assert m["test_points"] == 10 and m["train_points"] == 38 and "held out" in m["holdout"]
    assert m["mae"] > 0 and m["rmse"] >= m["mae"]
    assert (
        _ok(api.get(f"{API}/series/client-1"))["last_forecast"]["predictions"] == d["predictions"]
    )


def test_original_server_payload_against_the_kernel(api):
    """The Rust server's own request: ``{"arima": {p, d, q}}``, timestamps, include_uncertainty."""
    y = AIR[:36]
    ts = [1_000 + 3 * i for i in range(35)] + [1_000 + 3 * 34 + 5]  # last interval longer
    body = {
        "series_id": "orig",
        "historical_data": y,
        "timestamps": ts,
        "horizon": 4,
        "method": {"arima": {"p": 2, "d": 1, "q": 1}},
        "include_uncertainty": True,
    }
    d = _ok(api.post(f"{API}/forecast", json=body))
    f = forecast(np.asarray(y), "arima", 4, order=(2, 1, 1))
    np.testing.assert_allclose(d["predictions"], f.mean[0], rtol=1e-9)
    np.testing.assert_allclose(
        [c["lower"] for c in d["confidence_intervals"]], f.lower[0], rtol=1e-9
    )
    assert d["method_used"].startswith("ARIMA(2,1,1)")
    step = (ts[-1] - ts[0]) // 35  # integer division, as the original
    assert d["timestamps"] == [ts[-1] + step * i for i in range(1, 5)]
    d = _ok(api.post(f"{API}/forecast", json={**body, "include_uncertainty": False}))
    assert d["confidence_intervals"] is None


@pytest.mark.parametrize(
    "method,used",
    [
        ("exponential_smoothing", "ETS("),
        ({"exponential_smoothing": {}}, "ETS("),  # the client's object form of a unit variant
        ("ExponentialSmoothing", "ETS("),
        ({"Arima": {"p": 1, "d": 1, "q": 0}}, "ARIMA(1,1,0)"),
        ("theta", "Theta"),
        ("SeasonalNaive", "SeasonalNaive"),
        ({"ets": {"model": "AAN"}}, "ETS(A,A,N)"),
        ({"gru": {"hidden_dim": 4, "epochs": 2, "calibration": 40}}, "GRU(hidden=4"),
        ({"lstm": {"hidden_dim": 4, "num_layers": 1, "epochs": 2, "calibration": 40}}, "LSTM("),
    ],
)
def test_method_spellings(api, method, used):
    body = {
        "historical_data": AIR[:96],
        "horizon": 3,
        "method": method,
        "season_length": 12,
        "evaluate": False,
    }
    d = _ok(api.post(f"{API}/forecast", json=body))
    assert d["method_used"].startswith(used), d["method_used"]
    assert d["metrics"] is None and "evaluate" in d["metrics_note"]
    assert len(d["confidence_intervals"]) == 3


def test_prophet_runs_the_automatic_arima_and_says_so(api):
    d = _ok(
        api.post(
            f"{API}/forecast",
            json={
                "historical_data": AIR[:40],
                "horizon": 2,
                "method": "prophet",
                "evaluate": False,
            },
        )
    )
    assert d["method"] == "auto_arima" and "Prophet is not installed" in d["method_used"]


def test_original_lstm_object_with_two_layers(api):
    method = {"lstm": {"hidden_dim": 4, "num_layers": 2, "epochs": 2}}  # default calibration
    body = {"historical_data": AIR, "horizon": 12, "method": method, "evaluate": False}
    d = _ok(api.post(f"{API}/forecast", json=body))
    assert d["method_used"].startswith("LSTM(hidden=4, layers=2")
    assert len(d["confidence_intervals"]) == 12


def test_many_series_of_different_lengths(api):
    series = [AIR[:50], {"series_id": "many-b", "values": AIR[:70]}, AIR[10:60]]
    d = _ok(
        api.post(
            f"{API}/forecast",
            json={"series": series, "horizon": 5, "method": "drift", "confidence_level": 80},
        )
    )
    assert [f["data_points"] for f in d["forecasts"]] == [50, 70, 50]
    assert d["confidence_level"] == 0.8 and d["predictions"] == d["forecasts"][0]["predictions"]
    ref = forecast(np.asarray([AIR[:50], AIR[10:60]]), "drift", 5, level=0.8)
    np.testing.assert_allclose(d["forecasts"][2]["predictions"], ref.mean[1], rtol=1e-12)
    assert _ok(api.get(f"{API}/series/many-b"))["data_points"] == 70
    _error(
        api.post(f"{API}/forecast", json={"series": series, "historical_data": AIR}), 400, "series"
    )


def test_a_stored_series_is_forecast_by_id(api):
    _ok(api.post(f"{API}/series", json={"series_id": "stored-air", "dataset": "airpassengers"}))
    d = _ok(
        api.post(
            f"{API}/forecast",
            json={"series_id": "stored-air", "horizon": 12, "method": "seasonal_naive"},
        )
    )
    assert d["season_length"] == 12 and d["predictions"] == AIR[-12:]
    _error(api.post(f"{API}/forecast", json={"series_id": "nope", "horizon": 3}), 404)


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda b: b.update(horizon=0), "horizon"),
        (lambda b: b.update(horizon=-3), "horizon"),
        (lambda b: b.update(horizon=10_001), "horizon"),
        (lambda b: b.update(method="oracle"), "method"),
        (lambda b: b.update(method={"arima": {"p": -1, "d": 0, "q": 0}}), "method"),
        (lambda b: b.update(method={"lstm": {"epochs": 10_000}}), "method"),
        (lambda b: b.update(method={"arima": {"p": 9, "d": 1, "q": 9}}), "historical_data"),
        (lambda b: b.update(timestamps=[1, 2, 3]), "timestamps"),
        (lambda b: b.update(timestamps=list(range(20))[::-1]), "timestamps.1"),
        (lambda b: b.update(historical_data=[]), "historical_data"),
        (lambda b: b.pop("historical_data") and b.pop("series_id"), "historical_data"),
        (lambda b: b["historical_data"].__setitem__(3, "NaN"), "historical_data.3"),
        (lambda b: b["historical_data"].__setitem__(4, "Infinity"), "historical_data.4"),
        (lambda b: b["historical_data"].__setitem__(5, 1e200), "historical_data.5"),
        (lambda b: b.update(confidence_level=0), "confidence_level"),
        (lambda b: b.update(series_id=""), "series_id"),
        (lambda b: b.update(series=[[1.0, "x"]]), "series.0.values.1"),
    ],
)
def test_bad_forecast_input_names_the_field(api, change, field):
    body = {"series_id": "bad", "historical_data": AIR[:20], "horizon": 3, "method": "naive"}
    change(body)
    _error(api.post(f"{API}/forecast", json=body), 400, field)
    _error(api.get(f"{API}/series/bad"), 404)  # a rejected request stores nothing


def test_non_finite_literals_are_refused(api):
    raw = json.dumps({"historical_data": [1.0, 2.0, 3.0], "horizon": 2})
    for lit in ("NaN", "Infinity", "-Infinity"):
        r = api.post(
            f"{API}/forecast",
            content=raw.replace("2.0", lit),
            headers={"Content-Type": "application/json"},
        )
        _error(r, 400)
    r = api.post(
        f"{API}/forecast",
        content=raw.replace("2.0", "1e999"),
        headers={"Content-Type": "application/json"},
    )
    _error(r, 400, "historical_data.1")


# ---------------------------------------------------------------- backtest, detection


def test_backtest(api):
    body = {
        "series_id": "bt",
        "historical_data": AIR,
        "season_length": 12,
        "methods": ["naive", "SeasonalNaive", {"ets": {"model": "MAM"}}],
        "horizon": 6,
        "windows": 2,
    }
    d = _ok(api.post(f"{API}/backtest", json=body))
    rows = {r["method"]: r for r in d["rows"]}
    assert set(rows) == {"naive", "seasonal_naive", "ets"}
    assert rows["ets"]["mase"] < rows["naive"]["mase"]
    assert "rolling origin" in d["holdout"]
    assert _ok(api.get(f"{API}/series/bt"))["last_backtest"]["rows"][0]["method"] == "naive"
    _error(
        api.post(f"{API}/backtest", json={**body, "methods": ["naive", "oracle"]}), 400, "methods.1"
    )
    _error(api.post(f"{API}/backtest", json={**body, "windows": 40}), 400, "n_windows")


def test_changepoints_against_the_kernel(api, rng):
    y = np.r_[np.zeros(50), np.full(50, 3.0)] + 0.2 * rng.standard_normal(100)
    body = {"values": y.tolist(), "method": "pelt", "cost": "l2", "penalty": 5.0, "jump": 1}
    d = _ok(api.post(f"{API}/changepoints", json=body))
    assert d["breakpoints"] == cp.pelt(y, penalty=5.0, cost="l2", jump=1)[0]
    assert 45 <= d["results"][0]["changepoints"][0] <= 55
    d = _ok(
        api.post(
            f"{API}/changepoints",
            json={**body, "method": "BinarySegmentation", "penalty": None, "n_breakpoints": 1},
        )
    )
    assert d["breakpoints"] == cp.binseg(y, n_breakpoints=1, jump=1)[0]
    _error(api.post(f"{API}/changepoints", json={**body, "cost": "rbf"}), 400, "cost")
    _error(api.post(f"{API}/changepoints", json={**body, "penalty": -1}), 400)
    _error(api.post(f"{API}/changepoints", json={"values": [1.0, "NaN"]}), 400, "values.1")


def test_anomalies_against_the_kernel_and_the_event(server, api, rng):
    y = 10.0 + 0.1 * rng.standard_normal(60)
    y[[20, 45]] += [3.0, -3.0]
    ref = anomalies.robust_zscore(y, window=10, threshold=5.0)
    assert {20, 45} <= set(ref.indices[0])
    with _subscribed(server, "AnomalyDetected") as next_event:
        d = _ok(
            api.post(
                f"{API}/anomalies",
                json={
                    "series_id": "spiky",
                    "values": y.tolist(),
                    "method": "MAD",
                    "window": 10,
                    "threshold": 5.0,
                },
            )
        )
        assert d["indices"] == ref.indices[0] and d["method"] == "robust_zscore"
        np.testing.assert_allclose(d["scores"][10:], np.asarray(ref.scores)[0, 10:], rtol=1e-12)
        assert d["scores"][:10] == [None] * 10  # no baseline before the first window
        msg = next_event("spiky")
        assert msg["indices"] == ref.indices[0] and msg["count"] == len(ref.indices[0])
    air = np.asarray(AIR)
    d = _ok(
        api.post(
            f"{API}/anomalies",
            json={
                "values": AIR,
                "method": "seasonal_decomposition",
                "decomposition": "multiplicative",
                "season_length": 12,
                "threshold": 3.0,
            },
        )
    )
    ref = anomalies.seasonal_scores(air, 12, 3.0, model="multiplicative")
    assert d["indices"] == ref.indices[0]
    d = _ok(
        api.post(
            f"{API}/anomalies",
            json={
                "values": AIR,
                "method": "residual",
                "forecast_method": {"arima": {"p": 1, "d": 1, "q": 0}},
                "threshold": 3.0,
            },
        )
    )
    r = forecast(air, "arima", 1, order=(1, 1, 0)).residuals
    assert d["indices"] == anomalies.residual_scores(r, threshold=3.0).indices[0]
    _error(
        api.post(f"{API}/anomalies", json={"values": y.tolist(), "method": "tea_leaves"}),
        400,
        "method",
    )
    _error(api.post(f"{API}/anomalies", json={"values": y.tolist(), "window": 60}), 400, "window")
    _error(
        api.post(f"{API}/anomalies", json={"values": y.tolist(), "method": "seasonal"}),
        400,
        "season_length",
    )


def test_forecast_ready_on_the_websocket(server, api):
    with _subscribed(server, "ForecastReady") as next_event:
        d = _ok(
            api.post(
                f"{API}/forecast",
                json={
                    "series_id": "ws",
                    "historical_data": AIR[:30],
                    "horizon": 2,
                    "method": "naive",
                },
            )
        )
        msg = next_event("ws")
        assert msg["predictions"] == d["predictions"]
        assert msg["confidence_intervals"] == [
            [c["lower"], c["upper"]] for c in d["confidence_intervals"]
        ]


# ---------------------------------------------------------------- applied forecasts


def test_market_against_the_kernel(api):
    body = ROUTES_EXAMPLES["/market"]
    d = _ok(api.post(f"{API}/market", json=body))
    prices = np.asarray([bar["prices"] for bar in body["historical_data"]])
    ref = market_forecast(prices, body["horizon_days"])
    np.testing.assert_allclose(d["predicted_volatility"], ref.volatility, rtol=1e-8)
    np.testing.assert_allclose(d["correlation_forecast"], ref.correlation, rtol=1e-8)
    assert d["symbols"] == body["symbols"] and d["correlation_method"] == "dcc"
    off = {**body, "include_volatility": False}
    assert _ok(api.post(f"{API}/market", json=off))["predicted_volatility"] is None
    bad = json.loads(json.dumps(body))
    bad["historical_data"][3]["prices"] = [1.0]
    _error(api.post(f"{API}/market", json=bad), 400, "historical_data.3.prices")
    bad["historical_data"][3]["prices"] = [1.0, -2.0]
    _error(api.post(f"{API}/market", json=bad), 400, "historical_data.3.prices.1")


def test_traffic(api):
    body = ROUTES_EXAMPLES["/traffic"]
    d = _ok(api.post(f"{API}/traffic", json=body))
    assert d["horizon_steps"] == 6 and d["season_length"] == 24 and d["interval_seconds"] == 3600
    assert d["timestamps"] == [body["timestamps"][-1] + 3600 * k for k in range(1, 7)]
    # seasonal naive: tomorrow's hour = today's
    assert d["predicted_utilization"] == body["historical_utilization"][24:30]
    p = np.asarray(d["prob_exceed_capacity"])
    assert np.all((p >= 0) & (p <= 1)) and "M/M/1/K" in d["queue_model"]
    _error(
        api.post(f"{API}/traffic", json={**body, "timestamps": body["timestamps"][:5]}),
        400,
        "timestamps",
    )
    _error(api.post(f"{API}/traffic", json={**body, "timestamps": None}), 400, "timestamps")


def test_trajectory_uncertainty_grows(api):
    body = ROUTES_EXAMPLES["/trajectory"]
    d = _ok(api.post(f"{API}/trajectory", json=body))
    n = len(d["predicted_positions"])
    assert n == 20 and len(d["timestamps"]) == n
    u = np.asarray(d["uncertainty"])
    assert np.all(np.diff(u) > 0) and u[0] > 0
    v = np.asarray(d["predicted_velocities"])
    assert np.allclose(v[-1], [250.0, -40.0, 5.0], atol=5.0)
    assert np.abs(np.asarray(d["predicted_positions"])).sum() > 0
    _error(api.post(f"{API}/trajectory", json={**body, "timestamps": [0, 1]}), 400, "timestamps")
    _error(
        api.post(f"{API}/trajectory", json={**body, "horizon_seconds": 0}), 400, "horizon_seconds"
    )


# ---------------------------------------------------------------- store, health, examples


def test_series_store_routes_and_health(server, api):
    _ok(
        api.post(
            f"{API}/series",
            json={
                "series_id": "s1",
                "values": [1.0, 2.0, 4.0],
                "timestamps": [10, 20, 30],
                "frequency": "10s",
            },
        )
    )
    rec = _ok(api.get(f"{API}/series/s1"))
    assert rec["values"] == [1.0, 2.0, 4.0] and rec["interval"] == 10
    assert rec["frequency"] == "10s" and rec["last_forecast"] is None
    listed = _ok(api.get(f"{API}/series", params={"limit": 1000}))
    assert listed[0]["id"] == "s1"
    _error(api.get(f"{API}/series/unknown-series"), 404)
    _error(api.post(f"{API}/series", json={"dataset": "moon_phases"}), 400, "dataset")
    names = {d["name"] for d in _ok(api.get(f"{API}/datasets"))}
    assert {"airpassengers", "co2", "sunspots", "nile"} <= names
    h = _ok(api.get(f"{API}/health"))
    assert h["domain"] == "timeseries" and h["series_tracked"] == len(listed)
    assert h["avg_forecast_time_ms"] == h["forecast_latency_ms"]
    with server.client("readonly") as ro:
        assert ro.post(f"{API}/series", json={"values": [1.0]}).status_code == 403
        assert ro.get(f"{API}/series/s1").status_code == 200


ROUTES_EXAMPLES = {r.path.removeprefix(API): r.example for r in ROUTES.routes if r.example}


def test_every_example_answers_200(api):
    posts = [r for r in ROUTES.routes if r.method == "POST"]
    assert {r.path.removeprefix(API) for r in posts} == {
        "/forecast",
        "/backtest",
        "/anomalies",
        "/changepoints",
        "/market",
        "/traffic",
        "/trajectory",
        "/series",
    }
    for route in posts:
        assert _ok(api.post(route.path, json=route.example)), route.path
    assert EXAMPLE_FORECAST["method"] == {"arima": {"p": 1, "d": 1, "q": 1}}


@pytest.mark.slow
def test_a_stored_series_survives_a_server_restart(tmp_path):
    body = {
        "series_id": "keep",
        "historical_data": AIR[:40],
        "horizon": 3,
        "method": "naive",
        "timestamps": list(range(0, 400, 10)),
    }
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("user") as c:
        first = _ok(c.post(f"{API}/forecast", json=body))
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("user") as c:
        rec = _ok(c.get(f"{API}/series/keep"))
        assert rec["values"] == AIR[:40] and rec["timestamps"] == body["timestamps"]
        assert rec["last_forecast"]["predictions"] == first["predictions"]
        assert rec["last_forecast"]["timestamps"] == [400, 410, 420]
        assert _ok(c.get(f"{API}/health"))["series_tracked"] == 1
