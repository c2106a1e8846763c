"""Stage: one access-log line and the request's metrics, once per request whatever happened.

A request whose gRPC stream ended before its answer did is `client_closed` (nginx's 499):
Envoy closes the stream when the client hangs up, with no end of the answer first (it does
the same when a provider's connection breaks mid-answer: Envoy's own upstream reset stats
tell those apart). Metric
label values come from the configuration or fixed sets, never from the client: a model the
configuration does not name is `other`, a path the gateway does not serve is `unknown`.
Time to first token and per output token are measured on successful streams only: a whole
answer arrives at once, so when its first token was made is not seen.
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import Usage
from extproc.formats.endpoint import Endpoint
from extproc.observe.logs import access_enabled, log_access, monotonic
from extproc.observe.metrics import RequestSeries, request_series
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.spend import count_cost, request_cost
from extproc.pipeline.stage import Stage
from extproc.providers import kind_of

CLIENT_CLOSED = 499
_OPERATIONS = {  # gen_ai.operation.name
    "chat": "chat",
    "embeddings": "embeddings",
    "models": "list_models",
    "count_tokens": "count_tokens",
}


class AccessLogStage(Stage):
    name = "access_log"

    def finish(self, ex: Exchange) -> None:
        ended = monotonic()
        failure = error_type(ex)
        series = request_series(_labels(ex, failure))
        series.requests.inc()
        series.duration.observe(ended - ex.started)
        usage = ex.usage if ex.cache_status != "HIT" else None  # a hit cost no provider tokens
        if usage is not None:
            series.tokens("input").observe(usage.input_tokens)
            series.tokens("output").observe(usage.output_tokens)
            if usage.cached_tokens:
                series.tokens("cached").observe(usage.cached_tokens)
            if usage.reasoning_tokens:
                series.tokens("reasoning").observe(usage.reasoning_tokens)
        if ex.first_output and not failure:
            _observe_stream(series, ex, ended)
        cost_usd = request_cost(ex).usd
        count_cost(ex, cost_usd)
        if access_enabled():
            log_access(**_access_line(ex, usage, cost_usd, ended))


def error_type(ex: Exchange) -> str:
    """Empty for a success; the status of a failure, `client_closed`, or `stream_error` for a stream
    that failed after it started (its status stays 200)."""
    if not ex.answered:
        return "client_closed"
    if ex.status >= 400:
        return str(ex.status)
    if ex.stream_ended or (ex.assembler is not None and ex.assembler.failed):
        return "stream_error"
    return ""


def operation_name(endpoint: Endpoint | None) -> str:
    """gen_ai.operation.name of a request on `endpoint` (`unknown` for a path the gateway does not serve)."""
    if endpoint is None:
        return "unknown"
    if endpoint.format == "gemini" and endpoint.operation == "chat":
        return "generate_content"
    return _OPERATIONS[endpoint.operation]


def _labels(ex: Exchange, failure: str) -> tuple[str, ...]:
    """GEN_AI_LABELS' values, the status and the error type (see `request_series`)."""
    endpoint, provider, router = ex.endpoint, ex.provider, ex.snapshot.router
    client_api = endpoint.format if endpoint is not None else "unknown"
    operation = operation_name(endpoint)
    answer_model = ex.answer.model if ex.answer else ex.assembler.model if ex.assembler else ""
    return (
        operation,
        kind_of(provider).gen_ai_name if provider else "",
        router.model_label(ex.model),
        router.model_label(answer_model),
        ex.route,
        provider.name if provider else "",
        client_api,
        str(ex.status) if ex.answered else "client_closed",
        failure,
    )


def _observe_stream(series: RequestSeries, ex: Exchange, ended: float) -> None:
    series.first_token().observe(ex.first_output - ex.started)
    output = ex.usage.output_tokens if ex.usage else 0
    if output > 1:
        series.per_token().observe((ended - ex.first_output) / (output - 1))


def _access_line(ex: Exchange, usage: Usage | None, cost_usd: float, ended: float) -> dict[str, Any]:
    line = {
        "request_id": ex.request_id,
        "client_address": ex.client_address,
        "client": ex.identity.client_id,
        "tenant": ex.identity.tenant,
        "labels": dict(ex.identity.labels) or None,  # the client's own (keys file, config or token claims)
        "client_api": ex.endpoint.format if ex.endpoint else None,
        "route": ex.route or None,
        "path": ex.path.partition("?")[0],
        "model": ex.model or None,
        "provider": ex.provider_name or None,
        "stream": ex.stream,
        "status": ex.status if ex.answered else CLIENT_CLOSED,
        "duration_ms": _ms(ended - ex.started),
        "ttft_ms": _ms(ex.first_output - ex.started) if ex.first_output else None,
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "cached_tokens": usage.cached_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "cost_usd": round(cost_usd, 10),
        "cost_saved_usd": round(ex.saved_usd, 10) if ex.cache_status == "HIT" else None,
        "cache": ex.cache_status or None,
        "retries": ex.attempts - 1,
        "dropped": ex.dropped or None,
    }
    if ex.bodies is not None:
        line.update(ex.bodies.fields())
    return line


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
