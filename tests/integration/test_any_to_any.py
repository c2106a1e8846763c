"""Any client API served by any provider: every recorded provider answer, replayed by the
fake provider, must reach each official SDK through the gateway with the same text,
tool calls, finish reason and usage as the provider's own SDK reads straight from it."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors

from tests.fakes.providers import FakeProvider
from tests.integration.sdk_outcomes import ASK, CLIENT_KEY, Outcome
from tests.support.fixtures import SKIP_MESSAGE, fixture_entry, fixture_json, fixture_status, response_fixtures
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

CLIENTS = ["openai", "anthropic", "gemini", "responses"]
MODEL_FOR = {"openai": "gpt-4o-mini", "anthropic": "claude-test-1", "gemini": "gemini-2.5-flash"}
# Served by the gateway only as a client-side format (the gateway asks Gemini for SSE).
NOT_A_PROVIDER_ANSWER = {"gemini/stream-nonsse-json-array.response.json"}


def _answers(provider: str) -> list[str]:
    return [f for f in response_fixtures(provider) if f not in NOT_A_PROVIDER_ANSWER]


CASES = [
    pytest.param(provider, fixture, client, id=f"{fixture}->{client}")
    for provider in ("openai", "anthropic", "gemini")
    for fixture in _answers(provider)
    for client in CLIENTS
    if (provider, client)
    != ("openai", "responses")  # Chat Completions answers: an OpenAI provider is asked /v1/responses
] or [pytest.param(None, None, None, marks=pytest.mark.skip(reason=SKIP_MESSAGE))]


def _fake(request: pytest.FixtureRequest, provider: str) -> FakeProvider:
    return request.getfixturevalue(f"fake_{provider}")


def _error_expected(fixture: str) -> bool:
    return fixture_status(fixture) >= 400 or "error" in fixture


@pytest.mark.parametrize(("provider", "fixture", "client"), CASES)
def test_recorded_answer_reaches_every_client_sdk_unchanged(
    request: pytest.FixtureRequest, gateway: GatewayStack, provider: str, fixture: str, client: str
) -> None:
    fake = _fake(request, provider)
    stream = fixture.endswith(".sse")
    if _error_expected(fixture):
        _check_error(fake, gateway, provider, fixture, client, stream)
        return
    fake.enqueue_fixture(fixture)
    direct = ASK[provider](fake.base_url, MODEL_FOR[provider], stream, fake.api_key)
    fake.enqueue_fixture(fixture)
    through = ASK[client](gateway.base_url, MODEL_FOR[provider], stream)
    assert through.text == direct.text
    assert through.tool_calls == direct.tool_calls
    assert through.finish == direct.finish
    if direct.usage is None:  # the provider reported none; APIs that always carry usage show zeros
        assert through.usage in (None, (0, 0))
    else:
        assert through.usage == direct.usage
    sent = fake.requests[-1]
    assert CLIENT_KEY not in json.dumps(dict(sent.headers))


_ERRORS = {
    "openai": (openai.APIStatusError, openai.APIError),
    "responses": (openai.APIStatusError, openai.APIError),
    "anthropic": (anthropic.APIStatusError, anthropic.APIError),
    "gemini": (genai_errors.APIError,),
}


def _check_error(
    fake: FakeProvider, gateway: GatewayStack, provider: str, fixture: str, client: str, stream: bool
) -> None:
    """Provider errors come back in the client's own error type with the mapped status."""
    fake.enqueue_fixture(fixture)
    with pytest.raises(_ERRORS[client]) as raised:
        ASK[client](gateway.base_url, MODEL_FOR[provider], stream)
    status = getattr(raised.value, "status_code", None) or getattr(raised.value, "code", None)
    provider_status = fixture_status(fixture)
    if stream and provider_status == 200:
        return  # an in-band error after the stream started: the SDK raised, which is the point
    body = fixture_json(fixture) if fixture.endswith(".json") else {}
    reason = json.dumps(body)
    expected = 502 if "API_KEY_INVALID" in reason else provider_status
    assert status == expected


def _request_cases() -> list[Any]:
    cases = []
    for fmt in CLIENTS:
        for rel in _request_fixtures(fmt):
            for provider in ("openai", "anthropic", "gemini"):
                cases.append(pytest.param(rel, provider, id=f"{rel}->{provider}"))
    return cases or [pytest.param(None, None, marks=pytest.mark.skip(reason=SKIP_MESSAGE))]


def _request_fixtures(fmt: str) -> list[str]:
    from tests.support.fixtures import _index

    return sorted(rel for rel, e in _index().items() if e.get("kind") == "request" and rel.startswith(fmt + "/"))


def _strings(value: Any, out: list[str]) -> list[str]:
    """Every text the conversation holds (values of `text` and `content` keys)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("text", "content") and isinstance(item, str):
                out.append(item)
            else:
                _strings(item, out)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    return out


@pytest.mark.parametrize(("fixture", "provider"), _request_cases())
def test_recorded_request_is_served_by_every_provider(
    request: pytest.FixtureRequest, gateway: GatewayStack, fixture: str, provider: str
) -> None:
    """A real client request, in its own format, reaches each provider in that provider's
    format with its text intact, and the answer comes back as a success."""
    fmt = fixture.split("/")[0]
    body = fixture_json(fixture)
    url = fixture_entry(fixture)["url"]
    model = MODEL_FOR[provider]
    if fmt == "gemini":
        path = "/v1beta/models/" + model + ":" + url.split(":")[-1]
    else:
        path = "/v1/chat/completions" if fmt == "openai" else "/v1/messages"
        body["model"] = model
    fake = _fake(request, provider)
    before = len(fake.requests)
    response = httpx.post(gateway.base_url + path, json=body, timeout=20, headers={"x-api-key": CLIENT_KEY})
    assert response.status_code == 200, response.text
    assert len(fake.requests) == before + 1
    sent = json.dumps(fake.requests[-1].json)
    texts = [s for s in _strings(body.get("messages") or body.get("contents") or [], []) if len(s) > 12]
    longest = max(texts, key=len, default="")
    if longest:
        assert json.dumps(longest)[1:-1][:200] in sent


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "mock"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_default_answers_match_across_apis(
    request: pytest.FixtureRequest, gateway: GatewayStack, client: str, provider: str, stream: bool
) -> None:
    """Without fixtures: each fake's own default answer, through the gateway, in each API."""
    model = "mock-1" if provider == "mock" else MODEL_FOR[provider]
    outcome: Outcome = ASK[client](gateway.base_url, model, stream)
    assert outcome.text
    assert outcome.finish == "stop"
    assert outcome.usage is not None and outcome.usage[1] > 0
    if provider != "mock":
        fake = _fake(request, provider)
        direct = ASK[provider](fake.base_url, model, stream, fake.api_key)
        assert outcome.text == direct.text
