"""Fleet-wide counters through a real Redis: two processes' counts summed in both, counts made
while Redis is away kept and added once it is back, ``prism_redis_*`` rendered beside them."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, generate_latest

from prism_kernels.events import Event
from tests.redisserver import redis_server, start_redis  # noqa: F401
from widgets.server.metrics import ServerMetrics
from widgets.server.redis_link import RedisLink
from widgets.server.redis_metrics import FleetMetrics, RedisCollector


def _server_metrics(url: str, prefix: str) -> tuple[ServerMetrics, FleetMetrics, RedisLink]:
    link = RedisLink(url, prefix=prefix, backoff_s=0.0, timeout_s=1.0)
    fleet = FleetMetrics(link)
    m = ServerMetrics()
    m.attach_fleet(fleet, RedisCollector(link, fleet))
    return m, fleet, link


def _value(text: str, line_start: str) -> float:
    lines = [ln for ln in text.splitlines() if ln.startswith(line_start)]
    assert len(lines) == 1, (line_start, lines)
    return float(lines[0].rsplit(" ", 1)[1])


def test_counts_of_two_processes_are_summed_and_survive_an_outage(tmp_path):
    srv = start_redis(tmp_path)
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    try:
        (ma, fa, la), (mb, fb, lb) = (_server_metrics(srv.url, prefix) for _ in range(2))
        for _ in range(3):
            ma.observe_request("/api/v1/whoami", "GET", 200, 0.001)
        mb.observe_request("/api/v1/whoami", "GET", 200, 0.001)
        mb.observe_request("/api/v1/whoami", "BREW", 429, 0.001)  # an unknown method: OTHER
        mb.count_rate_refusal()
        ma.count_event(Event("SystemStatus", {}))
        mb.count_event(Event("SystemStatus", {}))
        mb.count_event(Event("SystemStatus", {}, origin="another-process"))  # counted there
        assert fa.flush() and fb.flush() and fa.flush()
        for m in (ma, mb):
            text = m.render().decode()
            assert (
                _value(
                    text,
                    'prism_fleet_http_requests_total{method="GET",route="/api/v1/whoami",'
                    'status="200"}',
                )
                == 4.0
            )
            assert _value(text, 'prism_fleet_http_requests_total{method="OTHER"') == 1.0
            assert _value(text, "prism_fleet_rate_limit_refusals_total") == 1.0
            assert _value(text, "prism_redis_up") == 1.0
            assert _value(text, 'prism_fleet_events_published_total{type="SystemStatus"}') == 2.0
            assert _value(text, 'events_published_total{type="SystemStatus"}') == 1.0
        # this process's own counter is its own
        assert _value(ma.render().decode(), 'http_requests_total{method="GET"') == 3.0

        srv.stop()
        ma.observe_request("/health", "GET", 200, 0.001)
        assert not fa.flush() and not fa.flush()
        text = ma.render().decode()
        assert _value(text, "prism_redis_up") == 0.0
        assert _value(text, 'prism_redis_fallbacks_total{what="metrics"}') == 2.0
        assert "/health" not in text.split("prism_fleet_http_requests")[1]  # not flushed yet

        srv.start()  # empty again: the fleet counters start again from what is flushed now
        assert fa.flush()
        text = ma.render().decode()
        assert _value(text, 'prism_fleet_http_requests_total{method="GET",route="/health"') == 1.0
        assert _value(text, "prism_redis_up") == 1.0
    finally:
        srv.stop()


def test_without_redis_nothing_is_added():
    text = ServerMetrics().render().decode()
    assert "prism_redis" not in text and "prism_fleet" not in text


def test_collector_alone_renders_up_and_fallbacks(tmp_path):
    link = RedisLink("redis://127.0.0.1:1/0")  # nothing listens on port 1
    reg = CollectorRegistry()
    reg.register(RedisCollector(link))
    assert not link.ping()
    text = generate_latest(reg).decode()
    assert "prism_redis_up 0.0" in text
    for what in ("ratelimit", "events", "llm_cache", "metrics"):
        assert f'prism_redis_fallbacks_total{{what="{what}"}} 0.0' in text


def test_fleet_gauges_sum_live_processes(redis_server):  # noqa: F811
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    sockets = {"a": 3, "b": 4}
    (ma, fa, _), (mb, fb, _) = (_server_metrics(redis_server.url, prefix) for _ in range(2))
    fa.add_gauge("websocket_connections", lambda: sockets["a"])
    fb.add_gauge("websocket_connections", lambda: sockets["b"])
    assert fa.flush() and fb.flush() and fa.flush()
    text = ma.render().decode()
    assert _value(text, "prism_fleet_processes") == 2.0
    assert _value(text, "prism_fleet_websocket_connections") == 7.0
    sockets["a"] = 1
    fb.stop()  # a clean stop takes its readings away
    assert fa.flush()
    text = ma.render().decode()
    assert _value(text, "prism_fleet_processes") == 1.0
    assert _value(text, "prism_fleet_websocket_connections") == 1.0
