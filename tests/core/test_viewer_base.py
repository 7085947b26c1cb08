"""The shared Viewer plumbing (widgets.base): dependent results, errors as messages, discovery."""

from __future__ import annotations

import param
import pytest

from prism_kernels.errors import InvalidInput
from widgets.base import DomainViewer, Result


class Chain(DomainViewer):
    """a -> b -> c, with d beside them; counts every computation."""

    x = param.Integer(default=1)
    y = param.Integer(default=10)
    z = param.Integer(default=100)
    fail = param.Boolean(default=False)

    outputs = (
        Result("c", depends=("b", "z")),
        Result("a", depends=("x", "fail")),
        Result("b", depends=("a", "y")),
        Result("d", depends=("z",)),
    )

    def __init__(self, **params):
        self.calls: list[str] = []
        super().__init__(**params)
        self.refresh()

    def compute_a(self):
        self.calls.append("a")
        if self.fail:
            raise InvalidInput("x", "cannot be used")
        return self.x

    def compute_b(self):
        self.calls.append("b")
        return self.value["a"] + self.y

    def compute_c(self):
        self.calls.append("c")
        return self.value["b"] + self.z

    def compute_d(self):
        self.calls.append("d")
        return -self.z

    def main(self):
        return []


def test_results_are_computed_in_dependency_order():
    v = Chain()
    assert v.calls == ["a", "b", "c", "d"]
    assert v.value == {"a": 1, "b": 11, "c": 111, "d": -100}
    assert v.a_version == v.b_version == v.c_version == v.d_version == 1


def test_a_control_recomputes_only_what_depends_on_it():
    v = Chain()
    v.calls.clear()
    v.y = 20
    assert v.calls == ["b", "c"] and v.value["c"] == 121
    v.calls.clear()
    v.z = 0
    assert sorted(v.calls) == ["c", "d"]
    assert v.a_version == 1 and v.b_version == 2 and v.c_version == 3


def test_a_prism_error_is_a_status_message_and_stops_downstream():
    v = Chain()
    v.calls.clear()
    v.fail = True
    assert v.calls == ["a"]
    assert "cannot be used" in v.status and "a" not in v.value
    assert v.value["b"] == 11  # downstream keeps its last value
    v.fail = False
    assert v.status == "" and v.value["c"] == 111


def test_stale_lists_downstream_results():
    v = Chain()
    assert v.stale(["x"]) == ["a", "b", "c"]
    assert v.stale(["z"]) == ["c", "d"]
    assert v.stale(["nothing"]) == []


def test_a_cycle_of_results_is_refused():
    class Loop(DomainViewer):
        outputs = (Result("p", depends=("q",)), Result("q", depends=("p",)))

        def main(self):
            return []

    with pytest.raises(ValueError, match="cycle"):
        Loop()


def test_dashboards_are_discovered_with_unique_slugs():
    from widgets.registry import dashboards

    ds = dashboards()
    slugs = [d.slug for d in ds]
    assert len(slugs) == len(set(slugs))
    assert {"system", "pwsa", "finance", "pixels"} <= set(slugs)
    assert slugs[0] == "system"
    assert all(d.title and d.description for d in ds)


def test_views_may_depend_on_version_counters_in_the_class_body():
    class Views(DomainViewer):
        n = param.Integer(default=2)
        outputs = (Result("square", depends=("n",)),)
        seen: list = []

        def __init__(self, **params):
            super().__init__(**params)
            self.refresh()

        def compute_square(self):
            return self.n**2

        @param.depends("square_version", watch=True)
        def _show(self):
            self.seen.append(self.value["square"])

        def main(self):
            return []

    v = Views()
    v.n = 3
    assert v.seen == [4, 9]


def test_computing_in_place_computes_here_even_in_a_served_session(monkeypatch):
    import widgets.base as base

    monkeypatch.setattr(base, "_pool", None)  # a submit to the pool would fail loudly
    monkeypatch.setattr(
        base.pn.state, "_curdoc", base.contextvars.ContextVar("doc", default=_FakeServedDoc())
    )
    assert base._served()
    with base.computing_in_place():
        assert not base._served()
        v = Chain()
    assert v.value["c"] == 111


class _FakeServedDoc:
    session_context = object()
