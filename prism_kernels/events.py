"""The in-process event bus: services publish, the WebSocket and the dashboards subscribe.

Events are ``(type, data)`` pairs, ``type`` one of :data:`EVENT_TYPES`. Publishing is
thread-safe and never blocks on a slow subscriber: a subscriber that must hop to an event
loop (the WebSocket) does so itself. A subscriber that raises is logged and kept.
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

EVENT_TYPES = (
    "ThreatDetected",
    "PortfolioUpdate",
    "NetworkCongestion",
    "LlmStream",
    "ForecastUpdate",
    "SystemStatus",
)


@dataclass(frozen=True)
class Event:
    """One event: its type, JSON-able payload and wall-clock time (Unix seconds)."""

    type: str
    data: dict[str, Any]
    timestamp: float = field(default_factory=time.time)

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
        self.published: dict[str, int] = {t: 0 for t in EVENT_TYPES}

    def subscribe(self, callback: Subscriber) -> int:
        """Register ``callback``; returns a token for :meth:`unsubscribe`."""
        with self._lock:
            token = next(self._ids)
            self._subs[token] = callback
        return token

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._subs.pop(token, None)

    def publish(self, type: str, data: dict[str, Any]) -> Event:
        """Send an event to every subscriber and return it."""
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; known: {', '.join(EVENT_TYPES)}")
        event = Event(type, data)
        with self._lock:
            subs = list(self._subs.values())
            self.published[type] += 1
        for cb in subs:
            try:
                cb(event)
            except Exception:  # a broken subscriber must not break the publisher
                log.exception("event subscriber failed on %s", type)
        return event

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)
