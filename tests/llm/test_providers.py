"""Provider clients against loopback servers speaking the OpenAI and Anthropic wire protocols."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.llm.config import EndpointConfig, Secret, load_config
from prism_kernels.llm.providers import (
    AnthropicProvider,
    ChatRequest,
    GeminiProvider,
    OpenAIProvider,
    ProviderError,
    Usage,
    discover_models,
    env_proxy,
    make_provider,
    messages_from,
)
from tests.llm.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.llm.loopback import ANSWERS, LoopbackServer

Q = "What is the capital of France?"


def _words(text: str) -> int:  # the loopback's documented tokenizer, counted independently
    return len([w for w in text.replace("\n", " ").split(" ") if w.strip()])


def _openai(server, key=OPENAI_KEY, timeout_s=10.0) -> OpenAIProvider:
    ep = EndpointConfig(
        "oa", "openai", server.openai_url, Secret(key) if key else None, timeout_s=timeout_s
    )
    return OpenAIProvider(ep)


def _anthropic(server, key=ANTHROPIC_KEY, timeout_s=10.0) -> AnthropicProvider:
    ep = EndpointConfig("an", "anthropic", server.anthropic_url, Secret(key), timeout_s=timeout_s)
    return AnthropicProvider(ep)


def _run(coro):
    return asyncio.run(coro)


async def _complete(p, req, timeout_s=None):
    try:
        return await p.complete(req, timeout_s)
    finally:
        await p.aclose()


async def _collect(p, req, timeout_s=None):
    out = []
    try:
        async for ev in p.stream(req, timeout_s):
            out.append(ev)
    finally:
        await p.aclose()
    return out


def test_openai_complete(openai_server):
    msgs = messages_from(Q, system_prompt="Answer briefly.")
    req = ChatRequest("loop-small", msgs, temperature=0.3, max_tokens=50, seed=7)
    c = _run(_complete(_openai(openai_server), req))
    assert c.text == ANSWERS[Q]
    assert c.usage == Usage(_words("Answer briefly.") + _words(Q), _words(ANSWERS[Q]))
    assert c.finish_reason == "stop" and c.response_model == "loop-small"
    assert c.provider == "openai" and c.endpoint == "oa" and c.latency_ms > 0
    (rec,) = openai_server.posts()
    assert rec.path == "/v1/chat/completions"
    assert rec.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert rec.body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert rec.body["temperature"] == 0.3 and rec.body["max_tokens"] == 50
    assert rec.body["seed"] == 7 and "stream" not in rec.body


def test_openai_stream_with_usage(openai_server):
    story = "Tell me a long story."
    req = ChatRequest("loop-large", messages_from(story))
    events = _run(_collect(_openai(openai_server), req))
    deltas = [e.delta for e in events if e.kind == "delta"]
    assert "".join(deltas) == ANSWERS[story]
    assert len(deltas) == _words(ANSWERS[story])  # one word per chunk
    assert events[-1].kind == "done" and all(e.kind == "delta" for e in events[:-1])
    assert events[-1].usage == Usage(_words(story), _words(ANSWERS[story]))
    assert events[-1].finish_reason == "stop"
    body = openai_server.posts()[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_max_tokens_truncates_and_says_so(openai_server, anthropic_server):
    req = ChatRequest("loop-small", messages_from("Count to five."), max_tokens=2)
    c = _run(_complete(_openai(openai_server), req))
    assert c.text.split() == ["One,", "two,"] and c.finish_reason == "length"
    assert c.usage.completion_tokens == 2
    c = _run(_complete(_anthropic(anthropic_server), req))
    assert c.finish_reason == "max_tokens" and c.usage.completion_tokens == 2


def test_anthropic_complete_moves_the_system_prompt(anthropic_server):
    msgs = messages_from("Say hello.", system_prompt="Be kind.")
    req = ChatRequest("claude-loop", msgs, temperature=1.0)
    c = _run(_complete(_anthropic(anthropic_server), req))
    assert c.text == ANSWERS["Say hello."]
    assert c.usage == Usage(_words("Be kind. Say hello."), _words(ANSWERS["Say hello."]))
    assert c.finish_reason == "end_turn"
    (rec,) = anthropic_server.posts()
    assert rec.path == "/v1/messages"
    assert rec.headers["X-Api-Key"] == ANTHROPIC_KEY
    assert rec.headers["Anthropic-Version"] == "2023-06-01"
    assert rec.body["system"] == "Be kind."
    assert all(m["role"] != "system" for m in rec.body["messages"])
    assert rec.body["max_tokens"] == 1024  # required by the API: our default
    assert rec.body["temperature"] == 1.0
    _run(_complete(_anthropic(anthropic_server), ChatRequest("claude-loop", msgs, temperature=1.7)))
    assert anthropic_server.posts()[-1].body["temperature"] == 1.0  # clamped to Anthropic's 0..1
    _run(_complete(_anthropic(anthropic_server), ChatRequest("claude-loop", msgs, temperature=0.3)))
    assert anthropic_server.posts()[-1].body["temperature"] == 0.3


def test_anthropic_stream_events(anthropic_server):
    req = ChatRequest("claude-loop", messages_from("Count to five."))
    events = _run(_collect(_anthropic(anthropic_server), req))
    text = "".join(e.delta for e in events if e.kind == "delta")
    assert text == ANSWERS["Count to five."]
    done = events[-1]
    assert done.kind == "done" and done.finish_reason == "end_turn"
    assert done.usage == Usage(_words("Count to five."), _words(text))
    assert anthropic_server.posts()[0].body["stream"] is True


def test_anthropic_prefill_is_continued(anthropic_server):
    full = ANSWERS[Q]
    part = full[:12]
    msgs = messages_from(Q) + ({"role": "assistant", "content": part},)
    c = _run(_complete(_anthropic(anthropic_server), ChatRequest("claude-loop", msgs)))
    assert part + c.text == full


def test_echo_rule_and_gemini_over_the_openai_layer(openai_server):
    ep = EndpointConfig("gem", "gemini", openai_server.openai_url, Secret(OPENAI_KEY))
    p = make_provider(ep)
    assert isinstance(p, GeminiProvider)
    c = _run(_complete(p, ChatRequest("gemini-loop", messages_from("anything at all"))))
    assert c.text == "Echo: anything at all" and c.usage.prompt_tokens == 3
    cfg = load_config({"GEMINI_API_KEY": "g", "GEMINI_BASE_URL": openai_server.openai_url})
    assert cfg.endpoints["gemini"].base_url == openai_server.openai_url


def test_discover_models(openai_server, anthropic_server):
    async def listed(p):
        try:
            return await discover_models(p)
        finally:
            await p.aclose()

    assert _run(listed(_openai(openai_server))) == ["loop-large", "loop-small"]
    assert _run(listed(_anthropic(anthropic_server))) == ["claude-loop"]
    rec = anthropic_server.received[-1]
    assert rec.method == "GET" and rec.path == "/v1/models"
    assert rec.headers["X-Api-Key"] == ANTHROPIC_KEY


def test_http_errors_are_classified(openai_server):
    req = ChatRequest("loop-small", messages_from(Q))
    openai_server.fail("status", status=500)
    with pytest.raises(ProviderError) as e:
        _run(_complete(_openai(openai_server), req))
    assert e.value.status == 500 and e.value.retryable and e.value.kind == "http"
    openai_server.fail("status", status=429, retry_after=2)
    with pytest.raises(ProviderError) as e:
        _run(_collect(_openai(openai_server), req))
    assert e.value.status == 429 and e.value.retryable and e.value.retry_after == 2.0
    openai_server.fail("status", status=400)
    with pytest.raises(ProviderError) as e:
        _run(_complete(_openai(openai_server), req))
    assert e.value.status == 400 and not e.value.retryable


def test_a_wrong_key_echoed_by_the_server_is_redacted(openai_server):
    wrong = "sk-WRONG-key-that-must-not-leak-42"
    req = ChatRequest("loop-small", messages_from(Q))
    for call in (_complete, _collect):
        with pytest.raises(ProviderError) as e:
            _run(call(_openai(openai_server, key=wrong), req))
        err = e.value
        assert err.status == 401 and not err.retryable
        assert "Incorrect API key provided: ***" in err.message
        assert wrong not in str(err) + repr(err) + repr(err.to_dict()) + repr(err.args)
    assert openai_server.auth_failures == 2


def test_timeouts_are_honoured(openai_server, anthropic_server):
    req = ChatRequest("loop-small", messages_from(Q))
    openai_server.fail("hang", seconds=5.0)
    t0 = time.perf_counter()
    with pytest.raises(ProviderError) as e:
        _run(_complete(_openai(openai_server, timeout_s=0.3), req))
    assert e.value.kind == "timeout" and e.value.retryable
    assert time.perf_counter() - t0 < 5.0  # did not wait for the hung server
    # a stream that stalls after two chunks times out on the next read
    anthropic_server.fail("stall", after=2, seconds=5.0)
    got = []

    async def read():
        p = _anthropic(anthropic_server)
        try:
            async for ev in p.stream(ChatRequest("claude-loop", messages_from(Q)), 0.3):
                got.append(ev)
        finally:
            await p.aclose()

    with pytest.raises(ProviderError) as e:
        _run(read())
    assert e.value.kind == "timeout" and [g.kind for g in got] == ["delta", "delta"]


@pytest.mark.parametrize("flavour", ["openai", "anthropic"])
def test_a_cut_stream_is_an_error_not_a_short_answer(openai_server, anthropic_server, flavour):
    server = openai_server if flavour == "openai" else anthropic_server
    p = _openai(server) if flavour == "openai" else _anthropic(server)
    server.fail("cut", after=3)
    got = []

    async def read():
        try:
            async for ev in p.stream(ChatRequest("m", messages_from(Q))):
                got.append(ev)
        finally:
            await p.aclose()

    with pytest.raises(ProviderError) as e:
        _run(read())
    assert e.value.kind == "stream" and e.value.retryable
    assert len(got) == 3 and all(g.kind == "delta" for g in got)


def test_cut_after_the_last_chunk_is_still_an_error(openai_server):
    n = _words(ANSWERS[Q])
    openai_server.fail("cut", after=n)
    with pytest.raises(ProviderError) as e:
        _run(_collect(_openai(openai_server), ChatRequest("m", messages_from(Q))))
    assert e.value.kind == "stream"


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ep = EndpointConfig("dead", "openai", f"http://127.0.0.1:{port}/v1", timeout_s=2)
    with pytest.raises(ProviderError) as e:
        _run(_complete(OpenAIProvider(ep), ChatRequest("m", messages_from(Q))))
    assert e.value.kind == "connection" and e.value.retryable


def test_requests_are_validated():
    with pytest.raises(InvalidInput) as e:
        ChatRequest("m", ())
    assert e.value.field == "messages"
    with pytest.raises(InvalidInput) as e:
        ChatRequest("m", ({"role": "robot", "content": "x"},))
    assert e.value.field == "messages.0.role"
    with pytest.raises(InvalidInput) as e:
        ChatRequest("m", ({"role": "user", "content": 3},))
    assert e.value.field == "messages.0.content"
    for bad in ("", "   ", None):
        with pytest.raises(InvalidInput) as e:
            messages_from(bad)
        assert e.value.field == "prompt"
    with pytest.raises(InvalidInput) as e:
        make_provider(EndpointConfig("x", "cohere", "http://x"))
    assert e.value.field == "provider"


def test_provider_repr_hides_the_key():
    p = OpenAIProvider(EndpointConfig("oa", "openai", "http://x/v1", Secret(OPENAI_KEY)))
    assert OPENAI_KEY not in repr(p) and "oa" in repr(p)


def test_one_pool_serves_concurrent_requests():
    with LoopbackServer(delay_s=0.05) as server:
        p = _openai(server, key=None)

        async def many():
            try:
                reqs = [ChatRequest("m", messages_from(f"q{i}")) for i in range(12)]
                return await asyncio.gather(*(p.complete(r) for r in reqs))
            finally:
                await p.aclose()

        out = _run(many())
    assert [c.text for c in out] == [f"Echo: q{i}" for i in range(12)]
    assert server.max_in_flight > 1  # requests overlapped on the pooled client


def test_the_proxy_comes_from_the_environment_once(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.internal.example")
    assert env_proxy("https://api.openai.com/v1") == "http://proxy.example:3128"
    assert env_proxy("http://api.openai.com/v1") is None  # no HTTP_PROXY
    for local in (
        "http://127.0.0.1:8000/v1",
        "https://localhost/v1",
        "https://vllm.internal.example",
    ):
        assert env_proxy(local) is None, local
    monkeypatch.setenv("ALL_PROXY", "http://all.example:8080")
    assert env_proxy("http://api.openai.com/v1") == "http://all.example:8080"


def test_a_session_per_loop_and_closing_one_leaves_the_others(openai_server):
    p = _openai(openai_server)
    req = ChatRequest("loop-small", messages_from(Q))

    async def main():
        here = asyncio.get_running_loop()
        text = (await p.complete(req)).text
        mine = p._clients[here]

        async def there():  # another thread's loop: a session of its own, closed there
            try:
                return (await p.complete(req)).text, len(p._clients)
            finally:
                await p.aclose()

        other, sessions = await asyncio.to_thread(asyncio.run, there())
        again = (await p.complete(req)).text
        kept = p._clients[here] is mine and not mine.closed
        await p.aclose()
        return text, other, again, sessions, kept, mine.closed, here in p._clients

    text, other, again, sessions, kept, closed, still = _run(main())
    assert text == other == again == ANSWERS[Q]
    assert sessions == 2 and kept and closed and not still
