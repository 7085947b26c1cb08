"""A short run of ``benchmarks/load.py``: 1000 WebSockets held through mixed REST load (loopback)."""

from __future__ import annotations

import pytest

from benchmarks.load import run


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mixed_load_with_1000_websockets(tmp_path):
    report = run(
        [
            "--duration",
            "5",
            "--concurrency",
            "8",
            "--websockets",
            "1000",
            "--max-requests",
            "2000",
            "--json",
            str(tmp_path / "load.json"),
        ]
    )
    ws = report["websockets"]
    assert ws["opened"] == 1000 and ws["failed_to_open"] == 0
    assert ws["dropped"] == 0, ws
    assert report["errors"] == 0, report["routes"]
    for route in report["routes"].values():
        assert route["ok"] > 0 and route["errors"] == 0
    assert report["server_rss_mb"]["under_load"] > 0


@pytest.mark.slow
def test_health_answers_while_big_benchmarks_run():
    report = run(["--mode", "health-under-load", "--heavy", "8", "--heavy-size", "512"])
    assert report["errors"] == 0
    assert report["heavy"]["ok"] == 8 and report["health_under_load"]["ok"] >= 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_compare_prints_ours_against_a_bare_tornado_handler(capsys):
    """A short side-by-side run (the ratio itself is measured on a quiet machine, see the
    module docstring of benchmarks/load.py; here only that it runs and answers)."""
    report = run(["--mode", "compare", "--rounds", "1", "--duration", "1", "--connections", "8"])
    assert report["errors"] == 0
    routes = report["routes"]
    assert set(routes) == {"bare Tornado handler", "GET /health", "GET /api/v1/whoami (key)"}
    for r in routes.values():
        assert r["req_per_s"] > 50 and r["ratio_to_bare"] > 0
    assert "x bare" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_one_against_two_worker_processes_holds_every_websocket(tmp_path):
    """``--mode workers``: ``--workers 1`` and ``--workers 2`` side by side on a real Redis
    and PostgreSQL, the sockets spread over both processes and none dropped (the numbers
    themselves are the benchmark's, see benchmarks/load.py)."""
    from tests.pgserver import _need_binaries
    from tests.redisserver import require_redis

    require_redis()
    _need_binaries()
    report = run(
        [
            "--mode",
            "workers",
            "--duration",
            "2",
            "--websockets",
            "200",
            "--concurrency",
            "4",
            "--connections",
            "8",
            "--json",
            str(tmp_path / "workers.json"),
        ]
    )
    assert report["errors"] == 0
    assert set(report["configs"]) == {"1", "2"}
    for n, config in report["configs"].items():
        assert config["processes"] == int(n)
        assert config["health"]["requests"] > 0 and config["mixed"]["req_per_s"] > 0
        for route in config["mixed"]["routes"].values():
            assert route["ok"] > 0 and route["errors"] == 0
        ws = config["mixed"]["websockets"]
        assert ws["opened"] == 200 and ws["failed_to_open"] == 0 and ws["dropped"] == 0
        assert sum(ws["per_process"]) == 200 and len(ws["per_process"]) == int(n)
    # with two processes the kernel gives each a share of the sockets
    assert min(report["configs"]["2"]["mixed"]["websockets"]["per_process"]) > 0
