"""Current Anthropic Messages requests, as Claude Code sends them: read leniently (what the canonical
model cannot carry is recorded, never refused), and their system messages, thinking and effort
rendered for each provider format.

The Claude Code requests are the recorded ones in shared/fixtures/agents, read in place.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError
from extproc.formats import anthropic, gemini, openai
from extproc.formats.canonical import ApiFeature, ChatRequest, Message, TextPart, effort_of, feature_name
from extproc.formats.render_options import RenderOptions
from tests.support.fixtures import fixture_json

CLAUDE_CODE = ["agents/claude-code-2.1.328.turn1.json", "agents/claude-code-2.1.328.turn2.json"]
OPTIONS = RenderOptions(model="target-model")


def _claude_code(name: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture_json(name)["body"])
    body["model"] = "claude-sonnet-4-6"  # the recording replaced it with a placeholder
    return body


def _parse(body: dict[str, Any], counting: bool = False) -> ChatRequest:
    return anthropic.parse_request(orjson.dumps(body), None, counting=counting)


def _minimal(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **fields}


# ---------------------------------------------------------------- Claude Code, recorded


@pytest.mark.parametrize("name", CLAUDE_CODE)
def test_claude_code_request_parses_with_its_system_message_in_place(name: str) -> None:
    body = _claude_code(name)
    req = _parse(body)
    roles = [message.role for message in req.messages]
    assert roles[:3] == ["system", "user", "system"]  # top-level system, the task, then messages[1] (system)
    assert len(req.messages[0].content) == len(body["system"])
    mid = body["messages"][1]["content"]
    mid_text = mid if isinstance(mid, str) else mid[0]["text"]
    assert req.messages[2].content == [TextPart(mid_text)]
    assert req.max_tokens == 32000 and req.stream is True
    assert req.reasoning_effort == "high"  # adaptive thinking, output_config.effort "high"
    assert req.reasoning_summary is None  # display "omitted"
    assert [tool.name for tool in req.tools] == [tool["name"] for tool in body["tools"]]


@pytest.mark.parametrize("name", CLAUDE_CODE)
def test_claude_code_request_names_what_only_anthropic_carries(name: str) -> None:
    req = _parse(_claude_code(name))
    named = {feature.name: feature for feature in req.api_features}
    assert set(named) == {"cache_control", "tools.defer_loading", "context_management"}
    assert named["tools.defer_loading"].param == "tools[10].defer_loading"
    assert named["context_management"].value == {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    assert all(feature.when_foreign == "policy" for feature in req.api_features)


def test_claude_code_second_turn_carries_the_tool_round_trip() -> None:
    req = _parse(_claude_code(CLAUDE_CODE[1]))
    assistant, result = req.messages[3], req.messages[4]
    assert assistant.role == "assistant" and assistant.tool_calls[0].name == "Read"
    assert orjson.loads(assistant.tool_calls[0].arguments) == {"file_path": "<path>"}
    assert result.role == "tool" and result.tool_call_id == "toolu_f1" and result.name == "Read"


@pytest.mark.parametrize("name", CLAUDE_CODE)
def test_claude_code_request_renders_for_openai_with_system_messages_in_place_and_the_effort(name: str) -> None:
    rendered = openai.render_request(_parse(_claude_code(name)), OPTIONS)
    body = orjson.loads(rendered.body)
    roles = [message["role"] for message in body["messages"]]
    assert roles[:3] == ["system", "user", "system"]
    assert body["reasoning_effort"] == "high"
    assert len(body["tools"]) == 12 and "context_management" not in body and b"cache_control" not in rendered.body


@pytest.mark.parametrize("name", CLAUDE_CODE)
def test_claude_code_request_renders_for_gemini_with_every_system_text_in_the_instruction(name: str) -> None:
    body = _claude_code(name)
    rendered = orjson.loads(gemini.render_request(_parse(body), OPTIONS).body)
    system_texts = [part["text"] for part in rendered["systemInstruction"]["parts"]]
    mid = body["messages"][1]["content"]
    mid_text = mid if isinstance(mid, str) else mid[0]["text"]
    assert system_texts == [block["text"] for block in body["system"]] + [mid_text]  # in conversation order
    assert all(content["role"] in ("user", "model") for content in rendered["contents"])
    assert rendered["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576}  # effort high


# ---------------------------------------------------------------- lenient where Anthropic is lenient


_TEXT = {"type": "text", "text": "t"}


@pytest.mark.parametrize(
    ("fields", "name", "param"),
    [
        ({"context_management": {"edits": []}}, "context_management", "context_management"),
        ({"container": "c_1"}, "container", "container"),
        ({"mcp_servers": [{"type": "url", "url": "https://m"}]}, "mcp_servers", "mcp_servers"),
        ({"service_tier": "auto"}, "service_tier", "service_tier"),
        ({"cache_control": {"type": "ephemeral"}}, "cache_control", "cache_control"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.web_search_20250305", "tools[0]"),
        ({"tools": [{"type": "code_execution_20250825", "name": "c"}]}, "tools.code_execution_20250825", "tools[0]"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools.bash_20250124", "tools[0]"),
        ({"tools": [{"type": "text_editor_20250728", "name": "e"}]}, "tools.text_editor_20250728", "tools[0]"),
        (
            {"tools": [{"name": "f", "input_schema": {"type": "object"}, "defer_loading": True}]},
            "tools.defer_loading",
            "tools[0].defer_loading",
        ),
        (
            {"tools": [{"name": "f", "input_schema": {"type": "object"}, "input_examples": [{}]}]},
            "tools.input_examples",
            "tools[0].input_examples",
        ),
        ({"thinking": {"type": "between_tools"}}, "thinking.between_tools", "thinking.type"),
        ({"thinking": {"type": "adaptive", "display": "verbose"}}, "thinking.display.verbose", "thinking.display"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort.extreme", "output_config.effort"),
        ({"output_config": {"verbosity": "low"}}, "output_config.verbosity", "output_config.verbosity"),
        ({"output_config": {"format": {"type": "regex"}}}, "output_config.format.regex", "output_config.format.type"),
        ({"tool_choice": {"type": "auto_with_search"}}, "tool_choice.auto_with_search", "tool_choice.type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "d"}}]}]},
            "content.document",
            "messages[0].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
            "image.source.file",
            "messages[0].content[0].source.type",
        ),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "server_tool_use"}]}]},
            "content.server_tool_use",
            "messages[1].content[0].type",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result"}]}]}]},
            "content.search_result",
            "messages[0].content[0].content[0].type",
        ),
        ({"messages": [{"role": "critic", "content": "x"}]}, "role.critic", "messages[0].role"),
        ({"system": [_TEXT, {"type": "document"}]}, "system.document", "system[1].type"),
        ({"messages": [{"role": "system", "content": [{"type": "image"}]}]}, "system.image", "messages[0].content[0].type"),
    ],
)  # fmt: skip
def test_what_the_canonical_model_cannot_carry_is_recorded_never_refused(
    fields: dict[str, Any], name: str, param: str
) -> None:
    req = _parse(_minimal(**fields))
    (feature,) = req.api_features
    assert (feature.name, feature.param, feature.when_foreign) == (name, param, "policy")


def test_a_block_the_canonical_model_cannot_carry_leaves_the_rest_of_its_message() -> None:
    content = [_TEXT, {"type": "document", "source": {}}, {"type": "text", "text": "u"}]
    req = _parse(_minimal(messages=[{"role": "user", "content": content}]))
    assert req.messages == [Message("user", [TextPart("t"), TextPart("u")])]


def test_a_cache_hint_is_named_once_however_many_blocks_carry_it() -> None:
    hint = {"type": "ephemeral"}
    req = _parse(
        _minimal(
            system=[{**_TEXT, "cache_control": hint}],
            messages=[{"role": "user", "content": [{**_TEXT, "cache_control": hint}]}],
        )
    )
    assert [(f.name, f.param) for f in req.api_features] == [("cache_control", "system[0].cache_control")]


def test_unset_options_are_no_features() -> None:
    tool = {"name": "f", "input_schema": {"type": "object"}, "defer_loading": False, "eager_input_streaming": None}
    req = _parse(_minimal(tools=[tool], service_tier=None, container=""))
    assert req.api_features == []


def test_feature_names_keep_only_what_is_safe_in_a_header() -> None:
    assert feature_name("tools.", "web_search_20250305") == "tools.web_search_20250305"
    assert feature_name("tools.", "x\r\nSet-Cookie: a=b") == "tools.other"
    assert feature_name("content.", "é") == "content.other"
    assert feature_name("content.", "a" * 65) == "content.other"
    assert feature_name("role.", 5) == "role.other"
    req = _parse(_minimal(tools=[{"type": "evil\r\ninjected: 1", "name": "x"}]))
    assert req.api_features[0].name == "tools.other"


def test_features_enter_the_cache_key_with_their_values() -> None:
    from extproc.cache.key import Forwarded, cache_key

    one = _parse(_minimal(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]))
    two = _parse(_minimal(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]))
    plain = _parse(_minimal())
    keys = {cache_key("t:a", "r", req, Forwarded()) for req in (one, two, plain)}  # the canonical request alone
    assert len(keys) == 3


# ---------------------------------------------------------------- system messages anywhere


def test_system_messages_anywhere_become_canonical_system_messages_in_place() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "system", "content": "from now on, be brief"},
        {"role": "user", "content": "c"},
    ]
    req = _parse(_minimal(system="top", messages=messages))
    assert [(m.role, m.content) for m in req.messages] == [
        ("system", [TextPart("top")]),
        ("user", [TextPart("a")]),
        ("assistant", [TextPart("b")]),
        ("system", [TextPart("from now on, be brief")]),
        ("user", [TextPart("c")]),
    ]
    assert req.api_features == []


def test_a_mid_conversation_system_message_reaches_anthropic_in_place_from_another_api() -> None:
    body = {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "top"},
            {"role": "user", "content": "a"},
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "b"},
        ],
    }
    rendered = orjson.loads(anthropic.render_request(openai.parse_request(orjson.dumps(body)), OPTIONS).body)
    assert rendered["system"] == "top"
    assert [m["role"] for m in rendered["messages"]] == ["user", "system", "user"]
    assert rendered["messages"][1]["content"] == [{"type": "text", "text": "be brief"}]


# ---------------------------------------------------------------- thinking and effort


@pytest.mark.parametrize(
    ("fields", "effort", "budget", "summary"),
    [
        ({"thinking": {"type": "adaptive"}}, "high", None, None),
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, "low", None, None),
        ({"thinking": {"type": "adaptive", "display": "summarized"}}, "high", None, "auto"),
        ({"thinking": {"type": "adaptive", "display": "omitted"}}, "high", None, None),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, None, 2048, None),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}, "output_config": {"effort": "max"}}, "high", 2048, None),
        ({"output_config": {"effort": "medium"}}, "medium", None, None),
        ({"thinking": {"type": "disabled"}, "output_config": {"effort": "medium"}}, None, None, None),
    ],
)  # fmt: skip
def test_thinking_and_effort_read_into_the_canonical_request(
    fields: dict[str, Any], effort: str | None, budget: int | None, summary: str | None
) -> None:
    req = _parse(_minimal(**fields))
    assert (req.reasoning_effort, req.thinking_budget, req.reasoning_summary) == (effort, budget, summary)
    assert req.api_features == []


@pytest.mark.parametrize(
    ("fields", "openai_effort", "gemini_thinking"),
    [
        ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, "low", {"thinkingBudget": 1024}),
        (
            {"thinking": {"type": "adaptive", "display": "summarized"}, "output_config": {"effort": "medium"}},
            "medium",
            {"thinkingBudget": 8192, "includeThoughts": True},
        ),
        ({"thinking": {"type": "enabled", "budget_tokens": 5000}}, "medium", {"thinkingBudget": 5000}),
        ({"thinking": {"type": "enabled", "budget_tokens": 20000}}, "high", {"thinkingBudget": 20000}),
    ],
)
def test_thinking_maps_to_reasoning_effort_and_thinking_config(
    fields: dict[str, Any], openai_effort: str, gemini_thinking: dict[str, Any]
) -> None:
    req = _parse(_minimal(**fields))
    assert effort_of(req) == openai_effort  # what an API with levels gets (chat reasoning_effort, reasoning.effort)
    assert orjson.loads(openai.render_request(req, OPTIONS).body)["reasoning_effort"] == openai_effort
    config = orjson.loads(gemini.render_request(req, OPTIONS).body)["generationConfig"]
    assert config["thinkingConfig"] == gemini_thinking


def test_a_summary_asked_for_elsewhere_shows_anthropic_thinking() -> None:
    req = ChatRequest("m", [Message("user", [TextPart("q")])], reasoning_effort="low", reasoning_summary="auto")
    thinking = orjson.loads(anthropic.render_request(req, OPTIONS).body)["thinking"]
    assert thinking == {"type": "enabled", "budget_tokens": 1024, "display": "summarized"}
    include = b'{"contents":[{"parts":[{"text":"q"}]}],"generationConfig":{"thinkingConfig":{"includeThoughts":true}}}'
    assert gemini.parse_request(include, "g").reasoning_summary == "auto"


# ---------------------------------------------------------------- count_tokens bodies


def test_a_count_tokens_body_needs_no_max_tokens_and_is_never_a_stream() -> None:
    body = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    req = _parse(body, counting=True)
    assert req.max_tokens is None and req.stream is False
    with pytest.raises(GatewayError) as info:
        _parse(body)
    assert info.value.param == "max_tokens"


def test_api_feature_is_the_value_the_cache_key_sees() -> None:
    feature = ApiFeature("context_management", "context_management", value={"edits": []})
    assert orjson.loads(orjson.dumps(feature)) == {
        "name": "context_management",
        "param": "context_management",
        "when_foreign": "policy",
        "value": {"edits": []},
    }
