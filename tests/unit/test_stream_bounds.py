"""Every provider stream decoder (and the gate a same-API stream passes) reads a stream at a cost in
proportion to its bytes, and ends it with a provider error at a line over its bound."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extproc.formats import FORMATS
from extproc.formats.canonical import StreamFailure, TextDelta
from extproc.formats.sse import LineGate
from tests.support.stream_lines import FIRST, LONG_LINE_START
from tests.unit.test_sse_parser import allocated_while_feeding


def long_line(provider: str, size: int, chunk: int = 1024) -> list[bytes]:
    line = LONG_LINE_START[provider] + b"x" * size
    return [FIRST[provider]] + [line[i : i + chunk] for i in range(0, len(line), chunk)]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_line_over_the_bound_ends_the_stream_with_a_provider_error(provider: str) -> None:
    decoder = FORMATS[provider].stream_decoder(16 * 1024)
    events = [event for chunk in long_line(provider, 64 * 1024) for event in decoder.feed(chunk)]
    events += decoder.close()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi"]
    failures = [e for e in events if isinstance(e, StreamFailure)]
    assert len(failures) == 1 and failures[0] is events[-1]
    assert failures[0].error.kind == "provider_error"
    assert "over 16384 bytes" in failures[0].error.message


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_decoding_a_long_line_costs_bytes_in_proportion_to_its_length(provider: str) -> None:
    per_byte = []
    for size in (256 * 1024, 1024 * 1024):
        decoder = FORMATS[provider].stream_decoder()  # both within the default bound
        per_byte.append(allocated_while_feeding(decoder.feed, long_line(provider, size)) / size)
    assert max(per_byte) < 8, per_byte


def test_gemini_lines_that_are_no_sse_field_are_each_read_once() -> None:
    """Bare lines (Gemini writes a JSON error that way) were joined and parsed again after each one."""
    per_byte = []
    for count in (2_000, 8_000):
        decoder = FORMATS["gemini"].stream_decoder()
        chunks = [b"not json " * 4 + b"\n\n"] * count
        per_byte.append(allocated_while_feeding(decoder.feed, chunks) / (count * 38))
    assert max(per_byte) < 40, per_byte


def test_a_gemini_json_array_element_over_the_bound_ends_the_stream() -> None:
    decoder = FORMATS["gemini"].stream_decoder(16 * 1024)
    element = b'{"candidates":[{"content":{"parts":[{"text":"' + b"x" * 64 * 1024 + b'"}]}}]}'
    stream = b'[{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}\n,\r\n' + element + b"\n]"
    events = [event for i in range(0, len(stream), 1000) for event in decoder.feed(stream[i : i + 1000])]
    events += decoder.close()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi"]
    assert isinstance(events[-1], StreamFailure) and "over 16384 bytes" in events[-1].error.message


# --- the gate of a same-API stream ------------------------------------------------------------------


def test_chunks_that_end_lines_go_on_unchanged() -> None:
    gate = LineGate(1024)
    assert gate.let_through(b"data: a\n\n", False) is None
    assert gate.let_through(b"data: b\r\n\r\n", False) is None
    assert gate.at_event_end


@given(st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=8), st.integers(1, 50))
def test_the_gate_lets_every_byte_through_in_order_and_only_whole_lines_until_the_end(
    sizes: list[int], step: int
) -> None:
    stream = b"".join(b"data: " + b"q" * size + b"\n\n" for size in sizes) + b"data: tail"
    gate, out = LineGate(1024), b""
    for i in range(0, len(stream), step):
        chunk = stream[i : i + step]
        end = i + step >= len(stream)
        passed = gate.let_through(chunk, end)
        passed = chunk if passed is None else passed
        if not end:
            assert passed == b"" or passed.endswith((b"\n", b"\r"))
        out += passed
    assert out == stream and not gate.overflow


def test_the_gate_stops_a_line_over_the_bound_before_any_of_it_went_through() -> None:
    gate = LineGate(1024)
    assert gate.let_through(b"data: ok\n\n", False) is None
    sent = [gate.let_through(b"data: " + b"z" * 500, False), gate.let_through(b"z" * 600, False)]
    assert sent == [b"", b""] and gate.overflow and gate.at_event_end


def test_the_gate_copies_a_long_line_a_bounded_number_of_times() -> None:
    per_byte = []
    for size in (256 * 1024, 1024 * 1024):
        gate = LineGate(4 * 1024 * 1024)
        chunks = [b"data: " + b"x" * 1000] + [b"x" * 1024] * (size // 1024) + [b"\n\n"]
        per_byte.append(allocated_while_feeding(lambda chunk, g=gate: g.let_through(chunk, False), chunks) / size)
    assert max(per_byte) < 8, per_byte


@pytest.mark.parametrize("end_of_stream", [False, True])
def test_a_long_line_inside_one_chunk_is_cut_off_at_its_start(end_of_stream: bool) -> None:
    """Envoy may hand over a whole answer at once: the lines before the long one still go through."""
    gate = LineGate(1024)
    out = gate.let_through(b"data: ok\n\n" + b"data: " + b"z" * 2000 + b"\n\ndata: after\n\n", end_of_stream)
    assert out == b"data: ok\n\n" and gate.overflow and gate.at_event_end


def test_lines_just_under_the_bound_go_through_at_a_cost_in_proportion_to_their_bytes() -> None:
    per_byte = []
    for count in (8, 32):
        gate = LineGate(64 * 1024)
        stream = (b"data: " + b"w" * (64 * 1024 - 10) + b"\n\n") * count
        chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
        per_byte.append(
            allocated_while_feeding(lambda chunk, g=gate: g.let_through(chunk, False), chunks) / len(stream)
        )
        assert not gate.overflow
    assert max(per_byte) < 8, per_byte
