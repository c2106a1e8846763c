"""The fakes' Responses API and their scripted tool round trip (fakes/script.py), read with the
official SDKs: what the real-client tests (tests/clients) rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.fakes.script import ANSWER_PREFIX, ToolRoundTrip

PATH = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
RESPONSES_TOOLS: Any = [
    {"type": "function", "name": "list_files", "parameters": {"type": "object", "properties": {}}},
    {"type": "namespace", "name": "files", "tools": [{"type": "function", "name": "read_note", "parameters": PATH}]},
    {"type": "web_search"},
]
CHAT_TOOLS: Any = [
    {"type": "function", "function": {"name": "list_files", "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "read_note", "parameters": PATH}},
]
ANTHROPIC_TOOLS: Any = [
    {"name": "list_files", "input_schema": {"type": "object", "properties": {}}},
    {"name": "read_note", "input_schema": PATH},
]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeOpenAI, FakeAnthropic, FakeGemini]]:
    with FakeOpenAI(api_key="k") as o, FakeAnthropic(api_key="k") as a, FakeGemini(api_key="k") as g:
        yield o, a, g


@pytest.fixture
def fake_openai(servers: tuple[FakeOpenAI, FakeAnthropic, FakeGemini]) -> FakeOpenAI:
    servers[0].reset()
    return servers[0]


@pytest.fixture
def fake_anthropic(servers: tuple[FakeOpenAI, FakeAnthropic, FakeGemini]) -> FakeAnthropic:
    servers[1].reset()
    return servers[1]


@pytest.fixture
def fake_gemini(servers: tuple[FakeOpenAI, FakeAnthropic, FakeGemini]) -> FakeGemini:
    servers[2].reset()
    return servers[2]


def _openai(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fake.base_url}/v1", api_key="k", max_retries=0, timeout=5)


def _read_note(fake: FakeOpenAI | FakeAnthropic | FakeGemini) -> ToolRoundTrip:
    fake.script = ToolRoundTrip("read_note", {"path": "/tmp/note.txt"})
    return fake.script


# ------------------------------------------------------------------ the Responses API


def test_responses_default_answer_echoes_the_input_plain_and_streamed(fake_openai: FakeOpenAI) -> None:
    client = _openai(fake_openai)
    plain = client.responses.create(model="gpt-4o-mini", input="hello there")
    assert plain.output_text == "fake-openai says: hello there"
    assert plain.status == "completed" and plain.usage is not None and plain.usage.output_tokens > 0
    with client.responses.stream(model="gpt-4o-mini", input="hello there") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == plain.output_text


def test_responses_stream_numbers_its_events_in_the_recorded_order(fake_openai: FakeOpenAI) -> None:
    events = list(_openai(fake_openai).responses.create(model="gpt-4o-mini", input="hi there", stream=True))
    assert [event.sequence_number for event in events] == list(range(len(events)))
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[3] == "response.content_part.added" and kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_responses_calls_the_first_function_tool_with_arguments_from_its_schema(fake_openai: FakeOpenAI) -> None:
    events = list(
        _openai(fake_openai).responses.create(model="gpt-4o-mini", input="hi", tools=RESPONSES_TOOLS, stream=True)
    )
    call = events[-1].response.output[0]  # type: ignore[union-attr]
    assert call.type == "function_call" and call.name == "list_files" and call.arguments == "{}"
    deltas = "".join(event.delta for event in events if event.type == "response.function_call_arguments.delta")
    assert deltas == call.arguments


def test_responses_answers_in_openai_error_format_for_a_missing_model(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _openai(fake_openai).responses.create(model="", input="hi")
    assert "model" in str(caught.value)


# ------------------------------------------------------------------ the scripted round trip


@pytest.mark.parametrize("stream", [False, True])
def test_script_drives_a_responses_client_through_a_namespaced_tool(fake_openai: FakeOpenAI, stream: bool) -> None:
    script = _read_note(fake_openai)
    client = _openai(fake_openai)
    first = client.responses.create(model="gpt-4o-mini", input="read it", tools=RESPONSES_TOOLS)
    call = first.output[0]
    assert call.type == "function_call" and call.name == "read_note"
    assert json.loads(call.arguments) == {"path": "/tmp/note.txt"}
    history: Any = [
        {"role": "user", "content": "read it"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "it says pelican"},
    ]
    if stream:
        with client.responses.stream(model="gpt-4o-mini", input=history, tools=RESPONSES_TOOLS) as events:
            text = events.get_final_response().output_text
    else:
        text = client.responses.create(model="gpt-4o-mini", input=history, tools=RESPONSES_TOOLS).output_text
    assert text == ANSWER_PREFIX + "it says pelican"
    assert script.offered[0] == ["list_files", "read_note"]
    assert script.results_seen == ["it says pelican"] and script.tool_calls_asked == 1


@pytest.mark.parametrize("stream", [False, True])
def test_script_drives_a_chat_completions_client(fake_openai: FakeOpenAI, stream: bool) -> None:
    script = _read_note(fake_openai)
    client = _openai(fake_openai)
    question: Any = [{"role": "user", "content": "read it"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=question, tools=CHAT_TOOLS)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "read_note" and json.loads(call.function.arguments) == {"path": "/tmp/note.txt"}  # type: ignore[union-attr]
    history: Any = [
        *question,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "it says pelican"},
    ]
    if stream:
        chunks = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=CHAT_TOOLS, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    else:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=CHAT_TOOLS)
        text = answer.choices[0].message.content or ""
    assert text == ANSWER_PREFIX + "it says pelican"
    assert script.results_seen == ["it says pelican"]


@pytest.mark.parametrize("stream", [False, True])
def test_script_drives_an_anthropic_client(fake_anthropic: FakeAnthropic, stream: bool) -> None:
    script = _read_note(fake_anthropic)
    client = anthropic.Anthropic(base_url=fake_anthropic.base_url, api_key="k", max_retries=0, timeout=5)
    question: Any = [{"role": "user", "content": "read it"}]
    first = client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=question, tools=ANTHROPIC_TOOLS)
    call = first.content[0]
    assert call.type == "tool_use" and call.name == "read_note" and call.input == {"path": "/tmp/note.txt"}
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "it says pelican"}
    history: Any = [*question, {"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    kwargs: Any = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": history, "tools": ANTHROPIC_TOOLS}
    if stream:
        with client.messages.stream(**kwargs) as events:
            text = events.get_final_text()
    else:
        text = client.messages.create(**kwargs).content[0].text  # type: ignore[union-attr]
    assert text == ANSWER_PREFIX + "it says pelican"
    assert script.results_seen == ["it says pelican"]


@pytest.mark.parametrize("stream", [False, True])
def test_script_drives_a_gemini_client(fake_gemini: FakeGemini, stream: bool) -> None:
    script = _read_note(fake_gemini)
    options = genai_types.HttpOptions(base_url=fake_gemini.base_url, timeout=5000)
    client = genai.Client(api_key="k", http_options=options)
    declaration = genai_types.FunctionDeclaration(name="read_note", parameters_json_schema=PATH)
    config = genai_types.GenerateContentConfig(tools=[genai_types.Tool(function_declarations=[declaration])])
    first = client.models.generate_content(model="gemini-2.5-flash", contents="read it", config=config)
    call = first.function_calls[0]  # type: ignore[index]
    assert call.name == "read_note" and call.args == {"path": "/tmp/note.txt"}
    history = [
        genai_types.Content(role="user", parts=[genai_types.Part(text="read it")]),
        first.candidates[0].content,  # type: ignore[index]
        genai_types.Content(
            role="user",
            parts=[genai_types.Part.from_function_response(name="read_note", response={"output": "it says pelican"})],
        ),
    ]
    if stream:
        pieces = client.models.generate_content_stream(model="gemini-2.5-flash", contents=history, config=config)
        text = "".join(piece.text or "" for piece in pieces)
    else:
        text = client.models.generate_content(model="gemini-2.5-flash", contents=history, config=config).text or ""
    assert text == ANSWER_PREFIX + "it says pelican"
    assert script.results_seen == ["it says pelican"]


def test_script_says_which_tools_were_offered_when_its_tool_is_missing(fake_openai: FakeOpenAI) -> None:
    script = ToolRoundTrip("Read", {"file_path": "/tmp/note.txt"})
    fake_openai.script = script
    answer = _openai(fake_openai).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "read it"}], tools=CHAT_TOOLS
    )
    assert answer.choices[0].message.content == "the tool 'Read' was not offered; offered: list_files, read_note"
    assert script.tool_calls_asked == 0


def test_reset_clears_the_script(fake_openai: FakeOpenAI) -> None:
    _read_note(fake_openai)
    fake_openai.reset()
    assert fake_openai.script is None
