"""Provider side: a Responses API SSE stream -> canonical events (`StreamDecoder`).

Reads a translated stream chunk by chunk, and a passed-through one for its usage. Text,
reasoning and argument deltas become deltas; an item whose content arrived only whole (in
`.done` or `output_item.done`) is emitted whole. response.completed / response.incomplete end
the answer with its usage; response.failed, an `error` event, or the end of the stream before
either is a StreamFailure.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.answer_values import provider_error
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
from extproc.formats.openai.common import SHAPE_ERRORS, new_call_id
from extproc.formats.openai.provider_errors import error_from_object
from extproc.formats.responses.answers import call_name, message_text, summary_text
from extproc.formats.responses.common import finish_of, new_response_id, parse_usage
from extproc.formats.sse import MAX_LINE_BYTES, SSEParser, overflow_message

_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})
_THINKING_DELTAS = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})


class StreamDecoder:
    __slots__ = ("_calls", "_count", "_ended", "_finished", "_sent", "_sse", "_started", "_summaries")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._sse = SSEParser(max_line_bytes)
        self._started = False
        self._ended = False  # an end (completed, incomplete, failed) or a failure seen
        self._finished = False
        self._calls: dict[Any, int] = {}  # item id (or output index) -> call_index
        self._count = 0  # calls started
        self._sent: set[Any] = set()  # items whose content came in deltas
        self._summaries: dict[Any, int] = {}  # reasoning item -> its last summary part

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._ended:
            return []
        out: list[StreamEvent] = []
        for ev in self._sse.feed(chunk):
            self._event(ev.data, out)
            if self._ended:
                break
        self._check_overflow(out)
        return out

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._ended:
            for ev in self._sse.close():
                self._event(ev.data, out)
                if self._ended:
                    break
        self._check_overflow(out)
        if not self._ended:
            self._fail(out, provider_error("provider stream ended before the answer was complete"))
        return out

    def _check_overflow(self, out: list[StreamEvent]) -> None:
        if self._sse.overflow and not self._ended:
            self._fail(out, provider_error(overflow_message(self._sse.max_line_bytes)))

    def _fail(self, out: list[StreamEvent], error: GatewayError) -> None:
        self._start(out, {})
        out.append(StreamFailure(error))
        self._ended = True

    def _start(self, out: list[StreamEvent], response: Any) -> None:
        if self._started:
            return
        self._started = True
        response = response if isinstance(response, dict) else {}
        rid, model, created = response.get("id"), response.get("model"), response.get("created_at")
        out.append(
            StreamStart(
                id=rid if isinstance(rid, str) and rid else new_response_id(),
                model=model if isinstance(model, str) else "",
                created=created if is_int(created) and created > 0 else int(time.time()),
            )
        )

    def _event(self, data: str, out: list[StreamEvent]) -> None:
        if not data:
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._fail(out, provider_error("provider stream contained invalid JSON"))
            return
        if not isinstance(obj, dict):
            self._fail(out, provider_error("provider stream contained a non-object event"))
            return
        try:
            self._dispatch(obj, out)
        except SHAPE_ERRORS:
            self._fail(out, provider_error("provider stream contained a malformed event"))

    def _dispatch(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        kind = obj.get("type")
        if kind in _TEXT_DELTAS:  # nearly every event
            self._sent.add(obj.get("item_id"))
            if obj["delta"]:
                self._start(out, {})
                out.append(TextDelta(obj["delta"]))
        elif kind in _THINKING_DELTAS:
            self._thinking(obj, out)
        elif kind == "response.function_call_arguments.delta":
            call_index = self._call_index(obj)
            if call_index is not None and obj["delta"]:
                self._sent.add(obj.get("item_id"))
                out.append(ToolCallDelta(call_index, obj["delta"]))
        elif kind == "response.output_item.added":
            self._added(obj, out)
        elif kind == "response.output_item.done":
            self._item_done(obj, out)
        elif kind in ("response.created", "response.in_progress"):
            self._start(out, obj.get("response"))
        elif kind in ("response.completed", "response.incomplete"):
            self._end(obj.get("response"), out)
        elif kind == "response.failed":
            response = obj.get("response")
            error = response.get("error") if isinstance(response, dict) else None
            self._fail(out, error_from_object(error or "the provider failed to answer", None))
        elif kind == "error":
            self._fail(out, error_from_object(obj.get("error", obj), None))

    def _thinking(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        item = obj.get("item_id")
        self._sent.add(item)
        delta = obj["delta"]
        summary = obj.get("summary_index")
        if is_int(summary):
            last = self._summaries.setdefault(item, summary)
            if summary != last:  # the next part of a summary
                self._summaries[item] = summary
                delta = "\n\n" + delta
        if delta:
            self._start(out, {})
            out.append(ThinkingDelta(delta))

    def _call_index(self, obj: dict[str, Any]) -> int | None:
        key = obj.get("item_id") or obj.get("output_index")
        return self._calls.get(key)

    def _added(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        item = obj.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            self._open_call(item, obj.get("output_index"), out)

    def _open_call(self, item: dict[str, Any], output_index: Any, out: list[StreamEvent]) -> int:
        call_index = self._count
        self._count += 1
        for key in (item.get("id"), output_index):  # deltas name the item by id, some servers by index
            if key is not None:
                self._calls[key] = call_index
        call_id = item.get("call_id")
        call_id = call_id if isinstance(call_id, str) and call_id else new_call_id()
        self._start(out, {})
        out.append(ToolCallStart(call_index, call_id, call_name(item)))
        return call_index

    def _item_done(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        """An item finished: what of it never came in deltas comes now, whole."""
        item = obj.get("item")
        if not isinstance(item, dict):
            return
        kind, item_id = item.get("type"), item.get("id")
        if kind == "function_call":
            call_index = self._calls.get(item_id if item_id is not None else obj.get("output_index"))
            if call_index is None:
                call_index = self._open_call(item, obj.get("output_index"), out)
            arguments = item.get("arguments")
            if item_id not in self._sent and isinstance(arguments, str) and arguments:
                out.append(ToolCallDelta(call_index, arguments))
        elif kind == "message" and item_id not in self._sent:
            text, refusal = message_text(item)
            if text or refusal:
                self._start(out, {})
                out.append(TextDelta(text or refusal or ""))
        elif kind == "reasoning":
            text = summary_text(item) if item_id not in self._sent else ""
            encrypted = item.get("encrypted_content")
            if text or isinstance(encrypted, str):
                self._start(out, {})
                out.append(ThinkingDelta(text, encrypted=encrypted if isinstance(encrypted, str) else None))

    def _end(self, response: Any, out: list[StreamEvent]) -> None:
        response = response if isinstance(response, dict) else {}
        self._start(out, response)
        finish = finish_of(response.get("status"), response.get("incomplete_details"), self._count > 0)
        out.append(Finish(finish))
        usage = parse_usage(response.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))
        self._finished = self._ended = True
