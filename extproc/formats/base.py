"""What every wire-format module provides (openai.py, anthropic.py, gemini.py).

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

from dataclasses import dataclass, field
from typing import Literal

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
