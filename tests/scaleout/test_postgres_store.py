"""The PostgreSQL store beyond the shared suite (``tests/core/test_store.py`` runs that on both
backends): several store objects (processes) on one database, concurrent writers and the
bound, a write whose connection dies midway, a database restart, redacted errors, and real
``prism serve`` processes on ``PRISM_STORE_URL``.

Everything runs against a real PostgreSQL server (``tests/pgserver.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from prism_kernels.store import Bound, StoreUnavailable, open_store
from prism_kernels.store_postgres import PostgresStore
from tests.apiutil import ok
from tests.pgserver import postgres_db_url, start_postgres  # noqa: F401
from tests.serverutil import PrismServer, free_port


def test_two_stores_on_one_database_see_each_others_writes(postgres_db_url):  # noqa: F811
    a = open_store(postgres_db_url)
    # No file lock: sharing the database is the point (SQLAlchemy's spelling is taken too).
    b = open_store(postgres_db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        assert isinstance(a, PostgresStore) and isinstance(b, PostgresStore)
        a.put("k", "x", {"by": "a"})
        assert b.get("k", "x") == {"by": "a"}
        b.put("k", "y", {"by": "b"})
        b.put("k", "x", {"by": "b"})  # a replace from the other side keeps x first
        assert a.list("k") == [("x", {"by": "b"}), ("y", {"by": "b"})]
        assert b.delete("k", "x") and not a.exists("k", "x") and not a.delete("k", "x")
    finally:
        a.close()
        b.close()


def test_the_bound_holds_with_concurrent_writers(postgres_db_url):  # noqa: F811
    """Eight threads on two store objects write one bounded kind: no reader ever sees more
    than the bound, and what is left is the newest of each writer."""
    bounds = {"k": Bound(max_items=5)}
    stores = [open_store(postgres_db_url, bounds=bounds) for _ in range(2)]
    watcher = open_store(postgres_db_url)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(watcher.count("k"))

    def write(n: int) -> None:
        for i in range(25):
            stores[n % 2].put("k", f"{n}-{i}", {"n": n, "i": i})

    thread = threading.Thread(target=watch)
    thread.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, range(8)))
    finally:
        done.set()
        thread.join()
    kept = [doc for _, doc in watcher.list("k")]
    for s in [*stores, watcher]:
        s.close()
    assert len(seen) > 1 and max(seen) <= 5
    assert len(kept) == 5
    for n in {d["n"] for d in kept}:  # a writer's documents are created in order: its newest stay
        mine = sorted(d["i"] for d in kept if d["n"] == n)
        assert mine == list(range(25 - len(mine), 25))


def test_a_write_whose_connection_dies_midway_leaves_what_was_there(postgres_db_url):  # noqa: F811
    """The write has replaced ``x`` and waits to drop ``old`` (row-locked by another session)
    when its connection is terminated: the database rolls the whole write back."""
    import psycopg

    s = open_store(postgres_db_url, bounds={"k": Bound(max_items=2)})
    s.put("k", "old", {"v": 0})
    s.put("k", "x", {"v": 1})
    s.set_bound("k", Bound(max_items=1))
    errors: list[BaseException] = []

    def write() -> None:
        try:
            s.put("k", "x", {"v": 2})
        except BaseException as exc:  # noqa: BLE001 - looked at below
            errors.append(exc)

    with (
        psycopg.connect(postgres_db_url, autocommit=True) as holder,
        psycopg.connect(postgres_db_url, autocommit=True) as admin,
    ):
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM prism_docs WHERE kind = 'k' AND id = 'old' FOR UPDATE")
        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.monotonic() + 10
        pid = None
        while pid is None and time.monotonic() < deadline:
            row = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'DELETE%'"
            ).fetchone()
            pid = row[0] if row else time.sleep(0.02)
        assert pid is not None, "the write never reached its delete"
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        writer.join(10)
        holder.execute("ROLLBACK")
    assert len(errors) == 1 and isinstance(errors[0], StoreUnavailable), errors
    assert "***" in str(errors[0]) and s.path in str(errors[0])
    assert s.list("k") == [("old", {"v": 0}), ("x", {"v": 1})]
    s.put("k", "x", {"v": 3})  # the store goes on, on a new connection
    assert s.list("k") == [("x", {"v": 3})]
    s.close()


@pytest.mark.slow
def test_the_store_goes_on_after_the_database_restarts(tmp_path):
    server = start_postgres(tmp_path)
    try:
        url = server.create_database("prism")
        s = open_store(url)
        with ThreadPoolExecutor(4) as pool:  # several pooled connections to go stale
            list(pool.map(lambda i: s.put("k", i, {"i": i}), range(20)))
        server.restart()
        assert s.count("k") == 20 and s.get("k", 7) == {"i": 7}
        s.put("k", "after", {})
        s.close()
        s = open_store(url)  # and a new store (a restarted server process) reads it all
        assert s.count("k") == 21
        s.close()
    finally:
        server.stop()


def test_errors_name_the_database_but_never_the_password(postgres_db_url):  # noqa: F811
    good = open_store(postgres_db_url)
    password = postgres_db_url.split(":")[2].split("@")[0]
    assert password and password not in repr(good) and password not in good.path
    assert ":***@" in repr(good)
    good.close()
    wrong = postgres_db_url.replace(password, "not-" + password[:6] + "-wrong")
    port = postgres_db_url.rsplit(":", 1)[1].split("/")[0]
    cases = {
        "password authentication failed": wrong,
        "does not exist": postgres_db_url.rsplit("/", 1)[0] + "/no_such_db",
        "refused": postgres_db_url.replace(f":{port}/", f":{free_port()}/"),
    }
    for expected, url in cases.items():
        with pytest.raises(StoreUnavailable) as e:
            open_store(url)
        text = "".join(traceback.format_exception(e.value))
        assert expected in str(e.value), text
        assert "cannot connect to the PostgreSQL store postgresql://postgres:***@127.0.0.1" in text
        assert password not in text and "-wrong" not in text


@pytest.mark.slow
def test_servers_on_one_postgres_store_keep_it_across_a_restart_and_share_it(postgres_db_url):  # noqa: F811
    """A portfolio optimised through a real ``prism serve`` on PRISM_STORE_URL is there for
    two servers started after it stopped, side by side on the one database (no lock between
    them), and what one of those writes the other reads."""
    from widgets.server.routes.finance import NB01_EXAMPLE

    env = {"PRISM_STORE_URL": postgres_db_url}
    api = "/api/v1/finance"
    with PrismServer(dashboards=False, extra_env=env) as a, a.client() as ca:
        first = ok(ca.post(f"{api}/optimize", json={**NB01_EXAMPLE, "name": "first"}))
    b, c = (
        PrismServer(dashboards=False, extra_env=env),
        PrismServer(dashboards=False, extra_env=env),
    )
    try:
        with ThreadPoolExecutor(2) as pool:  # started together: one start-up's wait, not two
            list(pool.map(PrismServer.start, [b, c]))
        with b.client() as cb, c.client() as cc:
            for client in (cb, cc):
                assert ok(client.get(f"{api}/portfolio/{first['portfolio_id']}"))["name"] == "first"
            second = ok(cb.post(f"{api}/optimize", json={**NB01_EXAMPLE, "name": "second"}))
            assert ok(cc.get(f"{api}/portfolio/{second['portfolio_id']}"))["name"] == "second"
            listed = [p["id"] for p in ok(cc.get(f"{api}/portfolios"))]
            assert listed == [second["portfolio_id"], first["portfolio_id"]]
    finally:
        b.stop()
        c.stop()
    store = open_store(postgres_db_url)  # it is in PostgreSQL, not in a file of a server
    assert store.get("portfolio", first["portfolio_id"])["name"] == "first"
    store.close()


@pytest.mark.slow
def test_prism_serve_exits_on_an_unreachable_store_without_showing_the_password():
    secret = "hunter" + "2-secret"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PRISM_DATA_DIR", "PRISM_REDIS_URL")},
        "PRISM_STORE_URL": f"postgresql://prism:{secret}@127.0.0.1:{free_port()}/prism",
        "PRISM_API_KEYS": "k-0123456789abcdef:admin",
    }
    args = ["--port", str(free_port()), "--address", "127.0.0.1", "--no-dashboards"]
    run = subprocess.run(
        [sys.executable, "-m", "widgets.cli", "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 3, run.stderr[-2000:]
    assert "prism serve: cannot connect to the PostgreSQL store" in run.stderr
    assert "postgresql://prism:***@127.0.0.1" in run.stderr
    assert secret not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
