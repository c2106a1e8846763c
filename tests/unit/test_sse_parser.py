"""The SSE parser gives the same events however the stream is cut and whichever line ends it uses,
costs bytes in proportion to what it is fed, and stops at a line over its bound."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.formats.sse import SSEEvent, SSEParser
from tests.support.fixtures import fixture_bytes

_text = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
_event = st.tuples(st.sampled_from(["", "message_start", "delta"]), st.lists(_text, min_size=1, max_size=3))


def _render(events: list[tuple[str, list[str]]], newline: bytes, comment: bool) -> bytes:
    out = b""
    for name, data in events:
        if comment:
            out += b": keep-alive" + newline
        if name:
            out += b"event: " + name.encode() + newline
        out += b"".join(b"data: " + line.encode() + newline for line in data) + newline
    return out


@given(
    st.lists(_event, min_size=1, max_size=5),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_events_survive_any_cut_and_any_line_end(
    events: list[tuple[str, list[str]]], newline: bytes, comment: bool, cuts: list[int]
) -> None:
    stream = _render(events, newline, comment)
    points = sorted({min(cut, len(stream)) for cut in cuts})
    parser, parsed = SSEParser(), []
    for start, end in zip([0, *points], [*points, len(stream)], strict=True):
        parsed += parser.feed(stream[start:end])
    parsed += parser.close()
    assert parsed == [SSEEvent(name, "\n".join(data)) for name, data in events]


def test_a_multibyte_character_cut_between_chunks_is_kept_whole() -> None:
    stream = 'data: {"text":"h\u00e9llo \u2603"}\n\n'.encode()
    parser = SSEParser()
    parsed = [ev for i in range(len(stream)) for ev in parser.feed(stream[i : i + 1])]
    assert parsed == [SSEEvent("", '{"text":"h\u00e9llo \u2603"}')]


def test_a_line_that_is_not_a_field_is_kept_raw_and_a_last_event_without_its_blank_line_is_flushed() -> None:
    parser = SSEParser()
    parsed = parser.feed(b'{"error": {"code": 500}}\n\ndata: last')
    parsed += parser.close()
    assert parsed == [SSEEvent("", "", ['{"error": {"code": 500}}']), SSEEvent("", "last")]


# --- linear and bounded ------------------------------------------------------------------------


def allocated_while_feeding(feed: Callable[[bytes], object], chunks: list[bytes]) -> int:
    """Bytes allocated inside the feed calls beyond what each call started with, summed: what a
    parser copies. A parser that re-concatenates its buffer per chunk allocates the whole line again
    each time (quadratic); one that appends allocates about what it keeps."""
    total = 0
    tracemalloc.start()
    try:
        for chunk in chunks:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            feed(chunk)
            total += tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return total


def long_line_chunks(size: int, chunk: int = 1024, prefix: bytes = b"data: ") -> list[bytes]:
    line = prefix + b"x" * size
    return [line[i : i + chunk] for i in range(0, len(line), chunk)]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_feeding_a_long_line_in_small_chunks_costs_bytes_in_proportion_to_its_length(newline: bytes) -> None:
    per_byte = []
    for size in (256 * 1024, 1024 * 1024):
        parser = SSEParser()  # both lengths within the default bound (4 MiB)
        chunks = [*long_line_chunks(size), newline + newline]
        per_byte.append(allocated_while_feeding(parser.feed, chunks) / size)
        assert len(parser.close()) == 0
    # Linear: a constant number of copies per byte, whatever the length (quadratic: 128, then 512).
    assert max(per_byte) < 8, per_byte


def test_a_line_over_the_bound_stops_the_parser_and_keeps_the_events_before_it() -> None:
    parser = SSEParser(max_line_bytes=1024)
    events = parser.feed(b"data: first\n\n")
    for chunk in long_line_chunks(2000, chunk=100):
        events += parser.feed(chunk)
    assert parser.overflow
    assert events == [SSEEvent("", "first")]
    assert parser.feed(b"\n\ndata: after\n\n") == [] and parser.close() == []  # nothing more is read


def test_a_long_line_arriving_whole_is_bounded_too() -> None:
    parser = SSEParser(max_line_bytes=1024)
    assert parser.feed(b"data: ok\n\n" + b"data: " + b"y" * 2000 + b"\n\n") == [SSEEvent("", "ok")]
    assert parser.overflow


def test_an_event_of_many_short_lines_is_bounded_as_one_line() -> None:
    parser = SSEParser(max_line_bytes=1024)
    assert parser.feed(b"data: x\n" * 300) == []
    assert parser.overflow


@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_lines_within_the_bound_are_never_cut_short(sizes: list[int]) -> None:
    stream = b"".join(b"data: " + b"z" * size + b"\n\n" for size in sizes)
    parser = SSEParser(max_line_bytes=70)
    parsed = [ev for i in range(0, len(stream), 7) for ev in parser.feed(stream[i : i + 7])] + parser.close()
    assert not parser.overflow
    assert [len(ev.data) for ev in parsed] == sizes


_line = st.one_of(
    _text.map(lambda t: "data: " + t),
    _text.map(lambda t: "data:" + t),
    _text.map(lambda t: "event: " + t),
    _text.map(lambda t: ": " + t),
    _text.map(lambda t: "id: " + t),
    _text,  # not a field: kept raw
)


def _events_byte_by_byte(stream: bytes) -> list[SSEEvent]:
    """The line-by-line reading: a one-byte chunk never holds a whole event."""
    parser, parsed = SSEParser(), []
    for i in range(len(stream)):
        parsed += parser.feed(stream[i : i + 1])
    return parsed + parser.close()


@given(st.lists(st.lists(_line, max_size=4), min_size=1, max_size=6), st.lists(st.integers(0, 6), max_size=4))
def test_chunks_of_whole_events_read_as_the_same_events_as_line_by_line(
    blocks: list[list[str]], cuts: list[int]
) -> None:
    """Providers cut their chunks after an event: such a chunk is read by the events' shapes, which
    must give what reading it line by line gives, whatever lines the events hold."""
    events = [("\n".join(lines) + "\n\n").encode() for lines in blocks]
    points = sorted({min(cut, len(events)) for cut in cuts})
    parser, parsed = SSEParser(), []
    for start, end in zip([0, *points], [*points, len(events)], strict=True):
        parsed += parser.feed(b"".join(events[start:end]))
    parsed += parser.close()
    assert parsed == _events_byte_by_byte(b"".join(events))


def test_a_chunk_of_whole_events_after_a_cut_line_is_read_line_by_line() -> None:
    parser = SSEParser()
    first = parser.feed(b"event: delta\ndata: {")
    rest = parser.feed(b'"a":1}\n\ndata: {"b":2}\n\n')
    assert first == [] and rest == [SSEEvent("delta", '{"a":1}'), SSEEvent("", '{"b":2}')]


_RECORDED_STREAMS = [
    "openai/chat-streaming.response.sse",
    "openai/chat-streaming-usage.response.sse",
    "anthropic/stream-basic.response.sse",
    "anthropic/stream-tool-use.response.sse",
    "anthropic/stream-redacted-thinking.response.sse",
    "gemini/stream-basic.response.sse",
    "gemini/stream-error-mid-stream.response.sse",
]


@pytest.mark.parametrize("rel", _RECORDED_STREAMS)
def test_a_recorded_stream_read_whole_or_event_by_event_gives_the_line_by_line_events(rel: str) -> None:
    stream = fixture_bytes(rel)
    expected = _events_byte_by_byte(stream)
    whole = SSEParser()
    by_event = SSEParser()
    *events, rest = stream.split(b"\n\n")
    pieces = [event + b"\n\n" for event in events] + [rest]  # as providers send it: an event a chunk
    assert expected and b"".join(pieces) == stream
    assert whole.feed(stream) + whole.close() == expected
    assert [ev for piece in pieces for ev in by_event.feed(piece)] + by_event.close() == expected
