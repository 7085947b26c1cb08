"""The GPU domain: device status, live readings, a sampled utilisation history, a benchmark.

Every number is read from the device (CuPy's runtime API, NVML through ``pynvml`` when
installed) or measured by running work; where a reading is not available it is ``None``.
On a machine without a GPU the status says ``available: false`` and describes the CPU
backend, and the benchmark measures the CPU backend.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from prism_kernels import backend as B
from prism_kernels.errors import InvalidInput


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def _cupy_devices() -> list[dict[str, Any]]:
    import cupy

    out = []
    for i in range(cupy.cuda.runtime.getDeviceCount()):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        with cupy.cuda.Device(i):
            free, total = cupy.cuda.runtime.memGetInfo()
        out.append(
            {
                "id": i,
                "name": props["name"].decode(),
                "compute_capability": [int(props["major"]), int(props["minor"])],
                "total_memory_mb": total / 2**20,
                "free_memory_mb": free / 2**20,
                "used_memory_mb": (total - free) / 2**20,
                "multiprocessors": int(props["multiProcessorCount"]),
            }
        )
    return out


def _torch_devices() -> list[dict[str, Any]]:
    import torch

    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        out.append(
            {
                "id": i,
                "name": p.name,
                "compute_capability": [p.major, p.minor],
                "total_memory_mb": total / 2**20,
                "free_memory_mb": free / 2**20,
                "used_memory_mb": (total - free) / 2**20,
                "multiprocessors": p.multi_processor_count,
            }
        )
    return out


def gpu_status() -> dict[str, Any]:
    """Whether a CUDA device answers, and what it is.

    Returns
    -------
    dict
        ``available``, ``device_count``, ``devices`` (id, name, compute capability, memory in
        MiB), ``driver_version`` and ``runtime_version`` (``None`` when unknown), and
        ``backend``: :func:`prism_kernels.backend.describe` of the active backend.
    """
    devices: list[dict[str, Any]] = []
    driver = runtime = None
    if B._cupy_available():
        import cupy

        devices = _cupy_devices()
        driver = cupy.cuda.runtime.driverGetVersion()
        runtime = cupy.cuda.runtime.runtimeGetVersion()
    elif B._torch_cuda_available():
        import torch

        devices = _torch_devices()
        runtime = torch.version.cuda
    nvml = _nvml()
    if nvml is not None and devices:
        try:
            driver = nvml.nvmlSystemGetDriverVersion()
            for d in devices:
                h = nvml.nvmlDeviceGetHandleByIndex(d["id"])
                d["utilization_percent"] = float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                d["temperature_c"] = float(nvml.nvmlDeviceGetTemperature(h, 0))
        except Exception:
            pass
    return {
        "available": bool(devices),
        "device_count": len(devices),
        "devices": devices,
        "driver_version": None if driver is None else str(driver),
        "runtime_version": None if runtime is None else str(runtime),
        "backend": B.describe(),
        "timestamp": time.time(),
    }


def gpu_readings() -> dict[str, Any]:
    """Current readings of device 0: utilisation, memory, temperature and power.

    Keys are present with ``None`` values when there is no GPU (or no NVML for the
    utilisation, temperature and power counters).
    """
    r: dict[str, Any] = {
        "available": False,
        "utilization_percent": None,
        "memory_utilization_percent": None,
        "memory_used_mb": None,
        "memory_total_mb": None,
        "memory_used_percent": None,
        "temperature_c": None,
        "power_watts": None,
    }
    devices: list[dict[str, Any]] = []
    try:
        if B._cupy_available():
            devices = _cupy_devices()
        elif B._torch_cuda_available():
            devices = _torch_devices()
    except Exception:
        devices = []
    if not devices:
        return r
    d = devices[0]
    r.update(
        available=True,
        memory_used_mb=d["used_memory_mb"],
        memory_total_mb=d["total_memory_mb"],
        memory_used_percent=100.0 * d["used_memory_mb"] / d["total_memory_mb"],
    )
    nvml = _nvml()
    if nvml is not None:
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(0)
            u = nvml.nvmlDeviceGetUtilizationRates(h)
            r["utilization_percent"] = float(u.gpu)
            r["memory_utilization_percent"] = float(u.memory)
            r["temperature_c"] = float(nvml.nvmlDeviceGetTemperature(h, 0))
            r["power_watts"] = nvml.nvmlDeviceGetPowerUsage(h) / 1000.0
        except Exception:
            pass
    return r


BENCHMARK_TYPES = ("matrix_multiply", "fft", "memory_bandwidth", "all")
MAX_MATRIX = 16384
MAX_ELEMENTS = 2**28  # 256 Mi elements: 2 GiB of float64


@dataclass
class BenchmarkResult:
    """One benchmark row; ``success=False`` rows carry the ``error``."""

    benchmark_type: str
    backend: str
    device: str
    size: int
    dtype: str
    repeats: int
    duration_ms: float
    throughput_gflops: float | None
    memory_bandwidth_gb_s: float | None
    operations_per_second: float | None
    success: bool = True
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _time(fn, xp_name: str, repeats: int) -> float:
    fn()  # warm-up (compilation, allocation)
    B.synchronize()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        B.synchronize(out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_benchmark(
    benchmark_type: str = "all",
    size: int | None = None,
    dtype: str = "float32",
    repeats: int = 3,
    backend: str | None = None,
) -> list[BenchmarkResult]:
    """Measure matrix product GFLOP/s, FFT GFLOP/s and memory bandwidth on a backend.

    Parameters
    ----------
    benchmark_type : {"matrix_multiply", "fft", "memory_bandwidth", "all"}
    size : int, optional
        Matrix side for the matrix product (default 1024, at most 16384); the FFT and the
        bandwidth test use ``size * size`` elements.
    dtype : {"float32", "float64"}
    repeats : int
        Timed repetitions (median reported), 1 to 20.
    backend : str, optional
        ``numpy``, ``torch`` or ``cupy`` (default: the configured backend).

    Returns
    -------
    list of BenchmarkResult
        GFLOP/s counts ``2 n^3`` for the product and ``5 N log2 N`` for a complex FFT of
        ``N`` points; bandwidth counts one read and one write of the array.
    """
    if benchmark_type not in BENCHMARK_TYPES:
        raise InvalidInput("benchmark_type", f"must be one of {', '.join(BENCHMARK_TYPES)}")
    if dtype not in ("float32", "float64"):
        raise InvalidInput("dtype", "must be float32 or float64")
    n = 1024 if size is None else int(size)
    if not 1 <= n <= MAX_MATRIX:
        raise InvalidInput("workload_size", f"must be between 1 and {MAX_MATRIX}, got {n}")
    if not 1 <= repeats <= 20:
        raise InvalidInput("repeats", "must be between 1 and 20")
    name = B.resolve_backend(backend)
    xp = B.namespace(name)
    device = B.describe(name)["device"]
    kinds = (
        ("matrix_multiply", "fft", "memory_bandwidth")
        if benchmark_type == "all"
        else (benchmark_type,)
    )
    rng = np.random.default_rng(0)
    itemsize = np.dtype(dtype).itemsize
    results = []

    def row(
        kind: str, size: int, t: float, gflop: float | None, gbyte: float | None, ops: float
    ) -> BenchmarkResult:
        """One result from the median time ``t`` and the work done (GFLOP, GB moved, operations)."""
        return BenchmarkResult(
            kind,
            name,
            device,
            size,
            dtype,
            repeats,
            t * 1e3,
            None if gflop is None else gflop / t,
            None if gbyte is None else gbyte / t,
            ops / t,
        )

    m = min(n * n, MAX_ELEMENTS)
    for kind in kinds:
        try:
            if kind == "matrix_multiply":
                a = B.asarray(rng.standard_normal((n, n)), name, dtype)
                b = B.asarray(rng.standard_normal((n, n)), name, dtype)
                t = _time(lambda a=a, b=b: xp.matmul(a, b), name, repeats)
                results.append(row(kind, n, t, 2.0 * n**3 / 1e9, 3 * n * n * itemsize / 1e9, 1.0))
            elif kind == "fft":
                a = B.asarray(rng.standard_normal(m), name, dtype)
                t = _time(lambda a=a: xp.fft.fft(a), name, repeats)
                results.append(row(kind, m, t, 5.0 * m * math.log2(max(m, 2)) / 1e9, None, 1.0))
            else:
                a = B.asarray(rng.standard_normal(m), name, dtype)
                t = _time(lambda a=a: a * 1.0001, name, repeats)
                results.append(row(kind, m, t, None, 2.0 * m * itemsize / 1e9, m))
        except MemoryError as exc:
            results.append(
                BenchmarkResult(
                    kind,
                    name,
                    device,
                    n,
                    dtype,
                    repeats,
                    0.0,
                    None,
                    None,
                    None,
                    success=False,
                    error=f"out of memory: {exc}",
                )
            )
    return results
