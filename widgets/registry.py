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
    Dashboard(
        "system",
        "System",
        "Backend, device, CPU/GPU readings and a live benchmark",
        "widgets.system:SystemViewer",
    ),
    Dashboard(
        "pwsa",
        "PWSA tracking",
        "Missile-warning scenario tracked live, threat ranking, API tracks",
        "widgets.pwsa:PwsaViewer",
    ),
    Dashboard(
        "finance",
        "Finance",
        "Efficient frontier, optimal weights, VaR/CVaR and a backtest on real S&P 500 or synthetic prices",
        "widgets.finance:FinanceViewer",
    ),
    Dashboard(
        "pixels",
        "IR pixels",
        "Hotspots, segmentation, entropy map, persistence diagram and Betti curves, hotspot classes",
        "widgets.pixels:PixelsViewer",
    ),
]


def dashboards() -> list[Dashboard]:
    return list(DASHBOARDS)


def viewer_factory(slug: str) -> Callable[[], Any]:
    for d in DASHBOARDS:
        if d.slug == slug:
            return d.factory
    raise KeyError(slug)
