"""Persistence: JSON documents and NumPy arrays by kind and id, in SQLite or PostgreSQL.

:func:`open_store` picks the backend from a URL (``PRISM_STORE_URL``):

- nothing: one SQLite file, ``$PRISM_DATA_DIR/prism.sqlite`` (in memory without a data
  directory), the embedded default;
- ``sqlite:///abs/path/prism.sqlite`` or ``sqlite:///:memory:``: that SQLite file;
- ``postgresql://user:password@host:5432/db``: a PostgreSQL database that several server
  processes or pods share (:class:`~prism_kernels.store_postgres.PostgresStore`).

Both backends behave the same (:class:`~prism_kernels.store_base.StoreBase`, in
``store_base.py``, holds what they share, the SQL included):

- Each kind is bounded (count and/or age): the oldest documents of a kind (by creation time)
  are dropped when it grows past its bound, so a long-running server does not grow without
  limit. The bound holds with several writers at once.
- Every write is one transaction: an interrupted or failed write leaves what was stored before.
- Replacing a document keeps its creation time and its place in the listing; listings are in
  creation order, ties in insertion order.
- Write checks (:meth:`StoreBase.add_write_check`) run before every write; the server uses one to
  refuse writes made for a dashboard opened with a readonly key (:class:`ReadOnly`).

A SQLite file store uses WAL (readers do not block the writer; a crash mid-write loses nothing
committed) and holds an exclusive lock (``<file>.lock``, an ``flock``) for as long as it is
open: a second process (a second server) opening the same file gets :class:`StoreLocked`,
which names the holder, instead of two in-memory states diverging over one file. The
operating system drops the lock when the holder exits, even on ``kill -9``. PostgreSQL takes
no such lock: sharing one database between processes is its purpose.

A store that cannot be opened (a malformed URL, an unreachable database, refused credentials)
raises :class:`StoreUnavailable`. Passwords never appear in messages or in ``repr``:
:func:`redact_url` replaces them with ``***``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prism_kernels.errors import PrismError
from prism_kernels.redact import redact_url
from prism_kernels.store_base import (
    DEFAULT_MAX_ITEMS,
    Bound,
    Cursorish,
    ReadOnly,
    Statements,
    StoreBase,
    StoreUnavailable,
    T,
)

__all__ = [
    "DEFAULT_MAX_ITEMS",
    "Bound",
    "FileLock",
    "ReadOnly",
    "SQLiteStore",
    "Store",
    "StoreBase",
    "StoreLocked",
    "StoreUnavailable",
    "open_store",
    "redact_url",
]

try:
    import fcntl
except ImportError:  # Windows: no flock; the store is then not locked
    fcntl = None  # type: ignore[assignment]


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


class Store(StoreBase):
    """The SQLite store: one file (or ``":memory:"``), the embedded default.

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
    One connection guarded by a lock.
    """

    statements = Statements(table="docs", seq="rowid", param="?")

    def __init__(
        self,
        path: str | Path = ":memory:",
        bounds: dict[str, Bound] | None = None,
        lock: bool = True,
    ) -> None:
        super().__init__(str(path), bounds)
        self._file_lock: FileLock | None = None
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                if lock:
                    self._file_lock = FileLock(Path(self.path + ".lock"), self.path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open the data store {self.path}: {exc}") from None
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS docs (kind TEXT NOT NULL, id TEXT NOT NULL, "
                "created REAL NOT NULL, updated REAL NOT NULL, doc TEXT NOT NULL, arrays BLOB, "
                "PRIMARY KEY (kind, id))"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS docs_kind_created ON docs (kind, created)")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                found = self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (self.statements.counts_table,),
                ).fetchone()
                self._create_counts(self._db, exists=found is not None)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except BaseException as exc:
            if self._file_lock is not None:
                self._file_lock.release()
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"cannot open the data store {self.path}: {exc}") from None
            raise

    @classmethod
    def from_env(cls) -> StoreBase:
        """The store ``$PRISM_STORE_URL`` names, else the SQLite file under ``$PRISM_DATA_DIR``
        (in memory when neither is set)."""
        data_dir = os.environ.get("PRISM_DATA_DIR")
        return open_store(os.environ.get("PRISM_STORE_URL"), Path(data_dir) if data_dir else None)

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _write(self, kind: str, work: Callable[[Cursorish], T]) -> T:
        with self._lock:  # one connection: the lock serialises every write, of any kind
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._file_lock is not None:
                self._file_lock.release()
                self._file_lock = None


#: The SQLite store under its backend's name (``Store`` is the historical one).
SQLiteStore = Store


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite://") :] if url.lower().startswith("sqlite://") else None
    if rest in ("", "/:memory:"):
        return ":memory:"
    if rest is None or not rest.startswith("/") or "?" in rest:
        raise StoreUnavailable(
            f"unsupported SQLite store URL {redact_url(url)!r}: use sqlite:///absolute/path/"
            "prism.sqlite or sqlite:///:memory:"
        )
    return rest


def open_store(
    url: str | None = None,
    data_dir: Path | None = None,
    *,
    bounds: dict[str, Bound] | None = None,
    lock: bool = True,
) -> StoreBase:
    """The store a URL names (``PRISM_STORE_URL``).

    Parameters
    ----------
    url : str, optional
        ``sqlite:///abs/path/prism.sqlite``, ``sqlite:///:memory:`` or ``postgresql://user:
        password@host:port/db`` (``postgres://`` and ``postgresql+psycopg://`` too; libpq's
        query parameters such as ``sslmode`` are honoured). ``None`` or empty: the SQLite file ``data_dir/prism.sqlite``,
        in memory without a ``data_dir``.
    data_dir : Path, optional
        Where the default SQLite file lives; unused when ``url`` is given.
    bounds : dict of str to Bound, optional
        Per-kind bounds (kinds not listed keep 10,000 documents).
    lock : bool
        SQLite files only: hold ``<file>.lock`` while open (:class:`StoreLocked` otherwise).

    Raises
    ------
    StoreUnavailable
        Unsupported URL, database unreachable, credentials refused (password redacted).
    StoreLocked
        Another open store holds the SQLite file.
    """
    if not url:
        path = Path(data_dir) / "prism.sqlite" if data_dir is not None else ":memory:"
        return Store(path, bounds, lock)
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        return Store(_sqlite_path(url), bounds, lock)
    if scheme.partition("+")[0] in ("postgresql", "postgres"):  # SQLAlchemy's "+psycopg" too
        from prism_kernels.store_postgres import PostgresStore

        return PostgresStore(url, bounds)
    raise StoreUnavailable(
        f"unsupported store URL {redact_url(url)!r}: use sqlite:///absolute/path/prism.sqlite, "
        "sqlite:///:memory: or postgresql://user:password@host:5432/database"
    )
