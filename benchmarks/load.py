"""Load on a PRISM server over loopback: mixed REST requests plus many open WebSockets.

::

    python -m benchmarks.load                                  # starts its own server
    python -m benchmarks.load --websockets 1000 --duration 15
    python -m benchmarks.load --mode health-under-load         # /health while 8 big benchmarks run
    python -m benchmarks.load --url http://127.0.0.1:5006 --key KEY

``mixed``: ``--concurrency`` clients alternate ``GET /health`` and a cheap ``POST`` (a
memory-bandwidth benchmark of 256 elements) while ``--websockets`` sockets stay subscribed to
every event type; at the end each socket must still answer a ``Ping``. Prints requests/s, p50
and p99 latency per route, errors, dropped sockets, events received and the server's RSS.

``health-under-load``: ``GET /health`` latency while eight large matrix-product benchmarks
(``--heavy-size``) run at once; the event loop must stay responsive.

``compare``: the request path against a bare Tornado handler, side by side in one run: a bare
``tornado.web.RequestHandler`` answering a small JSON object, then ours (``GET /health``, and
an authenticated ``GET /api/v1/whoami`` through auth, rate limit, routing, envelope and
metrics), each server pinned to one core (the first) and the load client (``wrk`` when it is
installed, else a Python keep-alive client) to another, rounds alternating. Prints requests/s, the server's CPU time per
request (robust to other processes sharing the core), and both ratios to the bare handler::

    python -m benchmarks.load --mode compare --rounds 5 --duration 5

``workers``: ``prism serve --workers 1`` against ``--workers 2`` (more with ``--workers
1,2,3``), one after the other in one run, each on the same Redis and PostgreSQL (started from
Debian's packages, as the tests start them): requests/s and p50/p99 of ``GET /health``
(``wrk``, ``--connections``) and of a mixed domain workload (``--concurrency`` clients: a
portfolio optimisation that writes to the store and publishes an event, a store read, an
ARIMA forecast that writes, a small benchmark, ``/health``), with ``--websockets`` sockets
held open across the processes (how many each holds is printed) and pinged at the end::

    python -m benchmarks.load --mode workers --duration 10 --websockets 1000

Bounded: it stops after ``--duration`` seconds or ``--max-requests`` requests, whichever first,
and only ever talks to 127.0.0.1 (its own server) or the ``--url`` given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

POST_ROUTE = "/api/v1/gpu/benchmark"
POST_BODY = {"benchmark_type": "memory_bandwidth", "workload_size": 16, "repeats": 1}
HEAVY_BODY = {"benchmark_type": "matrix_multiply", "repeats": 3}


@dataclass
class RouteStats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, seconds: float, status: int | None) -> None:
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 200:
            self.latencies.append(seconds)
        else:
            self.errors += 1

    def summary(self, elapsed: float) -> dict[str, Any]:
        lat = np.asarray(self.latencies) * 1e3
        n = len(self.latencies) + self.errors
        return {
            "requests": n,
            "ok": len(self.latencies),
            "errors": self.errors,
            "req_per_s": round(n / elapsed, 1) if elapsed > 0 else None,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
            "max_ms": round(float(lat.max()), 2) if lat.size else None,
            "statuses": dict(sorted(self.statuses.items())),
        }


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


async def _server_rss(client: httpx.AsyncClient, pid: int | None) -> int | None:
    if pid is not None:
        try:
            import psutil

            return psutil.Process(pid).memory_info().rss
        except Exception:
            pass
    try:
        text = (await client.get("/metrics")).text
    except httpx.HTTPError:
        return None
    m = re.search(r"^process_resident_memory_bytes_prism\s+([0-9.e+]+)", text, re.M)
    return int(float(m.group(1))) if m else None


# ---------------------------------------------------------------- WebSockets


class Sockets:
    """``n`` WebSockets subscribed to every event type, held open; dropped ones are counted."""

    def __init__(
        self,
        ws_url: str,
        key: str | None,
        n: int,
        open_concurrency: int = 50,
        event_type: str = "*",
    ) -> None:
        self.ws_url, self.key, self.n = ws_url, key, n
        self.event_type = event_type
        self.open_concurrency = open_concurrency
        self.conns: list[Any] = []
        self.readers: list[asyncio.Task] = []
        self.failed_to_open = 0
        self.dropped = 0
        self.events = 0
        self.open_s = 0.0

    async def _open_one(self, sem: asyncio.Semaphore) -> None:
        from websockets.asyncio.client import connect

        async with sem:
            try:
                headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
                ws = await connect(
                    self.ws_url,
                    additional_headers=headers,
                    open_timeout=60,
                    ping_interval=None,
                    max_queue=None,
                )
                await ws.send(json.dumps({"type": "Subscribe", "event_type": self.event_type}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if reply.get("type") != "Subscribed":
                    raise RuntimeError(f"unexpected reply {reply}")
                self.conns.append(ws)
            except Exception:
                self.failed_to_open += 1

    async def open(self) -> None:
        t0 = time.perf_counter()
        sem = asyncio.Semaphore(self.open_concurrency)
        await asyncio.gather(*(self._open_one(sem) for _ in range(self.n)))
        self.open_s = time.perf_counter() - t0
        self.pongs: dict[int, asyncio.Future] = {}
        self.readers = [asyncio.create_task(self._read(i, ws)) for i, ws in enumerate(self.conns)]

    def local_ports(self) -> set[int]:
        """The client-side ports of the open sockets (to find which server process holds each)."""
        return {ws.local_address[1] for ws in self.conns}

    async def _read(self, i: int, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for text in ws:
                msg = json.loads(text)
                if msg.get("type") == "Pong":
                    fut = self.pongs.get(i)
                    if fut is not None and not fut.done():
                        fut.set_result(True)
                elif msg.get("type") not in ("Subscribed", "Error"):
                    self.events += 1
        except ConnectionClosed:
            pass

    async def check_and_close(self) -> int:
        """Ping every socket; one that is closed or does not answer within 30 s is dropped."""
        loop = asyncio.get_running_loop()
        self.pongs = {i: loop.create_future() for i in range(len(self.conns))}
        for i, ws in enumerate(self.conns):
            try:
                await ws.send(json.dumps({"type": "Ping"}))
            except Exception:
                self.pongs[i].set_result(False)
        done = await asyncio.gather(
            *(asyncio.wait_for(f, 30) for f in self.pongs.values()), return_exceptions=True
        )
        self.dropped = sum(1 for d in done if d is not True)
        for ws in self.conns:
            await ws.close()
        for t in self.readers:
            t.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        return self.dropped


# ---------------------------------------------------------------- modes


async def mixed(
    url: str,
    key: str | None,
    duration: float,
    max_requests: int,
    concurrency: int,
    websockets: int,
    pid: int | None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(
        max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4
    )
    stats = {"GET /health": RouteStats(), f"POST {POST_ROUTE}": RouteStats()}
    sent = 0
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:
        rss_before = await _server_rss(client, pid)
        socks = Sockets(url.replace("http", "ws", 1) + "/ws", key, websockets)
        if websockets:
            await socks.open()
        t_end = time.perf_counter() + duration

        async def worker(j: int) -> None:
            nonlocal sent
            i = j
            while time.perf_counter() < t_end and sent < max_requests:
                sent += 1
                name = "GET /health" if i % 2 == 0 else f"POST {POST_ROUTE}"
                t0 = time.perf_counter()
                try:
                    if i % 2 == 0:
                        r = await client.get("/health")
                    else:
                        r = await client.post(POST_ROUTE, json=POST_BODY)
                    stats[name].add(time.perf_counter() - t0, r.status_code)
                except httpx.HTTPError:
                    stats[name].add(time.perf_counter() - t0, None)
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(j) for j in range(concurrency)))
        elapsed = time.perf_counter() - t0
        rss_peak = await _server_rss(client, pid)
        dropped = await socks.check_and_close() if websockets else 0
    return {
        "mode": "mixed",
        "duration_s": round(elapsed, 2),
        "concurrency": concurrency,
        "routes": {k: v.summary(elapsed) for k, v in stats.items()},
        "total_req_per_s": round(
            sum(len(v.latencies) + v.errors for v in stats.values()) / elapsed, 1
        ),
        "errors": sum(v.errors for v in stats.values()),
        "websockets": {
            "requested": websockets,
            "opened": len(socks.conns),
            "failed_to_open": socks.failed_to_open,
            "dropped": dropped,
            "events_received": socks.events,
            "open_s": round(socks.open_s, 2),
        },
        "server_rss_mb": {
            "before": None if rss_before is None else round(rss_before / 2**20, 1),
            "under_load": None if rss_peak is None else round(rss_peak / 2**20, 1),
        },
    }


async def health_under_load(
    url: str, key: str | None, heavy_size: int, heavy: int, pid: int | None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    health = RouteStats()
    heavy_stats = RouteStats()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as client:
        baseline = RouteStats()
        for _ in range(20):
            t0 = time.perf_counter()
            r = await client.get("/health")
            baseline.add(time.perf_counter() - t0, r.status_code)

        async def big() -> None:
            t0 = time.perf_counter()
            try:
                r = await client.post(POST_ROUTE, json={**HEAVY_BODY, "workload_size": heavy_size})
                heavy_stats.add(time.perf_counter() - t0, r.status_code)
            except httpx.HTTPError:
                heavy_stats.add(time.perf_counter() - t0, None)

        t_start = time.perf_counter()
        tasks = [asyncio.create_task(big()) for _ in range(heavy)]
        while not all(t.done() for t in tasks):
            t0 = time.perf_counter()
            try:
                r = await client.get("/health", timeout=30)
                health.add(time.perf_counter() - t0, r.status_code)
            except httpx.HTTPError:
                health.add(time.perf_counter() - t0, None)
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t_start
        rss = await _server_rss(client, pid)
    return {
        "mode": "health-under-load",
        "heavy_requests": heavy,
        "heavy_size": heavy_size,
        "duration_s": round(elapsed, 2),
        "health_idle": baseline.summary(elapsed),
        "health_under_load": health.summary(elapsed),
        "heavy": heavy_stats.summary(elapsed),
        "errors": health.errors + heavy_stats.errors,
        "server_rss_mb": None if rss is None else round(rss / 2**20, 1),
    }


# ---------------------------------------------------------------- ours against bare Tornado

BARE_SERVER = """
import json, sys
from tornado import ioloop, web

class Bare(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"status": "ok"}))

web.Application([(r"/health", Bare)]).listen(int(sys.argv[1]), "127.0.0.1")
print("ready", flush=True)
ioloop.IOLoop.current().start()
"""


async def _keepalive_client(
    port: int, path: str, key: str | None, t_end: float, counts: dict[str, Any]
) -> None:
    """One keep-alive HTTP/1.1 connection sending ``GET path`` back to back until ``t_end``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    request = (head + "\r\n").encode()
    lat = counts["latencies"]
    try:
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            writer.write(request)
            header = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", header)
            if m and int(m.group(1)):
                await reader.readexactly(int(m.group(1)))
            lat.append(time.perf_counter() - t0)
            if not header.startswith(b"HTTP/1.1 200"):
                counts["errors"] += 1
    finally:
        writer.close()


def _client_main(port: int, path: str, key: str | None, duration: float, connections: int) -> None:
    """Run the load client (in its own process, pinned by the caller) and print its result."""
    counts: dict[str, Any] = {"errors": 0, "latencies": []}

    async def go() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_keepalive_client(port, path, key, t0 + duration, counts) for _ in range(connections))
        )
        return time.perf_counter() - t0

    elapsed = asyncio.run(go())
    lat = np.asarray(counts["latencies"]) * 1e3
    print(
        json.dumps(
            {
                "requests": int(lat.size),
                "errors": counts["errors"],
                "req_per_s": round(lat.size / elapsed, 1),
                "p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                "p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
            }
        )
    )


def _cores() -> tuple[set[int] | None, set[int] | None]:
    """(server core, client cores): the first allowed core for the servers, the rest for the
    client; ``(None, None)`` when there is only one core (nothing is pinned then)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(allowed) < 2:
        return None, None
    return {allowed[0]}, set(allowed[1:2])


def _pin(proc: subprocess.Popen, cores: set[int] | None) -> None:
    if cores is not None:
        os.sched_setaffinity(proc.pid, cores)


def _python_client(
    port: int,
    path: str,
    key: str | None,
    duration: float,
    connections: int,
    cores: set[int] | None = None,
) -> dict:
    """One run of this module's Python load client in a process of its own (pinned to
    ``cores`` when given): the fields of :func:`_client_main`."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.load",
            "--client",
            str(port),
            path,
            key or "",
            str(duration),
            str(connections),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    _pin(proc, cores)
    out, _ = proc.communicate(timeout=duration + 120)
    return json.loads(out.strip().splitlines()[-1])


def _load(
    port: int, path: str, key: str | None, duration: float, connections: int, cores, server_pid
) -> dict:
    """One run of the load client; with the server's CPU time spent per request (which other
    processes sharing the core do not inflate, unlike requests/s)."""
    import psutil

    server = psutil.Process(server_pid)
    cpu0 = sum(server.cpu_times()[:2])
    wrk = shutil.which("wrk")
    if wrk:
        result = _wrk(wrk, port, path, key, duration, connections, cores)
        cpu = sum(server.cpu_times()[:2]) - cpu0
        result["server_cpu_us_per_request"] = round(cpu / max(1, result["requests"]) * 1e6, 1)
        return result
    result = _python_client(port, path, key, duration, connections, cores)
    cpu = sum(server.cpu_times()[:2]) - cpu0
    result["server_cpu_us_per_request"] = round(cpu / max(1, result["requests"]) * 1e6, 1)
    return result


def _wrk(
    wrk: str, port: int, path: str, key: str | None, duration: float, connections: int, cores
) -> dict:
    """One run of ``wrk`` (a C load generator: it never limits the server as a Python client
    can), parsed into the same fields as :func:`_client_main`'s."""
    args = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if key:
        args += ["-H", f"Authorization: Bearer {key}"]
    proc = subprocess.Popen(
        [*args, f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE, text=True
    )
    _pin(proc, cores)
    out, _ = proc.communicate(timeout=duration + 120)

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s*{label}%\s+([0-9.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests,
        "errors": (int(bad.group(1)) if bad else 0)
        + (sum(int(x) for x in errors.groups()) if errors else 0),
        "req_per_s": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "client": "wrk",
    }


def compare(duration: float, rounds: int, connections: int) -> dict[str, Any]:
    """Bare Tornado vs ours, alternating, each server pinned to the same core."""
    from tests.serverutil import KEYS, PrismServer, free_port

    server_core, client_cores = _cores()
    bare_port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_SERVER, str(bare_port)], stdout=subprocess.PIPE, text=True
    )
    ours = PrismServer(dashboards=True, rate_limit=1e9)
    try:
        assert bare.stdout.readline().strip() == "ready"
        _pin(bare, server_core)
        ours.start()
        _pin(ours.proc, server_core)  # its executor threads are pinned with it
        runs: dict[str, list[dict]] = {"bare": [], "health": [], "whoami": []}
        targets = {
            "bare": (bare.pid, bare_port, "/health", None),
            "health": (ours.proc.pid, ours.port, "/health", None),
            "whoami": (ours.proc.pid, ours.port, "/api/v1/whoami", KEYS["user"]),
        }
        for pid, port, path, key in targets.values():  # warm-up
            _load(port, path, key, 1.0, connections, client_cores, pid)
        for _ in range(rounds):
            for name, (pid, port, path, key) in targets.items():
                runs[name].append(_load(port, path, key, duration, connections, client_cores, pid))
    finally:
        bare.kill()
        bare.wait(10)
        ours.stop()

    def median(name: str, field: str) -> float:
        return float(np.median([r[field] for r in runs[name]]))

    bare_rps = median("bare", "req_per_s")

    def least(name: str, field: str) -> float:  # CPU cost: the best of the rounds
        return float(min(r[field] for r in runs[name]))

    bare_cpu = least("bare", "server_cpu_us_per_request")
    out: dict[str, Any] = {
        "mode": "compare",
        "pinned": {"server": sorted(server_core or []), "client": sorted(client_cores or [])},
        "rounds": rounds,
        "duration_s": duration,
        "connections": connections,
        "errors": sum(r["errors"] for rs in runs.values() for r in rs),
        "client": "wrk" if shutil.which("wrk") else "python (asyncio keep-alive)",
        "routes": {},
    }
    for name, label in (
        ("bare", "bare Tornado handler"),
        ("health", "GET /health"),
        ("whoami", "GET /api/v1/whoami (key)"),
    ):
        rps = median(name, "req_per_s")
        cpu = least(name, "server_cpu_us_per_request")
        out["routes"][label] = {
            "req_per_s": round(rps, 1),
            "cpu_us_per_request": round(cpu, 1),
            "cpu_ratio": round(bare_cpu / cpu, 3) if cpu else None,
            "p50_ms": round(median(name, "p50_ms"), 3),
            "p99_ms": round(median(name, "p99_ms"), 3),
            "ratio_to_bare": round(rps / bare_rps, 3) if bare_rps else None,
            "runs_req_per_s": [r["req_per_s"] for r in runs[name]],
        }
    return out


# ---------------------------------------------------------------- 1 against 2 worker processes

#: The mixed domain workload of ``--mode workers``: (weight, name, method, path, body) in
#: turn per client. Writes go to the PostgreSQL store and publish events through Redis.
FORECAST_BODY = {
    "historical_data": [100 + 10 * np.sin(i / 4) + i * 0.5 for i in range(48)],
    "horizon": 6,
    "method": {"arima": {"p": 1, "d": 1, "q": 0}},
}
OPTIMIZE_BODY = {
    "assets": [
        {"symbol": "AAPL", "expected_return": 0.12, "volatility": 0.25, "current_price": 150.0},
        {"symbol": "GOOGL", "expected_return": 0.15, "volatility": 0.30, "current_price": 2800.0},
        {"symbol": "MSFT", "expected_return": 0.13, "volatility": 0.22, "current_price": 380.0},
    ],
    "constraints": {"max_position_size": 0.5, "min_position_size": 0.1},
    "objective": "maximize_sharpe",
}
DOMAIN_MIX = (
    ("GET /health", "GET", "/health", None),
    ("POST /api/v1/finance/optimize", "POST", "/api/v1/finance/optimize", OPTIMIZE_BODY),
    ("GET /api/v1/finance/portfolio/{id}", "GET", "/api/v1/finance/portfolio/{id}", None),
    ("POST /api/v1/timeseries/forecast", "POST", "/api/v1/timeseries/forecast", FORECAST_BODY),
    (f"POST {POST_ROUTE}", "POST", POST_ROUTE, POST_BODY),
)


def _http_load(port: int, path: str, duration: float, connections: int) -> dict[str, Any]:
    """``GET path`` with keep-alive connections for ``duration`` s (``wrk`` when installed,
    else the Python client), unpinned: the servers may use every core."""
    wrk = shutil.which("wrk")
    if wrk:
        return _wrk(wrk, port, path, None, duration, connections, None)
    return {**_python_client(port, path, None, duration, connections), "client": "python"}


def _server_processes(pid: int) -> list[Any]:
    """The processes serving: the children of a ``--workers`` supervisor, else ``pid`` itself."""
    import psutil

    top = psutil.Process(pid)
    kids = [p for p in top.children() if "widgets.cli" in " ".join(p.cmdline())]
    return kids or [top]


def _holders(procs: list[Any], port: int, client_ports: set[int]) -> dict[int, int]:
    """How many of the connections from ``client_ports`` to ``port`` each process holds."""
    out: dict[int, int] = {}
    for p in procs:
        n = sum(
            1
            for c in p.net_connections(kind="tcp")
            if c.raddr and c.laddr.port == port and c.raddr.port in client_ports
        )
        out[p.pid] = n
    return out


async def domain_mix(
    url: str,
    key: str,
    duration: float,
    concurrency: int,
    websockets: int,
    procs: list[Any],
    port: int,
) -> dict[str, Any]:
    """The mixed domain workload (:data:`DOMAIN_MIX`) with ``websockets`` sockets held open
    (subscribed to ``SystemStatus``, which every process publishes every few seconds: with
    Redis each socket receives those of every process)."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(
        max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4
    )
    stats = {name: RouteStats() for name, *_ in DOMAIN_MIX}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:
        r = await client.post("/api/v1/finance/optimize", json={**OPTIMIZE_BODY, "name": "read"})
        portfolio_id = r.json()["data"]["portfolio_id"]
        socks = Sockets(
            url.replace("http", "ws", 1) + "/ws", key, websockets, event_type="SystemStatus"
        )
        if websockets:
            await socks.open()
        per_process = _holders(procs, port, socks.local_ports()) if websockets else {}
        t_end = time.perf_counter() + duration

        async def worker(j: int) -> None:
            i = j
            while time.perf_counter() < t_end:
                name, method, path, body = DOMAIN_MIX[i % len(DOMAIN_MIX)]
                i += 1
                path = path.replace("{id}", portfolio_id)
                if body is FORECAST_BODY:
                    body = {**body, "series_id": f"s{i % 32}"}
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, path, json=body)
                    stats[name].add(time.perf_counter() - t0, r.status_code)
                except httpx.HTTPError:
                    stats[name].add(time.perf_counter() - t0, None)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(j) for j in range(concurrency)))
        elapsed = time.perf_counter() - t0
        dropped = await socks.check_and_close() if websockets else 0
    lat = np.concatenate([np.asarray(v.latencies) for v in stats.values()]) * 1e3
    total = sum(len(v.latencies) + v.errors for v in stats.values())
    return {
        "duration_s": round(elapsed, 2),
        "req_per_s": round(total / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "errors": sum(v.errors for v in stats.values()),
        "routes": {k: v.summary(elapsed) for k, v in stats.items()},
        "websockets": {
            "requested": websockets,
            "opened": len(socks.conns),
            "failed_to_open": socks.failed_to_open,
            "dropped": dropped,
            "per_process": sorted(per_process.values(), reverse=True),
            "events_received": socks.events,
            "open_s": round(socks.open_s, 2),
        },
    }


def _cpu_s(procs: list[Any]) -> float:
    total = 0.0
    for p in procs:
        try:
            total += sum(p.cpu_times()[:2])
        except Exception:  # a process that has gone
            pass
    return total


def _one_config(
    n: int,
    store_url: str,
    redis_url: str,
    duration: float,
    concurrency: int,
    websockets: int,
    connections: int,
) -> dict[str, Any]:
    """One ``prism serve --workers n`` on ``store_url`` and ``redis_url``, measured."""
    from tests.serverutil import KEYS, PrismServer

    server = PrismServer(
        dashboards=False,
        rate_limit=1e9,
        extra_args=["--workers", str(n)],
        extra_env={
            "PRISM_STORE_URL": store_url,
            "PRISM_REDIS_URL": redis_url,
            "PRISM_WS_PER_KEY": str(websockets + 16),
        },
    )
    server.start(timeout=300)
    try:
        # every process listening and its compiled kernels switched on (until then the
        # kernels take their slower NumPy paths)
        deadline = time.monotonic() + 300
        while (
            server.log_text().count("PRISM serving on") < n
            or server.log_text().count("compiled kernels ready") < n
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} processes did not all start")
            time.sleep(0.5)
        procs = _server_processes(server.proc.pid)
        _http_load(server.port, "/health", 1.0, connections)  # warm-up
        cpu0 = _cpu_s(procs)
        health = _http_load(server.port, "/health", duration, connections)
        health["server_cpu_us_per_request"] = round(
            (_cpu_s(procs) - cpu0) / max(1, health["requests"]) * 1e6, 1
        )
        cpu0 = _cpu_s(procs)
        mix = asyncio.run(
            domain_mix(
                server.url, KEYS["user"], duration, concurrency, websockets, procs, server.port
            )
        )
        requests = sum(r["requests"] for r in mix["routes"].values())
        mix["server_cpu_us_per_request"] = round((_cpu_s(procs) - cpu0) / max(1, requests) * 1e6)
        rss = 0
        for p in procs:
            try:
                rss += p.memory_info().rss
            except Exception:
                pass
    finally:
        server.stop()
    return {
        "processes": len(procs),
        "health": health,
        "mixed": mix,
        "server_rss_mb": round(rss / 2**20, 1),
    }


def workers_compare(
    duration: float,
    concurrency: int,
    websockets: int,
    connections: int,
    counts: list[int],
    rounds: int = 1,
) -> dict[str, Any]:
    """``prism serve --workers N`` for each N in ``counts``, one after the other (``rounds``
    times, alternating) on the same Redis and PostgreSQL, started here from Debian's
    packages as the tests do: requests/s, p50/p99 and the servers' CPU time per request of
    ``GET /health`` (``wrk``) and of the mixed domain workload, with ``websockets`` sockets
    held open across the processes. Each figure is the median over the rounds; the sockets
    are those of the last round (every round's must all be held)."""
    import tempfile
    from pathlib import Path

    from tests.pgserver import start_postgres
    from tests.redisserver import start_redis

    tmp = Path(tempfile.mkdtemp(prefix="prism-load-"))
    redis = start_redis(tmp / "redis")
    pg = start_postgres(tmp)
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    try:
        for r in range(rounds):
            for n in counts:
                store_url = pg.create_database(f"load_{n}_{r}")
                runs[n].append(
                    _one_config(
                        n, store_url, redis.url, duration, concurrency, websockets, connections
                    )
                )
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(xs: list[Any]) -> Any:
        xs = [x for x in xs if x is not None]
        return round(float(np.median(xs)), 2) if xs else None

    out: dict[str, Any] = {
        "mode": "workers",
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "client": "wrk" if shutil.which("wrk") else "python (asyncio keep-alive)",
        "duration_s": duration,
        "rounds": rounds,
        "connections": connections,
        "concurrency": concurrency,
        "configs": {},
        "errors": 0,
    }
    for n, rs in runs.items():
        last = rs[-1]
        config = {**last, "health": dict(last["health"]), "mixed": dict(last["mixed"])}
        for part in ("health", "mixed"):
            for k in ("req_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_request"):
                config[part][k] = med([x[part][k] for x in rs])
            config[part]["runs_req_per_s"] = [x[part]["req_per_s"] for x in rs]
            config[part]["errors"] = sum(x[part]["errors"] for x in rs)
        w = config["mixed"]["websockets"] = dict(last["mixed"]["websockets"])
        w["dropped"] = sum(x["mixed"]["websockets"]["dropped"] for x in rs)
        w["failed_to_open"] = sum(x["mixed"]["websockets"]["failed_to_open"] for x in rs)
        out["configs"][str(n)] = config
        out["errors"] += config["health"]["errors"] + config["mixed"]["errors"]
    return out


def _format_workers(r: dict[str, Any]) -> str:
    lines = [
        f"1 against more worker processes (prism serve --workers N, PostgreSQL store, Redis), "
        f"one after the other in one run on {r['cores']} cores (the load clients on the same "
        f"cores); /health: {r['connections']} keep-alive connections ({r['client']}) for "
        f"{r['duration_s']} s; mixed: {r['concurrency']} concurrent clients (Python), "
        f"{len(DOMAIN_MIX)} routes in turn; median of {r['rounds']} alternating round(s); "
        f"load average {r['load_average']}",
        f"{'workers':>7} {'workload':20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>10} {'errors':>6}  req/s per round",
    ]
    for n, c in r["configs"].items():
        h, m = c["health"], c["mixed"]
        for label, x in (("GET /health", h), ("mixed domain", m)):
            lines.append(
                f"{n:>7} {label:20} {x['req_per_s']:>9} {x['p50_ms']!s:>8} {x['p99_ms']!s:>8} "
                f"{x['server_cpu_us_per_request']!s:>10} {x['errors']:>6}  {x['runs_req_per_s']}"
            )
    lines.append("mixed domain, per route (req/s, p99 ms; the last round):")
    for n, c in r["configs"].items():
        parts = [
            f"{name} {s['req_per_s']}/s p99 {s['p99_ms']}"
            for name, s in c["mixed"]["routes"].items()
        ]
        lines.append(f"  {n}: " + "; ".join(parts))
    for n, c in r["configs"].items():
        w = c["mixed"]["websockets"]
        lines.append(
            f"websockets, {n} worker(s): {w['opened']}/{w['requested']} open in {w['open_s']} s "
            f"(per process: {' + '.join(map(str, w['per_process']))}), {w['failed_to_open']} "
            f"failed to open, {w['dropped']} dropped, {w['events_received']} SystemStatus "
            f"events received; server RSS {c['server_rss_mb']} MB in all"
        )
    return "\n".join(lines)


def format_report(r: dict[str, Any]) -> str:
    lines = []
    if r["mode"] == "workers":
        return _format_workers(r)
    if r["mode"] == "compare":
        pin = r["pinned"]
        lines.append(
            f"request path against a bare Tornado handler: {r['rounds']} rounds x "
            f"{r['duration_s']} s, {r['connections']} keep-alive connections ({r['client']}), "
            f"servers on core {pin['server'] or 'any'}, client on core {pin['client'] or 'any'}"
        )
        lines.append(
            f"{'route':28} {'req/s':>9} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU us/req':>10} {'x bare':>7}"
        )
        for name, s in r["routes"].items():
            lines.append(
                f"{name:28} {s['req_per_s']:>9} {s['ratio_to_bare']:>7} {s['p50_ms']:>8} "
                f"{s['p99_ms']:>8} {s['cpu_us_per_request']:>10} {s['cpu_ratio']:>7}"
            )
        lines.append(
            "x bare: requests/s ours / bare (median of the rounds); CPU: the server's CPU time "
            "per request, best of the rounds, bare / ours (other processes do not inflate it)"
        )
        return "\n".join(lines)
    if r["mode"] == "mixed":
        lines.append(
            f"mixed load for {r['duration_s']} s, {r['concurrency']} concurrent clients, "
            f"{r['total_req_per_s']} req/s in total"
        )
        lines.append(
            f"{'route':32} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        )
        for name, s in r["routes"].items():
            lines.append(
                f"{name:32} {s['requests']:>8} {s['errors']:>6} {s['req_per_s']!s:>8} {s['p50_ms']!s:>8} "
                f"{s['p99_ms']!s:>8} {s['max_ms']!s:>8}"
            )
        w = r["websockets"]
        lines.append(
            f"websockets: {w['opened']}/{w['requested']} open (in {w['open_s']} s), {w['failed_to_open']} failed "
            f"to open, {w['dropped']} dropped, {w['events_received']} events received"
        )
        lines.append(
            f"server RSS: {r['server_rss_mb']['before']} MB before, {r['server_rss_mb']['under_load']} MB under load"
        )
    else:
        lines.append(
            f"/health while {r['heavy_requests']} matrix products of size {r['heavy_size']} run "
            f"({r['duration_s']} s):"
        )
        for name in ("health_idle", "health_under_load", "heavy"):
            s = r[name]
            lines.append(
                f"  {name:18} n={s['requests']:<5} errors={s['errors']:<3} p50={s['p50_ms']} ms "
                f"p99={s['p99_ms']} ms max={s['max_ms']} ms"
            )
        lines.append(f"server RSS: {r['server_rss_mb']} MB")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--mode", choices=["mixed", "health-under-load", "compare", "workers"], default="mixed"
    )
    p.add_argument(
        "--workers",
        default="1,2",
        help="worker process counts to compare, one after the other (workers)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating rounds (default 5 for compare, 1 for workers)",
    )
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections (compare)")
    p.add_argument(
        "--url", help="an already running server (default: start one on a free loopback port)"
    )
    p.add_argument("--key", help="API key for --url (an admin or user key)")
    p.add_argument(
        "--duration", type=float, default=10.0, help="seconds of mixed load (at most 300)"
    )
    p.add_argument(
        "--max-requests", type=int, default=20_000, help="stop after this many REST requests"
    )
    p.add_argument("--concurrency", type=int, default=16, help="concurrent REST clients")
    p.add_argument(
        "--websockets", type=int, default=100, help="WebSockets held open during the load"
    )
    p.add_argument(
        "--heavy", type=int, default=8, help="large benchmark requests (health-under-load)"
    )
    p.add_argument("--heavy-size", type=int, default=1536, help="matrix side of each large request")
    p.add_argument("--json", help="also write the report here")
    args = p.parse_args(argv)
    args.duration = min(max(args.duration, 0.5), 300.0)
    _raise_fd_limit()  # before the server starts, so it inherits the limit too
    if args.mode in ("compare", "workers"):
        if args.mode == "compare":
            report = compare(args.duration, max(1, args.rounds or 5), args.connections)
        else:
            counts = [int(x) for x in args.workers.split(",") if x.strip()]
            report = workers_compare(
                args.duration,
                args.concurrency,
                args.websockets,
                args.connections,
                counts,
                max(1, args.rounds or 1),
            )
        print(format_report(report))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=2)
        return report
    server = None
    url, key, pid = args.url, args.key, None
    if url is None:
        from tests.serverutil import KEYS, PrismServer

        # One key holds all the sockets here: raise the per-key WebSocket cap to match.
        server = PrismServer(
            dashboards=False,
            rate_limit=1_000_000,
            extra_env={"PRISM_WS_PER_KEY": str(max(256, args.websockets + 16))},
        ).start()
        url, key, pid = server.url, KEYS["user"], server.proc.pid
    try:
        if args.mode == "mixed":
            report = asyncio.run(
                mixed(
                    url,
                    key,
                    args.duration,
                    args.max_requests,
                    args.concurrency,
                    args.websockets,
                    pid,
                )
            )
        else:
            report = asyncio.run(health_under_load(url, key, args.heavy_size, args.heavy, pid))
    finally:
        if server is not None:
            server.stop()
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:  # the load client of --mode compare, in its own process
        port, path, key, duration, connections = argv[1:6]
        _client_main(int(port), path, key or None, float(duration), int(connections))
        return 0
    report = run(argv)
    sockets = (
        [report["websockets"]]
        if report["mode"] == "mixed"
        else [c["mixed"]["websockets"] for c in report["configs"].values()]
        if report["mode"] == "workers"
        else []
    )
    bad = report["errors"] or any(w["dropped"] or w["failed_to_open"] for w in sockets)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
