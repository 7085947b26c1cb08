"""WriteBehind: rows queued by callers reach the store in order, batched per collection; flush
waits for them, close writes them all, a bad row costs only itself, and a full queue makes the
caller write (bounded memory)."""

from __future__ import annotations

import threading

import pytest

from prism_kernels.service import Collection
from prism_kernels.store import Store
from prism_kernels.write_behind import WriteBehind


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "prism.sqlite"))
    yield s
    s.close()


def test_rows_arrive_in_order_after_flush_and_all_after_close(store):
    usage = Collection(store, "usage", max_items=1000)
    cache = Collection(store, "cache")
    w = WriteBehind("test-writes", linger_s=0.005)
    for i in range(300):
        w.put(usage, i, {"i": i})
        if i % 3 == 0:
            w.put(cache, i, {"c": i})
    assert w.flush(10)
    assert w.pending == 0 and w.written == 400 and w.failed == 0
    assert [int(i) for i, _ in store.list("usage")] == list(range(300))
    assert store.count("cache") == 100
    for i in range(300, 350):
        w.put(usage, i, {"i": i})
    w.close()  # writes what is queued, then stops
    assert store.count("usage") == 350 and w.written == 450
    w.put(usage, "after", {"late": True})  # closed: written at once, in the caller
    assert usage.get("after") == {"late": True}


def test_a_bad_row_costs_only_itself(store, caplog):
    rows = Collection(store, "rows")
    w = WriteBehind("test-writes", linger_s=0.05)  # long enough for one batch of all three
    w.put(rows, "a", {"v": 1})
    w.put(rows, "bad\x00id", {"v": 2})  # refused by the store
    w.put(rows, "c", {"v": 3})
    assert w.flush(10)
    assert w.failed == 1 and w.written == 2
    assert [i for i, _ in store.list("rows")] == ["a", "c"]
    assert "rows" in caplog.text and "not written" in caplog.text
    w.close()


def test_a_full_queue_makes_the_caller_write(store):
    rows = Collection(store, "rows")
    gate = threading.Event()

    class Slow:  # a collection whose writes wait for the gate (a slow store)
        kind = "slow"

        def check_write(self):
            pass

        def put(self, id, doc):
            gate.wait(10)
            rows.put(id, doc)

        def put_many(self, items):
            gate.wait(10)
            rows.put_many(items)

    w = WriteBehind("test-writes", max_pending=2, linger_s=0.0)
    w.put(Slow(), "first", {})  # taken by the thread, which waits at the gate
    assert not w.flush(0.2) and w.pending >= 1
    w.put(Slow(), "q1", {})
    w.put(Slow(), "q2", {})
    done = threading.Event()

    def third():  # over max_pending: written by this caller, which waits for the store too
        w.put(Slow(), "caller", {})
        done.set()

    threading.Thread(target=third).start()
    assert not done.wait(0.2)
    gate.set()
    assert done.wait(10) and w.flush(10)
    assert sorted(i for i, _ in store.list("rows")) == ["caller", "first", "q1", "q2"]
    w.close()


def test_write_checks_run_in_the_callers_context(store):
    """A refused write (a readonly dashboard session's) raises where the row is queued, as a
    direct write would, and nothing is queued."""
    import contextvars

    readonly = contextvars.ContextVar("readonly", default=False)

    def refuse(kind):
        if readonly.get():
            raise PermissionError(f"{kind}: readonly")

    store.add_write_check(refuse)
    rows = Collection(store, "rows")
    w = WriteBehind("test-writes", linger_s=0.0)
    w.put(rows, "allowed", {})
    readonly.set(True)
    with pytest.raises(PermissionError, match="rows: readonly"):
        w.put(rows, "refused", {})
    assert w.flush(10) and w.pending == 0
    assert [i for i, _ in store.list("rows")] == ["allowed"]  # the thread's context: no flag
    w.close()
