"""The two sides of a wire format, as types.

A client format is the API a caller speaks (parse its requests, render
answers, errors and streams for it); a provider format is the API an upstream
speaks (render requests for it, parse its answers, errors and streams). Each
of `openai`, `anthropic` and `gemini` is one object that is both.
"""

from __future__ import annotations

from typing import Any, Protocol

from extproc.errors import GatewayError
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
)
from extproc.formats.endpoint import Endpoint, Format, ProviderApi
from extproc.formats.render_options import RenderedRequest, RenderOptions


class StreamEncoder(Protocol):
    """Canonical stream events -> the client's stream bytes."""

    def encode(self, events: list[StreamEvent]) -> bytes: ...
    def close(self) -> bytes: ...


class StreamDecoder(Protocol):
    """A provider's stream bytes, chunk by chunk -> canonical stream events."""

    def feed(self, chunk: bytes) -> list[StreamEvent]: ...
    def close(self) -> list[StreamEvent]: ...


class ClientFormat(Protocol):
    name: Format

    # `whole` False: a format may leave the conversation for `read_conversation` (canonical.py)
    def parse_request(self, body: bytes, endpoint: Endpoint, whole: bool = True) -> ChatRequest: ...
    def parse_embedding_request(self, body: bytes, endpoint: Endpoint) -> EmbeddingRequest: ...
    def render_response(self, response: ChatResponse, request: ChatRequest) -> bytes: ...
    def render_embedding_response(
        self, response: EmbeddingResponse, request: EmbeddingRequest, endpoint: Endpoint
    ) -> bytes: ...
    def stream_encoder(self, request: ChatRequest, endpoint: Endpoint) -> StreamEncoder: ...
    def stream_content_type(self, endpoint: Endpoint) -> str: ...
    def render_error(self, error: GatewayError, request_id: str) -> bytes: ...
    def render_models(self, models: list[str]) -> bytes: ...


class ProviderFormat(Protocol):
    @property
    def name(self) -> ProviderApi: ...

    def render_request(self, request: ChatRequest, options: RenderOptions) -> RenderedRequest: ...
    def render_embedding_request(self, request: EmbeddingRequest, options: RenderOptions) -> RenderedRequest: ...
    def parse_response(self, body: bytes) -> ChatResponse: ...
    def parse_embedding_response(self, body: bytes, model: str) -> EmbeddingResponse: ...
    def stream_decoder(self, max_line_bytes: int = ...) -> StreamDecoder: ...
    def parse_error(self, status: int, body: bytes) -> GatewayError: ...
    def with_model(self, body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
        """The client's own body (same API as the provider) naming the provider's model; `parsed`:
        the body as the client's parser read it, when at hand (then it is not read again, and is
        changed)."""
        ...


class WireFormat(ClientFormat, ProviderFormat, Protocol):
    """Both sides of one API."""
