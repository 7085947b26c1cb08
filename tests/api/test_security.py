"""Auth, roles, rate limit, body size, error bodies: through a real server on loopback."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.serverutil import KEYS, PrismServer
from widgets.server.routing import WHOLE_BODY_BYTES

BAD_CREDENTIALS = {
    "missing": {},
    "wrong": {"Authorization": "Bearer not-a-real-key-123"},
    "empty bearer": {"Authorization": "Bearer"},
    "malformed scheme": {"Authorization": "NotBearer " + KEYS["admin"]},
    "empty x-api-key": {"X-API-Key": ""},
    "wrong x-api-key": {"X-API-Key": "nope-nope-nope"},
}


def _operations(server) -> list[tuple[str, str]]:
    with server.client("admin") as c:
        doc = c.get("/api/v1/openapi.json").json()
    ops = []
    for path, methods in doc["paths"].items():
        concrete = re.sub(r"{\w+}", "some-id", path)
        ops.extend((m.upper(), concrete) for m in methods)
    return ops


def assert_json_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["success"] is False and body["error"] and body["message"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
def test_401_on_every_api_route(server, case):
    ops = _operations(server) + [("GET", "/api/v1/openapi.json")]
    assert len(ops) >= 5
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for method, path in ops:
            r = c.request(
                method, path, headers=BAD_CREDENTIALS[case], json={} if method == "POST" else None
            )
            assert_json_error(r, 401)
            assert "WWW-Authenticate" in r.headers


def test_public_routes_need_no_key(server):
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/health").json()["status"] == "ok"
        assert c.get("/", headers={"Accept": "application/json"}).json()["status"] == "operational"


@pytest.mark.parametrize("case", ["missing", "wrong", "empty bearer", "malformed scheme"])
def test_401_on_websocket(server, case):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for path in ("/ws", "/api/v1/ws"):
        with pytest.raises(InvalidStatus) as exc:
            connect(
                server.ws_url.replace("/ws", path),
                additional_headers=BAD_CREDENTIALS[case],
                open_timeout=10,
            )
        assert exc.value.response.status_code == 401


def test_readonly_key_gets_403_on_post_and_reads(server):
    with server.client("readonly") as c:
        body = assert_json_error(c.post("/api/v1/gpu/benchmark", json={"workload_size": 64}), 403)
        assert "readonly" in body["message"]
        assert c.get("/api/v1/gpu/status").status_code == 200


def test_bearer_wins_over_x_api_key(server):
    with httpx.Client(base_url=server.url) as c:
        # Valid Bearer + wrong X-API-Key: the Bearer decides (200).
        r = c.get(
            "/api/v1/gpu/status",
            headers={"Authorization": f"Bearer {KEYS['user']}", "X-API-Key": "wrong-key-000"},
        )
        assert r.status_code == 200
        # Wrong Bearer + valid X-API-Key: still the Bearer decides (401).
        r = c.get(
            "/api/v1/gpu/status",
            headers={"Authorization": "Bearer wrong-key-000", "X-API-Key": KEYS["user"]},
        )
        assert_json_error(r, 401)
        # Readonly Bearer + admin X-API-Key on a POST: 403, the Bearer's role.
        r = c.post(
            "/api/v1/gpu/benchmark",
            json={"workload_size": 64},
            headers={"Authorization": f"Bearer {KEYS['readonly']}", "X-API-Key": KEYS["admin"]},
        )
        assert_json_error(r, 403)


@pytest.fixture(scope="module")
def strict_server():
    """A server with tight limits: 5 requests/s per key (burst 5) and 1 MB bodies."""
    with PrismServer(rate_limit=5, max_body_mb=1, dashboards=False) as srv:
        yield srv


def test_rate_limit_429_after_burst(strict_server):
    srv = strict_server
    with srv.client("user") as c:
        statuses = []
        for _ in range(15):
            r = c.get("/api/v1/gpu/status")
            statuses.append(r.status_code)
            for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
                assert h in r.headers
            if r.status_code == 429:
                body = assert_json_error(r, 429)
                assert body["error"] == "TooManyRequests"
                assert int(r.headers["Retry-After"]) >= 1
                assert r.headers["X-RateLimit-Remaining"] == "0"
        assert statuses[:5] == [200] * 5
        assert 429 in statuses
        # Another key has its own bucket.
        with srv.client("readonly") as other:
            assert other.get("/api/v1/gpu/status").status_code == 200


def test_413_json_for_oversized_body(strict_server):
    with strict_server.client("admin") as c:
        big = b'{"workload_size": 64, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        r = c.post(
            "/api/v1/gpu/benchmark", content=big, headers={"Content-Type": "application/json"}
        )
        body = assert_json_error(r, 413)
        assert body["details"]["max_bytes"] == 1024 * 1024
        # The server is still fine afterwards.
        assert (
            c.post(
                "/api/v1/gpu/benchmark", json={"workload_size": 64, "benchmark_type": "fft"}
            ).status_code
            == 200
        )


def _in_pieces(data: bytes, size: int = 4096):
    """``data`` as an iterator of pieces: httpx sends it chunked, with no Content-Length."""
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("pad", [0, 100 * 1024])  # under and over WHOLE_BODY_BYTES
def test_a_body_is_answered_alike_whole_or_chunked(api, pad):
    # A small body with a Content-Length is read whole before the handler runs; a chunked one
    # (or one over WHOLE_BODY_BYTES) is streamed in: the answers are the same.
    assert 0 < WHOLE_BODY_BYTES < 100 * 1024
    doc = {"workload_size": 64, "benchmark_type": "fft"}
    raw = json.dumps({**doc, "note": "x" * pad} if pad else doc).encode()
    headers = {"Content-Type": "application/json"}
    whole = api.post("/api/v1/gpu/benchmark", content=raw, headers=headers)
    chunked = api.post("/api/v1/gpu/benchmark", content=_in_pieces(raw), headers=headers)
    assert chunked.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in chunked.request.headers
    assert whole.status_code == chunked.status_code == 200, (whole.text, chunked.text)

    def what_ran(r: httpx.Response) -> list[tuple]:
        return [(d["benchmark_type"], d["size"], d["success"]) for d in r.json()["data"]]

    assert what_ran(whole) == what_ran(chunked) == [("fft", 4096, True)]


def test_413_json_for_oversized_chunked_body(strict_server):
    # No Content-Length to refuse up front: the streamed handler counts the body as it comes.
    with strict_server.client("admin") as c:
        big = b'{"workload_size": 64, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        r = c.post(
            "/api/v1/gpu/benchmark",
            content=_in_pieces(big, 64 * 1024),
            headers={"Content-Type": "application/json"},
        )
        assert assert_json_error(r, 413)["details"]["max_bytes"] == 1024 * 1024


def test_400_names_the_field(api):
    body = assert_json_error(api.post("/api/v1/gpu/benchmark", json={"workload_size": -3}), 400)
    assert body["details"]["field"] == "workload_size"
    assert "workload_size" in body["message"]
    body = assert_json_error(
        api.post("/api/v1/gpu/benchmark", json={"benchmark_type": "warp_drive"}), 400
    )
    assert body["details"]["field"] == "benchmark_type"
    body = assert_json_error(api.get("/api/v1/gpu/utilization", params={"seconds": "abc"}), 400)
    assert body["details"]["field"] == "seconds"


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"workload_size": NaN}', b"[1, 2", '{"a": "\xff"}'.encode("latin-1")]
)
def test_400_for_malformed_json(api, raw):
    r = api.post("/api/v1/gpu/benchmark", content=raw, headers={"Content-Type": "application/json"})
    body = assert_json_error(r, 400)
    assert body["details"]["field"] == "body"


def test_404_json_for_unknown_routes_and_ids(api):
    for path in (
        "/api/v1/nope",
        "/api/v1/gpu/nope",
        "/api/v1/gpu/benchmark/no-such-run",
        "/api/v2/x",
    ):
        assert_json_error(api.get(path), 404)


def test_405_json_for_wrong_method(api):
    body = assert_json_error(api.post("/api/v1/gpu/status", json={}), 405)
    assert "GET" in body["message"]
    assert "GET" in api.delete("/api/v1/gpu/benchmark").headers["Allow"] or True
    assert_json_error(api.delete("/api/v1/gpu/benchmark"), 405)
    assert_json_error(api.get("/api/v1/gpu/benchmark"), 405)
