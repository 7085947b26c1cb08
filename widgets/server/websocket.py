"""The event WebSocket at ``/ws`` and ``/api/v1/ws``.

JSON text frames tagged by ``"type"``. Client to server: ``Ping``, ``Subscribe`` and
``Unsubscribe`` (``{"type": "Subscribe", "event_type": "ThreatDetected"}`` or
``"event_types": [...]``; ``"*"`` means every type). Server to client: ``Pong``,
``Subscribed``, ``Unsubscribed``, ``Error`` (bad JSON, unknown type: the socket stays open)
and the domain events of :mod:`prism_kernels.events`, with their fields beside ``type``.

A client that falls too far behind (more than ``MAX_PENDING`` unsent frames) is closed with
code 1008 rather than letting the server buffer without limit.

Bounds: a message larger than ``MAX_MESSAGE_BYTES`` closes the socket with 1009 (too big);
a message nested deeper than ``MAX_DEPTH`` or otherwise unreadable gets an ``Error`` frame
that quotes at most a short prefix of it (the socket stays open); one key (without auth: one
address) holds at most ``PRISM_WS_PER_KEY`` sockets (429 on the handshake beyond). Browsers
may connect from this server's own origin or from ``PRISM_CORS_ORIGINS``.

LLM streaming: ``{"type": "LlmStream", "request_id": "r1", "prompt": "...", "model"?,
"system_prompt"?, "temperature"?, "max_tokens"?, "fallbacks"?, "cache"?}`` (a user or admin
key) is answered by ``LlmChunk`` frames ``{request_id, delta, index, model}`` in order, an
``LlmFallback`` frame when another model takes over (``discard_chars``: how much of the text
already sent to drop), then ``LlmDone`` ``{request_id, text, model_used, tokens_used, cost_usd,
latency_ms, cached, fallback_used}``, or an ``Error`` frame carrying the ``request_id`` (and
the HTTP status and field the REST route would give). The answer is produced by
:meth:`prism_kernels.llm.service.LlmService.stream` in a thread of its own pool, never on the
event loop, so the socket's other subscriptions keep flowing; a socket holds at most
``MAX_LLM_STREAMS`` streams at once and closing it stops them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tornado import websocket
from tornado.ioloop import IOLoop

from prism_kernels.events import Event, event_types
from prism_kernels.llm.service import LlmService
from widgets.server.auth import authorize
from widgets.server.errors import ApiError, from_exception
from widgets.server.jsonbody import parse_json
from widgets.server.routes.llm import stream_frame
from widgets.server.routing import dumps
from widgets.server.security import clip

log = logging.getLogger("prism.server")

MAX_PENDING = 1000
MAX_MESSAGE_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_LLM_STREAMS = 4  # concurrent LlmStream requests per socket
MAX_REQUEST_ID = 128
# LlmStream fields handed to LlmService.stream, with the JSON types each accepts.
LLM_STREAM_FIELDS: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "model": (str,),
    "system_prompt": (str,),
    "temperature": (int, float),
    "max_tokens": (int,),
    "fallbacks": (list,),
    "cache": (bool,),
}


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a thread without a loop (an executor thread)
        return None


class Hub:
    """The set of open sockets; forwards bus events to the subscribed ones on the IOLoop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.clients: set[EventSocket] = set()
        self.per_key: Counter[str] = Counter()  # identity (key hash or address) -> open sockets
        self.wanted: Counter[str] = Counter()  # event type -> open sockets subscribed to it
        self.loop: IOLoop | None = None
        self.token: int | None = None

    @property
    def stream_pool(self) -> ThreadPoolExecutor:
        """Threads that produce streamed answers, LLM streams on a socket and server-sent
        events alike: the server's I/O pool (not the compute executor: a stream holds its
        thread for as long as the provider takes)."""
        return self.app.io_pool

    def add(self, client: EventSocket) -> None:
        if client not in self.clients:
            self.clients.add(client)
            self.per_key[client.identity or ""] += 1
            self.app.metrics.websockets.set(len(self.clients))

    def discard(self, client: EventSocket) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self._unwant(client.subscriptions)
            ident = client.identity or ""
            self.per_key[ident] -= 1
            if self.per_key[ident] <= 0:
                del self.per_key[ident]
            self.app.metrics.websockets.set(len(self.clients))

    def start(self, loop: IOLoop) -> None:
        self.loop = loop
        self.token = self.app.runtime.bus.subscribe(self._on_event)

    def stop(self) -> None:
        if self.token is not None:
            self.app.runtime.bus.unsubscribe(self.token)
            self.token = None

    def subscribe(self, client: EventSocket, types: set[str]) -> None:
        """Add ``types`` to ``client``'s subscriptions (on the loop)."""
        new = types - client.subscriptions
        client.subscriptions |= new
        if client in self.clients:
            self.wanted.update(new)

    def unsubscribe(self, client: EventSocket, types: set[str]) -> None:
        """Remove ``types`` from ``client``'s subscriptions (on the loop)."""
        gone = types & client.subscriptions
        client.subscriptions -= gone
        if client in self.clients:
            self._unwant(gone)

    def _unwant(self, types: set[str]) -> None:
        self.wanted.subtract(types)
        self.wanted += Counter()  # drops the types no socket wants any more

    def _on_event(self, event: Event) -> None:
        # Called from any thread (executor threads publish), once per event: an event no socket
        # subscribes to (most of them) stops here, without waking the loop or encoding it.
        loop = self.loop
        if loop is None or not self.wanted.get(event.type):
            return
        if _running_loop() is loop.asyncio_loop:
            loop.asyncio_loop.call_soon(self._broadcast, event)  # no wake-up write needed
        else:
            loop.add_callback(self._broadcast, event)

    def _broadcast(self, event: Event) -> None:
        text = dumps(event.to_message())
        for client in list(self.clients):
            if event.type in client.subscriptions:
                client.send(text, event.type)


class EventSocket(websocket.WebSocketHandler):
    """One client connection (authenticated before the upgrade)."""

    def initialize(self, app: Any) -> None:
        self.app = app
        self.subscriptions: set[str] = set()
        self.pending = 0
        self.role: str | None = None
        self.identity: str | None = None
        self.llm_streams: dict[str, threading.Event] = {}  # request_id -> stop flag

    @property
    def max_message_size(self) -> int:
        return MAX_MESSAGE_BYTES

    def check_origin(self, origin: str) -> bool:
        # API clients send no Origin (Tornado then skips this check); browsers must come from
        # this server's own origin or one of PRISM_CORS_ORIGINS.
        return super().check_origin(origin) or self.app.cors_allows(origin)

    def prepare(self) -> None:
        try:
            self.role, self.identity = self.app.identify(self, allow_query_key=True)
            if self.app.hub.per_key[self.identity] >= self.app.settings.ws_per_key:
                raise ApiError(
                    429,
                    f"this key already holds {self.app.settings.ws_per_key} WebSockets "
                    "(PRISM_WS_PER_KEY); close one first",
                    error="TooManyRequests",
                    headers={"Retry-After": "10"},
                )
        except ApiError as err:
            self.app.metrics.auth_refusals.labels(str(err.status)).inc()
            self.set_status(err.status)
            for k, v in err.headers.items():
                self.set_header(k, v)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(dumps(err.body()))

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.app.hub.add(self)

    def on_close(self) -> None:
        self.app.hub.discard(self)
        for stop in list(self.llm_streams.values()):
            stop.set()

    def on_finish(self) -> None:
        self.app.record_request(self, self.route_name)

    @property
    def route_name(self) -> str:
        return "/ws" if self.request.path.rstrip("/") == "/ws" else "/api/v1/ws"

    def send(self, text: str, type_: str) -> None:
        if self.pending >= MAX_PENDING:
            self.close(1008, "client too slow: too many unsent messages")
            return
        try:
            fut = self.write_message(text)
        except websocket.WebSocketClosedError:
            return
        self.pending += 1
        fut.add_done_callback(self._sent)
        self.app.metrics.ws_messages.labels("out", type_).inc()

    def _sent(self, fut: Any) -> None:
        self.pending -= 1
        # A write to a socket the client closed fails with WebSocketClosedError: that is the
        # client leaving, not an error (and an unread failure would be logged with a traceback).
        if not fut.cancelled():
            fut.exception()

    def reply(self, msg: dict[str, Any]) -> None:
        self.send(dumps(msg), msg["type"])

    def error(self, message: str, **details: Any) -> None:
        self.reply(
            {
                "type": "Error",
                "error": "BadMessage",
                "message": clip(message, 300),
                "details": {
                    k: clip(v, 64) if isinstance(v, str) else v for k, v in details.items()
                },
                "timestamp": int(time.time()),
            }
        )

    def on_message(self, message: str | bytes) -> None:
        try:
            self._on_message(message)
        except Exception:  # never drop the socket over one message
            log.exception("WebSocket message handling failed")
            self.error("the server could not handle this message")

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.error("binary frames are not understood; send JSON text")
            return
        try:
            msg = parse_json(message, max_depth=MAX_DEPTH, max_items=1000, where="message")
        except ApiError as exc:
            self.error(exc.message)
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.error("a message must be a JSON object with a string 'type'")
            return
        kind = msg["type"]
        self.app.metrics.ws_messages.labels(
            "in", kind if kind in ("Ping", "Subscribe", "Unsubscribe", "LlmStream") else "other"
        ).inc()
        if kind == "Ping":
            self.reply({"type": "Pong", "timestamp": int(time.time())})
        elif kind in ("Subscribe", "Unsubscribe"):
            types = self._types(msg)
            if types is None:
                return
            if kind == "Subscribe":
                self.app.hub.subscribe(self, types)
                self.reply(
                    {
                        "type": "Subscribed",
                        "event_types": sorted(types),
                        "subscriptions": sorted(self.subscriptions),
                    }
                )
            else:
                self.app.hub.unsubscribe(self, types)
                self.reply(
                    {
                        "type": "Unsubscribed",
                        "event_types": sorted(types),
                        "subscriptions": sorted(self.subscriptions),
                    }
                )
        elif kind == "LlmStream":
            self._llm_stream(msg)
        else:
            self.error(
                f"unknown message type {clip(kind, 64)!r}; send Ping, Subscribe, Unsubscribe "
                "or LlmStream",
                type=kind,
            )

    def _types(self, msg: dict[str, Any]) -> set[str] | None:
        raw = msg.get("event_types", msg.get("event_type", "*"))
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.error("event_type must be a string or event_types a list of strings")
            return None
        if "*" in names:
            return set(event_types())
        known = event_types()
        unknown = [n for n in names if n not in known]
        if unknown:
            shown = [clip(u, 64) for u in unknown[:5]]
            self.error(
                f"unknown event type(s) {', '.join(shown)}; known: {', '.join(known)}",
                unknown=shown,
            )
            return None
        return set(names)

    # ------------------------------------------------------------------ LLM streams

    def _llm_error(self, request_id: str, err: ApiError) -> None:
        """An ``Error`` frame naming the LLM request (status and details as REST gives them)."""
        details = {k: clip(v, 300) if isinstance(v, str) else v for k, v in err.details.items()}
        self.reply(
            {
                "type": "Error",
                "error": err.error,
                "status": err.status,
                "message": clip(err.message, 500),
                "request_id": request_id,
                "details": details,
                "timestamp": int(time.time()),
            }
        )

    def _llm_stream(self, msg: dict[str, Any]) -> None:
        """Validate an ``LlmStream`` request and start it in the LLM stream pool."""
        rid = msg.get("request_id")
        if not isinstance(rid, str) or not rid.strip() or len(rid) > MAX_REQUEST_ID:
            self.error(
                f"LlmStream needs a request_id: a non-empty string of at most "
                f"{MAX_REQUEST_ID} characters",
                type="LlmStream",
                field="request_id",
            )
            return
        try:
            authorize(self.role or "readonly", "POST", "user")
            if rid in self.llm_streams:
                raise ApiError(
                    400,
                    "request_id: a stream with this request_id is still running",
                    details={"field": "request_id"},
                )
            if len(self.llm_streams) >= MAX_LLM_STREAMS:
                raise ApiError(
                    429,
                    f"this socket already runs {MAX_LLM_STREAMS} LLM streams; wait for one to end",
                    error="TooManyRequests",
                )
            kwargs: dict[str, Any] = {}
            for name, types in LLM_STREAM_FIELDS.items():
                value = msg.get(name)
                if value is None:
                    continue
                if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                    raise ApiError(
                        400,
                        f"{name}: must be {' or '.join(t.__name__ for t in types)}",
                        details={"field": name},
                    )
                if name == "fallbacks" and not all(isinstance(v, str) for v in value):
                    raise ApiError(
                        400, "fallbacks: must be a list of model names", details={"field": name}
                    )
                kwargs[name] = value
            if "prompt" not in kwargs:
                raise ApiError(400, "prompt: field required", details={"field": "prompt"})
        except ApiError as err:
            self._llm_error(rid, err)
            return
        stop = threading.Event()
        self.llm_streams[rid] = stop
        loop = IOLoop.current()
        self.app.hub.stream_pool.submit(self._llm_produce, rid, kwargs, stop, loop)

    def _llm_produce(
        self, rid: str, kwargs: dict[str, Any], stop: threading.Event, loop: IOLoop
    ) -> None:
        """In a pool thread: run the service's stream and hand each item to the loop."""
        items: Iterator[dict[str, Any]] | None = None
        try:
            service = self.app.runtime.service(LlmService)
            items = service.stream(**kwargs, key=self.identity)
            index = 0
            for item in items:
                if stop.is_set():  # the socket closed: stop reading (closes the provider call)
                    break
                loop.add_callback(self._llm_send, rid, item, index)
                if item.get("type") == "chunk":
                    index += 1
        except Exception as exc:  # every failure is answered on the socket, naming the request
            err = from_exception(exc)
            if err.status >= 500 and err.status != 503 and err.status != 504:
                log.error("LLM stream %s failed", clip(rid, 64), exc_info=exc)
            loop.add_callback(self._llm_error, rid, err)
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()
            loop.add_callback(self.llm_streams.pop, rid, None)

    def _llm_send(self, rid: str, item: dict[str, Any], index: int) -> None:
        """On the loop: one stream item as an ``LlmChunk``, ``LlmFallback`` or ``LlmDone``."""
        self.reply(stream_frame(item, rid, index))
