"""Vertex AI's `:predict` for text embeddings as a ProviderFormat (formats/protocols.py). No client
speaks it, and it has no chat: a chat request for an embedding model is the client's 400. Its
errors are Google's (`{"error": {"code", "message", "status"}}`), read as Gemini's are."""

from __future__ import annotations

from typing import Any

from extproc.errors import GatewayError
from extproc.formats.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from extproc.formats.endpoint import ProviderApi
from extproc.formats.gemini import answers as gemini_answers
from extproc.formats.protocols import ProviderFormat, StreamDecoder
from extproc.formats.render_options import RenderedRequest, RenderOptions
from extproc.formats.sse import MAX_LINE_BYTES
from extproc.formats.vertex import predict


def _no_chat() -> GatewayError:
    return GatewayError("invalid_request", "a Vertex AI embedding model has no chat API", param="model")


class VertexPredict:
    name: ProviderApi = "vertex-predict"

    def render_request(self, asked: ChatRequest, options: RenderOptions) -> RenderedRequest:
        raise _no_chat()

    def render_embedding_request(self, asked: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
        return predict.render_embedding_request(asked, options)

    def parse_response(self, body: bytes) -> ChatResponse:
        raise _no_chat()

    def parse_embedding_response(self, body: bytes, model: str) -> EmbeddingResponse:
        return predict.parse_embedding_response(body, model)

    def stream_decoder(self, max_line_bytes: int = MAX_LINE_BYTES) -> StreamDecoder:
        raise _no_chat()

    def parse_error(self, status: int, body: bytes) -> GatewayError:
        return gemini_answers.parse_error(status, body)

    def with_model(self, body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
        return body  # the model is in the path


PREDICT: ProviderFormat = VertexPredict()
