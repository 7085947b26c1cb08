"""Record real calls (to loopback servers) as JSONL, then replay them with no server at all."""

from __future__ import annotations

import asyncio
import json

import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.llm.config import load_config
from prism_kernels.llm.providers import ChatRequest, ProviderError, Usage, messages_from
from prism_kernels.llm.replay import Recorder, ReplayProvider, load_records, request_key
from prism_kernels.llm.router import AllModelsFailed, LlmRouter
from tests.llm.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.llm.loopback import ANSWERS
from tests.llm.test_router import make_router

Q = "What is the capital of France?"
STORY = "Tell me a long story."


def test_request_key_is_canonical():
    m = [{"role": "user", "content": "hi"}]
    k = request_key("a", m, {"temperature": 0.5, "max_tokens": 10})
    assert k == request_key("a", m, {"max_tokens": 10, "temperature": 0.5})
    assert k == request_key(
        "a",
        [{"content": "hi", "role": "user", "x": 1}],
        {"max_tokens": 10, "temperature": 0.5, "seed": None},
    )
    assert k != request_key("b", m, {"temperature": 0.5, "max_tokens": 10})
    assert k != request_key("a", m, {"temperature": 0.6, "max_tokens": 10})
    assert k != request_key("a", [{"role": "user", "content": "hi!"}], {})
    assert len(k) == 64 and int(k, 16) >= 0


def test_record_then_replay_offline(tmp_path, openai_server, anthropic_server):
    path = tmp_path / "replay.jsonl"
    rec = Recorder(path)
    r = make_router(tmp_path, openai_server, anthropic_server, recorder=rec)
    try:
        live = [
            r.complete_sync(Q, "gpt", temperature=0.0),
            r.complete_sync("Say hello.", "claude", system_prompt="Be kind."),
        ]
        live_items = list(r.stream_sync(STORY, "gpt"))
    finally:
        r.close()
    openai_server.stop()
    anthropic_server.stop()  # nothing is listening any more
    assert rec.count == 3
    text = path.read_text()
    assert OPENAI_KEY not in text and ANTHROPIC_KEY not in text and "key-" not in text
    records = load_records(path)
    assert [x["model"] for x in records] == ["gpt", "claude", "gpt"]
    assert records[2]["chunks"] == [i.delta for i in live_items if i.type == "chunk"]

    cfg = load_config({"PRISM_LLM_REPLAY": str(path)})
    assert sorted(cfg.models) == ["claude", "gpt"]
    with LlmRouter(cfg) as replay:
        again = replay.complete_sync(Q, "gpt", temperature=0.0)
        assert again.text == live[0].text == ANSWERS[Q]
        assert again.usage == live[0].usage and again.provider == "replay"
        hello = replay.complete_sync("Say hello.", "claude", system_prompt="Be kind.")
        assert hello.text == ANSWERS["Say hello."] and hello.usage == live[1].usage
        items = list(replay.stream_sync(STORY, "gpt"))
        assert [i.delta for i in items if i.type == "chunk"] == [
            i.delta for i in live_items if i.type == "chunk"
        ]
        assert items[-1].result.text == ANSWERS[STORY]
        assert items[-1].result.usage == live_items[-1].result.usage
        # a request that was not recorded (other temperature) is a clear miss, not an answer
        with pytest.raises(AllModelsFailed) as e:
            replay.complete_sync(Q, "gpt", temperature=0.7)
        assert e.value.attempts[0].kind == "not_recorded" and e.value.attempts[0].status == 404
        assert len(e.value.attempts) == 1  # a miss is not retried
        # a miss falls back like any failure, to a model that has the answer recorded
        res = replay.complete_sync(
            "Say hello.", "gpt", system_prompt="Be kind.", fallbacks=["claude"]
        )
        assert res.model_used == "claude" and res.fallback_used


def test_replayed_prices_come_from_the_models_file(tmp_path):
    path = tmp_path / "r.jsonl"
    Recorder(path).record(
        "gpt", messages_from("hi"), {}, "hello world", None, "stop", ["hello ", "world"]
    )
    Recorder(path).record("priced", messages_from("x"), {}, "y z", Usage(10, 2000))
    cfg_file = tmp_path / "llm.yaml"
    cfg_file.write_text(
        "endpoints: {e: {provider: openai, base_url: 'http://127.0.0.1:9/v1'}}\n"
        "models: {priced: {endpoint: e, price_in_per_1k: 1.0, price_out_per_1k: 2.0}}\n"
    )
    cfg = load_config({"PRISM_LLM_REPLAY": str(path), "PRISM_LLM_CONFIG": str(cfg_file)})
    with LlmRouter(cfg) as r:
        res = r.complete_sync("x", "priced")
        assert res.cost_usd == pytest.approx(10 / 1000 * 1.0 + 2000 / 1000 * 2.0)
        res = r.complete_sync("hi", "gpt")
        assert res.text == "hello world" and res.usage is None and res.cost_usd is None


def test_replay_provider_directly(tmp_path):
    path = tmp_path / "r.jsonl"
    Recorder(path).record("m", messages_from("a"), {"max_tokens": 5}, "first", None)
    Recorder(path).record("m", messages_from("a"), {"max_tokens": 5}, "second", None)
    p = ReplayProvider.from_file(path)
    req = ChatRequest("m", messages_from("a"), max_tokens=5)

    async def go():
        c = await p.complete(req)
        evs = [e async for e in p.stream(req)]
        models = await p.list_models()
        with pytest.raises(ProviderError) as e:
            await p.complete(ChatRequest("m", messages_from("a")))
        return c, evs, models, e.value

    c, evs, models, miss = asyncio.run(go())
    assert c.text == "second"  # the last record of a key wins
    assert [e.kind for e in evs] == ["delta", "done"] and evs[0].delta == "second"
    assert models == ["m"] and miss.kind == "not_recorded" and not miss.retryable


def test_bad_replay_files(tmp_path):
    with pytest.raises(InvalidInput) as e:
        load_records(tmp_path / "missing.jsonl")
    assert e.value.field == "replay"
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"model": "m", "messages": [], "text": "t"})
    bad.write_text(good + "\n\n" + json.dumps({"model": "m", "text": 3}) + "\n")
    with pytest.raises(InvalidInput) as e:
        load_records(bad)
    assert "line 3" in e.value.message
    one = tmp_path / "one.jsonl"
    one.write_text(good + "\n")
    (record,) = load_records(one)
    assert record["key"] == request_key("m", [], {})  # a hand-written record gets its key


def test_unrecorded_requests_never_cool_the_replay_endpoint_down(tmp_path):
    """A replay miss is the request's fault (a 404), not the endpoint's: after more misses than
    the cooldown threshold, a recorded request is still answered."""
    path = tmp_path / "r.jsonl"
    msgs = messages_from("hi", None, None)
    Recorder(path).record("demo", msgs, {}, "hello", Usage(1, 1))
    with LlmRouter(load_config({"PRISM_LLM_REPLAY": str(path)})) as router:
        for i in range(5):
            with pytest.raises(AllModelsFailed):
                router.complete_sync(f"unrecorded {i}", "demo")
        assert router.complete_sync("hi", "demo").text == "hello"
