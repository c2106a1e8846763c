"""Per provider kind: its wire format, its paths and how its credential is sent.

`base_url` is the API root as the provider's official SDK knows it:
OpenAI `https://api.openai.com/v1`, Anthropic `https://api.anthropic.com`,
Gemini `https://generativelanguage.googleapis.com`, Azure OpenAI
`https://<resource>.openai.azure.com` (with `azure.api_version`).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from extproc.config.model import Provider
from extproc.errors import GatewayError

Format = Literal["openai", "anthropic", "gemini"]
Operation = Literal["chat", "embeddings", "models"]

ANTHROPIC_VERSION = "2023-06-01"

_FORMAT_OF_KIND: dict[str, Format] = {
    "openai": "openai",
    "openai-compatible": "openai",
    "mock": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
}


def provider_format(provider: Provider) -> Format:
    return _FORMAT_OF_KIND[provider.kind]


def upstream_path(provider: Provider, operation: Operation, model: str, stream: bool) -> str:
    """The provider's path for one operation (query string included).

    A model in a path is percent-encoded whole (`/`, `?`, `#`, `:` included): whatever
    it holds stays one path segment and can reach neither another path nor the query."""
    base = provider.base_path
    fmt = provider_format(provider)
    if provider.azure_api_version:
        suffix = {"chat": "chat/completions", "embeddings": "embeddings", "models": "models"}[operation]
        version = quote(provider.azure_api_version, safe="")
        if operation == "models":
            return f"{base}/openai/models?api-version={version}"
        return f"{base}/openai/deployments/{_segment(model)}/{suffix}?api-version={version}"
    if fmt == "openai":
        return base + {"chat": "/chat/completions", "embeddings": "/embeddings", "models": "/models"}[operation]
    if fmt == "anthropic":
        return base + ("/v1/models" if operation == "models" else "/v1/messages")
    if operation == "models":
        return f"{base}/v1beta/models"
    # the path already says models/: a configured "models/gemini-x" must not become models%2F...
    model = _segment(model.removeprefix("models/"))
    if operation == "embeddings":
        return f"{base}/v1beta/models/{model}:batchEmbedContents"
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base}/v1beta/models/{model}:{method}"


def _segment(model: str) -> str:
    # quote() keeps dots, and a "." or ".." segment would be resolved away by any URL normaliser
    if model in (".", ".."):
        raise GatewayError("invalid_request", "a model name cannot be '.' or '..'", param="model")
    return quote(model, safe="")


def credential_headers(provider: Provider) -> list[tuple[str, str]]:
    """Headers that carry the provider's own key (injected by the upstream pass only)."""
    key = provider.api_key
    fmt = provider_format(provider)
    if fmt == "anthropic":
        headers = [("anthropic-version", ANTHROPIC_VERSION)]
        return headers + ([("x-api-key", key)] if key else [])
    if not key:
        return []
    if fmt == "gemini":
        return [("x-goog-api-key", key)]
    if provider.azure_api_version:
        return [("api-key", key)]
    return [("authorization", f"Bearer {key}")]
