"""LLM streaming over the event WebSocket and as server-sent events (``POST /llm/query`` with
``stream: true``), through a real server whose provider is a loopback OpenAI-compatible server
(``OPENAI_BASE_URL``/``OPENAI_API_KEY``, models and prices from a ``PRISM_LLM_CONFIG`` file):
chunks in order then ``LlmDone``, a stream that breaks half-way taken over by a fallback (saying
so), errors that name the request, other messages answered while a stream runs, and the
provider key in no frame and no log line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.llm.conftest import OPENAI_KEY
from tests.llm.loopback import ANSWERS, LoopbackServer, count_tokens, split_chunks
from tests.serverutil import KEYS, PrismServer

STORY = "Tell me a long story."
PRICE_IN, PRICE_OUT = 0.5, 1.5  # USD per 1k tokens


@pytest.fixture(scope="module")
def loop_server():
    with LoopbackServer(api_key=OPENAI_KEY, flavour="openai") as s:
        yield s


@pytest.fixture(scope="module")
def llm_server(loop_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("llm-ws")
    cfg = Path(d) / "models.yaml"
    cfg.write_text(
        "models:\n"
        f"  loop-small: {{endpoint: openai, price_in_per_1k: {PRICE_IN}, "
        f"price_out_per_1k: {PRICE_OUT}}}\n"
        f"  loop-large: {{endpoint: openai, price_in_per_1k: {PRICE_IN}, "
        f"price_out_per_1k: {PRICE_OUT}}}\n"
        "router: {max_retries: 0, cooldown_after: 100}\n"
    )
    srv = PrismServer(
        data_dir=Path(d) / "data",
        dashboards=False,
        extra_env={
            "OPENAI_BASE_URL": loop_server.openai_url,
            "OPENAI_API_KEY": OPENAI_KEY,
            "PRISM_LLM_CONFIG": str(cfg),
            "PRISM_LLM_REPLAY": "",
        },
    )
    srv.start()
    yield srv
    srv.stop()
    assert OPENAI_KEY not in srv.log_text()


def _connect(server, role="user"):
    return connect(server.ws_url, additional_headers={"X-API-Key": KEYS[role]}, open_timeout=10)


def _recv(ws, timeout=30.0) -> tuple[dict, str]:
    raw = ws.recv(timeout=timeout)
    assert OPENAI_KEY not in raw
    return json.loads(raw), raw


def _collect(ws, request_id: str, timeout=60.0) -> list[dict]:
    """Frames of ``request_id`` up to its LlmDone or Error (other frames skipped)."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg, _ = _recv(ws, timeout=max(deadline - time.time(), 0.1))
        if msg.get("request_id") != request_id:
            continue
        out.append(msg)
        if msg["type"] in ("LlmDone", "Error"):
            return out
    raise AssertionError(f"no LlmDone/Error for {request_id}: {out}")


def _stream(ws, request_id: str, **fields) -> None:
    ws.send(json.dumps({"type": "LlmStream", "request_id": request_id, **fields}))


def test_chunks_in_order_then_done(llm_server, loop_server):
    with _connect(llm_server) as ws:
        _stream(ws, "r1", prompt=STORY, model="loop-small", cache=False)
        frames = _collect(ws, "r1")
    chunks = [f for f in frames if f["type"] == "LlmChunk"]
    done = frames[-1]
    answer = ANSWERS[STORY]
    assert done["type"] == "LlmDone", frames
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert [c["delta"] for c in chunks] == split_chunks(answer)
    assert "".join(c["delta"] for c in chunks) == done["text"] == answer
    assert done["model_used"] == "loop-small" and done["fallback_used"] is False
    prompt_tokens, completion = count_tokens(STORY), count_tokens(answer)
    assert done["tokens_used"]["prompt"] == prompt_tokens
    assert done["tokens_used"]["completion"] == completion
    assert done["cost_usd"] == pytest.approx(
        prompt_tokens / 1000 * PRICE_IN + completion / 1000 * PRICE_OUT
    )
    sent = loop_server.posts()[-1]
    assert sent.body["stream"] is True and sent.body["model"] == "loop-small"


def test_stream_broken_half_way_is_taken_over_by_the_fallback(llm_server, loop_server):
    loop_server.fail("cut", after=3, model="loop-small")
    with _connect(llm_server) as ws:
        _stream(ws, "r2", prompt=STORY, model="loop-small", fallbacks=["loop-large"], cache=False)
        frames = _collect(ws, "r2")
    kinds = [f["type"] for f in frames]
    assert kinds.count("LlmFallback") == 1 and kinds[-1] == "LlmDone", kinds
    cut = kinds.index("LlmFallback")
    before = [f["delta"] for f in frames[:cut] if f["type"] == "LlmChunk"]
    assert before == split_chunks(ANSWERS[STORY])[:3]  # three chunks went out, then the cut
    fb = frames[cut]
    assert fb["from_model"] == "loop-small" and fb["to_model"] == "loop-large"
    assert fb["mid_stream"] is True and fb["at_chunks"] == 3
    # what a client shows: drop what the fallback says to drop, append what follows
    shown = "".join(before)
    shown = shown[: len(shown) - fb["discard_chars"]]
    shown += "".join(f["delta"] for f in frames[cut + 1 :] if f["type"] == "LlmChunk")
    done = frames[-1]
    assert done["model_used"] == "loop-large" and done["fallback_used"] is True
    assert shown == done["text"] == ANSWERS[STORY]
    assert all(f["model"] == "loop-large" for f in frames[cut + 1 :] if f["type"] == "LlmChunk")


def test_unknown_model_is_an_error_naming_the_request(llm_server):
    with _connect(llm_server) as ws:
        _stream(ws, "bad-model", prompt="Say hello.", model="no-such-model")
        (err,) = _collect(ws, "bad-model")
        assert err["type"] == "Error" and err["status"] == 400
        assert err["request_id"] == "bad-model" and err["details"]["field"] == "model"
        assert "no-such-model" in err["message"]
        # the socket stays open and serves the next request
        _stream(ws, "ok", prompt="Say hello.", model="loop-large")
        assert _collect(ws, "ok")[-1]["text"] == ANSWERS["Say hello."]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "Say hello.", "temperature": 3.5}, "temperature"),
        ({"prompt": "Say hello.", "fallbacks": ["nope"]}, "fallbacks.0"),
    ],
)
def test_bad_requests_name_request_and_field(llm_server, fields, field):
    with _connect(llm_server) as ws:
        _stream(ws, "bad", **fields)
        (err,) = _collect(ws, "bad")
    assert err["type"] == "Error" and err["status"] == 400 and err["details"]["field"] == field


def test_request_id_required_and_readonly_refused(llm_server):
    with _connect(llm_server) as ws:
        ws.send(json.dumps({"type": "LlmStream", "prompt": "Say hello."}))
        msg, _ = _recv(ws)
        assert msg["type"] == "Error" and msg["details"]["field"] == "request_id"
    with _connect(llm_server, role="readonly") as ws:
        _stream(ws, "ro", prompt="Say hello.")
        (err,) = _collect(ws, "ro")
        assert err["type"] == "Error" and err["status"] == 403


def test_other_messages_flow_while_a_stream_waits(llm_server, loop_server):
    loop_server.fail("hang", seconds=3.0, model="loop-large")
    with _connect(llm_server) as ws:
        ws.send(json.dumps({"type": "Subscribe", "event_type": "SystemStatus"}))
        assert _recv(ws)[0]["type"] == "Subscribed"
        _stream(ws, "slow", prompt=STORY, model="loop-large", cache=False)
        _stream(ws, "fast", prompt="Count to five.", model="loop-small", cache=False)
        ws.send(json.dumps({"type": "Ping"}))
        order = []
        deadline = time.time() + 60
        while time.time() < deadline and "done:slow" not in order:
            msg, _ = _recv(ws)
            if msg["type"] == "Pong":
                order.append("pong")
            elif msg["type"] == "SystemStatus":
                order.append("status")
            elif msg["type"] == "LlmDone":
                order.append(f"done:{msg['request_id']}")
                if msg["request_id"] == "fast":
                    assert msg["text"] == ANSWERS["Count to five."]
            elif msg["type"] == "Error":
                raise AssertionError(msg)
    # the loopback held the slow stream for 3 s: the ping, the fast stream and (every 5 s)
    # the status events were answered meanwhile, not after it
    assert order.index("pong") < order.index("done:slow")
    assert order.index("done:fast") < order.index("done:slow")


# ---------------------------------------------------------------- server-sent events


def _sse(server, body: dict, on_event=None) -> tuple[httpx.Response, list[tuple[str, dict]]]:
    """POST /llm/query with ``stream: true``; the events as ``(name, frame)`` in order."""
    events: list[tuple[str, dict]] = []
    with (
        server.client("user") as c,
        c.stream("POST", "/api/v1/llm/query", json={**body, "stream": True}) as r,
    ):
        if r.headers["content-type"].startswith("application/json"):
            r.read()
            return r, events
        name = None
        for line in r.iter_lines():
            assert OPENAI_KEY not in line
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
                if on_event is not None:
                    on_event(name)
    return r, events


def test_sse_chunks_in_order_then_done(llm_server, loop_server):
    r, events = _sse(llm_server, {"prompt": STORY, "model": "loop-small", "cache": False})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-store"
    names = [n for n, _ in events]
    assert names[-1] == "LlmDone" and set(names[:-1]) == {"LlmChunk"}, names
    assert all(f["type"] == n for n, f in events)
    chunks = [f for n, f in events if n == "LlmChunk"]
    assert [c["index"] for c in chunks] == list(range(len(chunks)))
    assert [c["delta"] for c in chunks] == split_chunks(ANSWERS[STORY])
    done = events[-1][1]
    assert done["text"] == ANSWERS[STORY] and done["model_used"] == "loop-small"
    assert done["request_id"] == r.headers["x-request-id"]
    assert done["tokens_used"]["completion"] == count_tokens(ANSWERS[STORY])
    assert loop_server.posts()[-1].body["stream"] is True


def test_sse_events_arrive_as_they_are_produced(llm_server, loop_server):
    # the provider stalls 2 s after its second chunk, then drops the connection (the fallback
    # finishes): the first two chunks must be out before the stall ends
    loop_server.fail("stall", after=2, seconds=2.0, model="loop-small")
    seen: list[tuple[str, float]] = []
    r, events = _sse(
        llm_server,
        {"prompt": STORY, "model": "loop-small", "fallbacks": ["loop-large"], "cache": False},
        on_event=lambda name: seen.append((name, time.monotonic())),
    )
    assert r.status_code == 200 and events[-1][0] == "LlmDone"
    assert seen[1][0] == "LlmChunk"
    assert seen[-1][1] - seen[1][1] > 1.0, "chunks were held back until the end"


def test_sse_fallback_mid_stream(llm_server, loop_server):
    loop_server.fail("cut", after=3, model="loop-small")
    body = {"prompt": STORY, "model": "loop-small", "fallbacks": ["loop-large"], "cache": False}
    r, events = _sse(llm_server, body)
    names = [n for n, _ in events]
    assert names.count("LlmFallback") == 1 and names[-1] == "LlmDone", names
    cut = names.index("LlmFallback")
    fb = events[cut][1]
    assert fb["mid_stream"] is True and fb["to_model"] == "loop-large"
    shown = "".join(f["delta"] for n, f in events[:cut] if n == "LlmChunk")
    shown = shown[: len(shown) - fb["discard_chars"]]
    shown += "".join(f["delta"] for n, f in events[cut + 1 :] if n == "LlmChunk")
    assert shown == events[-1][1]["text"] == ANSWERS[STORY]


def test_sse_errors_before_the_stream_are_json_and_after_it_an_error_event(llm_server, loop_server):
    r, events = _sse(llm_server, {"prompt": "Say hello.", "model": "no-such-model"})
    assert r.status_code == 400 and r.json()["details"]["field"] == "model" and not events
    r, _ = _sse(llm_server, {"prompt": "", "model": "loop-small"})
    assert r.status_code == 400 and r.json()["details"]["field"] == "prompt"
    # every model fails after the first chunk: the stream ends with an Error event
    loop_server.fail("cut", after=1, model="loop-small")
    body = {"prompt": STORY, "model": "loop-small", "fallbacks": [], "cache": False}
    r, events = _sse(llm_server, body)
    assert r.status_code == 200
    assert events[0][0] == "LlmChunk" and events[-1][0] == "Error", events
    err = events[-1][1]
    assert err["success"] is False and err["status"] >= 500
    assert err["details"]["request_id"] == r.headers["x-request-id"]


def test_sse_client_leaving_mid_stream_frees_the_server(llm_server, loop_server):
    loop_server.fail("stall", after=1, seconds=3.0, model="loop-small")
    with (
        llm_server.client("user") as c,
        c.stream(
            "POST",
            "/api/v1/llm/query",
            json={"prompt": STORY, "model": "loop-small", "cache": False, "stream": True},
        ) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("event: LlmChunk"):
                break  # leave after the first chunk
    with llm_server.client("user") as c:  # the server answers on
        d = c.post("/api/v1/llm/query", json={"prompt": "Say hello.", "model": "loop-large"})
        assert d.status_code == 200 and d.json()["data"]["text"] == "Hello there!"
