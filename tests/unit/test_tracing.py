"""Tracing, piece by piece: the `tracing` section and its secret headers file, Envoy's rendered
tracer and collector cluster, the router pass's spans and their attributes (driven with ext_proc
messages, spans kept in memory), drops counted when the collector hangs, and no OpenTelemetry code
at all when tracing is off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, ProcessingRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from extproc.config.load import ConfigError, load_text
from extproc.config.tracing import read_headers
from extproc.observe.otlp import SpanRecord
from extproc.observe.tracing import SPANS_DROPPED, Tracing
from extproc.server.router_pass import RouterPass
from extproc.state import GatewayState
from extproc.xds.render import render_bootstrap, render_clusters, render_listeners
from extproc.xds.render_tracing import TRACE_CLUSTER, write_trace_secrets
from tests.support.otlp import CLIENT, SERVER, OtlpReceiver, ReceivedSpan, received
from tests.unit.test_router_pass import REQUEST_HEADERS, headers

SECRET = "Bearer very-secret-collector-key"
BASE = """
providers:
  - {name: mock, kind: mock}
routes:
  - {name: chat, model: "*", provider: mock}
limits: {rules: [{name: r, key: [client], requests: 100}]}
cache: {}
"""
TRACE_ID, ENVOY_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def _load(tracing: str, tmp_path: Path, extra: str = "") -> Any:
    return load_text(BASE + extra + f"tracing: {tracing}\n", {}, tmp_path)


def test_tracing_is_off_without_its_section() -> None:
    assert load_text(BASE, {}, Path(".")).tracing is None


def test_the_headers_file_is_read_as_lower_case_name_value_pairs(tmp_path: Path) -> None:
    (tmp_path / "h").write_text(f"# the collector's key\nAuthorization: {SECRET}\n\nX-Scope-OrgID: team-a\n")
    config = _load("{otlp_endpoint: 'http://127.0.0.1:4317', headers_file: h}", tmp_path)
    assert config.tracing.headers == (("authorization", SECRET), ("x-scope-orgid", "team-a"))
    assert str(tmp_path / "h") in config.secret_files  # a rotated file is a reload
    assert SECRET not in repr(config)


def test_a_bad_headers_line_is_named_by_number_never_quoted() -> None:
    problems: list[str] = []
    read_headers(f"authorization {SECRET}\ncontent-type: text/plain\nok: 1\n", problems)
    assert problems == [
        "tracing.headers_file: line 1 is not a `name: value` header the exporter may set",
        "tracing.headers_file: line 2 is not a `name: value` header the exporter may set",
    ]


def test_an_unreadable_headers_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _load("{otlp_endpoint: 'http://127.0.0.1:4317', headers_file: missing}", tmp_path)
    assert raised.value.problems == ["tracing.headers_file: cannot read missing"]


def test_a_plaintext_collector_beyond_loopback_must_be_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tracing\.otlp_endpoint: http:// to collector\.example"):
        _load("{otlp_endpoint: 'http://collector.example:4317'}", tmp_path)
    allowed = _load("{otlp_endpoint: 'http://collector.example:4317', allow_plaintext: true}", tmp_path)
    assert allowed.tracing.host == "collector.example"


def test_the_http_protocol_posts_to_v1_traces_unless_a_path_is_given(tmp_path: Path) -> None:
    bare = _load("{otlp_endpoint: 'http://127.0.0.1:4318', protocol: http}", tmp_path).tracing
    given = _load("{otlp_endpoint: 'http://127.0.0.1:4318/otlp/v1/traces', protocol: http}", tmp_path).tracing
    assert (bare.traces_url, given.traces_url) == (
        "http://127.0.0.1:4318/v1/traces",
        "http://127.0.0.1:4318/otlp/v1/traces",
    )


def test_envoy_traces_every_listener_to_the_collector_cluster(tmp_path: Path) -> None:
    config = _load("{otlp_endpoint: 'http://127.0.0.1:4317', sample_ratio: 0.25}", tmp_path)
    (listener,) = render_listeners(config, None)
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    provider = hcm["tracing"]["provider"]["typed_config"]
    assert provider["grpc_service"]["envoy_grpc"]["cluster_name"] == TRACE_CLUSTER
    ratio = provider["sampler"]["typed_config"]["wrapped_sampler"]["typed_config"]["sampling_percentage"]
    assert ratio == {"numerator": 250_000, "denominator": "MILLION"}
    (cluster,) = [c for c in render_clusters(config, tmp_path) if c["name"] == TRACE_CLUSTER]
    options = cluster["typed_extension_protocol_options"]
    assert "http2_protocol_options" in json.dumps(options)  # OTLP/gRPC
    runtime = yaml.safe_load(render_bootstrap(config, tmp_path))["layered_runtime"]["layers"]
    assert runtime[0]["static_layer"]["tracing.opentelemetry.flush_interval_ms"] == 1000


def test_no_tracer_is_rendered_without_tracing(tmp_path: Path) -> None:
    config = load_text(BASE, {}, tmp_path)
    hcm = render_listeners(config, None)[0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert "tracing" not in hcm
    assert TRACE_CLUSTER not in {c["name"] for c in render_clusters(config, tmp_path)}


def test_the_collector_headers_reach_envoy_only_through_owner_only_sds_files(tmp_path: Path) -> None:
    (tmp_path / "h").write_text(f"authorization: {SECRET}\n")
    config = _load("{otlp_endpoint: 'http://127.0.0.1:4318', protocol: http, headers_file: h}", tmp_path)
    secrets = tmp_path / "secrets"
    write_trace_secrets(config, secrets)
    rendered = json.dumps([render_listeners(config, None), render_clusters(config, secrets)])
    assert SECRET not in rendered
    (secret_file,) = secrets.iterdir()
    assert SECRET in secret_file.read_text() and secret_file.stat().st_mode & 0o777 == 0o600


# --- the router pass's spans


class Collected:
    """A send that keeps each export's bytes, decoded as a collector would."""

    def __init__(self) -> None:
        self.exports: list[bytes] = []

    def __call__(self, body: bytes) -> None:
        self.exports.append(body)

    def spans(self) -> list[ReceivedSpan]:
        return [span for body in self.exports for span in received(ExportTraceServiceRequest.FromString(body), {})]


@pytest.fixture
def memory() -> Iterator[tuple[Tracing, Collected]]:
    collected = Collected()
    tracing = Tracing(collected, sample_ratio=1.0)
    yield tracing, collected
    tracing.shutdown()


def _run(state: GatewayState, messages: list[ProcessingRequest], metadata: dict[str, str]) -> list[Any]:
    async def feed() -> AsyncIterator[ProcessingRequest]:
        for message in messages:
            yield message

    async def collect() -> list[Any]:
        return [r async for r in RouterPass(state).process(feed(), "main", metadata)]

    return asyncio.run(collect())


def _chat(**fields: Any) -> ProcessingRequest:
    payload = {"model": "mock-1", "messages": [{"role": "user", "content": "hello"}], **fields}
    return ProcessingRequest(request_body=HttpBody(body=orjson.dumps(payload), end_of_stream=True))


def _spans(tracing: Tracing, collected: Collected) -> dict[str, ReceivedSpan]:
    assert tracing.flush()
    return {span.name: span for span in collected.spans()}


def _traced_state(tracing: Tracing, extra: str = "") -> GatewayState:
    state = GatewayState(load_text(BASE + extra, {}, Path(".")))
    state.tracing = tracing
    return state


def test_the_router_pass_span_carries_the_cost_the_access_line_shows(
    memory: tuple[Tracing, Collected],
) -> None:
    tracing, collected = memory
    # $1 per token in and out: the cost is the mock answer's own token count, in dollars
    priced = "prices:\n  mock: [{models: [mock-1], input: 1000000, output: 1000000}]\n"
    state = _traced_state(tracing, priced)
    _run(state, [REQUEST_HEADERS, _chat(max_tokens=5)], {"traceparent": f"00-{TRACE_ID}-{ENVOY_SPAN}-01"})
    attributes = _spans(tracing, collected)["gateway chat"].attributes
    assert attributes["gateway.cost_usd"] > 0
    assert attributes["gateway.cost_usd"] == int(attributes["gateway.cost_usd"])  # whole tokens at $1 each


def test_the_router_pass_span_continues_envoys_trace_with_the_gateways_attributes(
    memory: tuple[Tracing, Collected],
) -> None:
    tracing, collected = memory
    metadata = {"traceparent": f"00-{TRACE_ID}-{ENVOY_SPAN}-01", "tracestate": "v=1"}
    _run(_traced_state(tracing), [REQUEST_HEADERS, _chat(max_tokens=5)], metadata)
    spans = _spans(tracing, collected)
    root = spans["gateway chat"]
    assert root.span.kind == SERVER
    assert root.parent_id == ENVOY_SPAN and root.trace_id == TRACE_ID and root.span.trace_state == "v=1"
    attributes = root.attributes
    assert attributes["gateway.route"] == "chat" and attributes["gateway.request_id"] == "rid-1"
    assert attributes["gateway.retries"] == 0 and attributes["gateway.client"] == "anonymous"
    assert attributes["gateway.cost_usd"] == 0.0  # the mock provider is free unless the config prices it
    limits = spans["gateway.limits"]
    assert limits.parent_id == root.span_id and limits.trace_id == TRACE_ID
    # The mock provider answers inside the ext_proc (before the cache): no request leaves, no provider span.
    assert set(spans) == {"gateway chat", "gateway.limits"}


def test_an_unsampled_request_records_nothing(memory: tuple[Tracing, Collected]) -> None:
    tracing, collected = memory
    metadata = {"traceparent": f"00-{TRACE_ID}-{ENVOY_SPAN}-00"}
    _run(_traced_state(tracing), [REQUEST_HEADERS, _chat()], metadata)
    assert _spans(tracing, collected) == {}


def test_bodies_go_on_the_span_only_with_log_bodies_and_redacted(memory: tuple[Tracing, Collected]) -> None:
    tracing, collected = memory
    request = _chat(api_key="sk-should-not-leak")
    metadata = {"traceparent": f"00-{TRACE_ID}-{ENVOY_SPAN}-01"}
    _run(_traced_state(tracing), [REQUEST_HEADERS, request], metadata)
    assert "gateway.request.body" not in _spans(tracing, collected)["gateway chat"].attributes
    collected.exports.clear()
    _run(_traced_state(tracing, "log_bodies: true\n"), [REQUEST_HEADERS, request], metadata)
    body = _spans(tracing, collected)["gateway chat"].attributes["gateway.request.body"]
    assert "hello" in str(body) and "sk-should-not-leak" not in str(body) and "[redacted]" in str(body)


def test_a_request_that_leaves_for_the_provider_gets_a_genai_client_span(
    memory: tuple[Tracing, Collected],
) -> None:
    tracing, collected = memory
    config = """
providers:
  - {name: oai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
routes:
  - {name: chat, model: "*", provider: oai, upstream_model: gpt-4o-mini}
"""
    state = GatewayState(load_text(config, {"K": "k"}, Path(".")))
    state.tracing = tracing
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    messages = [
        REQUEST_HEADERS,
        _chat(model="small", max_tokens=9, temperature=0.2),
        ProcessingRequest(response_headers=headers({":status": "200", "content-type": "application/json"})),
        ProcessingRequest(response_body=HttpBody(body=orjson.dumps(answer), end_of_stream=True)),
    ]
    _run(state, messages, {"traceparent": f"00-{TRACE_ID}-{ENVOY_SPAN}-01"})
    spans = _spans(tracing, collected)
    client = spans["chat gpt-4o-mini"]
    assert client.span.kind == CLIENT
    assert client.parent_id == spans["gateway chat"].span_id
    assert client.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gateway.provider": "oai",
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.request.max_tokens": 9,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 7,
        "gen_ai.usage.output_tokens": 2,
        "http.response.status_code": 200,
    }


def _record() -> SpanRecord:
    return SpanRecord(bytes(range(16)), b"\x01" * 8, b"", False, "", "s", 1, 1, 2, {}, False)


def test_a_hung_collector_never_blocks_queueing_spans_and_the_drops_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    before = SPANS_DROPPED.labels("queue_full")._value.get()
    with OtlpReceiver("grpc", stall=True) as receiver:
        tracing = Tracing.to_collector(receiver.endpoint, "grpc", 1.0)
        for _ in range(20):
            tracing.export([_record()])  # returns at once: the queue takes it or drops the oldest
        dropped = SPANS_DROPPED.labels("queue_full")._value.get() - before
        # At most a batch is in the hung export and the queue holds 4: every other span was dropped.
        assert dropped >= 20 - 4 - 2
        tracing.shutdown(timeout_s=0.1)


def test_the_otlp_protos_are_opentelemetry_protos_own() -> None:
    # xds-protos ships an old copy under the same paths, without scope_spans (make install reinstalls them).
    assert "scope_spans" in trace_pb2.ResourceSpans.DESCRIPTOR.fields_by_name


def test_with_tracing_off_no_opentelemetry_code_is_loaded() -> None:
    script = (
        "import sys; from pathlib import Path; from extproc.config.load import load_text; "
        "from extproc.server.service import ExternalProcessor; from extproc.state import GatewayState; "
        "state = GatewayState(load_text('providers: [{name: m, kind: mock}]', {}, Path('.'))); "
        "ExternalProcessor(state); assert state.tracing is None; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_reload_with_new_tracing_settings_swaps_the_exporter_and_one_without_keeps_it(tmp_path: Path) -> None:
    state = GatewayState(load_text(BASE, {}, tmp_path))
    assert state.tracing is None
    state.swap(_load("{otlp_endpoint: 'http://127.0.0.1:4317'}", tmp_path))
    first = state.tracing
    assert first is not None
    state.swap(_load("{otlp_endpoint: 'http://127.0.0.1:4317'}", tmp_path, "log_level: debug\n"))
    assert state.tracing is first  # the same settings: the same exporter and queue
    state.swap(_load("{otlp_endpoint: 'http://127.0.0.1:4318/v1/traces', protocol: http}", tmp_path))
    assert state.tracing is not None and state.tracing is not first
    state.swap(load_text(BASE, {}, tmp_path))
    assert state.tracing is None
