"""Domain route modules. Each module here defines ``ROUTES``, a :class:`~widgets.server.routing.RouteGroup`;
:func:`all_routes` collects them, so adding a domain needs no edit elsewhere."""

from __future__ import annotations

import importlib
import pkgutil

from widgets.server.routing import Route


def all_routes() -> list[Route]:
    """Every declared REST route, domain by domain in alphabetical order."""
    routes: list[Route] = []
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        group = getattr(module, "ROUTES", None)
        if group is not None:
            routes.extend(group.routes)
    seen: set[str] = set()
    for r in routes:
        if r.name in seen:
            raise RuntimeError(f"route {r.name} is declared twice")
        seen.add(r.name)
    return routes
