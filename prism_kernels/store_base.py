"""What every store backend shares: the interface, argument checks, JSON and array encoding,
write checks, bounds and the SQL.

A backend (:class:`prism_kernels.store.Store` for SQLite,
:class:`prism_kernels.store_postgres.PostgresStore` for PostgreSQL) subclasses
:class:`StoreBase` and supplies three things: ``_query`` (one statement), ``_write``
(statements in one transaction) and ``close``. :func:`prism_kernels.store.open_store` picks
one from a URL; read that module first.
"""

from __future__ import annotations

import io
import json
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from prism_kernels.errors import InvalidInput, NotFound, PrismError, Unavailable

DEFAULT_MAX_ITEMS = 10_000

#: The largest ``limit``/``offset`` handed to the database (both take 64-bit integers).
_MAX_WINDOW = 2**62

T = TypeVar("T")


@dataclass(frozen=True)
class Bound:
    """How much of one kind is kept: at most ``max_items`` documents, none older than ``max_age_s``."""

    max_items: int | None = DEFAULT_MAX_ITEMS
    max_age_s: float | None = None


class StoreUnavailable(Unavailable):
    """The store cannot be opened or reached: a malformed or unsupported store URL, a database
    that does not answer, refused credentials. The message names the store with its password
    redacted."""


class ReadOnly(PrismError, PermissionError):
    """A write refused because whoever asked for it may only read."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


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


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _dump_doc(kind: str, doc: dict[str, Any]) -> str:
    """The JSON text stored for ``doc`` (ASCII: NaN, infinity and unknown types refused)."""
    try:
        return json.dumps(doc, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(kind, f"cannot be stored as JSON: {exc}") from exc


def _window(limit: int | None, offset: int) -> tuple[int, int] | None:
    """``(limit, offset)`` as the database takes them; ``None`` when the window is past any row."""
    for name, value in (("offset", offset), ("limit", limit)):
        if value is None and name == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InvalidInput(name, f"must be an integer, not {type(value).__name__}")
        if value < 0:
            raise InvalidInput(name, "must not be negative")
    if offset >= _MAX_WINDOW:  # nothing is stored that far anyway
        return None
    return (_MAX_WINDOW if limit is None else min(int(limit), _MAX_WINDOW)), int(offset)


class Statements:
    """The SQL both backends run, spelled for one of them.

    Parameters
    ----------
    table : str
        The documents table.
    seq : str
        The column that orders rows inserted at the same time: SQLite's ``rowid``, an identity
        column on PostgreSQL. A replaced document keeps it (an upsert, not delete and insert).
    param : str
        The driver's parameter marker (``?`` for sqlite3, ``%s`` for psycopg).
    """

    def __init__(self, table: str, seq: str, param: str) -> None:
        def sql(template: str) -> str:
            return template.format(t=table, seq=seq).replace("?", param)

        self.upsert = sql(
            "INSERT INTO {t} (kind, id, created, updated, doc, arrays) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, id) DO UPDATE SET updated = excluded.updated, "
            "doc = excluded.doc, arrays = excluded.arrays"
        )
        self.drop_aged = sql("DELETE FROM {t} WHERE kind = ? AND updated < ?")
        # (kind, kind, k): the k oldest documents, found through the (kind, created) index,
        # so trimming costs O(k log n), not a walk past the newest max_items.
        self.drop_oldest = sql(
            "DELETE FROM {t} WHERE kind = ? AND {seq} IN (SELECT {seq} FROM {t} "
            "WHERE kind = ? ORDER BY created, {seq} LIMIT ?)"
        )
        # Documents per kind, kept in the write's own transaction (see StoreBase).
        self.counts_table = f"{table}_counts"
        self.add_count = sql(
            "INSERT INTO {t}_counts (kind, n) VALUES (?, ?) "
            "ON CONFLICT (kind) DO UPDATE SET n = {t}_counts.n + excluded.n"
        )
        self.get_count = sql("SELECT n FROM {t}_counts WHERE kind = ?")
        self.create_counts = sql(
            "CREATE TABLE {t}_counts (kind TEXT PRIMARY KEY, n BIGINT NOT NULL)"
        )
        self.fill_counts = sql(
            "INSERT INTO {t}_counts SELECT kind, COUNT(*) FROM {t} GROUP BY kind"
        )
        self.doc = sql("SELECT doc FROM {t} WHERE kind = ? AND id = ?")
        self.arrays = sql("SELECT arrays FROM {t} WHERE kind = ? AND id = ?")
        self.exists = sql("SELECT 1 FROM {t} WHERE kind = ? AND id = ?")
        listing = "SELECT id, doc FROM {t} WHERE kind = ? ORDER BY {order} LIMIT ? OFFSET ?"
        self.oldest_first = sql(listing.replace("{order}", "created, {seq}"))
        self.newest_first = sql(listing.replace("{order}", "created DESC, {seq} DESC"))
        self.delete = sql("DELETE FROM {t} WHERE kind = ? AND id = ?")


class Cursorish(Protocol):
    """What a backend's connection offers inside a write: ``execute(sql, params)`` returning
    a cursor (``fetchone``, ``fetchall``, ``rowcount``), as sqlite3 and psycopg both do."""

    def execute(self, sql: str, params: tuple = ...) -> Any: ...


class StoreBase:
    """Documents (JSON-able dicts) plus optional named arrays, keyed by ``(kind, id)``.

    The interface every backend offers, and everything they share: argument checks, JSON
    and array encoding, write checks, bounds and the SQL. A backend supplies :meth:`_query`
    (one statement), :meth:`_write` (statements in one transaction) and :meth:`close`.

    Attributes
    ----------
    path : str
        Where the data lives: a file, ``":memory:"`` or a database URL without its password.
    bounds : dict of str to Bound
        Per-kind bounds; kinds not listed get ``Bound()`` (10,000 documents).

    Notes
    -----
    Thread-safe (the server calls it from executor threads). Ids are strings; integers are
    accepted and converted. A second table holds the number of documents of each kind,
    updated in each write's own transaction: a bound is then checked without counting, and
    only the documents past it are found and dropped (a put costs the same at 100 documents
    as at 100,000). A backend creates that table with :meth:`_create_counts` when it sets up
    its schema, filled from the documents already stored.
    """

    statements: Statements

    def __init__(self, path: str, bounds: dict[str, Bound] | None = None) -> None:
        self.path = path
        self.bounds: dict[str, Bound] = dict(bounds or {})
        self._write_checks: list[Callable[[str], None]] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    # -- what a backend supplies

    def _create_counts(self, db: Cursorish, exists: bool) -> None:
        """Create and fill the per-kind counts unless ``exists`` (call in a transaction that
        no other writer runs beside)."""
        if not exists:
            db.execute(self.statements.create_counts, ())
            db.execute(self.statements.fill_counts, ())

    def _query(self, sql: str, params: tuple) -> list[tuple]:
        """The rows of one statement."""
        raise NotImplementedError

    def _write(self, kind: str, work: Callable[[Cursorish], T]) -> T:
        """``work(connection)`` in one transaction, serialised with every other write of
        ``kind`` (so a bound holds); all or nothing."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection(s) (and the file lock)."""
        raise NotImplementedError

    # -- the interface

    def set_bound(self, kind: str, bound: Bound) -> None:
        self.bounds[kind] = bound

    def add_write_check(self, check: Callable[[str], None]) -> None:
        """Call ``check(kind)`` before every write (``put``, ``delete``); it raises to refuse."""
        self._write_checks.append(check)

    def check_write(self, kind: str) -> None:
        """Run the write checks for ``kind`` now, in the caller's context (they may raise).

        Every write runs them; a write made later by another thread (:mod:`prism_kernels.write_behind`)
        runs them when it is queued, where the context they read (the dashboard session) is."""
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
        self.put_many(kind, [(id, doc, arrays)])

    def put_many(
        self,
        kind: str,
        items: Sequence[tuple[str | int, dict[str, Any], dict[str, np.ndarray] | None]],
    ) -> None:
        """Insert or replace ``(id, doc, arrays)`` documents in one transaction (all or none),
        in order, then apply the kind's bound once: one commit for many rows."""
        self.check_write(kind)
        rows = []
        for id, doc, arrays in items:
            key = str(id)
            if "\x00" in kind or "\x00" in key:
                raise InvalidInput(
                    "id" if "\x00" in key else "kind", "must not contain NUL characters"
                )
            rows.append((key, _dump_doc(kind, doc), _encode_arrays(arrays)))
        if not rows:
            return
        now = time.time()
        bound = self.bounds.get(kind, Bound())
        sql = self.statements

        def work(db: Cursorish) -> None:
            added = 0
            for key, text, blob in rows:
                added += 0 if db.execute(sql.exists, (kind, key)).fetchone() else 1
                db.execute(sql.upsert, (kind, key, now, now, text, blob))
            if bound.max_age_s is not None:
                added -= db.execute(sql.drop_aged, (kind, now - bound.max_age_s)).rowcount
            if added:
                db.execute(sql.add_count, (kind, added))
            if bound.max_items is not None:
                n = db.execute(sql.get_count, (kind,)).fetchone()[0]
                if n > bound.max_items:
                    dropped = db.execute(
                        sql.drop_oldest, (kind, kind, n - bound.max_items)
                    ).rowcount
                    db.execute(sql.add_count, (kind, -dropped))

        self._write(kind, work)

    def _one(self, sql: str, kind: str, id: str | int) -> Any:
        """The first column of the row ``(kind, id)``; raises :class:`NotFound`."""
        key = str(id)
        rows = [] if "\x00" in key else self._query(sql, (kind, key))
        if not rows:
            raise NotFound(kind, id)
        return rows[0][0]

    def get(self, kind: str, id: str | int) -> dict[str, Any]:
        """The document stored under ``(kind, id)``; raises :class:`NotFound`."""
        return json.loads(self._one(self.statements.doc, kind, id))

    def get_arrays(self, kind: str, id: str | int) -> dict[str, np.ndarray]:
        """The arrays stored with ``(kind, id)`` (empty dict when none); raises :class:`NotFound`."""
        return _decode_arrays(self._one(self.statements.arrays, kind, id))

    def exists(self, kind: str, id: str | int) -> bool:
        try:
            self._one(self.statements.exists, kind, id)
        except NotFound:
            return False
        return True

    def list(
        self, kind: str, limit: int | None = None, offset: int = 0, newest_first: bool = False
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(id, doc)`` pairs of a kind, oldest first (newest first with ``newest_first``)."""
        window = _window(limit, offset)
        if window is None:
            return []
        sql = self.statements.newest_first if newest_first else self.statements.oldest_first
        rows = self._query(sql, (kind, *window))
        return [(r[0], json.loads(r[1])) for r in rows]

    def count(self, kind: str) -> int:
        """Documents of ``kind`` (kept with every write: no scan)."""
        rows = self._query(self.statements.get_count, (kind,))
        return int(rows[0][0]) if rows else 0

    def delete(self, kind: str, id: str | int) -> bool:
        """Delete one document; ``True`` when something was deleted."""
        self.check_write(kind)
        key = str(id)
        if "\x00" in key:
            return False
        sql = self.statements

        def work(db: Cursorish) -> bool:
            if db.execute(sql.delete, (kind, key)).rowcount > 0:
                db.execute(sql.add_count, (kind, -1))
                return True
            return False

        return self._write(kind, work)
