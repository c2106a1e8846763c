"""The circuit breaker's rules, on the memory store with a clock the test moves (the Redis scripts
follow the same rules; tests/integration covers them with two workers)."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from extproc.breakers.manager import Breakers
from extproc.breakers.memory import MemoryBreakers
from extproc.breakers.state import BreakerPolicy, BreakerView
from extproc.observe.admin import _exposition
from extproc.store.base import StoreError

POLICY = BreakerPolicy(failure_ratio=0.5, min_requests=4, window_s=10, open_s=5, probe_s=3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_it_opens_only_at_the_ratio_once_enough_requests_were_seen() -> None:
    breakers = MemoryBreakers(Clock())
    for ok in (False, False, False):
        assert run(breakers.record("p", ok, 0, POLICY)) == ""  # three failures: not yet four requests
    assert run(breakers.record("p", True, 0, POLICY)) == ""  # 3 of 4 failed, but this one succeeded
    assert run(breakers.record("p", False, 0, POLICY)) == "opened"
    assert not run(breakers.allow("p", POLICY)).allowed


def test_a_failure_ratio_below_the_threshold_keeps_it_closed() -> None:
    breakers = MemoryBreakers(Clock())
    for ok in (True, True, True, False, True, True, False):
        assert run(breakers.record("p", ok, 0, POLICY)) == ""
    assert run(breakers.allow("p", POLICY)).allowed


def test_the_window_forgets_old_outcomes() -> None:
    clock = Clock()
    breakers = MemoryBreakers(clock)
    for _ in range(3):
        run(breakers.record("p", False, 0, POLICY))
    clock.now += 11
    assert run(breakers.record("p", False, 0, POLICY)) == ""  # a new window: one failure of one


def test_open_then_one_probe_at_a_time_then_closed_by_its_success() -> None:
    clock = Clock()
    breakers = MemoryBreakers(clock)
    for _ in range(4):
        run(breakers.record("p", False, 0, POLICY))
    refused = run(breakers.allow("p", POLICY))
    assert not refused.allowed and refused.retry_in_s == 5
    clock.now += 5
    probe = run(breakers.allow("p", POLICY))
    assert probe.allowed and probe.probe
    assert not run(breakers.allow("p", POLICY)).allowed  # the probe is in flight
    assert run(breakers.view("p", POLICY)).state == "half_open"
    assert run(breakers.record("p", True, 0, POLICY)) == "closed"
    assert run(breakers.allow("p", POLICY)).allowed and run(breakers.view("p", POLICY)).state == "closed"


def test_a_failed_probe_opens_it_again_and_a_lost_probe_frees_its_slot() -> None:
    clock = Clock()
    breakers = MemoryBreakers(clock)
    for _ in range(4):
        run(breakers.record("p", False, 0, POLICY))
    clock.now += 5
    assert run(breakers.allow("p", POLICY)).probe
    assert run(breakers.record("p", False, 0, POLICY)) == "opened"
    assert not run(breakers.allow("p", POLICY)).allowed
    clock.now += 5
    assert run(breakers.allow("p", POLICY)).probe
    clock.now += 3  # that probe never reported
    assert run(breakers.allow("p", POLICY)).probe


def test_retry_after_opens_it_for_that_long_at_once() -> None:
    clock = Clock()
    breakers = MemoryBreakers(clock)
    assert run(breakers.record("p", False, 2, POLICY)) == "opened"
    assert run(breakers.allow("p", POLICY)).retry_in_s == 2
    clock.now += 2
    assert run(breakers.allow("p", POLICY)).probe


def test_providers_have_their_own_breakers() -> None:
    breakers = MemoryBreakers(Clock())
    for _ in range(4):
        run(breakers.record("a", False, 0, POLICY))
    assert not run(breakers.allow("a", POLICY)).allowed
    assert run(breakers.allow("b", POLICY)).allowed


class _Unreachable:
    """A breaker store whose every read fails, as Redis down does."""

    async def view(self, key: str, policy: BreakerPolicy) -> BreakerView:
        raise StoreError("connection refused")


def test_the_state_gauge_reads_closed_open_and_half_open_as_0_2_1() -> None:
    clock = Clock()
    memory = MemoryBreakers(clock)
    breakers = Breakers(memory)
    for _ in range(4):
        run(memory.record("down", False, 0, POLICY))
    assert run(breakers.states(["up", "down"], POLICY)) == {"up": 0, "down": 2}
    clock.now += 5
    assert run(breakers.states(["up", "down"], POLICY)) == {"up": 0, "down": 1}
    assert run(breakers.states(["up", "down"], None)) == {}  # breakers off: no state to report


def test_a_breaker_the_store_cannot_read_has_no_state_rather_than_a_guess() -> None:
    breakers = Breakers(_Unreachable())  # type: ignore[arg-type]
    before = REGISTRY.get_sample_value("gateway_store_errors_total", {"operation": "breaker"}) or 0
    assert run(breakers.states(["p"], POLICY)) == {}
    assert REGISTRY.get_sample_value("gateway_store_errors_total", {"operation": "breaker"}) == before + 1


def test_the_scrape_lists_exactly_the_states_it_was_given() -> None:
    text = _exposition({"b": 2, "a": 0}).decode()
    help_line = next(line for line in text.splitlines() if line.startswith("# HELP gateway_breaker_state "))
    assert "0 closed, 1 half-open" in help_line and "2 open" in help_line
    assert 'gateway_breaker_state{provider="a"} 0.0\ngateway_breaker_state{provider="b"} 2.0' in text
    assert "gateway_breaker_state{" not in _exposition({}).decode()
