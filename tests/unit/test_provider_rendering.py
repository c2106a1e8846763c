"""What a pool's answer names as dropped is worked out without touching the request the answer
is still translated for."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson

from extproc.config.load import load_text
from extproc.formats import FORMATS
from extproc.pipeline.endpoint import classify
from extproc.providers.rendering import dropped_for

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
