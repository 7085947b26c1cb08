"""The System dashboard: which backend computes, on which device, how busy the machine is,
and a benchmark you can run. Served at ``/system``; in a notebook, display ``SystemViewer()``.

This Viewer is the pattern every domain dashboard follows: ``param`` parameters are the
controls, ``__panel__`` lays them out, the numbers come from ``prism_kernels``.
"""

from __future__ import annotations

import asyncio
from collections import deque

import holoviews as hv
import pandas as pd
import panel as pn
import param

from prism_kernels import backend as B
from prism_kernels import gpu
from prism_kernels.system import system_readings
from widgets.base import DomainViewer

hv.extension("bokeh", logo=False)
pn.extension("tabulator", sizing_mode="stretch_width")


class SystemViewer(DomainViewer):
    """Backend and device, live CPU/memory/GPU readings, and an on-demand benchmark.

    Parameters
    ----------
    window_s : int
        Seconds of history shown in the live chart.
    benchmark_type, workload_size, dtype :
        What the *Run benchmark* button measures (see :func:`prism_kernels.gpu.run_benchmark`).
    refresh_ms : int
        How often the readings are taken while the view is open (0 stops it).
    """

    title = param.String(default="System", precedence=-1)
    slug = "system"
    order = 0
    description = (
        "Backend, device, CPU/GPU readings and a live benchmark"
    )
    probe = ("window_s", 300)  # the browser test changes this; the chart title follows
    window_s = param.Selector(
        default=60, objects=[30, 60, 300, 600], label="Window (s)", doc="Seconds of history shown"
    )
    benchmark_type = param.Selector(default="all", objects=list(gpu.BENCHMARK_TYPES))
    workload_size = param.Integer(default=512, bounds=(64, 2048), step=64, doc="Matrix side")
    dtype = param.Selector(default="float32", objects=["float32", "float64"])
    refresh_ms = param.Integer(default=1000, bounds=(0, 60_000))
    run = param.Event(label="Run benchmark")

    readings = param.DataFrame(precedence=-1)
    results = param.DataFrame(precedence=-1)
    status = param.String(default="No benchmark run yet.", precedence=-1)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._points: deque[dict] = deque(maxlen=600)
        self.results = pd.DataFrame(
            columns=[
                "benchmark_type",
                "backend",
                "device",
                "size",
                "duration_ms",
                "throughput_gflops",
                "memory_bandwidth_gb_s",
            ]
        )
        self.sample()
        self._callback = None
        if self.refresh_ms:
            self._callback = pn.state.add_periodic_callback(
                self.sample, period=self.refresh_ms, start=True
            )

    def sample(self) -> None:
        """Take one reading and append it to the live chart."""
        r = system_readings()
        self._points.append(
            {
                "time": pd.Timestamp(r["timestamp"], unit="s"),
                "cpu %": r["cpu_usage"],
                "memory %": r["memory_usage"],
                "gpu %": r["gpu_usage"],
            }
        )
        self.readings = pd.DataFrame(list(self._points))

    @param.depends("run", watch=True)
    async def _run_benchmark(self) -> None:
        self.status = (
            f"Running {self.benchmark_type} at size {self.workload_size} ({self.dtype})..."
        )
        loop = asyncio.get_running_loop()
        try:
            rows = await loop.run_in_executor(
                None,
                lambda: gpu.run_benchmark(self.benchmark_type, self.workload_size, self.dtype, 3),
            )
        except Exception as exc:  # shown to the user rather than swallowed
            self.status = f"Benchmark failed: {exc}"
            return
        self.results = pd.DataFrame([r.to_dict() for r in rows])
        self.status = f"Done: {len(rows)} test(s) on {rows[0].backend} ({rows[0].device})."

    @param.depends("readings", "window_s")
    def live_chart(self) -> hv.Overlay:
        df = self.readings
        if df is None or df.empty:
            return hv.Overlay([hv.Curve([], "time", ("cpu %", "percent"), label="cpu %")]).opts(
                title="No readings yet"
            )
        cutoff = df["time"].iloc[-1] - pd.Timedelta(seconds=self.window_s)
        df = df[df["time"] >= cutoff]
        curves = [
            hv.Curve(df, "time", (col, "percent"), label=col)
            for col in ("cpu %", "memory %", "gpu %")
            if df[col].notna().any()
        ]
        return hv.Overlay(curves).opts(
            hv.opts.Curve(
                height=280, responsive=True, ylim=(0, 105), framewise=True, tools=["hover"]
            ),
            hv.opts.Overlay(
                title=f"Machine load, last {self.window_s} s", legend_position="top_left"
            ),
        )

    @param.depends("results")
    def results_chart(self) -> hv.Bars | pn.pane.Markdown:
        df = self.results
        if df is None or df.empty:
            return pn.pane.Markdown("Press **Run benchmark** to measure this backend.")
        rate = df["throughput_gflops"].fillna(df["memory_bandwidth_gb_s"])
        unit = ["GFLOP/s" if pd.notna(g) else "GB/s" for g in df["throughput_gflops"]]
        bars = pd.DataFrame(
            {
                "test": [f"{t} ({u})" for t, u in zip(df["benchmark_type"], unit, strict=True)],
                "rate": rate,
            }
        )
        return hv.Bars(bars, "test", "rate").opts(
            height=250, responsive=True, title="Measured throughput", tools=["hover"]
        )

    @param.depends("results")
    def results_table(self) -> pn.widgets.Tabulator:
        cols = [
            "benchmark_type",
            "backend",
            "device",
            "size",
            "duration_ms",
            "throughput_gflops",
            "memory_bandwidth_gb_s",
        ]
        return pn.widgets.Tabulator(
            self.results[cols] if not self.results.empty else self.results,
            disabled=True,
            show_index=False,
            height=150,
        )

    def device_card(self) -> pn.pane.Markdown:
        info = B.describe()
        st = gpu.gpu_status()
        lines = [
            f"**Backend:** `{info['backend']}` {info.get('library_version', '')}",
            f"**Device:** {info['device']} ({info['device_name']})",
            f"**Available backends:** {', '.join(info['available_backends'])}",
            f"**GPU:** {'yes, ' + str(st['device_count']) + ' device(s)' if st['available'] else 'none found'}",
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
        return [self.device_card(), controls, pn.pane.Markdown(self.param.status)]

    def main(self) -> list:
        # A DynamicMap updates the one plot in place on each reading (instead of rebuilding it).
        return [
            pn.pane.HoloViews(hv.DynamicMap(self.live_chart)),
            self.results_chart,
            self.results_table,
        ]
