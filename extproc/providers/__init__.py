"""Per provider kind, one record: its wire format, the client APIs it serves as they are, its
paths, how its credential is sent, and which of a same-API client's own headers it may receive.

A client whose API the provider serves gets passthrough (its own bytes, only the model renamed);
any other client's request is rendered from the canonical model in the kind's own `format`.

`base_url` is the API root as the provider's official SDK knows it:
OpenAI `https://api.openai.com/v1`, Anthropic `https://api.anthropic.com`,
Gemini `https://generativelanguage.googleapis.com`, Azure OpenAI
`https://<resource>.openai.azure.com` (with `azure.api_version`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.formats.endpoint import Format, Operation

ANTHROPIC_VERSION = "2023-06-01"

# (provider, api, operation, model, stream, sse): `api` is the wire format the request is in;
# sse=False asks Gemini for its JSON-array stream
PathBuilder = Callable[[Provider, Format, Operation, str, bool, bool], str]
# Azure OpenAI has the Responses API from this api-version on (YYYY-MM-DD[-preview] compares as text)
AZURE_RESPONSES_SINCE = "2025-03-01"


@dataclass(frozen=True, slots=True)
class Credential:
    """How a kind sends the operator's key: `header: prefix + key`."""

    header: str
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class ProviderKind:
    name: str
    format: Format  # the API a canonical request is rendered in
    path: PathBuilder
    credential: Credential | None
    needs_key: bool
    gen_ai_name: str  # gen_ai.provider.name of OpenTelemetry's GenAI conventions (the API's flavour)
    fixed_headers: tuple[tuple[str, str], ...] = ()  # sent on every request unless the client's own is kept
    passthrough_headers: frozenset[str] = frozenset()  # a same-API client's own headers that are forwarded
    also_serves: frozenset[Format] = frozenset()  # client APIs passed through besides `format`
    passthrough_query: bool = False  # a same-API client's query string is forwarded (Anthropic's ?beta=true)


def _segment(model: str) -> str:
    """A model as one path segment: `/`, `?`, `#` and `:` can never reach another path or the query."""
    # quote() keeps dots, and a "." or ".." segment would be resolved away by any URL normaliser
    if model in (".", ".."):
        raise GatewayError("invalid_request", "a model name cannot be '.' or '..'", param="model")
    return quote(model, safe="")


_OPENAI_PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings", "models": "/models"}
_RESPONSES_PATHS = {"chat": "/responses", "count_tokens": "/responses/input_tokens"}


def _openai_path(provider: Provider, api: Format, operation: Operation, model: str, stream: bool, sse: bool) -> str:
    return provider.base_path + (_RESPONSES_PATHS if api == "responses" else _OPENAI_PATHS)[operation]


def _azure_path(provider: Provider, api: Format, operation: Operation, model: str, stream: bool, sse: bool) -> str:
    version = f"api-version={quote(provider.azure_api_version or '', safe='')}"
    if operation == "models":
        return f"{provider.base_path}/openai/models?{version}"
    if api == "responses":  # the model (the deployment) is named in the body
        return f"{provider.base_path}/openai{_RESPONSES_PATHS[operation]}?{version}"
    suffix = "chat/completions" if operation == "chat" else "embeddings"
    return f"{provider.base_path}/openai/deployments/{_segment(model)}/{suffix}?{version}"


_ANTHROPIC_PATHS = {"models": "/v1/models", "count_tokens": "/v1/messages/count_tokens"}


def _anthropic_path(provider: Provider, api: Format, operation: Operation, model: str, stream: bool, sse: bool) -> str:
    return provider.base_path + _ANTHROPIC_PATHS.get(operation, "/v1/messages")


def _gemini_path(provider: Provider, api: Format, operation: Operation, model: str, stream: bool, sse: bool) -> str:
    base = f"{provider.base_path}/v1beta/models"
    if operation == "models":
        return base
    # the path already says models/: a configured "models/gemini-x" must not become models%2F...
    segment = _segment(model.removeprefix("models/"))
    if operation == "embeddings":
        return f"{base}/{segment}:batchEmbedContents"
    if operation == "count_tokens":
        return f"{base}/{segment}:countTokens"
    method = ("streamGenerateContent?alt=sse" if sse else "streamGenerateContent") if stream else "generateContent"
    return f"{base}/{segment}:{method}"


_BEARER = Credential("authorization", "Bearer ")
_OPENAI_HEADERS = frozenset({"openai-beta"})

_RESPONSES: frozenset[Format] = frozenset({"responses"})

OPENAI = ProviderKind(
    "openai",
    "openai",
    _openai_path,
    _BEARER,
    True,
    "openai",
    passthrough_headers=_OPENAI_HEADERS,
    also_serves=_RESPONSES,
)
# A Chat-Completions-only server: a Responses client is served through the canonical model.
OPENAI_COMPATIBLE = ProviderKind(
    "openai-compatible", "openai", _openai_path, _BEARER, False, "openai", passthrough_headers=_OPENAI_HEADERS
)
# A server that speaks only the Responses API: every other client is served through the canonical model.
OPENAI_RESPONSES = ProviderKind(
    "openai-responses", "responses", _openai_path, _BEARER, False, "openai", passthrough_headers=_OPENAI_HEADERS
)
AZURE = ProviderKind("azure", "openai", _azure_path, Credential("api-key"), False, "azure.ai.openai")
AZURE_WITH_RESPONSES = ProviderKind(
    "azure", "openai", _azure_path, Credential("api-key"), False, "azure.ai.openai", also_serves=_RESPONSES
)
ANTHROPIC = ProviderKind(
    "anthropic",
    "anthropic",
    _anthropic_path,
    Credential("x-api-key"),
    True,
    "anthropic",
    fixed_headers=(("anthropic-version", ANTHROPIC_VERSION),),
    passthrough_headers=frozenset({"anthropic-version", "anthropic-beta"}),
    passthrough_query=True,
)
GEMINI = ProviderKind("gemini", "gemini", _gemini_path, Credential("x-goog-api-key"), True, "gcp.gemini")
MOCK = ProviderKind("mock", "openai", _openai_path, None, False, "mock")

KINDS: dict[str, ProviderKind] = {
    kind.name: kind for kind in (OPENAI, OPENAI_COMPATIBLE, OPENAI_RESPONSES, ANTHROPIC, GEMINI, MOCK)
}


def kind_of(provider: Provider) -> ProviderKind:
    """The provider's record; Azure is an OpenAI-format provider with its own paths and key header,
    and the Responses API from api-version 2025-03-01 on."""
    if provider.azure_api_version:
        return AZURE_WITH_RESPONSES if provider.azure_api_version >= AZURE_RESPONSES_SINCE else AZURE
    return KINDS[provider.kind]


def provider_format(provider: Provider) -> Format:
    """The API a canonical request is rendered in for this provider."""
    return KINDS[provider.kind].format


def serves(provider: Provider, api: Format) -> bool:
    """Whether the provider speaks the client's API itself (the request passes through)."""
    kind = kind_of(provider)
    return api == kind.format or api in kind.also_serves


def wire_format(provider: Provider, api: Format) -> Format:
    """The API the provider is spoken to for a client of `api`: the client's own when the provider
    serves it, else the kind's format."""
    kind = kind_of(provider)
    return api if api == kind.format or api in kind.also_serves else kind.format


def upstream_path(
    provider: Provider, api: Format, operation: Operation, model: str, stream: bool, sse: bool = True
) -> str:
    """The provider's path for one operation in wire format `api` (query string included). A Gemini
    provider streams as the client asked (`sse`: a Gemini client without alt=sse gets a JSON array,
    passed through as is); its decoder reads either."""
    return kind_of(provider).path(provider, api, operation, model, stream, sse)


def with_client_query(path: str, provider: Provider, client: Format, client_path: str) -> str:
    """`path` with the query string of the client's own path, where the provider speaks the client's
    API and reads one (Anthropic's TypeScript SDK, Claude Code's, marks beta calls `?beta=true`).
    `client_path` is the path after the auth stage took any `key` parameter out: a gateway key
    never reaches a provider."""
    kind = kind_of(provider)
    _, sep, query = client_path.partition("?")
    if not sep or not query or not kind.passthrough_query or not serves(provider, client):
        return path
    return f"{path}{'&' if '?' in path else '?'}{query}"
