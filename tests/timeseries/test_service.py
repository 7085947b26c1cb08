"""The time-series service: the series store (ids, newest first, NotFound, bounds, restart),
forecasts equal to the kernels' on every series of a mixed-length batch, held-out metrics
equal to a backtest computed by hand, the original's future-timestamp rule, events, and
validate-first (a rejected request changes no state)."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.events import EventBus
from prism_kernels.store import Store
from prism_kernels.timeseries import backtest as bt
from prism_kernels.timeseries import changepoints as cp
from prism_kernels.timeseries import datasets
from prism_kernels.timeseries.models import forecast
from prism_kernels.timeseries.service import TimeseriesService


@pytest.fixture
def bus():
    return EventBus()


@pytest.fixture
def svc(bus):
    return TimeseriesService(Store(":memory:"), bus)


@pytest.fixture
def air():
    return np.asarray(datasets.load("airpassengers")["values"])


def _events(bus):
    seen = []
    bus.subscribe(lambda e: seen.append(e))
    return seen


def test_store_get_list_and_not_found(svc):
    rec = svc.put_series("a", [1.0, 2.0, 3.0], [10, 20, 30], frequency="10s")
    assert rec["data_points"] == 3 and rec["values"] == [1.0, 2.0, 3.0]
    assert rec["timestamps"] == [10, 20, 30] and rec["interval"] == 10
    assert rec["last_forecast"] is None and rec["source"] == "api"
    svc.put_series("b", [4.0, 5.0])
    assert [s["id"] for s in svc.list_series()] == ["b", "a"]  # newest first
    assert svc.list_series(limit=1, offset=1)[0]["id"] == "a"
    with pytest.raises(NotFound):
        svc.get_series("zzz")
    svc.delete_series("b")
    with pytest.raises(NotFound):
        svc.delete_series("b")
    d = svc.save_series(dataset="nile")
    assert d["id"] == "nile" and d["season_length"] == 1 and d["data_points"] == 100
    assert "Nile" in d["source"] or "nile" in d["source"]


@pytest.mark.parametrize(
    "values,timestamps,field",
    [
        ([], None, "values"),
        ([1.0, float("nan")], None, "values.1"),
        ([1.0, float("inf")], None, "values.1"),
        ([1.0, 2.0], [1], "timestamps"),
        ([1.0, 2.0, 3.0], [1, 3, 2], "timestamps.2"),
        ([[1.0, 2.0]], None, "values"),
    ],
)
def test_bad_series_name_the_field(svc, values, timestamps, field):
    with pytest.raises(InvalidInput) as e:
        svc.put_series("x", values, timestamps)
    assert e.value.field == field
    assert svc.list_series() == []


def test_future_timestamps_follow_the_original_rule():
    f = TimeseriesService._future
    assert f(np.array([0, 10, 20, 31]), 3) == [41, 51, 61]  # (31 - 0) // 3 = 10
    assert f(np.array([100]), 2) == [3700, 7300]  # one timestamp: 3600 s steps
    assert f(None, 2, now=1000) == [4600, 8200]  # none: from now, 3600 s steps
    # Rust's integer division truncates toward zero (Python's // floors)
    assert f(np.array([0, -7]), 1) == [-14]
    assert f(np.array([-7, 0]), 1) == [7]


def test_forecast_equals_the_kernel_on_a_mixed_length_batch(svc, air, bus):
    seen = _events(bus)
    a, b, c = air[:60], air, air[:60] * 1.5
    out = svc.forecast(
        [{"values": a, "series_id": "a"}, {"values": b}, {"values": c}],
        horizon=6,
        method="ets",
        options={"model": "AAN"},
        season_length=12,
        level=0.9,
    )
    f60 = forecast(np.stack([a, c]), "ets", 6, level=0.9, season_length=12, model="AAN")
    f144 = forecast(b, "ets", 6, level=0.9, season_length=12, model="AAN")
    got = out["forecasts"]
    assert [g["data_points"] for g in got] == [60, 144, 60]
    for g, mean, lo, hi in (
        (got[0], f60.mean[0], f60.lower[0], f60.upper[0]),
        (got[1], f144.mean[0], f144.lower[0], f144.upper[0]),
        (got[2], f60.mean[1], f60.lower[1], f60.upper[1]),
    ):
        np.testing.assert_allclose(g["predictions"], mean, rtol=1e-10)
        np.testing.assert_allclose([x["lower"] for x in g["confidence_intervals"]], lo, rtol=1e-10)
        np.testing.assert_allclose([x["upper"] for x in g["confidence_intervals"]], hi, rtol=1e-10)
        assert all(x["confidence_level"] == 0.9 for x in g["confidence_intervals"])
        assert g["method_used"].startswith("ETS(A,A,N)")
    # the series with an id is stored with its last forecast; ForecastReady for each series
    rec = svc.get_series("a")
    assert rec["last_forecast"]["predictions"] == got[0]["predictions"]
    assert rec["last_backtest"]["kind"] == "holdout"
    ready = [e for e in seen if e.type == "ForecastReady"]
    assert len(ready) == 3 and ready[0].data["series_id"] == "a"
    assert ready[0].data["confidence_intervals"][0] == [
        got[0]["confidence_intervals"][0]["lower"],
        got[0]["confidence_intervals"][0]["upper"],
    ]


def test_metrics_come_from_held_out_data(svc, air):
    out = svc.forecast([{"values": air}], horizon=12, method="seasonal_naive", season_length=12)
    m = out["forecasts"][0]["metrics"]
    assert m["train_points"] == 132 and m["test_points"] == 12
    assert "held out" in m["holdout"]
    # by hand: the seasonal naive forecast of the last 12 from the first 132 is the 12 before
    pred, test = air[120:132], air[132:]
    assert m["mae"] == pytest.approx(np.mean(np.abs(test - pred)), rel=1e-12)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((test - pred) ** 2)), rel=1e-12)
    scale = np.mean(np.abs(air[12:132] - air[:120]))
    assert m["mase"] == pytest.approx(np.mean(np.abs(test - pred)) / scale, rel=1e-12)
    ref = bt.backtest(air, "seasonal_naive", 12, n_windows=1, season_length=12)
    assert m["interval_coverage"] == pytest.approx(ref.per_series["coverage"][0])
    # too short to hold out: no metrics, and why
    short = svc.forecast([{"values": [1.0, 2.0, 3.0]}], horizon=2, method="naive")
    assert short["forecasts"][0]["metrics"] is None and short["forecasts"][0]["metrics_note"]


def test_forecast_of_a_stored_series_and_validate_first(svc, air):
    svc.save_series(dataset="airpassengers", series_id="air")
    out = svc.forecast([{"series_id": "air"}], horizon=3, method="naive")
    assert out["season_length"] == 12  # from the stored series
    assert svc.get_series("air")["last_forecast"]["method"] == "naive"
    before = svc.get_series("air")
    for kw, field in (
        ({"horizon": 0}, "horizon"),
        ({"method": "prophet"}, "method"),
        ({"level": 0.0}, "confidence_level"),
        ({"method": "arima", "options": {"order": (9, 0, 9)}}, "values"),
    ):
        with pytest.raises(InvalidInput) as e:
            svc.forecast([{"series_id": "air", "values": air[:10]}], **{"horizon": 3, **kw})
        assert e.value.field.split(".")[0] in (field, "order", "series"), e.value.field
    assert svc.get_series("air") == before  # nothing changed
    with pytest.raises(NotFound):
        svc.forecast([{"series_id": "nope"}], horizon=3, method="naive")
    with pytest.raises(InvalidInput) as e:
        svc.forecast([{"values": np.ones(10)}] * 3, horizon=400_000, method="naive")
    assert e.value.field == "horizon"


def test_backtest_table_equals_the_kernel(svc, air):
    out = svc.backtest(
        [{"values": air, "series_id": "air"}],
        methods=["naive", "seasonal_naive"],
        horizon=6,
        windows=3,
        season_length=12,
    )
    for row in out["rows"]:
        ref = bt.backtest(air, row["method"], 6, n_windows=3, season_length=12)
        for k in ("mae", "rmse", "mape", "smape", "mase", "coverage"):
            assert row[k] == pytest.approx(float(ref.per_series[k][0]), rel=1e-12)
    assert "rolling origin" in out["holdout"]
    assert [r["method"] for r in svc.get_series("air")["last_backtest"]["rows"]] == [
        "naive",
        "seasonal_naive",
    ]
    with pytest.raises(InvalidInput) as e:
        svc.backtest([{"values": air}], methods=["naive", "oracle"])
    assert e.value.field == "methods.1"


def test_changepoints_equal_the_kernel(svc, rng):
    y = np.r_[np.zeros(60), np.full(60, 4.0), np.full(40, -2.0)] + 0.3 * rng.standard_normal(160)
    out = svc.changepoints([{"values": y}], method="pelt", cost="l2", penalty=10.0, jump=1)
    r = out["results"][0]
    assert r["breakpoints"] == cp.pelt(y, penalty=10.0, cost="l2", jump=1)[0]
    assert r["breakpoints"][-1] == 160 and r["changepoints"] == r["breakpoints"][:-1]
    assert sum(s["n"] for s in r["segments"]) == 160
    r2 = svc.changepoints([{"values": y}], method="binseg", n_breakpoints=2, jump=1)["results"][0]
    assert r2["breakpoints"] == cp.binseg(y, n_breakpoints=2, jump=1)[0] and r2["penalty"] is None
    with pytest.raises(InvalidInput):
        svc.changepoints([{"values": y}], method="bottom_up")


def test_store_survives_a_restart(tmp_path, air):
    path = tmp_path / "ts.sqlite"
    store = Store(path)
    s1 = TimeseriesService(store, EventBus())
    s1.forecast([{"values": air, "series_id": "air", "timestamps": list(range(144))}], 4, "naive")
    store.close()
    store = Store(path)
    s2 = TimeseriesService(store, EventBus())
    rec = s2.get_series("air")
    assert rec["values"] == air.tolist() and rec["timestamps"] == list(range(144))
    assert rec["last_forecast"]["timestamps"] == [144, 145, 146, 147]
    store.close()


def test_bound_drops_the_oldest():
    s = TimeseriesService(Store(":memory:"), EventBus(), max_series=2)
    for i in range(3):
        s.put_series(f"s{i}", [1.0, 2.0])
    assert [r["id"] for r in s.list_series()] == ["s2", "s1"]
    with pytest.raises(InvalidInput):
        TimeseriesService(max_series=0)
