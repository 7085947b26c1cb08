"""``prism batch``: records, grids, papermill runs as Dask tasks, locally and on a real scheduler."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from prism_kernels.batch import (
    RECORD_MIMETYPE,
    execute_notebook,
    expand_grid,
    load_grid,
    parse_value,
    read_records,
    results_table,
    run_batch,
)
from tests.serverutil import free_port

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"


def tiny_notebook(path: Path) -> Path:
    """A cheap template: parameters, a real computation, records, and a way to fail."""
    cells = [
        nbformat.v4.new_code_cell("n = 4\nscale = 1.5"),
        nbformat.v4.new_code_cell(
            "import numpy as np\nimport pandas as pd\nfrom prism_kernels.batch import record\n"
            "if n < 1:\n    raise ValueError(f'n must be positive, got {n}')\n"
            "v = np.arange(n) * scale\n"
            "record('total', float(v.sum()))\nrecord('values', v)\n"
            "record('table', pd.DataFrame({'i': np.arange(n), 'v': v}))\nrecord('label', f'n={n}')"
        ),
    ]
    cells[0].metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_expand_grid_and_parse():
    assert expand_grid({"a": 1}) == [{"a": 1}]
    assert expand_grid({"a": 1}, {"b": [1, 2], "c": ["x", "y"]}) == [
        {"a": 1, "b": 1, "c": "x"},
        {"a": 1, "b": 1, "c": "y"},
        {"a": 1, "b": 2, "c": "x"},
        {"a": 1, "b": 2, "c": "y"},
    ]
    assert expand_grid({"a": 1}, [{"a": 2}, {"b": 3}]) == [{"a": 2}, {"a": 1, "b": 3}]
    with pytest.raises(ValueError):
        expand_grid(None, {"b": []})
    assert [parse_value(t) for t in ("3", "0.5", "true", "[1, 2]", "float32")] == [
        3,
        0.5,
        True,
        [1, 2],
        "float32",
    ]


def test_load_grid(tmp_path):
    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"size": [64, 128], "dtype": "float64"}))
    assert load_grid(tmp_path / "g.yaml") == {"size": [64, 128], "dtype": ["float64"]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"runs": [{"size": 64}, {"size": 96}]}))
    assert load_grid(tmp_path / "r.yaml") == [{"size": 64}, {"size": 96}]
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError):
        load_grid(tmp_path / "bad.yaml")


def test_record_and_read_back_through_papermill(tmp_path):
    nb = tiny_notebook(tmp_path / "tiny.ipynb")
    ok = execute_notebook(str(nb), str(tmp_path / "out.ipynb"), {"n": 5, "scale": 2.0})
    assert ok.ok, ok.error
    rec = read_records(tmp_path / "out.ipynb")
    assert rec["total"] == pytest.approx(2.0 * (0 + 1 + 2 + 3 + 4))
    assert rec["values"].tolist() == [0, 2, 4, 6, 8]
    assert isinstance(rec["table"], pd.DataFrame) and list(rec["table"].columns) == ["i", "v"]
    assert rec["table"]["v"].sum() == pytest.approx(20.0) and rec["label"] == "n=5"
    raw = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert any(
        RECORD_MIMETYPE in o.get("data", {}) for c in raw.cells for o in c.get("outputs", [])
    )
    bad = execute_notebook(str(nb), str(tmp_path / "bad.ipynb"), {"n": 0})
    assert not bad.ok and "n must be positive" in bad.error and Path(bad.output_path).exists()
    table = results_table([ok, bad])
    assert list(table["status"]) == ["ok", "failed"] and pd.isna(table.loc[1, "total"])


def _check_outputs(out: Path, n_rows: int) -> pd.DataFrame:
    notebooks = sorted(out.glob("*.ipynb"))
    assert len(notebooks) == n_rows, notebooks
    csv = pd.read_csv(out / "results.csv")
    parquet = pd.read_parquet(out / "results.parquet")
    assert len(csv) == len(parquet) == n_rows
    assert list(csv.columns) == list(parquet.columns)
    return parquet


@pytest.mark.slow
def test_cli_grid_over_quickstart_on_a_local_cluster(tmp_path):
    """`prism batch notebooks/01_quickstart.ipynb` over a grid of two values."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"size": [64, 96]}))
    out = tmp_path / "runs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "widgets.cli",
            "batch",
            str(QUICKSTART),
            "--grid",
            str(grid),
            "-p",
            "repeats",
            "2",
            "--workers",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    print(proc.stdout, proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 of 2 run(s) succeeded" in proc.stdout
    table = _check_outputs(out, 2)
    assert sorted(table["size"]) == [64, 96] and set(table["repeats"]) == {2}
    assert (table["status"] == "ok").all()
    assert (table["matmul_gflops"] > 0).all() and (table["server_gflops"] > 0).all()
    assert set(table["backend"]) == {"numpy"}
    for _, row in table.iterrows():  # each output notebook holds its own run's records
        assert read_records(row["output"])["size"] == row["size"]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real `dask scheduler` and `dask worker` (2 processes) on 127.0.0.1, stopped afterwards."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bindir = Path(sys.executable).parent
    logs = [open(tmp_path / "scheduler.log", "w"), open(tmp_path / "worker.log", "w")]
    scheduler = subprocess.Popen(
        [
            str(bindir / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-dashboard",
        ],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [
            str(bindir / "dask"),
            "worker",
            address,
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
        ],
        stdout=logs[1],
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    procs = [worker, scheduler]
    try:
        from distributed import Client

        deadline = time.time() + 120
        with Client(address, timeout="60s") as client:
            while len(client.scheduler_info()["workers"]) < 2:
                assert time.time() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
                time.sleep(0.5)
        yield address
    finally:
        import signal

        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        for f in logs:
            f.close()


@pytest.mark.slow
def test_batch_on_a_running_scheduler_reports_a_failed_run(tmp_path, dask_cluster):
    """Two runs of the quickstart on a real scheduler; one made to fail (an invalid dtype)."""
    seen = []
    result = run_batch(
        QUICKSTART,
        parameters={"size": 64, "repeats": 1, "serve": False},
        grid=[{"dtype": "float32"}, {"dtype": "float16"}],
        out_dir=tmp_path / "runs",
        scheduler=dask_cluster,
        progress=seen.append,
    )
    assert result.scheduler == dask_cluster and len(seen) == 2
    assert [r.ok for r in result.runs] == [True, False]
    failed = result.failed[0]
    assert "InvalidInput" in failed.error and "dtype" in failed.error
    assert Path(
        failed.output_path
    ).exists()  # the failed run's notebook is kept, with its traceback
    ok = result.succeeded[0]
    assert ok.records["matmul_gflops"] > 0 and ok.records["server_gflops"] is None
    assert all(
        r.worker and r.worker.split(":")[1] != str(os.getpid()) for r in result.runs
    )  # ran on the workers
    table = _check_outputs(tmp_path / "runs", 2)
    assert list(table["status"]) == ["ok", "failed"] and list(table["dtype"]) == [
        "float32",
        "float16",
    ]
    assert pd.isna(table.loc[0, "error"]) and "dtype" in table.loc[1, "error"]
