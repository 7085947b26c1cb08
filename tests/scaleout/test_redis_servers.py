"""Two real ``prism serve`` processes sharing one real Redis (``PRISM_REDIS_URL``): one rate
limit for both, an event made through A on a WebSocket of B (once), an LLM answer cached by A
served from the cache by B, fleet-wide figures in both ``/metrics``, no secret in Redis."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from websockets.sync.client import connect

from tests.llm.conftest import models_env
from tests.llm.loopback import LoopbackServer
from tests.redisserver import redis_contents, start_redis
from tests.serverutil import KEYS, PrismServer

OPENAI_KEY = "sk-test-OPENAI-servers-0123456789SECRET"
RATE, BURST = 0.5, 10
Q = "What is the capital of France?"

pytestmark = pytest.mark.slow  # two server processes start (bounded: well under a minute)


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("redis-servers")
    srv = start_redis(root / "redis")
    with LoopbackServer(api_key=OPENAI_KEY, flavour="openai") as oa:
        env = {
            "PRISM_REDIS_URL": srv.url,
            "PRISM_RATE_BURST": str(BURST),
            **models_env(root, oa.openai_url, key=OPENAI_KEY),
        }
        servers = [
            PrismServer(data_dir=root / name, dashboards=False, rate_limit=RATE, extra_env=env)
            for name in ("a", "b")
        ]
        try:
            with ThreadPoolExecutor(2) as pool:  # start both at once (start-up is the slow part)
                list(pool.map(lambda s: s.start(), servers))
            for s in servers:  # both linked to Redis (the relay subscribed, a flush done)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    if "prism_redis_up 1.0" in httpx.get(s.url + "/metrics").text:
                        break
                    time.sleep(0.2)
                else:
                    pytest.fail(f"server on {s.port} never reached Redis:\n{s.log_text()[-2000:]}")
            yield {"a": servers[0], "b": servers[1], "redis": srv, "oa": oa}
        finally:
            for s in servers:
                s.stop()
            srv.stop()


def test_one_rate_limit_across_two_processes(fleet):
    a, b = fleet["a"], fleet["b"]
    headers = {"X-API-Key": KEYS["readonly"]}
    codes = {"a": [], "b": []}
    t0 = time.monotonic()
    with httpx.Client(headers=headers, timeout=30) as c:
        for i in range(30):
            name, srv = ("a", a) if i % 2 == 0 else ("b", b)
            codes[name].append(c.get(srv.url + "/api/v1/whoami").status_code)
    elapsed = time.monotonic() - t0
    allowed = sum(code == 200 for v in codes.values() for code in v)
    assert set(codes["a"]) | set(codes["b"]) <= {200, 429}
    # One bucket of BURST for both (per process it would be 2 x BURST), plus what refilled.
    assert BURST <= allowed <= BURST + int(RATE * elapsed) + 1
    assert 429 in codes["a"] and 429 in codes["b"]
    refused = 30 - allowed
    # fleet-wide figures: both processes' requests in either one's /metrics (after a flush)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        texts = [httpx.get(s.url + "/metrics").text for s in (a, b)]
        counted = [
            _metric(t, "prism_fleet_http_requests_total", route="/api/v1/whoami") for t in texts
        ]
        if all(n >= 30 for n in counted):
            break
        time.sleep(0.3)
    assert counted[0] >= 30 and counted[1] >= 30
    for t in texts:
        assert _metric(t, "prism_fleet_rate_limit_refusals_total") >= refused
        assert _metric(t, "prism_redis_up") == 1.0
        # this process alone saw only its share of them
        assert 0 < _metric(t, "http_requests_total", route="/api/v1/whoami") < 30


def test_event_through_a_reaches_websocket_on_b_and_cache_is_shared(fleet):
    a, b, oa = fleet["a"], fleet["b"], fleet["oa"]
    with connect(b.ws_url, additional_headers={"X-API-Key": KEYS["admin"]}, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": "LlmAnswered"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "Subscribed"
        posts = len(oa.posts())
        with a.client("user") as c:
            r = c.post("/api/v1/llm/query", json={"prompt": Q})
        assert r.status_code == 200, r.text
        answer = r.json()["data"] if "data" in r.json() else r.json()
        assert answer["cached"] is False and len(oa.posts()) == posts + 1
        msg = json.loads(ws.recv(timeout=5))
        assert msg["type"] == "LlmAnswered" and msg["request_id"] == answer["id"]
        with pytest.raises(TimeoutError):  # once, not twice
            ws.recv(timeout=1.0)
        # A's /metrics counts the socket held by B
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = httpx.get(a.url + "/metrics").text
            if _metric(text, "prism_fleet_websocket_connections") >= 1:
                break
            time.sleep(0.3)
        assert _metric(text, "prism_fleet_websocket_connections") >= 1
        assert _metric(text, "websocket_connections") == 0  # none on A itself
        assert _metric(text, "prism_fleet_processes") == 2
    # the answer A cached is a cache hit through B: the provider is not asked again
    deadline = time.monotonic() + 5
    while True:
        with b.client("user") as c:
            r = c.post("/api/v1/llm/query", json={"prompt": Q})
        body = r.json()["data"] if "data" in r.json() else r.json()
        if body["cached"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200 and body["cached"] is True and body["text"] == answer["text"]
    assert len(oa.posts()) == posts + 1


def test_no_secret_in_redis(fleet):
    a = fleet["a"]
    with a.client("user") as c:  # at least one bucket and the fleet counters exist
        c.get("/api/v1/whoami")
    time.sleep(1.5)
    r = redis.Redis.from_url(fleet["redis"].url)
    keys = list(r.scan_iter(count=1000))
    assert any(k.startswith(b"prism:rl:") for k in keys)
    assert any(k.startswith(b"prism:fleet:") for k in keys)
    blob = redis_contents(r)
    r.close()
    for secret in (*KEYS.values(), OPENAI_KEY):
        assert secret.encode() not in blob
    assert re.search(rb"prism:rl:[0-9a-f]{20}", blob)


def _wait_metric(servers, needle: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(needle in httpx.get(s.url + "/metrics").text for s in servers):
            return
        time.sleep(0.2)
    pytest.fail(f"{needle!r} not in every /metrics within {timeout} s")


def test_redis_stopped_serves_on_then_sharing_resumes(fleet):  # last: it restarts Redis
    a, b, srv = fleet["a"], fleet["b"], fleet["redis"]
    srv.stop()
    with httpx.Client(headers={"X-API-Key": KEYS["admin"]}, timeout=30) as c:
        codes = [c.get(s.url + "/api/v1/whoami").status_code for s in (a, b) * 3]
    assert codes == [200] * 6  # served, on each process's own bucket
    _wait_metric((a, b), "prism_redis_up 0.0")
    for s in (a, b):
        text = httpx.get(s.url + "/metrics").text
        assert _metric(text, "prism_redis_fallbacks_total", what="ratelimit") >= 3
        assert "Redis at redis://127.0.0.1:" in s.log_text()  # the warning, in the log
    srv.start()  # same port; no server restarts
    _wait_metric((a, b), "prism_redis_up 1.0")
    # events flow again (the subscriber reconnected): an answer made through A, seen on B
    with connect(
        b.ws_url, additional_headers={"X-API-Key": KEYS["readonly"]}, open_timeout=10
    ) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": "LlmAnswered"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "Subscribed"
        deadline, seen = time.monotonic() + 15, None
        with a.client("user") as c:
            for i in range(30):
                r = c.post("/api/v1/llm/query", json={"prompt": f"Back again {i}?"})
                assert r.status_code == 200, r.text
                try:
                    seen = json.loads(ws.recv(timeout=0.5))
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        break
        assert seen is not None and seen["type"] == "LlmAnswered"
    # and one limit again for both
    with httpx.Client(headers={"X-API-Key": KEYS["admin"]}, timeout=30) as c:
        t0 = time.monotonic()
        codes = [c.get(s.url + "/api/v1/whoami").status_code for s in (a, b) * 15]
        elapsed = time.monotonic() - t0
    allowed = codes.count(200)
    assert BURST <= allowed <= BURST + int(RATE * elapsed) + 1
    assert 429 in codes[0::2] and 429 in codes[1::2]
