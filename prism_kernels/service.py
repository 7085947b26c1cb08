"""The base of every domain's service: state, storage, timing, events and health in one shape.

A domain service (``prism_kernels/<domain>/service.py``) holds state and nothing else: the
math lives in kernel modules beside it. It subclasses :class:`DomainService`, keeps its
stored objects in :class:`Collection` s and declares the events it emits::

    class PixelsService(DomainService):
        domain = "pixels"
        events = ("ThreatDetected",)

        def __init__(self, store=None, bus=None):
            super().__init__(store, bus)
            self.frames = self.collection("frame", max_items=500, label="frame")

        def process(self, frame):
            with self.timed("process") as t:
                result = kernels.process(frame)
            return {**result, TIMING_KEY: t.ms}

What every service shares, so that routes, dashboards and tests can rely on it:

- one timing key, :data:`TIMING_KEY` (``computation_time_ms``), and latency statistics per
  operation kept the same way (:class:`LatencyStats`);
- lists newest first, ``get`` and ``delete`` of an unknown id raise :class:`NotFound`;
- a lock (:attr:`DomainService.lock`) around state changes: the server calls services from
  executor threads;
- :meth:`DomainService.health` reports real state (collections, operations, uptime);
- validate first, mutate after: a rejected request changes no state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from prism_kernels import events as _events
from prism_kernels.errors import NotFound
from prism_kernels.events import EventBus
from prism_kernels.store import Bound, Store

TIMING_KEY = "computation_time_ms"
"""The one key under which every service reports how long a computation took (milliseconds)."""

DEFAULT_PAGE = 100


class Collection:
    """One kind of stored document: bounded, listed newest first, ``NotFound`` for unknown ids.

    Parameters
    ----------
    store : Store
    kind : str
        The store kind (``"frame"``, ``"portfolio"``...).
    max_items : int, optional
        At most this many documents are kept; the oldest go first.
    max_age_s : float, optional
        Documents not updated for this many seconds are dropped on the next write.
    label : str, optional
        The name a person reads in a 404 (``"portfolio"``); defaults to ``kind``.
    """

    def __init__(
        self,
        store: Store,
        kind: str,
        max_items: int | None = None,
        max_age_s: float | None = None,
        label: str | None = None,
    ) -> None:
        self.store = store
        self.kind = kind
        self.label = label or kind
        self.bound = Bound(max_items=max_items, max_age_s=max_age_s)
        store.set_bound(kind, self.bound)

    def put(self, id: str | int, doc: dict[str, Any], arrays: dict[str, Any] | None = None) -> None:
        """Insert or replace one document (one transaction; committed on return)."""
        self.store.put(self.kind, id, doc, arrays)

    def check_write(self) -> None:
        """Raise now if a write of this kind would be refused (:meth:`StoreBase.check_write`)."""
        self.store.check_write(self.kind)

    def put_many(self, items: Sequence[tuple[str | int, dict[str, Any]]]) -> None:
        """Insert or replace ``(id, doc)`` documents in one transaction, in order."""
        self.store.put_many(self.kind, [(id, doc, None) for id, doc in items])

    def get(self, id: str | int) -> dict[str, Any]:
        """The stored document; raises :class:`NotFound`."""
        try:
            return self.store.get(self.kind, id)
        except NotFound:
            raise NotFound(self.label, id) from None

    def arrays(self, id: str | int) -> dict[str, np.ndarray]:
        """The arrays stored with a document (empty when none); raises :class:`NotFound`."""
        try:
            return self.store.get_arrays(self.kind, id)
        except NotFound:
            raise NotFound(self.label, id) from None

    def exists(self, id: str | int) -> bool:
        return self.store.exists(self.kind, id)

    def delete(self, id: str | int) -> None:
        """Delete one document; raises :class:`NotFound` when there is none."""
        if not self.store.delete(self.kind, id):
            raise NotFound(self.label, id)

    def page(self, limit: int | None = DEFAULT_PAGE, offset: int = 0) -> list[tuple[str, dict]]:
        """``(id, doc)`` pairs, newest first."""
        return self.store.list(self.kind, limit=limit, offset=offset, newest_first=True)

    def ids(self) -> list[str]:
        """Every stored id, newest first."""
        return [i for i, _ in self.page(limit=None)]

    def count(self) -> int:
        return self.store.count(self.kind)

    __len__ = count


class LatencyStats:
    """Recent computation times of one operation (milliseconds): count, mean, p50, p95, max.

    Keeps the last ``window`` samples; ``count`` counts every sample ever added.
    """

    def __init__(self, window: int = 1000) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.count = 0
        self.last_ms: float | None = None

    def add(self, ms: float) -> None:
        self._recent.append(float(ms))
        self.count += 1
        self.last_ms = float(ms)

    def summary(self) -> dict[str, float | int | None]:
        xs = sorted(self._recent)
        if not xs:
            return {"count": 0, "mean_ms": None, "p50_ms": None, "p95_ms": None, "max_ms": None}

        def q(p: float) -> float:  # nearest-rank quantile of the recent window
            return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]

        return {
            "count": self.count,
            "mean_ms": round(sum(xs) / len(xs), 3),
            "p50_ms": round(q(0.5), 3),
            "p95_ms": round(q(0.95), 3),
            "max_ms": round(xs[-1], 3),
        }


@dataclass
class Timing:
    """What :meth:`DomainService.timed` yields; ``ms`` is set when the block ends."""

    operation: str
    t0: float = field(default_factory=time.perf_counter)
    ms: float = 0.0

    def elapsed_ms(self) -> float:
        """Milliseconds since the block began (while it runs)."""
        return (time.perf_counter() - self.t0) * 1e3


class DomainService:
    """Base of the domain services: store and bus, a lock, timing, health, close.

    Parameters
    ----------
    store : Store, optional
        Where collections persist (in memory when omitted).
    bus : EventBus, optional
        Where events go (a private bus when omitted, so a notebook needs none).

    Subclasses set :attr:`domain` (the route prefix: ``"pixels"``) and :attr:`events` (the event
    types they publish); they add their collections with :meth:`collection` and their own health
    fields with :meth:`health_details`.
    """

    domain: ClassVar[str] = ""
    events: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.events:
            _events.declare(*cls.events, by=cls.domain or cls.__name__)

    def __init__(self, store: Store | None = None, bus: EventBus | None = None) -> None:
        self.store = store if store is not None else Store(":memory:")
        self.bus = bus if bus is not None else EventBus()
        self.lock = threading.RLock()
        self.started = time.time()
        self.collections: dict[str, Collection] = {}
        self._latency: dict[str, LatencyStats] = {}
        self._latency_lock = threading.Lock()

    # ------------------------------------------------------------------ state

    def collection(
        self,
        kind: str,
        max_items: int | None = None,
        max_age_s: float | None = None,
        label: str | None = None,
    ) -> Collection:
        """A bounded :class:`Collection` of this service (registered for :meth:`health`)."""
        c = Collection(self.store, kind, max_items=max_items, max_age_s=max_age_s, label=label)
        self.collections[kind] = c
        return c

    # ------------------------------------------------------------------ timing

    @contextmanager
    def timed(self, operation: str) -> Iterator[Timing]:
        """Time a block; the duration goes to ``operation``'s statistics and to ``Timing.ms``.

        Only blocks that finish are counted: a rejected request is not a computation.
        """
        t = Timing(operation)
        yield t
        t.ms = round(t.elapsed_ms(), 3)
        with self._latency_lock:
            self._latency.setdefault(operation, LatencyStats()).add(t.ms)

    def latency(self) -> dict[str, dict[str, float | int | None]]:
        """Per operation: count, mean, p50, p95 and max of recent computation times (ms)."""
        with self._latency_lock:
            return {op: s.summary() for op, s in sorted(self._latency.items())}

    def computations(self) -> int:
        """How many computations finished since start."""
        with self._latency_lock:
            return sum(s.count for s in self._latency.values())

    def mean_computation_ms(self) -> float | None:
        """Mean of the recent computation times over every operation (ms), ``None`` before any."""
        with self._latency_lock:
            xs = [x for s in self._latency.values() for x in s._recent]
        return round(sum(xs) / len(xs), 3) if xs else None

    # ------------------------------------------------------------------ events

    def publish(self, event_type: str, data: dict[str, Any]) -> None:
        """Publish one of this domain's declared events."""
        if event_type not in self.events:
            raise ValueError(
                f"{event_type!r} is not among {type(self).__name__}.events {self.events}"
            )
        self.bus.publish(event_type, data)

    # ------------------------------------------------------------------ health

    def health(self) -> dict[str, Any]:
        """The service's real state: the shared fields, then :meth:`health_details`."""
        out: dict[str, Any] = {
            "status": "healthy",
            "domain": self.domain,
            "uptime_s": round(time.time() - self.started, 3),
            "computations": self.computations(),
            TIMING_KEY.replace("computation_", "mean_computation_"): self.mean_computation_ms(),
            "stored": {kind: c.count() for kind, c in self.collections.items()},
            "operations": self.latency(),
        }
        out.update(self.health_details())
        return out

    def health_details(self) -> dict[str, Any]:
        """Domain fields of :meth:`health` (counts, last results...); override."""
        return {}

    def close(self) -> None:
        """Persist what must survive a restart; the store itself is closed by the runtime."""
