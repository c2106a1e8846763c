"""A stream's events gathered back into one answer (what the cache stores and limits settle with)."""

from __future__ import annotations

from extproc.formats.assemble import StreamAssembler
from extproc.formats.canonical import (
    ChatResponse,
    Choice,
    Finish,
    StreamFailure,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ThinkingPart,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from extproc.formats.replay import response_events


def test_a_whole_answer_streamed_and_gathered_is_the_same_answer() -> None:
    answer = ChatResponse(
        "id-1",
        "m",
        17,
        [
            Choice(0, "hello", [ThinkingPart("hmm", "sig")], [ToolCall("c1", "fn", '{"x":1}')], "tool_calls"),
            Choice(1, "other", finish_reason="stop"),
        ],
        Usage(3, 4),
    )
    assembler = StreamAssembler()
    assembler.add(response_events(answer))
    assert assembler.complete
    assert assembler.response() == answer


def test_pieces_join_and_the_output_is_estimated_from_what_was_seen() -> None:
    assembler = StreamAssembler()
    assembler.add([StreamStart("id", "m", 1), TextDelta("abcd"), TextDelta("efgh")])
    assembler.add([ToolCallStart(0, "c1", "fn"), ToolCallDelta(0, '{"a"'), ToolCallDelta(0, ":1}")])
    assert not assembler.complete  # no finish yet: never cached
    assert assembler.estimated_output_tokens() == 4  # 15 characters
    assembler.add([ThinkingDelta("t"), ThinkingDelta("", "s"), Finish("tool_calls")])
    assert assembler.complete
    choice = assembler.response().choices[0]
    assert choice.text == "abcdefgh"
    assert choice.tool_calls == [ToolCall("c1", "fn", '{"a":1}')]
    assert choice.thinking == [ThinkingPart("t", "s")]


def test_a_gathered_stream_replays_in_the_pieces_it_came_in() -> None:
    assembler = StreamAssembler()
    assembler.add([StreamStart("id", "m", 1), TextDelta("Hel"), TextDelta("lo, "), TextDelta("world"), Finish("stop")])
    answer = assembler.response()
    assert (answer.choices[0].text, answer.choices[0].pieces) == ("Hello, world", [3, 4, 5])
    replayed = [ev.text for ev in response_events(answer) if isinstance(ev, TextDelta)]
    assert replayed == ["Hel", "lo, ", "world"]


def test_a_whole_answer_or_pieces_that_do_not_fit_its_text_replay_as_one_delta() -> None:
    whole = ChatResponse("id", "m", 1, [Choice(0, "Hello", finish_reason="stop")])
    mismatched = ChatResponse("id", "m", 1, [Choice(0, "Hello", finish_reason="stop", pieces=[2, 2])])
    for answer in (whole, mismatched):
        assert [ev.text for ev in response_events(answer) if isinstance(ev, TextDelta)] == ["Hello"]


def test_a_stream_with_an_in_band_failure_is_incomplete() -> None:
    assembler = StreamAssembler()
    assembler.add([TextDelta("x"), Finish("stop"), StreamFailure("boom")])
    assert not assembler.complete


def test_the_last_usage_is_the_count() -> None:
    assembler = StreamAssembler()
    assembler.add([UsageUpdate(Usage(1, 1)), TextDelta("x"), UsageUpdate(Usage(5, 7))])
    assert assembler.usage == Usage(5, 7)


def test_every_choice_must_finish() -> None:
    assembler = StreamAssembler()
    assembler.add([TextDelta("a", 0), TextDelta("b", 1), Finish("stop", 0)])
    assert not assembler.complete
    assembler.add([Finish("stop", 1)])
    assert assembler.complete
