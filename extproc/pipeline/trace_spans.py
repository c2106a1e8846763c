"""A request's spans in the ext_proc, for the `tracing` section (observe/tracing.py exports them).

- the router pass (`gateway <operation>`, SERVER): from the first message to the end, child of
  Envoy's span of its call to the ext_proc; it carries the gateway's own attributes (route,
  client, tenant, cache result, retries, cost, status);
- the provider attempt (`<operation> <model>`, CLIENT), from the request leaving for the provider
  to the answer's end, with the OpenTelemetry GenAI conventions' attributes;
- the limits and cache stages of the request body (`gateway.limits`, `gateway.cache`).

No span exists while the request runs: its start, the traced stages' times and the request's
GenAI attributes are taken on the way (one clock read per traced stage), and at its end the spans
are made as plain records (observe/otlp.py) and queued; the export thread encodes them. Prompt and answer
bodies go on the root span only when `log_bodies` asks, redacted as in the access line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from time import time_ns
from typing import TYPE_CHECKING, Any

from extproc.formats.canonical import ChatRequest, ChatResponse
from extproc.observe.otlp import CLIENT, INTERNAL, SERVER, SpanRecord
from extproc.observe.tracing import new_span_id
from extproc.pipeline.access_log import error_type, operation_name
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.spend import request_cost
from extproc.providers import kind_of

if TYPE_CHECKING:
    from extproc.config.model import Provider
    from extproc.observe.tracing import Parent, Tracing

TRACED_STAGES = frozenset({"limits", "cache"})


@dataclass(slots=True)
class RequestTrace:
    tracing: Tracing
    parent: Parent
    started: int  # ns since the epoch
    stages: list[tuple[str, int, int]] = field(default_factory=list)  # name, start and end (ns since the epoch)
    sent: int = 0  # when the request left for the provider (ns); 0: it never did
    request: dict[str, Any] = field(default_factory=dict)  # the request's GenAI attributes, read as it left

    def stage(self, name: str, started: int) -> None:
        self.stages.append((name, started, time_ns()))

    def left_for_provider(self, ex: Exchange) -> None:
        self.sent = time_ns()
        self.request = _request_attributes(ex)


def begin(tracing: Tracing, metadata: Mapping[str, str]) -> RequestTrace | None:
    """The request's trace, under Envoy's span; None when it is not sampled (nothing recorded)."""
    parent = tracing.sample(metadata)
    return RequestTrace(tracing, parent, time_ns()) if parent is not None else None


def finish(trace: RequestTrace, ex: Exchange) -> None:
    """The request's spans, ended now and queued for export (run once, at the request's end)."""
    ended = time_ns()
    trace_id, parent_id, state = trace.parent
    operation = operation_name(ex.endpoint)
    failure = error_type(ex)
    root_id = new_span_id()
    attributes = _gateway_attributes(ex, operation)
    if failure:
        attributes["error.type"] = failure
    root = SpanRecord(
        trace_id, root_id, parent_id, bool(parent_id), state, f"gateway {operation}", SERVER, trace.started, ended,
        attributes, bool(failure),
    )  # fmt: skip

    def child(name: str, kind: int, started: int, stopped: int, attributes: dict[str, Any]) -> SpanRecord:
        failed = kind == CLIENT and bool(failure)
        return SpanRecord(
            trace_id, new_span_id(), root_id, False, state, name, kind, started, stopped, attributes, failed
        )

    spans = [
        root,
        *(child(f"gateway.{name}", INTERNAL, started, stopped, {}) for name, started, stopped in trace.stages),
    ]
    if trace.sent:
        model = trace.request.get("gen_ai.request.model", "")
        provider = {"gen_ai.operation.name": operation, **trace.request, **_answer_attributes(ex)}
        if ex.provider_status:
            provider["http.response.status_code"] = ex.provider_status
        if failure:
            provider["error.type"] = failure
        spans.append(child(f"{operation} {model}".strip(), CLIENT, trace.sent, ended, provider))
    trace.tracing.export(spans)


def _request_attributes(ex: Exchange) -> dict[str, Any]:
    provider = ex.provider
    attributes: dict[str, Any] = {
        "gen_ai.request.model": ex.target.upstream_model if ex.target and ex.target.upstream_model else ex.model,
    }
    if provider is not None:
        attributes.update(_provider_attributes(provider))
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


# A provider's attributes, made once per provider of a snapshot (its host and port parse its URL),
# keyed by identity: the provider is held, so an id is never another's while its entry stands.
_PROVIDERS: dict[int, tuple[Provider, dict[str, Any]]] = {}


def _provider_attributes(provider: Provider) -> dict[str, Any]:
    held = _PROVIDERS.get(id(provider))
    if held is not None and held[0] is provider:
        return held[1]
    attributes: dict[str, Any] = {
        "gen_ai.provider.name": kind_of(provider).gen_ai_name,
        "gateway.provider": provider.name,
    }
    if provider.host:
        attributes["server.address"] = provider.host
        attributes["server.port"] = provider.port
    if len(_PROVIDERS) >= 1024:  # many reloads: the old snapshots' providers go
        _PROVIDERS.clear()
    _PROVIDERS[id(provider)] = (provider, attributes)
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
        # the canonical reasons are the conventions' names; a tuple, so its encoding is kept (observe/otlp.py)
        attributes["gen_ai.response.finish_reasons"] = tuple(reasons)
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
