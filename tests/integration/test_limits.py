"""Rate limits through the real Envoy, with the official SDKs: requests, tokens and streams per client.

One gateway (memory store, one ext_proc process) with three API-key clients;
each rule matches its own model prefix, so the tests do not share buckets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.base import Reply, json_reply
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.support.clients import keyed_clients
from tests.support.metrics import metric_sum, wait_settled
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

KEYS, CLIENTS = keyed_clients({"alice": "acme", "bob": "acme", "carol": "globex"})


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["clients"] = CLIENTS
    config["limits"] = {
        "rules": [
            {"name": "two-per-client", "key": ["client"], "match": {"models": ["gpt-req-*"]}, "requests": 2},
            {"name": "one-claude", "key": ["client"], "match": {"models": ["claude-req-*"]}, "requests": 1},
            {
                "name": "tokens-per-client",
                "key": ["client"],
                "match": {"models": ["gpt-tok-*"]},
                "tokens": 600,
                "window_s": 3600,
            },
            {
                "name": "big-token-budget",
                "key": ["client"],
                "match": {"models": ["gpt-cut-*"]},
                "tokens": 100_000,
                "window_s": 3_600_000,  # no refill to speak of during the test
            },
            {
                "name": "mock-tokens",
                "key": ["client"],
                "match": {"models": ["mock-tok-*"]},
                "tokens": 1000,
                "window_s": 3_600_000,
            },
            {"name": "one-stream", "key": ["client"], "match": {"models": ["gpt-stream-*"]}, "concurrent_streams": 1},
            {"name": "tenant-pool", "key": ["tenant"], "match": {"models": ["gpt-tenant-*"]}, "requests": 2},
        ]
    }
    config["listeners"] = [{"name": "main"}, {"name": "guarded", "local_rate_limit": {"requests_per_s": 1, "burst": 2}}]
    stack = GatewayStack(Path(tmp_path_factory.mktemp("limits")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def oai(stack: GatewayStack, client: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEYS[client], base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def ask(stack: GatewayStack, client: str, model: str, text: str = "hi") -> httpx.Headers:
    raw = oai(stack, client).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    raw.parse()
    return raw.headers


def usage_reply(prompt_tokens: int, completion_tokens: int) -> Reply:
    return json_reply(
        {
            "id": "chatcmpl-usage",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-tok-1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def test_requests_beyond_the_limit_get_a_429_in_the_openai_format_that_the_sdk_reads(stack: GatewayStack) -> None:
    first = ask(stack, "alice", "gpt-req-1")
    assert first["x-ratelimit-limit-requests"] == "2"
    assert first["x-ratelimit-remaining-requests"] == "1"
    assert first["x-ratelimit-reset-requests"].endswith("s")
    assert ask(stack, "alice", "gpt-req-1")["x-ratelimit-remaining-requests"] == "0"
    client = oai(stack, "alice")
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-req-1", messages=[{"role": "user", "content": "hi"}])
    error = refused.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.response.headers["x-request-id"]
    retry_after = client._parse_retry_after_header(error.response.headers)
    # Two requests a minute: the next one fits in about 30 s, which the SDK would wait for.
    assert retry_after is not None and 20 < retry_after <= 30
    assert int(error.response.headers["retry-after"]) == pytest.approx(retry_after, abs=1)
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert ask(stack, "bob", "gpt-req-1")["x-ratelimit-remaining-requests"] == "1"  # bob has his own budget


def test_a_refusal_to_an_anthropic_client_is_its_own_rate_limit_error(stack: GatewayStack) -> None:
    client = anthropic.Anthropic(api_key=KEYS["carol"], base_url=stack.base_url, max_retries=0, timeout=20)
    client.messages.create(model="claude-req-1", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model="claude-req-1", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    body = refused.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "rate_limit_error"
    assert client._parse_retry_after_header(refused.value.response.headers) == pytest.approx(60, abs=1)


def test_a_tenant_rule_shares_one_budget_between_the_tenants_clients(stack: GatewayStack) -> None:
    ask(stack, "alice", "gpt-tenant-1")
    ask(stack, "bob", "gpt-tenant-1")
    with pytest.raises(openai.RateLimitError):
        ask(stack, "bob", "gpt-tenant-1")
    ask(stack, "carol", "gpt-tenant-1")  # another tenant


def test_tokens_are_settled_with_the_providers_count_and_refused_once_spent(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(usage_reply(100, 200))
    first = ask(stack, "bob", "gpt-tok-1")
    reserved = 600 - int(first["x-ratelimit-remaining-tokens"])  # the estimate taken up front
    assert 0 < reserved < 50
    wait_settled(stack)  # settling runs once the ext_proc closed the request's stream
    fake_openai.enqueue(usage_reply(100, 200))
    second = ask(stack, "bob", "gpt-tok-1")
    # 300 used by the first answer, then this request's estimate.
    assert int(second["x-ratelimit-remaining-tokens"]) == 600 - 300 - reserved
    wait_settled(stack)
    with pytest.raises(openai.RateLimitError) as refused:  # 600 spent
        ask(stack, "bob", "gpt-tok-1")
    assert refused.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "tokens-per-client" in refused.value.message


def test_an_answer_of_the_built_in_mock_is_settled_with_its_own_token_count(stack: GatewayStack) -> None:
    client = oai(stack, "carol")
    question = [{"role": "user", "content": "count these five words"}]
    first = client.chat.completions.with_raw_response.create(model="mock-tok-1", messages=question)
    reserved = 1000 - int(first.headers["x-ratelimit-remaining-tokens"])  # the estimate taken up front
    usage = first.parse().usage
    assert usage is not None and usage.completion_tokens > 0 and usage.total_tokens != reserved
    wait_settled(stack)
    streamed = client.chat.completions.create(
        model="mock-tok-1", messages=question, stream=True, stream_options={"include_usage": True}
    )
    (streamed_usage,) = [piece.usage for piece in streamed if piece.usage]
    assert streamed_usage == usage  # the same answer, streamed
    wait_settled(stack)
    third = ask(stack, "carol", "mock-tok-1", "count these five words")
    # Each answer charged its own count (the mock's input and output words), not the estimate.
    assert int(third["x-ratelimit-remaining-tokens"]) == 1000 - 2 * usage.total_tokens - reserved


def test_a_stream_the_client_cancels_is_charged_for_what_it_received(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    piece = "x" * 400  # 100 tokens by the estimate
    chunks = [
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
        b'"delta":{"content":"' + piece.encode() + b'"},"finish_reason":null}]}\n\n'
        for _ in range(40)
    ]
    sent = 6  # the provider holds the rest until the client has gone
    release = threading.Event()
    fake_openai.enqueue(Reply(content_type="text/event-stream", chunks=chunks, hold_at_chunk=sent, release=release))
    client = oai(stack, "carol")
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-cut-1", messages=[{"role": "user", "content": "long story"}], stream=True
    )
    reserved = 100_000 - int(raw.headers["x-ratelimit-remaining-tokens"])
    stream = raw.parse()
    received = 0
    try:
        for chunk in stream:
            received += len(chunk.choices[0].delta.content or "")
            if received >= 5 * len(piece):
                break
        stream.close()
        wait_settled(stack)  # the cancelled stream's settle
    finally:
        release.set()
    again = client.chat.completions.with_raw_response.create(  # the same body: the same estimate
        model="gpt-cut-1", messages=[{"role": "user", "content": "long story"}], stream=True
    )
    list(again.parse())
    charged = 100_000 - int(again.headers["x-ratelimit-remaining-tokens"]) - reserved
    output = charged - reserved
    # Charged for what went through before the cancel: at least what the client read, at most what was sent.
    assert received // 4 - 1 <= output <= sent * 100  # 1: the remaining count is rounded down


def test_a_second_stream_of_one_client_is_refused_while_the_first_runs(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    chunk = (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
    )
    done = b"data: [DONE]\n\n"
    release = threading.Event()  # the first stream runs until the test has made the others
    fake_openai.enqueue(Reply(content_type="text/event-stream", chunks=[chunk, done], hold_at_chunk=1, release=release))
    started = threading.Event()

    def first_stream() -> None:
        stream = oai(stack, "alice").chat.completions.create(
            model="gpt-stream-1", messages=[{"role": "user", "content": "slow"}], stream=True
        )
        for _ in stream:
            started.set()

    runner = threading.Thread(target=first_stream)
    runner.start()
    try:
        assert started.wait(10)
        with pytest.raises(openai.RateLimitError) as refused:
            oai(stack, "alice").chat.completions.create(
                model="gpt-stream-1", messages=[{"role": "user", "content": "again"}], stream=True
            )
        assert "at most 1 streams" in refused.value.message
        list(
            oai(stack, "bob").chat.completions.create(
                model="gpt-stream-1", messages=[{"role": "user", "content": "b"}], stream=True
            )
        )
    finally:
        release.set()
    runner.join(10)
    assert not runner.is_alive()
    wait_settled(stack)
    list(
        oai(stack, "alice").chat.completions.create(
            model="gpt-stream-1", messages=[{"role": "user", "content": "c"}], stream=True
        )
    )


def test_envoys_local_rate_limit_guards_a_listener_and_answers_in_the_clients_format(stack: GatewayStack) -> None:
    guarded = f"http://127.0.0.1:{stack.extra_listener_ports[0]}"
    client = openai.OpenAI(api_key=KEYS["alice"], base_url=guarded + "/v1", max_retries=0, timeout=20)
    outcomes = []
    for _ in range(5):
        try:
            client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "hi"}])
            outcomes.append(200)
        except openai.RateLimitError as error:
            outcomes.append(429)
            refused = error
    assert outcomes[:2] == [200, 200] and 429 in outcomes[2:]
    assert refused.code == "rate_limit_exceeded" and refused.response.headers["retry-after"] == "1"
    assert refused.response.headers["x-request-id"] in refused.message
    messages = anthropic.Anthropic(api_key=KEYS["alice"], base_url=guarded, max_retries=0, timeout=20).messages
    with pytest.raises(anthropic.RateLimitError) as refused_anthropic:
        for _ in range(3):
            messages.create(model="mock-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    body = refused_anthropic.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "rate_limit_error"
    oai(stack, "alice").chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "hi"}])


def test_limit_decisions_are_counted_by_rule_kind_and_decision(stack: GatewayStack) -> None:
    def decisions(decision: str) -> float:
        labels = (f'decision="{decision}"', 'kind="requests"', 'rule="tenant-pool"')
        return metric_sum(stack, "gateway_limit_decisions_total", *labels)

    allowed, denied = decisions("allow"), decisions("deny")
    outcomes = []
    for _ in range(3):  # the tenant's two requests a minute, then refusals
        try:
            ask(stack, "carol", "gpt-tenant-1")
            outcomes.append(200)
        except openai.RateLimitError:
            outcomes.append(429)
    assert 429 in outcomes
    assert decisions("allow") - allowed == outcomes.count(200)
    assert decisions("deny") - denied == outcomes.count(429)
