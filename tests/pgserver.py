"""A real PostgreSQL server for tests: Debian's binaries, a temporary directory, a free
loopback port, stopped (and its directory removed) afterwards.

Use the fixtures from a test module::

    from tests.pgserver import postgres_db_url, postgres_url  # noqa: F401

- ``postgres_url`` (session): the URL of one database for the whole session;
- ``postgres_db_url`` (function): the URL of a new, empty database, dropped afterwards.

Both share one server per test process, started on first use and stopped when the session
ends. :func:`start_postgres` starts a server of one's own (to restart it, say).

PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user in a
directory of its own under the system's temporary folder (pytest's folders are root-only).
Without the binaries the tests are skipped, except under CI (``CI`` set), where that fails.
Passwords are checked (``scram-sha-256`` over TCP), so the URLs carry one.
"""

from __future__ import annotations

import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serverutil import free_port


def _pg_bin() -> Path:
    """Debian's PostgreSQL binaries: ``$PRISM_PG_BIN``, else the newest installed version."""
    if os.environ.get("PRISM_PG_BIN"):
        return Path(os.environ["PRISM_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
USER = "postgres"
_names = itertools.count(1)


def _need_binaries() -> None:
    missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / b).exists()]
    if missing:
        why = f"PostgreSQL binaries missing in {PG_BIN}: {', '.join(missing)} (apt install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@dataclass
class PgServer:
    """A running PostgreSQL server.

    Attributes
    ----------
    url : str
        The superuser's URL of the ``postgres`` database (with its password).
    port : int
        The loopback TCP port.
    root : Path
        The server's directory (data, socket, log).
    """

    url: str
    port: int
    root: Path
    password: str
    _as_user: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def database_url(self, name: str) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str | None = None) -> str:
        """Create a new, empty database; its URL."""
        import psycopg

        name = name or f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database ``url`` names, closing whatever connections are left on it."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _pg_ctl(self, *args: str) -> None:
        cmd = [*self._as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log)]
        subprocess.run([*cmd, *args], check=True, capture_output=True, timeout=60)

    def restart(self) -> None:
        """Stop the server (every connection is dropped) and start it again, data kept."""
        self._pg_ctl("-m", "fast", "-w", "restart")

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._pg_ctl("-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(tmpdir: Path | None = None) -> PgServer:
    """Start a PostgreSQL server on a free loopback port; stop it with ``.stop()``.

    ``tmpdir`` holds it when not running as root; as root it lives in a folder of its own
    (owned by ``postgres``) under the system's temporary folder, since pytest's are root-only.
    """
    _need_binaries()
    if os.geteuid() == 0:
        owner = pwd.getpwnam(USER)
        root = Path(tempfile.mkdtemp(prefix="prism-pg-"))
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", USER, "--"]
    else:
        root = Path(tempfile.mkdtemp(prefix="prism-pg-", dir=tmpdir))
        as_user = []
    password = secrets.token_hex(12)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    pwfile.chmod(0o600)
    try:
        subprocess.run(
            [
                *as_user,
                str(PG_BIN / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        last_error = ""
        for _ in range(3):  # a free port can be taken between finding and binding it
            port = free_port()
            server = PgServer(
                f"postgresql://{USER}:{password}@127.0.0.1:{port}/postgres",
                port,
                root,
                password,
                as_user,
            )
            options = (
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                # A test server: no durability against power loss (a crash of the server
                # process itself still loses nothing committed).
                "-c fsync=off -c full_page_writes=off"
            )
            try:
                server._pg_ctl("-w", "-t", "60", "-o", options, "start")
                return server
            except subprocess.CalledProcessError:
                last_error = server.log.read_text()[-2000:] if server.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {last_error}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


_shared: PgServer | None = None


def shared_postgres(request: pytest.FixtureRequest) -> PgServer:
    """The one server of this test process, started on first use, stopped at session end."""
    global _shared
    if _shared is None:
        _shared = start_postgres()
        server = _shared

        def stop() -> None:
            global _shared
            _shared = None
            server.stop()

        request.config.add_cleanup(stop)
    return _shared


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """The URL of one database on the shared server for the whole session."""
    return shared_postgres(request).create_database()


@pytest.fixture
def postgres_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database on the shared server; dropped after the test."""
    server = shared_postgres(request)
    url = server.create_database()
    yield url
    server.drop_database(url)
