"""The PostgreSQL store: the same documents, arrays, bounds and transactions as the SQLite
one, in a database that several server processes or pods share.

Chosen by ``PRISM_STORE_URL=postgresql://user:password@host:5432/db`` (see
:func:`prism_kernels.store.open_store`). What differs from SQLite, and why:

- No file lock: many processes open one database at once, and each sees the others' writes
  as soon as they are committed.
- The bound of a kind holds across processes: every write takes a transaction-scoped
  advisory lock on its kind first (``pg_advisory_xact_lock``), so writers of one kind take
  turns while writers of different kinds do not wait for each other.
- A small pool of connections (one per thread at work, :data:`DEFAULT_POOL_SIZE` at most)
  instead of one connection behind a lock. A connection the server dropped (a database
  restart) is noticed when it is taken from the pool and replaced.
- Documents are ``TEXT`` (not ``JSONB``, which would reorder keys): what was stored comes
  back exactly; arrays are ``BYTEA``; ``seq`` (an identity column) orders rows created at the
  same instant, as SQLite's ``rowid`` does.
- A lost connection raises :class:`~prism_kernels.store.StoreUnavailable` (a 503 through the
  server); the database rolls back the transaction it interrupted (unless its COMMIT had
  already arrived: then the write is stored, and repeating it is harmless).

psycopg is imported here only, when a PostgreSQL store is opened: importing
``prism_kernels`` never needs it.
"""

from __future__ import annotations

import re
import select
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from prism_kernels.redact import redact_url
from prism_kernels.store_base import (
    Bound,
    Cursorish,
    Statements,
    StoreBase,
    StoreUnavailable,
    T,
)

if TYPE_CHECKING:
    import psycopg

DEFAULT_POOL_SIZE = 8
TABLE = "prism_docs"

#: First key of every advisory lock this module takes (ASCII "PRIS"); the second key is
#: 0 for the schema and a hash of the kind for writes.
_LOCK_SPACE = 0x50524953

_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY,"
    " kind TEXT NOT NULL, id TEXT NOT NULL,"
    " created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL,"
    " doc TEXT NOT NULL, arrays BYTEA,"
    " PRIMARY KEY (kind, id))",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_kind_created ON {TABLE} (kind, created, seq)",
)
_LOCK = "SELECT pg_advisory_xact_lock(%s::int4, %s::int4)"


def _kind_key(kind: str) -> int:
    """A stable signed 32-bit key for ``kind``'s advisory lock (the same in every process)."""
    h = zlib.crc32(kind.encode("utf-8", "surrogatepass"))
    return h - 2**32 if h >= 2**31 else h


def _password(url: str) -> str | None:
    """The password a URL carries (user info or ``password=`` parameter), for scrubbing."""
    try:
        parts = urlsplit(url)
        found = parts.password or (parse_qs(parts.query).get("password") or [None])[0]
    except ValueError:
        return None
    return found or None


class _Pool:
    """At most ``size`` connections, each used by one thread at a time; idle ones are kept."""

    def __init__(self, connect: Callable[[], psycopg.Connection], size: int) -> None:
        self._connect = connect
        self._idle: list[psycopg.Connection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.closed = False

    def _take_idle(self) -> psycopg.Connection | None:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                # An idle connection has nothing to read: if its socket is readable, the
                # server sent a termination notice or closed it (a restart). Drop it.
                # (poll, not select: a server with a thousand WebSockets has descriptors past
                # select's 1024.)
                try:
                    poller = select.poll()
                    poller.register(conn.fileno(), select.POLLIN)
                    stale = conn.closed or bool(poller.poll(0))
                except Exception:  # a descriptor the driver already closed
                    stale = True
                if not stale:
                    return conn
                conn.close()
        return None

    def put_back(self, conn: psycopg.Connection) -> None:
        from psycopg.pq import TransactionStatus

        with self._lock:
            reusable = (
                not self.closed
                and not conn.closed
                and not conn.broken
                and conn.info.transaction_status == TransactionStatus.IDLE
            )
            if reusable:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._slots:  # waits while `size` threads hold one
            if self.closed:
                raise StoreUnavailable("the store is closed")
            conn = self._take_idle() or self._connect()
            try:
                yield conn
            finally:
                self.put_back(conn)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgresStore(StoreBase):
    """Documents and arrays by ``(kind, id)`` in a PostgreSQL database (table ``prism_docs``,
    created when missing).

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/database`` (libpq's URI form; its query
        parameters, such as ``sslmode``, are honoured). Never shown: :attr:`path` is the URL
        with its password redacted.
    bounds : dict of str to Bound, optional
        Per-kind bounds; kinds not listed get ``Bound()`` (10,000 documents).
    pool_size : int
        Most connections open at once (threads beyond it wait for one).
    connect_timeout : int
        Seconds to wait for the database when connecting (unless the URL sets
        ``connect_timeout``).

    Raises
    ------
    StoreUnavailable
        The database cannot be reached, refuses the credentials, or the URL is malformed; the
        message names the redacted URL.
    """

    statements = Statements(table=TABLE, seq="seq", param="%s")

    def __init__(
        self,
        url: str,
        bounds: dict[str, Bound] | None = None,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: int = 10,
    ) -> None:
        super().__init__(redact_url(url), bounds)
        try:
            import psycopg
        except ImportError:
            raise StoreUnavailable(
                f"the PostgreSQL store {self.path} needs psycopg: pip install 'psycopg[binary]'"
            ) from None

        self._psycopg = psycopg
        self._url = re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url)  # no "+driver"
        self._secret = _password(url)
        self._connect_args: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in url:
            self._connect_args["connect_timeout"] = connect_timeout
        if "application_name" not in url:
            self._connect_args["application_name"] = "prism"
        self._pool = _Pool(self._connect, pool_size)
        try:
            with self._pool.connection() as conn:
                self._create_schema(conn)
        except psycopg.Error as exc:  # no right to create the table, a server going away...
            self._pool.close()
            raise self._unavailable(exc, "cannot set up") from None
        except BaseException:
            self._pool.close()
            raise

    def _scrub(self, text: str) -> str:
        """``text`` without the password (raw or percent-decoded) or the raw URL."""
        text = text.replace(self._url, self.path)
        if self._secret:
            for secret in {self._secret, unquote(self._secret)}:
                text = text.replace(secret, "***")
        return text

    def _unavailable(self, exc: Exception, doing: str) -> StoreUnavailable:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return StoreUnavailable(f"{doing} the PostgreSQL store {self.path}: {self._scrub(detail)}")

    def _connect(self) -> psycopg.Connection:
        psycopg = self._psycopg
        try:
            return psycopg.connect(self._url, **self._connect_args)
        except psycopg.Error as exc:
            # `from None`: the driver's exception (and its traceback) never reaches a log.
            raise self._unavailable(exc, "cannot connect to") from None

    def _guard(self, work: Callable[[], T]) -> T:
        """Run ``work``; a lost or refused connection becomes :class:`StoreUnavailable`."""
        try:
            return work()
        except self._psycopg.OperationalError as exc:
            raise self._unavailable(exc, "lost the connection to") from None

    def _create_schema(self, conn: psycopg.Connection) -> None:
        # Several processes may start at once: CREATE ... IF NOT EXISTS can still race on
        # the catalogue, so they take turns.
        with conn.transaction():
            conn.execute(_LOCK, (_LOCK_SPACE, 0))
            for statement in _SCHEMA:
                conn.execute(statement)
            found = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (self.statements.counts_table,)
            ).fetchone()[0]
            self._create_counts(conn, exists=bool(found))

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        with self._pool.connection() as conn:
            return self._guard(lambda: conn.execute(sql, params).fetchall())

    def _write(self, kind: str, work: Callable[[Cursorish], T]) -> T:
        def transaction(conn: psycopg.Connection) -> T:
            with conn.transaction():
                conn.execute(_LOCK, (_LOCK_SPACE, _kind_key(kind)))
                return work(conn)

        with self._pool.connection() as conn:
            return self._guard(lambda: transaction(conn))

    def close(self) -> None:
        self._pool.close()
