"""Schemathesis against the running server's own OpenAPI document: every operation, authenticated.

For each operation in ``/api/v1/openapi.json`` (so new routes are fuzzed without editing this
file): no 5xx, every response conforms to its documented schema and status codes, and every
4xx carries the JSON error body. Examples per operation and wall time are bounded.
"""

from __future__ import annotations

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
