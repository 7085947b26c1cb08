"""``prism serve --workers N`` (:mod:`widgets.server.supervisor`): what it refuses, how its
processes share one port, restarts and shutdown, and a dashboard whose page and WebSocket
land on different processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys

import httpx
import psutil
import pytest
import websockets.sync.client as ws_client

from tests.pgserver import postgres_db_url  # noqa: F401
from tests.serverutil import API_KEYS_ENV, LLM_ENV, PrismServer, login, wait_until
from widgets.server.supervisor import (
    ReusePortBinding,
    _bind_unlistened,
    check_store,
    child_command,
    redact_url,
    redis_warning,
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LLM_ENV and not k.startswith("PRISM_")}
    env.update(PRISM_API_KEYS=API_KEYS_ENV, PYTHONUNBUFFERED="1", **extra)
    return env


def _serve(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "widgets.cli", "serve", "--port", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---------------------------------------------------------------- refusals


def test_workers_refuse_the_sqlite_store():
    r = _serve(["--workers", "2"], _clean_env())
    assert r.returncode == 2, r.stderr
    assert "PRISM_STORE_URL" in r.stderr and "PostgreSQL" in r.stderr
    assert "PRISM on" not in r.stdout  # nothing was started

    r = _serve([], _clean_env(PRISM_WORKERS="3", PRISM_STORE_URL="sqlite:////tmp/prism.sqlite"))
    assert r.returncode == 2 and "3 server processes" in r.stderr and "sqlite:" in r.stderr


def test_workers_must_be_positive():
    r = _serve(["--workers", "0"], _clean_env())
    assert r.returncode == 2 and "--workers must be at least 1" in r.stderr


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_workers_stop_when_no_process_can_open_the_store():
    """A PostgreSQL that does not answer: each process exits 3 at start-up, and rather than
    restart them forever the supervisor stops with that status (no password in its output)."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://prism:s3cret-pw@127.0.0.1:{port}/prism"
    r = _serve(["--workers", "2", "--no-dashboards"], _clean_env(PRISM_STORE_URL=url), 150)
    out = r.stdout + r.stderr
    assert r.returncode == 3, out[-3000:]
    assert "could not start" in out and "s3cret-pw" not in out


def test_store_and_redis_checks_name_what_to_set():
    assert check_store(None, 1) is None and check_store("sqlite:///x", 1) is None
    assert check_store("postgresql://u:pw@h/db", 4) is None
    assert check_store("postgresql+psycopg://u@h/db", 2) is None
    msg = check_store("sqlite:///srv/prism.sqlite", 2)
    assert "PRISM_STORE_URL" in msg and "PostgreSQL" in msg
    # a password in a URL never reaches a message
    assert redact_url("postgresql://me:s3cret@db:5432/p") == "postgresql://me:***@db:5432/p"
    assert "s3cret" not in check_store("mysql://me:s3cret@db/p", 2)
    assert redis_warning("redis://r:6379/0", 3) is None and redis_warning(None, 1) is None
    assert "PRISM_REDIS_URL" in redis_warning(None, 3)


def test_child_command_keeps_the_flags_and_overrides_port_and_workers():
    argv = child_command(["--workers", "4", "--no-dashboards", "--show", "--port", "1"], "::", 5006)
    args = argv[argv.index("serve") + 1 :]
    assert "--show" not in args and "--no-dashboards" in args
    from widgets.cli import build_parser

    ns = build_parser().parse_args(["serve", *args])
    assert (ns.workers, ns.port, ns.address, ns.reuse_port) == (1, 5006, "::", True)


# ---------------------------------------------------------------- the port


def test_a_process_gets_connections_only_once_it_listens():
    """SO_REUSEPORT sockets that are bound but not listening take no connections: a starting
    (or restarting) process never holds connections in its queue."""
    first = _bind_unlistened("127.0.0.1", 0)
    port = first[0].getsockname()[1]
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        binding = ReusePortBinding()
        socks, bound = binding._bind("127.0.0.1", port)  # what Bokeh's Server calls
        assert bound == port and binding.sockets == socks
        binding.listen()
        conn = socket.create_connection(("127.0.0.1", port), timeout=2)
        socks[0].setblocking(True)
        accepted, _ = socks[0].accept()
        accepted.close()
        conn.close()
    finally:
        for s in first + binding.sockets:
            s.close()


def test_the_binding_replaces_bokehs_bind_only_inside_the_block():
    import bokeh.server.server as bokeh_server

    before = bokeh_server.bind_sockets
    binding = ReusePortBinding()
    with binding:
        assert bokeh_server.bind_sockets == binding._bind
    assert bokeh_server.bind_sockets is before


# ---------------------------------------------------------------- a real --workers server


def _owners(port: int, procs: list[psutil.Process], n: int) -> dict[int, int]:
    """Open ``n`` connections to ``port``, each answered once (``GET /health``); which of
    ``procs`` holds the server end of each (client port -> pid)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            socks.append(s)
        mine = {s.getsockname()[1] for s in socks}
        owners = {}
        for proc in procs:
            for c in proc.net_connections(kind="tcp"):
                if c.raddr and c.raddr.port in mine and c.laddr.port == port:
                    owners[c.raddr.port] = proc.pid
        assert set(owners) == mine, "a connection with no server process"
        return owners
    finally:
        for s in socks:
            s.close()


def _children(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children() if "widgets.cli" in " ".join(p.cmdline())]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_workers_share_a_port_restart_a_killed_one_and_stop_together(postgres_db_url):  # noqa: F811
    srv = PrismServer(
        dashboards=False,
        extra_args=["--workers", "2"],
        extra_env={"PRISM_STORE_URL": postgres_db_url},
    )
    with srv:
        sup = srv.proc.pid
        kids = wait_until(lambda: len(_children(sup)) == 2 and _children(sup), 30, "2 children")
        pids = {p.pid for p in kids}
        assert len(pids) == 2
        # both answer on the one port (once both listen: start() returns when one does),
        # the kernel spreading new connections over them
        wait_until(lambda: set(_owners(srv.port, kids, 24).values()) == pids, 60, "both to serve")
        log = srv.log_text()
        assert "PRISM_REDIS_URL is not set" in log  # the warning without Redis
        assert "with 2 server processes" in log

        # kill -9 one: the other keeps answering meanwhile, and the supervisor restarts it
        victim = kids[0]
        victim.kill()
        victim.wait(10)
        for _ in range(30):
            assert httpx.get(srv.url + "/health", timeout=5).status_code == 200
        new = wait_until(
            lambda: {p.pid for p in _children(sup)} - pids if len(_children(sup)) == 2 else None,
            60,
            "a restarted child",
        )
        assert len(new) == 1
        assert f"restarted (pid {new.pop()})" in srv.log_text()
        # once it listens, the restarted one takes its share of new connections again
        wait_until(
            lambda: (
                set(_owners(srv.port, _children(sup), 24).values())
                == {p.pid for p in _children(sup)}
            ),
            60,
            "the restarted child to take connections",
        )
        all_pids = [sup, *(p.pid for p in _children(sup))]
        # SIGTERM to the supervisor alone stops every child
        os.kill(sup, signal.SIGTERM)
        srv.proc.wait(30)
        assert srv.proc.returncode == 0
        for pid in all_pids[1:]:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


# ---------------------------------------------------------------- dashboards across processes


def _bokeh_frames(ws) -> tuple[dict, dict, dict]:
    header = json.loads(ws.recv(timeout=30))
    metadata = json.loads(ws.recv(timeout=30))
    content = json.loads(ws.recv(timeout=30))
    for _ in range(2 * header.get("num_buffers", 0)):
        ws.recv(timeout=30)
    return header, metadata, content


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_page_from_one_process_opens_its_session_on_another(tmp_path):
    """The page load and the Bokeh WebSocket of a dashboard on two different processes (as
    with ``--workers``, where the kernel places each connection): the second process, which
    never saw the page, creates the session from the page's signed token and sends the
    whole document."""
    secret = "s" * 40
    env = {"PRISM_COOKIE_SECRET": secret}
    with PrismServer(extra_env=env) as a, PrismServer(extra_env=env) as b:
        with login(a.url, "user") as c:
            page = c.get("/system")
            assert page.status_code == 200, page.text[:300]
            token = re.search(r'"token":\s*"([^"]+)"', page.text).group(1)
            cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        with ws_client.connect(
            f"ws://127.0.0.1:{b.port}/system/ws",
            subprotocols=["bokeh", token],
            additional_headers={"Cookie": cookie},
            origin=f"http://127.0.0.1:{b.port}",
            open_timeout=30,
            max_size=None,
        ) as ws:
            header, _, _ = _bokeh_frames(ws)
            assert header["msgtype"] == "ACK"
            ws.send(json.dumps({"msgid": "1", "msgtype": "PULL-DOC-REQ"}))
            ws.send("{}")
            ws.send("{}")
            header, _, content = _bokeh_frames(ws)
            assert header["msgtype"] == "PULL-DOC-REPLY", header
            assert header["reqid"] == "1"
            assert content["doc"]["roots"], "the document has no roots"
            # the session lives on b now (the page's own, on a, is never connected)
            with b.client("admin") as api:
                text = api.get("/metrics").text
            assert re.search(r"^dashboard_sessions\s+1\.0$", text, re.M), text[:2000]
