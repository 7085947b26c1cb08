"""Batch kernels on a real Dask cluster (``PRISM_DASK_SCHEDULER``) give the in-process answers.

One ``LocalCluster`` of two worker processes on 127.0.0.1 serves the module. Each test computes
a batch in process (no scheduler), then again with ``PRISM_DASK_SCHEDULER`` naming the cluster,
checks from the scheduler's task stream that the pieces really ran there, and compares.

Equality is exact: every piece is a pure function of its inputs, run by the same NumPy/SciPy
builds on the same machine, and where a batch is cut differently on the cluster (series in
groups of ``SERIES_PER_TASK``) each series is fitted on its own, so only the grouping of the
identical per-series work changes. The Monte Carlo blocks are fixed by ``n_paths`` alone
(block ``b`` draws from ``SeedSequence(seed).spawn(...)[b - 1]``), so the same streams are
drawn in both modes.
"""

from __future__ import annotations

import json
import re
import socket
import time

import numpy as np
import pytest

from prism_kernels import distributed as D
from prism_kernels.errors import InvalidInput, Unavailable

pytestmark = pytest.mark.slow  # a cluster start and real fits: about 30-60 s on 2 busy cores


@pytest.fixture(scope="module")
def cluster():
    c = D.local_cluster(n_workers=2, threads_per_worker=1)
    try:
        yield c.scheduler_address
    finally:
        D.close_clients()
        c.close(timeout=20)


@pytest.fixture
def on_dask(cluster, monkeypatch):
    """Switches PRISM_DASK_SCHEDULER on; returns a function that runs ``fn`` and the task keys
    the scheduler ran meanwhile."""
    from distributed import get_task_stream

    def run(fn):
        monkeypatch.setenv(D.ENV, cluster)
        try:
            with get_task_stream(client=D.client(cluster)) as ts:
                out = fn()
            keys = [t["key"] for t in ts.data]
        finally:
            monkeypatch.delenv(D.ENV)
        return out, keys

    monkeypatch.delenv(D.ENV, raising=False)
    return run


def _ran(keys, prefix, at_least=1):
    got = [k for k in keys if str(k).startswith(f"prism-{prefix}-")]
    assert len(got) >= at_least, (prefix, keys)


def _strip(d):
    """A service answer without its timing (the one field that differs between runs), as JSON
    text: equal text is equal numbers to the last bit (NaN included)."""
    d = dict(d)
    d.pop("computation_time_ms", None)
    return json.dumps(d, sort_keys=True, default=lambda o: np.asarray(o).tolist())


def test_in_process_without_a_scheduler(monkeypatch):
    monkeypatch.delenv(D.ENV, raising=False)
    assert D.scheduler_address() is None
    monkeypatch.setenv(D.ENV, "  ")
    assert D.scheduler_address() is None
    calls = [(divmod, (7, k), {}) for k in (1, 2, 3)]
    assert D.run_calls(calls) == [(7, 0), (3, 1), (2, 1)]
    assert D.split(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    assert D.split(2, 5) == [range(0, 1), range(1, 2)]


def test_monte_carlo_var_on_dask_equals_in_process(on_dask):
    from prism_kernels.finance import risk

    rng = np.random.default_rng(4)
    n = 6
    A = rng.normal(size=(n, n)) * 0.01
    cov = A @ A.T
    mu = np.full(n, 2e-4)
    W = rng.dirichlet(np.ones(n), size=3)
    n_paths = 2 * risk.MC_BLOCK_PATHS + 12_345  # three scenario blocks
    for kw in ({}, {"distribution": "t", "dof": 5.0, "compound": False}):
        local = risk.monte_carlo_var(W, mu, cov, 0.99, 3, n_paths=n_paths, seed=21, **kw)
        remote, keys = on_dask(
            lambda kw=kw: risk.monte_carlo_var(W, mu, cov, 0.99, 3, n_paths=n_paths, seed=21, **kw)
        )
        _ran(keys, "monte-carlo-var", 3)
        for a, b in (
            (local.var, remote.var),
            (local.cvar, remote.cvar),
            (local.standard_error, remote.standard_error),
            *zip(local.var_interval, remote.var_interval, strict=True),
        ):
            np.testing.assert_array_equal(a, b)
    # the blocks draw different streams: a second block is not a copy of the first
    one = risk._mc_block(
        np.linalg.cholesky(cov), mu, W, paths=1000, chunk_size=1000, horizon=1, seed=21,
        block=0, dist="normal", dof=None, compound=True,
    )  # fmt: skip
    two = risk._mc_block(
        np.linalg.cholesky(cov), mu, W, paths=1000, chunk_size=1000, horizon=1, seed=21,
        block=1, dist="normal", dof=None, compound=True,
    )  # fmt: skip
    assert not np.allclose(one, two)


def test_n_minus_1_sweep_on_dask_equals_in_process(on_dask):
    from prism_kernels.telecom import failures as F
    from prism_kernels.telecom import topology as T
    from prism_kernels.telecom import traffic

    topo = T.random_topology(40, 90, seed=3)
    dem = T.demands_from_matrix(topo, traffic.gravity_matrix(topo, 400.0, seed=2))
    scen = F.n_minus_1(topo, ["links", "nodes"])
    local = F.what_if(topo, dem, scen, keep_loads=True)
    remote, keys = on_dask(lambda: F.what_if(topo, dem, scen, keep_loads=True))
    _ran(keys, "n-1-sweep", 2)
    for name in ("max_utilization", "worst_arc", "cut_volume", "rerouted", "loads", "overloaded"):
        np.testing.assert_array_equal(getattr(local, name), getattr(remote, name), err_msg=name)
    assert [c.tolist() for c in local.cut] == [c.tolist() for c in remote.cut]
    assert local.cut_reason == remote.cut_reason


def _series(B: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 10 * np.sin(2 * np.pi * t / 12)[None] + np.cumsum(rng.normal(size=(B, n)), 1)


def test_many_series_forecasts_and_backtests_on_dask_equal_in_process(on_dask, monkeypatch):
    from prism_kernels.timeseries import service as S

    monkeypatch.setattr(S, "SERIES_PER_TASK", 4)  # 10 + 3 series: 4 tasks on the cluster
    Y = _series(10, 40, 1)
    series = [{"values": y} for y in Y] + [{"values": y} for y in _series(3, 52, 2)]
    svc = S.TimeseriesService()

    def forecast():
        return svc.forecast(series, horizon=5, method="auto_arima", season_length=12, now=0)

    local = forecast()
    remote, keys = on_dask(forecast)
    _ran(keys, "forecast-auto_arima", 4)
    assert _batch_size_free(_strip(remote)) == _batch_size_free(_strip(local))
    assert "over 10 series" in _strip(local) and "over 4 series" in _strip(remote)

    def backtest():
        return svc.backtest(series, methods=("theta", "ets"), horizon=4, windows=2)

    local = backtest()
    remote, keys = on_dask(backtest)
    _ran(keys, "backtest", 8)
    assert _batch_size_free(_strip(remote)) == _batch_size_free(_strip(local))


def _batch_size_free(text: str) -> str:
    """The answer without the size of the batch each fit ran in, which the held-out
    description states ("one batched call over 4 series x 1 windows"): on the cluster a group
    of series is fitted in pieces of ``SERIES_PER_TASK``. Every number stays compared."""
    return re.sub(r"over \d+ series x", "over B series x", text)


def test_a_kernel_error_on_a_worker_is_the_same_400(on_dask, monkeypatch):
    from prism_kernels.seeds import check_seed
    from prism_kernels.timeseries import service as S

    with pytest.raises(InvalidInput) as local:
        check_seed(-1, "options.seed")
    with pytest.raises(InvalidInput) as remote:
        on_dask(lambda: D.run_calls([(check_seed, (-1, "options.seed"), {})], desc="seed"))
    assert (remote.value.field, remote.value.message) == (local.value.field, local.value.message)

    # a series too short for the method: named after the series in the request, both ways
    monkeypatch.setattr(S, "SERIES_PER_TASK", 1)
    series = [{"values": _series(1, 40, 3)[0]}, {"values": [1.0, 2.0, 3.0]}]
    svc = S.TimeseriesService()
    with pytest.raises(InvalidInput) as local:
        svc.forecast(series, horizon=3, method="auto_arima")
    with pytest.raises(InvalidInput) as remote:
        on_dask(lambda: svc.forecast(series, horizon=3, method="auto_arima"))
    assert remote.value.field == local.value.field == "series.1"
    assert remote.value.message == local.value.message


def test_frontier_on_dask_equals_in_process(on_dask):
    from prism_kernels.finance.service import FinanceService

    rng = np.random.default_rng(8)
    n = 6
    A = rng.normal(size=(n, n)) * 0.08
    cov = A @ A.T + np.diag(np.full(n, 0.01))
    er = rng.uniform(0.02, 0.12, n)
    assets = [f"A{i}" for i in range(n)]
    svc = FinanceService()

    def frontier():
        return svc.frontier(assets, points=15, covariance=cov, expected_returns=er)

    local = frontier()
    remote, keys = on_dask(frontier)
    _ran(keys, "frontier", 3)
    assert _strip(remote) == _strip(local)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_a_503_not_a_hang(monkeypatch):
    from prism_kernels.finance import risk

    address = f"tcp://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv(D.ENV, address)
    monkeypatch.setattr(D, "CONNECT_TIMEOUT_S", 1.0)
    t0 = time.monotonic()
    with pytest.raises(Unavailable) as e:
        risk.monte_carlo_var(np.ones(2) / 2, np.zeros(2), np.eye(2) * 1e-4, n_paths=1000)
    assert time.monotonic() - t0 < 15
    assert address in str(e.value) and D.ENV in str(e.value)
    from widgets.server.errors import from_exception

    assert from_exception(e.value).status == 503  # what the server answers
    # right after a failed connection: refused without a new attempt (which would now wait 3 s)
    monkeypatch.setattr(D, "CONNECT_TIMEOUT_S", 3.0)
    t0 = time.monotonic()
    with pytest.raises(Unavailable):
        risk.monte_carlo_var(np.ones(2) / 2, np.zeros(2), np.eye(2) * 1e-4, n_paths=1000)
    assert time.monotonic() - t0 < 2.0
    D.close_clients()  # forgets the failure
    assert D.redact("tcp://user:secret@host:8786") == "tcp://user:***@host:8786"


def test_a_scheduler_without_workers_is_a_503_not_a_hang(monkeypatch):
    from prism_kernels.finance import risk

    empty = D.local_cluster(n_workers=0)
    try:
        monkeypatch.setenv(D.ENV, empty.scheduler_address)
        with pytest.raises(Unavailable, match="has no workers"):
            risk.monte_carlo_var(np.ones(2) / 2, np.zeros(2), np.eye(2) * 1e-4, n_paths=1000)
    finally:
        D.close_clients()
        empty.close(timeout=10)


def test_prism_batch_uses_the_scheduler_of_the_environment(cluster, tmp_path, monkeypatch):
    import nbformat

    from prism_kernels.batch import run_batch

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell("from prism_kernels.batch import record\nrecord('y', x * x)"),
    ]
    path = tmp_path / "square.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv(D.ENV, cluster)
    result = run_batch(path, grid={"x": [2, 3]}, out_dir=tmp_path / "runs", progress=False)
    assert result.scheduler == cluster
    assert [r.records.get("y") for r in result.runs] == [4, 9], [r.error for r in result.runs]
