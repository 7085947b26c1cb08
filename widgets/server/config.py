"""Server configuration from the environment; command-line flags override it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

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

    ``api_keys`` maps key to role; ``auth=False`` serves the API without keys (an explicit
    choice, ``--no-auth``). ``rate_limit`` is requests per second per key (burst equal to it),
    ``max_body_mb`` the largest request body accepted (413 beyond).
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
    workers: int = max(2, min(8, os.cpu_count() or 2))
    status_interval_s: float = 5.0
    dashboards: bool = True
    allowed_origins: list[str] = field(default_factory=list)

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
        s.backend = env.get("PRISM_BACKEND", s.backend) or "numpy"
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


def _positive_float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value
