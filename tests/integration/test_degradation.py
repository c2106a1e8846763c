"""Features a provider lacks: adapted, dropped (and named in a header) or rejected."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import AZURE_API_VERSION, OPENAI_KEY
from tests.fakes.providers import FakeGemini, FakeOpenAI
from tests.integration.sdk_outcomes import openai_client
from tests.integration.test_openai_gateway import TOOLS
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

DROPPED = "x-gateway-dropped-features"
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.fixture
def client(gateway: GatewayStack) -> openai.OpenAI:
    return openai_client(gateway.base_url)


def test_tools_are_dropped_and_named_when_the_provider_has_none(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="basic-1", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS
    )
    assert "tools" in raw.headers[DROPPED].split(",")
    assert raw.parse().choices[0].message.content
    assert "tools" not in fake_openai.requests[-1].json


def test_tools_are_rejected_with_400_naming_the_feature_under_reject_policy(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    before = len(fake_openai.requests)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="strict-1", messages=[{"role": "user", "content": "x"}], tools=TOOLS)
    assert raised.value.param == "tools"
    assert "tools" in raised.value.message
    assert len(fake_openai.requests) == before


def test_images_are_removed_for_a_text_only_provider(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="basic-1", messages=[{"role": "user", "content": [{"type": "text", "text": "what is it?"}, IMAGE]}]
    )
    assert raw.headers[DROPPED] == "images"
    sent = fake_openai.requests[-1].json["messages"][0]["content"]
    assert "image_url" not in str(sent)
    assert "what is it?" in str(sent)


def test_json_schema_becomes_json_mode_and_max_tokens_is_capped(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    raw = client.chat.completions.with_raw_response.create(
        model="basic-1", messages=[{"role": "user", "content": "json"}], response_format=schema, max_tokens=1000
    )
    assert raw.headers[DROPPED] == "json_schema"
    sent = fake_openai.requests[-1].json
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent.get("max_completion_tokens") or sent.get("max_tokens")) == 50


def test_stream_is_served_from_a_whole_answer_when_the_provider_cannot_stream(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    whole = client.chat.completions.create(model="basic-1", messages=[{"role": "user", "content": "tell me"}])
    chunks = list(
        client.chat.completions.create(model="basic-1", messages=[{"role": "user", "content": "tell me"}], stream=True)
    )
    assert not fake_openai.requests[-1].json.get("stream")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_features_the_target_format_lacks_are_reported(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude-test-1", messages=[{"role": "user", "content": "x"}], seed=7, presence_penalty=0.5
    )
    assert set(raw.headers[DROPPED].split(",")) == {"seed", "presence_penalty"}


def test_azure_openai_gets_deployment_path_api_version_and_api_key_header(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    answer = client.chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "hi azure"}])
    assert "hi azure" in answer.choices[0].message.content
    seen = fake_openai.requests[-1]
    assert seen.path == "/openai/deployments/azure-gpt/chat/completions"
    assert seen.query["api-version"] == AZURE_API_VERSION
    assert seen.headers["api-key"] == OPENAI_KEY
    assert "authorization" not in seen.headers


@pytest.mark.parametrize("alt", ["?alt=sse", ""])
def test_gemini_stream_from_a_provider_that_cannot_stream(gateway: GatewayStack, alt: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "stream it"}]}]}
    response = httpx.post(f"{gateway.base_url}/v1beta/models/basic-1:streamGenerateContent{alt}", json=body, timeout=20)
    assert response.status_code == 200
    if alt:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = [json.loads(line[6:]) for line in response.text.split("\r\n") if line.startswith("data: ")]
    else:
        assert response.headers["content-type"].startswith("application/json")
        chunks = json.loads(response.text)
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert "stream it" in text
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_a_gemini_client_streaming_without_alt_sse_gets_geminis_json_array_from_a_gemini_provider(
    gateway: GatewayStack, fake_gemini: FakeGemini
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "array please"}]}]}
    url = f"{gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    response = httpx.post(url, json=body, timeout=20)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.startswith("[") and response.text.rstrip().endswith("]")
    chunks = json.loads(response.text)
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert "array please" in text and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    seen = fake_gemini.requests[-1]
    assert seen.path.endswith(":streamGenerateContent") and "alt" not in seen.query  # asked as the client asked
