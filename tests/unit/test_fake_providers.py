"""The fake providers speak the real OpenAI, Anthropic and Gemini wire formats.

Two kinds of proof:
- every recorded response in shared/fixtures, replayed by a fake, parses with
  the official SDK exactly as the recording says and arrives byte-exact;
- the fakes' own default answers parse with the same SDKs and have the same
  framing and the same fields as the recordings.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import anthropic
import openai
import orjson
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.fakes.providers import (
    FakeAnthropic,
    FakeGemini,
    FakeOpenAI,
    FakeProvider,
    Reply,
    split_sse_events,
    wait_until,
)
from tests.support.fixtures import (
    fixture_bytes,
    fixture_content_type,
    fixture_json,
    fixture_status,
    fixtures_available,
    require_fixtures,
    response_fixtures,
)

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GEMINI_MODEL = "gemini-2.5-flash"

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["location"],
}
OPENAI_TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
ANTHROPIC_TOOLS: Any = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]


# --------------------------------------------------------------------------
# Servers, clients and plain HTTP
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeProvider]]:
    fakes: dict[str, FakeProvider] = {"openai": FakeOpenAI(), "anthropic": FakeAnthropic(), "gemini": FakeGemini()}
    for fake in fakes.values():
        fake.start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture
def fakes(servers: dict[str, FakeProvider]) -> dict[str, FakeProvider]:
    for fake in servers.values():
        fake.reset()
    return servers


@pytest.fixture
def fake_openai(fakes: dict[str, FakeProvider]) -> FakeProvider:
    return fakes["openai"]


@pytest.fixture
def fake_anthropic(fakes: dict[str, FakeProvider]) -> FakeProvider:
    return fakes["anthropic"]


@pytest.fixture
def fake_gemini(fakes: dict[str, FakeProvider]) -> FakeProvider:
    return fakes["gemini"]


# SDK clients are cached per (base URL, key): building one costs tens of ms
# (google-genai: ~0.2 s for its SSL contexts), and the cache also keeps each
# genai.Client referenced, since google-genai closes its HTTP client when the
# Client object is garbage collected.


# The fakes answer at once: a client's bound matters only to a test that fails, and on a loaded
# machine one of these exchanges once took longer than 5 s.
PATIENT_S = 30.0


@cache
def _openai_client(base_url: str, api_key: str, timeout: float) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=f"{base_url}/v1", max_retries=0, timeout=timeout)


@cache
def _anthropic_client(base_url: str, api_key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=PATIENT_S)


@cache
def _gemini_client(base_url: str, api_key: str) -> genai.Client:
    options = genai_types.HttpOptions(base_url=base_url, timeout=int(PATIENT_S * 1000))  # milliseconds
    return genai.Client(api_key=api_key, http_options=options)


def openai_client(fake: FakeProvider, timeout: float = PATIENT_S) -> openai.OpenAI:
    return _openai_client(fake.base_url, fake.api_key, timeout)


def anthropic_client(fake: FakeProvider) -> anthropic.Anthropic:
    return _anthropic_client(fake.base_url, fake.api_key)


def gemini_client(fake: FakeProvider, api_key: str | None = None) -> genai.Client:
    return _gemini_client(fake.base_url, api_key or fake.api_key)


AUTH_HEADERS = {
    "openai": lambda key: {"Authorization": f"Bearer {key}"},
    "anthropic": lambda key: {"x-api-key": key, "anthropic-version": "2023-06-01"},
    "gemini": lambda key: {"x-goog-api-key": key},
}


@dataclass
class RawResponse:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def raw_request(
    fake: FakeProvider, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> RawResponse:
    """Plain HTTP/1.1: the body comes back exactly as sent (chunking undone)."""
    payload = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=PATIENT_S)
    try:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        return RawResponse(response.status, response.headers, response.read())
    finally:
        conn.close()


def raw_call(fake: FakeProvider, path: str, body: Any) -> RawResponse:
    """POST with the provider's own valid credentials."""
    return raw_request(fake, "POST", path, body, AUTH_HEADERS[fake.name](fake.api_key))


def fixture_params(provider: str) -> list[str]:
    # With no fixtures, one placeholder keeps the test visible as skipped
    # with the fixtures message (fixture_bytes skips on a missing file).
    return response_fixtures(provider) or [f"{provider}/(fixtures missing)"]


def keys(obj: dict[str, Any]) -> set[str]:
    return set(obj)


# --------------------------------------------------------------------------
# Reference decoders: what a recording holds, read without any SDK
# --------------------------------------------------------------------------


def sse_blocks(body: bytes) -> list[str]:
    """Events of an SSE body, either line ending; a final event without a
    trailing blank line counts too."""
    return [block for block in re.split(r"\r?\n\r?\n", body.decode()) if block.strip()]


def sse_data(body: bytes) -> list[str]:
    events = []
    for block in sse_blocks(body):
        lines = [line for line in block.splitlines() if line.startswith("data:")]
        if lines:
            events.append("\n".join(line[5:].removeprefix(" ") for line in lines))
    return events


def openai_summary_of_dict(completion: dict[str, Any]) -> dict[str, Any]:
    choice = completion["choices"][0]
    message = choice["message"]
    calls = [
        (call["id"], call["function"]["name"], call["function"]["arguments"])
        for call in message.get("tool_calls") or []
    ]
    return {
        "text": message.get("content"),
        "calls": calls,
        "finish": choice["finish_reason"],
        "usage": completion.get("usage"),
    }


def openai_summary_of_stream(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text, finish, usage = "", None, None
    calls: dict[int, list[str]] = {}
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            finish = choice.get("finish_reason") or finish
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], ["", "", ""])
                function = call.get("function") or {}
                entry[0] = call.get("id") or entry[0]
                entry[1] = function.get("name") or entry[1]
                entry[2] += function.get("arguments") or ""
    return {"text": text, "calls": [tuple(calls[i]) for i in sorted(calls)], "finish": finish, "usage": usage}


def openai_stream_dicts(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(data) for data in sse_data(body) if data != "[DONE]"]


def anthropic_summary_of_dict(message: dict[str, Any]) -> dict[str, Any]:
    blocks = []
    for block in message["content"]:
        if block["type"] == "text":
            blocks.append(("text", block["text"]))
        elif block["type"] == "tool_use":
            blocks.append(("tool_use", block["id"], block["name"], block["input"]))
        elif block["type"] == "thinking":
            blocks.append(("thinking", block["thinking"], block["signature"]))
        elif block["type"] == "redacted_thinking":
            blocks.append(("redacted_thinking", block["data"]))
        else:
            blocks.append((block["type"],))  # a kind this summary does not know still has to match
    usage = message["usage"]
    return {
        "blocks": blocks,
        "stop_reason": message["stop_reason"],
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
    }


def anthropic_message_from_events(body: bytes) -> dict[str, Any]:
    """Accumulate a Messages stream into the message it describes."""
    message: dict[str, Any] = {}
    partial_json: dict[int, str] = {}
    for data in sse_data(body):
        event = json.loads(data)
        kind = event["type"]
        if kind == "message_start":
            message = event["message"]
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial_json[event["index"]] = partial_json.get(event["index"], "") + delta["partial_json"]
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["usage"]["output_tokens"] = event["usage"]["output_tokens"]
    for index, raw in partial_json.items():
        message["content"][index]["input"] = json.loads(raw or "{}")
    return message


def anthropic_summary_of_sdk(message: anthropic.types.Message) -> dict[str, Any]:
    return anthropic_summary_of_dict(message.model_dump())


def gemini_summary_of_dicts(responses: list[dict[str, Any]]) -> dict[str, Any]:
    text, calls, finish, usage, blocked = "", [], None, {}, None
    for response in responses:
        candidates = response.get("candidates") or [{}]
        parts = (candidates[0].get("content") or {}).get("parts") or []
        text += "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        calls += [(p["functionCall"]["name"], p["functionCall"]["args"]) for p in parts if "functionCall" in p]
        finish = candidates[0].get("finishReason") or finish
        meta = response.get("usageMetadata") or {}
        usage = {
            "prompt": meta.get("promptTokenCount"),
            "candidates": meta.get("candidatesTokenCount"),
            "total": meta.get("totalTokenCount"),
            "thoughts": meta.get("thoughtsTokenCount"),
        }
        blocked = (response.get("promptFeedback") or {}).get("blockReason") or blocked
    return {"text": text, "calls": calls, "finish": finish, "usage": usage, "blocked": blocked}


def gemini_summary_of_sdk(responses: list[genai_types.GenerateContentResponse]) -> dict[str, Any]:
    dicts = [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in responses]
    return gemini_summary_of_dicts(dicts)


def gemini_stream_fixture(body: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The data events of a Gemini stream, plus the bare JSON error object the
    API writes (without ``data:``) when a stream fails midway."""
    events, error = [], None
    for block in sse_blocks(body):
        if block.startswith("data:"):
            events.append(json.loads("\n".join(line[5:] for line in block.splitlines())))
        else:
            error = json.loads(block)["error"]
    return events, error


def collect(iterator: Iterator[Any]) -> tuple[list[Any], Exception | None]:
    """Items of an SDK stream, and the error that ended it, if any."""
    items: list[Any] = []
    try:
        for item in iterator:
            items.append(item)
    except Exception as error:
        return items, error
    return items, None


def gemini_sdk_parse_elements(
    fake: FakeProvider, elements: list[dict[str, Any]]
) -> list[genai_types.GenerateContentResponse]:
    """Parse JSON-array stream elements with the SDK's own stream parser."""
    frames = [b"data: " + orjson.dumps(element) + b"\r\n\r\n" for element in elements]
    fake.enqueue(Reply(content_type="text/event-stream", chunks=frames))
    client = gemini_client(fake)
    return list(client.models.generate_content_stream(model=GEMINI_MODEL, contents="x"))


# --------------------------------------------------------------------------
# Fixture helpers in tests/support
# --------------------------------------------------------------------------


def test_fixture_helpers_skip_with_fixtures_message_when_file_missing() -> None:
    with pytest.raises(pytest.skip.Exception, match="set GATEWAY_FIXTURES"):
        fixture_bytes("openai/no-such-file.json")


def test_fixture_status_uses_index_then_error_code_then_200() -> None:
    require_fixtures()
    assert fixture_status("openai/error-404-unknown-model.response.json") == 404
    assert fixture_status("gemini/error-429-quota.response.json") == 429
    assert fixture_status("gemini/error-400-api-key.response.json") == 400
    # A stream that fails midway still started with 200.
    assert fixture_status("gemini/stream-error-mid-stream.response.sse") == 200
    assert fixture_status("gemini/generate-basic.response.json") == 200
    assert fixture_content_type("gemini/stream-basic.response.sse") == "text/event-stream"
    assert fixture_content_type("gemini/generate-basic.response.json") == "application/json; charset=UTF-8"
    assert fixture_content_type("anthropic/stream-basic.response.sse") == "text/event-stream; charset=utf-8"


# --------------------------------------------------------------------------
# Recorded responses replayed: byte-exact over plain HTTP
# --------------------------------------------------------------------------


def replay_path(rel: str) -> str:
    provider = rel.split("/", 1)[0]
    if provider == "openai":
        return "/v1/chat/completions"
    if provider == "anthropic":
        return "/v1/messages"
    if rel.endswith(".sse"):
        return f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"
    if "stream" in rel:
        return f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent"
    return f"/v1beta/models/{GEMINI_MODEL}:generateContent"


@pytest.mark.parametrize("rel", fixture_params("openai") + fixture_params("anthropic") + fixture_params("gemini"))
def test_replayed_fixture_arrives_byte_exact_with_recorded_status_and_content_type(
    fakes: dict[str, FakeProvider], rel: str
) -> None:
    expected = fixture_bytes(rel)
    fake = fakes[rel.split("/", 1)[0]]
    fake.enqueue_fixture(rel)
    raw = raw_request(fake, "POST", replay_path(rel), {})
    assert raw.body == expected
    assert raw.status == fixture_status(rel)
    assert raw.headers["Content-Type"] == fixture_content_type(rel)


def test_fixture_cut_at_odd_byte_offsets_is_still_byte_exact_and_parses(fake_openai: FakeProvider) -> None:
    rel = "openai/chat-streaming-usage.response.sse"
    expected = fixture_bytes(rel)
    fake_openai.enqueue_fixture(rel, chunk_sizes=[1, 7, 13, 50])
    assert raw_request(fake_openai, "POST", "/v1/chat/completions", {}).body == expected

    fake_openai.enqueue_fixture(rel, chunk_sizes=[3, 5, 200, 2])
    stream = openai_client(fake_openai).chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [chunk.model_dump(exclude_none=True) for chunk in stream]
    assert len(chunks) == len(openai_stream_dicts(expected))
    assert openai_summary_of_stream(chunks) == openai_summary_of_stream(openai_stream_dicts(expected))


# --------------------------------------------------------------------------
# Recorded responses replayed: each official SDK parses them
# --------------------------------------------------------------------------

OPENAI_ERRORS = {400: openai.BadRequestError, 401: openai.AuthenticationError, 404: openai.NotFoundError}
ANTHROPIC_ERRORS = {400: anthropic.BadRequestError, 401: anthropic.AuthenticationError, 404: anthropic.NotFoundError}


@pytest.mark.parametrize("rel", fixture_params("openai"))
def test_openai_sdk_parses_recorded_response_replayed_by_fake(fake_openai: FakeProvider, rel: str) -> None:
    body, status = fixture_bytes(rel), fixture_status(rel)
    fake_openai.enqueue_fixture(rel)
    client = openai_client(fake_openai)
    request: Any = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}]}

    if rel.endswith(".sse"):
        stream = client.chat.completions.create(**request, stream=True)
        chunks = [chunk.model_dump(exclude_none=True) for chunk in stream]
        assert openai_summary_of_stream(chunks) == openai_summary_of_stream(openai_stream_dicts(body))
    elif status >= 400:
        error = orjson.loads(body)["error"]
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(**request)
        assert type(caught.value) is OPENAI_ERRORS[status]
        assert caught.value.status_code == status
        assert caught.value.code == error["code"]
        assert error["message"] in caught.value.message
    else:
        completion = client.chat.completions.create(**request)
        assert openai_summary_of_dict(completion.model_dump(exclude_none=True)) == (
            openai_summary_of_dict(orjson.loads(body))
        )


@pytest.mark.parametrize("rel", fixture_params("anthropic"))
def test_anthropic_sdk_parses_recorded_response_replayed_by_fake(fake_anthropic: FakeProvider, rel: str) -> None:
    body, status = fixture_bytes(rel), fixture_status(rel)
    fake_anthropic.enqueue_fixture(rel)
    client = anthropic_client(fake_anthropic)
    request: Any = {"model": ANTHROPIC_MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}

    if rel.endswith(".sse"):
        with client.messages.stream(**request) as stream:
            message = stream.get_final_message()
        assert anthropic_summary_of_sdk(message) == anthropic_summary_of_dict(anthropic_message_from_events(body))
    elif status >= 400:
        recorded = orjson.loads(body)
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(**request)
        assert type(caught.value) is ANTHROPIC_ERRORS[status]
        assert caught.value.status_code == status
        assert caught.value.body == recorded
        assert caught.value.request_id == recorded["request_id"]
    else:
        message = client.messages.create(**request)
        assert anthropic_summary_of_sdk(message) == anthropic_summary_of_dict(orjson.loads(body))
        recorded_usage = orjson.loads(body)["usage"]
        assert message.usage.cache_read_input_tokens == recorded_usage["cache_read_input_tokens"]


def test_anthropic_sdk_sees_recorded_thinking_and_redacted_blocks_replayed_by_fake(
    fake_anthropic: FakeProvider,
) -> None:
    client = anthropic_client(fake_anthropic)
    request: Any = {"model": ANTHROPIC_MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    fake_anthropic.enqueue_fixture("anthropic/message-thinking.response.json")
    thinking = anthropic_summary_of_sdk(client.messages.create(**request))["blocks"]
    assert [b[0] for b in thinking] == ["thinking", "text"] and thinking[0][2].startswith("Eq8CCkYI")
    fake_anthropic.enqueue_fixture("anthropic/stream-redacted-thinking.response.sse")
    with client.messages.stream(**request) as stream:
        redacted = anthropic_summary_of_sdk(stream.get_final_message())["blocks"]
    assert [b[0] for b in redacted] == ["redacted_thinking", "redacted_thinking", "text"]
    assert all(len(b[1]) > 100 for b in redacted[:2])


@pytest.mark.parametrize("rel", fixture_params("gemini"))
def test_gemini_sdk_parses_recorded_response_replayed_by_fake(fake_gemini: FakeProvider, rel: str) -> None:
    body, status = fixture_bytes(rel), fixture_status(rel)
    client = gemini_client(fake_gemini)

    if rel.endswith(".sse"):
        events, error = gemini_stream_fixture(body)
        fake_gemini.enqueue_fixture(rel)
        chunks, raised = collect(client.models.generate_content_stream(model=GEMINI_MODEL, contents="hi"))
        assert gemini_summary_of_sdk(chunks) == gemini_summary_of_dicts(events)
        if error is None:
            assert raised is None
        else:  # the bare JSON error written mid-stream surfaces as a typed error
            assert isinstance(raised, genai_errors.APIError)
            assert (raised.code, raised.status) == (error["code"], error["status"])
        return

    recorded = orjson.loads(body)
    if isinstance(recorded, list):
        # streamGenerateContent without alt=sse: a JSON array of the same
        # GenerateContentResponse objects an SSE stream carries. The SDK
        # always asks for SSE, so feed it the array elements as SSE events.
        fake_gemini.enqueue_fixture(rel)
        raw = raw_request(fake_gemini, "POST", replay_path(rel), {})
        assert raw.body.startswith(b"[{") and b"\n,\r\n" in raw.body
        parsed = gemini_sdk_parse_elements(fake_gemini, orjson.loads(raw.body))
        assert gemini_summary_of_sdk(parsed) == gemini_summary_of_dicts(recorded)
        return

    fake_gemini.enqueue_fixture(rel)
    if status >= 400:
        with pytest.raises(genai_errors.APIError) as caught:
            client.models.generate_content(model=GEMINI_MODEL, contents="hi")
        expected_class = genai_errors.ClientError if status < 500 else genai_errors.ServerError
        assert isinstance(caught.value, expected_class)
        error = recorded["error"]
        assert (caught.value.code, caught.value.status) == (status, error["status"])
        assert caught.value.message == error["message"]
    else:
        response = client.models.generate_content(model=GEMINI_MODEL, contents="hi")
        assert gemini_summary_of_sdk([response]) == gemini_summary_of_dicts([recorded])


# --------------------------------------------------------------------------
# OpenAI default answers
# --------------------------------------------------------------------------


def test_openai_default_answer_echoes_last_user_text_and_parses_with_sdk(fake_openai: FakeProvider) -> None:
    completion = openai_client(fake_openai).chat.completions.create(
        model=OPENAI_MODEL,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello there"}]},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == OPENAI_MODEL
    choice = completion.choices[0]
    assert choice.message.content == "fake-openai says: Hello there"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens == 4
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details is not None
    assert usage.prompt_tokens_details is not None


def test_openai_default_answer_is_deterministic(fake_openai: FakeProvider) -> None:
    request = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "same"}]}
    first = raw_call(fake_openai, "/v1/chat/completions", request)
    second = raw_call(fake_openai, "/v1/chat/completions", request)
    assert first.body == second.body


def test_openai_default_stream_parses_with_sdk_and_has_real_framing(fake_openai: FakeProvider) -> None:
    request: Any = {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": "stream me"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    chunks = list(openai_client(fake_openai).chat.completions.create(**request))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ("fake-openai says: stream me")
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None

    raw = raw_call(fake_openai, "/v1/chat/completions", request)
    assert raw.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    frames = raw.body.split(b"\n\n")
    assert frames[-2:] == [b"data: [DONE]", b""]
    assert all(frame.startswith(b"data: {") for frame in frames[:-2])
    assert b"event:" not in raw.body
    dicts = openai_stream_dicts(raw.body)
    assert all(d["usage"] is None for d in dicts[:-1])
    assert dicts[-1]["choices"] == [] and dicts[-1]["usage"]["total_tokens"] > 0


def test_openai_stream_without_include_usage_has_no_usage_field(fake_openai: FakeProvider) -> None:
    request = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}
    dicts = openai_stream_dicts(raw_call(fake_openai, "/v1/chat/completions", request).body)
    assert all("usage" not in d for d in dicts)
    assert dicts[-1]["choices"][0]["finish_reason"] == "stop"


def test_openai_default_answer_calls_first_tool_plain_and_streaming(fake_openai: FakeProvider) -> None:
    client = openai_client(fake_openai)
    request: Any = {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": OPENAI_TOOLS,
    }
    completion = client.chat.completions.create(**request)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Weather in Paris?", "unit": "celsius"}

    chunks = list(client.chat.completions.create(**request, stream=True))
    summary = openai_summary_of_stream([c.model_dump(exclude_none=True) for c in chunks])
    assert summary["calls"] == [(call.id, "get_weather", call.function.arguments)]
    assert summary["finish"] == "tool_calls"
    first_call = chunks[0].choices[0].delta.tool_calls or []
    assert first_call[0].function is not None and first_call[0].function.arguments == ""
    assert len(chunks) > 3  # the arguments arrive in several fragments


def test_openai_tool_choice_and_tool_results_steer_the_default_answer(fake_openai: FakeProvider) -> None:
    client = openai_client(fake_openai)
    messages: Any = [{"role": "user", "content": "time?"}]
    forced = client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=messages,
        tools=OPENAI_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    (call,) = forced.choices[0].message.tool_calls or []
    assert call.function.name == "get_time" and call.function.arguments == "{}"

    follow_up = [
        *messages,
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "12:00"},
    ]
    answer = client.chat.completions.create(model=OPENAI_MODEL, messages=follow_up, tools=OPENAI_TOOLS)
    assert answer.choices[0].message.content == "fake-openai says: 12:00"
    assert answer.choices[0].finish_reason == "stop"


def test_openai_max_completion_tokens_truncates_with_finish_reason_length(fake_openai: FakeProvider) -> None:
    completion = openai_client(fake_openai).chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "a long question here"}], max_completion_tokens=2
    )
    assert completion.choices[0].message.content == "fake-openai says:"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 2


def test_openai_default_answers_have_the_recorded_fields(fake_openai: FakeProvider) -> None:
    request: Any = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    default = orjson.loads(raw_call(fake_openai, "/v1/chat/completions", request).body)
    request |= {"stream": True, "stream_options": {"include_usage": True}}
    chunks = openai_stream_dicts(raw_call(fake_openai, "/v1/chat/completions", request).body)
    require_fixtures()  # only the comparison with the recording needs them

    recorded = fixture_json("openai/chat-basic.response.json")
    assert keys(default) == keys(recorded)
    assert keys(default["choices"][0]) == keys(recorded["choices"][0])
    assert keys(default["choices"][0]["message"]) == keys(recorded["choices"][0]["message"])
    assert keys(default["usage"]) == keys(recorded["usage"])
    for name in ("prompt_tokens_details", "completion_tokens_details"):
        assert keys(default["usage"][name]) == keys(recorded["usage"][name])

    recorded_chunks = openai_stream_dicts(fixture_bytes("openai/chat-streaming-usage.response.sse"))
    # role chunk, finish chunk and usage chunk line up one to one
    for ours, theirs in [
        (chunks[0], recorded_chunks[0]),
        (chunks[-2], recorded_chunks[1]),
        (chunks[-1], recorded_chunks[2]),
    ]:
        assert keys(ours) == keys(theirs)
        assert ours["choices"] == [] or keys(ours["choices"][0]) == keys(theirs["choices"][0])
    assert chunks[0]["choices"][0]["delta"] == recorded_chunks[0]["choices"][0]["delta"]
    assert keys(chunks[-1]["usage"]) == keys(recorded_chunks[2]["usage"])

    tool_request: Any = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "x"}], "tools": OPENAI_TOOLS}
    tool_answer = orjson.loads(raw_call(fake_openai, "/v1/chat/completions", tool_request).body)
    recorded_tool = fixture_json("openai/chat-tools.response.json")
    assert keys(tool_answer["choices"][0]["message"]) == keys(recorded_tool["choices"][0]["message"])
    ours_call = tool_answer["choices"][0]["message"]["tool_calls"][0]
    theirs_call = recorded_tool["choices"][0]["message"]["tool_calls"][0]
    assert keys(ours_call) == keys(theirs_call)
    assert len(ours_call["id"]) == len(theirs_call["id"])


def test_openai_embeddings_float_and_base64_decode_to_the_same_vectors(fake_openai: FakeProvider) -> None:
    client = openai_client(fake_openai)
    as_floats = client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float", dimensions=8
    )
    # The SDK asks for base64 by default and decodes it itself.
    as_sdk_default = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=8)
    assert fake_openai.requests[-1].json["encoding_format"] == "base64"
    assert [e.embedding for e in as_floats.data] == [e.embedding for e in as_sdk_default.data]
    assert len(as_floats.data[0].embedding) == 8
    assert as_floats.data[0].embedding != as_floats.data[1].embedding
    assert as_floats.usage.prompt_tokens == as_floats.usage.total_tokens == 2

    raw = raw_call(
        fake_openai,
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "alpha", "encoding_format": "base64", "dimensions": 8},
    )
    item = orjson.loads(raw.body)["data"][0]
    decoded = list(struct.unpack("<8f", base64.b64decode(item["embedding"])))
    assert decoded == as_floats.data[0].embedding
    assert keys(item) == {"object", "index", "embedding"}


def test_openai_model_listing_parses_with_sdk(fakes: dict[str, FakeProvider]) -> None:
    with FakeOpenAI(models=["gpt-a", "gpt-b"]) as fake:
        listed = list(openai_client(fake).models.list())
    assert [(m.id, m.object) for m in listed] == [("gpt-a", "model"), ("gpt-b", "model")]
    assert all(m.owned_by and m.created for m in listed)


def test_azure_deployment_path_parses_with_azure_sdk_and_records_api_key(fake_openai: FakeProvider) -> None:
    client = openai.AzureOpenAI(
        api_key=fake_openai.api_key, azure_endpoint=fake_openai.base_url, api_version="2024-10-21", max_retries=0
    )
    completion = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi azure"}]
    )
    assert completion.choices[0].message.content == "fake-openai says: hi azure"
    recorded = fake_openai.last_request
    assert recorded.path == "/openai/deployments/my-deployment/chat/completions"
    assert recorded.query == {"api-version": "2024-10-21"}
    assert recorded.headers["api-key"] == fake_openai.api_key

    streamed = list(
        client.chat.completions.create(model="my-deployment", messages=[{"role": "user", "content": "hi"}], stream=True)
    )
    assert streamed[0].choices == []  # Azure opens with a prompt-filter chunk
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == ("fake-openai says: hi")

    bad = openai.AzureOpenAI(
        api_key="wrong", azure_endpoint=fake_openai.base_url, api_version="2024-10-21", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="my-deployment", messages=[{"role": "user", "content": "x"}])


def test_openai_wrong_or_missing_key_gives_real_401_error(fake_openai: FakeProvider) -> None:
    client = openai.OpenAI(api_key="sk-wrong-key-1234", base_url=f"{fake_openai.base_url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-1234" not in caught.value.message  # the key is masked

    raw = raw_request(fake_openai, "POST", "/v1/chat/completions", {"model": OPENAI_MODEL})
    assert raw.status == 401
    error = orjson.loads(raw.body)["error"]
    assert keys(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and "didn't provide an API key" in error["message"]


def test_openai_unknown_model_gives_404_model_not_found_like_recording(fakes: dict[str, FakeProvider]) -> None:
    with FakeOpenAI(models=["gpt-known"]) as fake:
        with pytest.raises(openai.NotFoundError) as caught:
            openai_client(fake).chat.completions.create(
                model="gpt-unknown", messages=[{"role": "user", "content": "x"}]
            )
        raw = raw_call(
            fake, "/v1/chat/completions", {"model": "gpt-unknown", "messages": [{"role": "user", "content": "x"}]}
        )
    assert caught.value.code == "model_not_found"
    assert raw.headers["Content-Type"] == "application/json; charset=utf-8"
    if fixtures_available():
        recorded = fixture_json("openai/error-404-unknown-model.response.json")
        assert keys(orjson.loads(raw.body)["error"]) == keys(recorded["error"])


# --------------------------------------------------------------------------
# Anthropic default answers
# --------------------------------------------------------------------------


def test_anthropic_default_answer_echoes_last_user_text_and_parses_with_sdk(fake_anthropic: FakeProvider) -> None:
    message = anthropic_client(fake_anthropic).messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": [{"type": "text", "text": "Hello Claude"}]}],
    )
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.model == ANTHROPIC_MODEL and message.role == "assistant"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "fake-anthropic says: Hello Claude")
    ]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 4
    assert message.usage.cache_read_input_tokens == 0
    assert message.usage.cache_creation_input_tokens == 0
    # the SDK 2.x authenticates with a bearer token and its own API version
    recorded = fake_anthropic.last_request
    assert recorded.headers["Authorization"] == f"Bearer {fake_anthropic.api_key}"
    assert recorded.headers["anthropic-version"]


def test_anthropic_default_stream_parses_with_sdk_and_has_event_lines(fake_anthropic: FakeProvider) -> None:
    request: Any = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "stream please"}],
    }
    with anthropic_client(fake_anthropic).messages.stream(**request) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()
    assert "".join(texts) == "fake-anthropic says: stream please" and len(texts) > 1
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 4

    raw = raw_call(fake_anthropic, "/v1/messages", request | {"stream": True})
    assert raw.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert raw.headers["request-id"].startswith("req_")
    frames = raw.body.split(b"\n\n")
    assert frames[-1] == b"" and b"[DONE]" not in raw.body
    names = []
    for frame in frames[:-1]:
        match = re.fullmatch(rb"event: (\w+)\ndata: (\{.*\})", frame)
        assert match, frame
        assert json.loads(match[2])["type"] == match[1].decode()
        names.append(match[1].decode())
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}


def test_anthropic_default_answer_uses_first_tool_plain_and_streaming(fake_anthropic: FakeProvider) -> None:
    client = anthropic_client(fake_anthropic)
    request: Any = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Weather in Rome?"}],
        "tools": ANTHROPIC_TOOLS,
    }
    message = client.messages.create(**request)
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert (block.name, block.input) == ("get_weather", {"location": "Weather in Rome?", "unit": "celsius"})

    with client.messages.stream(**request) as stream:
        streamed = stream.get_final_message()
    assert anthropic_summary_of_sdk(streamed)["blocks"] == anthropic_summary_of_sdk(message)["blocks"]
    assert streamed.stop_reason == "tool_use"

    raw = raw_call(fake_anthropic, "/v1/messages", request | {"stream": True})
    deltas = [json.loads(d)["delta"] for d in sse_data(raw.body) if '"content_block_delta"' in d]
    assert deltas[0] == {"type": "input_json_delta", "partial_json": ""}
    assert len(deltas) > 2


def test_anthropic_tool_result_gets_a_text_answer(fake_anthropic: FakeProvider) -> None:
    message = anthropic_client(fake_anthropic).messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=100,
        tools=ANTHROPIC_TOOLS,
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
        ],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "fake-anthropic says: sunny"


def test_anthropic_default_answers_have_the_recorded_fields(fake_anthropic: FakeProvider) -> None:
    request: Any = {"model": ANTHROPIC_MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    default = orjson.loads(raw_call(fake_anthropic, "/v1/messages", request).body)
    events = [
        json.loads(d) for d in sse_data(raw_call(fake_anthropic, "/v1/messages", request | {"stream": True}).body)
    ]
    require_fixtures()  # only the comparison with the recording needs them

    recorded = fixture_json("anthropic/message-basic.response.json")
    assert keys(default) == keys(recorded)
    assert keys(default["usage"]) == keys(recorded["usage"])
    assert keys(default["content"][0]) == keys(recorded["content"][0])

    recorded_events = [json.loads(d) for d in sse_data(fixture_bytes("anthropic/stream-text.response.sse"))]
    ours = {e["type"]: e for e in events}
    theirs = {e["type"]: e for e in recorded_events}
    assert set(ours) == set(theirs)
    for kind in ours:
        assert keys(ours[kind]) == keys(theirs[kind]), kind
    start, recorded_start = ours["message_start"]["message"], theirs["message_start"]["message"]
    assert keys(start) == keys(recorded_start)
    assert keys(start["usage"]) == keys(recorded_start["usage"]) - {"inference_geo"}
    assert keys(ours["message_delta"]["usage"]) == keys(theirs["message_delta"]["usage"])


def test_anthropic_wrong_key_gives_real_401_with_request_id(fake_anthropic: FakeProvider) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-wrong", base_url=fake_anthropic.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model=ANTHROPIC_MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"].startswith("req_")
    assert caught.value.request_id == body["request_id"]


def test_anthropic_requires_version_header_and_max_tokens(fake_anthropic: FakeProvider) -> None:
    message = {"model": ANTHROPIC_MODEL, "messages": [{"role": "user", "content": "x"}]}
    no_version = raw_request(
        fake_anthropic, "POST", "/v1/messages", message | {"max_tokens": 5}, {"x-api-key": fake_anthropic.api_key}
    )
    assert no_version.status == 400
    assert "anthropic-version" in orjson.loads(no_version.body)["error"]["message"]

    no_max_tokens = raw_call(fake_anthropic, "/v1/messages", message)
    assert no_max_tokens.status == 400
    error = orjson.loads(no_max_tokens.body)
    assert error["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert error["request_id"] == no_max_tokens.headers["request-id"]

    accepted = raw_call(fake_anthropic, "/v1/messages", message | {"max_tokens": 5})
    assert accepted.status == 200  # x-api-key works as well as a bearer token


def test_anthropic_unknown_model_gives_404_not_found_like_recording(fakes: dict[str, FakeProvider]) -> None:
    with FakeAnthropic(models=["claude-known"]) as fake, pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client(fake).messages.create(
            model="claude-does-not-exist", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["error"] == {"type": "not_found_error", "message": "model: claude-does-not-exist"}
    if fixtures_available():
        recorded = fixture_json("anthropic/error-404-not-found.response.json")
        assert keys(body) == keys(recorded)
        assert keys(body["error"]) == keys(recorded["error"])


# --------------------------------------------------------------------------
# Gemini default answers
# --------------------------------------------------------------------------

GEMINI_TOOL = genai_types.Tool(
    function_declarations=[
        genai_types.FunctionDeclaration(
            name="get_weather",
            parameters=genai_types.Schema(
                type=genai_types.Type.OBJECT, properties={"location": genai_types.Schema(type=genai_types.Type.STRING)}
            ),
        )
    ]
)


def test_gemini_default_answer_echoes_last_user_text_and_parses_with_sdk(fake_gemini: FakeProvider) -> None:
    client = gemini_client(fake_gemini)
    response = client.models.generate_content(
        model=GEMINI_MODEL,
        contents="Hello Gemini",
        config=genai_types.GenerateContentConfig(system_instruction="Be brief."),
    )
    assert response.text == "fake-gemini says: Hello Gemini"
    candidate = (response.candidates or [])[0]
    assert candidate.finish_reason == genai_types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None and usage.candidates_token_count == 4
    assert usage.total_token_count == (usage.prompt_token_count or 0) + 4
    assert response.model_version == GEMINI_MODEL and response.response_id
    # google-genai 3.x talks to /v1, older versions to /v1beta: both served
    assert fake_gemini.last_request.path == f"/v1/models/{GEMINI_MODEL}:generateContent"
    assert fake_gemini.last_request.headers["x-goog-api-key"] == fake_gemini.api_key


def test_gemini_default_sse_stream_parses_with_sdk_and_uses_crlf_framing(fake_gemini: FakeProvider) -> None:
    client = gemini_client(fake_gemini)
    chunks = list(client.models.generate_content_stream(model=GEMINI_MODEL, contents="stream it"))
    assert "".join(c.text or "" for c in chunks) == "fake-gemini says: stream it"
    finishes = [(c.candidates or [])[0].finish_reason for c in chunks]
    assert finishes[:-1] == [None] * (len(chunks) - 1) and finishes[-1] == genai_types.FinishReason.STOP
    assert fake_gemini.last_request.query == {"alt": "sse"}

    body = {"contents": [{"role": "user", "parts": [{"text": "stream it"}]}]}
    raw = raw_call(fake_gemini, f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse", body)
    assert raw.headers["Content-Type"] == "text/event-stream"
    frames = raw.body.split(b"\r\n\r\n")
    assert frames[-1] == b"" and all(f.startswith(b"data: {") for f in frames[:-1])
    assert b"[DONE]" not in raw.body and b"\n\n" not in raw.body
    events = [json.loads(f[6:]) for f in frames[:-1]]
    totals = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert totals == sorted(totals) and totals[-1] == 4  # cumulative
    assert ["finishReason" in e["candidates"][0] for e in events] == [False] * 3 + [True]


def test_gemini_stream_without_alt_sse_is_an_incremental_json_array(fake_gemini: FakeProvider) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "array"}]}]}
    raw = raw_call(fake_gemini, f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent", body)
    assert raw.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert raw.body.startswith(b"[{\n") and raw.body.endswith(b"}\n]")
    assert raw.body.count(b"\n,\r\n") == 2
    parsed = gemini_sdk_parse_elements(fake_gemini, orjson.loads(raw.body))
    assert "".join(p.text or "" for p in parsed) == "fake-gemini says: array"
    assert (parsed[-1].candidates or [])[0].finish_reason == genai_types.FinishReason.STOP


def test_gemini_default_answer_calls_a_function_plain_and_streaming(fake_gemini: FakeProvider) -> None:
    client = gemini_client(fake_gemini)
    config = genai_types.GenerateContentConfig(tools=[GEMINI_TOOL])
    response = client.models.generate_content(model=GEMINI_MODEL, contents="Weather in Oslo?", config=config)
    calls = response.function_calls or []
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"location": "Weather in Oslo?"})]
    assert (response.candidates or [])[0].finish_reason == genai_types.FinishReason.STOP

    chunks = list(client.models.generate_content_stream(model=GEMINI_MODEL, contents="Weather in Oslo?", config=config))
    assert len(chunks) == 1  # the whole call arrives in one chunk
    assert [(c.name, c.args) for c in chunks[0].function_calls or []] == [(c.name, c.args) for c in calls]


def test_gemini_accepts_snake_case_request_fields(fake_gemini: FakeProvider) -> None:
    path = f"/v1beta/models/{GEMINI_MODEL}:generateContent"
    truncated = raw_call(
        fake_gemini,
        path,
        {
            "system_instruction": {"parts": [{"text": "Be brief."}]},
            "contents": [{"role": "user", "parts": [{"text": "a long question"}]}],
            "generation_config": {"max_output_tokens": 2},
        },
    )
    candidate = orjson.loads(truncated.body)["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert candidate["content"]["parts"] == [{"text": "fake-gemini says:"}]

    declarations = [{"name": "lookup", "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}}]
    called = raw_call(
        fake_gemini,
        path,
        {
            "contents": [{"role": "user", "parts": [{"text": "find"}]}],
            "tools": [{"function_declarations": declarations}],
            "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["lookup"]}},
        },
    )
    parts = orjson.loads(called.body)["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "lookup", "args": {"q": "find"}}}]

    answered = raw_call(
        fake_gemini,
        path,
        {
            "contents": [
                {"role": "user", "parts": [{"text": "find"}]},
                {"role": "model", "parts": [{"function_call": {"name": "lookup", "args": {}}}]},
                {"role": "user", "parts": [{"function_response": {"name": "lookup", "response": {"output": "found"}}}]},
            ],
            "tools": [{"function_declarations": declarations}],
        },
    )
    parts = orjson.loads(answered.body)["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "fake-gemini says: found"}]


def test_gemini_default_answers_have_the_recorded_fields(fake_gemini: FakeProvider) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    default = orjson.loads(raw_call(fake_gemini, f"/v1beta/models/{GEMINI_MODEL}:generateContent", body).body)
    sse = raw_call(fake_gemini, f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse", body).body
    require_fixtures()  # only the comparison with the recording needs them

    recorded = fixture_json("gemini/generate-system-instruction.response.json")
    assert keys(default) == keys(recorded)
    assert keys(default["candidates"][0]) == keys(recorded["candidates"][0])
    assert keys(default["usageMetadata"]) <= keys(recorded["usageMetadata"]) | {"candidatesTokenCount"}

    recorded_events, _ = gemini_stream_fixture(fixture_bytes("gemini/stream-after-function-response.response.sse"))
    events = [json.loads(data) for data in sse_data(sse)]
    assert keys(events[0]) == keys(recorded_events[0])
    assert keys(events[0]["candidates"][0]) == keys(recorded_events[0]["candidates"][0])
    assert keys(events[-1]["candidates"][0]) == keys(recorded_events[-1]["candidates"][0])
    assert keys(events[-1]["usageMetadata"]) == keys(recorded_events[-1]["usageMetadata"])


def test_gemini_embeddings_and_model_listing_parse_with_sdk(fake_gemini: FakeProvider) -> None:
    client = gemini_client(fake_gemini)
    embedded = client.models.embed_content(
        model="gemini-embedding-001",
        contents=["alpha", "beta"],
        config=genai_types.EmbedContentConfig(output_dimensionality=6),
    )
    vectors = [e.values for e in embedded.embeddings or []]
    assert len(vectors) == 2 and all(v is not None and len(v) == 6 for v in vectors)
    assert fake_gemini.last_request.path.endswith(":batchEmbedContents")

    single = raw_call(
        fake_gemini,
        "/v1beta/models/gemini-embedding-001:embedContent",
        {"content": {"parts": [{"text": "alpha"}]}, "outputDimensionality": 6},
    )
    assert orjson.loads(single.body)["embedding"]["values"] == vectors[0]

    names = [m.name for m in client.models.list()]
    assert names == [f"models/{m}" for m in FakeGemini.default_models]


def test_gemini_bad_key_gives_400_api_key_invalid_and_query_key_works(fake_gemini: FakeProvider) -> None:
    client = gemini_client(fake_gemini, api_key="wrong-key")
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model=GEMINI_MODEL, contents="x")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    raw = raw_request(fake_gemini, "POST", f"/v1beta/models/{GEMINI_MODEL}:generateContent?key=wrong", {})
    error = orjson.loads(raw.body)["error"]
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    if fixtures_available():
        recorded = fixture_json("gemini/error-400-api-key.response.json")["error"]
        assert keys(error) == keys(recorded)
        assert error["details"][0] == recorded["details"][0]

    body = {"contents": [{"parts": [{"text": "x"}]}]}
    with_query_key = raw_request(
        fake_gemini, "POST", f"/v1beta/models/{GEMINI_MODEL}:generateContent?key={fake_gemini.api_key}", body
    )
    assert with_query_key.status == 200
    assert raw_request(fake_gemini, "POST", f"/v1beta/models/{GEMINI_MODEL}:generateContent", body).status == 403


def test_gemini_unknown_model_gives_404_not_found_like_recording(fakes: dict[str, FakeProvider]) -> None:
    with FakeGemini(models=["gemini-known"]) as fake:
        client = gemini_client(fake)
        with pytest.raises(genai_errors.ClientError) as caught:
            client.models.generate_content(model="gemini-5.0-flash", contents="x")
        raw = raw_call(fake, "/v1beta/models/gemini-5.0-flash:generateContent", {"contents": []})
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert caught.value.message is not None and "models/gemini-5.0-flash is not found" in caught.value.message
    if fixtures_available():
        recorded = fixture_json("gemini/error-404-unknown-model.response.json")
        assert keys(orjson.loads(raw.body)["error"]) == keys(recorded["error"])


# --------------------------------------------------------------------------
# Scripting, recording and connection behaviour
# --------------------------------------------------------------------------


def test_requests_are_recorded_with_method_path_query_headers_and_json(fake_gemini: FakeProvider) -> None:
    body = {"contents": [{"parts": [{"text": "record me"}]}]}
    raw_request(
        fake_gemini,
        "POST",
        f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse&key={fake_gemini.api_key}",
        body,
        {"X-Custom": "yes"},
    )
    (recorded,) = fake_gemini.requests
    assert recorded.method == "POST"
    assert recorded.path == f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent"
    assert recorded.query == {"alt": "sse", "key": fake_gemini.api_key}
    assert recorded.headers["x-custom"] == recorded.headers["X-CUSTOM"] == "yes"
    assert recorded.json == body and recorded.body == orjson.dumps(body)


def test_queued_replies_are_served_in_order_before_default_answers(fake_openai: FakeProvider) -> None:
    fake_openai.enqueue(Reply(status=503, body=b'{"first":1}'))
    fake_openai.enqueue(Reply(status=201, body=b"second", content_type="text/plain", headers={"X-Extra": "1"}))
    request = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "x"}]}
    first = raw_request(fake_openai, "POST", "/v1/chat/completions", request)
    second = raw_request(fake_openai, "POST", "/v1/chat/completions", request)
    third = raw_call(fake_openai, "/v1/chat/completions", request)
    assert (first.status, first.body) == (503, b'{"first":1}')  # queued: no auth check
    assert (second.status, second.body, second.headers["X-Extra"]) == (201, b"second", "1")
    assert second.headers["Content-Type"] == "text/plain"
    assert third.status == 200 and b"chat.completion" in third.body
    assert len(fake_openai.requests) == 3


def consume_openai_stream(fake: FakeProvider) -> None:
    stream = openai_client(fake).chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}], stream=True
    )
    list(stream)


def consume_anthropic_stream(fake: FakeProvider) -> None:
    with anthropic_client(fake).messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        stream.get_final_message()


def consume_gemini_stream(fake: FakeProvider) -> None:
    client = gemini_client(fake)
    list(client.models.generate_content_stream(model=GEMINI_MODEL, contents="x"))


STREAM_REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v1/chat/completions", {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "x"}]}),
    "anthropic": (
        "/v1/messages",
        {"model": ANTHROPIC_MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]},
    ),
    "gemini": (
        f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse",
        {"contents": [{"parts": [{"text": "x"}]}]},
    ),
}

# What a bug in the test itself would raise, as opposed to the SDK's own error.
_TEST_BUGS = (AssertionError, AttributeError, NameError, TypeError, KeyError)


@pytest.mark.parametrize(
    ("provider", "consume"),
    [
        ("openai", consume_openai_stream),
        ("anthropic", consume_anthropic_stream),
        ("gemini", consume_gemini_stream),
    ],
)
def test_provider_dying_mid_stream_makes_the_sdk_raise(
    fakes: dict[str, FakeProvider], provider: str, consume: Any
) -> None:
    fake = fakes[provider]
    path, body = STREAM_REQUESTS[provider]
    if provider != "gemini":
        body = body | {"stream": True}
    # The fake's own default stream, cut after two events.
    full = raw_call(fake, path, body)
    chunks = split_sse_events(full.body)
    assert len(chunks) > 2
    fake.enqueue(Reply(content_type=full.headers["Content-Type"], chunks=chunks, abort_after_chunks=2))
    completed = False
    # Each SDK names its error its own way (and renames it between releases):
    # what the user sees is that the call raises and the stream never completes.
    with pytest.raises(Exception) as caught:
        consume(fake)
        completed = True
    assert not completed
    assert not isinstance(caught.value, _TEST_BUGS), repr(caught.value)
    assert fake.stream_disconnects == 0  # the server cut it, not the client


def test_client_closing_a_stream_early_is_counted_as_disconnect(fake_anthropic: FakeProvider) -> None:
    frames = [b'event: ping\ndata: {"type": "ping"}\n\n'] * 40
    fake_anthropic.enqueue(Reply(content_type="text/event-stream; charset=utf-8", chunks=frames, chunk_delay=0.01))
    conn = http.client.HTTPConnection("127.0.0.1", fake_anthropic.port, timeout=PATIENT_S)
    conn.request("POST", "/v1/messages", body=b"{}")
    response = conn.getresponse()
    assert response.read1(64).startswith(b"event: ping")
    conn.close()
    assert wait_until(lambda: fake_anthropic.stream_disconnects == 1)

    fake_anthropic.enqueue(Reply(content_type="text/event-stream", chunks=frames[:3]))
    assert raw_request(fake_anthropic, "POST", "/v1/messages", {}).body == b"".join(frames[:3])
    assert fake_anthropic.stream_disconnects == 1  # a stream read to the end is not counted


def test_stream_chunks_are_delivered_one_by_one(fake_openai: FakeProvider) -> None:
    chunks = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]
    fake_openai.enqueue(Reply(content_type="text/event-stream", chunks=chunks, chunk_delay=0.2))
    conn = http.client.HTTPConnection("127.0.0.1", fake_openai.port, timeout=PATIENT_S)
    try:
        conn.request("POST", "/v1/chat/completions", body=b"{}")
        response = conn.getresponse()
        assert response.read1(100) == b"data: one\n\n"
        first_arrived = time.monotonic()
        assert response.read() == b"data: two\n\ndata: three\n\n"
        # The first chunk did not wait for the others (two delays later).
        assert time.monotonic() - first_arrived >= 0.35
    finally:
        conn.close()


def test_a_held_whole_answer_leaves_only_once_released(fake_openai: FakeProvider) -> None:
    release = threading.Event()
    fake_openai.enqueue(Reply(body=b'{"held": true}', release=release))
    asked = len(fake_openai.requests)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(raw_request, fake_openai, "GET", "/v1/models")
        assert wait_until(lambda: len(fake_openai.requests) > asked)
        assert not answer.done()  # the request arrived; its answer, status included, waits
        release.set()
        assert answer.result(timeout=10).body == b'{"held": true}'


def test_delay_postpones_the_answer_and_hang_never_answers(fake_openai: FakeProvider) -> None:
    fake_openai.enqueue(Reply(body=b"{}", delay=0.2))
    started = time.monotonic()
    assert raw_request(fake_openai, "GET", "/v1/models").body == b"{}"
    assert time.monotonic() - started >= 0.2

    fake_openai.enqueue(Reply(hang=True))
    with pytest.raises(openai.APITimeoutError):
        openai_client(fake_openai, timeout=0.2).models.list()


def test_each_fake_runs_on_its_own_free_port_and_stops_cleanly() -> None:
    first, second = FakeOpenAI().start(), FakeOpenAI().start()
    try:
        assert first.port != second.port
        assert first.base_url == f"http://127.0.0.1:{first.port}"
    finally:
        first.stop()
        second.stop()
    with pytest.raises(ConnectionRefusedError):
        raw_request(first, "GET", "/v1/models")
