"""A configured provider's kind record (extproc.provider_kinds), and what follows from it for a
request: the API the provider is spoken to in, whether a client's request passes through, and the
provider's path for one operation."""

from __future__ import annotations

from extproc.config.model import Provider
from extproc.formats import PROVIDER_APIS
from extproc.formats.bedrock.invoke import InvokeStreamToSSE
from extproc.formats.endpoint import Format, Operation, ProviderApi
from extproc.formats.protocols import ProviderFormat
from extproc.provider_kinds import KINDS, PASSED_THROUGH, Credential, ProviderKind, kind_for

__all__ = [
    "KINDS",
    "Credential",
    "ProviderKind",
    "kind_of",
    "model_kind",
    "provider_format",
    "provider_side",
    "reframer",
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
    return kind_of(provider).for_model(model)


def _model_api(provider: Provider, kind: ProviderKind, model: str) -> ProviderApi:
    """The provider API a canonical request for `model` is rendered in: the record's format, or the
    one the provider's own choice picks for the model (Bedrock's `bedrock.api`)."""
    if kind.api_for_model is None:
        return kind.format  # type: ignore[return-value]  # a ProviderApi, as plain data
    return kind.api_for_model(provider.bedrock_api, model)  # type: ignore[return-value]


def provider_format(provider: Provider, model: str) -> ProviderApi:
    """The API a canonical request is rendered in for this provider and model."""
    return _model_api(provider, model_kind(provider, model), model)


def serves(provider: Provider, api: Format, model: str) -> bool:
    """Whether the provider speaks the client's API itself for `model` (the request passes through):
    its own format, another it also serves, or a client API spoken on another service (an
    Anthropic client's own body to Claude on Bedrock's InvokeModel)."""
    kind = model_kind(provider, model)
    if api == kind.format or api in kind.also_serves:
        return True
    return kind.api_for_model is not None and PASSED_THROUGH.get(_model_api(provider, kind, model)) == api


def wire_format(provider: Provider, api: Format, model: str) -> ProviderApi:
    """The API the provider is spoken to for a client of `api` asking for `model`: the client's
    own when the provider serves it, else the kind's (for that model)."""
    kind = model_kind(provider, model)
    if api == kind.format or api in kind.also_serves:
        return api
    return _model_api(provider, kind, model)


def provider_side(provider: Provider, api: Format, model: str) -> ProviderFormat:
    """The provider side (render, parse, decode) for a client of `api` asking for `model`."""
    return PROVIDER_APIS[wire_format(provider, api, model)]


def reframer(provider: Provider, api: Format, model: str, max_frame_bytes: int) -> InvokeStreamToSSE | None:
    """A same-API stream that arrives in another framing: Claude's events on Bedrock come in AWS
    event-stream frames and reach an Anthropic client as its own SSE."""
    wire = wire_format(provider, api, model)
    return InvokeStreamToSSE(max_frame_bytes) if PASSED_THROUGH.get(wire) == api else None


def upstream_path(
    provider: Provider, api: ProviderApi, operation: Operation, model: str, stream: bool, sse: bool = True
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
