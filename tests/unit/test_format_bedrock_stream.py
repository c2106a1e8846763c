"""Bedrock's streams, provider side: recorded real ConverseStream and InvokeModelWithResponseStream
answers decode into the canonical events the other provider streams give, whatever the chunk cuts;
an exception frame, a corrupt frame and a cut-off stream each end the stream with one in-band error;
Claude's InvokeModel stream becomes the Anthropic SSE an Anthropic client reads; and decoding adds no
copy of the stream to the codec's own."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.errors import client_status
from extproc.formats.anthropic.decoder import StreamDecoder as AnthropicStreamDecoder
from extproc.formats.bedrock import invoke
from extproc.formats.bedrock.converse_stream import ConverseStreamDecoder
from extproc.formats.bedrock.wire import CONVERSE, INVOKE_ANTHROPIC
from extproc.formats.canonical import (
    ChatRequest,
    Finish,
    Message,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageUpdate,
)
from extproc.formats.eventstream import EventStreamDecoder, encode_message
from extproc.formats.protocols import StreamDecoder
from extproc.formats.render_options import RenderOptions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bedrock"
# The facts: a throttlingException frame as AWS writes it (botocore reads it back).
THROTTLING_HEX = (
    "000000b0000000614f5086b30f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d"
    "3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700096578"
    "63657074696f6e7b226d657373616765223a22546f6f206d616e7920746f6b656e732c20706c6561736520776169742062"
    "65666f726520747279696e6720616761696e2e227df70ae57f"
)


@cache
def recordings() -> dict[str, Any]:
    streams: dict[str, Any] = json.loads((FIXTURES / "recorded_streams.json").read_text())
    converse: dict[str, Any] = json.loads((FIXTURES / "recorded_converse.json").read_text())
    return {**streams, **converse}


def body(name: str) -> bytes:
    return base64.b64decode(recordings()[name]["body_base64"])


def decode(decoder: StreamDecoder, stream: bytes, cuts: list[int] | None = None) -> list[StreamEvent]:
    points = sorted({min(max(cut, 0), len(stream)) for cut in cuts or []})
    events: list[StreamEvent] = []
    for start, end in zip([0, *points], [*points, len(stream)], strict=True):
        events += decoder.feed(stream[start:end])
    return events + decoder.close()


def comparable(events: list[StreamEvent]) -> list[StreamEvent]:
    """Made-up ids and the clock aside."""
    return [StreamStart("", e.model, 0, e.input_tokens) if isinstance(e, StreamStart) else e for e in events]


def frames(name: str) -> list[bytes]:
    """The recorded stream cut at its frame boundaries."""
    stream, out, position = body(name), [], 0
    while position < len(stream):
        length = int.from_bytes(stream[position : position + 4], "big")
        out.append(stream[position : position + length])
        position += length
    return out


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_a_recorded_converse_stream_with_a_tool_call_decodes_to_canonical_events() -> None:
    events = decode(CONVERSE.stream_decoder(), body("converse_stream_tool_call"))
    assert isinstance(events[0], StreamStart)
    assert text_of(events).startswith("<thinking> To find the temperature")
    calls = [e for e in events if isinstance(e, ToolCallStart | ToolCallDelta)]
    assert calls == [
        ToolCallStart(0, "tooluse_lAG_zP8QRHmSYOwZzzaCqA", "get_temperature"),
        ToolCallDelta(0, '{"city":"Paris"}'),
    ]
    assert events[-2:] == [Finish("tool_calls"), UsageUpdate(events[-1].usage)]  # type: ignore[union-attr]
    usage = events[-1].usage  # type: ignore[union-attr]
    assert (usage.input_tokens, usage.output_tokens) == (471, 91)


def test_recorded_reasoning_streams_give_the_thinking_then_its_signature() -> None:
    events = decode(CONVERSE.stream_decoder(), body("converse_stream_reasoning"))
    thinking = [e for e in events if isinstance(e, ThinkingDelta)]
    assert thinking[0].text and all(e.signature is None for e in thinking[:-1])
    assert thinking[-1].text == "" and thinking[-1].signature and thinking[-1].signature.startswith("Eu0C")
    assert text_of(events) and events[-2] == Finish("stop")
    redacted = [
        e
        for e in decode(ConverseStreamDecoder(), body("converse_stream_redacted_reasoning"))
        if isinstance(e, ThinkingDelta)
    ]
    assert len(redacted) == 2 and all(e.redacted and e.signature and e.signature.startswith("E") for e in redacted)


@pytest.mark.parametrize(
    "name",
    [
        "converse_stream_tool_call",
        "converse_stream_reasoning",
        "converse_stream_plain",
        "converse_stream_redacted_reasoning",
    ],
)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_chunk_cuts_give_the_same_events(name: str, data: st.DataObject) -> None:
    stream = body(name)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    whole = comparable(decode(ConverseStreamDecoder(), stream))
    assert comparable(decode(ConverseStreamDecoder(), stream, cuts)) == whole
    assert not any(isinstance(e, StreamFailure) for e in whole)


def test_an_exception_frame_mid_stream_ends_it_with_the_in_band_error_after_the_events_before_it() -> None:
    before = frames("converse_stream_plain")[:4]
    stream = b"".join(before) + bytes.fromhex(THROTTLING_HEX) + b"".join(frames("converse_stream_plain")[4:])
    events = decode(ConverseStreamDecoder(), stream)
    assert text_of(events) == text_of(ConverseStreamDecoder().feed(b"".join(before)))
    failure = events[-1]
    assert isinstance(failure, StreamFailure) and sum(isinstance(e, StreamFailure) for e in events) == 1
    assert failure.error.kind == "rate_limit" and client_status(failure.error) == 429
    assert failure.error.message == "Too many tokens, please wait before trying again."


def test_an_error_frame_names_its_code() -> None:
    frame = encode_message({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b"")
    events = decode(ConverseStreamDecoder(), b"".join(frames("converse_stream_plain")[:2]) + frame)
    assert isinstance(events[-1], StreamFailure) and events[-1].error.message == "boom"
    assert events[-1].error.kind == "provider_error"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_corrupt_frame_ends_the_stream_with_one_in_band_error_wherever_the_bit_flips(data: st.DataObject) -> None:
    stream = bytearray(body("converse_stream_plain"))
    bit = data.draw(st.integers(0, len(stream) * 8 - 1))
    stream[bit // 8] ^= 1 << (bit % 8)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    events = decode(ConverseStreamDecoder(), bytes(stream), cuts)
    failures = [e for e in events if isinstance(e, StreamFailure)]
    assert len(failures) == 1 and events[-1] is failures[0]
    assert failures[0].error.kind == "provider_error"


def test_a_stream_cut_inside_a_frame_or_before_message_stop_ends_with_an_in_band_error() -> None:
    stream = body("converse_stream_plain")
    cut = decode(ConverseStreamDecoder(), stream[:-7])
    assert isinstance(cut[-1], StreamFailure) and "cut off" in cut[-1].error.message
    whole_frames = frames("converse_stream_plain")
    early = decode(ConverseStreamDecoder(), b"".join(whole_frames[:3]))
    assert isinstance(early[-1], StreamFailure) and "before the message was complete" in early[-1].error.message


def test_decoding_adds_no_copy_to_the_codecs_own() -> None:
    """Fed a byte at a time, the decoder buffers exactly what the codec alone buffers, and holds
    nothing between chunks beyond the codec's unfinished frame."""
    stream = body("converse_stream_reasoning")
    decoder, codec = ConverseStreamDecoder(), EventStreamDecoder()
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        codec.feed(stream[i : i + 1])
        assert decoder.codec.pending == codec.pending
    assert decoder.codec.bytes_buffered == codec.bytes_buffered <= len(stream)


def test_the_recorded_invoke_stream_becomes_anthropic_sse_the_anthropic_decoder_reads() -> None:
    stream = body("invoke_stream_anthropic")
    sse = invoke.InvokeStreamToSSE()
    out = sse.feed(stream) + sse.close()
    blocks = [block for block in out.decode().split("\n\n") if block]
    names = [block.split("\n")[0] for block in blocks]
    assert names[0] == "event: message_start" and names[-1] == "event: message_stop"
    for block in blocks:  # each event's JSON as Bedrock sent it, named by its type
        event, data = block.split("\n")
        assert event == "event: " + orjson.loads(data.removeprefix("data: "))["type"]
    through_anthropic = AnthropicStreamDecoder()
    expected = through_anthropic.feed(out) + through_anthropic.close()
    events = decode(INVOKE_ANTHROPIC.stream_decoder(), stream, cuts=list(range(0, len(stream), 5)))
    assert comparable(events) == comparable(expected)
    assert text_of(events) == (
        "212 degrees Fahrenheit is equivalent to 100 degrees Celsius.\n\n"
        "This is the boiling point of water at standard atmospheric pressure."
    )
    assert events[-2:] == [Finish("stop"), UsageUpdate(events[-1].usage)]  # type: ignore[union-attr]
    assert (events[-1].usage.input_tokens, events[-1].usage.output_tokens) == (21, 34)  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_invoke_stream_any_cuts_give_the_same_sse(data: st.DataObject) -> None:
    stream = body("invoke_stream_anthropic")
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=30))))
    whole = invoke.InvokeStreamToSSE()
    expected = whole.feed(stream) + whole.close()
    pieces = invoke.InvokeStreamToSSE()
    out = b"".join(pieces.feed(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True))
    assert out + pieces.close() == expected


def test_an_invoke_exception_or_a_corrupt_frame_is_an_anthropic_error_event_and_the_end() -> None:
    stream = body("invoke_stream_anthropic")
    first = int.from_bytes(stream[:4], "big")
    sse = invoke.InvokeStreamToSSE()
    out = sse.feed(stream[:first] + bytes.fromhex(THROTTLING_HEX) + stream[first:]) + sse.close()
    last = out.decode().rstrip("\n").split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    assert orjson.loads(last.split("data: ", 1)[1])["error"]["type"] == "rate_limit_error"
    assert out.count(b"event: ") == 2 and sse.failed
    corrupt = bytearray(stream)
    corrupt[first + 40] ^= 0x01
    events = decode(INVOKE_ANTHROPIC.stream_decoder(), bytes(corrupt))
    assert isinstance(events[-1], StreamFailure) and events[-1].error.kind == "provider_error"


def test_invoke_bodies_are_the_messages_request_without_model_or_stream_with_bedrocks_version() -> None:
    request = ChatRequest(model="claude", messages=[Message("user", [TextPart("hi")])], stream=True, max_tokens=64)
    made = orjson.loads(INVOKE_ANTHROPIC.render_request(request, RenderOptions("us.anthropic.claude-x-v1:0")).body)
    assert made == {
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "anthropic_version": "bedrock-2023-05-31",
    }
    client = orjson.dumps(
        {
            "model": "claude-sonnet-4-5",
            "anthropic_version": "2026-10-21",
            "stream": True,
            "max_tokens": 10,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
            ],
        }
    )
    forwarded = orjson.loads(
        invoke.passthrough_body(client, invoke.betas_of("prompt-caching-2024-07-31, extended-cache-ttl-2025-04-11"))
    )
    expected = orjson.loads(client)
    del expected["model"], expected["stream"]
    expected["anthropic_version"] = "bedrock-2023-05-31"
    expected["anthropic_beta"] = ["prompt-caching-2024-07-31", "extended-cache-ttl-2025-04-11"]
    assert forwarded == expected
