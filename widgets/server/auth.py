"""API keys and roles: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (Bearer wins).

Keys are compared in constant time. ``readonly`` keys may only GET (and HEAD).
Browsers cannot set headers on a WebSocket, so the WebSocket also takes ``?api_key=`` (the
access log redacts it). Dashboards take a key once, on their login page, and then a signed
session cookie (:mod:`widgets.server.dashboards`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from widgets.server.errors import ApiError

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def extract_key(headers, query_key: str | None = None) -> str | None:
    """The key a request presents: Bearer first, then X-API-Key, then the query (WebSocket only).

    Returns ``None`` when no credential is presented at all; raises a 401 for a malformed
    ``Authorization`` header (wrong scheme, empty token).
    """
    if "Authorization" in headers:  # (``in`` first: ``get`` raises a KeyError when absent)
        authz = headers["Authorization"]
        scheme, _, token = authz.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "malformed Authorization header: expected 'Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="prism"'},
            )
        return token.strip()
    if "X-API-Key" in headers:
        key = headers["X-API-Key"]
        if not key.strip():
            raise ApiError(
                401, "empty X-API-Key header", headers={"WWW-Authenticate": 'Bearer realm="prism"'}
            )
        return key.strip()
    if query_key is not None:
        return query_key
    return None


class MissingKey(ApiError):
    """No credential at all (a 401 that does not count as a wrong guess)."""


class KeyTable:
    """The configured keys, encoded once: :meth:`role` compares a key with every one of them
    in constant time (the time taken does not leak which one matched)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = tuple((k.encode("utf-8", "surrogateescape"), role) for k, role in keys.items())

    def role(self, key: str | None) -> str:
        """The role of ``key``; raises a 401 when it is missing (:class:`MissingKey`) or unknown."""
        if key is None:
            raise MissingKey(
                401,
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers=CHALLENGE,
            )
        role = None
        candidate = key.encode("utf-8", "surrogateescape")
        for known, known_role in self._keys:
            if hmac.compare_digest(candidate, known):
                role = known_role
        if role is None:
            raise ApiError(401, "invalid API key", headers=CHALLENGE)
        return role


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="prism"'}


def authenticate(keys: dict[str, str], key: str | None) -> str:
    """The role of ``key`` among ``keys``; raises a 401 when it is missing or unknown."""
    return KeyTable(keys).role(key)


@functools.lru_cache(maxsize=1024)
def key_id(key: str) -> str:
    """A short, non-reversible name of a key (for per-key counts and session cookies)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]


def authorize(role: str, method: str, required: str) -> None:
    """Raise a 403 unless ``role`` may call a route needing ``required`` with ``method``."""
    if role == "admin":
        return
    if required == "admin":
        raise ApiError(403, "this route needs an admin key")
    if role == "readonly" and method.upper() not in READ_METHODS:
        raise ApiError(
            403, f"a readonly key may only read (GET); {method} needs a user or admin key"
        )
