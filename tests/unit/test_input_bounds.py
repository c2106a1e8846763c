"""Bounds on client input: counts and sizes the gateway accepts, and JSON nesting.

Every refusal is GatewayError("invalid_request") (a 400 in the client's format), never a
RecursionError, an orjson error or a provider's 503. Deep values are tried at 5000 levels
(past what orjson reads) and at 1000 (read, but deeper than orjson writes and than the
gateway's own walks go), through parsing and then rendering for every provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError, client_status
from extproc.formats import FORMATS, anthropic, gemini, openai
from extproc.formats.base import RenderOptions
from extproc.formats.limits import MAX_CHOICES, MAX_DEPTH, MAX_DIMENSIONS, MAX_EMBEDDING_INPUTS, MAX_MESSAGES
from extproc.formats.responses import request as responses

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


def _openai_chat(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "messages": [_user("openai")], **fields})


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
