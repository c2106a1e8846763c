"""The ext_proc's spans (the `tracing` section): sampled, queued and exported as OTLP.

A request's spans are plain records (ids, times, attributes) put on a bounded queue at the
request's end; a daemon thread takes them in batches, encodes them as one OTLP protobuf export
(observe/otlp.py) and sends it over gRPC or HTTP. The OpenTelemetry SDK did this with Span
objects, attribute validation, contexts and its span processor, which cost the event loop about
as much as the request itself (bench/README.md, the tracing table); here a request's path holds
a header parse, a few tuples and a deque append, and no OpenTelemetry package is imported. A
collector that is down or slow never holds a request: when the queue is full new spans push out
the oldest, and those (and the spans of a failed export) are counted in
`gateway_trace_spans_dropped_total`. Nothing here runs, and no thread exists, when tracing is off.

The parent of a request's spans is the `traceparent` Envoy puts in the ext_proc stream's initial
metadata (the span of its call to the ext_proc, in the request's trace: the client's trace when
it sent one). Its sampled flag decides; without one the trace is new and `sample_ratio` decides on
its id, as OpenTelemetry's ParentBased(TraceIdRatioBased) sampler does.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

from extproc.observe.metrics import SPANS_DROPPED
from extproc.observe.otlp import ExportError, Send, SpanRecord, encode, grpc_sender, http_sender, retryable

log = logging.getLogger(__name__)

SERVICE_NAME = "llm-gateway-extproc"
_QUEUE_FULL = SPANS_DROPPED.labels("queue_full")
_EXPORT_FAILED = SPANS_DROPPED.labels("export_failed")
EXPORT_TIMEOUT_S = 5.0  # one export's bound: a hung collector holds the export thread no longer (never a request)
SHUTDOWN_S = 2.0
# An export the collector could not take now is sent again after these waits (OTLP's exponential
# backoff, jittered); meanwhile new spans queue, the oldest going when the queue is full.
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)
MAX_RETRY_AFTER_S = 30.0  # a collector's own Retry-After, bounded
# The W3C traceparent (version 00 exactly; a later version may append fields), read as OpenTelemetry's propagator does.
_TRACEPARENT = re.compile(r"\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s*")
_NO_TRACE, _NO_SPAN = "0" * 32, "0" * 16  # all-zero ids are invalid
_SAMPLED = frozenset("13579bdf")  # trace-flags whose low bit, sampled, is set
_TRACESTATE_MAX = 512  # W3C: the length every vendor must pass on; longer is not continued
_ID_LIMIT = (1 << 64) - 1


class Parent(NamedTuple):
    """The trace a sampled request's spans go in: its id, the parent's span id (b"" for a new trace), tracestate."""

    trace_id: bytes
    span_id: bytes
    state: str


def new_span_id() -> bytes:
    """8 random bytes, never all zero: the random module, as OpenTelemetry's id generator uses it (ids
    need uniqueness, not secrecy; os.urandom is a system call each; each worker process seeds its own)."""
    return (random.getrandbits(64) or 1).to_bytes(8, "big")


def _env_int(name: str, default: int) -> int:
    """OpenTelemetry's OTEL_BSP_* variables, honoured for the queue, batch and delay."""
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


class Tracing:
    """One process's sampler, span queue and export thread (a worker process builds its own)."""

    def __init__(
        self,
        send: Send,
        sample_ratio: float,
        service_name: str = SERVICE_NAME,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self._send = send
        self._retry_delays_s = tuple(retry_delays_s)
        self._halt = threading.Event()  # set on shutdown: a backoff ends at once
        self._service_name = service_name
        self._bound = round(sample_ratio * (_ID_LIMIT + 1))  # TraceIdRatioBased's: the id's low 64 bits below it
        self._max_queue = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._batch = min(_env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), self._max_queue)
        self._delay_s = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self._queue: deque[SpanRecord] = deque(maxlen=self._max_queue)  # full: the oldest spans go
        self._wake = threading.Event()
        self._flushed: list[threading.Event] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tracing-export", daemon=True)
        self._thread.start()

    @classmethod
    def to_collector(
        cls,
        endpoint: str,
        protocol: Literal["grpc", "http"],
        sample_ratio: float,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Tracing:
        """Spans exported with OTLP over gRPC (`endpoint` the collector's root) or HTTP (its traces URL)."""
        sender = grpc_sender if protocol == "grpc" else http_sender
        return cls(sender(endpoint, tuple(headers), EXPORT_TIMEOUT_S), sample_ratio)

    def sample(self, metadata: Mapping[str, str]) -> Parent | None:
        """The trace of a request to record, or None when it is not sampled (then nothing is recorded).
        A valid traceparent's sampled flag decides; without one a new trace, kept at `sample_ratio`."""
        header = metadata.get("traceparent")
        if header and (match := _TRACEPARENT.fullmatch(header)) is not None:
            version, trace_id, span_id, flags, rest = match.groups()
            if version != "ff" and not (version == "00" and rest) and trace_id != _NO_TRACE and span_id != _NO_SPAN:
                if flags[1] not in _SAMPLED:
                    return None
                state = metadata.get("tracestate", "").strip()
                return Parent(bytes.fromhex(trace_id), bytes.fromhex(span_id), state[:_TRACESTATE_MAX])
        number = random.getrandbits(128) or 1
        if number & _ID_LIMIT >= self._bound:
            return None
        return Parent(number.to_bytes(16, "big"), b"", "")

    def export(self, spans: Sequence[SpanRecord]) -> None:
        """Queue a request's ended spans (on the event loop: never blocks, never raises)."""
        queue = self._queue
        overflow = len(queue) + len(spans) - self._max_queue
        if overflow > 0:
            _QUEUE_FULL.inc(overflow)
        queue.extend(spans)
        if len(queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout_s: float = SHUTDOWN_S) -> bool:
        """Export what is queued now; True once it went (tests, and the reload's drain)."""
        done = threading.Event()
        self._flushed.append(done)
        self._wake.set()
        return done.wait(timeout_s)

    def shutdown(self, timeout_s: float = SHUTDOWN_S) -> None:
        """Export what is queued and stop the thread, waiting at most `timeout_s` (a hung collector
        must not hold the process's exit): blocking, never on the event loop."""
        self._stopping = True
        self._halt.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            waiting, self._flushed = self._flushed, []
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                self._deliver(batch)
            for done in waiting:
                done.set()
            if self._stopping:
                return

    def _deliver(self, batch: list[SpanRecord]) -> None:
        body = encode(batch, self._service_name)
        for delay_s in (*self._retry_delays_s, None):
            try:
                self._send(body)
                return
            except Exception as error:  # the collector's trouble: retried or counted, never the request's
                if delay_s is None or not retryable(error) or self._halt.is_set():
                    _EXPORT_FAILED.inc(len(batch))
                    log.warning("exporting %d spans failed: %s", len(batch), _named(error))
                    return
                asked_s = error.retry_after_s if isinstance(error, ExportError) else 0.0
                self._halt.wait(max(delay_s * random.uniform(0.8, 1.2), min(asked_s, MAX_RETRY_AFTER_S)))


def _named(error: BaseException) -> str:
    """The failure as a log line says it: the collector's status, or the error's type (never a
    message that could carry an endpoint's credentials)."""
    return str(error) if isinstance(error, ExportError) else type(error).__name__
