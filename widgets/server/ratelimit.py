"""Per-key token bucket (``rate`` tokens per second, at most ``burst`` banked) and the
per-address throttle of wrong credentials."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # seconds until the bucket is full again
    retry_after_s: float  # seconds until one token is available (0 when allowed)

    @classmethod
    def of_bucket(cls, allowed: bool, tokens: float, burst: float, rate: float) -> Decision:
        """The decision of a token bucket holding ``tokens`` after the check (``burst`` at
        most, refilled at ``rate`` a second)."""
        return cls(
            allowed,
            int(burst),
            int(tokens),
            (burst - tokens) / rate,
            0.0 if allowed else (1.0 - tokens) / rate,
        )

    def headers(self) -> dict[str, str]:
        h = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(-int(-self.reset_s // 1)),  # ceil
        }
        if not self.allowed:
            h["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return h


class RateLimiter:
    """Token buckets keyed by API key (thread-safe; state is per process)."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def check(self, key: str) -> Decision:
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            else:
                self.refused += 1
            self._buckets[key] = (tokens, now)
        return Decision.of_bucket(allowed, tokens, self.burst, self.rate)


class FailureThrottle:
    """Wrong credentials per client address: ``burst`` allowed, coming back at ``per_s`` a second.

    An address that has spent its allowance gets 429s for every authenticated request (a valid
    key included: otherwise the throttle would not slow a guesser down) until one comes back.
    At most ``max_clients`` addresses are remembered; the least recently seen go first, and an
    address whose allowance is full again is forgotten. Used on the event loop only.
    """

    def __init__(
        self, burst: float, per_s: float, max_clients: int = 100_000, clock=time.monotonic
    ) -> None:
        self.burst = float(burst)
        self.per_s = float(per_s)
        self.max_clients = max_clients
        self._clock = clock
        self._spent: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, t)
        self.refused = 0

    def _tokens(self, client: str, now: float) -> float:
        entry = self._spent.get(client)
        if entry is None:
            return self.burst
        tokens = min(self.burst, entry[0] + (now - entry[1]) * self.per_s)
        if tokens >= self.burst:
            del self._spent[client]
        return tokens

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 when it may now)."""
        if not self._spent:
            return 0.0
        now = self._clock()
        tokens = self._tokens(client, now)
        if tokens >= 1.0:
            return 0.0
        self.refused += 1
        return (1.0 - tokens) / self.per_s

    def failed(self, client: str) -> None:
        """Record one wrong credential from ``client``."""
        now = self._clock()
        tokens = self._tokens(client, now) - 1.0
        self._spent[client] = (tokens, now)
        self._spent.move_to_end(client)
        while len(self._spent) > self.max_clients:
            self._spent.popitem(last=False)
