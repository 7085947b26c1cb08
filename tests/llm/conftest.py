"""Fixtures: loopback LLM servers (real wire protocols on 127.0.0.1), started and stopped here."""

from __future__ import annotations

import pytest

from tests.llm.loopback import LoopbackServer

OPENAI_KEY = "sk-test-OPENAI-0123456789abcdefSECRET"
ANTHROPIC_KEY = "sk-ant-test-ANTHROPIC-9876543210SECRET"


@pytest.fixture
def openai_server():
    """A loopback OpenAI-compatible server requiring ``OPENAI_KEY``."""
    with LoopbackServer(api_key=OPENAI_KEY, flavour="openai") as s:
        yield s


@pytest.fixture
def openai_server_b():
    """A second loopback OpenAI-compatible server (no key, like a local vLLM)."""
    with LoopbackServer(api_key=None, models=["local-a"], flavour="openai") as s:
        yield s


@pytest.fixture
def anthropic_server():
    """A loopback Anthropic server requiring ``ANTHROPIC_KEY``."""
    with LoopbackServer(api_key=ANTHROPIC_KEY, models=["claude-loop"], flavour="anthropic") as s:
        yield s


def models_env(
    tmp_path, url: str, budget: str | None = None, key: str = OPENAI_KEY
) -> dict[str, str]:
    """The environment of a models file with a priced ``small`` (the default) and ``large``
    model on the OpenAI-compatible server at ``url`` (its key ``key``), no retries; ``budget``
    in USD."""
    cfg = tmp_path / "models.yaml"
    cfg.write_text(
        f"""
endpoints:
  openai: {{provider: openai, base_url: "{url}", api_key_env: OPENAI_API_KEY}}
models:
  small: {{endpoint: openai, model: loop-small, price_in_per_1k: 1.0, price_out_per_1k: 2.0}}
  large: {{endpoint: openai, model: loop-large, price_in_per_1k: 10.0, price_out_per_1k: 20.0,
           weight: 3.0}}
default_model: small
router: {{max_retries: 0}}
"""
    )
    env = {"OPENAI_API_KEY": key, "PRISM_LLM_CONFIG": str(cfg)}
    if budget is not None:
        env["PRISM_LLM_BUDGET_USD"] = budget
    return env
