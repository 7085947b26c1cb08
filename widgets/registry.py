"""The dashboards the server offers, one per domain, each a Panel Viewer served at ``/<slug>``.

To add a domain's dashboard, add one :class:`Dashboard` line to :data:`DASHBOARDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dashboard:
    slug: str
    title: str
    description: str
    viewer: str  # "module:ClassName" of the Viewer, imported when the server starts

    def factory(self) -> Any:
        """A new Viewer for one browser session (the server calls this per session)."""
        module, _, name = self.viewer.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls()


DASHBOARDS: list[Dashboard] = [
    Dashboard("system", "System", "Backend, device, CPU/GPU readings and a live benchmark",
              "widgets.system:SystemViewer"),
]


def dashboards() -> list[Dashboard]:
    return list(DASHBOARDS)


def viewer_factory(slug: str) -> Callable[[], Any]:
    for d in DASHBOARDS:
        if d.slug == slug:
            return d.factory
    raise KeyError(slug)
