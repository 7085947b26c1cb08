"""Schemathesis against the running server's own OpenAPI document: every operation, authenticated.

For each operation in ``/api/v1/openapi.json`` (so new routes are fuzzed without editing this
file): no 5xx, every response conforms to its documented schema and status codes, and every
4xx carries the JSON error body. Examples per operation and wall time are bounded.

Then the hostile classes (deep nesting, invalid UTF-8 in body and query, extreme floats
inside arrays, huge arrays, unknown methods) over every operation, from its own example.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.serverutil import KEYS

MAX_EXAMPLES = 25
TOTAL_BUDGET_S = 150.0  # shared by all operations; each stops generating requests after its share
ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}
STATS = {"requests": 0, "operations": 0, "by_status": {}}


@pytest.fixture(scope="module")
def openapi_doc(server) -> dict:
    doc = httpx.get(server.url + "/api/v1/openapi.json", headers=ADMIN, timeout=60).json()
    STATS["operations"] = sum(len(ops) for ops in doc["paths"].values())
    return doc


def _check(case, server) -> None:
    response = case.call(base_url=server.url, headers=ADMIN, timeout=120)
    STATS["requests"] += 1
    STATS["by_status"][response.status_code] = STATS["by_status"].get(response.status_code, 0) + 1
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
    if 400 <= response.status_code < 500:
        body = response.json()
        assert body["success"] is False, body
        assert isinstance(body["error"], str) and body["error"], body
        assert isinstance(body["message"], str) and body["message"], body
        assert isinstance(body["details"], dict), body


def _fuzzer(op, mode, share: float, server):
    """One Hypothesis test of ``op``; it stops sending requests after ``share`` seconds."""
    t0 = time.monotonic()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:
        if time.monotonic() - t0 > share:
            return  # this operation had its share of the time budget: no more requests
        _check(case, server)

    return run


@pytest.mark.timeout(600)
def test_api_conforms_to_its_schema(openapi_doc, server, request):
    """Every documented operation, positive and negative (schema-violating) examples."""
    # (schemathesis.pytest.from_fixture fails under pytest 9 -- it reads Function._nodeid -- so the
    # operations are walked here, one Hypothesis run per operation and generation mode.)
    schema = schemathesis.openapi.from_dict(openapi_doc)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == STATS["operations"]
    share = TOTAL_BUDGET_S / max(1, 2 * len(operations))
    failures: list[str] = []
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            run = _fuzzer(op, mode, share, server)
            try:
                run()
            except (
                Exception,
                BaseExceptionGroup,
            ) as exc:  # collect: one bad route must not hide the others
                failures.append(
                    f"{op.method.upper()} {op.path} [{mode.value}]: {type(exc).__name__}: {exc}"[
                        :3000
                    ]
                )
    line = (
        f"schemathesis: {STATS['requests']} requests over {STATS['operations']} operations, "
        f"statuses {dict(sorted(STATS['by_status'].items()))}"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    print(line)
    assert not failures, "\n\n".join(failures)
    assert STATS["requests"] >= STATS["operations"], STATS


# ---------------------------------------------------------------- hostile input classes
#
# Beyond the schema: the classes of input an attacker sends (issue 10), run over every
# operation of the OpenAPI document, so a route added tomorrow inherits them. None may be
# answered with a 5xx; each 4xx is the JSON error body.

UNKNOWN_METHODS = ("FOO", "PROPFIND", "BREW", "DELETE", "PATCH")
EXTREME_NUMBERS = ("1e308", "-1e308", "5e-324", "-0.0", "1e999", "123456789012345678901234567890")
DEEP = "[" * 1000 + "]" * 1000  # 2 KB, 1000 levels
HUGE_ARRAY_ITEMS = 300_000


def _each_number(value, replace):
    """``value`` with every number (not bool) replaced by ``replace()`` (a JSON text marker)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return replace()
    if isinstance(value, list):
        return [_each_number(v, replace) for v in value]
    if isinstance(value, dict):
        return {k: _each_number(v, replace) for k, v in value.items()}
    return value


def _huge_arrays(value):
    """``value`` with each outermost array made ``HUGE_ARRAY_ITEMS`` long (its first item
    repeated as it is: arrays inside it keep their length)."""
    if isinstance(value, list):
        return [value[0] if value else 0] * HUGE_ARRAY_ITEMS
    if isinstance(value, dict):
        return {k: _huge_arrays(v) for k, v in value.items()}
    return value


def _bodies(example: dict | None) -> dict[str, bytes]:
    """The hostile bodies for one POST operation, from its example."""
    example = example or {}
    first = next(iter(example), "a")
    out = {
        "deep nesting": DEEP.encode(),
        "deep nesting in a field": json.dumps({**example, first: "X"})
        .replace('"X"', DEEP)
        .encode(),
        "invalid UTF-8": b'{"' + first.encode() + b'": "\xff\xfe\xfd"}',
        "invalid UTF-8 escape": b'{"' + first.encode() + b'": "\\ud800"}',
    }
    for number in EXTREME_NUMBERS:
        marked = _each_number(example, lambda: "__NUM__")
        out[f"numbers {number}"] = json.dumps(marked).replace('"__NUM__"', number).encode()
    huge = _huge_arrays(example)
    if huge != example:
        out["huge arrays"] = json.dumps(huge).encode()
    return out


def _assert_4xx_body(r: httpx.Response, what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:400]}"
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/json"), (what, r.headers)
        body = r.json()
        assert body["success"] is False and body["error"] and body["message"], (what, body)
        assert len(r.content) < 20_000, f"{what}: the error echoes too much ({len(r.content)} B)"


@pytest.mark.timeout(600)
def test_hostile_input_classes_on_every_operation(openapi_doc, server):
    """Deep nesting, invalid UTF-8 (body and query), extreme floats inside arrays, huge arrays
    and unknown methods, over every documented operation: never a 5xx, never a trace."""
    failures: list[str] = []
    sent = 0
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=120) as c:
        for path, methods in openapi_doc["paths"].items():
            concrete = re.sub(r"{\w+}", "some-id", path)
            for method in UNKNOWN_METHODS:
                if method.lower() in methods:
                    continue
                try:
                    r = c.request(method, concrete)
                    sent += 1
                    _assert_4xx_body(r, f"{method} {path}")
                    assert r.status_code == 405, (method, path, r.status_code)
                except AssertionError as exc:
                    failures.append(str(exc)[:600])
            for method, op in methods.items():
                params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
                for name in params or ["q"]:
                    try:
                        r = c.request(
                            method.upper(),
                            f"{concrete}?{name}=%ff%c3%28",
                            json={} if method == "post" else None,
                        )
                        sent += 1
                        _assert_4xx_body(r, f"{method.upper()} {path}?{name}=<invalid UTF-8>")
                        if params:
                            assert r.status_code in (400, 404), (path, name, r.status_code)
                    except AssertionError as exc:
                        failures.append(str(exc)[:600])
                if method != "post":
                    continue
                example = op["requestBody"]["content"]["application/json"].get("example")
                for what, raw in _bodies(example).items():
                    try:
                        r = c.post(
                            concrete, content=raw, headers={"Content-Type": "application/json"}
                        )
                        sent += 1
                        _assert_4xx_body(r, f"POST {path} [{what}]")
                        if what.startswith(("deep", "invalid")):
                            assert r.status_code == 400, (path, what, r.status_code)
                    except (AssertionError, httpx.HTTPError) as exc:
                        failures.append(f"POST {path} [{what}]: {type(exc).__name__}: {exc}"[:600])
    assert sent > 100
    assert not failures, "\n".join(failures)
    log = server.log_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 300 :][:4000]
