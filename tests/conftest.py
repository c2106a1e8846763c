"""Shared fixtures: fake providers and the real gateway (Envoy + ext_proc) on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.support.redis_server import redis_server  # noqa: F401
from tests.support.stack import GatewayStack, free_port

# Property tests are judged by what they find, never by how fast a loaded CI machine runs them.
settings.register_profile("gateway", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gateway")

OPENAI_KEY = "sk-provider-openai-secret"
ANTHROPIC_KEY = "sk-ant-provider-secret"
GEMINI_KEY = "gemini-provider-secret"


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=GEMINI_KEY) as fake:
        yield fake


AZURE_API_VERSION = "2024-10-21"
# An OpenAI-compatible server that can do little: no tools, images, schemas or streaming.
LIMITED = {
    "kind": "openai-compatible",
    "api_key_env": "TEST_OPENAI_KEY",
    "capabilities": {"tools": False, "images": False, "json_schema": False, "streaming": False, "max_tokens": 50},
}


def openai_only_config(openai_url: str, **sections: Any) -> dict[str, Any]:
    """One OpenAI provider (the fake at `openai_url`) taking every model, and `sections` besides."""
    provider = {"name": "openai", "kind": "openai", "base_url": openai_url + "/v1", "api_key_env": "TEST_OPENAI_KEY"}
    return {"providers": [provider], "routes": [{"model": "*", "provider": "openai"}], **sections}


def standard_config(openai_url: str, anthropic_url: str, gemini_url: str) -> dict[str, Any]:
    """Every provider kind, each routed by a model prefix; `down` points at a closed port."""
    return {
        "log_level": "info",
        "listeners": [{"name": "main"}],
        "providers": [
            {"name": "mock", "kind": "mock", "models": ["mock-1"]},
            {"name": "openai", "kind": "openai", "base_url": openai_url + "/v1", "api_key_env": "TEST_OPENAI_KEY"},
            {
                "name": "anthropic",
                "kind": "anthropic",
                "base_url": anthropic_url,
                "api_key_env": "TEST_ANTHROPIC_KEY",
            },
            {"name": "gemini", "kind": "gemini", "base_url": gemini_url, "api_key_env": "TEST_GEMINI_KEY"},
            {
                "name": "down",
                "kind": "openai-compatible",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",
                "timeout_ms": 5000,
            },
            {
                "name": "slow",
                "kind": "openai",
                "base_url": openai_url + "/v1",
                "api_key_env": "TEST_OPENAI_KEY",
                "timeout_ms": 1500,
            },
            {**LIMITED, "name": "basic", "base_url": openai_url + "/v1", "unsupported": "drop"},
            {**LIMITED, "name": "strict", "base_url": openai_url + "/v1", "unsupported": "reject"},
            {
                "name": "azure",
                "kind": "openai-compatible",
                "base_url": openai_url,
                "api_key_env": "TEST_OPENAI_KEY",
                "azure": {"api_version": AZURE_API_VERSION},
            },
        ],
        "routes": [
            {"model": "alias-gpt", "provider": "openai", "upstream_model": "gpt-4o-real"},
            {"model": "alias-gemini", "provider": "gemini", "upstream_model": "gemini-real"},
            {"model": "gpt-*", "provider": "openai"},
            {"model": "claude-*", "provider": "anthropic"},
            {"model": "gemini-*", "provider": "gemini"},
            {"model": "down-*", "provider": "down"},
            {"model": "mock-*", "provider": "mock"},
            {"model": "slow-*", "provider": "slow"},
            {"model": "basic-*", "provider": "basic"},
            {"model": "strict-*", "provider": "strict"},
            {"model": "azure-*", "provider": "azure"},
        ],
    }


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-clients",
        action="store_true",
        help="re-record the real clients' requests in tests/fixtures/clients (make record-clients)",
    )


PROVIDER_ENV = {"TEST_OPENAI_KEY": OPENAI_KEY, "TEST_ANTHROPIC_KEY": ANTHROPIC_KEY, "TEST_GEMINI_KEY": GEMINI_KEY}


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    """One gateway for the session, routing to all fake providers."""
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    stack = GatewayStack(Path(tmp_path_factory.mktemp("gateway")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    """Each test starts with empty reply queues and request records on the session fakes."""
    for name in ("fake_openai", "fake_anthropic", "fake_gemini"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
