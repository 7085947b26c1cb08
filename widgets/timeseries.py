"""The Time-series dashboard: pick a real series (shipped with the installed packages) or one the
REST API stored, and a model; see the history, the forecast and its interval band, the
residuals with their autocorrelation, the anomalies and change points marked on the series,
and a rolling-origin backtest of several models side by side. Served at ``/timeseries``; in a
notebook, display ``TimeseriesViewer()``.

Every number comes from :class:`prism_kernels.timeseries.service.TimeseriesService` (the
runtime's instance, the REST API's) and the time-series kernels; this module only lays results
out. The results and what they depend on (a control recomputes only what depends on it)::

    data         <- source
    forecast     <- data, model, horizon, level
    diagnostics  <- forecast
    anomalies    <- data, anomaly_method, threshold
    changepoints <- data, cost
    backtest     <- data, horizon, backtest_models, windows
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models.widgets.tables import NumberFormatter

from prism_kernels.timeseries import datasets as ts_datasets
from prism_kernels.timeseries import diagnostics as ts_diagnostics
from prism_kernels.timeseries.anomalies import METHODS as ANOMALY_METHODS
from prism_kernels.timeseries.changepoints import COSTS
from prism_kernels.timeseries.service import TimeseriesService
from widgets.base import DomainViewer, Result, rerange, result_table

MODELS = ["auto_arima", "ets", "theta", "seasonal_naive", "naive", "drift", "lstm", "gru"]
BACKTEST_MODELS = ["naive", "seasonal_naive", "drift", "theta", "ets", "auto_arima"]
STORED = "stored: "
ACF_LAGS = 36
TABLE_COLUMNS = {
    "method": "Model",
    "mae": "MAE",
    "rmse": "RMSE",
    "mape": "MAPE (%)",
    "smape": "sMAPE (%)",
    "mase": "MASE",
    "coverage": "Interval coverage",
}


def _sources(service: TimeseriesService | None = None) -> list[str]:
    names = list(ts_datasets.DATASETS)
    if service is not None:
        names += [STORED + i for i in service.series.ids()[:200]]
    return names


class TimeseriesViewer(DomainViewer):
    """Forecasts with intervals, diagnostics, anomalies, change points and a backtest.

    Parameters
    ----------
    source : a shipped dataset, or a series the REST API stored (``stored: <id>``).
    model : the forecaster.
    horizon : steps ahead (also each backtest window's length).
    level : interval coverage.
    anomaly_method, threshold : how points are scored and flagged.
    cost : the change-point cost (PELT, BIC penalty).
    backtest_models, windows : the models compared and the rolling origins.
    """

    title = param.String(default="Time series", precedence=-1)
    slug = "timeseries"
    order = 50
    description = (
        "Real series: ARIMA/ETS/Theta/LSTM forecasts with intervals, residual diagnostics, "
        "anomalies, change points and a backtest across models"
    )
    service_class = TimeseriesService
    probe = ("model", "drift")
    source_probe = ("source", "nile")
    outputs = (
        Result("data", ("source",)),
        Result("forecast", ("data", "model", "horizon", "level")),
        Result("diagnostics", ("forecast",)),
        Result("anomalies", ("data", "anomaly_method", "threshold")),
        Result("changepoints", ("data", "cost")),
        Result("backtest", ("data", "horizon", "backtest_models", "windows")),
    )

    source = param.Selector(default="airpassengers", objects=_sources(), label="Series")
    model = param.Selector(default="theta", objects=MODELS, label="Model")
    horizon = param.Integer(default=12, bounds=(1, 120), label="Horizon (steps)")
    level = param.Selector(default=0.95, objects=[0.8, 0.9, 0.95, 0.99], label="Interval level")
    anomaly_method = param.Selector(
        default="robust_zscore", objects=list(ANOMALY_METHODS), label="Anomaly score"
    )
    threshold = param.Number(default=3.5, bounds=(1.0, 10.0), step=0.5, label="Anomaly threshold")
    cost = param.Selector(default="l2", objects=list(COSTS), label="Change-point cost (PELT, BIC)")
    backtest_models = param.ListSelector(
        default=["naive", "seasonal_naive", "theta"],
        objects=BACKTEST_MODELS,
        label="Backtest models",
    )
    windows = param.Integer(default=3, bounds=(1, 10), label="Backtest windows")

    def __init__(self, service: TimeseriesService | None = None, **params: Any) -> None:
        super().__init__(service=service, **params)
        self.param.source.objects = _sources(self.service)
        self.table = result_table(
            list(TABLE_COLUMNS.values()),
            height=220,
            formatters={
                v: NumberFormatter(format="0.000")
                for k, v in TABLE_COLUMNS.items()
                if k not in ("method", "coverage")
            }
            | {TABLE_COLUMNS["coverage"]: NumberFormatter(format="0.0%")},
        )
        self.refresh()

    # ------------------------------------------------------------------ results

    def compute_data(self) -> dict[str, Any]:
        if str(self.source).startswith(STORED):
            sid = str(self.source)[len(STORED) :]
            y, ts, doc = self.service.series_data(sid)
            x = np.arange(y.size) if ts is None else np.asarray(ts)
            return {
                "values": y,
                "timestamps": ts,
                "x": x,
                "x_label": "step" if ts is None else "timestamp",
                "name": doc["name"],
                "frequency": doc.get("frequency") or "",
                "season_length": int(doc.get("season_length") or 1),
                "source": doc.get("source") or "api",
            }
        d = self.service.dataset(self.source)
        return {
            "values": d["values"],
            "timestamps": None,
            "x": pd.DatetimeIndex(pd.to_datetime(d["dates"])),
            "x_label": "date",
            "name": d["description"],
            "frequency": d["frequency"],
            "season_length": int(d["season_length"]),
            "source": d["source"],
        }

    def _series(self) -> list[dict[str, Any]]:
        d = self.value["data"]
        return [{"values": d["values"], "timestamps": d["timestamps"], "field": "Series"}]

    def compute_forecast(self) -> dict[str, Any]:
        d = self.value["data"]
        out = self.service.forecast(
            self._series(),
            horizon=int(self.horizon),
            method=self.model,
            level=float(self.level),
            season_length=d["season_length"],
            diagnostics=True,
        )
        return out["forecasts"][0] | {"ms": out["computation_time_ms"]}

    def compute_diagnostics(self) -> dict[str, Any]:
        r = np.asarray(self.value["forecast"]["residuals"], dtype=np.float64)
        r = r[np.isfinite(r)]
        acf = None
        if r.size >= 3:
            acf = np.asarray(ts_diagnostics.acf(r, min(ACF_LAGS, r.size // 2))).reshape(-1)
        band = ts_diagnostics.white_noise_band(max(r.size, 1))
        return {"residuals": r, "acf": acf, "n": r.size, "band": band}

    def compute_anomalies(self) -> dict[str, Any]:
        d = self.value["data"]
        out = self.service.anomalies(
            self._series(),
            method=self.anomaly_method,
            threshold=float(self.threshold),
            season_length=d["season_length"],
        )
        return out["results"][0]

    def compute_changepoints(self) -> dict[str, Any]:
        out = self.service.changepoints(
            self._series(), method="pelt", cost=self.cost, penalty="bic"
        )
        return out["results"][0]

    def compute_backtest(self) -> dict[str, Any]:
        d = self.value["data"]
        return self.service.backtest(
            self._series(),
            methods=list(self.backtest_models) or ["naive"],
            horizon=int(self.horizon),
            windows=int(self.windows),
            season_length=d["season_length"],
        )

    def after_refresh(self, names: list[str]) -> None:
        if "data" in names:  # offer the series stored since (the API's or this dashboard's)
            self.param.source.objects = _sources(self.service)
        if "backtest" in names and "backtest" in self.value:
            rows = self.value["backtest"]["rows"]
            df = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
            self.table.value = df.rename(columns=TABLE_COLUMNS)

    # ------------------------------------------------------------------ views

    def _future_x(self, f: dict[str, Any]) -> Any:
        """Where the forecast steps lie on the history's axis: the next periods of a dataset's
        calendar, the forecast's own timestamps (the original API's rule) for a stored series
        with timestamps, or the next step numbers."""
        d, h = self.value["data"], len(f["predictions"])
        if d["x_label"] == "date":
            return pd.date_range(d["x"][-1], periods=h + 1, freq=d["frequency"])[1:]
        if d["x_label"] == "timestamp":
            return np.asarray(f["timestamps"])
        return np.arange(d["values"].size, d["values"].size + h)

    @param.depends(
        "forecast_version", "anomalies_version", "changepoints_version", "backtest_version"
    )
    def summary(self) -> pn.pane.Markdown:
        d, f = self.value.get("data"), self.value.get("forecast")
        if d is None or f is None:
            return pn.pane.Markdown("")
        lines = [
            f"**{d['name']}** ({d['frequency'] or 'no frequency'}, {d['values'].size} points, "
            f"season {d['season_length']}; source: {d['source']})",
            f"**{self.model}** fitted **{f['method_used']}**; {len(f['predictions'])}-step "
            f"forecast with {100 * float(self.level):.0f} % intervals ({f['ms']:.0f} ms).",
        ]
        m = f.get("metrics")
        if m:
            lines.append(
                f"Held out (the last {m['test_points']} points; the model refitted on the "
                f"{m['train_points']} before them): MAE {_fmt(m['mae'])}, "
                f"MASE {_fmt(m['mase'])}, sMAPE {_fmt(m['smape'])} %, "
                f"interval coverage {_fmt(m['interval_coverage'], '.0%')}."
            )
        else:
            lines.append(f"No held-out metrics: {f.get('metrics_note')}.")
        a, c = self.value.get("anomalies"), self.value.get("changepoints")
        if a is not None:
            lines.append(
                f"**{a['count']} anomalies** ({self.anomaly_method} > {self.threshold:g})."
            )
        if c is not None:
            lines.append(
                f"**{len(c['changepoints'])} change points** (PELT, {self.cost} cost, BIC penalty)."
            )
        return pn.pane.Markdown("\n\n".join(lines), sizing_mode="stretch_width")

    def series_plot(self, **_: Any) -> hv.Overlay:
        d, f = self.value.get("data"), self.value.get("forecast")
        xl = "date" if d is None else d["x_label"]
        if d is None or f is None:
            return hv.Overlay([hv.Curve([], xl, "value", label="history")])
        x, y = d["x"], d["values"]
        kd, vd = ("x", xl), ("y", "value")
        layers = [hv.Curve((x, y), kd, vd, label="history").opts(color="black")]
        fx = self._future_x(f)
        mean = np.array([np.nan if v is None else v for v in f["predictions"]], dtype=float)
        ci = f.get("confidence_intervals")
        if ci:
            lo = np.array([np.nan if c["lower"] is None else c["lower"] for c in ci], dtype=float)
            hi = np.array([np.nan if c["upper"] is None else c["upper"] for c in ci], dtype=float)
            layers.append(
                hv.Area(
                    (fx, lo, hi),
                    kd,
                    [vd, ("y2", "upper")],
                    label=f"{100 * float(self.level):.0f} % interval",
                ).opts(alpha=0.3, color="orange", line_alpha=0)
            )
        layers.append(
            hv.Curve((fx, mean), kd, vd, label=f"forecast ({self.model})").opts(color="red")
        )
        a = self.value.get("anomalies")
        if a is not None and a["indices"]:
            idx = np.asarray(a["indices"])
            layers.append(
                hv.Scatter((np.asarray(x)[idx], y[idx]), kd, vd, label="anomalies").opts(
                    color="purple", size=9, marker="x"
                )
            )
        c = self.value.get("changepoints")
        if c is not None and c["changepoints"]:
            cp = np.asarray(c["changepoints"])
            layers.append(
                hv.Scatter((np.asarray(x)[cp], y[cp]), kd, vd, label="change points").opts(
                    color="green", size=10, marker="triangle"
                )
            )
            xa = np.asarray(x)
            starts = [xa[s["start"]] for s in c["segments"]]
            ends = [xa[s["end"] - 1] for s in c["segments"]]
            means = [np.nan if s["mean"] is None else s["mean"] for s in c["segments"]]
            layers.append(
                hv.Segments(
                    (starts, means, ends, means), [kd, vd, "x1", "y1"], label="segment means"
                ).opts(color="green", line_dash="dashed", line_width=2)
            )
        return hv.Overlay(layers).opts(
            title=f"{d['name'].rstrip('.')}: history, forecast and interval",
            height=380,
            responsive=True,
            legend_position="right",
            show_legend=True,
        )

    def residual_plot(self, **_: Any) -> hv.Overlay:
        g = self.value.get("diagnostics")
        if g is None:
            return hv.Overlay([hv.Curve([], "step", "residual", label="residuals")])
        r = g["residuals"]
        return hv.Overlay(
            [
                hv.Curve(
                    (np.arange(r.size), r),
                    ("t", "step (in-sample)"),
                    ("r", "residual (series units)"),
                    label="residuals",
                ),
                hv.Curve(
                    ([0, max(1, r.size - 1)], [0.0, 0.0]),
                    ("t", "step (in-sample)"),
                    ("r", "residual (series units)"),
                    label="zero",
                ).opts(color="grey", line_dash="dotted"),
            ]
        ).opts(title="One-step residuals", height=260, responsive=True, legend_position="right")

    def acf_plot(self, **_: Any) -> hv.Overlay:
        g = self.value.get("diagnostics")
        if g is None or g["acf"] is None:
            return hv.Overlay([hv.Spikes([], "lag", "acf", label="ACF")]).opts(
                title="Residual ACF (too few residuals)", height=260, responsive=True
            )
        acf = g["acf"][1:]
        lags = np.arange(1, acf.size + 1)
        band = g["band"]
        kd, vd = ("lag", "lag (steps)"), ("acf", "autocorrelation")
        return hv.Overlay(
            [
                hv.Spikes((lags, acf), kd, vd, label="residual ACF").opts(line_width=3),
                hv.Curve(([0.5, acf.size + 0.5], [band, band]), kd, vd, label="±1.96/√n").opts(
                    color="red", line_dash="dashed"
                ),
                hv.Curve(([0.5, acf.size + 0.5], [-band, -band]), kd, vd).opts(
                    color="red", line_dash="dashed"
                ),
            ]
        ).opts(
            title="Residual autocorrelation", height=260, responsive=True, legend_position="right"
        )

    # ------------------------------------------------------------------ layout

    def main(self) -> list:
        def dmap(fn: Any, *deps: str) -> pn.pane.HoloViews:
            stream = hv.streams.Params(self, list(deps))
            return pn.pane.HoloViews(rerange(hv.DynamicMap(fn, streams=[stream])))

        return [
            self.summary,
            dmap(self.series_plot, "forecast_version", "anomalies_version", "changepoints_version"),
            pn.Row(
                dmap(self.residual_plot, "diagnostics_version"),
                dmap(self.acf_plot, "diagnostics_version"),
            ),
            pn.pane.Markdown(
                "### Rolling-origin backtest (held-out windows at the end of the series)"
            ),
            self.table,
        ]


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "n/a" if v is None else format(v, spec)
