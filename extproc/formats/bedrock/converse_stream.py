"""Provider side: ConverseStream's event-stream bytes, in chunks cut anywhere -> canonical events.

messageStart -> StreamStart; a text or reasoning block opens on its first delta (Bedrock sends no
contentBlockStart for them); a toolUse block's contentBlockStart -> ToolCallStart, its input
fragments -> ToolCallDelta; messageStop -> Finish; `metadata`, which comes last, -> UsageUpdate.
An exception or error frame, a frame that fails its CRC, and a stream that ends inside a frame or
before messageStop each end the stream with one StreamFailure; nothing after it is read.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.answer_values import provider_error, random_text
from extproc.formats.bedrock.converse_answer import finish_reason, new_id, redacted_data, usage_of
from extproc.formats.bedrock.errors import frame_error
from extproc.formats.canonical import (
    Finish,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageUpdate,
)
from extproc.formats.eventstream import MAX_FRAME_BYTES, EventMessage, EventStreamDecoder, EventStreamError
from extproc.formats.json_fields import is_int


class EventFrames:
    """The event-stream codec with its failures as the in-band error every stream decoder gives."""

    __slots__ = ("codec",)

    def __init__(self, max_frame_bytes: int) -> None:
        self.codec = EventStreamDecoder(max_frame_bytes)

    def feed(self, chunk: bytes) -> tuple[list[EventMessage], GatewayError | None]:
        try:
            return self.codec.feed(chunk), None
        except EventStreamError as error:  # the good messages before the bad frame still count
            return error.messages, provider_error(f"the provider's event stream is corrupt: {error}")

    def close(self) -> GatewayError | None:
        try:
            self.codec.close()
        except EventStreamError as error:
            return provider_error(f"the provider's event stream was cut off: {error}")
        return None


class ConverseStreamDecoder:
    def __init__(self, model: str = "", max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._frames = EventFrames(max_frame_bytes)
        self._model = model
        self._started = self._finished = self._failed = self._closed = False
        self._calls: dict[int, int] = {}  # contentBlockIndex -> call_index, for toolUse blocks
        self._server_blocks: set[int] = set()  # blocks of tools Bedrock runs itself

    @property
    def codec(self) -> EventStreamDecoder:
        return self._frames.codec

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._failed or self._closed:
            return events
        messages, error = self._frames.feed(chunk)
        for message in messages:
            self._message(message, events)
            if self._failed:
                return events
        if error is not None:
            self._fail(error, events)
        return events

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._closed:
            return events
        self._closed = True
        if self._failed:
            return events
        error = self._frames.close()
        if error is not None:
            self._fail(error, events)
        elif not self._finished:
            self._fail(provider_error("provider stream ended before the message was complete"), events)
        return events

    def _fail(self, error: GatewayError, events: list[StreamEvent]) -> None:
        self._failed = True
        events.append(StreamFailure(error))

    def _message(self, message: EventMessage, events: list[StreamEvent]) -> None:
        error = frame_error(message)
        if error is not None:
            self._fail(error, events)
            return
        try:
            data = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            self._fail(provider_error("malformed event in the provider stream"), events)
            return
        kind = message.text(":event-type")
        if kind == "contentBlockDelta":
            self._delta(data, events)
        elif kind == "contentBlockStart":
            self._block_start(data, events)
        elif kind == "messageStart":
            self._start(events)
        elif kind == "messageStop":
            self._start(events)
            if not self._finished:
                self._finished = True
                events.append(Finish(finish_reason(data.get("stopReason"), bool(self._calls))))
        elif kind == "metadata":
            usage = usage_of(data.get("usage"))
            if usage is not None:
                events.append(UsageUpdate(usage))
        # contentBlockStop and unknown events carry nothing

    def _start(self, events: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            events.append(StreamStart(new_id(), self._model, int(time.time())))

    def _block_start(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        self._start(events)
        index, start = data.get("contentBlockIndex"), data.get("start")
        call = start.get("toolUse") if isinstance(start, dict) else None
        if not is_int(index) or not isinstance(call, dict):
            return  # a toolResult (of a tool Bedrock ran) or an image: nothing the canonical stream carries
        if call.get("type") == "server_tool_use":
            self._server_blocks.add(index)
            return
        call_id, name = call.get("toolUseId"), call.get("name")
        call_index = self._calls[index] = len(self._calls)
        events.append(
            ToolCallStart(
                call_index,
                call_id if isinstance(call_id, str) and call_id else "tooluse_" + random_text(22),
                name if isinstance(name, str) else "",
            )
        )

    def _delta(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        self._start(events)
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return
        text = delta.get("text")
        if isinstance(text, str):
            if text:
                events.append(TextDelta(text))
            return
        call = delta.get("toolUse")
        if isinstance(call, dict):
            index = data.get("contentBlockIndex")
            call_index = self._calls.get(index) if is_int(index) else None
            fragment = call.get("input")
            if call_index is not None and isinstance(fragment, str) and fragment:
                events.append(ToolCallDelta(call_index, fragment))
            return
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            thought, signature = reasoning.get("text"), reasoning.get("signature")
            if isinstance(thought, str) and thought:
                events.append(ThinkingDelta(thought))
            elif isinstance(signature, str) and signature:
                events.append(ThinkingDelta("", signature))
            else:
                opaque = redacted_data(reasoning.get("redactedContent"))
                if opaque is not None:
                    events.append(ThinkingDelta("", opaque, redacted=True))
