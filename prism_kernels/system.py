"""Readings of the machine PRISM runs on: CPU, memory, and the GPU when there is one.

Real readings only (psutil and the GPU's own counters); a reading that cannot be taken is
``None``, never invented.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from prism_kernels import gpu

_PROCESS = psutil.Process(os.getpid())
_STARTED = time.time()
_CPU_MIN_INTERVAL_S = 0.5
_cpu_last: tuple[float, float] | None = None  # (time, percent) of the last real reading


def _cpu_percent() -> float:
    """CPU use since the previous reading; readings closer than 0.5 s reuse the last value.

    ``psutil.cpu_percent(interval=None)`` measures since its previous call, whoever made it:
    two callers a few milliseconds apart would see 0 % or 100 % noise.
    """
    global _cpu_last
    now = time.monotonic()
    if _cpu_last is not None and now - _cpu_last[0] < _CPU_MIN_INTERVAL_S:
        return _cpu_last[1]
    pct = psutil.cpu_percent(interval=None)
    _cpu_last = (now, pct)
    return pct


def system_readings() -> dict[str, Any]:
    """CPU and memory use now, plus the GPU's when one is present.

    Returns
    -------
    dict
        ``cpu_usage`` (percent of all cores since the previous call), ``memory_usage``
        (percent of RAM in use), ``process_rss_bytes``, ``load_average`` (1, 5, 15 min),
        ``gpu_usage`` (percent, ``None`` without a GPU or NVML) and ``gpu_memory_usage``
        (percent, ``None`` without a GPU), ``timestamp`` (Unix seconds).
    """
    vm = psutil.virtual_memory()
    g = gpu.gpu_readings()
    return {
        "timestamp": time.time(),
        "cpu_usage": _cpu_percent(),
        "cpu_count": psutil.cpu_count(),
        "memory_usage": vm.percent,
        "memory_total_bytes": vm.total,
        "memory_available_bytes": vm.available,
        "process_rss_bytes": _PROCESS.memory_info().rss,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "uptime_s": time.time() - _STARTED,
        "gpu_usage": g.get("utilization_percent"),
        "gpu_memory_usage": g.get("memory_used_percent"),
    }
