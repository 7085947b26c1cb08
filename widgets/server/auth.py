"""API keys and roles: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (Bearer wins).

Keys are compared in constant time. ``readonly`` keys may only GET (and HEAD).
Browsers cannot set headers on a WebSocket, so the WebSocket also takes ``?api_key=``.
"""

from __future__ import annotations

import hmac

from widgets.server.errors import ApiError

READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def extract_key(headers, query_key: str | None = None) -> str | None:
    """The key a request presents: Bearer first, then X-API-Key, then the query (WebSocket only).

    Returns ``None`` when no credential is presented at all; raises a 401 for a malformed
    ``Authorization`` header (wrong scheme, empty token).
    """
    authz = headers.get("Authorization")
    if authz is not None:
        scheme, _, token = authz.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "malformed Authorization header: expected 'Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="prism"'},
            )
        return token.strip()
    key = headers.get("X-API-Key")
    if key is not None:
        if not key.strip():
            raise ApiError(
                401, "empty X-API-Key header", headers={"WWW-Authenticate": 'Bearer realm="prism"'}
            )
        return key.strip()
    if query_key is not None:
        return query_key
    return None


def authenticate(keys: dict[str, str], key: str | None) -> str:
    """The role of ``key``; raises a 401 when it is missing or unknown."""
    if key is None:
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": 'Bearer realm="prism"'},
        )
    role = None
    candidate = key.encode()
    for (
        known,
        known_role,
    ) in keys.items():  # compare with every key: time does not leak which matched
        if hmac.compare_digest(candidate, known.encode()):
            role = known_role
    if role is None:
        raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": 'Bearer realm="prism"'})
    return role


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
