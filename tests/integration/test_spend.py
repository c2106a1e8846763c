"""What each request cost, through the real Envoy with the official SDKs: the x-gateway-cost-usd
header of a whole answer, the access line's cost_usd and gateway_cost_usd_total, a cache hit
counted as saved, an unpriced model counted and logged once, and a price changed by a reload.

The providers' usage is scripted (with cache reads and writes); each expected figure is worked
out by hand from the default table (USD per million tokens), shown beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from google.genai import types

from tests.conftest import PROVIDER_ENV
from tests.fakes.base import Reply, json_reply, split_sse_events
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.sdk_outcomes import anthropic_client, gemini_client, openai_client
from tests.support.access_log import access_line, log_lines
from tests.support.fixtures import fixture_bytes
from tests.support.metrics import metric_sum, wait_settled
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

HI = [{"role": "user", "content": "hi"}]
COST = "x-gateway-cost-usd"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    openai_url = fake_openai.base_url + "/v1"
    config: dict[str, Any] = {
        "extproc": {"workers": 1},
        "providers": [
            {
                "name": "openai",
                "kind": "openai",
                "base_url": openai_url,
                "api_key_env": "TEST_OPENAI_KEY",
                "models": ["gpt-4o-mini", "gpt-4.1-nano"],
            },
            {
                "name": "anthropic",
                "kind": "anthropic",
                "base_url": fake_anthropic.base_url,
                "api_key_env": "TEST_ANTHROPIC_KEY",
            },
            {"name": "gemini", "kind": "gemini", "base_url": fake_gemini.base_url, "api_key_env": "TEST_GEMINI_KEY"},
            {"name": "local", "kind": "openai-compatible", "base_url": openai_url},
        ],
        "routes": [
            {"name": "cached", "model": "cached-mini", "provider": "openai", "upstream_model": "gpt-4o-mini"},
            {"model": "gpt-*", "provider": "openai", "cache_ttl_s": 0},
            {"model": "claude-*", "provider": "anthropic", "cache_ttl_s": 0},
            {"model": "gemini-*", "provider": "gemini", "cache_ttl_s": 0},
            {"model": "local-*", "provider": "local", "cache_ttl_s": 0},
        ],
        "cache": {"chat_ttl_s": 600},
    }
    stack = GatewayStack(Path(tmp_path_factory.mktemp("spend")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def openai_answer(model: str, usage: dict[str, Any]) -> Reply:
    return json_reply(
        {
            "id": "chatcmpl-spend",
            "object": "chat.completion",
            "created": 1755133833,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
            "usage": usage,
        }
    )


def openai_usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def spent(stack: GatewayStack, *labels: str) -> float:
    return metric_sum(stack, "gateway_cost_usd_total", *labels)


def test_an_openai_client_gets_the_cost_of_its_answer_with_cached_and_reasoning_tokens(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(openai_answer("gpt-4o-mini-2024-07-18", openai_usage(1000, 200, cached=600, reasoning=50)))
    before = spent(stack, 'route="gpt-*"', 'provider="openai"', 'model="gpt-4o-mini"', 'tenant="anonymous"')
    raw = openai_client(stack.base_url).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    assert raw.parse().usage is not None
    # gpt-4o-mini: 400 fresh x 0.15 + 600 cached x 0.075 + 200 output (reasoning included) x 0.6
    assert raw.headers["x-gateway-cost-usd"] == "0.000225"
    assert access_line(stack, raw.headers["x-request-id"])["cost_usd"] == pytest.approx(0.000225)
    wait_settled(stack)
    after = spent(stack, 'route="gpt-*"', 'provider="openai"', 'model="gpt-4o-mini"', 'tenant="anonymous"')
    assert after - before == pytest.approx(0.000225)


def test_an_anthropic_client_gets_the_cost_of_cache_reads_and_writes(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    usage = {
        "input_tokens": 100,  # Anthropic's input excludes the cache's reads and writes
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 400,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 300,
    }
    fake_anthropic.enqueue(
        json_reply(
            {
                "id": "msg_spend",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "hello"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
        )
    )
    raw = anthropic_client(stack.base_url).messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=400, messages=HI
    )
    assert raw.parse().usage.cache_read_input_tokens == 2000
    # claude-sonnet-4-5: 100 x 3 + 2000 read x 0.3 + 400 written x 3.75 + 300 output x 15
    assert raw.headers["x-gateway-cost-usd"] == "0.0069"
    assert access_line(stack, raw.headers["x-request-id"])["cost_usd"] == pytest.approx(0.0069)


def test_cache_writes_kept_an_hour_cost_the_hour_rate_in_a_passed_through_anthropic_stream(
    stack: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    """As Claude Code asks with `cache_control: {ttl: "1h"}`: the recorded stream, its counts set to
    1,000 tokens written to the cache, 600 of them kept an hour."""
    body = fixture_bytes("anthropic/stream-text.response.sse")
    for recorded, written in [
        (
            b'"input_tokens":17,"cache_creation_input_tokens":0',
            b'"input_tokens":100,"cache_creation_input_tokens":1000',
        ),
        (
            b'"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0',
            b'"ephemeral_5m_input_tokens":400,"ephemeral_1h_input_tokens":600',
        ),
    ]:
        assert recorded in body
        body = body.replace(recorded, written)
    fake_anthropic.enqueue(Reply(body=body, chunks=split_sse_events(body), content_type="text/event-stream"))
    client = anthropic_client(stack.base_url)
    with client.messages.with_streaming_response.create(
        model="claude-sonnet-4-5", max_tokens=400, messages=HI, stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        text = b"".join(response.iter_bytes())
    assert b'"ephemeral_1h_input_tokens":600' in text  # passed through as the provider wrote it
    # claude-sonnet-4-5: 100 x 3 + 400 written for 5 minutes x 3.75 + 600 for an hour x 6 + 10 output x 15
    assert access_line(stack, request_id)["cost_usd"] == pytest.approx(0.00555)


def test_a_gemini_client_gets_the_cost_of_cached_and_thinking_tokens(
    stack: GatewayStack, fake_gemini: FakeGemini
) -> None:
    fake_gemini.enqueue(
        json_reply(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": "hello"}]}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {
                    "promptTokenCount": 1200,  # the cached part included
                    "cachedContentTokenCount": 1000,
                    "candidatesTokenCount": 40,
                    "thoughtsTokenCount": 60,  # not part of candidatesTokenCount, billed as output
                    "totalTokenCount": 1300,
                },
                "modelVersion": "gemini-2.5-flash",
                "responseId": "spend",
            }
        )
    )
    client = gemini_client(stack.base_url)  # kept: a collected client closes its connection
    answer = client.models.generate_content(
        model="gemini-2.5-flash", contents="hi", config=types.GenerateContentConfig()
    )
    assert answer.sdk_http_response is not None and answer.sdk_http_response.headers is not None
    headers = {key.lower(): value for key, value in answer.sdk_http_response.headers.items()}
    # gemini-2.5-flash: 200 fresh x 0.3 + 1000 cached x 0.03 + (40 + 60) output x 2.5
    assert headers["x-gateway-cost-usd"] == "0.00034"
    assert access_line(stack, headers["x-request-id"])["cost_usd"] == pytest.approx(0.00034)


def test_a_streams_cost_is_in_its_access_line_and_the_metric_and_in_no_header(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    # A provider (another gateway, say) naming a cost of its own: the client never sees it (only the
    # provider headers the gateway lists go on).
    body = fixture_bytes("openai/chat-streaming-usage.response.sse")
    fake_openai.enqueue(
        Reply(body=body, chunks=split_sse_events(body), content_type="text/event-stream", headers={COST: "99"})
    )
    before = spent(stack, 'route="gpt-*"', 'model="gpt-4o-mini"')
    client = openai_client(stack.base_url)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert COST not in response.headers  # the headers leave before the stream's usage is known
        request_id = response.headers["x-request-id"]
        usage = [chunk.usage for chunk in response.parse() if chunk.usage][-1]
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    # gpt-4o-mini: 0.15 fresh input, 0.075 cached, 0.6 output
    expected = ((usage.prompt_tokens - cached) * 0.15 + cached * 0.075 + usage.completion_tokens * 0.6) / 1e6
    assert usage.completion_tokens > 0
    assert access_line(stack, request_id)["cost_usd"] == pytest.approx(expected)
    wait_settled(stack)
    assert spent(stack, 'route="gpt-*"', 'model="gpt-4o-mini"') - before == pytest.approx(expected)


def test_a_translated_answer_carries_its_cost_too(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(openai_answer("gpt-4o-mini", openai_usage(2000, 500, cached=1000)))
    raw = anthropic_client(stack.base_url).messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=600, messages=HI
    )
    assert raw.parse().usage.cache_read_input_tokens == 1000
    assert raw.headers[COST] == "0.000525"  # 1000 x 0.15 + 1000 cached x 0.075 + 500 x 0.6


def test_a_cache_hit_costs_nothing_and_counts_what_the_stored_answer_cost_as_saved(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    labels = ('route="cached"', 'provider="openai"', 'model="cached-mini"')
    saved_before = metric_sum(stack, "gateway_cost_saved_usd_total", *labels)
    fake_openai.enqueue(openai_answer("gpt-4o-mini", openai_usage(1000, 200)))
    client = openai_client(stack.base_url)
    question = [{"role": "user", "content": "a question asked twice"}]
    first = client.chat.completions.with_raw_response.create(model="cached-mini", messages=question)
    assert first.headers["x-gateway-cache"] == "MISS"
    assert first.headers["x-gateway-cost-usd"] == "0.00027"  # 1000 x 0.15 + 200 x 0.6
    wait_settled(stack)  # stored
    calls = len(fake_openai.requests)
    spent_before = spent(stack, *labels)
    again = client.chat.completions.with_raw_response.create(model="cached-mini", messages=question)
    assert again.headers["x-gateway-cache"] == "HIT" and len(fake_openai.requests) == calls
    assert again.headers["x-gateway-cost-usd"] == "0"
    line = access_line(stack, again.headers["x-request-id"])
    assert (line["cost_usd"], line["cost_saved_usd"]) == (0, pytest.approx(0.00027))
    wait_settled(stack)
    assert metric_sum(stack, "gateway_cost_saved_usd_total", *labels) - saved_before == pytest.approx(0.00027)
    assert spent(stack, *labels) == spent_before


def test_an_unpriced_model_costs_0_is_counted_and_logged_once(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    before = metric_sum(stack, "gateway_unpriced_requests_total", 'provider="local"', 'model="other"')
    client = openai_client(stack.base_url)
    for _ in range(2):
        fake_openai.enqueue(openai_answer("local-llama-3", openai_usage(50, 10)))
        raw = client.chat.completions.with_raw_response.create(model="local-llama-3", messages=HI)
        assert raw.headers["x-gateway-cost-usd"] == "0"
    wait_settled(stack)
    assert metric_sum(stack, "gateway_unpriced_requests_total", 'provider="local"', 'model="other"') - before == 2
    said = [line for line in log_lines(stack) if "no price for model 'local-llama-3'" in line.get("msg", "")]
    assert len(said) == 1 and said[0]["level"] == "warning"


def test_a_price_set_in_the_config_applies_after_a_reload(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    client = openai_client(stack.base_url)
    fake_openai.enqueue(openai_answer("gpt-4.1-nano", openai_usage(1000, 1000)))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4.1-nano", messages=HI)
    assert raw.headers["x-gateway-cost-usd"] == "0.0005"  # the default: 1000 x 0.1 + 1000 x 0.4
    path = stack.workdir / "gateway.yaml"
    written = yaml.safe_load(path.read_text())
    written["prices"] = {"openai": [{"models": ["gpt-4.1-nano"], "input": 1, "output": 2}]}
    path.write_text(yaml.safe_dump(written))
    assert httpx.post(stack.admin_url + "/reload", timeout=30).json() == {"ok": True, "problems": []}
    fake_openai.enqueue(openai_answer("gpt-4.1-nano", openai_usage(1000, 1000)))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4.1-nano", messages=HI)
    assert raw.headers["x-gateway-cost-usd"] == "0.003"  # 1000 x 1 + 1000 x 2
