"""The Pixels Viewer renders as a notebook cell would, follows its controls (recomputing only
what depends on them), reads uploads (.npy and PNG) and the API's frame archive, and shows
what the kernels computed, with the stated confidence threshold and units."""

from __future__ import annotations

import io
import math

import holoviews as hv
import numpy as np
import panel as pn
import pytest
from bokeh.core.validation import check_integrity
from bokeh.document import Document
from bokeh.models import Plot
from PIL import Image

from prism_kernels import runtime as rt
from prism_kernels.pixels.scene import thermal_scene
from prism_kernels.pixels.service import PixelsService
from widgets.pixels import RAW, RESIDUAL, PixelsViewer, read_upload


@pytest.fixture
def runtime(monkeypatch):
    """A fresh in-memory runtime (the API's archive as the dashboard sees it)."""
    r = rt.Runtime()
    monkeypatch.setattr(rt, "_runtime", r)
    yield r
    r.close()


@pytest.fixture(scope="module")
def viewer():
    return PixelsViewer(size=128, n_targets=4, snr=30.0, seed=2)


def test_renders_like_a_notebook_cell(viewer):
    root = pn.panel(viewer).get_root()  # what display(viewer) does in JupyterLab
    assert root is not None and root.children
    assert "4 hotspot(s)" in viewer.status


def test_generated_targets_found_and_classified(viewer):
    truth = viewer.truth.centroids
    hs = viewer.value["detection"]["hotspots"]
    assert len(hs) == len(truth) == 4
    for x, y in truth:
        assert min(math.hypot(h["x"] - x, h["y"] - y) for h in hs) < 1.0
    # The adaptive segmentation (the default overlay) has one object per target.
    seg = viewer.value["segmentation"]
    assert seg["method"] == "adaptive" and seg["num_objects"] == 4
    table = viewer.table.value
    assert len(table) == 4 and set(table["Class"]) <= {
        "missile_plume",
        "aircraft",
        "flare_decoy",
        "clutter",
    }
    assert table["Confidence (0-1)"].between(0, 1).all()


def test_accepted_follows_the_confidence_threshold(viewer):
    v = viewer
    for thr in (0.0, 0.5, 0.95):
        v.confidence_threshold = thr
        table = v.table.value
        assert (table["Accepted"] == (table["Confidence (0-1)"] >= thr)).all()
        assert f"{thr:.2f}" in v.table_title() and f"{thr:.2f}" in v.status
    v.confidence_threshold = 0.5


def test_a_control_recomputes_only_what_depends_on_it(viewer, monkeypatch):
    v = viewer
    calls: list[str] = []
    for name in ("detection", "classification", "segmentation", "entropy", "topology"):
        fn = getattr(v, f"compute_{name}")
        monkeypatch.setattr(v, f"compute_{name}", lambda fn=fn, n=name: calls.append(n) or fn())
    v.entropy_window = 9
    assert calls == ["entropy"]
    calls.clear()
    v.confidence_threshold = 0.6
    assert calls == ["classification"]
    calls.clear()
    v.level = 0.5  # only the threshold lines move
    assert calls == []
    v.topology_input = RAW
    assert calls == ["topology"]
    v.topology_input = RESIDUAL
    v.entropy_window, v.confidence_threshold, v.level = 7, 0.5, 0.4


def test_controls_recompute(viewer):
    v = viewer
    m7 = np.asarray(v.value["entropy"]["entropy_map"]).copy()
    v.entropy_window = 11
    ent = v.value["entropy"]
    assert ent["window_size"] == 11 and not np.array_equal(m7, ent["entropy_map"])
    assert "window 11 px (frame: " in v.entropy_view().opts.get().kwargs["title"]
    v.segmentation_method = "adaptive"
    assert v.value["segmentation"]["method"] == "adaptive"
    v.k_sigma = 19.0
    assert v.value["detection"]["num_hotspots"] <= 4
    v.k_sigma = 6.0
    # The threshold slider moves the Betti numbers: at the frame maximum one class is alive
    # (the brightest peak), at the minimum one component and no loops.
    v.level = 1.0
    assert v.betti_at_threshold()[0] == 1 and "b0 = 1 " in v.betti_text()
    v.level = 0.0
    assert v.betti_at_threshold() == (1, 0)
    # Background-subtracted at 6 noise sigmas: one component per target, no loops.
    grid = v.value["topology"]["grid"]
    lo, hi = float(grid[0]), float(grid[-1])
    v.level = (6 * v.value["detection"]["stats"]["noise_sigma"] - lo) / (hi - lo)
    assert v.betti_at_threshold() == (4, 0)
    # Background-subtracted (default) vs raw: the raw frame's diagram holds the background too.
    n_res = len(v.value["topology"]["diagram"])
    v.topology_input = RAW
    text = v.betti_text()
    assert "Topology of the raw frame at" in text and "frame frame" not in text
    assert len(v.value["topology"]["diagram"]) != n_res
    assert f"of {len(v.value['topology']['diagram'])} pairs" in _title(v.diagram_view())
    v.topology_input = RESIDUAL
    assert "Topology of the background-subtracted frame at" in v.betti_text()
    v.seed = 5
    assert v.truth is not None and len(v.value["detection"]["hotspots"]) == 4


def test_axes_have_units_and_plots_rerange(viewer):
    v = viewer
    frame = hv.render(v.frame_view(), backend="bokeh")
    assert frame.xaxis[0].axis_label == "x (column) (pixels)"
    assert frame.yaxis[0].axis_label == "y (row) (pixels)"
    diagram = hv.render(v.diagram_view(), backend="bokeh")
    assert "counts" in diagram.xaxis[0].axis_label and "counts" in diagram.yaxis[0].axis_label
    betti = hv.render(v.betti_view(), backend="bokeh")
    assert "counts" in betti.xaxis[0].axis_label and "Betti" in betti.yaxis[0].axis_label
    for view in (v.frame_view(), v.diagram_view(), v.betti_view()):
        for el in view.traverse(lambda e: e, [hv.Element]):
            assert el.opts.get("norm").kwargs.get("framewise") is True
    # A frame of another size: the image plot takes the new extent.
    v.size = 256
    assert hv.render(v.frame_view(), backend="bokeh").x_range.end >= 255
    v.size = 128


def test_no_bokeh_validation_warnings(viewer):
    """The 12 W-1005 warnings per load came from figures with a fixed sizing mode and a
    frame size but no width or height; every figure now has both."""
    doc = Document()
    doc.add_root(pn.panel(viewer).get_root(doc))
    issues = check_integrity(list(doc.models))
    assert [str(w) for w in issues.warning + issues.error] == []
    plots = [m for m in doc.models if isinstance(m, Plot)]
    assert len(plots) == 4


def test_uploads(tmp_path):
    v = PixelsViewer(size=128, n_targets=2, seed=1)
    frame, truth = thermal_scene(64, 96, n_hotspots=2, snr=40.0, dtype="uint16", seed=9)
    buf = io.BytesIO()
    np.save(buf, frame)
    v.upload.filename = "scene.npy"
    v.upload.value = buf.getvalue()
    assert v.source == "uploaded" and v.frame.shape == (64, 96) and v.truth is None
    assert v.value["detection"]["num_hotspots"] == 2
    # The image keeps the frame's aspect: a frame of 320 x 213 screen pixels for 96 x 64.
    fig = hv.render(v.frame_view(), backend="bokeh")
    frame_w = fig.width - fig.min_border_left - fig.min_border_right
    frame_h = fig.height - fig.min_border_top - fig.min_border_bottom
    assert (frame_w, frame_h) == (320, 213)
    png = io.BytesIO()
    Image.fromarray((np.arange(40 * 50) % 251).astype(np.uint8).reshape(40, 50)).save(
        png, format="PNG"
    )
    assert read_upload("x.png", png.getvalue()).shape == (40, 50)
    v.upload.filename = "bad.png"
    v.upload.value = b"not an image"
    assert v.status.startswith("Upload refused") and v.frame.shape == (64, 96)
    with pytest.raises(Exception, match="2-D|expected"):
        read_upload("cube.npy", _npy(np.zeros((2, 3, 4))))


def _title(view) -> str:
    """The title of a view as Bokeh draws it."""
    return hv.render(view, backend="bokeh").title.text


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_api_archive_source(runtime):
    svc = runtime.service(PixelsService)
    frame, _ = thermal_scene(80, 80, n_hotspots=3, snr=30.0, dtype="uint16", seed=4)
    svc.process(frame, "from-api")
    v = PixelsViewer(size=128, n_targets=1)
    assert v.service is svc
    v.source = "API archive"
    assert v.archive_frame == "from-api"
    assert v.frame.shape == (80, 80) and v.value["detection"]["num_hotspots"] == 3
    # The viewer analyses a copy: the API's archive holds only the frame the API stored.
    assert [f["frame_id"] for f in svc.list_frames()] == ["from-api"]


def test_empty_archive_says_so(runtime):
    v = PixelsViewer(size=128, n_targets=1)
    v.source = "API archive"
    assert v.frame is None and "no frame" in v.status
    assert pn.panel(v).get_root() is not None


def test_ipywidget_form():
    w = PixelsViewer(size=128, n_targets=1).ipywidget()
    assert type(w).__name__ == "BokehModel"
