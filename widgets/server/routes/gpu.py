"""``/api/v1/gpu``: device status, live readings, the sampled history, a real benchmark."""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from prism_kernels.gpu_service import GpuService
from widgets.server.models import ApiModel, ApiResponse, NameChoice, Page
from widgets.server.routing import Request, RouteGroup

ROUTES = RouteGroup("gpu", "GPU and backend monitoring", service=GpuService)


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
    return req.service(GpuService).status()


class GpuMetrics(ApiResponse):
    gpu: dict
    system: dict
    timestamp: float


@ROUTES.get("/metrics", response=GpuMetrics, summary="Current GPU and host readings")
def metrics(req: Request) -> dict:
    return req.service(GpuService).readings()


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
    return req.service(GpuService).utilization(req.query.seconds)


class BenchmarkRequest(ApiModel):
    # The original's clients also send PascalCase ("MatrixMultiply").
    benchmark_type: NameChoice("matrix_multiply", "fft", "memory_bandwidth", "all") = "all"
    workload_size: int | None = Field(
        None,
        ge=1,
        le=2048,
        description="Matrix side (default 1024); FFT and bandwidth use its square",
    )
    dtype: NameChoice("float32", "float64") = "float32"
    repeats: int = Field(3, ge=1, le=10)
    duration_secs: float | None = Field(
        None, description="Accepted for compatibility; the repeats decide the duration"
    )

    def args(self) -> dict[str, Any]:
        """The service's arguments."""
        return {
            "benchmark_type": self.benchmark_type,
            "size": self.workload_size,
            "dtype": self.dtype,
            "repeats": self.repeats,
        }


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

    @classmethod
    def of_run(cls, run: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows of a stored run, each tagged with the run's id."""
        return [{"run_id": run["run_id"], **row} for row in run["results"]]


@ROUTES.post(
    "/benchmark",
    request=BenchmarkRequest,
    response=BenchmarkResults,
    summary="Run a matrix product, FFT and memory-bandwidth test on the active backend",
    example={"benchmark_type": "matrix_multiply", "workload_size": 256, "repeats": 2},
)
def benchmark(req: Request) -> list:
    return BenchmarkResults.of_run(req.service(GpuService).benchmark(**req.body.args()))


class BenchmarkRun(ApiResponse):
    run_id: str
    created: float
    benchmark_type: str
    results: list[dict]
    computation_time_ms: float | None = None


class BenchmarkRuns(ApiResponse):
    runs: list[BenchmarkRun]
    total: int


@ROUTES.get(
    "/benchmarks", query=Page, response=BenchmarkRuns, summary="Stored benchmark runs, newest first"
)
def benchmark_runs(req: Request) -> dict:
    return req.service(GpuService).runs(req.query.limit, req.query.offset)


@ROUTES.get(
    "/benchmark/{run_id}",
    response=BenchmarkRun,
    summary="One stored benchmark run (404 when unknown)",
)
def benchmark_run(req: Request) -> dict:
    return req.service(GpuService).run(req.path["run_id"])
