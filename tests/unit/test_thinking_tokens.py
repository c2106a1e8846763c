"""Reasoning tokens, whichever provider counted them, in every client's usage (mapping.md, usage):
Anthropic `output_tokens_details.thinking_tokens` <-> canonical reasoning_tokens <-> OpenAI
`completion_tokens_details.reasoning_tokens`, the Responses API's
`output_tokens_details.reasoning_tokens` and Gemini `thoughtsTokenCount`.

Answers are the recorded ones in shared/fixtures (OpenAI and Gemini reasoning answers), or
Anthropic's shape as the anthropic SDK's own types declare it; what is rendered for an Anthropic
client is read back with those types.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import MessageDeltaUsage

from extproc.formats import FORMATS, anthropic, gemini, openai
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    Finish,
    Message,
    StreamStart,
    TextDelta,
    TextPart,
    Usage,
    UsageUpdate,
)
from extproc.formats.endpoint import Endpoint
from extproc.formats.replay import response_events
from extproc.formats.responses import wire as responses_wire
from tests.support import responses_samples
from tests.support.fixtures import fixture_bytes, fixture_json

REQUEST = ChatRequest("m", [Message("user", [TextPart("q")])], stream=True, include_usage=True)
RESPONSES = responses_wire.WIRE
ANTHROPIC_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "4"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 300,
        "output_tokens_details": {"thinking_tokens": 250},
    },
}


def _anthropic_stream(final_usage: dict[str, Any]) -> bytes:
    start = {**ANTHROPIC_MESSAGE, "content": [], "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}
    events = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "4"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": final_usage},
        {"type": "message_stop"},
    ]
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def _anthropic_client_usage(answer: ChatResponse) -> Any:
    """What an Anthropic client reads from the rendered answer, through the SDK's own model."""
    return SDKMessage.model_validate(orjson.loads(anthropic.render_response(answer))).usage


def _anthropic_client_stream_usage(events: list[Any]) -> MessageDeltaUsage:
    encoder = anthropic.StreamEncoder(REQUEST)
    raw = encoder.encode(events) + encoder.close()
    deltas = [
        orjson.loads(line[6:])
        for line in raw.decode().splitlines()
        if line.startswith("data: ") and '"message_delta"' in line
    ]
    (delta,) = deltas
    return MessageDeltaUsage.model_validate(delta["usage"])


# ---------------------------------------------------------------- Anthropic answers in


def test_anthropic_answer_thinking_tokens_become_canonical_reasoning_tokens() -> None:
    usage = anthropic.parse_response(orjson.dumps(ANTHROPIC_MESSAGE)).usage
    assert usage is not None and usage.reasoning_tokens == 250 and usage.output_tokens == 300


def test_anthropic_stream_thinking_tokens_from_message_delta_become_canonical_reasoning_tokens() -> None:
    decoder = anthropic.StreamDecoder()
    raw = _anthropic_stream({"output_tokens": 300, "output_tokens_details": {"thinking_tokens": 250}})
    events = decoder.feed(raw) + decoder.close()
    last = [e.usage for e in events if isinstance(e, UsageUpdate)][-1]
    assert (last.input_tokens, last.output_tokens, last.reasoning_tokens) == (12, 300, 250)


def test_openai_and_gemini_clients_see_anthropic_thinking_tokens() -> None:
    answer = anthropic.parse_response(orjson.dumps(ANTHROPIC_MESSAGE))
    chat = orjson.loads(openai.render_response(answer))
    assert chat["usage"]["completion_tokens_details"]["reasoning_tokens"] == 250
    assert chat["usage"]["completion_tokens"] == 300
    meta = orjson.loads(gemini.render_response(answer))["usageMetadata"]
    assert meta["thoughtsTokenCount"] == 250 and meta["candidatesTokenCount"] == 50
    responses_usage = orjson.loads(RESPONSES.render_response(answer, REQUEST))["usage"]
    assert responses_usage["output_tokens_details"]["reasoning_tokens"] == 250
    assert responses_usage["output_tokens"] == 300


def test_anthropic_client_sees_a_responses_providers_reasoning_tokens_as_thinking_tokens() -> None:
    body = responses_samples.response(
        [responses_samples.REASONING_ITEM, responses_samples.MESSAGE_ITEM], responses_samples.usage(9, 90, reasoning=64)
    )
    usage = _anthropic_client_usage(RESPONSES.parse_response(orjson.dumps(body)))
    assert usage.output_tokens_details is not None and usage.output_tokens_details.thinking_tokens == 64
    assert usage.output_tokens == 90


# ---------------------------------------------------------------- Anthropic answers out


def test_anthropic_client_sees_openai_reasoning_tokens_as_thinking_tokens() -> None:
    recorded = fixture_json("openai/chat-reasoning-tokens.response.json")["usage"]
    usage = _anthropic_client_usage(openai.parse_response(fixture_bytes("openai/chat-reasoning-tokens.response.json")))
    assert usage.output_tokens_details is not None
    assert usage.output_tokens_details.thinking_tokens == recorded["completion_tokens_details"]["reasoning_tokens"]
    assert usage.output_tokens == recorded["completion_tokens"]


def test_anthropic_client_sees_gemini_thoughts_as_thinking_tokens() -> None:
    recorded = fixture_json("gemini/generate-thinking.response.json")["usageMetadata"]
    usage = _anthropic_client_usage(gemini.parse_response(fixture_bytes("gemini/generate-thinking.response.json")))
    assert usage.output_tokens_details is not None
    assert usage.output_tokens_details.thinking_tokens == recorded["thoughtsTokenCount"]
    assert usage.output_tokens == recorded["candidatesTokenCount"] + recorded["thoughtsTokenCount"]


def test_anthropic_client_sees_anthropic_thinking_tokens_after_a_round_trip() -> None:
    usage = _anthropic_client_usage(anthropic.parse_response(orjson.dumps(ANTHROPIC_MESSAGE)))
    assert usage.output_tokens_details is not None and usage.output_tokens_details.thinking_tokens == 250


def test_an_answer_without_reasoning_has_no_output_tokens_details() -> None:
    answer = ChatResponse("id", "m", 0, [Choice(text="x", finish_reason="stop")], Usage(5, 7))
    assert "output_tokens_details" not in orjson.loads(anthropic.render_response(answer))["usage"]


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_anthropic_stream_message_delta_carries_thinking_tokens_from_any_provider(provider: str) -> None:
    """A translated stream: the provider's final usage is rendered in message_delta (what the
    anthropic SDK copies into the final message's usage)."""
    reasoning = 64 if provider == "openai" else 1001
    usage = Usage(input_tokens=7, output_tokens=reasoning + 23, reasoning_tokens=reasoning)
    events = [StreamStart("id", "m", 0), TextDelta("hi"), Finish("stop"), UsageUpdate(usage)]
    delta_usage = _anthropic_client_stream_usage(events)
    assert delta_usage.output_tokens == reasoning + 23
    assert delta_usage.output_tokens_details is not None
    assert delta_usage.output_tokens_details.thinking_tokens == reasoning


def test_openai_stream_reasoning_tokens_reach_an_anthropic_stream() -> None:
    """An OpenAI stream's usage chunk, decoded, then encoded for an Anthropic client."""
    recorded = fixture_json("openai/chat-reasoning-tokens.response.json")["usage"]
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "o", "choices": [], "usage": recorded}
    start = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "o",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
    }
    raw = b"data: " + orjson.dumps(start) + b"\n\ndata: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    decoder = openai.StreamDecoder()
    events = decoder.feed(raw) + decoder.close()
    delta_usage = _anthropic_client_stream_usage(events)
    assert delta_usage.output_tokens_details is not None
    assert (
        delta_usage.output_tokens_details.thinking_tokens == recorded["completion_tokens_details"]["reasoning_tokens"]
    )


def test_a_whole_answer_streamed_to_an_anthropic_client_keeps_its_thinking_tokens() -> None:
    """A provider that cannot stream, or a cached answer replayed: the whole answer as events."""
    answer = gemini.parse_response(fixture_bytes("gemini/generate-thinking.response.json"))
    delta_usage = _anthropic_client_stream_usage(response_events(answer))
    assert delta_usage.output_tokens_details is not None
    assert delta_usage.output_tokens_details.thinking_tokens == answer.usage.reasoning_tokens  # type: ignore[union-attr]


def test_the_pipelines_anthropic_stream_encoder_writes_thinking_tokens() -> None:
    encoder = FORMATS["anthropic"].stream_encoder(REQUEST, Endpoint("anthropic", "chat"))
    usage = Usage(input_tokens=1, output_tokens=3, reasoning_tokens=2)
    raw = encoder.encode([StreamStart("i", "m", 0), Finish("stop"), UsageUpdate(usage)]) + encoder.close()
    assert b'"output_tokens_details":{"thinking_tokens":2}' in raw
