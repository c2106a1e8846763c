"""The Anthropic Messages API as one wire-format object (both sides; it has no embeddings)."""

from __future__ import annotations

from typing import Any

from extproc.errors import GatewayError
from extproc.formats.anthropic import answers, request, response, upstream
from extproc.formats.anthropic.decoder import StreamDecoder
from extproc.formats.anthropic.encoder import StreamEncoder
from extproc.formats.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from extproc.formats.endpoint import Endpoint, Format
from extproc.formats.protocols import StreamDecoder as StreamDecoderType
from extproc.formats.protocols import StreamEncoder as StreamEncoderType
from extproc.formats.render_options import RenderedRequest, RenderOptions
from extproc.formats.shared_wire import CONTENT_TYPE_SSE, no_embeddings, rename_model
from extproc.formats.sse import MAX_LINE_BYTES


class AnthropicWire:
    name: Format = "anthropic"

    # ---- client side
    def parse_request(self, body: bytes, endpoint: Endpoint, whole: bool = True) -> ChatRequest:
        counting = endpoint.operation == "count_tokens"
        return request.parse_request(body, endpoint.path_model, counting=counting, whole=whole)

    def parse_embedding_request(self, body: bytes, endpoint: Endpoint) -> EmbeddingRequest:
        raise no_embeddings("Anthropic")

    def render_response(self, answer: ChatResponse, asked: ChatRequest) -> bytes:
        return response.render_response(answer)

    def render_embedding_response(
        self, answer: EmbeddingResponse, asked: EmbeddingRequest, endpoint: Endpoint
    ) -> bytes:
        raise no_embeddings("Anthropic")

    def stream_encoder(self, asked: ChatRequest, endpoint: Endpoint) -> StreamEncoderType:
        return StreamEncoder(asked)

    def stream_content_type(self, endpoint: Endpoint) -> str:
        return CONTENT_TYPE_SSE

    def render_error(self, error: GatewayError, request_id: str) -> bytes:
        return response.render_error(error, request_id)

    def render_models(self, models: list[str]) -> bytes:
        return response.render_models(models)

    # ---- provider side
    def render_request(self, asked: ChatRequest, options: RenderOptions) -> RenderedRequest:
        return upstream.render_request(asked, options)

    def render_embedding_request(self, asked: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
        raise no_embeddings("Anthropic")

    def parse_response(self, body: bytes) -> ChatResponse:
        return answers.parse_response(body)

    def parse_embedding_response(self, body: bytes, model: str) -> EmbeddingResponse:
        raise no_embeddings("Anthropic")

    def stream_decoder(self, max_line_bytes: int = MAX_LINE_BYTES) -> StreamDecoderType:
        return StreamDecoder(max_line_bytes=max_line_bytes)

    def parse_error(self, status: int, body: bytes) -> GatewayError:
        return answers.parse_error(status, body)

    def with_model(self, body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
        return rename_model(body, model, parsed)


WIRE = AnthropicWire()
