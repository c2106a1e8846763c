"""Vertex AI through the real Envoy: every client API (Chat Completions, Responses, Messages,
generateContent) reaches Gemini on publishers/google and Claude on publishers/anthropic, plain and
streamed, with tools; OpenAI and Gemini clients' embeddings reach the embedding models by :predict;
a pool fails over from Bedrock to Vertex to OpenAI inside one streamed request, each attempt with
only its own provider's credential; the OAuth2 access token is minted by the gateway from a
service-account key (a fake Google token endpoint), injected by Envoy, refreshed under load without
a restart, and a refresh that keeps failing ends in a 503 with retry-after in each client's format
once it expires."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.conftest import OPENAI_KEY, PROVIDER_ENV, standard_config
from tests.fakes.anthropic import FakeAnthropic, anthropic_error
from tests.fakes.aws_sigv4 import AwsCredentials, write_credentials_file
from tests.fakes.base import RecordedRequest
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.google_auth import FakeGoogleTokens
from tests.fakes.openai import FakeOpenAI
from tests.fakes.plans import count_tokens
from tests.fakes.providers import FakeGemini
from tests.fakes.vertex import VERTEX_ANTHROPIC_VERSION, FakeVertex
from tests.integration.sdk_outcomes import gemini_client
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

PROJECT = "fake-project"
LOCATION = "us-east5"
GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4@20250514"
EMBEDDER = "text-embedding-005"
GEMINI_EMBEDDER = "gemini-embedding-001"
ROOT = f"/v1/projects/{PROJECT}/locations/{LOCATION}"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


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
    tokens: FakeGoogleTokens,
    vertex: FakeVertex,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    workdir = Path(tmp_path_factory.mktemp("vertex"))
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["providers"].append(_vertex_provider(workdir, tokens, vertex))
    narrow = {**_vertex_provider(workdir, tokens, vertex), "name": "vertex-narrow", "anthropic_betas": [THINKING]}
    config["providers"].append(narrow)
    config["routes"] = [
        {"model": "vx-gemini", "provider": "vertex", "upstream_model": GEMINI},
        {"model": "vx-claude", "provider": "vertex", "upstream_model": CLAUDE},
        {"model": "vx-claude-narrow", "provider": "vertex-narrow", "upstream_model": CLAUDE},
        {"model": "vx-embed", "provider": "vertex", "upstream_model": EMBEDDER},
        {"model": GEMINI_EMBEDDER, "provider": "vertex"},  # the SDK's own name: not read as multimodal
        {
            "name": "vertex-then-openai",
            "model": "vx-pool",
            "pool": [
                {"provider": "vertex", "model": CLAUDE},
                {"provider": "openai", "priority": 1, "model": "gpt-4o-mini"},
            ],
        },
        *config["routes"],
    ]
    started = _started(workdir, config)
    yield started
    started.stop()


def _vertex_provider(workdir: Path, tokens: FakeGoogleTokens, vertex: FakeVertex) -> dict[str, Any]:
    """The provider `vertex`, with a service-account key the fake Google token endpoint honours."""
    key_file = tokens.write_key_file(workdir / "service-account.json")
    return {
        "name": "vertex",
        "kind": "vertex",
        "base_url": vertex.base_url,
        "vertex": {"project": PROJECT, "location": LOCATION, "credentials_file": str(key_file)},
    }


def _started(workdir: Path, config: dict[str, Any]) -> GatewayStack:
    env = {**PROVIDER_ENV, "CLOUDSDK_CONFIG": str(workdir / "gcloud")}  # no gcloud login of this machine's
    return GatewayStack(workdir, config, env).start()


@pytest.fixture(autouse=True)
def _fresh(tokens: FakeGoogleTokens, vertex: FakeVertex) -> Iterator[None]:
    vertex.reset()
    tokens.refuse_grants = False
    yield
    tokens.refuse_grants = False
    tokens.token_lifetime = 3600


def oai(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def ant(stack: GatewayStack) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="unused", base_url=stack.base_url, max_retries=0, timeout=20)


def _assert_bearer(vertex: FakeVertex) -> None:
    seen = vertex.last_request
    assert seen.auth == "valid", seen.auth  # a token the fake Google issued, not expired
    assert "x-goog-api-key" not in seen.headers and "x-api-key" not in seen.headers


# -- every client API to Gemini on Vertex ------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_reaches_gemini_on_vertex(stack: GatewayStack, vertex: FakeVertex, stream: bool) -> None:
    client = oai(stack)
    messages: Any = [{"role": "user", "content": "hello vertex gemini"}]
    if stream:
        chunks = list(client.chat.completions.create(model="vx-gemini", messages=messages, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = client.chat.completions.create(model="vx-gemini", messages=messages).choices[0].message.content or ""
    assert "hello vertex gemini" in text
    seen = vertex.last_request
    method = "streamGenerateContent" if stream else "generateContent"
    assert seen.path == f"{ROOT}/publishers/google/models/{GEMINI}:{method}"
    assert (seen.query.get("alt") == "sse") is stream
    assert seen.json["contents"][0]["parts"][0]["text"] == "hello vertex gemini"
    _assert_bearer(vertex)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_reaches_gemini_on_vertex(stack: GatewayStack, vertex: FakeVertex, stream: bool) -> None:
    client = oai(stack)
    if stream:
        events = list(client.responses.create(model="vx-gemini", input="responses to gemini", stream=True))
        done = [e for e in events if e.type == "response.completed"]
        assert done, [e.type for e in events]
        text = done[0].response.output_text
    else:
        text = client.responses.create(model="vx-gemini", input="responses to gemini").output_text
    assert "responses to gemini" in text
    assert vertex.last_request.publisher == "google"
    _assert_bearer(vertex)


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_client_reaches_gemini_on_vertex(stack: GatewayStack, vertex: FakeVertex, stream: bool) -> None:
    client = gemini_client(stack.base_url, "unused")
    if stream:
        text = "".join(c.text or "" for c in client.models.generate_content_stream(model="vx-gemini", contents="gem"))
    else:
        text = client.models.generate_content(model="vx-gemini", contents="gem").text or ""
    assert "gem" in text
    seen = vertex.last_request
    assert seen.publisher == "google" and seen.model == GEMINI
    _assert_bearer(vertex)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_client_reaches_gemini_on_vertex(stack: GatewayStack, vertex: FakeVertex, stream: bool) -> None:
    client = ant(stack)
    messages: Any = [{"role": "user", "content": "messages to gemini"}]
    if stream:
        with client.messages.stream(model="vx-gemini", max_tokens=64, messages=messages) as events:
            text = events.get_final_text()
    else:
        answer = client.messages.create(model="vx-gemini", max_tokens=64, messages=messages)
        text = "".join(b.text for b in answer.content if b.type == "text")
    assert "messages to gemini" in text
    assert vertex.last_request.publisher == "google"


# -- every client API to Claude on Vertex ------------------------------------------------------


THINKING = "interleaved-thinking-2025-05-14"
CLAUDE_CODE_BETAS = f"claude-code-20250219,{THINKING},advanced-tool-use-2025-11-20"  # as Claude Code names them


@pytest.mark.parametrize(
    ("model", "reaching", "dropped"),
    [
        # Vertex AI names Anthropic's tool search beta tool-search-tool-2025-10-19
        ("vx-claude", f"claude-code-20250219,{THINKING},tool-search-tool-2025-10-19", None),
        (
            "vx-claude-narrow",
            THINKING,
            "anthropic-beta:claude-code-20250219,anthropic-beta:advanced-tool-use-2025-11-20",
        ),
        ("vx-pool", f"claude-code-20250219,{THINKING},tool-search-tool-2025-10-19", None),
    ],
    ids=["all", "listed", "pool-attempt"],
)
def test_an_anthropic_clients_betas_reach_claude_on_vertex_as_vertex_names_them_and_as_listed(
    stack: GatewayStack, vertex: FakeVertex, model: str, reaching: str, dropped: str | None
) -> None:
    raw = ant(stack).messages.with_raw_response.create(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "betas"}],
        extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS},
    )
    assert raw.parse().content
    assert vertex.last_request.headers.getall("anthropic-beta") == [reaching]  # one header, the client's gone
    assert raw.headers.get("x-gateway-dropped-features") == dropped


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_client_reaches_claude_on_vertex_by_raw_predict(
    stack: GatewayStack, vertex: FakeVertex, stream: bool
) -> None:
    client = ant(stack)
    messages: Any = [{"role": "user", "content": "hello vertex claude"}]
    if stream:
        with client.messages.stream(model="vx-claude", max_tokens=64, messages=messages) as events:
            text = events.get_final_text()
    else:
        answer = client.messages.create(model="vx-claude", max_tokens=64, messages=messages)
        text = "".join(b.text for b in answer.content if b.type == "text")
    assert "hello vertex claude" in text
    seen = vertex.last_request
    assert seen.path == f"{ROOT}/publishers/anthropic/models/{CLAUDE}:{'streamRawPredict' if stream else 'rawPredict'}"
    assert seen.json["anthropic_version"] == VERTEX_ANTHROPIC_VERSION
    assert "model" not in seen.json
    assert "anthropic-version" not in seen.headers
    _assert_bearer(vertex)


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_reaches_claude_on_vertex(stack: GatewayStack, vertex: FakeVertex, stream: bool) -> None:
    client = oai(stack)
    messages: Any = [{"role": "user", "content": "chat to claude"}]
    if stream:
        chunks = list(client.chat.completions.create(model="vx-claude", messages=messages, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = client.chat.completions.create(model="vx-claude", messages=messages).choices[0].message.content or ""
    assert "chat to claude" in text
    seen = vertex.last_request
    assert seen.publisher == "anthropic" and seen.json["anthropic_version"] == VERTEX_ANTHROPIC_VERSION
    assert "model" not in seen.json
    assert seen.json.get("stream", False) is stream


@pytest.mark.parametrize("stream", [False, True])
def test_responses_and_gemini_clients_reach_claude_on_vertex(
    stack: GatewayStack, vertex: FakeVertex, stream: bool
) -> None:
    client = oai(stack)
    if stream:
        events = list(client.responses.create(model="vx-claude", input="responses to claude", stream=True))
        text = next(e for e in events if e.type == "response.completed").response.output_text
    else:
        text = client.responses.create(model="vx-claude", input="responses to claude").output_text
    assert "responses to claude" in text
    assert vertex.last_request.publisher == "anthropic"
    gem = gemini_client(stack.base_url, "unused")
    if stream:
        text = "".join(c.text or "" for c in gem.models.generate_content_stream(model="vx-claude", contents="g2c"))
    else:
        text = gem.models.generate_content(model="vx-claude", contents="g2c").text or ""
    assert "g2c" in text
    assert vertex.last_request.publisher == "anthropic"


# -- token counts -----------------------------------------------------------------------------


def test_an_anthropic_clients_count_reaches_claudes_count_endpoint_with_the_model_in_the_body(
    stack: GatewayStack, vertex: FakeVertex
) -> None:
    counted = ant(stack).messages.count_tokens(
        model="vx-claude", messages=[{"role": "user", "content": "count these words please"}]
    )
    assert counted.input_tokens > 0
    seen = vertex.last_request
    assert seen.path == f"{ROOT}/publishers/anthropic/models/count-tokens:rawPredict"
    assert seen.json["model"] == CLAUDE and seen.json["anthropic_version"] == VERTEX_ANTHROPIC_VERSION
    assert seen.auth == "valid"


def test_a_responses_clients_count_reaches_gemini_count_tokens_on_vertex(
    stack: GatewayStack, vertex: FakeVertex
) -> None:
    counted = oai(stack).responses.input_tokens.count(model="vx-gemini", input="count these words please")
    assert counted.input_tokens > 0
    seen = vertex.last_request
    assert seen.path == f"{ROOT}/publishers/google/models/{GEMINI}:countTokens"
    assert "contents" in seen.json and "generateContentRequest" not in seen.json  # Vertex's flat request
    assert seen.auth == "valid"


# -- embeddings by :predict ----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "float"])  # None: the SDK asks for base64 and decodes it
def test_openai_embeddings_reach_a_vertex_embedding_model_by_predict(
    stack: GatewayStack, vertex: FakeVertex, encoding: str | None
) -> None:
    inputs = ["the first text", "another one"]
    extra: dict[str, Any] = {"encoding_format": encoding} if encoding else {}
    answer = oai(stack).embeddings.create(model="vx-embed", input=inputs, dimensions=64, **extra)
    vectors = [item.embedding for item in answer.data]
    assert [len(v) for v in vectors] == [64, 64] and vectors[0] != vectors[1]
    assert answer.model == "vx-embed"
    assert answer.usage.prompt_tokens == sum(count_tokens(text) for text in inputs)  # statistics.token_count summed
    seen = vertex.last_request
    assert seen.path == f"{ROOT}/publishers/google/models/{EMBEDDER}:predict"
    assert seen.json == {
        "instances": [{"content": text} for text in inputs],
        "parameters": {"outputDimensionality": 64},
    }
    _assert_bearer(vertex)


def test_a_gemini_clients_task_type_title_and_dimensions_reach_the_predict_instances(
    stack: GatewayStack, vertex: FakeVertex
) -> None:
    config = genai_types.EmbedContentConfig(task_type="RETRIEVAL_DOCUMENT", title="Handbook", output_dimensionality=32)
    client = gemini_client(stack.base_url, "unused")
    answer = client.models.embed_content(model="vx-embed", contents=["chapter one", "chapter two"], config=config)
    assert answer.embeddings is not None and [len(e.values or []) for e in answer.embeddings] == [32, 32]
    seen = vertex.last_request
    assert seen.rpc == "predict" and seen.model == EMBEDDER
    assert seen.json["instances"] == [
        {"content": text, "task_type": "RETRIEVAL_DOCUMENT", "title": "Handbook"}
        for text in ("chapter one", "chapter two")
    ]
    assert seen.json["parameters"] == {"outputDimensionality": 32}
    _assert_bearer(vertex)


def test_a_gemini_clients_single_embed_content_is_answered_in_its_single_shape(
    stack: GatewayStack, vertex: FakeVertex
) -> None:
    body = {"content": {"parts": [{"text": "just one"}]}, "taskType": "RETRIEVAL_QUERY"}
    answer = httpx.post(f"{stack.base_url}/v1beta/models/{GEMINI_EMBEDDER}:embedContent", json=body, timeout=20)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["embedding"]["values"]) == 3072
    seen = vertex.last_request
    assert seen.model == GEMINI_EMBEDDER and seen.json == {
        "instances": [{"content": "just one", "task_type": "RETRIEVAL_QUERY"}]
    }


def test_several_inputs_for_gemini_embedding_001_are_refused_in_each_clients_format_before_vertex(
    stack: GatewayStack, vertex: FakeVertex
) -> None:
    with pytest.raises(openai.BadRequestError) as from_openai:
        oai(stack).embeddings.create(model=GEMINI_EMBEDDER, input=["one", "two"])
    assert from_openai.value.body["param"] == "input"  # type: ignore[index]
    assert "separate requests" in from_openai.value.message
    assert from_openai.value.response.headers["x-request-id"] in from_openai.value.message
    gemini = gemini_client(stack.base_url, "unused")
    with pytest.raises(genai_errors.ClientError) as from_gemini:
        gemini.models.embed_content(model=GEMINI_EMBEDDER, contents=["a", "b"])
    assert from_gemini.value.code == 400 and from_gemini.value.status == "INVALID_ARGUMENT"
    assert "separate requests" in str(from_gemini.value.message)
    assert vertex.requests == []  # refused by the gateway, nothing was sent
    one = oai(stack).embeddings.create(model=GEMINI_EMBEDDER, input="one")
    assert len(one.data) == 1 and vertex.last_request.model == GEMINI_EMBEDDER


def test_a_vertex_error_on_predict_reaches_each_client_in_its_own_format(
    stack: GatewayStack, vertex: FakeVertex
) -> None:
    vertex.enqueue_error(429)
    with pytest.raises(openai.RateLimitError) as limited:
        oai(stack).embeddings.create(model="vx-embed", input="x")
    assert "Resource exhausted" in limited.value.message
    vertex.enqueue_error(400, "Unsupported outputDimensionality 4096 for text-embedding-005.")
    gemini = gemini_client(stack.base_url, "unused")
    with pytest.raises(genai_errors.ClientError) as refused:
        gemini.models.embed_content(
            model="vx-embed", contents="x", config=genai_types.EmbedContentConfig(output_dimensionality=4096)
        )
    assert refused.value.code == 400 and "outputDimensionality 4096" in str(refused.value.message)
    assert [r.rpc for r in vertex.requests] == ["predict", "predict"]


def test_embeddings_for_a_vertex_chat_model_are_a_clear_400_and_nothing_is_sent(
    stack: GatewayStack, vertex: FakeVertex
) -> None:
    for model in ("vx-gemini", "vx-claude"):
        with pytest.raises(openai.BadRequestError) as refused:
            oai(stack).embeddings.create(model=model, input="x")
        assert "no embeddings" in refused.value.message
    assert vertex.requests == []


# -- tools -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["vx-gemini", "vx-claude"])
def test_a_tool_call_round_trips_through_vertex(stack: GatewayStack, vertex: FakeVertex, model: str) -> None:
    client = oai(stack)
    messages: Any = [{"role": "user", "content": "call get_weather for Paris"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    calls = first.choices[0].message.tool_calls or []
    assert calls and calls[0].function.name == "get_weather", first
    assert first.choices[0].finish_reason == "tool_calls"
    sent = vertex.last_request.json
    if model == "vx-claude":
        assert sent["tools"][0]["name"] == "get_weather"
    else:
        assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])  # type: ignore[list-item]
    assert second.choices[0].message.content


# -- errors and failover -----------------------------------------------------------------------


def test_vertex_errors_reach_each_client_in_its_own_format(stack: GatewayStack, vertex: FakeVertex) -> None:
    vertex.enqueue_error(429)
    with pytest.raises(openai.RateLimitError) as limited:
        oai(stack).chat.completions.create(model="vx-gemini", messages=[{"role": "user", "content": "x"}])
    assert limited.value.status_code == 429
    vertex.enqueue_error(400, "Location us-east5 is not supported for this request.")
    with pytest.raises(anthropic.BadRequestError) as refused:
        ant(stack).messages.create(model="vx-gemini", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert "not supported" in refused.value.message
    # Claude's own error passes through to an Anthropic client as Vertex gave it
    vertex.enqueue(anthropic_error(400, "invalid_request_error", "max_tokens: too large", "req_vrtx_1"))
    with pytest.raises(anthropic.BadRequestError) as claude:
        ant(stack).messages.create(model="vx-claude", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert claude.value.body["error"]["message"] == "max_tokens: too large"  # type: ignore[index]
    # Vertex refusing the gateway's token is the operator's fault, never the client's 401
    vertex.enqueue_error(401)
    answer = httpx.post(
        f"{stack.base_url}/v1beta/models/vx-gemini:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
        timeout=20,
    )
    assert answer.status_code == 502
    assert answer.json()["error"]["status"] == "INTERNAL"


def test_a_pool_fails_over_from_claude_on_vertex_to_openai_in_one_request(
    stack: GatewayStack, vertex: FakeVertex, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reset()
    vertex.enqueue_error(503)
    chunks = list(
        oai(stack).chat.completions.create(
            model="vx-pool", messages=[{"role": "user", "content": "fail over"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "fail over" in text
    assert [r.publisher for r in vertex.requests] == ["anthropic"]  # Vertex was tried first
    assert vertex.last_request.auth == "valid"
    seen = fake_openai.last_request
    assert seen.json["model"] == "gpt-4o-mini"
    assert not seen.headers.get("authorization", "").startswith("Bearer ya29.")  # the token stayed with Vertex


def test_the_access_token_is_in_a_private_sds_file_and_never_in_a_log(
    stack: GatewayStack, tokens: FakeGoogleTokens
) -> None:
    secrets = stack.workdir / "xds" / "secrets"
    sds = secrets / "provider_key_vertex.yaml"
    assert sds.stat().st_mode & 0o077 == 0
    held = sds.read_text()
    assert any(t.token in held for t in tokens.issued)  # one this provider minted (vertex-narrow mints its own)
    logs = _logs(stack)
    assert "minted an access token" in logs
    assert not [t.token for t in tokens.issued if t.token in logs]


# -- refresh under load, and a refresh refused, with workload identity (the metadata server) --------

SHORT_LIFETIME_S = 10  # refreshed after 8 s: the test sees two refreshes under traffic


@pytest.fixture(scope="module")
def short_tokens() -> Iterator[FakeGoogleTokens]:
    with FakeGoogleTokens(token_lifetime=SHORT_LIFETIME_S) as server:
        yield server


@pytest.fixture(scope="module")
def short_vertex(short_tokens: FakeGoogleTokens) -> Iterator[FakeVertex]:
    with FakeVertex(short_tokens, projects=[PROJECT]) as server:
        yield server


@pytest.fixture(scope="module")
def short_stack(
    tmp_path_factory: pytest.TempPathFactory,
    short_tokens: FakeGoogleTokens,
    short_vertex: FakeVertex,
    fake_openai: FakeOpenAI,
) -> Iterator[GatewayStack]:
    workdir = Path(tmp_path_factory.mktemp("vertex-refresh"))
    config = {
        "log_level": "info",
        "listeners": [{"name": "main"}],
        "providers": [  # no credentials_file: Application Default Credentials, here the metadata server
            {
                "name": "vx",
                "kind": "vertex",
                "base_url": short_vertex.base_url,
                "vertex": {"project": PROJECT, "location": LOCATION},
            },
            {
                "name": "openai",
                "kind": "openai",
                "base_url": fake_openai.base_url + "/v1",
                "api_key_env": "TEST_OPENAI_KEY",
            },
        ],
        "routes": [
            {"model": "vx-gemini", "provider": "vx", "upstream_model": GEMINI},
            {"model": "vx-claude", "provider": "vx", "upstream_model": CLAUDE},
            {
                "name": "vertex-then-openai",
                "model": "vx-pool",
                "pool": [
                    {"provider": "vx", "model": GEMINI},
                    {"provider": "openai", "priority": 1, "model": "gpt-4o-mini"},
                ],
            },
        ],
    }
    env = {
        **PROVIDER_ENV,
        "GCE_METADATA_HOST": short_tokens.metadata_host,
        "GCE_METADATA_IP": short_tokens.metadata_host,
        "CLOUDSDK_CONFIG": str(workdir / "gcloud"),
    }
    started = GatewayStack(workdir, config, env).start()
    yield started
    started.stop()


def test_tokens_are_refreshed_while_traffic_flows_without_a_restart_or_a_failed_request(
    short_stack: GatewayStack, short_tokens: FakeGoogleTokens, short_vertex: FakeVertex
) -> None:
    pid = short_stack.extproc_process.pid
    first = short_tokens.issue_count
    client, served = oai(short_stack), 0
    deadline = time.monotonic() + 4 * SHORT_LIFETIME_S
    while short_tokens.issue_count < first + 2 and time.monotonic() < deadline:
        model = "vx-claude" if served % 2 else "vx-gemini"
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"n{served}"}])
        assert answer.choices[0].message.content
        served += 1
    assert short_tokens.issue_count >= first + 2, "no two refreshes within four lifetimes"
    assert short_tokens.issued[-1].via == "metadata"
    refused = [r.auth for r in short_vertex.requests if r.auth != "valid"]
    assert not refused and served > 10
    tokens_used = {r.headers["Authorization"] for r in short_vertex.requests}
    assert len(tokens_used) >= 2  # the traffic moved on to a refreshed token
    assert short_stack.extproc_process.pid == pid and short_stack.extproc_process.poll() is None
    logs = _logs(short_stack)
    assert not [t.token for t in short_tokens.issued if t.token in logs]


def test_a_refused_refresh_keeps_the_old_token_then_answers_503_with_retry_after_in_each_format(
    short_stack: GatewayStack, short_tokens: FakeGoogleTokens, short_vertex: FakeVertex
) -> None:
    failures = "gateway_credential_refresh_failures_total"
    before = metric_sum(short_stack, failures, 'provider="vx"')
    issued = short_tokens.issue_count
    assert wait_until(lambda: short_tokens.issue_count > issued, SHORT_LIFETIME_S + 5)  # a fresh token
    short_tokens.refuse_grants = True
    current = short_tokens.issued[-1]
    try:
        ok = oai(short_stack).chat.completions.create(model="vx-gemini", messages=[{"role": "user", "content": "a"}])
        assert ok.choices[0].message.content
        # The refresh at 80% is refused and counted; the old token still serves until it expires
        assert wait_until(lambda: metric_sum(short_stack, failures, 'provider="vx"') > before, SHORT_LIFETIME_S)
        if time.time() < current.expires_at - 1.5:
            still = ant(short_stack).messages.create(
                model="vx-claude", max_tokens=8, messages=[{"role": "user", "content": "b"}]
            )
            assert still.content
        assert wait_until(lambda: time.time() > current.expires_at, SHORT_LIFETIME_S)
        sent = len(short_vertex.requests)
        _assert_503_in_every_format(short_stack)
        assert len(short_vertex.requests) == sent  # no request went out with the expired token
        # A pool moves on to its next provider
        pooled = oai(short_stack).chat.completions.create(
            model="vx-pool", messages=[{"role": "user", "content": "pool without a token"}]
        )
        assert "pool without a token" in (pooled.choices[0].message.content or "")
        assert len(short_vertex.requests) == sent
    finally:
        short_tokens.refuse_grants = False
    assert wait_until(lambda: _chat_ok(short_stack), 45, interval=0.5), "no token after the endpoint came back"
    assert short_vertex.last_request.auth == "valid"
    logs = _logs(short_stack)
    assert "refreshing the provider's access token failed" in logs
    assert not [t.token for t in short_tokens.issued if t.token in logs]


def _logs(stack: GatewayStack) -> str:
    """Everything the ext_proc and Envoy wrote, whole."""
    return "".join((stack.workdir / name).read_text(errors="replace") for name in ("extproc.log", "envoy.log"))


def _chat_ok(stack: GatewayStack) -> bool:
    answer = httpx.post(
        f"{stack.base_url}/v1/chat/completions",
        json={"model": "vx-gemini", "messages": [{"role": "user", "content": "back?"}]},
        timeout=20,
    )
    return answer.status_code == 200


def _assert_503_in_every_format(stack: GatewayStack) -> None:
    messages: Any = [{"role": "user", "content": "expired"}]
    with pytest.raises(openai.APIStatusError) as chat:
        oai(stack).chat.completions.create(model="vx-gemini", messages=messages)
    assert chat.value.status_code == 503
    assert chat.value.body["code"] == "provider_credential_expired"  # type: ignore[index]
    assert int(chat.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.APIStatusError) as responses:
        oai(stack).responses.create(model="vx-claude", input="expired")
    assert responses.value.status_code == 503 and "retry-after" in responses.value.response.headers
    with pytest.raises(anthropic.APIStatusError) as messages_api:
        ant(stack).messages.create(model="vx-claude", max_tokens=8, messages=messages)
    assert messages_api.value.status_code == 503
    assert messages_api.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert "retry-after" in messages_api.value.response.headers
    gemini = httpx.post(
        f"{stack.base_url}/v1beta/models/vx-gemini:streamGenerateContent?alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": "expired"}]}]},
        timeout=20,
    )
    assert gemini.status_code == 503 and int(gemini.headers["retry-after"]) >= 1
    assert gemini.json()["error"]["status"] == "UNAVAILABLE"
    assert "access token" in gemini.json()["error"]["message"]


# -- a pool Bedrock -> Vertex -> OpenAI, failing over inside one streamed request -----------------

NOVA = "us.amazon.nova-micro-v1:0"
AWS_CREDENTIALS = AwsCredentials("AKIDPOOLKEY00001", "pool/secret+key000000000000000000000000000")
CLIENT_KEY = "client-own-key-0001"
AWS_SIGNING = ("x-amz-date", "x-amz-content-sha256", "x-amz-security-token")
FAILOVERS = "gateway_failovers_total"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(AWS_CREDENTIALS, models=[NOVA]) as fake:
        yield fake


@pytest.fixture(scope="module")
def pool_stack(
    tmp_path_factory: pytest.TempPathFactory,
    bedrock: FakeBedrock,
    tokens: FakeGoogleTokens,
    vertex: FakeVertex,
    fake_openai: FakeOpenAI,
) -> Iterator[GatewayStack]:
    """Bedrock (signed by Envoy) -> Vertex -> OpenAI, in one pool."""
    workdir = Path(tmp_path_factory.mktemp("bedrock-vertex-openai"))
    aws_file = workdir / "aws-credentials"
    write_credentials_file(aws_file, AWS_CREDENTIALS)
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
            _vertex_provider(workdir, tokens, vertex),
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
            },
            {
                "name": "embed-vertex-then-openai",
                "model": "embed",
                "pool": [
                    {"provider": "vertex", "model": EMBEDDER},
                    {"provider": "openai", "priority": 1, "model": "text-embedding-3-small"},
                ],
            },
        ],
    }
    started = _started(workdir, config)
    yield started
    started.stop()


@pytest.fixture
def pool(pool_stack: GatewayStack, bedrock: FakeBedrock, fake_openai: FakeOpenAI) -> GatewayStack:
    bedrock.reset()
    fake_openai.reset()
    return pool_stack


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
    pool: GatewayStack, bedrock: FakeBedrock, vertex: FakeVertex, fake_openai: FakeOpenAI
) -> None:
    failovers = metric_sum(pool, FAILOVERS, 'provider="vertex"')
    bedrock.enqueue_error("ThrottlingException")  # a 429
    client = openai.OpenAI(api_key=CLIENT_KEY, base_url=pool.base_url + "/v1", max_retries=0, timeout=30)
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
    assert metric_sum(pool, FAILOVERS, 'provider="vertex"') == failovers + 1


def test_when_bedrock_and_vertex_both_fail_openai_answers_the_stream_with_only_its_own_key(
    pool: GatewayStack, bedrock: FakeBedrock, vertex: FakeVertex, fake_openai: FakeOpenAI
) -> None:
    failovers = metric_sum(pool, FAILOVERS, 'provider="openai"')
    bedrock.enqueue_error("ServiceUnavailableException")  # a 503
    vertex.enqueue_error(503)
    client = anthropic.Anthropic(api_key=CLIENT_KEY, base_url=pool.base_url, max_retries=0, timeout=30)
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
    assert metric_sum(pool, FAILOVERS, 'provider="openai"') == failovers + 1


def test_a_pooled_embeddings_request_is_made_for_vertex_by_predict_and_fails_over_to_openai(
    pool: GatewayStack, vertex: FakeVertex, fake_openai: FakeOpenAI
) -> None:
    client = openai.OpenAI(api_key=CLIENT_KEY, base_url=pool.base_url + "/v1", max_retries=0, timeout=30)
    first = client.embeddings.create(model="embed", input=["pooled text"], dimensions=8)
    assert len(first.data[0].embedding) == 8 and first.usage.prompt_tokens == count_tokens("pooled text")
    assert vertex.last_request.rpc == "predict"
    assert vertex.last_request.json == {
        "instances": [{"content": "pooled text"}],
        "parameters": {"outputDimensionality": 8},
    }
    _assert_bearer_for_vertex_only(vertex)
    assert fake_openai.requests == []
    vertex.enqueue_error(503)
    second = client.embeddings.create(model="embed", input=["pooled text"], dimensions=8)
    assert len(second.data[0].embedding) == 8
    (attempt,) = fake_openai.requests
    assert attempt.path == "/v1/embeddings" and attempt.json["model"] == "text-embedding-3-small"
    assert _headers(attempt)["authorization"] == f"Bearer {OPENAI_KEY}"
