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
