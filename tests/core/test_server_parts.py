"""Server parts that need no running server: config, auth, rate limit, JSON, route declarations."""

from __future__ import annotations

import math

import pytest

from widgets.server.auth import authenticate, authorize, extract_key
from widgets.server.config import ConfigError, Settings, parse_api_keys
from widgets.server.errors import ApiError
from widgets.server.ratelimit import RateLimiter
from widgets.server.routing import Route, dumps, loads


def test_parse_api_keys():
    assert parse_api_keys("abcdefgh:admin, ijklmnop:readonly,qrstuvwx") == {
        "abcdefgh": "admin",
        "ijklmnop": "readonly",
        "qrstuvwx": "user",
    }
    with pytest.raises(ConfigError):
        parse_api_keys("abcdefgh:root")
    with pytest.raises(ConfigError):
        parse_api_keys("short:user")


def test_settings_from_env_and_overrides():
    s = Settings.from_env(
        {"PRISM_API_KEYS": "abcdefgh:user", "PRISM_RATE_LIMIT": "7", "PRISM_MAX_BODY_MB": "2"},
        port=1234,
    )
    assert s.port == 1234 and s.rate_limit == 7 and s.max_body_bytes == 2 * 1024 * 1024
    assert s.generated_key is None
    s = Settings.from_env({})
    assert (
        s.auth and s.generated_key and s.api_keys == {s.generated_key: "admin"}
    )  # never open by accident
    s = Settings.from_env({}, auth=False)
    assert not s.auth and s.generated_key is None
    with pytest.raises(ConfigError):
        Settings.from_env({"PRISM_RATE_LIMIT": "-1"})


def test_extract_and_authenticate():
    keys = {"k-user-0001": "user"}
    assert extract_key({"Authorization": "Bearer k-user-0001", "X-API-Key": "x"}) == "k-user-0001"
    assert extract_key({"X-API-Key": "k-user-0001"}) == "k-user-0001"
    assert extract_key({}) is None
    for bad in ({"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {"X-API-Key": " "}):
        with pytest.raises(ApiError) as e:
            extract_key(bad)
        assert e.value.status == 401
    assert authenticate(keys, "k-user-0001") == "user"
    for key in (None, "wrong", "K-USER-0001"):
        with pytest.raises(ApiError):
            authenticate(keys, key)


def test_authorize_roles():
    authorize("readonly", "GET", "readonly")
    with pytest.raises(ApiError) as e:
        authorize("readonly", "POST", "user")
    assert e.value.status == 403
    authorize("user", "POST", "user")
    with pytest.raises(ApiError):
        authorize("user", "POST", "admin")
    authorize("admin", "DELETE", "admin")


def test_token_bucket_with_a_fake_clock():
    now = [0.0]
    rl = RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [rl.check("a").allowed for _ in range(4)] == [True, True, True, False]
    d = rl.check("a")
    assert not d.allowed and d.headers()["Retry-After"] == "1" and d.remaining == 0
    assert rl.check("b").allowed  # per key
    now[0] += 0.5  # one token back at 2/s
    assert rl.check("a").allowed and not rl.check("a").allowed
    now[0] += 10
    assert rl.check("a").remaining == 2  # refilled to the burst, then one spent


def test_json_finite_only():
    assert (
        dumps({"a": float("nan"), "b": [1.0, math.inf], "c": 2})
        == '{"a":null,"b":[1.0,null],"c":2}'
    )
    with pytest.raises(ValueError):
        loads('{"a": NaN}')
    with pytest.raises(ValueError):
        loads('{"a": -Infinity}')


def test_route_pattern_and_roles():
    r = Route("get", "/api/v1/x/{item_id}", lambda req: None)
    assert r.method == "GET" and r.path_params == ["item_id"] and r.role == "readonly"
    assert r.pattern == "/api/v1/x/(?P<item_id>[^/]+)$"
    assert Route("post", "/api/v1/x", lambda req: None).role == "user"


def test_snake_case_spellings():
    from prism_kernels.names import snake_case

    for raw in (
        "MaximizeSharpe",
        "maximize-sharpe",
        "Maximize Sharpe",
        "maximize__sharpe",
        " maximize_sharpe ",
    ):
        assert snake_case(raw) == "maximize_sharpe"
    assert snake_case("HRP") == "hrp" and snake_case("MatrixMultiply") == "matrix_multiply"
    assert snake_case(3) == 3


def test_failed_auth_throttle_with_a_fake_clock():
    from widgets.server.ratelimit import FailureThrottle

    now = [0.0]
    t = FailureThrottle(burst=3, per_s=0.5, max_clients=2, clock=lambda: now[0])
    assert t.retry_after("a") == 0
    for _ in range(3):
        t.failed("a")
    assert t.retry_after("a") == pytest.approx(2.0)  # one token back at 0.5/s
    assert t.retry_after("b") == 0  # per address
    now[0] += 2.0
    assert t.retry_after("a") == 0
    t.failed("b")
    t.failed("c")
    t.failed("d")  # only the two most recent addresses are remembered
    assert "b" not in t._spent and set(t._spent) == {"c", "d"}
    now[0] += 100
    assert t.retry_after("c") == 0 and "c" not in t._spent  # full again: forgotten


def test_parse_json_bounds():
    from widgets.server.jsonbody import BodyError, parse_json

    assert parse_json(b'{"a": [1, 2.5, true, null, "x"]}') == {"a": [1, 2.5, True, None, "x"]}
    cases = {
        b"[" * 70 + b"]" * 70: "nested more than 64",
        b"[" * 300 + b"]" * 300: "nested more than 64",
        b'{"a": "\xff"}': "UTF-8",
        b'{"a": NaN}': "malformed",
        b'{"a": 1} x': "malformed",
        b'{"a": [1, 1e999]}': "a.1: a number",
        b'{"a": {"b": [0, -1e400]}}': "a.b.1: a number",
        b'{"a": [[1], [2, 99999999999999999999999]]}': "a.1.1: an integer",
        b'{"a": [' + b"0," * 10 + b"0]}": "has 11 entries",
    }
    for raw, message in cases.items():
        with pytest.raises(BodyError) as e:
            parse_json(raw, max_depth=64, max_items=10)
        assert e.value.status == 400 and message in e.value.message, (raw[:30], e.value.message)
    big = b"[" + b"1.5," * 100_000 + b"1e999]"  # the bad number is found across slices
    with pytest.raises(BodyError, match="100000"):
        parse_json(big)


def test_redact_and_clip():
    from widgets.server.security import clip, clip_details, redact

    assert redact("/ws?api_key=abc123&x=1") == "/ws?api_key=[redacted]&x=1"
    assert redact("/login?next=/a&token=T0K3N") == "/login?next=/a&token=[redacted]"
    assert redact("/health") == "/health"
    assert clip("x" * 10, 20) == "x" * 10
    assert clip("x" * 1000, 20).startswith("x" * 20) and "980 more" in clip("x" * 1000, 20)
    d = clip_details({"field": "f" * 5000, "errors": [{"m": i} for i in range(100)]})
    assert len(d["field"]) < 300 and len(d["errors"]) == 21


def test_parse_origins():
    from widgets.server.config import parse_origins

    assert parse_origins("https://A.example, http://b:8080/") == [
        "https://a.example",
        "http://b:8080",
    ]
    assert parse_origins("") == [] and parse_origins("*") == ["*"]
    for bad in ("a.example", "ftp://x", "*, https://a"):
        with pytest.raises(ConfigError):
            parse_origins(bad)


def test_session_gate_caps():
    from widgets.server.dashboards import SessionGate

    g = SessionGate(max_total=3, max_per_client=2)
    assert g.refusal("a") is None
    g.add("s1", "a")
    g.add("s2", "a")
    assert g.refusal("a")[0] == 429 and g.refusal("b") is None
    g.add("s3", "b")
    assert g.refusal("c")[0] == 503
    g.remove("s1")
    g.remove("s1")  # twice: no effect
    assert g.refusal("a") is None and g.per_client["a"] == 1


def test_login_links_die_on_first_use():
    from widgets.server.dashboards import LoginLinks, SessionCookies, safe_next

    links = LoginLinks()
    token = links.new("admin")
    assert links.redeem("nope") is None
    assert links.redeem(token) == "admin" and links.redeem(token) is None
    expired = LoginLinks(ttl_s=-1)
    assert expired.redeem(expired.new()) is None
    assert safe_next("/finance?x=1") == "/finance?x=1"
    for bad in ("//evil.example", "https://evil.example", "/\\evil", "", None, "javascript:x"):
        assert safe_next(bad) == "/"
    cookies = SessionCookies("s" * 32, {"k-user-0001": "user"})
    assert cookies.role(None) is None and cookies.role("garbage") is None


def test_metrics_labels_only_from_known_values():
    from widgets.server.metrics import ServerMetrics

    m = ServerMetrics()
    for i in range(200):
        m.observe_request("/health", f"M{i}", 405, 0.001)
    m.observe_request("/health", "GET", 200, 0.001)
    text = m.render().decode()
    assert "M1" not in text and 'method="OTHER"' in text
    assert text.count("http_requests_total{") == 2


def test_client_ip_behind_trusted_proxies():
    from widgets.server.security import client_ip, parse_networks

    trusted = parse_networks("10.0.0.0/8, 192.168.1.7")
    assert client_ip("10.1.2.3", "198.51.100.7", trusted) == "198.51.100.7"
    # rightmost untrusted hop; what the client wrote to the left is ignored
    assert client_ip("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.9.9.9", trusted) == "198.51.100.7"
    # every hop trusted: the leftmost
    assert client_ip("192.168.1.7", "10.0.0.5, 10.0.0.6", trusted) == "10.0.0.5"
    # an untrusted peer is the client whatever it sends; no header, no trust: the peer
    assert client_ip("198.51.100.9", "10.0.0.1", trusted) == "198.51.100.9"
    assert client_ip("10.1.2.3", None, trusted) == "10.1.2.3"
    assert client_ip("10.1.2.3", "198.51.100.7", []) == "10.1.2.3"
    # garbage where an address should be: the proxy's own address
    assert client_ip("10.1.2.3", "not-an-ip", trusted) == "10.1.2.3"
    assert client_ip("10.1.2.3", "2001:db8::1", trusted) == "2001:db8::1"
    with pytest.raises(ValueError, match="nope"):
        parse_networks("10.0.0.0/8, nope")


def test_trusted_proxies_setting():
    from widgets.server.config import ConfigError, Settings

    s = Settings.from_env(
        {"PRISM_TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1", "PRISM_API_KEYS": "key-12345678:admin"}
    )
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert Settings.from_env({"PRISM_API_KEYS": "key-12345678:admin"}).trusted_proxies == []
    with pytest.raises(ConfigError, match="PRISM_TRUSTED_PROXIES"):
        Settings.from_env(
            {"PRISM_TRUSTED_PROXIES": "10.0.0.0/33", "PRISM_API_KEYS": "key-12345678:admin"}
        )


def test_whole_body_path_takes_small_declared_bodies_only():
    from tornado.httputil import HTTPHeaders, HTTPServerRequest

    from widgets.server.routing import WholeBodyPath

    rule = WholeBodyPath(r"/api/v1/.*$", max_bytes=1000)

    def matches(path: str = "/api/v1/llm/query", **headers: str) -> bool:
        h = HTTPHeaders({k.replace("_", "-"): v for k, v in headers.items()})
        return rule.match(HTTPServerRequest("POST", path, headers=h)) is not None

    assert matches()  # no body
    assert matches(Content_Length="0") and matches(Content_Length="1000")
    assert not matches(Content_Length="1001")  # streamed: counted as it arrives (413)
    assert not matches(Transfer_Encoding="chunked")  # length unknown up front
    assert not matches(Content_Length="12, 12") and not matches(Content_Length="-1")
    assert not matches("/health", Content_Length="10")  # the path must match too
