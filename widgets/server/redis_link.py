"""The server's connection to Redis (``PRISM_REDIS_URL``) and what it knows about its health.

Every user of Redis in the server (the shared rate limiter, the event and cache relay, the
fleet-wide metrics) goes through one :class:`RedisLink`: short socket timeouts (a Redis that
hangs costs a request at most ``timeout_s``), no retries inside the client, and one notion of
"up". An operation that fails calls :meth:`RedisLink.failed`: the link is down, the caller falls
back to its in-process path, ``prism_redis_fallbacks_total{what=...}`` counts it and a WARNING is
logged (at most once per ``warn_every_s`` for each ``what``, never once per request). While down,
:meth:`RedisLink.available` says no until a short back-off has passed; then one operation tries
Redis again, and the first that succeeds (:meth:`RedisLink.succeeded`) brings the link up:
sharing resumes without a restart.

Messages name the URL with its password replaced by ``***``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from prism_kernels.redact import redact_url

log = logging.getLogger("prism.server.redis")

#: What failures of Redis look like to the client (refused, reset, timed out, a server that is
#: loading or read-only after a restart).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

#: What each user of Redis does while it is unreachable (the warning says it).
FALLBACK_TEXT = {
    "ratelimit": "rate limits now hold per process",
    "events": "events reach this process's subscribers only",
    "subscribe": "events of other processes do not arrive here",
    "llm_cache": "new LLM cache entries stay in this process",
    "metrics": "fleet-wide counts are kept here until Redis answers",
    "ping": "serving on in-process",
}


class RedisLink:
    """A Redis client with short timeouts, its up/down state, back-off and fallback counts.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
    prefix : str
        Prepended to every key and channel this server uses (``prism:``).
    timeout_s : float
        Connect and read timeout of each command (s): how long a request can wait on a hung Redis.
    backoff_s : float
        After a failure, how long the link stays down before Redis is tried again (s).
    warn_every_s : float
        At most one WARNING per ``what`` in this many seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "prism:",
        timeout_s: float = 0.1,
        backoff_s: float = 1.0,
        warn_every_s: float = 30.0,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self.prefix = prefix
        self.timeout_s = float(timeout_s)
        self.backoff_s = float(backoff_s)
        self.warn_every_s = float(warn_every_s)
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0),
            max_connections=max_connections,
        )
        self.up = False  # until the first operation succeeds
        self.fallbacks: Counter[str] = Counter()
        self._retry_at = 0.0
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, *parts: str) -> str:
        """A key (or channel) name under this server's prefix."""
        return self.prefix + ":".join(parts)

    def pubsub_client(self) -> redis.Redis:
        """A client for a blocking subscription (no read timeout: messages come when they come;
        its health checks notice a server that went away)."""
        return redis.Redis.from_url(
            self.url,
            socket_timeout=None,
            socket_connect_timeout=max(self.timeout_s, 0.5),
            retry=Retry(NoBackoff(), 0),
            health_check_interval=5,
        )

    def available(self) -> bool:
        """Whether to try Redis now: up, or down with its back-off over."""
        return self.up or time.monotonic() >= self._retry_at

    def succeeded(self) -> None:
        """An operation on Redis worked: the link is up (logged when it was down)."""
        if not self.up:
            with self._lock:
                was_down = not self.up and self._retry_at > 0.0
                self.up = True
                self._warned.clear()
            if was_down:
                log.warning("Redis at %s is reachable again: sharing resumes", self.safe_url)

    def failed(
        self,
        what: str,
        exc: BaseException | None = None,
        count: int = 1,
        reason: str | None = None,
    ) -> None:
        """An operation for ``what`` failed (``exc``: the link goes down for the back-off) or was
        skipped (while down, or for ``reason``): fall back, count, warn.

        ``count`` is how many items fell back (events not relayed, checks made locally).
        """
        now = time.monotonic()
        with self._lock:
            if count:
                self.fallbacks[what] += count
            if exc is not None:
                self.up = False
                self._retry_at = now + self.backoff_s
            last = self._warned.get(what)
            warn = last is None or now - last >= self.warn_every_s
            if warn:
                self._warned[what] = now
        if warn:
            if exc is not None:
                reason = f"{type(exc).__name__}: {exc}"
            elif reason is None:
                reason = "Redis is down"
            log.warning(
                "Redis at %s unavailable for %s (%s): %s; retrying every %.1f s",
                self.safe_url,
                what,
                redact_message(reason, self.url),
                FALLBACK_TEXT.get(what, "serving on in-process"),
                self.backoff_s,
            )

    def ping(self) -> bool:
        """Try Redis once (when :meth:`available`); whether it answered."""
        if not self.available():
            return False
        try:
            self.client.ping()
        except REDIS_ERRORS as exc:
            self.failed("ping", exc, count=0)
            return False
        self.succeeded()
        return True

    def close(self) -> None:
        self.client.close()


def redact_message(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (if any) replaced by ``***``."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text
