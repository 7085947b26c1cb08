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

Bounded: it stops after ``--duration`` seconds or ``--max-requests`` requests, whichever first,
and only ever talks to 127.0.0.1 (its own server) or the ``--url`` given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
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

    def __init__(self, ws_url: str, key: str | None, n: int, open_concurrency: int = 50) -> None:
        self.ws_url, self.key, self.n = ws_url, key, n
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
                await ws.send(json.dumps({"type": "Subscribe", "event_type": "*"}))
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


def format_report(r: dict[str, Any]) -> str:
    lines = []
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
    p.add_argument("--mode", choices=["mixed", "health-under-load"], default="mixed")
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
    server = None
    url, key, pid = args.url, args.key, None
    if url is None:
        from tests.serverutil import KEYS, PrismServer

        server = PrismServer(dashboards=False, rate_limit=1_000_000).start()
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
    report = run(argv)
    bad = report["errors"] or (
        report["mode"] == "mixed"
        and (report["websockets"]["dropped"] or report["websockets"]["failed_to_open"])
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
