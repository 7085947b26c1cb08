"""The in-process event bus: services publish, the WebSocket and the dashboards subscribe.

Events are ``(type, data)`` pairs. Each type is declared once, by the domain that emits it
(``DomainService.events`` declares its types through :func:`declare`); :func:`event_types` lists
every declared type, so a new domain adds its events without editing this module. Publishing is
thread-safe and never blocks on a slow subscriber: a subscriber that must hop to an event
loop (the WebSocket) does so itself. A subscriber that raises is logged and kept.

Several processes: a relay (the server's, over Redis) registers a *forwarder*
(:meth:`EventBus.add_forwarder`), called with each event published here, and hands events
published by other processes to this bus with :meth:`EventBus.deliver`, which reaches the local
subscribers only (never the forwarders: an event does not travel back). A delivered event
carries its ``origin``; a local one has ``origin == ""``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_declared: dict[str, str] = {}
_declared_lock = threading.Lock()


def declare(*types: str, by: str = "") -> None:
    """Declare event types (PascalCase names) that ``by`` (a domain or module) publishes.

    Declaring a type twice is harmless; it keeps its first declarer.
    """
    for t in types:
        if not isinstance(t, str) or not t[:1].isupper() or not t.isidentifier():
            raise ValueError(f"event type {t!r} must be a PascalCase identifier")
        with _declared_lock:
            _declared.setdefault(t, by)


def event_types() -> tuple[str, ...]:
    """Every declared event type, sorted."""
    with _declared_lock:
        return tuple(sorted(_declared))


def declared_by(type: str) -> str | None:
    """Who declared ``type`` (``None`` when nobody did)."""
    with _declared_lock:
        return _declared.get(type)


# The platform's own event: real CPU, memory and GPU readings, sent by the server.
declare("SystemStatus", by="system")


@dataclass(frozen=True)
class Event:
    """One event: its type, JSON-able payload, wall-clock time (Unix seconds) and origin
    (``""`` when published in this process, else the publishing process's id)."""

    type: str
    data: dict[str, Any]
    timestamp: float = field(default_factory=time.time)
    origin: str = ""

    def to_message(self) -> dict[str, Any]:
        """The WebSocket frame, internally tagged as the PRISM-AI API has it.

        ``{"type": "ThreatDetected", "threat_id": ..., "confidence": ..., "timestamp": ...}``:
        the payload's fields sit beside ``type``; ``timestamp`` (Unix seconds) is added when
        the payload has none.
        """
        return {"type": self.type, "timestamp": int(self.timestamp), **self.data}


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers (callables taking an :class:`Event`)."""

    def __init__(self) -> None:
        self._subs: dict[int, Subscriber] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._forwarders: tuple[Subscriber, ...] = ()
        self.published: dict[str, int] = {}
        self.delivered = 0

    def subscribe(self, callback: Subscriber) -> int:
        """Register ``callback``; returns a token for :meth:`unsubscribe`."""
        with self._lock:
            token = next(self._ids)
            self._subs[token] = callback
        return token

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._subs.pop(token, None)

    def add_forwarder(self, callback: Subscriber) -> None:
        """Call ``callback`` with every event published here (after the subscribers), never with
        a delivered one. It must not block (a relay queues the event)."""
        with self._lock:
            self._forwarders = (*self._forwarders, callback)

    def remove_forwarder(self, callback: Subscriber) -> None:
        with self._lock:
            self._forwarders = tuple(f for f in self._forwarders if f is not callback)

    def deliver(self, event: Event) -> None:
        """Hand ``event``, published by another process, to this process's subscribers only."""
        with self._lock:
            subs = list(self._subs.values())
            self.delivered += 1
        self._fan_out(subs, event)

    def _fan_out(self, subs: list[Subscriber], event: Event) -> None:
        for cb in subs:
            try:
                cb(event)
            except Exception:  # a broken subscriber must not break the publisher
                log.exception("event subscriber failed on %s", event.type)

    def publish(self, type: str, data: dict[str, Any]) -> Event:
        """Send an event to every subscriber (then to the forwarders) and return it."""
        if declared_by(type) is None:
            raise ValueError(
                f"undeclared event type {type!r} (declare it with prism_kernels.events.declare); "
                f"declared: {', '.join(event_types())}"
            )
        event = Event(type, data)
        with self._lock:
            subs = list(self._subs.values())
            forwarders = self._forwarders
            self.published[type] = self.published.get(type, 0) + 1
        self._fan_out(subs, event)
        for fwd in forwarders:
            try:
                fwd(event)
            except Exception:  # a broken relay must not break the publisher
                log.exception("event forwarder failed on %s", type)
        return event

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
