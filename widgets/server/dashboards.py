"""The dashboards behind the API's keys and roles, built off the event loop, in bounded numbers.

**One door.** A browser signs in once at ``/login`` with an API key (a form: the key travels in
a POST body, never in a URL) and gets ``prism_session``, a signed, HttpOnly, SameSite=Lax
cookie naming the key's role. Every dashboard path (the page, its Bokeh WebSocket, its
``autoload.js`` and ``metadata``) needs that cookie (Bokeh's auth-provider hooks,
:class:`CookieAuth`); a wrong key counts against the same per-address throttle as the API.
At start-up the server prints a one-time login link, as Jupyter does (:class:`LoginLinks`):
its token is not an API key, signs in as admin, and dies on first use. The cookie names a key
by a hash, and the role is looked up in the *current* keys each time: a key removed from
``PRISM_API_KEYS`` logs its browsers out at the next restart.

**Readonly sees but cannot store.** A session remembers the role that opened it
(:attr:`SessionGate.roles`); the store refuses writes made on the event loop for a readonly
session's document (:func:`refuse_readonly_writes`, a :class:`~prism_kernels.store.ReadOnly`
the dashboard shows in its status line), exactly as a readonly key gets 403 over REST.

**Nothing built on the event loop.** :class:`DashboardApp` builds a session's document (the
Viewer and its Bokeh models, seconds for a heavy dashboard) in a small thread pool while the
loop keeps serving ``/health``, the API and the other sessions.

**Bounded.** :class:`SessionGate` caps live sessions in all (503) and per client address
(429) before one is built.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode, urlsplit
from weakref import WeakKeyDictionary, WeakSet

import panel as pn
from bokeh.application.handlers import FunctionHandler
from bokeh.server.auth_provider import AuthProvider
from bokeh.util.token import get_session_id
from panel.io.application import Application as PanelApplication
from panel.io.resources import Resources
from panel.io.server import (
    AutoloadJsHandler,
    DocHandler,
    WSHandler,
    server_html_page_for_session,
)
from panel.io.state import set_curdoc
from tornado import web

from prism_kernels.store import ReadOnly
from widgets.base import computing_in_place
from widgets.server.auth import key_id
from widgets.server.config import ROLES
from widgets.server.errors import ApiError

log = logging.getLogger("prism.server")

COOKIE = "prism_session"
COOKIE_DAYS = 1
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
LINK_PREFIX = "link:"


# ---------------------------------------------------------------- who is signed in


class SessionCookies:
    """Issue and read the signed ``prism_session`` cookie (``role|key-hash``)."""

    def __init__(self, secret: str, keys: dict[str, str]) -> None:
        self.secret = secret
        self.roles_by_id = {key_id(k): role for k, role in keys.items()}

    def issue(self, handler: web.RequestHandler, role: str, ident: str) -> None:
        value = web.create_signed_value(self.secret, COOKIE, f"{role}|{ident}")
        handler.set_cookie(
            COOKIE,
            value.decode(),
            expires_days=COOKIE_DAYS,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=handler.request.protocol == "https",
        )

    def role(self, raw: str | None) -> str | None:
        """The role a cookie value grants now (``None``: not signed in)."""
        if not raw:
            return None
        value = web.decode_signed_value(self.secret, COOKIE, raw, max_age_days=COOKIE_DAYS)
        if value is None:
            return None
        role, _, ident = value.decode("utf-8", "replace").partition("|")
        if ident.startswith(LINK_PREFIX):
            return role if role in ROLES else None
        return self.roles_by_id.get(ident)


class LoginLinks:
    """One-time login tokens (not API keys): each signs one browser in and is then gone."""

    def __init__(self, ttl_s: float = 24 * 3600) -> None:
        self.ttl_s = ttl_s
        self._tokens: dict[str, tuple[str, float]] = {}  # sha256(token) -> (role, expiry)

    def new(self, role: str = "admin") -> str:
        token = secrets.token_urlsafe(24)
        self._tokens[self._digest(token)] = (role, time.time() + self.ttl_s)
        return token

    def redeem(self, token: str) -> str | None:
        """The role of ``token`` if it is known and unused (it is used up now), else ``None``."""
        entry = self._tokens.pop(self._digest(token), None)
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    @staticmethod
    def _digest(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class CookieAuth(AuthProvider):
    """Bokeh's auth hooks: a dashboard request is signed in when its cookie grants a role."""

    def __init__(self, cookies: SessionCookies) -> None:
        self.cookies = cookies
        super().__init__()

    @property
    def get_user(self):
        return self._user

    def _user(self, handler: web.RequestHandler) -> dict[str, str] | None:
        role = self.cookies.role(handler.get_cookie(COOKIE))
        return {"role": role} if role else None

    @property
    def login_url(self) -> str:
        return LOGIN_PATH

    @property
    def logout_url(self) -> str:
        return LOGOUT_PATH


# ---------------------------------------------------------------- login and logout pages


def safe_next(url: str | None) -> str:
    """A redirect target on this server only (``/path``), else ``/``."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return "/"
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return "/"
    return url


class LoginHandler(web.RequestHandler):
    """``GET /login``: the form (or a one-time link's ``?token=``); ``POST /login``: a key."""

    def initialize(self, app: Any) -> None:
        self.app = app

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def get(self) -> None:
        token = self.get_query_argument("token", None)
        if token is None:
            self.page()
            return
        client = self.request.remote_ip or ""
        if self.app.throttle.retry_after(client):
            self.page("Too many failed sign-ins from this address; wait a minute.", 429)
            return
        role = self.app.login_links.redeem(token)
        if role is None:
            self.app.throttle.failed(client)
            self.page("This sign-in link is unknown or was already used: sign in with a key.", 403)
            return
        self.app.cookies.issue(self, role, LINK_PREFIX + secrets.token_hex(4))
        self.redirect(safe_next(self.get_query_argument("next", None)))

    def post(self) -> None:
        self.check_xsrf_cookie()
        client = self.request.remote_ip or ""
        retry = self.app.throttle.retry_after(client)
        if retry:
            self.set_header("Retry-After", str(max(1, int(retry + 0.999))))
            self.page("Too many failed sign-ins from this address; wait a minute.", 429)
            return
        key = self.get_body_argument("key", "").strip()
        try:
            role = self.app.keys.role(key or None)
        except ApiError:
            if key:
                self.app.throttle.failed(client)
            self.app.metrics.auth_refusals.labels("401").inc()
            self.page("That key is not valid.", 401)
            return
        self.app.cookies.issue(self, role, key_id(key))
        self.redirect(safe_next(self.get_body_argument("next", None)))

    def page(self, error: str = "", status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        nxt = safe_next(self.get_argument("next", None))
        self.finish(
            LOGIN_HTML.format(
                error=f'<p class="err">{html.escape(error)}</p>' if error else "",
                xsrf=self.xsrf_form_html(),
                next=html.escape(nxt, quote=True),
            )
        )

    def on_finish(self) -> None:
        self.app.record_request(self, LOGIN_PATH)


class LogoutHandler(web.RequestHandler):
    """``GET /logout``: forget the session cookie, back to the sign-in page."""

    def initialize(self, app: Any) -> None:
        self.app = app

    def get(self) -> None:
        self.clear_cookie(COOKIE, path="/")
        self.redirect(LOGIN_PATH)

    def on_finish(self) -> None:
        self.app.record_request(self, LOGOUT_PATH)


LOGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PRISM: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;color:#222}}
input[type=password]{{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}}
button{{margin-top:.8rem;padding:.5rem 1.2rem;font-size:1rem}} .err{{color:#b00020}}</style>
</head><body>
<h1>PRISM</h1>
<p>Sign in to the dashboards with an API key (a readonly key can look but not store).</p>
{error}
<form method="post" action="/login">
{xsrf}
<input type="hidden" name="next" value="{next}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Sign in</button>
</form>
</body></html>
"""


# ---------------------------------------------------------------- how many sessions


class SessionGate:
    """Live dashboard sessions, capped in all and per client address; the role of each.

    Used on the event loop only: the check (:meth:`refusal`) and the registration
    (:meth:`add`, first thing of a session's creation) happen in the same loop step, so
    concurrent page loads cannot all slip under a cap.
    """

    def __init__(self, max_total: int, max_per_client: int, metrics: Any = None) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.metrics = metrics
        self.clients: dict[str, str] = {}  # session id -> client address
        self.per_client: Counter[str] = Counter()
        self.roles: WeakKeyDictionary[Any, str] = WeakKeyDictionary()  # document -> role

    def refusal(self, client: str) -> tuple[int, str] | None:
        """``(status, message)`` when a new session for ``client`` must be refused."""
        if len(self.clients) >= self.max_total:
            reason = (503, "the server has as many dashboard sessions as it serves; retry soon")
        elif self.per_client[client] >= self.max_per_client:
            reason = (
                429,
                f"this address has {self.per_client[client]} dashboard sessions open "
                f"(PRISM_MAX_SESSIONS_PER_CLIENT); close a tab or retry soon",
            )
        else:
            return None
        if self.metrics is not None:
            self.metrics.session_refusals.labels("server" if reason[0] == 503 else "client").inc()
        return reason

    def add(self, session_id: str, client: str) -> None:
        if session_id not in self.clients:
            self.clients[session_id] = client
            self.per_client[client] += 1
            self._gauge()

    def remove(self, session_id: str) -> None:
        client = self.clients.pop(session_id, None)
        if client is not None:
            self.per_client[client] -= 1
            if self.per_client[client] <= 0:
                del self.per_client[client]
            self._gauge()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.sessions.set(len(self.clients))


def refuse_readonly_writes(gate: SessionGate):
    """A store write check: refuse writes made for a readonly dashboard session.

    "For a session" is Panel's context variable of the document being served (set while a
    session's callbacks run; a Viewer's background work carries it into its pool). Not
    ``pn.state.curdoc``: off the event loop that falls back to Bokeh's process-wide current
    document, which is whichever session the loop happens to be serving, so an API write in
    an executor thread could be taken for a dashboard's.
    """

    def check(kind: str) -> None:
        doc = pn.state._curdoc.get()  # Panel's context variable behind pn.state.curdoc
        if doc is not None and gate.roles.get(doc) == "readonly":
            raise ReadOnly(kind, "this dashboard was opened with a readonly key: it cannot store")

    return check


# ---------------------------------------------------------------- building sessions


def warm_up(apps: list[DashboardApp]) -> None:
    """Build each dashboard once into a throwaway document (imports, caches, first plots), so
    the first visitor does not pay for them and the objects they leave can be frozen out of
    the garbage collector's way (:func:`gc.freeze`, see :func:`widgets.server.app.serve`)."""
    from bokeh.document import Document

    for app in apps:
        doc = Document()
        try:
            with set_curdoc(doc):
                pn.panel(app.factory()).server_doc(doc, title=app.title)
        except Exception:
            log.exception("warming up the %s dashboard failed", app.title)
        finally:
            doc.clear()


class _PageSession:
    """What Panel's page renderer reads of a session: its document and token."""

    def __init__(self, document: Any, token: str) -> None:
        self.document = document
        self.token = token


class DashboardApp(PanelApplication):
    """One dashboard as a Bokeh application whose sessions are built in ``pool``.

    Bokeh awaits :meth:`on_session_created` before it initializes the document: the Viewer is
    constructed and rendered there, in the pool, so the event loop only registers the session.
    """

    def __init__(
        self,
        factory: Any,
        title: str,
        gate: SessionGate,
        pool: ThreadPoolExecutor,
        cookies: SessionCookies | None,
        metrics: Any = None,
    ) -> None:
        self.factory = factory
        self.title = title
        self.gate = gate
        self.pool = pool
        self.cookies = cookies
        self.metrics = metrics
        self._built: WeakSet[Any] = WeakSet()
        self.validate = False
        self.pages: dict[str, str] = {}  # session id -> its pre-rendered page, until served
        self.resources: Any = None  # the server's BokehTornado.resources, once it exists
        super().__init__(FunctionHandler(self._build_here))

    async def on_session_created(self, session_context: Any) -> None:
        request = session_context.request
        self.gate.add(session_context.id, (request.remote_ip if request else None) or "")
        doc = session_context._document
        if self.cookies is None:
            role = "admin"  # --no-auth
        else:
            cookies = request.cookies if request is not None else {}
            raw = cookies.get(COOKIE) if isinstance(cookies, dict) else None
            role = self.cookies.role(getattr(raw, "value", raw)) or "readonly"
        self.gate.roles[doc] = role
        await super().on_session_created(session_context)
        t0 = time.perf_counter()
        page_load = request is not None and not request.path.rstrip("/").endswith("/ws")
        page = await asyncio.get_running_loop().run_in_executor(
            self.pool, self._build, doc, session_context._token if page_load else None
        )
        if page is not None:
            self.pages[session_context.id] = page
        if self.metrics is not None:
            self.metrics.session_build_seconds.observe(time.perf_counter() - t0)

    async def on_session_destroyed(self, session_context: Any) -> None:
        self.gate.remove(session_context.id)
        self.pages.pop(session_context.id, None)
        await super().on_session_destroyed(session_context)

    def _build(self, doc: Any, token: str | None = None) -> str | None:
        """Construct and render the Viewer into ``doc`` (in the pool; ``doc`` has no session
        yet, so nothing else touches it); with the session's ``token``, also render the HTML
        page that loads it (Panel does this on the event loop otherwise: it walks every model)."""
        self._set_session_prefix(doc)
        try:
            # the Viewer's first results are computed here, before the first render: nothing
            # is re-rendered on the event loop when they arrive
            with set_curdoc(doc), computing_in_place():
                pn.panel(self.factory()).server_doc(doc, title=self.title, location=True)
            if self.validate:
                doc.validate()  # Bokeh's own check, here rather than on the event loop
        except Exception:
            log.exception("building a %s dashboard session failed", self.title)
            doc.clear()
            with set_curdoc(doc):
                pn.pane.Markdown(
                    "**This dashboard failed to start.** The server log has the details."
                ).server_doc(doc, title=self.title)
        self._built.add(doc)
        if token is None or self.resources is None:
            return None
        with set_curdoc(doc):
            return server_html_page_for_session(
                _PageSession(doc, token),
                resources=Resources.from_bokeh(self.resources()),
                title=doc.title,
                token=token,
                template=doc.template,
                template_variables=doc.template_variables,
            )

    def _build_here(self, doc: Any) -> None:
        # Bokeh's initialize_document: the document was built in on_session_created. A
        # document made without a session (Panel's warm-up) is built here.
        if doc not in self._built:
            self._build(doc)


# ---------------------------------------------------------------- the gated Bokeh handlers


def client_address(handler: web.RequestHandler) -> str:
    return handler.request.remote_ip or ""


def same_origin(origin: str, host: str | None) -> bool:
    """``origin`` (``scheme://host:port``) names the host the request was sent to."""
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


class GatedSessionMixin:
    """Refuse a new session over the caps (before it is built), with a short page."""

    def initialize(self, *args: Any, prism: Any = None, **kw: Any) -> None:
        self.prism = prism
        super().initialize(*args, **kw)

    def get_login_url(self) -> str:
        return LOGIN_PATH

    def refuse_if_full(self) -> bool:
        if self.current_user is None:
            return False  # the page redirects to the sign-in page, the socket gets a 403
        refusal = self.prism.gate.refusal(client_address(self))
        if refusal is None:
            return False
        status, message = refusal
        self.set_status(status)
        self.set_header("Retry-After", "30")
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(message + "\n")
        return True

    route_suffix = ""

    def on_finish(self) -> None:
        super().on_finish()
        self.prism.record_request(self, self.application_context.url + self.route_suffix)


class GatedDocHandler(GatedSessionMixin, DocHandler):
    """The dashboard page: sign-in first, then the session caps; the session is built and its
    page rendered off the event loop (:class:`DashboardApp`), and only sent from here.

    This replaces Panel's ``DocHandler.get`` for what the PRISM server uses of it (no
    ``authorize_callback``, no session reuse, no path templates): if a dashboard ever needs
    those, fall back to ``super().get``.
    """

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.current_user is None:
            self.redirect(f"{LOGIN_PATH}?{urlencode({'next': self.request.uri})}")
            return
        if self.refuse_if_full():
            return
        app = self.application_context.application
        if not isinstance(app, DashboardApp):
            await super().get(*args, **kwargs)
            return
        # Prevent caching: the page embeds a short-lived session token (as Panel does).
        self.set_header("Cache-Control", "no-store")
        session = await self.get_session()
        page = app.pages.pop(session.id, None)
        if page is None:  # built by someone else (a WebSocket first): render it here
            with set_curdoc(session.document):
                page = server_html_page_for_session(
                    session,
                    resources=Resources.from_bokeh(self.application.resources()),
                    title=session.document.title,
                    token=session.token,
                    template=session.document.template,
                    template_variables=session.document.template_variables,
                )
        self.set_header("Content-Type", "text/html")
        self.write(page)


class GatedAutoloadJsHandler(GatedSessionMixin, AutoloadJsHandler):
    """``/<slug>/autoload.js`` (it creates sessions too)."""

    route_suffix = "/autoload.js"

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.current_user is None:
            self.set_status(401)
            self.finish("sign in first\n")
            return
        if self.refuse_if_full():
            return
        await super().get(*args, **kwargs)


class GatedWSHandler(GatedSessionMixin, WSHandler):
    """The dashboard's Bokeh WebSocket: sign-in (Panel answers 403), origin, then the caps
    when the connection would create a session (not when it joins one a page created)."""

    route_suffix = "/ws"

    async def prepare(self) -> None:
        await super().prepare()
        if self._finished:
            self.prism.metrics.auth_refusals.labels("403").inc()
            return
        session_id = self._session_id()
        if session_id is None or session_id not in self.prism.gate.clients:
            self.refuse_if_full()

    def _session_id(self) -> str | None:
        protocols = self.request.headers.get("Sec-WebSocket-Protocol", "")
        parts = [p.strip() for p in protocols.split(",")]
        if len(parts) != 2 or parts[0] != "bokeh":
            return None
        try:
            return get_session_id(parts[1])
        except Exception:
            return None

    def check_origin(self, origin: str) -> bool:
        return same_origin(origin, self.request.host) or self.prism.cors_allows(origin)


GATED = {
    DocHandler: GatedDocHandler,
    WSHandler: GatedWSHandler,
    AutoloadJsHandler: GatedAutoloadJsHandler,
}


def gate_dashboard_routes(tornado_app: web.Application, prism: Any) -> int:
    """Put the gated handlers in place of Panel's on every dashboard route of ``tornado_app``.

    Returns how many routes were gated (four per dashboard but ``metadata``, which Bokeh's
    own sign-in check covers).
    """
    for ctx in tornado_app.applications.values():
        if isinstance(ctx.application, DashboardApp):
            ctx.application.resources = tornado_app.resources
    n = 0
    for rule in tornado_app.wildcard_router.rules:
        gated = GATED.get(rule.target)
        if gated is not None:
            rule.target = gated
            rule.target_kwargs = {**rule.target_kwargs, "prism": prism}
            n += 1
    return n
