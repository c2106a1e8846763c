"""BreakerStage driven alone with an Exchange, on in-process breakers with a clock of their own: a
single provider's answers open its breaker, an open one is a fast 503 in the client's format, and a
pool skips its open members, sends the probe of a half-open one, and is a 503 once all are open.

tests/integration/test_breakers.py drives the same through the real Envoy.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from extproc.breakers.manager import Breakers
from extproc.breakers.memory import MemoryBreakers
from extproc.errors import GatewayError
from extproc.pipeline.breaker import BreakerStage
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.state import Snapshot
from tests.support.exchanges import PROVIDERS, at_body, chat, snapshot
from tests.support.metrics import pending_writes_here
from tests.support.wait import wait_until_async

OPEN_S = 30
BREAKING = snapshot(
    PROVIDERS
    + f"""
breakers: {{failure_ratio: 0.5, min_requests: 2, window_s: 60, open_s: {OPEN_S}}}
routes:
  - name: pooled
    model: "pool-*"
    pool: [{{provider: openai}}, {{provider: anthropic, priority: 1, model: claude-backup}}]
  - {{model: "gpt-*", provider: openai}}
  - {{model: "claude-*", provider: anthropic}}
  - {{model: "mock-*", provider: mock}}
"""
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Breaking:
    """The stage on its own breakers; each scenario runs in one event loop (outcomes are recorded in it)."""

    def __init__(self, snap: Snapshot = BREAKING) -> None:
        self.clock = Clock()
        self.stage = BreakerStage(Breakers(MemoryBreakers(self.clock)))
        self.snap = snap

    async def ask(self, model: str) -> Exchange:
        ex, raw = at_body(self.snap, chat(model))
        assert await self.stage.request_body(ex, PhaseReply(), raw) is None
        return ex

    async def refused(self, model: str) -> GatewayError:
        ex, raw = at_body(self.snap, chat(model))
        with pytest.raises(GatewayError) as error:
            await self.stage.request_body(ex, PhaseReply(), raw)
        return error.value

    async def answered(self, ex: Exchange, status: int, **headers: str) -> None:
        """The provider's answer reaches the stage; its outcome is recorded after the answer went."""
        before = pending_writes_here()
        self.stage.response_headers(ex, PhaseReply(), {":status": str(status), **headers})
        assert await wait_until_async(lambda: pending_writes_here() == before)

    async def fail(self, model: str, times: int = 2) -> None:
        for _ in range(times):
            await self.answered(await self.ask(model), 500)


def rejections(provider: str) -> float:
    return REGISTRY.get_sample_value("gateway_breaker_rejections_total", {"provider": provider}) or 0.0


def test_a_closed_breaker_lets_the_request_go_as_routed() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        ex, raw = at_body(BREAKING, chat("gpt-4o"))
        target = ex.target
        reply = PhaseReply()
        assert await breaking.stage.request_body(ex, reply, raw) is None
        assert ex.target is target and reply == PhaseReply()

    asyncio.run(scenario())


def test_failed_answers_open_a_single_providers_breaker_and_it_refuses_fast_in_the_clients_format() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        await breaking.answered(await breaking.ask("gpt-4o"), 500)
        second = await breaking.ask("gpt-4o")  # one answer is fewer than min_requests: still closed
        await breaking.answered(second, 503)
        before = rejections("openai")
        error = await breaking.refused("gpt-4o")
        assert (error.kind, error.status, error.code) == ("unavailable", 503, "provider_circuit_open")
        assert "openai" in error.message and int(dict(error.headers)["retry-after"]) == OPEN_S
        assert rejections("openai") == before + 1

    asyncio.run(scenario())


def test_a_providers_retry_after_opens_its_breaker_for_that_long() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        await breaking.answered(await breaking.ask("gpt-4o"), 429, **{"retry-after": "120"})
        error = await breaking.refused("gpt-4o")
        assert int(dict(error.headers)["retry-after"]) == 120
        breaking.clock.now += 121
        await breaking.ask("gpt-4o")  # the probe

    asyncio.run(scenario())


def test_the_built_in_mock_has_no_breaker() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        await breaking.fail("mock-1", times=4)
        await breaking.ask("mock-1")

    asyncio.run(scenario())


def test_without_breakers_configured_nothing_is_checked_or_recorded() -> None:
    async def scenario() -> None:
        breaking = Breaking(snapshot())
        await breaking.fail("gpt-4o", times=4)
        await breaking.ask("gpt-4o")

    asyncio.run(scenario())


def test_a_pool_whose_members_are_closed_is_left_to_envoy() -> None:
    async def scenario() -> None:
        ex = await Breaking().ask("pool-1")
        assert ex.target is not None and ex.target.pooled

    asyncio.run(scenario())


def test_a_pool_skips_its_open_member_and_goes_straight_to_the_other() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        await breaking.fail("gpt-4o")  # opens openai, the pool's first choice
        ex = await breaking.ask("pool-1")
        assert ex.target is not None and not ex.target.pooled
        assert ex.target.provider.name == "anthropic" and ex.target.upstream_model == "claude-backup"
        assert ex.target.cluster == ex.target.provider.cluster and ex.target.route == "pooled"

    asyncio.run(scenario())


def test_a_half_open_member_gets_the_probe_once_its_open_time_is_over() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        await breaking.fail("gpt-4o")
        breaking.clock.now += OPEN_S + 1
        probe = await breaking.ask("pool-1")
        assert probe.target is not None and probe.target.provider.name == "openai" and not probe.target.pooled
        others = await breaking.ask("pool-1")  # while the probe is out, the others skip it
        assert others.target is not None and others.target.provider.name == "anthropic"

    asyncio.run(scenario())


def test_a_pool_whose_members_are_all_open_is_a_fast_503_naming_them() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        await breaking.fail("gpt-4o")
        await breaking.fail("claude-sonnet-4")
        error = await breaking.refused("pool-1")
        assert (error.status, error.code) == (503, "provider_circuit_open")
        assert "openai" in error.message and "anthropic" in error.message

    asyncio.run(scenario())


def test_a_pools_answers_are_reported_by_the_upstream_pass_not_here() -> None:
    async def scenario() -> None:
        breaking = Breaking()
        for _ in range(4):
            await breaking.answered(await breaking.ask("pool-1"), 500)
        ex = await breaking.ask("pool-1")
        assert ex.target is not None and ex.target.pooled  # nothing was opened

    asyncio.run(scenario())
