"""Persistence: JSON documents and NumPy arrays by kind and id, in one SQLite file.

The default store lives at ``$PRISM_DATA_DIR/prism.sqlite`` (WAL journal, so readers do
not block the writer and a crash mid-write loses nothing committed); ``":memory:"`` is for
tests and notebooks. Each kind is bounded (count and/or age): the oldest documents of a
kind are dropped when it grows past its bound, so a long-running server does not grow
without limit.

Every write is one transaction: an interrupted or failed write leaves what was stored before.

A file store holds an exclusive lock (``<file>.lock``, an ``flock``) for as long as it is open:
a second process (a second server) opening the same file gets :class:`StoreLocked`, which
names the holder, instead of two in-memory states diverging over one file. The operating
system drops the lock when the holder exits, even on ``kill -9``.

Write checks (:meth:`Store.add_write_check`) run before every write; the server uses one to
refuse writes made for a dashboard opened with a readonly key (:class:`ReadOnly`).
"""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prism_kernels.errors import InvalidInput, NotFound, PrismError

try:
    import fcntl
except ImportError:  # Windows: no flock; the store is then not locked
    fcntl = None  # type: ignore[assignment]

DEFAULT_MAX_ITEMS = 10_000


@dataclass(frozen=True)
class Bound:
    """How much of one kind is kept: at most ``max_items`` documents, none older than ``max_age_s``."""

    max_items: int | None = DEFAULT_MAX_ITEMS
    max_age_s: float | None = None


class StoreLocked(PrismError, RuntimeError):
    """The store file is held by another open store (another server, most likely)."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(
            f"the data store {path} is already in use (held by {holder}): is another PRISM "
            "server running on this data directory? Stop it, or give this one another data "
            "directory (--data-dir / PRISM_DATA_DIR)"
        )


class ReadOnly(PrismError, PermissionError):
    """A write refused because whoever asked for it may only read."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path`` that records its holder in the file.

    Raises :class:`StoreLocked` naming the holder (pid, host, start time) when another open
    file description holds it, in this process or another.
    """

    def __init__(self, path: Path, locked_path: str) -> None:
        self.path = path
        self._fd: int | None = None
        if fcntl is None:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise StoreLocked(locked_path, holder) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {started}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _encode_arrays(arrays: dict[str, np.ndarray] | None) -> bytes | None:
    if not arrays:
        return None
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _decode_arrays(blob: bytes | None) -> dict[str, np.ndarray]:
    if not blob:
        return {}
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class Store:
    """Documents (JSON-able dicts) plus optional named arrays, keyed by ``(kind, id)``.

    Parameters
    ----------
    path : str or Path
        SQLite file, or ``":memory:"``. Parent folders are created.
    bounds : dict of str to Bound, optional
        Per-kind bounds; kinds not listed get ``Bound()`` (10,000 documents).

    lock : bool
        Hold ``<file>.lock`` while open (file stores only); :class:`StoreLocked` when another
        open store holds it.

    Notes
    -----
    Thread-safe: one connection guarded by a lock (the server calls it from executor
    threads). Ids are strings; integers are accepted and converted.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        bounds: dict[str, Bound] | None = None,
        lock: bool = True,
    ) -> None:
        self.path = str(path)
        self._file_lock: FileLock | None = None
        self._write_checks: list[Callable[[str], None]] = []
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if lock:
                self._file_lock = FileLock(Path(self.path + ".lock"), self.path)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except BaseException:
            if self._file_lock is not None:
                self._file_lock.release()
            raise
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (kind TEXT NOT NULL, id TEXT NOT NULL, "
            "created REAL NOT NULL, updated REAL NOT NULL, doc TEXT NOT NULL, arrays BLOB, "
            "PRIMARY KEY (kind, id))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS docs_kind_created ON docs (kind, created)")
        self.bounds: dict[str, Bound] = dict(bounds or {})

    @classmethod
    def from_env(cls) -> Store:
        """The store under ``$PRISM_DATA_DIR`` (in memory when unset)."""
        data_dir = os.environ.get("PRISM_DATA_DIR")
        if not data_dir:
            return cls(":memory:")
        return cls(Path(data_dir) / "prism.sqlite")

    def set_bound(self, kind: str, bound: Bound) -> None:
        self.bounds[kind] = bound

    def add_write_check(self, check: Callable[[str], None]) -> None:
        """Call ``check(kind)`` before every write (``put``, ``delete``); it raises to refuse."""
        self._write_checks.append(check)

    def _check_write(self, kind: str) -> None:
        for check in self._write_checks:
            check(kind)

    def put(
        self,
        kind: str,
        id: str | int,
        doc: dict[str, Any],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Insert or replace one document (and its arrays) atomically, then apply the kind's bound."""
        self._check_write(kind)
        try:
            text = json.dumps(doc, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(kind, f"cannot be stored as JSON: {exc}") from exc
        blob = _encode_arrays(arrays)
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT created FROM docs WHERE kind=? AND id=?", (kind, str(id))
                ).fetchone()
                created = row[0] if row else now
                self._db.execute(
                    "INSERT OR REPLACE INTO docs (kind, id, created, updated, doc, arrays) VALUES (?,?,?,?,?,?)",
                    (kind, str(id), created, now, text, blob),
                )
                self._enforce_bound(kind, now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _enforce_bound(self, kind: str, now: float) -> None:
        bound = self.bounds.get(kind, Bound())
        if bound.max_age_s is not None:
            self._db.execute(
                "DELETE FROM docs WHERE kind=? AND updated < ?", (kind, now - bound.max_age_s)
            )
        if bound.max_items is not None:
            self._db.execute(
                "DELETE FROM docs WHERE kind=? AND rowid NOT IN (SELECT rowid FROM docs WHERE kind=? "
                "ORDER BY created DESC, rowid DESC LIMIT ?)",
                (kind, kind, bound.max_items),
            )

    def get(self, kind: str, id: str | int) -> dict[str, Any]:
        """The document stored under ``(kind, id)``; raises :class:`NotFound`."""
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM docs WHERE kind=? AND id=?", (kind, str(id))
            ).fetchone()
        if row is None:
            raise NotFound(kind, id)
        return json.loads(row[0])

    def get_arrays(self, kind: str, id: str | int) -> dict[str, np.ndarray]:
        """The arrays stored with ``(kind, id)`` (empty dict when none); raises :class:`NotFound`."""
        with self._lock:
            row = self._db.execute(
                "SELECT arrays FROM docs WHERE kind=? AND id=?", (kind, str(id))
            ).fetchone()
        if row is None:
            raise NotFound(kind, id)
        return _decode_arrays(row[0])

    def exists(self, kind: str, id: str | int) -> bool:
        with self._lock:
            return (
                self._db.execute(
                    "SELECT 1 FROM docs WHERE kind=? AND id=?", (kind, str(id))
                ).fetchone()
                is not None
            )

    def list(
        self, kind: str, limit: int | None = None, offset: int = 0, newest_first: bool = False
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(id, doc)`` pairs of a kind, oldest first (newest first with ``newest_first``)."""
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInput("offset" if offset < 0 else "limit", "must not be negative")
        if offset >= 2**62:  # SQLite integers are 64-bit: nothing is stored that far anyway
            return []
        if limit is not None:
            limit = min(int(limit), 2**62)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, doc FROM docs WHERE kind=? ORDER BY "
                + ("created DESC, rowid DESC" if newest_first else "created, rowid")
                + " LIMIT ? OFFSET ?",
                (kind, -1 if limit is None else int(limit), int(offset)),
            ).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def count(self, kind: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM docs WHERE kind=?", (kind,)).fetchone()[0]

    def delete(self, kind: str, id: str | int) -> bool:
        """Delete one document; ``True`` when something was deleted."""
        self._check_write(kind)
        with self._lock:
            cur = self._db.execute("DELETE FROM docs WHERE kind=? AND id=?", (kind, str(id)))
        return cur.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._file_lock is not None:
                self._file_lock.release()
                self._file_lock = None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
