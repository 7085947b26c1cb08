"""Fleet-wide figures in Redis, and the Redis link's own health, for ``/metrics``.

:class:`FleetMetrics` counts requests (route, method, status), rate-limit refusals and events
in memory; a background thread adds them to hashes in Redis once per ``interval_s`` (one
pipelined round trip of ``HINCRBY`` s, which also reads the totals back) so no request waits on
Redis. :class:`RedisCollector` renders, from what that thread last read:

- ``prism_fleet_http_requests_total{route,method,status}``,
  ``prism_fleet_rate_limit_refusals_total``, ``prism_fleet_events_published_total{type}``: the
  sums over every process sharing the Redis;
- ``prism_fleet_processes`` and ``prism_fleet_websocket_connections``: gauges each process
  writes for itself (with the time it wrote them), summed over the readings of the last
  ``STALE_S`` seconds (by each machine's clock: they agree within seconds under NTP);
- ``prism_redis_up``: 1 while the last operation on Redis worked, else 0;
- ``prism_redis_fallbacks_total{what}``: operations served in-process (or not relayed) because
  Redis did not answer (``ratelimit``, ``events``, ``llm_cache``, ``metrics``).

Labels are those :class:`~widgets.server.metrics.ServerMetrics` already bounds (route templates,
known methods and statuses, declared event types). Counts that could not be flushed are kept
and added at the next flush that works.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from widgets.server.redis_link import REDIS_ERRORS, RedisLink

log = logging.getLogger("prism.server.redis")

#: kind -> (metric name, help, labels)
FLEET_KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "requests": (
        "prism_fleet_http_requests",
        "HTTP requests by route, method and status, over every process sharing the Redis",
        ("route", "method", "status"),
    ),
    "rate_refusals": (
        "prism_fleet_rate_limit_refusals",
        "Requests refused by the rate limit, over every process",
        (),
    ),
    "events": (
        "prism_fleet_events_published",
        "Events published, over every process",
        ("type",),
    ),
}
GAUGE_HELP = {
    "processes": "Server processes sharing this Redis (seen within the last seconds)",
    "websocket_connections": "Open WebSocket connections, over every process",
}
FALLBACK_KINDS = ("ratelimit", "events", "llm_cache", "metrics")
KEEP_S = 7 * 24 * 3600  # a fleet counter not touched for a week goes (and starts again at 0)
STALE_S = 15.0  # a process's gauge reading older than this (it died) is not counted


class FleetMetrics:
    """Fleet-wide counters: counted locally, added to Redis by a background flush."""

    def __init__(self, link: RedisLink, interval_s: float = 1.0, origin: str | None = None) -> None:
        self.link = link
        self.interval_s = float(interval_s)
        self.origin = origin or uuid.uuid4().hex
        #: gauge name -> reading of this process; each process writes its own, the sum is shown
        self.gauges: dict[str, Callable[[], float]] = {"processes": lambda: 1.0}
        self.gauge_snapshot: dict[str, float] = {}
        self._pending: Counter[tuple[str, tuple[str, ...]]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: kind -> {labels tuple: total}, as last read from Redis
        self.snapshot: dict[str, dict[tuple[str, ...], int]] = {k: {} for k in FLEET_KINDS}
        self.flushes = 0

    def add_gauge(self, name: str, read: Callable[[], float]) -> None:
        """Show ``prism_fleet_<name>``: the sum of ``read()`` over the live processes."""
        self.gauges[name] = read

    def count(self, kind: str, *labels: str) -> None:
        """Count one of ``kind`` (a key of :data:`FLEET_KINDS`) under ``labels``."""
        with self._lock:
            self._pending[(kind, labels)] += 1

    def flush(self) -> bool:
        """Add what was counted to Redis and read the totals back; whether Redis answered."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        if not self.link.available():
            self._restore(pending)
            self.link.failed("metrics")
            return False
        pipe = self.link.client.pipeline(transaction=False)
        for (kind, labels), n in pending.items():
            field = json.dumps(labels, separators=(",", ":"))
            pipe.hincrby(self.link.key("fleet", kind), field, n)
        for kind in FLEET_KINDS:
            pipe.expire(self.link.key("fleet", kind), KEEP_S)
            pipe.hgetall(self.link.key("fleet", kind))
        now = time.time()
        for name, read in self.gauges.items():
            key = self.link.key("fleet", "gauge", name)
            try:
                value = float(read())
            except Exception:  # a reading that fails is left out, not fatal
                log.exception("fleet gauge %s could not be read", name)
                continue
            pipe.hset(key, self.origin, f"{value!r} {now!r}")
            pipe.expire(key, KEEP_S)
        gauge_names = list(self.gauges)
        for name in gauge_names:
            pipe.hgetall(self.link.key("fleet", "gauge", name))
        try:
            results = pipe.execute()
        except REDIS_ERRORS as exc:
            self._restore(pending)
            self.link.failed("metrics", exc)
            return False
        self.link.succeeded()
        totals = results[len(pending) : len(pending) + 2 * len(FLEET_KINDS)][1::2]
        self.gauge_snapshot = {
            name: self._live_sum(raw, now)
            for name, raw in zip(gauge_names, results[-len(gauge_names) :], strict=True)
        }
        snap: dict[str, dict[tuple[str, ...], int]] = {}
        for kind, raw in zip(FLEET_KINDS, totals, strict=True):
            rows: dict[tuple[str, ...], int] = {}
            for field, value in raw.items():
                try:
                    labels = tuple(str(x) for x in json.loads(field))
                    rows[labels] = int(value)
                except (ValueError, TypeError):
                    continue
            snap[kind] = rows
        self.snapshot = snap
        self.flushes += 1
        return True

    def _live_sum(self, raw: dict[bytes, bytes], now: float) -> float:
        """Sum of the readings written within :data:`STALE_S` (a process that died stops
        counting then; one that stopped cleanly removed its own)."""
        total = 0.0
        for value in raw.values():
            try:
                v, t = (float(x) for x in value.split())
            except ValueError:
                continue
            if abs(now - t) <= max(STALE_S, 5 * self.interval_s):
                total += v
        return total

    def _restore(self, pending: Counter[tuple[str, tuple[str, ...]]]) -> None:
        with self._lock:
            self._pending.update(pending)

    def start(self) -> None:
        """Flush every ``interval_s`` in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="prism-redis-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception:  # the flush must outlive anything odd
                log.exception("fleet metrics flush failed")

    def stop(self) -> None:
        """Stop the thread after a last flush; this process's gauge readings are removed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.flush()
        if self.link.available():
            pipe = self.link.client.pipeline(transaction=False)
            for name in self.gauges:
                pipe.hdel(self.link.key("fleet", "gauge", name), self.origin)
            try:
                pipe.execute()
            except REDIS_ERRORS:
                pass


class RedisCollector:
    """A Prometheus collector of ``prism_redis_*`` and ``prism_fleet_*`` (no Redis call)."""

    def __init__(self, link: RedisLink, fleet: FleetMetrics | None = None) -> None:
        self.link = link
        self.fleet = fleet

    def describe(self) -> Iterator[Any]:
        return iter(())  # names are fixed; nothing to check against other collectors

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "prism_redis_up",
            "1 while the last operation on Redis (PRISM_REDIS_URL) worked, else 0",
            value=1.0 if self.link.up else 0.0,
        )
        fb = CounterMetricFamily(
            "prism_redis_fallbacks",
            "Operations served in-process (or not relayed) because Redis did not answer",
            labels=["what"],
        )
        counts = dict.fromkeys(FALLBACK_KINDS, 0) | dict(self.link.fallbacks)
        for what, n in sorted(counts.items()):
            fb.add_metric([what], n)
        yield fb
        if self.fleet is None:
            return
        snapshot = self.fleet.snapshot
        for kind, (name, doc, labels) in FLEET_KINDS.items():
            fam = CounterMetricFamily(name, doc, labels=list(labels))
            rows = snapshot.get(kind, {})
            if not labels:
                fam.add_metric([], sum(rows.values()))
            for key, value in sorted(rows.items()):
                if labels and len(key) == len(labels):
                    fam.add_metric(list(key), value)
            yield fam
        for name, value in sorted(self.fleet.gauge_snapshot.items()):
            doc = GAUGE_HELP.get(name, f"{name}, summed over the live processes")
            yield GaugeMetricFamily(f"prism_fleet_{name}", doc, value=value)
