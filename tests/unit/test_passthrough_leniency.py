"""Lenient where the provider is lenient: a request in the provider's own API goes on as the client
sent it, whatever the canonical model could not read; rendered for another API, what could not be
carried is named (drop) or refused (reject). Also the pieces around it: the client's query for an
Anthropic provider, count_tokens paths and bodies, and the bounds on what a client's words can grow
(the dropped-features header and the metric's labels)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.config.load import load_text
from extproc.config.model import Provider
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.formats.canonical import ApiFeature, ChatRequest, Message, TextPart
from extproc.formats.endpoint import Endpoint
from extproc.formats.token_count import gemini_count_request, parse_gemini_count, render_count
from extproc.observe import metrics
from extproc.pipeline.answer import MAX_NAMED_DROPS, dropped_header
from extproc.pipeline.endpoint import classify
from extproc.providers import upstream_path, with_client_query
from extproc.providers.capabilities import api_features_lost
from extproc.providers.rendering import chat_for, count_for, counts_tokens, render_options
from tests.support.fixtures import fixture_json

CONFIG = """
providers:
  - {name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
  - {name: claude-small, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K,
     capabilities: {max_tokens: 1000}}
  - {name: gpt, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: gpt-strict, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K, unsupported: reject}
  - {name: gem, kind: gemini, base_url: "https://generativelanguage.googleapis.com", api_key_env: K}
  - {name: gem-strict, kind: gemini, base_url: "https://generativelanguage.googleapis.com", api_key_env: K,
     unsupported: reject}
routes:
  - {model: "*", provider: claude}
"""
ANTHROPIC = Endpoint("anthropic", "chat")


def _provider(name: str) -> Provider:
    provider = load_text(CONFIG, {"K": "k"}, Path(".")).provider(name)
    assert provider is not None
    return provider


def _claude_code(turn: int = 2) -> bytes:
    body = copy.deepcopy(fixture_json(f"agents/claude-code-2.1.328.turn{turn}.json")["body"])
    body["model"] = "claude-sonnet-4-6"
    return orjson.dumps(body)


def _parsed(body: bytes, client: str = "anthropic", endpoint: Endpoint = ANTHROPIC) -> ChatRequest:
    return FORMATS[client].parse_request(body, endpoint)


# ---------------------------------------------------------------- same API: the client's bytes


def test_claude_code_goes_to_anthropic_as_it_was_sent() -> None:
    body = _claude_code()
    made = chat_for(_parsed(body), body, "anthropic", _provider("claude"), "claude-sonnet-4-6")
    assert made.body is None and made.dropped == [] and made.stream is True


def test_claude_code_to_an_aliased_anthropic_model_changes_only_the_model() -> None:
    body = _claude_code()
    made = chat_for(_parsed(body), body, "anthropic", _provider("claude"), "claude-opus-4-6")
    assert made.body is not None
    sent, original = orjson.loads(made.body), orjson.loads(body)
    assert sent.pop("model") == "claude-opus-4-6"
    original.pop("model")
    assert sent == original  # system messages, context_management, defer_loading, cache_control: all kept


@pytest.mark.parametrize(
    ("client", "body"),
    [
        ("openai", {"model": "m", "messages": [{"role": "function", "name": "f", "content": "r"}], "store": True}),
        ("openai", {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
        ("openai", {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom"}]}),
    ],
)
def test_an_openai_client_unknown_feature_goes_to_openai_untouched(client: str, body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    request = _parsed(raw, client, Endpoint("openai", "chat"))
    assert request.api_features
    made = chat_for(request, raw, client, _provider("gpt-strict"), "m")  # strict: still never refused
    assert made.body is None and made.dropped == []


def test_a_gemini_client_unknown_feature_goes_to_gemini_untouched() -> None:
    body = {"contents": [{"parts": [{"executableCode": {"code": "1"}}]}], "tools": [{"googleSearch": {}}]}
    raw = orjson.dumps(body)
    request = _parsed(raw, "gemini", Endpoint("gemini", "chat", "g"))
    assert [f.name for f in request.api_features] == ["parts.executableCode", "tools.googleSearch"]
    made = chat_for(request, raw, "gemini", _provider("gem-strict"), "g")
    assert made.body is None and made.dropped == []


def test_same_api_rendered_after_all_names_what_it_loses() -> None:
    """A provider that caps max_tokens gets the request rendered from the canonical model: what
    only the client's bytes carried is named, never silently lost."""
    body = _claude_code()
    made = chat_for(_parsed(body), body, "anthropic", _provider("claude-small"), "claude-sonnet-4-6")
    assert made.body is not None and orjson.loads(made.body)["max_tokens"] == 1000
    # and the adaptive thinking's budget (16384 for "high") does not fit under 1000: named too
    assert sorted(made.dropped) == ["cache_control", "context_management", "reasoning_effort", "tools.defer_loading"]


# ---------------------------------------------------------------- another API: drop or reject


def test_claude_code_to_openai_names_what_it_drops() -> None:
    body = _claude_code()
    made = chat_for(_parsed(body), body, "anthropic", _provider("gpt"), "gpt-5")
    assert made.body is not None
    assert made.dropped == ["cache_control", "tools.defer_loading", "context_management"]
    sent = orjson.loads(made.body)
    assert [m["role"] for m in sent["messages"]][:3] == ["system", "user", "system"]
    assert sent["reasoning_effort"] == "high" and len(sent["tools"]) == 12


def test_claude_code_to_a_rejecting_provider_is_refused_naming_the_field() -> None:
    body = _claude_code()
    with pytest.raises(GatewayError) as info:
        chat_for(_parsed(body), body, "anthropic", _provider("gem-strict"), "g")
    assert info.value.kind == "invalid_request" and info.value.param == "system[1].cache_control"
    assert "cache_control" in info.value.message and "gem-strict" in info.value.message


def test_a_feature_that_must_be_refused_is_refused_under_drop_too() -> None:
    request = ChatRequest("m", [Message("user", [TextPart("q")])])
    request.api_features = [ApiFeature("store", "store", "refuse"), ApiFeature("x", "x", "drop")]
    with pytest.raises(GatewayError) as info:
        api_features_lost(request, _provider("gpt"))
    assert info.value.param == "store"
    request.api_features = [ApiFeature("x", "x", "drop"), ApiFeature("x", "y", "drop")]
    assert api_features_lost(request, _provider("gpt-strict")) == ["x"]  # "drop" is never refused, named once


# ---------------------------------------------------------------- the client's query, count_tokens


def test_anthropic_passthrough_keeps_the_clients_query_and_nothing_else_does() -> None:
    claude, gem = _provider("claude"), _provider("gem")
    assert with_client_query("/v1/messages", claude, "anthropic", "/v1/messages?beta=true", "m") == (
        "/v1/messages?beta=true"
    )
    assert with_client_query("/v1/messages", claude, "anthropic", "/v1/messages", "m") == "/v1/messages"
    assert with_client_query("/v1/messages", claude, "openai", "/v1/chat/completions?x=1", "m") == "/v1/messages"
    gemini_path = "/v1beta/models/g:streamGenerateContent?alt=sse"
    assert with_client_query(gemini_path, gem, "anthropic", "/v1/messages?beta=true", "m") == gemini_path


def test_count_tokens_is_an_endpoint_of_its_own_with_each_providers_path() -> None:
    assert classify("POST", "/v1/messages/count_tokens?beta=true", {}) == Endpoint("anthropic", "count_tokens")
    assert classify("POST", "/v1/messages?beta=true", {}) == ANTHROPIC
    assert classify("POST", "/v1/responses/input_tokens", {}) == Endpoint("responses", "count_tokens")
    claude, gem, gpt = _provider("claude"), _provider("gem"), _provider("gpt")
    assert upstream_path(claude, "anthropic", "count_tokens", "c", False) == "/v1/messages/count_tokens"
    assert upstream_path(gem, "gemini", "count_tokens", "g", False) == "/v1beta/models/g:countTokens"
    assert upstream_path(gpt, "responses", "count_tokens", "o", False) == "/v1/responses/input_tokens"
    assert [counts_tokens(p, "anthropic", "m") for p in (claude, gem, gpt)] == [True, True, False]
    assert [counts_tokens(p, "responses", "m") for p in (claude, gem, gpt)] == [False, True, True]


def test_a_count_for_gemini_is_a_generate_content_request_without_generation_settings() -> None:
    body = orjson.dumps(
        {
            "model": "claude-x",
            "system": "be brief",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "thinking": {"type": "adaptive"},
            "context_management": {"edits": []},
        }
    )
    request = _parsed(body, endpoint=Endpoint("anthropic", "count_tokens"))
    made = count_for(request, body, "anthropic", _provider("gem"), "gemini-2.5-flash")
    assert made.body is not None and made.dropped == ["context_management"]
    inner = orjson.loads(made.body)["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert inner["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert inner["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "f"
    assert "generationConfig" not in inner
    direct = gemini_count_request(request, render_options(_provider("gem"), "models/g"))
    assert orjson.loads(direct.body)["generateContentRequest"]["model"] == "models/g"


def test_a_count_for_anthropic_is_the_clients_own_body() -> None:
    body = b'{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}'
    request = _parsed(body, endpoint=Endpoint("anthropic", "count_tokens"))
    assert count_for(request, body, "anthropic", _provider("claude"), "claude-x").body is None


def test_gemini_count_answers_read_as_each_clients_count() -> None:
    assert parse_gemini_count(b'{"totalTokens": 31, "promptTokensDetails": []}') == 31
    assert orjson.loads(render_count("anthropic", 31)) == {"input_tokens": 31}
    assert orjson.loads(render_count("responses", 31)) == {"object": "response.input_tokens", "input_tokens": 31}
    for bad in (b"nope", b"{}", b"[]"):
        with pytest.raises(GatewayError) as info:
            parse_gemini_count(bad)
        assert info.value.kind == "provider_error"


# ---------------------------------------------------------------- bounds on what a client's words can grow


def test_the_dropped_features_header_names_at_most_its_bound() -> None:
    names = [f"content.t{i}" for i in range(100)]
    header = dropped_header(names)
    assert header.split(",")[:MAX_NAMED_DROPS] == names[:MAX_NAMED_DROPS]
    assert header.endswith(f",+{100 - MAX_NAMED_DROPS}-more") and len(header.split(",")) == MAX_NAMED_DROPS + 1
    assert dropped_header(["a", "b"]) == "a,b"


def test_the_dropped_features_metric_has_a_bounded_set_of_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_feature_labels", set())
    labels = {metrics.feature_label(f"content.t{i}") for i in range(1000)}
    assert len(labels) == 257 and "other" in labels
    assert metrics.feature_label("content.t3") == "content.t3"  # a name seen before keeps its series
