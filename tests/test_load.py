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
