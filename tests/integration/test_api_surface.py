"""Each API's own surface through the gateway: model listings, embeddings, Gemini's JSON-array
stream, streams cut by the client, and errors written mid-stream."""

from __future__ import annotations

import json
import threading

import httpx
import openai
import pytest
from google.genai import types

from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI, Reply
from tests.integration.sdk_outcomes import anthropic_client, gemini_client, openai_client
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_model_listing_in_each_apis_own_shape(gateway: GatewayStack) -> None:
    assert "mock-1" in [m.id for m in openai_client(gateway.base_url).models.list()]
    assert "mock-1" in [m.id for m in anthropic_client(gateway.base_url).models.list()]
    gemini = gemini_client(gateway.base_url)  # keep a reference: the SDK closes an unreferenced client
    gemini_names = [m.name for m in gemini.models.list()]
    assert "models/mock-1" in gemini_names


@pytest.mark.parametrize("model", ["gpt-embed", "gemini-embed", "mock-1"])
def test_openai_embeddings_from_every_provider_kind(gateway: GatewayStack, model: str) -> None:
    answer = openai_client(gateway.base_url).embeddings.create(model=model, input=["alpha", "beta"])
    assert len(answer.data) == 2
    assert len(answer.data[0].embedding) > 0
    assert answer.data[0].embedding != answer.data[1].embedding


@pytest.mark.parametrize("model", ["gpt-embed", "gemini-embed", "mock-1"])
def test_openai_embeddings_honour_base64_and_name_the_model(gateway: GatewayStack, model: str) -> None:
    body = {"model": model, "input": ["alpha"], "encoding_format": "base64"}
    answer = httpx.post(gateway.base_url + "/v1/embeddings", json=body, timeout=20).json()
    assert isinstance(answer["data"][0]["embedding"], str)
    assert answer["model"]


def test_embeddings_for_a_provider_without_them_is_a_clear_400(gateway: GatewayStack) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(gateway.base_url).embeddings.create(model="claude-test-1", input="x")
    assert "no embeddings" in raised.value.message


def test_gemini_embed_content_served_by_openai_provider(gateway: GatewayStack, fake_openai: FakeOpenAI) -> None:
    client = gemini_client(gateway.base_url)
    answer = client.models.embed_content(model="gpt-embed", contents=["hello world"])
    assert answer.embeddings and len(answer.embeddings[0].values) > 0
    assert fake_openai.requests[-1].path == "/v1/embeddings"
    assert fake_openai.requests[-1].json["input"] == ["hello world"]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-test-1", "mock-1"])
def test_gemini_stream_without_alt_sse_is_a_json_array(gateway: GatewayStack, model: str) -> None:
    response = httpx.post(
        f"{gateway.base_url}/v1beta/models/{model}:streamGenerateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "array please"}]}]},
        timeout=20,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    chunks = json.loads(response.content)
    assert isinstance(chunks, list) and chunks
    text = "".join(p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_client_disconnect_closes_the_provider_stream(gateway: GatewayStack, fake_anthropic: FakeAnthropic) -> None:
    """An OpenAI client streaming from Anthropic (translated chunk by chunk) hangs up early."""
    start = b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-test-1","content":[],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
    block = b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    delta = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word "}}\n\n'
    gone = threading.Event()  # the rest of the stream waits until the client has hung up
    chunks = [start, block, delta, delta]
    fake_anthropic.enqueue(
        Reply(content_type="text/event-stream; charset=utf-8", chunks=chunks, hold_at_chunk=3, release=gone)
    )
    body = {"model": "claude-test-1", "stream": True, "messages": [{"role": "user", "content": "long story"}]}
    disconnects = fake_anthropic.stream_disconnects
    try:
        with (
            httpx.Client(timeout=20) as http,
            http.stream("POST", gateway.base_url + "/v1/chat/completions", json=body) as response,
        ):
            assert response.status_code == 200
            first = next(response.iter_bytes())
            assert first.startswith(b"data: ")
    finally:
        gone.set()
    assert wait_until(lambda: fake_anthropic.stream_disconnects > disconnects, timeout=10)
    assert wait_until(lambda: _active_router_streams(gateway) == 0, timeout=10)  # nothing left behind


def _active_router_streams(gateway: GatewayStack) -> float:
    metrics = httpx.get(gateway.admin_url + "/metrics").text
    line = next(line for line in metrics.splitlines() if line.startswith('gateway_active_streams{pass_="router"}'))
    return float(line.rsplit(" ", 1)[1])


def test_provider_error_mid_stream_becomes_an_in_band_error_and_a_clean_end(
    gateway: GatewayStack, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue_fixture("gemini/stream-error-mid-stream.response.sse")
    body = {"model": "gemini-2.5-flash", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    response = httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=20)
    assert response.status_code == 200
    frames = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    errors = [json.loads(f)["error"] for f in frames[:-1] if '"error"' in f and f.startswith('{"error"')]
    assert errors and errors[0]["message"]
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for f in frames[:-1]
        if not f.startswith('{"error"')
        for c in [json.loads(f)]
        if c.get("choices")
    )
    assert text == "First Second "


def test_anthropic_client_may_send_its_key_as_x_api_key_or_bearer(
    gateway: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    body = {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    for headers in ({"x-api-key": "client-k"}, {"authorization": "Bearer client-k"}):
        response = httpx.post(
            gateway.base_url + "/v1/messages", json=body, headers={**headers, "anthropic-version": "2023-06-01"}
        )
        assert response.status_code == 200
        assert response.json()["type"] == "message"
        assert "client-k" not in str(dict(fake_openai.requests[-1].headers))


def test_gemini_config_options_reach_an_openai_provider(gateway: GatewayStack, fake_openai: FakeOpenAI) -> None:
    client = gemini_client(gateway.base_url)
    config = types.GenerateContentConfig(temperature=0.3, max_output_tokens=40, stop_sequences=["END"])
    answer = client.models.generate_content(model="gpt-4o-mini", contents="configured", config=config)
    assert answer.text
    sent = fake_openai.requests[-1].json
    assert sent["temperature"] == 0.3
    assert sent["stop"] == ["END"]


@pytest.mark.parametrize("model", ["gpt-embed", "mock-1"])
def test_gemini_single_embed_content_answers_the_single_shape(gateway: GatewayStack, model: str) -> None:
    body = {"content": {"parts": [{"text": "one text"}]}, "taskType": "RETRIEVAL_DOCUMENT"}
    response = httpx.post(f"{gateway.base_url}/v1beta/models/{model}:embedContent", json=body, timeout=20)
    assert response.status_code == 200, response.text
    values = response.json()["embedding"]["values"]
    assert values and all(isinstance(v, float) for v in values)


def test_same_api_passthrough_keeps_every_field_the_client_sent(
    gateway: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    """Fields the canonical model does not carry still reach a provider of the client's own API."""
    openai_body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "logprobs": True,
        "metadata": {"team": "search"},
        "store": False,
    }
    assert httpx.post(gateway.base_url + "/v1/chat/completions", json=openai_body, timeout=20).status_code == 200
    assert fake_openai.requests[-1].json == openai_body

    block = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    anthropic_body = {"model": "claude-test-1", "max_tokens": 20, "messages": [{"role": "user", "content": [block]}]}
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"}
    response = httpx.post(gateway.base_url + "/v1/messages", json=anthropic_body, headers=headers, timeout=20)
    assert response.status_code == 200
    assert fake_anthropic.requests[-1].json == anthropic_body
    assert fake_anthropic.requests[-1].headers["anthropic-beta"] == "prompt-caching-2024-07-31"

    gemini_body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}],
    }
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert httpx.post(gateway.base_url + path, json=gemini_body, timeout=20).status_code == 200
    assert fake_gemini.requests[-1].json == gemini_body
    assert fake_gemini.requests[-1].path == path


def test_route_alias_sends_the_providers_model_name(
    gateway: GatewayStack, fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    body = {"model": "alias-gpt", "messages": [{"role": "user", "content": "hi"}], "store": False}
    assert httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=20).status_code == 200
    assert fake_openai.requests[-1].json == {**body, "model": "gpt-4o-real"}
    gemini = {"contents": [{"parts": [{"text": "hi"}]}]}
    response = httpx.post(gateway.base_url + "/v1beta/models/alias-gemini:generateContent", json=gemini, timeout=20)
    assert response.status_code == 200
    assert fake_gemini.requests[-1].path == "/v1beta/models/gemini-real:generateContent"
    translated = {"model": "alias-gemini", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(gateway.base_url + "/v1/chat/completions", json=translated, timeout=20).status_code == 200
    assert fake_gemini.requests[-1].path == "/v1beta/models/gemini-real:generateContent"
