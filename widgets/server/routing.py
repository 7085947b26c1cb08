"""Route declarations and the one Tornado handler that serves them all.

A REST route is declared once, with :class:`RouteGroup`::

    routes = RouteGroup("pwsa", "Missile-warning tracking")

    @routes.post("/track", request=TrackScan, response=TrackResult, summary="Run one tracker scan")
    def track(req: Request) -> dict:
        return req.service(PwsaService).track_scan(req.body)

Validation, the OpenAPI document (:mod:`widgets.server.openapi`), metrics and the API tests
are all derived from these declarations. Handlers are plain functions that make one service
call; they run in the server's executor, never on the event loop, and return a dict, a list
or a pydantic model (the ``data`` of the success envelope), which the route's response model
is applied to (:meth:`Route.call`). Kernel exceptions map to statuses in
:mod:`widgets.server.errors`.

``RouteGroup("pixels", ..., service=PixelsService, health=PixelsHealth)`` also declares the
domain's ``GET /health`` from the service's :meth:`~prism_kernels.service.DomainService.health`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

import numpy as np
from pydantic import BaseModel, ValidationError
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.routing import PathMatches

from widgets.server.errors import ApiError, from_exception, from_validation_error
from widgets.server.jsonbody import parse_json
from widgets.server.security import (
    API_HEADERS,
    MESSAGE_CHARS,
    clip,
    clip_details,
    request_id_for,
)

API_PREFIX = "/api/v1"
API_VERSION = "v1"


@dataclass
class Request:
    """What a handler receives.

    ``body`` is the validated request model (or ``None`` for GET), ``query`` the validated
    query model (or ``None``), ``path`` the path parameters as strings, ``role`` the caller's role,
    ``identity`` a hash of the caller's key (``None`` on open routes).
    """

    body: Any
    query: Any
    path: dict[str, str]
    role: str | None
    runtime: Any
    request_id: str
    identity: str | None = None  # a hash of the caller's key (usage, budgets), never the key

    def service(self, cls: type) -> Any:
        """The runtime's instance of a service class (see :mod:`prism_kernels.runtime`)."""
        return self.runtime.service(cls)

    async def aservice(self, cls: type) -> Any:
        """:meth:`service` for an ``async def`` handler: the first time, the service is built
        in a thread (building may read the store or call the network), never on the loop. A
        service with an ``attach_loop(loop)`` method is told the server's loop, so its awaited
        I/O runs there (:meth:`prism_kernels.llm.service.LlmService.attach_loop`)."""
        svc = self.runtime.built(cls)
        if svc is None:
            svc = await asyncio.to_thread(self.runtime.service, cls)
        attach = getattr(svc, "attach_loop", None)
        if attach is not None:
            attach(asyncio.get_running_loop())
        return svc


@dataclass
class Route:
    """One REST operation: method, path (``{name}`` for path parameters), models, handler."""

    method: str
    path: str
    handler: Callable[[Request], Any]
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    summary: str = ""
    description: str = ""
    tag: str = ""
    role: str = "user"  # the lowest role allowed: readonly (GET), user, admin
    auth: bool = True
    offload: bool = True  # run in the executor (False only for trivial, non-blocking handlers)
    waits: bool = False  # mostly waits on a network peer: runs in the I/O pool, not the executor
    timeout_s: float | None = 120.0
    example: dict[str, Any] | None = None  # a request body that works, shown in OpenAPI and tested
    path_params: list[str] = field(default_factory=list)
    is_async: bool = field(init=False)  # an async def handler, awaited on the loop (acall)

    def __post_init__(self) -> None:
        self.is_async = inspect.iscoroutinefunction(self.handler)
        self.method = self.method.upper()
        self.path_params = re.findall(r"{(\w+)}", self.path)
        if self.method in ("GET", "HEAD") and self.role == "user":
            self.role = "readonly"

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def operation_id(self) -> str:
        slug = re.sub(r"[^a-zA-Z0-9]+", "_", self.path.removeprefix(API_PREFIX)).strip("_")
        return f"{self.method.lower()}_{slug}"

    @property
    def pattern(self) -> str:
        """The Tornado regex of :attr:`path`."""
        return re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", self.path) + "$"

    def call(self, req: Request) -> Any:
        """Run the handler and apply the response model to its answer (in the executor).

        Only the fields the handler set are emitted (``exclude_unset``): an optional field the
        handler left out stays out. A field the model does not declare raises
        :class:`ResponseMismatch` (a 500): the model is the contract.
        """
        return self.shape(self.handler(req))

    async def acall(self, req: Request) -> Any:
        """Await an ``async def`` handler on the server's loop and shape its answer as
        :meth:`call` does. Such a handler may only await (I/O, or work it hands to an executor)
        and do sub-millisecond work itself: the loop serves every other request meanwhile."""
        return self.shape(await self.handler(req))

    def shape(self, result: Any) -> Any:
        """``result`` through the response model (JSON-ready), or as is for an event stream."""
        if self.response is None or isinstance(result, EventStream):
            return result
        try:
            model = self.response.__pydantic_validator__.validate_python(to_plain(result))
        except ValidationError as exc:
            raise ResponseMismatch(self.name, exc) from None
        # (model_validate / model_dump without their Python wrappers: this runs per request)
        return self.response.__pydantic_serializer__.to_python(
            model, mode="json", exclude_unset=True
        )


class EventStream:
    """A handler's answer sent as server-sent events (``text/event-stream``), not one JSON body.

    ``events`` yields ``(event name, JSON-able dict)`` pairs. The server reads it in its stream
    pool (it may block on a provider), writes and flushes each event as it comes, and closes it
    when the client goes away. Errors raised by the handler before it returns an
    ``EventStream`` are ordinary JSON error answers; one raised while streaming (the status line
    has gone out) becomes a last ``Error`` event with the error body.

    A route that may answer this way declares it on its handler (``fn.event_stream = "what the
    events are"``) so the OpenAPI document lists ``text/event-stream``.
    """

    def __init__(self, events: Iterator[tuple[str, dict[str, Any]]]) -> None:
        self.events = events

    def close(self) -> None:
        close = getattr(self.events, "close", None)
        if callable(close):
            close()


class ResponseMismatch(RuntimeError):
    """A handler's answer does not fit its declared response model (a bug, so a 500)."""

    def __init__(self, route: str, exc: ValidationError) -> None:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        super().__init__(f"{route} answered outside its response model: {errs}")


class RouteGroup:
    """The routes of one domain, under ``/api/v1/<domain>``.

    Parameters
    ----------
    domain : str
        The path segment and OpenAPI tag.
    description : str
    prefix : str, optional
        Defaults to ``/api/v1/<domain>``.
    service : type, optional
        The domain's :class:`~prism_kernels.service.DomainService`; when given, ``GET /health``
        is declared from its ``health()`` with the response model ``health``.
    health : type, optional
        The health response model (a ``DomainHealth`` subclass naming the domain's fields).
    """

    def __init__(
        self,
        domain: str,
        description: str = "",
        prefix: str | None = None,
        service: type | None = None,
        health: type[BaseModel] | None = None,
    ) -> None:
        self.domain = domain
        self.description = description
        self.prefix = f"{API_PREFIX}/{domain}" if prefix is None else prefix
        self.routes: list[Route] = []
        self.service = service
        if service is not None:
            from widgets.server.models import DomainHealth

            def health_handler(req: Request) -> Any:
                return req.service(service).health()

            health_handler.__doc__ = f"The {domain} service's real state: stored items, timings."
            self.get("/health", response=health or DomainHealth)(health_handler)

    def add(self, method: str, path: str, **kw: Any) -> Callable[[Callable], Callable]:
        def deco(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
            self.routes.append(
                Route(
                    method,
                    self.prefix + path,
                    fn,
                    tag=self.domain,
                    summary=kw.pop("summary", (fn.__doc__ or "").strip().split("\n")[0]),
                    description=kw.pop("description", (fn.__doc__ or "").strip()),
                    **kw,
                )
            )
            return fn

        return deco

    def get(self, path: str, **kw: Any) -> Callable[[Callable], Callable]:
        return self.add("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Callable], Callable]:
        return self.add("POST", path, **kw)


# ---------------------------------------------------------------- JSON encoding


_SCALARS = (str, int, float, bool, type(None))


def to_plain(o: Any) -> Any:
    """``o`` with NumPy arrays and scalars, tuples and ``to_dict`` objects made plain Python."""
    if type(o) in _SCALARS:
        return o
    if isinstance(o, dict):
        return {k: to_plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [to_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, BaseModel):
        return o.model_dump(mode="python")
    if hasattr(o, "to_dict") and not isinstance(o, type):
        return to_plain(o.to_dict())
    return o


def _default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, BaseModel):
        return o.model_dump(mode="json")
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _finite(o: Any) -> Any:
    """Replace NaN and infinity by ``None`` (JSON has neither), recursively."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


_ENCODER = json.JSONEncoder(default=_default, allow_nan=False, separators=(",", ":"))


def dumps(obj: Any) -> str:
    """JSON text of ``obj``: NumPy arrays and scalars, models, dataclasses with ``to_dict``; NaN -> null."""
    try:
        return _ENCODER.encode(obj)
    except ValueError:
        plain = json.loads(json.dumps(obj, default=_default, allow_nan=True))
        return json.dumps(_finite(plain), allow_nan=False, separators=(",", ":"))


def loads(text: bytes | str) -> Any:
    """Parse a request body with the server's bounds (:func:`widgets.server.jsonbody.parse_json`);
    NaN and Infinity literals, invalid UTF-8 and deep nesting are refused (a ``ValueError``)."""
    return parse_json(text)


def parse_body(route: Route, raw: bytes, max_depth: int, max_items: int) -> Any:
    """The validated request model of ``route`` from the raw body (a 400 naming the field otherwise).

    Runs in the executor: parsing and validating a large body must not hold the event loop.
    An empty body is an empty object (every field at its default).
    """
    data = {} if not raw or raw.isspace() else parse_json(raw, max_depth, max_items)
    try:
        return route.request.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, "body") from None
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        # A validator that met input of an unexpected shape (pydantic only wraps ValueError):
        # still the caller's input, so a 400, not a 500.
        raise ApiError(400, f"invalid body: {clip(str(exc))}", details={"field": "body"}) from None


# ---------------------------------------------------------------- dispatch


class ApiRouter:
    """Finds the routes of a request path in one step: a dict for fixed paths, then the
    templated ones (``/track/{track_id}``) in declaration order.

    Tornado tries its rules one regular expression after another; with one rule per API path
    that was ~50 matches per request. The server registers a single rule for ``/api/v1/...``
    and dispatches here.
    """

    def __init__(self, routes: list[Route]) -> None:
        by_path: dict[str, dict[str, Route]] = {}
        for r in routes:
            by_path.setdefault(r.path, {})[r.method] = r
        self.fixed = {path: ms for path, ms in by_path.items() if "{" not in path}
        self.templated = [
            (re.compile(ms[next(iter(ms))].pattern), ms)
            for path, ms in by_path.items()
            if "{" in path
        ]

    def match(self, path: str) -> tuple[dict[str, Route], dict[str, str]] | None:
        """``(routes by method, path parameters)`` of ``path`` (as sent, percent-encoded), or
        ``None``. Raises a 400 for a parameter that is not UTF-8 once decoded."""
        routes = self.fixed.get(path)
        if routes is not None:
            return routes, {}
        for regex, routes in self.templated:
            m = regex.match(path)
            if m is not None:
                params = {}
                for name, raw in m.groupdict().items():
                    try:
                        params[name] = unquote_to_bytes(raw).decode("utf-8")
                    except UnicodeDecodeError:
                        raise ApiError(
                            400,
                            f"path parameter {name!r} is not valid UTF-8",
                            details={"field": name, "in": "path"},
                        ) from None
                return routes, params
        return None


# ---------------------------------------------------------------- the handler

KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))


class JsonResponder(web.RequestHandler):
    """Base of the server's own handlers: JSON bodies, ``Cache-Control: no-store``, CORS for the
    configured origins, the request id, and a metrics label that is always a known value.

    ``route_name`` is the label the request is counted under in ``/metrics``.
    """

    route_name = "unmatched"
    app: Any = None
    request_id: str = ""

    def initialize(self, app: Any) -> None:
        self.app = app
        self._cors()

    def set_default_headers(self) -> None:
        # Called when the handler is made and again when Tornado answers an error itself
        # (send_error clears the headers). Constant, valid values: written straight into the
        # response headers (what set_header would do after checking them): this runs on every
        # request.
        if not self.request_id:
            self.request_id = request_id_for(self.request.headers)
        headers = self._headers
        if "Server" in headers:
            del headers["Server"]
        headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Cache-Control"] = "no-store"
        headers["X-Request-Id"] = self.request_id
        headers.update(API_HEADERS)
        if self.app is not None:
            self._cors()

    def _cors(self) -> None:
        request_headers = self.request.headers
        if "Origin" in request_headers and self.app.cors_allows(request_headers["Origin"]):
            self.set_header("Access-Control-Allow-Origin", request_headers["Origin"])
            self._headers["Access-Control-Expose-Headers"] = CORS_EXPOSE
            self._headers["Vary"] = "Origin"

    def compute_etag(self) -> None:
        return None  # API answers are not cached (Cache-Control: no-store): no ETag to hash

    def check_etag_header(self) -> bool:
        return False  # no ETag, so no If-None-Match to compare it with

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(dumps(obj))

    def write_error_body(self, err: ApiError, exc: BaseException | None = None) -> None:
        """Answer ``err`` as the JSON error body; quotes of the input are clipped."""
        if err.status >= 500 and exc is not None and not isinstance(exc, ApiError):
            self.app.log_exception(self, exc)
        self.set_status(err.status)
        for k, v in err.headers.items():
            self.set_header(k, v)
        body = err.body()
        body["message"] = clip(body["message"], MESSAGE_CHARS)
        body["details"] = clip_details(body["details"])
        body["details"].setdefault("request_id", self.request_id)
        self.finish(dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado's own errors (an unsupported method, undecodable path) also get a JSON body,
        # never a trace.
        exc = kwargs.get("exc_info", (None, None))[1]
        message = self._reason
        if self.request.method not in self.SUPPORTED_METHODS:
            # Tornado refuses the method before reading any body, and then closes the
            # connection: say so, so that a client does not send its next request on it.
            self.set_header("Connection", "close")
        if isinstance(exc, web.HTTPError) and exc.log_message and status_code == 400:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.write_error_body(ApiError(status_code, message))

    def on_finish(self) -> None:
        self.app.record_request(self, self.route_name)


CORS_EXPOSE = (
    "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
)


class ApiHandler(JsonResponder):
    """Serves one :class:`Route` (plus 405 for the methods it lacks on the same path), for a
    request whose body is small and declared up front (:class:`WholeBodyPath`): Tornado reads
    it whole before the handler starts. Other bodies go to :class:`StreamedApiHandler`.

    Order of checks: body size (413), auth and failed-auth throttle (401, 429), role (403),
    rate limit (429), query (400), then in the executor: JSON with its bounds (400),
    validation (400), the handler (its own 4xx, or 500 without a trace).
    """

    SUPPORTED_METHODS = tuple(sorted(KNOWN_METHODS))

    def initialize(self, app: Any, router: ApiRouter) -> None:  # type: ignore[override]
        super().initialize(app)
        self.router = router
        self.routes_by_method: dict[str, Route] = {}
        self.route: Route | None = None
        self.t0 = time.perf_counter()
        self._too_large = False
        self._gone = False  # the client closed the connection (ends an event stream)

    def on_connection_close(self) -> None:
        self._gone = True
        super().on_connection_close()

    def take_body(self) -> list[bytes]:
        """The request body as chunks (joined where it is parsed)."""
        body = self.request.body
        return [body] if body else []

    async def _serve(self, *_: str) -> None:
        try:
            found = self.router.match(self.request.path)
            if found is None:
                raise ApiError(
                    404, f"no route {self.request.method} {clip(self.request.path, 120)}"
                )
            self.routes_by_method, path = found
            method = self.request.method
            route = self.routes_by_method.get(method)
            if route is None and method == "HEAD":
                route = self.routes_by_method.get("GET")
            if route is None:
                allow = sorted(self.routes_by_method) + (
                    ["HEAD"] if "GET" in self.routes_by_method else []
                )
                self.set_header("Allow", ", ".join(allow))
                raise ApiError(
                    405,
                    f"{method} is not allowed on {clip(self.request.path, 120)}; "
                    f"allowed: {', '.join(allow)}",
                )
            self.route = route
            if self._too_large:
                raise ApiError(
                    413,
                    f"request body larger than {self.app.settings.max_body_mb:g} MB (PRISM_MAX_BODY_MB)",
                    details={"max_bytes": self.app.settings.max_body_bytes},
                )
            role, identity = self.app.check_access(self, route)
            req = Request(
                body=None,
                query=self._parse_query(route) if route.query is not None else None,
                path=path,
                role=role,
                runtime=self.app.runtime,
                request_id=self.request_id,
                identity=identity,
            )
            if route.is_async or route.offload or route.request is not None:
                result = await self.app.execute(route, req, self.take_body())
            else:  # trivial and bodiless: answered here
                result = route.call(req)
            if isinstance(result, EventStream):
                await self.write_event_stream(result)
            else:
                self.write_envelope(result)
        except Exception as exc:  # every failure is a JSON error body
            self.write_error_body(from_exception(exc), exc)

    async def write_event_stream(self, stream: EventStream) -> None:
        """Send ``stream`` as server-sent events, each flushed as it is produced."""
        self.set_status(200)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")  # a proxy in front (nginx) must not buffer it
        loop = asyncio.get_running_loop()
        pool = self.app.hub.stream_pool
        done = object()
        try:
            while not self._gone:
                try:
                    item = await loop.run_in_executor(pool, next, stream.events, done)
                except Exception as exc:  # after the status line: the error is the last event
                    err = from_exception(exc)
                    if err.status >= 500 and not isinstance(exc, ApiError):
                        self.app.log_exception(self, exc)
                    body = err.body()
                    body["message"] = clip(body["message"], MESSAGE_CHARS)
                    body["details"] = clip_details(body["details"])
                    body["details"].setdefault("request_id", self.request_id)
                    body["status"] = err.status
                    self.write(f"event: Error\ndata: {dumps(body)}\n\n")
                    break
                if item is done:
                    break
                name, data = item
                self.write(f"event: {name}\ndata: {dumps(data)}\n\n")
                await self.flush()
        except StreamClosedError:
            pass  # the client went away mid-stream
        finally:
            await loop.run_in_executor(pool, stream.close)
        if not self._gone:
            self.finish()

    def _parse_query(self, route: Route) -> Any:
        args = {}
        for k in self.request.query_arguments:
            try:
                args[k] = self.get_query_argument(k)
            except web.HTTPError:  # Tornado's "Invalid unicode in ..." (a 400, not a 500)
                raise ApiError(
                    400,
                    f"query parameter {clip(k, 64)!r} is not valid UTF-8",
                    details={"field": clip(k, 64), "in": "query"},
                ) from None
        try:
            return route.query.model_validate(args)
        except ValidationError as exc:
            raise from_validation_error(exc, "query") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ApiError(
                400, f"invalid query: {clip(str(exc))}", details={"field": "query"}
            ) from None

    def write_envelope(self, data: Any) -> None:
        if type(data) is not dict and isinstance(data, BaseModel):
            data = data.model_dump(mode="python")
        envelope = {
            "success": True,
            "data": data,
            "metadata": {
                "processing_time_ms": round((time.perf_counter() - self.t0) * 1e3, 3),
                "api_version": API_VERSION,
                "request_id": self.request_id,
            },
        }
        self.set_status(200)
        self.finish(dumps(envelope))

    def on_finish(self) -> None:
        self.app.record_request(self, self.route.path if self.route is not None else "unmatched")

    get = post = put = delete = patch = head = _serve

    async def options(self, *_: str) -> None:
        # CORS preflight: answered for the configured origins only (PRISM_CORS_ORIGINS).
        origin = self.request.headers.get("Origin")
        found = self.router.match(self.request.path)
        if found is None:
            self.write_error_body(ApiError(404, f"no route {clip(self.request.path, 120)}"))
            return
        if origin is not None and self.app.cors_allows(origin):
            allow = sorted(found[0]) + ["OPTIONS"]
            self.set_header("Access-Control-Allow-Methods", ", ".join(allow))
            self.set_header(
                "Access-Control-Allow-Headers",
                "Authorization, X-API-Key, Content-Type, X-Request-Id",
            )
            self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


@web.stream_request_body
class StreamedApiHandler(ApiHandler):
    """:class:`ApiHandler` for a body that is large or of unknown length (chunked): it is
    counted as it arrives, so an oversized one gets a JSON 413 instead of a dropped connection.

    Small bodies do not come here: a streamed request costs the event loop three hand-overs
    between Tornado's connection and the handler before the handler runs (its ``prepare``, the
    body, the handler), a whole one one; under load each waits for a turn of the loop.
    """

    def initialize(self, app: Any, router: ApiRouter) -> None:  # type: ignore[override]
        super().initialize(app, router)
        self._chunks: list[bytes] = []
        self._size = 0

    def prepare(self) -> None:
        limit = self.app.settings.max_body_bytes
        headers = self.request.headers
        if "Content-Length" in headers:
            length = headers["Content-Length"]
            if length.isdigit() and int(length) > limit:
                self._too_large = True
        if self.request.method in ("POST", "PUT", "PATCH"):
            # Let Tornado read up to 8x the limit before dropping the connection outright.
            self.request.connection.set_max_body_size(max(limit * 8, 64 * 1024 * 1024))

    def data_received(self, chunk: bytes) -> None:
        if self._too_large:
            return
        self._size += len(chunk)
        if self._size > self.app.settings.max_body_bytes:
            self._too_large = True
            self._chunks = []
        else:
            self._chunks.append(chunk)

    def take_body(self) -> list[bytes]:
        chunks, self._chunks = self._chunks, []
        return chunks


WHOLE_BODY_BYTES = 64 * 1024  # larger (or chunked) request bodies are streamed


class WholeBodyPath(PathMatches):
    """Matches ``path_pattern`` for a request whose body Tornado may read whole before the
    handler starts: a declared ``Content-Length`` of at most ``max_bytes`` (or none, and no
    chunked transfer). Put before the same pattern for :class:`StreamedApiHandler`."""

    def __init__(self, path_pattern: str, max_bytes: int) -> None:
        super().__init__(path_pattern)
        self.max_bytes = max_bytes

    def match(self, request: Any) -> dict[str, Any] | None:
        headers = request.headers
        if "Transfer-Encoding" in headers:
            return None
        length = headers.get("Content-Length")
        if length is not None and not (length.isdigit() and int(length) <= self.max_bytes):
            return None
        return super().match(request)


class NotFoundHandler(JsonResponder):
    """JSON 404 for any path no route serves (registered last)."""

    SUPPORTED_METHODS = tuple(sorted(KNOWN_METHODS))

    def prepare(self) -> None:
        self.write_error_body(
            ApiError(404, f"no route {self.request.method} {clip(self.request.path, 120)}")
        )
