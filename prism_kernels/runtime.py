"""The runtime: one store, one event bus and the stateful service of each domain.

Routes (``widgets.server``) and dashboards (``widgets``) in the same process share one
:class:`Runtime`, so a dashboard follows what the API was sent. In a notebook or script,
:func:`get_runtime` gives one on the store the environment names (``$PRISM_STORE_URL``, else
``$PRISM_DATA_DIR``, else in memory).

A service is any class constructed as ``cls(store=..., bus=...)``; the runtime builds it
once, on first use::

    tracker = get_runtime().service(PwsaService)
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from prism_kernels.events import EventBus
from prism_kernels.store import Store, StoreBase

T = TypeVar("T")


class Runtime:
    """Holds the store, the bus and one instance of each service class."""

    def __init__(self, store: StoreBase | None = None, bus: EventBus | None = None) -> None:
        self.store: StoreBase = store if store is not None else Store(":memory:")
        self.bus = bus if bus is not None else EventBus()
        self._services: dict[type, Any] = {}
        self._lock = threading.RLock()

    def service(self, cls: type[T]) -> T:
        """The one instance of ``cls`` in this runtime (built on first use)."""
        with self._lock:
            svc = self._services.get(cls)
            if svc is None:
                svc = cls(store=self.store, bus=self.bus)
                self._services[cls] = svc
            return svc

    def built(self, cls: type[T]) -> T | None:
        """The instance of ``cls`` if it is built already, else ``None``; never waits (another
        service being built holds the lock)."""
        return self._services.get(cls)

    @property
    def services(self) -> dict[type, Any]:
        return dict(self._services)

    def close(self) -> None:
        for svc in self._services.values():
            close = getattr(svc, "close", None)
            if callable(close):
                close()
        self.store.close()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process-wide runtime (created from the environment on first use: the store
    ``$PRISM_STORE_URL`` names, else the SQLite file under ``$PRISM_DATA_DIR``, else memory)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(Store.from_env())
        return _runtime


def set_runtime(runtime: Runtime) -> Runtime:
    """Replace the process-wide runtime (the server does this at start)."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime
    return runtime
