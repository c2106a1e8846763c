"""Provider side: streamGenerateContent output (SSE or JSON array) -> canonical events."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.answer_values import provider_error, random_text
from extproc.formats.canonical import (
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
from extproc.formats.gemini.answers import call_from, error_from, finish_in, parse_usage, parts_of
from extproc.formats.sse import MAX_LINE_BYTES, SSEParser, overflow_message


class _ArraySplitter:
    """Splits the JSON array a non-SSE streamGenerateContent writes into its elements; each byte is
    looked at once. An element over `max_bytes` stops it (`overflow`)."""

    _SPECIAL = re.compile(rb'["\\\[\]{}]')

    def __init__(self, max_bytes: int = MAX_LINE_BYTES, outside: int = 0) -> None:
        """`outside=1`: no outer array, each top-level value is an element (stray closers are ignored)."""
        self._max = max_bytes
        self._floor = outside
        self._depth = outside  # 1 inside the outer array, >= 2 inside an element
        self._in_string = False
        self._escape = False
        self._element = bytearray()
        self.overflow = False

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        if self.overflow:
            return out
        out = self._split(chunk)
        for i, element in enumerate(out):
            if len(element) > self._max:
                self._stop()
                return out[:i]
        if len(self._element) > self._max:
            self._stop()
        return out

    def _stop(self) -> None:
        self.overflow = True
        self._element = bytearray()

    def _split(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos = 0
        size = len(chunk)
        while pos < size:
            if self._escape:
                self._escape = False
                if self._depth >= 2:
                    self._element += chunk[pos : pos + 1]
                pos += 1
                continue
            match = self._SPECIAL.search(chunk, pos)
            end = match.start() if match else size
            if self._depth >= 2:
                self._element += chunk[pos:end]
            if match is None:
                break
            char = chunk[end]
            pos = end + 1
            if self._in_string:
                self._element += chunk[end:pos]
                if char == 0x5C:  # backslash
                    self._escape = True
                elif char == 0x22:
                    self._in_string = False
                continue
            if char in (0x7B, 0x5B):  # { [
                self._depth += 1
                if self._depth >= 2:
                    self._element += chunk[end:pos]
            elif char in (0x7D, 0x5D):  # } ]
                if self._depth >= 2:
                    self._element += chunk[end:pos]
                self._depth = max(self._depth - 1, self._floor)
                if self._depth == 1 and self._element:
                    out.append(bytes(self._element))
                    self._element.clear()
            elif char == 0x22 and self._depth >= 2:
                self._element += chunk[end:pos]
                self._in_string = True
        return out

    @property
    def pending(self) -> bool:
        return bool(self._element)


_RAW_LIMIT = 1 << 20


class StreamDecoder:
    """streamGenerateContent output -> canonical events. Handles `alt=sse` (CRLF
    framing, no terminator, bare JSON error lines mid-stream) and, detected from
    the first byte, the JSON-array stream written without alt=sse.

    Gemini puts finishReason on the last chunk and reports cumulative usage on
    every chunk, so Finish and one final UsageUpdate are emitted at close()."""

    def __init__(self, model: str = "", max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._model = model
        self._max = max_line_bytes
        self._mode = ""  # "sse" | "array", decided by the first non-blank byte
        self._sse = SSEParser(max_line_bytes)
        self._array = _ArraySplitter(max_line_bytes)
        # Bare JSON objects among the SSE lines, told apart as they complete: each line is scanned
        # once (parsing all the lines so far after each one was quadratic).
        self._objects = _ArraySplitter(min(max_line_bytes, _RAW_LIMIT), outside=1)
        self._raw_size = 0
        self._started = False
        self._failed = False
        self._closed = False
        self._usage: Usage | None = None
        self._finish: dict[int, str] = {}
        self._calls: dict[int, int] = {}

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._failed or self._closed or not chunk:
            return events
        if not self._mode:
            chunk = bytes(chunk).lstrip()
            if not chunk:
                return events
            self._mode = "array" if chunk[:1] == b"[" else "sse"
        if self._mode == "array":
            for element in self._array.feed(bytes(chunk)):
                self._handle_json(element, events)
                if self._failed:
                    break
        else:
            for event in self._sse.feed(bytes(chunk)):
                self._handle_sse(event, events)
                if self._failed:
                    break
        self._check_overflow(events)
        return events

    def _check_overflow(self, events: list[StreamEvent]) -> None:
        if (self._sse.overflow or self._array.overflow) and not self._failed:
            self._fail(provider_error(overflow_message(self._max)), events)

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._closed:
            return events
        if not self._failed:
            if self._mode == "sse":
                for event in self._sse.close():
                    self._handle_sse(event, events)
                    if self._failed:
                        break
                self._check_overflow(events)
            elif self._mode == "array" and self._array.pending:
                self._fail(provider_error("the provider stream ended mid-element"), events)
            if self._raw_size and not self._failed:
                self._fail(provider_error("the provider stream contained malformed data"), events)
        self._closed = True
        if self._failed or not self._started:
            return events
        for index in sorted(self._finish):
            reason = self._finish[index]
            if reason == "__blocked__":
                events.append(Finish("content_filter", index))
            else:
                events.append(Finish(finish_in(reason, self._calls.get(index, 0) > 0), index))
        if self._usage is not None:
            events.append(UsageUpdate(self._usage))
        return events

    def _fail(self, error: GatewayError, events: list[StreamEvent]) -> None:
        events.append(StreamFailure(error))
        self._failed = True

    def _handle_sse(self, event: Any, events: list[StreamEvent]) -> None:
        if event.data:
            self._handle_json(event.data, events)
        if event.raw and not self._failed:
            # a bare JSON object written without `data:` (Gemini's mid-stream error), maybe over several lines
            for line in event.raw:
                self._raw_size += len(line) + 1
                for text in self._objects.feed(line.encode() + b"\n"):
                    self._raw_size = 0  # what came before it was not JSON: only an object counts
                    try:
                        obj = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        self._fail(provider_error("the provider stream contained malformed data"), events)
                        return
                    self._handle(obj, events)
                    if self._failed:
                        return
            if self._raw_size > _RAW_LIMIT or self._objects.overflow:
                self._fail(provider_error("the provider stream contained malformed data"), events)

    def _handle_json(self, data: bytes | str, events: list[StreamEvent]) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._fail(provider_error("the provider stream contained invalid JSON"), events)
            return
        self._handle(obj, events)

    def _handle(self, obj: Any, events: list[StreamEvent]) -> None:
        try:
            self._chunk(obj, events)
        except GatewayError as exc:  # function call args nested too deeply
            self._fail(exc, events)

    def _chunk(self, obj: Any, events: list[StreamEvent]) -> None:
        if not isinstance(obj, dict):
            return
        if "error" in obj:
            self._fail(error_from(0, obj["error"], "the provider failed mid-stream"), events)
            return
        usage = parse_usage(obj.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        if not self._started:
            self._started = True
            rid = obj.get("responseId")
            model = obj.get("modelVersion")
            events.append(
                StreamStart(
                    id=rid if isinstance(rid, str) and rid else "chatcmpl-" + random_text(24),
                    model=model if isinstance(model, str) and model else self._model,
                    created=int(time.time()),
                    input_tokens=usage.input_tokens if usage is not None else None,
                )
            )
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason") is not None:
                self._finish[0] = "__blocked__"
            return
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                continue
            index = candidate.get("index")
            if not isinstance(index, int) or isinstance(index, bool):
                index = position
            for part in parts_of(candidate):
                if isinstance(part, dict):
                    self._part(part, index, events)
            reason = candidate.get("finishReason")
            if isinstance(reason, str):
                self._finish[index] = reason

    def _part(self, part: dict, index: int, events: list[StreamEvent]) -> None:
        sig = part.get("thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            n = self._calls.get(index, 0)
            self._calls[index] = n + 1
            tc = call_from(call, None)
            events.append(ToolCallStart(n, tc.id, tc.name, index))
            events.append(ToolCallDelta(n, tc.arguments, index))
            if sig:  # ToolCallStart has no signature field: see the package doc (__init__.py)
                events.append(ThinkingDelta("", sig, index))
            return
        text = part.get("text")
        if not isinstance(text, str):
            return
        if part.get("thought") is True:
            if text or sig:
                events.append(ThinkingDelta(text, sig, index))
        elif text:
            events.append(TextDelta(text, index))
