"""The shape every domain dashboard takes, and the plumbing they share.

A domain Viewer subclasses :class:`DomainViewer`: its ``param`` parameters are the controls,
:meth:`sidebar` holds them, :meth:`main` holds the plots and tables. The same object renders
in a notebook cell (``display(viewer)``), as an ipywidget (``viewer.ipywidget()``, through
jupyter_bokeh, for Voila and ipywidgets layouts) and as the server's dashboard at ``/<slug>``
(discovered: a module of ``widgets`` that defines a Viewer with a ``slug`` is served, see
:mod:`widgets.registry`). Viewers call ``prism_kernels``; they compute nothing themselves.

What the base carries, so every dashboard behaves the same:

- ``service``: the runtime's instance of :attr:`DomainViewer.service_class` (the one the REST
  API uses), or one given to the constructor;
- **results with dependencies**: :attr:`DomainViewer.outputs` names each result, the controls
  and other results it depends on, and the method that computes it. A control change
  recomputes only the results that depend on it (and those downstream), in order;
- **off the event loop**: in a served session the computation runs in a shared thread pool
  and the views update when it is done (a newer request wins; a stale answer is dropped), so
  the server keeps answering ``/health`` and other sessions meanwhile. In a notebook it runs
  in place, so a cell sees the result at once;
- one version counter per result (``<name>_version``): views depend on it;
- a status line that shows a :class:`~prism_kernels.errors.PrismError` as a message;
- :func:`rerange`: plots take their axis ranges from the data they show now.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import holoviews as hv
import pandas as pd
import panel as pn
import param
from panel.io.state import set_curdoc
from panel.viewable import Viewer

from prism_kernels.errors import PrismError
from prism_kernels.runtime import get_runtime

log = logging.getLogger("prism.widgets")

SIDEBAR_WIDTH = 330
PLOT_HEIGHT = 360

_extensions_loaded = False
_extensions_lock = threading.Lock()


def load_extensions() -> None:
    """Load the HoloViews and Panel extensions the dashboards use, once per process."""
    global _extensions_loaded
    with _extensions_lock:
        if _extensions_loaded:
            return
        hv.extension("bokeh", logo=False)
        pn.extension("tabulator", sizing_mode="stretch_width")
        _extensions_loaded = True


load_extensions()

# One pool for every dashboard session of the process: heavy work never runs on the event loop.
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prism-viewer")


@dataclass(frozen=True)
class Result:
    """One computed result of a Viewer.

    Parameters
    ----------
    name : str
        The result's name: its value is ``viewer.value[name]``, its counter ``<name>_version``.
    depends : tuple of str
        Controls (param names) and other results whose change makes this one stale.
    compute : str, optional
        The method that computes it (default ``compute_<name>``); it reads the controls and
        ``self.value`` of the results it depends on, and returns the new value.
    """

    name: str
    depends: tuple[str, ...] = ()
    compute: str | None = None

    @property
    def method(self) -> str:
        return self.compute or f"compute_{self.name}"


def result_table(
    columns: Iterable[str] | Any, height: int = 240, **kw: Any
) -> pn.widgets.Tabulator:
    """The read-only table every dashboard shows results in: no index, no paging, ``height`` px.

    ``columns`` is the column titles (an empty table until data comes) or a DataFrame;
    ``kw`` goes to Tabulator (``formatters``, ``titles``...).
    """
    data = columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(columns=list(columns))
    return pn.widgets.Tabulator(
        data, disabled=True, show_index=False, height=height, pagination=None, **kw
    )


def rerange(obj: Any) -> Any:
    """``obj`` with every element's axes ranged on its current data (``framewise``).

    HoloViews keeps the ranges of the first frame it drew unless told otherwise; a dashboard
    whose data changes (another data source, another window) must re-range, or its marks fall
    off-screen.
    """
    # ``axiswise`` on the elements of an Overlay would stop HoloViews from ranging the overlay
    # at all (it skips axiswise groups): framewise alone re-ranges overlays and single elements.
    # On a DynamicMap, ``map`` applies to the elements each callback returns (an option set on
    # the DynamicMap itself does not re-range the Overlays it returns).
    if isinstance(obj, hv.core.Dimensioned):
        return obj.map(lambda e: e.opts(framewise=True), hv.Element)
    return obj


class _ViewerMeta(type(Viewer)):
    """Adds one ``<name>_version`` counter per declared result to the class being made, so
    views can ``@param.depends("<name>_version")`` in the class body."""

    def __new__(mcs, name: str, bases: tuple, ns: dict, **kw: Any) -> Any:
        for r in ns.get("outputs", ()):
            ns.setdefault(f"{r.name}_version", param.Integer(default=0, precedence=-1))
        return super().__new__(mcs, name, bases, ns, **kw)


class DomainViewer(Viewer, metaclass=_ViewerMeta):
    """Base of the domain dashboards: a sidebar of controls beside the main views.

    Class attributes a subclass sets:

    slug : str
        The dashboard's path (``/finance``); a Viewer without a slug is not served.
    description : str
        One line for the index page.
    order : int
        Position on the index page (lower first).
    service_class : type
        The domain's ``DomainService``.
    outputs : tuple of Result
        What the viewer computes, with dependencies (see the module docstring).
    probe : (param, value)
        A control the browser test changes; the text the view shows must change.
    source_probe : (param, value)
        The control that switches the data source; the browser test switches it and checks
        that every plotted mark lies inside its plot's ranges.
    """

    title = param.String(default="PRISM", precedence=-1, doc="Heading shown above the controls")
    status = param.String(default="", precedence=-1, doc="Status line (errors as messages)")

    slug: ClassVar[str] = ""
    description: ClassVar[str] = ""
    order: ClassVar[int] = 100
    service_class: ClassVar[type | None] = None
    outputs: ClassVar[tuple[Result, ...]] = ()
    probe: ClassVar[tuple[str, object] | None] = None
    source_probe: ClassVar[tuple[str, object] | None] = None

    def __init__(self, service: Any = None, **params: Any) -> None:
        self._service = service
        self.value: dict[str, Any] = {}
        self._requested: dict[str, int] = {}
        self._lock = threading.Lock()
        super().__init__(**params)
        self._order = self._topological(self.outputs)
        watched = sorted({d for r in self.outputs for d in r.depends if d in self.param})
        if watched:
            self.param.watch(self._controls_changed, watched)

    # ------------------------------------------------------------------ state

    @property
    def service(self) -> Any:
        """The runtime's instance of :attr:`service_class` (the API's), or the one given."""
        if self._service is not None:
            return self._service
        if self.service_class is None:
            raise AttributeError(f"{type(self).__name__} has no service_class")
        return get_runtime().service(self.service_class)

    # ------------------------------------------------------------------ results

    @staticmethod
    def _topological(results: Iterable[Result]) -> list[Result]:
        by_name = {r.name: r for r in results}
        done: list[Result] = []
        seen: set[str] = set()

        def visit(r: Result, path: tuple[str, ...]) -> None:
            if r.name in seen:
                return
            if r.name in path:
                raise ValueError(f"results depend on each other in a cycle: {path + (r.name,)}")
            for d in r.depends:
                if d in by_name:
                    visit(by_name[d], path + (r.name,))
            seen.add(r.name)
            done.append(r)

        for r in results:
            visit(r, ())
        return done

    def stale(self, changed: Iterable[str]) -> list[str]:
        """The results a change of ``changed`` (controls or results) makes stale, in order."""
        dirty = set(changed)
        out = []
        for r in self._order:
            if dirty.intersection(r.depends):
                dirty.add(r.name)
                out.append(r.name)
        return out

    def _controls_changed(self, *events: param.parameterized.Event) -> None:
        self.refresh(self.stale(e.name for e in events))

    def refresh(self, names: Iterable[str] | None = None) -> None:
        """Recompute ``names`` (default: every result), in dependency order.

        In a served session this runs in the shared pool and the views update when it ends;
        without one (a notebook, a test) it runs here and now.
        """
        names = [r.name for r in self._order] if names is None else list(names)
        wanted = [r for r in self._order if r.name in set(names)]
        if not wanted:
            return
        with self._lock:
            tickets = {r.name: self._requested.get(r.name, 0) + 1 for r in wanted}
            self._requested.update(tickets)
        doc = pn.state.curdoc if _served() else None
        if doc is None:
            self._compute(wanted, tickets, None)
        else:
            self.status = "Computing…"
            _pool.submit(self._in_session, doc, self._compute, wanted, tickets, doc)

    def _compute(self, wanted: list[Result], tickets: dict[str, int], doc: Any) -> None:
        done: list[str] = []
        message = ""
        for r in wanted:
            if self._requested.get(r.name) != tickets[r.name]:
                continue  # a newer request for this result is on its way
            try:
                self.value[r.name] = getattr(self, r.method)()
                done.append(r.name)
            except PrismError as exc:
                message = f"**{r.name.replace('_', ' ').capitalize()}:** {exc}"
                self.value.pop(r.name, None)
                done.append(r.name)
                # Results downstream of a failed one keep their last value.
                break
            except Exception as exc:  # a dashboard must not die on a bug; the log keeps it
                log.exception("%s: computing %s failed", type(self).__name__, r.name)
                message = f"**{r.name}** failed: {type(exc).__name__}"
                break
        if doc is None:
            self._publish(done, message)
        else:
            doc.add_next_tick_callback(lambda: self._publish(done, message))

    def _publish(self, done: list[str], message: str) -> None:
        self.status = message
        updates = {f"{n}_version": getattr(self, f"{n}_version") + 1 for n in done}
        self.param.update(**updates)
        self.after_refresh(done)

    def after_refresh(self, names: list[str]) -> None:
        """Called on the event loop after ``names`` were recomputed (update widgets here)."""

    def run_in_background(self, fn: Callable[[], Any], then: Callable[[Any], None]) -> None:
        """Run ``fn`` off the event loop (in a served session) and pass its value to ``then``
        on the loop; errors go to the status line."""
        doc = pn.state.curdoc if _served() else None

        def work() -> None:
            try:
                value = fn()
                done = lambda: then(value)  # noqa: E731
            except PrismError as exc:
                message = f"**Error:** {exc}"
                done = lambda: self._set_status(message)  # noqa: E731
            if doc is None:
                done()
            else:
                doc.add_next_tick_callback(done)

        if doc is None:
            work()
        else:
            _pool.submit(self._in_session, doc, work)

    @staticmethod
    def _in_session(doc: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` in a pool thread as part of the session ``doc`` (``pn.state.curdoc``), so
        what checks the session (a readonly key may not store) sees it there too."""
        with set_curdoc(doc):
            return fn(*args)

    def _set_status(self, text: str) -> None:
        self.status = text

    # ------------------------------------------------------------------ layout

    def status_line(self) -> pn.viewable.Viewable:
        """The status line: empty when all is well, the message of the last error otherwise."""
        return pn.pane.Markdown(self.param.status, sizing_mode="stretch_width")

    def sidebar(self) -> list:
        """Controls and short status text (left column)."""
        return [pn.Param(self, show_name=False)]

    def main(self) -> list:
        """Plots and tables (right column)."""
        raise NotImplementedError

    def __panel__(self) -> pn.viewable.Viewable:
        # A sidebar of constant width: stretch_width bounded on both sides (a fixed sizing mode
        # would need a height too, and stretch_height forces the whole row to stretch_both).
        side = pn.Column(
            f"## {self.title}",
            *self.sidebar(),
            self.status_line(),
            min_width=SIDEBAR_WIDTH,
            max_width=SIDEBAR_WIDTH,
            sizing_mode="stretch_width",
            styles={"padding-right": "1em"},
        )
        return pn.Row(
            side, pn.Column(*self.main(), sizing_mode="stretch_width"), sizing_mode="stretch_width"
        )

    def ipywidget(self):
        """This viewer as an ipywidget (for Voila and ipywidgets layouts)."""
        return pn.ipywidget(self)


_in_place: contextvars.ContextVar[bool] = contextvars.ContextVar("prism_in_place", default=False)


@contextmanager
def computing_in_place() -> Iterator[None]:
    """Within this block viewers compute in place, even in a served session.

    The server builds a session's Viewer in a worker thread (off the event loop already): there
    the first results are computed before the first render, so nothing is re-rendered on the
    event loop afterwards.
    """
    token = _in_place.set(True)
    try:
        yield
    finally:
        _in_place.reset(token)


def _served() -> bool:
    """True inside a session of a running Panel/Bokeh server (not a notebook's comm document),
    unless :func:`computing_in_place` says to compute here."""
    if _in_place.get():
        return False
    return getattr(pn.state.curdoc, "session_context", None) is not None
