"""The attacks of issue 10, each replayed against a real server on loopback (bounded).

Holes: (1) dashboards without a key, (2) the event loop stalled by dashboard sessions,
(4) a 14 MB body, (5) ``/metrics`` grown by invented methods, (6) 500s from bad input,
(7) two servers on one data directory, (9) no throttle, no timeouts, no WebSocket cap, keys in
the log, missing security headers, open CORS and WebSocket origins, echoed input. (Holes 3 and
8, the PWSA tracker's, are tested in ``tests/pwsa``.)

Several clients here connect from other loopback addresses (127.0.0.2, 127.0.0.3...): to the
server they are other clients, with their own throttle and session counts.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.serverutil import KEYS, SESSION_COOKIE, PrismServer

ORIGIN_OK = "https://allowed.example"
METRICS_KEY = "metrics-key-0001"


def from_address(server: PrismServer, address: str, **kw) -> httpx.Client:
    """An httpx client whose connections come from ``address`` (another loopback client)."""
    return httpx.Client(
        base_url=server.url,
        transport=httpx.HTTPTransport(local_address=address),
        timeout=kw.pop("timeout", 30.0),
        **kw,
    )


def ws_from(server: PrismServer, path: str, address: str = "127.0.0.1", **kw):
    sock = socket.create_connection(
        ("127.0.0.1", server.port), timeout=10, source_address=(address, 0)
    )
    return connect(f"ws://127.0.0.1:{server.port}{path}", sock=sock, open_timeout=10, **kw)


PROXY = "127.0.0.9"  # a reverse proxy in front of the hardened server (PRISM_TRUSTED_PROXIES)


@pytest.fixture(scope="module")
def hard():
    """A server with small limits, so each can be reached in a few requests."""
    srv = PrismServer(
        auth_fail_burst=None,  # the server's default (20 wrong keys per address)
        extra_env={
            "PRISM_WS_PER_KEY": "3",
            "PRISM_HEADER_TIMEOUT_S": "2",
            "PRISM_BODY_TIMEOUT_S": "2",
            "PRISM_CORS_ORIGINS": ORIGIN_OK,
            "PRISM_METRICS_KEY": METRICS_KEY,
            "PRISM_MAX_SESSIONS": "4",
            "PRISM_MAX_SESSIONS_PER_CLIENT": "3",
            "PRISM_TRUSTED_PROXIES": PROXY,
        },
    )
    srv.start()
    yield srv
    srv.stop()


def _slugs(server) -> list[str]:
    info = httpx.get(server.url + "/", headers={"Accept": "application/json"}).json()
    return [d.lstrip("/") for d in info["dashboards"]]


def _page_token(html: str) -> str:
    m = re.search(r'"token":\s*"([^"]+)"', html)
    assert m, "no session token in the dashboard page"
    return m.group(1)


# ---------------------------------------------------------------- hole 1: dashboards need a key


def test_no_dashboard_data_or_action_without_a_key(server):
    """Every dashboard path refuses a client without a session cookie (or with a forged one),
    including a Bokeh client pulling the document over the WebSocket; a signed-in user gets in."""
    from bokeh.client import pull_session

    slugs = _slugs(server)
    assert {"finance", "pixels", "system"} <= set(slugs)
    forged = {SESSION_COOKIE: "2|1:0|10:1700000000|13:prism_session|8:YWRtaW58eA==|00ff"}
    for cookies in ({}, forged):
        with httpx.Client(base_url=server.url, cookies=cookies, timeout=30) as c:
            for slug in slugs:
                page = c.get(f"/{slug}")
                assert page.status_code == 302, (slug, page.status_code)
                assert page.headers["location"].startswith("/login?next=")
                assert "bokeh" not in page.text.lower()
                js = c.get(f"/{slug}/autoload.js", params={"bokeh-autoload-element": "x"})
                assert js.status_code == 401 and "Bokeh" not in js.text
                assert c.get(f"/{slug}/metadata").status_code == 302
                with pytest.raises(InvalidStatus) as exc:
                    connect(
                        f"{server.ws_url.removesuffix('/ws')}/{slug}/ws",
                        subprotocols=["bokeh", "x.y.z"],
                        additional_headers={
                            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())
                        },
                        open_timeout=10,
                    )
                assert exc.value.response.status_code == 403
    for slug in ("finance", "pixels"):
        with pytest.raises(OSError, match="403"):
            pull_session(url=f"{server.url}/{slug}")
    # The same paths with a signed-in user's cookie: the page, and its WebSocket with the
    # page's session token.
    with server.login("user") as c:
        page = c.get("/system")
        assert page.status_code == 200 and "bokeh" in page.text.lower()
        cookie = f"{SESSION_COOKIE}={c.cookies[SESSION_COOKIE]}"
    with connect(
        f"{server.ws_url.removesuffix('/ws')}/system/ws",
        subprotocols=["bokeh", _page_token(page.text)],
        additional_headers={"Cookie": cookie},
        open_timeout=30,
    ) as ws:
        assert ws.subprotocol == "bokeh"
    # ...but not from a page of another origin (the browser would send the cookie along)
    with pytest.raises(InvalidStatus) as exc:
        connect(
            f"{server.ws_url.removesuffix('/ws')}/system/ws",
            subprotocols=["bokeh", _page_token(page.text)],
            additional_headers={"Cookie": cookie, "Origin": "https://evil.example"},
            open_timeout=30,
        )
    assert exc.value.response.status_code == 403


def test_login_form_takes_a_key_in_the_body_not_the_url(hard):
    with httpx.Client(base_url=hard.url, timeout=60) as c:
        form = c.get("/login")
        assert form.status_code == 200 and 'type="password"' in form.text
        assert 'method="post"' in form.text
        # no _xsrf token: refused before the key is even looked at
        assert c.post("/login", data={"key": KEYS["admin"]}).status_code == 403
        xsrf = c.cookies["_xsrf"]
        bad = c.post("/login", data={"key": "not-a-key-123", "_xsrf": xsrf})
        assert bad.status_code == 401 and SESSION_COOKIE not in c.cookies
        good = c.post("/login", data={"key": KEYS["readonly"], "_xsrf": xsrf, "next": "//evil"})
        assert good.status_code == 302 and good.headers["location"] == "/"
        set_cookie = good.headers["set-cookie"]
        assert "httponly" in set_cookie.lower() and "samesite=lax" in set_cookie.lower()
        assert KEYS["readonly"] not in set_cookie
        assert c.get("/system").status_code == 200
        c.get("/logout")
        assert c.get("/system").status_code == 302


def test_one_time_login_link_dies_on_first_use(hard):
    m = re.search(r"/login\?token=([A-Za-z0-9_\-]+)", hard.log_text())
    assert m, "no sign-in link printed at start-up"
    token = m.group(1)
    assert token not in KEYS.values()
    with httpx.Client(base_url=hard.url, timeout=60) as c:
        r = c.get("/login", params={"token": token, "next": "/system"})
        assert r.status_code == 302 and r.headers["location"] == "/system"
        assert c.get("/system").status_code == 200
    with httpx.Client(base_url=hard.url, timeout=60) as c:
        again = c.get("/login", params={"token": token})
        assert again.status_code == 403 and SESSION_COOKIE not in c.cookies
        assert c.get("/system").status_code == 302
    # the token never reaches the access log in clear
    assert token not in hard.log_text().split("(a one-time admin", 1)[-1]


def test_no_auth_opens_both_and_says_so(tmp_path):
    with PrismServer(no_auth=True, dashboards=True) as srv:
        assert "WITHOUT authentication" in srv.log_text()
        assert "dashboards" in srv.log_text().lower()
        assert httpx.get(srv.url + "/api/v1/gpu/status").status_code == 200
        r = httpx.get(srv.url + "/system", timeout=60)
        assert r.status_code == 200 and "bokeh" in r.text.lower()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_readonly_cannot_store_from_a_dashboard(server):
    """'Save to book' on /finance: a readonly session is refused (the book does not change),
    a user session stores (so the click itself works)."""
    from pathlib import Path

    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    def book_size() -> int:
        with server.client("readonly") as c:
            r = c.get("/api/v1/finance/portfolios", params={"limit": 1000})
            return len(r.json()["data"])

    def click_save(role: str) -> str:
        outcome = re.compile("Saved as|cannot store")
        with sync_playwright() as p:
            b = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
            )
            try:
                ctx = b.new_context(viewport={"width": 1400, "height": 900})
                ctx.add_cookies(server.login_cookies(role))
                page = ctx.new_page()
                page.goto(server.url + "/finance", wait_until="load", timeout=120_000)
                button = page.get_by_role("button", name="Save to book")
                button.wait_for(timeout=120_000)
                page.wait_for_timeout(3000)  # the first results are shown
                button.click()
                status = page.get_by_text(outcome).first  # (reads into Bokeh's shadow DOM)
                status.wait_for(timeout=60_000)
                return status.inner_text()
            finally:
                b.close()

    before = book_size()
    text = click_save("readonly")
    assert "cannot store" in text and "readonly" in text, text
    assert book_size() == before
    text = click_save("user")
    assert "Saved as" in text, text
    assert book_size() == before + 1


# ---------------------------------------------------------------- hole 2: sessions off the loop


PROBE = """
import json, sys, time, os, http.client
host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conn, out = http.client.HTTPConnection(host, port, timeout=30), []
while not os.path.exists(stop):
    t0 = time.perf_counter()
    conn.request("GET", "/health")
    r = conn.getresponse(); r.read()
    assert r.status == 200, r.status
    out.append(time.perf_counter() - t0)
    time.sleep(0.01)
print(json.dumps(out))
"""


class HealthProbe:
    """``GET /health`` every 10 ms from another process (so the test's own threads do not
    share its interpreter lock) until the block ends; ``.ms`` are the latencies."""

    def __init__(self, server: PrismServer, tmp_path) -> None:
        self.server, self.stop = server, tmp_path / "stop-probe"
        self.ms = np.empty(0)

    def __enter__(self) -> HealthProbe:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PROBE, "127.0.0.1", str(self.server.port), str(self.stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.3)
        self.stop.touch()
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, "the /health probe failed"
        self.ms = np.asarray(json.loads(out)) * 1e3

    def summary(self) -> str:
        ms = self.ms
        return (
            f"/health n={ms.size} p50={np.median(ms):.1f} p99={np.percentile(ms, 99):.1f} "
            f"max={ms.max():.1f} ms"
        )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_health_p99_under_100ms_while_20_dashboard_sessions_open(tmp_path):
    """20 browsers' page loads of the heaviest dashboard at once: each session is built (and
    its page rendered) off the event loop, so /health keeps answering."""
    with PrismServer(extra_env={"PRISM_MAX_SESSIONS_PER_CLIENT": "40"}) as srv:
        with srv.login("user") as c:
            cookies = dict(c.cookies)
        statuses: list[int] = []

        def open_page() -> None:
            with httpx.Client(base_url=srv.url, cookies=cookies, timeout=240) as cl:
                statuses.append(cl.get("/pixels").status_code)

        pages = [threading.Thread(target=open_page) for _ in range(20)]
        with HealthProbe(srv, tmp_path) as probe:
            t0 = time.perf_counter()
            for t in pages:
                t.start()
            for t in pages:
                t.join(240)
            took = time.perf_counter() - t0
        assert statuses == [200] * 20, statuses
        print(f"20 /pixels sessions in {took:.1f} s; {probe.summary()}")
        assert probe.ms.size >= 100
        p99 = float(np.percentile(probe.ms, 99))
        assert p99 < 100.0, f"/health p99 {p99:.0f} ms while 20 sessions opened"
        # Issue 9: /health answers within 50 ms while dashboards compute their results.
        p50 = float(np.median(probe.ms))
        assert p50 < 50.0, f"/health median {p50:.0f} ms while 20 sessions computed"


def test_session_caps_per_client_and_in_all(hard):
    """Per address: the 4th session is a 429; in all: past 4 sessions, a 503 (before any is built)."""
    with hard.login("user") as c:
        cookies = dict(c.cookies)
    codes_a = []
    with from_address(hard, "127.0.0.4", cookies=cookies, timeout=120) as a:
        for _ in range(4):
            codes_a.append(a.get("/system").status_code)
    assert codes_a == [200, 200, 200, 429], codes_a
    with from_address(hard, "127.0.0.5", cookies=cookies, timeout=120) as b:
        first, second = b.get("/system"), b.get("/system")
    assert first.status_code == 200
    assert second.status_code == 503 and "Retry-After" in second.headers
    metrics = httpx.get(
        hard.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}
    ).text
    assert re.search(r'dashboard_session_refusals_total\{reason="client"\} [1-9]', metrics)
    assert re.search(r'dashboard_session_refusals_total\{reason="server"\} [1-9]', metrics)


# ---------------------------------------------------------------- hole 4: a 14 MB body


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_14mb_body_leaves_health_under_100ms(tmp_path):
    """A 14 MB JSON body (parsed, bounded and validated in the executor) while /health is
    probed (on a server of its own: other tests' dashboard sessions are not measured here)."""
    pad = np.random.default_rng(0).random(1_150_000).round(9).tolist()
    body = json.dumps({"benchmark_type": "fft", "workload_size": 64, "pad": pad}).encode()
    del pad
    assert 13e6 < len(body) < 16e6
    statuses = []
    with (
        PrismServer(dashboards=False) as server,
        HealthProbe(server, tmp_path) as probe,
        server.client("user", timeout=120) as c,
    ):
        for _ in range(3):
            r = c.post(
                "/api/v1/gpu/benchmark", content=body, headers={"Content-Type": "application/json"}
            )
            statuses.append(r.status_code)
    assert statuses == [200] * 3
    print(f"3 x 14 MB bodies: {probe.summary()}")
    # p99 under 100 ms; the single worst probe may meet the one ~60 ms C-level JSON parse plus
    # a scheduling hiccup of a shared 2-core machine, so it gets a wider bound.
    p99, worst = float(np.percentile(probe.ms, 99)), float(probe.ms.max())
    assert p99 < 100.0, f"/health p99 {p99:.0f} ms while a 14 MB body was handled"
    assert worst < 250.0, f"/health took {worst:.0f} ms while a 14 MB body was handled"


def test_body_bounds_are_400s_naming_the_place(api):
    deep = b'{"workload_size": 64, "x": ' + b"[" * 100 + b"]" * 100 + b"}"
    r = api.post(
        "/api/v1/gpu/benchmark", content=deep, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "nested" in r.json()["message"]
    huge = b'{"x": [' + b"0," * 4_194_304 + b"0]}"
    r = api.post(
        "/api/v1/gpu/benchmark", content=huge, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["details"]["field"] == "x"
    for raw, field in (
        (b'{"x": [1, 2, 1e999]}', "x.2"),
        (b'{"y": {"z": 123456789012345678901234}}', "y.z"),
    ):
        r = api.post(
            "/api/v1/gpu/benchmark", content=raw, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 400 and r.json()["details"]["field"] == field, r.text


# ---------------------------------------------------------------- hole 5: /metrics stays flat


def test_metrics_size_flat_under_3000_invented_methods(server):
    def size() -> int:
        return len(httpx.get(server.url + "/metrics").content)

    paths = ["/", "/health", "/metrics", "/api/v1/gpu/status", "/api/v1/nope", "/nowhere"]
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {KEYS['user']}"}
    ) as c:
        for i in range(30):  # every (route, status) a weird method can reach, once
            c.request(f"WARM{i}", paths[i % len(paths)])
        before = size()
        for i in range(3000):
            r = c.request(f"X{i:05d}{'Z' * (i % 40)}", paths[i % len(paths)])
            assert r.status_code < 500
        after = size()
    assert after - before < 2048, f"/metrics grew from {before} to {after} bytes"
    text = httpx.get(server.url + "/metrics").text
    assert "X00001" not in text and "WARM" not in text and 'method="OTHER"' in text


def test_metrics_key_is_optional(hard, server):
    assert httpx.get(server.url + "/metrics").status_code == 200  # no PRISM_METRICS_KEY: public
    assert httpx.get(hard.url + "/metrics").status_code == 401
    ok = httpx.get(hard.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert ok.status_code == 200 and "http_requests_total" in ok.text
    assert httpx.get(hard.url + "/metrics", headers={"X-API-Key": KEYS["admin"]}).status_code == 200
    assert httpx.get(hard.url + "/metrics", headers={"X-API-Key": KEYS["user"]}).status_code == 401


# ---------------------------------------------------------------- hole 6: no 5xx from bad input


def _ops(server) -> list[tuple[str, str, dict]]:
    with server.client("admin") as c:
        doc = c.get("/api/v1/openapi.json").json()
    out = []
    for path, methods in doc["paths"].items():
        for m, op in methods.items():
            out.append((m.upper(), re.sub(r"{\w+}", "some-id", path), op))
    return out


def test_deep_nesting_and_invalid_utf8_are_400s_on_every_operation(server):
    tracebacks = server.log_text().count("Traceback")
    deep = b"[" * 1000 + b"]" * 1000  # 2 KB, 1000 deep
    wrapped = b'{"a": ' + deep + b"}"
    bad_utf8 = b'{"a": "\xff\xfe"}'
    with server.client("admin") as c:
        for method, path, op in _ops(server):
            if method == "POST":
                for raw in (deep, wrapped, bad_utf8):
                    r = c.post(path, content=raw, headers={"Content-Type": "application/json"})
                    assert r.status_code == 400, (path, raw[:20], r.status_code, r.text[:300])
            params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"] or ["q"]
            for name in params:
                r = c.request(
                    method, f"{path}?{name}=%ff%fe", json={} if method == "POST" else None
                )
                assert r.status_code < 500, (method, path, name, r.text[:300])
                if name != "q" and method == "GET":
                    assert r.status_code in (400, 404), (method, path, name, r.status_code)
    assert server.log_text().count("Traceback") == tracebacks


def test_websocket_message_nested_5000_deep_gets_an_error_frame(server):
    with connect(
        server.ws_url, additional_headers={"X-API-Key": KEYS["user"]}, open_timeout=10
    ) as ws:
        ws.send("[" * 5000 + "]" * 5000)
        msg = json.loads(ws.recv(timeout=10))
        assert msg["type"] == "Error" and "nested" in msg["message"]
        ws.send(json.dumps({"type": "Ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "Pong"


# ---------------------------------------------------------------- hole 7: one server per data dir


def test_second_server_on_the_same_data_directory_exits_with_a_clear_message(tmp_path):
    with PrismServer(data_dir=tmp_path, dashboards=False) as first:
        second = PrismServer(data_dir=tmp_path, dashboards=False)
        with pytest.raises(RuntimeError) as exc:
            second.start(timeout=60)
        second.stop()
        text = str(exc.value)
        assert "exited with 3" in text
        assert "already in use" in text and str(tmp_path) in text and "another PRISM" in text
        assert httpx.get(first.url + "/health").status_code == 200
    # once the first has stopped, the directory is free again
    with PrismServer(data_dir=tmp_path, dashboards=False) as again:
        assert httpx.get(again.url + "/health").status_code == 200


def test_lock_is_released_by_kill_9(tmp_path):
    code = (
        "import sys, time; from prism_kernels.store import Store; "
        f"s = Store({str(tmp_path / 'prism.sqlite')!r}); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        from prism_kernels.store import Store, StoreLocked

        with pytest.raises(StoreLocked, match=f"pid {proc.pid}"):
            Store(tmp_path / "prism.sqlite")
    finally:
        proc.kill()
        proc.wait(10)
    Store(tmp_path / "prism.sqlite").close()


# ---------------------------------------------------------------- hole 9: throttles, caps, headers


def test_failed_keys_are_throttled_per_address(hard):
    bad = {"Authorization": "Bearer not-a-real-key-123"}
    statuses = []
    with from_address(hard, "127.0.0.3") as c:
        for _ in range(40):
            statuses.append(c.get("/api/v1/gpu/status", headers=bad).status_code)
        assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}, statuses
        r = c.get("/api/v1/gpu/status", headers={"Authorization": f"Bearer {KEYS['user']}"})
        assert (
            r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        )  # a guesser's valid key too
        assert c.post("/login", data={"key": KEYS["user"]}).status_code in (403, 429)
    # another address is not affected
    with from_address(hard, "127.0.0.6") as other:
        assert (
            other.get("/api/v1/gpu/status", headers={"X-API-Key": KEYS["user"]}).status_code == 200
        )


def test_clients_behind_a_trusted_proxy_are_throttled_apart(hard):
    bad = {"Authorization": "Bearer not-a-real-key-456"}
    good = {"X-API-Key": KEYS["user"]}
    with from_address(hard, PROXY) as proxy:
        # the proxy appends the address it saw; what a client wrote before it is ignored
        guesser = {"X-Forwarded-For": "203.0.113.66, 198.51.100.7"}
        statuses = [proxy.get("/api/v1/gpu/status", headers={**bad, **guesser}).status_code]
        statuses += [
            proxy.get(
                "/api/v1/gpu/status",
                headers={**bad, "X-Forwarded-For": f"10.{i}.0.1, 198.51.100.7"},
            ).status_code
            for i in range(24)
        ]
        assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}, statuses
        # another client behind the same proxy, and the proxy itself, are not affected
        other = {"X-Forwarded-For": "198.51.100.8"}
        assert proxy.get("/api/v1/gpu/status", headers={**good, **other}).status_code == 200
        assert proxy.get("/api/v1/gpu/status", headers=good).status_code == 200
    # a client that is not a trusted proxy cannot choose its address with the header
    with from_address(hard, "127.0.0.8") as spoofer:
        statuses = [
            spoofer.get(
                "/api/v1/gpu/status", headers={**bad, "X-Forwarded-For": f"192.0.2.{i}"}
            ).status_code
            for i in range(24)
        ]
        assert set(statuses[20:]) == {429}, statuses


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_header_body_and_idle_timeouts(hard):
    t0 = time.monotonic()
    half_head = socket.create_connection(("127.0.0.1", hard.port))
    half_head.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes the head
    half_body = socket.create_connection(("127.0.0.1", hard.port))
    half_body.sendall(
        b"POST /api/v1/gpu/benchmark HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        + f"X-API-Key: {KEYS['user']}\r\n\r\n".encode()
        + b'{"a": '
    )
    idle = socket.create_connection(("127.0.0.1", hard.port))
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")
    for s in (half_head, half_body, idle):
        assert _closed_within(s, 8.0), "a stalled connection was kept open"
        s.close()
    assert time.monotonic() - t0 < 12.0


def test_websocket_cap_per_key(hard):
    headers = {"X-API-Key": KEYS["readonly"]}
    socks = [connect(hard.ws_url, additional_headers=headers, open_timeout=10) for _ in range(3)]
    try:
        with pytest.raises(InvalidStatus) as exc:
            connect(hard.ws_url, additional_headers=headers, open_timeout=10)
        assert exc.value.response.status_code == 429
        # another key is counted on its own
        with connect(hard.ws_url, additional_headers={"X-API-Key": KEYS["user"]}, open_timeout=10):
            pass
        socks.pop().close()
        time.sleep(0.3)
        socks.append(connect(hard.ws_url, additional_headers=headers, open_timeout=10))
    finally:
        for s in socks:
            s.close()


def test_credentials_never_reach_the_log(hard):
    secret = "wrong-but-secret-key-987"
    with from_address(hard, "127.0.0.7") as c:
        c.get("/api/v1/gpu/status", params={"api_key": secret})
        c.get("/health", params={"token": secret, "x": "1"})
    with pytest.raises(InvalidStatus):
        ws_from(hard, f"/ws?api_key={secret}", "127.0.0.7")
    time.sleep(0.3)
    log = hard.log_text()
    assert "/ws?api_key=[redacted]" in log
    assert secret not in log


def test_security_headers_on_api_and_dashboards(server):
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEYS["user"]}) as c:
        responses = {
            "health": c.get("/health"),
            "api": c.get("/api/v1/gpu/status"),
            "api error": c.get("/api/v1/nope"),
            "login page": c.get("/login"),
            "dashboard redirect": c.get("/finance"),
            "index": c.get("/", headers={"Accept": "text/html"}),
        }
    with server.login("readonly") as lc:
        responses["dashboard page"] = lc.get("/system")
    ids = set()
    for name, r in responses.items():
        h = r.headers
        assert h.get("x-content-type-options") == "nosniff", name
        assert "frame-ancestors" in h.get("content-security-policy", ""), name
        if h["content-type"].startswith("text/html") or r.status_code == 302:
            assert h.get("x-frame-options") == "SAMEORIGIN", name  # pages: older browsers too
            assert h.get("referrer-policy") == "same-origin", name
        else:
            assert "frame-ancestors 'none'" in h["content-security-policy"], name
        assert "server" not in h, (name, h.get("server"))
        assert h.get("x-request-id"), name
        ids.add(h["x-request-id"])
    assert len(ids) == len(responses)
    for name in ("health", "api", "api error"):
        assert responses[name].headers["cache-control"] == "no-store", name
    body = responses["api"].json()
    assert body["metadata"]["request_id"] == responses["api"].headers["x-request-id"]


def test_cors_and_websocket_origins_are_configured_not_open(hard, server):
    evil = "https://evil.example"
    for srv in (server, hard):
        r = httpx.get(
            srv.url + "/api/v1/gpu/status", headers={"Origin": evil, "X-API-Key": KEYS["user"]}
        )
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        pre = httpx.options(srv.url + "/api/v1/gpu/status", headers={"Origin": evil})
        assert "access-control-allow-origin" not in pre.headers
        with pytest.raises(InvalidStatus) as exc:
            connect(
                srv.ws_url,
                additional_headers={"X-API-Key": KEYS["user"], "Origin": evil},
                open_timeout=10,
            )
        assert exc.value.response.status_code == 403
    r = httpx.get(
        hard.url + "/api/v1/gpu/status", headers={"Origin": ORIGIN_OK, "X-API-Key": KEYS["user"]}
    )
    assert r.headers["access-control-allow-origin"] == ORIGIN_OK
    pre = httpx.options(hard.url + "/api/v1/gpu/status", headers={"Origin": ORIGIN_OK})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == ORIGIN_OK
    assert "X-API-Key" in pre.headers["access-control-allow-headers"]
    with connect(
        hard.ws_url,
        additional_headers={"X-API-Key": KEYS["user"], "Origin": ORIGIN_OK},
        open_timeout=10,
    ):
        pass
    # the server's own origin is always allowed (a dashboard page calling its own server)
    with connect(
        server.ws_url,
        additional_headers={"X-API-Key": KEYS["user"], "Origin": server.url},
        open_timeout=10,
    ):
        pass


def test_errors_quote_only_a_short_prefix_of_the_input(server, api):
    long = "Q" * 30_000
    with connect(
        server.ws_url, additional_headers={"X-API-Key": KEYS["user"]}, open_timeout=10
    ) as ws:
        ws.send(json.dumps({"type": long}))
        reply = ws.recv(timeout=10)
        assert json.loads(reply)["type"] == "Error" and len(reply) < 2000
        ws.send(json.dumps({"type": "Subscribe", "event_types": [long, long + "x"]}))
        reply = ws.recv(timeout=10)
        assert json.loads(reply)["type"] == "Error" and len(reply) < 2000
        ws.send("x" * 70_000)  # over the message size: closed with 1009, not echoed
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    r = api.post("/api/v1/gpu/" + long[:4000], json={})
    assert r.status_code == 404 and len(r.content) < 2000
    r = api.post("/api/v1/gpu/benchmark", json={"benchmark_type": long})
    assert r.status_code == 400 and len(r.content) < 4000
    r = api.get("/api/v1/gpu/benchmark/" + long[:4000])
    assert r.status_code == 404 and len(r.content) < 2000


def test_closing_a_dashboard_websocket_logs_no_traceback(server):
    """Dashboard tabs and event sockets that go away mid-update (a periodic chart, status
    events) leave no traceback in the log."""
    before = server.log_text().count("Traceback")
    for abrupt in (True, False, True):
        with server.login("readonly") as c:
            page = c.get("/system")
            cookie = f"{SESSION_COOKIE}={c.cookies[SESSION_COOKIE]}"
        ws = connect(
            f"{server.ws_url.removesuffix('/ws')}/system/ws",
            subprotocols=["bokeh", _page_token(page.text)],
            additional_headers={"Cookie": cookie},
            open_timeout=30,
        )
        ev = connect(server.ws_url, additional_headers={"X-API-Key": KEYS["user"]}, open_timeout=10)
        ev.send(json.dumps({"type": "Subscribe", "event_type": "*"}))
        ev.recv(timeout=10)
        time.sleep(1.5)
        for sock in (ws, ev):
            if abrupt:  # the tab is gone: no close frame
                sock.socket.close()
            else:
                sock.close()
    time.sleep(6.0)  # the charts' periodic updates and a status event meet the closed sockets
    log = server.log_text()
    assert log.count("Traceback") == before, log[-3000:]
    assert "WebSocketClosedError" not in log
