"""A request's spans in the ext_proc, for the `tracing` section (observe/tracing.py exports them).

- the router pass (`gateway <operation>`, SERVER): from the first message to the end, child of
  Envoy's span of its call to the ext_proc; it carries the gateway's own attributes (route,
  client, tenant, cache result, retries, cost, status);
- the provider attempt (`<operation> <model>`, CLIENT), from the request leaving for the provider
  to the answer's end, with the OpenTelemetry GenAI conventions' attributes;
- the limits and cache stages of the request body (`gateway.limits`, `gateway.cache`).

Only the root span is started while the request runs; the others are made at its end from times
taken on the way, so the request's path holds one clock read per traced stage. Prompt and answer
bodies go on the root span only when `log_bodies` asks, redacted as in the access line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from time import time_ns
from typing import TYPE_CHECKING, Any

from extproc.formats.canonical import ChatRequest, ChatResponse
from extproc.pipeline.access_log import error_type, operation_name
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.spend import request_cost
from extproc.providers import kind_of

if TYPE_CHECKING:  # the OpenTelemetry packages are imported only once tracing is configured
    from opentelemetry.trace import Span, Tracer

    from extproc.observe.tracing import Tracing

TRACED_STAGES = frozenset({"limits", "cache"})


@dataclass(slots=True)
class RequestTrace:
    tracer: Tracer
    root: Span
    stages: list[tuple[str, int, int]] = field(default_factory=list)  # name, start and end (ns since the epoch)
    sent: int = 0  # when the request left for the provider (ns); 0: it never did
    request: dict[str, Any] = field(default_factory=dict)  # the request's GenAI attributes, read as it left

    def stage(self, name: str, started: int) -> None:
        self.stages.append((name, started, time_ns()))

    def left_for_provider(self, ex: Exchange) -> None:
        self.sent = time_ns()
        self.request = _request_attributes(ex)


def begin(tracing: Tracing, metadata: Mapping[str, str]) -> RequestTrace | None:
    """The router pass's span, under Envoy's; None when the request is not sampled (nothing recorded)."""
    from opentelemetry.trace import SpanKind

    root = tracing.tracer.start_span("gateway", context=tracing.parent(metadata), kind=SpanKind.SERVER)
    if not root.is_recording():
        return None
    return RequestTrace(tracing.tracer, root)


def finish(trace: RequestTrace, ex: Exchange) -> None:
    """End the request's spans (run once, at the request's end)."""
    from opentelemetry.trace import Status, StatusCode, set_span_in_context

    ended = time_ns()
    root = trace.root
    operation = operation_name(ex.endpoint)
    failure = error_type(ex)
    root.update_name(f"gateway {operation}")
    root.set_attributes(_gateway_attributes(ex, operation))
    parent = set_span_in_context(root)
    for name, started, stopped in trace.stages:
        trace.tracer.start_span(f"gateway.{name}", context=parent, start_time=started).end(end_time=stopped)
    if trace.sent:
        _provider_span(trace, ex, operation, failure, parent, ended)
    if failure:
        root.set_attribute("error.type", failure)
        root.set_status(Status(StatusCode.ERROR))
    root.end(end_time=ended)


def _provider_span(trace: RequestTrace, ex: Exchange, operation: str, failure: str, parent: Any, ended: int) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    model = trace.request.get("gen_ai.request.model", "")
    span = trace.tracer.start_span(
        f"{operation} {model}".strip(), context=parent, kind=SpanKind.CLIENT, start_time=trace.sent
    )
    span.set_attribute("gen_ai.operation.name", operation)
    span.set_attributes(trace.request)
    span.set_attributes(_answer_attributes(ex))
    if ex.provider_status:
        span.set_attribute("http.response.status_code", ex.provider_status)
    if failure:
        span.set_attribute("error.type", failure)
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=ended)


def _request_attributes(ex: Exchange) -> dict[str, Any]:
    provider = ex.provider
    attributes: dict[str, Any] = {
        "gen_ai.request.model": ex.target.upstream_model if ex.target and ex.target.upstream_model else ex.model,
    }
    if provider is not None:
        attributes["gen_ai.provider.name"] = kind_of(provider).gen_ai_name
        attributes["gateway.provider"] = provider.name
        if provider.host:
            attributes["server.address"] = provider.host
            attributes["server.port"] = provider.port
    if ex.stream:
        attributes["gen_ai.request.stream"] = True
    request = ex.request
    if isinstance(request, ChatRequest):
        for name, value in (
            ("gen_ai.request.max_tokens", request.max_tokens),
            ("gen_ai.request.temperature", request.temperature),
            ("gen_ai.request.top_p", request.top_p),
            ("gen_ai.request.top_k", request.top_k),
            ("gen_ai.request.seed", request.seed),
            ("gen_ai.request.reasoning.level", request.reasoning_effort),
        ):
            if value is not None:
                attributes[name] = value
        if request.n is not None and request.n != 1:
            attributes["gen_ai.request.choice.count"] = request.n
    return attributes


def _answer_attributes(ex: Exchange) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    answer, assembler = ex.answer, ex.assembler
    if isinstance(answer, ChatResponse):
        attributes["gen_ai.response.model"] = answer.model
        attributes["gen_ai.response.id"] = answer.id
        reasons = [str(choice.finish_reason) for choice in answer.choices if choice.finish_reason]
    elif assembler is not None:
        attributes["gen_ai.response.model"] = assembler.model
        attributes["gen_ai.response.id"] = assembler.id
        reasons = assembler.finish_reasons()
    else:
        reasons = []
        if answer is not None:
            attributes["gen_ai.response.model"] = answer.model
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons  # the canonical reasons are the conventions' names
    if ex.first_output and ex.stream:
        attributes["gen_ai.response.time_to_first_chunk"] = ex.first_output - ex.started
    if (usage := ex.usage) is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if usage.cached_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
        if usage.cache_creation_tokens:
            attributes["gen_ai.usage.cache_write.input_tokens"] = usage.cache_creation_tokens
        if usage.reasoning_tokens:
            attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
    return {key: value for key, value in attributes.items() if value not in ("", None)}


def _gateway_attributes(ex: Exchange, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gateway.request_id": ex.request_id,
        "gateway.client": ex.identity.client_id,
        "gateway.tenant": ex.identity.tenant,
        "gateway.retries": ex.attempts - 1,
        "http.response.status_code": ex.status,
    }
    optional: dict[str, Any] = {
        "gen_ai.request.model": ex.model,
        "gateway.client_api": ex.endpoint.format if ex.endpoint else "",
        "gateway.route": ex.route,
        "gateway.provider": ex.provider_name,
        "gateway.cache.result": ex.cache_status,
        "gateway.cost_usd": request_cost(ex).usd,
    }
    attributes.update((key, value) for key, value in optional.items() if value not in ("", None))
    if ex.bodies is not None:  # log_bodies: the access line's redacted bodies
        bodies = ex.bodies.fields()
        attributes["gateway.request.body"] = bodies["request_body"]
        attributes["gateway.response.body"] = bodies["response_body"]
    return attributes
