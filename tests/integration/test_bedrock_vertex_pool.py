"""A pool Bedrock -> Vertex AI -> OpenAI through the real Envoy, failing over inside one streamed
request: each attempt gets only its own provider's credential (Envoy's SigV4 signature for Bedrock,
the minted Google access token for Vertex, the OpenAI key), rendered in that provider's format, and
the stream of whichever provider answers reaches the client in the client's own format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from tests.conftest import OPENAI_KEY, PROVIDER_ENV
from tests.fakes.aws_sigv4 import AwsCredentials, write_credentials_file
from tests.fakes.base import RecordedRequest
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.google_auth import FakeGoogleTokens
from tests.fakes.openai import FakeOpenAI
from tests.fakes.vertex import FakeVertex
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

PROJECT = "fake-project"
NOVA = "us.amazon.nova-micro-v1:0"
GEMINI = "gemini-2.5-flash"
CREDENTIALS = AwsCredentials("AKIDPOOLKEY00001", "pool/secret+key000000000000000000000000000")
CLIENT_KEY = "client-own-key-0001"
AWS_SIGNING = ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token")
FAILOVERS = "gateway_failovers_total"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(CREDENTIALS, models=[NOVA]) as fake:
        yield fake


@pytest.fixture(scope="module")
def tokens() -> Iterator[FakeGoogleTokens]:
    with FakeGoogleTokens() as server:
        yield server


@pytest.fixture(scope="module")
def vertex(tokens: FakeGoogleTokens) -> Iterator[FakeVertex]:
    with FakeVertex(tokens, projects=[PROJECT]) as server:
        yield server


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    bedrock: FakeBedrock,
    tokens: FakeGoogleTokens,
    vertex: FakeVertex,
    fake_openai: FakeOpenAI,
) -> Iterator[GatewayStack]:
    workdir = Path(tmp_path_factory.mktemp("bedrock-vertex-openai"))
    aws_file = workdir / "aws-credentials"
    write_credentials_file(aws_file, CREDENTIALS)
    key_file = tokens.write_key_file(workdir / "service-account.json")
    config = {
        "log_level": "info",
        "listeners": [{"name": "main"}],
        "providers": [
            {
                "name": "bedrock",
                "kind": "bedrock",
                "base_url": bedrock.base_url,
                "bedrock": {"region": "us-east-1"},
                "aws_credentials": {"source": "file", "path": str(aws_file)},
            },
            {
                "name": "vertex",
                "kind": "vertex",
                "base_url": vertex.base_url,
                "vertex": {"project": PROJECT, "location": "us-east5", "credentials_file": str(key_file)},
            },
            {
                "name": "openai",
                "kind": "openai",
                "base_url": fake_openai.base_url + "/v1",
                "api_key_env": "TEST_OPENAI_KEY",
            },
        ],
        "routes": [
            {
                "name": "bedrock-vertex-openai",
                "model": "chat",
                "pool": [
                    {"provider": "bedrock", "model": NOVA},
                    {"provider": "vertex", "priority": 1, "model": GEMINI},
                    {"provider": "openai", "priority": 2, "model": "gpt-4o-mini"},
                ],
                "retry": {"attempts": 2, "retry_on": ["5xx", "reset", "connect-failure", "429"]},
            }
        ],
    }
    env = {**PROVIDER_ENV, "CLOUDSDK_CONFIG": str(workdir / "gcloud")}
    started = GatewayStack(workdir, config, env).start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _fresh(bedrock: FakeBedrock, vertex: FakeVertex, fake_openai: FakeOpenAI) -> None:
    bedrock.reset()
    vertex.reset()
    fake_openai.reset()


def _headers(request: RecordedRequest) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.items()}


def _assert_signed_for_bedrock_only(bedrock: FakeBedrock) -> None:
    """The Bedrock attempt: a SigV4 signature the fake recomputed, no bearer of anyone's."""
    (attempt,) = bedrock.requests
    assert attempt.auth == "sigv4"  # type: ignore[attr-defined]
    sent = _headers(attempt)
    assert sent["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert CLIENT_KEY not in str(sent) and "ya29." not in str(sent)


def _assert_bearer_for_vertex_only(vertex: FakeVertex) -> None:
    """The Vertex attempt: the minted access token, nothing of the signer's or the client's."""
    (attempt,) = vertex.requests
    assert attempt.auth == "valid"  # type: ignore[attr-defined]
    sent = _headers(attempt)
    assert sent["authorization"].startswith("Bearer ya29.")
    assert not [name for name in AWS_SIGNING if name in sent]
    assert CLIENT_KEY not in str(sent) and "AWS4-HMAC-SHA256" not in str(sent)


def test_a_throttled_bedrock_fails_over_to_vertex_which_answers_the_stream(
    stack: GatewayStack, bedrock: FakeBedrock, vertex: FakeVertex, fake_openai: FakeOpenAI
) -> None:
    failovers = metric_sum(stack, FAILOVERS, 'provider="vertex"')
    bedrock.enqueue_error("ThrottlingException")  # a 429
    client = openai.OpenAI(api_key=CLIENT_KEY, base_url=stack.base_url + "/v1", max_retries=0, timeout=30)
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "bedrock then vertex"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "bedrock then vertex" in text  # the fake Gemini on Vertex echoes the prompt
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"
    _assert_signed_for_bedrock_only(bedrock)
    assert bedrock.requests[0].json["messages"][0]["content"][0]["text"] == "bedrock then vertex"  # Converse
    _assert_bearer_for_vertex_only(vertex)
    seen = vertex.last_request
    assert (seen.publisher, seen.model, seen.rpc, seen.query.get("alt")) == (
        "google",
        GEMINI,
        "streamGenerateContent",
        "sse",
    )
    assert seen.json["contents"][0]["parts"][0]["text"] == "bedrock then vertex"  # Gemini's format
    assert fake_openai.requests == []
    assert metric_sum(stack, FAILOVERS, 'provider="vertex"') == failovers + 1


def test_when_bedrock_and_vertex_both_fail_openai_answers_the_stream_with_only_its_own_key(
    stack: GatewayStack, bedrock: FakeBedrock, vertex: FakeVertex, fake_openai: FakeOpenAI
) -> None:
    failovers = metric_sum(stack, FAILOVERS, 'provider="openai"')
    bedrock.enqueue_error("ServiceUnavailableException")  # a 503
    vertex.enqueue_error(503)
    client = anthropic.Anthropic(api_key=CLIENT_KEY, base_url=stack.base_url, max_retries=0, timeout=30)
    with client.messages.stream(
        model="chat", max_tokens=64, messages=[{"role": "user", "content": "third time lucky"}]
    ) as events:
        text = events.get_final_text()
    assert "third time lucky" in text  # the fake OpenAI echoes the prompt
    _assert_signed_for_bedrock_only(bedrock)
    _assert_bearer_for_vertex_only(vertex)
    (attempt,) = fake_openai.requests
    sent = _headers(attempt)
    assert sent["authorization"] == f"Bearer {OPENAI_KEY}"
    assert not [name for name in sent if name.startswith("x-amz-")]
    assert "ya29." not in str(sent) and CLIENT_KEY not in str(sent)
    assert attempt.json["model"] == "gpt-4o-mini" and attempt.json["stream"] is True
    assert metric_sum(stack, FAILOVERS, 'provider="openai"') == failovers + 1
