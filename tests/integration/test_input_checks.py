"""The request-body checks the gateway needs for its own decisions, attacked through the real
Envoy with the official SDKs (raw HTTP where no SDK will send the value): token fields out of
bounds, schemas nested past what the gateway can write again, and fields given twice. Each is a
400 in the client's own format with the request id, and never reaches a provider, also when
client and provider speak the same API and the client's bytes would be forwarded as they are.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from extproc.formats.input_bounds import MAX_SCHEMA_DEPTH, MAX_TOKENS
from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.sdk_outcomes import anthropic_client, gemini_client, openai_client
from tests.support.clients import keyed_clients
from tests.support.fixtures import fixture_json
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

KEYS, CLIENTS = keyed_clients({"alice": "acme", "limited": "acme"})
CLIENTS[1]["models"] = ["gpt-*"]
HI = [{"role": "user", "content": "hi"}]
TOKEN_BUDGET = 100_000


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["clients"] = CLIENTS
    config["routes"] = [
        {"model": "gpt-tok-*", "provider": "openai", "cache_ttl_s": 0},
        {"model": "renamed-gpt", "provider": "openai", "upstream_model": "gpt-4o-real", "cache_ttl_s": 0},
        *config["routes"],
    ]
    config["cache"] = {"chat_ttl_s": 600}  # the key is computed for every cacheable request
    config["limits"] = {
        "rules": [
            {
                "name": "token-budget",
                "key": ["client"],
                "match": {"models": ["gpt-tok-*"]},
                "tokens": TOKEN_BUDGET,
                "window_s": 3_600_000,
            }
        ]
    }
    stack = GatewayStack(Path(tmp_path_factory.mktemp("input-checks")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def _no_provider_saw_it(*fakes: FakeOpenAI | FakeAnthropic | FakeGemini) -> None:
    assert all(fake.requests == [] for fake in fakes)


def _openai_refusal(raised: pytest.ExceptionInfo[openai.BadRequestError], param: str) -> str:
    error = raised.value
    assert error.status_code == 400
    assert error.body["type"] == "invalid_request_error" and error.body["param"] == param
    request_id = error.response.headers["x-request-id"]
    assert request_id and f"(request id: {request_id})" in error.body["message"]
    return str(error.body["message"])


def _anthropic_refusal(raised: pytest.ExceptionInfo[anthropic.BadRequestError], field: str) -> None:
    error = raised.value
    assert error.status_code == 400
    assert error.body["type"] == "error" and error.body["error"]["type"] == "invalid_request_error"
    assert field in error.body["error"]["message"]
    assert error.body["request_id"] == error.response.headers["x-request-id"]


def _gemini_refusal(raised: pytest.ExceptionInfo[genai_errors.ClientError], field: str) -> None:
    error = raised.value
    assert error.code == 400 and error.status == "INVALID_ARGUMENT"
    assert field in error.details["error"]["message"]
    assert error.details["error"]["details"][0]["metadata"]["request_id"]


# ---------------------------------------------------------------- token fields


def test_a_negative_max_tokens_is_refused_and_cannot_lock_the_token_bucket(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    """Once accepted, -10^12 made the reservation negative: the take refilled the bucket and the
    settle then charged 10^12 tokens of debt, locking the client out for about a year."""
    client = openai_client(stack.base_url, KEYS["alice"])
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-tok-1", messages=HI, max_tokens=-1_000_000_000_000)
    assert "'max_tokens' must be a positive integer" in _openai_refusal(raised, "max_tokens")
    _no_provider_saw_it(fake_openai)
    answered = client.chat.completions.with_raw_response.create(model="gpt-tok-1", messages=HI, max_tokens=10)
    assert answered.http_response.status_code == 200
    assert 0 < TOKEN_BUDGET - int(answered.headers["x-ratelimit-remaining-tokens"]) < 100


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [0, -1, MAX_TOKENS + 1])
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-test-1"])  # same API, translated
def test_openai_token_fields_out_of_bounds_are_400s_naming_them(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, field: str, value: int, model: str
) -> None:
    client = openai_client(stack.base_url, KEYS["alice"])
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=HI, **{field: value})
    assert str(MAX_TOKENS) in _openai_refusal(raised, field)
    _no_provider_saw_it(fake_openai, fake_anthropic)


@pytest.mark.parametrize("stream", [False, True])
def test_a_negative_max_output_tokens_is_refused_and_cannot_lock_the_token_bucket(
    stack: GatewayStack, fake_openai: FakeOpenAI, stream: bool
) -> None:
    """The Responses API's token field, on the same-API path (the client's bytes go to OpenAI)."""
    client = openai_client(stack.base_url, KEYS["alice"])
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-tok-1", input="hi", max_output_tokens=-1_000_000_000_000, stream=stream)
    assert "'max_output_tokens' must be a positive integer" in _openai_refusal(raised, "max_output_tokens")
    _no_provider_saw_it(fake_openai)
    answered = client.responses.with_raw_response.create(model="gpt-tok-1", input="hi", max_output_tokens=10)
    assert answered.http_response.status_code == 200
    assert 0 < TOKEN_BUDGET - int(answered.headers["x-ratelimit-remaining-tokens"]) < 100


@pytest.mark.parametrize("value", [0, MAX_TOKENS + 1])
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-test-1"])  # same API, translated
def test_responses_max_output_tokens_out_of_bounds_is_a_400_naming_it(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, value: int, model: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(stack.base_url, KEYS["alice"]).responses.create(model=model, input="hi", max_output_tokens=value)
    assert str(MAX_TOKENS) in _openai_refusal(raised, "max_output_tokens")
    _no_provider_saw_it(fake_openai, fake_anthropic)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_tokens": -1_000_000_000_000}, "max_tokens"),
        ({"max_tokens": MAX_TOKENS + 1}, "max_tokens"),
        ({"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 0}}, "thinking.budget_tokens"),
        ({"max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": -5}}, "thinking.budget_tokens"),
    ],
)
def test_anthropic_token_fields_out_of_bounds_are_400s_in_anthropic_format(
    stack: GatewayStack, fake_anthropic: FakeAnthropic, fields: dict[str, Any], named: str
) -> None:
    client = anthropic_client(stack.base_url, KEYS["alice"])
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model="claude-test-1", messages=HI, **fields)
    _anthropic_refusal(raised, named)
    _no_provider_saw_it(fake_anthropic)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (types.GenerateContentConfig(max_output_tokens=-1_000_000_000), "maxOutputTokens"),
        (types.GenerateContentConfig(max_output_tokens=0), "maxOutputTokens"),
        (types.GenerateContentConfig(max_output_tokens=MAX_TOKENS + 1), "maxOutputTokens"),
        (types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=-2)), "thinkingBudget"),
    ],
)
def test_gemini_token_fields_out_of_bounds_are_400s_in_gemini_format(
    stack: GatewayStack, fake_gemini: FakeGemini, config: types.GenerateContentConfig, named: str
) -> None:
    client = gemini_client(stack.base_url, KEYS["alice"])
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
    _gemini_refusal(raised, named)
    _no_provider_saw_it(fake_gemini)


@pytest.mark.parametrize("budget", [-1, 0])
def test_gemini_thinking_budgets_of_minus_1_and_0_keep_their_meaning_and_pass(
    stack: GatewayStack, fake_gemini: FakeGemini, budget: int
) -> None:
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=budget))
    client = gemini_client(stack.base_url, KEYS["alice"])  # held: the SDK closes its HTTP client when collected
    client.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
    thinking = fake_gemini.requests[-1].json["generationConfig"]["thinkingConfig"]
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == budget  # the SDK writes snake_case


# ---------------------------------------------------------------- schemas


def _deep_schema(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for level in range(1, levels):
        schema = {"p": schema} if level % 2 == 1 else {"type": "object", "properties": schema}
    return schema


DEEP = 300  # orjson reads it, but cannot write it again: the cache key failed, a 500


@pytest.mark.parametrize("model", ["gpt-4o-mini", "alias-gpt"])  # same API; renamed for the provider
def test_an_openai_tool_schema_nested_300_levels_is_a_400_not_a_500(
    stack: GatewayStack, fake_openai: FakeOpenAI, model: str
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": _deep_schema(DEEP)}}]
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(stack.base_url, KEYS["alice"]).chat.completions.create(model=model, messages=HI, tools=tools)
    assert f"at most {MAX_SCHEMA_DEPTH} levels" in _openai_refusal(raised, "tools[0].function.parameters")
    _no_provider_saw_it(fake_openai)


def test_an_openai_response_schema_nested_300_levels_is_a_400(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "s", "schema": _deep_schema(DEEP)}}
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(stack.base_url, KEYS["alice"]).chat.completions.create(
            model="gpt-4o-mini", messages=HI, response_format=response_format
        )
    _openai_refusal(raised, "response_format.json_schema.schema")
    _no_provider_saw_it(fake_openai)


@pytest.mark.parametrize(
    ("tools", "text", "named"),
    [
        ([{"type": "function", "name": "f", "parameters": _deep_schema(DEEP)}], None, "tools[0].parameters"),
        (
            [
                {
                    "type": "namespace",
                    "name": "n",
                    "tools": [{"type": "function", "name": "f", "parameters": _deep_schema(DEEP)}],
                }
            ],
            None,
            "tools[0].tools[0].parameters",
        ),
        ([], {"format": {"type": "json_schema", "name": "s", "schema": _deep_schema(DEEP)}}, "text.format.schema"),
    ],
)
def test_a_responses_schema_nested_300_levels_is_a_400_not_a_500(
    stack: GatewayStack, fake_openai: FakeOpenAI, tools: Any, text: Any, named: str
) -> None:
    extra = {"tools": tools} if tools else {"text": text}
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(stack.base_url, KEYS["alice"]).responses.create(model="gpt-4o-mini", input="hi", **extra)
    assert f"at most {MAX_SCHEMA_DEPTH} levels" in _openai_refusal(raised, named)
    _no_provider_saw_it(fake_openai)


def test_an_anthropic_tool_schema_nested_300_levels_is_a_400(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    body = {
        "model": "claude-test-1",
        "max_tokens": 10,
        "messages": HI,
        "tools": [{"name": "f", "input_schema": _deep_schema(DEEP)}],
    }
    answer = httpx.post(  # the SDK's own walk over the schema goes no deeper than Python's recursion allows
        stack.base_url + "/v1/messages",
        content=json.dumps(body),
        headers={"x-api-key": KEYS["alice"], "anthropic-version": "2023-06-01", "content-type": "application/json"},
        timeout=20,
    )
    assert answer.status_code == 400
    error = answer.json()
    assert error["error"]["type"] == "invalid_request_error" and "tools[0].input_schema" in error["error"]["message"]
    assert error["request_id"] == answer.headers["x-request-id"]
    _no_provider_saw_it(fake_anthropic)


def test_a_gemini_function_schema_nested_300_levels_is_a_400(stack: GatewayStack, fake_gemini: FakeGemini) -> None:
    declaration = types.FunctionDeclaration(name="f", parameters_json_schema=_deep_schema(DEEP))
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])
    client = gemini_client(stack.base_url, KEYS["alice"])
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
    _gemini_refusal(raised, "parametersJsonSchema")
    _no_provider_saw_it(fake_gemini)


def test_a_field_carried_unread_too_deep_to_write_again_is_a_400_when_the_model_is_renamed(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    """The gateway forwards a field it does not know untouched, but naming the route's upstream
    model writes the body again: a value over orjson's 254 written levels was a 500."""
    client = openai_client(stack.base_url, KEYS["alice"])
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="renamed-gpt", messages=HI, extra_body={"x_unknown": _deep_schema(DEEP)})
    assert "nested too deeply" in _openai_refusal(raised, "body")
    _no_provider_saw_it(fake_openai)


def test_a_schema_at_the_bound_is_answered_with_a_cache_key(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": _deep_schema(MAX_SCHEMA_DEPTH)}}]
    client = openai_client(stack.base_url, KEYS["alice"])
    answered = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, tools=tools)
    assert answered.http_response.status_code == 200
    assert answered.headers["x-gateway-cache"] == "MISS"  # keyed, looked up, then asked
    assert len(fake_openai.requests) == 1


# ---------------------------------------------------------------- fields given twice


def _post(stack: GatewayStack, path: str, body: str, client: str = "alice") -> httpx.Response:
    headers = {"authorization": f"Bearer {KEYS[client]}", "content-type": "application/json"}
    if path.startswith("/v1/messages"):
        headers["anthropic-version"] = "2023-06-01"
    return httpx.post(stack.base_url + path, content=body.encode(), headers=headers, timeout=20)


def test_a_second_model_cannot_slip_past_the_allow_list(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    """`limited` may use gpt-* only. orjson keeps the last model (allowed); a provider keeping
    the first would have answered as the model the client is not allowed."""
    body = '{"model": "gpt-o1-pro", "messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o-mini"}'
    spelled = body.replace('], "model"', r'], "mod\u0065l"')  # the same key to every JSON parser
    responses = body.replace('"messages"', '"input"')  # the Responses API, passed through to OpenAI
    for path, named in [
        *(("/v1/chat/completions", b) for b in (body, body.replace('"gpt-o1-pro"', '"claude-test-1"'), spelled)),
        *(("/v1/responses", b) for b in (responses, responses.replace('], "model"', r'], "mod\u0065l"'))),
    ]:
        answer = _post(stack, path, named, client="limited")
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["param"] == "model" and "more than once" in error["message"]
        assert answer.headers["x-request-id"] in error["message"]
    _no_provider_saw_it(fake_openai, fake_anthropic)


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        (
            "/v1/chat/completions",
            '{"stream": true, "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],'
            ' "stream": false}',
            "stream",
        ),
        (
            "/v1/chat/completions",
            '{"max_tokens": 4000000, "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],'
            ' "max_tokens": 10}',
            "max_tokens",
        ),
        (
            "/v1/messages",
            '{"model": "claude-test-1", "max_tokens": 4000000, "messages": [{"role": "user", "content": "hi"}],'
            ' "max_tokens": 10}',
            "max_tokens",
        ),
        (
            "/v1/messages",
            '{"model": "claude-test-1", "max_tokens": 10, "messages": [{"role": "user", "content": "secret"}],'
            ' "messages": [{"role": "user", "content": "hi"}]}',
            "messages",
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            '{"contents": [{"parts": [{"text": "hi"}]}],'
            ' "generationConfig": {"maxOutputTokens": 4000000, "maxOutputTokens": 10}}',
            "generationConfig.maxOutputTokens",
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            '{"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"max_output_tokens": 4000000},'
            ' "generationConfig": {"maxOutputTokens": 10}}',
            "generationConfig",
        ),
        ("/v1/embeddings", '{"model": "gpt-e", "input": "secret", "input": "hi"}', "input"),
        ("/v1/responses", '{"stream": true, "model": "gpt-4o-mini", "input": "hi", "stream": false}', "stream"),
        ("/v1/responses", '{"model": "gpt-4o-mini", "input": "secret", "input": "hi"}', "input"),
        (
            "/v1/responses",
            '{"max_output_tokens": 4000000, "model": "claude-test-1", "input": "hi", "max_output_tokens": 10}',
            "max_output_tokens",
        ),
    ],
)
def test_a_checked_field_given_twice_is_a_400_in_the_clients_format(
    stack: GatewayStack,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    path: str,
    body: str,
    named: str,
) -> None:
    answer = _post(stack, path, body)
    assert answer.status_code == 400
    request_id = answer.headers["x-request-id"]
    error = answer.json()
    if path.startswith("/v1/messages"):
        assert error["error"]["type"] == "invalid_request_error" and error["request_id"] == request_id
        assert f"'{named}' is given" in error["error"]["message"]
    elif path.startswith("/v1beta"):
        assert error["error"]["status"] == "INVALID_ARGUMENT" and f"'{named}'" in error["error"]["message"]
        assert error["error"]["details"][0]["metadata"]["request_id"] == request_id
    else:
        assert error["error"]["param"] == named and request_id in error["error"]["message"]
    _no_provider_saw_it(fake_openai, fake_anthropic, fake_gemini)


def test_a_claude_code_request_with_model_named_in_its_tools_and_tool_calls_passes(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    """Claude Code's Agent tool has a `model` property and its calls carry a `model` input:
    the same name nested, not a repeated field."""
    body = copy.deepcopy(fixture_json("agents/claude-code-2.1.328.turn2.json")["body"])
    body["model"] = "claude-test-1"
    body["messages"] = [m for m in body["messages"] if m["role"] != "system"]
    body["messages"][1]["content"].append(
        {"type": "tool_use", "id": "toolu_f2", "name": "Agent", "input": {"prompt": "p", "model": "haiku"}}
    )
    body["messages"][2]["content"].append({"type": "tool_result", "tool_use_id": "toolu_f2", "content": "done"})
    assert json.dumps(body).count('"model"') >= 3
    answer = _post(stack, "/v1/messages?beta=true", json.dumps(body))
    assert answer.status_code == 200, answer.text
    assert fake_anthropic.requests[-1].json["model"] == "claude-test-1"
