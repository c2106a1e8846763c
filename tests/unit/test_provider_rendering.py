"""What a pool's answer names as dropped is worked out without touching the request the answer
is still translated for."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

from extproc.config.load import load_text
from extproc.errors import GatewayError
from extproc.formats import FORMATS
from extproc.pipeline.endpoint import classify
from extproc.providers.rendering import chat_for, dropped_for

CONFIG = """
providers:
  - name: plain
    kind: anthropic
    base_url: "https://api.anthropic.com"
    api_key_env: K
    capabilities: {tools: false, images: false, json_schema: false, streaming: false, max_tokens: 100}
routes:
  - {model: "*", provider: plain}
"""


def test_the_features_a_provider_lacks_are_named_and_the_request_is_left_as_it_was() -> None:
    provider = load_text(CONFIG, {"K": "k"}, Path(".")).provider("plain")
    assert provider is not None
    endpoint = classify("POST", "/v1/chat/completions", {})
    assert endpoint is not None
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    body = {
        "model": "gpt-4o",
        "stream": True,
        "max_tokens": 5000,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}],
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
    }
    request = FORMATS["openai"].parse_request(orjson.dumps(body), endpoint)
    before = copy.deepcopy(request)
    assert sorted(dropped_for(request, "openai", provider, "claude-x")) == [
        "images",
        "json_schema",
        "response_format",
        "tools",
    ]
    assert request == before


PROVIDERS = """
providers:
  - {name: oai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: compat, kind: openai-compatible, base_url: "http://127.0.0.1:8000/v1"}
  - {name: strict, kind: openai-compatible, base_url: "http://127.0.0.1:8000/v1", unsupported: reject}
  - {name: ronly, kind: openai-responses, base_url: "http://127.0.0.1:8000/v1"}
routes:
  - {model: "*", provider: oai}
"""
CODEX_LIKE = {
    "model": "gpt-5",
    "input": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAB-openai-only"},
    ],
    "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}],
    "store": False,
}


def _responses_request(body: dict) -> tuple[object, bytes]:
    endpoint = classify("POST", "/v1/responses", {})
    assert endpoint is not None
    raw = orjson.dumps(body)
    return FORMATS["responses"].parse_request(raw, endpoint), raw


def test_a_responses_request_passes_through_to_openai_and_is_fitted_elsewhere() -> None:
    config = load_text(PROVIDERS, {"K": "k"}, Path("."))
    providers = {p.name: p for p in config.providers}
    request, raw = _responses_request(CODEX_LIKE)
    made = chat_for(copy.deepcopy(request), raw, "responses", providers["oai"], "gpt-5")  # type: ignore[arg-type]
    assert made.body is None and made.dropped == []  # the client's bytes, hosted tool and reasoning included
    made = chat_for(copy.deepcopy(request), raw, "responses", providers["ronly"], "gpt-5")  # type: ignore[arg-type]
    assert made.body is None  # a Responses-only server speaks the client's API too
    made = chat_for(copy.deepcopy(request), raw, "responses", providers["compat"], "m")  # type: ignore[arg-type]
    assert made.dropped == ["reasoning.encrypted_content", "tools.web_search"]
    sent = orjson.loads(made.body or b"")
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["f"]
    with pytest.raises(GatewayError) as caught:
        chat_for(copy.deepcopy(request), raw, "responses", providers["strict"], "m")  # type: ignore[arg-type]
    assert caught.value.param == "tools[1]"


def test_stored_state_is_refused_by_a_provider_without_it_whatever_its_policy() -> None:
    config = load_text(PROVIDERS, {"K": "k"}, Path("."))
    request, raw = _responses_request({"model": "m", "input": "hi", "previous_response_id": "resp_1"})
    assert chat_for(copy.deepcopy(request), raw, "responses", config.provider("oai"), "m").body is None  # type: ignore[arg-type]
    with pytest.raises(GatewayError) as caught:
        chat_for(request, raw, "responses", config.provider("compat"), "m")  # type: ignore[arg-type]
    assert (caught.value.kind, caught.value.param) == ("invalid_request", "previous_response_id")
