"""The PWSA Viewer renders as a notebook cell, steps the live scenario, follows the API's
tracker without mixing the two, and is served at /pwsa."""

from __future__ import annotations

import httpx
import numpy as np
import panel as pn
import pytest

from prism_kernels.pwsa.service import PwsaService
from prism_kernels.runtime import Runtime, set_runtime
from widgets.pwsa import API, LIVE, RANK_COLUMNS, PwsaViewer


@pytest.fixture
def runtime():
    """A fresh process runtime (the API side the viewer follows)."""
    from prism_kernels import runtime as rt

    previous = rt._runtime
    r = set_runtime(Runtime())
    yield r
    set_runtime(previous)


@pytest.fixture(scope="module")
def viewer():
    return PwsaViewer(n_threats=4, n_other=2, n_scans=30, warmup_scans=5)


def test_renders_like_a_notebook_cell(viewer):
    root = pn.panel(viewer).get_root()  # what display(viewer) does in JupyterLab
    assert root is not None and root.children
    assert viewer.k == 5 and len(viewer.gospa_rows) == 5
    assert "Scan 5 of 30" in viewer.status


def test_map_has_truth_tracks_and_ellipses(viewer):
    overlay = viewer._map()
    layers = overlay.values()
    assert [type(e).__name__ for e in layers] == ["Path", "Points", "Points", "Path"]
    truth_now, tracks, ellipses = layers[1], layers[2], layers[3]
    assert len(truth_now) == len(viewer.scenario.truth_at(float(viewer.scenario.times[4])))
    active = viewer.live.tracks(limit=1000, status="active")
    assert len(tracks) == len(active) > 0
    assert len(ellipses.split()) == len(active)
    # each 2-sigma ellipse is centred on its track (km)
    for e, t in zip(ellipses.split(), active, strict=True):
        xy = e.array([0, 1])
        assert np.allclose(xy[:-1].mean(axis=0), np.array(t["position"][:2]) / 1e3, atol=1e-6)


def test_step_advances_and_updates_the_ranking(viewer):
    k = viewer.k
    viewer.param.trigger("step")
    assert viewer.k == k + 1 and len(viewer.gospa_rows) == k + 1
    assert list(viewer.table.value.columns) == RANK_COLUMNS
    assert len(viewer.table.value) == len(viewer.live.tracks(limit=1000, status="active"))
    scores = list(viewer.table.value["risk_score"])
    assert scores == sorted(scores, reverse=True)


def test_play_runs_to_the_end_and_stops():
    v = PwsaViewer(n_threats=2, n_other=0, n_scans=10, warmup_scans=0)
    for _ in range(12):
        v._tick()
    assert v.k == 10 and v.playing is False
    assert np.mean([r["gospa_m"] for r in v.gospa_rows[5:]]) < 2000.0  # c = 2 km: tracks found


def test_api_source_follows_the_runtime_service_without_mixing(runtime):
    v = PwsaViewer(n_threats=2, n_other=0, n_scans=10, warmup_scans=4)
    api = runtime.service(PwsaService)
    assert v.live is not api and api.tracker.n_tracks == 0  # the scenario stays out of the API
    p0, vel = np.array([[1e5, 2e5, 5e4]]), np.array([[1000.0, 0.0, -300.0]])
    for k in range(4):
        api.track_scan("s", 100.0 + k, [{"position": (p0[0] + vel[0] * k).tolist(), "sigma": 10.0}])
    v.source = API
    assert "1 active tracks" in v.status
    assert list(v.table.value["threat_id"]) == [t["track_id"] for t in api.tracks(status="active")]
    assert len(v._map().values()[2]) == 1
    v.source = LIVE
    assert v.service is v.live


def test_changing_the_scenario_restarts_it(viewer):
    viewer.n_threats = 3
    assert viewer.k == viewer.warmup_scans and len(viewer.scenario.threats) == 3


def test_served_at_pwsa(server):
    r = httpx.get(f"{server.url}/pwsa", timeout=60)
    assert r.status_code == 200 and "bokeh" in r.text.lower()
