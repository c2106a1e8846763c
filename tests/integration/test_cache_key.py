"""What the response cache keys on, attacked through the real Envoy with the official SDKs.

A provider of the client's own API is sent the client's own bytes and beta headers: a field the
canonical request does not carry, or a beta header, must get its own entry and never be answered
from the entry of the same request without it. Two client APIs share an entry where the provider
is sent the same request. A request whose key cannot be computed is answered by its provider,
uncached, never with a 500. Every miss is proven by the fake provider's request log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google.genai import types

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.base import wait_until
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.sdk_outcomes import gemini_client
from tests.support.clients import keyed_clients
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

KEYS, CLIENTS = keyed_clients({"alice": "acme"})
KEY = KEYS["alice"]


def _config(fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini) -> dict[str, Any]:
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["clients"] = CLIENTS
    config["cache"] = {"chat_ttl_s": 600}
    config["routes"] = [
        {
            "name": "pooled",
            "model": "pool-*",
            "pool": [{"provider": "openai"}, {"provider": "anthropic", "priority": 1, "model": "claude-sonnet-4-5"}],
        },
        {"name": "moving", "model": "moving-*", "provider": "openai"},
        *config["routes"],
    ]
    return config


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    config = _config(fake_openai, fake_anthropic, fake_gemini)
    stack = GatewayStack(Path(tmp_path_factory.mktemp("cache-key")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def oai(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def ant(stack: GatewayStack) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=KEY, base_url=stack.base_url, max_retries=0, timeout=20)


def ask(stack: GatewayStack, model: str, text: str, **extra: Any) -> tuple[str, httpx.Headers]:
    raw = oai(stack).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], max_tokens=50, **extra
    )
    return raw.parse().choices[0].message.content or "", raw.headers


def ask_anthropic(stack: GatewayStack, model: str, content: Any, **extra: Any) -> tuple[str, httpx.Headers]:
    raw = ant(stack).messages.with_raw_response.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": content}], **extra
    )
    block = raw.parse().content[0]
    return block.text if block.type == "text" else "", raw.headers


def stored(stack: GatewayStack, before: float) -> None:
    """Until the entry of the last answer is written (once the ext_proc closed its stream)."""
    assert wait_until(lambda: _stored_bytes(stack) > before, timeout=10)


def _stored_bytes(stack: GatewayStack) -> float:
    return metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"')


def _bypassed(stack: GatewayStack) -> float:
    return metric_sum(stack, "gateway_cache_requests_total", 'result="bypass"')


def _cached(stack: GatewayStack, model: str, text: str, **extra: Any) -> None:
    """Ask once (a miss the provider answers) and wait for the entry."""
    before = _stored_bytes(stack)
    assert ask(stack, model, text, **extra)[1]["x-gateway-cache"] == "MISS"
    stored(stack, before)


# Fields of OpenAI's Chat Completions API that change the answer and that the canonical request
# does not carry (seed it does), and one the gateway has never heard of.
OPENAI_FIELDS: dict[str, dict[str, Any]] = {
    "logit_bias": {"logit_bias": {"1734": -100}},
    "prediction": {"prediction": {"type": "content", "content": "a predicted answer"}},
    "service_tier": {"service_tier": "flex"},
    "seed": {"seed": 7},
    "a future field": {"extra_body": {"reasoning_budget_of_2027": {"tokens": 5}}},
}
# Fields that ask for answer parts a cache entry (a canonical answer) cannot hold.
OPENAI_ANSWER_FIELDS: dict[str, dict[str, Any]] = {
    "logprobs": {"logprobs": True, "top_logprobs": 3},
    "audio": {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}},
    "web search": {"web_search_options": {"search_context_size": "low"}},
    "a custom tool": {"tools": [{"type": "custom", "custom": {"name": "grep"}}]},
}


def _sent(fake: FakeOpenAI, extra: dict[str, Any]) -> bool:
    body = fake.last_request.json
    return all(body[name] == value for name, value in extra.get("extra_body", extra).items())


@pytest.mark.parametrize("field", OPENAI_FIELDS)
def test_an_openai_field_is_never_answered_from_the_entry_of_the_request_without_it(
    stack: GatewayStack, fake_openai: FakeOpenAI, field: str
) -> None:
    text = f"the answer depends on {field}"
    _cached(stack, "gpt-4o-mini", text)
    assert ask(stack, "gpt-4o-mini", text)[1]["x-gateway-cache"] == "HIT"
    assert len(fake_openai.requests) == 1

    extra = OPENAI_FIELDS[field]
    before = _stored_bytes(stack)
    _, headers = ask(stack, "gpt-4o-mini", text, **extra)
    assert headers["x-gateway-cache"] == "MISS"
    assert len(fake_openai.requests) == 2 and _sent(fake_openai, extra)  # the provider answered it
    stored(stack, before)
    assert ask(stack, "gpt-4o-mini", text, **extra)[1]["x-gateway-cache"] == "HIT"  # its own entry
    assert len(fake_openai.requests) == 2


def test_a_member_inside_the_conversation_is_never_answered_from_the_entry_without_it(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    """A participant's name and the developer role reach an OpenAI provider but not the canonical request."""
    text = "who is asking matters"

    def asked(messages: list[dict[str, str]]) -> str:
        raw = oai(stack).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, max_tokens=50
        )
        return raw.headers["x-gateway-cache"]

    system = {"role": "system", "content": "Be brief."}
    before = _stored_bytes(stack)
    assert asked([system, {"role": "user", "content": text}]) == "MISS"
    stored(stack, before)
    assert asked([system, {"role": "user", "content": text}]) == "HIT"
    assert asked([system, {"role": "user", "content": text, "name": "alice"}]) == "MISS"
    assert fake_openai.last_request.json["messages"][1]["name"] == "alice"
    assert asked([{**system, "role": "developer"}, {"role": "user", "content": text}]) == "MISS"
    assert fake_openai.last_request.json["messages"][0]["role"] == "developer"
    assert len(fake_openai.requests) == 3


@pytest.mark.parametrize("field", OPENAI_ANSWER_FIELDS)
def test_a_request_for_answer_parts_an_entry_cannot_hold_is_always_answered_by_the_provider(
    stack: GatewayStack, fake_openai: FakeOpenAI, field: str
) -> None:
    text = f"the answer carries {field}"
    _cached(stack, "gpt-4o-mini", text)
    extra = OPENAI_ANSWER_FIELDS[field]
    for asked in (2, 3):  # never from an entry, never stored
        _, headers = ask(stack, "gpt-4o-mini", text, **extra)
        assert headers["x-gateway-cache"] == "BYPASS"
        assert len(fake_openai.requests) == asked and _sent(fake_openai, extra)


def ask_responses(stack: GatewayStack, question: str, *before: Any, **extra: Any) -> tuple[str, httpx.Headers]:
    """`before`: input items ahead of the question."""
    raw = oai(stack).responses.with_raw_response.create(
        model="gpt-4o-mini", input=[*before, {"role": "user", "content": question}], max_output_tokens=50, **extra
    )
    return raw.parse().output_text, raw.headers


# Fields of the Responses API an OpenAI provider gets with the client's bytes that the canonical
# request does not carry, and ones that ask for what a cache entry cannot hold or state OpenAI keeps.
RESPONSES_FIELDS: dict[str, dict[str, Any]] = {
    "text.verbosity": {"text": {"verbosity": "low"}},
    "include": {"include": ["reasoning.encrypted_content"]},
}


def _responses_cached(stack: GatewayStack, text: str, *before: Any) -> None:
    """Ask once through the Responses API (a miss the provider answers), wait for the entry, and
    draw it."""
    stored_before = _stored_bytes(stack)
    assert ask_responses(stack, text, *before)[1]["x-gateway-cache"] == "MISS"
    stored(stack, stored_before)
    assert ask_responses(stack, text, *before)[1]["x-gateway-cache"] == "HIT"


RESPONSES_ANSWER_FIELDS: dict[str, dict[str, Any]] = {
    "a hosted tool": {"tools": [{"type": "web_search"}]},
    "log probabilities": {"include": ["message.output_text.logprobs"], "top_logprobs": 2},
    "stored state": {"store": True},
}


@pytest.mark.parametrize("field", RESPONSES_FIELDS)
def test_a_responses_field_is_never_answered_from_the_entry_of_the_request_without_it(
    stack: GatewayStack, fake_openai: FakeOpenAI, field: str
) -> None:
    text = f"a responses answer depends on {field}"
    _responses_cached(stack, text)
    assert ask_responses(stack, text, **RESPONSES_FIELDS[field])[1]["x-gateway-cache"] == "MISS"
    assert fake_openai.last_request.path == "/v1/responses" and len(fake_openai.requests) == 2


def test_a_developer_message_is_never_answered_from_the_entry_of_a_system_message(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    """Both are a system message to the canonical request; OpenAI gets the role as sent."""
    text, instruction = "whose instruction is it", "Be brief."
    _responses_cached(stack, text, {"role": "system", "content": instruction})
    assert ask_responses(stack, text, {"role": "developer", "content": instruction})[1]["x-gateway-cache"] == "MISS"
    assert fake_openai.last_request.json["input"][0]["role"] == "developer" and len(fake_openai.requests) == 2


@pytest.mark.parametrize("field", RESPONSES_ANSWER_FIELDS)
def test_a_responses_request_for_what_an_entry_cannot_hold_is_always_answered_by_the_provider(
    stack: GatewayStack, fake_openai: FakeOpenAI, field: str
) -> None:
    text = f"a responses answer carries {field}"
    _responses_cached(stack, text)
    for asked in (2, 3):  # never from an entry, never stored
        assert ask_responses(stack, text, **RESPONSES_ANSWER_FIELDS[field])[1]["x-gateway-cache"] == "BYPASS"
        assert len(fake_openai.requests) == asked


def test_the_openai_beta_header_gets_its_own_entry(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    text = "a beta feature may answer otherwise"
    _cached(stack, "gpt-4o-mini", text)
    beta = {"extra_headers": {"openai-beta": "some-feature=v2"}}
    before = _stored_bytes(stack)
    assert ask(stack, "gpt-4o-mini", text, **beta)[1]["x-gateway-cache"] == "MISS"
    assert fake_openai.last_request.headers["openai-beta"] == "some-feature=v2"
    stored(stack, before)
    assert ask(stack, "gpt-4o-mini", text, **beta)[1]["x-gateway-cache"] == "HIT"
    other = {"extra_headers": {"openai-beta": "other-feature=v1"}}
    assert ask(stack, "gpt-4o-mini", text, **other)[1]["x-gateway-cache"] == "MISS"
    assert len(fake_openai.requests) == 3


def test_the_anthropic_beta_header_and_unmodelled_fields_get_their_own_entries(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    text = "betas and service tiers"
    before = _stored_bytes(stack)
    assert ask_anthropic(stack, "claude-sonnet-4-5", text)[1]["x-gateway-cache"] == "MISS"
    stored(stack, before)
    assert ask_anthropic(stack, "claude-sonnet-4-5", text)[1]["x-gateway-cache"] == "HIT"

    beta = {"extra_headers": {"anthropic-beta": "context-1m-2025-08-07"}}
    before = _stored_bytes(stack)
    assert ask_anthropic(stack, "claude-sonnet-4-5", text, **beta)[1]["x-gateway-cache"] == "MISS"
    assert fake_anthropic.last_request.headers["anthropic-beta"] == "context-1m-2025-08-07"
    stored(stack, before)
    assert ask_anthropic(stack, "claude-sonnet-4-5", text, **beta)[1]["x-gateway-cache"] == "HIT"

    assert ask_anthropic(stack, "claude-sonnet-4-5", text, service_tier="standard_only")[1]["x-gateway-cache"] == "MISS"
    assert fake_anthropic.last_request.json["service_tier"] == "standard_only"
    cached_block = [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]
    assert ask_anthropic(stack, "claude-sonnet-4-5", cached_block)[1]["x-gateway-cache"] == "MISS"
    # Anthropic's SDKs mark beta calls with a query the gateway passes on
    assert ask_anthropic(stack, "claude-sonnet-4-5", text, extra_query={"beta": "true"})[1]["x-gateway-cache"] == "MISS"
    assert fake_anthropic.last_request.query == {"beta": "true"}
    assert len(fake_anthropic.requests) == 5


def test_gemini_safety_settings_get_their_own_entry(stack: GatewayStack, fake_gemini: FakeGemini) -> None:
    client = gemini_client(stack.base_url, KEY)
    question = "would a safety setting change this?"
    plain = types.GenerateContentConfig(max_output_tokens=50)
    before = _stored_bytes(stack)
    first = client.models.generate_content(model="gemini-2.5-flash", contents=question, config=plain)
    stored(stack, before)
    again = client.models.generate_content(model="gemini-2.5-flash", contents=question, config=plain)
    assert again.text == first.text and len(fake_gemini.requests) == 1

    safety = [
        types.SafetySetting(
            category=types.HarmCategory.HARM_CATEGORY_HARASSMENT, threshold=types.HarmBlockThreshold.BLOCK_LOW_AND_ABOVE
        )
    ]
    strict = types.GenerateContentConfig(max_output_tokens=50, safety_settings=safety)
    client.models.generate_content(model="gemini-2.5-flash", contents=question, config=strict)
    assert len(fake_gemini.requests) == 2  # the provider was asked, with the settings
    assert fake_gemini.last_request.json["safetySettings"][0]["threshold"] == "BLOCK_LOW_AND_ABOVE"


def test_chat_completions_and_messages_clients_share_an_entry_when_anthropic_is_sent_the_same_request(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    text = "one request for Anthropic, two client APIs"
    before = _stored_bytes(stack)
    answer, headers = ask(stack, "claude-sonnet-4-5", text)
    assert headers["x-gateway-cache"] == "MISS"
    stored(stack, before)
    again, headers = ask_anthropic(stack, "claude-sonnet-4-5", text)
    assert headers["x-gateway-cache"] == "HIT" and again == answer
    assert len(fake_anthropic.requests) == 1


def test_a_pool_keys_the_client_fields_a_member_of_its_own_api_is_sent(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    text = "a pool's member of the client's API gets its bytes"
    _cached(stack, "pool-1", text)
    assert ask(stack, "pool-1", text)[1]["x-gateway-cache"] == "HIT"
    assert ask(stack, "pool-1", text, logit_bias={"1734": -100})[1]["x-gateway-cache"] == "MISS"
    assert fake_openai.last_request.json["logit_bias"] == {"1734": -100}
    assert len(fake_openai.requests) == 2


def test_a_tool_schema_too_deep_to_key_is_never_a_500(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    """orjson reads 1024 levels but writes 254: such a schema once made the key raise (a 500)."""
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(300):
        schema = {"type": "object", "properties": {"inner": schema}}
    tool = {"type": "function", "function": {"name": "deep", "parameters": schema}}
    bypassed = _bypassed(stack)
    try:
        _, headers = ask(stack, "gpt-4o-mini", "a deep schema", tools=[tool], tool_choice="none")
    except openai.BadRequestError as error:  # refused as bad input where the body is read: still no 500
        assert isinstance(error.body, dict) and error.body.get("type") == "invalid_request_error"
        assert fake_openai.requests == []
    else:
        assert headers["x-gateway-cache"] == "BYPASS" and len(fake_openai.requests) == 1
        assert _bypassed(stack) == bypassed + 1


def test_a_field_too_deep_to_key_bypasses_the_cache_and_the_provider_answers(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    deep: Any = "bottom"
    for _ in range(300):
        deep = {"level": deep}
    bypassed = _bypassed(stack)
    for _ in range(2):  # never stored: each one reaches the provider
        answer, headers = ask(stack, "gpt-4o-mini", "a deep unknown field", extra_body={"future": deep})
        assert headers["x-gateway-cache"] == "BYPASS" and answer
    assert len(fake_openai.requests) == 2
    assert _bypassed(stack) == bypassed + 2


def test_the_provider_and_model_that_answer_are_in_the_key(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    """A reload that sends a route to another model, then another provider: never the old answer."""
    config = _config(fake_openai, fake_anthropic, fake_gemini)
    stack = GatewayStack(tmp_path, config, PROVIDER_ENV).start()
    try:
        _cached(stack, "moving-1", "who answers?")
        assert ask(stack, "moving-1", "who answers?")[1]["x-gateway-cache"] == "HIT"
        for change in ({"upstream_model": "gpt-5-nano"}, {"provider": "anthropic", "upstream_model": "claude-x"}):
            config["routes"][1] = {**config["routes"][1], **change}
            stack.write_config()
            assert httpx.post(stack.admin_url + "/reload", timeout=30).status_code == 200
            assert ask(stack, "moving-1", "who answers?")[1]["x-gateway-cache"] == "MISS"
        assert [r.json["model"] for r in fake_openai.requests] == ["moving-1", "gpt-5-nano"]
        assert [r.json["model"] for r in fake_anthropic.requests] == ["claude-x"]
    finally:
        stack.stop()
