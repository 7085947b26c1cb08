"""A PRISM server inside the current process, on a background thread: for notebooks and tests.

::

    from widgets.server.background import start_background_server

    srv = start_background_server()            # a free loopback port, a fresh admin key
    httpx.get(srv.url + "/api/v1/gpu/status", headers=srv.headers)
    srv.login_link("/finance")                 # with dashboards=True: a one-time browser sign-in
    srv.stop()

It is the same server ``prism serve`` runs (:func:`widgets.server.app.build_server`), on its
own thread and IOLoop, so the notebook's own event loop is untouched. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from tornado.ioloop import IOLoop

from prism_kernels import runtime as _runtime_mod

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass
class BackgroundServer:
    """A running in-process server: ``url``, ``ws_url``, ``key`` (an admin key or ``None``), ``stop()``."""

    port: int
    key: str | None
    thread: threading.Thread
    loop: IOLoop
    app: Any
    server: Any
    _previous_runtime: Any = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}/ws"

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` header for :attr:`key` (empty without auth)."""
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def login_link(self, next: str = "/") -> str:
        """A one-time sign-in link for one browser, landing on ``next`` (``"/finance"``):
        with auth on, the dashboards need a sign-in; the link's token is not the API key and
        dies on first use."""
        from urllib.parse import urlencode

        if not self.app.settings.auth:
            return self.url + next
        token = self.app.login_links.new("admin")
        return f"{self.url}/login?{urlencode({'token': token, 'next': next})}"

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server, close its sockets and join the thread (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        done = threading.Event()

        def shutdown() -> None:
            try:
                self.server.stop()
                self.app.stop()
            finally:
                done.set()
                self.loop.stop()

        self.loop.add_callback(shutdown)
        done.wait(timeout)
        self.thread.join(timeout)
        # The server installed (and closed) its own runtime; give the process back the one it had
        # (None: a fresh one is made on the next get_runtime()).
        _runtime_mod.set_runtime(self._previous_runtime)
        if self.thread.is_alive():
            raise RuntimeError("the background server did not stop within the timeout")

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"BackgroundServer(url={self.url!r}, running={self.running})"


def start_background_server(
    port: int = 0,
    api_keys: dict[str, str] | None = None,
    dashboards: bool = False,
    auth: bool = True,
    rate_limit: float = 1000.0,
    timeout: float = 60.0,
    quiet: bool = True,
    **settings: Any,
) -> BackgroundServer:
    """Start a PRISM server on a thread of this process and return once it accepts connections.

    Parameters
    ----------
    port : int
        Loopback port; 0 picks a free one.
    api_keys : dict, optional
        ``{key: role}``; by default one admin key is generated (``.key``).
    dashboards : bool
        Also serve the Panel dashboards at ``/<slug>``.
    auth : bool
        ``False`` serves the API without keys.
    quiet : bool
        Do not log each 4xx/5xx request (Tornado's access log) into the notebook.
    settings :
        Any other :class:`widgets.server.config.Settings` field (``max_body_mb``, ``workers``...).
    """
    from widgets.server.app import build_server
    from widgets.server.config import Settings

    if "address" in settings and settings.pop("address") != LOOPBACK:
        raise ValueError("the background server binds 127.0.0.1 only")
    if api_keys is None:
        key = "prism_" + secrets.token_urlsafe(18)
        api_keys = {key: "admin"}
    else:
        key = next((k for k, r in api_keys.items() if r == "admin"), next(iter(api_keys), None))
    cfg = Settings(
        address=LOOPBACK,
        port=port or _free_port(),
        auth=auth,
        api_keys=dict(api_keys),
        rate_limit=rate_limit,
        rate_burst=rate_limit,
        dashboards=dashboards,
        **settings,
    )
    if quiet:
        logging.getLogger("tornado.access").setLevel(logging.ERROR)
    previous = _runtime_mod._runtime
    started = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        loop = IOLoop.current()
        try:
            app, server = build_server(cfg, loop=loop, verbose=False)
            app.start_background(loop)
            server.start()
            box.update(loop=loop, app=app, server=server)
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            started.set()
            return
        loop.add_callback(started.set)
        loop.start()
        loop.close(all_fds=False)

    thread = threading.Thread(target=run, name=f"prism-server-{cfg.port}", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise TimeoutError(f"the background server did not start within {timeout} s")
    if "error" in box:
        raise RuntimeError(f"the background server failed to start: {box['error']}") from box[
            "error"
        ]
    return BackgroundServer(
        port=cfg.port,
        key=key if auth else None,
        thread=thread,
        loop=box["loop"],
        app=box["app"],
        server=box["server"],
        _previous_runtime=previous,
    )
