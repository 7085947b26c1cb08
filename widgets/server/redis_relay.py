"""Events and LLM cache entries relayed between server processes through Redis pub/sub.

Each process has an origin id. Every event published on its bus (a forwarder,
:meth:`prism_kernels.events.EventBus.add_forwarder`) is queued and PUBLISHed on
``prism:events`` by a publisher thread, tagged with that id; every new LLM cache row
(:meth:`prism_kernels.llm.service.LlmService.on_cache_put`) likewise on ``prism:llm-cache``.
A subscriber thread receives both channels: messages of its own origin are skipped, events of
other origins are handed to the local subscribers with :meth:`EventBus.deliver` (the WebSocket
hub, the metrics) and never published again, so nothing loops or arrives twice; cache rows are
inserted with :meth:`LlmService.add_cache_record`, so an answer cached by one process is an exact
or semantic hit in all of them.

Redis down: the local bus is untouched (local subscribers get every local event, as without
Redis); what cannot be relayed is dropped and counted (``prism_redis_fallbacks_total{what=
"events"|"llm_cache"}``), and the subscriber reconnects after the link's back-off. Pub/sub keeps
nothing: an event published while Redis is away reaches only its own process.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from prism_kernels.events import Event, EventBus, declared_by
from widgets.server.redis_link import REDIS_ERRORS, RedisLink
from widgets.server.routing import dumps

log = logging.getLogger("prism.server.redis")

MAX_QUEUE = 10_000  # events and rows waiting to be published (beyond: dropped and counted)
MAX_BATCH = 500  # messages per pipelined round trip
MAX_PENDING_ROWS = 1_000  # cache rows received before the LLM service is attached
LLM_POLL_S = 0.2  # how often to look whether the LLM service has been built


class RedisRelay:
    """Relays this process's events and LLM cache rows to the others, and theirs to it.

    Parameters
    ----------
    link : RedisLink
    bus : EventBus
        This process's bus.
    origin : str, optional
        This process's id (default: a fresh random one).
    """

    def __init__(self, link: RedisLink, bus: EventBus, origin: str | None = None) -> None:
        self.link = link
        self.bus = bus
        self.origin = origin or uuid.uuid4().hex
        self.events_channel = link.key("events")
        self.cache_channel = link.key("llm-cache")
        self._out: queue.Queue[tuple[str, Any] | None] = queue.Queue(MAX_QUEUE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._llm: Any = None
        self._pending_rows: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING_ROWS)
        self._llm_lock = threading.Lock()
        self._started_at = time.time()
        self._pubsub: Any = None
        #: set while the subscription is live (tests and start-up wait on it)
        self.subscribed = threading.Event()
        self.sent = 0
        self.received = 0
        self.dropped = 0

    # ------------------------------------------------------------ life cycle

    def start(self, llm_lookup: Callable[[], Any] | None = None) -> None:
        """Start relaying. ``llm_lookup`` gives the process's LLM service (or ``None`` while it
        does not exist: it is asked again every :data:`LLM_POLL_S`), called in a thread of its
        own (building the service may ask providers for their models); its cache is shared."""
        self._started_at = time.time()
        self.bus.add_forwarder(self._forward_event)
        for name, target in (("publish", self._publish_loop), ("subscribe", self._subscribe_loop)):
            t = threading.Thread(target=target, name=f"prism-redis-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if llm_lookup is not None:
            t = threading.Thread(
                target=self._attach_when_built,
                args=(llm_lookup,),
                name="prism-redis-llm",
                daemon=True,
            )
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop relaying (what is queued is published first when Redis answers)."""
        self.bus.remove_forwarder(self._forward_event)
        self._stop.set()
        try:
            self._out.put_nowait(None)
        except queue.Full:
            pass
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    # ------------------------------------------------------------ LLM cache

    def _attach_when_built(self, lookup: Callable[[], Any]) -> None:
        while not self._stop.is_set():
            try:
                service = lookup()
            except Exception:
                log.exception("the LLM service could not be built: its cache is not shared")
                return
            if service is not None:
                self.attach_llm(service)
                return
            self._stop.wait(LLM_POLL_S)

    def attach_llm(self, service: Any) -> None:
        """Share ``service``'s cache: its new rows go out, rows from other processes come in.

        Rows it cached since the relay started (before this call) go out now.
        """
        service.on_cache_put(self._forward_row)
        with self._llm_lock:
            self._llm = service
            rows = list(self._pending_rows)
            self._pending_rows.clear()
        for row in rows:
            service.add_cache_record(row)
        for row in service.cache.records():
            if row["created"] >= self._started_at:
                self._forward_row(row)

    def _forward_row(self, row: dict[str, Any]) -> None:
        self._enqueue(("llm_cache", row))

    # ------------------------------------------------------------ outgoing

    def _forward_event(self, event: Event) -> None:
        if event.origin:  # delivered from elsewhere (forwarders never see those; be sure)
            return
        self._enqueue(("events", event))

    def _enqueue(self, item: tuple[str, Any]) -> None:
        try:
            self._out.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self.link.failed(item[0], reason=f"{MAX_QUEUE} messages wait already: Redis is slow")

    def _message(self, what: str, item: Any) -> str:
        if what == "events":
            return dumps({"o": self.origin, "t": item.type, "ts": item.timestamp, "d": item.data})
        return dumps({"o": self.origin, "row": item})

    def _publish_loop(self) -> None:
        while True:
            try:
                first = self._out.get(timeout=0.5)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            batch = [first] if first is not None else []
            while len(batch) < MAX_BATCH:
                try:
                    item = self._out.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    batch.append(item)
            if batch:
                self._publish(batch)
            if first is None or self._stop.is_set():
                return

    def _publish(self, batch: list[tuple[str, Any]]) -> None:
        if not self.link.available():
            self._count_dropped(batch, None)
            return
        pipe = self.link.client.pipeline(transaction=False)
        kinds: list[str] = []
        for what, item in batch:
            try:
                text = self._message(what, item)
            except (TypeError, ValueError):
                log.exception("a %s item could not be encoded for the relay", what)
                continue
            channel = self.events_channel if what == "events" else self.cache_channel
            pipe.publish(channel, text)
            kinds.append(what)
        if not kinds:
            return
        try:
            pipe.execute()
        except REDIS_ERRORS as exc:
            self._count_dropped(batch, exc)
            return
        self.link.succeeded()
        self.sent += len(kinds)

    def _count_dropped(self, batch: list[tuple[str, Any]], exc: BaseException | None) -> None:
        self.dropped += len(batch)
        by_what: dict[str, int] = {}
        for what, _ in batch:
            by_what[what] = by_what.get(what, 0) + 1
        for what, n in by_what.items():
            self.link.failed(what, exc, count=n)

    # ------------------------------------------------------------ incoming

    def _subscribe_loop(self) -> None:
        while not self._stop.is_set():
            client = self.link.pubsub_client()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.events_channel, self.cache_channel)
                self.subscribed.set()
                self.link.succeeded()
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is not None and msg.get("type") == "message":
                        self._receive(msg["channel"], msg["data"])
            except REDIS_ERRORS as exc:
                self.subscribed.clear()
                self.link.failed("subscribe", exc, count=0)
                self._stop.wait(self.link.backoff_s)
            finally:
                self.subscribed.clear()
                try:
                    pubsub.close()
                    client.close()
                except REDIS_ERRORS:
                    pass

    def _receive(self, channel: bytes, data: bytes) -> None:
        try:
            msg = json.loads(data)
            origin = msg["o"]
        except (ValueError, TypeError, KeyError):
            log.warning("an unreadable message on %s was ignored", channel[:64])
            return
        if not isinstance(origin, str) or origin == self.origin or not origin:
            return
        self.received += 1
        if channel == self.events_channel.encode():
            self._deliver(origin, msg)
        elif channel == self.cache_channel.encode():
            row = msg.get("row")
            if not isinstance(row, dict):
                return
            with self._llm_lock:
                service = self._llm
                if service is None:
                    self._pending_rows.append(row)
                    return
            service.add_cache_record(row)

    def _deliver(self, origin: str, msg: dict[str, Any]) -> None:
        etype, data, ts = msg.get("t"), msg.get("d"), msg.get("ts")
        if not isinstance(etype, str) or not isinstance(data, dict):
            return
        if declared_by(etype) is None:  # a type this process does not know (another version)
            log.debug("event of undeclared type %.64s from %s ignored", etype, origin)
            return
        ts = float(ts) if isinstance(ts, (int, float)) else None
        event = (
            Event(etype, data, ts, origin) if ts is not None else Event(etype, data, origin=origin)
        )
        self.bus.deliver(event)
