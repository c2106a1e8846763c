"""OpenTelemetry traces through the real Envoy, with the official SDKs as clients and a real OTLP
receiver (the collector's gRPC and HTTP trace services from opentelemetry-proto): one trace per
request holding Envoy's spans, the ext_proc's (router pass, provider attempt, limits, cache) and
the provider's received traceparent, with the GenAI conventions' attributes; a client's trace
continued; sample_ratio 0 traces nothing; a collector that never answers costs the requests nothing
(they complete, the spans are dropped and counted)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import openai
import pytest

from tests.conftest import PROVIDER_ENV
from tests.fakes.base import Reply
from tests.fakes.providers import FakeOpenAI
from tests.support.metrics import metric_sum
from tests.support.otlp import CLIENT, SERVER, OtlpReceiver, ReceivedSpan, of_trace
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

COLLECTOR_KEY = "Bearer trace-collector-key"
ENVOY, EXTPROC = "llm-gateway-envoy", "llm-gateway-extproc"


def _config(fake: FakeOpenAI, receiver: OtlpReceiver, headers_file: Path, **tracing: Any) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": fake.base_url + "/v1", "api_key_env": "TEST_OPENAI_KEY"}
        ],
        "routes": [{"name": "chat", "model": "gpt-*", "provider": "openai"}],
        "limits": {"rules": [{"name": "per-client", "key": ["client"], "requests": 10000}]},
        "cache": {},
        "tracing": {
            "otlp_endpoint": receiver.endpoint,
            "protocol": receiver.protocol,
            "headers_file": str(headers_file),
            **tracing,
        },
    }


def _start(
    tmp: Path, fake: FakeOpenAI, receiver: OtlpReceiver, env: dict[str, str] | None = None, **tracing: Any
) -> GatewayStack:
    headers_file = tmp / "otlp-headers"
    headers_file.write_text(f"authorization: {COLLECTOR_KEY}\n")
    config = _config(fake, receiver, headers_file, **tracing)
    return GatewayStack(tmp, config, {**PROVIDER_ENV, **(env or {})}).start()


@pytest.fixture(scope="module", params=["grpc", "http"])
def traced(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI
) -> Iterator[tuple[GatewayStack, OtlpReceiver]]:
    protocol: Literal["grpc", "http"] = request.param
    with OtlpReceiver(protocol) as receiver:
        stack = _start(tmp_path_factory.mktemp(f"traces-{protocol}"), fake_openai, receiver)
        try:
            yield stack, receiver
        finally:
            stack.stop()


def _client(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0)


def _trace_of(traceparent: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C traceparent."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def _wait_for(receiver: OtlpReceiver, trace_id: str, *wanted: tuple[str, str]) -> list[ReceivedSpan]:
    """The trace's spans once every (service, span name) in `wanted` has arrived."""

    def arrived() -> bool:
        names = {(span.service, span.name) for span in of_trace(receiver.spans(), trace_id)}
        return all(item in names for item in wanted)

    assert wait_until(arrived, timeout=30), [(s.service, s.name) for s in of_trace(receiver.spans(), trace_id)]
    return list(of_trace(receiver.spans(), trace_id))


def _has(attributes: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {key: attributes.get(key) for key in expected} == expected


def _one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan:
    found = [span for span in spans if span.service == service and span.name == name]
    assert len(found) == 1, [(s.service, s.name) for s in spans]
    return found[0]


def test_one_request_is_one_trace_of_envoy_the_ext_proc_and_the_provider(
    traced: tuple[GatewayStack, OtlpReceiver], fake_openai: FakeOpenAI
) -> None:
    stack, receiver = traced
    answer = _client(stack).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "trace me"}], max_tokens=20, temperature=0.5
    )
    sent = fake_openai.last_request.headers["traceparent"]  # what the provider received
    trace_id, provider_parent = _trace_of(sent)

    spans = _wait_for(
        receiver,
        trace_id,
        (ENVOY, "ingress"),
        (EXTPROC, "gateway chat"),
        (EXTPROC, "chat gpt-4o-mini"),
        (EXTPROC, "gateway.limits"),
        (EXTPROC, "gateway.cache"),
    )
    ingress = _one(spans, ENVOY, "ingress")
    assert ingress.span.kind == SERVER and ingress.parent_id == ""  # the client sent no trace: Envoy began it
    # The provider's traceparent is Envoy's span of its attempt, in the same trace.
    provider_call = next(span for span in spans if span.span_id == provider_parent)
    assert provider_call.service == ENVOY and provider_call.span.kind == CLIENT

    router = _one(spans, EXTPROC, "gateway chat")
    envoy_ids = {span.span_id for span in spans if span.service == ENVOY}
    assert router.parent_id in envoy_ids  # Envoy's span of its call to the ext_proc
    _has(
        router.attributes,
        {
            "gen_ai.operation.name": "chat",
            "gateway.route": "chat",
            "gateway.provider": "openai",
            "gateway.client": "anonymous",
            "gateway.tenant": "anonymous",
            "gateway.cache.result": "MISS",
            "gateway.retries": 0,
            "http.response.status_code": 200,
        },
    )
    assert "gateway.request.body" not in router.attributes  # bodies only with log_bodies

    generation = _one(spans, EXTPROC, "chat gpt-4o-mini")
    assert generation.span.kind == CLIENT and generation.parent_id == router.span_id
    usage = answer.usage
    assert usage is not None
    _has(
        generation.attributes,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": answer.model,
            "gen_ai.response.id": answer.id,
            "gen_ai.request.max_tokens": 20,
            "gen_ai.request.temperature": 0.5,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.response.finish_reasons": [answer.choices[0].finish_reason],
            "server.address": "127.0.0.1",
        },
    )
    for stage in ("gateway.limits", "gateway.cache"):
        assert _one(spans, EXTPROC, stage).parent_id == router.span_id

    # Both exporters (Envoy's and the ext_proc's) sent the headers_file's header to the collector.
    exporters = {span.service: span.headers.get("authorization") for span in spans}
    assert exporters == {ENVOY: COLLECTOR_KEY, EXTPROC: COLLECTOR_KEY}


def test_a_clients_traceparent_is_continued_to_the_provider(
    traced: tuple[GatewayStack, OtlpReceiver], fake_openai: FakeOpenAI
) -> None:
    stack, receiver = traced
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    _client(stack).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "continue my trace"}],
        extra_headers={"traceparent": f"00-{trace_id}-{client_span}-01", "tracestate": "client=1"},
    )
    received = fake_openai.last_request.headers
    assert _trace_of(received["traceparent"])[0] == trace_id
    assert received["tracestate"] == "client=1"

    spans = _wait_for(receiver, trace_id, (ENVOY, "ingress"), (EXTPROC, "gateway chat"), (EXTPROC, "chat gpt-4o"))
    assert _one(spans, ENVOY, "ingress").parent_id == client_span


def test_sample_ratio_zero_traces_nothing(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    with OtlpReceiver("grpc") as receiver:
        stack = _start(tmp_path, fake_openai, receiver, sample_ratio=0)
        try:
            client = _client(stack)
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "not traced"}])
            untraced, _ = _trace_of(fake_openai.last_request.headers["traceparent"])
            assert fake_openai.last_request.headers["traceparent"].endswith("-00")  # unsampled, passed on as such
            # A client's sampled trace is still followed: its spans arriving means any earlier ones would have.
            marker = secrets.token_hex(16)
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "traced by the client's choice"}],
                extra_headers={"traceparent": f"00-{marker}-{secrets.token_hex(8)}-01"},
            )
            _wait_for(receiver, marker, (ENVOY, "ingress"), (EXTPROC, "gateway chat"))
            assert {span.trace_id for span in receiver.spans()} == {marker}
            assert untraced != marker
        finally:
            stack.stop()


def test_a_collector_that_never_answers_costs_the_requests_nothing(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    # A small export queue, so the hung collector fills it within a few requests.
    env = {"OTEL_BSP_MAX_QUEUE_SIZE": "4", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2"}
    with OtlpReceiver("grpc", stall=True) as receiver:
        stack = _start(tmp_path, fake_openai, receiver, env)
        try:
            client = _client(stack)
            for i in range(12):
                answer = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": f"request {i}"}]
                )
                assert answer.choices[0].message.content
            assert wait_until(lambda: receiver.exports > 0, timeout=30)  # the collector took an export, never answered
            dropped = 'reason="queue_full"'
            assert wait_until(lambda: metric_sum(stack, "gateway_trace_spans_dropped_total", dropped) > 0, timeout=30)
            assert receiver.spans() == []
        finally:
            stack.stop()


def test_a_streamed_answer_has_its_finish_reason_usage_and_first_chunk_time(
    traced: tuple[GatewayStack, OtlpReceiver], fake_openai: FakeOpenAI
) -> None:
    stack, receiver = traced
    chunks = list(
        _client(stack).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    trace_id, _ = _trace_of(fake_openai.last_request.headers["traceparent"])
    spans = _wait_for(receiver, trace_id, (EXTPROC, "gateway chat"), (EXTPROC, "chat gpt-4o-mini"))
    generation = _one(spans, EXTPROC, "chat gpt-4o-mini").attributes
    finish = next(choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason)
    _has(
        generation,
        {
            "gen_ai.request.stream": True,
            "gen_ai.response.finish_reasons": [finish],
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
        },
    )
    assert generation["gen_ai.response.time_to_first_chunk"] > 0


def test_a_provider_error_marks_the_spans_failed(
    traced: tuple[GatewayStack, OtlpReceiver], fake_openai: FakeOpenAI
) -> None:
    stack, receiver = traced
    fake_openai.enqueue(Reply(status=500, body=b'{"error": {"message": "boom", "type": "server_error"}}'))
    with pytest.raises(openai.InternalServerError):
        _client(stack).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "fail"}])
    trace_id, _ = _trace_of(fake_openai.last_request.headers["traceparent"])
    spans = _wait_for(receiver, trace_id, (EXTPROC, "gateway chat"), (EXTPROC, "chat gpt-4o"))
    for name in ("gateway chat", "chat gpt-4o"):
        span = _one(spans, EXTPROC, name)
        assert span.span.status.code == span.span.status.STATUS_CODE_ERROR
        assert span.attributes["error.type"] == "500"
    assert _one(spans, EXTPROC, "chat gpt-4o").attributes["http.response.status_code"] == 500
