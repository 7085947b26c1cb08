"""Prometheus metrics of one server (served as text at ``/metrics``).

Every label value comes from a closed set the server knows (route templates, the HTTP methods
it serves, the statuses it answers, declared event types), never from what a client sent:
a client inventing methods or paths cannot grow ``/metrics``.

With ``PRISM_REDIS_URL`` the server also counts requests, rate-limit refusals and events
fleet-wide (:meth:`ServerMetrics.attach_fleet`, :mod:`widgets.server.redis_metrics`): the same
labels, summed over every process in Redis, rendered as ``prism_fleet_*`` beside
``prism_redis_up`` and ``prism_redis_fallbacks_total``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ServerMetrics", "CONTENT_TYPE_LATEST", "METHODS"]

#: The methods counted under their own name; any other is counted as ``OTHER``.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))


class ServerMetrics:
    """The server's counters and gauges, in a registry of its own (one per server)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.errors = Counter("api_errors", "API error responses by kind", ["error"], registry=r)
        self.in_flight = Gauge("http_requests_in_flight", "API requests being computed", registry=r)
        self.queue_depth = Gauge(
            "executor_queue_depth", "Computations waiting for an executor thread", registry=r
        )
        self.websockets = Gauge("websocket_connections", "Open WebSocket connections", registry=r)
        self.ws_messages = Counter(
            "websocket_messages",
            "WebSocket messages by direction and type",
            ["direction", "type"],
            registry=r,
        )
        self.auth_refusals = Counter(
            "auth_refusals", "Requests refused by auth", ["status"], registry=r
        )
        self.rate_refusals = Counter(
            "rate_limit_refusals", "Requests refused by the rate limit", registry=r
        )
        self.events = Counter(
            "events_published", "Events published on the bus", ["type"], registry=r
        )
        self.backend = Gauge(
            "backend_info",
            "Active array backend (label) and GPU presence (value)",
            ["backend", "device"],
            registry=r,
        )
        self.gpu_memory_used = Gauge(
            "gpu_memory_used_bytes", "GPU memory in use (0 without a GPU)", registry=r
        )
        self.gpu_memory_total = Gauge(
            "gpu_memory_total_bytes", "GPU memory in total (0 without a GPU)", registry=r
        )
        self.process_rss = Gauge(
            "process_resident_memory_bytes_prism", "Server resident memory", registry=r
        )

        self.sessions = Gauge(
            "dashboard_sessions", "Live dashboard sessions (built or being built)", registry=r
        )
        self.session_refusals = Counter(
            "dashboard_session_refusals",
            "Dashboard sessions refused by the caps",
            ["reason"],
            registry=r,
        )
        self.session_build_seconds = Histogram(
            "dashboard_session_build_seconds",
            "Time to build one dashboard session (off the event loop)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self._children: dict[tuple[str, str, int], tuple] = {}
        self.fleet: Any = None  # FleetMetrics, with PRISM_REDIS_URL

    def attach_fleet(self, fleet: Any, collector: Any) -> None:
        """Count fleet-wide too (``fleet.count(kind, *labels)``) and render ``collector``."""
        self.fleet = fleet
        self.registry.register(collector)

    def count_rate_refusal(self) -> None:
        """One request refused by the rate limit."""
        self.rate_refusals.inc()
        if self.fleet is not None:
            self.fleet.count("rate_refusals")

    def count_event(self, event: Any) -> None:
        """One event published in this process (a bus subscriber; events delivered from other
        processes, with an ``origin``, are counted where they were published)."""
        if getattr(event, "origin", ""):
            return
        self.events.labels(event.type).inc()
        if self.fleet is not None:
            self.fleet.count("events", event.type)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request under ``route`` (a template the caller knows, never a raw path)."""
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            if method not in METHODS:
                child = self._children.get((route, "OTHER", status))
            if child is None:
                child = (
                    self.requests.labels(
                        route, method if method in METHODS else "OTHER", str(status)
                    ),
                    self.latency.labels(route),
                )
            if method in METHODS:
                self._children[key] = child
        child[0].inc()
        child[1].observe(seconds)
        if self.fleet is not None:
            self.fleet.count(
                "requests", route, method if method in METHODS else "OTHER", str(status)
            )

    def render(self) -> bytes:
        return generate_latest(self.registry)
