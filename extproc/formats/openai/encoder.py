"""Client side: canonical stream events -> `chat.completion.chunk` SSE frames (`StreamEncoder`)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.errors import GatewayError, render_openai_error
from extproc.formats.canonical import (
    ChatRequest,
    Finish,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from extproc.formats.input_bounds import MAX_CHOICES
from extproc.formats.openai.common import DONE, finish_out, new_call_id, new_completion_id, usage_json
from extproc.formats.sse import frame


class StreamEncoder:
    """Canonical stream events -> `data: {chat.completion.chunk}` frames.

    One id/created/model for the whole stream (taken from StreamStart, else
    generated). Each choice opens with a role chunk; tool calls get OpenAI
    indexes 0,1,.. per choice in start order. Usage is held until close():
    with include_usage every chunk carries `"usage": null` and a last
    `choices: []` chunk carries the final usage; without it no usage key at all.
    """

    __slots__ = ("_calls", "_closed", "_counts", "_failed", "_opened", "_prefix", "_request", "_suffix", "_usage")

    def __init__(self, request: ChatRequest) -> None:
        self._request = request
        self._prefix = b""  # chunk JSON up to the choices array, fixed once started
        self._suffix = b'],"usage":null}' if request.include_usage else b"]}"
        self._opened: set[int] = set()  # choices whose role chunk was sent
        self._calls: dict[tuple[int, int], int] = {}  # (choice, call_index) -> OpenAI tool index
        self._counts: dict[int, int] = {}  # choice -> tool calls started
        self._usage: Usage | None = None
        self._failed = False
        self._closed = False

    def _start(self, id_: str, model: str, created: int) -> None:
        self._prefix = (
            b'{"id":'
            + orjson.dumps(id_ or new_completion_id())
            + b',"object":"chat.completion.chunk","created":'
            + str(int(created)).encode()
            + b',"model":'
            + orjson.dumps(model or self._request.model)
            + b',"service_tier":"default","system_fingerprint":null,"choices":['
        )

    def _chunk(self, choice: dict[str, Any]) -> bytes:
        return b"".join((b"data: ", self._prefix, orjson.dumps(choice), self._suffix, b"\n\n"))  # one copy

    def _text_chunk(self, index: int, text: str) -> bytes:
        """The chunk of a text delta, as `_chunk` writes it: only the text is written by orjson
        (most chunks of a stream are text: no dicts made for them)."""
        choice = b'{"index":%d,"delta":{"content":%b},"finish_reason":null}' % (index, orjson.dumps(text))
        return b"".join((b"data: ", self._prefix, choice, self._suffix, b"\n\n"))

    def _open(self, index: int, out: list[bytes]) -> None:
        if index in self._opened:
            return
        if not self._prefix:
            self._start("", "", int(time.time()))
        # choices must appear in index order for the SDK's snapshot accumulator;
        # an absurd index from a broken upstream is opened alone, not backfilled
        for i in range(index + 1) if 0 <= index < MAX_CHOICES else (index,):
            if i not in self._opened:
                self._opened.add(i)
                out.append(
                    self._chunk(
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": "", "refusal": None},
                            "finish_reason": None,
                        }
                    )
                )

    def _call_index(self, choice: int, call_index: int) -> int:
        """The OpenAI tool index of a canonical call: 0,1,.. per choice in start order."""
        n = self._counts.get(choice, 0)
        self._counts[choice] = n + 1
        self._calls[(choice, call_index)] = n
        return n

    def encode(self, events: list[StreamEvent]) -> bytes:
        if self._failed or self._closed:
            return b""
        out: list[bytes] = []
        for ev in events:
            if isinstance(ev, TextDelta):
                if ev.text:
                    if ev.index not in self._opened:
                        self._open(ev.index, out)
                    out.append(self._text_chunk(ev.index, ev.text))
            elif isinstance(ev, ToolCallStart):
                if (ev.index, ev.call_index) in self._calls:
                    continue  # a repeated start: the call is already open
                self._open(ev.index, out)
                n = self._call_index(ev.index, ev.call_index)
                call = {"index": n, "id": ev.id, "type": "function", "function": {"name": ev.name, "arguments": ""}}
                out.append(self._chunk({"index": ev.index, "delta": {"tool_calls": [call]}, "finish_reason": None}))
            elif isinstance(ev, ToolCallDelta):
                if not ev.arguments:
                    continue
                self._open(ev.index, out)
                key = (ev.index, ev.call_index)
                known = self._calls.get(key)
                if known is None:  # a delta without its start: open the call with a fresh id
                    n = self._call_index(ev.index, ev.call_index)
                    call = {
                        "index": n,
                        "id": new_call_id(),
                        "type": "function",
                        "function": {"name": "", "arguments": ev.arguments},
                    }
                else:
                    call = {"index": known, "function": {"arguments": ev.arguments}}
                out.append(self._chunk({"index": ev.index, "delta": {"tool_calls": [call]}, "finish_reason": None}))
            elif isinstance(ev, Finish):
                self._open(ev.index, out)
                out.append(self._chunk({"index": ev.index, "delta": {}, "finish_reason": finish_out(ev.reason)}))
            elif isinstance(ev, UsageUpdate):
                self._usage = ev.usage
            elif isinstance(ev, StreamStart):
                if not self._prefix:
                    self._start(ev.id, ev.model, ev.created)
                    self._open(0, out)  # other choices open on their first event
            elif isinstance(ev, StreamFailure):
                self._failed = True
                err = ev.error
                if not isinstance(err, GatewayError):
                    err = GatewayError("provider_error", str(err) or "provider stream failed")
                out.append(frame(render_openai_error(err)))
                break
            # ThinkingDelta: no place in the official chunk format (dropped)
        return b"".join(out)

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        if self._failed:
            return DONE
        out: list[bytes] = []
        if self._request.include_usage and self._usage is not None:
            if not self._prefix:
                self._start("", "", int(time.time()))
            usage = orjson.dumps(usage_json(self._usage))
            out.append(b"data: " + self._prefix + b'],"usage":' + usage + b"}\n\n")
        out.append(DONE)
        return b"".join(out)
