"""Vertex AI through the real Envoy: every client API (Chat Completions, Responses, Messages,
generateContent) reaches Gemini on publishers/google and Claude on publishers/anthropic, plain and
streamed, with tools; the OAuth2 access token is minted by the gateway from a service-account key
(a fake Google token endpoint), injected by Envoy, refreshed under load without a restart, and a
refresh that keeps failing ends in a 503 with retry-after in each client's format once it expires."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.google_auth import FakeGoogleTokens
from tests.fakes.openai import FakeOpenAI
from tests.fakes.providers import FakeGemini
from tests.fakes.vertex import VERTEX_ANTHROPIC_VERSION, FakeVertex
from tests.integration.sdk_outcomes import gemini_client
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

PROJECT = "fake-project"
LOCATION = "us-east5"
GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4@20250514"
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
    key_file = tokens.write_key_file(workdir / "service-account.json")
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["providers"].append(
        {
            "name": "vertex",
            "kind": "vertex",
            "base_url": vertex.base_url,
            "vertex": {"project": PROJECT, "location": LOCATION, "credentials_file": str(key_file)},
        }
    )
    config["routes"] = [
        {"model": "vx-gemini", "provider": "vertex", "upstream_model": GEMINI},
        {"model": "vx-claude", "provider": "vertex", "upstream_model": CLAUDE},
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
    # No ambient Google credentials: the key file is the only way in
    env = {**PROVIDER_ENV, "GOOGLE_APPLICATION_CREDENTIALS": "", "CLOUDSDK_CONFIG": str(workdir / "gcloud")}
    started = GatewayStack(workdir, config, env).start()
    yield started
    started.stop()


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
