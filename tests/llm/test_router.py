"""LlmRouter against loopback servers: answers, costs, retries, cooldowns, fallbacks (also
mid-stream), timeouts, sync use from threads, bounded batches, and keys that never leak."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from prism_kernels.errors import InvalidInput, NotFound, PrismError, Unavailable
from prism_kernels.llm.config import load_config
from prism_kernels.llm.router import MAX_PROMPT_CHARS, AllModelsFailed, LlmRouter
from tests.llm.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.llm.loopback import ANSWERS

Q = "What is the capital of France?"
STORY = "Tell me a long story."
P_IN, P_OUT = 0.5, 1.5  # USD per 1k tokens for "gpt" in the test config


def _words(text: str) -> int:
    return len(text.split())


class Clock:
    """A hand-moved monotonic clock for cooldowns."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_router(tmp_path, oa, an, router="", gpt_fallbacks="[claude]", clock=None, **kw):
    text = f"""
endpoints:
  oa: {{provider: openai, base_url: "{oa.openai_url}", api_key_env: OA_KEY, timeout_s: 5}}
  an: {{provider: anthropic, base_url: "{an.anthropic_url}", api_key_env: AN_KEY, timeout_s: 5}}
models:
  gpt: {{endpoint: oa, model: loop-small, price_in_per_1k: {P_IN}, price_out_per_1k: {P_OUT},
         fallbacks: {gpt_fallbacks}}}
  gpt-big: {{endpoint: oa, model: loop-large}}
  claude: {{endpoint: an, model: claude-loop, price_in_per_1k: 0.8, price_out_per_1k: 4.0}}
aliases: {{default: gpt}}
default_model: default
router: {{max_retries: 2, backoff_base_s: 0.01, backoff_max_s: 1.0, cooldown_after: 3,
          cooldown_s: 30 {router}}}
"""
    path = tmp_path / "llm.yaml"
    path.write_text(text)
    cfg = load_config(
        {"PRISM_LLM_CONFIG": str(path), "OA_KEY": OPENAI_KEY, "AN_KEY": ANTHROPIC_KEY}
    )
    return LlmRouter(cfg, seed=0, clock=clock or time.monotonic, **kw)


@pytest.fixture
def router(tmp_path, openai_server, anthropic_server):
    r = make_router(tmp_path, openai_server, anthropic_server)
    yield r
    r.close()


def test_answer_tokens_and_cost_come_through(router, openai_server):
    res = router.complete_sync(Q, system_prompt="Be brief.", temperature=0.2, max_tokens=64)
    assert res.text == ANSWERS[Q]
    assert res.model_requested == res.model_used == "gpt" and not res.fallback_used
    pt, ct = _words("Be brief.") + _words(Q), _words(ANSWERS[Q])
    assert res.tokens_used == {"prompt": pt, "completion": ct, "total": pt + ct}
    assert res.cost_usd == pytest.approx(pt / 1000 * P_IN + ct / 1000 * P_OUT, rel=1e-12)
    assert res.provider == "openai" and res.endpoint == "oa" and res.latency_ms > 0
    assert res.key_id.startswith("key-") and OPENAI_KEY not in json.dumps(res.to_dict())
    assert openai_server.posts()[0].body["model"] == "loop-small"  # the wire id
    # an unpriced model has an unknown cost, not a made-up zero
    assert router.complete_sync(Q, "gpt-big").cost_usd is None


def test_async_from_another_loop_and_sync_from_threads(router):
    async def main():
        return await asyncio.gather(*(router.complete(f"a{i}", "claude") for i in range(5)))

    out = asyncio.run(main())
    assert [r.text for r in out] == [f"Echo: a{i}" for i in range(5)]
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda i: router.complete_sync(f"t{i}").text, range(16)))
    assert got == [f"Echo: t{i}" for i in range(16)]


def test_an_attached_loop_runs_its_calls_itself(router):
    loop = asyncio.new_event_loop()
    try:

        async def main():
            router.attach_loop()
            out = await asyncio.gather(*(router.complete(f"a{i}", "claude") for i in range(5)))
            with pytest.raises(RuntimeError, match="own loop"):
                router.complete_sync("x")  # would block the loop it needs
            return [r.text for r in out]

        assert loop.run_until_complete(main()) == [f"Echo: a{i}" for i in range(5)]
        assert router._thread is None  # no hop to a thread of the router's
        with ThreadPoolExecutor(4) as ex:  # other threads' sync calls: the router's own loop
            got = list(ex.map(lambda i: router.complete_sync(f"t{i}").text, range(4)))
        assert got == [f"Echo: t{i}" for i in range(4)] and router._thread is not None
        sessions = [p._clients[loop] for p in router._providers.values() if loop in p._clients]
        assert len(sessions) == 1 and not sessions[0].closed
        router.close()  # the loop is stopped, not closed (a server shutting down): closed there
        assert sessions[0].closed
    finally:
        loop.close()


def test_retryable_failures_are_retried(router, openai_server):
    openai_server.fail("status", times=2, status=500)
    res = router.complete_sync(Q, "gpt")
    assert res.text == ANSWERS[Q] and res.model_used == "gpt" and not res.fallback_used
    assert [a.ok for a in res.attempts] == [False, False, True]
    assert [a.status for a in res.attempts[:2]] == [500, 500]
    assert len(openai_server.posts()) == 3


def test_a_non_retryable_failure_falls_back_at_once(router, openai_server, anthropic_server):
    openai_server.fail("status", status=400)
    res = router.complete_sync(Q, "gpt")
    assert res.model_used == "claude" and res.text == ANSWERS[Q] and res.fallback_used
    assert len(openai_server.posts()) == 1
    fb = res.fallbacks[0]
    assert (fb.from_model, fb.to_model, fb.mid_stream) == ("gpt", "claude", False)
    assert "400" in fb.reason
    # cost is the answering model's price
    pt, ct = _words(Q), _words(ANSWERS[Q])
    assert res.cost_usd == pytest.approx(pt / 1000 * 0.8 + ct / 1000 * 4.0)


def test_retry_after_is_waited(router, openai_server):
    openai_server.fail("status", status=429, retry_after=0.3)
    t0 = time.perf_counter()
    res = router.complete_sync(Q, "gpt")
    assert res.model_used == "gpt" and len(openai_server.posts()) == 2
    assert time.perf_counter() - t0 >= 0.3  # the server's Retry-After was respected


def test_a_long_retry_after_cools_the_endpoint(tmp_path, openai_server, anthropic_server):
    clock = Clock()
    r = make_router(tmp_path, openai_server, anthropic_server, clock=clock)
    try:
        openai_server.fail("status", status=429, retry_after=60)
        res = r.complete_sync(Q, "gpt")
        assert res.model_used == "claude" and len(openai_server.posts()) == 1
        h = {e["name"]: e for e in r.health()["endpoints"]}
        assert h["oa"]["status"] == "cooling_down" and h["oa"]["cooldown_left_s"] == 60
        # while cooling, the endpoint is skipped without a request reaching it
        res = r.complete_sync(Q, "gpt")
        assert res.model_used == "claude" and len(openai_server.posts()) == 1
        assert res.attempts[0].skipped and res.attempts[0].kind == "cooldown"
        with pytest.raises(AllModelsFailed) as e:
            r.complete_sync(Q, "gpt-big")
        assert e.value.retry_after == 60 and isinstance(e.value, Unavailable)
        clock.t += 61
        res = r.complete_sync(Q, "gpt")
        assert res.model_used == "gpt" and len(openai_server.posts()) == 2
        assert r.health()["endpoints"][0]["status"] == "ok"
    finally:
        r.close()


def test_consecutive_failures_cool_down_and_a_success_resets(tmp_path, oa_an):
    oa, an = oa_an
    clock = Clock()
    r = make_router(tmp_path, oa, an, router=", max_retries: 0, cooldown_after: 2", clock=clock)
    try:
        oa.fail("status", times=2, status=503)
        assert r.complete_sync(Q, "gpt").model_used == "claude"
        h = r.health()["endpoints"][0]
        assert h["status"] == "ok" and h["consecutive_failures"] == 1
        assert r.complete_sync(Q, "gpt").model_used == "claude"
        h = r.health()["endpoints"][0]
        assert h["status"] == "cooling_down" and h["cooldown_left_s"] == 30
        n = len(oa.posts())
        assert r.complete_sync(Q, "gpt").model_used == "claude" and len(oa.posts()) == n
        clock.t += 31
        assert r.complete_sync(Q, "gpt").model_used == "gpt"
        h = r.health()["endpoints"][0]
        assert h["consecutive_failures"] == 0 and h["failures"] == 2 and h["requests"] == 3
        models = {m["name"]: m for m in r.models()}
        assert models["gpt"]["failures"] == 2 and models["gpt"]["requests"] == 1
        assert models["gpt"]["latency_ms"] > 0 and models["claude"]["provider"] == "anthropic"
    finally:
        r.close()


@pytest.fixture
def oa_an(openai_server, anthropic_server):
    return openai_server, anthropic_server


def test_request_fallbacks_override_the_models(tmp_path, openai_server, anthropic_server):
    r = make_router(tmp_path, openai_server, anthropic_server, router=", cooldown_after: 10")
    try:
        openai_server.fail("status", times=3, status=500, model="loop-small")
        res = r.complete_sync(Q, "gpt", fallbacks=["gpt-big"])
        assert res.model_used == "gpt-big" and len(anthropic_server.posts()) == 0
        assert [a.model for a in res.attempts] == ["gpt", "gpt", "gpt", "gpt-big"]
        openai_server.fail("status", times=3, status=500, model="loop-small")
        with pytest.raises(AllModelsFailed):  # no fallback for this request
            r.complete_sync(Q, "gpt", fallbacks=[])
        assert len(anthropic_server.posts()) == 0
    finally:
        r.close()


def test_cooldown_is_per_endpoint(router, openai_server, anthropic_server):
    """Three consecutive failures (one request and its two retries) cool the endpoint: its
    other models are skipped too."""
    openai_server.fail("status", times=3, status=500, model="loop-small")
    assert router.complete_sync(Q, "gpt", fallbacks=["gpt-big", "claude"]).model_used == "claude"
    assert [a.skipped for a in router.complete_sync(Q, "gpt-big", fallbacks=["claude"]).attempts][0]


def test_timeouts_are_honoured_and_fall_back(router, openai_server):
    openai_server.fail("hang", seconds=5.0)
    t0 = time.perf_counter()
    res = router.complete_sync(Q, "gpt", timeout_s=0.5, fallbacks=["claude"])
    assert time.perf_counter() - t0 < 5.0
    # a timeout is retryable: the second attempt on gpt answers
    assert res.model_used == "gpt" and res.attempts[0].kind == "timeout"
    openai_server.fail("hang", times=3, seconds=5.0)
    res = router.complete_sync(Q, "gpt", timeout_s=0.5)
    assert res.model_used == "claude" and [a.kind for a in res.attempts[:3]] == ["timeout"] * 3


def test_everything_failing_is_unavailable_with_the_attempts(
    router, openai_server, anthropic_server
):
    openai_server.fail("status", times=3, status=502)
    anthropic_server.fail("status", times=3, status=500)
    with pytest.raises(AllModelsFailed) as e:
        router.complete_sync(Q, "gpt")
    err = e.value
    assert err.models == ["gpt", "claude"] and len(err.attempts) == 6
    assert "500" in str(err) and err.to_dict()["attempts"][0]["status"] == 502


def _apply(items):
    """What a consumer shows: chunks appended, a fallback's discard_chars dropped."""
    shown = ""
    for it in items:
        if it.type == "chunk":
            shown += it.delta
        elif it.type == "fallback":
            shown = shown[: len(shown) - it.fallback.discard_chars]
    return shown


@pytest.mark.parametrize("first, second", [("gpt", "claude"), ("claude", "gpt")])
def test_mid_stream_fallback_restart(tmp_path, openai_server, anthropic_server, first, second):
    r = make_router(tmp_path, openai_server, anthropic_server, gpt_fallbacks="[]")
    try:
        server = openai_server if first == "gpt" else anthropic_server
        server.fail("cut", after=4)
        items = list(r.stream_sync(STORY, first, fallbacks=[second]))
        kinds = [i.type for i in items]
        assert kinds[:5] == ["chunk"] * 4 + ["fallback"] and kinds[-1] == "done"
        fb = items[4].fallback
        first_four = "".join(i.delta for i in items[:4])
        assert ANSWERS[STORY].startswith(first_four)
        assert (fb.from_model, fb.to_model, fb.mid_stream, fb.mode) == (
            first,
            second,
            True,
            "restart",
        )
        assert fb.at_chunks == 4 and fb.at_chars == fb.discard_chars == len(first_four)
        res = items[-1].result
        assert res.text == ANSWERS[STORY] == _apply(items)
        assert res.model_used == second and res.fallback_used and res.streamed
        assert res.usage.completion_tokens == _words(ANSWERS[STORY])
        assert all(i.model == second for i in items[5:-1])
    finally:
        r.close()


def test_mid_stream_fallback_continue(tmp_path, openai_server, anthropic_server):
    r = make_router(tmp_path, openai_server, anthropic_server, router=", mid_stream: continue")
    try:
        openai_server.fail("cut", after=5)
        items = list(r.stream_sync(STORY, "gpt"))
        fb = next(i.fallback for i in items if i.type == "fallback")
        assert fb.mode == "continue" and fb.discard_chars == 0 and fb.at_chunks == 5
        res = items[-1].result
        assert res.text == ANSWERS[STORY] == _apply(items)
        # the fallback got the partial answer as an assistant prefill and continued it
        body = anthropic_server.posts()[0].body
        partial = "".join(i.delta for i in items[:5])
        assert body["messages"][-1] == {"role": "assistant", "content": partial}
        assert res.usage.completion_tokens == _words(ANSWERS[STORY][len(partial) :])
        assert res.usage.prompt_tokens == _words(STORY) + _words(partial)
    finally:
        r.close()


def test_a_stream_failing_before_any_text_is_retried(router, openai_server):
    openai_server.fail("status", status=503)
    items = list(router.stream_sync(Q, "gpt"))
    assert [i.type for i in items if i.type != "chunk"] == ["done"]
    assert items[-1].result.model_used == "gpt" and items[-1].result.text == ANSWERS[Q]


def test_a_consumer_may_stop_reading(router, openai_server):
    stream = router.stream_sync(STORY, "gpt")
    first = next(stream)
    assert first.type == "chunk" and ANSWERS[STORY].startswith(first.delta)
    stream.close()  # the producer on the router's loop is cancelled
    assert router.complete_sync(Q, "gpt").text == ANSWERS[Q]


def test_async_stream_from_another_loop(router, anthropic_server):
    async def main():
        return [i async for i in router.stream(Q, "claude")]

    items = asyncio.run(main())
    assert "".join(i.delta for i in items if i.type == "chunk") == ANSWERS[Q]
    assert items[-1].result.usage.prompt_tokens == _words(Q)


def test_timeouts_mid_stream(router, openai_server):
    openai_server.fail("stall", after=2, seconds=5.0)
    t0 = time.perf_counter()
    items = list(router.stream_sync(STORY, "gpt", timeout_s=0.5))
    assert time.perf_counter() - t0 < 5.0
    fb = next(i.fallback for i in items if i.type == "fallback")
    assert fb.mid_stream and fb.at_chunks == 2 and "timed out" in fb.reason
    assert items[-1].result.text == ANSWERS[STORY]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"prompt": Q, "temperature": 2.5}, "temperature"),
        ({"prompt": Q, "temperature": -0.1}, "temperature"),
        ({"prompt": Q, "max_tokens": 0}, "max_tokens"),
        ({"prompt": Q, "max_tokens": 10**7}, "max_tokens"),
        ({"prompt": Q, "max_tokens": 1.5}, "max_tokens"),
        ({"prompt": Q, "model": "gpt-17"}, "model"),
        ({"prompt": Q, "fallbacks": ["claude", "nope"]}, "fallbacks.1"),
        ({"prompt": Q, "top_p": 0}, "top_p"),
        ({"prompt": Q, "timeout_s": 0}, "timeout_s"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ],
)
def test_bad_input_names_the_field(router, openai_server, kwargs, field):
    with pytest.raises(InvalidInput) as e:
        router.complete_sync(**kwargs)
    assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        list(router.stream_sync(**kwargs))
    assert e.value.field == field
    assert openai_server.posts() == []


def test_nothing_configured_is_unavailable_and_says_how():
    r = LlmRouter(load_config({}))
    with pytest.raises(Unavailable) as e:
        r.complete_sync(Q)
    assert "OPENAI_BASE_URL" in str(e.value)
    assert r.health() == {"configured": False, "models": 0, "endpoints": []}
    r.close()


def test_batch_is_bounded_and_ordered(tmp_path, anthropic_server):
    from tests.llm.loopback import LoopbackServer

    with LoopbackServer(api_key=OPENAI_KEY, delay_s=0.05) as slow:
        r = make_router(tmp_path, slow, anthropic_server)
        try:
            reqs = [{"prompt": f"item {i}", "model": "gpt"} for i in range(20)]
            reqs[3]["temperature"] = 9
            out = r.batch_sync(reqs, concurrency=4)
        finally:
            r.close()
    assert len(out) == 20
    assert isinstance(out[3], InvalidInput) and out[3].field == "requests.3.temperature"
    for i, res in enumerate(out):
        if i != 3:
            assert res.text == f"Echo: item {i}" and res.model_used == "gpt"
    assert len(slow.posts()) == 19
    assert 2 <= slow.max_in_flight <= 4


def test_batch_reports_failures_in_place(router, openai_server, anthropic_server):
    openai_server.fail("status", times=3, status=500, model="loop-large")
    out = router.batch_sync([{"prompt": "a", "model": "gpt-big"}, {"prompt": "b"}])
    assert isinstance(out[0], AllModelsFailed) and out[1].text == "Echo: b"
    with pytest.raises(InvalidInput):
        router.batch_sync([{"prompt": "a"}], concurrency=0)
    out = router.batch_sync([{"prompt": "a", "colour": "red"}])
    assert isinstance(out[0], PrismError) and out[0].field == "requests.0.colour"


def test_discover_adds_the_servers_models(router):
    found = router.discover_sync()
    assert found == {"oa": ["loop-large", "loop-small"], "an": ["claude-loop"]}
    names = {m["name"]: m for m in router.models()}
    assert names["loop-small"]["discovered"] and names["loop-small"]["endpoint"] == "oa"
    assert names["loop-small"]["price_in_per_1k"] is None
    assert not names["gpt"]["discovered"]
    assert router.complete_sync(Q, "claude-loop").text == ANSWERS[Q]


def test_model_rows_and_stream_items_are_json(router):
    assert router.model("default")["name"] == "gpt"
    with pytest.raises(NotFound):
        router.model("gpt-17")
    items = list(router.stream_sync(Q, "claude"))
    rows = [json.loads(json.dumps(i.to_dict())) for i in items]
    assert rows[0] == {"type": "chunk", "delta": items[0].delta, "model": "claude"}
    assert rows[-1]["type"] == "done" and rows[-1]["text"] == ANSWERS[Q]
    assert rows[-1]["tokens_used"]["completion"] == _words(ANSWERS[Q])


def test_close_is_final(router):
    router.complete_sync(Q)
    router.close()
    router.close()
    with pytest.raises(Unavailable):
        router.complete_sync(Q)


def test_provider_keys_never_leak(tmp_path, openai_server, anthropic_server, caplog):
    """Keys are sent only as headers: search every output for them."""
    from prism_kernels.llm.replay import Recorder

    caplog.set_level(logging.DEBUG)
    recorder = Recorder(tmp_path / "rec.jsonl")
    r = make_router(tmp_path, openai_server, anthropic_server, recorder=recorder)
    outputs: list[str] = [repr(r), repr(r.config), json.dumps(r.config.to_dict())]
    try:
        outputs.append(json.dumps(r.complete_sync(Q).to_dict()))
        items = list(r.stream_sync(STORY, "claude"))
        outputs.append(json.dumps(items[-1].result.to_dict()))
        outputs.append(repr(items))
        openai_server.fail("cut", after=2)
        outputs.append(json.dumps(list(r.stream_sync(STORY))[-1].result.to_dict()))
        outputs.append(json.dumps(r.discover_sync()))
        # the servers now demand other keys: they answer 401 echoing the key they were sent
        openai_server.api_key = "another"
        anthropic_server.api_key = "another"
        for call in (lambda: r.complete_sync(Q), lambda: list(r.stream_sync(Q))):
            with pytest.raises(AllModelsFailed) as e:
                call()
            outputs += [str(e.value), repr(e.value), json.dumps(e.value.to_dict())]
            outputs += [repr(e.value.args), repr(e.value.attempts)]
        assert openai_server.auth_failures >= 2 and anthropic_server.auth_failures >= 2
        outputs.append(json.dumps(r.discover_sync()))
        outputs.append(json.dumps(r.health()))
        outputs.append(json.dumps(r.models()))
    finally:
        r.close()
    outputs.append((tmp_path / "rec.jsonl").read_text())
    outputs += [rec.getMessage() for rec in caplog.records]
    outputs.append(caplog.text)
    assert recorder.count == 3 and any("Incorrect API key" in o for o in outputs)
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        for o in outputs:
            assert key not in o
