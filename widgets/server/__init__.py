"""The PRISM server: Panel dashboards, REST routes, the WebSocket, health and metrics, in one process.

``ROUTES`` are the Tornado routes, so ``panel serve ... --plugins widgets.server`` works as
well as ``prism serve``. Build it with :func:`widgets.server.app.serve`.
"""

from __future__ import annotations


def __getattr__(name: str):
    # Lazy: importing the package must not build routes (a `panel serve --plugins` reads ROUTES).
    if name == "ROUTES":
        from widgets.server.app import tornado_routes

        return tornado_routes()
    raise AttributeError(name)
