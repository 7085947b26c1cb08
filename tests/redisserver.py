"""A real Redis server (Debian's ``redis-server``) on a free loopback port, for tests.

``start_redis(tmpdir)`` starts one (no persistence, no password) and returns a
:class:`RedisServer`: ``.url``, ``.port``, ``.stop()`` and ``.start()`` (again, on the same port:
what a test of "Redis went away and came back" needs). The session fixture ``redis_server``
shares one among the tests; use it with ``from tests.redisserver import redis_server  # noqa:
F401``. Without the binary the tests skip, unless ``CI`` is set (CI installs it: then they fail).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.serverutil import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _answers(port: int, password: str | None = None) -> bool:
    """Whether a Redis server answers on ``port`` (a raw RESP exchange: ``PING``, or ``AUTH``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            if password:
                pw = password.encode()
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
                return s.recv(16).startswith(b"+OK")
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """One ``redis-server`` process in ``tmpdir`` on ``port`` (restartable on that port)."""

    tmpdir: Path
    port: int
    password: str | None = None
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.tmpdir = Path(self.tmpdir)
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.tmpdir / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (on the same port as before) and wait until it answers."""
        if self.running:
            return self
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.tmpdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.log_path),
            *(["--requirepass", self.password] if self.password else []),
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_path.read_text() if self.log_path.exists() else ""
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}: {log[-2000:]}"
                )
            if _answers(self.port, self.password):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stop the server (its data goes with it: it keeps none on disk)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_contents(client) -> bytes:
    """Every key and every string or hash value in ``client``'s database, concatenated: what a
    search for a leaked secret has to look through."""
    blob = b""
    for key in client.scan_iter(count=1000):
        blob += key
        kind = client.type(key)
        if kind == b"hash":
            blob += b"".join(f + v for f, v in client.hgetall(key).items())
        elif kind == b"string":
            blob += client.get(key) or b""
    return blob


def require_redis() -> None:
    """Skip (or fail, under CI) when Debian's ``redis-server`` is not installed."""
    if not Path(REDIS_SERVER).exists():
        msg = f"redis-server not found ({REDIS_SERVER}); apt-get install redis-server"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def start_redis(
    tmpdir: Path | str, port: int | None = None, *, password: str | None = None
) -> RedisServer:
    """Start a Redis server in ``tmpdir`` on ``port`` (a free one when ``None``), requiring
    ``password`` when one is given (its ``url`` then carries it)."""
    require_redis()
    return RedisServer(Path(tmpdir), port or free_port(), password).start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One Redis server for the test session (stopped at its end)."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
