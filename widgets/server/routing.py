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

import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError
from tornado import web

from widgets.server.errors import ApiError, from_exception, from_validation_error

API_PREFIX = "/api/v1"
API_VERSION = "v1"


@dataclass
class Request:
    """What a handler receives.

    ``body`` is the validated request model (or ``None`` for GET), ``query`` the validated
    query model (or ``None``), ``path`` the path parameters as strings, ``role`` the caller's role.
    """

    body: Any
    query: Any
    path: dict[str, str]
    role: str | None
    runtime: Any
    request_id: str

    def service(self, cls: type) -> Any:
        """The runtime's instance of a service class (see :mod:`prism_kernels.runtime`)."""
        return self.runtime.service(cls)


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
    timeout_s: float | None = 120.0
    example: dict[str, Any] | None = None  # a request body that works, shown in OpenAPI and tested
    path_params: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
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
        result = self.handler(req)
        if self.response is None:
            return result
        try:
            model = self.response.model_validate(to_plain(result))
        except ValidationError as exc:
            raise ResponseMismatch(self.name, exc) from None
        return model.model_dump(mode="json", exclude_unset=True)


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


def to_plain(o: Any) -> Any:
    """``o`` with NumPy arrays and scalars, tuples and ``to_dict`` objects made plain Python."""
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


def dumps(obj: Any) -> str:
    """JSON text of ``obj``: NumPy arrays and scalars, models, dataclasses with ``to_dict``; NaN -> null."""
    try:
        return json.dumps(obj, default=_default, allow_nan=False, separators=(",", ":"))
    except ValueError:
        plain = json.loads(json.dumps(obj, default=_default, allow_nan=True))
        return json.dumps(_finite(plain), allow_nan=False, separators=(",", ":"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def loads(text: bytes | str) -> Any:
    """Parse a request body; NaN and Infinity literals are refused."""
    return json.loads(text, parse_constant=_reject_constant)


# ---------------------------------------------------------------- the handler


class ApiHandler(web.RequestHandler):
    """Serves one :class:`Route` (plus 405 for the methods it lacks on the same path).

    Order of checks: body size (413), auth (401), role (403), rate limit (429), JSON (400),
    validation (400), handler (its own 4xx, or 500 without a trace).
    """

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

    def initialize(self, app: Any, routes: dict[str, Route]) -> None:
        self.app = app
        self.routes_by_method = routes
        self.route: Route | None = None
        self.request_id = uuid.uuid4().hex[:16]
        self.t0 = time.perf_counter()

    # Bodies are streamed so an oversized one gets a JSON 413 instead of a dropped connection.
    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False
        limit = self.app.settings.max_body_bytes
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            self._too_large = True
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

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("X-Request-Id", self.request_id if hasattr(self, "request_id") else "")
        self.set_header("Access-Control-Allow-Origin", "*")

    async def _serve(self, **path: str) -> None:
        try:
            route = self.routes_by_method.get(self.request.method)
            if route is None and self.request.method == "HEAD":
                route = self.routes_by_method.get("GET")
            if route is None:
                allow = sorted(self.routes_by_method) + (
                    ["HEAD"] if "GET" in self.routes_by_method else []
                )
                self.set_header("Allow", ", ".join(allow))
                raise ApiError(
                    405,
                    f"{self.request.method} is not allowed on {self.request.path}; allowed: {', '.join(allow)}",
                )
            self.route = route
            if self._too_large:
                raise ApiError(
                    413,
                    f"request body larger than {self.app.settings.max_body_mb:g} MB (PRISM_MAX_BODY_MB)",
                    details={"max_bytes": self.app.settings.max_body_bytes},
                )
            role = self.app.check_access(self, route)
            body = self._parse_body(route)
            query = self._parse_query(route)
            req = Request(
                body=body,
                query=query,
                path=path,
                role=role,
                runtime=self.app.runtime,
                request_id=self.request_id,
            )
            result = await self.app.execute(route, req)
            self.write_envelope(result)
        except Exception as exc:  # every failure is a JSON error body
            self.write_error_body(from_exception(exc), exc)

    def _parse_body(self, route: Route) -> Any:
        if route.request is None:
            return None
        raw = b"".join(self._chunks)
        if not raw.strip():
            data: Any = {}
        else:
            try:
                data = loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(
                    400,
                    f"malformed JSON body: {exc}",
                    error="MalformedJson",
                    details={"field": "body"},
                ) from None
        try:
            return route.request.model_validate(data)
        except ValidationError as exc:
            raise from_validation_error(exc, "body") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            # A validator that met input of an unexpected shape (pydantic only wraps ValueError):
            # still the caller's input, so a 400, not a 500.
            raise ApiError(400, f"invalid body: {exc}", details={"field": "body"}) from None

    def _parse_query(self, route: Route) -> Any:
        if route.query is None:
            return None
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        try:
            return route.query.model_validate(args)
        except ValidationError as exc:
            raise from_validation_error(exc, "query") from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ApiError(400, f"invalid query: {exc}", details={"field": "query"}) from None

    def write_envelope(self, data: Any) -> None:
        if isinstance(data, BaseModel):
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

    def write_error_body(self, err: ApiError, exc: BaseException | None = None) -> None:
        if err.status >= 500 and exc is not None and not isinstance(exc, ApiError):
            self.app.log_exception(self, exc)
        self.set_status(err.status)
        for k, v in err.headers.items():
            self.set_header(k, v)
        body = err.body()
        body["details"].setdefault("request_id", self.request_id)
        self.finish(dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado's own errors (e.g. a malformed request line) also get a JSON body, never a trace.
        self.write_error_body(ApiError(status_code, self._reason))

    def on_finish(self) -> None:
        self.app.record_request(self, self.route)

    get = post = put = delete = patch = head = _serve

    async def options(self, **path: str) -> None:
        # CORS preflight, as the original's permissive CORS layer answered it.
        self.set_header("Access-Control-Allow-Methods", ", ".join(sorted(self.routes_by_method)))
        self.set_header("Access-Control-Allow-Headers", "Authorization, X-API-Key, Content-Type")
        self.set_status(204)
        self.finish()


ApiHandler = web.stream_request_body(ApiHandler)


class NotFoundHandler(web.RequestHandler):
    """JSON 404 for any path no route serves (registered last)."""

    def initialize(self, app: Any) -> None:
        self.app = app

    def prepare(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_status(404)
        self.finish(
            dumps(ApiError(404, f"no route {self.request.method} {self.request.path}").body())
        )

    def on_finish(self) -> None:
        self.app.record_request(self, None)
