"""Client side: ChatResponse -> a Responses API `response` object, and error bodies
(OpenAI's error JSON, with `param`)."""

from __future__ import annotations

import orjson

from extproc.errors import GatewayError, render_openai_error
from extproc.formats.canonical import ChatRequest, ChatResponse, Choice
from extproc.formats.responses.common import response_id, status_of
from extproc.formats.responses.output import output_items, response_head, response_json


def render_response(answer: ChatResponse, request: ChatRequest) -> bytes:
    """The first choice as a `response` (the Responses API has one answer per request)."""
    choice = min(answer.choices, key=lambda c: c.index) if answer.choices else Choice()
    status, incomplete = status_of(choice.finish_reason)
    head = response_head(response_id(answer.id), answer.model, answer.created, request)
    output = [orjson.dumps(item) for item in output_items(choice, request)]
    return response_json(head, status, output, answer.usage, incomplete)


def render_error(error: GatewayError, request_id: str = "") -> bytes:
    return render_openai_error(error, request_id)
