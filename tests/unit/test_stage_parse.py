"""ParseStage driven alone with an Exchange: the client's body becomes the canonical request, the
model and stream flag are read from it (or from Gemini's path), and the route is looked up."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest, EmbeddingRequest, read_conversation
from extproc.pipeline.endpoint import classify
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.parse import ParseStage
from tests.support.exchanges import CHAT_PATH, CONFIG, MESSAGES_PATH, at_headers, chat, messages, snapshot

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
    assert ex.request.max_tokens == 30 and read_conversation(ex.request).messages[0].content[0].text == "hello"
    assert ex.model == "gpt-4o" and not ex.stream
    assert ex.target is not None and ex.target.provider.name == "openai" and ex.target.upstream_model == "gpt-4o"
    assert reply == PhaseReply()  # nothing to change yet


def test_a_conversation_whose_bytes_go_on_to_a_provider_of_its_api_is_left_unread() -> None:
    body = chat("gpt-4o", "hello")
    body["messages"].append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]})
    ex, _ = parsed(CHAT_PATH, body)  # a URL the gateway refuses when it reads the message: the provider judges it
    assert isinstance(ex.request, ChatRequest) and ex.request.unread is not None and ex.request.messages == []
    with pytest.raises(GatewayError) as refused:
        read_conversation(ex.request)
    assert refused.value.param == "messages[1].content[0].image_url.url"


def test_a_tool_schema_left_unread_is_not_bounded_until_the_gateway_writes_it() -> None:
    schema = '{"p":' * 300 + "{}" + "}" * 300  # orjson reads it but cannot write it again
    tools = '[{"type": "function", "function": {"name": "f", "parameters": ' + schema + "}}]"
    body = orjson.dumps(chat("gpt-4o", "hello"))[:-1] + b', "tools": ' + tools.encode() + b"}"
    ex, _ = parsed(CHAT_PATH, body)  # its bytes go on untouched: the provider's to judge
    assert isinstance(ex.request, ChatRequest) and ex.request.unread is not None
    with pytest.raises(GatewayError) as refused:  # read to be written again (a cache key, another API)
        read_conversation(ex.request)
    assert refused.value.param == "tools[0].function.parameters" and "nested too deeply" in refused.value.message


def test_an_anthropic_conversation_read_later_is_the_one_read_at_once() -> None:
    body = {
        "model": "claude-sonnet-4",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "container_upload", "file_id": "f"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "look", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "found"}]},
        ],
        "tools": [{"name": "look", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "w"}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "context_management": {"edits": []},
    }
    ex, _ = parsed(MESSAGES_PATH, body)  # to a provider of the client's API: left unread
    assert isinstance(ex.request, ChatRequest) and ex.request.unread is not None and ex.request.tools == []
    later = read_conversation(ex.request)
    at_once = FORMATS["anthropic"].parse_request(orjson.dumps(body), classify("POST", MESSAGES_PATH, {}))
    assert later.messages == at_once.messages and later.tools == at_once.tools
    assert [f.name for f in later.api_features] == [f.name for f in at_once.api_features]
    assert later.thinking_budget == 2000 and later.parallel_tool_calls is False


def test_a_conversation_rendered_for_another_api_is_read_and_checked_at_once() -> None:
    body = chat("claude-sonnet-4", "hello")
    body["messages"].append({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]})
    with pytest.raises(GatewayError) as refused:
        parsed(CHAT_PATH, body)
    assert refused.value.param == "messages[1].content[0].image_url.url"
    ex, _ = parsed(CHAT_PATH, chat("claude-sonnet-4", "hello"))
    assert isinstance(ex.request, ChatRequest) and ex.request.unread is None
    assert ex.request.messages[0].content[0].text == "hello"


@pytest.mark.parametrize(
    ("config", "model"),
    [
        (CONFIG, "mock-1"),  # answered by the gateway
        (CONFIG + "cache: {chat_ttl_s: 60}\n", "gpt-4o"),  # keyed on its conversation
        (
            CONFIG.replace("api_key_env: OPENAI_KEY}", "api_key_env: OPENAI_KEY, capabilities: {images: false}}"),
            "gpt-4o",
        ),  # images may have to be dropped
    ],
)
def test_a_conversation_the_gateway_reads_is_read_with_the_rest(config: str, model: str) -> None:
    ex = at_headers(snapshot(config), CHAT_PATH)
    ex.endpoint = classify("POST", CHAT_PATH, ex.headers)
    assert asyncio.run(ParseStage().request_body(ex, PhaseReply(), orjson.dumps(chat(model, "hello")))) is None
    assert isinstance(ex.request, ChatRequest) and ex.request.unread is None
    assert ex.request.messages[0].content[0].text == "hello"


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


def _whole_reads(monkeypatch: pytest.MonkeyPatch, path: str, body: bytes) -> tuple[Exchange, list[bool]]:
    """The exchange after the parse stage, and how its body was read (`whole` of each parse)."""
    fmt = FORMATS["openai"]
    reads: list[bool] = []
    parse = fmt.parse_request

    def spied(raw: bytes, endpoint: Any, whole: bool = True) -> ChatRequest:
        reads.append(whole)
        return parse(raw, endpoint, whole)

    monkeypatch.setattr(fmt, "parse_request", spied)
    ex, _ = parsed(path, body)
    return ex, reads


def test_a_request_its_route_renders_for_another_api_is_read_whole_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ex, reads = _whole_reads(monkeypatch, CHAT_PATH, orjson.dumps(chat("claude-sonnet-4", "hello")))
    assert reads == [True]  # one pass, not the top level and then the conversation
    assert ex.target is not None and ex.target.provider.name == "anthropic"
    _, reads = _whole_reads(monkeypatch, CHAT_PATH, orjson.dumps(chat("gpt-4o", "hello")))
    assert reads == [False]  # its bytes go on: the top level only


def test_a_model_named_first_inside_another_field_does_not_route_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b'{"metadata": {"model": "claude-sonnet-4"}, ' + orjson.dumps(chat("gpt-4o", "hello"))[1:]
    ex, reads = _whole_reads(monkeypatch, CHAT_PATH, body)
    assert reads == [True]  # guessed from the first name: read whole, which costs nothing more
    assert ex.model == "gpt-4o" and ex.target is not None and ex.target.provider.name == "openai"


def test_a_refused_body_is_left_without_the_route_its_model_was_guessed_to_have() -> None:
    ex = at_headers(SNAPSHOT, CHAT_PATH)
    ex.endpoint = classify("POST", CHAT_PATH, ex.headers)
    body = orjson.dumps(chat("gpt-4o", "hello"))[:-1] + b', "stream": "yes"}'
    with pytest.raises(GatewayError):
        asyncio.run(ParseStage().request_body(ex, PhaseReply(), body))
    assert ex.target is None  # its refusal is counted and logged as a body with no route, as ever
