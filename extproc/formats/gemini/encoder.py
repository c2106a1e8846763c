"""Client side: canonical stream events -> streamGenerateContent output (SSE or JSON array)."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError, render_gemini_error
from extproc.formats.answer_values import random_text
from extproc.formats.canonical import (
    ChatRequest,
    Finish,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from extproc.formats.gemini.common import new_call_id
from extproc.formats.gemini.parts import call_part, signature_ok, thought_part
from extproc.formats.gemini.response import FINISH_OUT, usage_json


class _Call:
    __slots__ = ("fragments", "id", "name", "signature")

    def __init__(self, call_id: str, name: str, signature: str | None) -> None:
        self.id = call_id
        self.name = name
        self.fragments: list[str] = []
        self.signature = signature

    def part(self) -> dict:
        return call_part(ToolCall(self.id, self.name, "".join(self.fragments), self.signature))


class StreamEncoder:
    """Canonical stream events -> streamGenerateContent output.

    sse=True (`?alt=sse`, what google-genai uses): `data: <json>\\r\\n\\r\\n` per
    chunk, no terminator. sse=False: the incremental JSON array Gemini writes
    without alt=sse (`[` elem `\\n,\\r\\n` elem ... `\\n]`).

    Text and thought deltas go out with each event batch. Tool calls are
    buffered until their choice finishes (Gemini sends a functionCall whole);
    content arriving with or after a choice's Finish is held for the final
    chunk, which close() writes with finishReason and the final usage.
    """

    def __init__(self, request: ChatRequest, sse: bool = True) -> None:
        self._sse = sse
        self._id = ""
        self._model = request.model
        self._usage: Usage | None = None
        self._calls: dict[int, dict[int, _Call]] = {}
        self._finish: dict[int, str] = {}
        self._held: dict[int, list[dict]] = {}
        # the last item per choice, for a signature-only ThinkingDelta to attach to
        self._last: dict[int, _Call | dict | None] = {}
        self._written = 0
        self._failed = False
        self._closed = False

    # -- framing

    def _frame(self, obj: dict) -> bytes:
        data = orjson.dumps(obj)
        self._written += 1
        if self._sse:
            return b"data: " + data + b"\r\n\r\n"
        return (b"[" if self._written == 1 else b"\n,\r\n") + data

    def _chunk(self, candidates: list[dict], final: bool) -> dict:
        out: dict[str, Any] = {"candidates": candidates}
        if self._usage is not None:
            out["usageMetadata"] = usage_json(self._usage, final)
        out["modelVersion"] = self._model
        out["responseId"] = self._response_id()
        return out

    def _response_id(self) -> str:
        if not self._id:
            self._id = random_text(22)
        return self._id

    # -- events

    def _add(self, batch: dict[int, list[dict]], index: int, part: dict) -> None:
        target = self._held.setdefault(index, []) if index in self._finish else batch.setdefault(index, [])
        last = target[-1] if target else None
        # merge consecutive deltas of one kind into one part
        if (
            last is not None
            and "text" in part
            and "text" in last
            and last.get("thought") == part.get("thought")
            and "thoughtSignature" not in last
        ):
            last["text"] += part["text"]
        else:
            target.append(part)
            last = part
        self._last[index] = last

    def _signature(self, batch: dict[int, list[dict]], index: int, signature: str) -> None:
        if not signature_ok(signature):
            return
        last = self._last.get(index)
        if isinstance(last, _Call):
            if last.signature is None:
                last.signature = signature
                return
        elif last is not None and "thoughtSignature" not in last:
            last["thoughtSignature"] = signature
            return
        self._add(batch, index, thought_part("", signature))

    def _flush_calls(self, index: int) -> list[dict]:
        calls = self._calls.pop(index, None)
        if not calls:
            return []
        if isinstance(self._last.get(index), _Call):
            self._last[index] = None
        return [calls[k].part() for k in sorted(calls)]

    def encode(self, events: list[StreamEvent]) -> bytes:
        if self._failed or self._closed:
            return b""
        batch: dict[int, list[dict]] = {}
        out: list[bytes] = []
        for ev in events:
            if isinstance(ev, TextDelta):
                if ev.text:
                    self._add(batch, ev.index, {"text": ev.text})
            elif isinstance(ev, ThinkingDelta):
                if ev.redacted:
                    continue  # opaque Anthropic data: no Gemini part can carry it
                if ev.text:
                    self._add(batch, ev.index, thought_part(ev.text, None))
                if ev.signature:
                    self._signature(batch, ev.index, ev.signature)
            elif isinstance(ev, ToolCallStart):
                call = _Call(ev.id or new_call_id(), ev.name, getattr(ev, "signature", None))
                self._calls.setdefault(ev.index, {})[ev.call_index] = call
                self._last[ev.index] = call
            elif isinstance(ev, ToolCallDelta):
                calls = self._calls.setdefault(ev.index, {})
                delta_call = calls.get(ev.call_index)
                if delta_call is None:  # a delta without its start: keep the arguments anyway
                    delta_call = calls[ev.call_index] = _Call(new_call_id(), "", None)
                delta_call.fragments.append(ev.arguments)
            elif isinstance(ev, Finish):
                held = self._held.setdefault(ev.index, [])
                held.extend(batch.pop(ev.index, ()))
                held.extend(self._flush_calls(ev.index))
                self._finish[ev.index] = FINISH_OUT.get(ev.reason, "OTHER")
                self._last[ev.index] = held[-1] if held else None
            elif isinstance(ev, UsageUpdate):
                self._usage = ev.usage
            elif isinstance(ev, StreamStart):
                self._id = ev.id or self._id
                self._model = ev.model or self._model
                if ev.input_tokens is not None and self._usage is None:
                    self._usage = Usage(input_tokens=ev.input_tokens)
            elif isinstance(ev, StreamFailure):
                for index, parts in self._held.items():
                    batch.setdefault(index, [])[:0] = parts
                self._held.clear()
                if batch:
                    out.append(self._frame(self._chunk(self._candidates(batch), False)))
                error = ev.error
                if not isinstance(error, GatewayError):
                    error = GatewayError("provider_error", str(error))
                out.append(self._frame(orjson.loads(render_gemini_error(error))))
                self._failed = True
                return b"".join(out)
        if batch:
            out.append(self._frame(self._chunk(self._candidates(batch), False)))
            # what was just written can no longer take a signature
            for index in batch:
                if not isinstance(self._last.get(index), _Call):
                    self._last[index] = None
        return b"".join(out)

    def _candidates(self, parts_by_choice: dict[int, list[dict]], final: bool = False) -> list[dict]:
        candidates = []
        for index in sorted(parts_by_choice):
            parts = parts_by_choice[index]
            if final and not parts:
                parts = [{"text": ""}]  # like Gemini: chunk.text stays a string
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if final and index in self._finish:
                candidate["finishReason"] = self._finish[index]
            candidate["index"] = index
            candidates.append(candidate)
        return candidates

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        if self._failed:
            return b"" if self._sse else b"\n]"
        final: dict[int, list[dict]] = {}
        for index in set(self._held) | set(self._calls) | set(self._finish):
            final[index] = self._held.get(index, []) + self._flush_calls(index)
        if not final and not self._written:
            final[0] = []
        out = self._frame(self._chunk(self._candidates(final, final=True), True)) if final or self._usage else b""
        if not self._sse:
            out += b"\n]" if self._written else b"[]"
        return out
