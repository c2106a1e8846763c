"""A body that repeats a field the gateway acts on is a 400 naming it, in every client API; the
same name elsewhere (a tool schema's property, a tool call's input, a nested object) and repeats
of fields the gateway does not act on are left to the provider.

Bodies are written by hand: no JSON library writes a key twice. Each is tried small (bytes.find)
and padded past 512 bytes (libc's strstr), and without libc at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from extproc.errors import GatewayError, client_status
from extproc.formats import anthropic, gemini, openai
from extproc.formats import repeated_keys as module
from extproc.formats.responses import request as responses

PAD = '"padding": "' + "x" * 2000 + '", '
USER_OPENAI = '[{"role": "user", "content": "hi"}]'
USER_GEMINI = '[{"role": "user", "parts": [{"text": "hi"}]}]'


@pytest.fixture(params=["small", "large", "large-without-libc"])
def size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "large-without-libc":
        monkeypatch.setattr(module, "_strstr", None)
    yield request.param


def _body(size: str, fields: str) -> bytes:
    """`{fields}` as the top-level object, padded past the small-body limit when `size` says so."""
    return ("{" + (PAD if size != "small" else "") + fields + "}").encode()


def _openai(body: bytes) -> Any:
    return openai.parse_request(body)


def _openai_embeddings(body: bytes) -> Any:
    return openai.parse_embedding_request(body)


def _anthropic(body: bytes) -> Any:
    return anthropic.parse_request(body)


def _responses(body: bytes) -> Any:
    return responses.parse_request(body)


def _gemini(body: bytes) -> Any:
    return gemini.parse_request(body, "m")


def _gemini_embed(body: bytes) -> Any:
    return gemini.parse_embedding_request(body, "m")


def _gemini_batch(body: bytes) -> Any:
    return gemini.parse_embedding_request(body, "m", batch=True)


OPENAI_BASE = f'"model": "gpt-4o-mini", "messages": {USER_OPENAI}'
ANTHROPIC_BASE = f'"model": "claude-x", "max_tokens": 10, "messages": {USER_OPENAI}'
GEMINI_BASE = f'"contents": {USER_GEMINI}'
RESPONSES_BASE = f'"model": "gpt-4o-mini", "input": {USER_OPENAI}'

# (parser, fields of a valid body, a repeat of one checked field put before them, the field named)
REPEATS: list[tuple[Callable[[bytes], Any], str, str, str]] = [
    (_openai, OPENAI_BASE, '"model": "o1-pro"', "model"),
    (_openai, OPENAI_BASE, '"model" :\n null', "model"),
    (_openai, OPENAI_BASE + ', "stream": false', '"stream": true', "stream"),
    (_openai, OPENAI_BASE + ', "max_tokens": 5', '"max_tokens": 4000000', "max_tokens"),
    (_openai, OPENAI_BASE + ', "max_completion_tokens": 5', '"max_completion_tokens": null', "max_completion_tokens"),
    (_openai, OPENAI_BASE, '"messages": [{"role": "user", "content": "something else"}]', "messages"),
    (_openai_embeddings, '"model": "e", "input": "a"', '"model": "other"', "model"),
    (_openai_embeddings, '"model": "e", "input": "a"', '"input": ["b", "c"]', "input"),
    (_anthropic, ANTHROPIC_BASE, '"model": "claude-opus"', "model"),
    (_anthropic, ANTHROPIC_BASE, '"max_tokens": 4000000', "max_tokens"),
    (_anthropic, ANTHROPIC_BASE + ', "stream": true', '"stream": false', "stream"),
    (_anthropic, ANTHROPIC_BASE, f'"messages": {USER_OPENAI}', "messages"),
    (
        _anthropic,
        ANTHROPIC_BASE + ', "thinking": {"type": "enabled", "budget_tokens": 5}',
        '"thinking": {"type": "enabled", "budget_tokens": 9}',
        "thinking",
    ),
    (_responses, RESPONSES_BASE, '"model": "o1-pro"', "model"),
    (_responses, RESPONSES_BASE + ', "stream": false', '"stream": true', "stream"),
    (_responses, RESPONSES_BASE, '"input": "something else"', "input"),
    (_responses, RESPONSES_BASE + ', "max_output_tokens": 5', '"max_output_tokens": 4000000', "max_output_tokens"),
    (_gemini, GEMINI_BASE, f'"contents": {USER_GEMINI}', "contents"),
    (
        _gemini,
        GEMINI_BASE + ', "generationConfig": {"maxOutputTokens": 5}',
        '"generationConfig": {"maxOutputTokens": 4000000}',
        "generationConfig",
    ),
    (
        _gemini,
        GEMINI_BASE + ', "generation_config": {"max_output_tokens": 5}',
        '"generation_config": {}',
        "generation_config",
    ),
    (_gemini_embed, '"content": {"parts": [{"text": "a"}]}', '"content": {"parts": [{"text": "b"}]}', "content"),
    (
        _gemini_batch,
        '"requests": [{"content": {"parts": [{"text": "a"}]}}]',
        '"requests": [{"content": {"parts": [{"text": "b"}]}}]',
        "requests",
    ),
]


def _refused(parse: Callable[[bytes], Any], body: bytes) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        parse(body)
    error = caught.value
    assert (error.kind, client_status(error)) == ("invalid_request", 400)
    return error


@pytest.mark.parametrize(("parse", "fields", "repeat", "param"), REPEATS)
def test_a_checked_field_given_twice_is_a_400_naming_it(
    size: str, parse: Callable[[bytes], Any], fields: str, repeat: str, param: str
) -> None:
    parse(_body(size, fields))  # valid once
    for body in (_body(size, repeat + ", " + fields), _body(size, fields + ", " + repeat)):
        error = _refused(parse, body)
        assert error.param == param and "more than once" in error.message


# (parser, body fields whose nested object repeats a checked token field, the field named)
NESTED_REPEATS: list[tuple[Callable[[bytes], Any], str, str]] = [
    (
        _anthropic,
        ANTHROPIC_BASE + ', "thinking": {"type": "enabled", "budget_tokens": 900000, "budget_tokens": 5}',
        "thinking.budget_tokens",
    ),
    (
        _gemini,
        GEMINI_BASE + ', "generationConfig": {"maxOutputTokens": 4000000, "maxOutputTokens": 5}',
        "generationConfig.maxOutputTokens",
    ),
    (
        _gemini,
        GEMINI_BASE + ', "generationConfig": {"thinkingConfig": {"thinkingBudget": "-1", "thinkingBudget": 0}}',
        "generationConfig.thinkingConfig.thinkingBudget",
    ),
]


@pytest.mark.parametrize(("parse", "fields", "param"), NESTED_REPEATS)
def test_a_token_field_repeated_in_its_own_object_is_a_400(
    size: str, parse: Callable[[bytes], Any], fields: str, param: str
) -> None:
    assert _refused(parse, _body(size, fields)).param == param


# (parser, body fields with one spelling; the other spelling of the same field; the field named)
BOTH_SPELLINGS: list[tuple[str, str, str]] = [
    ('"generationConfig": {}', '"generation_config": {}', "generationConfig"),
    ('"generationConfig": {"maxOutputTokens": 5}', "", "generationConfig.maxOutputTokens"),
    ('"generationConfig": {"thinkingConfig": {}, "thinking_config": {}}', "", "generationConfig.thinkingConfig"),
    (
        '"generationConfig": {"thinkingConfig": {"thinkingBudget": 0, "thinking_budget": 500}}',
        "",
        "generationConfig.thinkingConfig.thinkingBudget",
    ),
]


def test_a_gemini_field_given_in_both_spellings_is_a_400() -> None:
    for one, other, param in BOTH_SPELLINGS:
        if not other:  # both inside the object: snake_case beside the camelCase already there
            one = one.replace('"maxOutputTokens": 5', '"maxOutputTokens": 5, "max_output_tokens": 9')
        fields = ", ".join(part for part in (GEMINI_BASE, one, other) if part)
        error = _refused(_gemini, _body("small", fields))
        assert error.param == param and "given twice" in error.message


# Bodies the gateway must accept: the checked names inside nested objects, even twice there, and
# repeats of fields the gateway leaves to the provider.
ACCEPTED: list[tuple[Callable[[bytes], Any], str]] = [
    (  # a tool schema with a "model" property, and a "stream" one (what Claude Code's tools have)
        _openai,
        OPENAI_BASE + ', "tools": [{"type": "function", "function": {"name": "f", "parameters": '
        '{"type": "object", "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}}}}}]',
    ),
    (  # tool calls whose input names a model, twice, and repeats a key in one input
        _anthropic,
        '"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}, '
        '{"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "Agent", '
        '"input": {"model": "sonnet", "model": "opus", "max_tokens": 7}}, {"type": "tool_use", "id": "b", '
        '"name": "Agent", "input": {"model": "haiku"}}]}]',
    ),
    (  # "model" is the role of Gemini's own turns; a function call's args name a model
        _gemini,
        '"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": '
        '[{"functionCall": {"name": "f", "args": {"contents": [], "model": "x"}}}]}, {"role": "model", '
        '"parts": [{"text": "\\"model\\": \\"y\\""}]}]',
    ),
    (_openai, OPENAI_BASE + ', "temperature": 1, "temperature": 0.5, "user": "a", "user": "b"'),
    (
        _openai,
        OPENAI_BASE
        + ', "tools": [], "tools": [], "response_format": {"type": "text"}, "response_format": {"type": "text"}',
    ),
    (_anthropic, ANTHROPIC_BASE + ', "system": "a", "system": "b", "tools": [], "tools": []'),
    (_gemini, GEMINI_BASE + ', "systemInstruction": "a", "system_instruction": "b", "tools": [], "tools": []'),
    (_openai, OPENAI_BASE + ', "messages_note": "x", "stream_options": {}, "stream_options": {}'),
    (  # a function call's arguments and a tool schema naming the checked fields
        _responses,
        RESPONSES_BASE[:-1] + ', {"type": "function_call", "call_id": "c", "name": "f", '
        '"arguments": "{\\"model\\": \\"x\\"}"}], "tools": [{"type": "function", "name": "f", "parameters": '
        '{"type": "object", "properties": {"model": {"type": "string"}, "input": {"type": "string"}}}}]',
    ),
    (_responses, RESPONSES_BASE + ', "instructions": "a", "instructions": "b", "metadata": {}, "metadata": {}'),
    (_anthropic, ANTHROPIC_BASE + ', "metadata": {}, "metadata": {"user_id": "u"}, "top_k": 1, "top_k": 2'),
    (_gemini, GEMINI_BASE + ', "safetySettings": [], "safetySettings": [], "generationConfig": {"topK": 1, "topK": 2}'),
]


@pytest.mark.parametrize(("parse", "fields"), ACCEPTED)
def test_the_same_name_nested_or_an_unchecked_repeat_is_accepted(
    size: str, parse: Callable[[bytes], Any], fields: str
) -> None:
    parse(_body(size, fields))


def test_a_repeat_whose_value_no_provider_would_take_is_left_to_the_provider() -> None:
    """An object where the model's name belongs is a type error at any provider: it cannot make
    one read a different model from the gateway's."""
    request = _openai(_body("large", '"model": {"name": "o1-pro"}, ' + OPENAI_BASE))
    assert request.model == "gpt-4o-mini"


def test_an_escaped_quote_before_a_name_is_not_taken_for_the_field() -> None:
    fields = (
        OPENAI_BASE
        + ', "x\\"model": "o1", "tools": [{"type": "function", "function": {"name": "f", '
        + ('"parameters": {"properties": {"a\\"model": {"type": "string"}}}}}]')
    )
    assert _openai(_body("large", fields)).model == "gpt-4o-mini"


def test_a_name_nested_too_often_to_look_at_each_is_decided_by_reading_the_body_again(
    size: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of nested `"model": {}` keys cost one exact reading, not a look at each."""
    readings: list[bytes] = []
    exact = module._repeated_by_renaming
    monkeypatch.setattr(
        module, "_repeated_by_renaming", lambda body, *args: readings.append(body) or exact(body, *args)
    )
    nested = ", ".join('{"model": {}}' for _ in range(5000))
    tools = f'"tools": [{{"type": "function", "function": {{"name": "f", "parameters": {{"x": [{nested}]}}}}}}]'
    assert _openai(_body(size, OPENAI_BASE + ", " + tools)).model == "gpt-4o-mini"
    assert len(readings) == 1
    error = _refused(_openai, _body(size, OPENAI_BASE + ", " + tools + ', "model": "o1-pro"'))
    assert error.param == "model"


ESCAPED_REPEATS: list[tuple[Callable[[bytes], Any], str, str]] = [
    (_openai, OPENAI_BASE + r', "mod\u0065l": "o1-pro"', "model"),
    (_openai, OPENAI_BASE + r', "max_tokens": 5, "\u006dax_tokens": 4000000', "max_tokens"),
    (_anthropic, ANTHROPIC_BASE + r', "\u006D\u0065ssages": []', "messages"),
    (_responses, RESPONSES_BASE + r', "\u0069nput": "q"', "input"),
    (
        _gemini,
        GEMINI_BASE + r', "generationConfig": {"maxOutputTokens": 5, "max\u004futputTokens": 9}',
        "generationConfig.maxOutputTokens",
    ),
]


@pytest.mark.parametrize(("parse", "fields", "param"), ESCAPED_REPEATS)
def test_a_field_repeated_with_its_name_spelled_in_escapes_is_a_400(
    size: str, parse: Callable[[bytes], Any], fields: str, param: str
) -> None:
    """`"mod\\u0065l"` is the key `model` to every JSON parser, the providers' included."""
    error = _refused(parse, _body(size, fields))
    assert error.param == param


def test_escaped_text_without_a_repeat_is_accepted_and_read_once(size: str, monkeypatch: pytest.MonkeyPatch) -> None:
    readings: list[bytes] = []
    exact = module._repeated_by_decoding
    monkeypatch.setattr(
        module, "_repeated_by_decoding", lambda body, *args: readings.append(body) or exact(body, *args)
    )
    accented = r'"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "caf\u00e9 \u00fcber \u003cb\u003e"}]'
    assert _openai(_body(size, accented)).messages[0].content[0].text == "café über <b>"
    assert readings == []  # what JSON writers escape leaves the search alone
    spelled = r'"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\u0068i"}]'
    assert _openai(_body(size, spelled)).messages[0].content[0].text == "hi"
    assert len(readings) == 1  # a spelled letter: read once more, nothing repeated
