"""A configured provider's kind record (extproc.provider_kinds), and what follows from it for a
request: the API the provider is spoken to in, whether a client's request passes through, and the
provider's path for one operation."""

from __future__ import annotations

from extproc.config.model import Provider
from extproc.formats.endpoint import Format, Operation
from extproc.provider_kinds import KINDS, Credential, ProviderKind, kind_for

__all__ = [
    "KINDS",
    "Credential",
    "ProviderKind",
    "kind_of",
    "model_kind",
    "provider_format",
    "serves",
    "upstream_path",
    "wire_format",
    "with_client_query",
]


def kind_of(provider: Provider) -> ProviderKind:
    """The provider's record (an Azure one for a provider with `azure:`), for what holds for every
    model of it (its credential, its name); a request's questions go to `model_kind`."""
    return kind_for(provider.kind, provider.azure_api_version)


def model_kind(provider: Provider, model: str) -> ProviderKind:
    """The provider's record for one model: a Vertex AI provider speaks Anthropic's API to Claude models."""
    return kind_for(provider.kind, provider.azure_api_version).for_model(model)


def provider_format(provider: Provider, model: str) -> Format:
    """The API a canonical request is rendered in for this provider and model."""
    return KINDS[provider.kind].for_model(model).format  # type: ignore[return-value]  # a Format, as plain data


def serves(provider: Provider, api: Format, model: str) -> bool:
    """Whether the provider speaks the client's API itself for `model` (the request passes through)."""
    kind = model_kind(provider, model)
    return api == kind.format or api in kind.also_serves


def wire_format(provider: Provider, api: Format, model: str) -> Format:
    """The API the provider is spoken to for a client of `api`: the client's own when the provider
    serves it, else the kind's format for the model."""
    kind = model_kind(provider, model)
    return api if api == kind.format or api in kind.also_serves else kind.format  # type: ignore[return-value]


def upstream_path(
    provider: Provider, api: Format, operation: Operation, model: str, stream: bool, sse: bool = True
) -> str:
    """The provider's path for one operation in wire format `api` (query string included). A Gemini
    provider streams as the client asked (`sse`: a Gemini client without alt=sse gets a JSON array,
    passed through as is); its decoder reads either."""
    kind = model_kind(provider, model)
    return kind.path(provider.base_path, provider.azure_api_version, api, operation, model, stream, sse)


def with_client_query(path: str, provider: Provider, client: Format, client_path: str, model: str) -> str:
    """`path` with the query string of the client's own path, where the provider speaks the client's
    API and reads one (Anthropic's TypeScript SDK, Claude Code's, marks beta calls `?beta=true`).
    `client_path` is the path after the auth stage took any `key` parameter out: a gateway key
    never reaches a provider."""
    kind = model_kind(provider, model)
    _, sep, query = client_path.partition("?")
    if not sep or not query or not kind.passthrough_query or not serves(provider, client, model):
        return path
    return f"{path}{'&' if '?' in path else '?'}{query}"
