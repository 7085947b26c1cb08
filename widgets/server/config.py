"""Server configuration from the environment; command-line flags override it."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from widgets.server.security import parse_networks

ROLES = ("admin", "user", "readonly")


class ConfigError(ValueError):
    """A configuration value that cannot be used (the message names the variable)."""


def parse_api_keys(text: str) -> dict[str, str]:
    """``"key:role,key:role"`` -> ``{key: role}``; a key without a role is a ``user``."""
    keys: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _, role = item.partition(":")
        key, role = key.strip(), (role.strip() or "user")
        if role not in ROLES:
            raise ConfigError(
                f"PRISM_API_KEYS: role {role!r} for a key is not one of {', '.join(ROLES)}"
            )
        if len(key) < 8:
            raise ConfigError("PRISM_API_KEYS: keys must be at least 8 characters")
        keys[key] = role
    return keys


@dataclass
class Settings:
    """Everything the server needs to start.

    ``api_keys`` maps key to role; ``auth=False`` serves the API and the dashboards without
    keys (an explicit choice, ``--no-auth``). ``rate_limit`` is requests per second per key
    (burst equal to it), ``max_body_mb`` the largest request body accepted (413 beyond).

    Hardening (environment variable in brackets):

    - ``cors_origins`` [``PRISM_CORS_ORIGINS``, comma-separated ``scheme://host[:port]``]:
      the other origins whose pages may call the API (CORS) and open the WebSockets; none by
      default (same-origin pages and non-browser clients only);
    - ``metrics_key`` [``PRISM_METRICS_KEY``]: when set, ``/metrics`` needs it (or an admin key);
    - ``auth_fail_burst`` / ``auth_fail_per_s`` [``PRISM_AUTH_FAIL_BURST``,
      ``PRISM_AUTH_FAIL_PER_S``]: wrong credentials one client address may present before it
      gets 429s, and how fast that allowance comes back;
    - ``header_timeout_s`` [``PRISM_HEADER_TIMEOUT_S``]: a connection that has not sent a whole
      request head within this many seconds (also: an idle keep-alive connection) is closed;
      ``body_timeout_s`` [``PRISM_BODY_TIMEOUT_S``] the same for the body;
    - ``ws_per_key`` [``PRISM_WS_PER_KEY``]: event WebSockets one key (or, without auth, one
      address) may hold open;
    - ``max_sessions`` / ``max_sessions_per_client`` [``PRISM_MAX_SESSIONS``,
      ``PRISM_MAX_SESSIONS_PER_CLIENT``]: live dashboard sessions, in all and per address;
      ``session_workers`` [``PRISM_SESSION_WORKERS``]: threads that build them;
    - ``max_json_depth`` / ``max_array_items`` [``PRISM_MAX_JSON_DEPTH``,
      ``PRISM_MAX_ARRAY_ITEMS``]: nesting and array length of a request body (400 beyond);
    - ``cookie_secret`` [``PRISM_COOKIE_SECRET``]: signs dashboard session cookies (random per
      start when unset, so a restart logs browsers out); ``login_link``
      [``PRISM_LOGIN_LINK=0`` turns it off]: print a one-time admin sign-in link for the
      dashboards at start-up (turn it off where logs are shipped elsewhere).

    Scale-out:

    - ``processes`` [``PRISM_WORKERS``, ``--workers``]: server processes sharing one port;
      ``workers`` is the compute threads of each;
    - ``store_url`` [``PRISM_STORE_URL``]: ``sqlite:///path`` or ``postgresql://...``; unset,
      the SQLite file under ``data_dir`` (in memory without one);
    - ``redis_url`` [``PRISM_REDIS_URL``]: Redis shared by every process for rate limits,
      events, the LLM cache and fleet-wide metrics; unset, all of it stays in the process;
    - ``trusted_proxies`` [``PRISM_TRUSTED_PROXIES``, comma-separated addresses or CIDRs]: the
      reverse proxies (an ingress, a load balancer) whose ``X-Forwarded-For`` names the client;
      none by default (every connection's own address is its client's).
    """

    address: str = "127.0.0.1"
    port: int = 5006
    auth: bool = True
    api_keys: dict[str, str] = field(default_factory=dict)
    generated_key: str | None = None
    rate_limit: float = 100.0
    rate_burst: float = 100.0
    max_body_mb: float = 16.0
    data_dir: Path | None = None
    backend: str = "numpy"
    workers: int = max(2, min(8, os.cpu_count() or 2))  # compute threads per process
    processes: int = 1
    store_url: str | None = None
    redis_url: str | None = None
    trusted_proxies: list = field(default_factory=list)  # ipaddress networks
    status_interval_s: float = 5.0
    dashboards: bool = True
    cors_origins: list[str] = field(default_factory=list)
    metrics_key: str | None = None
    auth_fail_burst: float = 20.0
    auth_fail_per_s: float = 0.5
    header_timeout_s: float = 20.0
    body_timeout_s: float = 60.0
    ws_per_key: int = 256
    max_sessions: int = 100
    max_sessions_per_client: int = 10
    session_workers: int = 1
    max_json_depth: int = 64
    max_array_items: int = 4_194_304
    cookie_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    login_link: bool = True

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        """Read ``PRISM_*`` variables, then apply ``overrides`` (flags) that are not ``None``."""
        env = dict(os.environ if env is None else env)
        s = cls()
        s.api_keys = parse_api_keys(env.get("PRISM_API_KEYS", ""))
        s.rate_limit = _positive_float(env, "PRISM_RATE_LIMIT", s.rate_limit)
        s.rate_burst = _positive_float(env, "PRISM_RATE_BURST", s.rate_limit)
        s.max_body_mb = _positive_float(env, "PRISM_MAX_BODY_MB", s.max_body_mb)
        if env.get("PRISM_DATA_DIR"):
            s.data_dir = Path(env["PRISM_DATA_DIR"])
        s.store_url = env.get("PRISM_STORE_URL") or None
        s.redis_url = env.get("PRISM_REDIS_URL") or None
        s.processes = _positive_int(env, "PRISM_WORKERS", s.processes)
        try:
            s.trusted_proxies = parse_networks(env.get("PRISM_TRUSTED_PROXIES", ""))
        except ValueError as exc:
            raise ConfigError(f"PRISM_TRUSTED_PROXIES: {exc}") from None
        s.backend = env.get("PRISM_BACKEND", s.backend) or "numpy"
        s.cors_origins = parse_origins(env.get("PRISM_CORS_ORIGINS", ""))
        s.metrics_key = env.get("PRISM_METRICS_KEY") or None
        for name, attr in (
            ("PRISM_AUTH_FAIL_BURST", "auth_fail_burst"),
            ("PRISM_AUTH_FAIL_PER_S", "auth_fail_per_s"),
            ("PRISM_HEADER_TIMEOUT_S", "header_timeout_s"),
            ("PRISM_BODY_TIMEOUT_S", "body_timeout_s"),
        ):
            setattr(s, attr, _positive_float(env, name, getattr(s, attr)))
        for name, attr in (
            ("PRISM_WS_PER_KEY", "ws_per_key"),
            ("PRISM_MAX_SESSIONS", "max_sessions"),
            ("PRISM_MAX_SESSIONS_PER_CLIENT", "max_sessions_per_client"),
            ("PRISM_SESSION_WORKERS", "session_workers"),
            ("PRISM_MAX_JSON_DEPTH", "max_json_depth"),
            ("PRISM_MAX_ARRAY_ITEMS", "max_array_items"),
        ):
            setattr(s, attr, _positive_int(env, name, getattr(s, attr)))
        if env.get("PRISM_COOKIE_SECRET"):
            if len(env["PRISM_COOKIE_SECRET"]) < 32:
                raise ConfigError("PRISM_COOKIE_SECRET must be at least 32 characters")
            s.cookie_secret = env["PRISM_COOKIE_SECRET"]
        if env.get("PRISM_LOGIN_LINK", "").strip().lower() in ("0", "false", "no", "off"):
            s.login_link = False
        for name, value in overrides.items():
            if value is not None:
                setattr(s, name, value)
        if (
            "rate_limit" in overrides
            and overrides["rate_limit"] is not None
            and "PRISM_RATE_BURST" not in env
        ):
            s.rate_burst = s.rate_limit
        if s.auth and not s.api_keys:
            # Never run open by accident: make one admin key and let the CLI print it once.
            s.generated_key = "prism_" + secrets.token_urlsafe(24)
            s.api_keys = {s.generated_key: "admin"}
        return s


def parse_origins(text: str) -> list[str]:
    """``"https://a.example, http://b:8080"`` -> the origins, checked and without a trailing slash.

    An origin is ``scheme://host[:port]`` exactly as a browser sends it in ``Origin``; ``*``
    (any origin) is accepted only on its own, as an explicit choice.
    """
    out: list[str] = []
    for item in (text or "").split(","):
        item = item.strip().rstrip("/")
        if not item:
            continue
        if item != "*" and not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", item):
            raise ConfigError(
                f"PRISM_CORS_ORIGINS: {item!r} is not an origin like https://host[:port]"
            )
        out.append(item.lower())
    if "*" in out and len(out) > 1:
        raise ConfigError("PRISM_CORS_ORIGINS: '*' means any origin; list it alone")
    return out


def _positive_int(env: dict[str, str], name: str, default: int) -> int:
    return _positive(env, name, default, int, "a whole number")


def _positive_float(env: dict[str, str], name: str, default: float) -> float:
    return _positive(env, name, default, float, "a number")


def _positive(env: dict[str, str], name: str, default: Any, kind: type, what: str) -> Any:
    """``env[name]`` read as ``kind`` and checked positive; ``default`` when unset or empty."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {what}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value
