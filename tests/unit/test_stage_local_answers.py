"""LocalAnswersStage driven alone with an Exchange: the model list and the built-in mock provider
are answered by the gateway itself, in the client's own format; anything else goes on."""

from __future__ import annotations

import asyncio

import orjson

from extproc.auth.identity import Identity
from extproc.pipeline.endpoint import classify
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.local_answers import LocalAnswersStage
from tests.support.exchanges import MESSAGES_PATH, at_body, at_headers, chat, messages, snapshot

LISTED = snapshot("""
providers:
  - {name: mock, kind: mock, models: [mock-1]}
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_KEY,
     models: [gpt-4o, gpt-4o-mini]}
  - {name: anthropic, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: ANTHROPIC_KEY,
     models: [claude-sonnet-4]}
routes:
  - {model: "mock-*", provider: mock}
""")
SNAPSHOT = snapshot()
GPT_ONLY = Identity("search", "acme", models=("gpt-*",), method="api_key")


def listed(path: str, headers: dict[str, str], identity: Identity) -> LocalAnswer | None:
    ex = at_headers(LISTED, path, headers, method="GET")
    ex.endpoint, ex.identity = classify("GET", path, ex.headers), identity
    return asyncio.run(LocalAnswersStage().request_headers(ex, PhaseReply(), True))


def answered(ex: Exchange, raw: bytes) -> LocalAnswer | None:
    return asyncio.run(LocalAnswersStage().request_body(ex, PhaseReply(), raw))


def test_the_model_list_shows_only_the_models_the_client_may_use() -> None:
    answer = listed("/v1/models", {}, GPT_ONLY)
    assert answer is not None and answer.status == 200
    assert ("content-type", "application/json") in answer.headers
    listing = orjson.loads(answer.body)
    assert listing["object"] == "list" and sorted(m["id"] for m in listing["data"]) == ["gpt-4o", "gpt-4o-mini"]


def test_the_model_list_is_in_the_asking_clients_format() -> None:
    everyone = Identity("search", "acme", method="api_key")
    answer = listed("/v1/models", {"anthropic-version": "2023-06-01"}, everyone)
    assert answer is not None
    listing = orjson.loads(answer.body)
    assert {m["type"] for m in listing["data"]} == {"model"}
    assert {"claude-sonnet-4", "gpt-4o", "mock-1"} <= {m["id"] for m in listing["data"]}


def test_a_chat_request_is_not_answered_at_its_headers() -> None:
    ex = at_headers(SNAPSHOT)
    ex.endpoint = classify("POST", ex.path, ex.headers)
    assert asyncio.run(LocalAnswersStage().request_headers(ex, PhaseReply(), False)) is None


def test_the_mock_answers_a_chat_itself_with_its_own_usage() -> None:
    ex, raw = at_body(SNAPSHOT, chat("mock-1", "count these words"))
    answer = answered(ex, raw)
    assert answer is not None and answer.status == 200
    assert ("content-type", "application/json") in answer.headers
    body = orjson.loads(answer.body)
    assert body["object"] == "chat.completion" and body["model"] == "mock-1"
    assert body["choices"][0]["message"]["content"]
    assert ex.usage is not None and body["usage"]["completion_tokens"] == ex.usage.output_tokens > 0


def test_the_mock_streams_in_the_clients_format_when_asked_to() -> None:
    ex, raw = at_body(SNAPSHOT, messages("mock-1", stream=True), MESSAGES_PATH, {"anthropic-version": "2023-06-01"})
    answer = answered(ex, raw)
    assert answer is not None
    assert dict(answer.headers)["content-type"].startswith("text/event-stream")
    assert answer.body.startswith(b"event: message_start") and b"event: message_stop" in answer.body
    assert ex.usage is not None and ex.usage.output_tokens > 0


def test_the_mock_embeds_and_counts_the_input() -> None:
    ex, raw = at_body(SNAPSHOT, {"model": "mock-1", "input": ["one two", "three"]}, "/v1/embeddings")
    answer = answered(ex, raw)
    assert answer is not None
    body = orjson.loads(answer.body)
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert ex.usage is not None and ex.usage.input_tokens == 3


def test_a_request_for_a_real_provider_goes_on() -> None:
    ex, raw = at_body(SNAPSHOT, chat("gpt-4o"))
    assert answered(ex, raw) is None and ex.usage is None
