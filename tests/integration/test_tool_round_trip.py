"""A whole tool conversation across formats: the call the provider makes reaches the client
with an id, and the client's result goes back to the provider bound to that same call."""

from __future__ import annotations

import json

import pytest

from tests.fakes.providers import FakeProvider
from tests.integration.sdk_outcomes import openai_client
from tests.integration.test_openai_gateway import TOOLS
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration


def _calls_sent(provider: str, body: dict) -> list[tuple[str, str]]:
    """(call id, function name) of every tool call in the conversation the provider received."""
    if provider == "anthropic":
        return [
            (block["id"], block["name"])
            for message in body["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block["type"] == "tool_use"
        ]
    if provider == "gemini":
        return [
            (part["functionCall"].get("id", ""), part["functionCall"]["name"])
            for content in body["contents"]
            for part in content["parts"]
            if "functionCall" in part
        ]
    return [(c["id"], c["function"]["name"]) for m in body["messages"] for c in m.get("tool_calls") or []]


def _results_sent(provider: str, body: dict) -> list[tuple[str, str]]:
    """(call id or function name, result text) of every tool result the provider received."""
    if provider == "anthropic":
        return [
            (block["tool_use_id"], json.dumps(block["content"]))
            for message in body["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block["type"] == "tool_result"
        ]
    if provider == "gemini":
        return [
            (part["functionResponse"]["name"], json.dumps(part["functionResponse"]["response"]))
            for content in body["contents"]
            for part in content["parts"]
            if "functionResponse" in part
        ]
    return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]


@pytest.mark.parametrize(
    ("provider", "model"), [("anthropic", "claude-test-1"), ("gemini", "gemini-2.5-flash"), ("openai", "gpt-4o-mini")]
)
def test_openai_client_tool_round_trip_keeps_call_ids(
    request: pytest.FixtureRequest, gateway: GatewayStack, provider: str, model: str
) -> None:
    fake: FakeProvider = request.getfixturevalue(f"fake_{provider}")
    client = openai_client(gateway.base_url)
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=question, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.id and call.function.name == "get_weather"
    follow_up = [
        *question,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(model=model, messages=follow_up, tools=TOOLS)
    assert second.choices[0].message.content
    sent = fake.requests[-1].json
    calls = _calls_sent(provider, sent)
    results = _results_sent(provider, sent)
    assert [name for _, name in calls] == ["get_weather"]
    assert len(results) == 1 and "sunny, 21 C" in results[0][1]
    if provider == "gemini":
        assert results[0][0] == "get_weather"  # Gemini binds results by function name
    else:
        assert results[0][0] == calls[0][0] == call.id  # the provider's own id, round-tripped
