"""TranslateStage driven alone with an Exchange: a same-API request keeps its bytes, another API's
provider gets the request rendered in its own format with its own path and host, a provider that
cannot stream is asked for the whole answer, and a pool's request is left for each attempt."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from extproc.contract import CLIENT_PATH_KEY, POOL_KEY, READ_AT_KEY, ROUTE_HEADER, STREAM_KEY
from extproc.formats import shared_wire
from extproc.formats.canonical import ChatRequest
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.translate import TranslateStage
from tests.support.exchanges import CHAT_PATH, PROVIDERS, at_body, chat, snapshot

SNAPSHOT = snapshot(
    PROVIDERS
    + """
  - name: basic
    kind: openai-compatible
    base_url: "https://basic.example/v1"
    unsupported: drop
    capabilities: {tools: false, streaming: false}
routes:
  - {model: alias-gpt, provider: openai, upstream_model: gpt-4o-real}
  - name: pooled
    model: "pool-*"
    pool: [{provider: openai}, {provider: anthropic, priority: 1, model: claude-backup}]
  - {model: "gpt-*", provider: openai}
  - {model: "claude-*", provider: anthropic}
  - {model: "gemini-*", provider: gemini}
  - {model: "basic-*", provider: basic}
"""
)
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}


def translated(ex: Exchange, raw: bytes) -> PhaseReply:
    reply = PhaseReply()
    assert asyncio.run(TranslateStage().request_body(ex, reply, raw)) is None
    return reply


def test_a_same_api_request_goes_on_with_its_own_bytes_to_the_providers_cluster() -> None:
    ex, raw = at_body(SNAPSHOT, chat("gpt-4o", logit_bias={"50256": -100}))
    reply = translated(ex, raw)
    assert ex.passthrough and not ex.stream_from_whole
    assert reply.body is None  # unchanged: not sent back through gRPC
    headers = dict(reply.set_headers)
    assert headers[ROUTE_HEADER] == "provider_openai" and headers[":path"] == "/v1/chat/completions"
    assert headers[":authority"] == "api.openai.com" and reply.clear_route_cache


def test_a_route_alias_renames_the_model_and_keeps_every_other_field() -> None:
    ex, raw = at_body(SNAPSHOT, chat("alias-gpt", logit_bias={"50256": -100}, seed=7))
    reply = translated(ex, raw)
    assert reply.body is not None
    sent = orjson.loads(reply.body)
    assert sent["model"] == "gpt-4o-real" and sent["logit_bias"] == {"50256": -100} and sent["seed"] == 7
    assert dict(reply.set_headers)["content-length"] == str(len(reply.body))


def test_a_renamed_body_is_written_from_the_parse_and_then_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    ex, raw = at_body(SNAPSHOT, chat("alias-gpt", logit_bias={"50256": -100}))
    expected = orjson.dumps({**orjson.loads(raw), "model": "gpt-4o-real"})  # what a second read wrote
    read_again: list[bytes] = []
    loads = shared_wire.orjson.loads
    monkeypatch.setattr(shared_wire.orjson, "loads", lambda body: read_again.append(body) or loads(body))
    reply = translated(ex, raw)
    assert reply.body == expected
    assert read_again == []  # an agent's 80 KB body is read once
    assert isinstance(ex.request, ChatRequest) and ex.request.source is None  # not kept for the answer's life


def test_another_apis_provider_gets_the_request_in_its_own_format_path_and_host() -> None:
    ex, raw = at_body(SNAPSHOT, chat("claude-sonnet-4", "hello", max_tokens=64))
    reply = translated(ex, raw)
    assert not ex.passthrough and reply.body is not None
    sent = orjson.loads(reply.body)
    assert sent["model"] == "claude-sonnet-4" and sent["max_tokens"] == 64
    assert sent["messages"][0]["role"] == "user"
    headers = dict(reply.set_headers)
    assert headers[":path"] == "/v1/messages" and headers[":authority"] == "api.anthropic.com"
    assert headers["content-type"] == "application/json" and headers["content-length"] == str(len(reply.body))
    assert headers["anthropic-version"]  # the provider's own fixed headers


def test_a_streamed_gemini_request_goes_to_its_streaming_method() -> None:
    ex, raw = at_body(SNAPSHOT, chat("gemini-2.5-flash", stream=True))
    reply = translated(ex, raw)
    path = dict(reply.set_headers)[":path"]
    assert path.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert "contents" in orjson.loads(reply.body or b"{}")


def test_a_provider_that_cannot_stream_is_asked_for_the_whole_answer_and_drops_what_it_lacks() -> None:
    ex, raw = at_body(SNAPSHOT, chat("basic-1", stream=True, tools=[TOOL]))
    reply = translated(ex, raw)
    assert ex.stream and ex.stream_from_whole
    assert ex.dropped == ["tools"]
    sent = orjson.loads(reply.body or b"{}")
    assert not sent.get("stream") and "tools" not in sent


def test_a_pools_request_goes_on_as_sent_with_its_facts_for_each_attempt() -> None:
    ex, raw = at_body(SNAPSHOT, chat("pool-1", stream=True))
    reply = translated(ex, raw)
    assert reply.body is None and ":path" not in dict(reply.set_headers)
    assert ex.target is not None and dict(reply.set_headers)[ROUTE_HEADER] == ex.target.cluster
    facts = reply.request_metadata or {}
    assert (facts[POOL_KEY], facts[CLIENT_PATH_KEY], facts[STREAM_KEY]) == ("pooled", CHAT_PATH, True)
    assert isinstance(facts[READ_AT_KEY], float) and reply.clear_route_cache


def test_embeddings_for_another_api_go_to_its_embedding_method() -> None:
    ex, raw = at_body(SNAPSHOT, {"model": "gemini-embedding-001", "input": ["a", "b"]}, "/v1/embeddings")
    reply = translated(ex, raw)
    assert dict(reply.set_headers)[":path"].endswith("/models/gemini-embedding-001:batchEmbedContents")
    assert len(orjson.loads(reply.body or b"{}")["requests"]) == 2
