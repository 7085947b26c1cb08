"""prism_kernels.store: persistence, bounds, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput, NotFound
from prism_kernels.store import Bound, Store


def test_put_get_list_delete(tmp_path):
    s = Store(tmp_path / "a.sqlite")
    s.put("thing", 1, {"x": 1.5, "name": "one"}, arrays={"m": np.eye(3)})
    s.put("thing", "b", {"x": 2})
    assert s.get("thing", "1") == {"x": 1.5, "name": "one"}
    np.testing.assert_array_equal(s.get_arrays("thing", 1)["m"], np.eye(3))
    assert s.get_arrays("thing", "b") == {}
    assert [i for i, _ in s.list("thing")] == ["1", "b"]
    assert s.count("thing") == 2 and s.count("other") == 0
    assert s.delete("thing", "b") and not s.delete("thing", "b")
    with pytest.raises(NotFound):
        s.get("thing", "b")


def test_survives_reopen(tmp_path):
    path = tmp_path / "data" / "prism.sqlite"
    s = Store(path)
    s.put("k", "id", {"v": [1, 2, 3]}, arrays={"a": np.arange(4.0)})
    s.close()
    s2 = Store(path)
    assert s2.get("k", "id") == {"v": [1, 2, 3]}
    np.testing.assert_array_equal(s2.get_arrays("k", "id")["a"], np.arange(4.0))


def test_count_bound_drops_oldest():
    s = Store(":memory:", bounds={"k": Bound(max_items=3)})
    for i in range(5):
        s.put("k", i, {"i": i})
    assert [i for i, _ in s.list("k")] == ["2", "3", "4"]
    s.put("other", 1, {})  # other kinds untouched
    assert s.count("k") == 3


def test_age_bound(monkeypatch):
    import prism_kernels.store as store_mod

    clock = [1000.0]
    monkeypatch.setattr(store_mod.time, "time", lambda: clock[0])
    s = Store(":memory:", bounds={"k": Bound(max_items=None, max_age_s=10)})
    s.put("k", "old", {})
    clock[0] += 20
    s.put("k", "new", {})
    assert [i for i, _ in s.list("k")] == ["new"]


def test_failed_write_keeps_previous_value():
    s = Store()
    s.put("k", "x", {"v": 1})
    with pytest.raises(InvalidInput):
        s.put("k", "x", {"v": float("nan")})  # not JSON: refused before anything is written
    with pytest.raises(InvalidInput):
        s.put("k", "x", {"v": object()})
    assert s.get("k", "x") == {"v": 1}


def test_replace_keeps_created_order():
    s = Store()
    s.put("k", "a", {"v": 1})
    s.put("k", "b", {"v": 2})
    s.put("k", "a", {"v": 3})
    assert s.list("k") == [("a", {"v": 3}), ("b", {"v": 2})]


def test_list_with_extreme_offsets():
    s = Store()
    s.put("k", "a", {})
    assert s.list("k", offset=10**21) == []
    assert [i for i, _ in s.list("k", limit=10**21)] == ["a"]
    with pytest.raises(InvalidInput):
        s.list("k", offset=-1)


def test_a_file_store_is_locked_while_open(tmp_path):
    from prism_kernels.store import StoreLocked

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


def test_write_checks_refuse_before_anything_is_written():
    from prism_kernels.store import ReadOnly

    s = Store(":memory:")
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
