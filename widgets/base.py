"""The shape every domain dashboard takes.

A domain Viewer subclasses :class:`DomainViewer`: its ``param`` parameters are the controls,
:meth:`sidebar` holds them, :meth:`main` holds the plots and tables. The same object renders
in a notebook cell (``display(viewer)``), as an ipywidget (``viewer.ipywidget()``, through
jupyter_bokeh, for Voila and ipywidgets layouts) and as the server's dashboard at ``/<slug>``.
Viewers call ``prism_kernels``; they compute nothing themselves.
"""

from __future__ import annotations

import panel as pn
import param
from panel.viewable import Viewer

SIDEBAR_WIDTH = 330


class DomainViewer(Viewer):
    """Base of the domain dashboards: a sidebar of controls beside the main views."""

    title = param.String(default="PRISM", precedence=-1, doc="Heading shown above the controls")
    probe: tuple[str, object] | None = (
        None  # ("param", value): tests/browser sets this control and expects the view's text to change
    )

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
