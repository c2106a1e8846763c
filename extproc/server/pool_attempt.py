"""One attempt of a pooled route, in the upstream pass: the request made for the provider Envoy
picked. The client's body arrives as the client sent it; it is parsed and rendered for this
provider (fitted to what it can do, with its model name), so a failover may cross formats."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.config.model import GatewayConfig, Provider
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.formats.base import RenderOptions
from extproc.formats.endpoint import Endpoint
from extproc.pipeline.endpoint import classify
from extproc.providers import KINDS, kind_of, provider_format, upstream_path
from extproc.providers.capabilities import fit_to_provider

# Every kind's same-API protocol headers: an attempt keeps only its own kind's, from a client of its API.
_PROTOCOL_HEADERS = frozenset().union(*(kind.passthrough_headers for kind in KINDS.values()))


@dataclass(frozen=True, slots=True)
class RenderedAttempt:
    path: str
    body: bytes | None  # None: the client's body goes on unchanged


@dataclass(frozen=True, slots=True)
class PoolAttempt:
    provider: Provider
    endpoint: Endpoint  # the client's API
    model: str | None  # the member's own model name; None: the route's, else the client's
    client_stream: bool

    @classmethod
    def of(
        cls, config: GatewayConfig, provider: Provider, route_name: str, client_path: str, stream: bool
    ) -> PoolAttempt:
        endpoint = classify("POST", client_path, {})
        route = next((r for r in config.routes if r.name == route_name and r.pool), None)
        if endpoint is None or route is None:
            raise GatewayError("internal", f"no pooled route {route_name!r} for this attempt")
        member = next((m for m in route.pool if m.provider == provider.name), None)
        if member is None:
            raise GatewayError("internal", f"provider {provider.name!r} is not in route {route_name!r}")
        return cls(provider, endpoint, member.model or route.upstream_model, stream)

    def headers_to_remove(self, present: dict[str, str]) -> list[str]:
        own = kind_of(self.provider)
        keep = own.passthrough_headers if own.format == self.endpoint.format else frozenset()
        return [name for name in present if name in _PROTOCOL_HEADERS and name not in keep]

    def render(self, body: bytes) -> RenderedAttempt:
        client = FORMATS[self.endpoint.format]
        upstream = FORMATS[provider_format(self.provider)]
        operation = self.endpoint.operation
        if operation == "embeddings":
            embedding = client.parse_embedding_request(body, self.endpoint)
            model = self.model or embedding.model
            options = RenderOptions(model, self.provider.unsupported, self.provider.default_max_tokens)  # type: ignore[arg-type]
            rendered = upstream.render_embedding_request(embedding, options).body
            return RenderedAttempt(upstream_path(self.provider, operation, model, False), rendered)
        request = client.parse_request(body, self.endpoint)
        model = self.model or request.model
        stream = self.client_stream and self.provider.capabilities.streaming
        path = upstream_path(self.provider, operation, model, stream)
        fitted = fit_to_provider(request, self.provider).changed
        if provider_format(self.provider) == self.endpoint.format and not fitted and stream == self.client_stream:
            return RenderedAttempt(path, None if request.model == model else upstream.with_model(body, model))
        request.stream = stream
        options = RenderOptions(model, self.provider.unsupported, self.provider.default_max_tokens)  # type: ignore[arg-type]
        return RenderedAttempt(path, upstream.render_request(request, options).body)
