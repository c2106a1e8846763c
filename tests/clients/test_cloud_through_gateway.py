"""The real clients through the real gateway to the cloud provider kinds: Bedrock (signed by Envoy's
aws_request_signing, InvokeModel or Converse) and Vertex AI (a bearer token the gateway minted, Gemini
or Claude). As with the other providers, the scripted fake asks for a tool, the client runs it and
sends the result back, its final answer quotes it, and nothing leaves loopback. Each test also checks
the provider was called the way the route says, and authenticated."""

from __future__ import annotations

import pytest

from tests.clients import runners
from tests.clients.conftest import PROMPT, check_round_trip, cloud_fake, script
from tests.fakes.base import FakeProvider
from tests.fakes.bedrock import AwsRecordedRequest, FakeBedrock
from tests.fakes.script import ToolRoundTrip
from tests.fakes.vertex import VertexRecordedRequest
from tests.support.stack import GatewayStack

pytestmark = [pytest.mark.clients, pytest.mark.integration]


def calls(fake: FakeProvider) -> list[str]:
    """How the provider was called, request by request: Bedrock's operation or Vertex's method,
    each with its authentication verdict."""
    seen = []
    for request in fake.requests:
        if isinstance(request, AwsRecordedRequest):
            seen.append(f"{request.operation} {request.auth}")
        elif isinstance(request, VertexRecordedRequest):
            seen.append(f"{request.publisher}:{request.rpc} {request.auth}")
    return seen


def check_calls(fake: FakeProvider, expected: str, run: runners.ClientRun) -> None:
    """Every call (a tool call asked for, then the answer) went the expected way, authenticated."""
    seen = calls(fake)
    assert len(seen) >= 2 and set(seen) == {expected}, f"calls: {seen}\n{run.explain()}"


def drive(
    client: str, request: pytest.FixtureRequest, gateway: GatewayStack, sandbox: runners.Sandbox, route: str
) -> tuple[runners.ClientRun, ToolRoundTrip]:
    """Run Claude Code or Codex on ``route``, its provider scripted to ask for the client's own file tool."""
    fake = cloud_fake(request, route)
    if client == "claude-code":
        round_trip = script(fake, "Read", {"file_path": str(sandbox.note)})
        return runners.claude_code(sandbox, gateway.base_url, route, PROMPT), round_trip
    round_trip = script(fake, "exec_command", {"cmd": f"cat {sandbox.note}"})
    return runners.codex(sandbox, gateway.base_url, route, PROMPT), round_trip


@pytest.mark.parametrize(
    ("client", "route", "expected"),
    [
        pytest.param(
            "claude-code", "bedrock-claude-converse", "converse-stream sigv4", id="claude-code-bedrock-converse"
        ),
        pytest.param(
            "claude-code", "vertex-claude", "anthropic:streamRawPredict valid", id="claude-code-vertex-claude"
        ),
        pytest.param("codex", "bedrock-nova", "converse-stream sigv4", id="codex-bedrock-converse"),
        pytest.param("codex", "vertex-gemini", "google:streamGenerateContent valid", id="codex-vertex-gemini"),
    ],
)
def test_coding_agent_round_trip_to_a_cloud_provider(
    request: pytest.FixtureRequest,
    client_gateway: GatewayStack,
    sandbox: runners.Sandbox,
    client: str,
    route: str,
    expected: str,
) -> None:
    run, round_trip = drive(client, request, client_gateway, sandbox, route)
    check_round_trip(run, round_trip, sandbox.secret)
    check_calls(cloud_fake(request, route), expected, run)


def test_claude_code_round_trip_to_bedrock_invoke_keeps_its_body_with_the_betas_in_it(
    request: pytest.FixtureRequest, client_gateway: GatewayStack, sandbox: runners.Sandbox
) -> None:
    run, round_trip = drive("claude-code", request, client_gateway, sandbox, "bedrock-claude")
    check_round_trip(run, round_trip, sandbox.secret)
    fake = cloud_fake(request, "bedrock-claude")
    check_calls(fake, "invoke-with-response-stream sigv4", run)
    for sent in fake.requests:  # Claude Code's Anthropic body, its anthropic-beta header moved into it
        assert "anthropic-beta" not in sent.headers, sent.headers
        assert "claude-code-20250219" in sent.json.get("anthropic_beta", []), sent.json.get("anthropic_beta")
        assert sent.json["tools"] and sent.json["thinking"], sorted(sent.json)


AGENTS_CALLS = {
    "bedrock-nova": ("converse sigv4", "converse-stream sigv4"),
    "vertex-gemini": ("google:generateContent valid", "google:streamGenerateContent valid"),
    "vertex-claude": ("anthropic:rawPredict valid", "anthropic:streamRawPredict valid"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", ["responses", "chat_completions"])
@pytest.mark.parametrize("route", list(AGENTS_CALLS))
def test_agents_sdk_round_trip_to_a_cloud_provider(
    request: pytest.FixtureRequest,
    client_gateway: GatewayStack,
    sandbox: runners.Sandbox,
    route: str,
    api: str,
    stream: bool,
) -> None:
    fake = cloud_fake(request, route)
    round_trip = script(fake, "read_note", {"path": str(sandbox.note)})
    run = runners.agents_sdk(sandbox, client_gateway.base_url, route, PROMPT, api=api, stream=stream)
    check_round_trip(run, round_trip, sandbox.secret)
    check_calls(fake, AGENTS_CALLS[route][stream], run)


def test_claude_code_drops_a_beta_bedrock_refuses_and_completes_the_round_trip(
    fake_bedrock: FakeBedrock, client_gateway: GatewayStack, sandbox: runners.Sandbox
) -> None:
    """Bedrock refuses a beta it lacks with a 400 ValidationException "invalid beta flag"; Claude Code
    answers a 400 by sending the request again without its betas one at a time, which it can only do
    when the gateway hands the refusal on as a 400."""
    refused = "thinking-token-count-2026-05-13"  # one Claude Code sends that no Bedrock list has
    round_trip = script(fake_bedrock, "Read", {"file_path": str(sandbox.note)})
    fake_bedrock.refused_betas.add(refused)
    run = runners.claude_code(sandbox, client_gateway.base_url, "bedrock-claude", PROMPT)
    sent_betas = [sent.json.get("anthropic_beta", []) for sent in fake_bedrock.requests]
    assert refused in sent_betas[0] and refused not in sent_betas[-1], sent_betas
    check_round_trip(run, round_trip, sandbox.secret)
