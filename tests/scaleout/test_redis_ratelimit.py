"""The rate limit shared through a real Redis: one bucket for every limiter (process) and
thread, refilled on Redis's clock, expiring when idle; Redis stopped -> in-process fallback with
one warning and a metric; Redis back -> shared again, with the same objects."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from prism_kernels.store import redact_url
from tests.redisserver import redis_server, start_redis  # noqa: F401
from widgets.server.auth import key_id
from widgets.server.redis_link import RedisLink
from widgets.server.redis_metrics import RedisCollector
from widgets.server.redis_ratelimit import SharedRateLimiter


def _link(url: str, prefix: str, **kw) -> RedisLink:
    kw.setdefault("timeout_s", 1.0)  # a loaded test machine must not look like a hung Redis
    return RedisLink(url, prefix=prefix, **kw)


@pytest.fixture
def prefix():
    return f"t{uuid.uuid4().hex[:8]}:"


def test_one_limit_across_two_limiters(redis_server, prefix):  # noqa: F811
    # Two links = two connection pools, as two processes have; a refill of one token per
    # 1000 s cannot add a token while the test runs.
    a = SharedRateLimiter(_link(redis_server.url, prefix), rate=0.001, burst=10)
    b = SharedRateLimiter(_link(redis_server.url, prefix), rate=0.001, burst=10)
    ident = key_id("user-key-00001")
    decisions = [(a if i % 2 else b).check(ident) for i in range(30)]
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 10
    assert all(d.allowed for d in decisions[:10]) and not any(d.allowed for d in decisions[10:])
    assert [d.remaining for d in allowed] == list(range(9, -1, -1))
    refused = decisions[-1]
    assert refused.headers()["Retry-After"] and refused.retry_after_s > 0
    assert a.refused + b.refused == 20
    # another identity has a bucket of its own
    assert a.check(key_id("other-key")).allowed
    # local fallbacks were never used
    assert a.local.refused == 0 and b.local.refused == 0
    assert not a.link.fallbacks and not b.link.fallbacks


def test_one_limit_across_threads(redis_server, prefix):  # noqa: F811
    limiters = [
        SharedRateLimiter(_link(redis_server.url, prefix, timeout_s=2.0), rate=0.001, burst=50)
        for _ in range(2)
    ]
    ident = key_id("threaded")
    allowed = []
    lock = threading.Lock()

    def work(lim: SharedRateLimiter) -> None:
        n = sum(lim.check(ident).allowed for _ in range(25))
        with lock:
            allowed.append(n)

    threads = [threading.Thread(target=work, args=(limiters[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(allowed) == 8 and sum(allowed) == 50  # 200 checks, one bucket of 50


def test_refill_on_redis_time_and_expiry(redis_server, prefix):  # noqa: F811
    link = _link(redis_server.url, prefix)
    lim = SharedRateLimiter(link, rate=20.0, burst=2)
    ident = key_id("refill")
    assert lim.check(ident).allowed and lim.check(ident).allowed
    d = lim.check(ident)
    assert not d.allowed and 0 < d.retry_after_s <= 1 / 20 + 1e-6
    time.sleep(0.3)  # 6 tokens' worth of time; the bucket holds at most 2
    assert lim.check(ident).allowed
    r = redis.Redis.from_url(redis_server.url)
    key = prefix + "rl:" + ident
    t, n = (float(x) for x in r.hmget(key, "t", "n"))
    server_now = float(r.time()[0]) + r.time()[1] / 1e6
    assert abs(server_now - t) < 5.0  # stamped with Redis's clock
    assert 0.0 <= n < 2.0
    ttl = r.pttl(key)
    assert 0 < ttl <= int(2 / 20 * 1000) + 1000  # gone once it would be full again
    r.close()


def test_redis_stopped_falls_back_and_comes_back(tmp_path, prefix, caplog):
    srv = start_redis(tmp_path)
    try:
        link_a = _link(srv.url, prefix, backoff_s=0.2)
        link_b = _link(srv.url, prefix, backoff_s=0.2)
        a = SharedRateLimiter(link_a, rate=0.001, burst=5)
        b = SharedRateLimiter(link_b, rate=0.001, burst=5)
        registry = CollectorRegistry()
        registry.register(RedisCollector(link_a))
        ident = key_id("fallback")
        assert sum(lim.check(ident).allowed for lim in (a, b, a, b)) == 4  # shared: 1 left
        assert link_a.up and b"prism_redis_up 1.0" in generate_latest(registry)

        srv.stop()
        with caplog.at_level(logging.WARNING, logger="prism.server.redis"):
            # Served per process now: each has its own 5 (no error reaches the caller).
            got_a = [a.check(ident).allowed for _ in range(8)]
            got_b = [b.check(ident).allowed for _ in range(8)]
        assert sum(got_a) == 5 and sum(got_b) == 5
        assert not link_a.up and link_a.fallbacks["ratelimit"] == 8
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2  # one per limiter (per link), not one per request
        assert redact_url(srv.url) in warnings[0].getMessage()
        text = generate_latest(registry).decode()
        assert "prism_redis_up 0.0" in text
        assert 'prism_redis_fallbacks_total{what="ratelimit"} 8.0' in text

        srv.start()  # same port, empty: the bucket starts full again
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not link_a.up:
            a.check(key_id("probe"))
            time.sleep(0.05)
        assert link_a.up
        while time.monotonic() < deadline and not link_b.up:
            b.check(key_id("probe"))
            time.sleep(0.05)
        assert link_b.up
        n_fallbacks = link_a.fallbacks["ratelimit"], link_b.fallbacks["ratelimit"]
        ident2 = key_id("after-restart")
        assert sum(lim.check(ident2).allowed for lim in (a, b) * 6) == 5  # one bucket again
        assert (link_a.fallbacks["ratelimit"], link_b.fallbacks["ratelimit"]) == n_fallbacks
        assert b"prism_redis_up 1.0" in generate_latest(registry)
    finally:
        srv.stop()


def test_password_is_redacted():
    assert redact_url("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert redact_url("redis://user:s3cret@db/1") == "redis://user:***@db/1"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_hung_redis_times_out_into_the_fallback(tmp_path, prefix):
    srv = start_redis(tmp_path)
    try:
        link = _link(srv.url, prefix, timeout_s=0.1, backoff_s=0.2)
        lim = SharedRateLimiter(link, rate=0.001, burst=3)
        ident = key_id("hung")
        assert lim.check(ident).allowed and link.up
        srv.proc.send_signal(signal.SIGSTOP)  # alive, accepting, never answering
        try:
            t0 = time.monotonic()
            got = [lim.check(ident) for _ in range(5)]
            waited = time.monotonic() - t0
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        # answered by the in-process bucket (3 tokens of its own), after one timeout at most
        assert [d.allowed for d in got] == [True, True, True, False, False]
        assert not link.up and link.fallbacks["ratelimit"] == 5
        assert waited < 5.0  # bounded by the socket timeout, not by Redis
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not link.up:
            lim.check(key_id("probe"))
            time.sleep(0.05)
        assert link.up
        # The shared bucket again: 2 of its 3 tokens were left, less the one the timed-out
        # script took if Redis ran it once it woke (it had been sent).
        d = lim.check(ident)
        assert d.allowed and d.remaining in (0, 1)
        assert not lim.check(ident).allowed if d.remaining == 0 else lim.check(ident).allowed
    finally:
        srv.stop()


def test_password_works_and_is_never_logged(tmp_path, prefix, caplog):
    srv = start_redis(tmp_path, password="right-PASSWORD-42")
    try:
        good = SharedRateLimiter(_link(srv.url, prefix), rate=1.0, burst=1)
        assert good.check(key_id("pw")).allowed and good.link.up
        assert not good.check(key_id("pw")).allowed  # shared bucket, through AUTH
        url = f"redis://:hunter2-SECRET@127.0.0.1:{srv.port}/0"
        lim = SharedRateLimiter(_link(url, prefix), rate=1.0, burst=1)
        with caplog.at_level(logging.WARNING, logger="prism.server.redis"):
            assert lim.check(key_id("pw")).allowed  # refused AUTH: the local bucket answers
        assert lim.link.fallbacks["ratelimit"] == 1 and not lim.link.up
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "redis://:***@127.0.0.1" in text and "hunter2" not in text
        assert "right-PASSWORD" not in text
    finally:
        srv.stop()
