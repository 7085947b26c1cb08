"""What the server processes share through Redis (``PRISM_REDIS_URL``), in one place.

:class:`SharedState` holds the :class:`~widgets.server.redis_link.RedisLink` and builds on it
the shared rate limiter (:mod:`widgets.server.redis_ratelimit`), the event and LLM-cache relay
(:mod:`widgets.server.redis_relay`) and the fleet-wide metrics
(:mod:`widgets.server.redis_metrics`). :class:`~widgets.server.app.ServerApp` makes one only when
``settings.redis_url`` is set; without it nothing of this runs and every figure stays in-process.
Redis unreachable at start-up or later is not an error: each part falls back in-process and
resumes sharing once Redis answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prism_kernels.runtime import Runtime
from widgets.server.metrics import ServerMetrics
from widgets.server.redis_link import RedisLink
from widgets.server.redis_metrics import FleetMetrics, RedisCollector
from widgets.server.redis_ratelimit import SharedRateLimiter
from widgets.server.redis_relay import RedisRelay

log = logging.getLogger("prism.server.redis")


class SharedState:
    """The Redis-backed parts of one server process.

    Parameters
    ----------
    url : str
        ``PRISM_REDIS_URL``.
    runtime : Runtime
        This process's runtime (its bus is relayed, its LLM service's cache shared).
    metrics : ServerMetrics
        Gets ``prism_redis_*`` and ``prism_fleet_*``.
    prefix : str
        Prefix of every key and channel (processes sharing state use the same one).
    """

    def __init__(
        self,
        url: str,
        runtime: Runtime,
        metrics: ServerMetrics,
        *,
        prefix: str = "prism:",
        timeout_s: float = 0.1,
        backoff_s: float = 1.0,
        flush_s: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.link = RedisLink(url, prefix=prefix, timeout_s=timeout_s, backoff_s=backoff_s)
        self.relay = RedisRelay(self.link, runtime.bus)
        self.fleet = FleetMetrics(self.link, interval_s=flush_s, origin=self.relay.origin)
        metrics.attach_fleet(self.fleet, RedisCollector(self.link, self.fleet))
        self._started = False

    def limiter(self, rate: float, burst: float | None = None) -> SharedRateLimiter:
        """The rate limiter every process sharing this Redis enforces together."""
        return SharedRateLimiter(self.link, rate, burst)

    def start(self, websocket_count: Callable[[], float] | None = None) -> None:
        """Start the relay and the metrics flush (threads; nothing here waits on Redis).

        ``websocket_count`` reads this process's open WebSockets (summed over the processes as
        ``prism_fleet_websocket_connections``).
        """
        if self._started:
            return
        self._started = True
        if websocket_count is not None:
            self.fleet.add_gauge("websocket_connections", websocket_count)
        from prism_kernels.llm.service import LlmService

        def llm() -> Any:
            # Built now (in the relay's thread), not on the first LLM request: cache entries
            # from other processes are then in place before that request looks.
            return self.runtime.service(LlmService)

        self.relay.start(llm_lookup=llm)
        self.fleet.start()
        log.info("sharing limits, events, LLM cache and metrics through %s", self.link.safe_url)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.relay.stop()
        self.fleet.stop()
        self.link.close()
