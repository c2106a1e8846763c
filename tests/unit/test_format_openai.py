"""OpenAI Chat Completions format: fixtures, round trips, streams, the official SDK, fuzzing."""

from __future__ import annotations

import re
import struct
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:  # the installed openai SDK is built on the httpx2 fork
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

import contextlib

import openai as openai_sdk

from extproc.errors import GatewayError, client_status
from extproc.formats import openai as fmt
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
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
from extproc.provider_kinds import OPENAI
from extproc.providers.rendering import lacks_of
from tests.support.fixtures import fixture_bytes

REQUEST_FIXTURES = [
    "chat-basic",
    "chat-image-to-text",
    "chat-json-mode",
    "chat-parallel-tools",
    "chat-streaming",
    "chat-streaming-usage",
    "chat-tools",
]
RESPONSE_FIXTURES = ["chat-basic", "chat-json-mode", "chat-parallel-tools", "chat-tools"]
STREAM_FIXTURES = ["chat-streaming", "chat-streaming-usage"]


def fixture(name: str) -> bytes:
    """An openai/ fixture, loaded in place (skips, naming the directory, when absent)."""
    return fixture_bytes(f"openai/{name}")


def fixture_json(name: str) -> Any:
    return orjson.loads(fixture(name))


def sse_frames(raw: bytes) -> list[Any]:
    """The JSON payloads of an OpenAI SSE body, parsed independently of the module."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                out.append(orjson.loads(line[6:]))
    return out


def sse_body(*chunks: Any, done: bool = True) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


def chunk(choices: list[Any], usage: Any = None, **extra: Any) -> dict[str, Any]:
    base = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": choices,
    }
    if usage is not None:
        base["usage"] = usage
    base.update(extra)
    return base


def decode_all(raw: bytes) -> list[Any]:
    dec = fmt.StreamDecoder()
    return dec.feed(raw) + dec.close()


def decode_split(raw: bytes, cuts: list[int]) -> list[Any]:
    dec = fmt.StreamDecoder()
    events: list[Any] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(raw)]:
        events += dec.feed(raw[prev:cut])
        prev = cut
    return events + dec.close()


def encode_all(request: ChatRequest, events: list[Any]) -> bytes:
    enc = fmt.StreamEncoder(request)
    return enc.encode(events) + enc.close()


def sdk(handler: Any) -> openai_sdk.OpenAI:
    transport = httpx.MockTransport(handler)
    return openai_sdk.OpenAI(
        api_key="x", base_url="http://t/v1", max_retries=0, http_client=httpx.Client(transport=transport)
    )


def serve(body: bytes, status: int = 200, content_type: str = "application/json") -> openai_sdk.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return sdk(handler)


def serve_stream(body: bytes) -> openai_sdk.OpenAI:
    return serve(body, content_type="text/event-stream; charset=utf-8")


def text_of(events: list[Any], index: int = 0) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.index == index)


def simple_request(**kw: Any) -> ChatRequest:
    return ChatRequest(model="gpt-test", messages=[Message("user", [TextPart("hi")])], **kw)


# ------------------------------------------------------------------ client requests


def test_parse_basic_fixture_gives_one_user_message() -> None:
    req = fmt.parse_request(fixture("chat-basic.request.json"), None)
    assert req.model == "gpt-5-nano"
    assert req.stream is False
    assert req.messages == [Message("user", [TextPart("Hello!")])]


def test_parse_developer_role_becomes_system_with_stream_usage_and_limits() -> None:
    req = fmt.parse_request(fixture("chat-streaming-usage.request.json"), None)
    assert req.messages == [Message("system", [TextPart("Hello, I'm a developer!")])]
    assert req.stream is True
    assert req.include_usage is True
    assert req.max_tokens == 100
    assert req.temperature == 1


def test_parse_stream_without_stream_options_does_not_include_usage() -> None:
    req = fmt.parse_request(fixture("chat-streaming.request.json"), None)
    assert req.stream is True
    assert req.include_usage is False


def test_parse_image_data_uri_becomes_inline_image_part() -> None:
    body = fixture_json("chat-image-to-text.request.json")
    url = body["messages"][0]["content"][1]["image_url"]["url"]
    req = fmt.parse_request(fixture("chat-image-to-text.request.json"), None)
    text, image = req.messages[0].content
    assert text == TextPart("Answer in up to 5 words: What's in this image?")
    assert isinstance(image, ImagePart)
    assert image.media_type == "image/png"
    assert image.data == url.split(",", 1)[1]
    assert image.url is None


def test_parse_json_mode_fixture() -> None:
    req = fmt.parse_request(fixture("chat-json-mode.request.json"), None)
    assert req.response_format == ResponseFormat("json_object")


@pytest.mark.parametrize("name", ["chat-tools", "chat-parallel-tools"])
def test_parse_tools_fixture(name: str) -> None:
    body = fixture_json(f"{name}.request.json")
    req = fmt.parse_request(fixture(f"{name}.request.json"), None)
    fn = body["tools"][0]["function"]
    assert len(req.tools) == 1
    assert req.tools[0].name == fn["name"] == "get_current_weather"
    assert req.tools[0].description == fn["description"]
    assert req.tools[0].parameters == fn["parameters"]
    assert req.tool_choice == ToolChoice("auto")
    assert req.parallel_tool_calls is body.get("parallel_tool_calls")


@pytest.mark.parametrize("name", REQUEST_FIXTURES)
def test_request_fixture_round_trips_through_render_request(name: str) -> None:
    first = fmt.parse_request(fixture(f"{name}.request.json"), None)
    rendered = fmt.render_request(first, RenderOptions(model=first.model))
    assert rendered.dropped == []
    assert fmt.parse_request(rendered.body, None) == first


FULL_REQUEST = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "dev rule"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q":1}'}},
                {"id": "call_b", "type": "function", "function": {"name": "other", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_b", "content": "B result"},
        {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "A result"}]},
        {"role": "assistant", "content": "done", "refusal": None},
        {"role": "assistant", "content": None, "refusal": "I can't"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG", "detail": "auto"}}],
        },
    ],
    "max_tokens": 50,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "stop": "END",
    "n": 2,
    "seed": 7,
    "presence_penalty": 0.1,
    "frequency_penalty": -0.2,
    "stream": True,
    "stream_options": {"include_usage": True},
    "user": "u-1",
    "reasoning_effort": "low",
    "parallel_tool_calls": False,
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}, "strict": True}}],
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    },
    "logprobs": False,
}


def test_parse_full_request_maps_every_field() -> None:
    req = fmt.parse_request(orjson.dumps(FULL_REQUEST), None)
    roles = [m.role for m in req.messages]
    assert roles == ["system", "system", "user", "assistant", "tool", "tool", "assistant", "assistant", "user"]
    assert req.messages[8].content == [ImagePart(media_type="image/webp", data="UklG", detail="auto")]
    assert req.messages[2].content[1] == ImagePart(url="https://x.test/cat.jpg", detail="low")
    assert req.messages[3].content == []
    assert req.messages[3].tool_calls == [ToolCall("call_a", "lookup", '{"q":1}'), ToolCall("call_b", "other", "{}")]
    assert (req.messages[4].tool_call_id, req.messages[4].name) == ("call_b", "other")
    assert (req.messages[5].tool_call_id, req.messages[5].name) == ("call_a", "lookup")
    assert req.messages[5].content == [TextPart("A result")]
    assert req.messages[7].content == [TextPart("I can't")]
    assert req.max_tokens == 50
    assert (req.temperature, req.top_p, req.top_k) == (0.5, 0.9, 40)
    assert req.stop == ["END"]
    assert (req.n, req.seed, req.presence_penalty, req.frequency_penalty) == (2, 7, 0.1, -0.2)
    assert (req.stream, req.include_usage) == (True, True)
    assert (req.user, req.reasoning_effort, req.parallel_tool_calls) == ("u-1", "low", False)
    assert req.tools[0].strict is True
    assert req.tool_choice == ToolChoice("function", "lookup")
    assert req.response_format == ResponseFormat("json_schema", {"type": "object"}, "out", True)


def test_max_completion_tokens_wins_over_legacy_max_tokens() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 9}
    assert fmt.parse_request(orjson.dumps(body), None).max_tokens == 9


def test_tool_message_keeps_its_own_name_when_call_is_unknown() -> None:
    body = {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c9", "content": "r", "name": "fn"}]}
    msg = fmt.parse_request(orjson.dumps(body), None).messages[0]
    assert (msg.tool_call_id, msg.name) == ("c9", "fn")


def test_path_model_is_used_when_body_has_none() -> None:
    body = {"messages": [{"role": "user", "content": "x"}]}
    assert fmt.parse_request(orjson.dumps(body), "from-path").model == "from-path"


def _msgs(*messages: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages)}


BAD_REQUESTS = [
    (b"not json", "body"),
    (b"[1, 2]", "body"),
    (orjson.dumps({"messages": [{"role": "user", "content": "x"}]}), "model"),
    (orjson.dumps({"model": "m", "messages": []}), "messages"),
    (orjson.dumps({"model": "m"}), "messages"),
    (orjson.dumps(_msgs("hello")), "messages[0]"),
    (orjson.dumps(_msgs({"role": 5, "content": "x"})), "messages[0].role"),
    (orjson.dumps(_msgs({"content": "x"})), "messages[0].role"),
    (orjson.dumps(_msgs({"role": "user"})), "messages[0].content"),
    (orjson.dumps(_msgs({"role": "user", "content": 5})), "messages[0].content"),
    (orjson.dumps(_msgs({"role": "user", "content": [{"type": 7}]})), "messages[0].content[0].type"),
    (orjson.dumps(_msgs({"role": "system", "content": [{"type": "image_url"}]})), "messages[0].content[0].type"),
    (orjson.dumps(_msgs({"role": "user", "content": [{"type": "text", "text": 3}]})), "messages[0].content[0].text"),
    (
        orjson.dumps(
            _msgs({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]})
        ),
        "messages[0].content[0].image_url.url",
    ),
    (
        orjson.dumps(
            _msgs({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]})
        ),
        "messages[0].content[0].image_url.url",
    ),
    (orjson.dumps(_msgs({"role": "tool", "content": "x"})), "messages[0].tool_call_id"),
    (
        orjson.dumps(
            _msgs({"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}]})
        ),
        "messages[0].tool_calls[0].function.arguments",
    ),
    (
        orjson.dumps(_msgs({"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]})),
        "messages[0].tool_calls[0].id",
    ),
    (orjson.dumps({**_msgs({"role": "user", "content": "x"}), "temperature": "hot"}), "temperature"),
    (orjson.dumps({**_msgs({"role": "user", "content": "x"}), "max_tokens": 1.5}), "max_tokens"),
    (orjson.dumps({**_msgs({"role": "user", "content": "x"}), "n": True}), "n"),
    (orjson.dumps({**_msgs({"role": "user", "content": "x"}), "stop": ["a", 1]}), "stop"),
    (orjson.dumps({**_msgs({"role": "user", "content": "x"}), "stream": "yes"}), "stream"),
    (orjson.dumps({**_msgs({"role": "user", "content": "x"}), "tool_choice": "sometimes"}), "tool_choice"),
    (orjson.dumps({**_msgs({"role": "user", "content": "x"}), "tools": [{"function": {}}]}), "tools[0].function.name"),
    (
        orjson.dumps({**_msgs({"role": "user", "content": "x"}), "response_format": {"type": 1}}),
        "response_format.type",
    ),
    (
        orjson.dumps({**_msgs({"role": "user", "content": "x"}), "stream_options": {"include_usage": 1}}),
        "stream_options.include_usage",
    ),
]


_USER = {"role": "user", "content": "x"}
UNKNOWN_FEATURES = [
    ({**_msgs(_USER, {"role": "function", "name": "f", "content": "r"})}, "role.function", "messages[1].role"),
    (_msgs({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}), "content.input_audio", None),
    (_msgs({"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}), "content.file", None),
    ({**_msgs(_USER), "tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools.custom", "tools[0]"),
    ({**_msgs(_USER), "tool_choice": {"type": "allowed_tools"}}, "tool_choice.allowed_tools", "tool_choice"),
    ({**_msgs(_USER), "response_format": {"type": "xml"}}, "response_format.xml", "response_format.type"),
    ({**_msgs(_USER), "web_search_options": {}}, "web_search_options", "web_search_options"),
    ({**_msgs(_USER), "logit_bias": {"50256": -100}}, "logit_bias", "logit_bias"),
    ({**_msgs(_USER), "modalities": ["text", "audio"]}, "modalities", "modalities"),
    (
        _msgs({"role": "assistant", "tool_calls": [{"type": "custom", "id": "c", "custom": {"name": "g"}}]}),
        "tool_calls.custom",
        "messages[0].tool_calls[0].type",
    ),
    ({**_msgs(_USER), "brand_new_field": 1}, "brand_new_field", "brand_new_field"),
    ({**_msgs(_USER), "x\r\nSet-Cookie: a": 1}, "other", None),
]


@pytest.mark.parametrize(("body", "name", "param"), UNKNOWN_FEATURES)
def test_what_the_canonical_model_cannot_carry_is_recorded_never_refused(
    body: dict[str, Any], name: str, param: str | None
) -> None:
    req = fmt.parse_request(orjson.dumps(body), None)
    (feature,) = req.api_features
    assert feature.name == name and feature.when_foreign == "policy"
    if param is not None:
        assert feature.param == param


def test_defaults_sent_as_false_or_null_are_not_features() -> None:
    body = {**_msgs(_USER), "logprobs": False, "store": None, "modalities": []}
    assert fmt.parse_request(orjson.dumps(body), None).api_features == []


@pytest.mark.parametrize(("body", "param"), BAD_REQUESTS)
def test_bad_client_request_is_invalid_request_naming_the_field(body: bytes, param: str) -> None:
    with pytest.raises(GatewayError) as info:
        fmt.parse_request(body, None)
    assert info.value.kind == "invalid_request"
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.message


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "function",
            "text",
            "image_url",
            "refusal",
            "auto",
            "required",
            "none",
            "json_schema",
            "json_object",
            "data:image/png;base64,QUJD",
            "https://x/y.png",
        ]
    )
)
FIELD_NAMES = st.sampled_from(
    [
        "model", "messages", "role", "content", "type", "text", "image_url", "url", "detail", "tool_calls",
        "tool_call_id", "id", "function", "name", "arguments", "refusal", "tools", "parameters", "strict",
        "tool_choice", "response_format", "json_schema", "schema", "stop", "stream", "stream_options",
        "include_usage", "max_tokens", "max_completion_tokens", "temperature", "n", "seed", "top_k", "input",
        "dimensions", "encoding_format", "user", "reasoning_effort", "description",
    ]
) | st.text(max_size=6)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELD_NAMES, inner, max_size=6),
    max_leaves=40,
)
TOP_LEVEL = st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=8)
CHAT_SHAPED = st.fixed_dictionaries(
    {
        "model": st.one_of(st.just("m"), JSON_VALUES),
        "messages": st.lists(st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=6), max_size=4) | JSON_VALUES,
    }
).flatmap(lambda base: TOP_LEVEL.map(lambda extra: {**extra, **base}))


def _only_gateway_errors(fn: Any, body: bytes, kind: str) -> None:
    try:
        fn(body, None)
    except GatewayError as e:
        assert e.kind == kind
        assert e.param is not None or kind != "invalid_request"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(CHAT_SHAPED, TOP_LEVEL, JSON_VALUES))
def test_fuzzed_json_requests_raise_only_invalid_request(body: Any) -> None:
    _only_gateway_errors(fmt.parse_request, orjson.dumps(body), "invalid_request")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzzed_bytes_requests_raise_only_invalid_request(body: bytes) -> None:
    _only_gateway_errors(fmt.parse_request, body, "invalid_request")


# ------------------------------------------------------------------ client responses


@pytest.mark.parametrize("name", RESPONSE_FIXTURES)
def test_parse_response_fixture_reads_text_tools_finish_usage(name: str) -> None:
    raw = fixture_json(f"{name}.response.json")
    resp = fmt.parse_response(fixture(f"{name}.response.json"))
    msg = raw["choices"][0]["message"]
    assert resp.id == raw["id"] and resp.model == raw["model"] and resp.created == raw["created"]
    choice = resp.choices[0]
    assert choice.text == (msg["content"] or "")
    assert choice.finish_reason == raw["choices"][0]["finish_reason"]
    assert [(t.id, t.name, t.arguments) for t in choice.tool_calls] == [
        (t["id"], t["function"]["name"], t["function"]["arguments"]) for t in msg.get("tool_calls", [])
    ]
    usage = raw["usage"]
    assert resp.usage == Usage(
        input_tokens=usage["prompt_tokens"],
        output_tokens=usage["completion_tokens"],
        cached_tokens=usage["prompt_tokens_details"]["cached_tokens"],
        reasoning_tokens=usage["completion_tokens_details"]["reasoning_tokens"],
    )


@pytest.mark.parametrize("name", RESPONSE_FIXTURES)
def test_render_response_reproduces_the_fixture(name: str) -> None:
    raw = fixture_json(f"{name}.response.json")
    rendered = orjson.loads(fmt.render_response(fmt.parse_response(fixture(f"{name}.response.json"))))
    for choice in raw["choices"]:
        choice.setdefault("logprobs", None)  # the recording left it out; the live API sends null
    assert rendered == raw


@pytest.mark.parametrize("name", RESPONSE_FIXTURES)
def test_response_round_trip_is_stable(name: str) -> None:
    first = fmt.parse_response(fixture(f"{name}.response.json"))
    assert fmt.parse_response(fmt.render_response(first)) == first


@pytest.mark.parametrize("name", RESPONSE_FIXTURES)
def test_sdk_parses_rendered_response(name: str) -> None:
    resp = fmt.parse_response(fixture(f"{name}.response.json"))
    completion = serve(fmt.render_response(resp)).chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": "x"}]
    )
    choice = completion.choices[0]
    assert completion.id == resp.id
    assert choice.message.content == (resp.choices[0].text or None)
    assert choice.finish_reason == resp.choices[0].finish_reason
    assert [(t.id, t.function.name, t.function.arguments) for t in choice.message.tool_calls or []] == [
        (t.id, t.name, t.arguments) for t in resp.choices[0].tool_calls
    ]
    assert resp.usage is not None and completion.usage is not None
    assert completion.usage.prompt_tokens == resp.usage.input_tokens
    assert completion.usage.completion_tokens == resp.usage.output_tokens
    assert completion.usage.total_tokens == resp.usage.total_tokens
    assert completion.usage.completion_tokens_details.reasoning_tokens == resp.usage.reasoning_tokens


def test_render_response_drops_thinking_and_maps_error_finish_to_stop() -> None:
    resp = ChatResponse(
        id="chatcmpl-1",
        model="m",
        created=1,
        choices=[
            Choice(0, "answer", thinking=[ThinkingPart("secret", "sig")], finish_reason="error"),
            Choice(1, "", refusal="no", finish_reason="content_filter"),
        ],
        usage=Usage(input_tokens=10, output_tokens=5, cached_tokens=4, reasoning_tokens=2),
    )
    body = fmt.render_response(resp)
    assert b"secret" not in body
    out = orjson.loads(body)
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["choices"][1]["message"] == {"role": "assistant", "content": None, "refusal": "no", "annotations": []}
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 4
    assert out["usage"]["total_tokens"] == 15
    completion = serve(body).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert completion.choices[1].message.refusal == "no"


@pytest.mark.parametrize(
    ("kind", "sdk_error"),
    [
        ("invalid_request", openai_sdk.BadRequestError),
        ("authentication", openai_sdk.AuthenticationError),
        ("not_found", openai_sdk.NotFoundError),
        ("rate_limit", openai_sdk.RateLimitError),
        ("provider_auth", openai_sdk.InternalServerError),
        ("unavailable", openai_sdk.InternalServerError),
    ],
)
def test_rendered_error_raises_the_sdk_typed_error(kind: str, sdk_error: type[Exception]) -> None:
    error = GatewayError(kind, "it broke", param="temperature")  # type: ignore[arg-type]
    body = fmt.render_error(error, "req-123")
    client = serve(body, status=client_status(error))
    with pytest.raises(sdk_error) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == client_status(error)  # type: ignore[attr-defined]
    assert info.value.param == "temperature"  # type: ignore[attr-defined]
    assert "it broke" in info.value.message  # type: ignore[attr-defined]
    assert "req-123" in info.value.message  # type: ignore[attr-defined]


def test_render_models_lists_ids_for_the_sdk() -> None:
    body = fmt.render_models(["gpt-4o", "claude-x"])
    assert orjson.loads(body)["object"] == "list"
    models = list(serve(body).models.list())
    assert [m.id for m in models] == ["gpt-4o", "claude-x"]
    assert all(m.object == "model" and isinstance(m.created, int) and m.owned_by for m in models)


# ------------------------------------------------------------------ provider streams (decoder)


def test_decode_text_stream_fixture() -> None:
    raw = fixture("chat-streaming.response.sse")
    frames = sse_frames(raw)
    events = decode_all(raw)
    assert events[0] == StreamStart(frames[0]["id"], frames[0]["model"], frames[0]["created"])
    expected = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames)
    assert text_of(events) == expected and expected
    assert events[-1] == Finish("stop", 0)
    assert not any(isinstance(e, (UsageUpdate, StreamFailure)) for e in events)


def test_decode_usage_stream_fixture() -> None:
    raw = fixture("chat-streaming-usage.response.sse")
    usage = sse_frames(raw)[-1]["usage"]
    events = decode_all(raw)
    assert [type(e) for e in events] == [StreamStart, Finish, UsageUpdate]
    assert events[1] == Finish("length", 0)
    assert events[2] == UsageUpdate(
        Usage(
            input_tokens=usage["prompt_tokens"],
            output_tokens=usage["completion_tokens"],
            reasoning_tokens=usage["completion_tokens_details"]["reasoning_tokens"],
        )
    )


@pytest.mark.parametrize("name", STREAM_FIXTURES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_decoder_gives_same_events_for_any_chunk_split(name: str, data: st.DataObject) -> None:
    raw = fixture(f"{name}.response.sse")
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=40))
    assert decode_split(raw, cuts) == decode_all(raw)


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_decoder_fed_byte_by_byte_matches_whole(name: str) -> None:
    raw = fixture(f"{name}.response.sse")
    assert decode_split(raw, list(range(len(raw)))) == decode_all(raw)


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_decoder_survives_crlf_comments_and_missing_final_blank_line(name: str) -> None:
    raw = fixture(f"{name}.response.sse")
    mangled = b": keep-alive\r\n\r\n" + raw.replace(b"\n\n", b"\n: ping\n\n").replace(b"\n", b"\r\n")
    mangled = mangled.rstrip(b"\r\n")
    assert decode_all(mangled) == decode_all(raw)


TOOL_STREAM = sse_body(
    chunk([{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]),
    chunk([{"index": 0, "delta": {"content": "Checking"}, "finish_reason": None}]),
    chunk(
        [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "call_A", "type": "function", "function": {"name": "w", "arguments": ""}}
                    ]
                },
                "finish_reason": None,
            }
        ]
    ),
    chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}}]),
    chunk(
        [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 1, "id": "call_B", "type": "function", "function": {"name": "t", "arguments": "{}"}}
                    ]
                },
            }
        ]
    ),
    chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Paris"}'}}]}}]),
    chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
    chunk(
        [],
        usage={
            "prompt_tokens": 20,
            "completion_tokens": 9,
            "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 6},
        },
    ),
)


def test_decoder_reassembles_interleaved_tool_call_fragments() -> None:
    events = decode_all(TOOL_STREAM)
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts == [ToolCallStart(0, "call_A", "w"), ToolCallStart(1, "call_B", "t")]
    args = {0: "", 1: ""}
    for e in events:
        if isinstance(e, ToolCallDelta):
            args[e.call_index] += e.arguments
    assert args == {0: '{"city":"Paris"}', 1: "{}"}
    assert text_of(events) == "Checking"
    assert Finish("tool_calls", 0) in events
    assert events[-1] == UsageUpdate(Usage(input_tokens=20, output_tokens=9, cached_tokens=6))


def test_decoder_tells_calls_apart_by_id_when_index_is_missing() -> None:
    raw = sse_body(
        chunk([{"index": 0, "delta": {"tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": "{"}}]}}]),
        chunk([{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "}"}}]}}]),
        chunk([{"index": 0, "delta": {"tool_calls": [{"id": "c2", "function": {"name": "b", "arguments": "[]"}}]}}]),
        chunk([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
    )
    events = decode_all(raw)
    assert [e for e in events if isinstance(e, (ToolCallStart, ToolCallDelta))] == [
        ToolCallStart(0, "c1", "a"),
        ToolCallDelta(0, "{"),
        ToolCallDelta(0, "}"),
        ToolCallStart(1, "c2", "b"),
        ToolCallDelta(1, "[]"),
    ]


def test_decoder_turns_mid_stream_error_frame_into_failure_and_stops() -> None:
    raw = sse_body(
        chunk([{"index": 0, "delta": {"content": "partial"}}]),
        {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}},
        chunk([{"index": 0, "delta": {"content": "ignored"}}]),
    )
    events = decode_all(raw)
    assert text_of(events) == "partial"
    failure = events[-1]
    assert isinstance(failure, StreamFailure)
    assert failure.error.kind == "provider_error"
    assert failure.error.message == "The server had an error"
    assert sum(isinstance(e, StreamFailure) for e in events) == 1


def test_decoder_maps_rate_limit_error_frame() -> None:
    raw = sse_body({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})
    events = decode_all(raw)
    assert isinstance(events[0], StreamStart)  # a failure still comes after a start
    assert isinstance(events[1], StreamFailure)
    assert events[1].error.kind == "rate_limit"
    assert events[1].error.code == "rate_limit_exceeded"


def test_decoder_reports_a_truncated_stream() -> None:
    raw = sse_body(chunk([{"index": 0, "delta": {"content": "cut"}}]), done=False)
    events = decode_all(raw)
    assert text_of(events) == "cut"
    assert isinstance(events[-1], StreamFailure)
    assert events[-1].error.kind == "provider_error"


def test_decoder_reports_invalid_json_frame() -> None:
    events = decode_all(b"data: {not json}\n\n")
    assert isinstance(events[-1], StreamFailure)


def test_decoder_reads_reasoning_content_of_compatible_servers() -> None:
    raw = sse_body(
        chunk([{"index": 0, "delta": {"reasoning_content": "think"}}]),
        chunk([{"index": 0, "delta": {"reasoning": " more"}}]),
        chunk([{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]),
    )
    events = decode_all(raw)
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["think", " more"]
    assert text_of(events) == "ok"


def test_decoder_generates_id_and_created_when_missing() -> None:
    raw = sse_body({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]})
    start = decode_all(raw)[0]
    assert isinstance(start, StreamStart)
    assert start.id.startswith("chatcmpl-") and len(start.id) > 12
    assert start.created > 1_600_000_000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.lists(JSON_VALUES, max_size=4).map(lambda xs: sse_body(*xs, done=False)))
def test_decoder_never_raises_on_garbage(raw: bytes) -> None:
    dec = fmt.StreamDecoder()
    events = dec.feed(raw) + dec.close()
    assert all(not isinstance(e, StreamFailure) or isinstance(e.error, GatewayError) for e in events)
    if events:
        assert isinstance(events[0], StreamStart)


# ------------------------------------------------------------------ client streams (encoder)


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_reencoding_a_fixture_stream_reproduces_it_byte_for_byte(name: str) -> None:
    raw = fixture(f"{name}.response.sse")
    request = fmt.parse_request(fixture(f"{name}.request.json"), None)
    expected = re.sub(rb',"obfuscation":"[^"]*"', b"", raw)  # random padding, not part of the API
    assert encode_all(request, decode_all(raw)) == expected


@given(st.integers(min_value=0, max_value=9), st.text())
def test_a_text_chunk_is_written_as_the_general_chunk_writes_it(index: int, text: str) -> None:
    """Text deltas skip the dict and orjson's walk of it: the bytes must be the same, quotes,
    backslashes, control characters and non-ASCII text included."""
    enc = fmt.StreamEncoder(ChatRequest(model="m", messages=[]))
    general = enc._chunk({"index": index, "delta": {"content": text}, "finish_reason": None})
    assert enc._text_chunk(index, text) == general


def test_sdk_reads_reencoded_text_stream() -> None:
    raw = fixture("chat-streaming.response.sse")
    events = decode_all(raw)
    body = encode_all(fmt.parse_request(fixture("chat-streaming.request.json"), None), events)
    chunks = list(
        serve_stream(body).chat.completions.create(
            model="gpt-5-nano", messages=[{"role": "user", "content": "Hello!"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text_of(events)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)
    assert b'"usage"' not in body


def test_sdk_reads_usage_chunk_when_include_usage() -> None:
    request = simple_request(stream=True, include_usage=True)
    events = [
        StreamStart("chatcmpl-u", "m", 5),
        UsageUpdate(Usage(input_tokens=11)),  # Anthropic-style: input first
        TextDelta("hey"),
        Finish("stop"),
        UsageUpdate(Usage(input_tokens=11, output_tokens=3, cached_tokens=2)),  # after Finish
    ]
    body = encode_all(request, events)
    frames = sse_frames(body)
    assert all("usage" in f and f["usage"] is None for f in frames[:-1])
    assert frames[-1]["choices"] == []
    chunks = list(
        serve_stream(body).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 3, 14)
    assert usage.prompt_tokens_details.cached_tokens == 2
    assert body.endswith(b"data: [DONE]\n\n") and body.count(b"[DONE]") == 1


def _gemini_style_tool_events() -> list[Any]:
    return [
        StreamStart("chatcmpl-t", "m", 5),
        TextDelta("Let me check."),
        ToolCallStart(0, "toolu_1", "weather"),
        ToolCallDelta(0, ""),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallStart(3, "call_x", "time"),  # call_index gaps must not leak as OpenAI indexes
        ToolCallDelta(3, "{}"),
        UsageUpdate(Usage(input_tokens=7, output_tokens=4)),
        Finish("tool_calls"),
    ]


def test_sdk_stream_helper_accumulates_encoded_tool_calls() -> None:
    body = encode_all(simple_request(stream=True), _gemini_style_tool_events())
    client = serve_stream(body)
    with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as stream:
        completion = stream.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Let me check."
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls or []] == [
        ("toolu_1", "weather", '{"city":"Paris"}'),
        ("call_x", "time", "{}"),
    ]
    assert completion.choices[0].finish_reason == "tool_calls"
    indexes = [tc["index"] for f in sse_frames(body) for c in f["choices"] for tc in c["delta"].get("tool_calls", [])]
    assert indexes == [0, 0, 0, 1, 1]


def test_encoder_emits_one_chunk_per_batch_without_buffering() -> None:
    enc = fmt.StreamEncoder(simple_request(stream=True))
    first = enc.encode([StreamStart("chatcmpl-b", "m", 5)])
    second = enc.encode([TextDelta("a")])
    assert b'"role":"assistant"' in first and first.endswith(b"\n\n")
    assert sse_frames(second)[0]["choices"][0]["delta"] == {"content": "a"}
    assert enc.close().endswith(b"data: [DONE]\n\n")
    assert enc.close() == b""  # closing frames are written once


def test_encoder_without_stream_start_still_uses_one_id() -> None:
    body = encode_all(simple_request(stream=True), [TextDelta("a"), TextDelta("b"), Finish("length")])
    frames = sse_frames(body)
    assert len({f["id"] for f in frames}) == 1 and frames[0]["id"].startswith("chatcmpl-")
    assert frames[0]["model"] == "gpt-test"
    assert frames[-1]["choices"][0]["finish_reason"] == "length"


def test_encoder_opens_earlier_choices_first_when_a_later_one_speaks_first() -> None:
    body = encode_all(simple_request(stream=True, n=2), [TextDelta("B", index=1), Finish("stop", index=1)])
    frames = [f["choices"][0] for f in sse_frames(body)]
    assert [(c["index"], c["delta"]) for c in frames[:3]] == [
        (0, {"role": "assistant", "content": "", "refusal": None}),
        (1, {"role": "assistant", "content": "", "refusal": None}),
        (1, {"content": "B"}),
    ]


def test_encoder_drops_thinking_deltas() -> None:
    body = encode_all(simple_request(stream=True), [ThinkingDelta("hidden", "sig"), TextDelta("shown"), Finish("stop")])
    assert b"hidden" not in body and b"shown" in body


def test_encoder_streams_several_choices_in_order() -> None:
    request = simple_request(stream=True, n=2)
    events = [
        StreamStart("chatcmpl-n", "m", 5),
        TextDelta("B", index=1),
        TextDelta("A", index=0),
        Finish("stop", index=1),
        Finish("stop", index=0),
    ]
    body = encode_all(request, events)
    first_seen = []
    for f in sse_frames(body):
        for c in f["choices"]:
            if c["index"] not in first_seen:
                first_seen.append(c["index"])
    assert first_seen == [0, 1]  # choices open in index order, as the API does
    client = serve_stream(body)
    with client.chat.completions.stream(model="m", messages=[{"role": "user", "content": "hi"}], n=2) as stream:
        completion = stream.get_final_completion()
    assert [c.message.content for c in completion.choices] == ["A", "B"]


def test_encoder_writes_in_band_error_then_done_and_sdk_raises() -> None:
    enc = fmt.StreamEncoder(simple_request(stream=True, include_usage=True))
    body = enc.encode([StreamStart("chatcmpl-e", "m", 5), TextDelta("par"), UsageUpdate(Usage(1, 1))])
    body += enc.encode([StreamFailure(GatewayError("unavailable", "provider overloaded")), TextDelta("never")])
    assert enc.encode([TextDelta("after"), Finish("stop")]) == b""  # nothing follows the error
    body += enc.close()
    assert b'"choices":[]' not in body  # no usage chunk after a failure
    frames = sse_frames(body)
    assert frames[-1] == {
        "error": {"message": "provider overloaded", "type": "api_error", "param": None, "code": "unavailable"}
    }
    assert body.endswith(b"}\n\ndata: [DONE]\n\n") and b"never" not in body
    received = []
    with pytest.raises(openai_sdk.APIError) as info:
        for c in serve_stream(body).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            received.append(c)
    assert "provider overloaded" in info.value.message
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "par"


# ------------------------------------------------------------------ provider requests


def test_render_request_maps_canonical_fields_for_openai() -> None:
    req = ChatRequest(
        model="client-model",
        messages=[
            Message("system", [TextPart("sys")]),
            Message("user", [TextPart("see"), ImagePart(media_type="image/jpeg", data="QUJD", detail="high")]),
            Message(
                "assistant",
                [ThinkingPart("hmm", "sig"), TextPart("calling")],
                tool_calls=[ToolCall("toolu_1", "f", '{"a":1}')],
            ),
            Message("tool", [TextPart("42")], tool_call_id="toolu_1", name="f"),
        ],
        stream=True,
        include_usage=True,
        max_tokens=64,
        stop=["x"],
        tools=[Tool("f", None, {"type": "object"})],
        tool_choice=ToolChoice("required"),
        response_format=ResponseFormat("json_schema", {"type": "object"}),
        thinking_budget=10000,
        parallel_tool_calls=False,
    )
    rendered = fmt.render_request(req, RenderOptions(model="gpt-4.1"))
    body = orjson.loads(rendered.body)
    assert body["model"] == "gpt-4.1"
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64,QUJD", "detail": "high"},
    }
    assert body["messages"][2] == {
        "role": "assistant",
        "content": "calling",
        "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
    }
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "42"}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": {"type": "object"}},
    }
    assert body["tool_choice"] == "required"
    assert body["reasoning_effort"] == "medium"
    assert body["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert body["parallel_tool_calls"] is False
    assert rendered.dropped == []


def test_render_request_leaves_tool_settings_out_without_tools() -> None:
    req = simple_request(tool_choice=ToolChoice("none"), parallel_tool_calls=True)
    body = orjson.loads(fmt.render_request(req, RenderOptions(model="g")).body)
    assert "tool_choice" not in body and "parallel_tool_calls" not in body  # OpenAI refuses them alone


def test_render_request_asks_for_stream_usage_only_when_the_client_did() -> None:
    """A same-format answer may be passed through: it must hold no usage chunk nobody asked for."""
    plain = orjson.loads(fmt.render_request(simple_request(stream=True), RenderOptions(model="g")).body)
    assert plain["stream"] is True and "stream_options" not in plain
    counted = fmt.render_request(simple_request(stream=True, include_usage=True), RenderOptions(model="g"))
    assert orjson.loads(counted.body)["stream_options"] == {"include_usage": True}


def test_render_request_drops_or_rejects_top_k() -> None:
    req = simple_request(top_k=5)
    rendered = fmt.render_request(req, RenderOptions(model="gpt-4.1", lacks=lacks_of(OPENAI)))
    assert rendered.dropped == ["top_k"]
    assert b"top_k" not in rendered.body
    with pytest.raises(GatewayError) as info:
        fmt.render_request(req, RenderOptions(model="gpt-4.1", unsupported="reject", lacks=lacks_of(OPENAI)))
    assert (info.value.kind, info.value.param) == ("invalid_request", "top_k")


def test_render_request_drops_images_in_tool_results() -> None:
    req = simple_request()
    req.messages.append(Message("tool", [TextPart("r"), ImagePart("image/png", "QUJD")], tool_call_id="c", name="f"))
    rendered = fmt.render_request(req, RenderOptions(model="gpt-4.1"))
    assert rendered.dropped == ["tool_result_image"]
    assert orjson.loads(rendered.body)["messages"][-1]["content"] == "r"


def test_rendered_request_is_accepted_by_the_sdk_types() -> None:
    """What we send upstream parses back as the same canonical request."""
    req = fmt.parse_request(orjson.dumps(FULL_REQUEST), None)
    rendered = fmt.render_request(req, RenderOptions(model="gpt-4o", lacks=lacks_of(OPENAI)))
    again = fmt.parse_request(rendered.body, None)
    assert rendered.dropped == ["top_k"]
    req.top_k = None
    assert again == req


@pytest.mark.parametrize(
    ("name", "status", "kind", "code", "param"),
    [
        ("error-400-bad-request.response.json", 400, "invalid_request", "unsupported_parameter", "max_tokens"),
        ("error-404-unknown-model.response.json", 404, "not_found", "model_not_found", None),
    ],
)
def test_parse_error_fixtures(name: str, status: int, kind: str, code: str, param: str | None) -> None:
    body = fixture(name)
    error = fmt.parse_error(status, body)
    assert (error.kind, error.status, error.code, error.param) == (kind, status, code, param)
    assert error.message == orjson.loads(body)["error"]["message"]


def test_parse_error_handles_non_json_and_auth_failures() -> None:
    error = fmt.parse_error(502, b"<html>Bad Gateway</html>")
    assert (error.kind, error.message) == ("provider_error", "<html>Bad Gateway</html>")
    auth = fmt.parse_error(
        401, b'{"error":{"message":"Incorrect API key provided: sk-abc***xyz","code":"invalid_api_key"}}'
    )
    assert auth.kind == "provider_auth" and client_status(auth) == 502
    assert "sk-" not in auth.message
    limited = fmt.parse_error(429, b"")
    assert limited.kind == "rate_limit" and limited.status == 429


def test_parse_response_reads_compatible_server_reasoning() -> None:
    body = orjson.dumps(
        {
            "id": "x",
            "created": 1,
            "model": "deepseek",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "4", "reasoning_content": "2+2"},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    resp = fmt.parse_response(body)
    assert resp.choices[0].thinking == [ThinkingPart("2+2")]
    assert resp.usage is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | JSON_VALUES.map(orjson.dumps) | TOP_LEVEL.map(orjson.dumps))
def test_fuzzed_provider_bodies_raise_only_gateway_errors(body: bytes) -> None:
    for parse in (fmt.parse_response, fmt.parse_embedding_response):
        with contextlib.suppress(GatewayError):
            parse(body)
    assert isinstance(fmt.parse_error(500, body), GatewayError)


# ------------------------------------------------------------------ embeddings


def test_parse_embedding_request_variants() -> None:
    one = fmt.parse_embedding_request(b'{"model":"e","input":"hello"}', None)
    assert one == EmbeddingRequest(model="e", inputs=["hello"])
    many = fmt.parse_embedding_request(
        b'{"model":"e","input":["a","b"],"dimensions":8,"encoding_format":"base64"}', None
    )
    assert (many.inputs, many.dimensions, many.encoding_format) == (["a", "b"], 8, "base64")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b'{"model":"e","input":[1,2,3]}', "input", "token"),
        (b'{"model":"e","input":[[1,2],[3]]}', "input", "token"),
        (b'{"model":"e","input":[]}', "input", "empty"),
        (b'{"model":"e"}', "input", "required"),
        (b'{"model":"e","input":"x","encoding_format":"int8"}', "encoding_format", "float"),
        (b'{"model":"e","input":"x","dimensions":0}', "dimensions", "positive"),
        (b'{"input":"x"}', "model", "model"),
    ],
)
def test_bad_embedding_request_is_rejected_clearly(body: bytes, param: str, words: str) -> None:
    with pytest.raises(GatewayError) as info:
        fmt.parse_embedding_request(body, None)
    assert (info.value.kind, info.value.param) == ("invalid_request", param)
    assert words in info.value.message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100) | TOP_LEVEL.map(orjson.dumps) | JSON_VALUES.map(orjson.dumps))
def test_fuzzed_embedding_requests_raise_only_invalid_request(body: bytes) -> None:
    _only_gateway_errors(fmt.parse_embedding_request, body, "invalid_request")


VECTORS = [[0.25, -1.5, 3.0], [1e-3, 2.5, -0.125]]


def _embedding_handler(vectors: list[list[float]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        parsed = fmt.parse_embedding_request(request.content, None)
        resp = EmbeddingResponse(model="emb-1", vectors=vectors, usage=Usage(input_tokens=6))
        body = fmt.render_embedding_response(resp, parsed.encoding_format)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return handler


def test_sdk_default_base64_embeddings_decode_to_float32_values() -> None:
    result = sdk(_embedding_handler(VECTORS)).embeddings.create(model="e", input=["a", "b"])
    expected = [list(struct.unpack("<3f", struct.pack("<3f", *v))) for v in VECTORS]
    assert [d.embedding for d in result.data] == expected
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (6, 6)
    assert result.model == "emb-1"


def test_sdk_float_embeddings_are_plain_lists() -> None:
    result = sdk(_embedding_handler(VECTORS)).embeddings.create(model="e", input="a", encoding_format="float")
    assert [d.embedding for d in result.data] == VECTORS
    assert [d.index for d in result.data] == [0, 1]


def test_base64_embedding_is_float32_little_endian() -> None:
    body = fmt.render_embedding_response(EmbeddingResponse("m", [[1.0, -2.0]]), "base64")
    encoded = orjson.loads(body)["data"][0]["embedding"]
    assert encoded == "AACAPwAAAMA="  # struct.pack("<2f", 1.0, -2.0)


def test_embedding_request_and_response_round_trip_on_provider_side() -> None:
    req = EmbeddingRequest(model="client", inputs=["a", "b"], dimensions=3, task_type="RETRIEVAL_QUERY")
    rendered = fmt.render_embedding_request(req, RenderOptions(model="text-embedding-3-small"))
    body = orjson.loads(rendered.body)
    assert body == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 3,
    }
    assert rendered.dropped == ["task_type"]
    as_base64 = EmbeddingRequest(model="client", inputs=["a"], encoding_format="base64")
    body = orjson.loads(fmt.render_embedding_request(as_base64, RenderOptions(model="e")).body)
    assert body["encoding_format"] == "base64"  # a passed-through answer stays in the client's encoding
    for encoding in ("float", "base64"):
        provider_body = fmt.render_embedding_response(
            EmbeddingResponse("text-embedding-3-small", [[0.5, 1.0], [2.0, -4.0]], Usage(input_tokens=2)), encoding
        )
        parsed = fmt.parse_embedding_response(provider_body)
        assert parsed.vectors == [[0.5, 1.0], [2.0, -4.0]]
        assert parsed.usage == Usage(input_tokens=2)


def test_parse_embedding_response_orders_by_index() -> None:
    body = orjson.dumps(
        {
            "object": "list",
            "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
            "model": "m",
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
    )
    assert fmt.parse_embedding_response(body).vectors == [[1.0], [2.0]]
