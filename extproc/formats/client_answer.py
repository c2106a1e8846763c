"""A whole chat answer in the client's format: as one JSON answer, or as the stream the client
asked for (a provider that cannot stream, a cached answer replayed)."""

from __future__ import annotations

from extproc.formats.canonical import ChatRequest, ChatResponse
from extproc.formats.endpoint import Endpoint
from extproc.formats.protocols import ClientFormat
from extproc.formats.replay import response_events
from extproc.formats.shared_wire import CONTENT_TYPE_JSON


def render_answer(
    client: ClientFormat, endpoint: Endpoint, request: ChatRequest, answer: ChatResponse, stream: bool
) -> tuple[bytes, str]:
    """(body, content type)."""
    if not stream:
        return client.render_response(answer, request), CONTENT_TYPE_JSON
    encoder = client.stream_encoder(request, endpoint)
    return encoder.encode(response_events(answer)) + encoder.close(), client.stream_content_type(endpoint)
