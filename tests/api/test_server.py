"""Root, health, metrics, OpenAPI, the GPU routes, responsiveness under load, restart."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest
from openapi_spec_validator import validate

from tests.serverutil import PrismServer
from widgets.server.app import SERVER_ROUTES
from widgets.server.routes import all_routes


def test_root_json_and_html(server):
    with httpx.Client(base_url=server.url) as c:
        info = c.get("/", headers={"Accept": "application/json"}).json()
        assert {"name", "version", "status", "endpoints", "dashboards"} <= set(info)
        assert "/system" in info["dashboards"]
        page = c.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
        assert page.headers["content-type"].startswith("text/html")
        assert 'href="./system"' in page.text


def test_whoami_names_the_role_of_the_key(server):
    for role in ("admin", "user", "readonly"):
        with server.client(role) as c:
            r = c.get("/api/v1/whoami")
        assert r.status_code == 200 and r.json()["data"] == {"role": role}
    assert httpx.get(server.url + "/api/v1/whoami").status_code == 401


def test_health(server):
    body = httpx.get(server.url + "/health").json()
    assert body["status"] == "ok" and body["backend"] == "numpy" and body["uptime_s"] > 0
    assert set(body) == {"status", "version", "backend", "uptime_s"}


def test_metrics_prometheus_text(server, api):
    api.get("/api/v1/gpu/status")
    text = httpx.get(server.url + "/metrics").text
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "websocket_connections",
        "executor_queue_depth",
        "auth_refusals_total",
        "rate_limit_refusals_total",
        "backend_info",
        "gpu_memory_used_bytes",
        "http_requests_in_flight",
    ):
        assert name in text, name
    assert re.search(
        r'http_requests_total\{method="GET",route="/api/v1/gpu/status",status="200"\} [1-9]', text
    )


def test_openapi_valid_and_lists_exactly_the_routes_served(server, api):
    doc = api.get("/api/v1/openapi.json").json()
    validate(doc)
    declared = {(r.method.lower(), r.path) for r in all_routes() + SERVER_ROUTES.routes}
    documented = {(m, p) for p, ms in doc["paths"].items() for m in ms}
    assert documented == declared
    for method, path in documented:
        concrete = re.sub(r"{\w+}", "no-such-id", path)
        r = api.request(method.upper(), concrete, json={} if method == "post" else None)
        if "{" in path:
            assert r.status_code == 404  # the route exists; the id does not
            assert r.json()["error"] == "NotFound" and "not found" in r.json()["message"]
        else:
            assert r.status_code != 404, (method, path, r.text)


def test_gpu_routes_report_real_readings(api):
    st = api.get("/api/v1/gpu/status").json()["data"]
    assert st["available"] is False and st["device_count"] == 0  # CI has no GPU
    assert st["backend"]["backend"] == "numpy" and st["backend"]["device"] == "cpu"
    m = api.get("/api/v1/gpu/metrics").json()["data"]
    assert m["gpu"]["available"] is False and m["gpu"]["utilization_percent"] is None
    assert 0 < m["system"]["memory_usage"] <= 100
    time.sleep(1.2)
    u = api.get("/api/v1/gpu/utilization").json()["data"]
    assert u["samples"] >= 1 and len(u["time_series"]) == u["samples"]
    ts = [p["timestamp"] for p in u["time_series"]]
    assert ts == sorted(ts)
    rows = api.post(
        "/api/v1/gpu/benchmark", json={"benchmark_type": "all", "workload_size": 128}
    ).json()["data"]
    assert [r["benchmark_type"] for r in rows] == ["matrix_multiply", "fft", "memory_bandwidth"]
    assert rows[0]["throughput_gflops"] > 0 and rows[2]["memory_bandwidth_gb_s"] > 0
    run = api.get(f"/api/v1/gpu/benchmark/{rows[0]['run_id']}").json()["data"]
    assert run["results"][0]["throughput_gflops"] == rows[0]["throughput_gflops"]
    # PascalCase, as the original's clients send it
    assert (
        api.post(
            "/api/v1/gpu/benchmark", json={"benchmark_type": "MatrixMultiply", "workload_size": 64}
        ).status_code
        == 200
    )


def test_health_answers_while_heavy_requests_run(server, api):
    """Eight large benchmark requests at once must not stall the event loop (generous bound)."""
    errors: list[str] = []

    def heavy():
        with server.client("user", timeout=300) as c:
            r = c.post(
                "/api/v1/gpu/benchmark",
                json={"benchmark_type": "matrix_multiply", "workload_size": 1536, "repeats": 3},
            )
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=heavy) for _ in range(8)]
    for t in threads:
        t.start()
    worst = 0.0
    answered = 0
    with httpx.Client(base_url=server.url, timeout=30) as c:
        while any(t.is_alive() for t in threads):
            t0 = time.perf_counter()
            assert c.get("/health").status_code == 200
            worst = max(worst, time.perf_counter() - t0)
            answered += 1
            time.sleep(0.05)
    for t in threads:
        t.join()
    assert not errors
    assert answered >= 3
    assert worst < 2.0, f"/health took {worst:.2f} s under load"


def test_store_survives_restart(tmp_path):
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("user") as c:
        rows = c.post(
            "/api/v1/gpu/benchmark", json={"benchmark_type": "fft", "workload_size": 64}
        ).json()["data"]
        run_id = rows[0]["run_id"]
    with PrismServer(data_dir=tmp_path, dashboards=False) as srv, srv.client("readonly") as c:
        run = c.get(f"/api/v1/gpu/benchmark/{run_id}")
        assert run.status_code == 200
        assert run.json()["data"]["results"][0]["throughput_gflops"] == rows[0]["throughput_gflops"]
        assert any(
            r["run_id"] == run_id for r in c.get("/api/v1/gpu/benchmarks").json()["data"]["runs"]
        )


@pytest.mark.parametrize("slug", ["system"])
def test_dashboard_page_is_served(server, slug):
    anonymous = httpx.get(f"{server.url}/{slug}", timeout=60)
    assert anonymous.status_code == 302 and anonymous.headers["location"].startswith("/login")
    with server.login("readonly") as c:
        r = c.get(f"/{slug}")
    assert r.status_code == 200 and "bokeh" in r.text.lower()


def test_metrics_count_root_health_and_metrics_under_their_own_names(server):
    with httpx.Client(base_url=server.url) as c:
        c.get("/", headers={"Accept": "application/json"})
        c.get("/health")
        c.get("/metrics")
        text = c.get("/metrics").text
    for route in ("/", "/health", "/metrics"):
        assert re.search(
            rf'http_requests_total\{{method="GET",route="{re.escape(route)}",status="200"\}} [1-9]',
            text,
        ), route
