"""The router pass: the listener's ext_proc filter, one gRPC stream per request.

Request headers: classify the client API, drop internal and credential
headers. Request body: parse, pick the provider, answer locally (mock,
errors) or rewrite the body into the provider's format and set the header
Envoy routes on. Response: map errors and answers back into the client's
format, chunk by chunk for streams. Per-request state lives in `Exchange`,
local to this stream: nothing is shared with the upstream pass but headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyResponse,
    HeadersResponse,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.config.model import Provider
from extproc.contract import (
    API_HEADER,
    BODY_FORMAT_HEADER,
    DROPPED_HEADER,
    INTERNAL_PREFIX,
    MODEL_HEADER,
    ROUTE_HEADER,
    STREAM_HEADER,
)
from extproc.errors import GatewayError, client_status, kind_for_status
from extproc.formats import FORMATS, make_encoder, stream_content_type
from extproc.formats.base import RenderOptions
from extproc.formats.canonical import EmbeddingRequest, EmbeddingResponse, StreamFailure
from extproc.observe.logs import log_access, monotonic
from extproc.observe.metrics import FEATURES_DROPPED, LATENCY, REQUESTS
from extproc.providers import mock, provider_format
from extproc.providers.capabilities import fit_to_provider, response_events
from extproc.server import messages as m
from extproc.server.endpoints import Endpoint, classify, guess_format
from extproc.state import GatewayState, Snapshot

log = logging.getLogger(__name__)

# Headers a client must never forward: its credentials, and accept-encoding (the gateway
# reads every answer it translates or maps, so providers must answer uncompressed).
CLIENT_ONLY_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "accept-encoding"})
# A client must not steer Envoy either (x-envoy-upstream-rq-timeout-ms, x-envoy-max-retries, ...).
CLIENT_FORBIDDEN_PREFIXES = (INTERNAL_PREFIX, "x-envoy-")


@dataclass(slots=True)
class Exchange:
    """One request as the router pass sees it, from headers to the last body chunk."""

    snapshot: Snapshot
    started: float = field(default_factory=monotonic)
    request_id: str = ""
    path: str = ""
    endpoint: Endpoint | None = None
    error_format: str = "openai"
    model: str = ""
    provider: Provider | None = None
    provider_name: str = "-"
    passthrough: bool = False
    stream: bool = False
    request: Any = None  # canonical request, kept when the answer needs translating
    dropped: list[str] = field(default_factory=list)
    status: int = 0
    response_status: int = 0
    decoder: Any = None
    encoder: Any = None
    error_body: bool = False
    stream_from_whole: bool = False  # the client streams, the provider cannot
    stream_ended: bool = False  # an in-band error closed the client's stream early

    @property
    def route(self) -> str:
        return self.endpoint.name if self.endpoint else "unknown"


def error_response(ex: Exchange, error: GatewayError) -> ProcessingResponse:
    """An immediate answer in the client's own error format."""
    status = client_status(error)
    ex.status = status
    body = FORMATS[ex.error_format].render_error(error, ex.request_id)
    headers = [("content-type", "application/json"), ("x-request-id", ex.request_id)]
    return m.immediate(status, body, headers, details=f"gateway_{error.kind}")


class RouterPass:
    def __init__(self, state: GatewayState) -> None:
        self._state = state

    async def process(self, requests: AsyncIterator[ProcessingRequest]) -> AsyncIterator[ProcessingResponse]:
        ex = Exchange(self._state.snapshot)
        try:
            async for message in requests:
                kind = message.WhichOneof("request")
                try:
                    if kind == "request_headers":
                        yield self.on_request_headers(ex, message)
                    elif kind == "request_body":
                        yield await self.on_request_body(ex, message)
                    elif kind == "response_headers":
                        yield self.on_response_headers(ex, message)
                    elif kind == "response_body":
                        yield self.on_response_body(ex, message)
                    else:
                        yield _continue(kind)
                except GatewayError as error:
                    yield self._late_error(ex, kind, error)
                except Exception:
                    log.exception("router pass failed", extra={"request_id": ex.request_id})
                    yield self._late_error(ex, kind, GatewayError("internal", "the gateway failed on this request"))
        finally:
            self._finish(ex)

    # ---- request

    def on_request_headers(self, ex: Exchange, message: ProcessingRequest) -> ProcessingResponse:
        headers = m.headers_of(message.request_headers)
        ex.request_id = headers.get("x-request-id", "")
        ex.path = headers.get(":path", "")
        endpoint = classify(headers.get(":method", ""), ex.path, headers)
        ex.endpoint = endpoint
        ex.error_format = endpoint.format if endpoint else guess_format(ex.path, headers)
        if endpoint is None:
            return error_response(ex, GatewayError("not_found", f"unknown path {ex.path.partition('?')[0]}"))
        if endpoint.operation == "models":
            ex.status = 200
            body = FORMATS[endpoint.format].render_models(ex.snapshot.router.models())
            return m.immediate(200, body, [("content-type", "application/json"), ("x-request-id", ex.request_id)])
        if message.request_headers.end_of_stream:
            return error_response(ex, GatewayError("invalid_request", "a JSON request body is required"))
        remove = [k for k in headers if k.startswith(CLIENT_FORBIDDEN_PREFIXES) or k in CLIENT_ONLY_HEADERS]
        if not remove:
            return m.CONTINUE_REQUEST_HEADERS
        return ProcessingResponse(request_headers=HeadersResponse(response=m.common(remove=remove)))

    async def on_request_body(self, ex: Exchange, message: ProcessingRequest) -> ProcessingResponse:
        endpoint = ex.endpoint
        assert endpoint is not None
        body = message.request_body.body
        client = FORMATS[endpoint.format]
        if endpoint.operation == "embeddings":
            if endpoint.format == "gemini":
                request = client.parse_embedding_request(body, endpoint.path_model, batch=endpoint.batch)
            else:
                request = client.parse_embedding_request(body, endpoint.path_model)
            stream = False
        else:
            request = client.parse_request(body, endpoint.path_model)
            if endpoint.stream:
                request.stream = True
            stream = request.stream
        ex.model, ex.stream = request.model, stream
        target = ex.snapshot.router.resolve(request.model)
        if target is None:
            raise GatewayError("not_found", f"The model `{request.model}` does not exist", code="model_not_found")
        provider = target.provider
        ex.provider, ex.provider_name = provider, provider.name
        if provider.kind == "mock":
            return await self._mock(ex, provider, request)
        ex.request = request
        upstream = FORMATS[provider_format(provider)]
        ex.passthrough = provider_format(provider) == endpoint.format
        fitted = False
        if endpoint.operation == "embeddings":
            if not provider.capabilities.embeddings or not hasattr(upstream, "render_embedding_request"):
                raise GatewayError("invalid_request", f"provider {provider.name} has no embeddings API", param="model")
        else:
            fitting = fit_to_provider(request, provider)
            ex.dropped, fitted = fitting.dropped, fitting.changed
            if stream and not provider.capabilities.streaming:
                ex.stream_from_whole = True  # ask for the whole answer, stream it to the client
                request.stream = stream = False
        if ex.passthrough and not fitted and not ex.stream_from_whole:
            # Same API on both sides: the client's own bytes, every field kept (only the model renamed).
            out = with_model(body, endpoint.format, request.model, target.upstream_model)
        else:
            options = RenderOptions(target.upstream_model, provider.unsupported, provider.default_max_tokens)
            render = (
                upstream.render_embedding_request if endpoint.operation == "embeddings" else upstream.render_request
            )
            rendered = render(request, options)
            ex.dropped += rendered.dropped
            out = rendered.body
        for feature in ex.dropped:
            FEATURES_DROPPED.labels(provider.name, feature).inc()
        headers = [
            (ROUTE_HEADER, provider.cluster),
            (API_HEADER, endpoint.name),
            (MODEL_HEADER, target.upstream_model),
            (STREAM_HEADER, "1" if stream else "0"),
            (BODY_FORMAT_HEADER, provider_format(provider)),
        ]
        if out is not body:  # an unchanged body is not sent back: a 10 MB image stays where it is
            headers += [("content-length", str(len(out))), ("content-type", "application/json")]
        common = m.common(set_headers=headers, body=None if out is body else out, clear_route_cache=True)
        return ProcessingResponse(request_body=BodyResponse(response=common))

    async def _mock(self, ex: Exchange, provider: Provider, request: Any) -> ProcessingResponse:
        endpoint = ex.endpoint
        assert endpoint is not None
        if provider.mock_latency_ms:
            await asyncio.sleep(provider.mock_latency_ms / 1000)
        client = FORMATS[endpoint.format]
        headers = [("x-request-id", ex.request_id)]
        if endpoint.operation == "embeddings":
            body = render_embeddings(endpoint, request, mock.embed(request))
            headers.append(("content-type", "application/json"))
        elif ex.stream:
            encoder: Any = make_encoder(endpoint.format, request, endpoint.sse)
            body = encoder.encode(mock.stream(provider, request)) + encoder.close()
            headers.append(("content-type", stream_content_type(endpoint.format, endpoint.sse)))
        else:
            body = client.render_response(mock.respond(provider, request))
            headers.append(("content-type", "application/json"))
        ex.status = 200
        return m.immediate(200, body, headers)

    # ---- response

    def on_response_headers(self, ex: Exchange, message: ProcessingRequest) -> ProcessingResponse:
        headers = m.headers_of(message.response_headers)
        status = int(headers.get(":status", "0") or 0)
        ex.status = ex.response_status = status
        remove = [k for k in headers if k.startswith(INTERNAL_PREFIX)]
        set_headers = [(DROPPED_HEADER, ",".join(ex.dropped))] if ex.dropped else []
        if status >= 400:
            # Errors are small and rare: always read them, to map them (or our refused key) for the client.
            ex.error_body = True
            return _headers_response(set_headers, remove, response_body=m.BUFFERED)
        if ex.stream_from_whole:
            set_headers.append(("content-type", stream_content_type(ex.endpoint.format, ex.endpoint.sse)))
            return _headers_response(set_headers, remove, response_body=m.BUFFERED)
        if ex.passthrough or ex.endpoint is None:
            return _headers_response(set_headers, remove)
        assert ex.provider is not None
        if ex.stream:
            ex.decoder = FORMATS[provider_format(ex.provider)].StreamDecoder()
            ex.encoder = make_encoder(ex.endpoint.format, ex.request, ex.endpoint.sse)
            set_headers.append(("content-type", stream_content_type(ex.endpoint.format, ex.endpoint.sse)))
            remove.append("content-length")
            return _headers_response(set_headers, remove, response_body=m.STREAMED)
        return _headers_response(set_headers, remove, response_body=m.BUFFERED)

    def on_response_body(self, ex: Exchange, message: ProcessingRequest) -> ProcessingResponse:
        chunk = message.response_body.body
        end = message.response_body.end_of_stream
        if ex.error_body:
            return self._translate_error(ex, chunk)
        if ex.stream_ended:
            return _body_response(b"")  # the client already got its in-band error and the end
        if ex.decoder is not None:
            out = ex.encoder.encode(ex.decoder.feed(chunk)) if chunk else b""
            if end:
                out += ex.encoder.encode(ex.decoder.close()) + ex.encoder.close()
            return _body_response(out)
        return self._translate_answer(ex, chunk)

    def _translate_answer(self, ex: Exchange, body: bytes) -> ProcessingResponse:
        assert ex.provider is not None and ex.endpoint is not None
        upstream = FORMATS[provider_format(ex.provider)]
        client = FORMATS[ex.endpoint.format]
        if ex.endpoint.operation == "embeddings":
            answer = upstream.parse_embedding_response(body, ex.model)
            out = render_embeddings(ex.endpoint, ex.request, answer)
        elif ex.stream_from_whole:
            encoder: Any = make_encoder(ex.endpoint.format, ex.request, ex.endpoint.sse)
            out = encoder.encode(response_events(upstream.parse_response(body))) + encoder.close()
        else:
            out = client.render_response(upstream.parse_response(body))
        content_type = "application/json"
        if ex.stream_from_whole:
            content_type = stream_content_type(ex.endpoint.format, ex.endpoint.sse)
        return _body_response(out, [("content-length", str(len(out))), ("content-type", content_type)])

    def _translate_error(self, ex: Exchange, body: bytes) -> ProcessingResponse:
        status = ex.response_status
        if ex.provider is not None and _looks_like_json(body):
            error = FORMATS[provider_format(ex.provider)].parse_error(status, body)
            if ex.passthrough and error.kind != "provider_auth":
                return m.CONTINUE_RESPONSE_BODY  # already in the client's own format
        else:
            error = _envoy_error(status, body)
        ex.status = client_status(error)
        out = FORMATS[ex.error_format].render_error(error, ex.request_id)
        headers = [
            (":status", str(ex.status)),
            ("content-type", "application/json"),
            ("content-length", str(len(out))),
        ]
        return _body_response(out, headers)

    def _late_error(self, ex: Exchange, kind: str | None, error: GatewayError) -> ProcessingResponse:
        """An error while handling one phase: inside a stream that already started, an in-band
        error event and a clean end; before that, a whole error response in the client's format."""
        if kind == "response_body" and ex.encoder is not None:
            out = ex.encoder.encode([StreamFailure(error)]) + ex.encoder.close()
            ex.stream_ended = True
            return _body_response(out)
        return error_response(ex, error)

    def _finish(self, ex: Exchange) -> None:
        elapsed = monotonic() - ex.started
        status = str(ex.status or 0)
        REQUESTS.labels(ex.route, ex.provider_name, status).inc()
        LATENCY.labels(ex.route, ex.provider_name, status).observe(elapsed)
        log_access(
            request_id=ex.request_id,
            route=ex.route,
            path=ex.path.partition("?")[0],
            model=ex.model,
            provider=ex.provider_name,
            stream=ex.stream,
            status=ex.status,
            duration_ms=round(elapsed * 1000, 2),
            dropped=ex.dropped or None,
        )


def with_model(body: bytes, fmt: str, model: str, upstream_model: str) -> bytes:
    """The client's body for a provider of the same API, naming the provider's model.
    Gemini names the model in the path, so its body never changes."""
    if model == upstream_model or fmt == "gemini":
        return body
    data = orjson.loads(body)
    data["model"] = upstream_model
    return orjson.dumps(data)


def render_embeddings(endpoint: Endpoint, request: EmbeddingRequest, answer: EmbeddingResponse) -> bytes:
    """Embeddings in the client's shape: Gemini's single or batch form, OpenAI's float or base64."""
    if endpoint.format == "gemini":
        return FORMATS["gemini"].render_embedding_response(answer, batch=endpoint.batch)
    return FORMATS[endpoint.format].render_embedding_response(answer, encoding_format=request.encoding_format)


def _continue(kind: str | None) -> ProcessingResponse:
    return {
        "request_headers": m.CONTINUE_REQUEST_HEADERS,
        "request_body": m.CONTINUE_REQUEST_BODY,
        "response_headers": m.CONTINUE_RESPONSE_HEADERS,
        "response_body": m.CONTINUE_RESPONSE_BODY,
    }.get(kind or "", ProcessingResponse())


def _headers_response(
    set_headers: list[tuple[str, str]], remove: list[str], response_body: int | None = None
) -> ProcessingResponse:
    if not set_headers and not remove and response_body is None:
        return m.CONTINUE_RESPONSE_HEADERS
    response = ProcessingResponse(response_headers=HeadersResponse(response=m.common(set_headers, remove)))
    if response_body is not None:
        response.mode_override.CopyFrom(m.response_body_mode(response_body))
    return response


def _body_response(body: bytes, headers: list[tuple[str, str]] = ()) -> ProcessingResponse:  # type: ignore[assignment]
    return ProcessingResponse(response_body=BodyResponse(response=m.common(set_headers=headers, body=body)))


def _looks_like_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


def _envoy_error(status: int, body: bytes) -> GatewayError:
    """Envoy's own local replies (provider unreachable, timeout) as gateway errors."""
    text = body.decode("utf-8", "replace").strip()[:300]
    if status == 503:
        return GatewayError("unavailable", f"the provider is unreachable: {text}", code="provider_unavailable")
    if status == 504:
        return GatewayError("timeout", "the provider did not answer in time", code="provider_timeout")
    kind = kind_for_status(status)
    return GatewayError(kind, text or f"upstream error {status}", status=status if kind != "provider_auth" else 0)
