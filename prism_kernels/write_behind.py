"""Store writes taken off a request's path: queued by the caller, written in order by one thread.

For bookkeeping rows that a request must not wait for, such as the LLM usage and cache rows:
the request answers from memory (the usage ledger, the response cache) and its rows reach the
store a moment later, each collection's in the order they were queued. LiteLLM's proxy batches
its spend logs the same way, every ``proxy_batch_write_at`` seconds; a row waits milliseconds
here.

- The store's write checks (a readonly dashboard session may not store) run when a row is
  queued, in the caller's context, and raise there as a direct write would.

- :meth:`WriteBehind.flush` waits until everything queued so far is written.
- :meth:`WriteBehind.close` flushes, then stops the thread. Call it before the store closes: a
  graceful stop loses nothing.
- Only a crash between a request's answer and its write (milliseconds) loses that request's
  rows.
- A row that fails to write is logged with its kind and id, and counted in ``failed``. It
  never fails the request that queued it, which has already answered.
- At most ``max_pending`` rows wait. Beyond that, :meth:`WriteBehind.put` writes in the
  caller's thread (back-pressure), so memory stays bounded when the store is slow.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Protocol

log = logging.getLogger("prism.store")

__all__ = ["WriteBehind"]


class _Writable(Protocol):
    kind: str

    def check_write(self) -> None: ...

    def put(self, id: str | int, doc: dict[str, Any]) -> None: ...

    def put_many(self, items: list[tuple[str | int, dict[str, Any]]]) -> None: ...


class WriteBehind:
    """One writer thread for documents of :class:`~prism_kernels.service.Collection` objects.

    Parameters
    ----------
    name : str
        The thread's name (shown by ``py-spy`` and in logs).
    max_pending : int
        Rows that may wait at once; a :meth:`put` beyond this writes at once, in the caller.
    linger_s : float
        How long the thread lets rows gather before it writes them, each collection's in one
        transaction: one commit (and one turn holding the interpreter) for many rows.
    """

    def __init__(
        self, name: str = "prism-write-behind", max_pending: int = 10_000, linger_s: float = 0.02
    ) -> None:
        self.name = name
        self.max_pending = int(max_pending)
        self.linger_s = float(linger_s)
        self.written = 0
        self.failed = 0
        self._pending: deque[tuple[_Writable, str | int, dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._busy = 0  # rows the thread took off the queue and is writing
        self._closed = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"WriteBehind({self.name!r}, pending={len(self._pending)}, written={self.written})"

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        return len(self._pending) + self._busy

    def put(self, collection: _Writable, doc_id: str | int, doc: dict[str, Any]) -> None:
        """Queue ``collection.put(doc_id, doc)``; written in the caller when closed or full. The
        store's write checks run here, in the caller's context (they may raise)."""
        collection.check_write()
        with self._cond:
            if not self._closed and len(self._pending) < self.max_pending:
                self._pending.append((collection, doc_id, doc))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self._thread.start()
                if len(self._pending) == 1:
                    # Only the first row wakes the thread: it then lingers for the rest. Waking
                    # it for every row would make it take the GIL from the caller (the server's
                    # event loop) once per row, to go back to sleep.
                    self._cond.notify_all()
                return
        self._write(collection, doc_id, doc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row queued so far is written; False if ``timeout`` (s) ran out."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread (idempotent). Later puts write at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _write(self, collection: _Writable, doc_id: str | int, doc: dict[str, Any]) -> None:
        try:
            collection.put(doc_id, doc)
        except Exception:  # the request that queued it has answered: log, count, go on
            log.exception("a queued %s row (%s) was not written", collection.kind, doc_id)
            with self._cond:
                self.failed += 1
        else:
            with self._cond:
                self.written += 1

    def _write_batch(self, batch: list[tuple[_Writable, str | int, dict[str, Any]]]) -> None:
        """Each collection's rows in one transaction, in order; row by row if that fails (so
        one bad row costs only itself)."""
        groups: dict[int, tuple[_Writable, list[tuple[str | int, dict[str, Any]]]]] = {}
        for collection, doc_id, doc in batch:
            groups.setdefault(id(collection), (collection, []))[1].append((doc_id, doc))
        for collection, items in groups.values():
            try:
                collection.put_many(items)
            except Exception:
                for doc_id, doc in items:
                    self._write(collection, doc_id, doc)
            else:
                with self._cond:
                    self.written += len(items)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:  # closed and drained
                    self._cond.notify_all()
                    return
                if not self._closed and self.linger_s > 0:  # let rows gather (a close cuts it)
                    self._cond.wait_for(lambda: self._closed, self.linger_s)
                batch = list(self._pending)
                self._pending.clear()
                self._busy = len(batch)
            self._write_batch(batch)
            with self._cond:
                self._busy = 0
                self._cond.notify_all()
