"""A real OTLP trace receiver for tests: the collector's gRPC TraceService and its HTTP /v1/traces
endpoint, from opentelemetry-proto's own generated code, on a loopback port in a thread of its own.

`stall=True` makes a collector that accepts every export and never answers it (a hung collector)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.stack import free_port

SERVER, CLIENT = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the resource's service.name
    span: Span
    headers: dict[str, str]  # of the export that carried it

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def trace_id(self) -> str:
        return self.span.trace_id.hex()

    @property
    def span_id(self) -> str:
        return self.span.span_id.hex()

    @property
    def parent_id(self) -> str:
        return self.span.parent_span_id.hex()

    @property
    def attributes(self) -> dict[str, Any]:
        return {item.key: _value(item.value) for item in self.span.attributes}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


class OtlpReceiver:
    def __init__(self, protocol: Literal["grpc", "http"], *, stall: bool = False, refuse_first: int = 0) -> None:
        self.protocol = protocol
        self.stall = stall
        self.refuse_first = refuse_first  # exports answered "unavailable" (gRPC UNAVAILABLE, HTTP 503) first
        self.port = free_port()
        self.exports = 0  # export calls seen (answered or not)
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="otlp-receiver", daemon=True)
        self._release = asyncio.Event()
        self._stop: Any = None

    @property
    def endpoint(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root if self.protocol == "grpc" else root + "/v1/traces"

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _record(self, request: trace_service_pb2.ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        spans = received(request, headers)
        with self._lock:
            self._spans += spans

    async def _export(self, request: trace_service_pb2.ExportTraceServiceRequest, headers: dict[str, str]) -> bool:
        """False: refused as unavailable (the first `refuse_first` exports)."""
        self.exports += 1
        if self.exports <= self.refuse_first:
            return False
        if self.stall:
            await self._release.wait()  # never answered while the test runs
            return True
        self._record(request, headers)
        return True

    async def _start(self) -> None:
        self._release = asyncio.Event()
        if self.protocol == "grpc":
            receiver = self

            class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
                async def Export(self, request: Any, context: Any) -> Any:
                    if not await receiver._export(request, dict(context.invocation_metadata())):
                        await context.abort(grpc.StatusCode.UNAVAILABLE, "the collector is busy")
                    return trace_service_pb2.ExportTraceServiceResponse()

            server = grpc.aio.server()
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)  # type: ignore[no-untyped-call]
            server.add_insecure_port(f"127.0.0.1:{self.port}")
            await server.start()
            self._stop = lambda: server.stop(0)
            return

        async def traces(request: web.Request) -> web.Response:
            message = trace_service_pb2.ExportTraceServiceRequest.FromString(await request.read())
            if not await self._export(message, {k.lower(): v for k, v in request.headers.items()}):
                return web.Response(status=503, headers={"retry-after": "0"})
            body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            return web.Response(body=body, content_type="application/x-protobuf")

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._stop = runner.cleanup

    async def _shutdown(self) -> None:
        self._release.set()
        await self._stop()


def received(request: trace_service_pb2.ExportTraceServiceRequest, headers: dict[str, str]) -> list[ReceivedSpan]:
    """The spans of one export, each with its resource's service name."""
    spans = []
    for resource_spans in request.resource_spans:
        attributes = {item.key: _value(item.value) for item in resource_spans.resource.attributes}
        service = str(attributes.get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            spans += [ReceivedSpan(service, span, headers) for span in scope_spans.spans]
    return spans


def of_trace(spans: list[ReceivedSpan], trace_id: str) -> Iterator[ReceivedSpan]:
    return (span for span in spans if span.trace_id == trace_id)
