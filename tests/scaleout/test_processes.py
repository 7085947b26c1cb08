"""Several server processes sharing one Redis and one PostgreSQL (issue 15, "Done when").

Real servers only: Debian's ``redis-server`` and PostgreSQL 15 started by the fixtures on
loopback ports (:mod:`tests.redisserver`, :mod:`tests.pgserver`), and real ``prism serve``
processes (:mod:`tests.serverutil`), either three separate ones on three ports or one
``prism serve --workers 3`` on one port. Checked:

- one rate limit for all of them: together they let through no more than the limit;
- an event produced through one process reaches WebSockets on the others within a second;
- a resource written through one is read through another;
- ``kill -9`` of one during a write burst loses no acknowledged write, and the others serve on;
- Redis stopped: requests are still served, ``/metrics`` shows the fallback; Redis back:
  the limit and the events are shared again, without restarting any server.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
import websockets.sync.client as ws_client

from tests.finance.payloads import NB01
from tests.pgserver import postgres_db_url  # noqa: F401
from tests.redisserver import start_redis
from tests.serverutil import KEYS, PrismServer, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RATE, BURST = 5, 5
OPTIMIZE = "/api/v1/finance/optimize"
PORTFOLIO = "/api/v1/finance/portfolio/{}"


def _auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def _env(store_url: str, redis_url: str, burst: float | None = None) -> dict[str, str]:
    env = {"PRISM_STORE_URL": store_url, "PRISM_REDIS_URL": redis_url}
    if burst is not None:
        env["PRISM_RATE_BURST"] = str(burst)
    return env


def _start_all(servers: list[PrismServer]) -> list[PrismServer]:
    """Start the servers side by side (each start waits for its /health)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        started = list(pool.map(lambda s: _started(s), servers))
    return started


def _started(server: PrismServer) -> PrismServer:
    try:
        return server.start(timeout=120)
    except BaseException:
        server.stop()
        raise


def _stop_all(servers: list[PrismServer]) -> None:
    for s in servers:
        s.stop()


@pytest.fixture
def redis(tmp_path):
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


def _three(store_url: str, redis_url: str, rate: float, burst: float | None = None):
    servers = [
        PrismServer(dashboards=False, rate_limit=rate, extra_env=_env(store_url, redis_url, burst))
        for _ in range(3)
    ]
    try:
        return _start_all(servers)
    except BaseException:
        _stop_all(servers)
        raise


# ---------------------------------------------------------------- helpers


def _limited_burst(urls: list[str], role: str, n: int = 30) -> tuple[int, int, float]:
    """``n`` rate-limited requests (``GET /api/v1/whoami``) as fast as possible, spread over
    ``urls`` in turn; (answered 200, refused 429, seconds taken)."""
    clients = [httpx.Client(base_url=u, headers=_auth(role), timeout=10) for u in urls]
    try:
        for c in clients:  # connect first (/health is not rate limited)
            c.get("/health").raise_for_status()
        ok = refused = 0
        t0 = time.monotonic()
        for i in range(n):
            r = clients[i % len(clients)].get("/api/v1/whoami")
            if r.status_code == 200:
                ok += 1
            elif r.status_code == 429:
                refused += 1
            else:
                raise AssertionError(f"{r.status_code}: {r.text[:300]}")
        return ok, refused, time.monotonic() - t0
    finally:
        for c in clients:
            c.close()


def _assert_one_limit(urls: list[str], role: str) -> None:
    ok, refused, elapsed = _limited_burst(urls, role)
    # the bucket starts full (BURST) and refills at RATE per second: that much, in total
    assert 1 <= ok <= BURST + RATE * elapsed, (ok, refused, elapsed)
    assert ok + refused == 30


def _socket(port: int, role: str = "readonly"):
    """A WebSocket on ``port`` subscribed to ``PortfolioUpdate`` (its handshake is rate
    limited like any request: the tests keep it off the key whose limit they count)."""
    ws = ws_client.connect(
        f"ws://127.0.0.1:{port}/ws", additional_headers=_auth(role), open_timeout=30
    )
    ws.send(json.dumps({"type": "Subscribe", "event_type": "PortfolioUpdate"}))
    assert json.loads(ws.recv(timeout=30))["type"] == "Subscribed"
    return ws


def _create_portfolio(url: str, name: str, role: str = "admin") -> dict:
    r = httpx.post(url + OPTIMIZE, json={**NB01, "name": name}, headers=_auth(role), timeout=60)
    assert r.status_code == 200, r.text[:500]
    return r.json()["data"]


def _wait_event(ws, portfolio_id: str, deadline: float) -> dict:
    """The ``PortfolioUpdate`` of ``portfolio_id`` on ``ws``, or fail at ``deadline``."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no PortfolioUpdate for {portfolio_id} in time")
        try:
            msg = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            raise AssertionError(f"no PortfolioUpdate for {portfolio_id} in time") from None
        if msg.get("type") == "PortfolioUpdate" and msg.get("portfolio_id") == portfolio_id:
            return msg


def _assert_event_crosses(producer_url: str, sockets: list, name: str) -> None:
    """An event made through ``producer_url`` reaches every socket within a second of the
    response (the event is published before the response is sent)."""
    d = _create_portfolio(producer_url, name)
    deadline = time.monotonic() + 1.0
    for ws in sockets:
        msg = _wait_event(ws, d["portfolio_id"], deadline)
        assert msg["event"] == "created"


def _metric(url: str, name: str, labels: str = "") -> float | None:
    text = httpx.get(url + "/metrics", timeout=10).text
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)}\s+([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------- three separate processes


def test_three_processes_share_limit_events_and_store(redis, postgres_db_url):  # noqa: F811
    a, b, c = servers = _three(postgres_db_url, redis.url, RATE, BURST)
    try:
        urls = [s.url for s in servers]
        # one limit for the three: a key gets BURST (+ refill) in total, not three times that
        _assert_one_limit(urls, "user")
        # an event made through A reaches a WebSocket on B and one on C within a second
        sockets = [_socket(b.port), _socket(c.port)]
        try:
            _assert_event_crosses(a.url, sockets, "crosses")
        finally:
            for ws in sockets:
                ws.close()
        # a resource written through A is read through B (and C)
        d = _create_portfolio(a.url, "written-on-a")
        for s in (b, c):
            r = httpx.get(s.url + PORTFOLIO.format(d["portfolio_id"]), headers=_auth("admin"))
            assert r.status_code == 200, r.text[:300]
            assert r.json()["data"]["name"] == "written-on-a"
    finally:
        _stop_all(servers)


def test_kill_9_during_a_write_burst_loses_no_acknowledged_write(redis, postgres_db_url):  # noqa: F811
    servers = _three(postgres_db_url, redis.url, 1e6)
    victim = servers[2]
    acked: list[tuple[str, int]] = []
    failed_after_kill = {0: 0, 1: 0, 2: 0}
    ok_after_kill = {0: 0, 1: 0, 2: 0}
    killed = threading.Event()
    stop = threading.Event()
    lock = threading.Lock()

    def writer(w: int) -> None:
        clients = [httpx.Client(base_url=s.url, headers=_auth("user"), timeout=30) for s in servers]
        i = 0
        try:
            while not stop.is_set():
                k = (w + i) % 3
                i += 1
                after = killed.is_set()
                try:
                    r = clients[k].post(OPTIMIZE, json={**NB01, "name": f"w{w}-{i}"})
                except httpx.HTTPError:
                    with lock:
                        failed_after_kill[k] += after
                    continue
                if 200 <= r.status_code < 300:
                    with lock:
                        acked.append((r.json()["data"]["portfolio_id"], k))
                        ok_after_kill[k] += after
        finally:
            for cl in clients:
                cl.close()

    try:
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        wait_until(lambda: sum(1 for _, k in acked if k == 2) >= 3, 30, "writes through the victim")
        psutil.Process(victim.proc.pid).kill()  # kill -9, mid-burst
        victim.proc.wait(10)
        killed.set()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        # the other two kept serving through the kill
        assert ok_after_kill[0] > 0 and ok_after_kill[1] > 0, ok_after_kill
        assert ok_after_kill[2] == 0
        # every acknowledged write, whichever process acknowledged it, is there
        ids = [pid for pid, _ in acked]
        assert len(ids) == len(set(ids)) and any(k == 2 for _, k in acked)
        with httpx.Client(headers=_auth("admin"), timeout=30) as cl:
            for j, pid in enumerate(ids):
                r = cl.get(servers[j % 2].url + PORTFOLIO.format(pid))
                assert r.status_code == 200, (pid, r.status_code, r.text[:200])
            for s in servers[:2]:
                assert cl.get(s.url + "/health").status_code == 200
    finally:
        stop.set()
        _stop_all(servers)


def test_redis_stopped_then_back_without_restarting_the_servers(redis, postgres_db_url):  # noqa: F811
    a, b, c = servers = _three(postgres_db_url, redis.url, RATE, BURST)
    urls = [s.url for s in servers]
    try:
        _assert_one_limit(urls, "user")
        redis.stop()
        # requests keep being served, each process limiting on its own meanwhile
        ok, refused, elapsed = _limited_burst(urls, "readonly")
        assert ok > BURST + RATE * elapsed, (ok, refused)  # three buckets, not one
        for u in urls:
            assert httpx.get(u + "/health", timeout=10).status_code == 200
            assert wait_until(lambda u=u: _metric(u, "prism_redis_up") == 0, 10, "prism_redis_up 0")
            fallbacks = _metric(u, "prism_redis_fallbacks_total", '{what="ratelimit"}')
            assert fallbacks and fallbacks > 0
        # Redis back on the same port: sharing resumes, no server restarted
        pids = [s.proc.pid for s in servers]
        redis.start()
        for u in urls:
            wait_until(lambda u=u: _metric(u, "prism_redis_up") == 1, 30, "prism_redis_up 1")
        time.sleep(1.5)  # past the links' back-off: every process uses Redis again
        _assert_one_limit(urls, "user")  # (Redis came back empty: a full bucket again)
        sockets = [_socket(b.port), _socket(c.port)]
        try:
            # the relay subscribes again on its own; wait (bounded) for the first crossing
            wait_until(lambda: _crosses(a.url, sockets), 20, "events to cross again")
            _assert_event_crosses(a.url, sockets, "after-redis-back")
        finally:
            for ws in sockets:
                ws.close()
        assert [s.proc.pid for s in servers] == pids and all(s.proc.poll() is None for s in servers)
    finally:
        _stop_all(servers)


def _crosses(url: str, sockets: list) -> bool:
    try:
        _assert_event_crosses(url, sockets, "probe")
        return True
    except AssertionError:
        return False


# ---------------------------------------------------------------- --workers 3 on one port


def _owners(port: int, procs: list[psutil.Process], conns: list[socket.socket]) -> set[int]:
    """The processes among ``procs`` holding the server end of ``conns``."""
    mine = {s.getsockname()[1] for s in conns}
    return {
        p.pid
        for p in procs
        for c in p.net_connections(kind="tcp")
        if c.raddr and c.raddr.port in mine and c.laddr.port == port
    }


def test_workers_3_on_one_port_share_limit_events_and_store(redis, postgres_db_url):  # noqa: F811
    srv = PrismServer(
        dashboards=False,
        rate_limit=RATE,
        extra_args=["--workers", "3"],
        extra_env=_env(postgres_db_url, redis.url, BURST),
    )
    with srv:
        sup = psutil.Process(srv.proc.pid)

        def workers() -> list[psutil.Process]:
            kids = [p for p in sup.children() if "widgets.cli" in " ".join(p.cmdline())]
            return kids if len(kids) == 3 else []

        kids = wait_until(workers, 60, "three worker processes")
        pids = {p.pid for p in kids}
        # WebSockets until every process holds at least one (the kernel places each)
        sockets = []
        try:
            for _ in range(40):
                sockets.append(_socket(srv.port))
                if _owners(srv.port, kids, [ws.socket for ws in sockets]) == pids:
                    break
                time.sleep(0.25)  # (the handshakes count against the readonly key's limit)
            assert _owners(srv.port, kids, [ws.socket for ws in sockets]) == pids
            assert "PRISM_REDIS_URL is not set" not in srv.log_text()
            # one limit across the three processes behind the port (a new connection per
            # request, so the requests are spread over them too)
            ok = refused = 0
            t0 = time.monotonic()
            for _ in range(30):
                r = httpx.get(srv.url + "/api/v1/whoami", headers=_auth("user"), timeout=10)
                assert r.status_code in (200, 429), r.text[:300]
                ok += r.status_code == 200
                refused += r.status_code == 429
            elapsed = time.monotonic() - t0
            assert 1 <= ok <= BURST + RATE * elapsed, (ok, refused, elapsed)
            # an event produced by whichever process takes the POST reaches every socket
            _assert_event_crosses(srv.url, sockets, "workers")
        finally:
            for ws in sockets:
                ws.close()
        # written through one connection, read through new ones (spread over the processes)
        d = _create_portfolio(srv.url, "on-one-port")
        for _ in range(9):
            r = httpx.get(srv.url + PORTFOLIO.format(d["portfolio_id"]), headers=_auth("admin"))
            if r.status_code == 429:  # the limit of 5/s holds here too: wait as told, once
                time.sleep(float(r.headers["Retry-After"]))
                r = httpx.get(srv.url + PORTFOLIO.format(d["portfolio_id"]), headers=_auth("admin"))
            assert r.status_code == 200, r.text[:300]
