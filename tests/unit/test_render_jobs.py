"""Each job of a provider side's render_request on its own (the conversation, the tools, the
generation config, thinking, sampling), and the rows they are written with: parameter renames,
what a provider lacks, bounds, the one function tool and schema format, and the one
drop-or-reject policy. The whole bodies are tested end to end in test_format_* and
test_provider_rendering."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError
from extproc.formats.anthropic import upstream as anthropic
from extproc.formats.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from extproc.formats.gemini import upstream as gemini
from extproc.formats.openai import upstream as openai
from extproc.formats.provider_params import (
    Bounds,
    Param,
    function_fields,
    is_given,
    lacking,
    put_params,
    schema_format_fields,
    without_lacking,
)
from extproc.formats.render_options import RenderOptions, Unsupported
from extproc.formats.responses import upstream as responses
from extproc.provider_kinds import ANTHROPIC, OPENAI, OPENAI_RESPONSES
from extproc.providers.rendering import lacks_of

SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}


def _req(**fields: Any) -> ChatRequest:
    fields.setdefault("messages", [Message("user", [TextPart("hi")])])
    return ChatRequest(model="m", **fields)


def _drop() -> Unsupported:
    return Unsupported("drop")


# --- the rows ---------------------------------------------------------------------------------


def test_put_params_sends_each_asked_field_under_the_providers_name_in_table_order() -> None:
    out: dict[str, Any] = {}
    put_params(
        _req(top_p=0.5, temperature=0.2, stop=[]),
        (Param("temperature", "temp"), Param("top_p", "topP"), Param("stop", "stops", is_given)),
        out,
    )
    assert list(out.items()) == [("temp", 0.2), ("topP", 0.5)]  # an empty stop asks for nothing


def test_without_lacking_names_each_asked_field_once_and_clears_it_in_a_copy() -> None:
    unsupported = _drop()
    lacks = lacking({"seed", "presence_penalty", "n"})
    asked = _req(n=1, seed=0, presence_penalty=0.0)
    sent = without_lacking(asked, lacks, unsupported)
    assert unsupported.dropped == ["seed"]  # n=1 and a zero penalty ask for nothing
    assert (sent.seed, sent.n, sent.presence_penalty) == (None, 1, 0.0)
    assert asked.seed == 0  # the canonical request itself is kept for a pool's other attempts
    sent = without_lacking(_req(n=2, seed=3, stop=["END"]), lacking({"n", "stop"}), unsupported)
    assert unsupported.dropped == ["seed", "stop", "n"] and (sent.n, sent.stop) == (None, [])
    unasked = _req(seed=None)
    assert without_lacking(unasked, lacks, unsupported) is unasked


def test_without_lacking_counts_parallel_tool_calls_as_asked_only_when_false() -> None:
    unsupported = _drop()
    lacks = lacking({"parallel_tool_calls"})
    without_lacking(_req(parallel_tool_calls=True), lacks, unsupported)
    without_lacking(_req(), lacks, unsupported)
    assert unsupported.dropped == []
    without_lacking(_req(parallel_tool_calls=False), lacks, unsupported)
    assert unsupported.dropped == ["parallel_tool_calls"]


def test_lacking_lists_a_records_parameters_in_one_fixed_order_and_refuses_one_without_a_row() -> None:
    assert [field for field, _ in lacking(frozenset({"top_k", "stop", "seed"}))] == ["stop", "seed", "top_k"]
    assert lacking(frozenset()) == ()
    with pytest.raises(KeyError, match="logprobs"):
        lacking({"seed", "logprobs"})


def test_without_lacking_under_reject_refuses_naming_the_field() -> None:
    with pytest.raises(GatewayError) as refused:
        without_lacking(_req(seed=1), lacking({"seed"}), Unsupported("reject"))
    assert refused.value.kind == "invalid_request" and refused.value.param == "seed"
    assert refused.value.message == "seed is not supported by this provider"


def test_unsupported_drop_names_a_feature_even_under_reject() -> None:
    unsupported = Unsupported("reject", "provider p")
    unsupported.drop("temperature")
    unsupported.drop("temperature")
    assert unsupported.dropped == ["temperature"]
    with pytest.raises(GatewayError) as refused:
        unsupported.lacks("web_search", "tools[0]")
    assert refused.value.message == "web_search is not supported by provider p" and refused.value.param == "tools[0]"


def test_bounds_move_a_value_to_the_nearer_end_keeping_its_type_unless_asked() -> None:
    assert Bounds(0.95, 1.0).clamp(0.2) == 0.95
    assert type(Bounds(0.95, 1.0).clamp(1)) is int  # sent as the client wrote it
    assert Bounds(0.0, 1.0, as_float=True).clamp(1) == 1.0
    assert type(Bounds(0.0, 1.0, as_float=True).clamp(1)) is float
    assert Bounds(0.0, 1.0, as_float=True).clamp(1.7) == 1.0


def test_function_fields_leave_out_what_is_not_set_in_the_order_apis_list_them() -> None:
    bare = function_fields({}, Tool("read"), "parameters", None, None)
    assert bare == {"name": "read"}
    full = function_fields({"type": "function"}, Tool("read", "reads a file"), "input_schema", SCHEMA, False)
    assert list(full) == ["type", "name", "description", "input_schema", "strict"]
    assert full["strict"] is False


def test_schema_format_fields_name_a_nameless_schema_response() -> None:
    assert schema_format_fields({}, ResponseFormat("json_schema")) == {"name": "response", "schema": {}}
    named = schema_format_fields({"type": "json_schema"}, ResponseFormat("json_schema", SCHEMA, "out", True))
    assert named == {"type": "json_schema", "name": "out", "schema": SCHEMA, "strict": True}


# --- Anthropic --------------------------------------------------------------------------------


def test_anthropic_conversation_lifts_leading_system_text_and_keeps_a_later_one_in_place() -> None:
    req = _req(
        messages=[
            Message("system", [TextPart("be brief")]),
            Message("user", [TextPart("hi")]),
            Message("system", [TextPart("now be verbose")]),
        ]
    )
    system, messages = anthropic.render_conversation(req, _drop())
    assert system == [{"type": "text", "text": "be brief"}]
    assert [m["role"] for m in messages] == ["user", "system"]


def test_anthropic_conversation_drops_a_system_image_once() -> None:
    unsupported = _drop()
    image = ImagePart(media_type="image/png", data="AAAA")
    req = _req(messages=[Message("system", [TextPart("x"), image, image]), Message("user", [TextPart("hi")])])
    anthropic.render_conversation(req, unsupported)
    assert unsupported.dropped == ["system_image"]


def test_anthropic_conversation_makes_call_ids_the_api_accepts_and_results_come_first() -> None:
    req = _req(
        messages=[
            Message("user", [TextPart("hi")]),
            Message("assistant", tool_calls=[ToolCall("call:1", "read", '{"path": "a"}')]),
            Message("tool", [TextPart("file a")], tool_call_id="call:1"),
        ]
    )
    _, messages = anthropic.render_conversation(req, _drop())
    use = messages[1]["content"][0]
    assert use == {"type": "tool_use", "id": "call_1", "name": "read", "input": {"path": "a"}}
    assert messages[2]["content"][0]["type"] == "tool_result"


def _thinking_body(req: ChatRequest, options: RenderOptions, unsupported: Unsupported) -> tuple[bool, dict[str, Any]]:
    body: dict[str, Any] = {"max_tokens": req.max_tokens or options.default_max_tokens}
    return anthropic.render_thinking(req, body, options, unsupported), body


def test_anthropic_thinking_makes_room_for_the_budget_when_max_tokens_was_not_asked() -> None:
    thinks, body = _thinking_body(_req(reasoning_effort="high"), RenderOptions("m"), _drop())
    assert thinks and body == {"max_tokens": 16384 + 4096, "thinking": {"type": "enabled", "budget_tokens": 16384}}


def test_anthropic_thinking_fits_the_budget_under_an_asked_max_tokens() -> None:
    thinks, body = _thinking_body(_req(reasoning_effort="high", max_tokens=2000), RenderOptions("m"), _drop())
    assert thinks and body["thinking"]["budget_tokens"] == 1999 and body["max_tokens"] == 2000


def test_anthropic_thinking_is_dropped_when_max_tokens_leaves_no_room_or_a_tool_is_forced() -> None:
    unsupported = _drop()
    thinks, body = _thinking_body(_req(thinking_budget=2048, max_tokens=500), RenderOptions("m"), unsupported)
    assert not thinks and "thinking" not in body and unsupported.dropped == ["thinking_budget"]
    forced = _req(reasoning_effort="low", tools=[Tool("read")], tool_choice=ToolChoice("required"))
    with pytest.raises(GatewayError) as refused:
        _thinking_body(forced, RenderOptions("m"), Unsupported("reject"))
    assert refused.value.param == "reasoning_effort"


def test_anthropic_thinking_shows_a_summary_when_the_client_asked_for_the_reasoning() -> None:
    _, body = _thinking_body(_req(thinking_budget=2048, reasoning_summary="auto"), RenderOptions("m"), _drop())
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048, "display": "summarized"}


def test_anthropic_sampling_clamps_without_thinking() -> None:
    body: dict[str, Any] = {}
    anthropic.render_sampling(_req(temperature=1.5, top_p=0.3, top_k=40), body, False, _drop())
    assert body == {"temperature": 1.0, "top_p": 0.3, "top_k": 40}
    body = {}
    anthropic.render_sampling(_req(temperature=0), body, False, _drop())
    assert type(body["temperature"]) is float


def test_anthropic_sampling_with_thinking_drops_what_the_api_refuses_and_raises_top_p() -> None:
    body: dict[str, Any] = {}
    unsupported = Unsupported("reject")  # dropped whatever the policy: the adaptation is faithful
    anthropic.render_sampling(_req(temperature=0.5, top_p=0.5, top_k=40), body, True, unsupported)
    assert body == {"top_p": 0.95} and unsupported.dropped == ["temperature", "top_k"]


def test_anthropic_tools_get_an_object_schema_and_the_choice_in_anthropics_words() -> None:
    body: dict[str, Any] = {}
    req = _req(
        tools=[Tool("read", "reads", {"properties": {}}, strict=True), Tool("list")],
        tool_choice=ToolChoice("required"),
        parallel_tool_calls=False,
    )
    anthropic.render_tools(req, body)
    assert body["tools"] == [
        {"name": "read", "description": "reads", "input_schema": {"type": "object", "properties": {}}, "strict": True},
        {"name": "list", "input_schema": anthropic.DEFAULT_INPUT_SCHEMA},
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_anthropic_tools_leave_out_a_choice_without_tools() -> None:
    body: dict[str, Any] = {}
    anthropic.render_tools(_req(tool_choice=ToolChoice("function", "read")), body)
    assert body == {}


def test_anthropic_request_refuses_what_it_lacks_under_reject() -> None:
    with pytest.raises(GatewayError) as refused:
        anthropic.render_request(_req(frequency_penalty=0.5), RenderOptions("m", "reject", lacks=lacks_of(ANTHROPIC)))
    assert refused.value.param == "frequency_penalty"
    rendered = anthropic.render_request(_req(n=2, seed=1, stop=["END"]), RenderOptions("m", lacks=lacks_of(ANTHROPIC)))
    assert rendered.dropped == ["n", "seed"] and orjson.loads(rendered.body)["stop_sequences"] == ["END"]


# --- Gemini -----------------------------------------------------------------------------------


def test_gemini_conversation_folds_every_system_message_and_groups_tool_results() -> None:
    req = _req(
        messages=[
            Message("system", [TextPart("a")]),
            Message("user", [TextPart("hi")]),
            Message("assistant", tool_calls=[ToolCall("c1", "read", "{}"), ToolCall("c2", "list", "{}")]),
            Message("tool", [TextPart('{"ok": true}')], tool_call_id="c1"),
            Message("tool", [TextPart("done")], tool_call_id="c2"),
            Message("system", [TextPart("b")]),
        ]
    )
    system, contents = gemini.render_conversation(req, _drop())
    assert system == [{"text": "a"}, {"text": "b"}]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    names = [p["functionResponse"]["name"] for p in contents[2]["parts"]]
    assert names == ["read", "list"]


def test_gemini_conversation_refuses_a_result_for_no_known_call() -> None:
    req = _req(messages=[Message("user", [TextPart("hi")]), Message("tool", [TextPart("x")], tool_call_id="nope")])
    with pytest.raises(GatewayError) as refused:
        gemini.render_conversation(req, _drop())
    assert refused.value.param == "messages[1].tool_call_id"


def test_gemini_tools_are_declarations_with_the_mode_in_geminis_words() -> None:
    body: dict[str, Any] = {}
    req = _req(tools=[Tool("read", "reads", SCHEMA)], tool_choice=ToolChoice("function", "read"))
    gemini.render_tools(req, body)
    assert body["tools"] == [
        {"functionDeclarations": [{"name": "read", "description": "reads", "parametersJsonSchema": SCHEMA}]}
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["read"]}}


def test_gemini_generation_config_renames_the_numbers_and_asks_for_json() -> None:
    req = _req(
        temperature=0.3,
        max_tokens=100,
        n=2,
        stop=["END"],
        response_format=ResponseFormat("json_schema", SCHEMA),
        thinking_budget=512,
    )
    config = gemini.render_generation_config(req, _drop())
    assert config == {
        "temperature": 0.3,
        "maxOutputTokens": 100,
        "candidateCount": 2,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
        "thinkingConfig": {"thinkingBudget": 512},
    }
    assert gemini.render_generation_config(_req(), _drop()) == {}


def test_gemini_thinking_config_from_an_effort_and_a_summary() -> None:
    assert gemini.render_thinking_config(_req(reasoning_effort="low", reasoning_summary="auto"), _drop()) == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }
    assert gemini.render_thinking_config(_req(reasoning_effort="none", reasoning_summary="auto"), _drop()) == {
        "thinkingBudget": 0
    }
    unsupported = _drop()
    assert gemini.render_thinking_config(_req(reasoning_effort="max"), unsupported) == {}
    assert unsupported.dropped == ["reasoning_effort"]


# --- OpenAI Chat Completions ------------------------------------------------------------------


def test_openai_message_per_role() -> None:
    unsupported = _drop()
    assert openai.render_message(Message("user", [TextPart("hi")]), unsupported) == {"role": "user", "content": "hi"}
    call = ToolCall("c1", "read", "{}")
    assert openai.render_message(Message("assistant", [ThinkingPart("hmm")], [call]), unsupported) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}],
    }
    image = ImagePart(url="https://example.com/a.png")
    tool = openai.render_message(Message("tool", [TextPart("ok"), image], tool_call_id="c1"), unsupported)
    assert tool == {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    assert unsupported.dropped == ["tool_result_image"]


def test_openai_response_format_names_a_schema() -> None:
    assert openai.render_response_format(ResponseFormat("json_object")) == {"type": "json_object"}
    assert openai.render_response_format(ResponseFormat("json_schema", SCHEMA, strict=True)) == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": SCHEMA, "strict": True},
    }


def test_openai_tools_with_their_choice_and_none_without_tools() -> None:
    body: dict[str, Any] = {}
    req = _req(
        tools=[Tool("read", parameters=SCHEMA, strict=False)],
        tool_choice=ToolChoice("function", "read"),
        parallel_tool_calls=True,
    )
    openai.render_tools(req, body)
    assert body == {
        "tools": [{"type": "function", "function": {"name": "read", "parameters": SCHEMA, "strict": False}}],
        "tool_choice": {"type": "function", "function": {"name": "read"}},
        "parallel_tool_calls": True,
    }
    body = {}
    openai.render_tools(_req(tool_choice=ToolChoice("auto"), parallel_tool_calls=True), body)
    assert body == {}  # OpenAI refuses them without tools


def test_openai_request_renames_max_tokens_and_drops_top_k() -> None:
    rendered = openai.render_request(
        _req(max_tokens=10, top_k=5, stop=["x"], seed=0), RenderOptions("gpt", lacks=lacks_of(OPENAI))
    )
    body = orjson.loads(rendered.body)
    assert body["max_completion_tokens"] == 10 and body["seed"] == 0 and body["stop"] == ["x"]
    assert "top_k" not in body and rendered.dropped == ["top_k"]


# --- OpenAI Responses API ---------------------------------------------------------------------


def test_responses_input_items_per_role() -> None:
    items = responses.render_input(
        [
            Message("user", [TextPart("hi")]),
            Message("assistant", [TextPart("reading")], [ToolCall("c1", "read", "{}")]),
            Message("tool", [TextPart("file")], tool_call_id="c1"),
        ]
    )
    assert [item["type"] for item in items] == ["message", "message", "function_call", "function_call_output"]
    assert items[3] == {"type": "function_call_output", "call_id": "c1", "output": "file"}


def test_responses_text_format_is_flat() -> None:
    assert responses.render_text_format(ResponseFormat("json_schema", SCHEMA, "out")) == {
        "type": "json_schema",
        "name": "out",
        "schema": SCHEMA,
    }
    assert responses.render_text_format(ResponseFormat("json_object")) == {"type": "json_object"}


def test_responses_tools_are_flat_and_always_have_parameters() -> None:
    body: dict[str, Any] = {}
    responses.render_tools(_req(tools=[Tool("read")], tool_choice=ToolChoice("function", "read")), body)
    assert body == {
        "tools": [{"type": "function", "name": "read", "parameters": {"type": "object", "properties": {}}}],
        "tool_choice": {"type": "function", "name": "read"},
    }


def test_responses_request_drops_what_the_api_has_no_place_for() -> None:
    req = _req(max_tokens=50, stop=["x"], n=2, seed=1, presence_penalty=0.1, frequency_penalty=0.0, top_k=3)
    rendered = responses.render_request(req, RenderOptions("gpt", lacks=lacks_of(OPENAI_RESPONSES)))
    assert orjson.loads(rendered.body)["max_output_tokens"] == 50
    assert rendered.dropped == ["stop", "n", "seed", "presence_penalty", "top_k"]
