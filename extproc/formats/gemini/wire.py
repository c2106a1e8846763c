"""The Gemini generateContent API as one wire-format object (both sides).

Gemini's special cases live here: the model travels in the path (a
passthrough body never names it), `batchEmbedContents` has its own shape, and
`streamGenerateContent` without `alt=sse` answers one JSON array.
"""

from __future__ import annotations

from typing import Any

from extproc.errors import GatewayError
from extproc.formats.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from extproc.formats.endpoint import Endpoint, Format
from extproc.formats.gemini import answers, embeddings, request, response, upstream
from extproc.formats.gemini.decoder import StreamDecoder
from extproc.formats.gemini.encoder import StreamEncoder
from extproc.formats.protocols import StreamDecoder as StreamDecoderType
from extproc.formats.protocols import StreamEncoder as StreamEncoderType
from extproc.formats.render_options import RenderedRequest, RenderOptions
from extproc.formats.sse import MAX_LINE_BYTES

SSE = "text/event-stream"
JSON_ARRAY = "application/json; charset=UTF-8"


class GeminiWire:
    name: Format = "gemini"

    # ---- client side
    def parse_request(self, body: bytes, endpoint: Endpoint, whole: bool = True) -> ChatRequest:
        return request.parse_request(body, endpoint.path_model)

    def parse_embedding_request(self, body: bytes, endpoint: Endpoint) -> EmbeddingRequest:
        return embeddings.parse_embedding_request(body, endpoint.path_model, batch=endpoint.batch)

    def render_response(self, answer: ChatResponse, asked: ChatRequest) -> bytes:
        return response.render_response(answer)

    def render_embedding_response(
        self, answer: EmbeddingResponse, asked: EmbeddingRequest, endpoint: Endpoint
    ) -> bytes:
        return embeddings.render_embedding_response(answer, batch=endpoint.batch)

    def stream_encoder(self, asked: ChatRequest, endpoint: Endpoint) -> StreamEncoderType:
        return StreamEncoder(asked, sse=endpoint.sse)

    def stream_content_type(self, endpoint: Endpoint) -> str:
        return SSE if endpoint.sse else JSON_ARRAY

    def render_error(self, error: GatewayError, request_id: str) -> bytes:
        return response.render_error(error, request_id)

    def render_models(self, models: list[str]) -> bytes:
        return response.render_models(models)

    # ---- provider side
    def render_request(self, asked: ChatRequest, options: RenderOptions) -> RenderedRequest:
        return upstream.render_request(asked, options)

    def render_embedding_request(self, asked: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
        return embeddings.render_embedding_request(asked, options)

    def parse_response(self, body: bytes) -> ChatResponse:
        return answers.parse_response(body)

    def parse_embedding_response(self, body: bytes, model: str) -> EmbeddingResponse:
        return embeddings.parse_embedding_response(body, model)

    def stream_decoder(self, max_line_bytes: int = MAX_LINE_BYTES) -> StreamDecoderType:
        return StreamDecoder(max_line_bytes=max_line_bytes)

    def parse_error(self, status: int, body: bytes) -> GatewayError:
        return answers.parse_error(status, body)

    def with_model(self, body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
        return body  # the model is in the path


WIRE = GeminiWire()
