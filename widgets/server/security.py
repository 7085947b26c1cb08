"""What every response and every log line of the server gets, whichever handler made it.

- :class:`SecurityHeaders`, a Tornado output transform installed on the whole application
  (API, dashboards, static files, WebSocket handshakes): ``X-Content-Type-Options``,
  ``X-Frame-Options`` and CSP ``frame-ancestors`` (no page of another origin may frame a
  dashboard), ``Referrer-Policy``, an ``X-Request-Id`` on every response, and no ``Server``
  header (it named the Tornado version); JSON answers carry :data:`API_HEADERS`;
- :func:`log_request`, the access log: credentials in a query string (``api_key``, ``token``...)
  are replaced by ``[redacted]`` before a URL is written anywhere;
- :func:`clip`: what an error message may quote of a client's input (a short prefix).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

from tornado import web
from tornado.httputil import HTTPHeaders

access_log = logging.getLogger("tornado.access")

# ---------------------------------------------------------------- request ids

_RID_PREFIX = secrets.token_hex(4)
_rid_counter = itertools.count(1)
_CLIENT_RID = re.compile(r"[A-Za-z0-9._:\-]{8,64}")


def new_request_id() -> str:
    """A request id unique in this process and across restarts (random prefix, counter)."""
    return f"{_RID_PREFIX}{next(_rid_counter):08x}"


def request_id_for(headers: HTTPHeaders) -> str:
    """The client's (or proxy's) ``X-Request-Id`` when it is a plain token, else a new id."""
    # (``in`` first: HTTPHeaders.get raises and catches a KeyError for an absent header, and
    # this runs on every request)
    if "X-Request-Id" in headers and _CLIENT_RID.fullmatch(headers["X-Request-Id"]):
        return headers["X-Request-Id"]
    return new_request_id()


# ---------------------------------------------------------------- headers


#: On JSON answers (set by the API's handlers themselves): no sniffing them into something
#: else, no framing them. (X-Frame-Options and Referrer-Policy only matter to HTML pages:
#: each header costs the request path microseconds.)
API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def security_headers(frame_origins: list[str]) -> dict[str, str]:
    """The headers every page carries; ``frame_origins`` may also frame the pages."""
    ancestors = " ".join(["'self'", *[o for o in frame_origins if o != "*"]])
    return {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Content-Security-Policy": f"frame-ancestors {ancestors}",
        "Referrer-Policy": "same-origin",
    }


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> list[Network]:
    """``"10.0.0.0/8, 192.168.1.7"`` -> the networks (an address is a /32 or /128).

    Raises ``ValueError`` naming the entry that is not an address or network.
    """
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network (CIDR)") from None
    return out


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_ip(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address behind trusted reverse proxies.

    ``peer`` is the address the connection came from. Only when it is a trusted proxy is
    ``X-Forwarded-For`` read, from the right (each proxy appends the address it saw), skipping
    trusted proxies: the first address that is not one is the client. Anything left of it was
    written by the client and is ignored, so a client cannot choose its address; a peer that is
    not trusted is the client itself, whatever headers it sends.
    """
    if not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage where an address should be: keep the proxy's
    return hops[0] if hops else peer


class SecurityHeaders(web.OutputTransform):
    """Adds :attr:`headers` and an ``X-Request-Id`` to every response that has not set its
    own (the API's handlers set theirs, see :data:`API_HEADERS`); drops ``Server``.

    Made per server by :func:`security_transform` (the headers depend on its settings). It
    is made for every request before its handler runs, so it is also where a request from a
    trusted proxy gets its client's address (:func:`client_ip`): failed-sign-in throttles,
    session caps and logs then count clients, not the proxy.
    """

    headers: tuple[tuple[str, str], ...] = ()
    trusted_proxies: tuple[Network, ...] = ()

    def __init__(self, request: Any) -> None:
        self.request = request
        if self.trusted_proxies:
            request.remote_ip = client_ip(
                request.remote_ip, request.headers.get("X-Forwarded-For"), self.trusted_proxies
            )

    def transform_first_chunk(
        self, status_code: int, headers: HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, HTTPHeaders, bytes]:
        if "Server" in headers:
            del headers["Server"]
        if "X-Content-Type-Options" not in headers:
            for name, value in self.headers:
                headers.setdefault(name, value)
        if "X-Request-Id" not in headers:
            headers["X-Request-Id"] = request_id_for(self.request.headers)
        return status_code, headers, chunk

    def transform_chunk(self, chunk: bytes, finishing: bool) -> bytes:
        return chunk


def security_transform(
    frame_origins: list[str], trusted_proxies: Sequence[Network] = ()
) -> type[SecurityHeaders]:
    """A :class:`SecurityHeaders` transform carrying this server's headers and proxies."""
    return type(
        "PrismSecurityHeaders",
        (SecurityHeaders,),
        {
            "headers": tuple(security_headers(frame_origins).items()),
            "trusted_proxies": tuple(trusted_proxies),
        },
    )


# ---------------------------------------------------------------- logs

_SECRET_PARAMS = re.compile(
    r"(?i)([?&;](?:api[_-]?key|key|token|access[_-]?token|password|secret|auth)=)[^&;#]*"
)


def redact(uri: str) -> str:
    """``uri`` with the values of credential parameters replaced by ``[redacted]``."""
    if "=" not in uri:
        return uri
    return _SECRET_PARAMS.sub(r"\1[redacted]", uri)


def log_request(handler: web.RequestHandler) -> None:
    """The access log line of one request (Tornado's format), credentials redacted.

    The line is only built when its level is enabled: ``prism serve`` logs 4xx and 5xx.
    """
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    r = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        r.method,
        redact(r.uri or ""),
        r.remote_ip,
        1000.0 * r.request_time(),
    )


# ---------------------------------------------------------------- quoting input

MESSAGE_CHARS = 300
DETAIL_CHARS = 200
DETAIL_ITEMS = 20


def clip(text: str, limit: int = DETAIL_CHARS) -> str:
    """``text``, or its first ``limit`` characters and how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def clip_details(value: Any, depth: int = 0) -> Any:
    """``value`` (an error's details) with long strings clipped and long lists cut."""
    if isinstance(value, str):
        return clip(value)
    if depth > 4:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())
        out = {clip(str(k), 64): clip_details(v, depth + 1) for k, v in items[:DETAIL_ITEMS]}
        if len(items) > DETAIL_ITEMS:
            out["truncated"] = f"{len(items) - DETAIL_ITEMS} more entries"
        return out
    if isinstance(value, (list, tuple)):
        out = [clip_details(v, depth + 1) for v in value[:DETAIL_ITEMS]]
        if len(value) > DETAIL_ITEMS:
            out.append(f"… {len(value) - DETAIL_ITEMS} more")
        return out
    return value
