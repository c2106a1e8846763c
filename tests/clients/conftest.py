"""Fixtures of the real-client tests (`make test-clients`): the gateway with every provider
format behind it, fakes driven by a scripted tool round trip, a sandbox per run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.runners import CLIENT_KEY, NODE_BIN, ClientRun, Sandbox
from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI, FakeProvider
from tests.fakes.script import ToolRoundTrip
from tests.support.stack import GatewayStack

# A model name Claude Code does not know, routed to Anthropic (what a route alias looks like to it).
ANTHROPIC_ALIAS = "team-sonnet"


@pytest.fixture(scope="session", autouse=True)
def _clients_installed() -> None:
    missing = [name for name in ("claude", "codex") if not (NODE_BIN / name).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make test-clients` (npm ci in tests/clients)")


@pytest.fixture(scope="session")
def client_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    """The standard providers and routes (gpt-* -> openai, claude-* -> anthropic, gemini-* -> gemini),
    plus an alias whose name no client recognises."""
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    alias = {"model": ANTHROPIC_ALIAS, "provider": "anthropic", "upstream_model": "claude-sonnet-4-6"}
    config["routes"] = [alias, *config["routes"]]
    stack = GatewayStack(Path(tmp_path_factory.mktemp("client-gateway")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def direct_openai() -> Iterator[FakeOpenAI]:
    """A fake the clients talk to without the gateway, with the clients' own key."""
    with FakeOpenAI(api_key=CLIENT_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def direct_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=CLIENT_KEY) as fake:
        yield fake


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox.create(tmp_path, f"pelican-{secrets.token_hex(4)}")


def script(fake: FakeProvider, tool: str, arguments: dict[str, object]) -> ToolRoundTrip:
    """Drive ``fake`` through one tool round trip from a clean record."""
    fake.reset()
    fake.script = ToolRoundTrip(tool, arguments)
    return fake.script


def provider_fake(request: pytest.FixtureRequest, provider: str) -> FakeProvider:
    fake: FakeProvider = request.getfixturevalue(f"fake_{provider}")
    return fake


PROMPT = "Read the file note.txt in the current directory and tell me the secret word in it."


def check_round_trip(run: ClientRun, round_trip: ToolRoundTrip, secret: str) -> None:
    """The provider asked for the tool, the client ran it and sent its result back, the client's
    final answer quotes that result, and nothing left loopback."""
    assert not run.egress, f"the client reached beyond loopback: {run.egress}"
    assert round_trip.tool_calls_asked, (
        f"the provider never asked for {round_trip.tool!r} (offered per request: {round_trip.offered})\n{run.explain()}"
    )
    assert any(secret in result for result in round_trip.results_seen), (
        f"the tool's result never reached the provider: {round_trip.results}\n{run.explain()}"
    )
    assert secret in run.output, f"the final answer does not quote the tool's result\n{run.explain()}"
