"""Usage is read from every answer (same-API or translated, whole or streamed) and counted by type;
a same-API answer cut short is a 502 in the client's format, not a truncated 200."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.fakes.base import Reply
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.support.fixtures import fixture_json
from tests.support.metrics import metric_sum, wait_settled
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration


def tokens(stack: GatewayStack, provider: str) -> dict[str, float]:
    return {
        kind: metric_sum(
            stack, "gen_ai_client_token_usage_sum", f'provider="{provider}"', f'gen_ai_token_type="{kind}"'
        )
        for kind in ("input", "output", "cached", "reasoning")
    }


def counted(stack: GatewayStack, provider: str, before: dict[str, float]) -> dict[str, float]:
    wait_settled(stack)  # counted, every type together, before the ext_proc closed the request's stream
    after = tokens(stack, provider)
    return {kind: after[kind] - before[kind] for kind in after}


def oai(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def test_usage_of_a_same_api_answer_is_counted_by_type(gateway: GatewayStack, fake_openai: FakeOpenAI) -> None:
    usage = fixture_json("openai/chat-reasoning-tokens.response.json")["usage"]
    fake_openai.enqueue_fixture("openai/chat-reasoning-tokens.response.json")
    before = tokens(gateway, "openai")
    oai(gateway).chat.completions.create(model="gpt-5-nano", messages=[{"role": "user", "content": "think"}])
    assert counted(gateway, "openai", before) == {
        "input": usage["prompt_tokens"],
        "output": usage["completion_tokens"],
        "cached": usage["prompt_tokens_details"]["cached_tokens"],
        "reasoning": usage["completion_tokens_details"]["reasoning_tokens"],
    }


def test_usage_of_a_same_api_stream_is_read_as_it_passes(gateway: GatewayStack, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue_fixture("openai/chat-streaming-usage.response.sse")
    before = tokens(gateway, "openai")
    chunks = list(
        oai(gateway).chat.completions.create(
            model="gpt-5-nano",
            messages=[{"role": "user", "content": "stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    delta = counted(gateway, "openai", before)
    assert delta["input"] == usage.prompt_tokens and delta["output"] == usage.completion_tokens
    assert delta["reasoning"] == usage.completion_tokens_details.reasoning_tokens > 0


def test_usage_of_an_anthropic_stream_passed_through(gateway: GatewayStack, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue_fixture("anthropic/stream-basic.response.sse")
    before = tokens(gateway, "anthropic")
    client = anthropic.Anthropic(api_key="unused", base_url=gateway.base_url, max_retries=0, timeout=20)
    with client.messages.stream(
        model="claude-3-opus-latest", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        final = stream.get_final_message()
    delta = counted(gateway, "anthropic", before)
    assert delta["input"] == final.usage.input_tokens and delta["output"] == final.usage.output_tokens


def test_usage_of_a_translated_gemini_answer(gateway: GatewayStack, fake_gemini: FakeGemini) -> None:
    usage = fixture_json("gemini/generate-thinking.response.json")["usageMetadata"]
    fake_gemini.enqueue_fixture("gemini/generate-thinking.response.json")
    before = tokens(gateway, "gemini")
    oai(gateway).chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "think"}])
    delta = counted(gateway, "gemini", before)
    assert delta["input"] == usage["promptTokenCount"]
    assert delta["output"] == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]  # reasoning is output
    assert delta["reasoning"] == usage["thoughtsTokenCount"]


def test_a_same_api_answer_cut_short_is_a_502_in_the_clients_format(
    gateway: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(body=b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"mess'))
    with pytest.raises(openai.APIStatusError) as cut:
        oai(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert cut.value.status_code == 502
    assert "cut short" in cut.value.message
    assert cut.value.response.headers["x-request-id"]
