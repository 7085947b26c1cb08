"""Per-key token bucket: ``rate`` tokens per second, at most ``burst`` banked."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # seconds until the bucket is full again
    retry_after_s: float  # seconds until one token is available (0 when allowed)

    def headers(self) -> dict[str, str]:
        h = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_s)),
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
        return Decision(
            allowed=allowed,
            limit=int(self.burst),
            remaining=int(tokens),
            reset_s=(self.burst - tokens) / self.rate,
            retry_after_s=0.0 if allowed else (1.0 - tokens) / self.rate,
        )
