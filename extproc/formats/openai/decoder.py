"""Provider side: a `chat.completion.chunk` SSE stream -> canonical events (`StreamDecoder`)."""

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
from extproc.formats.openai.answers import finish_in, parse_usage, reasoning_of
from extproc.formats.openai.common import SHAPE_ERRORS, new_call_id, new_completion_id
from extproc.formats.openai.provider_errors import error_from_object
from extproc.formats.sse import MAX_LINE_BYTES, SSEParser, overflow_message


class StreamDecoder:
    """A provider's `chat.completion.chunk` SSE stream -> canonical events.

    Provider tool-call indexes (or ids, for servers that omit the index) map
    to canonical call_index 0,1,.. per choice. A `{"error": ...}` frame, an
    undecodable frame, or an EOF before any finish_reason/[DONE] yields a
    StreamFailure; nothing after a failure or [DONE] is decoded.
    """

    __slots__ = ("_calls", "_counts", "_ended", "_finished", "_last_key", "_model", "_sse", "_started")

    def __init__(self, model: str = "", max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._sse = SSEParser(max_line_bytes)
        self._model = model  # fallback when the provider sends none
        self._started = False
        self._ended = False  # [DONE] or failure seen
        self._finished = False  # at least one finish_reason seen
        self._calls: dict[tuple[int, Any], int] = {}  # (choice, provider index or id) -> call_index
        self._counts: dict[int, int] = {}  # choice -> calls started
        self._last_key: dict[int, tuple[int, Any]] = {}  # choice -> key of the last call

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._ended:
            return []
        out: list[StreamEvent] = []
        for ev in self._sse.feed(chunk):
            self._event(ev.data, ev.raw, out)
            if self._ended:
                break
        self._check_overflow(out)
        return out

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._ended:
            for ev in self._sse.close():
                self._event(ev.data, ev.raw, out)
                if self._ended:
                    break
        self._check_overflow(out)
        if not self._ended and not self._finished:
            self._fail(out, provider_error("provider stream ended before the answer was complete"))
        self._ended = True
        return out

    def _ensure_start(self, out: list[StreamEvent], data: dict[str, Any] | None = None) -> None:
        if self._started:
            return
        self._started = True
        data = data or {}
        rid, model, created = data.get("id"), data.get("model"), data.get("created")
        out.append(
            StreamStart(
                id=rid if isinstance(rid, str) and rid else new_completion_id(),
                model=model if isinstance(model, str) and model else self._model,
                created=created if is_int(created) and created > 0 else int(time.time()),
            )
        )

    def _check_overflow(self, out: list[StreamEvent]) -> None:
        if self._sse.overflow and not self._ended:
            self._fail(out, provider_error(overflow_message(self._sse.max_line_bytes)))

    def _fail(self, out: list[StreamEvent], error: GatewayError) -> None:
        self._ensure_start(out)
        out.append(StreamFailure(error))
        self._ended = True

    def _event(self, data: str, raw: list[str], out: list[StreamEvent]) -> None:
        if not data:
            if raw:  # a bare JSON line, e.g. an error object written without `data:`
                data = "\n".join(raw)
            else:
                return
        if data.startswith("[DONE]"):
            self._ensure_start(out)
            self._ended = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            if not raw:
                self._fail(out, provider_error("provider stream contained invalid JSON"))
            return  # unknown non-SSE lines are ignored
        if not isinstance(obj, dict):
            self._fail(out, provider_error("provider stream contained a non-object frame"))
            return
        if "error" in obj or obj.get("object") == "error":
            self._fail(out, error_from_object(obj.get("error", obj), None))
            return
        try:
            self._chunk(obj, out)
        except GatewayError as e:
            self._fail(out, e)
        except SHAPE_ERRORS:  # malformed chunk shape
            self._fail(out, provider_error("provider stream contained a malformed chunk"))

    def _chunk(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        choices = obj.get("choices")
        # Nearly every chunk: one choice's piece of text, nothing else to read (a third of the reads).
        if self._started and type(choices) is list and len(choices) == 1 and obj.get("usage") is None:
            choice = choices[0]
            if type(choice) is dict and choice.get("finish_reason") is None:
                delta, index = choice.get("delta"), choice.get("index", 0)
                if type(delta) is dict and len(delta) == 1 and type(index) is int:
                    text = delta.get("content")
                    if type(text) is str:
                        if text:
                            out.append(TextDelta(text, index))
                        return
        self._ensure_start(out, obj)
        if isinstance(choices, list):
            for position, c in enumerate(choices):
                if not isinstance(c, dict):
                    continue
                index = c.get("index")
                ci = index if is_int(index) else position
                delta = c.get("delta")
                if isinstance(delta, dict):
                    self._delta(ci, delta, out)
                reason = c.get("finish_reason")
                if reason is not None:
                    self._finished = True
                    out.append(Finish(finish_in(reason), ci))
        usage = parse_usage(obj.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))

    def _delta(self, ci: int, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        if len(delta) == 1 and type(delta.get("content")) is str:  # nearly every piece: text alone
            if delta["content"]:
                out.append(TextDelta(delta["content"], ci))
            return
        reasoning = reasoning_of(delta)
        if reasoning:
            out.append(ThinkingDelta(reasoning, index=ci))
        text = delta.get("content")
        if isinstance(text, str) and text:
            out.append(TextDelta(text, ci))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out.append(TextDelta(refusal, ci))  # no canonical refusal event: surface it as text
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            return
        for tc in calls:
            if not isinstance(tc, dict):
                continue
            pidx = tc.get("index")
            tid = tc.get("id")
            tid = tid if isinstance(tid, str) and tid else None
            fn = tc.get("function")
            fn = fn if isinstance(fn, dict) else {}
            key: tuple[int, Any] | None
            if is_int(pidx):
                key = (ci, pidx)
            elif tid is not None:  # servers without `index`: the id tells calls apart
                key = (ci, "id:" + tid)
            else:  # neither: a fragment of the last call
                key = self._last_key.get(ci)
            known = self._calls.get(key) if key is not None else None
            if key is None or known is None:
                call_index = self._counts.get(ci, 0)
                self._counts[ci] = call_index + 1
                key = key if key is not None else (ci, call_index)
                self._calls[key] = call_index
                name = fn.get("name")
                out.append(ToolCallStart(call_index, tid or new_call_id(), name if isinstance(name, str) else "", ci))
            else:
                call_index = known
            self._last_key[ci] = key
            args = fn.get("arguments")
            if isinstance(args, str) and args:
                out.append(ToolCallDelta(call_index, args, ci))
