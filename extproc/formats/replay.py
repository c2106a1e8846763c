"""A whole answer as stream events: how a client stream is served by a provider that cannot
stream, and how a cached or local answer is replayed to a client that asked for a stream."""

from __future__ import annotations

from extproc.formats.canonical import (
    ChatResponse,
    Choice,
    Finish,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageUpdate,
)


def response_events(response: ChatResponse) -> list[StreamEvent]:
    """A whole answer as stream events: how a client stream is served by a provider that cannot stream,
    and how a cached answer is replayed (in the pieces it was first streamed in, when it was)."""
    events: list[StreamEvent] = [StreamStart(response.id, response.model, response.created)]
    for choice in response.choices:
        for thinking in choice.thinking:
            events.append(
                ThinkingDelta(thinking.text, thinking.signature, choice.index, thinking.redacted, thinking.encrypted)
            )
        events += _text_deltas(choice)
        for i, call in enumerate(choice.tool_calls):
            events.append(ToolCallStart(i, call.id, call.name, choice.index))
            events.append(ToolCallDelta(i, call.arguments, choice.index))
        events.append(Finish(choice.finish_reason or "stop", choice.index))
    if response.usage is not None:
        events.append(UsageUpdate(response.usage))
    return events


def _text_deltas(choice: Choice) -> list[StreamEvent]:
    text, pieces = choice.text, choice.pieces
    if not text:
        return []
    if sum(pieces) != len(text):  # a whole answer, or pieces that do not describe this text
        return [TextDelta(text, choice.index)]
    deltas: list[StreamEvent] = []
    start = 0
    for length in pieces:
        deltas.append(TextDelta(text[start : start + length], choice.index))
        start += length
    return deltas
