"""The rate limit shared by every server process through Redis (``PRISM_REDIS_URL``).

One token bucket per caller, held in Redis and updated by one Lua script per check (``EVALSHA``;
Redis runs a script atomically, so two processes checking the same caller at once cannot both
take the last token). The script reads the time from Redis (``TIME``): processes whose clocks
disagree still refill the bucket at the same rate. A bucket is a hash ``{t, n}`` under
``prism:rl:<identity>`` (the identity is the hash of the key the server uses everywhere,
:func:`widgets.server.auth.key_id`: no API key reaches Redis) and expires once it would be full
again, so idle callers leave nothing behind.

When Redis fails or times out the check is answered by an in-process
:class:`~widgets.server.ratelimit.RateLimiter` with the same rate and burst (limits then hold per
process), counted as ``prism_redis_fallbacks_total{what="ratelimit"}``; after the link's back-off
the next check tries Redis again, and once it answers the limit is shared again.
"""

from __future__ import annotations

import math

from widgets.server.ratelimit import Decision, RateLimiter
from widgets.server.redis_link import REDIS_ERRORS, RedisLink

#: KEYS[1] the bucket; ARGV rate (tokens/s), burst, expiry (ms). Returns {allowed, tokens}.
TOKEN_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 't', 'n')
local last = tonumber(b[1])
local tokens = tonumber(b[2])
if last == nil or tokens == nil then
  last = now
  tokens = burst
end
local elapsed = now - last
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', now), 'n', string.format('%.6f', tokens))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return {allowed, string.format('%.6f', tokens)}
"""


class SharedRateLimiter:
    """Token buckets in Redis, one per identity (``rate`` tokens/s, at most ``burst`` banked).

    :meth:`check` answers like :meth:`RateLimiter.check` (a :class:`Decision`); it falls back to
    an in-process limiter while Redis is unreachable. Thread-safe.
    """

    def __init__(self, link: RedisLink, rate: float, burst: float | None = None) -> None:
        self.link = link
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self.local = RateLimiter(self.rate, self.burst)
        self._script = link.client.register_script(TOKEN_BUCKET_LUA)
        # A bucket left alone this long is full again: it may as well not exist.
        self._expiry_ms = int(math.ceil(self.burst / self.rate * 1000.0)) + 1000
        self._refused_shared = 0

    @property
    def refused(self) -> int:
        """Checks refused by this limiter (shared or fallen back)."""
        return self._refused_shared + self.local.refused

    def check(self, identity: str) -> Decision:
        """Take one token from ``identity``'s bucket (an identity hash, never a raw key)."""
        if self.link.available():
            try:
                allowed, tokens = self._script(
                    keys=[self.link.key("rl", identity)],
                    args=[repr(self.rate), repr(self.burst), self._expiry_ms],
                )
            except REDIS_ERRORS as exc:
                self.link.failed("ratelimit", exc)
            else:
                self.link.succeeded()
                return self._decision(bool(int(allowed)), float(tokens))
        else:
            self.link.failed("ratelimit")
        return self.local.check(identity)

    def _decision(self, allowed: bool, tokens: float) -> Decision:
        if not allowed:
            self._refused_shared += 1
        return Decision.of_bucket(allowed, tokens, self.burst, self.rate)
