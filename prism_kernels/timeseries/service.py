"""The time-series service: the series store (state) and thin calls into the kernels.

State, in one :class:`~prism_kernels.service.Collection` (so it survives a restart):

- ``series``: stored series by id: values and timestamps (arrays), name, frequency, season
  length, where it came from, the last forecast made for it and the last backtest of it.

A forecast, backtest or analysis takes its series in the request or names a stored one
(``series_id`` without values); a request that sends values with a ``series_id`` stores them
(replacing what was stored under that id) together with the results.

Events: ``ForecastReady`` after a forecast (one per series, at most :data:`MAX_EVENTS` per
request; the PRISM-AI ``ForecastUpdate`` fields: ``series_id``, ``predictions``,
``confidence_intervals`` as ``[lower, upper]`` pairs, ``timestamp``), ``AnomalyDetected`` for
each series in which an anomaly detection flags points.

Series of different lengths in one request are grouped by length and each group is fitted as
one batch (``(B, n)``, the series as the batch axis). Held-out accuracy (``metrics``) always
comes from data the model did not see: the last ``k`` points are held out, the same method
with the same options is fitted on the points before them and its forecast compared with them
(``k = min(horizon, n // 4)``); see :meth:`TimeseriesService.forecast`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prism_kernels import distributed
from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.service import TIMING_KEY, DomainService
from prism_kernels.timeseries import anomalies as _anomalies
from prism_kernels.timeseries import backtest as _backtest
from prism_kernels.timeseries import changepoints as _changepoints
from prism_kernels.timeseries import datasets as _datasets
from prism_kernels.timeseries import market as _market
from prism_kernels.timeseries import models as _models
from prism_kernels.timeseries import traffic as _traffic
from prism_kernels.timeseries import trajectory as _trajectory
from prism_kernels.timeseries.core import check_horizon, check_level, check_season_length

MAX_SERIES_STORED = 10_000
MAX_POINTS = 100_000  # points in one request, all series together
MAX_SERIES = 10_000  # series in one request
MAX_OUTPUT = 1_000_000  # forecast values in one answer (series x horizon)
MAX_EVENTS = 100  # ForecastReady / AnomalyDetected events per request
DEFAULT_INTERVAL = 3600  # the original API's step between future timestamps without two given
HOLDOUT_FRACTION = 4  # metrics hold out at most n // 4 points
BACKTEST_METRICS = ("mae", "rmse", "mape", "smape", "mase", "coverage")
I64 = 2**63
SERIES_PER_TASK = 64  # series per Dask task when PRISM_DASK_SCHEDULER is set
JOINT_METHODS = ("lstm", "gru")  # one network trained on the whole batch: never split


class TimeseriesService(DomainService):
    """Stored series, forecasts with intervals and held-out metrics, backtests, anomalies,
    change points, market, traffic and trajectory forecasts.

    Parameters
    ----------
    store, bus : see :class:`~prism_kernels.service.DomainService`.
    max_series : series kept in the store (the oldest dropped first).
    """

    domain = "timeseries"
    events = ("ForecastReady", "AnomalyDetected")

    def __init__(
        self, store: Any = None, bus: Any = None, *, max_series: int = MAX_SERIES_STORED
    ) -> None:
        if isinstance(max_series, bool) or int(max_series) != max_series or max_series < 1:
            raise InvalidInput("max_series", "must be an integer >= 1")
        super().__init__(store, bus)
        self.series = self.collection("series", max_items=int(max_series), label="series")
        self._datasets: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ the store

    @staticmethod
    def _series_id(series_id: Any, field: str = "series_id") -> str:
        if isinstance(series_id, bool) or not isinstance(series_id, (str, int, np.integer)):
            raise InvalidInput(field, "must be a string or an integer")
        s = str(series_id)
        if not s or len(s) > 200:
            raise InvalidInput(field, "must be 1 to 200 characters")
        return s

    @staticmethod
    def _values(values: Any, field: str) -> np.ndarray:
        try:
            a = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInput(field, "must be an array of numbers") from None
        if a.ndim != 1:
            raise InvalidInput(field, f"must be one series (n,), got shape {a.shape}")
        if a.size == 0:
            raise InvalidInput(field, "is empty")
        if a.size > MAX_POINTS:
            raise InvalidInput(field, f"has {a.size} points; at most {MAX_POINTS} are accepted")
        if not np.all(np.isfinite(a)):
            i = int(np.flatnonzero(~np.isfinite(a))[0])
            raise InvalidInput(f"{field}.{i}", "must be finite (no NaN or infinity)")
        return a

    @staticmethod
    def _timestamps(timestamps: Any, n: int, field: str) -> np.ndarray | None:
        """Integer timestamps, strictly increasing, one per value (or none: ``None``)."""
        if timestamps is None or len(timestamps) == 0:
            return None
        t = [int(v) for v in timestamps]
        if len(t) != n:
            raise InvalidInput(field, f"has {len(t)} timestamps for {n} values; give one per value")
        if any(not -I64 <= v < I64 for v in t):
            raise InvalidInput(field, "must be 64-bit integers")
        if any(b <= a for a, b in zip(t, t[1:], strict=False)):
            i = next(i for i in range(1, n) if t[i] <= t[i - 1])
            raise InvalidInput(f"{field}.{i}", "timestamps must be strictly increasing")
        return np.asarray(t, dtype=np.int64)

    @staticmethod
    def _future(timestamps: np.ndarray | None, horizon: int, now: int | None = None) -> list[int]:
        """The original API's future timestamps: ``last + i * avg_interval`` for i = 1..h, with
        ``avg_interval = (last - first) / (n - 1)`` in integer division (truncated, as Rust's);
        3600 with fewer than two timestamps, and ``last`` = now (Unix seconds) with none."""
        if timestamps is None or len(timestamps) == 0:
            last, step = int(time.time()) if now is None else int(now), DEFAULT_INTERVAL
        elif len(timestamps) == 1:
            last, step = int(timestamps[-1]), DEFAULT_INTERVAL
        else:
            first, last = int(timestamps[0]), int(timestamps[-1])
            span, k = last - first, len(timestamps) - 1
            step = abs(span) // k * (1 if span >= 0 else -1)
        out = [last + i * step for i in range(1, horizon + 1)]
        if out and not (-I64 <= out[-1] < I64):
            raise InvalidInput("timestamps", "the future timestamps overflow 64-bit integers")
        return out

    def put_series(
        self,
        series_id: str | int,
        values: Any,
        timestamps: Any = None,
        *,
        name: str | None = None,
        frequency: str | None = None,
        season_length: int | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Store a series (replacing any of the same id, with its results); returns its record."""
        sid = self._series_id(series_id)
        y = self._values(values, "values")
        ts = self._timestamps(timestamps, y.size, "timestamps")
        m = None if season_length is None else check_season_length(season_length)
        with self.lock:
            self._write(sid, y, ts, name=name, frequency=frequency, season_length=m, source=source)
            return self.get_series(sid)

    def _write(
        self,
        sid: str,
        y: np.ndarray,
        ts: np.ndarray | None,
        *,
        keep_results: bool = False,
        **meta: Any,
    ) -> dict[str, Any]:
        """Write a series (under the lock); results kept only when the data did not change."""
        now = time.time()
        old = self.series.get(sid) if self.series.exists(sid) else None
        same = False
        if old is not None:
            arrays = self.series.arrays(sid)
            same = np.array_equal(arrays.get("values"), y) and (
                (ts is None and "timestamps" not in arrays)
                or (ts is not None and np.array_equal(arrays.get("timestamps"), ts))
            )
        doc = {
            "id": sid,
            "name": meta.get("name") or (old or {}).get("name") or sid,
            "frequency": meta.get("frequency") or ((old or {}).get("frequency") if same else None),
            "season_length": meta.get("season_length")
            or ((old or {}).get("season_length") if same else None),
            "source": meta.get("source") or ((old or {}).get("source") if same else None) or "api",
            "data_points": int(y.size),
            "interval": None if ts is None or ts.size < 2 else self._future(ts, 1)[0] - int(ts[-1]),
            "first_timestamp": None if ts is None else int(ts[0]),
            "last_timestamp": None if ts is None else int(ts[-1]),
            "created": (old or {}).get("created", now) if same else now,
            "last_updated": now,
            "last_forecast": (old or {}).get("last_forecast") if (same or keep_results) else None,
            "last_backtest": (old or {}).get("last_backtest") if (same or keep_results) else None,
            "dates": meta.get("dates") or ((old or {}).get("dates") if same else None),
        }
        arrays = {"values": y}
        if ts is not None:
            arrays["timestamps"] = ts
        self.series.put(sid, doc, arrays)
        return doc

    def get_series(self, series_id: str | int, include_values: bool = True) -> dict[str, Any]:
        """A stored series' record (values and timestamps too by default); ``NotFound``."""
        sid = self._series_id(series_id)
        doc = self.series.get(sid)
        if include_values:
            arrays = self.series.arrays(sid)
            doc["values"] = arrays["values"].tolist()
            doc["timestamps"] = arrays["timestamps"].tolist() if "timestamps" in arrays else None
        return doc

    def series_data(self, series_id: str | int) -> tuple[np.ndarray, np.ndarray | None, dict]:
        """``(values, timestamps or None, record)`` of a stored series; ``NotFound``."""
        sid = self._series_id(series_id)
        doc = self.series.get(sid)
        arrays = self.series.arrays(sid)
        return arrays["values"], arrays.get("timestamps"), doc

    def list_series(self, limit: int | None = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Summaries of the stored series, newest first (no values)."""
        return [
            {
                "id": sid,
                "name": d["name"],
                "data_points": d["data_points"],
                "frequency": d["frequency"],
                "season_length": d["season_length"],
                "source": d["source"],
                "last_updated": d["last_updated"],
                "last_forecast": None
                if not d.get("last_forecast")
                else d["last_forecast"]["method_used"],
            }
            for sid, d in self.series.page(limit, offset)
        ]

    def delete_series(self, series_id: str | int) -> None:
        """Delete a stored series and its results; ``NotFound`` when there is none."""
        with self.lock:
            self.series.delete(self._series_id(series_id))

    # ------------------------------------------------------------------ shipped data

    def datasets(self) -> list[dict[str, Any]]:
        """The real series shipped with the installed packages
        (:mod:`prism_kernels.timeseries.datasets`): name, description, length, frequency,
        season length, units and source (no values)."""
        out = []
        for name, description in _datasets.DATASETS.items():
            d = self._dataset(name)
            out.append(
                {
                    "name": name,
                    "description": description,
                    "data_points": len(d["values"]),
                    "frequency": d["frequency"],
                    "season_length": int(d["season_length"]),
                    "units": d.get("units"),
                    "source": d["source"],
                    "first_date": d["dates"][0],
                    "last_date": d["dates"][-1],
                }
            )
        return out

    def _dataset(self, name: str) -> dict[str, Any]:
        """A shipped dataset, loaded once per service (they never change)."""
        key = str(name).lower()
        if key not in _datasets.DATASETS and key.replace("_", "") in _datasets.DATASETS:
            key = key.replace("_", "")  # air_passengers
        if key not in self._datasets:
            try:
                self._datasets[key] = _datasets.load(key)
            except InvalidInput as exc:
                raise InvalidInput("dataset", exc.message) from None
        return self._datasets[key]

    def dataset(self, name: str) -> dict[str, Any]:
        """A shipped dataset: ``values`` (n,) array, ``dates`` (ISO strings), ``frequency``,
        ``season_length``, ``units``, ``description``, ``source``, ``name``."""
        d = dict(self._dataset(name))
        d["values"] = np.asarray(d["values"], dtype=np.float64)
        return d

    def save_series(
        self,
        series_id: str | None = None,
        values: Any = None,
        timestamps: Any = None,
        dataset: str | None = None,
        name: str | None = None,
        frequency: str | None = None,
        season_length: int | None = None,
    ) -> dict[str, Any]:
        """Store a series given by its values or a shipped ``dataset`` (id default: the
        dataset's name, or a new id); returns its record with values."""
        if (values is None) == (dataset is None):
            raise InvalidInput("values", "give values or a dataset, not both or neither")
        if dataset is not None:
            d = self.dataset(dataset)
            sid = self._series_id(series_id if series_id is not None else d["name"])
            m = check_season_length(season_length) if season_length else int(d["season_length"])
            y = self._values(d["values"], "dataset")
            with self.lock:
                self._write(
                    sid,
                    y,
                    None,
                    name=name or d["name"],
                    frequency=frequency or d["frequency"],
                    season_length=m,
                    source=f"dataset {d['name']}: {d['source']}",
                    dates=[d["dates"][0], d["dates"][-1]],
                )
                return self.get_series(sid)
        sid = self._series_id(
            series_id if series_id is not None else f"series-{uuid.uuid4().hex[:12]}"
        )
        return self.put_series(
            sid, values, timestamps, name=name, frequency=frequency, season_length=season_length
        )

    # ------------------------------------------------------------------ inputs

    def _inputs(self, series: Sequence[Mapping[str, Any]], field: str = "series") -> list[dict]:
        """Each series as ``{id, field, y, ts, stored, doc}``: values given, or a stored series
        named by ``series_id``. Validates everything before anything is computed."""
        if not series:
            raise InvalidInput(field, "give at least one series")
        if len(series) > MAX_SERIES:
            raise InvalidInput(field, f"{len(series)} series; at most {MAX_SERIES} per request")
        out, total = [], 0
        for i, s in enumerate(series):
            f = s.get("field") or f"{field}.{i}"
            sid = s.get("series_id")
            if sid is not None:
                sid = self._series_id(sid, s.get("id_field") or "series_id")
            values = s.get("values")
            if values is None:
                if sid is None:
                    raise InvalidInput(f, "give values, or the series_id of a stored series")
                y, ts, doc = self.series_data(sid)
                given = False
            else:
                y = self._values(values, f)
                ts = self._timestamps(
                    s.get("timestamps"), y.size, s.get("ts_field") or "timestamps"
                )
                doc, given = None, True
            total += y.size
            if total > MAX_POINTS:
                raise InvalidInput(field, f"more than {MAX_POINTS} points in one request")
            out.append(
                {
                    "id": sid,
                    "field": f,
                    "y": y,
                    "ts": ts,
                    "given": given,
                    "doc": doc,
                    "frequency": s.get("frequency"),
                    "name": s.get("name"),
                }
            )
        return out

    @staticmethod
    def _groups(items: list[dict]) -> dict[int, list[int]]:
        """Indices of the series grouped by length (each group is one batch)."""
        groups: dict[int, list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault(int(it["y"].size), []).append(i)
        return groups

    @staticmethod
    def _rename(exc: InvalidInput, kernel_fields: tuple[str, ...], field: str) -> InvalidInput:
        """A kernel's error about its input (``kernel_fields``), named as the request names it."""
        if exc.field in kernel_fields:
            return InvalidInput(field, exc.message, **exc.details)
        return exc

    def _renamed(self, exc: InvalidInput, items: list[dict], idx: list[int]) -> InvalidInput:
        """A kernel's error about a batch of series, named after the batch's first series."""
        return self._rename(exc, ("values", "y"), items[idx[0]]["field"]) if idx else exc

    def _season(self, season_length: int | None, items: list[dict]) -> int:
        if season_length is not None:
            return check_season_length(season_length)
        stored = {(it["doc"] or {}).get("season_length") for it in items} - {None}
        return int(stored.pop()) if len(stored) == 1 else 1

    # ------------------------------------------------------------------ forecasts

    @staticmethod
    def _holdout(
        y: np.ndarray,
        method: str,
        horizon: int,
        level: float,
        season_length: int,
        options: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any] | None], str | None]:
        """Accuracy on held-out data: the last ``k = min(horizon, n // 4)`` points of each series
        of the batch ``y`` (B, n) are held out, the method is fitted on the ``n - k`` before them
        and its ``k``-step forecast is scored (:func:`prism_kernels.timeseries.backtest.backtest`
        with one origin). ``(per-series metrics or None, why none)``."""
        n = y.shape[1]
        k = min(horizon, n // HOLDOUT_FRACTION)
        if k < 1:
            return [None] * y.shape[0], f"too short to hold data out ({n} points)"
        try:
            bt = _backtest.backtest(
                y,
                method,
                k,
                n_windows=1,
                window="expanding",
                level=level,
                season_length=season_length,
                **options,
            )
        except InvalidInput as exc:
            return [None] * y.shape[0], (
                f"{method} cannot be fitted on the {n - k} points before the last {k} held out "
                f"({exc.field}: {exc.message})"
            )
        ps = bt.per_series
        out = []
        for b in range(y.shape[0]):
            out.append(
                {
                    "mae": _num(ps["mae"][b]),
                    "rmse": _num(ps["rmse"][b]),
                    "mape": _num(ps["mape"][b]),
                    "smape": _num(ps["smape"][b]),
                    "mase": _num(ps["mase"][b]),
                    "interval_coverage": _num(ps["coverage"][b]),
                    "holdout": f"last {k} of {n} points held out, model refitted on the first "
                    f"{n - k}: {bt.held_out}",
                    "train_points": n - k,
                    "test_points": k,
                    "season_length": season_length,
                }
            )
        return out, None

    @staticmethod
    def _forecast_batch(
        y: np.ndarray,
        method: str,
        horizon: int,
        level: float,
        season_length: int,
        options: Mapping[str, Any],
        evaluate: bool,
        field: str,
    ) -> tuple[Any, list[dict[str, Any] | None], str | None]:
        """The forecast of one batch ``y`` (B, n) and its held-out scores; a kernel error
        about the values is named ``field`` (the batch's first series in the request)."""
        try:
            fc = _models.forecast(
                y, method, horizon, level=level, season_length=season_length, **options
            )
        except InvalidInput as exc:
            raise TimeseriesService._rename(exc, ("values", "y"), field) from None
        if not evaluate:
            return fc, [None] * y.shape[0], "not asked for (evaluate: false)"
        scores, why = TimeseriesService._holdout(y, method, horizon, level, season_length, options)
        return fc, scores, why

    @staticmethod
    def _backtest_batch(y: np.ndarray, method: str, horizon: int, field: str, **kw: Any) -> Any:
        """:func:`prism_kernels.timeseries.backtest.backtest` of one batch; a kernel error about
        the values is named ``field``."""
        try:
            return _backtest.backtest(y, method, horizon, **kw)
        except InvalidInput as exc:
            raise TimeseriesService._rename(exc, ("values", "y"), field) from None

    def _batches(self, items: list[dict], method: str) -> list[tuple[int, list[int]]]:
        """``(length, series indices)`` of each batch: one per length in process; with
        ``PRISM_DASK_SCHEDULER`` set, each length cut into Dask tasks of
        :data:`SERIES_PER_TASK` series (every series is fitted on its own, so the cut changes
        no forecast), except for the methods that train one model on the batch."""
        groups = sorted(self._groups(items).items())
        if distributed.scheduler_address() is None or method in JOINT_METHODS:
            return groups
        return [
            (n, idx[lo : lo + SERIES_PER_TASK])
            for n, idx in groups
            for lo in range(0, len(idx), SERIES_PER_TASK)
        ]

    def forecast(
        self,
        series: Sequence[Mapping[str, Any]],
        horizon: int = 10,
        method: str = "auto_arima",
        options: Mapping[str, Any] | None = None,
        level: float = 0.95,
        season_length: int | None = None,
        include_intervals: bool = True,
        evaluate: bool = True,
        note: str | None = None,
        diagnostics: bool = False,
        now: int | None = None,
    ) -> dict[str, Any]:
        """Forecast every series ``horizon`` steps with ``method``.

        Parameters
        ----------
        series : list of mappings
            ``{"values": (n,) | None, "series_id": str | None, "timestamps": (n,) ints | None,
            "frequency": str | None, "field": name of the values in the request}``; without
            values, the stored series ``series_id``. A series with an id and values is stored.
        horizon : steps ahead (1..10 000; series x horizon at most 1 000 000).
        method : a name of :data:`prism_kernels.timeseries.models.METHODS`.
        options : the method's options (``order``, ``seasonal_order``, ``hidden_dim``...).
        level : interval coverage (0.95 or 95).
        season_length : season of the series (default: the stored series' or 1).
        include_intervals : when false, ``confidence_intervals`` is ``None``.
        evaluate : compute held-out ``metrics`` (a second fit on the truncated series).
        note : appended to ``method_used`` (how the caller's spelling of the method was read).
        diagnostics : add each series' in-sample ``fitted`` values and ``residuals`` (for the
            dashboard; not part of the REST answer).
        now : Unix seconds used for the future timestamps of series without timestamps.

        Returns
        -------
        dict
            ``forecasts``: per series ``series_id, predictions, timestamps,
            confidence_intervals ([{lower, upper, confidence_level}] per step), method_used,
            model, metrics (held out; None with ``metrics_note`` when impossible), data_points``;
            ``method, horizon, confidence_level`` and ``computation_time_ms``.
        """
        h = check_horizon(horizon)
        level = check_level(level)
        options = dict(options or {})
        if method not in _models.METHODS:
            raise InvalidInput(
                "method", f"unknown method {method!r}; choose from {sorted(_models.METHODS)}"
            )
        items = self._inputs(series)
        if len(items) * h > MAX_OUTPUT:
            raise InvalidInput(
                "horizon", f"{len(items)} series x {h} steps is over {MAX_OUTPUT} forecast values"
            )
        m = self._season(season_length, items)
        futures = [self._future(it["ts"], h, now) for it in items]
        results: list[dict[str, Any] | None] = [None] * len(items)
        with self.timed("forecast") as t:
            batches = self._batches(items, method)
            fields = {n: items[idx[0]]["field"] for n, idx in sorted(self._groups(items).items())}
            fitted = distributed.run_calls(
                (
                    (
                        self._forecast_batch,
                        (
                            np.stack([items[i]["y"] for i in idx]),
                            method,
                            h,
                            level,
                            m,
                            options,
                            evaluate,
                            fields[n],
                        ),
                        {},
                    )
                    for n, idx in batches
                ),
                desc=f"forecast-{method}",
            )
            for (n, idx), (fc, scores, why) in zip(batches, fitted, strict=True):
                mean = np.asarray(fc.mean, dtype=np.float64)
                lo = np.asarray(fc.lower, dtype=np.float64) if fc.lower is not None else None
                hi = np.asarray(fc.upper, dtype=np.float64) if fc.upper is not None else None
                for j, i in enumerate(idx):
                    model = dict(fc.models[j]) if j < len(fc.models) else {}
                    used = str(model.get("name") or fc.method)
                    if note:
                        used = f"{used} ({note})"
                    intervals = None
                    if include_intervals and lo is not None and hi is not None:
                        intervals = [
                            {"lower": _num(a), "upper": _num(b), "confidence_level": level}
                            for a, b in zip(lo[j], hi[j], strict=True)
                        ]
                    results[i] = {
                        "series_id": items[i]["id"],
                        "predictions": [_num(v) for v in mean[j]],
                        "timestamps": futures[i],
                        "confidence_intervals": intervals,
                        "method_used": used,
                        "model": _plain(model),
                        "metrics": scores[j],
                        "metrics_note": why,
                        "data_points": n,
                    }
                    if diagnostics:
                        for key in ("fitted", "residuals"):
                            a = getattr(fc, key)
                            results[i][key] = (
                                None if a is None else np.asarray(a, dtype=np.float64)[j].copy()
                            )
        out = {
            "forecasts": results,
            "method": method,
            "horizon": h,
            "confidence_level": level,
            "season_length": m,
            TIMING_KEY: t.ms,
        }
        self._record_forecasts(items, results, method, level)
        return out

    def _record_forecasts(
        self, items: list[dict], results: list[dict | None], method: str, level: float
    ) -> None:
        """Store the series that have an id with their last forecast; publish ForecastReady."""
        now = time.time()
        with self.lock:
            for it, r in zip(items, results, strict=True):
                if it["id"] is None or r is None:
                    continue
                last = {
                    "method": method,
                    "method_used": r["method_used"],
                    "horizon": len(r["predictions"]),
                    "predictions": r["predictions"],
                    "timestamps": r["timestamps"],
                    "lower": None
                    if r["confidence_intervals"] is None
                    else [c["lower"] for c in r["confidence_intervals"]],
                    "upper": None
                    if r["confidence_intervals"] is None
                    else [c["upper"] for c in r["confidence_intervals"]],
                    "confidence_level": level,
                    "metrics": r["metrics"],
                    "created": now,
                }
                if it["given"]:
                    doc = self._write(
                        it["id"], it["y"], it["ts"], frequency=it["frequency"], name=it["name"]
                    )
                else:
                    try:
                        doc = self.series.get(it["id"])
                    except NotFound:  # dropped by the store's bound meanwhile
                        continue
                doc["last_forecast"] = last
                if r["metrics"] is not None:
                    doc["last_backtest"] = {
                        "kind": "holdout",
                        "rows": [{"method": method, **r["metrics"]}],
                        "created": now,
                    }
                arrays = {"values": it["y"]}
                if it["ts"] is not None:
                    arrays["timestamps"] = it["ts"]
                self.series.put(it["id"], doc, arrays)
        for it, r in list(zip(items, results, strict=True))[:MAX_EVENTS]:
            if r is None:
                continue
            ci = r["confidence_intervals"]
            self.publish(
                "ForecastReady",
                {
                    "series_id": it["id"] or "",
                    "predictions": r["predictions"],
                    "confidence_intervals": []
                    if ci is None
                    else [[c["lower"], c["upper"]] for c in ci],
                    "method": r["method_used"],
                    "horizon": len(r["predictions"]),
                },
            )

    # ------------------------------------------------------------------ backtests

    def backtest(
        self,
        series: Sequence[Mapping[str, Any]],
        methods: Sequence[str] = ("naive", "seasonal_naive", "theta", "ets"),
        horizon: int = 12,
        windows: int = 3,
        step: int | None = None,
        window: str = "fixed",
        season_length: int | None = None,
        level: float = 0.95,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Rolling-origin backtest of each method over every series and window
        (:func:`prism_kernels.timeseries.backtest.backtest`, one batch per method and series
        length): per method the metrics averaged over the series (each series' own over its
        windows), and per series. Stored series keep their table as their last backtest."""
        h = check_horizon(horizon)
        level = check_level(level)
        methods = list(dict.fromkeys(methods))
        if not methods:
            raise InvalidInput("methods", "give at least one method")
        for j, name in enumerate(methods):
            if name not in _models.METHODS:
                raise InvalidInput(
                    f"methods.{j}",
                    f"unknown method {name!r}; choose from {sorted(_models.METHODS)}",
                )
        items = self._inputs(series)
        m = self._season(season_length, items)
        options = {k: dict(v) for k, v in (options or {}).items()}
        rows: list[dict[str, Any]] = []
        per_series: list[list[dict[str, Any]]] = [[] for _ in items]
        held_out = ""
        with self.timed("backtest") as t:
            fields = {n: items[idx[0]]["field"] for n, idx in sorted(self._groups(items).items())}
            work = [(name, n, idx) for name in methods for n, idx in self._batches(items, name)]
            results = distributed.run_calls(
                (
                    (
                        self._backtest_batch,
                        (np.stack([items[i]["y"] for i in idx]), name, h, fields[n]),
                        {
                            "n_windows": windows,
                            "step": step,
                            "window": window,
                            "level": level,
                            "season_length": m,
                            **options.get(name, {}),
                        },
                    )
                    for name, n, idx in work
                ),
                desc="backtest",
            )
            for name in methods:
                acc: dict[str, list[float]] = {k: [] for k in BACKTEST_METRICS}
                for (wname, _, idx), res in zip(work, results, strict=True):
                    if wname != name:
                        continue
                    held_out = held_out or res.held_out
                    for j, i in enumerate(idx):
                        row = {k: _num(res.per_series[k][j]) for k in BACKTEST_METRICS}
                        per_series[i].append({"method": name, **row})
                        for k in BACKTEST_METRICS:
                            acc[k].append(float(res.per_series[k][j]))
                rows.append(
                    {
                        "method": name,
                        **{k: _nanmean(v) for k, v in acc.items()},
                        "series": len(items),
                        "windows": int(windows),
                    }
                )
        now = time.time()
        with self.lock:
            for it, table in zip(items, per_series, strict=True):
                if it["id"] is None:
                    continue
                if it["given"]:
                    self._write(
                        it["id"], it["y"], it["ts"], frequency=it["frequency"], name=it["name"]
                    )
                try:
                    doc = self.series.get(it["id"])
                    arrays = self.series.arrays(it["id"])
                except NotFound:  # dropped by the store's bound meanwhile
                    continue
                doc["last_backtest"] = {
                    "kind": "rolling_origin",
                    "holdout": held_out,
                    "horizon": h,
                    "windows": int(windows),
                    "rows": table,
                    "created": now,
                }
                self.series.put(it["id"], doc, arrays)
        return {
            "rows": rows,
            "per_series": [
                {"series_id": it["id"], "rows": table}
                for it, table in zip(items, per_series, strict=True)
            ],
            "holdout": held_out,
            "horizon": h,
            "windows": int(windows),
            "season_length": m,
            TIMING_KEY: t.ms,
        }

    # ------------------------------------------------------------------ detection

    def anomalies(
        self,
        series: Sequence[Mapping[str, Any]],
        method: str = "robust_zscore",
        threshold: float = 3.5,
        window: int | None = None,
        season_length: int | None = None,
        decomposition: str = "additive",
        forecast_method: str = "ets",
        forecast_options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Anomalous points of each series (:mod:`prism_kernels.timeseries.anomalies`).

        ``method``: ``zscore`` or ``robust_zscore`` (each point against the ``window`` points
        before it; default ``min(30, n // 3)``), ``seasonal`` (robust scores of the classical
        decomposition's residuals, ``season_length >= 2``), ``residual`` (robust scores of the
        one-step residuals of ``forecast_method`` fitted to the series). Per series: the flagged
        indices, their values and scores, and every point's score (None: no score there).
        ``AnomalyDetected`` is published for each series with flagged points."""
        if method not in _anomalies.METHODS:
            raise InvalidInput(
                "method", f"unknown method {method!r}; choose from {list(_anomalies.METHODS)}"
            )
        items = self._inputs(series)
        m = self._season(season_length, items)
        results: list[dict | None] = [None] * len(items)
        used: dict[str, Any] = {}
        with self.timed("anomalies") as t:
            for n, idx in sorted(self._groups(items).items()):
                y = np.stack([items[i]["y"] for i in idx])
                try:
                    if method in ("zscore", "robust_zscore"):
                        w = window if window is not None else max(2, min(30, n // 3))
                        used["window"] = w
                        res = _anomalies.METHODS[method](y, window=w, threshold=threshold)
                    elif method == "seasonal":
                        res = _anomalies.seasonal_scores(y, m, threshold, model=decomposition)
                    else:
                        fc = _models.forecast(
                            y, forecast_method, 1, season_length=m, **dict(forecast_options or {})
                        )
                        res = _anomalies.residual_scores(fc.residuals, threshold=threshold)
                        used["model"] = [str(x.get("name", fc.method)) for x in fc.models][:1]
                except InvalidInput as exc:
                    raise self._renamed(exc, items, idx) from None
                scores = np.asarray(res.scores, dtype=np.float64)
                for j, i in enumerate(idx):
                    flagged = [int(k) for k in res.indices[j]]
                    ts = items[i]["ts"]
                    results[i] = {
                        "series_id": items[i]["id"],
                        "indices": flagged,
                        "values": [float(items[i]["y"][k]) for k in flagged],
                        "anomaly_scores": [_num(scores[j, k]) for k in flagged],
                        "timestamps": None if ts is None else [int(ts[k]) for k in flagged],
                        "scores": [_num(v) for v in scores[j]],
                        "count": len(flagged),
                    }
        for r in results[:MAX_EVENTS]:
            if r and r["count"]:
                finite = [abs(v) for v in r["anomaly_scores"] if v is not None]
                self.publish(
                    "AnomalyDetected",
                    {
                        "series_id": r["series_id"] or "",
                        "indices": r["indices"][:1000],
                        "timestamps": None if r["timestamps"] is None else r["timestamps"][:1000],
                        "count": r["count"],
                        "max_score": max(finite) if finite else None,
                        "method": method,
                    },
                )
        return {
            "results": results,
            "method": method,
            "threshold": float(threshold),
            "season_length": m,
            "window": used.get("window"),
            TIMING_KEY: t.ms,
        }

    def changepoints(
        self,
        series: Sequence[Mapping[str, Any]],
        method: str = "pelt",
        cost: str = "l2",
        penalty: float | str | None = None,
        n_breakpoints: int | None = None,
        min_size: int = 2,
        jump: int = 5,
    ) -> dict[str, Any]:
        """Change points of each series (PELT or binary segmentation,
        :mod:`prism_kernels.timeseries.changepoints`): breakpoints as ruptures gives them
        (segment end indices, the last one ``n``) and each segment's statistics. ``penalty``:
        a number (cost units), ``"bic"`` (the default for PELT and for binseg without
        ``n_breakpoints``); ``min_size`` and ``jump`` as in ruptures (defaults 2 and 5)."""
        if penalty is None and (method == "pelt" or n_breakpoints is None):
            penalty = "bic"
        items = self._inputs(series)
        results: list[dict | None] = [None] * len(items)
        with self.timed("changepoints") as t:
            for _, idx in sorted(self._groups(items).items()):
                y = np.stack([items[i]["y"] for i in idx])
                try:
                    pen = None
                    if penalty is not None:
                        pen = (
                            np.asarray(_changepoints.bic_penalty(y, cost), dtype=np.float64)
                            if penalty == "bic"
                            else np.full(len(idx), float(penalty))
                        )
                    if method == "pelt":
                        bkps = _changepoints.pelt(
                            y, penalty=pen, cost=cost, min_size=min_size, jump=jump
                        )
                    elif method == "binseg":
                        bkps = _changepoints.binseg(
                            y,
                            n_breakpoints=n_breakpoints,
                            penalty=pen,
                            cost=cost,
                            min_size=min_size,
                            jump=jump,
                        )
                    else:
                        raise InvalidInput(
                            "method", f"unknown method {method!r}; use pelt or binseg"
                        )
                    stats = _changepoints.segment_stats(y, bkps)
                except InvalidInput as exc:
                    raise self._renamed(exc, items, idx) from None
                for j, i in enumerate(idx):
                    b = [int(k) for k in bkps[j]]
                    ts = items[i]["ts"]
                    results[i] = {
                        "series_id": items[i]["id"],
                        "breakpoints": b,
                        "changepoints": b[:-1],
                        "timestamps": None if ts is None else [int(ts[k]) for k in b[:-1]],
                        "segments": _plain(stats[j]),
                        "penalty": _num(pen[j]) if pen is not None else None,
                    }
        return {
            "results": results,
            "method": method,
            "cost": cost,
            TIMING_KEY: t.ms,
        }

    # ------------------------------------------------------------------ applied forecasts

    def market(
        self,
        symbols: Sequence[str],
        prices: Any = None,
        returns: Any = None,
        horizon_days: int = 5,
        include_volatility: bool = True,
        correlation: str | None = None,
        asymmetric: bool = False,
        level: float = 0.95,
        field: str = "prices",
    ) -> dict[str, Any]:
        """Per-symbol return and volatility forecasts (GARCH(1,1) or GJR-GARCH) and a correlation
        forecast (:func:`prism_kernels.timeseries.market.market_forecast`); ``prices`` or
        ``returns`` ``(n days, k symbols)``, fractions out (0.01 = 1 %)."""
        k = len(symbols)
        data = prices if prices is not None else returns
        a = np.asarray(data, dtype=np.float64) if data is not None else None
        if a is not None and (a.ndim != 2 or a.shape[1] != k):
            raise InvalidInput(field, f"expected (days, {k} symbols), got shape {a.shape}")
        with self.timed("market") as t:
            try:
                f = _market.market_forecast(
                    None if prices is None else a,
                    horizon_days,
                    returns=None if returns is None else a,
                    include_volatility=include_volatility,
                    correlation=correlation,
                    asymmetric=asymmetric,
                    level=level,
                )
            except InvalidInput as exc:
                raise self._rename(exc, ("prices", "returns"), field) from None
            out = _market.as_numpy_dict(f)
        models = [{"symbol": s, **m} for s, m in zip(symbols, out["models"], strict=False)]
        return {
            "symbols": list(symbols),
            "predicted_returns": out["expected_returns"],
            "predicted_volatility": out["volatility"] if include_volatility else None,
            "lower": out["lower"],
            "upper": out["upper"],
            "cumulative_return": out["cumulative_return"],
            "cumulative_volatility": out["cumulative_volatility"],
            "correlation_forecast": out["correlation"],
            "correlation_method": out["correlation_method"],
            "confidence_level": out["level"],
            "models": _plain(models),
            "extra": _plain(out["extra"]),
            TIMING_KEY: t.ms,
        }

    def traffic(
        self,
        utilization: Any,
        horizon_minutes: float,
        timestamps: Any = None,
        interval_seconds: float | None = None,
        timestamp_unit_s: float = 1.0,
        node_id: str | None = None,
        capacity: float = 1.0,
        method: str = "seasonal_naive",
        options: Mapping[str, Any] | None = None,
        level: float = 0.95,
        buffer_packets: int = 100,
        field: str = "historical_utilization",
    ) -> dict[str, Any]:
        """Utilisation forecast with a daily season, the probability of exceeding capacity per
        step, and packet loss from an M/M/1/K queue with ``buffer_packets``
        (:func:`prism_kernels.timeseries.traffic.traffic_forecast`).

        The sampling interval is ``interval_seconds`` or the timestamps' average step (in units
        of ``timestamp_unit_s`` seconds); ``horizon_minutes`` becomes ``ceil(60 *
        horizon_minutes / interval)`` steps."""
        y = self._values(utilization, field)
        ts = self._timestamps(timestamps, y.size, "timestamps")
        if interval_seconds is None:
            if ts is None or ts.size < 2:
                raise InvalidInput("timestamps", "give two or more timestamps, or interval_seconds")
            step = self._future(ts, 1)[0] - int(ts[-1])
            interval_seconds = step * float(timestamp_unit_s)
        if not (math.isfinite(interval_seconds) and interval_seconds > 0):
            raise InvalidInput("interval_seconds", "must be a positive number of seconds")
        steps = math.ceil(60.0 * float(horizon_minutes) / float(interval_seconds) - 1e-9)
        if steps < 1:
            raise InvalidInput("horizon_minutes", "is shorter than one sampling interval")
        h = check_horizon(steps, "horizon_minutes")
        with self.timed("traffic") as t:
            try:
                f = _traffic.traffic_forecast(
                    y,
                    interval_seconds,
                    h,
                    capacity=capacity,
                    method=method,
                    level=level,
                    buffer_packets=buffer_packets,
                    **dict(options or {}),
                )
            except InvalidInput as exc:
                raise self._rename(exc, ("utilisation", "values"), field) from None
        fc = f.forecast
        unit = float(timestamp_unit_s)
        if ts is not None:
            last = int(ts[-1])
            future = [last + int(round(k * interval_seconds / unit)) for k in range(1, h + 1)]
        else:
            now = int(time.time())  # no timestamps: steps from now (seconds)
            future = [now + int(round(k * interval_seconds)) for k in range(1, h + 1)]
        row = lambda a: [_num(v) for v in np.asarray(a, dtype=np.float64)[0]]  # noqa: E731
        model = dict(fc.models[0]) if fc.models else {}
        return {
            "node_id": node_id,
            "predicted_utilization": row(fc.mean),
            "lower": row(fc.lower),
            "upper": row(fc.upper),
            "confidence_level": float(fc.level),
            "prob_exceed_capacity": row(f.prob_exceed),
            "load": row(f.load),
            "predicted_packet_loss": row(f.packet_loss),
            "packet_loss_upper": row(f.packet_loss_upper),
            "timestamps": future,
            "interval_seconds": float(interval_seconds),
            "horizon_steps": h,
            "season_length": int(f.season_length),
            "capacity": float(np.asarray(f.capacity, dtype=np.float64)[0]),
            "buffer_packets": int(f.buffer_packets),
            "queue_model": (
                f"M/M/1/K, K = {int(f.buffer_packets)} packets (system capacity); loss = "
                "blocking probability at the forecast load rho = mean / capacity"
            ),
            "method_used": str(model.get("name") or fc.method),
            TIMING_KEY: t.ms,
        }

    def trajectory(
        self,
        positions: Any,
        timestamps: Any,
        horizon_seconds: float,
        *,
        velocities: Any = None,
        dt: float = 0.1,
        model: str = "cv",
        process_noise: float = 1.0,
        measurement_sigma: Any = None,
        timestamp_unit_s: float = 1.0,
        track_id: str | None = None,
        max_steps: int = 10_000,
    ) -> dict[str, Any]:
        """Kinematic position and velocity forecast every ``dt`` seconds with uncertainty that
        grows with time (:func:`prism_kernels.timeseries.trajectory.trajectory_forecast`, the
        PWSA Kalman filters). Positions in metres, ``timestamps`` in units of
        ``timestamp_unit_s`` seconds; ``velocities`` (n, 3), when given, are checked against the
        positions' shape (the filter estimates velocity from the positions)."""
        p = np.asarray(positions, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] == 0:
            raise InvalidInput("historical_positions", f"expected (n, 3) positions, got {p.shape}")
        if velocities is not None and len(velocities):
            v = np.asarray(velocities, dtype=np.float64)
            if v.shape != p.shape:
                raise InvalidInput(
                    "historical_velocities", f"expected {p.shape} like the positions, got {v.shape}"
                )
        t = np.asarray(timestamps, dtype=np.float64) * float(timestamp_unit_s)
        if t.shape != (p.shape[0],):
            raise InvalidInput(
                "timestamps", f"has {t.size} timestamps for {p.shape[0]} positions; give one each"
            )
        if not (math.isfinite(horizon_seconds) and math.isfinite(dt) and dt > 0):
            raise InvalidInput("dt", "must be a positive number of seconds")
        if horizon_seconds / dt > max_steps:
            raise InvalidInput(
                "horizon_seconds", f"horizon / dt is over {max_steps} steps; raise dt or shorten it"
            )
        with self.timed("trajectory") as tm:
            try:
                f = _trajectory.trajectory_forecast(
                    p,
                    t,
                    float(horizon_seconds),
                    dt=float(dt),
                    model=model,
                    process_noise=float(process_noise),
                    measurement_sigma=measurement_sigma,
                )
            except InvalidInput as exc:
                raise self._rename(exc, ("positions",), "historical_positions") from None
        ps = np.asarray(f.position_sigma, dtype=np.float64)
        return {
            "track_id": track_id,
            "predicted_positions": _plain(np.asarray(f.positions)),
            "predicted_velocities": _plain(np.asarray(f.velocities)),
            "timestamps": _plain(
                np.asarray(f.timestamps, dtype=np.float64) / float(timestamp_unit_s)
            ),
            "position_sigma": _plain(ps),
            "velocity_sigma": _plain(np.asarray(f.velocity_sigma)),
            "uncertainty": _plain(np.sqrt(np.sum(ps**2, axis=-1))),
            "model": f.model,
            "measurement_sigma": _plain(np.asarray(f.measurement_sigma).reshape(-1)),
            "process_noise": float(f.process_noise),
            "dt": float(dt),
            TIMING_KEY: tm.ms,
        }

    # ------------------------------------------------------------------ health

    def health_details(self) -> dict[str, Any]:
        ops = self.latency()
        fc = ops.get("forecast", {})
        return {
            "series_tracked": self.series.count(),
            "forecasts_run": int(fc.get("count", 0) or 0),
            "forecast_latency_ms": fc.get("mean_ms"),
            "methods": sorted(_models.METHODS),
            "datasets": list(_datasets.DATASETS),
        }


def _num(v: Any) -> float | None:
    """A float, or ``None`` for NaN and infinity (JSON has neither)."""
    f = float(v)
    return f if math.isfinite(f) else None


def _nanmean(v: Sequence[float]) -> float | None:
    """Mean of the finite values, ``None`` when there are none."""
    a = np.asarray(v, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def _plain(o: Any) -> Any:
    """``o`` with NumPy values and tuples made plain Python (NaN and inf as ``None``)."""
    if isinstance(o, Mapping):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, (np.bool_, bool)):
        return bool(o)
    if isinstance(o, (np.integer, int)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        return _num(o)
    if hasattr(o, "__dataclass_fields__"):
        return _plain({k: getattr(o, k) for k in o.__dataclass_fields__})
    return o
