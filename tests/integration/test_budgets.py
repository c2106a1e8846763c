"""USD budgets through the real Envoy with the official SDKs, on a real redis-server shared by two
gateway instances: a spent budget refuses in each client's format with insufficient_quota and the
time until its window ends, a stream settles at its real cost, the budget holds across instances
and a restart, and /spend reports it behind the admin token."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google.genai import errors as genai_errors

from extproc.budgets.charges import to_micro
from extproc.formats.canonical import Usage
from extproc.spend.prices import price_table
from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.sdk_outcomes import ask_anthropic, ask_gemini, ask_openai
from tests.support.cli import run_cli
from tests.support.redis_server import RedisServer
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "budget-admin-token"
TINY = 0.00001  # $10 a millionth: one answer of any priced model spends it
BIG = 1.0


def _config(fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini], redis: RedisServer) -> dict[str, Any]:
    config = standard_config(*(fake.base_url for fake in fakes))
    config["extproc"] = {"admin_token_env": "GW_ADMIN_TOKEN"}
    config["store"] = {"backend": "redis", "redis": {"url": redis.url}}
    config["limits"] = {
        "rules": [
            # Per model, so each test spends a budget of its own.
            {
                "name": "daily",
                "key": ["model"],
                "match": {"models": ["gpt-4o", "gpt-4o-20*", "claude-*", "gemini-*", "azure-*"]},
            },
            {"name": "monthly", "key": ["model"], "match": {"models": ["gpt-4o-mini*"]}, "usd": BIG, "window": "month"},
        ]
    }
    config["limits"]["rules"][0].update(usd=TINY, window="day")
    config["prices"] = {  # priced at 0
        "anthropic": [{"models": ["claude-free-*"], "input": 0, "output": 0}],
        "openai": [{"models": ["gpt-free-*"], "input": 0, "output": 0}],
    }
    azure = next(provider for provider in config["providers"] if provider["name"] == "azure")
    azure["azure"] = {**azure["azure"], "deployments": {"azure-new": "gpt-unpriced-9", "azure-known": "gpt-free-1"}}
    # Pools under the `daily` budget (claude-*): any member may answer, so each must be priced.
    config["routes"][:0] = [
        {
            "name": f"pool-{fallback}",
            "model": f"claude-pool-{fallback}",
            "pool": [
                {"provider": "anthropic", "model": "claude-free-1"},
                {"provider": "openai", "model": f"gpt-{fallback}-9", "priority": 1},
            ],
        }
        for fallback in ("free", "unpriced")
    ]
    return config


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(scope="module")
def config(
    redis: RedisServer, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> dict[str, Any]:
    return _config((fake_openai, fake_anthropic, fake_gemini), redis)


ENV = {**PROVIDER_ENV, "GW_ADMIN_TOKEN": ADMIN_TOKEN}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any]) -> Iterator[GatewayStack]:
    stack = GatewayStack(Path(tmp_path_factory.mktemp("first")), config, ENV).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any]) -> Iterator[GatewayStack]:
    stack = GatewayStack(Path(tmp_path_factory.mktemp("second")), config, ENV).start()
    yield stack
    stack.stop()


def until_midnight_utc() -> float:
    now = datetime.now(UTC)
    return (datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1) - now).total_seconds()


def spend(stack: GatewayStack) -> dict[str, Any]:
    answer = httpx.get(stack.admin_url + "/spend", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def spent_usd(stack: GatewayStack, budget: str, model: str) -> float:
    for report in spend(stack)["budgets"]:
        if report["name"] == budget:
            for bucket in report["buckets"]:
                if bucket["for"] == {"model": model}:
                    return float(bucket["spent_usd"])
    return 0.0


def settled_over(stack: GatewayStack, budget: str, model: str, limit: float) -> None:
    """The first answer's real cost is settled (in the background, once its stream closed)."""
    assert wait_until(lambda: spent_usd(stack, budget, model) > limit, timeout=10), spend(stack)


def assert_retry_after_is_midnight(value: str | None) -> None:
    assert value is not None
    assert until_midnight_utc() - 30 <= int(value) <= math.ceil(until_midnight_utc()) + 1


def test_a_spent_budget_refuses_openai_clients_with_insufficient_quota_until_midnight_utc(
    first: GatewayStack,
) -> None:
    ask_openai(first.base_url, "gpt-4o", stream=False)
    settled_over(first, "daily", "gpt-4o", TINY)
    with pytest.raises(openai.RateLimitError) as refused:
        ask_openai(first.base_url, "gpt-4o", stream=False)
    error = refused.value
    assert error.status_code == 429 and error.code == "insufficient_quota"
    assert isinstance(error.body, dict) and error.body["type"] == "insufficient_quota"
    assert "daily" in error.message and "request id" in error.message
    assert_retry_after_is_midnight(error.response.headers.get("retry-after"))


def test_a_spent_budget_refuses_anthropic_clients_in_their_format(first: GatewayStack) -> None:
    ask_anthropic(first.base_url, "claude-sonnet-4-5", stream=False, max_tokens=64)
    settled_over(first, "daily", "claude-sonnet-4-5", TINY)
    with pytest.raises(anthropic.RateLimitError) as refused:
        ask_anthropic(first.base_url, "claude-sonnet-4-5", stream=True, max_tokens=64)
    error = refused.value
    assert error.status_code == 429
    assert isinstance(error.body, dict) and error.body["error"]["type"] == "rate_limit_error"
    assert "budget 'daily'" in error.body["error"]["message"]
    assert_retry_after_is_midnight(error.response.headers.get("retry-after"))


def test_a_spent_budget_refuses_gemini_clients_in_their_format(first: GatewayStack) -> None:
    ask_gemini(first.base_url, "gemini-2.5-flash", stream=False)
    settled_over(first, "daily", "gemini-2.5-flash", TINY)
    with pytest.raises(genai_errors.ClientError) as refused:
        ask_gemini(first.base_url, "gemini-2.5-flash", stream=False)
    error = refused.value
    assert error.code == 429 and error.status == "RESOURCE_EXHAUSTED"
    assert error.details["error"]["details"][0]["reason"] == "INSUFFICIENT_QUOTA"
    assert_retry_after_is_midnight(error.response.headers.get("retry-after"))


def test_a_model_with_no_price_is_refused_under_a_budget_and_one_priced_at_0_goes(
    first: GatewayStack, fake_anthropic: FakeAnthropic
) -> None:
    asked = len(fake_anthropic.requests)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        ask_anthropic(first.base_url, "claude-unpriced-1", stream=False, max_tokens=64)
    error = refused.value
    assert error.status_code == 403
    assert isinstance(error.body, dict) and error.body["error"]["type"] == "permission_error"
    assert "'claude-unpriced-1' of provider 'anthropic' has no price" in error.message
    assert "budget 'daily'" in error.message
    assert len(fake_anthropic.requests) == asked  # the budget could not bound it: it never left
    assert ask_anthropic(first.base_url, "claude-free-1", stream=False, max_tokens=64).text  # free is a price


def test_a_pool_whose_fallback_member_has_no_price_is_refused_under_a_budget_and_one_fully_priced_goes(
    first: GatewayStack, fake_anthropic: FakeAnthropic, fake_openai: FakeOpenAI
) -> None:
    asked = len(fake_anthropic.requests), len(fake_openai.requests)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        ask_anthropic(first.base_url, "claude-pool-unpriced", stream=False, max_tokens=64)
    assert refused.value.status_code == 403
    assert "'gpt-unpriced-9' of provider 'openai' has no price" in refused.value.message
    assert (len(fake_anthropic.requests), len(fake_openai.requests)) == asked  # no member was asked
    assert ask_anthropic(first.base_url, "claude-pool-free", stream=False, max_tokens=64).text


def test_an_azure_deployment_listed_with_an_unpriced_model_is_refused_and_one_with_a_priced_model_goes(
    first: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    asked = len(fake_openai.requests)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        ask_openai(first.base_url, "azure-new", stream=False)
    assert "'gpt-unpriced-9' of provider 'azure' has no price" in refused.value.message
    assert len(fake_openai.requests) == asked  # never sent
    assert ask_openai(first.base_url, "azure-known", stream=False).text  # priced as gpt-free-1 (at 0)
    assert fake_openai.requests[-1].path == "/openai/deployments/azure-known/chat/completions"


def test_a_stream_settles_at_its_real_cost_not_its_reservation(first: GatewayStack) -> None:
    model = "gpt-4o-mini-2024-07-18"  # a bucket of its own
    outcome = ask_openai(first.base_url, model, stream=True, max_tokens=4000)
    assert outcome.usage is not None
    prompt, output = outcome.usage
    real = to_micro(price_table().cost("openai", model, Usage(prompt, output)).usd) / 1e6
    reserved = 4000 * 0.6e-6  # the output alone it could have cost
    assert wait_until(lambda: math.isclose(spent_usd(first, "monthly", model), real), timeout=10), spend(first)
    assert real < reserved / 10


def test_two_instances_on_one_redis_share_a_budget(first: GatewayStack, second: GatewayStack) -> None:
    ask_anthropic(first.base_url, "claude-haiku-4-5", stream=False, max_tokens=64)
    settled_over(first, "daily", "claude-haiku-4-5", TINY)
    assert spent_usd(second, "daily", "claude-haiku-4-5") == spent_usd(first, "daily", "claude-haiku-4-5")
    with pytest.raises(anthropic.RateLimitError):
        ask_anthropic(second.base_url, "claude-haiku-4-5", stream=False, max_tokens=64)


def test_a_restarted_gateway_keeps_what_was_spent(
    tmp_path_factory: pytest.TempPathFactory, config: dict[str, Any]
) -> None:
    before = GatewayStack(Path(tmp_path_factory.mktemp("before")), config, ENV).start()
    try:
        ask_openai(before.base_url, "gpt-4o-2024-08-06", stream=False)
        settled_over(before, "daily", "gpt-4o-2024-08-06", TINY)
        spent = spent_usd(before, "daily", "gpt-4o-2024-08-06")
    finally:
        before.stop()
    after = GatewayStack(Path(tmp_path_factory.mktemp("after")), config, ENV).start()
    try:
        assert spent_usd(after, "daily", "gpt-4o-2024-08-06") == spent
        with pytest.raises(openai.RateLimitError) as refused:
            ask_openai(after.base_url, "gpt-4o-2024-08-06", stream=False)
        assert refused.value.code == "insufficient_quota"
    finally:
        after.stop()


def test_spend_reports_each_budget_and_needs_the_admin_token(first: GatewayStack) -> None:
    assert httpx.get(first.admin_url + "/spend", timeout=10).status_code == 403
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(first.admin_url + "/spend", headers=wrong, timeout=10).status_code == 403
    ask_openai(first.base_url, "gpt-4o-mini", stream=False)
    report = spend(first)
    monthly = next(budget for budget in report["budgets"] if budget["name"] == "monthly")
    assert monthly["limit_usd"] == BIG and monthly["window"]["calendar"] == "month"
    assert monthly["window"]["end"].endswith("T00:00:00Z") and monthly["window"]["end"][8:10] == "01"
    bucket = next(bucket for bucket in monthly["buckets"] if bucket["for"] == {"model": "gpt-4o-mini"})
    assert bucket["spent_usd"] > 0
    assert math.isclose(bucket["spent_usd"] + bucket["remaining_usd"], BIG)
    assert report["spend"]["model"]["month"]["gpt-4o-mini"] == bucket["spent_usd"]
    assert time.strftime("%Y-%m-%d", time.gmtime()) in report["at"]


def test_the_used_ratio_of_each_budget_is_a_metric(first: GatewayStack) -> None:
    ask_openai(first.base_url, "gpt-4o-mini", stream=False)
    text = httpx.get(first.admin_url + "/metrics", timeout=10).text
    assert 'gateway_budget_used_ratio{name="model=gpt-4o-mini",scope="monthly"}' in text


def test_extproc_spend_prints_the_report_with_the_configs_admin_token(first: GatewayStack) -> None:
    ask_openai(first.base_url, "gpt-4o-mini", stream=False)
    config = str(first.workdir / "gateway.yaml")
    printed = run_cli("spend", "--config", config, env={**os.environ, **ENV})
    assert printed.returncode == 0, printed.stderr
    assert any(budget["name"] == "monthly" for budget in json.loads(printed.stdout)["budgets"])
    refused = run_cli("spend", "--config", config, env={**os.environ, **ENV, "GW_ADMIN_TOKEN": "wrong-token"})
    assert refused.returncode == 1 and "403" in refused.stderr
