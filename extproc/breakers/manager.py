"""The breakers as the passes use them: ask before sending, report each attempt's outcome.

A store that cannot be reached never stops traffic: the breaker is treated as
closed (counted in `gateway_store_errors_total`). Each process also keeps the
recent outcomes it saw per provider (error rate, latency) for `/status`.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import deque
from typing import Any

from extproc.breakers.state import BreakerPolicy, BreakerStore, Permit
from extproc.observe.metrics import BREAKER_STATE_CODES, BREAKER_TRANSITIONS
from extproc.store import background
from extproc.store.base import StoreError

_RECENT = 200  # outcomes kept per provider for /status


def judge(headers: dict[str, str]) -> tuple[bool, float]:
    """(ok, retry after s) of a provider's answer: 5xx and 429 are failures, with its Retry-After."""
    status = int(headers.get(":status", "0") or 0)
    if status < 500 and status != 429:
        return True, 0.0
    try:
        return False, max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return False, 0.0  # absent, or an HTTP date: the breaker's own open time applies


class Breakers:
    def __init__(self, store: BreakerStore) -> None:
        self._store = store
        self._recent: dict[str, deque[tuple[bool, float]]] = {}

    async def allow(self, provider: str, policy: BreakerPolicy) -> Permit:
        try:
            permit = await self._store.allow(provider, policy)
        except StoreError as error:
            background.failed("breaker", error)
            return Permit(True)
        background.succeeded()
        return permit

    def record(self, provider: str, ok: bool, retry_after_s: float, latency_s: float, policy: BreakerPolicy) -> None:
        """Counted now in this process; sent to the shared breaker without making anyone wait."""
        recent = self._recent.get(provider)
        if recent is None:
            recent = self._recent[provider] = deque(maxlen=_RECENT)
        recent.append((ok, latency_s))
        background.spawn("breaker", self._record(provider, ok, retry_after_s, policy))

    async def _record(self, provider: str, ok: bool, retry_after_s: float, policy: BreakerPolicy) -> None:
        transition = await self._store.record(provider, ok, retry_after_s, policy)
        if transition:
            BREAKER_TRANSITIONS.labels(provider, transition).inc()

    async def states(self, providers: list[str], policy: BreakerPolicy | None) -> dict[str, int]:
        """Each provider's state as `gateway_breaker_state` codes, read from the store now; a provider
        whose breaker cannot be read is left out (its store error is counted)."""
        if policy is None:
            return {}
        views = await asyncio.gather(*(self._store.view(name, policy) for name in providers), return_exceptions=True)
        codes: dict[str, int] = {}
        for name, view in zip(providers, views, strict=True):
            if isinstance(view, StoreError):
                background.failed("breaker", view)
            elif isinstance(view, BaseException):
                raise view
            else:
                codes[name] = BREAKER_STATE_CODES[view.state]
        return codes

    async def status(self, providers: list[str], policy: BreakerPolicy | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in providers:
            entry: dict[str, Any] = {}
            if policy is not None:
                try:
                    view = await self._store.view(name, policy)
                    entry["breaker"] = {"state": view.state, "retry_in_s": round(view.retry_in_s, 1)}
                except StoreError as error:
                    entry["breaker"] = {"state": "unknown", "error": str(error)}
            recent = self._recent.get(name)
            if recent:
                latencies = [latency for _, latency in recent]
                entry["recent"] = {
                    "requests": len(recent),
                    "error_rate": round(sum(1 for ok, _ in recent if not ok) / len(recent), 3),
                    "p50_ms": round(statistics.median(latencies) * 1000, 1),
                }
            out[name] = entry
        return out
