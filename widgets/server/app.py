"""The server: one Tornado process carrying the dashboards, the REST API, the WebSocket,
``/health`` and ``/metrics``.

``serve(settings)`` is what ``prism serve`` runs. :class:`ServerApp` holds what the handlers
share (settings, runtime, executor, rate limiter, metrics, WebSocket hub).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado import web
from tornado.ioloop import IOLoop, PeriodicCallback

import prism_kernels
from prism_kernels import backend as B
from prism_kernels.gpu_service import GpuService
from prism_kernels.runtime import Runtime, set_runtime
from prism_kernels.store import Store
from prism_kernels.system import system_readings
from widgets.server.auth import authenticate, authorize, extract_key
from widgets.server.config import Settings
from widgets.server.errors import ApiError
from widgets.server.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from widgets.server.openapi import build_openapi
from widgets.server.ratelimit import RateLimiter
from widgets.server.routing import API_PREFIX, ApiHandler, NotFoundHandler, Route, dumps
from widgets.server.websocket import EventSocket, Hub

log = logging.getLogger("prism.server")


class ServerApp:
    """State shared by every handler of one server."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        from widgets.server.routes import all_routes

        self.settings = settings
        if runtime is None:
            store = (
                Store(settings.data_dir / "prism.sqlite")
                if settings.data_dir
                else Store(":memory:")
            )
            runtime = Runtime(store)
        self.runtime = set_runtime(runtime)
        self.metrics = ServerMetrics()
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="prism-compute")
        self.queued = 0
        self.in_flight = 0
        self.started = time.time()
        self.routes: list[Route] = all_routes()
        self.hub = Hub(self)
        self.monitor = self.runtime.service(GpuService).monitor
        self.dashboards: list[dict[str, str]] = []
        self._callbacks: list[PeriodicCallback] = []
        self.runtime.bus.subscribe(lambda e: self.metrics.events.labels(e.type).inc())
        info = B.describe()
        self.metrics.backend.labels(info["backend"], info["device"]).set(
            1.0 if info["gpu"] else 0.0
        )

    # ------------------------------------------------------------ auth, limits, execution

    def authenticate_request(
        self, handler: web.RequestHandler, allow_query_key: bool = False
    ) -> str | None:
        """The caller's role (``None`` with auth off); raises 401 or 429 as :class:`ApiError`."""
        if not self.settings.auth:
            return "admin"
        query_key = handler.get_query_argument("api_key", None) if allow_query_key else None
        key = extract_key(handler.request.headers, query_key)
        role = authenticate(self.settings.api_keys, key)
        decision = self.limiter.check(key)
        for k, v in decision.headers().items():
            handler.set_header(k, v)
        if not decision.allowed:
            self.metrics.rate_refusals.inc()
            raise ApiError(
                429,
                f"rate limit of {self.settings.rate_limit:g} requests/s per key exceeded; "
                f"retry after {decision.headers()['Retry-After']} s",
                error="TooManyRequests",
                headers=decision.headers(),
                details={
                    "limit_per_s": self.settings.rate_limit,
                    "burst": self.settings.rate_burst,
                },
            )
        return role

    def check_access(self, handler: web.RequestHandler, route: Route) -> str | None:
        if not route.auth:
            return None
        try:
            role = self.authenticate_request(handler)
            if role is not None:
                authorize(role, handler.request.method, route.role)
        except ApiError as err:
            if err.status in (401, 403):
                self.metrics.auth_refusals.labels(str(err.status)).inc()
            raise
        return role

    async def execute(self, route: Route, req: Any) -> Any:
        """Run a handler in the executor (or inline when it is trivial), with its timeout."""
        if not route.offload:
            return route.call(req)
        loop = asyncio.get_running_loop()
        self.queued += 1
        self.metrics.queue_depth.set(self.queued)

        def run() -> Any:
            self.queued -= 1
            self.in_flight += 1
            self.metrics.queue_depth.set(self.queued)
            self.metrics.in_flight.set(self.in_flight)
            try:
                return route.call(req)
            finally:
                self.in_flight -= 1
                self.metrics.in_flight.set(self.in_flight)

        fut = loop.run_in_executor(self.executor, run)
        try:
            return await asyncio.wait_for(fut, route.timeout_s)
        except TimeoutError:
            raise ApiError(504, f"{route.name} took longer than {route.timeout_s:g} s") from None

    def record_request(self, handler: web.RequestHandler, route: Route | None) -> None:
        name = route.path if route is not None else "unmatched"
        status = handler.get_status()
        self.metrics.requests.labels(name, handler.request.method, str(status)).inc()
        self.metrics.latency.labels(name).observe(handler.request.request_time())

    def log_exception(self, handler: web.RequestHandler, exc: BaseException) -> None:
        log.error(
            "unhandled error in %s %s",
            handler.request.method,
            handler.request.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )

    # ------------------------------------------------------------ background work

    def publish_status(self) -> None:
        """Publish a ``SystemStatus`` event with real readings (every ``status_interval_s``)."""
        r = system_readings()
        self.runtime.bus.publish(
            "SystemStatus",
            {
                "cpu_usage": r["cpu_usage"],
                "memory_usage": r["memory_usage"],
                "gpu_usage": r["gpu_usage"],
                "gpu_memory_usage": r["gpu_memory_usage"],
                "active_requests": self.in_flight + self.queued,
                "websocket_connections": len(self.hub.clients),
                "process_rss_bytes": r["process_rss_bytes"],
            },
        )

    def sample_utilization(self) -> None:
        """One reading of the device and the host, kept by the monitor and shown in /metrics."""
        self.monitor.sample()
        g, r = self.monitor.last_gpu, self.monitor.last_system
        self.metrics.process_rss.set(r["process_rss_bytes"])
        if g.get("available"):
            self.metrics.gpu_memory_used.set((g["memory_used_mb"] or 0) * 2**20)
            self.metrics.gpu_memory_total.set((g["memory_total_mb"] or 0) * 2**20)

    def start_background(self, loop: IOLoop) -> None:
        self.hub.start(loop)
        self.sample_utilization()
        for fn, every_s in (
            (self.publish_status, self.settings.status_interval_s),
            (self.sample_utilization, 1.0),
        ):
            cb = PeriodicCallback(fn, every_s * 1000)
            cb.start()
            self._callbacks.append(cb)

    def stop(self) -> None:
        for cb in self._callbacks:
            cb.stop()
        self.hub.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.runtime.close()

    # ------------------------------------------------------------ routes

    def openapi(self) -> dict[str, Any]:
        return build_openapi(self.routes)

    def tornado_routes(self) -> list[tuple]:
        """Every non-dashboard route, for ``extra_patterns`` (first match wins, so order matters)."""
        by_path: dict[str, dict[str, Route]] = {}
        for r in self.routes:
            by_path.setdefault(r.pattern, {})[r.method] = r
        out: list[tuple] = [
            (r"/health/?$", HealthHandler, {"app": self}),
            (r"/metrics/?$", MetricsHandler, {"app": self}),
            (r"/ws/?$", EventSocket, {"app": self}),
            (API_PREFIX + r"/ws/?$", EventSocket, {"app": self}),
            (API_PREFIX + r"/openapi\.json$", OpenApiHandler, {"app": self}),
            (r"/$", IndexHandler, {"app": self}),
        ]
        out += [
            (pattern, ApiHandler, {"app": self, "routes": methods})
            for pattern, methods in by_path.items()
        ]
        out.append((API_PREFIX + r"(/.*)?$", NotFoundHandler, {"app": self}))
        out.append((r"/api(/.*)?$", NotFoundHandler, {"app": self}))
        return out


class JsonHandler(web.RequestHandler):
    def initialize(self, app: ServerApp) -> None:
        self.app = app

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dumps(obj))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.write_json(ApiError(status_code, self._reason).body(), status_code)

    def on_finish(self) -> None:
        self.app.record_request(self, None)


class HealthHandler(JsonHandler):
    """``GET /health``: public and trivial, so it measures the event loop itself."""

    def get(self) -> None:
        self.write_json(
            {
                "status": "ok",
                "version": prism_kernels.__version__,
                "backend": B.resolve_backend(),
                "uptime_s": round(time.time() - self.app.started, 3),
            }
        )

    head = get


class MetricsHandler(JsonHandler):
    """``GET /metrics``: Prometheus text."""

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.app.metrics.render())


class OpenApiHandler(JsonHandler):
    """``GET /api/v1/openapi.json`` (needs a key, like every ``/api/v1`` route)."""

    def get(self) -> None:
        try:
            self.app.authenticate_request(self)
        except ApiError as err:
            for k, v in err.headers.items():
                self.set_header(k, v)
            self.write_json(err.body(), err.status)
            return
        host = f"{self.request.protocol}://{self.request.host}"
        doc = self.app.openapi()
        doc["servers"] = [{"url": host}]
        self.write_json(doc)


class IndexHandler(JsonHandler):
    """``GET /``: JSON for API clients, an HTML index of the dashboards for browsers."""

    def get(self) -> None:
        accept = self.request.headers.get("Accept", "")
        info = {
            "name": "PRISM",
            "version": prism_kernels.__version__,
            "status": "operational",
            "endpoints": sorted({r.path for r in self.app.routes})
            + ["/health", "/metrics", "/ws", f"{API_PREFIX}/ws", f"{API_PREFIX}/openapi.json"],
            "dashboards": [f"/{d['slug']}" for d in self.app.dashboards],
        }
        wants_html = "text/html" in accept and "application/json" not in accept.split(",")[0]
        if not wants_html:
            self.write_json(info)
            return
        items = "\n".join(
            f'<li><a href="./{html.escape(d["slug"])}">{html.escape(d["title"])}</a>'
            f" <span>{html.escape(d['description'])}</span></li>"
            for d in self.app.dashboards
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(INDEX_HTML.format(version=prism_kernels.__version__, items=items))


INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PRISM</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;color:#222}}
li{{margin:.6rem 0}} a{{font-weight:600}} span{{color:#555}} code{{background:#f3f3f3;padding:0 .2rem}}</style>
</head><body>
<h1>PRISM <small>{version}</small></h1>
<h2>Dashboards</h2>
<ul id="dashboards">
{items}
</ul>
<h2>API</h2>
<p>REST under <code>/api/v1</code> (OpenAPI at <code>/api/v1/openapi.json</code>, with a key),
events over the WebSocket at <code>/ws</code>, <a href="./health">/health</a>, <a href="./metrics">/metrics</a>.</p>
</body></html>
"""


def tornado_routes() -> list[tuple]:
    """Routes of a server configured from the environment (``panel serve --plugins widgets.server``)."""
    app = ServerApp(Settings.from_env())
    IOLoop.current().add_callback(app.start_background, IOLoop.current())
    return app.tornado_routes()


def build_server(
    settings: Settings, show: bool = False, loop: IOLoop | None = None, verbose: bool = True
) -> tuple[ServerApp, Any]:
    """The :class:`ServerApp` and the (not yet started) Panel/Bokeh server carrying its routes.

    ``loop`` is the IOLoop it runs on (default: the current one); :func:`serve` runs it in the
    foreground, :mod:`widgets.server.background` in a thread of a notebook.
    """
    import panel as pn

    from widgets.registry import dashboards

    app = ServerApp(settings)
    apps = {}
    if settings.dashboards:
        for d in dashboards():
            apps[d.slug] = d.factory
            app.dashboards.append({"slug": d.slug, "title": d.title, "description": d.description})
    host = settings.address
    origins = (
        ["*"]
        if host in ("0.0.0.0", "::")
        else [f"{h}:{settings.port}" for h in {host, "localhost", "127.0.0.1"}]
    )
    server = pn.serve(
        apps,
        port=settings.port,
        address=settings.address,
        show=show,
        start=False,
        loop=loop,
        verbose=verbose,
        extra_patterns=app.tornado_routes(),
        websocket_origin=origins,
        title={d["slug"]: d["title"] for d in app.dashboards},
        websocket_max_message_size=max(settings.max_body_bytes, 20 * 2**20),
    )
    return app, server


def serve(settings: Settings, show: bool = False) -> None:
    """Start the server and block until it is stopped (Ctrl-C or SIGTERM)."""
    import signal

    app, server = build_server(settings, show=show)
    loop = IOLoop.current()
    app.start_background(loop)

    def shutdown(*_: Any) -> None:
        loop.add_callback_from_signal(loop.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.start()
    log.info("PRISM serving on http://%s:%s/", settings.address, settings.port)
    try:
        loop.start()
    finally:
        server.stop()
        app.stop()
