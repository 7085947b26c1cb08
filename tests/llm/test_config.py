"""Configuration from the environment and the YAML models file; keys never print."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest

from prism_kernels.errors import InvalidInput
from prism_kernels.llm.config import (
    DEFAULT_BASE_URLS,
    ModelConfig,
    RouterSettings,
    Secret,
    key_id,
    load_config,
)

KEY = "sk-config-test-KEY-abcdef0123456789"

YAML = """
endpoints:
  local: {provider: openai, base_url: "http://127.0.0.1:9/v1/", timeout_s: 12.5}
  claude: {provider: anthropic, api_key_env: MY_CLAUDE_KEY, max_connections: 4}
models:
  small: {endpoint: local, model: qwen2.5-7b, price_in_per_1k: 0.0, price_out_per_1k: 0.0,
          weight: 2.0, fallbacks: [haiku]}
  haiku: {endpoint: claude, model: claude-3-5-haiku-latest, price_in_per_1k: 0.0008,
          price_out_per_1k: 0.004, timeout_s: 20}
aliases: {fast: small, cheap: fast}
default_model: fast
router: {max_retries: 1, backoff_base_s: 0.1, cooldown_after: 2, cooldown_s: 5,
         mid_stream: continue}
"""


def _write(tmp_path, text, name="llm.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_empty_environment_configures_nothing():
    cfg = load_config({})
    assert not cfg.configured and not cfg.models
    with pytest.raises(InvalidInput) as e:
        cfg.resolve(None)
    assert e.value.field == "model" and "OPENAI_API_KEY" in e.value.message


def test_vendor_variables_make_endpoints_and_keys_never_print():
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/",
        "ANTHROPIC_API_KEY": KEY + "-a",
        "GEMINI_API_KEY": KEY + "-g",
    }
    cfg = load_config(env)
    assert set(cfg.endpoints) == {"openai", "anthropic", "gemini"}
    assert cfg.endpoints["openai"].base_url == "http://127.0.0.1:8000/v1"
    assert cfg.endpoints["anthropic"].base_url == DEFAULT_BASE_URLS["anthropic"]
    assert cfg.endpoints["gemini"].base_url.endswith("/v1beta/openai")
    assert cfg.endpoints["openai"].api_key.reveal() == KEY
    expected = "key-" + hashlib.sha256(KEY.encode()).hexdigest()[:12]
    assert cfg.endpoints["openai"].key_id == expected == key_id(KEY)
    shown = [
        repr(cfg),
        str(cfg),
        json.dumps(cfg.to_dict()),
        repr(cfg.endpoints["openai"]),
        str(cfg.endpoints["openai"].api_key),
        f"{cfg.endpoints['openai'].api_key}",
    ]
    for text in shown:
        assert KEY not in text


def test_a_local_server_needs_no_key_but_anthropic_does():
    cfg = load_config(
        {"OPENAI_BASE_URL": "http://127.0.0.1:1234/v1", "ANTHROPIC_BASE_URL": "http://x"}
    )
    assert set(cfg.endpoints) == {"openai"}
    assert cfg.endpoints["openai"].api_key is None and cfg.endpoints["openai"].key_id is None


def test_yaml_file(tmp_path):
    cfg = load_config({"PRISM_LLM_CONFIG": _write(tmp_path, YAML), "MY_CLAUDE_KEY": KEY})
    assert cfg.endpoints["local"].base_url == "http://127.0.0.1:9/v1"
    assert cfg.endpoints["local"].timeout_s == 12.5
    assert cfg.endpoints["claude"].api_key.reveal() == KEY
    assert cfg.endpoints["claude"].max_connections == 4
    assert cfg.resolve("cheap").name == "small"  # alias of an alias
    assert cfg.resolve(None).name == "small"  # default
    small = cfg.resolve("small")
    assert small.model == "qwen2.5-7b" and small.weight == 2.0 and small.fallbacks == ("haiku",)
    assert cfg.resolve("haiku").timeout_s == 20
    assert cfg.router == RouterSettings(
        max_retries=1, backoff_base_s=0.1, cooldown_after=2, cooldown_s=5, mid_stream="continue"
    )
    with pytest.raises(InvalidInput) as e:
        cfg.resolve("gpt-17")
    assert e.value.field == "model" and "small" in e.value.message and "fast" in e.value.message
    assert KEY not in json.dumps(cfg.to_dict()) and KEY not in repr(cfg)


def test_cost_is_the_price_table_closed_form():
    m = ModelConfig("m", "e", price_in_per_1k=0.5, price_out_per_1k=1.5)
    assert m.cost(1000, 0) == pytest.approx(0.5)
    assert m.cost(200, 3000) == pytest.approx(0.2 * 0.5 + 3.0 * 1.5)
    assert m.cost(0, 0) == 0.0
    assert ModelConfig("n", "e").cost(10, 10) is None  # price unknown
    assert ModelConfig("n", "e").model == "n"


@pytest.mark.parametrize(
    "text, field",
    [
        ("models: {a: {endpoint: nowhere}}", "models.a.endpoint"),
        (
            "endpoints: {e: {provider: openai}}\nmodels: {a: {endpoint: e, price_in_per_1k: -1}}",
            "models.a.price_in_per_1k",
        ),
        (
            "endpoints: {e: {provider: openai}}\nmodels: {a: {endpoint: e, weight: 0}}",
            "models.a.weight",
        ),
        (
            "endpoints: {e: {provider: openai}}\nmodels: {a: {endpoint: e, fallbacks: [zz]}}",
            "models.a.fallbacks",
        ),
        ("endpoints: {e: {provider: cohere}}", "endpoints.e.provider"),
        ("endpoints: {e: {provider: openai, timeout_s: .nan}}", "endpoints.e.timeout_s"),
        ("router: {retries: 3}", "router.retries"),
        ("router: {max_retries: -1}", "router.max_retries"),
        ("router: {mid_stream: resume}", "router.mid_stream"),
        ("aliases: {x: y}", "aliases.x"),
        ("aliases: {x: y, y: x}", "aliases.x"),
        ("default_model: nope", "default_model"),
        ("- a\n- b", "PRISM_LLM_CONFIG"),
        ("a: [", "PRISM_LLM_CONFIG"),
    ],
)
def test_bad_files_name_the_field(tmp_path, text, field):
    with pytest.raises(InvalidInput) as e:
        load_config({"PRISM_LLM_CONFIG": _write(tmp_path, text)})
    assert e.value.field == field


def test_missing_files_and_bad_budget(tmp_path):
    with pytest.raises(InvalidInput) as e:
        load_config({"PRISM_LLM_CONFIG": str(tmp_path / "none.yaml")})
    assert e.value.field == "PRISM_LLM_CONFIG"
    with pytest.raises(InvalidInput) as e:
        load_config({"PRISM_LLM_REPLAY": str(tmp_path / "none.jsonl")})
    assert e.value.field == "PRISM_LLM_REPLAY"
    with pytest.raises(InvalidInput) as e:
        load_config({"PRISM_LLM_BUDGET_USD": "lots"})
    assert e.value.field == "PRISM_LLM_BUDGET_USD"
    with pytest.raises(InvalidInput):
        load_config({"PRISM_LLM_BUDGET_USD": "-3"})
    assert load_config({"PRISM_LLM_BUDGET_USD": "2.5"}).budget_usd == 2.5


def test_replay_file_serves_its_models_keeping_configured_prices(tmp_path):
    rec = {"model": "haiku", "messages": [{"role": "user", "content": "hi"}], "text": "hello"}
    lines = [json.dumps(rec), "", json.dumps({**rec, "model": "other"})]
    replay = _write(tmp_path, "\n".join(lines), "r.jsonl")
    cfg = load_config({"PRISM_LLM_CONFIG": _write(tmp_path, YAML), "PRISM_LLM_REPLAY": replay})
    assert cfg.endpoints["replay"].provider == "replay"
    assert cfg.resolve("haiku").endpoint == "replay" and cfg.resolve("haiku").model == "haiku"
    assert cfg.resolve("haiku").price_out_per_1k == 0.004
    assert (
        cfg.resolve("other").endpoint == "replay" and cfg.resolve("other").price_in_per_1k is None
    )
    assert cfg.resolve("small").endpoint == "local"
    bad = _write(tmp_path, '{"model": "a"}\nnot json\n', "bad.jsonl")
    with pytest.raises(InvalidInput) as e:
        load_config({"PRISM_LLM_REPLAY": bad})
    assert "line 2" in e.value.message


def test_secret_never_prints_or_pickles():
    s = Secret(KEY)
    assert KEY not in repr(s) + str(s) + f"{s}" + f"{s!r}" + format(s, "")
    assert s.reveal() == KEY and s == Secret(KEY) and bool(s) and not Secret("")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert key_id(None) is None and key_id("") is None
