"""The event WebSocket at ``/ws`` and ``/api/v1/ws``.

JSON text frames tagged by ``"type"``. Client to server: ``Ping``, ``Subscribe`` and
``Unsubscribe`` (``{"type": "Subscribe", "event_type": "ThreatDetected"}`` or
``"event_types": [...]``; ``"*"`` means every type). Server to client: ``Pong``,
``Subscribed``, ``Unsubscribed``, ``Error`` (bad JSON, unknown type: the socket stays open)
and the domain events of :mod:`prism_kernels.events`, with their fields beside ``type``.

A client that falls too far behind (more than ``MAX_PENDING`` unsent frames) is closed with
code 1008 rather than letting the server buffer without limit.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tornado import websocket
from tornado.ioloop import IOLoop

from prism_kernels.events import Event, event_types
from widgets.server.errors import ApiError
from widgets.server.routing import dumps

MAX_PENDING = 1000


class Hub:
    """The set of open sockets; forwards bus events to the subscribed ones on the IOLoop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.clients: set[EventSocket] = set()
        self.loop: IOLoop | None = None
        self.token: int | None = None

    def start(self, loop: IOLoop) -> None:
        self.loop = loop
        self.token = self.app.runtime.bus.subscribe(self._on_event)

    def stop(self) -> None:
        if self.token is not None:
            self.app.runtime.bus.unsubscribe(self.token)
            self.token = None

    def _on_event(self, event: Event) -> None:
        # Called from any thread (executor threads publish); hop to the loop.
        if self.loop is not None:
            self.loop.add_callback(self._broadcast, event)

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

    def check_origin(self, origin: str) -> bool:
        # API clients send no Origin; browsers must come from an allowed origin (or this host).
        allowed = self.app.settings.allowed_origins
        if not allowed:
            return True
        return origin in allowed or super().check_origin(origin)

    def prepare(self) -> None:
        try:
            self.role = self.app.authenticate_request(self, allow_query_key=True)
        except ApiError as err:
            self.app.metrics.auth_refusals.labels(str(err.status)).inc()
            self.set_status(err.status)
            for k, v in err.headers.items():
                self.set_header(k, v)
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(dumps(err.body()))

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.app.hub.clients.add(self)
        self.app.metrics.websockets.set(len(self.app.hub.clients))

    def on_close(self) -> None:
        self.app.hub.clients.discard(self)
        self.app.metrics.websockets.set(len(self.app.hub.clients))

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

    def reply(self, msg: dict[str, Any]) -> None:
        self.send(dumps(msg), msg["type"])

    def error(self, message: str, **details: Any) -> None:
        self.reply(
            {
                "type": "Error",
                "error": "BadMessage",
                "message": message,
                "details": details,
                "timestamp": int(time.time()),
            }
        )

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.error("binary frames are not understood; send JSON text")
            return
        try:
            msg = json.loads(message)
        except ValueError as exc:
            self.error(f"malformed JSON: {exc}")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self.error("a message must be a JSON object with a string 'type'")
            return
        kind = msg["type"]
        self.app.metrics.ws_messages.labels(
            "in", kind if kind in ("Ping", "Subscribe", "Unsubscribe") else "other"
        ).inc()
        if kind == "Ping":
            self.reply({"type": "Pong", "timestamp": int(time.time())})
        elif kind in ("Subscribe", "Unsubscribe"):
            types = self._types(msg)
            if types is None:
                return
            if kind == "Subscribe":
                self.subscriptions |= types
                self.reply(
                    {
                        "type": "Subscribed",
                        "event_types": sorted(types),
                        "subscriptions": sorted(self.subscriptions),
                    }
                )
            else:
                self.subscriptions -= types
                self.reply(
                    {
                        "type": "Unsubscribed",
                        "event_types": sorted(types),
                        "subscriptions": sorted(self.subscriptions),
                    }
                )
        else:
            self.error(
                f"unknown message type {kind!r}; send Ping, Subscribe or Unsubscribe", type=kind
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
            self.error(
                f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(known)}",
                unknown=unknown,
            )
            return None
        return set(names)
