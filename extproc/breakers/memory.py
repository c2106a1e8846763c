"""Breakers inside one process (the memory store's companion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from extproc.breakers.state import BreakerPolicy, BreakerView, Permit, Transition


@dataclass(slots=True)
class _Breaker:
    open_until: float = 0.0  # 0: closed
    probe_until: float = 0.0  # a half-open probe is in flight until then
    window_start: float = 0.0
    successes: int = 0
    failures: int = 0


class MemoryBreakers:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, key: str) -> _Breaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = _Breaker(window_start=self._clock())
        return breaker

    async def allow(self, key: str, policy: BreakerPolicy) -> Permit:
        breaker, now = self._get(key), self._clock()
        if not breaker.open_until:
            return Permit(True)
        if now < breaker.open_until:
            return Permit(False, retry_in_s=breaker.open_until - now)
        if now < breaker.probe_until:
            return Permit(False, retry_in_s=breaker.probe_until - now)
        breaker.probe_until = now + policy.probe_s
        return Permit(True, probe=True)

    async def record(self, key: str, ok: bool, retry_after_s: float, policy: BreakerPolicy) -> Transition:
        breaker, now = self._get(key), self._clock()
        if breaker.open_until:
            if now < breaker.open_until:
                return ""  # a late answer from before it opened
            if ok:
                self._breakers[key] = _Breaker(window_start=now)
                return "closed"
            return self._open(breaker, now, max(policy.open_s, retry_after_s))
        if now - breaker.window_start > policy.window_s:
            breaker.window_start, breaker.successes, breaker.failures = now, 0, 0
        if ok:
            breaker.successes += 1
            return ""
        breaker.failures += 1
        total = breaker.successes + breaker.failures
        if total >= policy.min_requests and breaker.failures / total >= policy.failure_ratio:
            return self._open(breaker, now, max(policy.open_s, retry_after_s))
        if retry_after_s > 0:  # the provider said when to come back
            return self._open(breaker, now, retry_after_s)
        return ""

    def _open(self, breaker: _Breaker, now: float, duration_s: float) -> Transition:
        breaker.open_until = now + duration_s
        breaker.probe_until = 0.0
        breaker.window_start, breaker.successes, breaker.failures = now, 0, 0
        return "opened"

    async def view(self, key: str, policy: BreakerPolicy) -> BreakerView:
        breaker, now = self._get(key), self._clock()
        if not breaker.open_until:
            return BreakerView("closed", 0.0, breaker.failures, breaker.successes + breaker.failures)
        if now < breaker.open_until:
            return BreakerView("open", breaker.open_until - now, 0, 0)
        return BreakerView("half_open", 0.0, 0, 0)
