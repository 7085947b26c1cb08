"""The Pixels Viewer renders as a notebook cell would, follows its controls, reads uploads
(.npy and PNG) and the API's frame archive, and shows what the kernels computed."""

from __future__ import annotations

import io
import math

import holoviews as hv
import numpy as np
import panel as pn
import pytest
from PIL import Image

from prism_kernels import runtime as rt
from prism_kernels.pixels.scene import thermal_scene
from prism_kernels.pixels.service import PixelsService
from widgets.pixels import PixelsViewer, read_upload


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
    hs = viewer.det["hotspots"]
    assert len(hs) == len(truth) == 4
    for x, y in truth:
        assert min(math.hypot(h["x"] - x, h["y"] - y) for h in hs) < 1.0
    # The adaptive segmentation (the default overlay) has one object per target.
    assert viewer.seg["method"] == "adaptive" and viewer.seg["num_objects"] == 4
    table = viewer.table.value
    assert len(table) == 4 and set(table["class"]) <= {
        "missile_plume",
        "aircraft",
        "flare_decoy",
        "clutter",
    }
    assert table["confidence"].between(0, 1).all()


def test_controls_recompute(viewer):
    v = viewer
    m7 = np.asarray(v.ent["entropy_map"]).copy()
    v.entropy_window = 11
    assert v.ent["window_size"] == 11 and not np.array_equal(m7, v.ent["entropy_map"])
    assert "window 11" in v.entropy_view().opts.get().kwargs["title"]
    v.segmentation_method = "adaptive"
    assert v.seg["method"] == "adaptive"
    v.k_sigma = 19.0
    assert v.det["num_hotspots"] <= 4
    v.k_sigma = 6.0
    # The threshold slider moves the Betti numbers: at the frame maximum one class is alive
    # (the brightest peak), at the minimum one component and no loops.
    v.level = 1.0
    assert v.betti_at_threshold()[0] == 1 and "b0 = 1 " in v.betti_text()
    v.level = 0.0
    assert v.betti_at_threshold() == (1, 0)
    # Background-subtracted at 6 noise sigmas: one component per target, no loops.
    lo, hi = float(v._grid[0]), float(v._grid[-1])
    v.level = (6 * v.det["stats"]["noise_sigma"] - lo) / (hi - lo)
    assert v.betti_at_threshold() == (4, 0)
    # Background-subtracted (default) vs raw: the raw frame's diagram holds the background too.
    n_res = len(v.dgm)
    v.topology_input = "raw frame"
    assert "raw frame" in v.betti_text() and len(v.dgm) != n_res
    assert f"of {len(v.dgm)} pairs" in _title(v.diagram_view())
    v.topology_input = "background-subtracted"
    v.seed = 5
    assert v.truth is not None and len(v.det["hotspots"]) == 4


def test_uploads(tmp_path):
    v = PixelsViewer(size=128, n_targets=2, seed=1)
    frame, truth = thermal_scene(64, 96, n_hotspots=2, snr=40.0, dtype="uint16", seed=9)
    buf = io.BytesIO()
    np.save(buf, frame)
    v.upload.filename = "scene.npy"
    v.upload.value = buf.getvalue()
    assert v.source == "uploaded" and v.frame.shape == (64, 96) and v.truth is None
    assert v.det["num_hotspots"] == 2
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
    v.source = "API archive"
    assert v.archive_frame == "from-api"
    assert v.frame.shape == (80, 80) and v.det["num_hotspots"] == 3
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
