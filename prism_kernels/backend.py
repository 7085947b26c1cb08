"""The array backend: one code path for NumPy, PyTorch and CuPy.

Kernels compute on the array library their inputs come from, found with
:func:`get_namespace` (``array-api-compat``), the way SciPy and scikit-learn do.
This module also chooses the *default* library for arrays PRISM creates itself:

``PRISM_BACKEND=auto|numpy|torch|cupy`` (default ``numpy``; ``auto`` picks CuPy when a
CUDA device answers, then a CUDA PyTorch, else NumPy).

Host-device copies happen only at the edges: :func:`asarray` on the way in,
:func:`to_numpy` on the way out.
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_cupy_array, is_torch_array

from prism_kernels.errors import InvalidInput, Unavailable

BACKENDS = ("numpy", "torch", "cupy")


def get_namespace(*arrays: Any) -> Any:
    """Array-API namespace of ``arrays`` (NumPy when given plain Python data)."""
    arrays = tuple(a for a in arrays if a is not None and not isinstance(a, (int, float)))
    if not arrays:
        return array_namespace(np.empty(0))
    return array_namespace(*arrays)


@functools.cache
def _cupy_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@functools.cache
def _torch_cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def available_backends() -> list[str]:
    """Names of the backends that import and run on this machine."""
    out = ["numpy"]
    try:
        import torch  # noqa: F401

        out.append("torch")
    except Exception:
        pass
    if _cupy_available():
        out.append("cupy")
    return out


def resolve_backend(name: str | None = None) -> str:
    """Resolve ``name`` (or ``PRISM_BACKEND``) to one of :data:`BACKENDS`.

    Raises
    ------
    InvalidInput
        For an unknown name.
    Unavailable
        When the named backend cannot be imported or has no device.
    """
    name = (name or os.environ.get("PRISM_BACKEND") or "numpy").strip().lower()
    if name == "auto":
        if _cupy_available():
            return "cupy"
        if _torch_cuda_available():
            return "torch"
        return "numpy"
    if name not in BACKENDS:
        raise InvalidInput(
            "backend", f"unknown backend {name!r}; choose auto, numpy, torch or cupy"
        )
    if name == "cupy" and not _cupy_available():
        raise Unavailable(
            "backend cupy requested but no CUDA device answers (install prism-kernels[gpu])"
        )
    if name == "torch":
        try:
            import torch  # noqa: F401
        except Exception as exc:  # pragma: no cover - depends on the install
            raise Unavailable("backend torch requested but PyTorch is not installed") from exc
    return name


def namespace(backend: str | None = None) -> Any:
    """The array-API namespace of a backend (default: the configured one)."""
    name = resolve_backend(backend)
    if name == "numpy":
        import array_api_compat.numpy as xp
    elif name == "torch":
        import array_api_compat.torch as xp
    else:
        import array_api_compat.cupy as xp
    return xp


def _torch_device() -> str:
    return "cuda" if _torch_cuda_available() else "cpu"


def asarray(x: Any, backend: str | None = None, dtype: Any = None) -> Any:
    """Put ``x`` on a backend (default: the configured one), copying only when needed.

    ``dtype`` may be a NumPy dtype or a name (``"float64"``); it is translated for the
    target library.
    """
    name = resolve_backend(backend)
    if name == "numpy":
        return np.asarray(to_numpy(x), dtype=dtype)
    if name == "torch":
        import torch

        if is_torch_array(x):
            t = x
        else:
            host = to_numpy(x)
            if not host.flags.writeable:  # torch wants writable memory; copy rather than warn
                host = host.copy()
            t = torch.as_tensor(host)
        if dtype is not None:
            t = t.to(getattr(torch, np.dtype(dtype).name))
        return t.to(_torch_device())
    import cupy

    return cupy.asarray(x if is_cupy_array(x) else to_numpy(x), dtype=dtype)


def to_numpy(x: Any) -> np.ndarray:
    """Copy any supported array (or nested list) to a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    if is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def backend_name(x: Any) -> str:
    """``"numpy"``, ``"torch"`` or ``"cupy"`` for an array."""
    if is_torch_array(x):
        return "torch"
    if is_cupy_array(x):
        return "cupy"
    return "numpy"


def synchronize(x: Any = None) -> None:
    """Wait for queued device work (for honest timings); a no-op on NumPy."""
    name = backend_name(x) if x is not None else resolve_backend()
    if name == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif name == "torch" and _torch_cuda_available():
        import torch

        torch.cuda.synchronize()


def tune_host_allocator(
    mmap_threshold: int = 64 * 2**20, trim_threshold: int = 256 * 2**20
) -> bool:
    """Keep freed multi-megabyte NumPy temporaries in the process instead of returning them.

    glibc serves large allocations with ``mmap`` and gives freed memory back to the system,
    so a batched kernel that makes a few 3 MB temporaries per call pays a page fault per 4 KiB
    page on every call (measured: a (10000, 6, 6) ``P - K @ HP`` took 9 ms instead of 2.8 ms).
    Raising glibc's mmap and trim thresholds (``mallopt``) removes that cost for the whole
    process, at the price of keeping up to ``trim_threshold`` bytes of freed memory.

    Returns ``True`` when applied (Linux with glibc), ``False`` elsewhere. The server and the
    benchmarks call it at start; call it yourself in a long-running script.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        ok = libc.mallopt(m_mmap_threshold, int(mmap_threshold)) == 1
        ok &= libc.mallopt(m_trim_threshold, int(trim_threshold)) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


def describe(backend: str | None = None) -> dict[str, Any]:
    """What computes: backend name, library version, device name and memory.

    Returns
    -------
    dict
        ``backend``, ``library_version``, ``device`` (``"cpu"`` or ``"cuda:0"``),
        ``device_name``, ``gpu`` (bool), ``available_backends``.
    """
    name = resolve_backend(backend)
    info: dict[str, Any] = {
        "backend": name,
        "available_backends": available_backends(),
        "gpu": False,
        "device": "cpu",
        "device_name": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if name == "numpy":
        info["library_version"] = np.__version__
    elif name == "torch":
        import torch

        info["library_version"] = torch.__version__
        if _torch_cuda_available():
            info.update(gpu=True, device="cuda:0", device_name=torch.cuda.get_device_name(0))
    else:
        import cupy

        info["library_version"] = cupy.__version__
        props = cupy.cuda.runtime.getDeviceProperties(0)
        info.update(gpu=True, device="cuda:0", device_name=props["name"].decode())
    return info
