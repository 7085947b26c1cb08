"""Notebook batch runs: record results in a notebook, sweep it over parameters on Dask.

In a notebook::

    from prism_kernels.batch import record
    record("matmul_gflops", 12.5)          # a number
    record("benchmark", df)                # a small table (pandas DataFrame)

Each call displays one output of MIME type :data:`RECORD_MIMETYPE` in the executed notebook;
:func:`read_records` reads them back from the output notebook file.

From a script (``prism batch`` is a thin command line over this)::

    result = run_batch("notebooks/01_quickstart.ipynb", grid={"size": [64, 128]}, out_dir="runs")
    result.table                           # one row per run: parameters, status, recorded values

:func:`run_batch` expands the parameter grid, runs one papermill execution per point as a Dask
task (on a ``LocalCluster`` by default, or on a running scheduler: ``scheduler=`` or
``PRISM_DASK_SCHEDULER``), keeps every output
notebook, writes one table (CSV and Parquet) and reports failed runs without losing the others.
No web or UI library is imported here.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECORD_MIMETYPE = "application/vnd.prism.record+json"

#: What :func:`record` recorded in this process (also outside IPython), by name.
RECORDS: dict[str, Any] = {}

MAX_TABLE_ROWS = 10_000


# ---------------------------------------------------------------- recording


def _jsonable(value: Any) -> tuple[str, Any]:
    """``(kind, JSON value)`` for a number, string, bool, None, list, dict, array or table."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    import numpy as np

    if pd is not None and isinstance(value, pd.Series):
        value = value.to_frame()
    if pd is not None and isinstance(value, pd.DataFrame):
        if len(value) > MAX_TABLE_ROWS:
            raise ValueError(
                f"a recorded table may have at most {MAX_TABLE_ROWS} rows, got {len(value)}"
            )
        frame = value.reset_index() if not isinstance(value.index, pd.RangeIndex) else value
        return "table", json.loads(frame.to_json(orient="split", index=False, double_precision=15))
    if isinstance(value, np.ndarray):
        if value.size > MAX_TABLE_ROWS:
            raise ValueError(
                f"a recorded array may have at most {MAX_TABLE_ROWS} elements, got {value.size}"
            )
        return "array", _finite(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return "scalar", _finite(value)
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(
            value, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)
        )
        return "json", _finite(json.loads(text))
    raise TypeError(
        f"cannot record a {type(value).__name__}: use a number, string, list, dict, array or DataFrame"
    )


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, list):
        return [_finite(v) for v in o]
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    return o


def record(name: str, value: Any, display: bool = True) -> Any:
    """Record a named result of this notebook run; returns ``value`` unchanged.

    Parameters
    ----------
    name : str
        A short identifier (letters, digits, ``_``, ``.``, ``-``); a later record of the same
        name replaces the earlier one.
    value : number, str, bool, None, list, dict, numpy array or pandas DataFrame/Series
        Tables and arrays are limited to 10 000 rows/elements. NaN and infinity become ``None``.
    display : bool
        Emit the record as a display output (what :func:`read_records` reads). Outside IPython
        the value is only kept in :data:`RECORDS`.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w.\-]{0,99}", name):
        raise ValueError(
            f"record name {name!r} must start with a letter or _ and use letters, digits, _ . -"
        )
    kind, data = _jsonable(value)
    RECORDS[name] = value
    if display:
        try:
            from IPython import get_ipython
            from IPython.display import display as ipy_display
        except ImportError:
            return value
        if get_ipython() is not None:
            short = repr(value) if kind == "scalar" else f"<{kind}>"
            ipy_display(
                {
                    RECORD_MIMETYPE: {"name": name, "kind": kind, "value": data},
                    "text/plain": f"recorded {name} = {short}",
                },
                raw=True,
            )
    return value


def _decode(kind: str, data: Any) -> Any:
    if kind == "table":
        import pandas as pd

        return pd.DataFrame(data["data"], columns=data["columns"])
    if kind == "array":
        import numpy as np

        return np.asarray(data)
    return data


def records_from_notebook(nb: Any) -> dict[str, Any]:
    """The records found in an in-memory notebook (a dict or ``nbformat`` node), by name."""
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            payload = (output.get("data") or {}).get(RECORD_MIMETYPE)
            if payload is None:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            out[payload["name"]] = _decode(payload.get("kind", "scalar"), payload.get("value"))
    return out


def read_records(notebook_path: str | Path) -> dict[str, Any]:
    """The values recorded with :func:`record` in an executed notebook, by name (tables as DataFrames)."""
    with open(notebook_path, encoding="utf-8") as fh:
        nb = json.load(fh)
    return records_from_notebook(nb)


# ---------------------------------------------------------------- parameter grids


def parse_value(text: str) -> Any:
    """A command-line parameter value: YAML scalars and lists (``3``, ``0.5``, ``true``, ``[1, 2]``)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_grid(path: str | Path) -> dict[str, list[Any]] | list[dict[str, Any]]:
    """Read a grid file (YAML or JSON).

    Either a mapping ``name: [values]`` (every combination is run; a scalar is one value), or a
    list of mappings (exactly those runs), or ``{"grid": {...}}`` / ``{"runs": [...]}``.
    """
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    if isinstance(doc, dict) and set(doc) <= {"grid", "runs"} and doc:
        doc = doc.get("grid", doc.get("runs"))
    if isinstance(doc, dict):
        return {str(k): (v if isinstance(v, list) else [v]) for k, v in doc.items()}
    if isinstance(doc, list) and all(isinstance(d, dict) for d in doc):
        return [dict(d) for d in doc]
    raise ValueError(
        f"{path}: a grid is a mapping name -> list of values, or a list of parameter mappings"
    )


def expand_grid(
    base: Mapping[str, Any] | None = None,
    grid: Mapping[str, Iterable[Any]] | list[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One parameter dict per run: ``base`` updated by each point of ``grid``.

    A mapping grid is the Cartesian product of its value lists (in the order given); a list grid
    is taken as is. With no grid, one run with ``base``.
    """
    base = dict(base or {})
    if grid is None:
        return [base]
    if isinstance(grid, Mapping):
        names = list(grid)
        values = [list(v) if isinstance(v, (list, tuple)) else [v] for v in grid.values()]
        if any(len(v) == 0 for v in values):
            raise ValueError("every grid parameter needs at least one value")
        return [
            {**base, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*values)
        ]
    return [{**base, **dict(point)} for point in grid]


# ---------------------------------------------------------------- one run


@dataclass
class RunResult:
    """One notebook execution: its parameters, output notebook, status and recorded values."""

    index: int
    parameters: dict[str, Any]
    output_path: str
    ok: bool
    error: str | None = None
    duration_s: float = 0.0
    records: dict[str, Any] = field(default_factory=dict)
    worker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _slug(parameters: Mapping[str, Any], limit: int = 60) -> str:
    text = "_".join(f"{k}-{v}" for k, v in parameters.items())
    text = re.sub(r"[^A-Za-z0-9._=-]+", "", text.replace(" ", ""))
    return text[:limit].strip("._-")


def execute_notebook(
    input_path: str,
    output_path: str,
    parameters: dict[str, Any],
    index: int = 0,
    kernel_name: str | None = None,
    cell_timeout: float | None = 600.0,
    cwd: str | None = None,
) -> RunResult:
    """Run one papermill execution and read its records; a failure is returned, never raised.

    This is the Dask task of :func:`run_batch` (it runs on a worker, which must see both paths).
    """
    import os
    import socket

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    t0 = time.perf_counter()
    error = None
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            input_path,
            output_path,
            parameters=parameters,
            kernel_name=kernel_name,
            progress_bar=False,
            cwd=cwd or str(Path(input_path).parent),
            execution_timeout=cell_timeout,
        )
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
    except Exception as exc:  # a missing kernel, a bad path...: still a reported, not a lost, run
        error = f"{type(exc).__name__}: {exc}"
    records: dict[str, Any] = {}
    if Path(output_path).exists():
        try:
            records = read_records(output_path)
        except Exception as exc:
            error = error or f"could not read the output notebook: {exc}"
    return RunResult(
        index=index,
        parameters=dict(parameters),
        output_path=str(output_path),
        ok=error is None,
        error=error,
        duration_s=round(time.perf_counter() - t0, 3),
        records=records,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


# ---------------------------------------------------------------- the batch


@dataclass
class BatchResult:
    """Every run of a batch, the table of parameters and records, and where it was written."""

    runs: list[RunResult]
    table: Any  # pandas.DataFrame
    out_dir: Path
    csv_path: Path
    parquet_path: Path
    scheduler: str

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.runs if not r.ok]

    @property
    def succeeded(self) -> list[RunResult]:
        return [r for r in self.runs if r.ok]


def _cell(value: Any) -> Any:
    """A table cell: scalars as they are, anything larger as JSON text."""
    import numpy as np
    import pandas as pd

    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return value
    if isinstance(value, pd.DataFrame):
        return value.to_json(orient="records")
    if isinstance(value, np.ndarray):
        return json.dumps(value.tolist())
    return json.dumps(value, default=str)


def results_table(runs: list[RunResult]) -> Any:
    """One row per run: ``run``, ``status``, ``error``, ``duration_s``, ``output``, the parameters,
    then the recorded values (a record named like a parameter becomes ``<name>_recorded``)."""
    import pandas as pd

    param_names: list[str] = []
    record_names: list[str] = []
    for r in runs:
        param_names += [k for k in r.parameters if k not in param_names]
        record_names += [k for k in r.records if k not in record_names]
    rows = []
    for r in sorted(runs, key=lambda r: r.index):
        row: dict[str, Any] = {
            "run": r.index,
            "status": "ok" if r.ok else "failed",
            "error": r.error,
            "duration_s": r.duration_s,
            "output": r.output_path,
        }
        for k in param_names:
            row[k] = _cell(r.parameters.get(k))
        for k in record_names:
            row[f"{k}_recorded" if k in param_names or k in row else k] = _cell(r.records.get(k))
        rows.append(row)
    table = pd.DataFrame(rows)
    # Parquet wants one type per column: a column mixing numbers and text is written as text.
    for col in table.columns:
        kinds = {
            type(v)
            for v in table[col]
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        }
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            table[col] = [None if v is None else str(v) for v in table[col]]
    return table


def _client(scheduler: str | None, workers: int | None, n_runs: int) -> tuple[Any, Any]:
    """A client of ``scheduler`` (default ``PRISM_DASK_SCHEDULER``), else of a new local
    cluster (returned too, to be closed)."""
    from distributed import Client

    from prism_kernels.distributed import local_cluster, redact, scheduler_address

    scheduler = scheduler or scheduler_address()
    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except (OSError, TimeoutError) as exc:
            raise OSError(
                f"the Dask scheduler at {redact(scheduler)} cannot be reached: "
                f"{type(exc).__name__}: {redact(str(exc))[:200]}"
            ) from None
    cluster = local_cluster(n_workers=workers or max(1, min(4, n_runs)))
    return Client(cluster), cluster


def run_batch(
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    grid: Mapping[str, Iterable[Any]] | list[Mapping[str, Any]] | str | Path | None = None,
    out_dir: str | Path = "batch-runs",
    scheduler: str | None = None,
    workers: int | None = None,
    kernel_name: str | None = None,
    cell_timeout: float | None = 600.0,
    progress: bool | Callable[[RunResult], None] = True,
) -> BatchResult:
    """Run ``notebook`` once per parameter point as Dask tasks; collect one table.

    Parameters
    ----------
    notebook : path
        The template (its first code cell tagged ``parameters``).
    parameters : mapping, optional
        Values applied to every run.
    grid : mapping, list of mappings, or a path to a YAML/JSON grid file (see :func:`load_grid`)
    out_dir : path
        Gets ``<stem>__NNN_<params>.ipynb`` per run, ``results.csv`` and ``results.parquet``.
    scheduler : str, optional
        ``tcp://host:port`` of a running ``dask scheduler`` (its workers must see the paths);
        default: ``PRISM_DASK_SCHEDULER`` when set, else a ``LocalCluster`` of ``workers``
        processes on 127.0.0.1, closed afterwards.
    progress : bool or callable
        ``True``: a tqdm bar on stderr; a callable is called with each finished :class:`RunResult`.

    Returns
    -------
    BatchResult
        Failed runs are in it with their error; nothing raised for them.
    """
    import pandas as pd  # noqa: F401  (the table)
    from distributed import as_completed

    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"no notebook at {notebook}")
    if isinstance(grid, (str, Path)):
        grid = load_grid(grid)
    points = expand_grid(parameters, grid)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(len(points) - 1)))
    specs = []
    for i, point in enumerate(points):
        slug = _slug(point)
        name = f"{notebook.stem}__{i:0{width}d}{'_' + slug if slug else ''}.ipynb"
        specs.append((i, point, str(out / name)))

    client, cluster = _client(scheduler, workers, len(specs))
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(specs), desc=notebook.name, unit="run")
    runs: list[RunResult] = []
    try:
        futures = {
            client.submit(
                execute_notebook,
                str(notebook),
                path,
                point,
                i,
                kernel_name,
                cell_timeout,
                str(notebook.parent),
                key=f"prism-batch-{notebook.stem}-{i}-{time.time_ns()}",
                pure=False,
            ): (i, point, path)
            for i, point, path in specs
        }
        for fut in as_completed(futures):
            i, point, path = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # the worker died, the task could not be deserialised...
                result = RunResult(
                    index=i,
                    parameters=point,
                    output_path=path,
                    ok=False,
                    error=f"{type(exc).__name__}: {exc}",
                )
            runs.append(result)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=sum(not r.ok for r in runs))
            elif callable(progress):
                progress(result)
        scheduler_address = client.scheduler.address
    finally:
        if bar is not None:
            bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    runs.sort(key=lambda r: r.index)
    table = results_table(runs)
    csv_path, parquet_path = out / "results.csv", out / "results.parquet"
    table.to_csv(csv_path, index=False)
    table.to_parquet(parquet_path, index=False)
    return BatchResult(
        runs=runs,
        table=table,
        out_dir=out,
        csv_path=csv_path,
        parquet_path=parquet_path,
        scheduler=scheduler_address,
    )
