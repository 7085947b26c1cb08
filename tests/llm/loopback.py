"""Loopback LLM servers speaking the real wire protocols, for tests (no network, no mocks).

:class:`LoopbackServer` runs a Tornado app on ``127.0.0.1`` (a free port) in a background thread
and serves both

- OpenAI: ``POST /v1/chat/completions`` (JSON; ``stream: true`` as SSE ``data: {...}`` chunks
  with ``choices[0].delta.content``, a final usage chunk when ``stream_options.include_usage``,
  then ``data: [DONE]``) and ``GET /v1/models`` (``Authorization: Bearer <key>``);
- Anthropic: ``POST /v1/messages`` (``x-api-key`` and ``anthropic-version`` headers; JSON, and
  SSE events ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``,
  ``content_block_stop``, ``message_delta``, ``message_stop``) and ``GET /v1/models``.

Answers are deterministic: :data:`ANSWERS` maps a last user message to an answer; any other
prompt is answered ``"Echo: <prompt>"``. A trailing assistant message is a prefill: the answer
continues it (the remainder of the answer after the prefill). Tokens are whitespace words
(``len(text.split())``): prompt tokens = words of every message content (system included),
completion tokens = words of the text sent. Streams send one word (with its trailing
whitespace) per chunk.

Failures are queued with :meth:`LoopbackServer.fail` and consumed one per matching request:
``status`` (an HTTP error, e.g. 500 or 429 with ``retry_after``), ``hang`` (sleep
``seconds`` before answering: past a client's timeout), ``cut`` (a stream closed abruptly after
``after`` chunks), ``stall`` (a stream that stops sending after ``after`` chunks). A wrong key
is answered 401 with the key echoed in the message, as OpenAI does, so tests check that the
client redacts it.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

ANSWERS = {
    "What is the capital of France?": "The capital of France is Paris.",
    "Say hello.": "Hello there!",
    "Count to five.": "One, two, three, four, five.",
    "Tell me a long story.": (
        "Once upon a time a small robot crossed a wide desert to find the sea, "
        "and when it arrived it counted every wave until the sun went down."
    ),
}


def answer_for(messages: list[dict[str, str]]) -> str:
    """The deterministic answer (before prefill handling)."""
    users = [m["content"] for m in messages if m.get("role") == "user"]
    last = users[-1] if users else ""
    return ANSWERS.get(last, f"Echo: {last}")


def count_tokens(text: str) -> int:
    """The loopback tokenizer: whitespace-separated words."""
    return len(text.split())


def split_chunks(text: str) -> list[str]:
    """One word and its trailing whitespace per chunk (leading whitespace kept on the first)."""
    parts = re.findall(r"\s*\S+\s*", text)
    return parts or ([text] if text else [])


@dataclass
class Failure:
    kind: str  # status | hang | cut | stall
    status: int = 500
    retry_after: float | None = None
    seconds: float = 5.0
    after: int = 1
    model: str | None = None
    path: str | None = None  # "chat" | "messages" | None (any)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    status: int = 0


class _Base(tornado.web.RequestHandler):
    def initialize(self, server: LoopbackServer) -> None:
        self.srv = server

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.set_status(status)
        self.set_header("content-type", "application/json")
        for k, v in (headers or {}).items():
            self.set_header(k, v)
        self.finish(json.dumps(obj))

    def _record(self, body) -> Received:
        rec = Received(self.request.method, self.request.path, dict(self.request.headers), body)
        self.srv.received.append(rec)
        return rec

    def _auth_error(self, given: str | None) -> bool:
        key = self.srv.api_key
        if key is None or given == key:
            return False
        self.srv.auth_failures += 1
        self._json(
            401,
            {
                "error": {
                    "message": f"Incorrect API key provided: {given}.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
        )
        return True


class _Models(_Base):
    def get(self) -> None:
        self._record(None)
        if self.request.headers.get("x-api-key") is not None or "anthropic" in self.srv.flavour:
            given = self.request.headers.get("x-api-key")
        else:
            given = (self.request.headers.get("authorization") or "")[7:] or None
        if self._auth_error(given):
            return
        self._json(
            200,
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "loopback"}
                    for m in self.srv.models
                ],
            },
        )


class _Chat(_Base):
    route = "chat"

    def _given_key(self) -> str | None:
        return (self.request.headers.get("authorization") or "")[7:] or None

    def _check(self, body: dict) -> str | None:
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return "messages"
        if not body.get("model"):
            return "model"
        return None

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body)
        except ValueError:
            self._record(None)
            return self._json(400, {"error": {"message": "body is not JSON"}})
        rec = self._record(body)
        if self._auth_error(self._given_key()):
            rec.status = 401
            return
        bad = self._check(body)
        if bad:
            rec.status = 400
            return self._json(400, {"error": {"message": f"missing {bad}", "param": bad}})
        if self.route == "messages" and not self.request.headers.get("anthropic-version"):
            rec.status = 400
            return self._json(
                400,
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "anthropic-version header is required",
                    },
                },
            )
        failure = self.srv._take_failure(self.route, body["model"])
        messages = list(body["messages"])
        if self.route == "messages" and body.get("system"):
            messages.insert(0, {"role": "system", "content": body["system"]})
        full = answer_for(messages)
        prefill = ""
        if messages and messages[-1]["role"] == "assistant":
            prefill = messages[-1]["content"]
        text = full[len(prefill) :] if full.startswith(prefill) else full
        max_tokens = body.get("max_tokens")
        finish = "stop"
        if max_tokens is not None and count_tokens(text) > max_tokens:
            words = split_chunks(text)[:max_tokens]
            text, finish = "".join(words), "length"
        prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
        if failure is not None and failure.kind == "status":
            rec.status = failure.status
            headers = {}
            if failure.retry_after is not None:
                headers["retry-after"] = f"{failure.retry_after:g}"
            return self._json(
                failure.status,
                {
                    "error": {
                        "message": f"loopback failure {failure.status}",
                        "type": "server_error",
                    }
                },
                headers,
            )
        self.srv.in_flight += 1
        self.srv.max_in_flight = max(self.srv.max_in_flight, self.srv.in_flight)
        try:
            if self.srv.delay_s:
                await asyncio.sleep(self.srv.delay_s)
            if failure is not None and failure.kind == "hang":
                await asyncio.sleep(failure.seconds)
            rec.status = 200
            if body.get("stream"):
                await self._stream(body, text, prompt_tokens, finish, failure)
            else:
                self._json(200, self._whole(body, text, prompt_tokens, finish))
        finally:
            self.srv.in_flight -= 1

    def _whole(self, body, text, prompt_tokens, finish) -> dict:
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": count_tokens(text),
                "total_tokens": prompt_tokens + count_tokens(text),
            },
        }

    async def _send(self, event: str | None, obj: Any) -> None:
        if event is not None:
            self.write(f"event: {event}\n")
        self.write(f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n")
        await self.flush()

    async def _interrupt(self, failure: Failure | None, sent: int) -> bool:
        """Apply a cut/stall failure after ``sent`` chunks; True if the stream must end."""
        if failure is None or failure.kind not in ("cut", "stall") or sent != failure.after:
            return False
        if failure.kind == "stall":
            await asyncio.sleep(failure.seconds)
        self.request.connection.stream.close()
        return True

    async def _stream(self, body, text, prompt_tokens, finish, failure) -> None:
        self.set_header("content-type", "text/event-stream")
        self.set_header("cache-control", "no-cache")
        cid = "chatcmpl-" + uuid.uuid4().hex[:12]
        base = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
        }
        await self._send(
            None,
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            },
        )
        chunks = split_chunks(text)
        for i, c in enumerate(chunks):
            if await self._interrupt(failure, i):
                return
            await self._send(
                None,
                {**base, "choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]},
            )
        if await self._interrupt(failure, len(chunks)):
            return
        await self._send(
            None, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            ct = count_tokens(text)
            await self._send(
                None,
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": ct,
                        "total_tokens": prompt_tokens + ct,
                    },
                },
            )
        await self._send(None, "[DONE]")
        self.finish()


class _Messages(_Chat):
    route = "messages"

    def _given_key(self) -> str | None:
        return self.request.headers.get("x-api-key")

    def _check(self, body: dict) -> str | None:
        bad = super()._check(body)
        if bad is None and not isinstance(body.get("max_tokens"), int):
            return "max_tokens"
        if bad is None and any(m.get("role") == "system" for m in body["messages"]):
            return "messages"  # Anthropic takes the system prompt at the top level only
        return bad

    def _whole(self, body, text, prompt_tokens, finish) -> dict:
        return {
            "id": "msg_" + uuid.uuid4().hex[:12],
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn" if finish == "stop" else "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": count_tokens(text)},
        }

    async def _stream(self, body, text, prompt_tokens, finish, failure) -> None:
        self.set_header("content-type", "text/event-stream")
        msg = self._whole(body, "", prompt_tokens, finish)
        msg["content"], msg["stop_reason"] = [], None
        msg["usage"] = {"input_tokens": prompt_tokens, "output_tokens": 1}
        await self._send("message_start", {"type": "message_start", "message": msg})
        await self._send(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        await self._send("ping", {"type": "ping"})
        chunks = split_chunks(text)
        for i, c in enumerate(chunks):
            if await self._interrupt(failure, i):
                return
            await self._send(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": c},
                },
            )
        if await self._interrupt(failure, len(chunks)):
            return
        await self._send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await self._send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "end_turn" if finish == "stop" else "max_tokens",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": count_tokens(text)},
            },
        )
        await self._send("message_stop", {"type": "message_stop"})
        self.finish()


@dataclass
class LoopbackServer:
    """A loopback OpenAI + Anthropic server on ``127.0.0.1:<free port>``.

    Parameters
    ----------
    api_key : str or None
        Required key (``None``: no auth, like a local vLLM/Ollama server).
    models : list of str
        What ``GET /v1/models`` lists.
    flavour : str
        ``"openai"`` or ``"anthropic"``: which key header ``/v1/models`` checks.
    delay_s : float
        Seconds every chat answer waits before it starts (``max_in_flight`` then shows how many
        requests the server held at once).
    """

    api_key: str | None = None
    delay_s: float = 0.0
    models: list[str] = field(default_factory=lambda: ["loop-small", "loop-large"])
    flavour: str = "openai"
    received: list[Received] = field(default_factory=list)
    auth_failures: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    _failures: list[Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _http: Any = None

    @property
    def openai_url(self) -> str:
        """``OPENAI_BASE_URL`` for this server (SDK convention, with ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        """``ANTHROPIC_BASE_URL`` for this server (host root)."""
        return f"http://127.0.0.1:{self.port}"

    def fail(self, kind: str = "status", times: int = 1, **kw: Any) -> None:
        """Queue ``times`` failures of ``kind`` (see the module docstring)."""
        with self._lock:
            self._failures.extend(Failure(kind, **kw) for _ in range(times))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _take_failure(self, route: str, model: str) -> Failure | None:
        with self._lock:
            for i, f in enumerate(self._failures):
                if (f.model is None or f.model == model) and (f.path is None or f.path == route):
                    return self._failures.pop(i)
        return None

    def posts(self) -> list[Received]:
        return [r for r in self.received if r.method == "POST"]

    def start(self) -> LoopbackServer:
        socks = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = socks[0].getsockname()[1]
        ready = threading.Event()
        app = tornado.web.Application(
            [
                (r"/v1/chat/completions", _Chat, {"server": self}),
                (r"/v1/messages", _Messages, {"server": self}),
                (r"/v1/models", _Models, {"server": self}),
            ]
        )

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._http = tornado.httpserver.HTTPServer(app)
            self._http.add_sockets(socks)
            loop.call_soon(ready.set)
            loop.run_forever()
            # cancel handlers still sleeping (hang/stall) and close
            for t in asyncio.all_tasks(loop):
                t.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"loopback-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def halt() -> None:
            self._http.stop()
            await self._http.close_all_connections()
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(halt()))
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # a stand-alone loopback, for benchmarks: prints its base URL
    import argparse
    import signal
    import sys

    cli = argparse.ArgumentParser(description="A loopback OpenAI-compatible server")
    cli.add_argument(
        "--delay-ms", type=float, default=0.0, help="time every answer takes (a model's)"
    )
    delay_s = cli.parse_args().delay_ms / 1e3
    srv = LoopbackServer(api_key=None, flavour="openai", delay_s=delay_s).start()
    print(srv.openai_url, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    finally:
        srv.stop()
