"""``/api/v1/gpu``: device status, live readings, the sampled history, a real benchmark."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, RootModel, field_validator

from prism_kernels import gpu
from prism_kernels.gpu import GpuService, UtilizationMonitor
from prism_kernels.names import snake_case
from prism_kernels.system import system_readings
from widgets.server.models import ApiModel, ApiResponse
from widgets.server.routing import Request, RouteGroup

ROUTES = RouteGroup("gpu", "GPU and backend monitoring")


class GpuStatus(ApiResponse):
    available: bool
    device_count: int
    devices: list[dict]
    driver_version: str | None
    runtime_version: str | None
    backend: dict
    timestamp: float


@ROUTES.get(
    "/status",
    response=GpuStatus,
    summary="Device status, or available=false with the CPU backend described",
)
def status(req: Request) -> dict:
    return gpu.gpu_status()


class GpuMetrics(ApiResponse):
    gpu: dict
    system: dict
    timestamp: float


@ROUTES.get("/metrics", response=GpuMetrics, summary="Current GPU and host readings")
def metrics(req: Request) -> dict:
    s = system_readings()
    return {"gpu": gpu.gpu_readings(), "system": s, "timestamp": s["timestamp"]}


class UtilizationQuery(ApiModel):
    seconds: float | None = Field(
        None, gt=0, le=86400, description="Only the last N seconds of samples"
    )


class Utilization(ApiResponse):
    time_series: list[dict]
    start_time: float | None
    end_time: float | None
    samples: int
    summary: dict


@ROUTES.get(
    "/utilization",
    query=UtilizationQuery,
    response=Utilization,
    summary="Rolling history sampled by the server once a second (never synthesized)",
)
def utilization(req: Request) -> dict:
    return req.service(UtilizationMonitor).history(req.query.seconds)


class BenchmarkRequest(ApiModel):
    benchmark_type: Literal["matrix_multiply", "fft", "memory_bandwidth", "all"] = "all"
    workload_size: int | None = Field(
        None,
        ge=1,
        le=2048,
        description="Matrix side (default 1024); FFT and bandwidth use its square",
    )
    dtype: Literal["float32", "float64"] = "float32"
    repeats: int = Field(3, ge=1, le=10)
    duration_secs: float | None = Field(
        None, description="Accepted for compatibility; the repeats decide the duration"
    )

    @field_validator("benchmark_type", mode="before")
    @classmethod
    def _snake(cls, v: object) -> object:
        # The original's clients also send PascalCase ("MatrixMultiply").
        return snake_case(v)


class BenchmarkRow(ApiResponse):
    run_id: str
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
    success: bool
    error: str | None


class BenchmarkResults(RootModel[list[BenchmarkRow]]):
    """One row per test (the original API's ``data`` was an array too)."""


@ROUTES.post(
    "/benchmark",
    request=BenchmarkRequest,
    response=BenchmarkResults,
    summary="Run a matrix product, FFT and memory-bandwidth test on the active backend",
)
def benchmark(req: Request) -> dict:
    b = req.body
    run = req.service(GpuService).benchmark(b.benchmark_type, b.workload_size, b.dtype, b.repeats)
    return [{"run_id": run["run_id"], **row} for row in run["results"]]


class BenchmarkRun(ApiResponse):
    run_id: str
    created: float
    benchmark_type: str
    results: list[dict]


class BenchmarkRuns(ApiResponse):
    runs: list[BenchmarkRun]
    total: int


class Page(ApiModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=1_000_000)


@ROUTES.get(
    "/benchmarks", query=Page, response=BenchmarkRuns, summary="Stored benchmark runs, newest first"
)
def benchmark_runs(req: Request) -> dict:
    svc = req.service(GpuService)
    return {"runs": svc.runs(req.query.limit, req.query.offset), "total": svc.store.count(svc.KIND)}


@ROUTES.get(
    "/benchmark/{run_id}",
    response=BenchmarkRun,
    summary="One stored benchmark run (404 when unknown)",
)
def benchmark_run(req: Request) -> dict:
    return req.service(GpuService).run(req.path["run_id"])
