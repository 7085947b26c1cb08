"""The System Viewer renders as a notebook cell would render it, and reacts to its controls."""

from __future__ import annotations

import asyncio

import panel as pn

from widgets.system import SystemViewer


def test_renders_like_a_notebook_cell():
    v = SystemViewer(refresh_ms=0)
    root = pn.panel(v).get_root()  # what display(v) does in JupyterLab
    assert root is not None and root.children
    assert v.readings is not None and len(v.readings) == 1
    v.sample()
    assert len(v.readings) == 2


def test_ipywidget_form():
    w = SystemViewer(refresh_ms=0).ipywidget()
    assert type(w).__name__ == "BokehModel"


def test_benchmark_button_fills_the_results():
    v = SystemViewer(refresh_ms=0, benchmark_type="matrix_multiply", workload_size=64)
    asyncio.run(v._run_benchmark())
    assert list(v.results["benchmark_type"]) == ["matrix_multiply"]
    assert v.results["throughput_gflops"].iloc[0] > 0
    assert v.status.startswith("Done")


def test_window_changes_the_chart_title():
    v = SystemViewer(refresh_ms=0)
    assert "last 60 s" in v.live_chart().opts.get().kwargs["title"]
    v.window_s = 300
    assert "last 300 s" in v.live_chart().opts.get().kwargs["title"]
