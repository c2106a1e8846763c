"""Circuit breakers per provider through the real Envoy (memory store, one ext_proc), and the
per-attempt timeouts of a pool: a failing provider is paused and probed, a stalled one is cut."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import OPENAI_KEY, PROVIDER_ENV, standard_config
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.base import Reply, json_reply
from tests.fakes.openai import FakeOpenAI, openai_error
from tests.fakes.providers import FakeGemini
from tests.support.metrics import metric_sum, wait_settled
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

OPEN_S = 3.0  # long enough that checks made while open never meet the half-open probe


@pytest.fixture
def flaky() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture
def stack(
    tmp_path: Path, flaky: FakeOpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> Iterator[GatewayStack]:
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["providers"].append(
        {
            "name": "flaky",
            "kind": "openai",
            "base_url": flaky.base_url + "/v1",
            "api_key_env": "TEST_OPENAI_KEY",
            "cache_ttl_s": 0,  # only the cached-* route below caches
        }
    )
    for provider in config["providers"]:
        provider.setdefault("cache_ttl_s", 0)
    config["cache"] = {}
    config["providers"].append(
        {
            "name": "quick",
            "kind": "openai",
            "base_url": flaky.base_url + "/v1",
            "api_key_env": "TEST_OPENAI_KEY",
            "first_byte_timeout_ms": 800,
        }
    )
    config["breakers"] = {"failure_ratio": 0.5, "min_requests": 4, "window_s": 30, "open_s": OPEN_S}
    config["routes"] = [
        {"model": "cached-*", "provider": "flaky", "cache_ttl_s": 60},
        {"model": "single-*", "provider": "flaky"},
        {"model": "quick-*", "provider": "quick"},
        {
            "name": "flaky-first",
            "model": "pooled-*",
            "pool": [{"provider": "flaky"}, {"provider": "gemini", "priority": 1, "model": "gemini-2.5-flash"}],
            "retry": {"attempts": 0},  # the breaker, not Envoy's retries, keeps requests off the flaky one
        },
        {
            "name": "stall-guarded",
            "model": "stall-*",
            "pool": [{"provider": "flaky"}, {"provider": "gemini", "priority": 1}],
            "timeouts": {"first_byte_ms": 800, "idle_ms": 800},
        },
        *config["routes"],
    ]
    stack = GatewayStack(tmp_path, config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def client(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def ask(stack: GatewayStack, model: str) -> int:
    try:
        client(stack).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError as error:
        return error.status_code
    return 200


def breaker_of(stack: GatewayStack, provider: str) -> str:
    return httpx.get(stack.admin_url + "/status").json()["providers"][provider]["breaker"]["state"]


def transitions(stack: GatewayStack, to: str) -> float:
    return metric_sum(stack, "gateway_breaker_transitions_total", 'provider="flaky"', f'to="{to}"')


def _until(stack: GatewayStack, provider: str, state: str) -> None:
    """Outcomes reach the breaker once each request's stream closed: wait for the state they lead to."""
    assert wait_until(lambda: breaker_of(stack, provider) == state, timeout=10), breaker_of(stack, provider)


def test_a_breaker_opens_fails_fast_half_opens_and_closes(stack: GatewayStack, flaky: FakeOpenAI) -> None:
    for _ in range(4):
        flaky.enqueue(openai_error(500, "broken", type_="server_error"))
    assert [ask(stack, "single-1") for _ in range(4)] == [500] * 4
    _until(stack, "flaky", "open")
    assert breaker_of(stack, "flaky") == "open" and transitions(stack, "opened") == 1
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as paused:
        client(stack).chat.completions.create(model="single-1", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 1  # refused without asking the provider
    assert paused.value.status_code == 503 and paused.value.code == "provider_circuit_open"
    assert int(paused.value.response.headers["retry-after"]) >= 1
    assert len(flaky.requests) == 4
    assert metric_sum(stack, "gateway_breaker_rejections_total", 'provider="flaky"') == 1
    _until(stack, "flaky", "half_open")  # the open time is over: the next request is the probe
    flaky.enqueue(openai_error(500, "still broken", type_="server_error"))
    assert ask(stack, "single-1") == 500  # the probe fails: open again
    _until(stack, "flaky", "open")
    assert breaker_of(stack, "flaky") == "open" and ask(stack, "single-1") == 503
    _until(stack, "flaky", "half_open")
    assert ask(stack, "single-1") == 200  # the probe succeeds: closed
    _until(stack, "flaky", "closed")
    assert breaker_of(stack, "flaky") == "closed" and transitions(stack, "closed") == 1
    assert [ask(stack, "single-1") for _ in range(3)] == [200] * 3


def test_retry_after_from_the_provider_pauses_it_that_long(stack: GatewayStack, flaky: FakeOpenAI) -> None:
    limited = openai_error(429, "slow down", type_="requests", code="rate_limit_exceeded")
    limited.headers["retry-after"] = "1"
    flaky.enqueue(limited)
    assert ask(stack, "single-1") == 429
    _until(stack, "flaky", "open")
    opened = time.monotonic()
    assert ask(stack, "single-1") == 503
    _until(stack, "flaky", "half_open")
    assert time.monotonic() - opened < OPEN_S  # the provider's 1 s, not the breaker's own open time
    assert ask(stack, "single-1") == 200
    assert len(flaky.requests) == 2


def test_a_pool_skips_an_open_provider(stack: GatewayStack, flaky: FakeOpenAI, fake_gemini: FakeGemini) -> None:
    for _ in range(4):
        flaky.enqueue(openai_error(500, "broken", type_="server_error"))
    assert [ask(stack, "single-1") for _ in range(4)] == [500] * 4
    _until(stack, "flaky", "open")
    for _ in range(5):
        assert ask(stack, "pooled-1") == 200
    assert len(flaky.requests) == 4  # skipped while open
    assert len(fake_gemini.requests) == 5
    assert fake_gemini.last_request.path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_a_stalled_provider_hits_the_first_byte_timeout_and_the_pool_answers(
    stack: GatewayStack, flaky: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    flaky.enqueue(Reply(hang=True))
    started = time.monotonic()
    answer = client(stack).chat.completions.create(model="stall-1", messages=[{"role": "user", "content": "stall"}])
    assert "stall" in (answer.choices[0].message.content or "")
    assert time.monotonic() - started < 10  # the 0.8 s first-byte timeout, not the client's 20 s
    assert len(fake_gemini.requests) == 1


def recent_requests(stack: GatewayStack, provider: str) -> int:
    """Outcomes the provider's breaker was told of (the last ones kept)."""
    status = httpx.get(stack.admin_url + "/status").json()["providers"][provider]
    return int(status.get("recent", {}).get("requests", 0))


def test_clients_hanging_up_on_a_pool_attempt_never_open_its_breaker_but_its_timeouts_do(
    stack: GatewayStack, flaky: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    impatient = openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=0.3)
    for _ in range(4):  # breakers open at 4 requests, half of them failed
        flaky.enqueue(Reply(hang=True))
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="stall-1", messages=[{"role": "user", "content": "bye"}])
    assert wait_until(lambda: len(flaky.requests) == 4, timeout=5)
    wait_settled(stack)  # what the closed attempts report comes once Envoy closed their streams
    assert breaker_of(stack, "flaky") == "closed" and recent_requests(stack, "flaky") == 0
    assert fake_gemini.requests == []  # no attempt was cut: none went on to the next provider
    for _ in range(4):  # the same provider, now cut by the route's 0.8 s first-byte timeout
        flaky.enqueue(Reply(hang=True))
        assert ask(stack, "stall-1") == 200  # answered by the pool's next provider
    _until(stack, "flaky", "open")
    assert recent_requests(stack, "flaky") == 4 and len(fake_gemini.requests) == 4


def test_a_stream_that_stalls_midway_is_cut_by_the_idle_timeout(stack: GatewayStack, flaky: FakeOpenAI) -> None:
    chunk = (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"tick "},"finish_reason":null}]}\n\n'
    )
    stalled = threading.Event()  # the third chunk waits on it: set only once the test is done
    flaky.enqueue(Reply(content_type="text/event-stream", chunks=[chunk] * 3, hold_at_chunk=2, release=stalled))
    started = time.monotonic()
    try:
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            list(
                client(stack).chat.completions.create(
                    model="stall-1", messages=[{"role": "user", "content": "s"}], stream=True
                )
            )
        assert time.monotonic() - started < 10
    finally:
        stalled.set()


def test_a_pool_whose_providers_are_all_open_is_a_fast_503(
    stack: GatewayStack, flaky: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    unavailable = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
    for _ in range(4):
        fake_gemini.enqueue(json_reply(unavailable, status=503))
        flaky.enqueue(openai_error(500, "broken", type_="server_error"))
    assert [ask(stack, "gemini-2.5-flash") for _ in range(4)] == [503] * 4
    assert [ask(stack, "single-1") for _ in range(4)] == [500] * 4
    _until(stack, "flaky", "open")
    _until(stack, "gemini", "open")
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as none_left:
        client(stack).chat.completions.create(model="pooled-1", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 1
    assert none_left.value.status_code == 503 and none_left.value.code == "provider_circuit_open"
    assert len(fake_gemini.requests) == 4 and len(flaky.requests) == 4


def test_a_single_providers_first_byte_timeout_answers_a_504_in_the_clients_format(
    stack: GatewayStack, flaky: FakeOpenAI
) -> None:
    flaky.enqueue(Reply(hang=True))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as slow:
        client(stack).chat.completions.create(model="quick-1", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 10  # 0.8 s, not the provider's 600 s or the client's 20 s
    assert slow.value.status_code == 504 and slow.value.code == "provider_timeout"


def test_a_cached_answer_is_still_served_while_its_provider_is_paused(stack: GatewayStack, flaky: FakeOpenAI) -> None:
    assert ask(stack, "cached-1") == 200
    assert wait_until(lambda: metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"') > 0, timeout=10)
    for _ in range(3):  # with the success above: 3 failures of 4, the breaker opens
        flaky.enqueue(openai_error(500, "broken", type_="server_error"))
    assert [ask(stack, "single-1") for _ in range(3)] == [500] * 3
    _until(stack, "flaky", "open")
    assert ask(stack, "single-1") == 503  # paused
    assert ask(stack, "cached-1") == 200  # answered from the cache, no provider needed
    assert len(flaky.requests) == 4
