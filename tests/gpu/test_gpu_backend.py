"""CuPy against NumPy on a CUDA device (``-m gpu``; run by benchmarks/gpu_check.sh). Skipped without one."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend as B
from prism_kernels import gpu

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not B._cupy_available(), reason="needs CuPy and a CUDA device"),
]


def test_asarray_to_numpy_round_trip_on_the_device(rng):
    import cupy

    a = rng.standard_normal((64, 33))
    for dtype in (None, "float32"):
        x = B.asarray(a, backend="cupy", dtype=dtype)
        assert isinstance(x, cupy.ndarray) and x.device.id == 0
        back = B.to_numpy(x)
        assert isinstance(back, np.ndarray)
        np.testing.assert_allclose(back, a.astype(dtype or a.dtype), rtol=1e-6 if dtype else 0)
    assert B.backend_name(B.asarray(a, backend="cupy")) == "cupy"


def test_array_api_kernels_agree_with_numpy(rng):
    a = rng.standard_normal((128, 128))
    b = rng.standard_normal((128, 16))
    x, y = B.asarray(a, backend="cupy"), B.asarray(b, backend="cupy")
    xp = B.get_namespace(x)
    np.testing.assert_allclose(B.to_numpy(xp.matmul(x, y)), a @ b, rtol=1e-10, atol=1e-10)
    spd = a @ a.T + 128 * np.eye(128)
    np.testing.assert_allclose(
        B.to_numpy(xp.linalg.solve(B.asarray(spd, backend="cupy"), y)),
        np.linalg.solve(spd, b),
        rtol=1e-8,
        atol=1e-10,
    )
    np.testing.assert_allclose(B.to_numpy(xp.fft.fft(x[0])), np.fft.fft(a[0]), rtol=1e-9, atol=1e-9)


def test_gpu_status_reports_the_device():
    st = gpu.gpu_status()
    assert st["available"] is True and st["device_count"] >= 1
    d = st["devices"][0]
    assert (
        d["name"] and d["total_memory_mb"] > 0 and 0 <= d["free_memory_mb"] <= d["total_memory_mb"]
    )
    assert st["runtime_version"] is not None
    info = B.describe("cupy")
    assert info["gpu"] is True and info["device"] == "cuda:0"


def test_run_benchmark_on_cupy_matches_the_work_done():
    rows = gpu.run_benchmark("all", size=1024, dtype="float32", repeats=3, backend="cupy")
    assert [r.benchmark_type for r in rows] == ["matrix_multiply", "fft", "memory_bandwidth"]
    assert all(r.success and r.backend == "cupy" and r.device == "cuda:0" for r in rows)
    mm = rows[0]
    # GFLOP/s is exactly 2 n^3 / the median time reported.
    assert mm.throughput_gflops == pytest.approx(
        2 * 1024**3 / (mm.duration_ms / 1e3) / 1e9, rel=1e-9
    )
    assert rows[2].memory_bandwidth_gb_s > 0
    cpu = gpu.run_benchmark(
        "matrix_multiply", size=1024, dtype="float32", repeats=3, backend="numpy"
    )[0]
    print(
        f"matmul 1024 float32: cupy {mm.throughput_gflops:.1f} GFLOP/s, numpy {cpu.throughput_gflops:.1f} GFLOP/s"
    )


def test_gpu_readings_are_real():
    r = gpu.gpu_readings()
    assert r["available"] is True
    assert r["memory_total_mb"] and r["memory_total_mb"] > 0
