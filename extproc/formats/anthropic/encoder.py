"""Client side: canonical stream events -> the Anthropic `event:`-framed stream."""

from __future__ import annotations

from typing import Any

from extproc.errors import ERROR_TABLE, GatewayError
from extproc.formats.anthropic.common import anthropic_usage, dumps_lenient, message_id, new_id, stop_reason
from extproc.formats.canonical import (
    ChatRequest,
    Finish,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from extproc.formats.sse import frame


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return frame(dumps_lenient(payload), kind)


class StreamEncoder:
    """Canonical stream events -> the Anthropic event sequence.

    message_start goes out at the end of the first batch that has a StreamStart
    (so usage decoded with it is included), content blocks open and close as
    the kind of content changes, and message_delta + message_stop are written
    by close(): other providers report final usage after their finish reason.
    """

    def __init__(self, request: ChatRequest) -> None:
        self._model = request.model
        self._id = ""
        self._start_pending = False
        self._started = False
        self._failed = False
        self._closed = False
        self._next_block = 0
        self._open: str | None = None  # "text" | "thinking" | "redacted" | "tool"
        self._open_index = -1
        self._signed = False  # the open thinking block already has its signature
        self._call_blocks: dict[int, int] = {}  # call_index -> block index
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._start_input: int | None = None

    def encode(self, events: list[StreamEvent]) -> bytes:
        if self._closed or self._failed:
            return b""
        out: list[bytes] = []
        for event in events:
            self._encode_one(event, out)
            if self._failed:
                break
        if self._start_pending:
            self._emit_start(out)
        return b"".join(out)

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        if self._failed:
            return b""
        out: list[bytes] = []
        self._ensure_started(out)
        self._close_block(out)
        usage: dict[str, int] = {"output_tokens": 0}
        if self._usage is not None:
            usage = anthropic_usage(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(self._finish, bool(self._call_blocks)),
                "stop_sequence": None,
            },
            "usage": usage,
        }
        out.append(_event("message_delta", delta))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    # ---- internals

    def _encode_one(self, event: StreamEvent, out: list[bytes]) -> None:
        if isinstance(event, TextDelta):
            if event.index == 0 and event.text:
                self._text(event.text, out)
        elif isinstance(event, ToolCallDelta):
            if event.index == 0 and event.arguments:
                self._tool_delta(event, out)
        elif isinstance(event, ToolCallStart):
            if event.index == 0 and self._call_blocks.get(event.call_index) is None:
                self._ensure_started(out)
                self._tool_start(event.call_index, event.id, event.name, out)
        elif isinstance(event, ThinkingDelta):
            if event.index == 0:
                self._thinking(event, out)
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, Finish):
            if event.index == 0:
                self._ensure_started(out)
                self._close_block(out)
                self._finish = event.reason
        elif isinstance(event, StreamStart):
            if not self._started and not self._start_pending:
                self._id = message_id(event.id)
                self._model = event.model or self._model
                self._start_input = event.input_tokens
                self._start_pending = True
        elif isinstance(event, StreamFailure):
            if self._start_pending:
                self._emit_start(out)
            self._failure(event.error, out)

    def _failure(self, error: Any, out: list[bytes]) -> None:
        if isinstance(error, GatewayError):
            detail = {"type": ERROR_TABLE[error.kind][2], "message": error.message}
        else:
            detail = {"type": "api_error", "message": str(error)}
        out.append(_event("error", {"type": "error", "error": detail}))
        self._failed = True

    def _ensure_started(self, out: list[bytes]) -> None:
        if not self._started:
            if not self._id:
                self._id = new_id("msg_")
            self._emit_start(out)

    def _emit_start(self, out: list[bytes]) -> None:
        self._start_pending = False
        self._started = True
        usage = anthropic_usage(self._usage)
        if self._usage is None and self._start_input is not None:
            usage["input_tokens"] = self._start_input
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(_event("message_start", {"type": "message_start", "message": message}))

    def _open_block(self, kind: str, block: dict[str, Any], out: list[bytes]) -> int:
        self._close_block(out)
        index = self._next_block
        self._next_block += 1
        self._open, self._open_index, self._signed = kind, index, False
        start = {"type": "content_block_start", "index": index, "content_block": block}
        out.append(_event("content_block_start", start))
        return index

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        stop = {"type": "content_block_stop", "index": self._open_index}
        out.append(_event("content_block_stop", stop))
        self._open = None

    def _delta(self, index: int, delta: dict[str, Any], out: list[bytes]) -> None:
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        out.append(_event("content_block_delta", payload))

    def _text(self, text: str, out: list[bytes]) -> None:
        self._ensure_started(out)
        if self._open != "text":
            self._open_block("text", {"type": "text", "text": ""}, out)
        self._delta(self._open_index, {"type": "text_delta", "text": text}, out)

    def _thinking(self, event: ThinkingDelta, out: list[bytes]) -> None:
        if not event.text and not event.signature:
            return
        self._ensure_started(out)
        if event.redacted:  # a whole block, as the API sends it: data in the start, no deltas
            if event.signature:
                self._open_block("redacted", {"type": "redacted_thinking", "data": event.signature}, out)
                self._close_block(out)
            return
        # a signature closes a thinking block: more thinking text starts another one
        if self._open != "thinking" or (event.text and self._signed):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            self._open_block("thinking", block, out)
        if event.text:
            self._delta(self._open_index, {"type": "thinking_delta", "thinking": event.text}, out)
        if event.signature:
            delta = {"type": "signature_delta", "signature": event.signature}
            self._delta(self._open_index, delta, out)
            self._signed = True

    def _tool_start(self, call_index: int, call_id: str, name: str, out: list[bytes]) -> None:
        block = {"type": "tool_use", "id": call_id or new_id("toolu_"), "name": name, "input": {}}
        self._call_blocks[call_index] = self._open_block("tool", block, out)

    def _tool_delta(self, event: ToolCallDelta, out: list[bytes]) -> None:
        self._ensure_started(out)
        index = self._call_blocks.get(event.call_index)
        if index is None:  # arguments without a start: open the call with what we know
            self._tool_start(event.call_index, "", "", out)
            index = self._open_index
        # a late fragment for an already closed call still goes to its own block index
        self._delta(index, {"type": "input_json_delta", "partial_json": event.arguments}, out)
