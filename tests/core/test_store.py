"""prism_kernels.store: persistence, bounds, atomic writes, on every backend.

The suite runs once on SQLite and once on a real PostgreSQL server (``tests/pgserver.py``,
a new database per test), through the one interface; tests that only make sense for one
backend (the SQLite file lock) say so in their name.
"""

from __future__ import annotations

import os
import sqlite3
import traceback
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.store import (
    Bound,
    ReadOnly,
    Store,
    StoreBase,
    StoreLocked,
    StoreUnavailable,
    open_store,
    redact_url,
)
from tests.pgserver import postgres_db_url  # noqa: F401


@dataclass
class Backend:
    """One backend under test: opens stores on the same data, runs raw SQL on it."""

    name: str
    url: str
    opened: list[StoreBase] = field(default_factory=list)

    def open(self, bounds: dict[str, Bound] | None = None) -> StoreBase:
        """A store on this backend's data (the same data every call, as after a restart)."""
        store = open_store(self.url, bounds=bounds)
        self.opened.append(store)
        return store

    def raw(self, sql: str) -> None:
        """Run ``sql`` on the database directly, beside the store (a fault to inject)."""
        if self.name == "sqlite":
            with closing(sqlite3.connect(self.url.removeprefix("sqlite://"))) as db:
                db.executescript(sql)
        else:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(sql)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Iterator[Backend]:
    """Each backend in turn: a SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        b = Backend("sqlite", f"sqlite://{tmp_path / 'data' / 'prism.sqlite'}")
    else:
        b = Backend("postgresql", request.getfixturevalue("postgres_db_url"))
    yield b
    for store in b.opened:
        store.close()


def test_put_get_list_delete(backend):
    s = backend.open()
    s.put("thing", 1, {"x": 1.5, "name": "one"}, arrays={"m": np.eye(3)})
    s.put("thing", "b", {"x": 2})
    assert s.get("thing", "1") == {"x": 1.5, "name": "one"}
    np.testing.assert_array_equal(s.get_arrays("thing", 1)["m"], np.eye(3))
    assert s.get_arrays("thing", "b") == {}
    assert [i for i, _ in s.list("thing")] == ["1", "b"]
    assert [i for i, _ in s.list("thing", newest_first=True)] == ["b", "1"]
    assert s.exists("thing", 1) and not s.exists("thing", "nope")
    assert s.count("thing") == 2 and s.count("other") == 0
    assert s.delete("thing", "b") and not s.delete("thing", "b")
    with pytest.raises(NotFound):
        s.get("thing", "b")
    with pytest.raises(NotFound):
        s.get_arrays("thing", "b")


def test_documents_come_back_exactly(backend):
    s = backend.open()
    doc = {"z": 1, "a": {"y": [1, 2.5, None, True], "b": "é\u2603\x00"}, "m": 2**63 + 1}
    s.put("k", "d", doc, arrays={"i": np.arange(5, dtype=np.int16), "c": np.array([1 + 2j])})
    back = s.get("k", "d")
    assert back == doc and list(back) == ["z", "a", "m"]  # key order kept (TEXT, not JSONB)
    arrays = s.get_arrays("k", "d")
    assert arrays["i"].dtype == np.int16 and arrays["c"][0] == 1 + 2j
    s.put("k", "np", {"v": np.float64(2.5), "a": np.array([1, 2])})
    assert s.get("k", "np") == {"v": 2.5, "a": [1, 2]}


def test_survives_reopen(backend):
    s = backend.open()
    s.put("k", "id", {"v": [1, 2, 3]}, arrays={"a": np.arange(4.0)})
    s.put("k", "later", {"v": 0})
    s.close()
    s2 = backend.open()
    assert s2.get("k", "id") == {"v": [1, 2, 3]}
    np.testing.assert_array_equal(s2.get_arrays("k", "id")["a"], np.arange(4.0))
    s2.put("k", "newest", {})
    assert [i for i, _ in s2.list("k")] == ["id", "later", "newest"]


def test_count_bound_drops_oldest(backend):
    s = backend.open(bounds={"k": Bound(max_items=3)})
    for i in range(5):
        s.put("k", i, {"i": i})
    assert [i for i, _ in s.list("k")] == ["2", "3", "4"]
    s.put("other", 1, {})  # other kinds untouched
    assert s.count("k") == 3 and s.count("other") == 1
    s.set_bound("k", Bound(max_items=1))
    s.put("k", 2, {"i": 22})  # a replaced document keeps its age: it is the oldest here
    assert s.list("k") == [("4", {"i": 4})]


def test_age_bound(backend, monkeypatch):
    import prism_kernels.store as store_mod

    clock = [1000.0]
    monkeypatch.setattr(store_mod.time, "time", lambda: clock[0])
    s = backend.open(bounds={"k": Bound(max_items=None, max_age_s=10)})
    s.put("k", "old", {})
    s.put("k", "refreshed", {})
    clock[0] += 8
    s.put("k", "refreshed", {"v": 2})  # a replace renews the age (not the creation order)
    clock[0] += 5
    s.put("k", "new", {})
    assert [i for i, _ in s.list("k")] == ["refreshed", "new"]


def test_same_instant_keeps_insertion_order(backend, monkeypatch):
    import prism_kernels.store as store_mod

    monkeypatch.setattr(store_mod.time, "time", lambda: 5000.0)
    s = backend.open(bounds={"k": Bound(max_items=3)})
    for name in ["c", "a", "b"]:
        s.put("k", name, {})
    s.put("k", "c", {"v": 2})  # replaced: keeps its place
    assert [i for i, _ in s.list("k")] == ["c", "a", "b"]
    assert [i for i, _ in s.list("k", newest_first=True)] == ["b", "a", "c"]
    s.put("k", "d", {})
    assert [i for i, _ in s.list("k")] == ["a", "b", "d"]  # the first inserted went first


def test_failed_write_keeps_previous_value(backend):
    s = backend.open()
    s.put("k", "x", {"v": 1})
    with pytest.raises(InvalidInput):
        s.put("k", "x", {"v": float("nan")})  # not JSON: refused before anything is written
    with pytest.raises(InvalidInput):
        s.put("k", "x", {"v": object()})
    with pytest.raises(InvalidInput, match="id"):
        s.put("k", "x\x00y", {"v": 2})
    assert s.get("k", "x") == {"v": 1}
    assert not s.exists("k", "x\x00y") and not s.delete("k", "x\x00y")


def test_a_write_interrupted_midway_leaves_what_was_there(backend):
    """The database refuses the bound's delete, after the new row is in: all is rolled back."""
    s = backend.open(bounds={"k": Bound(max_items=1)})
    s.put("k", "x", {"v": 1})
    if backend.name == "sqlite":
        backend.raw(
            "CREATE TRIGGER boom BEFORE DELETE ON docs BEGIN SELECT RAISE(ABORT, 'boom'); END;"
        )
    else:
        backend.raw(
            "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'boom'; END $$; "
            "CREATE TRIGGER boom BEFORE DELETE ON prism_docs FOR EACH ROW EXECUTE FUNCTION boom()"
        )
    with pytest.raises(Exception, match="boom"):
        s.put("k", "y", {"v": 2})  # inserted, then the delete of x fails
    assert s.list("k") == [("x", {"v": 1})]
    backend.raw("DROP TRIGGER boom" + ("" if backend.name == "sqlite" else " ON prism_docs"))
    s.put("k", "y", {"v": 2})  # the store goes on
    assert s.list("k") == [("y", {"v": 2})]


def test_replace_keeps_created_order(backend):
    s = backend.open()
    s.put("k", "a", {"v": 1})
    s.put("k", "b", {"v": 2})
    s.put("k", "a", {"v": 3})
    assert s.list("k") == [("a", {"v": 3}), ("b", {"v": 2})]


def test_list_with_extreme_offsets(backend):
    s = backend.open()
    s.put("k", "a", {})
    s.put("k", "b", {})
    assert s.list("k", offset=10**21) == []
    assert s.list("k", offset=2**62) == [] and s.list("k", offset=2**63 - 1) == []
    assert [i for i, _ in s.list("k", limit=10**21)] == ["a", "b"]
    assert [i for i, _ in s.list("k", limit=2**63, offset=1)] == ["b"]
    assert [i for i, _ in s.list("k", limit=np.int64(1), offset=np.int64(1))] == ["b"]
    assert s.list("k", limit=0) == []
    for bad in (
        {"offset": -1},
        {"limit": -1},
        {"limit": -(10**30)},
        {"offset": 1.5},
        {"limit": "2"},
    ):
        with pytest.raises(InvalidInput):
            s.list("k", **bad)


def test_write_checks_refuse_before_anything_is_written(backend):
    s = backend.open()
    s.put("k", "a", {"v": 1})
    refused: list[str] = []

    def check(kind: str) -> None:
        refused.append(kind)
        raise ReadOnly(kind, "read only")

    s.add_write_check(check)
    with pytest.raises(ReadOnly):
        s.put("k", "b", {"v": 2})
    with pytest.raises(ReadOnly):
        s.delete("k", "a")
    assert refused == ["k", "k"] and s.count("k") == 1 and s.get("k", "a") == {"v": 1}


def test_the_store_can_be_used_from_many_threads(backend):
    from concurrent.futures import ThreadPoolExecutor

    s = backend.open()

    def work(t: int) -> int:
        for i in range(20):
            s.put("k", f"{t}-{i}", {"t": t, "i": i})
            assert s.get("k", f"{t}-{i}") == {"t": t, "i": i}
        return len(s.list("k"))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(6)))
    assert s.count("k") == 120


# ---------------------------------------------------------------- choosing a backend


def test_open_store_reads_the_url(tmp_path):
    assert open_store().path == ":memory:"
    assert open_store("sqlite:///:memory:").path == ":memory:"
    s = open_store(None, tmp_path)
    assert s.path == str(tmp_path / "prism.sqlite") and isinstance(s, Store)
    s.close()
    s = open_store(f"sqlite://{tmp_path / 'x' / 'y.sqlite'}", tmp_path / "unused")
    assert Path(s.path) == tmp_path / "x" / "y.sqlite" and s.path in repr(s)
    s.close()
    for bad in ("mysql://u:hunter2@h/db", "sqlite:relative.db", "sqlite://host/x.db"):
        with pytest.raises(StoreUnavailable) as e:
            open_store(bad)
        assert "hunter2" not in str(e.value) and "sqlite:///" in str(e.value)


def test_from_env_honours_prism_store_url(tmp_path, monkeypatch):
    monkeypatch.delenv("PRISM_STORE_URL", raising=False)
    monkeypatch.delenv("PRISM_DATA_DIR", raising=False)
    assert Store.from_env().path == ":memory:"
    monkeypatch.setenv("PRISM_DATA_DIR", str(tmp_path / "d"))
    s = Store.from_env()
    assert s.path == str(tmp_path / "d" / "prism.sqlite")
    s.close()
    monkeypatch.setenv("PRISM_STORE_URL", f"sqlite://{tmp_path / 'e.sqlite'}")
    s = Store.from_env()
    assert s.path == str(tmp_path / "e.sqlite")
    s.close()
    monkeypatch.setenv("PRISM_STORE_URL", "redis://localhost")
    with pytest.raises(StoreUnavailable):
        Store.from_env()


def test_store_url_errors_hide_the_password_in_tracebacks():
    secret = "tiger".upper()  # built, so the test's own source line in the traceback hides it
    url = f"oracle://scott:{secret}@db/orcl"
    with pytest.raises(StoreUnavailable) as e:
        open_store(url)
    text = "".join(traceback.format_exception(e.value))
    assert secret not in text and "scott:***@db" in text


def test_an_unusable_sqlite_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="cannot open the data store"):
        open_store(f"sqlite://{blocker / 'sub' / 'prism.sqlite'}")


def test_redact_url_hides_passwords():
    assert redact_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert (
        redact_url("postgresql://u:a@b/c@h/db?sslmode=require")
        == "postgresql://u:***@h/db?sslmode=require"
    )
    assert (
        redact_url("postgresql://h/db?user=u&password=s3cret&x=1")
        == "postgresql://h/db?user=u&password=***&x=1"
    )
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("sqlite:///tmp/a.sqlite") == "sqlite:///tmp/a.sqlite"


# ---------------------------------------------------------------- SQLite only


def test_sqlite_a_file_store_is_locked_while_open(tmp_path):
    path = tmp_path / "prism.sqlite"
    s = Store(path)
    with pytest.raises(StoreLocked) as e:
        Store(path)
    assert str(path) in str(e.value) and f"pid {os.getpid()}" in str(e.value)
    assert "--data-dir" in str(e.value)
    s.close()
    Store(path).close()  # released on close
    Store(":memory:")  # memory stores are never locked
    unlocked = Store(tmp_path / "other.sqlite", lock=False)
    Store(tmp_path / "other.sqlite", lock=False).close()
    unlocked.close()


def _true_count(backend: Backend, kind: str) -> int:
    """COUNT(*) straight from the database (what the kept counts must equal)."""
    table = "docs" if backend.name == "sqlite" else "prism_docs"
    if backend.name == "sqlite":
        with closing(sqlite3.connect(backend.url.removeprefix("sqlite://"))) as db:
            return db.execute(f"SELECT COUNT(*) FROM {table} WHERE kind = ?", (kind,)).fetchone()[0]
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE kind = %s", (kind,)).fetchone()[0]


def test_kept_counts_equal_the_documents_through_every_kind_of_write(backend, rng):
    store = backend.open({"b": Bound(max_items=7)})
    for step in range(300):
        kind = "b" if rng.random() < 0.5 else "free"
        key = int(rng.integers(0, 15))
        if rng.random() < 0.25:
            store.delete(kind, key)
        else:
            store.put(kind, key, {"step": step})
        if step % 25 == 0:
            for k in ("b", "free"):
                assert store.count(k) == _true_count(backend, k) == len(store.list(k))
    assert store.count("b") == 7 == _true_count(backend, "b")
    assert store.count("never-written") == 0
    # a bound lowered between runs is applied by the next write
    store.close()
    store = backend.open({"free": Bound(max_items=3)})
    newest = [i for i, _ in store.list("free", newest_first=True)][:2]
    store.put("free", "new", {})
    assert store.count("free") == 3 == _true_count(backend, "free")
    assert [i for i, _ in store.list("free", newest_first=True)] == ["new", *newest]


def test_counts_are_made_for_a_file_written_before_they_existed(tmp_path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as db:  # the schema before the counts table
        db.execute(
            "CREATE TABLE docs (kind TEXT NOT NULL, id TEXT NOT NULL, created REAL NOT NULL, "
            "updated REAL NOT NULL, doc TEXT NOT NULL, arrays BLOB, PRIMARY KEY (kind, id))"
        )
        db.executemany(
            "INSERT INTO docs VALUES (?, ?, ?, ?, '{}', NULL)",
            [("a", str(i), float(i), float(i)) for i in range(12)] + [("b", "x", 1.0, 1.0)],
        )
        db.commit()
    store = open_store(f"sqlite://{path}", bounds={"a": Bound(max_items=10)})
    try:
        assert store.count("a") == 12 and store.count("b") == 1
        store.put("a", "new", {})
        assert store.count("a") == 10 and [i for i, _ in store.list("a")][:2] == ["3", "4"]
    finally:
        store.close()


def test_put_many_is_one_transaction_in_order_with_the_bound_once(backend):
    s = backend.open(bounds={"k": Bound(max_items=4)})
    s.put("k", "old", {"i": -1})
    s.put_many("k", [(i, {"i": i}, None) for i in range(3)] + [(1, {"i": 11}, None)])
    assert s.list("k") == [("old", {"i": -1}), ("0", {"i": 0}), ("1", {"i": 11}), ("2", {"i": 2})]
    assert s.count("k") == 4
    s.put_many("k", [(7, {"i": 7}, None), (8, {"i": 8}, None)])  # two past the bound
    assert [i for i, _ in s.list("k")] == ["1", "2", "7", "8"] and s.count("k") == 4
    with pytest.raises(InvalidInput):  # one bad id: nothing of the batch is written
        s.put_many("k", [(9, {"i": 9}, None), ("bad\x00id", {}, None)])
    assert not s.exists("k", 9) and s.count("k") == 4
    s.put_many("k", [])  # nothing to do
    assert s.count("k") == 4
