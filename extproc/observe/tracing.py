"""OpenTelemetry export for the ext_proc's spans (the `tracing` section), built only when configured.

The official SDK with its BatchSpanProcessor: `span.end()` only queues the span; a daemon thread
exports batches with the OTLP exporter (gRPC or HTTP). A collector that is down or slow never holds
a request: when the queue is full new spans push out the oldest, and those (and the spans of a
failed export) are counted in `gateway_trace_spans_dropped_total`. The SDK is imported here, and
this module only when tracing is on: with it off no tracer exists and no request makes a tracer call.

The parent of a request's spans is the `traceparent` Envoy puts in the ext_proc stream's initial
metadata (the span of its call to the ext_proc, in the request's trace: the client's trace when
it sent one). Envoy makes the sampling decision; the SDK follows it (ParentBased).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from extproc.observe.metrics import SPANS_DROPPED

log = logging.getLogger(__name__)

SERVICE_NAME = "llm-gateway-extproc"
_QUEUE_FULL = SPANS_DROPPED.labels("queue_full")
_EXPORT_FAILED = SPANS_DROPPED.labels("export_failed")
_PROPAGATOR = TraceContextTextMapPropagator()  # traceparent and tracestate only (no baggage)
# The SDK's own self-observability switch, read when the processor and the exporter are built.
_SDK_METRICS = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_env_lock = threading.Lock()
EXPORT_TIMEOUT_S = 5.0  # one export's bound: a hung collector holds the export thread no longer (never a request)
SHUTDOWN_S = 2.0


class Tracing:
    """One process's tracer provider, exporter and batch processor (a worker process builds its own)."""

    def __init__(self, exporter: SpanExporter, sample_ratio: float, service_name: str = SERVICE_NAME) -> None:
        resource = Resource.create({"service.name": service_name})
        self.provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(sample_ratio)), resource=resource)
        with _sdk_metrics_on():
            self.processor = BatchSpanProcessor(exporter, meter_provider=_DropCounting())
        self.provider.add_span_processor(self.processor)
        self.tracer: Tracer = self.provider.get_tracer("extproc")

    @classmethod
    def to_collector(
        cls,
        endpoint: str,
        protocol: Literal["grpc", "http"],
        sample_ratio: float,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Tracing:
        """Spans exported with OTLP over gRPC (`endpoint` the collector's root) or HTTP (its traces URL)."""
        with _sdk_metrics_on():
            exporter = _exporter(endpoint, protocol, dict(headers))
        return cls(exporter, sample_ratio)

    def parent(self, metadata: Mapping[str, str]) -> Context:
        """The request's trace as Envoy sent it; an empty context (a new trace) without one."""
        return _PROPAGATOR.extract(metadata)

    def shutdown(self, timeout_s: float = SHUTDOWN_S) -> None:
        """Export what is queued and stop the thread, waiting at most `timeout_s` (a hung collector
        must not hold the process's exit): blocking, never on the event loop."""
        closing = threading.Thread(target=self.provider.shutdown, name="tracing-shutdown", daemon=True)
        closing.start()
        closing.join(timeout_s)


def _exporter(endpoint: str, protocol: Literal["grpc", "http"], headers: dict[str, str]) -> SpanExporter:
    meter_provider = _DropCounting()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        insecure = endpoint.startswith("http://")
        return GrpcExporter(
            endpoint=endpoint,
            insecure=insecure,
            headers=headers,
            timeout=EXPORT_TIMEOUT_S,
            meter_provider=meter_provider,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=endpoint, headers=headers, timeout=EXPORT_TIMEOUT_S, meter_provider=meter_provider)


@contextmanager
def _sdk_metrics_on() -> Iterator[None]:
    """The SDK counts queue-full drops and failed exports only when this variable is set as they are built."""
    with _env_lock:
        before = os.environ.get(_SDK_METRICS)
        os.environ[_SDK_METRICS] = "true"
        try:
            yield
        finally:
            if before is None:
                del os.environ[_SDK_METRICS]
            else:
                os.environ[_SDK_METRICS] = before


class _DroppedSpans(metrics.NoOpCounter):
    """The SDK's `otel.sdk.processor.span.processed` and `otel.sdk.exporter.span.exported` counters,
    of which only the failures are kept. `add` runs inside `span.end()` (queue full): it must not raise."""

    def __init__(self, name: str, target: Any) -> None:
        super().__init__(name)
        self._target = target

    def add(self, amount: int | float, attributes: Any = None, context: Any = None) -> None:
        if attributes and attributes.get("error.type"):
            self._target.inc(amount)


class _Meter(metrics.NoOpMeter):
    def create_counter(self, name: str, unit: str = "", description: str = "") -> metrics.Counter:
        if name == "otel.sdk.processor.span.processed":
            return _DroppedSpans(name, _QUEUE_FULL)
        if name == "otel.sdk.exporter.span.exported":
            return _DroppedSpans(name, _EXPORT_FAILED)
        return super().create_counter(name, unit, description)


class _DropCounting(metrics.NoOpMeterProvider):
    """A meter provider that turns the SDK's drop counts into the Prometheus counter (no metrics SDK needed)."""

    def get_meter(
        self, name: str, version: str | None = None, schema_url: str | None = None, *args: Any
    ) -> metrics.Meter:
        return _Meter(name)
