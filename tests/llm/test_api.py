"""``/api/v1/llm`` through real servers (``prism serve`` subprocesses) whose providers are
loopback OpenAI and Anthropic servers speaking the real wire protocols (tests/llm/loopback.py).

Checked: answers, tokens and costs come through; fallbacks; a repeated query is served from the
cache without reaching the provider; usage adds up to the tokens the providers reported; cache
and usage survive a restart; bad input is a JSON 400 naming the field; no provider is a 503
saying how to configure one; a spent budget is a 402; the provider keys appear in no response,
error, log line, ``/metrics`` or the store; the original client's payloads work.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apiutil import assert_error, ok
from tests.llm.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.llm.loopback import LoopbackServer, answer_for, count_tokens
from tests.serverutil import PrismServer

WRONG_KEY = "sk-WRONG-echoed-back-7777SECRET"
PRICE = {"small": (0.5, 1.5), "claude": (3.0, 15.0)}


def _yaml(oa: LoopbackServer, an: LoopbackServer) -> str:
    return f"""
endpoints:
  openai: {{provider: openai, base_url: "{oa.openai_url}", api_key_env: OPENAI_API_KEY}}
  anthropic: {{provider: anthropic, base_url: "{an.anthropic_url}", api_key_env: ANTHROPIC_API_KEY}}
  bad: {{provider: openai, base_url: "{oa.openai_url}", api_key_env: PRISM_TEST_WRONG_KEY,
         discover: false}}
models:
  small: {{endpoint: openai, model: loop-small, price_in_per_1k: {PRICE["small"][0]},
           price_out_per_1k: {PRICE["small"][1]}, fallbacks: [claude]}}
  claude: {{endpoint: anthropic, model: claude-loop, price_in_per_1k: {PRICE["claude"][0]},
            price_out_per_1k: {PRICE["claude"][1]}, weight: 2.0}}
  wrongkey: {{endpoint: bad, model: loop-small}}
aliases: {{fast: small}}
default_model: small
router: {{max_retries: 0, cooldown_after: 1000, backoff_base_s: 0.01}}
"""


@pytest.fixture(scope="module")
def loops():
    with (
        LoopbackServer(api_key=OPENAI_KEY, flavour="openai") as oa,
        LoopbackServer(api_key=ANTHROPIC_KEY, models=["claude-loop"], flavour="anthropic") as an,
    ):
        yield oa, an


@pytest.fixture(scope="module")
def setup(loops, tmp_path_factory):
    oa, an = loops
    root = tmp_path_factory.mktemp("llm-api")
    cfg = root / "models.yaml"
    cfg.write_text(_yaml(oa, an))
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "PRISM_TEST_WRONG_KEY": WRONG_KEY,
        "PRISM_LLM_CONFIG": str(cfg),
    }
    return {"env": env, "data": root / "data", "oa": oa, "an": an}


@pytest.fixture(scope="module")
def llm_server(setup):
    srv = PrismServer(data_dir=setup["data"], dashboards=False, extra_env=setup["env"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def c(llm_server):
    with llm_server.client("user") as client:
        yield client


def _expected_usage(loop: LoopbackServer) -> tuple[int, int]:
    """Tokens as the loopback counted them for every chat request it answered."""
    pt = ct = 0
    for r in loop.posts():
        if r.body is None or r.status != 200:
            continue
        msgs = r.body.get("messages") or []
        if r.body.get("system"):
            msgs = [{"role": "system", "content": r.body["system"]}, *msgs]
        pt += sum(count_tokens(m["content"]) for m in msgs)
        done = count_tokens(answer_for(msgs))
        mt = r.body.get("max_tokens")
        ct += min(done, mt) if mt is not None else done
    return pt, ct


def test_query_answers_with_tokens_and_cost(c, setup):
    oa = setup["oa"]
    n0 = len(oa.posts())
    d = ok(c.post("/api/v1/llm/query", json={"prompt": "Say hello.", "temperature": 0.2}))
    assert d["text"] == "Hello there!"
    assert d["model_used"] == "small" and d["cached"] is False and d["fallback_used"] is False
    assert d["tokens_used"] == {"prompt": 2, "completion": 2, "total": 4}
    pin, pout = PRICE["small"]
    assert d["cost_usd"] == pytest.approx(2 / 1000 * pin + 2 / 1000 * pout, abs=1e-9)
    assert d["latency_ms"] > 0 and d["computation_time_ms"] > 0
    assert len(oa.posts()) == n0 + 1
    sent = oa.posts()[-1]
    assert sent.body["model"] == "loop-small" and sent.body["temperature"] == 0.2
    # an alias and the Anthropic wire protocol
    d = ok(c.post("/api/v1/llm/query", json={"prompt": "Count to five.", "model": "claude"}))
    assert d["text"] == "One, two, three, four, five." and d["provider"] == "anthropic"
    assert d["tokens_used"]["completion"] == 5


def test_repeated_query_served_from_cache(c, setup):
    oa = setup["oa"]
    body = {"prompt": "What is the capital of France?", "max_tokens": 32}
    first = ok(c.post("/api/v1/llm/query", json=body))
    n = len(oa.posts())
    again = ok(c.post("/api/v1/llm/query", json=body))
    assert len(oa.posts()) == n, "a cached answer must not reach the provider"
    assert again["cached"] is True and again["cost_usd"] == 0.0
    assert again["text"] == first["text"] and again["cache"]["kind"] == "exact"
    # a paraphrase is a semantic hit, still without a provider call
    para = ok(c.post("/api/v1/llm/query", json={**body, "prompt": "What's the capital of France?"}))
    assert para["cached"] is True and para["cache"]["kind"] == "semantic"
    assert len(oa.posts()) == n
    # opting out reaches the provider
    fresh = ok(c.post("/api/v1/llm/query", json={**body, "cache": False}))
    assert fresh["cached"] is False and len(oa.posts()) == n + 1
    stats = ok(c.get("/api/v1/llm/cache/stats"))
    assert stats["entries"] >= 1 and stats["hits"] >= 2 and stats["semantic_hits"] >= 1
    assert 0 < stats["hit_rate"] <= 1 and stats["bytes"] > 0


def test_fallback_when_the_model_fails(c, setup):
    oa = setup["oa"]
    oa.fail("status", status=500, model="loop-small")
    d = ok(c.post("/api/v1/llm/query", json={"prompt": "Say hello.", "cache": False}))
    assert d["model_used"] == "claude" and d["fallback_used"] is True
    assert d["fallbacks"][0]["from_model"] == "small"
    assert d["fallbacks"][0]["to_model"] == "claude"


def test_consensus_strategies(c):
    body = {"prompt": "What is the capital of France?", "models": ["small", "claude"]}
    for strategy in ("majority", "weighted", "semantic"):
        d = ok(c.post("/api/v1/llm/consensus", json={**body, "strategy": strategy}))
        assert d["strategy"] == strategy
        assert d["consensus_text"] == "The capital of France is Paris."
        assert d["agreement_score"] == pytest.approx(1.0)
        assert d["participating_models"] == ["small", "claude"]
        assert {r["model"] for r in d["individual_responses"]} == {"small", "claude"}
        assert d["total_cost_usd"] == pytest.approx(
            sum(r["cost_usd"] for r in d["individual_responses"])
        )
    d = ok(c.post("/api/v1/llm/consensus", json={**body, "strategy": "semantic"}))
    assert len(d["similarity"]) == 2
    d = ok(
        c.post(
            "/api/v1/llm/consensus",
            json={
                "prompt": "Say hello.",
                "model": "small",
                "strategy": "self_consistency",
                "num_samples": 3,
                "min_agreement": 0.9,
            },
        )
    )
    assert len(d["samples"]) == 3 and d["reached"] is True and d["num_unique_answers"] == 1
    d = ok(c.post("/api/v1/llm/consensus", json={**body, "strategy": "council"}))
    assert d["strategy"] == "council" and len(d["borda"]) == 2


def test_batch_in_order(c):
    reqs = [{"prompt": p, "cache": False} for p in ("Say hello.", "Count to five.", "Say hi")]
    reqs.append({"prompt": "Say hello.", "model": "wrongkey", "cache": False})
    d = ok(c.post("/api/v1/llm/batch", json={"requests": reqs, "concurrency": 2}))
    assert d["count"] == 4
    texts = [r.get("text") for r in d["results"]]
    assert texts[:3] == ["Hello there!", "One, two, three, four, five.", "Echo: Say hi"]
    assert d["results"][3]["error"]["status"] == 503


def test_models_and_model(c):
    d = ok(c.get("/api/v1/llm/models"))
    names = {m["name"] for m in d["models"]}
    assert {"small", "claude", "loop-large"} <= names  # configured and discovered
    small = next(m for m in d["models"] if m["name"] == "small")
    assert small["provider"] == "openai" and small["price_in_per_1k"] == PRICE["small"][0]
    assert small["cost_per_1k_tokens"] == pytest.approx(sum(PRICE["small"]) / 2)
    m = ok(c.get("/api/v1/llm/model/fast"))
    assert m["name"] == "small"
    assert_error(c.get("/api/v1/llm/model/no-such-model"), 404)


def test_bad_input_is_a_400_naming_the_field(c):
    q = "/api/v1/llm/query"
    assert_error(c.post(q, json={"prompt": ""}), 400, "prompt")
    assert_error(c.post(q, json={"prompt": "   "}), 400, "prompt")
    assert_error(c.post(q, json={"prompt": "x", "temperature": 2.5}), 400, "temperature")
    assert_error(c.post(q, json={"prompt": "x", "temperature": -0.1}), 400, "temperature")
    assert_error(c.post(q, json={"prompt": "x", "max_tokens": 10**9}), 400, "max_tokens")
    assert_error(c.post(q, json={"prompt": "x", "model": "gpt-17"}), 400, "model")
    assert_error(c.post(q, json={"prompt": "x", "fallbacks": ["nope"]}), 400, "fallbacks.0")
    assert_error(c.post(q, json={"prompt": "x" * 200_001}), 400, "prompt")
    assert_error(c.post(q, json={"prompt": "x", "stream": "yes please"}), 400, "stream")
    cons = "/api/v1/llm/consensus"
    for name in ("quantum", "thermodynamic"):
        body = assert_error(c.post(cons, json={"prompt": "x", "strategy": name}), 400, "strategy")
        assert "semantic" in body["message"] and "council" in body["message"]
        r = c.post(cons, json={"prompt": "x", "voting_strategy": name, "models": ["small"]})
        assert r.status_code == 400 and "majority" in r.json()["message"]
    assert_error(c.post(cons, json={"prompt": "x", "models": ["nope"]}), 400, "models.0")
    assert_error(c.post(cons, json={"prompt": "x", "min_agreement": 1.5}), 400, "min_agreement")
    r = c.post(
        "/api/v1/llm/batch", json={"requests": [{"prompt": "a"}, {"prompt": "x", "model": "z"}]}
    )
    assert_error(r, 400, "requests.1.model")


def test_the_original_clients_payloads(c):
    # PrismClient.query_llm(prompt, model=None, temperature=0.7, max_tokens=500)
    d = ok(
        c.post(
            "/api/v1/llm/query",
            json={"prompt": "Say hello.", "temperature": 0.7, "max_tokens": 500},
        )
    )
    for f in ("text", "model_used", "tokens_used", "cost_usd", "latency_ms"):
        assert f in d
    # PrismClient.llm_consensus(prompt, models, strategy="majority_vote", 0.3, 500)
    d = ok(
        c.post(
            "/api/v1/llm/consensus",
            json={
                "prompt": "What is the capital of France?",
                "models": [{"name": "small", "weight": 1.0}, {"name": "claude", "weight": 2.0}],
                "strategy": "majority_vote",
                "temperature": 0.3,
                "max_tokens": 500,
            },
        )
    )
    assert d["strategy"] == "majority" and d["confidence"] == d["agreement_score"]
    assert d["agreement_rate"] == d["agreement_score"] and d["total_time_ms"] == d["latency_ms"]
    w = {r["model"]: r["weight"] for r in d["individual_responses"]}
    assert w == {"small": 1.0, "claude": 2.0}
    # the original server's voting_strategy + min_agreement
    d = ok(
        c.post(
            "/api/v1/llm/consensus",
            json={
                "prompt": "Say hello.",
                "models": ["small", "claude"],
                "voting_strategy": "weighted",
                "min_agreement": 0.6,
            },
        )
    )
    assert d["strategy"] == "weighted" and d["reached"] is True
    # PrismClient.list_llm_models reads data["models"]
    assert isinstance(ok(c.get("/api/v1/llm/models"))["models"], list)


def test_usage_adds_up_to_the_providers_tokens(c, setup):
    u = ok(c.get("/api/v1/llm/usage"))
    oa_pt, oa_ct = _expected_usage(setup["oa"])
    an_pt, an_ct = _expected_usage(setup["an"])
    t = u["totals"]
    assert t["prompt_tokens"] == oa_pt + an_pt
    assert t["completion_tokens"] == oa_ct + an_ct
    by = u["by_model"]
    assert by["claude"]["prompt_tokens"] == an_pt
    exp = (
        sum(
            by[m]["prompt_tokens"] * PRICE[m][0] + by[m]["completion_tokens"] * PRICE[m][1]
            for m in PRICE
            if m in by
        )
        / 1000
    )
    assert t["cost_usd"] == pytest.approx(exp, rel=1e-9)
    assert t["cost_nanousd"] == sum(v["cost_nanousd"] for v in u["by_key"].values())
    h = ok(c.get("/api/v1/llm/health"))
    assert h["configured"] is True and h["usage_requests"] == t["requests"]
    assert {e["name"] for e in h["endpoints"]} == {"openai", "anthropic", "bad"}


def test_wrong_provider_key_is_a_503_that_does_not_echo_it(c):
    r = c.post("/api/v1/llm/query", json={"prompt": "Say hello.", "model": "wrongkey"})
    assert r.status_code == 503 and r.json()["success"] is False
    assert WRONG_KEY not in r.text


def test_zz_keys_never_leak_and_state_survives_a_restart(llm_server, setup):
    """Runs last in this module: searches everything, then restarts the server."""
    keys = (OPENAI_KEY, ANTHROPIC_KEY, WRONG_KEY)
    with llm_server.client("user") as c:
        texts = [
            c.get(p).text
            for p in (
                "/api/v1/llm/models",
                "/api/v1/llm/usage",
                "/api/v1/llm/health",
                "/api/v1/llm/cache/stats",
                "/api/v1/llm/model/small",
                "/api/v1/openapi.json",
            )
        ]
        usage, stats = ok(c.get("/api/v1/llm/usage")), ok(c.get("/api/v1/llm/cache/stats"))
    with llm_server.client("admin") as a:
        texts.append(a.get("/metrics").text)
    texts.append(llm_server.log_text())
    blobs = b"".join(p.read_bytes() for p in Path(setup["data"]).rglob("*") if p.is_file())
    for k in keys:
        assert all(k not in t for t in texts), "a key in a response, /metrics or the log"
        assert k.encode() not in blobs, "a key in the store"
    assert b"Hello there!" in blobs  # the store was searched (it holds the cached answers)

    llm_server.stop()
    again = PrismServer(data_dir=setup["data"], dashboards=False, extra_env=setup["env"])
    again.start()
    try:
        with again.client("user") as c:
            u2 = ok(c.get("/api/v1/llm/usage"))
            assert u2["totals"] == usage["totals"] and u2["by_model"] == usage["by_model"]
            assert ok(c.get("/api/v1/llm/cache/stats"))["entries"] == stats["entries"]
            n = len(setup["oa"].posts())
            d = ok(
                c.post(
                    "/api/v1/llm/query",
                    json={"prompt": "What is the capital of France?", "max_tokens": 32},
                )
            )
            assert d["cached"] is True and len(setup["oa"].posts()) == n
    finally:
        again.stop()


def test_no_provider_is_a_503_saying_how_and_budget_is_a_402(tmp_path):
    with (
        PrismServer(
            data_dir=tmp_path / "none",
            dashboards=False,
            extra_env={
                "OPENAI_API_KEY": "",
                "OPENAI_BASE_URL": "",
                "ANTHROPIC_API_KEY": "",
                "GEMINI_API_KEY": "",
                "PRISM_LLM_CONFIG": "",
                "PRISM_LLM_REPLAY": "",
            },
        ) as srv,
        srv.client("user") as c,
    ):
        for path, body in (
            ("/query", {"prompt": "Say hello."}),
            ("/consensus", {"prompt": "Say hello."}),
            ("/batch", {"requests": [{"prompt": "Say hello."}]}),
        ):
            r = c.post("/api/v1/llm" + path, json=body)
            assert r.status_code == 503, r.text
            assert "OPENAI_BASE_URL" in r.json()["message"]
        assert ok(c.get("/api/v1/llm/health"))["configured"] is False
    with (
        LoopbackServer(api_key=None) as loop,
        PrismServer(
            data_dir=tmp_path / "budget",
            dashboards=False,
            extra_env={
                "OPENAI_BASE_URL": loop.openai_url,
                "PRISM_LLM_CONFIG": "",
                "PRISM_LLM_BUDGET_USD": "0",
            },
        ) as srv,
        srv.client("user") as c,
    ):
        r = c.post("/api/v1/llm/query", json={"prompt": "Say hello."})
        body = assert_error(r, 402)
        assert body["details"]["budget_usd"] == 0.0 and "key_id" in body["details"]
        assert loop.posts() == []
        spec = c.get("/api/v1/openapi.json").json()
        assert "402" in spec["paths"]["/api/v1/llm/query"]["post"]["responses"]
        assert "402" not in spec["paths"]["/api/v1/llm/models"]["get"]["responses"]
