"""Anthropic Messages format: client side (SDK requests in, messages/streams out)
and provider side (requests out, recorded answers and streams in).

Fixtures are the recorded traffic in shared/fixtures/anthropic, loaded in place;
tests that need them skip (naming the directory) when it is absent.
"""

from __future__ import annotations

import contextlib
import json
import random
import string
from dataclasses import replace
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.errors import GatewayError, client_status
from extproc.formats import anthropic as fmt
from extproc.formats.anthropic import common as fmt_common
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    Finish,
    ImagePart,
    Message,
    ResponseFormat,
    StreamFailure,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    Usage,
    UsageUpdate,
)
from extproc.formats.render_options import RenderOptions
from extproc.provider_kinds import ANTHROPIC
from extproc.providers.rendering import lacks_of
from tests.support.fixtures import FIXTURES_DIR, fixture_bytes

REQUEST_FIXTURES = [
    "anthropic/message-basic.request.json",
    "anthropic/message-thinking.request.json",
    "anthropic/stream-redacted-thinking.request.json",
    "anthropic/stream-after-tool-result.request.json",
    "anthropic/stream-image-input.request.json",
    "anthropic/stream-text.request.json",
]
STREAM_FIXTURES = [
    "anthropic/stream-basic.response.sse",
    "anthropic/stream-tool-use.response.sse",
    "anthropic/stream-text.response.sse",
    "anthropic/stream-after-tool-result.response.sse",
    "anthropic/stream-redacted-thinking.response.sse",
]
MESSAGE_FIXTURES = ["anthropic/message-basic.response.json", "anthropic/message-thinking.response.json"]
ERROR_FIXTURES = {
    "anthropic/error-400-invalid-request.response.json": (400, "invalid_request"),
    "anthropic/error-404-not-found.response.json": (404, "not_found"),
}
OPTIONS = RenderOptions(model="claude-test")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- helpers


def _sdk(handler: Any) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(
        api_key="x", base_url="http://t", max_retries=0, http_client=httpx2.Client(transport=transport)
    )


def _answering(body: bytes, status: int = 200, sse: bool = False) -> anthropic.Anthropic:
    content_type = "text/event-stream; charset=utf-8" if sse else "application/json"
    return _sdk(lambda request: httpx2.Response(status, content=body, headers={"content-type": content_type}))


def _sdk_stream(body: bytes) -> Any:
    """The SDK's accumulated message for an encoded stream."""
    client = _answering(body, sse=True)
    with client.messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
        return stream.get_final_message()


def _sdk_request_body(**kwargs: Any) -> bytes:
    """The exact body the official SDK sends for messages.create(**kwargs)."""
    seen: list[bytes] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request.content)
        body = fmt.render_response(ChatResponse("msg_1", "m", 0, [Choice(text="ok", finish_reason="stop")]))
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    _sdk(handler).messages.create(**kwargs)
    return seen[0]


def _decode(raw: bytes) -> list[Any]:
    decoder = fmt.StreamDecoder()
    return decoder.feed(raw) + decoder.close()


def _decode_chunks(chunks: list[bytes]) -> list[Any]:
    decoder = fmt.StreamDecoder()
    events: list[Any] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def _normalized(events: list[Any]) -> list[Any]:
    """Events with the wall-clock `created` zeroed (two decoders may straddle a second)."""
    return [replace(e, created=0) if isinstance(e, StreamStart) else e for e in events]


def _collect(events: list[Any]) -> dict[str, Any]:
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    calls: dict[int, list[str]] = {}
    for e in events:
        if isinstance(e, ToolCallStart):
            calls[e.call_index] = [e.id, e.name, ""]
        elif isinstance(e, ToolCallDelta):
            calls[e.call_index][2] += e.arguments
    finishes = [e.reason for e in events if isinstance(e, Finish)]
    usages = [e.usage for e in events if isinstance(e, UsageUpdate)]
    return {
        "text": text,
        "calls": [tuple(calls[i]) for i in sorted(calls)],
        "finish": finishes[-1] if finishes else None,
        "usage": usages[-1] if usages else None,
    }


def _fixture_truth(raw: bytes) -> dict[str, Any]:
    """What a recorded stream holds, read independently with the stdlib json module."""
    text, calls, stop, input_tokens, output = "", [], None, 0, 0
    for line in raw.decode().splitlines():
        if not line.startswith("data:"):
            continue
        data = json.loads(line[5:])
        kind = data["type"]
        if kind == "message_start":
            usage = data["message"]["usage"]
            input_tokens = sum(usage.get(k, 0) for k in ("input_tokens", "cache_read_input_tokens"))
            input_tokens += usage.get("cache_creation_input_tokens", 0)
        elif kind == "content_block_start" and data["content_block"]["type"] == "tool_use":
            calls.append([data["content_block"]["id"], data["content_block"]["name"], ""])
        elif kind == "content_block_delta" and data["delta"]["type"] == "text_delta":
            text += data["delta"]["text"]
        elif kind == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            calls[-1][2] += data["delta"]["partial_json"]
        elif kind == "message_delta":
            stop, output = data["delta"]["stop_reason"], data["usage"]["output_tokens"]
    return {"text": text, "calls": [tuple(c) for c in calls], "stop": stop, "input": input_tokens, "output": output}


def _frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split encoder output into (event, data) pairs, checking the framing on the way."""
    assert raw.endswith(b"\n\n")
    frames = []
    for block in raw.decode().split("\n\n")[:-1]:
        event_line, data_line = block.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[6:])
        assert data["type"] == event_line[7:]
        frames.append((event_line[7:], data))
    return frames


def _render(req: ChatRequest, **options: Any) -> tuple[dict[str, Any], list[str]]:
    rendered = fmt.render_request(req, RenderOptions(model="claude-test", lacks=lacks_of(ANTHROPIC), **options))
    return orjson.loads(rendered.body), rendered.dropped


def _req(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="gpt-x", messages=list(messages), **fields)


def _user(text: str) -> Message:
    return Message("user", [TextPart(text)])


# ---------------------------------------------------------------- fixtures are all covered


def test_every_anthropic_fixture_is_exercised() -> None:
    folder = FIXTURES_DIR / "anthropic"
    if not folder.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES_DIR} (set GATEWAY_FIXTURES)")
    known = set(REQUEST_FIXTURES + STREAM_FIXTURES + MESSAGE_FIXTURES + list(ERROR_FIXTURES))
    present = {f"anthropic/{p.name}" for p in folder.iterdir()}
    assert present <= known, f"untested fixtures: {sorted(present - known)}"


# ---------------------------------------------------------------- client side: parse_request


def test_parse_request_hoists_system_string_and_reads_max_tokens() -> None:
    req = fmt.parse_request(fixture_bytes("anthropic/message-basic.request.json"), None)
    assert req.model == "claude-3-opus-latest"
    assert req.max_tokens == 4096
    assert req.stream is False and req.include_usage is False
    assert req.messages[0] == Message("system", [TextPart("You are a helpful assistant.\n\n")])
    assert req.messages[1] == Message("user", [TextPart("What is the capital of France?")])
    assert len(req.messages) == 2


def test_parse_request_tool_results_become_tool_messages_named_from_tool_use() -> None:
    req = fmt.parse_request(fixture_bytes("anthropic/stream-after-tool-result.request.json"), None)
    assert req.stream is True and req.include_usage is True
    assert req.temperature == 1.0 and req.max_tokens == 8192
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "tool"]
    assistant = req.messages[1]
    assert assistant.content == [TextPart(" ")]
    assert [(c.id, c.name, c.arguments) for c in assistant.tool_calls] == [
        ("toolu_01LtHJmixrs9NcWQkK8hu8hj", "pelican_name_generator", "{}"),
        ("toolu_01N8a4jWyf116qKTMqKKmjyt", "pelican_name_generator", "{}"),
    ]
    first, second = req.messages[2], req.messages[3]
    assert (first.tool_call_id, first.name, first.content) == (
        "toolu_01LtHJmixrs9NcWQkK8hu8hj",
        "pelican_name_generator",
        [TextPart("Charles")],
    )
    assert (second.tool_call_id, second.content) == ("toolu_01N8a4jWyf116qKTMqKKmjyt", [TextPart("Sammy")])
    assert req.tools == [Tool("pelican_name_generator", "", {"properties": {}, "type": "object"}, None)]


def test_parse_request_reads_base64_image_block() -> None:
    raw = fixture_bytes("anthropic/stream-image-input.request.json")
    req = fmt.parse_request(raw, None)
    source = orjson.loads(raw)["messages"][0]["content"][0]["source"]
    image, text = req.messages[0].content
    assert image == ImagePart(media_type="image/png", data=source["data"])
    assert text == TextPart("Describe image in three words")


@pytest.mark.parametrize("rel", REQUEST_FIXTURES)
def test_request_fixture_round_trips_through_render_request(rel: str) -> None:
    raw = fixture_bytes(rel)
    first = fmt.parse_request(raw, None)
    rendered = fmt.render_request(first, RenderOptions(model=first.model))
    assert rendered.dropped == []
    second = fmt.parse_request(rendered.body, None)
    assert second == first
    original, again = orjson.loads(raw), orjson.loads(rendered.body)
    for key in ("model", "max_tokens", "system", "temperature", "tools", "thinking"):
        assert again.get(key) == original.get(key), key
    assert again.get("stream", False) == original.get("stream", False)


def test_parse_request_of_sdk_body_with_every_field() -> None:
    body = _sdk_request_body(
        model="claude-sonnet-4-6",
        max_tokens=2048,
        system=[{"type": "text", "text": "be terse", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig1"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "before"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "after"},
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            },
        ],
        tools=[{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},  # this SDK has no sampling arguments
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        thinking={"type": "enabled", "budget_tokens": 1500},
    )
    req = fmt.parse_request(body, None)
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "user", "tool", "user"]
    assert req.messages[0].content == [TextPart("be terse")]
    assistant = req.messages[2]
    assert assistant.content == [ThinkingPart("hmm", "sig1"), ThinkingPart("", "opaque", redacted=True)]
    assert assistant.tool_calls == [ToolCall("toolu_1", "get_weather", '{"city":"Paris"}')]
    assert req.messages[3].content == [TextPart("before")]
    assert req.messages[4] == Message("tool", [TextPart("sunny")], [], "toolu_1", "get_weather", True)
    assert req.messages[5].content == [TextPart("after"), ImagePart(url="https://x/y.png")]
    assert req.tool_choice == ToolChoice("required") and req.parallel_tool_calls is False
    assert (req.temperature, req.top_p, req.top_k, req.stop) == (0.5, 0.9, 40, ["END"])
    assert req.user == "u-1" and req.thinking_budget == 1500


def test_parse_request_maps_tool_choice_types() -> None:
    def choice(value: dict[str, Any]) -> ToolChoice | None:
        body = {"model": "m", "max_tokens": 5, "messages": [], "tool_choice": value}
        return fmt.parse_request(orjson.dumps(body), None).tool_choice

    assert choice({"type": "auto"}) == ToolChoice("auto")
    assert choice({"type": "none"}) == ToolChoice("none")
    assert choice({"type": "tool", "name": "f"}) == ToolChoice("function", "f")


def test_parse_request_reads_output_config_and_adaptive_thinking() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {"type": "object"}}},
    }
    req = fmt.parse_request(orjson.dumps(body), None)
    assert req.reasoning_effort == "low" and req.thinking_budget is None
    assert req.response_format == ResponseFormat("json_schema", schema={"type": "object"})
    body["thinking"] = {"type": "disabled"}
    assert fmt.parse_request(orjson.dumps(body), None).reasoning_effort is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[1]", None),
        (b'{"model":"m","messages":[]}', "max_tokens"),
        (b'{"model":"m","max_tokens":"5","messages":[]}', "max_tokens"),
        (b'{"max_tokens":5,"messages":[]}', "model"),
        (b'{"model":"m","max_tokens":5}', "messages"),
        (b'{"model":"m","max_tokens":5,"messages":[{"role":5,"content":"x"}]}', "messages[0].role"),
        (b'{"model":"m","max_tokens":5,"messages":[{"role":"system","content":5}]}', "messages[0].content"),
        (b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":5}]}', "messages[0].content"),
        (
            b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}',
            "messages[0].content[0].type",
        ),
        (
            b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":5}]}]}',
            "messages[0].content[0].source",
        ),
        (b'{"model":"m","max_tokens":5,"messages":[],"tool_choice":{"type":5}}', "tool_choice.type"),
        (b'{"model":"m","max_tokens":5,"messages":[],"thinking":{"type":"adaptive","display":1}}', "thinking.display"),
        (b'{"model":"m","max_tokens":5,"messages":[],"tools":[{"name":"f"}]}', "tools[0].input_schema"),
        (b'{"model":"m","max_tokens":5,"messages":[],"tool_choice":{"type":"tool"}}', "tool_choice.name"),
        (b'{"model":"m","max_tokens":5,"messages":[],"thinking":{"type":"enabled"}}', "thinking.budget_tokens"),
        (b'{"model":"m","max_tokens":5,"messages":[],"stop_sequences":"x"}', "stop_sequences"),
        (b'{"model":"m","max_tokens":5,"messages":[],"temperature":true}', "temperature"),
    ],
)
def test_parse_request_rejects_bad_input_naming_the_field(body: bytes, param: str | None) -> None:
    with pytest.raises(GatewayError) as info:
        fmt.parse_request(body, None)
    assert info.value.kind == "invalid_request" and info.value.status == 400
    assert info.value.param == param


_KEYS = [
    "model", "max_tokens", "messages", "role", "content", "type", "text", "source", "data", "media_type",
    "url", "id", "name", "input", "tool_use_id", "is_error", "thinking", "signature", "system", "tools",
    "input_schema", "tool_choice", "budget_tokens", "stop_sequences", "metadata", "user_id", "stream",
    "temperature", "top_p", "top_k", "output_config", "format", "schema", "effort", "disable_parallel_tool_use",
]  # fmt: skip
_WORDS = [
    "user", "assistant", "text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "base64",
    "url", "auto", "any", "tool", "none", "enabled", "adaptive", "disabled", "json_schema", "custom", "low",
]  # fmt: skip
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 5000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
    | st.sampled_from(_WORDS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=6),
    max_leaves=40,
)


@SETTINGS
@given(st.binary(max_size=200) | _json_values.map(orjson.dumps))
def test_parse_request_fuzz_raises_only_gateway_errors(body: bytes) -> None:
    try:
        req = fmt.parse_request(body, None)
    except GatewayError as error:
        assert error.kind == "invalid_request"
        return
    with contextlib.suppress(GatewayError):  # whatever parses also renders (or is refused with a GatewayError)
        fmt.render_request(req, OPTIONS)


_BLOCK_FIELDS = ["text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "thinking", "data"]
_block = (
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=5))
    | st.fixed_dictionaries(
        {"type": st.sampled_from(_WORDS)}, optional=dict.fromkeys([*_BLOCK_FIELDS, "signature"], _json_values)
    )
    | _json_values
)
_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system"]),
        "content": st.text(max_size=5) | st.lists(_block, max_size=4),
    }
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {
            "model": st.just("m"),
            "max_tokens": st.integers(1, 9),
            "messages": st.lists(_message | _json_values, max_size=3),
        },
        optional={k: _json_values for k in ("system", "tools", "tool_choice", "thinking", "output_config")},
    )
)
def test_parse_request_fuzz_of_near_valid_bodies_raises_only_gateway_errors(body: dict[str, Any]) -> None:
    try:
        req = fmt.parse_request(orjson.dumps(body), None)
    except GatewayError as error:
        assert error.kind == "invalid_request" and error.param
        return
    fmt.render_request(req, OPTIONS)


# ---------------------------------------------------------------- client side: responses


@pytest.mark.parametrize("rel", MESSAGE_FIXTURES)
def test_render_response_matches_the_recorded_message_shape(rel: str) -> None:
    raw = fixture_bytes(rel)
    rendered = orjson.loads(fmt.render_response(fmt.parse_response(raw)))
    expected = orjson.loads(raw)
    for key in ("cache_creation", "service_tier", "inference_geo"):  # detail the canonical model does not keep
        expected["usage"].pop(key, None)
    assert rendered == expected


def test_recorded_thinking_answer_keeps_text_and_signature_through_canonical() -> None:
    raw = fixture_bytes("anthropic/message-thinking.response.json")
    recorded = orjson.loads(raw)["content"][0]
    choice = fmt.parse_response(raw).choices[0]
    assert choice.thinking == [ThinkingPart(recorded["thinking"], recorded["signature"])]
    message = _answering(fmt.render_response(fmt.parse_response(raw))).messages.create(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert (message.content[0].thinking, message.content[0].signature) == (recorded["thinking"], recorded["signature"])


def test_render_response_parses_with_the_sdk_including_tools_and_thinking() -> None:
    resp = ChatResponse(
        id="chatcmpl-abc",
        model="gpt-x",
        created=1,
        choices=[
            Choice(
                text="Checking.",
                thinking=[ThinkingPart("plan", "sig")],
                tool_calls=[ToolCall("call_1", "get_weather", '{"city":"Paris"}'), ToolCall("call_2", "f", "{bad")],
                finish_reason="tool_calls",
            )
        ],
        usage=Usage(input_tokens=100, output_tokens=20, cached_tokens=30, cache_creation_tokens=10),
    )
    message = _answering(fmt.render_response(resp)).messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert message.id == "msg_chatcmpl-abc" and message.model == "gpt-x"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert (message.content[0].thinking, message.content[0].signature) == ("plan", "sig")
    assert message.content[1].text == "Checking."
    assert (message.content[2].id, message.content[2].name, message.content[2].input) == (
        "call_1",
        "get_weather",
        {"city": "Paris"},
    )
    assert message.content[3].input == {}
    assert message.stop_reason == "tool_use"
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (60, 30, 10)
    assert usage.output_tokens == 20


@pytest.mark.parametrize(
    ("reason", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_render_response_maps_finish_reason(reason: Any, stop_reason: str) -> None:
    resp = ChatResponse("msg_x", "m", 0, [Choice(text="t", finish_reason=reason)])
    assert orjson.loads(fmt.render_response(resp))["stop_reason"] == stop_reason


def test_render_response_renders_only_choice_zero() -> None:
    resp = ChatResponse("msg_x", "m", 0, [Choice(0, "first", finish_reason="stop"), Choice(1, "second")])
    body = orjson.loads(fmt.render_response(resp))
    assert body["content"] == [{"type": "text", "text": "first"}]


@pytest.mark.parametrize(
    ("kind", "status", "error_class"),
    [
        ("invalid_request", 400, anthropic.BadRequestError),
        ("authentication", 401, anthropic.AuthenticationError),
        ("not_found", 404, anthropic.NotFoundError),
        ("rate_limit", 429, anthropic.RateLimitError),
        ("unavailable", 503, anthropic.InternalServerError),
        ("provider_auth", 502, anthropic.InternalServerError),
    ],
)
def test_render_error_raises_the_sdk_typed_error(kind: Any, status: int, error_class: type) -> None:
    error = GatewayError(kind, "went wrong")
    client = _answering(fmt.render_error(error, "req_1"), status=client_status(error))
    with pytest.raises(error_class) as info:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status
    assert info.value.body["error"]["message"] == "went wrong"
    assert info.value.body["request_id"] == "req_1"


def test_render_models_lists_with_the_sdk() -> None:
    client = _answering(fmt.render_models(["claude-a", "gpt-b"]))
    models = list(client.models.list())
    assert [(m.id, m.display_name, m.type) for m in models] == [
        ("claude-a", "claude-a", "model"),
        ("gpt-b", "gpt-b", "model"),
    ]
    body = orjson.loads(fmt.render_models(["claude-a", "gpt-b"]))
    assert (body["has_more"], body["first_id"], body["last_id"]) == (False, "claude-a", "gpt-b")


# ---------------------------------------------------------------- client side: StreamEncoder


@pytest.mark.parametrize("rel", STREAM_FIXTURES)
def test_decoded_fixture_re_encodes_to_what_the_sdk_accumulates_identically(rel: str) -> None:
    raw = fixture_bytes(rel)
    truth = _fixture_truth(raw)
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    body = encoder.encode(_decode(raw)) + encoder.close()
    message = _sdk_stream(body)
    assert "".join(b.text for b in message.content if b.type == "text") == truth["text"]
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert calls == [(i, n, json.loads(a)) for i, n, a in truth["calls"]]
    assert message.stop_reason == truth["stop"]
    assert message.usage.input_tokens == truth["input"]
    assert message.usage.output_tokens == truth["output"]


def test_encoder_handles_openai_order_with_usage_after_finish() -> None:
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    body = encoder.encode([StreamStart("chatcmpl-1", "gpt-x", 0)])
    body += encoder.encode([TextDelta(""), TextDelta("Hel"), TextDelta("lo")])
    body += encoder.encode([ToolCallStart(0, "call_a", "f"), ToolCallDelta(0, '{"a"'), ToolCallDelta(0, ":1}")])
    body += encoder.encode([ToolCallStart(1, "call_b", "g"), ToolCallDelta(1, "{}")])
    body += encoder.encode([Finish("tool_calls")])
    body += encoder.encode([UsageUpdate(Usage(input_tokens=12, output_tokens=7, cached_tokens=2))])
    body += encoder.close()
    frames = _frames(body)
    kinds = [k for k, _ in frames]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    starts = [d["index"] for k, d in frames if k == "content_block_start"]
    stops = [d["index"] for k, d in frames if k == "content_block_stop"]
    assert starts == stops == [0, 1, 2]
    message = _sdk_stream(body)
    assert message.id == "msg_chatcmpl-1" and message.model == "gpt-x"
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Hello"
    assert [(b.id, b.input) for b in message.content[1:]] == [("call_a", {"a": 1}), ("call_b", {})]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        10,
        2,
        7,
    )


def test_encoder_puts_usage_decoded_with_start_into_message_start() -> None:
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    body = encoder.encode([StreamStart("msg_1", "m", 0, 40), UsageUpdate(Usage(40, 1, cached_tokens=30))])
    (kind, data), *_ = _frames(body)
    assert kind == "message_start"
    assert data["message"]["usage"] == {
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 30,
        "output_tokens": 1,
    }


def _redacted_data(raw: bytes) -> list[str]:
    """The `data` of every redacted_thinking block a recorded stream starts."""
    found = []
    for line in raw.decode().splitlines():
        if line.startswith("data:"):
            data = json.loads(line[5:])
            block = data.get("content_block") or {}
            if data["type"] == "content_block_start" and block["type"] == "redacted_thinking":
                found.append(block["data"])
    return found


def test_recorded_redacted_thinking_stream_decodes_to_redacted_deltas_with_their_data() -> None:
    raw = fixture_bytes("anthropic/stream-redacted-thinking.response.sse")
    thinking = [e for e in _decode(raw) if isinstance(e, ThinkingDelta)]
    recorded = _redacted_data(raw)
    assert len(recorded) == 2
    assert thinking == [ThinkingDelta("", data, redacted=True) for data in recorded]


def test_recorded_redacted_thinking_stream_re_encodes_each_block_with_its_data() -> None:
    raw = fixture_bytes("anthropic/stream-redacted-thinking.response.sse")
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    body = encoder.encode(_decode(raw)) + encoder.close()
    frames = _frames(body)
    starts = [d["content_block"] for k, d in frames if k == "content_block_start"]
    assert starts[:2] == [{"type": "redacted_thinking", "data": data} for data in _redacted_data(raw)]
    assert not [d for k, d in frames if k == "content_block_delta" and d["index"] < 2]  # whole blocks, no deltas
    message = _sdk_stream(body)
    assert [b.type for b in message.content] == ["redacted_thinking", "redacted_thinking", "text"]
    assert [b.data for b in message.content[:2]] == _redacted_data(raw)


def test_encoder_closes_open_thinking_before_a_redacted_block() -> None:
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    events = [
        StreamStart("r1", "c", 0),
        ThinkingDelta("one"),
        ThinkingDelta("", "sig-1"),
        ThinkingDelta("", "blob", redacted=True),
        ThinkingDelta("two"),
        ThinkingDelta("", "sig-2"),
        TextDelta("answer"),
    ]
    message = _sdk_stream(encoder.encode(events) + encoder.close())
    got = [(b.type, getattr(b, "thinking", None) or getattr(b, "data", None)) for b in message.content]
    assert got == [("thinking", "one"), ("redacted_thinking", "blob"), ("thinking", "two"), ("text", None)]
    assert message.content[2].signature == "sig-2"


def test_encoder_opens_a_new_thinking_block_after_a_signature() -> None:
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    events = [
        StreamStart("r1", "gemini", 0),
        ThinkingDelta("one"),
        ThinkingDelta("", "sig-1"),
        ThinkingDelta("two", "sig-2"),
        TextDelta("answer"),
        Finish("stop"),
    ]
    body = encoder.encode(events) + encoder.close()
    message = _sdk_stream(body)
    assert [(b.type, getattr(b, "thinking", None), getattr(b, "signature", None)) for b in message.content] == [
        ("thinking", "one", "sig-1"),
        ("thinking", "two", "sig-2"),
        ("text", None, None),
    ]
    assert message.stop_reason == "end_turn"


def test_encoder_ignores_choices_other_than_zero() -> None:
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    body = encoder.encode([StreamStart("msg_1", "m", 0), TextDelta("a"), TextDelta("b", index=1), Finish("stop")])
    assert _sdk_stream(body + encoder.close()).content[0].text == "a"


def test_encoder_without_any_event_still_writes_a_complete_message() -> None:
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    body = encoder.encode([]) + encoder.close()
    assert [k for k, _ in _frames(body)] == ["message_start", "message_delta", "message_stop"]
    assert encoder.close() == b""
    message = _sdk_stream(body)
    assert message.model == "gpt-x" and message.id.startswith("msg_") and message.stop_reason == "end_turn"


def test_encoder_writes_in_band_error_then_ends_without_message_stop() -> None:
    encoder = fmt.StreamEncoder(_req(_user("hi")))
    body = encoder.encode([StreamStart("msg_1", "m", 0), TextDelta("partial")])
    body += encoder.encode([StreamFailure(GatewayError("unavailable", "overloaded upstream")), TextDelta("late")])
    body += encoder.close()
    assert encoder.close() == b""
    frames = _frames(body)
    assert frames[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded upstream"}},
    )
    assert "message_stop" not in [k for k, _ in frames]
    with pytest.raises(anthropic.APIStatusError) as info:
        _sdk_stream(body)
    assert info.value.body["error"]["type"] == "overloaded_error"


_ARGS = st.dictionaries(
    st.text(string.ascii_lowercase, min_size=1, max_size=4), st.integers(-(2**40), 2**40) | st.text(max_size=4)
)
_SEGMENT = st.one_of(
    st.tuples(st.just("text"), st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3)),
    st.tuples(st.just("thinking"), st.text(min_size=1, max_size=6), st.text(string.ascii_letters, min_size=1)),
    st.tuples(st.just("tool"), _ARGS, st.integers(1, 4)),
)


@SETTINGS
@given(
    segments=st.lists(_SEGMENT, max_size=6),
    reason=st.sampled_from(["stop", "length", "tool_calls", "content_filter", "error"]),
    usage_first=st.booleans(),
    batch_seed=st.integers(0, 2**16),
)
def test_encoder_any_event_sequence_is_what_the_sdk_accumulates(
    segments: list[Any], reason: Any, usage_first: bool, batch_seed: int
) -> None:
    events: list[Any] = [StreamStart("msg_x", "m", 0, 5)]
    expect: list[tuple[str, Any]] = []
    calls = 0
    for seg in segments:
        if seg[0] == "text":
            events += [TextDelta(t) for t in seg[1]]
            if expect and expect[-1][0] == "text":
                expect[-1] = ("text", expect[-1][1] + "".join(seg[1]))
            else:
                expect.append(("text", "".join(seg[1])))
        elif seg[0] == "thinking":
            events += [ThinkingDelta(seg[1]), ThinkingDelta("", seg[2])]
            expect.append(("thinking", (seg[1], seg[2])))
        else:
            args = orjson.dumps(seg[1]).decode()
            cuts = sorted(random.Random(batch_seed).sample(range(len(args) + 1), min(seg[2], len(args) + 1)))
            pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
            events.append(ToolCallStart(calls, f"call_{calls}", f"f{calls}"))
            events += [ToolCallDelta(calls, p) for p in pieces]
            expect.append(("tool_use", (f"call_{calls}", f"f{calls}", seg[1])))
            calls += 1
    usage = UsageUpdate(Usage(input_tokens=9, output_tokens=4))
    events += [usage, Finish(reason)] if usage_first else [Finish(reason), usage]
    rng = random.Random(batch_seed)
    encoder, body, start = fmt.StreamEncoder(_req(_user("hi"))), b"", 0
    while start < len(events):
        end = start + rng.randint(1, 4)
        body += encoder.encode(events[start:end])
        start = end
    body += encoder.close()
    kinds = [k for k, _ in _frames(body)]
    assert kinds.count("message_start") == kinds.count("message_stop") == 1 and kinds[-1] == "message_stop"
    message = _sdk_stream(body)
    got: list[tuple[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            got.append(("text", block.text))
        elif block.type == "thinking":
            got.append(("thinking", (block.thinking, block.signature)))
        else:
            got.append(("tool_use", (block.id, block.name, block.input)))
    assert got == expect
    assert message.stop_reason == fmt_common._FINISH_OUT[reason]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 4)


# ---------------------------------------------------------------- provider side: render_request


def test_render_request_hoists_leading_system_messages_and_keeps_later_ones_in_place() -> None:
    req = _req(
        Message("system", [TextPart("one")]),
        Message("system", [TextPart("one more")]),
        _user("hi"),
        Message("system", [TextPart("two")]),
        max_tokens=100,
    )
    body, dropped = _render(req)
    assert body["system"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "one more"}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "system", "content": [{"type": "text", "text": "two"}]},
    ]
    assert body["max_tokens"] == 100 and body["model"] == "claude-test" and dropped == []
    single, _ = _render(_req(Message("system", [TextPart("only")]), _user("x")))
    assert single["system"] == "only"


def test_render_request_sends_a_system_only_conversation_as_one_user_turn() -> None:
    body, _ = _render(_req(Message("system", [TextPart("a")]), Message("system", [TextPart("b")])))
    assert "system" not in body
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_render_request_merges_tool_results_into_one_user_turn_results_first() -> None:
    req = _req(
        _user("go"),
        Message("assistant", [TextPart("calling")], [ToolCall("call_1", "f", '{"a":1}'), ToolCall("call.2", "g", "")]),
        Message("tool", [TextPart("r1")], tool_call_id="call_1", name="f"),
        Message("tool", [TextPart("r2"), TextPart("more")], tool_call_id="call.2", is_error=True),
        _user("thanks"),
        _user("again"),
    )
    body, _ = _render(req)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "calling"},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "r1"},
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": [{"type": "text", "text": "r2"}, {"type": "text", "text": "more"}],
            "is_error": True,
        },
        {"type": "text", "text": "thanks"},
        {"type": "text", "text": "again"},
    ]
    text_then_results, _ = _render(
        _req(
            Message("assistant", [], [ToolCall("c", "f", "{}")]),
            _user("note"),
            Message("tool", [TextPart("r")], tool_call_id="c"),
        )
    )
    assert [b["type"] for b in text_then_results["messages"][1]["content"]] == ["tool_result", "text"]


def test_render_request_maps_sampling_fields_and_clamps_temperature() -> None:
    body, dropped = _render(
        _req(_user("x"), temperature=1.7, top_p=0.5, top_k=3, stop=["a", "b"], user="u1", stream=True)
    )
    assert body["temperature"] == 1.0 and body["top_p"] == 0.5 and body["top_k"] == 3
    assert body["stop_sequences"] == ["a", "b"] and body["metadata"] == {"user_id": "u1"}
    assert body["stream"] is True and body["max_tokens"] == 4096 and dropped == []
    low, _ = _render(_req(_user("x"), temperature=-1.0))
    assert low["temperature"] == 0.0
    assert "stream" not in _render(_req(_user("x")))[0]


def test_render_request_maps_tools_and_tool_choice() -> None:
    tools = [Tool("f", "does f", {"type": "object", "properties": {"a": {"type": "string"}}}, True), Tool("g")]
    body, _ = _render(_req(_user("x"), tools=tools, tool_choice=ToolChoice("function", "f")))
    assert body["tools"] == [
        {
            "name": "f",
            "description": "does f",
            "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            "strict": True,
        },
        {"name": "g", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "f"}
    for mode, expected in (("auto", "auto"), ("required", "any"), ("none", "none")):
        assert _render(_req(_user("x"), tools=tools, tool_choice=ToolChoice(mode)))[0]["tool_choice"] == {  # type: ignore[arg-type]
            "type": expected
        }
    serial, _ = _render(_req(_user("x"), tools=tools, parallel_tool_calls=False))
    assert serial["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "tool_choice" not in _render(_req(_user("x"), tool_choice=ToolChoice("none")))[0]


def test_render_request_renders_images_and_refuses_unsupported_media_types() -> None:
    req = _req(
        Message(
            "user",
            [
                ImagePart(media_type="image/jpg", data="AAA"),
                ImagePart(url="https://x/cat.png", detail="high"),
                ImagePart(url="data:image/webp;base64,BBB"),
            ],
        )
    )
    body, _ = _render(req)
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "BBB"}},
    ]
    with pytest.raises(GatewayError) as info:
        _render(_req(Message("user", [ImagePart(media_type="image/tiff", data="AAA")])))
    assert info.value.kind == "invalid_request" and "image/tiff" in info.value.message


@pytest.mark.parametrize(
    ("fields", "feature"),
    [
        ({"n": 2}, "n"),
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"response_format": ResponseFormat("json_object")}, "response_format"),
    ],
)
def test_render_request_drops_or_rejects_unsupported_features(fields: dict[str, Any], feature: str) -> None:
    body, dropped = _render(_req(_user("x"), **fields))
    assert dropped == [feature]
    assert feature not in body and "output_config" not in body
    with pytest.raises(GatewayError) as info:
        _render(_req(_user("x"), **fields), unsupported="reject")
    assert info.value.kind == "invalid_request" and info.value.param == feature


def test_render_request_keeps_no_op_values_of_unsupported_features_silently() -> None:
    _, dropped = _render(_req(_user("x"), n=1, presence_penalty=0.0, response_format=ResponseFormat("text")))
    assert dropped == []


def test_render_request_maps_json_schema_to_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    body, dropped = _render(_req(_user("x"), response_format=ResponseFormat("json_schema", schema, "s", True)))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}} and dropped == []


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
def test_render_request_maps_reasoning_effort_to_budget_and_drops_temperature(effort: str, budget: int) -> None:
    body, dropped = _render(_req(_user("x"), reasoning_effort=effort, temperature=0.3, top_k=5, top_p=0.5))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] > budget
    assert "temperature" not in body and "top_k" not in body and body["top_p"] == 0.95
    assert dropped == ["temperature", "top_k"]


def test_render_request_thinking_budget_fits_under_max_tokens() -> None:
    body, _ = _render(_req(_user("x"), thinking_budget=3000, max_tokens=8000))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000} and body["max_tokens"] == 8000
    lowered, _ = _render(_req(_user("x"), reasoning_effort="high", max_tokens=5000))
    assert lowered["thinking"]["budget_tokens"] == 4999
    off, dropped = _render(_req(_user("x"), reasoning_effort="high", max_tokens=500))
    assert "thinking" not in off and dropped == ["reasoning_effort"]
    assert "thinking" not in _render(_req(_user("x"), reasoning_effort="minimal"))[0]
    assert "thinking" not in _render(_req(_user("x"), thinking_budget=0))[0]
    assert _render(_req(_user("x"), thinking_budget=200))[0]["thinking"]["budget_tokens"] == 1024  # API minimum
    assert _render(_req(_user("x"), thinking_budget=-1))[0]["thinking"]["budget_tokens"] == 4096  # Gemini dynamic


def test_render_request_leaves_out_empty_text_and_empty_turns() -> None:
    req = _req(
        Message("user", [TextPart(""), TextPart("q")]),
        Message("assistant", [TextPart("")]),
        _user("q2"),
        Message("tool", [TextPart("")], tool_call_id="c"),
    )
    body, _ = _render(req)
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c"},
                {"type": "text", "text": "q"},
                {"type": "text", "text": "q2"},
            ],
        }
    ]


def test_render_request_forced_tool_use_wins_over_thinking() -> None:
    req = _req(_user("x"), tools=[Tool("f")], tool_choice=ToolChoice("required"), reasoning_effort="low")
    body, dropped = _render(req)
    assert "thinking" not in body and body["tool_choice"] == {"type": "any"} and dropped == ["reasoning_effort"]


def test_render_request_keeps_only_signed_thinking_in_history() -> None:
    req = _req(
        _user("q"),
        Message(
            "assistant",
            [ThinkingPart("unsigned"), ThinkingPart("signed", "s1"), ThinkingPart("", "blob", True), TextPart("a")],
        ),
        _user("q2"),
    )
    body, _ = _render(req)
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "signed", "signature": "s1"},
        {"type": "redacted_thinking", "data": "blob"},
        {"type": "text", "text": "a"},
    ]


def test_rendered_request_is_accepted_by_the_sdk_types() -> None:
    """The SDK's own request model validates what render_request produces."""
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
    from pydantic import TypeAdapter

    req = _req(
        Message("system", [TextPart("s")]),
        _user("go"),
        Message("assistant", [ThinkingPart("t", "sig")], [ToolCall("call_1", "f", '{"a":1}')]),
        Message("tool", [TextPart("r1")], tool_call_id="call_1"),
        tools=[Tool("f", "d", {"type": "object"})],
        tool_choice=ToolChoice("auto"),
        parallel_tool_calls=False,
        reasoning_effort="low",
        user="u",
        stop=["x"],
    )
    body, _ = _render(req)
    TypeAdapter(MessageCreateParamsNonStreaming).validate_python(body)


# ---------------------------------------------------------------- provider side: answers


def test_parse_response_reads_text_finish_and_usage() -> None:
    resp = fmt.parse_response(fixture_bytes("anthropic/message-basic.response.json"))
    assert (resp.id, resp.model) == ("msg_01Fg1JVgvCYUHWsxrj9GkpEv", "claude-3-opus-20240229")
    (choice,) = resp.choices
    assert choice.text == "The capital of France is Paris." and choice.finish_reason == "stop"
    assert resp.usage == Usage(input_tokens=20, output_tokens=10)


def test_parse_response_reads_tools_thinking_and_cache_usage() -> None:
    body = {
        "id": "msg_9",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "redacted_thinking", "data": "d"},
            {"type": "text", "text": "a"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": [1, 2]}},
            {"type": "text", "text": "b"},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 7,
            "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
            "output_tokens": 3,
        },
    }
    resp = fmt.parse_response(orjson.dumps(body))
    choice = resp.choices[0]
    assert choice.text == "ab" and choice.finish_reason == "tool_calls"
    assert choice.thinking == [ThinkingPart("hmm", "s"), ThinkingPart("", "d", True)]
    assert choice.tool_calls == [ToolCall("toolu_1", "f", '{"x":[1,2]}')]
    assert resp.usage == Usage(
        input_tokens=112, output_tokens=3, cached_tokens=100, cache_creation_tokens=7, cache_write_1h_tokens=4
    )
    rendered = orjson.loads(fmt.render_response(resp))
    assert rendered["usage"] == {
        "input_tokens": 5,
        "cache_creation_input_tokens": 7,
        "cache_read_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
        "output_tokens": 3,
    }
    assert replace(fmt.parse_response(fmt.render_response(resp)), created=resp.created) == resp


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_parse_response_maps_stop_reason(stop_reason: str, finish: str) -> None:
    body = {"id": "msg_1", "model": "m", "content": [], "stop_reason": stop_reason, "usage": {}}
    assert fmt.parse_response(orjson.dumps(body)).choices[0].finish_reason == finish


@SETTINGS
@given(st.binary(max_size=200) | _json_values.map(orjson.dumps))
def test_parse_response_fuzz_raises_only_gateway_errors(body: bytes) -> None:
    with contextlib.suppress(GatewayError):
        fmt.parse_response(body)


@pytest.mark.parametrize("rel", list(ERROR_FIXTURES))
def test_parse_error_of_recorded_error_bodies(rel: str) -> None:
    status, kind = ERROR_FIXTURES[rel]
    raw = fixture_bytes(rel)
    error = fmt.parse_error(status, raw)
    assert error.kind == kind and error.status == status
    assert error.message == orjson.loads(raw)["error"]["message"]


@pytest.mark.parametrize(
    ("status", "etype", "kind", "client"),
    [
        (529, "overloaded_error", "unavailable", 529),
        (429, "rate_limit_error", "rate_limit", 429),
        (500, "api_error", "provider_error", 500),
        (401, "authentication_error", "provider_auth", 502),
        (413, "request_too_large", "request_too_large", 413),
    ],
)
def test_parse_error_maps_status_to_kind(status: int, etype: str, kind: str, client: int) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": etype, "message": "m"}})
    error = fmt.parse_error(status, body)
    assert error.kind == kind and client_status(error) == client
    assert error.code == etype


@SETTINGS
@given(st.integers(100, 599), st.binary(max_size=100))
def test_parse_error_never_raises(status: int, body: bytes) -> None:
    assert isinstance(fmt.parse_error(status, body), GatewayError)


# ---------------------------------------------------------------- provider side: StreamDecoder


@pytest.mark.parametrize("rel", STREAM_FIXTURES)
def test_stream_decoder_reads_what_the_fixture_holds(rel: str) -> None:
    raw = fixture_bytes(rel)
    truth = _fixture_truth(raw)
    events = _decode(raw)
    assert isinstance(events[0], StreamStart) and events[0].model
    assert not [e for e in events if isinstance(e, StreamFailure)]
    got = _collect(events)
    assert got["text"] == truth["text"]
    assert got["calls"] == truth["calls"]
    assert got["finish"] == fmt_common._FINISH_IN[truth["stop"]]
    assert (got["usage"].input_tokens, got["usage"].output_tokens) == (truth["input"], truth["output"])


def test_stream_decoder_spot_checks_recorded_values() -> None:
    basic = _collect(_decode(fixture_bytes("anthropic/stream-basic.response.sse")))
    assert basic["text"] == "Hello there!" and basic["finish"] == "stop"
    assert basic["usage"] == Usage(input_tokens=11, output_tokens=6)
    tools = _decode(fixture_bytes("anthropic/stream-tool-use.response.sse"))
    got = _collect(tools)
    assert got["calls"] == [("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", '{"location": "Paris"}')]
    assert got["finish"] == "tool_calls" and got["usage"] == Usage(input_tokens=377, output_tokens=65)
    assert tools[0] == StreamStart("msg_019Q1hrJbZG26Fb9BQhrkHEr", "claude-sonnet-4-20250514", tools[0].created, 377)


@pytest.mark.parametrize("rel", STREAM_FIXTURES)
def test_stream_decoder_gives_same_events_byte_by_byte_and_with_crlf(rel: str) -> None:
    raw = fixture_bytes(rel)
    whole = _normalized(_decode(raw))
    assert _normalized(_decode_chunks([raw[i : i + 1] for i in range(len(raw))])) == whole
    assert _normalized(_decode(raw.replace(b"\n", b"\r\n"))) == whole


@SETTINGS
@given(data=st.data())
def test_stream_decoder_any_split_gives_same_events(data: st.DataObject) -> None:
    rel = data.draw(st.sampled_from(STREAM_FIXTURES))
    raw = fixture_bytes(rel)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=30)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert _normalized(_decode_chunks(chunks)) == _normalized(_decode(raw))


def test_stream_decoder_reports_error_event_mid_stream() -> None:
    raw = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"c","usage":'
        b'{"input_tokens":3,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":'
        b'{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
        b'{"type":"text_delta","text":"Hi"}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    events = _decode(raw)
    assert isinstance(events[-1], StreamFailure)
    assert (events[-1].error.kind, events[-1].error.message) == ("unavailable", "Overloaded")
    assert len([e for e in events if isinstance(e, StreamFailure)]) == 1
    assert _collect(events)["text"] == "Hi"


def test_stream_decoder_reports_a_bare_json_error_written_without_data_prefix() -> None:
    raw = fixture_bytes("anthropic/stream-basic.response.sse")
    cut = raw[: raw.index(b"event: content_block_stop")]
    events = _decode(cut + b'{"type":"error","error":{"type":"api_error","message":"boom"}}\n\n')
    failures = [e for e in events if isinstance(e, StreamFailure)]
    assert len(failures) == 1 and failures[0].error.kind == "provider_error" and failures[0].error.message == "boom"


@pytest.mark.parametrize(
    ("etype", "kind"),
    [("rate_limit_error", "rate_limit"), ("api_error", "provider_error"), ("invalid_request_error", "invalid_request")],
)
def test_stream_decoder_maps_error_types(etype: str, kind: str) -> None:
    raw = b'event: error\ndata: {"type":"error","error":{"type":"' + etype.encode() + b'","message":"x"}}\n\n'
    (failure,) = _decode(raw)
    assert isinstance(failure, StreamFailure) and failure.error.kind == kind


def test_stream_decoder_reports_a_stream_cut_before_its_stop_reason() -> None:
    raw = fixture_bytes("anthropic/stream-basic.response.sse")
    cut = raw[: raw.index(b"event: message_delta")]
    events = _decode(cut)
    assert isinstance(events[-1], StreamFailure) and events[-1].error.kind == "provider_error"
    assert _collect(events)["text"] == "Hello there!"


def test_stream_decoder_reads_thinking_and_cache_usage() -> None:
    lines = [
        {"type": "message_start", "message": {"id": "msg_t", "model": "c", "usage": {
            "input_tokens": 4, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 2, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "let me"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]  # fmt: skip
    raw = b"".join(b"event: " + d["type"].encode() + b"\ndata: " + orjson.dumps(d) + b"  \n\n" for d in lines)
    events = _decode(raw)
    assert events[0].input_tokens == 16
    assert [e for e in events if isinstance(e, ThinkingDelta)] == [ThinkingDelta("let me"), ThinkingDelta("", "SIG")]
    assert _collect(events)["finish"] == "length"
    assert _collect(events)["usage"] == Usage(
        input_tokens=16, output_tokens=9, cached_tokens=10, cache_creation_tokens=2
    )


@SETTINGS
@given(st.lists(st.binary(max_size=60), max_size=8))
def test_stream_decoder_fuzz_never_raises(chunks: list[bytes]) -> None:
    events = _decode_chunks(chunks)
    assert all(not isinstance(e, StreamFailure) or isinstance(e.error, GatewayError) for e in events)
