"""Batch kernels on a Dask cluster: ``PRISM_DASK_SCHEDULER`` names one, else everything runs here.

A batch kernel that splits naturally (Monte Carlo scenario blocks, N-1 failure scenarios,
groups of series, a frontier and its two corner portfolios) hands its pieces to
:func:`run_calls` or :func:`map_batches`. Without a scheduler they are called here, one after
the other, exactly as the kernel would call them itself; with ``PRISM_DASK_SCHEDULER`` set
(``tcp://host:8786``) each piece is one Dask task on that cluster and the results come back in
order. The pieces are pure functions of their inputs, so the answer is the same either way;
where randomness is involved the kernel fixes its split (and the seed of every piece) from its
inputs alone, never from the cluster's size.

``dask.distributed`` is imported only when a scheduler is set, so importing
:mod:`prism_kernels` stays fast. One client is kept per process and address. A scheduler that
cannot be reached within :data:`CONNECT_TIMEOUT_S`, or that has no workers, is an
:class:`~prism_kernels.errors.Unavailable` (a 503), never a hang; for :data:`RETRY_AFTER_S`
after a failed connection batches are refused at once rather than each waiting again. A kernel's own
:class:`~prism_kernels.errors.PrismError` raised on a worker is raised here again with its type
and fields, so a bad input is the same 400 on a cluster as in process.

Workers: Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536``, which keeps
glibc's mmap threshold at 128 KiB, so every larger temporary array is mapped and unmapped
again; our NumPy kernels allocate many, and the N-1 sweep's re-routing ran 3 to 4 times slower
per task that way (measured on this project's 2-core machine). Give worker containers
``MALLOC_TRIM_THRESHOLD_=67108864`` and ``MALLOC_MMAP_THRESHOLD_=33554432`` (the nanny takes
the environment's value over its own; measured back to in-process speed), or start them with
the config ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_: null`` as
:func:`local_cluster` does.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prism_kernels.errors import PrismError, Unavailable
from prism_kernels.redact import redact

ENV = "PRISM_DASK_SCHEDULER"
CONNECT_TIMEOUT_S = 5.0
"""Seconds to reach the scheduler before the batch is refused (a 503)."""

Call = tuple[Callable[..., Any], Sequence[Any], Mapping[str, Any]]
"""One piece of work: ``(function, args, kwargs)``."""

RETRY_AFTER_S = 5.0
"""After a failed connection, seconds during which batches are refused at once (no new wait)."""

_clients: dict[tuple[int, str], Any] = {}
_failed: dict[str, tuple[float, str]] = {}  # address -> (when, why) of the last failed connect
_lock = threading.Lock()


def scheduler_address() -> str | None:
    """The Dask scheduler named by ``PRISM_DASK_SCHEDULER`` (``tcp://host:port``), or ``None``
    (unset or blank: batches run in this process)."""
    value = os.environ.get(ENV, "").strip()
    return value or None


def client(address: str | None = None, timeout: float | None = None) -> Any:
    """The ``distributed.Client`` of this process for ``address`` (default: the environment's),
    connected on first use and kept; ``timeout`` seconds to connect (default
    :data:`CONNECT_TIMEOUT_S`).

    Raises
    ------
    Unavailable
        No address is set, or the scheduler cannot be reached within ``timeout`` seconds.
    """
    address = address or scheduler_address()
    timeout = CONNECT_TIMEOUT_S if timeout is None else float(timeout)
    if address is None:
        raise Unavailable(f"no Dask scheduler: set {ENV} to its address (tcp://host:8786)")
    key = (os.getpid(), address)
    with _lock:
        c = _clients.get(key)
        if c is not None and c.status in ("running", "connecting"):
            return c
        last = _failed.get(address)
        if last is not None and time.monotonic() - last[0] < RETRY_AFTER_S:
            raise Unavailable(last[1])
        from distributed import Client

        try:
            c = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            why = (
                f"the Dask scheduler at {redact(address)} cannot be reached within {timeout:g} s "
                f"({type(exc).__name__}); start it or unset {ENV} to compute in process"
            )
            _failed[address] = (time.monotonic(), why)
            raise Unavailable(why) from None
        _failed.pop(address, None)
        _clients[key] = c
        return c


def close_clients() -> None:
    """Close this process's clients (tests; a server at shutdown)."""
    with _lock:
        _failed.clear()
        mine = [k for k in _clients if k[0] == os.getpid()]
        for k in mine:
            try:
                _clients.pop(k).close()
            except Exception:  # pragma: no cover - closing a dead connection
                pass


def local_cluster(n_workers: int = 2, threads_per_worker: int = 1, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` of worker processes on 127.0.0.1 (HTTP on a free port, no
    dashboard), started without Dask's ``MALLOC_TRIM_THRESHOLD_`` (see the module docstring)."""
    import dask
    from distributed import LocalCluster

    options = {
        "n_workers": n_workers,
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": ":0",  # any free port: never a clash on 8787
        "scheduler_kwargs": {"dashboard": False},
        "silence_logs": 40,
        **kwargs,
    }
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(**options)


def total_threads(address: str | None = None) -> int:
    """Worker threads on the cluster (1 without a scheduler): how many pieces run at once."""
    address = address or scheduler_address()
    if address is None:
        return 1
    return max(1, sum(client(address).nthreads().values()))


def _run(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """The task on a worker: the call's value, or its PRISM error as plain data (some of our
    exceptions cannot be rebuilt by pickle from their message alone)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except PrismError as exc:
        return ("error", type(exc), exc.args, dict(exc.__dict__))


def _rebuild(cls: type, args: tuple, state: dict) -> PrismError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


def run_calls(calls: Iterable[Call], *, desc: str = "batch", address: str | None = None) -> list:
    """The value of every call, in order: here without a scheduler, else one Dask task each.

    Parameters
    ----------
    calls : iterable of ``(function, args, kwargs)``
        Module-level (picklable) functions and picklable arguments.
    desc : str
        Names the tasks on the cluster's dashboard (``prism-<desc>-...``).
    address : str, optional
        A scheduler address; default :func:`scheduler_address`.

    Raises
    ------
    Unavailable
        The scheduler cannot be reached, has no workers, or lost the work.
    PrismError
        What a call raised on its worker (the same type and fields).
    """
    calls = list(calls)
    address = address or scheduler_address()
    if address is None:
        return [fn(*args, **kwargs) for fn, args, kwargs in calls]
    if not calls:
        return []
    from asyncio import CancelledError
    from concurrent.futures import CancelledError as FutureCancelled

    from distributed import KilledWorker

    c = client(address)
    where = redact(address)
    try:
        if not c.scheduler_info().get("workers"):
            raise Unavailable(f"the Dask scheduler at {where} has no workers")
        tag = f"prism-{desc}-{uuid.uuid4().hex[:12]}"
        futures = [
            c.submit(_run, fn, tuple(args), dict(kwargs), key=f"{tag}-{i}", pure=False)
            for i, (fn, args, kwargs) in enumerate(calls)
        ]
        out = c.gather(futures)
    except (OSError, TimeoutError, KilledWorker, CancelledError, FutureCancelled) as exc:
        # the connection or the workers were lost; an error of the call itself is raised as is
        raise Unavailable(
            f"the batch {desc!r} failed on the Dask cluster at {where}: "
            f"{type(exc).__name__}: {redact(str(exc))[:300]}"
        ) from None
    values = []
    for r in out:
        if r[0] == "error":
            raise _rebuild(*r[1:])
        values.append(r[1])
    return values


def map_batches(
    fn: Callable[..., Any],
    chunks: Iterable[Any],
    *,
    desc: str = "batch",
    address: str | None = None,
    **shared: Any,
) -> list:
    """``[fn(chunk, **shared) for chunk in chunks]``, here or as one Dask task per chunk
    (:func:`run_calls`)."""
    return run_calls(((fn, (c,), shared) for c in chunks), desc=desc, address=address)


def split(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``min(parts, n)`` contiguous, nearly equal pieces (none empty)."""
    parts = max(1, min(int(parts), n))
    base, extra = divmod(n, parts)
    out, lo = [], 0
    for p in range(parts):
        hi = lo + base + (1 if p < extra else 0)
        out.append(range(lo, hi))
        lo = hi
    return out
