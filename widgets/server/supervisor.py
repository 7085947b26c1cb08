"""``prism serve --workers N``: N server processes on one port, under a small supervisor.

How the processes share the port, and why
-----------------------------------------
The supervisor (this module, in the ``prism serve`` process) imports neither Panel nor NumPy nor
numba and starts no thread: it checks the configuration, reserves the port, then starts N
*separate* ``prism serve --reuse-port`` children with :mod:`subprocess` (a fresh interpreter
each, never a ``fork`` of a process whose BLAS, numba or executor threads are live; Bokeh's own
``--num-procs`` forks, and refuses once application code has run). Each child binds its own
listening socket to the same address and port with ``SO_REUSEPORT`` (:class:`ReusePortBinding`):

- the kernel spreads new connections evenly over the children by a hash of each connection's
  addresses; a single socket shared by all of them would instead go to whichever process
  wakes first, and Tornado accepts up to 128 connections per wake-up, so one process could
  take most keep-alive connections and WebSockets of a burst;
- a child listens only once it has built and warmed everything (:func:`widgets.server.app.serve`
  calls :meth:`ReusePortBinding.listen` right before it starts serving), so a restarted
  child never holds connections in its queue while it starts; until then the kernel sends
  every connection to the others;
- a child that dies takes only its own connections with it; the others keep serving.

The supervisor holds a bound (not listening) ``SO_REUSEPORT`` socket on the port for as long
as it runs: a port another program listens on is refused at once, with a clear message, and
``--port 0`` picks one port for all the children. It forwards SIGTERM and SIGINT to the
children (and SIGKILLs any still alive after :data:`STOP_TIMEOUT_S`), restarts a child that
exits unexpectedly (after 0.5 s, doubling up to 30 s while children keep dying within
:data:`STABLE_S` of their start), stops everything with a child's status when the child
could not start at all (a configuration error, 2, or a store it cannot open, 3: a restart
would only repeat it), and the children end with it even if it is killed with SIGKILL
(``PR_SET_PDEATHSIG``).

What the children share
-----------------------
One ``PRISM_COOKIE_SECRET`` (the supervisor makes one when none is set): a dashboard sign-in
cookie and a Bokeh session token signed by one child are accepted by every other. One set of
API keys (a generated admin key is generated once, here, and printed once). No one-time
sign-in link is printed (it would live in one child's memory only): sign in with a key.
The store must be one all of them can open at once, PostgreSQL (``PRISM_STORE_URL``): the
SQLite store is locked to one process, so ``--workers`` refuses it (:func:`check_store`).
Rate limits, WebSocket events and the fleet-wide figures of ``/metrics`` are shared through
Redis (``PRISM_REDIS_URL``); without it each process keeps its own, and the supervisor says so.

Dashboards
----------
A page load and its Bokeh WebSocket can land on different children (two connections, each
placed by the kernel). That works: the page carries a signed session token, and Bokeh
creates the session from that token when the WebSocket arrives at a process that never saw
the page (``create_session_if_needed``); the document is then built there, as the page's
would have been, and the session the page load made elsewhere expires unused. The test
``tests/scaleout/test_cli_workers.py`` loads a page from one process and pulls its document
over the WebSocket of another. What does not cross processes is a dashboard's in-memory
state between page loads: each page load is a new session anyway.

Compiled kernels
----------------
Each child warms the numba kernels as a single server does (:func:`prism_kernels.compiled.
warm_in_background`), but they do not compile N times: the compile child takes a per-user
file lock and writes numba's on-disk cache, so one compiles while the others wait and then
only load it; once the cache is warm for the current sources no compile child starts at all.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from prism_kernels.redact import redact_url

#: Seconds a child must live for its exit to count as a crash of a running server (not of
#: its start-up): the restart back-off starts again from its shortest delay after that.
STABLE_S = 10.0
#: Seconds the children get to stop after SIGTERM before they are killed.
STOP_TIMEOUT_S = 20.0
#: Exit statuses of ``prism serve`` that a restart would only repeat, when a child ends with
#: one before it has served for :data:`STABLE_S`.
FATAL_AT_START = {2: "a configuration error", 3: "the store is locked or unreachable"}
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0

POSTGRES_SCHEMES = ("postgresql", "postgres")


def check_store(store_url: str | None, workers: int) -> str | None:
    """Why ``workers`` processes cannot share the store at ``store_url`` (None when they can).

    Only PostgreSQL can be shared: the SQLite store (the default, and any ``sqlite://`` URL)
    is locked to the one process that opened it.
    """
    if workers <= 1:
        return None
    scheme = (store_url or "").split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in POSTGRES_SCHEMES:
        return None
    what = (
        f"PRISM_STORE_URL={redact_url(store_url)}"
        if store_url
        else "the default SQLite store (PRISM_STORE_URL is not set)"
    )
    return (
        f"{workers} server processes (--workers, PRISM_WORKERS) need a store every process "
        f"can open at once, but {what} is locked to one process. Set PRISM_STORE_URL to "
        "PostgreSQL (PRISM_STORE_URL=postgresql://user:password@host:5432/prism), or serve "
        "with --workers 1."
    )


def redis_warning(redis_url: str | None, workers: int) -> str | None:
    """The warning ``prism serve --workers`` prints without ``PRISM_REDIS_URL`` (else None)."""
    if workers <= 1 or redis_url:
        return None
    return (
        f"PRISM_REDIS_URL is not set: each of the {workers} processes keeps its own rate "
        "limits, WebSocket events, LLM cache and /metrics figures (a key gets up to "
        f"{workers} times its limit, and a WebSocket sees only the events of the process it is "
        "connected to). Set PRISM_REDIS_URL=redis://host:6379/0 to share them."
    )


# ---------------------------------------------------------------- the children's sockets


def _bind_unlistened(address: str | None, port: int) -> list[socket.socket]:
    """Non-blocking ``SO_REUSEPORT`` sockets bound to ``address:port``, not yet listening
    (one per address family ``address`` resolves to, as Tornado's ``bind_sockets``)."""
    if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - not Linux/BSD
        raise RuntimeError("this platform has no SO_REUSEPORT: serve with --workers 1")
    host = None if address in ("", None) else address
    infos = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    out: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr) in seen or (family == socket.AF_INET6 and not socket.has_ipv6):
                continue
            seen.add((family, addr))
            sock = socket.socket(family, kind, proto)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            sock.bind(addr)
    except BaseException:
        for s in out:
            s.close()
        raise
    return out


class ReusePortBinding:
    """While entered, the Bokeh server built in it binds ``SO_REUSEPORT`` sockets that do not
    listen yet; :meth:`listen` starts them listening (call it right before serving).

    Bokeh's ``Server`` binds its sockets itself (``bokeh.server.server.bind_sockets``); this
    replaces that one function for the duration of the ``with`` block only.
    """

    def __init__(self, backlog: int = 1024) -> None:
        self.backlog = backlog
        self.sockets: list[socket.socket] = []
        self._saved: Any = None

    def _bind(self, address: str | None, port: int) -> tuple[list[socket.socket], int]:
        socks = _bind_unlistened(address, port)
        self.sockets.extend(socks)
        return socks, socks[0].getsockname()[1]

    def __enter__(self) -> ReusePortBinding:
        import bokeh.server.server as bokeh_server

        self._saved = bokeh_server.bind_sockets
        bokeh_server.bind_sockets = self._bind
        return self

    def __exit__(self, *exc: Any) -> None:
        import bokeh.server.server as bokeh_server

        bokeh_server.bind_sockets = self._saved

    def listen(self) -> None:
        """Start accepting: from now on the kernel gives this process its share of connections."""
        if not self.sockets:
            raise RuntimeError("the server bound no socket through ReusePortBinding")
        for s in self.sockets:
            s.listen(self.backlog)


# ---------------------------------------------------------------- the supervisor


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The child gets SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@dataclass
class Child:
    """One worker slot: its process, when it started, and its restart back-off."""

    index: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restart_at: float | None = None
    delay: float = FIRST_DELAY_S
    restarts: int = 0


class Supervisor:
    """Start ``workers`` children running ``argv``, keep them running, stop them on a signal.

    Parameters
    ----------
    argv : list of str
        The child's command line (``python -m widgets.cli serve ... --reuse-port``).
    workers : int
        How many children.
    env : dict
        Their environment.
    log : callable
        Where the supervisor's own lines go (default: stderr).
    """

    def __init__(self, argv: list[str], workers: int, env: dict[str, str], log: Any = None) -> None:
        self.argv = argv
        self.env = env
        self.children = [Child(i) for i in range(workers)]
        self.stopping = False
        self.exit_code = 0
        self._log = log or (lambda msg: print(f"prism serve: {msg}", file=sys.stderr, flush=True))

    def _spawn(self, child: Child) -> None:
        env = dict(self.env, PRISM_WORKER_INDEX=str(child.index))
        child.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        child.started = time.monotonic()
        child.restart_at = None

    def _signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True

    def pids(self) -> list[int]:
        """The process ids of the children running now."""
        return [c.proc.pid for c in self.children if c.proc is not None and c.proc.poll() is None]

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit status 0) or a child that cannot start (its status,
        :data:`FATAL_AT_START`); children that die otherwise are restarted."""
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        for child in self.children:
            self._spawn(child)
        self._log(
            f"{len(self.children)} server processes started (pids "
            f"{', '.join(map(str, self.pids()))})"
        )
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                self._tend(child, now)
            time.sleep(0.1)
        return self.stop()

    def _tend(self, child: Child, now: float) -> None:
        if self.stopping:
            return
        if child.restart_at is not None:
            if now >= child.restart_at:
                self._spawn(child)
                child.restarts += 1
                self._log(f"worker {child.index} restarted (pid {child.proc.pid})")
            return
        code = child.proc.poll() if child.proc is not None else None
        if code is None:
            return
        lived = now - child.started
        if code in FATAL_AT_START and lived < STABLE_S:
            # its configuration refused (2), or its store unusable (3): every restart would
            # fail the same way; exit as a single server would (an orchestrator restarts us)
            self._log(
                f"worker {child.index} could not start ({FATAL_AT_START[code]}, exit {code}); "
                "stopping every worker"
            )
            self.exit_code = code
            self.stopping = True
            return
        if lived >= STABLE_S:  # it had been serving: a crash, not a failing start-up
            child.delay = FIRST_DELAY_S
        delay = child.delay
        child.delay = min(child.delay * 2, MAX_DELAY_S)
        child.restart_at = now + delay
        how = f"signal {-code}" if code < 0 else f"status {code}"
        self._log(
            f"worker {child.index} (pid {child.proc.pid}) exited with {how} after {lived:.1f} s; "
            f"restarting in {delay:.1f} s"
        )

    def stop(self) -> int:
        """SIGTERM every child, SIGKILL those alive after :data:`STOP_TIMEOUT_S`; the exit status."""
        live = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for p in live:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._log(f"pid {p.pid} did not stop within {STOP_TIMEOUT_S:g} s: killing it")
                p.kill()
                p.wait(5)
        return self.exit_code


def child_command(serve_argv: list[str], address: str, port: int) -> list[str]:
    """A child's command line: the ``serve`` arguments given (less ``--show``), then this
    address and port, one process, and ``--reuse-port`` (later flags win in argparse)."""
    rest = [a for a in serve_argv if a != "--show"]
    return [
        sys.executable,
        "-m",
        "widgets.cli",
        "serve",
        *rest,
        "--address",
        address,
        "--port",
        str(port),
        "--workers",
        "1",
        "--reuse-port",
    ]


def run_workers(settings: Any, serve_argv: list[str]) -> int:
    """What ``prism serve --workers N`` runs (N = ``settings.processes`` > 1): check, reserve
    the port, start and supervise the children; the exit status.

    ``settings`` are the parent's (already read from the environment and the flags);
    ``serve_argv`` the arguments given after ``serve``.
    """
    n = settings.processes
    problem = check_store(settings.store_url, n)
    if problem:
        print(f"prism serve: {problem}", file=sys.stderr, flush=True)
        return 2
    warning = redis_warning(settings.redis_url, n)
    if warning:
        print(f"prism serve: WARNING: {warning}", file=sys.stderr, flush=True)
    try:
        reserved = _bind_unlistened(settings.address, settings.port)
    except OSError as exc:
        print(
            f"prism serve: cannot use {settings.address}:{settings.port}: {exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        return 2
    except RuntimeError as exc:
        print(f"prism serve: {exc}", file=sys.stderr, flush=True)
        return 2
    port = reserved[0].getsockname()[1]
    env = dict(os.environ)
    env["PRISM_WORKERS"] = "1"
    env["PRISM_LOGIN_LINK"] = "0"  # a one-time link would be known to one child only
    if not env.get("PRISM_COOKIE_SECRET"):
        env["PRISM_COOKIE_SECRET"] = settings.cookie_secret or secrets.token_urlsafe(32)
    if settings.auth and not env.get("PRISM_API_KEYS"):
        env["PRISM_API_KEYS"] = ",".join(f"{k}:{r}" for k, r in settings.api_keys.items())
    host = "127.0.0.1" if settings.address in ("0.0.0.0", "::", "") else settings.address
    print(
        f"PRISM on http://{host}:{port}/ with {n} server processes"
        + (
            f" (dashboards: sign in at http://{host}:{port}/login with an API key)"
            if settings.auth and settings.dashboards
            else ""
        ),
        flush=True,
    )
    sup = Supervisor(child_command(serve_argv, settings.address, port), n, env)
    try:
        return sup.run()
    finally:
        for s in reserved:
            s.close()
