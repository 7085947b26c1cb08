"""Events and LLM cache rows relayed between "processes" (two buses, two relays, two Redis
connections) through a real Redis: each event reaches every subscriber exactly once, nothing
loops, local delivery survives Redis going away, the relay reconnects when it comes back, and an
answer cached by one LLM service is an exact and semantic hit in the other. No secret in Redis."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis

from prism_kernels.events import EventBus
from prism_kernels.llm.service import LlmService
from tests.llm.conftest import models_env
from tests.llm.loopback import LoopbackServer
from tests.redisserver import redis_contents, redis_server, start_redis  # noqa: F401
from widgets.server.redis_link import RedisLink
from widgets.server.redis_relay import RedisRelay

OPENAI_KEY = "sk-test-OPENAI-relay-0123456789SECRET"
Q = "What is the capital of France?"


class Inbox:
    """A bus subscriber keeping what it receives."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list = []
        self._cond = threading.Condition()
        bus.subscribe(self)

    def __call__(self, event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 5.0) -> list:
        with self._cond:
            self._cond.wait_for(lambda: len(self.events) >= n, timeout)
            return list(self.events)


@pytest.fixture
def prefix():
    return f"t{uuid.uuid4().hex[:8]}:"


def _pair(url: str, prefix: str, **kw):
    out = []
    for _ in range(2):
        bus = EventBus()
        kw.setdefault("timeout_s", 1.0)  # a loaded test machine must not look like a hung Redis
        relay = RedisRelay(RedisLink(url, prefix=prefix, **kw), bus)
        out.append((bus, relay, Inbox(bus)))
    for _, relay, _ in out:
        relay.start()
    for _, relay, _ in out:
        assert relay.subscribed.wait(5)
    return out


def test_event_reaches_the_other_process_once_and_never_loops(redis_server, prefix):  # noqa: F811
    (bus_a, relay_a, in_a), (bus_b, relay_b, in_b) = _pair(redis_server.url, prefix)
    try:
        bus_a.publish("SystemStatus", {"cpu_usage": 1.5, "n": 1})
        got = in_b.wait_for(1)
        assert len(got) == 1 and got[0].type == "SystemStatus" and got[0].data["n"] == 1
        assert got[0].origin == relay_a.origin
        assert got[0].to_message()["cpu_usage"] == 1.5 and "origin" not in got[0].to_message()
        bus_b.publish("SystemStatus", {"n": 2})
        got_a = in_a.wait_for(2)
        assert [e.data["n"] for e in got_a] == [1, 2]
        assert got_a[0].origin == "" and got_a[1].origin == relay_b.origin
        time.sleep(0.5)  # anything looping or duplicated would have come back by now
        assert [e.data["n"] for e in in_a.events] == [1, 2]
        assert [e.data["n"] for e in in_b.events] == [1, 2]
        # each relay sent only what its own bus published
        assert relay_a.sent == 1 and relay_b.sent == 1
        assert bus_a.published == {"SystemStatus": 1} and bus_a.delivered == 1
        assert bus_b.published == {"SystemStatus": 1} and bus_b.delivered == 1
    finally:
        relay_a.stop()
        relay_b.stop()


def test_local_events_without_redis_and_reconnect(tmp_path, prefix):
    srv = start_redis(tmp_path)
    try:
        (bus_a, relay_a, in_a), (bus_b, relay_b, in_b) = _pair(srv.url, prefix, backoff_s=0.2)
        srv.stop()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and relay_b.subscribed.is_set():
            time.sleep(0.05)
        bus_a.publish("SystemStatus", {"n": 1})  # Redis is away: local subscribers still get it
        assert [e.data["n"] for e in in_a.wait_for(1)] == [1]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not relay_a.link.fallbacks["events"]:
            time.sleep(0.05)
        assert relay_a.link.fallbacks["events"] == 1 and not relay_a.link.up
        srv.start()
        assert relay_a.subscribed.wait(10) and relay_b.subscribed.wait(10)
        # the publisher side tries again after its back-off: keep publishing until one lands
        n = 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not in_b.events:
            n += 1
            bus_a.publish("SystemStatus", {"n": n})
            in_b.wait_for(1, timeout=0.3)
        assert in_b.events and in_b.events[0].data["n"] > 1  # nothing from the outage replayed
        assert relay_a.link.up
    finally:
        relay_a.stop()
        relay_b.stop()
        srv.stop()


def test_llm_cache_entry_is_a_hit_in_the_other_process(redis_server, prefix, tmp_path):  # noqa: F811
    caller = "caller-key-NEVER-IN-REDIS-77"
    with LoopbackServer(api_key=OPENAI_KEY, flavour="openai") as oa:
        env = models_env(tmp_path, oa.openai_url, key=OPENAI_KEY)
        (bus_a, relay_a, _), (bus_b, relay_b, in_b) = _pair(redis_server.url, prefix)
        svc_a = LlmService(bus=bus_a, env=env, discover=False)
        svc_b = LlmService(bus=bus_b, env=env, discover=False)
        relay_a.attach_llm(svc_a)
        relay_b.attach_llm(svc_b)
        try:
            r = svc_a.query(Q, key=caller)
            assert r["cached"] is False and len(oa.posts()) == 1
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and svc_b.cache_stats()["entries"] < 1:
                time.sleep(0.02)
            hit = svc_b.query(Q, key=caller)
            assert hit["cached"] is True and hit["text"] == r["text"] and hit["cost_usd"] == 0.0
            assert hit["cache"]["kind"] == "exact"
            near = svc_b.query("What's the capital of France?")
            assert near["cached"] is True and near["cache"]["kind"] == "semantic"
            assert len(oa.posts()) == 1  # the provider was asked once in all
            # the LlmAnswered event of A reached B's bus too (once)
            answered = [e for e in in_b.wait_for(1) if e.type == "LlmAnswered"]
            assert any(e.origin == relay_a.origin for e in answered)
            # B's own hits are not re-announced to A as new cache rows
            time.sleep(0.3)
            assert svc_a.cache_stats()["entries"] == 1 and svc_b.cache_stats()["entries"] == 1
            # rows arriving before the service is attached are kept and applied on attach
            bus_c = EventBus()
            relay_c = RedisRelay(RedisLink(redis_server.url, prefix=prefix, timeout_s=1.0), bus_c)
            relay_c.start()
            assert relay_c.subscribed.wait(5)
            svc_a.query("Say hello.")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not relay_c._pending_rows:
                time.sleep(0.02)
            svc_c = LlmService(bus=bus_c, env=env, discover=False)
            assert svc_c.query("Count to five.")["cached"] is False  # before it is attached
            relay_c.attach_llm(svc_c)
            assert svc_c.query("Say hello.")["cached"] is True
            # what C cached before it was attached (since its relay started) went out on attach
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and svc_a.cache_stats()["entries"] < 3:
                time.sleep(0.02)
            assert svc_a.query("Count to five.")["cached"] is True
            relay_c.stop()
            svc_c.close()
            # no secret anywhere in Redis (keys or values)
            r_ = redis.Redis.from_url(redis_server.url)
            blob = redis_contents(r_)
            r_.close()
            for secret in (caller, OPENAI_KEY):
                assert secret.encode() not in blob
        finally:
            relay_a.stop()
            relay_b.stop()
            svc_a.close()
            svc_b.close()


def test_malformed_rows_and_messages_change_nothing(redis_server, prefix):  # noqa: F811
    (bus_a, relay_a, in_a), (bus_b, relay_b, in_b) = _pair(redis_server.url, prefix)
    try:
        r = redis.Redis.from_url(redis_server.url)
        for raw in (
            b"not json",
            b"[1, 2]",
            b'{"o": "elsewhere", "t": "NoSuchEvent", "d": {}}',
            b'{"o": "elsewhere", "t": "SystemStatus", "d": "not a dict"}',
        ):
            r.publish(prefix + "events", raw)
        r.publish(prefix + "llm-cache", b'{"o": "elsewhere", "row": {"prompt": 3}}')
        r.publish(prefix + "events", b'{"o": "elsewhere", "t": "SystemStatus", "d": {"n": 9}}')
        got = in_b.wait_for(1)
        assert [e.data for e in got] == [{"n": 9}]
        assert [e.data for e in in_a.wait_for(1)] == [{"n": 9}]
        r.close()
    finally:
        relay_a.stop()
        relay_b.stop()


def test_add_cache_record_takes_good_rows_and_refuses_bad_ones():
    svc = LlmService(env={}, discover=False)
    try:
        good = {
            "scope": {"model": "m", "params": {"temperature": 0.0}},
            "prompt": "What is the capital of France?",
            "value": {"text": "Paris"},
            "created": time.time(),
        }
        for bad in (
            {},
            {**good, "prompt": 3},
            {**good, "scope": "m"},
            {**good, "scope": {"model": "m", "params": [1]}},
            {**good, "created": "yesterday"},
            {**good, "created": float("nan")},
            {**good, "prompt": "x" * 10_000_000},
        ):
            assert svc.add_cache_record(bad) is False
        assert len(svc.cache) == 0
        assert svc.add_cache_record(good) is True
        hit = svc.cache.get("m", "What is the capital of France?", {"temperature": 0.0})
        assert hit is not None and hit.value == {"text": "Paris"}
        assert svc.cache.get("m", "What's the capital of France?", {"temperature": 0.0})
    finally:
        svc.close()
