"""Stage: the request in the provider's format, and the headers Envoy routes on.

Same API on both sides: the client's own bytes go on, every field kept (only
the model renamed for a route alias), and an unchanged body is not sent back
through gRPC. Otherwise the canonical request is fitted to what the provider
can do and rendered in its format. For one provider the provider's path and
host are set here too, so no upstream pass runs; a pool's request goes on as
the client sent it, for the upstream pass to render per attempt.
"""

from __future__ import annotations

from extproc.contract import CLIENT_PATH_KEY, POOL_KEY, ROUTE_HEADER, STREAM_KEY
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.formats.base import RenderOptions
from extproc.formats.canonical import ChatRequest
from extproc.formats.shared_wire import CONTENT_TYPE_JSON
from extproc.observe.metrics import FEATURES_DROPPED
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.providers import kind_of, provider_format, upstream_path
from extproc.providers.capabilities import fit_to_provider


class TranslateStage(Stage):
    name = "translate"

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        endpoint, target, request = ex.endpoint, ex.target, ex.request
        assert endpoint is not None and target is not None and request is not None
        if target.pooled:
            _to_pool(ex, reply)
            return None
        provider = target.provider
        upstream_format = provider_format(provider)
        upstream = FORMATS[upstream_format]
        ex.passthrough = upstream_format == endpoint.format
        fitted = False
        stream = ex.stream
        options = RenderOptions(target.upstream_model, provider.unsupported, provider.default_max_tokens)  # type: ignore[arg-type]
        if isinstance(request, ChatRequest):
            fitting = fit_to_provider(request, provider)
            ex.dropped, fitted = fitting.dropped, fitting.changed
            if stream and not provider.capabilities.streaming:
                ex.stream_from_whole = True  # ask for the whole answer, stream it to the client
                request.stream = stream = False
            if ex.passthrough and not fitted and not ex.stream_from_whole:
                out = (
                    body if request.model == target.upstream_model else upstream.with_model(body, target.upstream_model)
                )
            else:
                rendered = upstream.render_request(request, options)
                ex.dropped += rendered.dropped
                out = rendered.body
        else:
            if not provider.capabilities.embeddings:
                raise GatewayError("invalid_request", f"provider {provider.name} has no embeddings API", param="model")
            rendered = upstream.render_embedding_request(request, options)
            ex.dropped += rendered.dropped
            out = rendered.body
        for feature in ex.dropped:
            FEATURES_DROPPED.labels(provider.name, feature).inc()
        # One provider: the request leaves as it is set here (no upstream pass), its key added by Envoy.
        path = upstream_path(provider, endpoint.operation, target.upstream_model, stream)
        reply.set_headers += [(ROUTE_HEADER, target.cluster), (":path", path), (":authority", provider.authority)]
        kind = kind_of(provider)
        same_api = kind.format == endpoint.format
        reply.set_headers += [(k, v) for k, v in kind.fixed_headers if not (same_api and k in ex.headers)]
        if out is not body:  # an unchanged body is not sent back: a 10 MB image stays where it is
            reply.body = out
            reply.set_headers += [("content-length", str(len(out))), ("content-type", CONTENT_TYPE_JSON)]
        reply.clear_route_cache = True
        return None


def _to_pool(ex: Exchange, reply: PhaseReply) -> None:
    """A pooled route: the client's body goes on as it is, and the upstream pass renders it for
    whichever provider Envoy picks, attempt by attempt (a failover may cross formats)."""
    endpoint, target = ex.endpoint, ex.target
    assert endpoint is not None and target is not None
    reply.set_headers.append((ROUTE_HEADER, target.cluster))
    reply.request_metadata = {POOL_KEY: target.route, CLIENT_PATH_KEY: ex.path, STREAM_KEY: ex.stream}
    reply.clear_route_cache = True
