"""Response cache: exact and semantic hits, TTL on an injected clock, LRU bound, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.llm.cache import ResponseCache, exact_key, scope_of


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _unit(rng, n, d=16):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_then_semantic_then_miss():
    c = ResponseCache(clock=Clock())
    assert c.get("gpt", "What is the capital of France?") is None
    c.put("gpt", "What is the capital of France?", {"text": "Paris", "tokens": 3})
    h = c.get("gpt", "What is the capital of France?")
    assert h.kind == "exact" and h.value == {"text": "Paris", "tokens": 3} and h.similarity == 1.0
    h = c.get("gpt", "What's the capital of France?")
    assert h is not None and h.kind == "semantic" and h.similarity >= 0.95
    assert h.prompt == "What is the capital of France?"
    h = c.get("gpt", "what is the capital of france")  # case-folded before embedding
    assert h is not None and h.kind == "semantic"
    assert c.get("gpt", "What is the capital of Germany?") is None
    assert c.get("gpt", "What's the capital of France?", semantic=False) is None  # opt-out
    assert c.get("other-model", "What is the capital of France?") is None  # scope
    assert c.get("gpt", "What is the capital of France?", {"temperature": 0.9}) is None
    st = c.stats()
    assert st["hits"] == 3 and st["exact_hits"] == 1 and st["semantic_hits"] == 2
    assert st["misses"] == 5 and st["hit_rate"] == pytest.approx(3 / 8)
    assert st["entries"] == 1


def test_similar_prompts_with_other_numbers_or_names_are_misses():
    c = ResponseCache(clock=Clock(), threshold=0.9)
    c.put("gpt", "Summarise the 2023 annual report", {"text": "2023 summary"})
    c.put("gpt", "What is the capital of France?", {"text": "Paris"})
    E = c.embed_fn(["Summarise the 2023 annual report", "Summarise the 2024 annual report"])
    assert float(E[0] @ E[1]) > 0.9  # similar enough for a hit, but another year
    assert c.get("gpt", "Summarise the 2024 annual report") is None
    h = c.get("gpt", "Summarise the 2023 annual report, please")
    assert h is not None and h.kind == "semantic" and h.value == {"text": "2023 summary"}
    assert c.get("gpt", "What's the capital of France?").value == {"text": "Paris"}
    many = c.get_many("gpt", ["Summarise the 2024 annual report", "What's the capital of France?"])
    assert many[0] is None and many[1].value == {"text": "Paris"}
    st = c.stats()
    assert st["fact_rejections"] == 2 and st["semantic_hits"] == 3 and st["misses"] == 2


def test_vectorised_lookup_equals_a_loop(rng):
    d = 16
    c = ResponseCache(max_entries=5000, ttl_s=None, threshold=0.5, clock=Clock())
    E = _unit(rng, 3000, d)
    scopes = rng.integers(0, 3, 3000)
    for i in range(3000):
        c.put(f"m{scopes[i]}", f"prompt_{i}", i, embedding=E[i])  # no number in the prompt
    Q = _unit(rng, 200, d)
    for k, q in enumerate(Q):
        s = int(rng.integers(0, 3))
        best, arg = -np.inf, None
        for i in range(3000):  # the reference: a plain loop
            if scopes[i] == s:
                v = float(np.dot(E[i], q))
                if v > best:
                    best, arg = v, i
        h = c.get(f"m{s}", f"query_{k}", embedding=q)
        if best >= 0.5:
            assert h is not None and h.value == arg
            assert h.similarity == pytest.approx(best, abs=1e-6)
        else:
            assert h is None


def test_get_many_equals_get_one_by_one(rng):
    clock = Clock()
    kw = dict(max_entries=400, ttl_s=50, threshold=0.6, clock=clock)
    a, b = ResponseCache(**kw), ResponseCache(**kw)
    E = _unit(rng, 300)
    for i in range(300):
        for c in (a, b):
            c.put("m", f"p{i}", i, embedding=E[i])
        clock.t += 0.2  # entries written over 60 s: the oldest are expired at lookup
    Q = np.concatenate([E[:40] + 0.3 * _unit(rng, 40), _unit(rng, 40)])
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    prompts = [f"q{i}" for i in range(80)] + ["p299", "p0", "p150"]
    Q = np.concatenate([Q, E[[299, 0, 150]]])
    many = a.get_many("m", prompts, embeddings=Q)
    one = [b.get("m", p, embedding=q) for p, q in zip(prompts, Q, strict=True)]
    assert [(h.kind, h.value) if h else None for h in many] == [
        (h.kind, h.value) if h else None for h in one
    ]
    sa, sb = a.stats(), b.stats()
    for k in ("hits", "exact_hits", "semantic_hits", "misses", "entries", "expirations"):
        assert sa[k] == sb[k], k
    assert sa["semantic_hits"] > 0 and sa["exact_hits"] == 2 and sa["expirations"] > 0
    with pytest.raises(InvalidInput) as e:
        a.get_many("m", ["ok", ""])
    assert e.value.field == "prompts.1"
    with pytest.raises(InvalidInput) as e:
        a.get_many("m", ["ok"], embeddings=np.ones((2, 16)))
    assert e.value.field == "embeddings"


def test_ttl_with_an_injected_clock():
    clock = Clock()
    c = ResponseCache(ttl_s=60, clock=clock)
    c.put("m", "Tell me a joke about cats.", "joke")
    clock.t += 59.9
    assert c.get("m", "Tell me a joke about cats.").age_s == pytest.approx(59.9)
    clock.t += 0.2
    assert c.get("m", "Tell me a joke about cats.") is None
    assert c.stats()["expirations"] == 1 and len(c) == 0
    c.put("m", "a", 1)
    c.put("m", "b", 2)
    clock.t += 61
    assert c.purge() == 2 and len(c) == 0
    c.put("m", "How do I reverse a list in Python?", 3)
    clock.t += 61
    assert c.get("m", "How can I reverse a list in Python?") is None  # expired semantic entry
    assert len(c) == 0


def test_lru_eviction_and_bytes(rng):
    c = ResponseCache(max_entries=3, ttl_s=None, clock=Clock())
    E = _unit(rng, 5)
    for i, p in enumerate("abc"):
        c.put("m", p, {"i": i}, embedding=E[i])
    assert c.get("m", "a", semantic=False) is not None  # a is now the most recent
    c.put("m", "d", {"i": 3}, embedding=E[3])
    assert c.get("m", "b", semantic=False) is None  # b was least recently used
    assert {r["prompt"] for r in c.records()} == {"a", "c", "d"}
    assert c.stats()["evictions"] == 1
    expected = sum(
        len(json.dumps(r["value"]).encode())
        + len(r["prompt"].encode())
        + len(scope_of("m").encode())
        + 16 * 4
        for r in c.records()
    )
    assert c.stats()["bytes"] == expected
    c.put("m", "c", {"i": 9}, embedding=E[4])  # overwrite: no eviction, entries stay 3
    assert len(c) == 3 and c.get("m", "c", semantic=False).value == {"i": 9}
    c.clear()
    assert len(c) == 0 and c.stats()["bytes"] == 0


def test_grows_past_the_first_block_and_reuses_slots(rng):
    c = ResponseCache(max_entries=2500, ttl_s=None, threshold=0.999, clock=Clock())
    E = _unit(rng, 3000)
    for i in range(3000):
        c.put("m", f"p{i}", i, embedding=E[i])
    assert len(c) == 2500 and c.stats()["evictions"] == 500
    assert c.get("m", "q", embedding=E[10]) is None  # evicted
    assert c.get("m", "q", embedding=E[2999]).value == 2999


def test_records_round_trip():
    clock = Clock()
    c = ResponseCache(ttl_s=100, clock=clock)
    c.put("gpt", "What is the capital of France?", {"text": "Paris"}, {"temperature": 0})
    clock.t += 10
    c.put("claude", "Summarize the plot of Hamlet.", {"text": "A prince..."})
    c.put("gpt", "old", "x")
    clock.t += 95  # the first entry is now expired
    c.get("claude", "Summarize the plot of Hamlet.")
    rec = json.loads(json.dumps(c.records()))
    d = ResponseCache.from_records(rec, ttl_s=100, clock=clock)
    assert len(d) == 2
    assert [r["prompt"] for r in d.records()] == ["old", "Summarize the plot of Hamlet."]
    h = d.get("claude", "Summarise the plot of Hamlet.")
    assert h.kind == "semantic" and h.value == {"text": "A prince..."}
    assert d.records()[-1]["hits"] == 2
    assert d.get("gpt", "What is the capital of France?", {"temperature": 0}) is None
    assert exact_key(scope_of("gpt"), "a  b") == exact_key(scope_of("gpt"), "a b")


def test_bad_input():
    c = ResponseCache(clock=Clock())
    for kw, field in [
        ({"max_entries": 0}, "max_entries"),
        ({"ttl_s": -1.0}, "ttl_s"),
        ({"ttl_s": float("nan")}, "ttl_s"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
    ]:
        with pytest.raises(InvalidInput) as e:
            ResponseCache(**kw)
        assert e.value.field == field
    for args, field in [(("", "p"), "model"), (("m", "  "), "prompt"), (("m", 3), "prompt")]:
        with pytest.raises(InvalidInput) as e:
            c.get(*args)
        assert e.value.field == field
    with pytest.raises(InvalidInput) as e:
        c.put("m", "p", object())
    assert e.value.field == "value"
    with pytest.raises(InvalidInput) as e:
        c.put("m", "p", 1, {"x": object()})
    assert e.value.field == "params"
    with pytest.raises(InvalidInput) as e:
        c.put("m", "p", 1, embedding=np.array([np.nan] * 256))
    assert e.value.field == "embedding"
    with pytest.raises(InvalidInput) as e:
        c.put("m", "x" * 1_000_001, 1)
    assert e.value.field == "prompt"
    c.put("m", "p", 1)
    with pytest.raises(InvalidInput) as e:
        c.put("m", "p", 2, embedding=np.ones(8) / 8**0.5)
    assert e.value.field == "embedding"
    assert c.get("m", "p").value == 1 and len(c) == 1  # a rejected put changed nothing
    with pytest.raises(InvalidInput) as e:
        c.get("m", "other", embedding=np.ones(8) / 8**0.5)
    assert e.value.field == "embedding"
    with pytest.raises(InvalidInput) as e:
        ResponseCache.from_records([{"prompt": "p"}])
    assert e.value.field == "records.0"
    assert ResponseCache(clock=Clock()).stats()["hit_rate"] is None
