"""Bounds on client input: counts and sizes the gateway accepts, token fields, and JSON nesting.

Every refusal is GatewayError("invalid_request") (a 400 in the client's format), never a
RecursionError, an orjson error or a provider's 503. Deep values are tried at 5000 levels
(past what orjson reads) and at 1000 (read, but deeper than orjson writes and than the
gateway's own walks go), through parsing and then rendering for every provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from extproc.cache.forwarded import forwarded
from extproc.cache.key import cache_key
from extproc.errors import GatewayError, client_status
from extproc.formats import FORMATS, anthropic, gemini, openai
from extproc.formats.input_bounds import (
    MAX_CHOICES,
    MAX_DEPTH,
    MAX_DIMENSIONS,
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    MAX_SCHEMA_DEPTH,
    MAX_TOKENS,
    ORJSON_WRITE_DEPTH,
    check_schema_depth,
)
from extproc.formats.render_options import RenderOptions
from extproc.formats.responses import request as responses
from tests.unit.test_cache_key import PROVIDERS

PARSERS = {
    "openai": openai.parse_request,
    "anthropic": anthropic.parse_request,
    "gemini": gemini.parse_request,
    "responses": responses.parse_request,
}
DEPTHS = [5000, 1000]


def _deep(depth: int) -> bytes:
    """A JSON object `depth` levels deep: {"a":{"a":...1...}}."""
    return b'{"a":' * depth + b"1" + b"}" * depth


def _deep_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _body(template: dict[str, Any], deep: bytes) -> bytes:
    """`template` as JSON with the string "DEEP" replaced by the raw deep value."""
    return orjson.dumps(template).replace(b'"DEEP"', deep)


def _user(fmt: str) -> dict[str, Any]:
    if fmt == "gemini":
        return {"role": "user", "parts": [{"text": "hi"}]}
    return {"role": "user", "content": "hi"}


# client format -> (template with "DEEP" where the deep value goes, what it is)
DEEP_TOOL_SCHEMAS: list[tuple[str, dict[str, Any]]] = [
    (
        "openai",
        {
            "model": "m",
            "messages": [_user("openai")],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": "DEEP"}}],
        },
    ),
    (
        "openai",
        {
            "model": "m",
            "messages": [_user("openai")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": "DEEP"}},
        },
    ),
    ("anthropic", {"model": "m", "max_tokens": 5, "messages": [_user("anthropic")], "tools": [
        {"name": "f", "input_schema": "DEEP"}]}),
    ("gemini", {"contents": [_user("gemini")], "tools": [{"functionDeclarations": [
        {"name": "f", "parametersJsonSchema": "DEEP"}]}]}),
    ("gemini", {"contents": [_user("gemini")], "tools": [{"functionDeclarations": [
        {"name": "f", "parameters": {"type": "OBJECT", "properties": {"p": "DEEP"}}}]}]}),
    ("responses", {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f", "parameters": "DEEP"}]}),
    ("responses", {"model": "m", "input": "hi", "tools": [{"type": "namespace", "name": "n", "tools": [
        {"type": "function", "name": "f", "parameters": "DEEP"}]}]}),
    ("responses", {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "s",
        "schema": "DEEP"}}}),
]  # fmt: skip
DEEP_MESSAGE_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("openai", {"model": "m", "messages": [{"role": "user", "content": "DEEP"}]}),
    ("openai", {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "DEEP"}]}]}),
    ("anthropic", {"model": "m", "max_tokens": 5, "messages": [_user("anthropic"), {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": "DEEP"}]}]}),
    ("anthropic", {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "DEEP"}]}),
    ("gemini", {"contents": [_user("gemini"), {"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": "DEEP"}}]}]}),
    ("gemini", {"contents": [_user("gemini"), {"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {}}}]}, {"role": "user", "parts": [
        {"functionResponse": {"name": "f", "response": "DEEP"}}]}]}),
    ("responses", {"model": "m", "input": [{"role": "user", "content": "DEEP"}]}),
    ("responses", {"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": "DEEP"}]}),
]  # fmt: skip


def _parse_and_render(fmt: str, body: bytes) -> None:
    """Parse as a client of `fmt`, then render for every provider format."""
    req = PARSERS[fmt](body, "m")
    for provider in FORMATS.values():
        provider.render_request(req, RenderOptions(model="m"))


def _refused(action: Callable[[], Any]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        action()
    error = caught.value
    assert (error.kind, client_status(error)) == ("invalid_request", 400)
    return error


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize(("fmt", "template"), DEEP_TOOL_SCHEMAS + DEEP_MESSAGE_VALUES)
def test_deeply_nested_value_is_a_400_not_a_crash(fmt: str, template: dict[str, Any], depth: int) -> None:
    for deep in (_deep(depth), _deep_list(depth)):
        _refused(lambda deep=deep: _parse_and_render(fmt, _body(template, deep)))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_body_deeper_than_orjson_reads_says_it_is_nested_too_deeply(fmt: str) -> None:
    template = next(t for f, t in DEEP_TOOL_SCHEMAS if f == fmt)
    error = _refused(lambda: PARSERS[fmt](_body(template, _deep(5000)), "m"))
    assert "nested too deeply" in error.message


def _gemini_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "STRING"}
    for _ in range(levels):
        schema = {"type": "OBJECT", "properties": {"p": schema}}
    return schema


def test_gemini_openapi_schema_conversion_stops_at_max_depth() -> None:
    def parse(levels: int) -> Any:
        tools = [{"functionDeclarations": [{"name": "f", "parameters": _gemini_schema(levels)}]}]
        return gemini.parse_request(orjson.dumps({"contents": [_user("gemini")], "tools": tools}), "m")

    assert parse(MAX_DEPTH).tools[0].parameters["properties"]["p"]["type"] == "object"
    error = _refused(lambda: parse(MAX_DEPTH + 1))
    assert "nested too deeply" in error.message and error.param and error.param.startswith("tools[0]")


def test_anthropic_tool_input_deeper_than_orjson_writes_names_the_block() -> None:
    body = _body(DEEP_MESSAGE_VALUES[2][1], _deep(300))
    error = _refused(lambda: anthropic.parse_request(body))
    assert error.param == "messages[1].content[0].input"


# ---------------------------------------------------------------- counts and sizes


def _json(value: Any) -> bytes:
    """As a client writes JSON (orjson writes at most 254 levels; the tests need deeper)."""
    return json.dumps(value).encode()


def _openai_chat(**fields: Any) -> bytes:
    return _json({"model": "m", "messages": [_user("openai")], **fields})


def test_openai_n_is_between_1_and_128() -> None:
    assert openai.parse_request(_openai_chat(n=MAX_CHOICES)).n == MAX_CHOICES
    for n in (0, -1, MAX_CHOICES + 1, 10**12):
        assert _refused(lambda n=n: openai.parse_request(_openai_chat(n=n))).param == "n"


def test_gemini_candidate_count_is_between_1_and_128_like_openais_n() -> None:
    def parse(count: int) -> Any:
        body = {"contents": [_user("gemini")], "generationConfig": {"candidateCount": count}}
        return gemini.parse_request(orjson.dumps(body), "m")

    assert parse(MAX_CHOICES).n == MAX_CHOICES
    for count in (0, -1, MAX_CHOICES + 1, 10**12):
        assert _refused(lambda count=count: parse(count)).param == "generationConfig.candidateCount"


def test_embedding_dimensions_are_positive_and_at_most_65536() -> None:
    def openai_embed(dims: int) -> Any:
        return openai.parse_embedding_request(orjson.dumps({"model": "m", "input": "x", "dimensions": dims}))

    def gemini_embed(dims: int) -> Any:
        body = {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": dims}
        return gemini.parse_embedding_request(orjson.dumps(body), "m")

    for parse in (openai_embed, gemini_embed):
        assert parse(MAX_DIMENSIONS).dimensions == MAX_DIMENSIONS
        for dims in (0, -5, MAX_DIMENSIONS + 1):
            error = _refused(lambda dims=dims, parse=parse: parse(dims))
            assert error.param in ("dimensions", "outputDimensionality")


def test_embedding_input_lists_hold_at_most_4096_items() -> None:
    texts = ["x"] * MAX_EMBEDDING_INPUTS
    assert len(openai.parse_embedding_request(orjson.dumps({"model": "m", "input": texts})).inputs) == len(texts)
    error = _refused(lambda: openai.parse_embedding_request(orjson.dumps({"model": "m", "input": [*texts, "x"]})))
    assert error.param == "input"
    requests = [{"content": {"parts": [{"text": "x"}]}}] * (MAX_EMBEDDING_INPUTS + 1)
    body = orjson.dumps({"requests": requests})
    assert _refused(lambda: gemini.parse_embedding_request(body, "m", batch=True)).param == "requests"


def test_a_request_holds_at_most_10000_messages_or_contents() -> None:
    bodies = {
        "openai": lambda k: {"model": "m", "messages": [_user("openai")] * k},
        "anthropic": lambda k: {"model": "m", "max_tokens": 5, "messages": [_user("anthropic")] * k},
        "gemini": lambda k: {"contents": [_user("gemini")] * k},
    }
    for fmt, body in bodies.items():
        parse = PARSERS[fmt]
        assert len(parse(orjson.dumps(body(MAX_MESSAGES)), "m").messages) == MAX_MESSAGES
        error = _refused(lambda parse=parse, body=body: parse(orjson.dumps(body(MAX_MESSAGES + 1)), "m"))
        assert error.param in ("messages", "contents") and str(MAX_MESSAGES) in error.message


# ---------------------------------------------------------------- token-valued fields

TOO_MANY = [0, -1, -1_000_000_000_000, MAX_TOKENS + 1]


def _gemini_config(config: dict[str, Any]) -> bytes:
    return _json({"contents": [_user("gemini")], "generationConfig": config})


# (client format, the field as the client names it, body with the field set to a value, what the request holds)
TOKEN_FIELDS: list[tuple[str, str, Callable[[Any], bytes], Callable[[Any], Any]]] = [
    ("openai", "max_tokens", lambda v: _openai_chat(max_tokens=v), lambda r: r.max_tokens),
    ("openai", "max_completion_tokens", lambda v: _openai_chat(max_completion_tokens=v), lambda r: r.max_tokens),
    (
        "anthropic",
        "max_tokens",
        lambda v: orjson.dumps({"model": "m", "max_tokens": v, "messages": [_user("anthropic")]}),
        lambda r: r.max_tokens,
    ),
    (
        "anthropic",
        "thinking.budget_tokens",
        lambda v: orjson.dumps(
            {
                "model": "m",
                "max_tokens": MAX_TOKENS,
                "thinking": {"type": "enabled", "budget_tokens": v},
                "messages": [_user("anthropic")],
            }
        ),
        lambda r: r.thinking_budget,
    ),
    (
        "gemini",
        "generationConfig.maxOutputTokens",
        lambda v: _gemini_config({"maxOutputTokens": v}),
        lambda r: r.max_tokens,
    ),
    (
        "gemini",
        "generationConfig.maxOutputTokens",  # snake_case, and an integer as a string (proto3 JSON)
        lambda v: _gemini_config({"max_output_tokens": str(v)}),
        lambda r: r.max_tokens,
    ),
    (
        "responses",
        "max_output_tokens",
        lambda v: orjson.dumps({"model": "m", "input": "hi", "max_output_tokens": v}),
        lambda r: r.max_tokens,
    ),
]


@pytest.mark.parametrize(("fmt", "param", "body", "held"), TOKEN_FIELDS)
def test_a_token_field_at_or_below_0_or_over_the_bound_is_a_400_naming_it(
    fmt: str, param: str, body: Callable[[Any], bytes], held: Callable[[Any], Any]
) -> None:
    for value in TOO_MANY:
        error = _refused(lambda value=value: PARSERS[fmt](body(value), "m"))
        assert param in error.message and str(MAX_TOKENS) in error.message
        assert error.param == param
    for value in (1, MAX_TOKENS):
        assert held(PARSERS[fmt](body(value), "m")) == value


def test_gemini_thinking_budget_keeps_its_own_meanings_of_minus_1_and_0() -> None:
    def parse(budget: Any) -> Any:
        return gemini.parse_request(_gemini_config({"thinkingConfig": {"thinkingBudget": budget}}), "m")

    assert parse(-1).thinking_budget is None  # dynamic: the model decides, as when absent
    assert parse(0).thinking_budget == 0  # thinking off
    assert parse(MAX_TOKENS).thinking_budget == MAX_TOKENS
    for budget in (-2, -1_000_000_000_000, MAX_TOKENS + 1):
        error = _refused(lambda budget=budget: parse(budget))
        assert error.param == "generationConfig.thinkingConfig.thinkingBudget"
        assert "-1 (dynamic), 0 (off)" in error.message


# ---------------------------------------------------------------- tool and response schemas


def _nested(levels: int) -> dict[str, Any]:
    """A schema `levels` JSON levels deep: objects inside `properties`, a scalar at the bottom."""
    value: Any = {"type": "string"}
    for level in range(1, levels):  # each wrapping is one level: a properties map, then its object
        value = {"p": value} if level % 2 == 1 else {"type": "object", "properties": value}
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# (client format, the schema's param, body carrying the schema)
SCHEMA_CARRIERS: list[tuple[str, str, Callable[[Any], bytes]]] = [
    (
        "openai",
        "tools[0].function.parameters",
        lambda s: _openai_chat(tools=[{"type": "function", "function": {"name": "f", "parameters": s}}]),
    ),
    (
        "openai",
        "response_format.json_schema.schema",
        lambda s: _openai_chat(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": s}}),
    ),
    (
        "anthropic",
        "tools[0].input_schema",
        lambda s: _json(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [_user("anthropic")],
                "tools": [{"name": "f", "input_schema": s}],
            }
        ),
    ),
    (
        "anthropic",
        "output_config.format.schema",
        lambda s: _json(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [_user("anthropic")],
                "output_config": {"format": {"type": "json_schema", "schema": s}},
            }
        ),
    ),
    (
        "gemini",
        "tools[0].functionDeclarations[1].parametersJsonSchema",
        lambda s: _json(
            {
                "contents": [_user("gemini")],
                "tools": [{"functionDeclarations": [{"name": "g"}, {"name": "f", "parametersJsonSchema": s}]}],
            }
        ),
    ),
    (
        "gemini",
        "tools[0].functionDeclarations[0].parameters",  # converted; values it does not know are kept as they are
        lambda s: _json(
            {
                "contents": [_user("gemini")],
                "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT", "default": s}}]}],
            }
        ),
    ),
    (
        "gemini",
        "generationConfig.responseJsonSchema",
        lambda s: _gemini_config({"responseMimeType": "application/json", "responseJsonSchema": s}),
    ),
    (
        "responses",
        "tools[1].parameters",  # after a hosted tool, which is not a canonical tool
        lambda s: _json(
            {
                "model": "m",
                "input": "hi",
                "tools": [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": s}],
            }
        ),
    ),
    (
        "responses",
        "tools[0].tools[1].parameters",
        lambda s: _json(
            {
                "model": "m",
                "input": "hi",
                "tools": [
                    {
                        "type": "namespace",
                        "name": "n",
                        "tools": [
                            {"type": "function", "name": "g"},
                            {"type": "function", "name": "f", "parameters": s},
                        ],
                    }
                ],
            }
        ),
    ),
    (
        "responses",
        "text.format.schema",
        lambda s: _json(
            {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "name": "n", "schema": s}}}
        ),
    ),
]


@pytest.mark.parametrize(("fmt", "param", "body"), SCHEMA_CARRIERS)
def test_a_schema_nested_past_the_bound_is_a_400_naming_it(fmt: str, param: str, body: Callable[[Any], bytes]) -> None:
    # 300 levels: orjson reads them and, before the bound, could not write them again (the cache key: a 500)
    for levels in (MAX_SCHEMA_DEPTH + 1, 300, ORJSON_WRITE_DEPTH + 1):
        schema = _nested(levels)
        error = _refused(lambda schema=schema: PARSERS[fmt](body(schema), "m"))
        assert error.param == param and "nested too deeply" in error.message


@pytest.mark.parametrize(("fmt", "param", "body"), SCHEMA_CARRIERS)
def test_a_schema_at_the_bound_keys_the_cache_and_renders_for_every_provider(
    fmt: str, param: str, body: Callable[[Any], bytes]
) -> None:
    wrapped = fmt == "gemini" and param.endswith(
        "].parameters"
    )  # Gemini's: the schema sits one level down, under "default"
    schema = _nested(MAX_SCHEMA_DEPTH - 1 if wrapped else MAX_SCHEMA_DEPTH)
    request = PARSERS[fmt](body(schema), "m")
    carried = request.tools[-1].parameters if request.tools else request.response_format.schema
    assert _depth(carried) == MAX_SCHEMA_DEPTH
    for provider in PROVIDERS.values():  # the client's own body walked too, where a provider of its API gets it
        assert cache_key("tenant", "route", request, forwarded(fmt, [(provider, "m")], {}, request.source))
    for provider in FORMATS.values():
        assert provider.render_request(request, RenderOptions(model="m")).body


def test_the_schema_bound_counts_levels_as_written() -> None:
    def check(*named: tuple[str, Any]) -> None:
        check_schema_depth([schema for _, schema in named], lambda: [param for param, _ in named])

    assert _depth(_nested(MAX_SCHEMA_DEPTH)) == MAX_SCHEMA_DEPTH
    check(("a", _nested(MAX_SCHEMA_DEPTH)), ("b", [[[[[1]]]]]), ("none", None))
    error = _refused(lambda: check(("a", {"x": 1}), ("b", _nested(MAX_SCHEMA_DEPTH + 1))))
    assert error.param == "b"
    listed: Any = "x"
    for _ in range(MAX_SCHEMA_DEPTH + 1):
        listed = [listed]
    assert _refused(lambda: check(("c", listed))).param == "c"


def test_a_body_renamed_for_its_provider_with_a_value_too_deep_to_write_is_a_400() -> None:
    """A field the gateway carries unread may nest as deep as orjson reads; naming the route's
    upstream model writes the body again."""
    body = _openai_chat(x_unknown=_nested(300))
    assert openai.parse_request(body).model == "m"  # carried, not read: the provider's to judge
    for fmt in ("openai", "anthropic"):
        error = _refused(lambda fmt=fmt: FORMATS[fmt].with_model(body, "upstream-model"))
        assert "nested too deeply" in error.message


def test_a_deep_schema_is_named_where_the_client_put_it_beside_tools_of_other_kinds() -> None:
    deep = _nested(MAX_SCHEMA_DEPTH + 1)
    custom = {"type": "custom", "custom": {"name": "c"}}
    body = _openai_chat(tools=[custom, {"type": "function", "function": {"name": "f", "parameters": deep}}])
    assert _refused(lambda: openai.parse_request(body)).param == "tools[1].function.parameters"
    body = _json(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [_user("anthropic")],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}, {"name": "f", "input_schema": deep}],
        }
    )
    assert _refused(lambda: anthropic.parse_request(body)).param == "tools[1].input_schema"
