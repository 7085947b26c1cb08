"""Assertions shared by the API tests: the success envelope and the JSON error body."""

from __future__ import annotations

import httpx


def assert_error(
    r: httpx.Response, status: int, field: str | None = None, named_in_message: bool = True
) -> dict:
    """``r`` is a JSON error with ``status``, no trace, and (when given) names ``field``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["success"] is False and body["error"] and body["message"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    if field is not None:
        assert body["details"]["field"] == field, body
        if named_in_message:
            assert field.split(".")[-1] in body["message"], body
    return body


def ok(r: httpx.Response) -> dict:
    """The ``data`` of a success envelope."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    return body["data"]
