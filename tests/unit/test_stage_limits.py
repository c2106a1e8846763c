"""LimitsStage driven alone with an Exchange, on the embedded store: what a request reserves and what it is
charged, whatever its own fields or its provider's count say, and whom its stream slot is held for.

tests/integration/test_limit_accounting.py attacks the same through the real Envoy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from extproc.auth.identity import Identity
from extproc.config.load import load_text
from extproc.errors import GatewayError
from extproc.formats.assemble import StreamAssembler
from extproc.formats.canonical import ChatRequest, StreamStart, TextDelta, Usage, UsageUpdate
from extproc.pipeline.endpoint import classify
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.limits import LimitsStage
from extproc.routing import Facts
from extproc.state import GatewayState
from extproc.store.base import Decision, StoreError, Take
from extproc.store.memory import MemoryStore
from tests.support.metrics import pending_writes_here
from tests.support.wait import wait_until_async

TOKENS = 10_000
CONFIG = f"""
providers: [{{name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}}]
routes: [{{model: "*", provider: openai}}]
limits:
  rules:
    - {{name: tokens, key: [client], tokens: {TOKENS}, window_s: 3600000}}
    - {{name: streams, key: [client], concurrent_streams: 1}}
"""
BODY = b"x" * 400  # an input estimate of 100 tokens
PROMPT = 100

Scenario = Callable[[LimitsStage, GatewayState], Awaitable[None]]


def run(scenario: Scenario) -> None:
    state = GatewayState(load_text(CONFIG, {"K": "secret"}, Path(".")))
    store = MemoryStore(100, 1 << 20)
    asyncio.run(scenario(LimitsStage(store), state))


def exchange(
    state: GatewayState, max_tokens: int | None = None, stream: bool = False, request_id: str = "r"
) -> Exchange:
    """A request as the stages before limits leave it: parsed, authenticated and routed."""
    ex = Exchange(state.snapshot)
    ex.request_id = request_id
    ex.endpoint = classify("POST", "/v1/chat/completions", {})
    ex.identity = Identity("alice", "acme", method="api_key")
    ex.request = ChatRequest(model="gpt-x", messages=[], stream=stream, max_tokens=max_tokens)
    ex.model, ex.stream = "gpt-x", stream
    ex.target = state.snapshot.router.resolve("gpt-x", Facts({}, "openai", "/v1/chat/completions", "alice", "acme"))
    return ex


async def admitted(stage: LimitsStage, ex: Exchange) -> Exchange:
    assert await stage.request_body(ex, PhaseReply(), BODY) is None
    return ex


async def finished(stage: LimitsStage, ex: Exchange) -> None:
    before = pending_writes_here()
    stage.finish(ex)
    assert await wait_until_async(lambda: pending_writes_here() == before)  # the settles run in the background


async def left(stage: LimitsStage, state: GatewayState) -> int:
    """What alice's bucket holds now, read by a request that costs nothing in the end."""
    probe = await admitted(stage, exchange(state))
    remaining = int(dict(probe.limit_headers)["x-ratelimit-remaining-tokens"])
    await finished(stage, answered(probe, Usage(0, 0)))
    return remaining + probe.reserved[0].cost


def answered(ex: Exchange, usage: Usage | None, status: int = 200) -> Exchange:
    ex.status, ex.answered, ex.usage = status, True, usage
    return ex


@pytest.mark.parametrize(
    ("max_tokens", "reserved"),
    [(-1_000_000_000_000, PROMPT), (0, PROMPT), (None, PROMPT), (500, PROMPT + 500), (10**15, TOKENS)],
)
def test_a_reservation_is_the_prompt_and_the_output_allowed_within_zero_and_the_bucket(
    max_tokens: int | None, reserved: int
) -> None:
    async def scenario(stage: LimitsStage, state: GatewayState) -> None:
        ex = await admitted(stage, exchange(state, max_tokens))
        assert [take.cost for take in ex.reserved] == [reserved]
        assert dict(ex.limit_headers)["x-ratelimit-remaining-tokens"] == str(TOKENS - reserved)
        await finished(stage, answered(ex, Usage(100, 20)))
        assert await left(stage, state) == TOKENS - 120  # the provider's count, whatever was reserved

    run(scenario)


def test_a_providers_negative_count_gives_back_no_more_than_was_reserved() -> None:
    async def scenario(stage: LimitsStage, state: GatewayState) -> None:
        await finished(stage, answered(await admitted(stage, exchange(state)), Usage(300, 0)))
        ex = await admitted(stage, exchange(state, max_tokens=50))
        await finished(stage, answered(ex, Usage(-1_000_000_000_000, -5)))
        assert await left(stage, state) == TOKENS - 300

    run(scenario)


def test_a_failed_or_cached_answer_costs_nothing() -> None:
    async def scenario(stage: LimitsStage, state: GatewayState) -> None:
        await finished(stage, answered(await admitted(stage, exchange(state)), None, status=502))
        cached = await admitted(stage, exchange(state))
        cached.cache_status = "HIT"
        await finished(stage, answered(cached, None))
        assert await left(stage, state) == TOKENS

    run(scenario)


def test_a_client_that_hangs_up_before_the_answer_starts_pays_for_its_prompt() -> None:
    async def scenario(stage: LimitsStage, state: GatewayState) -> None:
        ex = await admitted(stage, exchange(state, max_tokens=500))
        await finished(stage, ex)  # no answer, no status: the client went away
        assert await left(stage, state) == TOKENS - PROMPT

    run(scenario)


def test_a_stream_cut_after_the_providers_prompt_count_arrived_pays_that_count() -> None:
    async def scenario(stage: LimitsStage, state: GatewayState) -> None:
        ex = await admitted(stage, exchange(state, max_tokens=500, stream=True))
        ex.status, ex.assembler = 200, StreamAssembler()
        # What Anthropic's message_start carries: the prompt's count before any output.
        ex.assembler.add([StreamStart("msg_1", "claude", 0, 42), UsageUpdate(Usage(42, 1)), TextDelta("x" * 40)])
        await finished(stage, ex)  # the client hung up mid-stream
        assert await left(stage, state) == TOKENS - 42 - 10

    run(scenario)


def test_streams_that_send_one_request_id_hold_a_slot_each() -> None:
    async def scenario(stage: LimitsStage, state: GatewayState) -> None:
        first = await admitted(stage, exchange(state, stream=True, request_id="same"))
        with pytest.raises(GatewayError) as refused:
            await stage.request_body(exchange(state, stream=True, request_id="same"), PhaseReply(), BODY)
        assert refused.value.kind == "rate_limit"
        assert first.slots and first.slot_holder not in ("", "same")
        await finished(stage, answered(first, Usage(0, 0)))
        await admitted(stage, exchange(state, stream=True, request_id="same"))  # the slot was given back

    run(scenario)


REQUESTS = """
providers: [{name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}]
routes: [{model: "*", provider: openai}]
limits:
  on_store_error: ON_STORE_ERROR
  rules:
    - {name: two-a-minute, key: [client], match: {models: ["gpt-x"]}, requests: 2, window_s: 60}
"""


def requests_state(on_store_error: str = "allow") -> GatewayState:
    return GatewayState(load_text(REQUESTS.replace("ON_STORE_ERROR", on_store_error), {"K": "secret"}, Path(".")))


def test_a_request_over_the_limit_is_refused_with_when_to_retry_and_the_limits_figures() -> None:
    async def scenario() -> None:
        stage, state = LimitsStage(MemoryStore(100, 1 << 20)), requests_state()
        first = await admitted(stage, exchange(state))
        assert dict(first.limit_headers)["x-ratelimit-remaining-requests"] == "1"
        await admitted(stage, exchange(state))
        with pytest.raises(GatewayError) as refused:
            await stage.request_body(exchange(state), PhaseReply(), BODY)
        error = refused.value
        assert (error.kind, error.status, error.code) == ("rate_limit", 429, "rate_limit_exceeded")
        assert "two-a-minute" in error.message
        headers = dict(error.headers)
        assert 20 < int(headers["retry-after"]) <= 30  # two a minute: the next fits in about 30 s
        assert headers["x-ratelimit-remaining-requests"] == "0" and headers["x-ratelimit-limit-requests"] == "2"

    asyncio.run(scenario())


def test_the_limits_figures_go_back_with_the_answer() -> None:
    async def scenario() -> None:
        stage, state = LimitsStage(MemoryStore(100, 1 << 20)), requests_state()
        ex = await admitted(stage, exchange(state))
        reply = PhaseReply()
        stage.response_headers(ex, reply, {":status": "200"})
        assert reply.set_headers == ex.limit_headers and dict(reply.set_headers)["x-ratelimit-limit-requests"] == "2"

    asyncio.run(scenario())


def test_a_request_no_rule_matches_is_not_counted() -> None:
    async def scenario() -> None:
        stage, state = LimitsStage(MemoryStore(100, 1 << 20)), requests_state()
        ex = exchange(state)
        ex.model = "gpt-other"
        ex.target = state.snapshot.router.resolve("gpt-other", Facts({}, "openai", "/v1/chat/completions", "", ""))
        for _ in range(3):
            await admitted(stage, ex)
        assert ex.limit_headers == [] and ex.reserved == [] and ex.slots == []

    asyncio.run(scenario())


class Unreachable(MemoryStore):
    def __init__(self) -> None:
        super().__init__(100, 1 << 20)

    async def take(self, takes: list[Take]) -> list[Decision]:
        raise StoreError("redis went away")


def test_with_the_store_down_requests_are_allowed_by_default() -> None:
    async def scenario() -> None:
        stage, state = LimitsStage(Unreachable()), requests_state("allow")
        ex = await admitted(stage, exchange(state))
        assert ex.limit_headers == [] and ex.reserved == []

    asyncio.run(scenario())


def test_with_the_store_down_and_on_store_error_deny_requests_are_refused_as_unavailable() -> None:
    async def scenario() -> None:
        stage, state = LimitsStage(Unreachable()), requests_state("deny")
        with pytest.raises(GatewayError) as refused:
            await stage.request_body(exchange(state), PhaseReply(), BODY)
        assert (refused.value.kind, refused.value.status) == ("unavailable", 503)
        assert dict(refused.value.headers)["retry-after"] == "1"

    asyncio.run(scenario())
