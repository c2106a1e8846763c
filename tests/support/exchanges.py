"""Exchanges as the router pass's stages find them, to drive one stage alone.

`snapshot` loads a config; `at_headers` is a request as Envoy's request headers leave it
(before any stage); `at_body` is one as the stages before routing leave it (its API known,
its body parsed, its caller known, its route resolved), with the body's bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from extproc.auth.identity import ANONYMOUS, Identity
from extproc.config.load import load_text
from extproc.formats import FORMATS
from extproc.formats.canonical import ChatRequest
from extproc.pipeline.endpoint import classify
from extproc.pipeline.exchange import Exchange
from extproc.routing import Facts
from extproc.state import Snapshot

PROVIDER_ENV = {"OPENAI_KEY": "sk-openai", "ANTHROPIC_KEY": "sk-ant", "GEMINI_KEY": "gemini-key"}
# One provider of each kind a stage tells apart, each behind its own model prefix.
PROVIDERS = """
providers:
  - {name: mock, kind: mock, models: [mock-1]}
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_KEY}
  - {name: anthropic, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_KEY}
  - {name: gemini, kind: gemini, base_url: "https://generativelanguage.googleapis.com", api_key_env: GEMINI_KEY}
"""
ROUTES = """
routes:
  - {model: "gpt-*", provider: openai}
  - {model: "claude-*", provider: anthropic}
  - {model: "gemini-*", provider: gemini}
  - {model: "mock-*", provider: mock}
"""
CONFIG = PROVIDERS + ROUTES

CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"


def snapshot(config: str = CONFIG, env: Mapping[str, str] | None = None) -> Snapshot:
    return Snapshot.of(load_text(config, {**PROVIDER_ENV, **(env or {})}, Path(".")))


def at_headers(
    snap: Snapshot,
    path: str = CHAT_PATH,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
    listener: str = "main",
    request_id: str = "rid-1",
) -> Exchange:
    """A request as Envoy's request headers leave it, before any stage ran."""
    ex = Exchange(snap, listener)
    ex.headers = {":method": method, ":path": path, "x-request-id": request_id, **(headers or {})}
    ex.request_id, ex.path = request_id, path
    return ex


def at_body(
    snap: Snapshot,
    body: Mapping[str, Any],
    path: str = CHAT_PATH,
    headers: Mapping[str, str] | None = None,
    identity: Identity = ANONYMOUS,
) -> tuple[Exchange, bytes]:
    """A request as the stages before routing leave it, and its body's bytes."""
    ex = at_headers(snap, path, headers)
    raw = orjson.dumps(body)
    ex.endpoint = endpoint = classify("POST", path, ex.headers)
    assert endpoint is not None, path
    ex.error_format = endpoint.format
    ex.identity = identity
    client = FORMATS[endpoint.format]
    if endpoint.operation == "embeddings":
        ex.request = client.parse_embedding_request(raw, endpoint)
    else:
        chat: ChatRequest = client.parse_request(raw, endpoint)
        chat.stream = chat.stream or endpoint.stream
        ex.request, ex.stream = chat, chat.stream
    ex.model = ex.request.model
    facts = Facts(ex.headers, endpoint.format, path, identity.client_id, identity.tenant)
    ex.target = snap.router.resolve(ex.model, facts)
    return ex, raw


def chat(model: str, text: str = "hi", **fields: Any) -> dict[str, Any]:
    """An OpenAI Chat Completions body."""
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


def messages(model: str, text: str = "hi", **fields: Any) -> dict[str, Any]:
    """An Anthropic Messages body."""
    return {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}], **fields}
