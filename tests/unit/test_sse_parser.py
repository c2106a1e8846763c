"""The SSE parser gives the same events however the stream is cut and whichever line ends it uses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from extproc.formats.sse import SSEEvent, SSEParser

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
