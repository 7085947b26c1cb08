"""The Telecom viewer: results computed through the service, the probe and the source switch
change what it shows, a failure re-routes the map, the day's peak is what was asked for."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pytest

from prism_kernels.telecom.service import TelecomService
from widgets.telecom import GEANT, MANAGED, TelecomViewer


@pytest.fixture
def viewer():
    return TelecomViewer(service=TelecomService())


def _text(v) -> str:
    return v.summary().object


def test_results_and_probe(viewer):
    assert set(viewer.value) == {"network", "day", "routing", "n1", "failure_view"}
    assert viewer.status == ""
    assert viewer.value["day"]["igp_peak"].max() == pytest.approx(viewer.peak_utilization)
    before = _text(viewer)
    name, value = viewer.probe
    setattr(viewer, name, value)
    after = _text(viewer)
    assert after != before and "Routing balance_load" in after
    assert viewer.value["routing"]["fits"] is True
    assert not viewer.ranking.value.empty and list(viewer.ranking.value["Rank"])[:3] == [1, 2, 3]
    hv.render(viewer.map_plot())
    hv.render(viewer.day_plot())


def test_failure_and_demand_highlight(viewer):
    viewer.demand = viewer.param.demand.objects[0]
    assert viewer._highlight(viewer.value["network"]["topo"]) is not None
    viewer.failure = "link:KSC-IND"
    fv = viewer.value["failure_view"]
    assert fv is not None and "Failure link:KSC-IND" in _text(viewer)
    u = viewer._utilization()
    assert fv["max_utilization"] >= 0 and u.shape == fv["utilization"].shape
    hv.render(viewer.map_plot())
    viewer.failure = "none"
    assert viewer.value["failure_view"] is None


def test_source_switch_and_hour(viewer):
    viewer.failure = "node:DEN"
    name, value = viewer.source_probe
    setattr(viewer, name, value)
    assert viewer.status == "" and viewer.value["network"]["topo"].n == 40
    assert viewer.failure == "none" and viewer.value["failure_view"] is None
    assert "GEANT" in _text(viewer) and len(viewer.param.demand.objects) == 40 * 39
    peak = viewer.value["day"]["igp_peak"]
    viewer.hour = int(np.argmin(peak))
    assert f"hour {viewer.hour:02d}:00" in _text(viewer)
    hv.render(viewer.map_plot())
    viewer.source = MANAGED
    assert viewer.value["network"]["topo"].name == viewer.service.managed()[0].name
    assert viewer.source != GEANT
    viewer.__panel__()
