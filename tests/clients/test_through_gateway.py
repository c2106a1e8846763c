"""The real clients through the real gateway, each against every provider format: the
provider (a scripted fake) asks for a tool the client offered, the client runs it, sends the
result back, and its final answer quotes it. Nothing may leave loopback."""

from __future__ import annotations

import httpx
import pytest

from tests.clients import runners
from tests.clients.conftest import ANTHROPIC_ALIAS, PROMPT, check_round_trip, provider_fake, script
from tests.fakes.providers import FakeOpenAI
from tests.support.stack import GatewayStack

pytestmark = [pytest.mark.clients, pytest.mark.integration]

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-flash"}


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        pytest.param("anthropic", MODELS["anthropic"], id="anthropic"),
        pytest.param("openai", MODELS["openai"], id="openai"),
        pytest.param("gemini", MODELS["gemini"], id="gemini"),
        pytest.param("anthropic", ANTHROPIC_ALIAS, id="anthropic-by-an-alias"),
    ],
)
def test_claude_code_round_trip(
    request: pytest.FixtureRequest, client_gateway: GatewayStack, sandbox: runners.Sandbox, provider: str, model: str
) -> None:
    round_trip = script(provider_fake(request, provider), "Read", {"file_path": str(sandbox.note)})
    run = runners.claude_code(sandbox, client_gateway.base_url, model, PROMPT)
    check_round_trip(run, round_trip, sandbox.secret)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_codex_round_trip(
    request: pytest.FixtureRequest, client_gateway: GatewayStack, sandbox: runners.Sandbox, provider: str
) -> None:
    round_trip = script(provider_fake(request, provider), "exec_command", {"cmd": f"cat {sandbox.note}"})
    run = runners.codex(sandbox, client_gateway.base_url, MODELS[provider], PROMPT)
    check_round_trip(run, round_trip, sandbox.secret)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", ["responses", "chat_completions"])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_agents_sdk_round_trip(
    request: pytest.FixtureRequest,
    client_gateway: GatewayStack,
    sandbox: runners.Sandbox,
    provider: str,
    api: str,
    stream: bool,
) -> None:
    round_trip = script(provider_fake(request, provider), "read_note", {"path": str(sandbox.note)})
    run = runners.agents_sdk(sandbox, client_gateway.base_url, MODELS[provider], PROMPT, api=api, stream=stream)
    check_round_trip(run, round_trip, sandbox.secret)


# Codex's own model_providers entries use HTTPS only unless `supports_websockets = true`; its built-in
# `openai` provider (pointed at the gateway with `openai_base_url`) always tries the WebSocket first:
# on anything but a 426 Upgrade Required it tries again (7 times over about 6 s) before HTTPS.


def test_gateway_refuses_a_websocket_on_responses_with_426(client_gateway: GatewayStack) -> None:
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Authorization": f"Bearer {runners.CLIENT_KEY}",
    }
    response = httpx.get(f"{client_gateway.base_url}/v1/responses", headers=upgrade, timeout=10)
    assert response.status_code == 426, (response.status_code, response.text)
    error = response.json()["error"]  # OpenAI's error format, as for any /v1/responses answer
    assert error["code"] == "websocket_not_supported" and response.headers["x-request-id"] in error["message"]


def test_codex_with_websockets_on_falls_back_to_https_at_once(
    fake_openai: FakeOpenAI, client_gateway: GatewayStack, sandbox: runners.Sandbox
) -> None:
    round_trip = script(fake_openai, "exec_command", {"cmd": f"cat {sandbox.note}"})
    run = runners.codex(sandbox, client_gateway.base_url, MODELS["openai"], PROMPT, websockets=True)
    assert "Reconnecting" not in run.stderr, f"Codex retried the WebSocket\n{run.explain()}"
    check_round_trip(run, round_trip, sandbox.secret)
