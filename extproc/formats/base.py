"""What every wire-format package provides (openai, anthropic, gemini).

Client side (the API a caller speaks):
    parse_request(body: bytes, path_model: str | None) -> ChatRequest
    render_response(resp: ChatResponse) -> bytes
    StreamEncoder(request: ChatRequest)   .encode(events) -> bytes ; .close() -> bytes
    render_error(error: GatewayError, request_id: str) -> bytes
    render_models(models: list[str]) -> bytes
    parse_embedding_request(body: bytes, path_model: str | None) -> EmbeddingRequest   (openai, gemini)
    render_embedding_response(resp: EmbeddingResponse) -> bytes                       (openai, gemini)

Provider side (the API an upstream speaks):
    render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest
    parse_response(body: bytes) -> ChatResponse
    StreamDecoder()                       .feed(chunk: bytes) -> list[StreamEvent] ; .close() -> list[StreamEvent]
    parse_error(status: int, body: bytes) -> GatewayError
    render_embedding_request(req: EmbeddingRequest, options: RenderOptions) -> RenderedRequest   (openai, gemini)
    parse_embedding_response(body: bytes) -> EmbeddingResponse                                   (openai, gemini)

Bad client input raises GatewayError("invalid_request", message, param=...)
naming the offending field; nothing else escapes a parser.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from extproc.errors import GatewayError

UnsupportedPolicy = Literal["drop", "reject"]


@dataclass(slots=True)
class RenderOptions:
    model: str  # the provider's model name
    unsupported: UnsupportedPolicy = "drop"
    default_max_tokens: int = 4096  # Anthropic requires max_tokens


@dataclass(slots=True)
class RenderedRequest:
    body: bytes
    dropped: list[str] = field(default_factory=list)  # features left out (reported to the client)


# ---- small helpers the format modules share

_ALNUM = string.ascii_letters + string.digits


def random_text(length: int) -> str:
    """Letters and digits, for ids a provider did not give (call_..., msg_...)."""
    return "".join(random.choices(_ALNUM, k=length))


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number


def is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def count(mapping: dict[str, Any], key: str) -> int:
    """A token count from a provider's usage object: 0 when absent or not an integer."""
    value = mapping.get(key)
    return value if is_int(value) else 0


def invalid(message: str, param: str | None = None) -> GatewayError:
    """Bad client input, naming the offending field."""
    return GatewayError("invalid_request", message, param=param)


def provider_error(message: str) -> GatewayError:
    """A provider answer the gateway cannot read."""
    return GatewayError("provider_error", message)
