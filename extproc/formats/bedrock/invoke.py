"""Claude on Bedrock through InvokeModel: Anthropic's own Messages API, so an Anthropic client keeps
its features (cache_control, server tools, betas) instead of being flattened through Converse.

The body is the Messages request without `model` (the path names it) and without `stream` (the path
says it), with `anthropic_version: bedrock-2023-05-31` (never the client's: the SDK's own value is
not Bedrock's) and betas in the body as `anthropic_beta`. The streamed answer is event-stream
`chunk` frames whose payload is `{"bytes": "<base64 of one Anthropic stream event's JSON>"}`:
`InvokeStreamToSSE` turns them back into the Anthropic SSE an Anthropic client (and the gateway's
Anthropic stream decoder) reads.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from extproc.errors import ERROR_TABLE, GatewayError
from extproc.formats.anthropic.common import dumps_lenient
from extproc.formats.anthropic.decoder import StreamDecoder as AnthropicStreamDecoder
from extproc.formats.anthropic.upstream import request_body
from extproc.formats.bedrock.converse_stream import EventFrames
from extproc.formats.bedrock.errors import frame_error
from extproc.formats.canonical import ChatRequest, StreamEvent
from extproc.formats.client_errors import invalid
from extproc.formats.eventstream import MAX_FRAME_BYTES, EventMessage
from extproc.formats.input_bounds import dumps_request
from extproc.formats.render_options import RenderedRequest, RenderOptions

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_TYPE_FIRST = re.compile(rb'\{\s*"type"\s*:\s*"([a-z_]{1,64})"')
_EVENT_TYPE = re.compile(r"[a-z_]{1,64}")


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """The canonical request as the Messages body the anthropic kind gets, edited for InvokeModel."""
    body, dropped = request_body(req, options)
    del body["model"]
    body.pop("stream", None)
    body["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
    if options.betas:
        body["anthropic_beta"] = list(options.betas)
    return RenderedRequest(dumps_lenient(body), dropped)


def betas_of(header: str | None) -> tuple[str, ...]:
    """The values of an `anthropic-beta` header (comma-separated, as the SDKs join them)."""
    if not header:
        return ()
    return tuple(beta for part in header.split(",") if (beta := part.strip()))


def passthrough_body(body: bytes, betas: tuple[str, ...] = ()) -> bytes:
    """An Anthropic client's own Messages body for InvokeModel: only `model` and `stream` out and
    Bedrock's `anthropic_version` in; the client's `anthropic-beta` values, if any, as the body's
    `anthropic_beta` list (Bedrock reads no such header). Whether to stream is the client's `stream`."""
    return dumps_request(passthrough_fields(body, betas))


def passthrough_fields(body: bytes, betas: tuple[str, ...] = ()) -> dict[str, Any]:
    """`passthrough_body` before it is written (a count wraps it first)."""
    data = orjson.loads(body)
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object", "body")
    data.pop("model", None)
    data.pop("stream", None)
    data["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
    if betas:
        data["anthropic_beta"] = list(betas)
    return data


def _sse(event_type: str, data: bytes) -> bytes:
    return b"event: " + event_type.encode() + b"\ndata: " + data + b"\n\n"


def error_sse(error: GatewayError) -> bytes:
    """An in-band error in Anthropic's stream format (the type from the error table)."""
    body = {"type": "error", "error": {"type": ERROR_TABLE[error.kind][2], "message": error.message}}
    return _sse("error", orjson.dumps(body))


class InvokeStreamToSSE:
    """InvokeModelWithResponseStream's bytes, in chunks cut anywhere -> Anthropic SSE bytes.

    Each chunk frame's event JSON goes out as it came, named by its own `type` (Bedrock's JSON
    adds `amazon-bedrock-invocationMetrics` to message_stop; Anthropic's readers ignore it). An
    exception frame, a corrupt frame or a cut-off stream becomes one `event: error`, and nothing
    is written after it."""

    __slots__ = ("_failed", "_frames")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._frames = EventFrames(max_frame_bytes)
        self._failed = False

    @property
    def failed(self) -> bool:
        return self._failed

    def feed(self, chunk: bytes) -> bytes:
        if self._failed:
            return b""
        messages, error = self._frames.feed(chunk)
        out: list[bytes] = []
        for message in messages:
            out.append(self._event(message))
            if self._failed:
                return b"".join(out)
        if error is not None:
            out.append(self._fail(error))
        return b"".join(out)

    def close(self) -> bytes:
        if self._failed:
            return b""
        error = self._frames.close()
        return self._fail(error) if error is not None else b""

    def _fail(self, error: GatewayError) -> bytes:
        self._failed = True
        return error_sse(error)

    def _event(self, message: EventMessage) -> bytes:
        error = frame_error(message)
        if error is not None:
            return self._fail(error)
        if message.text(":event-type") != "chunk":
            return b""
        event = _chunk_event(message.payload)
        if event is None:
            return self._fail(GatewayError("provider_error", "malformed chunk in the provider stream"))
        data, event_type = event
        return _sse(event_type, data)


def _chunk_event(payload: bytes) -> tuple[bytes, str] | None:
    """(the Anthropic event's JSON, its type) from a chunk's payload. Bedrock writes `type` first:
    read from the event's head, the event is parsed once, by whoever reads the SSE."""
    try:
        wrapper = orjson.loads(payload)
        data = base64.b64decode(wrapper["bytes"], validate=True)
    except (orjson.JSONDecodeError, binascii.Error, ValueError, TypeError, KeyError):
        return None
    head = _TYPE_FIRST.match(data)
    if head is not None:
        return data, head.group(1).decode()
    try:
        event: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    event_type = event.get("type") if isinstance(event, dict) else None
    if not isinstance(event_type, str) or _EVENT_TYPE.fullmatch(event_type) is None:
        return None
    return data, event_type


class InvokeStreamDecoder:
    """InvokeModelWithResponseStream -> canonical events: the SSE above, read by the Anthropic decoder."""

    __slots__ = ("_anthropic", "_sse")

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._sse = InvokeStreamToSSE(max_frame_bytes)
        self._anthropic = AnthropicStreamDecoder(max_line_bytes=max_frame_bytes)

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        return self._anthropic.feed(self._sse.feed(chunk))

    def close(self) -> list[StreamEvent]:
        return self._anthropic.feed(self._sse.close()) + self._anthropic.close()
