"""USD budgets: calendar windows and their boundaries, the reservation and settle arithmetic in
micro-dollars, the store's calendar buckets, and LimitsStage's refusal (insufficient_quota, with the
time until the window frees enough) driven alone with an Exchange.

tests/integration/test_budgets.py drives the same through the real Envoy with the official SDKs.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from extproc.auth.identity import Identity
from extproc.budgets import charges as budgets
from extproc.budgets.windows import WindowClock, calendar_window
from extproc.config.load import ConfigError, load_text
from extproc.errors import GatewayError, render_openai_error
from extproc.formats.assemble import StreamAssembler
from extproc.formats.canonical import ChatRequest, StreamStart, TextDelta, Usage
from extproc.pipeline import limits
from extproc.pipeline.endpoint import classify
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.limits import LimitsStage, bucket_values
from extproc.pipeline.spend import asked_model, request_cost
from extproc.routing import Facts
from extproc.spend.prices import price_table
from extproc.state import GatewayState
from extproc.store.base import Take
from extproc.store.memory import MemoryStore
from tests.support.metrics import pending_writes_here
from tests.support.wait import wait_until_async


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


# Calendar windows


@pytest.mark.parametrize(
    ("kind", "moment", "label", "start", "end"),
    [
        ("day", utc(2026, 12, 7, 13, 30), "2026-12-07", utc(2026, 12, 7), utc(2026, 12, 8)),
        ("day", utc(2026, 12, 31, 23, 59, 59), "2026-12-31", utc(2026, 12, 31), utc(2027, 1, 1)),
        ("day", utc(2026, 12, 8), "2026-12-08", utc(2026, 12, 8), utc(2026, 12, 9)),  # the boundary is the next day
        ("month", utc(2026, 12, 7, 13, 30), "2026-12", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("month", utc(2028, 2, 29, 23, 0), "2028-02", utc(2028, 2, 1), utc(2028, 3, 1)),  # a leap year's February
        ("month", utc(2027, 1, 1), "2027-01", utc(2027, 1, 1), utc(2027, 2, 1)),
    ],
)
def test_a_calendar_window_is_the_utc_day_or_month_and_ends_at_the_next_boundary(
    kind: str, moment: float, label: str, start: float, end: float
) -> None:
    window = calendar_window(kind, moment)  # type: ignore[arg-type]
    assert (window.label, window.start, window.end) == (label, start, end)
    assert window.left_s(moment) == end - moment


def test_the_window_clock_moves_on_at_the_boundary() -> None:
    clock = WindowClock()
    assert clock.at("day", utc(2026, 12, 7, 23, 59, 59)).label == "2026-12-07"
    assert clock.at("day", utc(2026, 12, 8)).label == "2026-12-08"
    assert clock.at("month", utc(2026, 12, 8)).label == "2026-12"


# Arithmetic in micro-dollars

TABLE = price_table({"openai": [{"models": ["priced"], "input": 2.0, "output": 10.0}]})


def test_a_reservation_is_the_prompt_at_the_input_price_plus_max_tokens_at_the_output_price() -> None:
    # 1,000 prompt tokens at $2/M and 500 output at $10/M: $0.002 + $0.005.
    assert budgets.reservation(TABLE, "openai", "priced", 1000, 500) == 7000
    assert budgets.reservation(TABLE, "openai", "priced", -5, -(10**12)) == 0  # floored: never a refund
    assert budgets.reservation(TABLE, "openai", "no-such-model", 1000, 500) == 0  # no price costs 0


def test_a_settle_charges_the_providers_usage_in_full_and_an_estimate_at_most_what_was_reserved() -> None:
    cost = TABLE.cost("openai", "priced", Usage(1000, 2000)).usd  # $0.002 + $0.02
    assert budgets.charge(cost, known=True, reserved=7000) == 22000
    assert budgets.charge(cost, known=False, reserved=7000) == 7000
    assert budgets.charge(TABLE.cost("openai", "priced", Usage(-(10**9), -5)).usd, known=True, reserved=7000) == 0


def test_usd_become_whole_micro_dollars_rounded_up() -> None:
    assert budgets.to_micro(50) == 50_000_000
    assert budgets.to_micro(0.0000001) == 1  # a part of a micro-dollar is charged as one
    assert budgets.to_micro(0.000001) == 1
    assert budgets.to_micro(-3) == 0


# The store's calendar buckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_calendar_bucket_never_refills_and_refuses_until_its_window_ends() -> None:
    async def scenario() -> None:
        clock = Clock()
        store = MemoryStore(10, 1000, clock=clock)
        take = Take("b/usd@2026-12", 600, 1000, window_s=3600, refills=False)
        assert (await store.take([take]))[0].allowed
        clock.now += 1800  # half the window: a rolling bucket would have refilled 500
        refused = (await store.take([take]))[0]
        assert not refused.allowed and refused.remaining == 400
        assert refused.retry_after_s == 3600  # what the take said is left of the window
        await store.settle(take.key, 600, 100, 1000, 3600, refills=False)  # the first cost 100 in the end
        assert await store.levels([take.key], 1000, 3600, refills=False) == [900]
        assert await store.bucket_keys("b/") == [take.key]
        clock.now += 1801  # the window the first take saw has ended
        assert await store.levels([take.key], 1000, 3600, refills=False) == [1000]
        assert await store.bucket_keys("b/") == []

    asyncio.run(scenario())


# The stage

CONFIG = """
providers: [{name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}]
routes: [{model: "*", provider: openai}]
limits:
  rules:
    - {name: daily, key: [client], usd: 0.01, window: day}
    - {name: rolling, key: [tenant], usd: 1, window_s: 3600}
prices:
  openai: [{models: [priced], input: 2.0, output: 10.0}]  # as TABLE
"""
BODY = b"x" * 4000  # an input estimate of 1,000 tokens: $0.002 at $2/M
NOW = utc(2026, 12, 7, 18, 0)  # six hours before the day ends


@pytest.fixture
def priced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits.time, "time", lambda: NOW)


def state() -> GatewayState:
    return GatewayState(load_text(CONFIG, {"K": "secret"}, Path(".")))


def exchange(state: GatewayState, max_tokens: int | None = None, client: str = "alice") -> Exchange:
    ex = Exchange(state.snapshot)
    ex.request_id = "r"
    ex.endpoint = classify("POST", "/v1/chat/completions", {})
    ex.identity = Identity(client, "acme", method="api_key")
    ex.request = ChatRequest(model="priced", messages=[], max_tokens=max_tokens)
    ex.model = "priced"
    ex.target = state.snapshot.router.resolve("priced", Facts({}, "openai", "/v1/chat/completions", client, "acme"))
    return ex


async def finished(stage: LimitsStage, ex: Exchange) -> None:
    before = pending_writes_here()
    stage.finish(ex)
    assert await wait_until_async(lambda: pending_writes_here() == before)


async def spent(store: MemoryStore, key: str, limit_usd: float, window_s: float, refills: bool) -> int:
    limit = budgets.to_micro(limit_usd)
    return limit - round((await store.levels([key], limit, window_s, refills))[0])


DAILY = "daily/client=alice/usd@2026-12-07"
ROLLING = "rolling/tenant=acme/usd"


def test_a_request_reserves_its_worst_case_in_every_budget_and_settles_at_its_real_cost(priced: None) -> None:
    async def scenario() -> None:
        store = MemoryStore(100, 1 << 20)
        stage, gateway = LimitsStage(store), state()
        ex = exchange(gateway, max_tokens=500)  # $0.002 + 500 x $10/M = $0.007
        assert await stage.request_body(ex, PhaseReply(), BODY) is None
        assert [(t.key, t.cost, t.refills) for t in ex.reserved_usd] == [(DAILY, 7000, False), (ROLLING, 7000, True)]
        assert await spent(store, DAILY, 0.01, 3600, False) == 7000
        ex.status, ex.usage = 200, Usage(1000, 100)  # $0.002 + $0.001
        await finished(stage, ex)
        assert await spent(store, DAILY, 0.01, 3600, False) == 3000
        assert 2990 <= await spent(store, ROLLING, 1, 3600, True) <= 3000  # a rolling bucket refills as it goes

    asyncio.run(scenario())


def test_a_spent_budget_refuses_with_insufficient_quota_until_its_day_ends(priced: None) -> None:
    async def scenario() -> None:
        store = MemoryStore(100, 1 << 20)
        stage, gateway = LimitsStage(store), state()
        first = exchange(gateway, max_tokens=100)
        await stage.request_body(first, PhaseReply(), BODY)
        first.status, first.usage = 200, Usage(1000, 800)  # $0.002 + $0.008: the $0.01 is spent
        await finished(stage, first)
        with pytest.raises(GatewayError) as refused:
            await stage.request_body(exchange(gateway, max_tokens=100), PhaseReply(), BODY)
        error = refused.value
        assert (error.kind, error.status, error.code) == ("insufficient_quota", 429, "insufficient_quota")
        assert "daily" in error.message
        assert dict(error.headers)["retry-after"] == str(6 * 3600)  # until midnight UTC
        body = render_openai_error(error, "r")
        assert b'"type":"insufficient_quota"' in body and b'"code":"insufficient_quota"' in body
        # Another client's budget is its own.
        assert await stage.request_body(exchange(gateway, client="bob"), PhaseReply(), BODY) is None

    asyncio.run(scenario())


def test_a_rolling_budget_says_to_retry_when_enough_has_come_back(priced: None) -> None:
    config = CONFIG.replace("usd: 0.01, window: day", "usd: 100, window: day").replace("usd: 1,", "usd: 0.0036,")
    gateway = GatewayState(load_text(config, {"K": "secret"}, Path(".")))

    async def scenario() -> None:
        stage = LimitsStage(MemoryStore(100, 1 << 20))
        first = exchange(gateway, max_tokens=0)
        await stage.request_body(first, PhaseReply(), BODY)
        first.status, first.usage = 200, Usage(1000, 100)  # $0.003 of $0.0036 an hour
        await finished(stage, first)
        with pytest.raises(GatewayError) as refused:
            await stage.request_body(exchange(gateway, max_tokens=100), PhaseReply(), BODY)  # reserves $0.003
        # $0.0006 left, $0.003 needed: $0.0024 at $0.0036 an hour comes back in 2,400 s.
        retry = int(dict(refused.value.headers)["retry-after"])
        assert 2390 <= retry <= 2401 and refused.value.kind == "insufficient_quota"

    asyncio.run(scenario())


def test_a_client_that_hangs_up_pays_its_prompt_and_a_cut_stream_no_more_than_it_reserved(priced: None) -> None:
    async def scenario() -> None:
        store = MemoryStore(100, 1 << 20)
        stage, gateway = LimitsStage(store), state()
        gone = exchange(gateway, max_tokens=100)
        await stage.request_body(gone, PhaseReply(), BODY)
        await finished(stage, gone)  # no status, no answer: the prompt went out
        assert await spent(store, DAILY, 0.01, 3600, False) == 2000
        cut = exchange(gateway, client="bob", max_tokens=10)  # reserves $0.002 + $0.0001
        await stage.request_body(cut, PhaseReply(), BODY)
        cut.status, cut.assembler = 200, StreamAssembler()
        cut.assembler.add([StreamStart("c", "priced", 0, 0), TextDelta("x" * 4000)])  # ~1,000 tokens estimated
        await finished(stage, cut)
        assert await spent(store, "daily/client=bob/usd@2026-12-07", 0.01, 3600, False) == 2100

    asyncio.run(scenario())


def test_a_calendar_window_and_a_rolling_one_cannot_both_be_given() -> None:
    config = CONFIG.replace("window: day", "window: day, window_s: 60")
    with pytest.raises(ConfigError) as error:
        load_text(config, {"K": "secret"}, Path("."))
    assert any("not both" in problem for problem in error.value.problems)


def test_a_bucket_names_what_it_is_counted_per() -> None:
    assert bucket_values(DAILY) == "client=alice"
    assert bucket_values("all/usd@2026-12") == ""
    assert math.isclose(budgets.to_usd(7000), 0.007)


def routed_exchange(config: str, model: str) -> tuple[GatewayState, Exchange]:
    """An OpenAI chat request for `model` from alice, routed by `config`, at the limits stage."""
    gateway = GatewayState(load_text(config, {"K": "secret"}, Path(".")))
    ex = Exchange(gateway.snapshot)
    ex.request_id, ex.model = "r", model
    ex.endpoint = classify("POST", "/v1/chat/completions", {})
    ex.identity = Identity("alice", "acme", method="api_key")
    ex.request = ChatRequest(model=model, messages=[], max_tokens=100)
    ex.target = gateway.snapshot.router.resolve(model, Facts({}, "openai", "/v1/chat/completions", "alice", "acme"))
    return gateway, ex


UNPRICED_CONFIG = """
providers:
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: azure, kind: openai, base_url: "https://x.openai.azure.com", api_key_env: K, azure: {api_version: "2024-10-21"}}
  - {name: mock, kind: mock}
routes:
  - {model: "our-deployment", provider: azure}
  - {model: "mock-1", provider: mock}
  - {model: "*", provider: openai}
limits:
  rules: [{name: daily, key: [client], usd: 0.01, window: day}]
"""


@pytest.mark.parametrize(
    ("model", "refused"),
    [("gpt-unpriced-9", True), ("our-deployment", False), ("mock-1", False)],
    ids=["unpriced", "azure-deployment", "mock"],
)
def test_under_a_budget_a_model_with_no_price_is_refused_unless_it_is_a_deployment_or_answered_here(
    priced: None, model: str, refused: bool
) -> None:
    _, ex = routed_exchange(UNPRICED_CONFIG, model)
    stage = LimitsStage(MemoryStore(100, 1 << 20))
    if not refused:
        assert asyncio.run(stage.request_body(ex, PhaseReply(), BODY)) is None
        assert [take.cost for take in ex.reserved_usd] == [0]  # priced once its answer names the model, or free
        return
    with pytest.raises(GatewayError) as error:
        asyncio.run(stage.request_body(ex, PhaseReply(), BODY))
    assert (error.value.kind, error.value.status, error.value.code) == ("permission", 403, "model_not_priced")
    assert "'gpt-unpriced-9' of provider 'openai' has no price, so budget 'daily'" in error.value.message


POOL_CONFIG = """
providers:
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: backup, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
routes:
  - name: pooled
    model: "ask-*"
    upstream_model: dear
    pool: [{provider: openai, model: cheap}, {provider: backup, priority: 1}]
limits:
  rules: [{name: daily, key: [client], usd: 1, window: day}]
prices:
  openai: [{models: [cheap], input: 1.0, output: 1.0}]
  anthropic: [{models: [dear], input: 10.0, output: 10.0}]
"""


def pooled_exchange(config: str) -> tuple[GatewayState, Exchange]:
    return routed_exchange(config, "ask-me")


def test_a_pool_reserves_the_worst_case_of_its_dearest_member_since_any_of_them_may_answer(priced: None) -> None:
    _, ex = pooled_exchange(POOL_CONFIG)
    assert asyncio.run(LimitsStage(MemoryStore(100, 1 << 20)).request_body(ex, PhaseReply(), BODY)) is None
    # The fallback member names no model of its own: it is asked for the route's upstream_model,
    # `dear`, at $10/M: 1,000 prompt tokens and 100 more, $0.011 (`cheap` would be $0.0011).
    assert [take.cost for take in ex.reserved_usd] == [11_000]


def test_under_a_budget_a_pool_with_an_unpriced_fallback_member_is_refused_naming_that_member(priced: None) -> None:
    _, ex = pooled_exchange(POOL_CONFIG.replace("upstream_model: dear", "upstream_model: unknown-9"))
    with pytest.raises(GatewayError) as error:
        asyncio.run(LimitsStage(MemoryStore(100, 1 << 20)).request_body(ex, PhaseReply(), BODY))
    assert error.value.code == "model_not_priced"
    assert "'unknown-9' of provider 'backup' has no price" in error.value.message


def test_a_pool_member_that_names_no_model_is_priced_as_the_routes_upstream_model_when_it_answers() -> None:
    gateway, ex = pooled_exchange(POOL_CONFIG)
    ex.answered_by = gateway.snapshot.config.provider("backup")
    assert asked_model(ex) == "dear"
    ex.status, ex.usage = 200, Usage(1000, 1000)
    assert math.isclose(request_cost(ex).usd, 0.02)  # $10/M both ways, not the client's unpriced `ask-me`


AZURE_CONFIG = """
providers:
  - name: azure
    kind: openai
    base_url: "https://x.openai.azure.com"
    api_key_env: K
    azure: {api_version: "2024-10-21", deployments: {prod-chat: priced, prod-new: gpt-unpriced-9}}
routes: [{model: "*", provider: azure}]
limits:
  rules: [{name: daily, key: [client], usd: 1, window: day}]
prices:
  azure: [{models: [priced], input: 2.0, output: 10.0}]
"""


def azure_exchange(deployment: str) -> Exchange:
    return routed_exchange(AZURE_CONFIG, deployment)[1]


def test_an_azure_deployment_listed_with_its_model_reserves_that_models_worst_case(priced: None) -> None:
    ex = azure_exchange("prod-chat")
    assert asyncio.run(LimitsStage(MemoryStore(100, 1 << 20)).request_body(ex, PhaseReply(), BODY)) is None
    assert [take.cost for take in ex.reserved_usd] == [3000]  # 1,000 tokens at $2/M, 100 at $10/M
    ex.status, ex.usage = 200, Usage(1000, 100)
    assert math.isclose(request_cost(ex).usd, 0.003)  # charged as its model before any answer names one
    unlisted = azure_exchange("prod-other")
    assert asyncio.run(LimitsStage(MemoryStore(100, 1 << 20)).request_body(unlisted, PhaseReply(), BODY)) is None
    assert [take.cost for take in unlisted.reserved_usd] == [0]  # unlisted: priced once its answer names the model


def test_an_azure_deployment_listed_with_an_unpriced_model_is_refused_under_a_budget(priced: None) -> None:
    with pytest.raises(GatewayError) as error:
        asyncio.run(LimitsStage(MemoryStore(100, 1 << 20)).request_body(azure_exchange("prod-new"), PhaseReply(), BODY))
    assert error.value.code == "model_not_priced"
    assert "'gpt-unpriced-9' of provider 'azure' has no price" in error.value.message
