"""Which client API a request speaks, from its method, path and headers."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from extproc.providers import Format, Operation


@dataclass(frozen=True, slots=True)
class Endpoint:
    format: Format
    operation: Operation
    path_model: str | None = None  # Gemini carries the model in the path
    stream: bool = False  # Gemini streams by method, not by body
    sse: bool = True  # Gemini streamGenerateContent without alt=sse answers a JSON array
    batch: bool = False  # Gemini batchEmbedContents

    @property
    def name(self) -> str:
        return f"{self.format}.{self.operation}"


OPENAI_CHAT = Endpoint("openai", "chat")
OPENAI_EMBEDDINGS = Endpoint("openai", "embeddings")
OPENAI_MODELS = Endpoint("openai", "models")
ANTHROPIC_CHAT = Endpoint("anthropic", "chat")
ANTHROPIC_MODELS = Endpoint("anthropic", "models")
GEMINI_MODELS = Endpoint("gemini", "models")

_GEMINI_METHODS = {
    "generateContent": ("chat", False, False),
    "streamGenerateContent": ("chat", True, False),
    "embedContent": ("embeddings", False, False),
    "batchEmbedContents": ("embeddings", False, True),
}


def classify(method: str, path: str, headers: dict[str, str]) -> Endpoint | None:
    """None when the gateway does not serve this path."""
    route, _, query = path.partition("?")
    route = route.rstrip("/")
    if method == "POST":
        if route == "/v1/chat/completions":
            return OPENAI_CHAT
        if route == "/v1/messages":
            return ANTHROPIC_CHAT
        if route == "/v1/embeddings":
            return OPENAI_EMBEDDINGS
        for prefix in ("/v1beta/models/", "/v1/models/"):
            if route.startswith(prefix):
                model, _, gemini_method = route[len(prefix) :].rpartition(":")
                if model and gemini_method in _GEMINI_METHODS:
                    operation, stream, batch = _GEMINI_METHODS[gemini_method]
                    sse = "sse" in parse_qs(query).get("alt", []) if stream else True
                    return Endpoint("gemini", operation, model, stream, sse, batch)  # type: ignore[arg-type]
        return None
    if method == "GET":
        if route == "/v1beta/models" or (route == "/v1/models" and _speaks_gemini(query, headers)):
            return GEMINI_MODELS
        if route == "/v1/models":
            return ANTHROPIC_MODELS if "anthropic-version" in headers else OPENAI_MODELS
    return None


def _speaks_gemini(query: str, headers: dict[str, str]) -> bool:
    """Gemini shares `/v1/models` with OpenAI; its clients send their key their own way."""
    return "x-goog-api-key" in headers or "key" in parse_qs(query)


def guess_format(path: str, headers: dict[str, str]) -> Format:
    """The error format for a request we cannot classify."""
    if path.startswith("/v1beta") or "x-goog-api-key" in headers:
        return "gemini"
    if "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai"
