"""The fake OpenAI server's Responses API speaks the real wire format: its answers and streams
parse with the official SDK and carry the fields and event sequence of OpenAI's recordings
(tests/support/responses_samples.py names them); it refuses what the real API refuses."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.providers import FakeOpenAI
from tests.support import responses_samples as rec

MODEL = "gpt-4o-mini"
TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key=fake.api_key, base_url=fake.base_url + "/v1", max_retries=0, timeout=5)


def post(fake: FakeOpenAI, body: dict[str, Any]) -> Any:
    return httpx.post(
        fake.base_url + "/v1/responses", json=body, headers={"authorization": f"Bearer {fake.api_key}"}, timeout=5
    )


def test_plain_answer_parses_with_the_sdk_and_has_the_recorded_fields(fake_openai: FakeOpenAI) -> None:
    answer = client(fake_openai).responses.create(model=MODEL, input="Hello there", instructions="Be brief.")
    assert answer.output_text == "fake-openai says: Hello there" and answer.status == "completed"
    raw = post(fake_openai, {"model": MODEL, "input": "Hello there"}).json()
    assert set(rec.response([], None)) <= set(raw)
    assert set(rec.MESSAGE_ITEM) <= set(raw["output"][0])
    assert set(raw["usage"]) == set(rec.usage(1, 1)) and raw["id"].startswith("resp_")


def test_stream_has_the_recorded_event_sequence_and_parses_with_the_sdk(fake_openai: FakeOpenAI) -> None:
    with client(fake_openai).responses.stream(model=MODEL, input="stream me") as stream:
        final = stream.get_final_response()
    assert final.output_text == "fake-openai says: stream me"
    response = post(fake_openai, {"model": MODEL, "input": "stream me", "stream": True})
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    ours = rec.events_of(response.content)
    recorded = rec.events_of(rec.text_stream(["a", "b"], rec.usage(1, 1)))
    assert [e["type"] for e in ours if e["type"] != "response.output_text.delta"] == [
        e["type"] for e in recorded if e["type"] != "response.output_text.delta"
    ]
    assert [e["sequence_number"] for e in ours] == list(range(len(ours)))
    by_type = {e["type"]: e for e in recorded}
    for event in ours:
        assert set(by_type[event["type"]]) <= set(event), event["type"]


def test_tool_call_and_namespace_and_reasoning_as_recorded(fake_openai: FakeOpenAI) -> None:
    namespace = {"type": "namespace", "name": "weather", "description": "d", "tools": [TOOL]}
    body = {"model": MODEL, "input": "Paris?", "tools": [namespace], "reasoning": {"effort": "low", "summary": "auto"}}
    answer = client(fake_openai).responses.create(**body)  # type: ignore[arg-type]
    thought, call = answer.output
    assert thought.type == "reasoning" and thought.encrypted_content and thought.summary
    assert call.type == "function_call" and (call.namespace, call.name) == ("weather", "get_weather")
    assert json.loads(call.arguments) == {"location": "Paris?"}
    assert answer.usage is not None and answer.usage.output_tokens_details.reasoning_tokens > 0
    streamed = rec.events_of(post(fake_openai, {**body, "stream": True}).content)
    recorded = rec.events_of(rec.call_stream(['{"', "x"], rec.usage(1, 1)))
    kinds = {e["type"] for e in streamed}
    assert {e["type"] for e in recorded} - {"response.reasoning_summary_part.done"} <= kinds


def test_tool_output_gets_a_text_answer(fake_openai: FakeOpenAI) -> None:
    first = client(fake_openai).responses.create(model=MODEL, input="Paris?", tools=[TOOL])
    (call,) = first.output
    assert call.type == "function_call"
    follow: Any = [
        {"role": "user", "content": "Paris?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    second = client(fake_openai).responses.create(model=MODEL, input=follow, tools=[TOOL])
    assert second.output_text == "fake-openai says: sunny"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": [{"type": "chat_message", "content": "x"}]}, "input[0].type"),
        ({"model": MODEL, "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"model": MODEL, "input": "x", "stop": ["y"]}, "stop"),
    ],
)
def test_what_the_real_api_refuses_is_a_400_naming_the_field(
    fake_openai: FakeOpenAI, body: dict[str, Any], param: str
) -> None:
    response = post(fake_openai, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == set(rec.HTTP_ERROR["error"]) and error["param"] == param


def test_unknown_model_is_a_400_naming_it_and_the_count_endpoint_counts() -> None:
    with FakeOpenAI(models=[MODEL]) as fake:
        with pytest.raises(openai.BadRequestError) as caught:
            client(fake).responses.create(model="gpt-nope", input="x")
        assert caught.value.code == "model_not_found" and caught.value.param == "model"
        counted = client(fake).responses.input_tokens.count(model=MODEL, input="three words here")
    assert counted.input_tokens > 0
