"""OTLP for the ext_proc's spans: a span as a plain record, a batch of them encoded as one
ExportTraceServiceRequest (opentelemetry-proto's own messages), and its delivery over OTLP/gRPC or
OTLP/HTTP (protobuf). All of it runs in the export thread, off the event loop."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status

INTERNAL, SERVER, CLIENT = Span.SPAN_KIND_INTERNAL, Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT
SCOPE = "extproc"
_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK

Send = Callable[[bytes], None]  # one encoded export to the collector; raises when it was not delivered


class SpanRecord(NamedTuple):
    """An ended span as the request leaves it: what the OTLP Span says, nothing computed yet."""

    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_id: bytes  # 8 bytes; b"" for a trace's first span
    remote_parent: bool  # the parent is Envoy's span (another process), not one of ours
    trace_state: str  # W3C tracestate, as it came
    name: str
    kind: int  # INTERNAL, SERVER or CLIENT
    start: int  # ns since the epoch
    end: int
    attributes: dict[str, Any]
    failed: bool  # status ERROR


def encode(spans: Sequence[SpanRecord], service_name: str) -> bytes:
    """One export of `spans`, all under this process's resource and the ext_proc's scope."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _set(resource_spans.resource.attributes.add(key="service.name").value, service_name)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = SCOPE
    add = scope_spans.spans.add
    for record in spans:
        span = add(
            trace_id=record.trace_id,
            span_id=record.span_id,
            parent_span_id=record.parent_id,
            trace_state=record.trace_state,
            flags=_HAS_IS_REMOTE | _IS_REMOTE if record.remote_parent else _HAS_IS_REMOTE,
            name=record.name,
            kind=record.kind,
            start_time_unix_nano=record.start,
            end_time_unix_nano=record.end,
        )
        attribute = span.attributes.add
        for key, value in record.attributes.items():
            _set(attribute(key=key).value, value)
        if record.failed:
            span.status.code = Status.STATUS_CODE_ERROR
    return request.SerializeToString()


def _set(target: AnyValue, value: Any) -> None:
    """An attribute's value in its OTLP type (bool before int: a bool is an int in Python)."""
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list | tuple):
        values = target.array_value.values
        for item in value:
            _set(values.add(), item)
    else:
        target.string_value = str(value)


class ExportError(Exception):
    """The collector refused an export (its HTTP status)."""


def grpc_sender(endpoint: str, headers: tuple[tuple[str, str], ...], timeout_s: float) -> Send:
    """OTLP/gRPC to the collector's root URL: the encoded request sent as is (no re-serialising)."""
    import grpc

    parts = urlsplit(endpoint)
    target = parts.netloc or endpoint
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials())
        if parts.scheme == "https"
        else grpc.insecure_channel(target)
    )
    export = channel.unary_unary(_EXPORT_METHOD)  # bytes in, bytes out

    def send(body: bytes) -> None:
        export(body, metadata=headers, timeout=timeout_s)

    return send


def http_sender(url: str, headers: tuple[tuple[str, str], ...], timeout_s: float) -> Send:
    """OTLP/HTTP (protobuf) POSTs to the traces URL, on one kept-alive connection (a fresh one after an error)."""
    parts = urlsplit(url)
    connect = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    fields = {**dict(headers), "content-type": "application/x-protobuf"}
    held: list[http.client.HTTPConnection] = []

    def post(body: bytes) -> None:
        reused = bool(held)
        connection = held.pop() if held else connect(parts.netloc, timeout=timeout_s)
        try:
            connection.request("POST", path, body, fields)
            response = connection.getresponse()
            response.read()
        except (http.client.RemoteDisconnected, ConnectionError):
            connection.close()
            if not reused:
                raise
            post(body)  # the collector closed the idle connection: once more, on a new one
            return
        except BaseException:
            connection.close()
            raise
        held.append(connection)
        if not 200 <= response.status < 300:
            raise ExportError(f"HTTP {response.status}")

    return post
