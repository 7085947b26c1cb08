"""The System dashboard: which backend computes, on which device, how busy the machine is,
and a benchmark you can run. Served at ``/system``; in a notebook, display ``SystemViewer()``.

The device status and readings come from the runtime's
:class:`~prism_kernels.gpu_service.GpuService` (the instance the REST API's ``/api/v1/gpu``
routes use). The benchmark runs :func:`prism_kernels.gpu.run_benchmark` off the event loop and
is shown, not stored: storing a run is ``POST /api/v1/gpu/benchmark``, which a ``readonly`` key
may not do, and a dashboard session cannot tell the store which key opened it from a worker
thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import fields

import holoviews as hv
import pandas as pd
import panel as pn
import param

from prism_kernels import backend as B
from prism_kernels import gpu
from prism_kernels.gpu_service import GpuService
from widgets.base import PLOT_HEIGHT, DomainViewer, Result, result_table

# The live chart's series: column of :attr:`SystemViewer.readings` -> legend label.
SERIES = {"cpu %": "CPU", "memory %": "Memory", "gpu %": "GPU"}
TIME = hv.Dimension("time", label="Time (UTC)")
LOAD = hv.Dimension("load", label="Load", unit="%")

# The results table: column shown -> (column of a benchmark row, significant digits or None).
TABLE = {
    "Test": ("benchmark_type", None),
    "Backend": ("backend", None),
    "Device": ("device", None),
    "Array size (elements)": ("elements", None),
    "Time (ms)": ("duration_ms", 3),
    "Compute (GFLOP/s)": ("throughput_gflops", 3),
    "Bandwidth (GB/s)": ("memory_bandwidth_gb_s", 3),
}


def _significant(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant digits (NaN stays NaN)."""
    return value if pd.isna(value) else float(f"{value:.{digits}g}")


class SystemViewer(DomainViewer):
    """Backend and device, live CPU/memory/GPU readings, and an on-demand benchmark.

    Parameters
    ----------
    window_s : int
        Seconds of history shown in the live chart.
    benchmark_type, workload_size, dtype :
        What the *Run benchmark* button measures (see :func:`prism_kernels.gpu.run_benchmark`).
    refresh_ms : int
        How often the readings are taken while the view is open, in ms (0 stops it).
    """

    title = param.String(default="System", precedence=-1)
    slug = "system"
    order = 0
    description = "Backend, device, CPU/GPU readings and a live benchmark"
    service_class = GpuService
    # The benchmark runs when the button is pressed; it reads the three controls at that moment
    # (changing them alone does not start a run).
    outputs = (Result("benchmark", depends=("run",)),)
    probe = ("window_s", 300)  # the browser test changes this; the chart title follows

    window_s = param.Selector(
        default=60, objects=[30, 60, 300, 600], label="Window (s)", doc="Seconds of history shown"
    )
    benchmark_type = param.Selector(
        default="all", objects=list(gpu.BENCHMARK_TYPES), label="Benchmark"
    )
    workload_size = param.Integer(
        default=512, bounds=(64, 2048), step=64, label="Matrix size n (n × n)"
    )
    dtype = param.Selector(default="float32", objects=["float32", "float64"], label="Data type")
    refresh_ms = param.Integer(default=1000, bounds=(0, 60_000), label="Refresh (ms)")
    run = param.Event(label="Run benchmark")

    readings = param.DataFrame(
        precedence=-1, doc="One row per reading: time, cpu %, memory %, gpu %"
    )
    status = param.String(default="No benchmark run yet.", precedence=-1)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._points: deque[dict] = deque(maxlen=600)
        self.sample()
        self._callback = None
        if self.refresh_ms:
            self._callback = pn.state.add_periodic_callback(
                self.sample, period=self.refresh_ms, start=True
            )

    # ------------------------------------------------------------------ data

    def sample(self) -> None:
        """Take one reading of the host (and the GPU) and append it to the live chart."""
        r = self.service.readings()["system"]
        self._points.append(
            {
                "time": pd.Timestamp(r["timestamp"], unit="s"),
                "cpu %": r["cpu_usage"],
                "memory %": r["memory_usage"],
                "gpu %": r["gpu_usage"],
            }
        )
        self.readings = pd.DataFrame(list(self._points))

    def compute_benchmark(self) -> pd.DataFrame:
        """Run the benchmark the controls describe (three timed repetitions, median)."""
        rows = gpu.run_benchmark(self.benchmark_type, self.workload_size, self.dtype, 3)
        return pd.DataFrame([r.to_dict() for r in rows])

    def after_refresh(self, names: list[str]) -> None:
        rows = self.results
        if "benchmark" in names and not rows.empty:
            self.status = (
                f"Done: {len(rows)} test(s) on {rows['backend'].iloc[0]} "
                f"({rows['device'].iloc[0]})."
            )

    @property
    def results(self) -> pd.DataFrame:
        """The last benchmark's rows (:class:`prism_kernels.gpu.BenchmarkResult` fields)."""
        rows = self.value.get("benchmark")
        if rows is None:
            return pd.DataFrame(columns=[f.name for f in fields(gpu.BenchmarkResult)])
        return rows

    def results_frame(self) -> pd.DataFrame:
        """The results as the table shows them: units in every heading, values rounded."""
        rows = self.results.copy()
        # The FFT and bandwidth rows count elements already; the product's size is its side.
        square = rows["benchmark_type"] == "matrix_multiply"
        rows["elements"] = rows["size"].where(~square, rows["size"] ** 2)
        out = pd.DataFrame(index=rows.index)
        for shown, (column, digits) in TABLE.items():
            values = rows[column]
            if digits is not None:
                values = values.astype(float).map(lambda v, d=digits: _significant(v, d))
            out[shown] = values
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------ views

    @param.depends("readings", "window_s")
    def live_chart(self) -> hv.Overlay:
        """CPU, memory and GPU load (%) over the last ``window_s`` seconds."""
        df = self.readings
        if df is None or df.empty:
            return hv.Overlay([hv.Curve([], TIME, LOAD, label="CPU")]).opts(title="No readings yet")
        cutoff = df["time"].iloc[-1] - pd.Timedelta(seconds=self.window_s)
        df = df[df["time"] >= cutoff]
        curves = [
            hv.Curve((df["time"], df[col]), TIME, LOAD, label=label)
            for col, label in SERIES.items()
            if df[col].notna().any()
        ]
        return hv.Overlay(curves).opts(
            hv.opts.Curve(
                height=PLOT_HEIGHT * 3 // 4,
                responsive=True,
                ylim=(0, 105),
                framewise=True,
                tools=["hover"],
            ),
            # Outside the plot, so no line runs under it.
            hv.opts.Overlay(title=f"Machine load, last {self.window_s} s", legend_position="right"),
        )

    @param.depends("benchmark_version")
    def results_chart(self) -> hv.Bars | pn.pane.Markdown:
        df = self.results
        if df.empty:
            return pn.pane.Markdown("Press **Run benchmark** to measure this backend.")
        rate = df["throughput_gflops"].fillna(df["memory_bandwidth_gb_s"])
        unit = ["GFLOP/s" if pd.notna(g) else "GB/s" for g in df["throughput_gflops"]]
        bars = pd.DataFrame(
            {
                "test": [f"{t} ({u})" for t, u in zip(df["benchmark_type"], unit, strict=True)],
                "rate": rate,
            }
        )
        return hv.Bars(
            bars,
            hv.Dimension("test", label="Test (unit)"),
            hv.Dimension("rate", label="Rate (GFLOP/s or GB/s)"),
        ).opts(height=250, responsive=True, title="Measured throughput", tools=["hover"])

    @param.depends("benchmark_version")
    def results_table(self) -> pn.widgets.Tabulator:
        return result_table(self.results_frame(), height=150)

    def device_card(self) -> pn.pane.Markdown:
        info = B.describe()
        st = self.service.status()
        found = f"yes, {st['device_count']} device(s)" if st["available"] else "none found"
        lines = [
            f"**Backend:** `{info['backend']}` {info.get('library_version', '')}",
            f"**Device:** {info['device']} ({info['device_name']})",
            f"**Available backends:** {', '.join(info['available_backends'])}",
            f"**GPU:** {found}",
        ]
        for d in st["devices"]:
            lines.append(
                f"- {d['name']}: {d['free_memory_mb']:.0f} of {d['total_memory_mb']:.0f} MiB free"
            )
        return pn.pane.Markdown("\n\n".join(lines))

    def sidebar(self) -> list:
        controls = pn.Param(
            self,
            parameters=["window_s", "benchmark_type", "workload_size", "dtype", "run"],
            widgets={"run": {"type": pn.widgets.Button}},
            show_name=False,
        )
        return [self.device_card(), controls]

    def main(self) -> list:
        # A DynamicMap updates the one plot in place on each reading (instead of rebuilding it).
        return [
            pn.pane.HoloViews(hv.DynamicMap(self.live_chart)),
            self.results_chart,
            self.results_table,
        ]
