"""Current Anthropic Messages through the real Envoy with the official anthropic SDK (and Claude
Code's own recorded requests): to an Anthropic provider the client's bytes go on untouched, beta
query and headers included; to OpenAI and Gemini providers its system messages, thinking and effort
are mapped, what cannot be carried is named (drop) or refused (reject); count_tokens is counted by
the provider that can, estimated (and marked so) elsewhere; reasoning tokens reach every client."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import orjson
import pytest
from google import genai

from tests.conftest import PROVIDER_ENV
from tests.fakes.base import GEMINI_JSON, SSE_UTF8, Reply, json_reply
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.sdk_outcomes import CLIENT_KEY, gemini_client, openai_client
from tests.support.fixtures import fixture_json
from tests.support.metrics import samples
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27"]
# the TypeScript SDK (Claude Code's) marks beta calls with ?beta=true; the Python SDK no longer does
BETA_QUERY = {"beta": "true"}
DROPPED = "x-gateway-dropped-features"
TOOLS: list[Any] = [
    {"name": "Read", "description": "read a file", "input_schema": {"type": "object", "properties": {}}},
    {"name": "Later", "input_schema": {"type": "object", "properties": {}}, "defer_loading": True},
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
]
CONVERSATION: list[Any] = [
    {"role": "user", "content": "What is in notes.txt?"},
    {"role": "system", "content": [{"type": "text", "text": "Answer in one line.", "cache_control": {"type": "ephemeral"}}]},
    {"role": "assistant", "content": "Let me look."},
    {"role": "system", "content": "The user prefers French."},
    {"role": "user", "content": "Go on."},
]  # fmt: skip
CURRENT: dict[str, Any] = {
    "max_tokens": 2048,
    "system": "You are terse.",
    "messages": CONVERSATION,
    "thinking": {"type": "adaptive", "display": "omitted"},
    "output_config": {"effort": "medium"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "tools": TOOLS,
}


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    def provider(name: str, kind: str, url: str, env: str, unsupported: str = "drop") -> dict[str, Any]:
        return {"name": name, "kind": kind, "base_url": url, "api_key_env": env, "unsupported": unsupported}

    openai_url, gemini_url = fake_openai.base_url + "/v1", fake_gemini.base_url
    config = {
        "listeners": [{"name": "main"}],
        "providers": [
            provider("anthropic", "anthropic", fake_anthropic.base_url, "TEST_ANTHROPIC_KEY"),
            provider("openai", "openai", openai_url, "TEST_OPENAI_KEY"),
            provider("openai-reject", "openai", openai_url, "TEST_OPENAI_KEY", "reject"),
            provider("gemini", "gemini", gemini_url, "TEST_GEMINI_KEY"),
            provider("gemini-reject", "gemini", gemini_url, "TEST_GEMINI_KEY", "reject"),
        ],
        "routes": [
            {"model": "claude-*", "provider": "anthropic"},
            {"model": "gpt-reject-*", "provider": "openai-reject"},
            {"model": "gpt-*", "provider": "openai"},
            {"model": "gemini-reject-*", "provider": "gemini-reject"},
            {"model": "gemini-*", "provider": "gemini"},
            {
                "name": "pooled",
                "model": "pool-*",
                "pool": [{"provider": "anthropic", "priority": 0}, {"provider": "openai", "priority": 1}],
            },
        ],
    }
    gateway = GatewayStack(Path(tmp_path_factory.mktemp("anthropic-current")), config, PROVIDER_ENV).start()
    yield gateway
    gateway.stop()


def _client(stack: GatewayStack, sent: list[httpx2.Request] | None = None) -> anthropic.Anthropic:
    """The official SDK, pointed at the gateway; `sent` collects the requests it sends, bodies read."""

    def keep(request: httpx2.Request) -> None:
        request.read()
        if sent is not None:
            sent.append(request)

    http = httpx2.Client(event_hooks={"request": [keep]}, timeout=20)
    return anthropic.Anthropic(api_key=CLIENT_KEY, base_url=stack.base_url, max_retries=0, http_client=http)


def _recorded_claude_code(turn: int) -> tuple[dict[str, str], bytes]:
    """Claude Code's recorded request: its headers (a key of ours added) and its body, model named."""
    recorded = fixture_json(f"agents/claude-code-2.1.328.turn{turn}.json")
    body = copy.deepcopy(recorded["body"])
    body["model"] = "claude-sonnet-4-6"
    headers = {k: v for k, v in recorded["headers"].items() if k not in ("connection", "accept-encoding")}
    return {**headers, "x-api-key": CLIENT_KEY}, orjson.dumps(body)


# ---------------------------------------------------------------- an Anthropic provider: the client's bytes


@pytest.mark.parametrize("turn", [1, 2])
def test_claude_code_recorded_request_reaches_anthropic_byte_for_byte(
    stack: GatewayStack, fake_anthropic: FakeAnthropic, turn: int
) -> None:
    headers, body = _recorded_claude_code(turn)
    response = httpx.post(stack.base_url + "/v1/messages?beta=true", content=body, headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert b"event: message_stop" in response.content
    seen = fake_anthropic.last_request
    assert seen.body == body
    assert seen.query == {"beta": "true"}
    assert seen.headers["anthropic-beta"] == headers["anthropic-beta"]
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["x-api-key"] == fake_anthropic.api_key  # the operator's key, not the client's
    assert DROPPED not in response.headers


def test_sdk_beta_call_with_current_features_reaches_anthropic_untouched(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    sent: list[httpx2.Request] = []
    raw = _client(stack, sent).beta.messages.with_raw_response.create(
        model="claude-sonnet-4-6", betas=BETAS, extra_query=BETA_QUERY, **CURRENT
    )
    message = raw.parse()
    assert message.role == "assistant" and message.content
    seen = fake_anthropic.last_request
    assert seen.path == "/v1/messages" and seen.query == {"beta": "true"}
    assert seen.body == sent[-1].content  # system messages, context_management, server tool, defer_loading: all kept
    assert seen.headers["anthropic-beta"] == ",".join(BETAS)
    assert DROPPED not in raw.headers


def test_sdk_stream_with_a_mid_conversation_system_message_and_adaptive_thinking_passes_through(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    sent: list[httpx2.Request] = []
    with _client(stack, sent).beta.messages.stream(model="claude-sonnet-4-6", betas=BETAS, **CURRENT) as events:
        message = events.get_final_message()
    assert message.stop_reason in ("end_turn", "tool_use")
    assert fake_anthropic.last_request.body == sent[-1].content
    assert [m["role"] for m in fake_anthropic.last_request.json["messages"]] == [m["role"] for m in CONVERSATION]


def test_a_gateway_key_in_the_query_never_reaches_anthropic_with_the_beta_query(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    """The client's query goes on to an Anthropic provider, but never the gateway key it may carry."""
    client = anthropic.Anthropic(
        api_key="unused", base_url=stack.base_url, max_retries=0, default_query={"key": CLIENT_KEY}, timeout=20
    )
    client.beta.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        betas=BETAS,
        extra_query=BETA_QUERY,
    )
    seen = fake_anthropic.last_request
    assert seen.query == {"beta": "true"}
    assert CLIENT_KEY not in json.dumps(dict(seen.headers)) + json.dumps(seen.query)


def test_a_pooled_route_keeps_the_beta_query_and_the_clients_bytes_too(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    """A pool's attempt is made in the upstream pass: the same rules hold there."""
    sent: list[httpx2.Request] = []
    _client(stack, sent).beta.messages.create(model="pool-1", betas=BETAS, extra_query=BETA_QUERY, **CURRENT)
    seen = fake_anthropic.last_request
    assert (seen.query, seen.body) == (BETA_QUERY, sent[-1].content)
    assert seen.headers["anthropic-beta"] == ",".join(BETAS)


def test_an_openai_client_unknown_content_and_fields_reach_openai_untouched(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    """Same leniency for the other client APIs: a content part type, role and field the gateway does not
    know go on to a provider of their own API, even one that rejects what it lacks."""
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": "what is said?"}, audio]},
        {"role": "function", "name": "lookup", "content": "a result"},
    ]
    raw = openai_client(stack.base_url).chat.completions.with_raw_response.create(
        model="gpt-reject-5", messages=messages, extra_body={"web_search_options": {}, "verbosity": "low"}
    )
    assert raw.http_response.status_code == 200
    seen = fake_openai.last_request.json
    assert seen["messages"] == messages and seen["web_search_options"] == {} and seen["verbosity"] == "low"
    assert DROPPED not in raw.headers


def test_an_openai_clients_unknown_part_to_anthropic_is_dropped_and_named(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    raw = openai_client(stack.base_url).chat.completions.with_raw_response.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}]
    )
    assert raw.http_response.status_code == 200
    assert raw.headers[DROPPED] == "content.input_audio"
    assert fake_anthropic.last_request.json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


def test_a_gemini_clients_code_execution_reaches_gemini_untouched(stack: GatewayStack, fake_gemini: FakeGemini) -> None:
    from google.genai import types

    client = gemini_client(stack.base_url)
    config = types.GenerateContentConfig(
        tools=[types.Tool(code_execution=types.ToolCodeExecution())],
        safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_NONE")],
    )
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="sum 1..10 in code", config=config)
    assert answer.text is not None
    seen = fake_gemini.last_request.json
    assert seen["tools"] == [{"codeExecution": {}}] and seen["safetySettings"][0]["threshold"] == "BLOCK_NONE"


# ---------------------------------------------------------------- another API: mapped, named or refused


def test_to_openai_system_messages_keep_their_place_thinking_becomes_effort_and_drops_are_named(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    raw = _client(stack).beta.messages.with_raw_response.create(model="gpt-5", betas=BETAS, **CURRENT)
    assert raw.parse().content
    sent = fake_openai.last_request.json
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [
        ("system", "You are terse."),
        ("user", "What is in notes.txt?"),
        ("system", "Answer in one line."),
        ("assistant", "Let me look."),
        ("system", "The user prefers French."),
        ("user", "Go on."),
    ]
    assert sent["reasoning_effort"] == "medium"
    assert [t["function"]["name"] for t in sent["tools"]] == ["Read", "Later"]
    assert "context_management" not in sent and "cache_control" not in fake_openai.last_request.body.decode()
    assert "anthropic-beta" not in fake_openai.last_request.headers
    assert sorted(raw.headers[DROPPED].split(",")) == [
        "cache_control",
        "context_management",
        "tools.defer_loading",
        "tools.web_search_20250305",
    ]


def test_to_gemini_system_messages_fold_into_the_instruction_and_effort_sets_the_thinking_budget(
    stack: GatewayStack, fake_gemini: FakeGemini
) -> None:
    body = {**CURRENT, "thinking": {"type": "adaptive", "display": "summarized"}}
    raw = _client(stack).beta.messages.with_raw_response.create(model="gemini-2.5-flash", betas=BETAS, **body)
    assert raw.parse().content
    sent = fake_gemini.last_request.json
    assert [p["text"] for p in sent["systemInstruction"]["parts"]] == [
        "You are terse.",
        "Answer in one line.",
        "The user prefers French.",
    ]
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    assert "tools.web_search_20250305" in raw.headers[DROPPED]


@pytest.mark.parametrize(("model", "fake_name"), [("gpt-reject-5", "fake_openai"), ("gemini-reject-2", "fake_gemini")])
def test_a_rejecting_provider_refuses_naming_the_field_and_is_never_called(
    request: pytest.FixtureRequest, stack: GatewayStack, model: str, fake_name: str
) -> None:
    fake = request.getfixturevalue(fake_name)
    body = {**CURRENT, "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS[:1]}  # one feature left
    with pytest.raises(anthropic.BadRequestError) as info:
        _client(stack).beta.messages.create(model=model, betas=BETAS, **body)
    assert info.value.status_code == 400
    error = info.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error" and "context_management" in error["message"]
    assert info.value.response.headers["x-request-id"]
    assert fake.requests == []


def test_a_new_block_type_to_openai_is_dropped_and_named_not_refused(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    content = [{"type": "text", "text": "summarise"}, {"type": "document", "source": {"type": "text", "data": "d"}}]
    raw = _client(stack).messages.with_raw_response.create(
        model="gpt-5", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert raw.parse().content
    assert raw.headers[DROPPED] == "content.document"
    assert fake_openai.last_request.json["messages"] == [{"role": "user", "content": "summarise"}]


# ---------------------------------------------------------------- count_tokens


def test_count_tokens_goes_to_anthropic_as_the_client_sent_it(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    sent: list[httpx2.Request] = []
    body = {k: v for k, v in CURRENT.items() if k != "max_tokens"}
    raw = _client(stack, sent).beta.messages.with_raw_response.count_tokens(
        model="claude-sonnet-4-6", betas=BETAS, extra_query=BETA_QUERY, **body
    )
    assert raw.parse().input_tokens > 0
    assert "x-gateway-token-count" not in raw.headers
    seen = fake_anthropic.last_request
    assert (seen.path, seen.query, seen.body) == ("/v1/messages/count_tokens", BETA_QUERY, sent[-1].content)
    assert seen.headers["anthropic-beta"] == sent[-1].headers["anthropic-beta"]  # the SDK adds token-counting


def test_count_tokens_for_gemini_is_gemini_count_translated_both_ways(
    stack: GatewayStack, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue(json_reply({"totalTokens": 321, "promptTokensDetails": []}, 200, GEMINI_JSON))
    count = _client(stack).messages.count_tokens(
        model="gemini-2.5-flash", system="be brief", messages=CONVERSATION, tools=TOOLS[:1]
    )
    assert count.input_tokens == 321
    seen = fake_gemini.last_request
    assert seen.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    inner = seen.json["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert [p["text"] for p in inner["systemInstruction"]["parts"]] == [
        "be brief",
        "Answer in one line.",
        "The user prefers French.",
    ]
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "Read"


def test_count_tokens_error_from_gemini_reaches_the_client_in_anthropics_format(
    stack: GatewayStack, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue_fixture("gemini/error-404-unknown-model.response.json")
    with pytest.raises(anthropic.NotFoundError) as info:
        _client(stack).messages.count_tokens(model="gemini-nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert fake_gemini.last_request.path == "/v1beta/models/gemini-nope:countTokens"  # the provider's own 404


@pytest.mark.parametrize("model", ["gpt-5", "pool-1"])
def test_count_tokens_elsewhere_is_an_estimate_marked_as_one(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    raw = _client(stack).messages.with_raw_response.count_tokens(
        model=model, messages=[{"role": "user", "content": "hello " * 400}]
    )
    assert raw.headers["x-gateway-token-count"] == "estimate"
    assert 300 <= raw.parse().input_tokens <= 1000
    assert fake_openai.requests == [] and fake_anthropic.requests == []


# ---------------------------------------------------------------- reasoning tokens reach every client


def test_anthropic_client_sees_openai_reasoning_tokens(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    recorded = fixture_json("openai/chat-reasoning-tokens.response.json")["usage"]
    fake_openai.enqueue_fixture("openai/chat-reasoning-tokens.response.json")
    message = _client(stack).messages.create(
        model="gpt-5", max_tokens=500, thinking={"type": "adaptive"}, messages=[{"role": "user", "content": "2+2?"}]
    )
    assert message.usage.output_tokens_details is not None
    assert (
        message.usage.output_tokens_details.thinking_tokens == recorded["completion_tokens_details"]["reasoning_tokens"]
    )


def test_anthropic_stream_sees_openai_reasoning_tokens_in_message_delta(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    usage = {
        "prompt_tokens": 7,
        "completion_tokens": 87,
        "total_tokens": 94,
        "completion_tokens_details": {"reasoning_tokens": 64},
    }
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "o"}
    frames = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "4"}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": usage},
    ]
    body = [b"data: " + orjson.dumps(f) + b"\n\n" for f in frames] + [b"data: [DONE]\n\n"]
    fake_openai.enqueue(Reply(content_type=SSE_UTF8, chunks=body))
    with _client(stack).messages.stream(
        model="gpt-5", max_tokens=500, messages=[{"role": "user", "content": "2+2?"}]
    ) as events:
        message = events.get_final_message()
    assert message.usage.output_tokens == 87
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 64


def test_anthropic_client_sees_gemini_thoughts(stack: GatewayStack, fake_gemini: FakeGemini) -> None:
    recorded = fixture_json("gemini/generate-thinking.response.json")["usageMetadata"]
    fake_gemini.enqueue_fixture("gemini/generate-thinking.response.json")
    message = _client(stack).messages.create(
        model="gemini-2.5-flash", max_tokens=500, messages=[{"role": "user", "content": "why?"}]
    )
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == recorded["thoughtsTokenCount"]


def _anthropic_thinking_answer() -> Reply:
    answer = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "4"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 9, "output_tokens": 300, "output_tokens_details": {"thinking_tokens": 250}},
    }
    return json_reply(answer)


def test_openai_client_sees_anthropic_thinking_tokens(stack: GatewayStack, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(_anthropic_thinking_answer())
    completion = openai_client(stack.base_url).chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "2+2?"}]
    )
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 250


def test_gemini_client_sees_anthropic_thinking_tokens(stack: GatewayStack, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(_anthropic_thinking_answer())
    client: genai.Client = gemini_client(stack.base_url)
    answer = client.models.generate_content(model="claude-sonnet-4-6", contents="2+2?")
    assert answer.usage_metadata is not None and answer.usage_metadata.thoughts_token_count == 250


# ---------------------------------------------------------------- what a client's words can grow


def test_a_hostile_type_name_cannot_inject_a_response_header(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    """An unknown tool type is the client's word: it reaches x-gateway-dropped-features only as a safe name."""
    raw = _client(stack).messages.with_raw_response.create(
        model="gpt-5",
        max_tokens=20,
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "x\r\nset-cookie: stolen=1", "name": "t"}],  # type: ignore[list-item]
    )
    assert raw.http_response.status_code == 200
    assert "set-cookie" not in raw.headers
    assert raw.headers[DROPPED] == "tools.other"


def test_many_unknown_types_cannot_grow_the_header_or_the_metrics_without_bound(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    blocks = [{"type": f"kind{i}"} for i in range(300)]
    raw = _client(stack).messages.with_raw_response.create(
        model="gpt-5", max_tokens=20, messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, *blocks]}]
    )
    assert raw.http_response.status_code == 200
    named = raw.headers[DROPPED].split(",")
    assert named[:2] == ["content.kind0", "content.kind1"] and named[-1] == "+268-more" and len(named) == 33
    labels = {s.labels["feature"] for s in samples(stack, "gateway_features_dropped_total")}
    assert len(labels) <= 257 and "other" in labels
