"""Limits and the cache shared through a real redis-server by two ext_proc workers behind one Envoy,
and what happens when Redis goes away and comes back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.support.metrics import metric_sum, served_per_worker
from tests.support.redis_server import RedisServer
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

PASSWORD = "redis-test-password"


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(Path(tmp_path_factory.mktemp("redis")), password=PASSWORD) as server:
        yield server


def _config(fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini], redis: RedisServer, **extproc: Any) -> dict:
    config = standard_config(*(fake.base_url for fake in fakes))
    config["extproc"] = extproc
    config["store"] = {"backend": "redis", "redis": {"url": redis.url, "password_env": "TEST_REDIS_PASSWORD"}}
    config["cache"] = {}
    config["limits"] = {
        "rules": [
            {"name": "ten", "key": ["model"], "match": {"models": ["gpt-shared-*"]}, "requests": 10, "window_s": 600},
            {"name": "one", "key": ["model"], "match": {"models": ["gpt-outage-*"]}, "requests": 1, "window_s": 600},
        ]
    }
    return config


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis: RedisServer,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    config = _config((fake_openai, fake_anthropic, fake_gemini), redis, workers=2)
    env = {**PROVIDER_ENV, "TEST_REDIS_PASSWORD": PASSWORD}
    stack = GatewayStack(Path(tmp_path_factory.mktemp("shared")), config, env).start()
    yield stack
    stack.stop()


def client(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)


def ask(stack: GatewayStack, model: str, text: str = "hi") -> httpx.Headers:
    raw = client(stack).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    raw.parse()
    return raw.headers


def _outcome(stack: GatewayStack, model: str, text: str) -> int:
    try:
        ask(stack, model, text)
    except openai.APIStatusError as error:
        return error.status_code
    return 200


def test_two_workers_share_one_request_limit_and_never_allow_twice_it(stack: GatewayStack) -> None:
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: _outcome(stack, "gpt-shared-1", f"question {i}"), range(30)))
    assert outcomes.count(200) == 10
    assert outcomes.count(429) == 20
    served = served_per_worker(stack)
    assert len(served) == 2 and all(count > 0 for count in served), served  # both workers took part


def test_two_workers_share_one_cache(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    before = _stored_bytes(stack)
    assert ask(stack, "gpt-4o-mini", "asked of every worker")["x-gateway-cache"] == "MISS"
    _until_stored(stack, before)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ask(stack, "gpt-4o-mini", "asked of every worker"), range(12)))
    assert [headers["x-gateway-cache"] for headers in results] == ["HIT"] * 12
    assert len(fake_openai.requests) == 1


def _stored_bytes(stack: GatewayStack) -> float:
    return metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"')


def _until_stored(stack: GatewayStack, before: float) -> None:
    """The cache entry is written once the request's stream closed (in whichever worker served it)."""
    assert wait_until(lambda: _stored_bytes(stack) > before, timeout=10)


def _until_breaker(stack: GatewayStack, provider: str, state: str) -> None:
    def now() -> str:
        return httpx.get(stack.admin_url + "/status").json()["providers"][provider]["breaker"]["state"]

    assert wait_until(lambda: now() == state, timeout=10), now()


def _store_errors(stack: GatewayStack) -> float:
    return metric_sum(stack, "gateway_store_errors_total")


def test_with_redis_stopped_the_cache_is_bypassed_limits_allow_and_both_recover(
    stack: GatewayStack, redis: RedisServer, fake_openai: FakeOpenAI
) -> None:
    assert _outcome(stack, "gpt-outage-1", "before") == 200
    assert _outcome(stack, "gpt-outage-1", "before again") == 429
    errors_before = _store_errors(stack)
    assert httpx.get(stack.admin_url + "/readyz").json() == {"status": "ready", "redis": "reachable"}
    redis.stop()
    try:
        ready = httpx.get(stack.admin_url + "/readyz")
        assert ready.status_code == 200 and ready.json()["redis"] == "unreachable"  # still serving
        # on_store_error: allow (the default): answered, uncached, over the limit.
        for i in range(3):
            assert ask(stack, "gpt-outage-1", f"during {i}")["x-gateway-cache"] == "BYPASS"
        assert _store_errors(stack) > errors_before
    finally:
        redis.start()
    # Redis is back (empty: no persistence): limits and the cache work again, without a restart.
    assert wait_until(lambda: _outcome(stack, "gpt-outage-1", "after") == 429, timeout=10, interval=0.2)
    before = _stored_bytes(stack)
    assert ask(stack, "gpt-4o-mini", "cached after the outage")["x-gateway-cache"] == "MISS"
    _until_stored(stack, before)
    assert ask(stack, "gpt-4o-mini", "cached after the outage")["x-gateway-cache"] == "HIT"


def test_on_store_error_deny_refuses_in_the_clients_format_while_redis_is_down(
    tmp_path: Path,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> None:
    with RedisServer(tmp_path / "redis") as redis:
        config = _config((fake_openai, fake_anthropic, fake_gemini), redis)
        del config["store"]["redis"]["password_env"]
        config["limits"]["on_store_error"] = "deny"
        stack = GatewayStack(tmp_path, config, PROVIDER_ENV).start()
        try:
            assert _outcome(stack, "gpt-shared-1", "up") == 200
            redis.stop()
            with pytest.raises(openai.APIStatusError) as refused:
                ask(stack, "gpt-shared-1", "down")
            assert refused.value.status_code == 503
            assert "rate limits cannot be checked" in refused.value.message
            assert refused.value.response.headers["retry-after"] == "1"
            assert _outcome(stack, "gpt-4o-mini", "no rule applies") == 200  # only limited requests are refused
            redis.start()
            assert _outcome(stack, "gpt-shared-1", "up again") == 200
        finally:
            stack.stop()


def test_redis_over_tls_is_verified_against_the_configured_ca(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    with RedisServer(tmp_path / "redis", tls=True) as redis:
        config = _config((fake_openai, fake_anthropic, fake_gemini), redis)
        del config["store"]["redis"]["password_env"]
        config["store"]["redis"]["ca_file"] = str(redis.ca_file)
        config["listeners"] = [{"name": "main"}]
        stack = GatewayStack(tmp_path / "verified", config, PROVIDER_ENV).start()
        try:
            assert ask(stack, "gpt-4o-mini", "over tls")["x-gateway-cache"] == "MISS"
            _until_stored(stack, 0)
            assert ask(stack, "gpt-4o-mini", "over tls")["x-gateway-cache"] == "HIT"
        finally:
            stack.stop()
        del config["store"]["redis"]["ca_file"]  # the system CAs do not know the test CA
        stack = GatewayStack(tmp_path / "unverified", config, PROVIDER_ENV).start()
        try:
            assert ask(stack, "gpt-4o-mini", "over tls")["x-gateway-cache"] == "BYPASS"
            assert _store_errors(stack) > 0
        finally:
            stack.stop()


def test_a_breaker_opened_through_one_worker_holds_for_both_and_lets_one_probe_through(
    tmp_path: Path, redis: RedisServer, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    from tests.conftest import OPENAI_KEY
    from tests.fakes.base import json_reply
    from tests.fakes.openai import openai_error

    with FakeOpenAI(api_key=OPENAI_KEY) as flaky:
        config = _config((fake_openai, fake_anthropic, fake_gemini), redis, workers=2)
        config["store"]["redis"]["key_prefix"] = "breaker-test:"
        config["providers"].append(
            {"name": "flaky", "kind": "openai", "base_url": flaky.base_url + "/v1", "api_key_env": "TEST_OPENAI_KEY"}
        )
        config["routes"].insert(0, {"model": "flaky-*", "provider": "flaky"})
        config["breakers"] = {"min_requests": 4, "failure_ratio": 0.5, "open_s": 3}
        env = {**PROVIDER_ENV, "TEST_REDIS_PASSWORD": PASSWORD}
        stack = GatewayStack(tmp_path, config, env).start()
        try:
            for _ in range(4):
                flaky.enqueue(openai_error(500, "broken", type_="server_error"))
            assert [_outcome(stack, "flaky-1", f"f{i}") for i in range(4)] == [500] * 4
            _until_breaker(stack, "flaky", "open")
            with ThreadPoolExecutor(4) as pool:
                paused = list(pool.map(lambda i: _outcome(stack, "flaky-1", f"p{i}"), range(12)))
            assert paused == [503] * 12 and len(flaky.requests) == 4
            assert all(count > 0 for count in served_per_worker(stack))  # both workers refused
            _until_breaker(stack, "flaky", "half_open")  # open_s is over: one probe may go
            reply = json_reply(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 1,
                    "model": "m",
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                    ],
                }
            )
            reply.release = threading.Event()  # the probe is held until the others have their answers
            flaky.enqueue(reply)
            with ThreadPoolExecutor(6) as pool:
                asked = [pool.submit(_outcome, stack, "flaky-1", f"h{i}") for i in range(6)]
                try:
                    assert wait_until(lambda: sum(outcome.done() for outcome in asked) == 5, timeout=30)
                finally:
                    reply.release.set()
                probing = [outcome.result() for outcome in asked]
            assert sorted(probing) == [200] + [503] * 5  # one probe, whichever worker let it through
            assert len(flaky.requests) == 5
            _until_breaker(stack, "flaky", "closed")
            assert _outcome(stack, "flaky-1", "closed again") == 200
        finally:
            stack.stop()
