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
