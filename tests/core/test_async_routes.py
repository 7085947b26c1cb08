"""``async def`` route handlers: awaited on the server's loop, bodies parsed inline when small and
in the executor when large, the route's timeout a 504 (a timeout of the handler's own is its
error), the response model applied as for sync handlers."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from pydantic import Field

from prism_kernels.runtime import Runtime, get_runtime, set_runtime
from prism_kernels.store import Store
from widgets.server.app import INLINE_BODY_BYTES, ServerApp
from widgets.server.config import Settings
from widgets.server.errors import ApiError
from widgets.server.models import ApiModel, ApiResponse
from widgets.server.routing import Request, ResponseMismatch, Route


class Echo(ApiModel):
    text: str = Field(max_length=10 * INLINE_BODY_BYTES)
    sleep_s: float = 0.0
    own_timeout: bool = False


class Echoed(ApiResponse):
    length: int
    thread: str


async def echo(req: Request) -> dict:
    if req.body.own_timeout:
        raise TimeoutError("the handler's own deadline")
    await asyncio.sleep(req.body.sleep_s)
    return {"length": len(req.body.text), "thread": threading.current_thread().name}


async def wrong(req: Request) -> dict:
    return {"length": 1, "thread": "x", "undeclared": True}


@pytest.fixture(scope="module")
def app():
    before = get_runtime()  # a ServerApp installs its runtime as the process's: put it back
    a = ServerApp(Settings.from_env({}), Runtime(Store(":memory:")))
    yield a
    a.stop()
    set_runtime(before)


def _req(app) -> Request:
    return Request(None, None, {}, "user", app.runtime, "rid", None)


def _run(app, route, body: dict) -> dict:
    async def main():
        # the handler runs on the calling loop's thread: record which one that is
        return threading.current_thread().name, await app.execute(
            route, _req(app), [json.dumps(body).encode()]
        )

    here, out = asyncio.run(main())
    assert out["thread"] == here  # awaited on the loop, not in a pool thread
    return out


def test_async_handlers_are_awaited_on_the_loop_small_and_large_bodies(app):
    route = Route("POST", "/t/echo", echo, request=Echo, response=Echoed, timeout_s=5)
    assert route.is_async
    assert _run(app, route, {"text": "hi"})["length"] == 2
    big = "x" * (2 * INLINE_BODY_BYTES)  # parsed in the executor, answered on the loop
    assert _run(app, route, {"text": big})["length"] == len(big)


def test_the_routes_timeout_is_a_504_and_the_handlers_own_is_its_error(app):
    route = Route("POST", "/t/echo", echo, request=Echo, response=Echoed, timeout_s=0.05)
    with pytest.raises(ApiError) as e:
        _run(app, route, {"text": "hi", "sleep_s": 5})
    assert e.value.status == 504 and "0.05 s" in e.value.message
    with pytest.raises(TimeoutError, match="own deadline"):
        _run(app, route, {"text": "hi", "own_timeout": True})
    assert app.in_flight == 0


def test_an_async_answer_outside_the_response_model_is_a_mismatch(app):
    route = Route("POST", "/t/wrong", wrong, request=Echo, response=Echoed)
    with pytest.raises(ResponseMismatch):
        asyncio.run(app.execute(route, _req(app), [b'{"text": "a"}']))
