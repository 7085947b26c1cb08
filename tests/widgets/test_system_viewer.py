"""The System Viewer renders as a notebook cell would render it, and reacts to its controls."""

from __future__ import annotations

import math

import holoviews as hv
import panel as pn
from bokeh.models import Legend

from prism_kernels.gpu_service import GpuService
from widgets.system import SystemViewer


def test_renders_like_a_notebook_cell():
    v = SystemViewer(refresh_ms=0)
    root = pn.panel(v).get_root()  # what display(v) does in JupyterLab
    assert root is not None and root.children
    assert v.readings is not None and len(v.readings) == 1
    v.sample()
    assert len(v.readings) == 2
    assert 0 < v.readings["memory %"].iloc[-1] <= 100


def test_ipywidget_form():
    w = SystemViewer(refresh_ms=0).ipywidget()
    assert type(w).__name__ == "BokehModel"


def test_benchmark_button_fills_the_results_and_stores_nothing():
    svc = GpuService()
    v = SystemViewer(service=svc, refresh_ms=0, benchmark_type="matrix_multiply", workload_size=64)
    assert v.results.empty and v.results_frame().empty
    v.param.trigger("run")  # outside a served session the run happens here and now
    assert list(v.results["benchmark_type"]) == ["matrix_multiply"]
    assert v.results["throughput_gflops"].iloc[0] > 0
    assert v.status.startswith("Done")
    # Shown, not stored: storing a run is the API's POST, which a readonly key may not make.
    assert svc.runs()["total"] == 0


def test_results_table_is_rounded_with_a_unit_in_every_numeric_heading():
    v = SystemViewer(service=GpuService(), refresh_ms=0, workload_size=64)
    v.param.trigger("run")
    raw, shown = v.results, v.results_table().value
    assert list(shown["Test"]) == ["matrix_multiply", "fft", "memory_bandwidth"]
    numeric = [c for c in shown.columns if shown[c].dtype.kind in "if"]
    assert len(numeric) == 4
    for col in numeric:
        assert col.endswith(")") and "(" in col, f"no unit in {col!r}"
    # Three significant digits of the same measurement as the raw row (a gap stays a gap).
    pairs = {
        "Time (ms)": "duration_ms",
        "Compute (GFLOP/s)": "throughput_gflops",
        "Bandwidth (GB/s)": "memory_bandwidth_gb_s",
    }
    for col, field in pairs.items():
        for got, want in zip(shown[col], raw[field], strict=True):
            if want is None or math.isnan(want):
                assert math.isnan(got)
                continue
            assert got == float(f"{want:.3g}") and math.isclose(got, want, rel_tol=5e-3)
    assert shown["Time (ms)"].iloc[0] != raw["duration_ms"].iloc[0]  # it was rounded
    # Sizes count the elements of one array: the product's matrix is 64 x 64.
    assert list(shown["Array size (elements)"]) == [64 * 64, 64 * 64, 64 * 64]


def test_window_changes_the_chart_title():
    v = SystemViewer(refresh_ms=0)
    assert "last 60 s" in v.live_chart().opts.get().kwargs["title"]
    v.window_s = 300
    assert "last 300 s" in v.live_chart().opts.get().kwargs["title"]


def test_live_chart_legend_is_outside_the_plot_and_axes_carry_units():
    v = SystemViewer(refresh_ms=0)
    v.sample()
    fig = hv.render(v.live_chart())
    # A legend inside the plot area covers the lines; Bokeh puts an outside one in a side panel.
    inside = [r for r in fig.center if isinstance(r, Legend)]
    outside = [r for side in (fig.right, fig.left, fig.above, fig.below) for r in side]
    assert not inside
    legends = [r for r in outside if isinstance(r, Legend)]
    assert legends and {i.label["value"] for i in legends[0].items} >= {"CPU", "Memory"}
    assert fig.xaxis[0].axis_label == "Time (UTC)"
    assert fig.yaxis[0].axis_label == "Load (%)"


def test_results_chart_axis_names_its_units():
    v = SystemViewer(service=GpuService(), refresh_ms=0, workload_size=64)
    v.param.trigger("run")
    fig = hv.render(v.results_chart())
    assert "GFLOP/s" in fig.yaxis[0].axis_label and "GB/s" in fig.yaxis[0].axis_label
