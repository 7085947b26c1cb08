"""Shared fixtures: array backends, seeded generators."""

from __future__ import annotations

import numpy as np
import pytest

from prism_kernels import backend


def _backends() -> list[str]:
    return [b for b in ("numpy", "torch") if b in backend.available_backends()]


@pytest.fixture(params=_backends())
def xp_name(request) -> str:
    """Backend name: runs the test once on NumPy and once on PyTorch (CPU)."""
    return request.param


@pytest.fixture
def xp(xp_name):
    """The array-API namespace of the backend under test."""
    return backend.namespace(xp_name)


@pytest.fixture
def to_xp(xp_name):
    """Convert a NumPy array to the backend under test (float64 kept)."""
    return lambda a: backend.asarray(a, backend=xp_name)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def llm_provider():
    """A loopback OpenAI-compatible provider (the real wire protocol) for the session server."""
    from tests.llm.loopback import LoopbackServer

    with LoopbackServer(api_key=None) as provider:
        yield provider


@pytest.fixture(scope="session")
def server(tmp_path_factory, llm_provider):
    """One real server (dashboards + API) on a loopback port for the whole session; its LLM
    provider is the loopback one."""
    from tests.serverutil import PrismServer

    srv = PrismServer(
        data_dir=tmp_path_factory.mktemp("prism-data"),
        extra_env={"OPENAI_BASE_URL": llm_provider.openai_url},
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def api(server):
    """An httpx client of the session server with a ``user`` key."""
    with server.client("user") as c:
        yield c
