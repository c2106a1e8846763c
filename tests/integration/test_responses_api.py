"""The Responses API (`POST /v1/responses`) through the real Envoy, with the official openai SDK
(`client.responses.create`, plain and streamed, and `client.responses.stream`), served by every
provider kind: passed through to an OpenAI provider, through the canonical model to a Chat
Completions server, Anthropic, Gemini and the built-in mock, tool round trips included; and a
Responses-only provider reached by Chat Completions and Anthropic clients."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, PROVIDER_ENV, standard_config
from tests.fakes.anthropic import anthropic_error
from tests.fakes.base import GEMINI_JSON, json_reply
from tests.fakes.openai import openai_error
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.support.access_log import access_line
from tests.support.fixtures import fixture_json
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

AZURE_RESPONSES_VERSION = "2025-04-01-preview"
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "look a key up",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
        "strict": False,
    }
]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["providers"] += [
        {
            "name": "compat",
            "kind": "openai-compatible",
            "base_url": fake_openai.base_url + "/v1",
            "api_key_env": "TEST_OPENAI_KEY",
        },
        {
            "name": "responses-only",
            "kind": "openai-responses",
            "base_url": fake_openai.base_url + "/v1",
            "api_key_env": "TEST_OPENAI_KEY",
        },
        {
            "name": "azure-responses",
            "kind": "openai-compatible",
            "base_url": fake_openai.base_url,
            "api_key_env": "TEST_OPENAI_KEY",
            "azure": {"api_version": AZURE_RESPONSES_VERSION},
        },
        {
            "name": "azure-v1",
            "kind": "openai",
            "base_url": fake_openai.base_url,
            "api_key_env": "TEST_OPENAI_KEY",
            "azure": {"api_version": "v1"},
        },
        {
            "name": "strict-anthropic",
            "kind": "anthropic",
            "base_url": fake_anthropic.base_url,
            "api_key_env": "TEST_ANTHROPIC_KEY",
            "unsupported": "reject",
        },
    ]
    config["routes"] = [
        {
            "name": "openai-then-anthropic",
            "model": "pool-oa-*",
            "pool": [{"provider": "openai"}, {"provider": "anthropic", "priority": 1, "model": "claude-sonnet-4-5"}],
        },
        {
            "name": "anthropic-then-openai",
            "model": "pool-ao-*",
            "pool": [{"provider": "anthropic"}, {"provider": "openai", "priority": 1, "model": "gpt-4o-mini"}],
        },
        {"model": "compat-*", "provider": "compat"},
        {"model": "ronly-*", "provider": "responses-only"},
        {"model": "azr-*", "provider": "azure-responses"},
        {"model": "azv1-*", "provider": "azure-v1"},
        {"model": "strictclaude-*", "provider": "strict-anthropic"},
        *config["routes"],
    ]
    stack = GatewayStack(Path(tmp_path_factory.mktemp("responses")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def client(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


# model -> (what the provider is, which fake answers, the path it is asked on)
KINDS = {
    "gpt-4o-mini": ("openai", "fake_openai", "/v1/responses"),
    "compat-model": ("openai-compatible", "fake_openai", "/v1/chat/completions"),
    "claude-sonnet-4-5": ("anthropic", "fake_anthropic", "/v1/messages"),
    "gemini-2.5-flash": ("gemini", "fake_gemini", "/v1beta/models/gemini-2.5-flash:generateContent"),
    "mock-1": ("mock", None, None),
}


def fake_of(request: pytest.FixtureRequest, model: str) -> Any:
    name = KINDS[model][1]
    return request.getfixturevalue(name) if name else None


def asked_path(fake: Any, stream: bool) -> str:
    path = fake.last_request.path
    if stream and "GenerateContent" in path:
        assert path.endswith(":streamGenerateContent") and fake.last_request.query == {"alt": "sse"}
        return path.replace("streamGenerateContent", "generateContent")
    return path


@pytest.mark.parametrize("model", list(KINDS))
def test_plain_answer_from_every_provider_kind(request: pytest.FixtureRequest, stack: GatewayStack, model: str) -> None:
    answer = client(stack).responses.create(model=model, input="ping from responses", instructions="be brief")
    assert answer.status == "completed" and answer.object == "response" and answer.id.startswith("resp_")
    assert answer.output_text
    assert answer.usage is not None and answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    fake = fake_of(request, model)
    if fake is None:
        return
    assert "ping from responses" in answer.output_text
    assert asked_path(fake, False) == KINDS[model][2]


@pytest.mark.parametrize("model", list(KINDS))
def test_streamed_answer_from_every_provider_kind(
    request: pytest.FixtureRequest, stack: GatewayStack, model: str
) -> None:
    events = list(client(stack).responses.create(model=model, input="stream from responses", stream=True))
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "response.output_text.delta" in types
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert final.output_text == text and final.usage is not None and final.usage.output_tokens > 0
    fake = fake_of(request, model)
    if fake is not None:
        assert "stream from responses" in text
        assert asked_path(fake, True) == KINDS[model][2]


@pytest.mark.parametrize("model", list(KINDS))
def test_stream_helper_completes_from_every_provider_kind(stack: GatewayStack, model: str) -> None:
    with client(stack).responses.stream(model=model, input="helper") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(deltas) != ""


@pytest.mark.parametrize("model", [m for m in KINDS if m != "mock-1"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_through_every_provider_kind(
    request: pytest.FixtureRequest, stack: GatewayStack, model: str, stream: bool
) -> None:
    oai = client(stack)
    conversation: list[Any] = [{"role": "user", "content": "find the note"}]
    calls = _answer_items(oai, model, conversation, stream, "function_call")
    (call,) = calls
    assert call.name == "lookup" and json.loads(call.arguments)["key"]
    conversation += [item.model_dump(exclude_none=True) for item in calls]
    conversation.append({"type": "function_call_output", "call_id": call.call_id, "output": "the note says 42"})
    (message,) = _answer_items(oai, model, conversation, stream, "message")
    assert "the note says 42" in message.content[0].text
    sent = fake_of(request, model).last_request
    assert "the note says 42" in sent.body.decode()


def _answer_items(oai: openai.OpenAI, model: str, conversation: list[Any], stream: bool, kind: str) -> list[Any]:
    if stream:
        with oai.responses.stream(model=model, input=conversation, tools=TOOLS) as events:
            answer = events.get_final_response()
    else:
        answer = oai.responses.create(model=model, input=conversation, tools=TOOLS)
    return [item for item in answer.output if item.type == kind]


def test_openai_provider_gets_the_clients_own_bytes(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    body = {
        "model": "gpt-4o-mini",
        "input": [{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "hi"}]}],
        "tools": [{"type": "web_search", "external_web_access": True}, {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "f"}]}],
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k",
        "client_metadata": {"thread_id": "t"},
        "some_future_field": {"x": 1},
    }  # fmt: skip
    raw = json.dumps(body, indent=1).encode()  # spaces and all: the bytes go on as they are
    headers = {"content-type": "application/json", "openai-beta": "responses=v1", "authorization": "Bearer unused"}
    answer = httpx.post(stack.base_url + "/v1/responses", content=raw, headers=headers, timeout=20)
    assert answer.status_code == 200 and answer.json()["object"] == "response"
    sent = fake_openai.last_request
    assert sent.path == "/v1/responses" and sent.body == raw
    assert sent.headers["openai-beta"] == "responses=v1"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_alias_renames_only_the_model_on_passthrough(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    client(stack).responses.create(model="alias-gpt", input="x", metadata={"a": "b"})
    sent = fake_openai.last_request.json
    assert sent == {"model": "gpt-4o-real", "input": "x", "metadata": {"a": "b"}}


def test_passed_through_reasoning_and_usage_reach_the_client(stack: GatewayStack) -> None:
    answer = client(stack).responses.create(
        model="gpt-4o-mini",
        input="think",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    )
    reasoning = answer.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content and reasoning.summary
    assert answer.usage is not None and answer.usage.output_tokens_details.reasoning_tokens == 7


def test_namespaced_tool_is_flattened_for_anthropic_and_comes_back_namespaced(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    namespace = {"type": "namespace", "name": "crm", "description": "customer tools", "tools": TOOLS}
    answer = client(stack).responses.create(model="claude-sonnet-4-5", input="find it", tools=[namespace])  # type: ignore[list-item]
    (call,) = [item for item in answer.output if item.type == "function_call"]
    assert (call.namespace, call.name) == ("crm", "lookup")
    assert [tool["name"] for tool in fake_anthropic.last_request.json["tools"]] == ["crm__lookup"]


def test_hosted_tools_are_dropped_and_named_or_refused_per_policy(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    tools: Any = [*TOOLS, {"type": "web_search"}]
    raw = client(stack).responses.with_raw_response.create(model="claude-sonnet-4-5", input="q", tools=tools)
    assert raw.headers["x-gateway-dropped-features"] == "tools.web_search"
    assert [tool["name"] for tool in fake_anthropic.last_request.json["tools"]] == ["lookup"]
    sent = len(fake_anthropic.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        client(stack).responses.create(model="strictclaude-1", input="q", tools=tools)
    assert caught.value.body["param"] == "tools[1]"  # type: ignore[index]
    assert "tools.web_search" in caught.value.message
    assert len(fake_anthropic.requests) == sent


def test_stored_state_is_refused_where_the_provider_keeps_none(stack: GatewayStack, fake_gemini: FakeGemini) -> None:
    for extra, param in (({"store": True}, "store"), ({"previous_response_id": "resp_1"}, "previous_response_id")):
        with pytest.raises(openai.BadRequestError) as caught:
            client(stack).responses.create(model="gemini-2.5-flash", input="q", **extra)  # type: ignore[arg-type]
        assert caught.value.body["param"] == param  # type: ignore[index]
    assert not fake_gemini.requests
    answer = client(stack).responses.create(model="gemini-2.5-flash", input="q", store=False)
    assert answer.status == "completed"


def test_stored_responses_are_not_served(stack: GatewayStack) -> None:
    for call in (
        lambda: client(stack).responses.retrieve("resp_123"),
        lambda: client(stack).responses.delete("resp_123"),
        lambda: client(stack).responses.cancel("resp_123"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["code"] == "response_not_stored"  # type: ignore[index]


def test_input_tokens_are_counted_by_openai_and_gemini_and_estimated_elsewhere(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    counted = client(stack).responses.input_tokens.with_raw_response.count(model="gpt-4o-mini", input="count me")
    assert fake_openai.last_request.path == "/v1/responses/input_tokens"
    assert "x-gateway-token-count" not in counted.headers and counted.parse().input_tokens > 0
    fake_gemini.enqueue(json_reply({"totalTokens": 321, "promptTokensDetails": []}, 200, GEMINI_JSON))
    by_gemini = client(stack).responses.input_tokens.with_raw_response.count(
        model="gemini-2.5-flash", instructions="be brief", input="count me", tools=TOOLS
    )
    assert "x-gateway-token-count" not in by_gemini.headers and by_gemini.parse().input_tokens == 321
    inner = fake_gemini.last_request.json["generateContentRequest"]
    assert fake_gemini.last_request.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert inner["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "lookup"
    estimated = client(stack).responses.input_tokens.with_raw_response.count(
        model="claude-sonnet-4-5", input="count me"
    )
    assert estimated.headers["x-gateway-token-count"] == "estimate" and estimated.parse().input_tokens > 0
    assert not fake_anthropic.requests


def test_malformed_request_is_a_400_naming_the_field(stack: GatewayStack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(stack).responses.create(
            model="claude-sonnet-4-5", input=[{"type": "function_call_output", "output": "x"}]
        )  # type: ignore[list-item]
    body: Any = caught.value.body
    assert body["param"] == "input[0].call_id" and body["type"] == "invalid_request_error"
    assert caught.value.response.headers["x-request-id"] in body["message"]


def test_chat_and_anthropic_clients_reach_a_responses_only_provider(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    chat = client(stack).chat.completions.create(model="ronly-1", messages=[{"role": "user", "content": "via chat"}])
    assert "via chat" in (chat.choices[0].message.content or "")
    assert fake_openai.last_request.path == "/v1/responses" and fake_openai.last_request.json["store"] is False
    chunks = list(
        client(stack).chat.completions.create(
            model="ronly-1", messages=[{"role": "user", "content": "chat stream"}], stream=True, tools=[_chat_tool()]
        )
    )
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].function.name == "lookup"  # type: ignore[union-attr]
    assert json.loads("".join(c.function.arguments or "" for c in calls))["key"]  # type: ignore[union-attr]
    ant = anthropic.Anthropic(api_key="unused", base_url=stack.base_url, max_retries=0, timeout=20)
    with ant.messages.stream(
        model="ronly-1", max_tokens=50, messages=[{"role": "user", "content": "via messages"}]
    ) as s:
        message = s.get_final_message()
    assert "via messages" in message.content[0].text  # type: ignore[union-attr]
    assert message.usage.output_tokens > 0


def _chat_tool() -> Any:
    spec = TOOLS[0]
    return {"type": "function", "function": {k: spec[k] for k in ("name", "description", "parameters")}}


def test_azure_serves_responses_itself_from_its_api_version(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    answer = client(stack).responses.create(model="azr-deployment", input="azure responses")
    assert "azure responses" in answer.output_text
    sent = fake_openai.last_request
    assert (sent.path, sent.query["api-version"], sent.json["model"]) == (
        "/openai/responses",
        AZURE_RESPONSES_VERSION,
        "azr-deployment",
    )
    assert sent.headers["api-key"] == OPENAI_KEY
    older = client(stack).responses.create(model="azure-deployment", input="older azure")
    assert "older azure" in older.output_text
    assert fake_openai.last_request.path == "/openai/deployments/azure-deployment/chat/completions"


@pytest.mark.parametrize("stream", [False, True])
def test_azure_v1_api_serves_responses_on_openai_v1_responses_without_an_api_version(
    stack: GatewayStack, fake_openai: FakeOpenAI, stream: bool
) -> None:
    if stream:
        events = list(client(stack).responses.create(model="azv1-deployment", input="azure v1", stream=True))
        text = next(e for e in events if e.type == "response.completed").response.output_text
    else:
        text = client(stack).responses.create(model="azv1-deployment", input="azure v1").output_text
    assert "azure v1" in text
    sent = fake_openai.last_request
    assert (sent.path, sent.json["model"], sent.json.get("stream", False)) == (
        "/openai/v1/responses",
        "azv1-deployment",
        stream,
    )
    assert "api-version" not in sent.query
    assert sent.headers["api-key"] == OPENAI_KEY
    chat = openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)
    answer = chat.chat.completions.create(model="azv1-deployment", messages=[{"role": "user", "content": "v1 chat"}])
    assert "v1 chat" in (answer.choices[0].message.content or "")
    assert fake_openai.last_request.path == "/openai/v1/chat/completions"


def test_provider_keys_never_reach_a_responses_client(stack: GatewayStack) -> None:
    for model in ("gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"):
        raw = client(stack).responses.with_raw_response.create(model=model, input="keys?")
        seen = raw.http_response.text + json.dumps(dict(raw.headers))
        assert not any(key in seen for key in (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY))


@pytest.mark.parametrize("stream", [False, True])
def test_pool_fails_over_from_openai_to_anthropic_for_a_responses_client(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, stream: bool
) -> None:
    fake_openai.enqueue(openai_error(500, "the primary broke", type_="server_error"))
    if stream:
        events = list(client(stack).responses.create(model="pool-oa-1", input="fail over", stream=True))
        text = events[-1].response.output_text  # type: ignore[union-attr]
    else:
        text = client(stack).responses.create(model="pool-oa-1", input="fail over").output_text
    assert "fail over" in text
    assert fake_openai.last_request.path == "/v1/responses"
    sent = fake_anthropic.last_request
    assert sent.path == "/v1/messages" and sent.json["model"] == "claude-sonnet-4-5"
    assert sent.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "fail over"}]}]


def test_pool_fails_over_from_anthropic_to_openai_with_the_clients_bytes(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(anthropic_error(529, "overloaded_error", "Overloaded", "req_1"))
    tools: Any = [{"type": "web_search"}]
    answer = client(stack).responses.create(model="pool-ao-1", input="over to openai", tools=tools)
    assert "over to openai" in answer.output_text
    sent = fake_openai.last_request
    assert sent.path == "/v1/responses"
    assert sent.json == {"model": "gpt-4o-mini", "input": "over to openai", "tools": [{"type": "web_search"}]}


def test_provider_failure_mid_stream_is_response_failed_and_a_clean_end(
    stack: GatewayStack, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue_fixture("gemini/stream-error-mid-stream.response.sse")
    events = list(client(stack).responses.create(model="gemini-2.5-flash", input="go", stream=True))
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-2:] == ["error", "response.failed"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "First Second "  # type: ignore[union-attr]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None and failed.error.message
    fake_gemini.enqueue_fixture("gemini/stream-error-mid-stream.response.sse")
    with pytest.raises(RuntimeError), client(stack).responses.stream(model="gemini-2.5-flash", input="go") as stream:
        stream.get_final_response()  # the helper raises: no response.completed came


@pytest.mark.parametrize(("model", "reasoning"), [("gpt-4o-mini", 7), ("claude-sonnet-4-5", 0)])
def test_usage_of_responses_streams_reaches_the_access_line(stack: GatewayStack, model: str, reasoning: int) -> None:
    with client(stack).responses.with_streaming_response.create(
        model=model, input="count my tokens", reasoning={"effort": "low"}, stream=True
    ) as raw:
        request_id = raw.headers["x-request-id"]
        events = list(raw.parse())
    usage = events[-1].response.usage  # type: ignore[union-attr]
    line = access_line(stack, request_id)
    assert line["client_api"] == "responses" and line["status"] == 200
    assert (line["input_tokens"], line["output_tokens"]) == (usage.input_tokens, usage.output_tokens)
    assert line["reasoning_tokens"] == usage.output_tokens_details.reasoning_tokens == reasoning


def test_a_websocket_upgrade_is_refused_at_once_with_426(stack: GatewayStack) -> None:
    """Codex tries a WebSocket on /v1/responses first; a 426 has it use HTTPS at once."""
    request = (
        "GET /v1/responses HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            piece = sock.recv(65536)
            assert piece, data
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 426 ")
    error = json.loads(body)["error"]
    assert error["code"] == "websocket_not_supported" and error["type"] == "invalid_request_error"


def test_reasoning_effort_becomes_anthropic_thinking_and_gemini_thinking_config(
    stack: GatewayStack, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    client(stack).responses.create(model="claude-sonnet-4-5", input="think hard", reasoning={"effort": "high"})
    assert fake_anthropic.last_request.json["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    client(stack).responses.create(model="gemini-2.5-flash", input="think a bit", reasoning={"effort": "low"})
    assert fake_gemini.last_request.json["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024}
    client(stack).responses.create(model="gemini-2.5-flash", input="show me", reasoning={"summary": "auto"})
    assert fake_gemini.last_request.json["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}


def test_anthropic_thinking_goes_back_to_anthropic_with_its_signature(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    recorded = fixture_json("anthropic/message-thinking.response.json")["content"][0]
    fake_anthropic.enqueue_fixture("anthropic/message-thinking.response.json")
    asked: Any = [{"role": "user", "content": "How do I cross the street?"}]
    first = client(stack).responses.create(
        model="claude-sonnet-4-5", input=asked, reasoning={"effort": "low", "summary": "auto"}
    )
    reasoning = first.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == recorded["thinking"]
    follow = [
        *asked,
        *(item.model_dump(exclude_none=True) for item in first.output),
        {"role": "user", "content": "and then?"},
    ]
    client(stack).responses.create(model="claude-sonnet-4-5", input=follow, reasoning={"effort": "low"})
    turn = fake_anthropic.last_request.json["messages"][1]
    assert turn["role"] == "assistant"
    assert turn["content"][0] == {
        "type": "thinking",
        "thinking": recorded["thinking"],
        "signature": recorded["signature"],
    }


def test_geminis_call_signature_goes_back_with_its_call(stack: GatewayStack, fake_gemini: FakeGemini) -> None:
    part = fixture_json("gemini/generate-function-call-signature.response.json")["candidates"][0]["content"]["parts"][0]
    fake_gemini.enqueue_fixture("gemini/generate-function-call-signature.response.json")
    tools: Any = [{**TOOLS[0], "name": "get_capital"}]
    asked: Any = [{"role": "user", "content": "capital of France?"}]
    first = client(stack).responses.create(model="gemini-2.5-flash", input=asked, tools=tools)
    call = next(item for item in first.output if item.type == "function_call")
    follow = [
        *asked,
        *(item.model_dump(exclude_none=True) for item in first.output),
        {"type": "function_call_output", "call_id": call.call_id, "output": "Paris"},
    ]
    client(stack).responses.create(model="gemini-2.5-flash", input=follow, tools=tools)
    model_turn = fake_gemini.last_request.json["contents"][1]
    assert model_turn["role"] == "model"
    (sent_call,) = [p for p in model_turn["parts"] if "functionCall" in p]
    assert sent_call["thoughtSignature"] == part["thoughtSignature"]
    assert sent_call["functionCall"]["name"] == "get_capital"
