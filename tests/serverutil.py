"""Start a real PRISM server on a free loopback port for a test, and stop it afterwards.

Dashboards need a sign-in: :meth:`PrismServer.login_cookies` signs in through the real
``/login`` form with a role's key and returns the cookies a browser (Playwright) or an HTTP
client needs to be that role.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

SESSION_COOKIE = "prism_session"

KEYS = {"admin": "admin-key-0001", "user": "user-key-00001", "readonly": "readonly-key-01"}
API_KEYS_ENV = ",".join(f"{k}:{role}" for role, k in KEYS.items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Environment variables that configure LLM providers (never inherited by test servers).
LLM_ENV = frozenset(
    {
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GEMINI_API_KEY",
        "GEMINI_BASE_URL",
        "PRISM_LLM_CONFIG",
        "PRISM_LLM_REPLAY",
        "PRISM_LLM_BUDGET_USD",
    }
)


@dataclass
class PrismServer:
    """A ``prism serve`` subprocess. Use as a context manager or call start()/stop()."""

    data_dir: Path | None = None
    rate_limit: float = 10_000
    max_body_mb: float | None = None
    dashboards: bool = True
    # The shared test server gets many wrong keys on purpose (every route x every bad
    # credential): a generous failed-auth allowance keeps those 401s from becoming 429s.
    # Pass None for the server's own default (the throttling test does).
    auth_fail_burst: float | None = 100_000
    no_auth: bool = False
    extra_args: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 90.0) -> PrismServer:
        self.port = free_port()
        # No provider a developer configured reaches a test server: LLM settings come only
        # from extra_env (the tests' loopback providers).
        inherited = {k: v for k, v in os.environ.items() if k not in LLM_ENV}
        env = {
            **inherited,
            "PRISM_API_KEYS": API_KEYS_ENV,
            "PRISM_RATE_LIMIT": str(self.rate_limit),
            "PYTHONUNBUFFERED": "1",
            **(
                {"PRISM_AUTH_FAIL_BURST": str(self.auth_fail_burst)}
                if self.auth_fail_burst is not None
                else {}
            ),
            **self.extra_env,
        }
        env.pop("PRISM_DATA_DIR", None)
        args = [
            sys.executable,
            "-m",
            "widgets.cli",
            "serve",
            "--address",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.data_dir is not None:
            args += ["--data-dir", str(self.data_dir)]
        if self.max_body_mb is not None:
            args += ["--max-body-mb", str(self.max_body_mb)]
        if not self.dashboards:
            args.append("--no-dashboards")
        if self.no_auth:
            args.append("--no-auth")
        args += self.extra_args
        log_dir = Path(os.environ.get("PRISM_TEST_LOGS", "test-artifacts/server-logs"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"server-{self.port}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"server did not answer /health within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()

    def client(self, role: str | None = "user", **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {KEYS[role]}"} if role else {}
        return httpx.Client(
            base_url=self.url, headers=headers, timeout=kw.pop("timeout", 60.0), **kw
        )

    def login_cookies(self, role: str = "admin") -> list[dict]:
        """Sign in at ``/login`` with ``role``'s key; the cookies for a Playwright context.

        Use: ``context.add_cookies(server.login_cookies("user"))`` before ``page.goto``
        (the list has ``name``, ``value`` and ``url``, as ``BrowserContext.add_cookies`` takes).
        """
        return login_cookies(self.url, role)

    def login(self, role: str = "admin", **kw) -> AbstractContextManager[httpx.Client]:
        """``with server.login("user") as c:`` an httpx client signed in to the dashboards as
        ``role`` (through the login form)."""
        return login(self.url, role, **kw)

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def __enter__(self) -> PrismServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def login(url: str, role: str = "admin", **kw) -> Iterator[httpx.Client]:
    """An httpx client signed in to the dashboards of the server at ``url`` (its origin) as
    ``role``, through the real ``/login`` form (an ``_xsrf`` token, then the key in a POST)."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    with httpx.Client(base_url=base, timeout=kw.pop("timeout", 60.0), **kw) as c:
        c.get("/login").raise_for_status()
        xsrf = c.cookies.get("_xsrf")
        r = c.post("/login", data={"key": KEYS[role], "_xsrf": xsrf, "next": "/"})
        if r.status_code != 302 or SESSION_COOKIE not in c.cookies:
            raise RuntimeError(f"sign-in as {role} failed: {r.status_code} {r.text[:300]}")
        yield c


def login_cookies(url: str, role: str = "admin") -> list[dict]:
    """The cookies a Playwright ``BrowserContext.add_cookies`` needs to be signed in to the
    dashboards of the server at ``url`` (any URL of it) as ``role``."""
    with login(url, role) as c:
        base = str(c.base_url).rstrip("/")
        return [
            {"name": k.name, "value": k.value, "url": base}
            for k in c.cookies.jar
            if k.name in (SESSION_COOKIE, "_xsrf")
        ]


def wait_until(cond, timeout: float, what: str):
    """Poll ``cond()`` every 0.2 s until it returns something truthy (returned); fail naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
