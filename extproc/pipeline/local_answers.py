"""Stage: what the gateway answers itself: the model list, the built-in mock provider, and an
input token count where the route's provider cannot count (see `rendering.counts_tokens`): an
estimate, marked as one."""

from __future__ import annotations

import asyncio

from extproc.contract import TOKEN_COUNT_HEADER
from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest, EmbeddingRequest, read_conversation
from extproc.formats.endpoint import Format
from extproc.formats.replay import response_events
from extproc.formats.shared_wire import CONTENT_TYPE_JSON
from extproc.formats.token_count import render_count
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.spend import cost_header, request_cost
from extproc.pipeline.stage import Stage
from extproc.provider_kinds import KINDS
from extproc.providers import mock
from extproc.providers.rendering import counts_tokens
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
        if endpoint is not None and endpoint.operation == "count_tokens":
            return _estimated_count(ex, endpoint.format, body)
        if provider is None or not KINDS[provider.kind].answers_locally:
            return None
        request = ex.request
        assert endpoint is not None and request is not None
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
            response = mock.respond(provider, read_conversation(request))
            if ex.stream:
                encoder = client.stream_encoder(request, endpoint)
                out = encoder.encode(response_events(response)) + encoder.close()
                content_type = client.stream_content_type(endpoint)
            else:
                out = client.render_response(response, request)
            ex.usage = response.usage
        headers = [("content-type", content_type)]
        if not ex.stream:
            headers.append(cost_header(request_cost(ex)))
        return LocalAnswer(200, out, headers)


def _estimated_count(ex: Exchange, client: Format, body: bytes) -> LocalAnswer | None:
    """None: one provider that counts gets the request. A pool's attempts may cross formats, so a
    pooled route is estimated too."""
    target = ex.target
    if target is not None and not target.pooled and counts_tokens(target.provider, client, target.upstream_model):
        return None
    answer = render_count(client, estimate.input_tokens(body))
    return LocalAnswer(200, answer, [("content-type", CONTENT_TYPE_JSON), (TOKEN_COUNT_HEADER, "estimate")])
