"""The OpenAI Responses API as one wire-format object (both sides)."""

from __future__ import annotations

from typing import Any

from extproc.errors import GatewayError
from extproc.formats.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from extproc.formats.endpoint import Endpoint, Format
from extproc.formats.openai import provider_errors
from extproc.formats.openai import response as openai_response
from extproc.formats.protocols import StreamDecoder as StreamDecoderType
from extproc.formats.protocols import StreamEncoder as StreamEncoderType
from extproc.formats.render_options import RenderedRequest, RenderOptions
from extproc.formats.responses import answers, request, response, upstream
from extproc.formats.responses.decoder import StreamDecoder
from extproc.formats.responses.encoder import StreamEncoder
from extproc.formats.shared_wire import CONTENT_TYPE_SSE, no_embeddings, rename_model
from extproc.formats.sse import MAX_LINE_BYTES


class ResponsesWire:
    name: Format = "responses"

    # ---- client side
    def parse_request(self, body: bytes, endpoint: Endpoint, whole: bool = True) -> ChatRequest:
        return request.parse_request(body, endpoint.path_model)

    def parse_embedding_request(self, body: bytes, endpoint: Endpoint) -> EmbeddingRequest:
        raise no_embeddings("Responses")

    def render_response(self, answer: ChatResponse, asked: ChatRequest) -> bytes:
        return response.render_response(answer, asked)

    def render_embedding_response(
        self, answer: EmbeddingResponse, asked: EmbeddingRequest, endpoint: Endpoint
    ) -> bytes:
        raise no_embeddings("Responses")

    def stream_encoder(self, asked: ChatRequest, endpoint: Endpoint) -> StreamEncoderType:
        return StreamEncoder(asked)

    def stream_content_type(self, endpoint: Endpoint) -> str:
        return CONTENT_TYPE_SSE

    def render_error(self, error: GatewayError, request_id: str) -> bytes:
        return response.render_error(error, request_id)

    def render_models(self, models: list[str]) -> bytes:
        return openai_response.render_models(models)

    # ---- provider side
    def render_request(self, asked: ChatRequest, options: RenderOptions) -> RenderedRequest:
        return upstream.render_request(asked, options)

    def render_embedding_request(self, asked: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
        raise no_embeddings("Responses")

    def parse_response(self, body: bytes) -> ChatResponse:
        return answers.parse_response(body)

    def parse_embedding_response(self, body: bytes, model: str) -> EmbeddingResponse:
        raise no_embeddings("Responses")

    def stream_decoder(self, max_line_bytes: int = MAX_LINE_BYTES) -> StreamDecoderType:
        return StreamDecoder(max_line_bytes)

    def parse_error(self, status: int, body: bytes) -> GatewayError:
        return provider_errors.parse_error(status, body)

    def with_model(self, body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
        return rename_model(body, model, parsed)


WIRE = ResponsesWire()
