"""Compiled kernels: the one place that decides whether numba compiles the host loops, and when.

Kernel modules decorate their loops with :func:`njit`. With numba importable (a declared
dependency) each becomes a ``numba.njit(nogil=True, cache=True, error_model="numpy")``
dispatcher (floating division by zero gives inf/nan instead of raising, so division loops
vectorise). Nothing is compiled at import: a dispatcher compiles on its first call for the
argument types it sees and writes the result to numba's on-disk cache where numba finds a
writable place (else it keeps it in the process only); a later process loads it from there.

Compilation is slow the first time (measured on 2 shared cores: about 20 s for the fused
detector, 7 s for the persistence kernel, 1 s for the selections), then loaded from the cache
in about a second. numba checks only each kernel's own file before reusing a cached kernel,
so after editing a kernel module that others call (``order``, ``boxfilter``) delete the
``*.nbi``/``*.nbc`` files under ``prism_kernels/**/__pycache__``.

A server must not wait for that: :func:`defer` and :func:`warm_in_background` switch the
compiled kernels off (every caller takes its NumPy path, with the same results) and compile
them in a child process that writes the cache (taking neither this process's GIL nor its
event loop's time), then switch them on; each then loads from the cache on its first call.
Each kernel module registers, with :func:`warmer`, a function that calls its kernels once on
small inputs with the argument types real calls use; :func:`warm` runs them all.

Inside kernels, element loops replace slice assignments and array expressions: numba compiles
those (with their shape-mismatch error messages) many times more slowly.

Without numba, :func:`njit` returns the Python function unchanged and :data:`AVAILABLE` is
``False``: callers then take their NumPy paths (never the pure-Python loops, which would be
far too slow). Tests switch :data:`AVAILABLE` off to run those paths.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a broken one usable
    numba = None

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: child processes warm up without a lock
    fcntl = None

log = logging.getLogger(__name__)

#: Whether :func:`njit` compiles (numba importable).
AVAILABLE: bool = numba is not None

#: Whether every kernel got numba's on-disk cache (False when numba found no writable place).
CACHED: bool = True

_READY = threading.Event()  # cleared while a background warm-up runs: NumPy paths meanwhile
_READY.set()
_LOCAL = threading.local()  # .force: this thread runs the compiled kernels anyway (warm-up)
_WARMERS: list[Callable[[], None]] = []

#: Modules holding numba kernels cached on disk (their ``__pycache__`` holds the cache).
KERNEL_MODULES: set[str] = set()


def njit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit(nogil=True, cache=True, error_model="numpy")(fn)`` (compiled on first
    call); ``fn`` itself when numba is missing."""
    global CACHED
    if numba is None:
        return fn
    KERNEL_MODULES.add(fn.__module__)
    try:  # an on-disk cache where numba finds a writable place...
        return numba.njit(nogil=True, cache=True, error_model="numpy")(fn)
    except RuntimeError:  # ...else compiled in this process only
        CACHED = False
        return numba.njit(nogil=True, cache=False, error_model="numpy")(fn)


def enabled() -> bool:
    """Whether the compiled kernels are used: numba importable, not switched off, and not
    waiting for a background warm-up (:func:`warm_in_background`)."""
    return AVAILABLE and (_READY.is_set() or getattr(_LOCAL, "force", False))


def engine() -> str:
    """``"numba"`` when the compiled kernels run, ``"numpy"`` otherwise."""
    return "numba" if enabled() else "numpy"


def warmer(fn: Callable[[], None]) -> Callable[[], None]:
    """Register ``fn`` (no arguments) for :func:`warm`: it calls its module's kernels once on
    small inputs, with the argument types real calls use (dtypes, layouts, flags)."""
    _WARMERS.append(fn)
    return fn


@contextmanager
def _forced() -> Iterator[None]:
    before = getattr(_LOCAL, "force", False)
    _LOCAL.force = True
    try:
        yield
    finally:
        _LOCAL.force = before


def defer() -> None:
    """Switch the compiled kernels off (every caller takes its NumPy path) until a
    :func:`warm_in_background` started later has them ready: a server calls this before it
    builds anything, and starts the warm-up once it listens."""
    _READY.clear()


def warm() -> float:
    """Compile every registered kernel (or load it from numba's cache) in this process.

    Runs each :func:`warmer` of the modules imported so far on the compiled paths (also while
    a background warm-up has them switched off for everyone else). Returns the seconds taken
    (0 without numba)."""
    if not AVAILABLE:
        return 0.0
    t0 = time.perf_counter()
    with _forced():
        for fn in list(_WARMERS):
            fn()
    return time.perf_counter() - t0


def _lock_path() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"prism-numba-warm-{uid}.lock"


def _stamps() -> dict[str, list[int]]:
    """``{source file: [mtime_ns, size]}`` of every kernel module, with numba's and Python's
    versions: what numba's cache depends on."""
    out: dict[str, list[int]] = {"numba " + getattr(numba, "__version__", "-"): [0, 0]}
    out["python " + sys.version.split()[0]] = [0, 0]
    for name in sorted(KERNEL_MODULES):
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None)
        if path:
            st = os.stat(path)
            out[path] = [st.st_mtime_ns, st.st_size]
    return out


def _marker() -> Path:
    return Path(__file__).resolve().parent / "__pycache__" / "prism-compiled-warm.json"


def cache_is_warm() -> bool:
    """Whether a warm-up child already compiled every kernel of the modules imported here
    against their current sources (its marker matches, and each kernel module's
    ``__pycache__`` holds an index newer than its source): the child can be skipped."""
    try:
        if json.loads(_marker().read_text()) != json.loads(json.dumps(_stamps())):
            return False
        for name in KERNEL_MODULES:
            src = Path(sys.modules[name].__file__)
            idx = list((src.parent / "__pycache__").glob(f"{src.stem}.*.nbi"))
            if not idx or max(p.stat().st_mtime for p in idx) < src.stat().st_mtime:
                return False
        return True
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return False


def warm_child(modules: list[str]) -> None:
    """What the child process of :func:`warm_in_background` runs: import ``modules`` (which
    register their warmers) and :func:`warm`, at idle CPU priority, one such child at a
    time per user (a file lock: the next one then only loads what the first wrote)."""
    # Idle priority: the compiler only gets CPU time nothing else wants, so a server's requests
    # (and its /health) never wait behind it, even on two cores.
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux: the lowest nice level
        try:
            os.nice(19)
        except (AttributeError, OSError):
            pass
    for name in modules:
        importlib.import_module(name)
    if fcntl is None:  # pragma: no cover - not POSIX
        warm()
        return
    with open(_lock_path(), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            warm()
            if CACHED:  # what the next server start reads (cache_is_warm)
                try:
                    _marker().write_text(json.dumps(_stamps()))
                except OSError:  # pragma: no cover - a read-only tree: children every time
                    pass
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_CHILD = "import sys; from prism_kernels import compiled; compiled.warm_child(sys.argv[1:])"


class BackgroundWarmUp:
    """A warm-up running off the caller's thread (see :func:`warm_in_background`).

    Attributes
    ----------
    seconds : float or None
        How long it took until the compiled kernels were switched on (None while running).
    error : BaseException or None
        What went wrong, if anything (the kernels are switched on anyway: they then compile
        on first use).
    """

    def __init__(self, child: bool = True) -> None:
        self.seconds: float | None = None
        self.error: BaseException | None = None
        self._child = child and CACHED
        self._proc: subprocess.Popen | None = None
        self._stopped = threading.Event()
        self._t0 = time.perf_counter()
        _READY.clear()
        self._thread = threading.Thread(target=self._run, name="prism-compile-warm-up", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            cached = self._child and (cache_is_warm() or self._run_child())
            if not cached and not self._stopped.is_set():
                warm()  # no child, or it failed: compile here
            # After a child, each kernel is loaded from the cache on its first call (a
            # fraction of a second): loading them all here at once would hold this
            # process's GIL for tens of milliseconds at a time while it serves.
        except BaseException as exc:  # noqa: BLE001 - reported, never raised in a daemon thread
            self.error = exc
            log.exception("warming up the compiled kernels failed; they compile on first use")
        finally:
            self.seconds = time.perf_counter() - self._t0
            _READY.set()
            if not self._stopped.is_set():
                log.info("compiled kernels ready after %.1f s", self.seconds)

    def _run_child(self) -> bool:
        """Compile in a child process; whether it succeeded (the cache then holds every
        kernel)."""
        # The warmers' modules, and every kernel module (so the child's marker, made from
        # the kernel modules it imported, is the one cache_is_warm makes here).
        modules = sorted({fn.__module__ for fn in _WARMERS} | KERNEL_MODULES)
        root = str(Path(__file__).resolve().parents[1])  # the directory holding prism_kernels
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, *modules],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if self._stopped.is_set():  # stop() came before the child existed
            self._proc.kill()
        _, err = self._proc.communicate()
        if self._proc.returncode != 0 and not self._stopped.is_set():
            log.warning(
                "compile warm-up child exited with %s: %s",
                self._proc.returncode,
                err.decode(errors="replace")[-2000:],
            )
        return self._proc.returncode == 0

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the kernels are switched on (or ``timeout`` seconds); whether they are."""
        self._thread.join(timeout)
        return self.done

    def stop(self) -> None:
        """End the child process, if any (the thread then switches the kernels on and ends)."""
        self._stopped.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()


def warm_in_background(child: bool = True) -> BackgroundWarmUp:
    """Switch the compiled kernels off until they are compiled, and compile them off this thread.

    Until then every caller takes its NumPy path (same results, slower). With ``child``
    (and an on-disk cache) a child process compiles them (:func:`warm_child`) and writes the
    cache (none is started when :func:`cache_is_warm`), so this process's threads never wait on compilation nor lose the GIL to it; then
    they are switched on, and each is loaded from the cache on its first call. Without a
    child (or when it fails) a thread here compiles them. Call it after importing the kernel modules whose
    kernels should be warmed (their :func:`warmer` registrations tell the child what to import).
    """
    return BackgroundWarmUp(child=child)
