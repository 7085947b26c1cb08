"""LlmService: state in the store (cache, usage), validation first, budgets, streams, consensus
wiring, key hygiene. Providers are loopback servers (real wire protocols) or a replay file."""

from __future__ import annotations

import asyncio
import json

import pytest

from prism_kernels.errors import InvalidInput, NotFound, Unavailable
from prism_kernels.llm.config import load_config
from prism_kernels.llm.service import LlmService
from prism_kernels.llm.usage import BudgetExceeded, key_id
from prism_kernels.store import Store
from tests.llm.conftest import OPENAI_KEY, models_env

CALLER = "caller-key-NEVER-STORED-42"
Q = "What is the capital of France?"


@pytest.fixture
def svc(openai_server, tmp_path):
    s = LlmService(env=models_env(tmp_path, openai_server.openai_url), discover=False)
    yield s
    s.close()


def test_unconfigured_is_unavailable_with_how_to():
    s = LlmService(env={}, discover=False)
    for call in (
        lambda: s.query("hi"),
        lambda: s.consensus("hi"),
        lambda: s.batch([{"prompt": "hi"}]),
    ):
        with pytest.raises(Unavailable, match="OPENAI_BASE_URL"):
            call()
    assert s.health()["configured"] is False
    bad = LlmService(env={"PRISM_LLM_CONFIG": "/no/such/file.yaml"}, discover=False)
    with pytest.raises(Unavailable, match="PRISM_LLM_CONFIG"):
        bad.query("hi")
    s.close()
    bad.close()


def test_query_usage_and_cache(svc, openai_server):
    r = svc.query(Q, key=CALLER)
    assert r["text"] == "The capital of France is Paris." and r["cached"] is False
    assert r["tokens_used"] == {"prompt": 6, "completion": 6, "total": 12}
    assert r["cost_usd"] == pytest.approx(6 / 1000 * 1.0 + 6 / 1000 * 2.0)
    assert r["key_id"] == key_id(CALLER)
    n = len(openai_server.posts())
    hit = svc.query(Q, key=CALLER)
    assert hit["cached"] is True and hit["cost_usd"] == 0.0 and len(openai_server.posts()) == n
    u = svc.usage()
    assert u["totals"]["requests"] == 1 and u["totals"]["total_tokens"] == 12
    assert list(u["by_key"]) == [key_id(CALLER)]
    st = svc.cache_stats()
    assert st["entries"] == 1 and st["hits"] == 1 and st["misses"] == 1 and st["hit_rate"] == 0.5
    # other sampling parameters are another cache scope
    svc.query(Q, temperature=0.0)
    assert len(openai_server.posts()) == n + 1


def test_rejected_requests_change_nothing(svc, openai_server):
    bad = [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x", "temperature": 2.1}, "temperature"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "max_tokens": 10**9}, "max_tokens"),
        ({"prompt": "x", "model": "nope"}, "model"),
        ({"prompt": "x", "fallbacks": ["small", "nope"]}, "fallbacks.1"),
        ({"prompt": "x" * 200_001}, "prompt"),
    ]
    for kw, field in bad:
        with pytest.raises(InvalidInput) as e:
            svc.query(**kw)
        assert e.value.field == field, kw
    with pytest.raises(InvalidInput) as e:
        svc.consensus("x", ["small"], strategy="quantum")
    assert e.value.field == "strategy" and "semantic" in e.value.message
    with pytest.raises(InvalidInput) as e:
        svc.consensus("x", ["small", "nope"])
    assert e.value.field == "models.1"
    with pytest.raises(InvalidInput) as e:
        svc.batch([{"prompt": "a"}, {"prompt": "b", "temperature": 9}])
    assert e.value.field == "requests.1.temperature"
    assert openai_server.posts() == []
    assert svc.usage()["totals"]["requests"] == 0 and svc.cache_stats()["entries"] == 0
    assert svc.usage_docs.count() == 0 and svc.cache_docs.count() == 0
    with pytest.raises(NotFound):
        svc.model("nope")


def test_budget_per_key(openai_server, tmp_path):
    s = LlmService(
        env=models_env(tmp_path, openai_server.openai_url, budget="0.01"), discover=False
    )
    spent = 0.0
    while spent < 0.01:
        r = s.query("Tell me a long story.", model="large", cache=False, key=CALLER)
        spent += r["cost_usd"]
    n = len(openai_server.posts())
    with pytest.raises(BudgetExceeded) as e:
        s.query("Say hello.", key=CALLER)
    assert e.value.key_id == key_id(CALLER) and e.value.spent_usd == pytest.approx(spent)
    assert CALLER not in str(e.value)
    with pytest.raises(BudgetExceeded):
        s.consensus("Say hello.", ["small", "large"], key=CALLER)
    assert len(openai_server.posts()) == n  # refused before any provider call
    assert s.query("Say hello.", key="another-key")["cached"] is False  # other keys unaffected
    s.close()


def test_stream_chunks_then_done(svc, openai_server):
    items = list(svc.stream("Tell me a long story.", key=CALLER))
    chunks = [i for i in items if i["type"] == "chunk"]
    done = items[-1]
    assert done["type"] == "done" and len(chunks) > 5
    assert "".join(c["delta"] for c in chunks) == done["text"]
    assert done["tokens_used"]["completion"] == len(done["text"].split())
    assert openai_server.posts()[-1].body["stream"] is True
    assert svc.usage()["totals"]["completion_tokens"] == done["tokens_used"]["completion"]
    again = list(svc.stream("Tell me a long story."))
    assert [i["type"] for i in again] == ["chunk", "done"] and again[-1]["cached"] is True
    # a failure half-way: the fallback takes over and says so
    openai_server.fail("cut", after=3, model="loop-small")
    items = list(svc.stream("Count to five.", fallbacks=["large"], cache=False))
    fb = [i for i in items if i["type"] == "fallback"]
    assert fb and fb[0]["mid_stream"] is True and fb[0]["to_model"] == "large"
    assert items[-1]["model_used"] == "large" and items[-1]["fallback_used"] is True


def test_state_survives_a_restart_and_keys_are_not_stored(openai_server, tmp_path):
    env = models_env(tmp_path, openai_server.openai_url)
    path = tmp_path / "store.sqlite"
    store = Store(path)
    s = LlmService(store=store, env=env, discover=False)
    s.query(Q, key=CALLER)
    s.query("Say hello.", model="large", key=CALLER)
    usage, entries = s.usage(), s.cache_stats()["entries"]
    s.close()
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.sqlite*"))
    assert CALLER.encode() not in raw and OPENAI_KEY.encode() not in raw
    assert key_id(CALLER).encode() in raw
    store = Store(path)
    s = LlmService(store=store, env=env, discover=False)
    assert s.usage()["totals"] == usage["totals"] and s.usage()["by_key"] == usage["by_key"]
    assert s.cache_stats()["entries"] == entries
    n = len(openai_server.posts())
    assert s.query(Q)["cached"] is True and len(openai_server.posts()) == n
    s.close()
    store.close()


def _replay(tmp_path, prompt: str, answers: dict[str, str]) -> str:
    path = tmp_path / "replay.jsonl"
    with path.open("w") as fh:
        for model, text in answers.items():
            rec = {
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "params": {},
                "text": text,
                "usage": {"prompt_tokens": 7, "completion_tokens": len(text.split())},
            }
            fh.write(json.dumps(rec) + "\n")
    return str(path)


def test_consensus_groups_paraphrases_and_separates_a_different_answer(tmp_path):
    prompt = "What is the capital of Australia?"
    answers = {
        "a": "The capital of Australia is Canberra.",
        "b": "Canberra is the capital city of Australia.",
        "c": "Australia's capital is Canberra.",
        "d": "The capital of Australia is Sydney.",
    }
    s = LlmService(config=load_config({"PRISM_LLM_REPLAY": _replay(tmp_path, prompt, answers)}))
    r = s.consensus(prompt, list(answers), "semantic", min_agreement=0.7)
    clusters = {row["model"]: row["cluster"] for row in r["individual_responses"]}
    assert clusters["a"] == clusters["b"] == clusters["c"] != clusters["d"]
    assert r["agreement_score"] == pytest.approx(0.75) and r["reached"] is True
    assert "Canberra" in r["consensus_text"] and len(r["similarity"]) == 4
    m = s.consensus(prompt, list(answers), "majority")
    assert m["agreement_score"] == pytest.approx(0.25)  # four different normalised texts
    w = s.consensus(prompt, list(answers), "weighted", weights=[1, 1, 1, 5])
    assert w["consensus_text"] == answers["d"] and w["agreement_score"] == pytest.approx(5 / 8)
    sc = s.consensus(prompt, ["a"], "self_consistency")
    assert len(sc["samples"]) == 5 and sc["num_unique_answers"] == 1
    assert s.usage()["totals"]["requests"] == 4 * 3 + 5
    s.close()


def test_aquery_answers_and_books_as_query_does(svc, openai_server):
    loop = asyncio.new_event_loop()  # lives as long as the service, like a server's

    async def main():
        svc.attach_loop()
        first = await svc.aquery(Q, key=CALLER)
        hit = await svc.aquery(Q, key=CALLER)
        with pytest.raises(InvalidInput) as bad:
            await svc.aquery("x", temperature=2.5)
        return first, hit, bad.value.field

    try:
        first, hit, field = loop.run_until_complete(main())
        sync = svc.query(Q, key=CALLER, cache=False)  # the same question through query
        assert first.keys() == sync.keys() and first["cached"] is False
        for k in ("text", "model_used", "tokens_used", "cost_usd", "key_id", "fallback_used"):
            assert first[k] == sync[k], k
        assert hit["cached"] is True and hit["cost_usd"] == 0.0 and field == "temperature"
        assert len(openai_server.posts()) == 2  # the hit and the rejected one never left
        u = svc.usage()["totals"]
        assert u["requests"] == 2 and u["total_tokens"] == 2 * first["tokens_used"]["total"]
        st = svc.cache_stats()
        assert st["entries"] == 1 and st["hits"] == 1 and st["misses"] == 1
    finally:
        svc.close()  # the loop is stopped: the router closes its pools on it
        loop.close()
