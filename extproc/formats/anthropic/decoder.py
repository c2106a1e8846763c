"""Provider side: Anthropic's SSE stream -> canonical stream events."""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.anthropic.answers import UsageTracker, error_from_object, provider_failure
from extproc.formats.anthropic.common import finish_in, new_id
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
from extproc.formats.json_fields import is_int
from extproc.formats.sse import MAX_LINE_BYTES, SSEEvent, SSEParser, overflow_message


class StreamDecoder:
    """Anthropic's SSE stream -> canonical events.

    message_start -> StreamStart + UsageUpdate(input), text/thinking/tool deltas,
    message_delta -> Finish + UsageUpdate (cumulative), `event: error` -> StreamFailure.
    A stream that ends before its stop reason is reported as a StreamFailure.
    A redacted_thinking block arrives whole in content_block_start: one redacted ThinkingDelta.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._sse = SSEParser(max_line_bytes)
        self._created = int(time.time())
        self._started = False
        self._finished = False
        self._failed = False
        self._closed = False
        self._calls = 0
        self._blocks: dict[int, int] = {}  # content block index -> call_index (tool_use only)
        self._usage = UsageTracker()

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for sse in self._sse.feed(chunk):
            self._handle(sse, events)
        self._check_overflow(events)
        return events

    def close(self) -> list[StreamEvent]:
        if self._closed:
            return []
        self._closed = True
        events: list[StreamEvent] = []
        for sse in self._sse.close():
            self._handle(sse, events)
        self._check_overflow(events)
        if not self._finished and not self._failed:
            self._fail(provider_failure("provider stream ended before the message was complete"), events)
        return events

    def _check_overflow(self, events: list[StreamEvent]) -> None:
        if self._sse.overflow and not self._failed and not self._finished:
            self._fail(provider_failure(overflow_message(self._sse.max_line_bytes)), events)

    def _fail(self, error: GatewayError, events: list[StreamEvent]) -> None:
        self._failed = True
        events.append(StreamFailure(error))

    def _handle(self, sse: SSEEvent, events: list[StreamEvent]) -> None:
        if self._failed:
            return
        if not sse.data:
            # a line that is no SSE field: only a bare JSON error object means something
            if sse.raw and not sse.event:
                self._raw_error("\n".join(sse.raw), events)
            return
        try:
            data = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            self._fail(provider_failure("malformed event in the provider stream"), events)
            return
        etype = data.get("type")
        if not isinstance(etype, str):
            etype = sse.event
        if etype == "content_block_delta":  # nearly every event: compared first
            self._block_delta(data, events)
        elif etype == "error":
            self._fail(error_from_object(data, None), events)
        elif etype == "content_block_start":
            self._block_start(data, events)
        elif etype == "message_start":
            self._message_start(data.get("message"), events)
        elif etype == "message_delta":
            self._message_delta(data, events)
        # ping, content_block_stop, message_stop and unknown types carry nothing

    def _raw_error(self, text: str, events: list[StreamEvent]) -> None:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if isinstance(data, dict) and "error" in data:
            self._fail(error_from_object(data, None), events)

    def _ensure_started(self, events: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            events.append(StreamStart(new_id("msg_"), "", self._created))

    def _message_start(self, message: Any, events: list[StreamEvent]) -> None:
        if self._started or not isinstance(message, dict):
            self._ensure_started(events)
            return
        self._started = True
        msg_id, model = message.get("id"), message.get("model")
        has_usage = self._usage.update(message.get("usage"))
        usage = self._usage.canonical()
        events.append(
            StreamStart(
                msg_id if isinstance(msg_id, str) and msg_id else new_id("msg_"),
                model if isinstance(model, str) else "",
                self._created,
                usage.input_tokens if has_usage else None,
            )
        )
        if has_usage:
            events.append(UsageUpdate(usage))

    def _block_start(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        self._ensure_started(events)
        block, index = data.get("content_block"), data.get("index")
        if not isinstance(block, dict) or not is_int(index):
            return
        btype = block.get("type")
        if btype == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            call_index = self._calls
            self._calls += 1
            self._blocks[index] = call_index
            events.append(
                ToolCallStart(
                    call_index,
                    call_id if isinstance(call_id, str) and call_id else new_id("toolu_"),
                    name if isinstance(name, str) else "",
                )
            )
            args = block.get("input")
            if isinstance(args, dict) and args:  # a start that already carries its input
                events.append(ToolCallDelta(call_index, orjson.dumps(args).decode()))
        elif btype == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        elif btype == "thinking":
            text, signature = block.get("thinking"), block.get("signature")
            text = text if isinstance(text, str) else ""
            signature = signature if isinstance(signature, str) and signature else None
            if text or signature:
                events.append(ThinkingDelta(text, signature))
        elif btype == "redacted_thinking":
            opaque = block.get("data")
            if isinstance(opaque, str) and opaque:
                events.append(ThinkingDelta("", opaque, redacted=True))

    def _block_delta(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        if not self._started:
            self._ensure_started(events)
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return
        dtype = delta.get("type")
        if dtype == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        elif dtype == "input_json_delta":
            index = data.get("index")
            call_index = self._blocks.get(index) if is_int(index) else None
            fragment = delta.get("partial_json")
            if call_index is not None and isinstance(fragment, str) and fragment:
                events.append(ToolCallDelta(call_index, fragment))
        elif dtype == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                events.append(ThinkingDelta(text))
        elif dtype == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str) and signature:
                events.append(ThinkingDelta("", signature))

    def _message_delta(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        self._ensure_started(events)
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(reason, str) and not self._finished:
            self._finished = True
            events.append(Finish(finish_in(reason)))
        if self._usage.update(data.get("usage")):
            events.append(UsageUpdate(self._usage.canonical()))
