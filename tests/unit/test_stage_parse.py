"""ParseStage driven alone with an Exchange: the client's body becomes the canonical request, the
model and stream flag are read from it (or from Gemini's path), and the route is looked up."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError
from extproc.formats.canonical import ChatRequest, EmbeddingRequest
from extproc.pipeline.endpoint import classify
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.parse import ParseStage
from tests.support.exchanges import CHAT_PATH, MESSAGES_PATH, at_headers, chat, messages, snapshot

SNAPSHOT = snapshot()


def parsed(path: str, body: dict[str, Any] | bytes) -> tuple[Exchange, PhaseReply]:
    ex = at_headers(SNAPSHOT, path)
    ex.endpoint = classify("POST", path, ex.headers)  # what the endpoint stage found
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    reply = PhaseReply()
    assert asyncio.run(ParseStage().request_body(ex, reply, raw)) is None
    return ex, reply


def test_an_openai_chat_body_becomes_the_request_and_finds_its_route() -> None:
    ex, reply = parsed(CHAT_PATH, chat("gpt-4o", "hello", max_tokens=30))
    assert isinstance(ex.request, ChatRequest)
    assert ex.request.max_tokens == 30 and ex.request.messages[0].content[0].text == "hello"
    assert ex.model == "gpt-4o" and not ex.stream
    assert ex.target is not None and ex.target.provider.name == "openai" and ex.target.upstream_model == "gpt-4o"
    assert reply == PhaseReply()  # nothing to change yet


def test_the_stream_flag_comes_from_the_body() -> None:
    ex, _ = parsed(MESSAGES_PATH, messages("claude-sonnet-4", stream=True))
    assert ex.stream and isinstance(ex.request, ChatRequest) and ex.request.stream
    assert ex.target is not None and ex.target.provider.name == "anthropic"


def test_geminis_streaming_method_makes_a_stream_and_its_path_names_the_model() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    ex, _ = parsed("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", body)
    assert ex.stream and ex.model == "gemini-2.5-flash"
    assert ex.target is not None and ex.target.provider.name == "gemini"


def test_an_embeddings_body_becomes_an_embedding_request() -> None:
    ex, _ = parsed("/v1/embeddings", {"model": "gpt-embed", "input": ["one", "two"]})
    assert isinstance(ex.request, EmbeddingRequest) and ex.request.inputs == ["one", "two"]
    assert ex.model == "gpt-embed" and not ex.stream


def test_a_model_no_route_serves_goes_on_without_a_target() -> None:
    ex, _ = parsed(CHAT_PATH, chat("llama-3"))
    assert ex.model == "llama-3" and ex.target is None  # the route stage answers it, after auth


def test_a_body_that_is_not_json_is_a_bad_request() -> None:
    with pytest.raises(GatewayError) as refused:
        parsed(CHAT_PATH, b'{"model": "gpt-4o", "messages": [')
    assert refused.value.kind == "invalid_request" and refused.value.status == 400
