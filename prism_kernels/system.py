"""Readings of the machine PRISM runs on: CPU, memory, and the GPU when there is one.

Real readings only (psutil and the GPU's own counters); a reading that cannot be taken is
``None``, never invented.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any

import numpy as np
import psutil

from prism_kernels import gpu

_PROCESS = psutil.Process(os.getpid())
_STARTED = time.time()
_CPU_MIN_INTERVAL_S = 0.5
_cpu_last: tuple[float, float] | None = None  # (time, percent) of the last real reading
_cpu_lock = threading.Lock()
psutil.cpu_percent(interval=None)  # prime the counter: the next call measures from here


def _cpu_percent() -> float:
    """CPU use since the previous reading; readings closer than 0.5 s reuse the last value.

    ``psutil.cpu_percent(interval=None)`` measures since its previous call, whoever made it:
    two callers a few milliseconds apart would see 0 % or 100 % noise, so callers share one
    reading under a lock. The counter is primed at import, so the first reading covers the
    time since then (psutil's very first call returns a meaningless 0.0).
    """
    global _cpu_last
    with _cpu_lock:
        now = time.monotonic()
        if _cpu_last is not None and now - _cpu_last[0] < _CPU_MIN_INTERVAL_S:
            return _cpu_last[1]
        pct = psutil.cpu_percent(interval=None)
        _cpu_last = (now, pct)
        return pct


def system_readings(gpu_reading: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU and memory use now, plus the GPU's when one is present.

    Parameters
    ----------
    gpu_reading : dict, optional
        A :func:`prism_kernels.gpu.gpu_readings` result taken just before (saves a second
        query of the device).

    Returns
    -------
    dict
        ``cpu_usage`` (percent of all cores since the previous call), ``memory_usage``
        (percent of RAM in use), ``process_rss_bytes``, ``load_average`` (1, 5, 15 min),
        ``gpu_usage`` (percent, ``None`` without a GPU or NVML) and ``gpu_memory_usage``
        (percent, ``None`` without a GPU), ``timestamp`` (Unix seconds).
    """
    vm = psutil.virtual_memory()
    g = gpu_reading if gpu_reading is not None else gpu.gpu_readings()
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


class UtilizationMonitor:
    """A rolling history of readings, sampled by whoever owns it (the server, every second).

    One sample reads the device once (``last_gpu``) and the host once (``last_system``).

    Parameters
    ----------
    capacity : int
        Samples kept (600 = ten minutes at one per second).
    """

    def __init__(self, capacity: int = 600) -> None:
        self._samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.last_gpu: dict[str, Any] = {}
        self.last_system: dict[str, Any] = {}

    def sample(self) -> dict[str, Any]:
        """Take one reading now and append it to the history."""
        g = gpu.gpu_readings()
        s = system_readings(g)
        point = {
            "timestamp": time.time(),
            "compute_utilization": g["utilization_percent"],
            "memory_utilization": g["memory_used_percent"],
            "temperature": g["temperature_c"],
            "power_watts": g["power_watts"],
            "cpu_utilization": s["cpu_usage"],
            "host_memory_utilization": s["memory_usage"],
        }
        with self._lock:
            self._samples.append(point)
            self.last_gpu, self.last_system = g, s
        return point

    def history(self, seconds: float | None = None) -> dict[str, Any]:
        """Samples of the last ``seconds`` (all when ``None``) and their summary.

        The summary averages only readings that exist; with no GPU its GPU fields are ``None``.
        """
        with self._lock:
            pts = list(self._samples)
        if seconds is not None:
            cutoff = time.time() - seconds
            pts = [p for p in pts if p["timestamp"] >= cutoff]

        def stats(key: str) -> tuple[float | None, float | None]:
            vals = [p[key] for p in pts if p[key] is not None]
            return (float(np.mean(vals)), float(np.max(vals))) if vals else (None, None)

        cu_avg, cu_max = stats("compute_utilization")
        mu_avg, mu_max = stats("memory_utilization")
        cpu_avg, cpu_max = stats("cpu_utilization")
        gpu_vals = [p["compute_utilization"] for p in pts if p["compute_utilization"] is not None]
        return {
            "time_series": pts,
            "start_time": pts[0]["timestamp"] if pts else None,
            "end_time": pts[-1]["timestamp"] if pts else None,
            "samples": len(pts),
            "summary": {
                "avg_compute_utilization": cu_avg,
                "peak_compute_utilization": cu_max,
                "avg_memory_utilization": mu_avg,
                "peak_memory_utilization": mu_max,
                "avg_cpu_utilization": cpu_avg,
                "peak_cpu_utilization": cpu_max,
                "idle_time_percent": (100.0 * sum(v < 5 for v in gpu_vals) / len(gpu_vals))
                if gpu_vals
                else None,
            },
        }
