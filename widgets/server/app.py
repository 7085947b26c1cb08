"""The server: one Tornado process carrying the dashboards, the REST API, the WebSocket,
``/health`` and ``/metrics``.

``serve(settings)`` is what ``prism serve`` runs. :class:`ServerApp` holds what the handlers
share (settings, runtime, executor, rate limiter, failed-auth throttle, metrics, WebSocket
hub, dashboard sessions). The hardening every route inherits: security headers and request
ids on every response and credentials redacted from the access log
(:mod:`widgets.server.security`), bodies parsed with bounds in the executor
(:mod:`widgets.server.jsonbody`), header/body/idle timeouts on connections, dashboards behind
the API's keys (:mod:`widgets.server.dashboards`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import html
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bokeh.settings import settings as bokeh_settings
from pydantic import Field
from tornado import web
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

import prism_kernels
from prism_kernels import backend as B
from prism_kernels import compiled
from prism_kernels.gpu_service import GpuService
from prism_kernels.runtime import Runtime, set_runtime
from prism_kernels.store import open_store
from prism_kernels.system import system_readings
from widgets.server.auth import KeyTable, MissingKey, authorize, extract_key, key_id
from widgets.server.config import Settings
from widgets.server.dashboards import (
    LOGIN_PATH,
    LOGOUT_PATH,
    CookieAuth,
    DashboardApp,
    LoginHandler,
    LoginLinks,
    LogoutHandler,
    SessionCookies,
    SessionGate,
    gate_dashboard_routes,
    refuse_readonly_writes,
    warm_up,
)
from widgets.server.errors import ApiError
from widgets.server.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from widgets.server.models import ApiResponse
from widgets.server.openapi import build_openapi
from widgets.server.ratelimit import FailureThrottle, RateLimiter
from widgets.server.routing import (
    API_PREFIX,
    WHOLE_BODY_BYTES,
    ApiHandler,
    ApiRouter,
    JsonResponder,
    NotFoundHandler,
    Request,
    Route,
    RouteGroup,
    StreamedApiHandler,
    WholeBodyPath,
    dumps,
    parse_body,
)
from widgets.server.security import log_request, security_headers, security_transform
from widgets.server.shared_state import SharedState
from widgets.server.websocket import EventSocket, Hub

log = logging.getLogger("prism.server")
IO_THREADS = 64  # requests waiting on network peers at once (LLM calls, streams)
INLINE_BODY_BYTES = 16 * 1024  # an async handler's body is parsed on the loop up to this size

SERVER_ROUTES = RouteGroup("server", "The server itself", prefix=API_PREFIX)


class WhoAmI(ApiResponse):
    role: str = Field(description="The role of the key sent: admin, user or readonly")


@SERVER_ROUTES.get(
    "/whoami",
    response=WhoAmI,
    offload=False,  # answers from the request alone: nothing to compute
    summary="The role of the key sent (a cheap way to check a key)",
)
def whoami(req: Request) -> dict[str, Any]:
    return {"role": req.role}


class ServerApp:
    """State shared by every handler of one server."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        from widgets.server.routes import all_routes

        self.settings = settings
        if runtime is None:
            # PRISM_STORE_URL (SQLite or PostgreSQL), else the SQLite file under data_dir.
            runtime = Runtime(open_store(settings.store_url, settings.data_dir))
        self.runtime = set_runtime(runtime)
        self.metrics = ServerMetrics()
        # With PRISM_REDIS_URL: limits, events, the LLM cache and fleet figures are shared.
        self.shared = (
            SharedState(settings.redis_url, self.runtime, self.metrics)
            if settings.redis_url
            else None
        )
        self.limiter = (
            self.shared.limiter(settings.rate_limit, settings.rate_burst)
            if self.shared is not None
            else RateLimiter(settings.rate_limit, settings.rate_burst)
        )
        self.throttle = FailureThrottle(settings.auth_fail_burst, settings.auth_fail_per_s)
        self.keys = KeyTable(settings.api_keys)
        self.executor = ThreadPoolExecutor(settings.workers, thread_name_prefix="prism-compute")
        # Handlers that mostly wait on a network peer (LLM providers) and streamed answers:
        # threads of their own, so a slow provider never holds a compute thread.
        self.io_pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="prism-io")
        self.session_pool = ThreadPoolExecutor(
            settings.session_workers, thread_name_prefix="prism-session"
        )
        self.gate = SessionGate(
            settings.max_sessions, settings.max_sessions_per_client, self.metrics
        )
        self.cookies = SessionCookies(settings.cookie_secret, settings.api_keys)
        self.login_links = LoginLinks()
        self.runtime.store.add_write_check(refuse_readonly_writes(self.gate))
        self.page_headers = security_headers(settings.cors_origins)
        self._cors = frozenset(settings.cors_origins)
        self._cors_any = "*" in self._cors
        self._openapi: dict[str, Any] | None = None
        self.queued = 0
        self.in_flight = 0
        self.started = time.time()
        self.routes: list[Route] = all_routes() + SERVER_ROUTES.routes
        self.router = ApiRouter(self.routes)
        self.hub = Hub(self)
        self.monitor = self.runtime.service(GpuService).monitor
        self.dashboards: list[dict[str, str]] = []
        self.dashboard_apps: list[DashboardApp] = []
        self._callbacks: list[PeriodicCallback] = []
        self.runtime.bus.subscribe(self.metrics.count_event)
        info = B.describe()
        self.metrics.backend.labels(info["backend"], info["device"]).set(
            1.0 if info["gpu"] else 0.0
        )

    # ------------------------------------------------------------ auth, limits, execution

    def cors_allows(self, origin: str) -> bool:
        """Whether pages of ``origin`` may call the API and open the WebSockets (PRISM_CORS_ORIGINS)."""
        return self._cors_any or origin.lower().rstrip("/") in self._cors

    def identify(
        self, handler: web.RequestHandler, allow_query_key: bool = False
    ) -> tuple[str, str]:
        """``(role, identity)`` of the caller: the identity is a hash of its key (the client
        address without auth). Raises 401, or 429 for a throttled address or an empty bucket.
        """
        client = handler.request.remote_ip or ""
        if not self.settings.auth:
            return "admin", client
        if self.throttle.retry_after(client):
            raise self._throttled(client)
        try:
            query_key = handler.get_query_argument("api_key", None) if allow_query_key else None
            key = extract_key(handler.request.headers, query_key)
            role = self.keys.role(key)
        except MissingKey:
            raise
        except ApiError:
            self.throttle.failed(client)
            raise
        identity = key_id(key)  # buckets by the key's hash: no key is kept (or sent to Redis)
        decision = self.limiter.check(identity)
        handler._headers.update(decision.headers())  # our own integers: nothing to check
        if not decision.allowed:
            self.metrics.count_rate_refusal()
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
        return role, identity

    def check_metrics_access(self, handler: web.RequestHandler) -> None:
        """``/metrics`` is public unless ``PRISM_METRICS_KEY`` is set; then it needs that key
        (or an admin API key). Raises 401 or 429."""
        want = self.settings.metrics_key
        if not want:
            return
        client = handler.request.remote_ip or ""
        if self.throttle.retry_after(client):
            raise self._throttled(client)
        key = extract_key(handler.request.headers)
        if key is not None and hmac.compare_digest(key.encode(), want.encode()):
            return
        if key is not None and self.settings.api_keys.get(key) == "admin":
            return
        if key is not None:
            self.throttle.failed(client)
        self.metrics.auth_refusals.labels("401").inc()
        raise ApiError(
            401,
            "/metrics needs PRISM_METRICS_KEY (or an admin key) as a Bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="prism-metrics"'},
        )

    def _throttled(self, client: str) -> ApiError:
        retry = max(1, int(self.throttle.retry_after(client) + 0.999))
        return ApiError(
            429,
            f"too many failed authentication attempts from this address; retry after {retry} s",
            error="TooManyRequests",
            headers={"Retry-After": str(retry)},
            details={"retry_after_s": retry},
        )

    def authenticate_request(
        self, handler: web.RequestHandler, allow_query_key: bool = False
    ) -> str:
        """The caller's role (``admin`` with auth off); raises 401 or 429 as :class:`ApiError`."""
        return self.identify(handler, allow_query_key)[0]

    def check_access(
        self, handler: web.RequestHandler, route: Route
    ) -> tuple[str | None, str | None]:
        """``(role, identity)`` of an authorised caller (``(None, None)`` on an open route);
        the identity is a hash of the key, never the key. Raises 401, 403 or 429."""
        if not route.auth:
            return None, None
        try:
            role, identity = self.identify(handler)
            authorize(role, handler.request.method, route.role)
        except ApiError as err:
            if err.status in (401, 403, 429):
                self.metrics.auth_refusals.labels(str(err.status)).inc()
            raise
        return role, identity

    async def execute(self, route: Route, req: Any, chunks: list[bytes] | None = None) -> Any:
        """Run a handler in the executor (or inline when it is trivial and has no body), with
        its timeout. A request body is parsed and validated there too, never on the loop.

        An ``async def`` handler is awaited on the loop instead (:meth:`Route.acall`), its body
        parsed inline when it is at most ``INLINE_BODY_BYTES`` (parsing a small body costs less
        than the two thread hops it would take).
        """
        if route.is_async:
            return await self._await_handler(route, req, chunks)
        if not route.offload and route.request is None:
            return route.call(req)
        loop = asyncio.get_running_loop()
        self.queued += 1
        self.metrics.queue_depth.set(self.queued)
        settings = self.settings

        def run() -> Any:
            self.queued -= 1
            self.in_flight += 1
            self.metrics.queue_depth.set(self.queued)
            self.metrics.in_flight.set(self.in_flight)
            try:
                if route.request is not None:
                    raw = b"".join(chunks or ())
                    req.body = parse_body(
                        route, raw, settings.max_json_depth, settings.max_array_items
                    )
                return route.call(req)
            finally:
                self.in_flight -= 1
                self.metrics.in_flight.set(self.in_flight)

        fut = loop.run_in_executor(self.io_pool if route.waits else self.executor, run)
        try:
            return await asyncio.wait_for(fut, route.timeout_s)
        except TimeoutError:
            raise ApiError(504, f"{route.name} took longer than {route.timeout_s:g} s") from None

    async def _await_handler(self, route: Route, req: Any, chunks: list[bytes] | None) -> Any:
        settings = self.settings
        if route.request is not None:
            raw = b"".join(chunks or ())
            args = (route, raw, settings.max_json_depth, settings.max_array_items)
            if len(raw) <= INLINE_BODY_BYTES:
                req.body = parse_body(*args)
            else:
                loop = asyncio.get_running_loop()
                req.body = await loop.run_in_executor(self.executor, parse_body, *args)
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        deadline = asyncio.timeout(route.timeout_s)
        try:
            async with deadline:
                return await route.acall(req)
        except TimeoutError:
            if deadline.expired():
                raise ApiError(
                    504, f"{route.name} took longer than {route.timeout_s:g} s"
                ) from None
            raise
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)

    def record_request(self, handler: web.RequestHandler, route: str) -> None:
        """Count a request under ``route``, a label the server chose (never the raw path)."""
        self.metrics.observe_request(
            route, handler.request.method, handler.get_status(), handler.request.request_time()
        )

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
        if self.shared is not None:
            self.shared.start(websocket_count=lambda: len(self.hub.clients))
        loop.asyncio_loop.set_exception_handler(quiet_disconnects)
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
        if self.shared is not None:
            self.shared.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.io_pool.shutdown(wait=False, cancel_futures=True)
        self.session_pool.shutdown(wait=False, cancel_futures=True)
        self.runtime.close()

    # ------------------------------------------------------------ routes

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document (built once: the routes do not change while serving)."""
        if self._openapi is None:
            self._openapi = build_openapi(self.routes)
        return self._openapi

    def tornado_routes(self) -> list[tuple]:
        """Every non-dashboard route, for ``extra_patterns`` (first match wins, so order matters)."""
        # The busiest first (Tornado tries the rules in order); every REST route is behind one
        # pattern (ApiRouter dispatches with a dict, not one regular expression per path), read
        # whole or streamed by the body's declared size.
        st, api = self.settings, {"app": self, "router": self.router}
        return [
            (r"/health/?$", HealthHandler, {"app": self}),
            (API_PREFIX + r"/ws/?$", EventSocket, {"app": self}),
            (API_PREFIX + r"/openapi\.json$", OpenApiHandler, {"app": self}),
            (
                WholeBodyPath(API_PREFIX + r"/.*$", min(WHOLE_BODY_BYTES, st.max_body_bytes)),
                ApiHandler,
                api,
            ),
            (API_PREFIX + r"/.*$", StreamedApiHandler, api),
            (r"/metrics/?$", MetricsHandler, {"app": self}),
            (r"/ws/?$", EventSocket, {"app": self}),
            (r"/$", IndexHandler, {"app": self}),
            (LOGIN_PATH + "$", LoginHandler, {"app": self}),
            (LOGOUT_PATH + "$", LogoutHandler, {"app": self}),
            (r"/api(/.*)?$", NotFoundHandler, {"app": self}),
        ]


def quiet_disconnects(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's handler of exceptions nobody awaited: a write to a socket whose client
    has gone (a closed dashboard tab, a dropped WebSocket) is the client leaving, logged as one
    line; anything else keeps asyncio's default report, with its traceback."""
    exc = context.get("exception")
    if isinstance(exc, (WebSocketClosedError, StreamClosedError)):
        log.debug("a client went away while a message was being sent to it")
        return
    loop.default_exception_handler(context)


class HealthHandler(JsonResponder):
    """``GET /health``: public and trivial, so it measures the event loop itself."""

    route_name = "/health"

    def get(self) -> None:
        self.finish(
            dumps(
                {
                    "status": "ok",
                    "version": prism_kernels.__version__,
                    "backend": B.resolve_backend(),
                    "uptime_s": round(time.time() - self.app.started, 3),
                }
            )
        )

    head = get


class MetricsHandler(JsonResponder):
    """``GET /metrics``: Prometheus text (behind ``PRISM_METRICS_KEY`` or an admin key when
    that is set)."""

    route_name = "/metrics"

    def get(self) -> None:
        try:
            self.app.check_metrics_access(self)
        except ApiError as err:
            self.write_error_body(err)
            return
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.app.metrics.render())


class OpenApiHandler(JsonResponder):
    """``GET /api/v1/openapi.json`` (needs a key, like every ``/api/v1`` route)."""

    route_name = API_PREFIX + "/openapi.json"

    def get(self) -> None:
        try:
            self.app.authenticate_request(self)
        except ApiError as err:
            self.write_error_body(err)
            return
        host = f"{self.request.protocol}://{self.request.host}"
        doc = dict(self.app.openapi())
        doc["servers"] = [{"url": host}]
        self.finish(dumps(doc))


class IndexHandler(JsonResponder):
    """``GET /``: JSON for API clients, an HTML index of the dashboards for browsers."""

    route_name = "/"

    def get(self) -> None:
        accept = self.request.headers.get("Accept", "")
        info = {
            "name": "PRISM",
            "version": prism_kernels.__version__,
            "status": "operational",
            "endpoints": sorted({r.path for r in self.app.routes})
            + ["/health", "/metrics", "/ws", f"{API_PREFIX}/ws", f"{API_PREFIX}/openapi.json"]
            + ([LOGIN_PATH] if self.app.dashboards and self.app.settings.auth else []),
            "dashboards": [f"/{d['slug']}" for d in self.app.dashboards],
        }
        wants_html = "text/html" in accept and "application/json" not in accept.split(",")[0]
        if not wants_html:
            self.finish(dumps(info))
            return
        items = "\n".join(
            f'<li><a href="./{html.escape(d["slug"])}">{html.escape(d["title"])}</a>'
            f" <span>{html.escape(d['description'])}</span></li>"
            for d in self.app.dashboards
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self._headers.update(self.app.page_headers)  # a page: framing rules for pages
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
events over the WebSocket at <code>/ws</code>, <a href="./health">/health</a>, <a href="./metrics">/metrics</a>.
The dashboards need a <a href="./login">sign-in</a> with an API key (unless the server runs without auth).</p>
</body></html>
"""


def tornado_routes() -> list[tuple]:
    """Routes of a server configured from the environment (``panel serve --plugins widgets.server``)."""
    app = ServerApp(Settings.from_env())
    IOLoop.current().add_callback(app.start_background, IOLoop.current())
    # Bokeh prefixes each pattern with a string: only the rules whose pattern is one (every API
    # request is then streamed, as a large one always is).
    return [r for r in app.tornado_routes() if isinstance(r[0], str)]


def build_server(
    settings: Settings,
    show: bool = False,
    loop: IOLoop | None = None,
    verbose: bool = True,
    binding: Any = None,
) -> tuple[ServerApp, Any]:
    """The :class:`ServerApp` and the (not yet started) Panel/Bokeh server carrying its routes.

    ``loop`` is the IOLoop it runs on (default: the current one); :func:`serve` runs it in the
    foreground, :mod:`widgets.server.background` in a thread of a notebook. ``binding`` (a
    :class:`~widgets.server.supervisor.ReusePortBinding`) makes the server bind its port
    beside other processes, listening only once ``binding.listen()`` is called.
    """
    import panel as pn

    from widgets.registry import dashboards

    app = ServerApp(settings)
    apps = {}
    if settings.dashboards:
        cookies = app.cookies if settings.auth else None
        for d in dashboards():
            apps[d.slug] = DashboardApp(
                d.factory, d.title, app.gate, app.session_pool, cookies, app.metrics
            )
            app.dashboard_apps.append(apps[d.slug])
            app.dashboards.append({"slug": d.slug, "title": d.title, "description": d.description})
    host = settings.address
    # Bokeh's own origin list; the dashboards' WebSocket handler decides (same origin, or one
    # of PRISM_CORS_ORIGINS), whatever name the server is reached by.
    origins = ["*"] if host in ("0.0.0.0", "::") else [f"{host}:{settings.port}"]
    extra: dict[str, Any] = {}
    if settings.auth and apps:
        extra["auth_provider"] = CookieAuth(app.cookies)
    with binding if binding is not None else contextlib.nullcontext():
        server = pn.serve(
            apps,
            port=settings.port,
            address=settings.address,
            show=show,
            start=False,
            loop=loop,
            verbose=verbose,
            extra_patterns=[],
            websocket_origin=origins,
            websocket_max_message_size=max(settings.max_body_bytes, 20 * 2**20),
            secret_key=settings.cookie_secret,
            sign_sessions=True,
            transforms=[security_transform(settings.cors_origins, settings.trusted_proxies)],
            log_function=log_request,
            http_server_kwargs={
                "idle_connection_timeout": settings.header_timeout_s,
                "body_timeout": settings.body_timeout_s,
            },
            **extra,
        )
    tornado_app = server._tornado  # the Tornado application Bokeh built
    # Our routes go in front of Bokeh's: they are matched first (fast for /health and the API)
    # and no dashboard route can shadow them.
    tornado_app.add_handlers(r".*", app.tornado_routes())
    gate_dashboard_routes(tornado_app, app)
    return app, server


def warm_up_and_freeze(apps: list[DashboardApp]) -> None:
    """Build each dashboard once (:func:`~widgets.server.dashboards.warm_up`), then move what
    the process holds now out of the garbage collector's generations (:func:`gc.freeze`)."""
    t0 = time.perf_counter()
    warm_up(apps)
    gc.collect()
    gc.freeze()
    log.info("dashboards warmed up and start-up objects frozen in %.1f s", time.perf_counter() - t0)


def startup_lines(app: ServerApp) -> list[str]:
    """What ``prism serve`` prints once it listens: the URL, and how the dashboards are opened."""
    st = app.settings
    host = "127.0.0.1" if st.address in ("0.0.0.0", "::", "") else st.address
    base = f"http://{host}:{st.port}"
    lines = [f"PRISM on {base}/"]
    if not st.auth:
        lines.append(
            "Serving the API AND the dashboards WITHOUT authentication (--no-auth): anyone who "
            "can reach this address can read and store."
        )
    elif app.dashboards:
        lines.append(f"Dashboards: sign in at {base}{LOGIN_PATH} with an API key")
        if st.login_link:
            token = app.login_links.new("admin")
            lines.append(
                f"    or open {base}{LOGIN_PATH}?token={token}\n"
                "    (a one-time admin sign-in link for one browser; it is not an API key)"
            )
    return lines


def serve(settings: Settings, show: bool = False, reuse_port: bool = False) -> None:
    """Start the server and block until it is stopped (Ctrl-C or SIGTERM).

    With ``reuse_port`` it listens beside other processes on the same port (``SO_REUSEPORT``,
    one process of ``prism serve --workers``, :mod:`widgets.server.supervisor`), and only once
    it is ready to serve. Raises :class:`~prism_kernels.store.StoreLocked` when another
    server holds the data directory.
    """
    from widgets.server.supervisor import ReusePortBinding

    binding = ReusePortBinding() if reuse_port else None
    app, server = build_server(settings, show=show, binding=binding)
    # Bokeh validates each new document on the event loop; the dashboards validate theirs
    # when they are built, in the session pool.
    bokeh_settings.perform_document_validation.set_value(False)
    for dash in app.dashboard_apps:
        dash.validate = True
    # The numba kernels are compiled once the server listens, in a child process (the NumPy
    # paths answer meantime, with the same results): start-up never waits for a compiler.
    compiled.defer()
    # What start-up and one build of each dashboard leave behind lives as long as the server:
    # build each once now (the first visitor then waits for no import), then keep all of it
    # out of every later garbage collection (a full one walks every object, pausing every
    # thread, the event loop's included). Before listening: the collection here pauses no one.
    warm_up_and_freeze(app.dashboard_apps)
    loop = IOLoop.current()
    app.start_background(loop)

    def shutdown(*_: Any) -> None:
        loop.add_callback_from_signal(loop.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    if binding is not None:
        binding.listen()
    server.start()
    kernels = compiled.warm_in_background()
    print("\n".join(startup_lines(app)), flush=True)
    log.info("PRISM serving on http://%s:%s/", settings.address, settings.port)
    try:
        loop.start()
    finally:
        kernels.stop()
        server.stop()
        app.stop()
