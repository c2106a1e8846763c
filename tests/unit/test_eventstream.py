"""The AWS event-stream codec reads what AWS writes and writes what botocore reads: real recorded
Bedrock frames decode to what botocore decodes and re-encode byte for byte; any cut of the stream
gives the same messages; any single flipped bit is caught; a declared length out of bounds is refused
as soon as the prelude is in; a stream that ends inside a frame is an error at close; and the bytes
copied grow with the bytes fed, never with the number of chunks."""

from __future__ import annotations

import base64
import json
import struct
import uuid
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.formats import eventstream
from extproc.formats.eventstream import (
    MAX_FRAME_BYTES,
    CorruptFrame,
    EventMessage,
    EventStreamDecoder,
    EventStreamError,
    HeaderValue,
    Timestamp,
    TruncatedStream,
    encode_message,
)

RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "bedrock" / "recorded_streams.json"

# Frames quoted in the facts: the first two built to AWS's layout and read back by botocore,
# the third a real Bedrock frame (pydantic-ai's test_bedrock_model_stream.yaml).
MESSAGE_START_HEX = (
    "000000760000005296d5fade0b3a6576656e742d7479706507000c6d65737361676553746172740d3a636f6e74656e742d7479"
    "70650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22726f6c65223a"
    "22617373697374616e74227d6fa8c599"
)
THROTTLING_HEX = (
    "000000b0000000614f5086b30f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d"
    "3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700096578"
    "63657074696f6e7b226d657373616765223a22546f6f206d616e7920746f6b656e732c20706c6561736520776169742062"
    "65666f726520747279696e6720616761696e2e227df70ae57f"
)
REAL_MESSAGE_STOP_HEX = (
    "0000009000000051a848991b0b3a6576656e742d7479706507000b6d65737361676553746f700d3a636f6e74656e742d747970"
    "650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b2270223a226162"
    "636465666768696a6b6c6d6e6f222c2273746f70526561736f6e223a22656e645f7475726e227d17536aef"
)

EVENT_HEADERS = {":content-type": "application/json", ":message-type": "event"}


@cache
def recordings() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(RECORDINGS.read_text())
    return loaded


def recorded_body(name: str) -> bytes:
    return base64.b64decode(recordings()[name]["body_base64"])


def decode_all(stream: bytes, cuts: list[int] | None = None) -> list[EventMessage]:
    """Decode ``stream`` fed in pieces cut at ``cuts`` (whole when None), closing at the end."""
    points = sorted({min(max(cut, 0), len(stream)) for cut in cuts or []})
    decoder, messages = EventStreamDecoder(), []
    for start, end in zip([0, *points], [*points, len(stream)], strict=True):
        messages += decoder.feed(stream[start:end])
    decoder.close()
    return messages


def botocore_messages(stream: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(stream)
    return [(message.headers, message.payload) for message in buffer]


def as_botocore(headers: dict[str, HeaderValue]) -> dict[str, Any]:
    """botocore keeps a timestamp as its integer and a uuid as its 16 bytes."""
    converted: dict[str, Any] = {}
    for name, value in headers.items():
        if isinstance(value, Timestamp):
            converted[name] = value.millis
        elif isinstance(value, uuid.UUID):
            converted[name] = value.bytes
        else:
            converted[name] = value
    return converted


def with_prelude(total: int, headers_length: int) -> bytes:
    prelude = struct.pack("!II", total, headers_length)
    return prelude + struct.pack("!I", zlib.crc32(prelude))


# --------------------------------------------------------------------------
# Real frames
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_hex", "headers", "payload"),
    [
        (MESSAGE_START_HEX, {":event-type": "messageStart", **EVENT_HEADERS}, b'{"role":"assistant"}'),
        (
            THROTTLING_HEX,
            {
                ":exception-type": "throttlingException",
                ":content-type": "application/json",
                ":message-type": "exception",
            },
            b'{"message":"Too many tokens, please wait before trying again."}',
        ),
        (
            REAL_MESSAGE_STOP_HEX,
            {":event-type": "messageStop", **EVENT_HEADERS},
            b'{"p":"abcdefghijklmno","stopReason":"end_turn"}',
        ),
    ],
    ids=["messageStart", "throttlingException", "real-messageStop"],
)
def test_the_quoted_frames_decode_and_encode_back_to_the_same_bytes(
    frame_hex: str, headers: dict[str, HeaderValue], payload: bytes
) -> None:
    frame = bytes.fromhex(frame_hex)
    (message,) = decode_all(frame)
    assert message == EventMessage(headers, payload)
    assert list(message.headers) == list(headers)  # AWS's header order
    assert encode_message(headers, payload) == frame


@pytest.mark.parametrize("name", ["converse_stream_tool_call", "converse_stream_reasoning", "invoke_stream_anthropic"])
def test_recorded_bedrock_streams_decode_as_botocore_decodes_them_and_re_encode_byte_for_byte(name: str) -> None:
    stream = recorded_body(name)
    ours = decode_all(stream)
    assert [(m.headers, m.payload) for m in ours] == botocore_messages(stream)
    assert len(ours) > 5
    assert b"".join(encode_message(m.headers, m.payload) for m in ours) == stream


@pytest.mark.parametrize("name", ["converse_stream_tool_call", "invoke_stream_anthropic"])
def test_a_recorded_stream_fed_one_byte_at_a_time_gives_the_same_messages(name: str) -> None:
    stream = recorded_body(name)
    assert decode_all(stream, list(range(len(stream)))) == decode_all(stream)


def test_the_recorded_tool_stream_has_the_event_shapes_the_fakes_copy() -> None:
    messages = decode_all(recorded_body("converse_stream_tool_call"))
    kinds = [m.text(":event-type") for m in messages]
    payloads = [json.loads(m.payload) for m in messages]
    assert kinds[0] == "messageStart" and kinds[1] == "contentBlockDelta"  # a text block opens on its delta
    assert kinds[-2:] == ["messageStop", "metadata"]
    assert all("p" in payload for payload in payloads)
    assert payloads[kinds.index("contentBlockStart")]["start"]["toolUse"]["name"] == "get_temperature"


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda name: len(name.encode()) < 256
)
_values: st.SearchStrategy[HeaderValue] = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=40),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.builds(Timestamp, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.uuids(),
)
_headers = st.dictionaries(_names, _values, max_size=6)
_messages = st.lists(st.tuples(_headers, st.binary(max_size=300)), min_size=1, max_size=5)


@given(_headers, st.binary(max_size=2000))
def test_any_headers_and_payload_round_trip_and_botocore_reads_the_encoding(
    headers: dict[str, HeaderValue], payload: bytes
) -> None:
    frame = encode_message(headers, payload)
    assert decode_all(frame) == [EventMessage(headers, payload)]
    assert botocore_messages(frame) == [(as_botocore(headers), payload)]


@given(_messages, st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_cut_of_a_stream_gives_the_same_messages(
    messages: list[tuple[dict[str, HeaderValue], bytes]], cuts: list[int]
) -> None:
    stream = b"".join(encode_message(headers, payload) for headers, payload in messages)
    assert decode_all(stream, cuts) == [EventMessage(headers, payload) for headers, payload in messages]


@settings(max_examples=300)
@given(_messages, st.data())
def test_any_single_flipped_bit_is_detected_and_no_altered_message_comes_out(
    messages: list[tuple[dict[str, HeaderValue], bytes]], data: st.DataObject
) -> None:
    frames = [encode_message(headers, payload) for headers, payload in messages]
    stream = bytearray(b"".join(frames))
    bit = data.draw(st.integers(min_value=0, max_value=len(stream) * 8 - 1))
    stream[bit // 8] ^= 1 << (bit % 8)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=4))
    hit_frame = next(i for i, end in enumerate(_ends(frames)) if bit // 8 < end)
    decoder, out = EventStreamDecoder(), []
    with pytest.raises(EventStreamError) as failure:
        points = sorted(set(cuts))
        for start, end in zip([0, *points], [*points, len(stream)], strict=True):
            out += decoder.feed(bytes(stream[start:end]))
        decoder.close()
    out += failure.value.messages  # the good messages of the chunk that failed
    assert out == [EventMessage(h, p) for h, p in messages[:hit_frame]]


def _ends(frames: list[bytes]) -> Iterator[int]:
    end = 0
    for frame in frames:
        end += len(frame)
        yield end


# --------------------------------------------------------------------------
# Bounds and errors
# --------------------------------------------------------------------------


def test_a_frame_declared_over_the_limit_is_refused_at_its_prelude_without_buffering_it() -> None:
    decoder = EventStreamDecoder()
    with pytest.raises(CorruptFrame, match="over the 16777216-byte limit"):
        decoder.feed(with_prelude(MAX_FRAME_BYTES + 1, 0))
    assert decoder.pending == 0
    with pytest.raises(CorruptFrame):  # the stream stays failed
        decoder.feed(b"more")


def test_the_prelude_is_checked_when_it_completes_across_chunks() -> None:
    decoder = EventStreamDecoder(max_frame_bytes=1024)
    prelude = with_prelude(4096, 0)
    assert decoder.feed(prelude[:5]) == []
    with pytest.raises(CorruptFrame, match="over the 1024-byte limit"):
        decoder.feed(prelude[5:])


@pytest.mark.parametrize(
    ("prelude", "message"),
    [
        (with_prelude(15, 0), "under the 16-byte minimum"),
        (with_prelude(0, 0), "under the 16-byte minimum"),
        (with_prelude(40, 25), "headers length 25 does not fit a 40-byte frame"),
        (struct.pack("!III", 40, 0, 0), "prelude CRC mismatch"),
    ],
)
def test_a_prelude_with_impossible_lengths_or_a_bad_crc_is_a_corrupt_frame(prelude: bytes, message: str) -> None:
    with pytest.raises(CorruptFrame, match=message):
        EventStreamDecoder().feed(prelude + b"\0" * 40)


def _frame_with_raw_headers(raw_headers: bytes, payload: bytes = b"{}") -> bytes:
    """A frame with valid CRCs around headers that are not valid."""
    body = with_prelude(16 + len(raw_headers) + len(payload), len(raw_headers)) + raw_headers + payload
    return body + struct.pack("!I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("raw_headers", "message"),
    [
        (b"\x01a\x0a", "type 10 is unknown"),
        (b"\x01a\x07\x00\x05ab", "runs past"),
        (b"\x05ab", "runs past"),
        (b"\x01a\x00\x01a\x01", "appears twice"),
        (b"\x02\xff\xfe\x00", "do not parse"),
        (b"\x01a\x04\x00\x01", "do not parse"),
    ],
    ids=["unknown-type", "string-overrun", "name-overrun", "duplicate", "bad-utf8-name", "short-int"],
)
def test_headers_that_do_not_parse_are_a_corrupt_frame(raw_headers: bytes, message: str) -> None:
    with pytest.raises(CorruptFrame, match=message):
        decode_all(_frame_with_raw_headers(raw_headers))


def test_a_stream_that_ends_inside_a_frame_is_truncated_at_close() -> None:
    frame = encode_message({":event-type": "messageStart", **EVENT_HEADERS}, b'{"role":"assistant"}')
    decoder = EventStreamDecoder()
    assert decoder.feed(frame + frame[:30]) == [
        EventMessage({":event-type": "messageStart", **EVENT_HEADERS}, b'{"role":"assistant"}')
    ]
    with pytest.raises(TruncatedStream, match=f"30 of {len(frame)} bytes"):
        decoder.close()
    short = EventStreamDecoder()
    short.feed(frame[:7])
    with pytest.raises(TruncatedStream, match="7 of at least 16 bytes"):
        short.close()


def test_a_stream_that_ends_between_frames_closes_cleanly() -> None:
    decoder = EventStreamDecoder()
    decoder.feed(bytes.fromhex(MESSAGE_START_HEX))
    decoder.close()
    EventStreamDecoder().close()


def test_a_message_crc_mismatch_is_reported_with_the_crc_expected() -> None:
    frame = bytearray.fromhex(REAL_MESSAGE_STOP_HEX)
    frame[-1] ^= 0xFF
    with pytest.raises(CorruptFrame, match="message CRC mismatch"):
        decode_all(bytes(frame))


def test_the_good_messages_before_a_corrupt_frame_come_with_the_error_and_a_failed_stream_stays_failed() -> None:
    good = bytes.fromhex(MESSAGE_START_HEX)
    bad = bytearray.fromhex(REAL_MESSAGE_STOP_HEX)
    bad[40] ^= 0x01
    decoder = EventStreamDecoder()
    with pytest.raises(CorruptFrame) as failure:
        decoder.feed(good + good + bytes(bad))
    assert [m.text(":event-type") for m in failure.value.messages] == ["messageStart", "messageStart"]
    for again in (lambda: decoder.feed(good), decoder.close):
        with pytest.raises(CorruptFrame, match="already failed") as repeated:
            again()
        assert repeated.value.messages == []


def test_the_encoder_refuses_what_the_format_cannot_carry() -> None:
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        encode_message({"": "x"}, b"")
    with pytest.raises(ValueError, match="at most 65535 bytes"):
        encode_message({"a": "x" * 70000}, b"")


# --------------------------------------------------------------------------
# Linear in bytes
# --------------------------------------------------------------------------


def _counting_crc(counter: list[int]) -> Callable[..., int]:
    real = zlib.crc32

    def crc32(data: Any, value: int = 0) -> int:
        counter[0] += len(data)
        return real(data, value)

    return crc32


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_one_large_frame_fed_in_small_chunks_is_buffered_once_and_checksummed_once(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB
    frame = encode_message({":event-type": "chunk", **EVENT_HEADERS}, payload)
    hashed = [0]
    monkeypatch.setattr(eventstream.zlib, "crc32", _counting_crc(hashed))
    decoder, messages = EventStreamDecoder(), []
    view = memoryview(frame)
    for start in range(0, len(frame), chunk):
        messages += decoder.feed(view[start : start + chunk])
    decoder.close()
    assert [m.payload for m in messages] == [payload]
    # Each byte is copied into the held frame once; the CRCs read the prelude and the frame once.
    assert decoder.bytes_buffered == len(frame)
    assert hashed[0] <= len(frame) + 8 * 3  # the prelude CRC may be read again while it is cut


def test_many_small_frames_are_read_in_place_and_only_the_cut_ones_are_buffered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames = [encode_message({":event-type": "contentBlockDelta", **EVENT_HEADERS}, b"x" * n) for n in range(2000)]
    stream = b"".join(frames)
    hashed = [0]
    monkeypatch.setattr(eventstream.zlib, "crc32", _counting_crc(hashed))
    decoder, count = EventStreamDecoder(), 0
    chunk = 64 * 1024
    for start in range(0, len(stream), chunk):
        count += len(decoder.feed(stream[start : start + chunk]))
    decoder.close()
    assert count == len(frames)
    chunks = -(-len(stream) // chunk)
    # At most one frame per chunk boundary is held, and no frame is bigger than the last one.
    assert decoder.bytes_buffered <= chunks * len(frames[-1])
    assert hashed[0] <= len(stream) + 8 * len(frames) + 8 * chunks
