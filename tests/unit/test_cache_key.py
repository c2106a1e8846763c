"""The cache key covers what the provider is sent: the client fields a same-API provider gets
beyond the canonical request, its beta headers and query, and who answers (the cache stage driven
alone with an Exchange: tests/unit/test_stage_cache.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.cache.forwarded import SHAPES, forwarded
from extproc.cache.key import cache_key
from extproc.config.load import load_text
from extproc.config.model import Provider
from extproc.formats import anthropic, gemini, openai
from extproc.formats.canonical import ChatRequest
from extproc.formats.carried import uncarried
from extproc.formats.endpoint import Format
from extproc.formats.responses import request as responses
from extproc.state import Snapshot

CONFIG = """
providers:
  - {name: oai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: azure, kind: openai-compatible, base_url: "https://x.openai.azure.com", azure: {api_version: "2024-10-21"}}
  - {name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
  - {name: gem, kind: gemini, base_url: "https://generativelanguage.googleapis.com", api_key_env: K}
  - {name: bedrock, kind: bedrock, bedrock: {region: us-east-1}, aws_credentials: {source: environment}}
  - {name: bedrock-converse, kind: bedrock, bedrock: {region: us-east-1, api: converse}, aws_credentials: {source: environment}}
routes:
  - {model: "gpt-*", provider: oai}
  - {model: "claude-*", provider: claude}
cache: {chat_ttl_s: 60}
"""
SNAPSHOT = Snapshot.of(load_text(CONFIG, {"K": "provider-secret"}, Path(".")))
PROVIDERS = {p.name: p for p in SNAPSHOT.config.providers}
QUESTION = "What is the capital of France?"
CITED = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "Paris is the capital."},
    "citations": {"enabled": True},
}


def _openai(**extra: Any) -> ChatRequest:
    body = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": QUESTION}], **extra}
    return openai.parse_request(orjson.dumps(body))


def _anthropic(**extra: Any) -> ChatRequest:
    body = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": QUESTION}], **extra}
    return anthropic.parse_request(orjson.dumps(body))


def _gemini(**extra: Any) -> ChatRequest:
    body = {"contents": [{"parts": [{"text": QUESTION}]}], "generationConfig": {"maxOutputTokens": 64}, **extra}
    return gemini.parse_request(orjson.dumps(body), "m")


def _responses(**extra: Any) -> ChatRequest:
    body = {"model": "m", "max_output_tokens": 64, "input": [{"role": "user", "content": QUESTION}], **extra}
    return responses.parse_request(orjson.dumps(body))


def _key(
    request: ChatRequest, client: Format, provider: str, headers: dict[str, str] | None = None, model: str = "m"
) -> str:
    sent = forwarded(client, [(PROVIDERS[provider], model)], headers or {}, request.source)
    return cache_key("tenant:acme", "route", request, sent)


@pytest.mark.parametrize(
    "extra",
    [
        {"logit_bias": {"1734": -100}},
        {"logprobs": True},
        {"top_logprobs": 2},
        {"prediction": {"type": "content", "content": "x"}},
        {"modalities": ["text", "audio"]},
        {"audio": {"voice": "alloy", "format": "wav"}},
        {"service_tier": "flex"},
        {"seed": 7},
        {"top_k": 5},  # the OpenAI renderer drops it: only a same-API provider gets it
        {"a_field_from_2027": 1},
        {"messages": [{"role": "user", "content": QUESTION, "name": "alice"}]},
        {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": QUESTION}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION, "new": 1}]}]},
        {"max_tokens": 64, "max_completion_tokens": 64},  # max_tokens read as nothing but still sent
        {"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}, "description": "d"}}},
    ],
)
def test_an_openai_field_a_same_api_provider_gets_changes_the_key(extra: dict[str, Any]) -> None:
    assert _key(_openai(**extra), "openai", "oai") != _key(_openai(), "openai", "oai")


@pytest.mark.parametrize(
    "extra",
    [
        {"service_tier": "standard_only"},
        {"thinking": {"type": "adaptive"}},
        {"output_config": {"effort": "low"}},
        {"system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION, "citations": []}]}]},
        {"tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}]},
        {"metadata": {"user_id": "u", "other": 1}},
    ],
)
def test_an_anthropic_field_a_same_api_provider_gets_changes_the_key(extra: dict[str, Any]) -> None:
    assert _key(_anthropic(**extra), "anthropic", "claude") != _key(_anthropic(), "anthropic", "claude")


@pytest.mark.parametrize(
    "extra",
    [
        {"safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]},
        {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]},
        {"generationConfig": {"maxOutputTokens": 64, "responseLogprobs": True}},
        {"generationConfig": {"maxOutputTokens": 64, "thinkingConfig": {"thinkingBudget": -1}}},
        {"generationConfig": {"maxOutputTokens": 64, "thinkingConfig": {"includeThoughts": True}}},
        {"toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}}},
        {"toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["a", "b"]}}},
        {"labels": {"team": "a"}},
    ],
)
def test_a_gemini_field_a_same_api_provider_gets_changes_the_key(extra: dict[str, Any]) -> None:
    assert _key(_gemini(**extra), "gemini", "gem") != _key(_gemini(), "gemini", "gem")


NAMESPACE = {
    "type": "namespace",
    "name": "files",
    "tools": [{"type": "function", "name": "read", "parameters": {"type": "object"}}],
}


@pytest.mark.parametrize(
    "extra",
    [
        {"include": ["reasoning.encrypted_content"]},
        {"text": {"verbosity": "low"}},
        {"service_tier": "flex"},
        {"truncation": "auto"},
        {"max_tool_calls": 3},
        {"a_field_from_2027": 1},
        {"input": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": QUESTION}]},
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": QUESTION, "new": 1}]}]},
        {"tools": [{**NAMESPACE, "description": "file tools"}]},
        {
            "input": [
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Paris", "annotations": [{"x": 1}]}]},
                {"role": "user", "content": "Sure?"},
            ]
        },
    ],
)
def test_a_responses_field_a_same_api_provider_gets_changes_the_key(extra: dict[str, Any]) -> None:
    assert _key(_responses(**extra), "responses", "oai") != _key(_responses(), "responses", "oai")


def test_what_cannot_change_a_responses_answer_does_not_change_the_key() -> None:
    plain = _key(_responses(), "responses", "oai")
    bookkeeping = {
        "stream": True,
        "user": "u-1",
        "store": False,
        "metadata": {"k": "v"},
        "prompt_cache_key": "session-1",
        "client_metadata": {"x": "y"},
        "safety_identifier": "s",
        "input": [{"type": "message", "id": "msg_1", "status": "completed", "role": "user", "content": QUESTION}],
    }
    assert _key(_responses(**bookkeeping), "responses", "oai") == plain
    tools = {"tools": [NAMESPACE]}
    assert _key(_responses(**tools), "responses", "oai") == _key(_responses(**tools), "responses", "oai")


def test_what_cannot_change_the_answer_does_not_change_the_key() -> None:
    plain = _key(_openai(), "openai", "oai")
    streamed = _openai(stream=True, stream_options={"include_usage": True}, user="u-1")
    assert _key(streamed, "openai", "oai") == plain
    assert _key(_anthropic(stream=True, metadata={"user_id": "u"}), "anthropic", "claude") == _key(
        _anthropic(), "anthropic", "claude"
    )
    # The wire format's version: either version's answer reads into the same canonical answer.
    versioned = _key(_anthropic(), "anthropic", "claude", {"anthropic-version": "2026-10-21"})
    assert versioned == _key(_anthropic(), "anthropic", "claude", {"anthropic-version": "2023-06-01"})


def test_what_a_provider_of_another_api_is_never_sent_does_not_split_its_entry() -> None:
    """Rendered for Anthropic, an OpenAI participant's name is left out: the same request is sent.
    (A field the parser names as an API feature stays in the canonical request's key.)"""
    named = {"messages": [{"role": "user", "content": QUESTION, "name": "alice"}]}
    assert _key(_openai(**named), "openai", "claude") == _key(_openai(), "openai", "claude")
    assert _key(_openai(**named), "openai", "oai") != _key(_openai(), "openai", "oai")
    assert _key(_openai(), "openai", "claude", {"openai-beta": "x"}) == _key(_openai(), "openai", "claude")
    assert _key(_anthropic(), "anthropic", "oai", {"anthropic-beta": "x"}) == _key(_anthropic(), "anthropic", "oai")


def test_the_beta_headers_a_same_api_provider_is_sent_change_the_key() -> None:
    plain = _key(_anthropic(), "anthropic", "claude")
    beta = _key(_anthropic(), "anthropic", "claude", {"anthropic-beta": "context-1m-2025-08-07"})
    assert beta != plain
    assert beta != _key(_anthropic(), "anthropic", "claude", {"anthropic-beta": "other"})
    assert _key(_openai(), "openai", "oai", {"openai-beta": "assistants=v2"}) != _key(_openai(), "openai", "oai")
    # Azure's kind forwards no beta header: it cannot change what Azure answers.
    assert _key(_openai(), "openai", "azure", {"openai-beta": "x"}) == _key(_openai(), "openai", "azure")


BEDROCK_CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
BEDROCK_NOVA = "us.amazon.nova-micro-v1:0"
UNCARRIED = {"metadata": {"user_id": "u", "other": 1}}  # a member the canonical request does not carry


def test_an_anthropic_clients_own_body_to_claude_on_bedrock_invoke_is_keyed_as_forwarded() -> None:
    """InvokeModel gets the Anthropic client's own body (every member kept) and its betas in the body;
    Converse, on Nova or on a provider set to converse, gets the canonical request rendered."""

    def key(request: ChatRequest, provider: str, model: str, headers: dict[str, str] | None = None) -> str:
        return _key(request, "anthropic", provider, headers, model=model)

    plain, marked = _anthropic(), _anthropic(**UNCARRIED)
    assert key(marked, "bedrock", BEDROCK_CLAUDE) != key(plain, "bedrock", BEDROCK_CLAUDE)
    beta = {"anthropic-beta": "context-1m-2025-08-07"}
    assert key(plain, "bedrock", BEDROCK_CLAUDE, beta) != key(plain, "bedrock", BEDROCK_CLAUDE)
    # Rendered through Converse: the marks and the betas are never sent, so they cannot split the entry
    assert key(marked, "bedrock", BEDROCK_NOVA) == key(plain, "bedrock", BEDROCK_NOVA)
    assert key(plain, "bedrock", BEDROCK_NOVA, beta) == key(plain, "bedrock", BEDROCK_NOVA)
    assert key(marked, "bedrock-converse", BEDROCK_CLAUDE) == key(plain, "bedrock-converse", BEDROCK_CLAUDE)


def test_two_client_apis_share_a_key_where_the_provider_is_sent_the_same_request() -> None:
    for provider in ("claude", "oai", "gem"):
        keys = {
            _key(_openai(), "openai", provider),
            _key(_anthropic(), "anthropic", provider),
            _key(_gemini(), "gemini", provider),
            _key(_responses(), "responses", provider),  # a Responses client of OpenAI: passed through
        }
        assert len(keys) == 1, provider
    assert _key(_openai(), "openai", "claude") != _key(_openai(), "openai", "oai")


def test_the_provider_and_the_model_that_answer_change_the_key() -> None:
    request = _openai()
    key = _key(request, "openai", "oai")
    assert _key(request, "openai", "oai", model="gpt-5") != key
    assert _key(request, "openai", "azure") != key
    members: list[tuple[Provider, str]] = [(PROVIDERS["oai"], "m"), (PROVIDERS["claude"], "claude-x")]
    pooled = cache_key("tenant:acme", "route", request, forwarded("openai", members, {}, request.source))
    assert pooled != key


@pytest.mark.parametrize(
    ("client", "request_", "provider"),
    [
        ("openai", lambda: _openai(logprobs=True), "oai"),
        ("openai", lambda: _openai(top_logprobs=2), "oai"),
        ("openai", lambda: _openai(modalities=["text", "audio"]), "oai"),
        ("openai", lambda: _openai(web_search_options={}), "oai"),
        ("openai", lambda: _openai(tools=[{"type": "custom", "custom": {"name": "grep"}}]), "oai"),
        ("anthropic", lambda: _anthropic(mcp_servers=[{"type": "url", "url": "https://x", "name": "x"}]), "claude"),
        ("anthropic", lambda: _anthropic(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "claude"),
        (
            "anthropic",
            lambda: _anthropic(messages=[{"role": "user", "content": [CITED, {"type": "text", "text": "?"}]}]),
            "claude",
        ),
        ("gemini", lambda: _gemini(generationConfig={"responseLogprobs": True}), "gem"),
        ("gemini", lambda: _gemini(generationConfig={"responseModalities": ["TEXT", "IMAGE"]}), "gem"),
        ("gemini", lambda: _gemini(tools=[{"googleSearch": {}}]), "gem"),
        ("responses", lambda: _responses(store=True), "oai"),
        ("responses", lambda: _responses(previous_response_id="resp_1"), "oai"),
        ("responses", lambda: _responses(background=True), "oai"),
        ("responses", lambda: _responses(tools=[{"type": "web_search"}]), "oai"),
        ("responses", lambda: _responses(top_logprobs=2), "oai"),
        ("responses", lambda: _responses(include=["message.output_text.logprobs"]), "oai"),
    ],
)
def test_a_request_for_answer_parts_a_canonical_entry_cannot_hold_is_not_replayable(
    client: Format, request_: Any, provider: str
) -> None:
    request = request_()
    sent = forwarded(client, [(PROVIDERS[provider], "m")], {}, request.source, "", request.api_features)
    assert not sent.replayable
    # Rendered for another API the field is left out: that answer is the canonical one.
    other = "claude" if provider != "claude" else "oai"
    assert forwarded(client, [(PROVIDERS[other], "m")], {}, request.source, "", request.api_features).replayable
    plain = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini, "responses": _responses}[client]()
    assert forwarded(client, [(PROVIDERS[provider], "m")], {}, plain.source, "", plain.api_features).replayable


def test_the_query_a_same_api_provider_is_sent_changes_the_key() -> None:
    """Anthropic's SDKs mark beta calls `?beta=true`, and the gateway passes the query on to Anthropic."""
    request = _anthropic()

    def key(provider: str, path: str) -> str:
        return cache_key("t", "r", request, forwarded("anthropic", [(PROVIDERS[provider], "m")], {}, None, path))

    assert key("claude", "/v1/messages?beta=true") != key("claude", "/v1/messages")
    assert key("oai", "/v1/messages?beta=true") == key("oai", "/v1/messages")  # not passed on to OpenAI


def test_the_walk_names_where_each_uncarried_member_is_in_a_stable_order() -> None:
    body = {
        "zeta": 1,
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "q", "extra": 2}], "name": "n"}],
        "alpha": {"deep": [1]},
    }
    assert uncarried(body, SHAPES["openai"]) == [
        (".alpha", {"deep": [1]}),
        (".messages[0].content[0].extra", 2),
        (".messages[0].name", "n"),
        (".zeta", 1),
    ]
    assert uncarried(_openai().source or {}, SHAPES["openai"]) == []
