"""Each client straight against a scripted fake of its own API, no gateway between: the
baseline that shows the clients, their settings and the fakes complete the round trip (and
stay on loopback) before the gateway is put between them. `make record-clients` runs these
with --record-clients to re-record the requests in tests/fixtures/clients."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from tests.clients import recording, runners
from tests.clients.conftest import PROMPT, check_round_trip, script
from tests.fakes.base import RecordedRequest
from tests.fakes.providers import FakeAnthropic, FakeOpenAI, FakeProvider

pytestmark = [pytest.mark.clients, pytest.mark.integration]

CLAUDE_CODE = f"claude-code-{runners.pinned_version('@anthropic-ai/claude-code')}"
CODEX = f"codex-{runners.pinned_version('@openai/codex')}"


def _agents_version() -> str:
    return f"openai-agents-{version('openai-agents')}"


def _record(request: pytest.FixtureRequest, name: str, fake: FakeProvider, sandbox: runners.Sandbox) -> None:
    if not request.config.getoption("--record-clients"):
        return
    turns: list[RecordedRequest] = [r for r in fake.requests if r.method == "POST"]
    replacements = {str(sandbox.home): "/home/user", sandbox.secret: "pelican-0000"}
    recording.write(name, turns, replacements)


@pytest.mark.parametrize(
    ("case", "model"),
    [("claude-model", "claude-sonnet-4-6"), ("other-model", "gpt-4o-mini")],
    ids=["a-claude-model", "a-model-it-does-not-know"],
)
def test_claude_code_completes_a_tool_round_trip_with_anthropic_directly(
    request: pytest.FixtureRequest, direct_anthropic: FakeAnthropic, sandbox: runners.Sandbox, case: str, model: str
) -> None:
    round_trip = script(direct_anthropic, "Read", {"file_path": str(sandbox.note)})
    run = runners.claude_code(sandbox, direct_anthropic.base_url, model, PROMPT)
    check_round_trip(run, round_trip, sandbox.secret)
    _record(request, f"{CLAUDE_CODE}.{case}", direct_anthropic, sandbox)


def test_codex_completes_a_tool_round_trip_with_openai_responses_directly(
    request: pytest.FixtureRequest, direct_openai: FakeOpenAI, sandbox: runners.Sandbox
) -> None:
    round_trip = script(direct_openai, "exec_command", {"cmd": f"cat {sandbox.note}"})
    run = runners.codex(sandbox, direct_openai.base_url, "gpt-4o-mini", PROMPT)
    check_round_trip(run, round_trip, sandbox.secret)
    _record(request, f"{CODEX}.responses", direct_openai, sandbox)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_agents_sdk_completes_a_tool_round_trip_with_openai_directly(
    request: pytest.FixtureRequest, direct_openai: FakeOpenAI, sandbox: runners.Sandbox, api: str
) -> None:
    round_trip = script(direct_openai, "read_note", {"path": str(sandbox.note)})
    run = runners.agents_sdk(sandbox, direct_openai.base_url, "gpt-4o-mini", PROMPT, api=api, stream=False)
    check_round_trip(run, round_trip, sandbox.secret)
    _record(request, f"{_agents_version()}.{api.replace('_', '-')}", direct_openai, sandbox)


@pytest.mark.parametrize(
    ("model", "env", "window", "warned"),
    [
        ("claude-sonnet-4-6", {}, 200_000, False),
        ("gpt-4o-mini", {}, 1_000_000, True),
        ("gpt-4o-mini", {"CLAUDE_CODE_MAX_CONTEXT_TOKENS": "128000"}, 128_000, True),
    ],
    ids=["a-claude-model", "a-model-it-does-not-know", "a-model-it-does-not-know-with-its-window-set"],
)
def test_claude_code_context_window_is_what_the_docs_say(
    direct_anthropic: FakeAnthropic,
    sandbox: runners.Sandbox,
    model: str,
    env: dict[str, str],
    window: int,
    warned: bool,
) -> None:
    """docs/clients/claude-code.md: for a model name it does not know, the pinned Claude Code warns
    `[claude-code:unrecognized_model]` on stderr and assumes a 1M-token window unless
    CLAUDE_CODE_MAX_CONTEXT_TOKENS says otherwise."""
    script(direct_anthropic, "Read", {"file_path": str(sandbox.note)})
    run = runners.claude_code(sandbox, direct_anthropic.base_url, model, PROMPT, extra_env=env)
    assert run.returncode == 0, run.explain()
    usage = json.loads(run.stdout)["modelUsage"][model]
    assert usage["contextWindow"] == window
    assert ("[claude-code:unrecognized_model]" in run.stderr) == warned, run.stderr
