"""Stage: the request in the provider's format, and the headers Envoy routes on.

Same API on both sides: the client's own bytes go on, every field kept (only
the model renamed for a route alias, written from the body as the parse stage
read it), and an unchanged body is not sent back through gRPC. Otherwise the canonical request is fitted to what the provider
can do and rendered in its format. For one provider the provider's path and
host are set here too, so no upstream pass runs; a pool's request goes on as
the client sent it, for the upstream pass to render per attempt.
"""

from __future__ import annotations

import time

from extproc.contract import CLIENT_PATH_KEY, POOL_KEY, READ_AT_KEY, ROUTE_HEADER, STREAM_KEY
from extproc.formats.canonical import ChatRequest, release_body
from extproc.formats.shared_wire import CONTENT_TYPE_JSON
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.providers import serves, upstream_path, wire_format, with_client_query
from extproc.providers.rendering import chat_for, client_betas, count_for, embeddings_for, fixed_headers


class TranslateStage(Stage):
    name = "translate"

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        endpoint, target, request = ex.endpoint, ex.target, ex.request
        assert endpoint is not None and target is not None and request is not None
        if target.pooled:
            _to_pool(ex, reply)
            return None
        provider, model = target.provider, target.upstream_model
        ex.provider_model = model
        api = wire_format(provider, endpoint.format, model)
        ex.passthrough = serves(provider, endpoint.format, model)
        if isinstance(request, ChatRequest) and endpoint.operation == "count_tokens":
            made = count_for(request, body, endpoint.format, provider, model, client_betas(endpoint.format, ex.headers))
            ex.passthrough = api == endpoint.format  # else the provider's count comes back in its own format
        elif isinstance(request, ChatRequest):
            betas = client_betas(endpoint.format, ex.headers)
            made = chat_for(request, body, endpoint.format, provider, target.upstream_model, betas)
            ex.stream_from_whole = ex.stream and not made.stream  # ask for the whole answer, stream it to the client
        else:
            made = embeddings_for(request, provider, target.upstream_model)
        if isinstance(request, ChatRequest):
            release_body(request)
        ex.dropped = made.dropped
        # One provider: the request leaves as it is set here (no upstream pass), its key added by Envoy.
        path = upstream_path(provider, api, endpoint.operation, model, made.stream, endpoint.sse)
        path = with_client_query(path, provider, endpoint.format, ex.path, model)
        reply.set_headers += [(ROUTE_HEADER, target.cluster), (":path", path), (":authority", provider.authority)]
        reply.set_headers += fixed_headers(provider, endpoint.format, ex.headers, model)
        if made.body is not None:  # an unchanged body is not sent back: a 10 MB image stays where it is
            reply.body = made.body
            reply.set_headers += [("content-length", str(len(made.body))), ("content-type", CONTENT_TYPE_JSON)]
        reply.clear_route_cache = True
        return None


def _to_pool(ex: Exchange, reply: PhaseReply) -> None:
    """A pooled route: the client's body goes on as it is, and the upstream pass renders it for
    whichever provider Envoy picks, attempt by attempt (a failover may cross formats)."""
    endpoint, target = ex.endpoint, ex.target
    assert endpoint is not None and target is not None
    if isinstance(ex.request, ChatRequest):  # its conversation stays: the answer names what its provider dropped
        ex.request.source = None
    reply.set_headers.append((ROUTE_HEADER, target.cluster))
    ex.provider_model = target.upstream_model
    facts: dict[str, str | bool | float] = {
        POOL_KEY: target.route,
        CLIENT_PATH_KEY: ex.path,
        STREAM_KEY: ex.stream,
        READ_AT_KEY: time.monotonic(),
    }
    reply.request_metadata = facts
    reply.clear_route_cache = True
