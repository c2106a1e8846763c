"""The embedded store: limits and the cache inside one ext_proc process.

Every method is `async` to match the shared Store protocol, but none awaits: the
state is only touched from one event loop, so each call is atomic without a lock.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from extproc.store.base import CacheEntry, Decision, Take, correction, within_bucket

# Every this many operations, forget buckets that have refilled, leases that lapsed and cache entries
# that expired, so keys seen once (a client that never comes back) do not stay forever.
SWEEP_EVERY = 1024


class MemoryStore:
    """The Store for one process; the cache is an LRU bounded by entry count and total value bytes."""

    joins_calls = False

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        # key -> (tokens, stamp, full_at); full_at lets the sweep drop refilled buckets without their limit.
        # A missing bucket is a full one.
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._slots: dict[str, dict[str, float]] = {}  # key -> {holder: expires_at}
        self._cache: OrderedDict[str, tuple[bytes, float, float]] = OrderedDict()  # key -> (value, stored, expires)
        self._cache_bytes = 0
        self._ops = 0

    # Token buckets

    def _level(self, key: str, limit: int, window_s: float, now: float, refills: bool = True) -> float:
        """Tokens in `key` now, after refilling since it was last written (a calendar window's only at its end)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(limit)
        tokens, stamp, full_at = bucket
        if refills:
            level = min(float(limit), tokens + max(0.0, now - stamp) * limit / window_s)
        else:
            level = float(limit) if full_at <= now else min(float(limit), tokens)
        if level >= limit:
            del self._buckets[key]  # refilled: the same as never seen
        return level

    def _write(self, key: str, tokens: float, limit: int, window_s: float, now: float, refills: bool = True) -> None:
        if tokens >= limit:
            self._buckets.pop(key, None)
        elif refills:
            self._buckets[key] = (tokens, now, now + (limit - tokens) * window_s / limit)
        else:
            self._buckets[key] = (tokens, now, now + window_s)  # full again when the window ends

    async def take(self, takes: Sequence[Take]) -> list[Decision]:
        now = self._tick()
        costs = [t.cost if 0 <= t.cost <= t.limit else within_bucket(t.cost, t.limit) for t in takes]
        # Work on a copy of the levels so a bucket named twice pays both costs, and a refusal writes nothing.
        levels: dict[str, float] = {}
        before: list[float] = []
        fits: list[bool] = []
        for take, cost in zip(takes, costs, strict=True):
            level = levels.get(take.key)
            if level is None:
                level = self._level(take.key, take.limit, take.window_s, now, take.refills)
            before.append(level)
            fits.append(level >= cost)
            levels[take.key] = level - cost if fits[-1] else level
        if all(fits):
            for take in takes:
                self._write(take.key, levels[take.key], take.limit, take.window_s, now, take.refills)
            return [_decision(t, cost, True, level - cost) for t, cost, level in zip(takes, costs, before, strict=True)]
        return [_decision(t, cost, ok, level) for t, cost, ok, level in zip(takes, costs, fits, before, strict=True)]

    async def settle(
        self, key: str, reserved: int, used: int, limit: int, window_s: float, refills: bool = True
    ) -> None:
        now = self._tick()
        level = self._level(key, limit, window_s, now, refills)
        if not refills and key in self._buckets:
            window_s = self._buckets[key][2] - now  # the window's end stays where the take put it
        spent = min(float(limit), level - correction(reserved, used, limit))
        self._write(key, spent, limit, window_s, now, refills)

    async def levels(self, keys: Sequence[str], limit: int, window_s: float, refills: bool = True) -> list[float]:
        now = self._tick()
        return [self._level(key, limit, window_s, now, refills) for key in keys]

    async def bucket_keys(self, prefix: str, limit: int = 1000) -> list[str]:
        now = self._tick()
        return [k for k, (_, _, full_at) in self._buckets.items() if k.startswith(prefix) and full_at > now][:limit]

    # Concurrency slots

    async def acquire(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        now = self._tick()
        holders = {h: expires for h, expires in self._slots.get(key, {}).items() if expires > now}
        if holder not in holders and len(holders) >= limit:
            return False
        holders[holder] = now + lease_s
        self._slots[key] = holders
        return True

    async def release(self, key: str, holder: str) -> None:
        self._tick()
        holders = self._slots.get(key)
        if holders is not None:
            holders.pop(holder, None)
            if not holders:
                del self._slots[key]

    # Response cache

    async def cache_get(self, key: str) -> CacheEntry | None:
        now = self._tick()
        entry = self._cache.get(key)
        if entry is None:
            return None
        value, stored, expires = entry
        if expires <= now:
            self._drop(key)
            return None
        self._cache.move_to_end(key)
        return CacheEntry(value=value, age_s=now - stored)

    async def cache_set(self, key: str, value: bytes, ttl_s: float) -> None:
        now = self._tick()
        self._drop(key)
        # A value that could never fit must not empty the whole cache on its way out.
        if ttl_s <= 0 or len(value) > self._max_bytes:
            return
        self._cache[key] = (value, now, now + ttl_s)
        self._cache_bytes += len(value)
        if self._over_bounds():
            # Expired entries go before any live one; a full scan, but only when the cache is full.
            self._drop_expired(now)
        while self._cache and self._over_bounds():
            self._drop(next(iter(self._cache)))  # the least recently used

    def _over_bounds(self) -> bool:
        return len(self._cache) > self._max_entries or self._cache_bytes > self._max_bytes

    def _drop_expired(self, now: float) -> None:
        for key in [k for k, (_, _, expires) in self._cache.items() if expires <= now]:
            self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._cache_bytes -= len(entry[0])

    # Housekeeping

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _tick(self) -> float:
        """The time now; every SWEEP_EVERY calls, also forget state that no longer matters."""
        now = self._clock()
        self._ops += 1
        if self._ops % SWEEP_EVERY == 0:
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, _, full_at) in self._buckets.items() if full_at <= now]:
            del self._buckets[key]
        for key, holders in list(self._slots.items()):
            for lapsed in [h for h, expires in holders.items() if expires <= now]:
                del holders[lapsed]
            if not holders:
                del self._slots[key]
        self._drop_expired(now)


def _decision(take: Take, cost: int, allowed: bool, tokens: float) -> Decision:
    """What a client sees about bucket `take.key` holding `tokens` (after the take of `cost` when it was allowed)."""
    if not take.refills:  # a calendar window frees everything at its end, and nothing before
        return Decision(
            allowed, take.limit, max(0, math.floor(tokens)), take.window_s, 0.0 if allowed else take.window_s
        )
    rate = take.limit / take.window_s  # tokens per second
    return Decision(
        allowed=allowed,
        limit=take.limit,
        remaining=max(0, math.floor(tokens)),
        reset_s=max(0.0, (take.limit - tokens) / rate),
        retry_after_s=0.0 if allowed else (cost - tokens) / rate,
    )
