"""prism_kernels.backend: the same generic code on NumPy and PyTorch gives the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend as B
from prism_kernels.errors import InvalidInput


def generic_kernel(a, b):
    """A backend-generic computation: batched solve, matmul, reductions, elementwise math."""
    xp = B.get_namespace(a, b)
    x = xp.linalg.solve(a, b[..., None])[..., 0]
    y = xp.matmul(a, xp.exp(-xp.abs(b))[..., None])[..., 0]
    return xp.sum(x * y, axis=-1) + xp.sqrt(xp.mean(x**2, axis=-1))


def test_numpy_and_torch_agree(rng):
    if "torch" not in B.available_backends():
        pytest.skip("PyTorch not installed")
    a = rng.standard_normal((64, 5, 5)) + 5 * np.eye(5)
    b = rng.standard_normal((64, 5))
    ref = generic_kernel(a, b)
    out = generic_kernel(B.asarray(a, "torch"), B.asarray(b, "torch"))
    assert B.backend_name(out) == "torch"
    np.testing.assert_allclose(B.to_numpy(out), ref, rtol=1e-12, atol=1e-12)


def test_namespace_of_plain_data_is_numpy():
    xp = B.get_namespace()
    assert xp.asarray([1.0]).shape == (1,)
    assert B.backend_name(np.zeros(2)) == "numpy"


def test_asarray_roundtrip_and_dtype(xp_name):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    on = B.asarray(a, xp_name, dtype="float32")
    back = B.to_numpy(on)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, a.astype(np.float32))


def test_resolve_backend(monkeypatch):
    monkeypatch.setenv("PRISM_BACKEND", "auto")
    assert B.resolve_backend() in B.BACKENDS
    monkeypatch.setenv("PRISM_BACKEND", "numpy")
    assert B.resolve_backend() == "numpy"
    with pytest.raises(InvalidInput):
        B.resolve_backend("tensorflow")


def test_describe():
    info = B.describe("numpy")
    assert info["backend"] == "numpy" and info["device"] == "cpu" and info["gpu"] is False
    assert "numpy" in info["available_backends"]


def test_tune_host_allocator_is_harmless():
    import platform
    import sys

    applied = B.tune_host_allocator()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert applied is True
    else:
        assert applied is False
    a = np.ones((1000, 6, 6))
    assert float((a - a @ a).sum()) == -5 * 36000.0
