"""The ext_proc's own span export: a span record encoded as OTLP (decoded back with
opentelemetry-proto, as a collector reads it), the sampler's decision (a traceparent's sampled flag,
else sample_ratio on a new trace's id), delivery over OTLP/gRPC and OTLP/HTTP to a real receiver,
and failed exports counted as dropped."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, SpanFlags, Status

from extproc.observe.otlp import CLIENT, SERVER, ExportError, SpanRecord, encode, grpc_sender, http_sender
from extproc.observe.tracing import SPANS_DROPPED, Tracing
from tests.support.otlp import OtlpReceiver, received
from tests.support.wait import wait_until

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
ENVOY, OURS = bytes.fromhex("00f067aa0ba902b7"), bytes.fromhex("1111111111111111")
TRACEPARENT = f"00-{TRACE.hex()}-{ENVOY.hex()}-01"


def _record(name: str = "gateway chat", **changes: object) -> SpanRecord:
    record = SpanRecord(TRACE, OURS, ENVOY, True, "v=1", name, SERVER, 1_000, 2_500, {"k": "v"}, False)
    return record._replace(**changes)


def _decode(body: bytes) -> list[Span]:
    return [span.span for span in received(ExportTraceServiceRequest.FromString(body), {})]


def test_a_span_record_decodes_as_the_otlp_span_it_describes() -> None:
    attributes = {"s": "text", "i": 7, "f": 0.5, "b": True, "list": ["stop", "length"], "other": b"x"}
    body = encode([_record(attributes=attributes, failed=True)], "llm-gateway-extproc")
    request = ExportTraceServiceRequest.FromString(body)
    resource = request.resource_spans[0]
    assert [(a.key, a.value.string_value) for a in resource.resource.attributes] == [
        ("service.name", "llm-gateway-extproc")
    ]
    assert resource.scope_spans[0].scope.name == "extproc"
    (span,) = resource.scope_spans[0].spans
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE, OURS, ENVOY)
    assert (span.name, span.kind, span.trace_state) == ("gateway chat", Span.SPAN_KIND_SERVER, "v=1")
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (1_000, 2_500)
    assert span.flags == SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    assert span.status.code == Status.STATUS_CODE_ERROR
    values = {a.key: a.value for a in span.attributes}
    assert values["s"].string_value == "text" and values["i"].int_value == 7 and values["f"].double_value == 0.5
    assert values["b"].WhichOneof("value") == "bool_value" and values["b"].bool_value  # a bool is not an int
    assert [v.string_value for v in values["list"].array_value.values] == ["stop", "length"]
    assert values["other"].string_value == "b'x'"


def test_a_child_span_is_local_and_a_batch_keeps_its_order() -> None:
    child = _record("chat gpt-4o", span_id=b"\x02" * 8, parent_id=OURS, remote_parent=False, kind=CLIENT)
    spans = _decode(encode([_record(), child], "svc"))
    assert [span.name for span in spans] == ["gateway chat", "chat gpt-4o"]
    assert spans[1].flags == SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK and spans[1].parent_span_id == OURS
    assert spans[0].status.code == Status.STATUS_CODE_UNSET


def test_an_attribute_seen_before_keeps_its_type() -> None:
    records = [_record(attributes={"x": value}) for value in (True, 1, 1.0, True, "1")]
    spans = _decode(encode(records, "svc"))
    kinds = [span.attributes[0].value.WhichOneof("value") for span in spans]
    assert kinds == ["bool_value", "int_value", "double_value", "bool_value", "string_value"]


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    made = Tracing(lambda body: None, sample_ratio=1.0)
    yield made
    made.shutdown()


def test_envoys_sampled_traceparent_is_continued_with_its_tracestate(tracing: Tracing) -> None:
    parent = tracing.sample({"traceparent": TRACEPARENT, "tracestate": " v=1,w=2 "})
    assert parent == (TRACE, ENVOY, "v=1,w=2")


def test_an_unsampled_traceparent_is_followed_whatever_the_ratio(tracing: Tracing) -> None:
    assert tracing.sample({"traceparent": TRACEPARENT[:-2] + "00"}) is None


def test_a_sampled_traceparent_is_followed_at_ratio_zero() -> None:
    never = Tracing(lambda body: None, sample_ratio=0.0)
    try:
        assert never.sample({"traceparent": TRACEPARENT}) is not None
        assert never.sample({}) is None  # a new trace at ratio 0: never
    finally:
        never.shutdown()


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"ff-{TRACE.hex()}-{ENVOY.hex()}-01",  # version ff is invalid
        f"00-{TRACE.hex()}-{ENVOY.hex()}-01-extra",  # version 00 has exactly four fields
        f"00-{'0' * 32}-{ENVOY.hex()}-01",
        f"00-{TRACE.hex()}-{'0' * 16}-01",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(tracing: Tracing, header: str) -> None:
    parent = tracing.sample({"traceparent": header})
    assert parent is not None and parent.span_id == b"" and parent.trace_id != TRACE and any(parent.trace_id)


def test_a_later_traceparent_version_with_more_fields_is_continued(tracing: Tracing) -> None:
    parent = tracing.sample({"traceparent": f"01-{TRACE.hex()}-{ENVOY.hex()}-01-more"})
    assert parent is not None and parent.trace_id == TRACE


def test_sample_ratio_keeps_about_its_share_of_new_traces() -> None:
    half = Tracing(lambda body: None, sample_ratio=0.5)
    try:
        kept = sum(half.sample({}) is not None for _ in range(4000))
    finally:
        half.shutdown()
    assert 1600 < kept < 2400  # 0.5 of 4000; the bounds are 12 standard deviations wide


def test_an_export_that_fails_every_time_is_sent_again_then_its_spans_are_counted_as_dropped() -> None:
    tries = []

    def refuse(body: bytes) -> None:
        tries.append(body)
        raise ConnectionRefusedError  # the collector out of reach: retryable

    before = SPANS_DROPPED.labels("export_failed")._value.get()
    failing = Tracing(refuse, sample_ratio=1.0, retry_delays_s=(0.01, 0.01))
    try:
        failing.export([_record(), _record()])
        assert failing.flush()
    finally:
        failing.shutdown()
    assert len(tries) == 3 and len(set(tries)) == 1  # the same export, twice more
    assert SPANS_DROPPED.labels("export_failed")._value.get() - before == 2


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_export_the_collector_cannot_take_yet_is_sent_again_and_arrives(protocol: Literal["grpc", "http"]) -> None:
    before = SPANS_DROPPED.labels("export_failed")._value.get()
    with OtlpReceiver(protocol, refuse_first=2) as receiver:
        sender = grpc_sender if protocol == "grpc" else http_sender
        tracing = Tracing(sender(receiver.endpoint, (), 5.0), 1.0, retry_delays_s=(0.01, 0.01, 0.01))
        try:
            tracing.export([_record()])
            assert tracing.flush(10)
        finally:
            tracing.shutdown()
        assert receiver.exports == 3  # refused twice (UNAVAILABLE, 503), taken the third time
        assert [span.name for span in receiver.spans()] == ["gateway chat"]
    assert SPANS_DROPPED.labels("export_failed")._value.get() == before


def test_an_export_the_collector_refuses_for_good_is_not_sent_again() -> None:
    tries = []

    def refuse(body: bytes) -> None:
        tries.append(body)
        raise ExportError("HTTP 400")  # a malformed export: OTLP does not retry it

    before = SPANS_DROPPED.labels("export_failed")._value.get()
    failing = Tracing(refuse, sample_ratio=1.0, retry_delays_s=(0.01, 0.01))
    try:
        failing.export([_record()])
        assert failing.flush()
    finally:
        failing.shutdown()
    assert len(tries) == 1
    assert SPANS_DROPPED.labels("export_failed")._value.get() - before == 1


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_spans_reach_a_real_collector_with_the_headers(protocol: Literal["grpc", "http"]) -> None:
    with OtlpReceiver(protocol) as receiver:
        tracing = Tracing.to_collector(receiver.endpoint, protocol, 1.0, [("authorization", "Bearer k")])
        try:
            tracing.export([_record()])
            assert tracing.flush(10)
            tracing.export([_record("second")])  # the HTTP sender's kept-alive connection, used again
            assert tracing.flush(10)
        finally:
            tracing.shutdown()
        assert wait_until(lambda: len(receiver.spans()) == 2, timeout=10)
        first, second = receiver.spans()
    assert (first.service, first.name, second.name) == ("llm-gateway-extproc", "gateway chat", "second")
    assert first.headers["authorization"] == "Bearer k" and first.parent_id == ENVOY.hex()


class _ClosesAfterEachAnswer(BaseHTTPRequestHandler):
    """A collector that answers keep-alive, then closes the connection without saying so (as one
    does to an idle connection)."""

    protocol_version = "HTTP/1.1"
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_the_http_sender_sends_again_on_a_new_connection_when_the_collector_closed_the_old_one() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosesAfterEachAnswer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        send = http_sender(f"http://127.0.0.1:{server.server_port}/v1/traces", (), 5.0)
        first, second = encode([_record()], "svc"), encode([_record("second")], "svc")
        send(first)
        assert wait_until(lambda: len(_ClosesAfterEachAnswer.bodies) == 1, timeout=10)
        send(second)  # the kept connection is closed: no exception, the export goes on a new one
    finally:
        server.shutdown()
        server.server_close()
    assert _ClosesAfterEachAnswer.bodies == [first, second]


class _Throttles(BaseHTTPRequestHandler):
    """A collector that throttles every export (429, Retry-After 7), or refuses it as malformed (400)."""

    protocol_version = "HTTP/1.1"
    status = 429

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(self.status)
        if self.status == 429:
            self.send_header("retry-after", "7")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("status", "again", "after_s"), [(429, True, 7.0), (400, False, 0.0)])
def test_the_http_sender_says_whether_a_refusal_is_retried_and_after_how_long(
    status: int, again: bool, after_s: float
) -> None:
    handler = type("Handler", (_Throttles,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        send = http_sender(f"http://127.0.0.1:{server.server_port}/v1/traces", (), 5.0)
        with pytest.raises(ExportError) as refused:
            send(encode([_record()], "svc"))
    finally:
        server.shutdown()
        server.server_close()
    assert (str(refused.value), refused.value.retryable, refused.value.retry_after_s) == (
        f"HTTP {status}",
        again,
        after_s,
    )
