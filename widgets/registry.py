"""The dashboards the server offers, discovered like the routes: no list to edit.

Every module directly inside ``widgets/`` that defines a :class:`~widgets.base.DomainViewer`
subclass with a ``slug`` is a dashboard, served at ``/<slug>``, titled by the Viewer's
``title`` and described on the index page by its ``description``. Viewers are listed by
``order`` then slug.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Modules of ``widgets`` that are not dashboards (importing them would start nothing, but
# the server, command line and base need not be read for Viewers).
NOT_DASHBOARDS = {"base", "registry", "cli", "batch_cli", "server"}


@dataclass(frozen=True)
class Dashboard:
    slug: str
    title: str
    description: str
    viewer: str  # "module:ClassName" of the Viewer
    order: int = 100

    def factory(self) -> Any:
        """A new Viewer for one browser session (the server calls this per session)."""
        module, _, name = self.viewer.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls()


def dashboards() -> list[Dashboard]:
    """Every discovered dashboard, by ``order`` then slug."""
    import widgets
    from widgets.base import DomainViewer

    found: dict[str, Dashboard] = {}
    for mod in pkgutil.iter_modules(widgets.__path__):
        if mod.name in NOT_DASHBOARDS or mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"widgets.{mod.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DomainViewer) and cls.__module__ == module.__name__ and cls.slug:
                if cls.slug in found:
                    raise RuntimeError(f"two dashboards claim /{cls.slug}")
                found[cls.slug] = Dashboard(
                    cls.slug,
                    cls.param.title.default,
                    cls.description,
                    f"{module.__name__}:{cls.__name__}",
                    cls.order,
                )
    return sorted(found.values(), key=lambda d: (d.order, d.slug))


def viewer_factory(slug: str) -> Callable[[], Any]:
    for d in dashboards():
        if d.slug == slug:
            return d.factory
    raise KeyError(slug)
