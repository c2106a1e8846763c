"""The Responses API format: the requests real agents send, answers and streams in the shapes
OpenAI sends (tests/support/responses_samples.py names the recordings), the official SDK's
stream accumulator reading what the gateway writes, and bad input."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import omit
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from extproc.errors import GatewayError, client_status
from extproc.formats import FORMATS
from extproc.formats.canonical import (
    ApiFeature,
    ChatRequest,
    ChatResponse,
    Choice,
    FilePart,
    Finish,
    ImagePart,
    Message,
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
from extproc.formats.endpoint import Endpoint
from extproc.formats.render_options import RenderOptions
from extproc.formats.responses import reasoning
from extproc.formats.responses.common import flat_tool_name
from extproc.provider_kinds import OPENAI_RESPONSES
from extproc.providers.rendering import lacks_of
from tests.support import responses_samples as rec
from tests.support.fixtures import fixture_json

WIRE = FORMATS["responses"]
ENDPOINT = Endpoint("responses", "chat")


def parse(body: dict[str, Any]) -> ChatRequest:
    return WIRE.parse_request(orjson.dumps(body), ENDPOINT)


def recorded(name: str) -> dict[str, Any]:
    """A real client's request body (agents/README.md), its model placeholder named."""
    return {**fixture_json(f"agents/{name}.json")["body"], "model": "gpt-x"}


# ---------------------------------------------------------------- requests real clients send


def test_codex_request_parses_with_developer_messages_namespaces_and_hosted_tools_noted() -> None:
    body = recorded("codex-0.169.0.turn1")
    req = parse(body)
    assert req.stream and req.include_usage
    assert [m.role for m in req.messages] == ["system", "system", "user", "user"]
    assert [len(m.content) for m in req.messages[:2]] == [1, 2]
    assert req.tool_choice == ToolChoice("auto") and req.parallel_tool_calls is True
    assert req.reasoning_summary == "auto" and req.reasoning_effort is None
    names = [tool.name for tool in req.tools]
    assert "exec_command" in names and "multi_agent_v1__spawn_agent" in names
    assert req.tool_namespaces["multi_agent_v1__spawn_agent"] == ("multi_agent_v1", "spawn_agent")
    web_search = next(i for i, t in enumerate(body["tools"]) if t["type"] == "web_search")
    hosted = ApiFeature("tools.web_search", f"tools[{web_search}]", value=body["tools"][web_search])
    assert req.api_features == [hosted]  # store: false is no feature


def test_codex_second_turn_carries_the_call_and_its_output() -> None:
    req = parse(recorded("codex-0.169.0.turn2"))
    call, result = req.messages[-2:]
    assert call.role == "assistant" and call.tool_calls == [ToolCall("call_f1", "exec_command", '{"cmd": "<command>"}')]
    assert (result.role, result.tool_call_id, result.name) == ("tool", "call_f1", "exec_command")
    assert isinstance(result.content[0], TextPart) and result.content[0].text == "<text: 119 chars>"


def test_agents_sdk_short_form_messages_and_instructions() -> None:
    body = recorded("openai-agents-0.24.0-responses.turn2")
    req = parse(body)
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert req.messages[0].content == [TextPart("<instructions>")]
    assert req.tools[0] == Tool("lookup", "", body["tools"][0]["parameters"], True)


def test_same_question_through_chat_and_responses_is_one_canonical_request() -> None:
    chat = FORMATS["openai"].parse_request(
        orjson.dumps(
            {
                "model": "m",
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "max_completion_tokens": 9,
            }
        ),
        Endpoint("openai", "chat"),
    )
    responses = parse({"model": "m", "instructions": "be brief", "input": "hi", "max_output_tokens": 9})
    assert responses == chat


def test_items_of_an_assistant_turn_merge_and_reasoning_round_trips() -> None:
    signed = ThinkingPart("let me think", "sig-abc")
    req = parse(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
                {"type": "reasoning", "summary": [], "encrypted_content": reasoning.encode(signed)},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
                {"type": "function_call", "call_id": "c1", "name": "close_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "done"}]},
            ],
        }
    )  # fmt: skip
    _, assistant, tool = req.messages
    assert assistant.content == [signed, TextPart("calling")]
    assert assistant.tool_calls == [ToolCall("c1", "multi_agent_v1__close_agent", "{}")]
    assert (tool.name, tool.content) == ("multi_agent_v1__close_agent", [TextPart("done")])
    assert req.api_features == []


def test_openais_encrypted_reasoning_is_kept_and_named_for_dropping_elsewhere() -> None:
    req = parse({"model": "m", "input": [{"role": "user", "content": "q"}, {**rec.REASONING_ITEM}]})
    part = req.messages[1].content[0]
    assert isinstance(part, ThinkingPart) and part.encrypted == rec.REASONING_ITEM["encrypted_content"]
    assert part.text.startswith("**Providing") and "\n\n**Explaining" in part.text
    assert req.api_features == [ApiFeature("reasoning.encrypted_content", "input[1].encrypted_content", "drop")]


def test_images_and_files_become_parts_and_openai_file_ids_are_noted() -> None:
    req = parse(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "low"},
                        {"type": "input_image", "image_url": "https://x.test/a.jpg"},
                        {
                            "type": "input_file",
                            "file_data": "data:application/pdf;base64,JVBERi0x",
                            "filename": "a.pdf",
                        },
                        {"type": "input_file", "file_id": "file-123"},
                        {"type": "input_audio", "input_audio": {}},
                    ],
                }
            ],
        }
    )
    assert req.messages[0].content == [
        ImagePart("image/png", "iVBO", detail="low"),
        ImagePart(url="https://x.test/a.jpg"),
        FilePart("application/pdf", "JVBERi0x", filename="a.pdf"),
    ]
    assert req.api_features == [
        ApiFeature(
            "input_file.file_id", "input[0].content[3].file_id", value={"type": "input_file", "file_id": "file-123"}
        ),
        ApiFeature("input.input_audio", "input[0].content[4].type", value={"type": "input_audio", "input_audio": {}}),
    ]


def test_state_kept_at_the_provider_is_refused_elsewhere_and_other_items_follow_policy() -> None:
    req = parse(
        {
            "model": "m",
            "store": True,
            "previous_response_id": "resp_1",
            "input": [{"type": "item_reference", "id": "msg_1"}, {"type": "computer_call_output", "call_id": "c"}, {"role": "user", "content": "q"}],
            "tool_choice": {"type": "web_search_preview"},
        }
    )  # fmt: skip
    assert req.api_features == [
        ApiFeature("input.item_reference", "input[0].id", "refuse", {"type": "item_reference", "id": "msg_1"}),
        ApiFeature(
            "input.computer_call_output", "input[1].type", value={"type": "computer_call_output", "call_id": "c"}
        ),
        ApiFeature("tool_choice.web_search_preview", "tool_choice", value={"type": "web_search_preview"}),
        ApiFeature("store", "store", "refuse", True),
        ApiFeature("previous_response_id", "previous_response_id", "refuse", "resp_1"),
    ]


def test_what_the_parser_does_not_know_is_noted_with_a_safe_name_never_refused() -> None:
    req = parse(
        {
            "model": "m",
            "input": [{"role": "robot", "content": "x"}, {"role": "user", "content": "q"}],
            "text": {"format": {"type": "xml"}},
            "tools": [{"type": "web search\r\nX-Evil: 1"}],
            "verbosity_of_tomorrow": "low",
            "metadata": {"k": "v"},  # bookkeeping: not a feature
        }
    )
    assert [m.role for m in req.messages] == ["user"]
    assert [(f.name, f.param) for f in req.api_features] == [
        ("role.robot", "input[0].role"),
        ("text.format.xml", "text.format.type"),
        ("tools.other", "tools[0]"),
        ("verbosity_of_tomorrow", "verbosity_of_tomorrow"),
    ]
    assert req.api_features[0].value == {"role": "robot", "content": "x"}


def test_reasoning_effort_summary_and_json_schema_map_to_the_canonical_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = parse(
        {
            "model": "m",
            "input": "q",
            "reasoning": {"effort": "high", "summary": "detailed"},
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
            "temperature": 0.5,
            "top_p": 0.9,
            "user": "u1",
            "metadata": {"k": "v"},
            "prompt_cache_key": "abc",
        }
    )
    assert (req.reasoning_effort, req.reasoning_summary) == ("high", "detailed")
    assert req.response_format is not None and (req.response_format.name, req.response_format.schema) == (
        "answer",
        schema,
    )
    assert (req.temperature, req.top_p, req.user) == (0.5, 0.9, "u1")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "q"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [5]}, "input[0]"),
        ({"model": "m", "input": [{"role": ["user"], "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user"}]}, "input[0].content"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
        ({"model": "m", "input": [{"role": "user", "content": [{"text": "x"}]}]}, "input[0].content[0].type"),
        ({"model": "m", "input": [{"type": 5}]}, "input[0].type"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]}, "input[0].name"),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "input[0].arguments"),
        ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}, "input[0].output"),
        ({"model": "m", "input": [{"type": "reasoning", "summary": "x"}]}, "input[0].summary"),
        ({"model": "m", "input": [{"type": "reasoning", "encrypted_content": 5}]}, "input[0].encrypted_content"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]}, "input[0].content[0].image_url"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0]"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_data": 5}]}]}, "input[0].content[0]"),
        ({"model": "m", "input": "q", "tools": {}}, "tools"),
        ({"model": "m", "input": "q", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "q", "tools": [{"type": "function", "name": "f", "parameters": []}]}, "tools[0].parameters"),
        ({"model": "m", "input": "q", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "function"}]}]}, "tools[0].tools[0].name"),
        ({"model": "m", "input": "q", "tools": [{"type": "namespace", "tools": []}]}, "tools[0].name"),
        ({"model": "m", "input": "q", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "q", "tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"model": "m", "input": "q", "reasoning": "high"}, "reasoning"),
        ({"model": "m", "input": "q", "reasoning": {"effort": 3}}, "reasoning.effort"),
        ({"model": "m", "input": "q", "text": {"format": {"type": 5}}}, "text.format.type"),
        ({"model": "m", "input": "q", "text": {"format": {"type": "json_schema", "name": "s"}}}, "text.format.schema"),
        ({"model": "m", "input": "q", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "q", "max_output_tokens": "9"}, "max_output_tokens"),
        ({"model": "m", "input": "q", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "q", "top_p": -0.1}, "top_p"),
        ({"model": "m", "input": "q", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "q", "store": "no"}, "store"),
        ({"model": "m", "input": "q", "instructions": ["x"]}, "instructions"),
    ],
)  # fmt: skip
def test_malformed_request_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse(body)
    assert (caught.value.kind, client_status(caught.value), caught.value.param) == ("invalid_request", 400, param)
    error = orjson.loads(WIRE.render_error(caught.value, "req-1"))["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and "req-1" in error["message"]


def test_body_that_is_not_json_or_not_an_object_is_a_400() -> None:
    for body in (b"{", b"[]", b'"x"'):
        with pytest.raises(GatewayError) as caught:
            WIRE.parse_request(body, ENDPOINT)
        assert caught.value.param == "body"


# ---------------------------------------------------------------- whole answers


REQUEST = ChatRequest("gpt-x", [Message("user", [TextPart("q")])])


def test_text_answer_renders_as_a_response_object_in_the_recorded_shape() -> None:
    answer = ChatResponse(
        "chatcmpl-1", "gpt-x", 1743072656, [Choice(text="hello", finish_reason="stop")], Usage(10, 5, 3, 0, 2)
    )
    out = orjson.loads(WIRE.render_response(answer, REQUEST))
    recorded = rec.response([rec.MESSAGE_ITEM], rec.usage(1, 1))
    assert set(recorded) <= set(out)
    assert out["id"] == "resp_chatcmpl-1" and out["object"] == "response" and out["status"] == "completed"
    (item,) = out["output"]
    assert set(rec.MESSAGE_ITEM) <= set(item) and item["id"].startswith("msg_")
    assert item["content"] == [{"type": "output_text", "annotations": [], "logprobs": [], "text": "hello"}]
    assert out["usage"] == rec.usage(10, 5, cached=3, reasoning=2)


def test_tool_call_answer_goes_back_with_its_namespace() -> None:
    asked = parse(
        {
            "model": "m",
            "input": "q",
            "tools": [
                {"type": "namespace", "name": "crm", "description": "", "tools": [{"type": "function", "name": "find"}]}
            ],
        }
    )
    call = ToolCall("call_1", "crm__find", '{"q":1}')
    answer = ChatResponse("r", "m", 1, [Choice(tool_calls=[call], finish_reason="tool_calls")])
    (item,) = orjson.loads(WIRE.render_response(answer, asked))["output"]
    assert set(rec.CALL_ITEM) <= set(item)
    assert (item["namespace"], item["name"], item["call_id"], item["arguments"]) == ("crm", "find", "call_1", '{"q":1}')


def test_cut_answer_is_incomplete_with_the_reason() -> None:
    answer = ChatResponse("r", "m", 1, [Choice(text="part", finish_reason="length")])
    out = orjson.loads(WIRE.render_response(answer, REQUEST))
    assert (out["status"], out["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})


def test_signed_thinking_comes_back_in_encrypted_content_and_as_summary_only_when_asked() -> None:
    thinking = [ThinkingPart("hmm", "sig-1"), ThinkingPart("", "opaque", redacted=True)]
    call = ToolCall("c", "f", "{}", signature="gemini-sig")
    answer = ChatResponse("r", "m", 1, [Choice(text="ok", thinking=thinking, tool_calls=[call])])
    for summary, shown in ((None, []), ("auto", [{"type": "summary_text", "text": "hmm"}])):
        asked = ChatRequest("m", [Message("user", [TextPart("q")])], reasoning_summary=summary)
        output = orjson.loads(WIRE.render_response(answer, asked))["output"]
        assert [item["type"] for item in output] == ["reasoning", "reasoning", "message", "reasoning", "function_call"]
        assert output[0]["summary"] == shown and output[1]["summary"] == []
        parsed = [reasoning.decode(output[i]["encrypted_content"]) for i in (0, 1, 3)]
        assert parsed == [*thinking, ThinkingPart("", "gemini-sig")]


# ---------------------------------------------------------------- streams the gateway writes


def encode(events: list[Any], request: ChatRequest = REQUEST, cuts: int = 1) -> bytes:
    encoder = WIRE.stream_encoder(request, ENDPOINT)
    size = max(1, len(events) // cuts)
    out = b"".join(encoder.encode(events[i : i + size]) for i in range(0, len(events), size))
    return out + encoder.close()


def sdk_final(data: bytes, request: ChatRequest = REQUEST) -> Any:
    """What the official SDK's stream helper (`client.responses.stream`) makes of the events."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    final = None
    for raw in rec.events_of(data):
        event = construct_type(type_=ResponseStreamEvent, value=raw)  # type: ignore[arg-type]
        for seen in state.handle_event(event):  # type: ignore[arg-type]
            if seen.type in ("response.completed", "response.incomplete", "response.failed"):
                final = seen.response
    return final


TEXT_EVENTS: list[Any] = [
    StreamStart("chatcmpl-9", "gpt-x", 1743082657),
    TextDelta("Hel"),
    TextDelta("lo"),
    Finish("stop"),
    UsageUpdate(Usage(12, 2)),
]


def test_text_stream_has_the_recorded_event_sequence_and_numbers() -> None:
    for cuts in (1, 3, 5):
        events = rec.events_of(encode(TEXT_EVENTS, cuts=cuts))
        assert [e["type"] for e in events] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
        assert {e["item_id"] for e in events[3:8]} == {events[2]["item"]["id"]}
        final = events[-1]["response"]
        assert final["id"] == "resp_chatcmpl-9" and final["usage"] == rec.usage(12, 2)
        assert final["output"] == [events[-2]["item"]] and final["output"][0]["content"][0]["text"] == "Hello"


def test_official_sdk_accumulates_the_gateways_stream_to_the_answer() -> None:
    final = sdk_final(encode(TEXT_EVENTS))
    assert final.status == "completed" and final.output_text == "Hello"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 2)


def test_call_stream_keeps_each_calls_arguments_apart_and_restores_the_namespace() -> None:
    asked = ChatRequest("m", [Message("user", [TextPart("q")])], tool_namespaces={"crm__find": ("crm", "find")})
    events = [
        StreamStart("r", "m", 1),
        TextDelta("Let me look."),
        ToolCallStart(0, "call_a", "crm__find"),
        ToolCallStart(1, "call_b", "other"),
        ToolCallDelta(0, '{"q":'),
        ToolCallDelta(1, "{}"),
        ToolCallDelta(0, "1}"),
        Finish("tool_calls"),
    ]
    data = encode(events, asked)
    types = [e["type"] for e in rec.events_of(data)]
    assert types.count("response.function_call_arguments.delta") == 3 and types[-1] == "response.completed"
    final = sdk_final(data, asked)
    message, first, second = final.output
    assert message.content[0].text == "Let me look."
    assert (first.namespace, first.name, first.call_id, first.arguments) == ("crm", "find", "call_a", '{"q":1}')
    assert (second.name, second.arguments) == ("other", "{}")


def test_reasoning_stream_shows_the_summary_when_asked_and_keeps_the_signature() -> None:
    asked = ChatRequest("m", [Message("user", [TextPart("q")])], reasoning_summary="auto")
    events = [
        StreamStart("r", "m", 1),
        ThinkingDelta("deep "),
        ThinkingDelta("thought"),
        ThinkingDelta("", "sig-9"),
        TextDelta("A"),
        Finish("stop"),
    ]
    seen = rec.events_of(encode(events, asked))
    assert [e["type"] for e in seen[2:8]] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    done = seen[8]["item"]
    assert done["summary"] == [{"type": "summary_text", "text": "deep thought"}]
    assert reasoning.decode(done["encrypted_content"]) == ThinkingPart("deep thought", "sig-9")
    final = sdk_final(encode(events, asked), asked)
    assert final.output[0].type == "reasoning" and final.output_text == "A"
    quiet = rec.events_of(encode(events))  # no summary asked: the reasoning item only
    assert "response.reasoning_summary_text.delta" not in [e["type"] for e in quiet]


def test_failure_in_a_stream_is_an_error_event_then_response_failed_and_the_end() -> None:
    error = GatewayError("rate_limit", "slow down", code="rate_limit_exceeded")
    for before in ([], [StreamStart("r", "m", 1), TextDelta("par")]):
        encoder = WIRE.stream_encoder(REQUEST, ENDPOINT)
        data = encoder.encode([*before, StreamFailure(error), TextDelta("never")]) + encoder.encode([TextDelta("x")])
        data += encoder.close()
        seen = rec.events_of(data)
        assert [e["type"] for e in seen[:2]] == ["response.created", "response.in_progress"]
        assert [e["type"] for e in seen[-2:]] == ["error", "response.failed"]
        assert seen[-2]["code"] == "rate_limit_exceeded" and seen[-2]["message"] == "slow down"
        assert seen[-1]["response"]["status"] == "failed"
        assert seen[-1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
        assert [e["sequence_number"] for e in seen] == list(range(len(seen)))
        assert sdk_final(data).status == "failed"


def test_stream_cut_by_max_tokens_ends_with_response_incomplete() -> None:
    seen = rec.events_of(encode([StreamStart("r", "m", 1), TextDelta("a"), Finish("length")]))
    assert seen[-1]["type"] == "response.incomplete"
    assert seen[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


# ---------------------------------------------------------------- a Responses provider


def test_recorded_answers_parse_to_text_calls_reasoning_and_usage() -> None:
    text = WIRE.parse_response(orjson.dumps(rec.response([rec.MESSAGE_ITEM], rec.usage(287, 11))))
    assert (text.id, text.model, text.created) == (rec.RESPONSE_ID, rec.MODEL, 1743072656)
    assert (text.choices[0].text, text.choices[0].finish_reason) == (
        "The capital of PotatoLand is Potato City.",
        "stop",
    )
    assert text.usage == Usage(287, 11)
    called = WIRE.parse_response(
        orjson.dumps(rec.response([rec.REASONING_ITEM, rec.CALL_ITEM], rec.usage(13, 1680, 4, 1408)))
    )
    choice = called.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.tool_calls == [ToolCall(rec.CALL_ITEM["call_id"], "get_capital", '{"country":"PotatoLand"}')]
    assert choice.thinking[0].encrypted == rec.REASONING_ITEM["encrypted_content"]
    assert called.usage == Usage(13, 1680, cached_tokens=4, reasoning_tokens=1408)
    cut = WIRE.parse_response(orjson.dumps(rec.response([rec.MESSAGE_ITEM], None, "incomplete")))
    assert cut.choices[0].finish_reason == "length"


def test_recorded_error_maps_by_status_and_keeps_param() -> None:
    error = WIRE.parse_error(400, orjson.dumps(rec.HTTP_ERROR))
    assert (error.kind, error.param, error.code) == ("invalid_request", "temperature", "decimal_below_min_value")


def decode(data: bytes, points: list[int] | None = None) -> list[Any]:
    decoder = WIRE.stream_decoder()
    bounds = [0, *sorted(set(points or [])), len(data)]
    out = [ev for a, b in itertools.pairwise(bounds) for ev in decoder.feed(data[a:b])]
    return out + decoder.close()


def joined(events: list[Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {
        "text": "",
        "thinking": "",
        "encrypted": [],
        "calls": {},
        "finish": [],
        "usage": None,
        "failures": [],
    }
    for ev in events:
        if isinstance(ev, TextDelta):
            seen["text"] += ev.text
        elif isinstance(ev, ThinkingDelta):
            seen["thinking"] += ev.text
            if ev.encrypted:
                seen["encrypted"].append(ev.encrypted)
        elif isinstance(ev, ToolCallStart):
            seen["calls"][ev.call_index] = [ev.id, ev.name, ""]
        elif isinstance(ev, ToolCallDelta):
            seen["calls"][ev.call_index][2] += ev.arguments
        elif isinstance(ev, Finish):
            seen["finish"].append(ev.reason)
        elif isinstance(ev, UsageUpdate):
            seen["usage"] = ev.usage
        elif isinstance(ev, StreamFailure):
            seen["failures"].append(ev.error.kind)
    return seen


STREAMS = {
    "text": rec.text_stream(["The capital", " of France", " is Paris."], rec.usage(255, 16)),
    "call": rec.call_stream(['{"', "country", '":"', "France", '"}'], rec.usage(255, 16, reasoning=9)),
}


def test_recorded_streams_decode_to_the_answer() -> None:
    text = joined(decode(STREAMS["text"]))
    assert (text["text"], text["finish"], text["usage"]) == (
        "The capital of France is Paris.",
        ["stop"],
        Usage(255, 16),
    )
    call = joined(decode(STREAMS["call"]))
    assert call["calls"] == {0: [rec.CALL_ITEM["call_id"], "get_capital", '{"country":"France"}']}
    assert call["thinking"] == "**Providing street crossing instructions**\n\n**Explaining street crossing safety**"
    assert call["encrypted"] == [rec.REASONING_ITEM["encrypted_content"]]
    assert (call["finish"], call["usage"]) == (["tool_calls"], Usage(255, 16, reasoning_tokens=9))


@pytest.mark.parametrize("name", sorted(STREAMS))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_split_of_a_recorded_stream_decodes_the_same(name: str, data: st.DataObject) -> None:
    raw = STREAMS[name]
    points = data.draw(st.lists(st.integers(min_value=1, max_value=len(raw) - 1), max_size=30))
    assert joined(decode(raw, points)) == joined(decode(raw))


def test_stream_that_ends_early_or_fails_is_a_failure() -> None:
    raw = STREAMS["text"]
    cut = raw[: raw.index(b"event: response.completed")]
    assert joined(decode(cut))["failures"] == ["provider_error"]
    failed = rec.sse([{"type": "response.created", "response": rec.response([], None, "in_progress")}, {"type": "response.failed", "response": {**rec.response([], None, "failed"), "error": {"code": "rate_limit_exceeded", "message": "slow"}}}])  # fmt: skip
    assert joined(decode(failed))["failures"] == ["rate_limit"]
    errored = rec.sse([{"type": "error", "code": "server_error", "message": "boom", "param": None}])
    assert joined(decode(errored))["failures"] == ["provider_error"]


def test_the_gateways_own_stream_decodes_back_to_its_events() -> None:
    asked = ChatRequest("m", [Message("user", [TextPart("q")])], reasoning_summary="auto")
    events = [StreamStart("r", "m", 1), ThinkingDelta("why"), ThinkingDelta("", "sig"), TextDelta("A"), ToolCallStart(0, "c", "f"), ToolCallDelta(0, "{}"), Finish("tool_calls"), UsageUpdate(Usage(3, 4))]  # fmt: skip
    seen = joined(decode(encode(events, asked)))
    assert (seen["text"], seen["thinking"], seen["calls"]) == ("A", "why", {0: ["c", "f", "{}"]})
    assert (seen["finish"], seen["usage"]) == (["tool_calls"], Usage(3, 4))


def test_request_for_a_responses_provider_in_its_shape() -> None:
    req = ChatRequest(
        "m",
        [
            Message("system", [TextPart("be brief")]),
            Message("user", [TextPart("q"), ImagePart("image/png", "iVBO")]),
            Message("assistant", [ThinkingPart("t", encrypted="gAAAA"), ThinkingPart("x", "anthropic-sig"), TextPart("calling")], [ToolCall("c1", "f", "{}")]),
            Message("tool", [TextPart("out")], tool_call_id="c1"),
        ],
        stream=True,
        max_tokens=50,
        tools=[Tool("f", "does f", {"type": "object"})],
        tool_choice=ToolChoice("function", "f"),
        reasoning_effort="low",
        stop=["END"],
    )  # fmt: skip
    rendered = WIRE.render_request(req, RenderOptions("gpt-5", lacks=lacks_of(OPENAI_RESPONSES)))
    body = orjson.loads(rendered.body)
    assert rendered.dropped == ["stop"]
    assert body["input"] == [
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "be brief"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}, {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "auto"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": "gAAAA"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "out"},
    ]  # fmt: skip
    assert (body["model"], body["max_output_tokens"], body["stream"], body["store"]) == ("gpt-5", 50, True, False)
    assert body["tools"] == [
        {"type": "function", "name": "f", "description": "does f", "parameters": {"type": "object"}}
    ]
    assert body["tool_choice"] == {"type": "function", "name": "f"} and body["reasoning"] == {"effort": "low"}
    with pytest.raises(GatewayError) as caught:
        WIRE.render_request(req, RenderOptions("gpt-5", unsupported="reject", lacks=lacks_of(OPENAI_RESPONSES)))
    assert caught.value.param == "stop"


def test_long_namespaced_names_stay_within_every_providers_limit() -> None:
    flat = flat_tool_name("n" * 40, "f" * 40)
    assert len(flat) == 64 and flat.startswith("n" * 40) and flat != flat_tool_name("n" * 40, "f" * 39 + "g")
    assert flat_tool_name("crm", "find") == "crm__find"


def test_gateway_reasoning_encoding_refuses_what_it_did_not_write() -> None:
    assert reasoning.decode("gAAAAABoxC0dvsKe") is None
    assert reasoning.decode("gw1:not base64!") is None
    assert reasoning.decode("gw1:" + "W10=") is None  # [] is not the gateway's shape
    assert reasoning.encode(ThinkingPart("plain")) is None
