"""One attempt of a pooled route, in the upstream pass: the request made for the provider Envoy
picked. The client's body arrives as the client sent it; it is parsed and made for this provider
(`providers.rendering`, as for a single provider), so a failover may cross formats."""

from __future__ import annotations

from dataclasses import dataclass

from extproc.config.model import GatewayConfig, Provider
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.formats.endpoint import Endpoint
from extproc.provider_kinds import PROTOCOL_HEADERS
from extproc.providers import kind_of, serves, upstream_path, wire_format, with_client_query
from extproc.providers.rendering import chat_for, client_betas, embeddings_for


@dataclass(frozen=True, slots=True)
class RenderedAttempt:
    path: str
    body: bytes | None  # None: the client's body goes on unchanged


@dataclass(frozen=True, slots=True)
class PoolAttempt:
    provider: Provider
    endpoint: Endpoint  # the client's API
    model: str | None  # the model this provider is asked for; None: the client's own
    client_stream: bool
    client_path: str = ""  # the client's path (its query goes on to a provider of its API that reads one)
    betas: tuple[
        str, ...
    ] = ()  # an Anthropic client's anthropic-beta values (Claude on Bedrock takes them in the body)

    @classmethod
    def of(
        cls,
        config: GatewayConfig,
        provider: Provider,
        route_name: str,
        endpoint: Endpoint | None,
        stream: bool,
        client_path: str = "",
        headers: dict[str, str] | None = None,
    ) -> PoolAttempt:
        route = config.route(route_name)
        if endpoint is None or route is None or not route.pool:
            raise GatewayError("internal", f"no pooled route {route_name!r} for this attempt")
        if not any(member.provider == provider.name for member in route.pool):
            raise GatewayError("internal", f"provider {provider.name!r} is not in route {route_name!r}")
        betas = client_betas(endpoint.format, headers or {})
        return cls(provider, endpoint, route.upstream_model_for(provider.name), stream, client_path, betas)

    def headers_to_remove(self, present: dict[str, str]) -> list[str]:
        own = kind_of(self.provider)
        model = self.model or ""  # the client's own is not read yet: the headers go as the kind's first family's
        keep = (
            own.for_model(model).passthrough_headers
            if serves(self.provider, self.endpoint.format, model)
            else frozenset()
        )
        return [name for name in present if name in PROTOCOL_HEADERS and name not in keep]

    def render(self, body: bytes) -> RenderedAttempt:
        client = FORMATS[self.endpoint.format]
        operation = self.endpoint.operation
        if operation == "embeddings":
            embedding = client.parse_embedding_request(body, self.endpoint)
            model = self.model or embedding.model
            made = embeddings_for(embedding, self.provider, model)
        else:
            request = client.parse_request(body, self.endpoint)
            request.stream = self.client_stream  # a Gemini client asks by its path, not its body
            model = self.model or request.model
            made = chat_for(request, body, self.endpoint.format, self.provider, model, self.betas)
        api = wire_format(self.provider, self.endpoint.format, model)
        path = upstream_path(self.provider, api, operation, model, made.stream, self.endpoint.sse)
        return RenderedAttempt(
            with_client_query(path, self.provider, self.endpoint.format, self.client_path, model), made.body
        )
