"""Bedrock's two provider sides as ProviderFormat objects (formats/protocols.py): Converse for every
model family, InvokeModel for Claude. Neither has a client side: no client speaks Bedrock's API.
Embeddings are InvokeModel's for either (Titan's or Cohere's body, by the model: `embeddings`)."""

from __future__ import annotations

from typing import Any

from extproc.errors import GatewayError
from extproc.formats.anthropic import answers as anthropic_answers
from extproc.formats.bedrock import converse_answer, converse_request, embeddings, invoke
from extproc.formats.bedrock.converse_stream import ConverseStreamDecoder
from extproc.formats.bedrock.errors import parse_http_error
from extproc.formats.canonical import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from extproc.formats.endpoint import ProviderApi
from extproc.formats.protocols import ProviderFormat, StreamDecoder
from extproc.formats.render_options import RenderedRequest, RenderOptions
from extproc.formats.sse import MAX_LINE_BYTES


class BedrockConverse:
    name: ProviderApi = "bedrock-converse"

    def render_request(self, asked: ChatRequest, options: RenderOptions) -> RenderedRequest:
        return converse_request.render_request(asked, options)

    def render_embedding_request(self, asked: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
        return embeddings.render_request(asked, options)

    def parse_response(self, body: bytes) -> ChatResponse:
        return converse_answer.parse_response(body)

    def parse_embedding_response(self, body: bytes, model: str) -> EmbeddingResponse:
        return embeddings.parse_response(body, model)

    def stream_decoder(self, max_line_bytes: int = MAX_LINE_BYTES) -> StreamDecoder:
        """A frame is the stream's event: bounded as an SSE event is."""
        return ConverseStreamDecoder(max_frame_bytes=max_line_bytes)

    def parse_error(self, status: int, body: bytes) -> GatewayError:
        """Without the x-amzn-errortype header: read from the body and the status (call
        `errors.parse_http_error` with the header where it is at hand)."""
        return parse_http_error(status, body)

    def with_model(self, body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
        return body  # the model is in the path


class BedrockInvokeAnthropic:
    """Claude's Messages API on InvokeModel: answers are Anthropic's own (HTTP errors are Bedrock's)."""

    name: ProviderApi = "bedrock-invoke"

    def render_request(self, asked: ChatRequest, options: RenderOptions) -> RenderedRequest:
        return invoke.render_request(asked, options)

    def render_embedding_request(self, asked: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
        return embeddings.render_request(asked, options)

    def parse_response(self, body: bytes) -> ChatResponse:
        return anthropic_answers.parse_response(body)

    def parse_embedding_response(self, body: bytes, model: str) -> EmbeddingResponse:
        return embeddings.parse_response(body, model)

    def stream_decoder(self, max_line_bytes: int = MAX_LINE_BYTES) -> StreamDecoder:
        return invoke.InvokeStreamDecoder(max_frame_bytes=max_line_bytes)

    def parse_error(self, status: int, body: bytes) -> GatewayError:
        return parse_http_error(status, body)

    def with_model(self, body: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
        return invoke.passthrough_body(
            body
        )  # the model is in the path; the body loses its own (no betas: see OWN_BODY_ON)


CONVERSE: ProviderFormat = BedrockConverse()
INVOKE_ANTHROPIC: ProviderFormat = BedrockInvokeAnthropic()
