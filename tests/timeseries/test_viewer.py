"""The Time-series viewer: results computed through the service, the probe and the source
switch change what it shows, a stored series can be picked, errors reach the status line."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from prism_kernels.timeseries.service import TimeseriesService
from widgets.timeseries import STORED, TimeseriesViewer


@pytest.fixture(scope="module")
def viewer():
    return TimeseriesViewer(
        service=TimeseriesService(), model="naive", backtest_models=["naive", "seasonal_naive"]
    )


def _text(v) -> str:
    return v.summary().object


def test_results_probe_and_plots(viewer):
    assert set(viewer.value) == {
        "data",
        "forecast",
        "diagnostics",
        "anomalies",
        "changepoints",
        "backtest",
    }
    assert viewer.status == "", viewer.status
    f = viewer.value["forecast"]
    assert len(f["predictions"]) == viewer.horizon and f["metrics"]["test_points"] > 0
    before = _text(viewer)
    name, value = viewer.probe
    setattr(viewer, name, value)
    after = _text(viewer)
    assert after != before and "drift" in after.lower()
    table = viewer.table.value
    assert list(table["Model"]) == ["naive", "seasonal_naive"] and np.isfinite(table["MASE"]).all()
    for plot in (viewer.series_plot(), viewer.residual_plot(), viewer.acf_plot()):
        hv.render(plot)


def test_source_switch_and_a_stored_series(viewer):
    name, value = viewer.source_probe
    setattr(viewer, name, value)
    assert viewer.status == "" and viewer.value["data"]["values"].size == 100
    assert "Nile" in _text(viewer) or "nile" in _text(viewer).lower()
    hv.render(viewer.series_plot())
    viewer.source = "airpassengers"  # monthly: the forecast lies on the next month starts
    fx = viewer._future_x(viewer.value["forecast"])
    assert str(fx[0].date()) == "1961-01-01" and all(d.day == 1 for d in fx)
    y = np.sin(np.arange(80) / 3.0) + np.arange(80) / 20.0
    viewer.service.put_series("mine", y, timestamps=list(range(1000, 1800, 10)))
    viewer.refresh(["data"])  # the list of sources now offers the stored series
    assert STORED + "mine" in viewer.param.source.objects
    viewer.source = STORED + "mine"
    assert viewer.status == "" and viewer.value["data"]["values"].size == 80
    f = viewer.value["forecast"]
    assert list(viewer._future_x(f)) == f["timestamps"] == [1800 + 10 * k for k in range(12)]
    hv.render(viewer.series_plot())
    viewer.__panel__()


def test_errors_reach_the_status_line(viewer):
    viewer.source = "airpassengers"
    viewer.model = "lstm"
    viewer.horizon = 100  # too long for the conformal calibration of 144 points
    assert viewer.status.startswith("**Forecast:**")
    viewer.horizon = 12
    viewer.model = "naive"
    assert viewer.status == ""
