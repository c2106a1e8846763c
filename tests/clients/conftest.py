"""Fixtures of the real-client tests (`make test-clients`): the gateway with every provider
format behind it (and the cloud kinds, Bedrock signed by Envoy and Vertex with a minted token),
fakes driven by a scripted tool round trip, a sandbox per run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.runners import CLIENT_KEY, NODE_BIN, ClientRun, Sandbox
from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.aws_sigv4 import AwsCredentials, write_credentials_file
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.google_auth import FakeGoogleTokens
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI, FakeProvider
from tests.fakes.script import ToolRoundTrip
from tests.fakes.vertex import FakeVertex
from tests.support.stack import GatewayStack

# A model name Claude Code does not know, routed to Anthropic (what a route alias looks like to it).
ANTHROPIC_ALIAS = "team-sonnet"

AWS = AwsCredentials("AKIDCLIENTSTESTS01", "clients/secret+key00000000000000000000000")
BEDROCK_CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
BEDROCK_NOVA = "us.amazon.nova-micro-v1:0"
VERTEX_PROJECT, VERTEX_LOCATION = "fake-project", "us-east5"
VERTEX_GEMINI, VERTEX_CLAUDE = "gemini-2.5-flash", "claude-sonnet-4@20250514"
# Route names of the cloud kinds, and the fake (fixture) each reaches.
CLOUD_ROUTES: dict[str, tuple[str, str, str]] = {
    "bedrock-claude": ("bedrock", BEDROCK_CLAUDE, "fake_bedrock"),  # bedrock.api auto: InvokeModel
    "bedrock-claude-converse": ("bedrock-converse", BEDROCK_CLAUDE, "fake_bedrock"),
    "bedrock-nova": ("bedrock", BEDROCK_NOVA, "fake_bedrock"),  # not Claude: Converse
    "vertex-gemini": ("vertex", VERTEX_GEMINI, "fake_vertex"),
    "vertex-claude": ("vertex", VERTEX_CLAUDE, "fake_vertex"),
}


@pytest.fixture(scope="session", autouse=True)
def _clients_installed() -> None:
    missing = [name for name in ("claude", "codex") if not (NODE_BIN / name).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make test-clients` (npm ci in tests/clients)")


@pytest.fixture(scope="session")
def fake_bedrock() -> Iterator[FakeBedrock]:
    """Checks each request's SigV4 signature (Envoy's aws_request_signing) against ``AWS``."""
    with FakeBedrock(AWS) as fake:
        yield fake


@pytest.fixture(scope="session")
def google_tokens() -> Iterator[FakeGoogleTokens]:
    with FakeGoogleTokens() as server:
        yield server


@pytest.fixture(scope="session")
def fake_vertex(google_tokens: FakeGoogleTokens) -> Iterator[FakeVertex]:
    """Accepts only a bearer token ``google_tokens`` issued (the gateway mints it from a key file)."""
    with FakeVertex(google_tokens, projects=[VERTEX_PROJECT]) as fake:
        yield fake


def _cloud_providers(
    workdir: Path, bedrock: FakeBedrock, tokens: FakeGoogleTokens, vertex: FakeVertex
) -> list[dict[str, Any]]:
    credentials = workdir / "aws-credentials"
    write_credentials_file(credentials, AWS)
    signed = {
        "kind": "bedrock",
        "base_url": bedrock.base_url,
        "aws_credentials": {"source": "file", "path": str(credentials)},
    }
    google = {"project": VERTEX_PROJECT, "location": VERTEX_LOCATION}
    google["credentials_file"] = str(tokens.write_key_file(workdir / "service-account.json"))
    return [
        {"name": "bedrock", **signed, "bedrock": {"region": bedrock.region}},
        {"name": "bedrock-converse", **signed, "bedrock": {"region": bedrock.region, "api": "converse"}},
        {"name": "vertex", "kind": "vertex", "base_url": vertex.base_url, "vertex": google},
    ]


@pytest.fixture(scope="session")
def client_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    fake_bedrock: FakeBedrock,
    google_tokens: FakeGoogleTokens,
    fake_vertex: FakeVertex,
) -> Iterator[GatewayStack]:
    """The standard providers and routes (gpt-* -> openai, claude-* -> anthropic, gemini-* -> gemini),
    an alias whose name no client recognises, and the cloud kinds' routes (``CLOUD_ROUTES``)."""
    workdir = Path(tmp_path_factory.mktemp("client-gateway"))
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["providers"] += _cloud_providers(workdir, fake_bedrock, google_tokens, fake_vertex)
    alias = {"model": ANTHROPIC_ALIAS, "provider": "anthropic", "upstream_model": "claude-sonnet-4-6"}
    cloud = [{"model": name, "provider": p, "upstream_model": m} for name, (p, m, _) in CLOUD_ROUTES.items()]
    config["routes"] = [alias, *cloud, *config["routes"]]
    env = {**PROVIDER_ENV, "CLOUDSDK_CONFIG": str(workdir / "gcloud")}  # no gcloud login of this machine's
    stack = GatewayStack(workdir, config, env).start()
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


def cloud_fake(request: pytest.FixtureRequest, route: str) -> FakeProvider:
    """The fake a cloud route of ``CLOUD_ROUTES`` reaches."""
    fake: FakeProvider = request.getfixturevalue(CLOUD_ROUTES[route][2])
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
