"""The GPU platform service: device status and readings, the sampled utilisation history and
benchmark runs kept in the store (kind ``gpu_benchmark``, so their history survives a restart).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from prism_kernels import gpu
from prism_kernels.events import EventBus
from prism_kernels.service import TIMING_KEY, DomainService
from prism_kernels.store import Store
from prism_kernels.system import UtilizationMonitor, system_readings

MAX_RUNS = 1000


class GpuService(DomainService):
    """Readings, the utilisation history the server samples each second, and benchmark runs."""

    domain = "gpu"

    def __init__(self, store: Store | None = None, bus: EventBus | None = None) -> None:
        super().__init__(store, bus)
        self.monitor = UtilizationMonitor()
        self.runs_kept = self.collection("gpu_benchmark", max_items=MAX_RUNS, label="benchmark run")

    def status(self) -> dict[str, Any]:
        """Devices, driver and runtime versions, and the active backend."""
        return gpu.gpu_status()

    def readings(self) -> dict[str, Any]:
        """Current GPU and host readings (one device query)."""
        g = gpu.gpu_readings()
        s = system_readings(g)
        return {"gpu": g, "system": s, "timestamp": s["timestamp"]}

    def utilization(self, seconds: float | None = None) -> dict[str, Any]:
        """The sampled history of the last ``seconds`` (all when ``None``) and its summary."""
        return self.monitor.history(seconds)

    def benchmark(
        self,
        benchmark_type: str = "all",
        size: int | None = None,
        dtype: str = "float32",
        repeats: int = 3,
    ) -> dict[str, Any]:
        """Run :func:`prism_kernels.gpu.run_benchmark` and store the run.

        Returns ``{run_id, created, benchmark_type, results, computation_time_ms}``.
        """
        with self.timed("benchmark") as t:
            rows = [r.to_dict() for r in gpu.run_benchmark(benchmark_type, size, dtype, repeats)]
        run = {
            "run_id": uuid.uuid4().hex[:12],
            "created": time.time(),
            "benchmark_type": benchmark_type,
            "results": rows,
            TIMING_KEY: t.ms,
        }
        self.runs_kept.put(run["run_id"], run)
        return run

    def runs(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Stored runs, newest first, and how many there are."""
        return {
            "runs": [doc for _, doc in self.runs_kept.page(limit, offset)],
            "total": self.runs_kept.count(),
        }

    def run(self, run_id: str) -> dict[str, Any]:
        """One stored run; raises :class:`~prism_kernels.errors.NotFound`."""
        return self.runs_kept.get(run_id)
