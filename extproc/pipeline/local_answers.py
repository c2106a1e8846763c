"""Stage: what the gateway answers itself: the model list, the built-in mock provider, and an
estimated input token count where the provider cannot count (`POST /v1/responses/input_tokens`
for a route that does not go to one OpenAI-kind provider), marked as an estimate."""

from __future__ import annotations

import asyncio

import orjson

from extproc.config.model import Provider
from extproc.contract import TOKEN_COUNT_HEADER
from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest, EmbeddingRequest
from extproc.formats.shared_wire import CONTENT_TYPE_JSON
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.providers import mock, serves
from extproc.providers.capabilities import response_events
from extproc.ratelimit import estimate


class LocalAnswersStage(Stage):
    name = "local_answers"

    async def request_headers(self, ex: Exchange, reply: PhaseReply, end_of_stream: bool) -> LocalAnswer | None:
        endpoint = ex.endpoint
        if endpoint is None or endpoint.operation != "models":
            return None
        allowed = [model for model in ex.snapshot.router.models() if ex.identity.allows(model)]
        body = FORMATS[endpoint.format].render_models(allowed)
        return LocalAnswer(200, body, [("content-type", CONTENT_TYPE_JSON)])

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        provider, endpoint = ex.provider, ex.endpoint
        if provider is None or endpoint is None:
            return None
        if endpoint.operation == "count_tokens":
            return _count_tokens(ex, provider, body)
        if provider.kind != "mock":
            return None
        request = ex.request
        assert request is not None
        if provider.mock_latency_ms:
            await asyncio.sleep(provider.mock_latency_ms / 1000)
        client = FORMATS[endpoint.format]
        content_type = CONTENT_TYPE_JSON
        if isinstance(request, EmbeddingRequest):
            embedding = mock.embed(request)
            out = client.render_embedding_response(embedding, request, endpoint)
            ex.usage = embedding.usage
        else:
            assert isinstance(request, ChatRequest)
            response = mock.respond(provider, request)
            if ex.stream:
                encoder = client.stream_encoder(request, endpoint)
                out = encoder.encode(response_events(response)) + encoder.close()
                content_type = client.stream_content_type(endpoint)
            else:
                out = client.render_response(response, request)
            ex.usage = response.usage
        return LocalAnswer(200, out, [("content-type", content_type)])


def _count_tokens(ex: Exchange, provider: Provider, body: bytes) -> LocalAnswer | None:
    """None: the route's one provider speaks the Responses API and counts itself."""
    target = ex.target
    if target is not None and not target.pooled and provider.kind != "mock" and serves(provider, "responses"):
        return None
    answer = orjson.dumps({"object": "response.input_tokens", "input_tokens": estimate.input_tokens(body)})
    return LocalAnswer(200, answer, [("content-type", CONTENT_TYPE_JSON), (TOKEN_COUNT_HEADER, "estimate")])
