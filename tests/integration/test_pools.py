"""Pooled routes through the real Envoy: weighted providers, and failover across formats inside
one request (Envoy retries on the next provider; the upstream pass renders the body for it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from google.genai import types

from tests.conftest import ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY, PROVIDER_ENV, standard_config
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import json_reply
from tests.fakes.openai import FakeOpenAI, openai_error
from tests.fakes.providers import FakeGemini
from tests.integration.sdk_outcomes import gemini_client
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def second_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
    second_openai: FakeOpenAI,
) -> Iterator[GatewayStack]:
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["providers"] += [
        {
            "name": "openai-b",
            "kind": "openai",
            "base_url": second_openai.base_url + "/v1",
            "api_key_env": "TEST_OPENAI_KEY",
        },
        {"name": "down-b", "kind": "openai-compatible", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
    ]
    config["routes"] = [
        {
            "name": "openai-then-gemini",
            "model": "pool-a-*",
            "pool": [{"provider": "openai"}, {"provider": "gemini", "priority": 1, "model": "gemini-2.5-flash"}],
        },
        {
            "name": "anthropic-then-openai",
            "model": "pool-b-*",
            "pool": [{"provider": "anthropic"}, {"provider": "openai", "priority": 1, "model": "gpt-4o-mini"}],
        },
        {
            "name": "gemini-then-anthropic",
            "model": "pool-c-*",
            "pool": [{"provider": "gemini"}, {"provider": "anthropic", "priority": 1, "model": "claude-sonnet-4-5"}],
        },
        {
            "name": "weighted",
            "model": "pool-w-*",
            "pool": [{"provider": "openai", "weight": 3}, {"provider": "openai-b", "weight": 1}],
        },
        {
            "name": "all-down",
            "model": "pool-down-*",
            "pool": [{"provider": "down"}, {"provider": "down-b", "priority": 1}],
        },
        *config["routes"],
    ]
    stack = GatewayStack(Path(tmp_path_factory.mktemp("pools")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def oai(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def ant(stack: GatewayStack) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="unused", base_url=stack.base_url, max_retries=0, timeout=20)


def test_an_openai_provider_failing_fails_over_to_gemini_in_one_request(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_openai.enqueue(openai_error(500, "the primary broke", type_="server_error"))
    answer = oai(stack).chat.completions.create(
        model="pool-a-1",
        messages=[{"role": "user", "content": "failover"}],
        extra_headers={"x-gateway-attempt-provider": "openai"},  # a client cannot pick the key
    )
    assert "failover" in (answer.choices[0].message.content or "")
    assert answer.choices[0].finish_reason == "stop"
    assert len(fake_openai.requests) == 1
    seen = fake_gemini.last_request
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.json["contents"][0]["parts"][0]["text"] == "failover"
    assert seen.headers["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in seen.headers  # the first attempt's key stayed with it
    internal = [name for name in seen.headers if name.lower().startswith(("x-gw-", "x-envoy-", "x-gateway-"))]
    assert not internal, internal
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_a_stream_fails_over_before_its_first_byte(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_openai.enqueue(openai_error(503, "overloaded", type_="server_error"))
    chunks = list(
        oai(stack).chat.completions.create(
            model="pool-a-1", messages=[{"role": "user", "content": "stream over"}], stream=True
        )
    )
    assert "stream over" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert fake_gemini.last_request.path.endswith(":streamGenerateContent")
    assert fake_gemini.last_request.query.get("alt") == "sse"


def test_an_anthropic_client_fails_over_to_an_openai_provider_plain_and_streaming(
    stack: GatewayStack, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_anthropic.enqueue(json_reply(overloaded, status=529))
    message = ant(stack).messages.create(
        model="pool-b-1", max_tokens=50, messages=[{"role": "user", "content": "from claude to gpt"}]
    )
    assert message.type == "message" and "from claude to gpt" in message.content[0].text
    seen = fake_openai.last_request
    assert seen.path == "/v1/chat/completions" and seen.json["model"] == "gpt-4o-mini"
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "x-api-key" not in seen.headers and "anthropic-version" not in seen.headers
    assert fake_anthropic.last_request.headers["x-api-key"] == ANTHROPIC_KEY
    fake_anthropic.enqueue(json_reply(overloaded, status=529))
    with ant(stack).messages.stream(
        model="pool-b-1", max_tokens=50, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        assert "stream it" in "".join(stream.text_stream)
        assert stream.get_final_message().stop_reason == "end_turn"


def test_a_client_error_is_not_retried_on_another_provider(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    fake_openai.enqueue(openai_error(400, "bad request", param="messages"))
    with pytest.raises(openai.BadRequestError):
        oai(stack).chat.completions.create(model="pool-a-1", messages=[{"role": "user", "content": "x"}])
    assert not fake_gemini.requests


def test_weights_share_the_load_within_a_tolerance(
    stack: GatewayStack, fake_openai: FakeOpenAI, second_openai: FakeOpenAI
) -> None:
    client = oai(stack)
    for i in range(200):
        client.chat.completions.create(model="pool-w-1", messages=[{"role": "user", "content": f"q{i}"}])
    heavy, light = len(fake_openai.requests), len(second_openai.requests)
    assert heavy + light == 200
    assert 0.62 <= heavy / 200 <= 0.88, (heavy, light)  # 3:1 is 0.75


def test_every_provider_of_a_pool_down_gives_a_well_formed_503(stack: GatewayStack) -> None:
    with pytest.raises(openai.APIStatusError) as down:
        oai(stack).chat.completions.create(model="pool-down-1", messages=[{"role": "user", "content": "x"}])
    assert down.value.status_code == 503
    assert down.value.response.headers["x-request-id"]
    assert isinstance(down.value.body, dict) and down.value.body.get("type") == "api_error"


def test_a_gemini_client_fails_over_to_anthropic_plain_and_streaming_and_it_is_counted(
    stack: GatewayStack, fake_gemini: FakeGemini, fake_anthropic: FakeAnthropic
) -> None:
    failovers = metric_sum(stack, "gateway_failovers_total", 'route="gemini-then-anthropic"')
    retries = metric_sum(stack, "gateway_retries_total", 'provider="anthropic"')
    unavailable = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    fake_gemini.enqueue(json_reply(unavailable, status=503))
    gemini = gemini_client(stack.base_url)
    answer = gemini.models.generate_content(model="pool-c-1", contents="gemini to claude")
    assert "gemini to claude" in (answer.text or "")
    assert fake_anthropic.last_request.json["model"] == "claude-sonnet-4-5"
    fake_gemini.enqueue(json_reply(unavailable, status=503))
    pieces = list(gemini.models.generate_content_stream(model="pool-c-1", contents="stream to claude"))
    assert "stream to claude" in "".join(piece.text or "" for piece in pieces)
    assert pieces[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert metric_sum(stack, "gateway_failovers_total", 'route="gemini-then-anthropic"') == failovers + 2
    assert metric_sum(stack, "gateway_retries_total", 'provider="anthropic"') == retries + 2


def test_a_pools_answer_names_the_features_the_provider_that_gave_it_dropped(
    stack: GatewayStack, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    asked = {"model": "pool-b-1", "messages": [{"role": "user", "content": "drop some"}], "seed": 7}
    asked["presence_penalty"] = 0.5
    before = len(fake_anthropic.requests)
    by_anthropic = oai(stack).chat.completions.with_raw_response.create(**asked)
    assert len(fake_anthropic.requests) == before + 1  # the first member answered
    assert by_anthropic.headers["x-gateway-dropped-features"] == "seed,presence_penalty"
    # The same request answered by the pool's OpenAI member (Anthropic overloaded) drops nothing.
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_anthropic.enqueue(json_reply(overloaded, status=529))
    by_openai = oai(stack).chat.completions.with_raw_response.create(**asked)
    assert fake_openai.last_request.json["seed"] == 7
    assert "x-gateway-dropped-features" not in by_openai.headers
