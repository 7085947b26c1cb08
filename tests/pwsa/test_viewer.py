"""The PWSA Viewer renders as a notebook cell, steps the live scenario, follows the API's
tracker without mixing the two, recomputes only what a control affects, shows its ellipses
honestly, and is served at /pwsa."""

from __future__ import annotations

import holoviews as hv
import httpx
import numpy as np
import panel as pn
import pytest

from prism_kernels.pwsa.service import PwsaService
from prism_kernels.runtime import Runtime, set_runtime
from widgets.pwsa import API, ELLIPSE_SHARE, LIVE, RANK_COLUMNS, PwsaViewer, magnification


@pytest.fixture
def runtime():
    """A fresh process runtime (the API side the viewer follows)."""
    from prism_kernels import runtime as rt

    previous = rt._runtime
    r = set_runtime(Runtime())
    yield r
    set_runtime(previous)


def _opt(element, name):
    """An option HoloViews will draw ``element`` with (style or plot option)."""
    for group in ("style", "plot"):
        kw = hv.Store.lookup_options("bokeh", element, group).kwargs
        if name in kw:
            return kw[name]
    raise KeyError(name)


@pytest.fixture(scope="module")
def viewer():
    return PwsaViewer(n_threats=4, n_other=2, n_scans=30, warmup_scans=5)


def test_renders_like_a_notebook_cell(viewer):
    root = pn.panel(viewer).get_root()  # what display(viewer) does in JupyterLab
    assert root is not None and root.children
    assert viewer.k == 5 and len(viewer.gospa_rows) == 5
    assert "Scan 5 of 30" in viewer.summary


def test_map_draws_truth_on_top_of_tracks_and_states_the_magnification(viewer):
    overlay = viewer._map()
    layers = overlay.values()
    assert [e.label for e in layers][3:] == ["tracks", "truth now"]  # truth dots drawn last
    truth_paths, ellipses, _waiting, tracks, truth_now = layers
    assert len(truth_now) == len(viewer.scenario.truth_at(float(viewer.scenario.times[4])))
    active = viewer.live.tracks(limit=1000, status="active")
    assert len(tracks) == len(active) > 0
    assert len(ellipses.split()) == len(active)
    # crosses bigger than the dots (arms visible around them) and see-through
    assert _opt(tracks, "size") > _opt(truth_now, "size") and _opt(tracks, "alpha") < 1
    # the ellipses are magnified, by a factor named in the legend and the title
    factor = magnification(
        [t["ellipse"]["semi_major"] for t in active],
        float(np.ptp(np.concatenate([tracks.array([0, 1]), truth_now.array([0, 1])]), axis=0).max())
        * 1e3,
    )
    assert factor > 10 and f"×{factor:g}" in ellipses.label
    assert f"×{factor:g}" in _opt(overlay, "title")
    for e, t in zip(ellipses.split(), active, strict=True):
        xy = e.array([0, 1])
        assert np.allclose(xy[:-1].mean(axis=0), np.array(t["position"][:2]) / 1e3, atol=1e-6)
        half = 0.5 * np.ptp(xy, axis=0).max() * 1e3  # m, magnified
        assert half == pytest.approx(factor * t["ellipse"]["semi_major"], rel=0.02)


def test_magnification_is_a_round_factor_that_makes_ellipses_visible():
    assert magnification([], 1e6) == 1.0
    assert magnification([1e5], 1e6) == 1.0  # already large: true size
    f = magnification([300.0], 1.1e6)
    assert f in (10, 20, 50, 100, 200, 500) and 0.4 <= 2 * 300 * f / (ELLIPSE_SHARE * 1.1e6) <= 2.5


def test_zoom_shows_the_top_ranked_track_at_true_scale(viewer):
    z = viewer.value["zoom"]
    assert z["track_id"] == viewer.table.value.iloc[0]["threat_id"]
    ov = viewer._zoom()
    outline, centre, truth = ov.values()
    half = 0.5 * np.ptp(outline.array([0, 1]), axis=0).max()
    assert half == pytest.approx(z["ellipse"]["semi_major"], rel=0.02)  # metres, not magnified
    assert len(centre) == 1 and len(truth) == 1
    assert np.linalg.norm(truth.array([0, 1])[0]) < 2000.0  # the truth lies near the track
    assert "true size" in _opt(ov, "title")


def test_step_advances_and_updates_the_ranking(viewer):
    k = viewer.k
    viewer.param.trigger("step")
    assert viewer.k == k + 1 and len(viewer.gospa_rows) == k + 1
    assert list(viewer.table.value.columns) == RANK_COLUMNS
    assert len(viewer.table.value) == len(viewer.live.tracks(limit=1000, status="active"))
    scores = list(viewer.table.value["risk_score"])
    assert scores == sorted(scores, reverse=True)
    assert viewer.table.titles["time_to_impact_s"] == "time to impact (s)"


def test_strategy_recomputes_only_the_ranking(viewer):
    before = {n: getattr(viewer, f"{n}_version") for n in ("scenario", "frame", "ranking")}
    k = viewer.k
    viewer.strategy = "time_critical"
    after = {n: getattr(viewer, f"{n}_version") for n in before}
    assert after["scenario"] == before["scenario"] and after["frame"] == before["frame"]
    assert after["ranking"] == before["ranking"] + 1 and viewer.k == k
    assert viewer.stale(["strategy"]) == ["ranking", "zoom"]
    assert viewer.stale(["source"]) == ["frame", "ranking", "zoom"]


def test_play_becomes_pause_and_runs_to_the_end():
    v = PwsaViewer(n_threats=2, n_other=0, n_scans=10, warmup_scans=0)
    v.playing = True
    assert v._play_button.name == "⏸ Pause"
    for _ in range(12):
        v._tick()
    assert v.k == 10 and v.playing is False
    assert v._play_button.name == "▶ Play"
    assert np.mean([r["gospa_m"] for r in v.gospa_rows[5:]]) < 2000.0  # c = 2 km: tracks found


def test_api_source_shows_the_api_tracks_and_hides_the_scenario(runtime):
    v = PwsaViewer(n_threats=2, n_other=0, n_scans=10, warmup_scans=4)
    api = runtime.service(PwsaService)
    assert v.service is api and v.live is not api
    assert api.tracker.n_tracks == 0  # the scenario stays out of the API
    p0, vel = np.array([[1e5, 2e5, 5e4]]), np.array([[1000.0, 0.0, -300.0]])
    for k in range(4):
        api.track_scan("s", 100.0 + k, [{"position": (p0[0] + vel[0] * k).tolist(), "sigma": 10.0}])
    assert v._live_box.visible
    v.source = API
    assert not v._live_box.visible
    assert "1 active and 0 tentative tracks" in v.summary
    assert list(v.table.value["threat_id"]) == [t["track_id"] for t in api.tracks(status="active")]
    ov = v._map()
    tracks, ellipses = ov.values()[3], ov.values()[1]
    assert len(tracks) == 1 and len(ellipses.split()) == 1  # the plot is not empty
    assert tracks.array([0, 1])[0] == pytest.approx(np.array(api.tracks()[0]["position"][:2]) / 1e3)
    assert "API" in _opt(ov, "title")
    # one scan of a new object: no track yet, but its measurement is shown as waiting
    api.track_scan("s", 103.5, [{"position": [-3e5, -1e5, 4e4], "sigma": 10.0}])
    v.refresh(["frame"])
    waiting = v._map().values()[2]
    assert waiting.array([0, 1]).tolist() == [[-300.0, -100.0]]
    # a new API scan is picked up by the poller
    api.track_scan("s", 104.0, [{"position": (p0[0] + vel[0] * 4).tolist(), "sigma": 10.0}])
    version = v.frame_version
    v._poll_api()
    assert v.frame_version == version + 1
    v.source = LIVE
    assert v._live_box.visible and "Scan 4 of 10" in v.summary


def test_plots_re_range_when_the_source_changes(runtime):
    """Switching to the API's tracks (far from the scenario) moves the map's axes onto them:
    every plotted mark lies inside the plot's ranges."""
    v = PwsaViewer(n_threats=3, n_other=1, n_scans=10, warmup_scans=4)
    api = runtime.service(PwsaService)
    p0, vel = np.array([2.0e6, -1.5e6, 6.0e4]), np.array([1200.0, -300.0, -400.0])
    for k in range(4):
        api.track_scan("s", 100.0 + k, [{"position": (p0 + vel * k).tolist(), "sigma": 30.0}])
    map_pane = v.main()[0][0]
    plot = hv.renderer("bokeh").get_plot(map_pane.object)
    live_x = (plot.state.x_range.start, plot.state.x_range.end)
    assert live_x[1] < 1000.0  # the scenario lies within a few hundred km
    v.source = API
    x, y = (np.array(api.tracks()[0]["position"][:2]) / 1e3).tolist()
    assert plot.state.x_range.start <= x <= plot.state.x_range.end
    assert plot.state.y_range.start <= y <= plot.state.y_range.end
    assert plot.state.x_range.end - plot.state.x_range.start < 100.0  # zoomed onto the track


def test_changing_the_scenario_restarts_it(viewer):
    viewer.n_threats = 3
    assert viewer.k == viewer.warmup_scans and len(viewer.scenario.threats) == 3


def test_served_at_pwsa(server):
    assert httpx.get(f"{server.url}/pwsa", timeout=60).status_code == 302  # sign in first
    with server.login("readonly") as c:
        r = c.get("/pwsa", timeout=60)
    assert r.status_code == 200 and "bokeh" in r.text.lower()
