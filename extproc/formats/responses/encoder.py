"""Client side: canonical stream events -> Responses API SSE events (`StreamEncoder`).

The sequence OpenAI sends (the recordings named in tests/support/responses_samples.py):
response.created and response.in_progress; per output item output_item.added, its content
(content_part.added / output_text.delta... / output_text.done / content_part.done for a
message; reasoning_summary_part.added / reasoning_summary_text.delta... / .done for reasoning;
function_call_arguments.delta... / .done for a call), output_item.done; then response.completed
(response.incomplete when the answer was cut by max_output_tokens or a content filter) carrying
every item and the usage. Every event has the next `sequence_number`. A failure after the start
is an `error` event and response.failed, then the stream ends cleanly.

A message or reasoning item is closed when any other item starts; calls stay open until the end,
so argument fragments of calls that interleave still land in their own item.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.canonical import (
    ChatRequest,
    Finish,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from extproc.formats.openai.common import new_call_id
from extproc.formats.responses.common import new_item_id, response_id, status_of
from extproc.formats.responses.output import call_item, reasoning_item, response_head, response_json, text_part

_TEXT_DELTA = b"event: response.output_text.delta\ndata: " + b'{"type":"response.output_text.delta","sequence_number":'
_TEXT_DELTA_END = b',"logprobs":[]}\n\n'
_EMPTY_TEXT_PART = orjson.dumps(text_part(""))
_HEADS: dict[str, bytes] = {}  # event type -> its frame up to the sequence number


def _head(kind: str) -> bytes:
    head = _HEADS[kind] = b'event: %s\ndata: {"type":"%s","sequence_number":' % (kind.encode(), kind.encode())
    return head


# response.failed's error codes (ResponseErrorCode); anything else the provider named goes as it came
_FAILED_CODES = {"rate_limit": "rate_limit_exceeded"}


@dataclass(slots=True)
class _Item:
    kind: str  # message | reasoning | function_call
    index: int  # output_index
    id: str
    pieces: list[str] = field(default_factory=list)  # text, reasoning text or arguments
    delta_tail: bytes = b""  # a message's text delta event after its sequence number, up to the text
    summary_open: bool = False  # a reasoning item's summary part was announced
    signature: str | None = None
    encrypted: str | None = None
    call_id: str = ""
    name: str = ""


class StreamEncoder:
    __slots__ = (
        "_calls",
        "_closed",
        "_current",
        "_failed",
        "_finish",
        "_head",
        "_output",
        "_request",
        "_seq",
        "_started",
        "_summarize",
        "_usage",
    )

    def __init__(self, request: ChatRequest) -> None:
        self._request = request
        self._summarize = request.reasoning_summary is not None
        self._seq = 0
        self._head = b""  # the response object's unchanging fields (output.response_head)
        self._started = False
        self._output: list[bytes | None] = []  # finished items (JSON) by output_index
        self._current: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # call_index -> its open function_call item
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._failed = False
        self._closed = False

    # ---- framing

    def _event(self, kind: str, fields: dict[str, Any], out: list[bytes]) -> None:
        self._raw(kind, b"," + orjson.dumps(fields)[1:-1] if fields else b"", out)

    def _raw(self, kind: str, fields: bytes, out: list[bytes]) -> None:
        """An event whose fields are already JSON (`,"key":value,...`)."""
        head = _HEADS.get(kind) or _head(kind)
        out.append(b"%s%d%s}\n\n" % (head, self._seq, fields))
        self._seq += 1

    def _lifecycle(self, kind: str, status: str, out: list[bytes], **changes: Any) -> None:
        """The last event: the response with every finished item and the usage."""
        output = [item for item in self._output if item is not None]
        self._raw(kind, b',"response":' + response_json(self._head, status, output, self._usage, **changes), out)

    def _start(self, id_: str, model: str, created: int, out: list[bytes]) -> None:
        self._started = True
        self._head = response_head(response_id(id_), model or self._request.model, created, self._request)
        response = b',"response":' + response_json(self._head, "in_progress", [], None)
        self._raw("response.created", response, out)  # one response object, written once
        self._raw("response.in_progress", response, out)

    def _ensure_started(self, out: list[bytes]) -> None:
        if not self._started:
            self._start("", "", int(time.time()), out)

    # ---- items

    def _open(self, kind: str, prefix: str) -> _Item:
        item = _Item(kind, len(self._output), new_item_id(prefix))
        self._output.append(None)
        return item

    def _open_text(self, out: list[bytes]) -> _Item:
        current = self._current
        if current is not None and current.kind == "message":
            return current
        self._close_current(out)
        item = self._current = self._open("message", "msg_")
        item_id = item.id.encode()
        item.delta_tail = b',"item_id":"%s","output_index":%d,"content_index":0,"delta":' % (item_id, item.index)
        added = b'{"id":"%s","type":"message","status":"in_progress","content":[],"role":"assistant"}' % item_id
        self._raw("response.output_item.added", b',"output_index":%d,"item":%s' % (item.index, added), out)
        where = b',"item_id":"%s","output_index":%d,"content_index":0' % (item_id, item.index)
        self._raw("response.content_part.added", where + b',"part":' + _EMPTY_TEXT_PART, out)
        return item

    def _open_reasoning(self, out: list[bytes]) -> _Item:
        current = self._current
        if current is not None and current.kind == "reasoning":
            return current
        self._close_current(out)
        item = self._current = self._open("reasoning", "rs_")
        added = {"id": item.id, "type": "reasoning", "summary": []}
        self._event("response.output_item.added", {"output_index": item.index, "item": added}, out)
        return item

    def _open_call(self, call_index: int, call_id: str, name: str, out: list[bytes]) -> _Item:
        self._close_current(out)
        item = self._open("function_call", "fc_")
        item.call_id, item.name = call_id, name
        self._calls[call_index] = item
        added = call_item(item.id, call_id, name, "", self._request, "in_progress")
        self._event("response.output_item.added", {"output_index": item.index, "item": added}, out)
        return item

    def _close_current(self, out: list[bytes]) -> None:
        item, self._current = self._current, None
        if item is None:
            return
        text = "".join(item.pieces)
        if item.kind == "message":
            self._close_message(item, text, out)
            return
        where = {"item_id": item.id, "output_index": item.index}
        if item.summary_open:
            summary = {**where, "summary_index": 0}
            self._event("response.reasoning_summary_text.done", {**summary, "text": text}, out)
            part = {"type": "summary_text", "text": text}
            self._event("response.reasoning_summary_part.done", {**summary, "part": part}, out)
        thinking = ThinkingPart(text, item.signature, encrypted=item.encrypted)
        self._done(item, reasoning_item(item.id, thinking, item.summary_open), out)

    def _close_message(self, item: _Item, text: str, out: list[bytes]) -> None:
        """The text goes out four times (two done events, the item, the final response): it is
        written as JSON once, and the item once (kept as JSON for the final response)."""
        text_json = orjson.dumps(text)
        where = b',"item_id":"%s","output_index":%d,"content_index":0' % (item.id.encode(), item.index)
        part = b'{"type":"output_text","annotations":[],"logprobs":[],"text":%s}' % text_json
        self._raw("response.output_text.done", b'%s,"text":%s,"logprobs":[]' % (where, text_json), out)
        self._raw("response.content_part.done", b'%s,"part":%s' % (where, part), out)
        done = b'{"id":"%s","type":"message","status":"completed","content":[%s],"role":"assistant"}' % (
            item.id.encode(),
            part,
        )
        self._output[item.index] = done
        self._raw("response.output_item.done", b',"output_index":%d,"item":%s' % (item.index, done), out)

    def _close_call(self, item: _Item, out: list[bytes]) -> None:
        arguments = "".join(item.pieces)
        where = {"item_id": item.id, "output_index": item.index}
        self._event("response.function_call_arguments.done", {**where, "arguments": arguments}, out)
        self._done(item, call_item(item.id, item.call_id, item.name, arguments, self._request), out)

    def _done(self, item: _Item, done: dict[str, Any], out: list[bytes]) -> None:
        written = self._output[item.index] = orjson.dumps(done)
        self._raw("response.output_item.done", b',"output_index":%d,"item":%s' % (item.index, written), out)

    # ---- events

    def _thinking(self, ev: ThinkingDelta, out: list[bytes]) -> None:
        if ev.redacted:  # one whole opaque block (Anthropic redacted_thinking)
            self._close_current(out)
            item = self._open("reasoning", "rs_")
            added = {"id": item.id, "type": "reasoning", "summary": []}
            self._event("response.output_item.added", {"output_index": item.index, "item": added}, out)
            self._done(item, reasoning_item(item.id, ThinkingPart("", ev.signature, redacted=True), False), out)
            return
        item = self._open_reasoning(out)
        if ev.text:
            item.pieces.append(ev.text)
            if self._summarize:
                summary = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
                if not item.summary_open:
                    item.summary_open = True
                    part = {"type": "summary_text", "text": ""}
                    self._event("response.reasoning_summary_part.added", {**summary, "part": part}, out)
                self._event("response.reasoning_summary_text.delta", {**summary, "delta": ev.text}, out)
        if ev.signature is not None or ev.encrypted is not None:  # what closes a block of thinking
            item.signature, item.encrypted = ev.signature, ev.encrypted
            self._close_current(out)

    def _arguments(self, ev: ToolCallDelta, out: list[bytes]) -> None:
        item = self._calls.get(ev.call_index)
        if item is None:  # a fragment without its start: open the call with a fresh id
            item = self._open_call(ev.call_index, new_call_id(), "", out)
        item.pieces.append(ev.arguments)
        where = {"item_id": item.id, "output_index": item.index}
        self._event("response.function_call_arguments.delta", {**where, "delta": ev.arguments}, out)

    def encode(self, events: list[StreamEvent]) -> bytes:
        if self._failed or self._closed:
            return b""
        out: list[bytes] = []
        for ev in events:  # the Responses API has one answer per request: other choices are left out
            if type(ev) is TextDelta:  # nearly every event: written without building a dict
                if ev.text and not ev.index:
                    if not self._started:
                        self._ensure_started(out)
                    item = self._current
                    if item is None or item.kind != "message":
                        item = self._open_text(out)
                    item.pieces.append(ev.text)
                    out.append(
                        b"%s%d%s%s%s"
                        % (_TEXT_DELTA, self._seq, item.delta_tail, orjson.dumps(ev.text), _TEXT_DELTA_END)
                    )
                    self._seq += 1
            elif isinstance(ev, ToolCallDelta):
                if ev.arguments and not ev.index:
                    self._ensure_started(out)
                    self._arguments(ev, out)
            elif isinstance(ev, ToolCallStart):
                if ev.call_index not in self._calls and not ev.index:
                    self._ensure_started(out)
                    self._open_call(ev.call_index, ev.id, ev.name, out)
            elif isinstance(ev, ThinkingDelta):
                if not ev.index:
                    self._ensure_started(out)
                    self._thinking(ev, out)
            elif isinstance(ev, Finish):
                if not ev.index:
                    self._finish = ev.reason
            elif isinstance(ev, UsageUpdate):
                self._usage = ev.usage
            elif isinstance(ev, StreamStart):
                if not self._started:
                    self._start(ev.id, ev.model, ev.created, out)
            elif isinstance(ev, StreamFailure):
                self._fail(ev.error, out)
                break
        return b"".join(out)

    def _fail(self, error: Any, out: list[bytes]) -> None:
        self._failed = True
        if not isinstance(error, GatewayError):
            error = GatewayError("provider_error", str(error) or "provider stream failed")
        self._ensure_started(out)
        code = error.code or _FAILED_CODES.get(error.kind, "server_error")
        self._event("error", {"code": code, "message": error.message, "param": error.param}, out)
        self._lifecycle("response.failed", "failed", out, error={"code": code, "message": error.message})

    def close(self) -> bytes:
        if self._closed or self._failed:
            self._closed = True
            return b""
        self._closed = True
        out: list[bytes] = []
        self._ensure_started(out)
        self._close_current(out)
        for item in sorted(self._calls.values(), key=lambda i: i.index):
            self._close_call(item, out)
        status, incomplete = status_of(self._finish)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        self._lifecycle(kind, status, out, incomplete=incomplete)
        return b"".join(out)
