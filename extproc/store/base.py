"""What limits and the cache need to share across ext_proc processes and replicas.

Two backends implement it: `memory` (one process, the embedded default) and
`redis` (shared; atomic through Lua scripts). A backend that cannot reach its
store raises StoreError; the stages decide what that means (the cache is
bypassed, limits follow `on_store_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class StoreError(Exception):
    """The store could not be reached or answered badly."""


def within_bucket(tokens: int, limit: int) -> int:
    """What a take may cost a bucket of `limit` tokens: never below 0 (a negative cost would fill the bucket)
    and never above `limit` (so any request fits a full bucket; what it uses beyond is settled as debt)."""
    return min(max(tokens, 0), limit)


def correction(reserved: int, used: int, limit: int) -> int:
    """What a settle adds to a bucket's spending once a request that reserved `reserved` used `used`: the charge in
    all is `used` (never below 0), and what comes back is never more than the reservation (bounded as a take is)."""
    return max(used, 0) - within_bucket(reserved, limit)


@dataclass(frozen=True, slots=True)
class Take:
    """Take `cost` from the token bucket `key`: `limit` tokens, refilled evenly over `window_s`.
    A store takes `within_bucket(cost, limit)`, whatever `cost` says.

    `refills=False` is a calendar window (a day, a month): nothing comes back before the window ends,
    `window_s` is the time left until it does (the bucket is forgotten then), and `key` names the window,
    so the next one starts full."""

    key: str
    cost: int
    limit: int
    window_s: float
    refills: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int  # whole tokens left after this take (never below 0 in what clients see)
    reset_s: float  # until the bucket is full again
    retry_after_s: float  # until `cost` would fit (0 when allowed)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    value: bytes
    age_s: float  # seconds since it was stored


class Store(Protocol):
    # Whether calls made together leave together (Redis: one round trip for a take and a stream's
    # slots); in one process each call is done when it is made, and running two at once only costs.
    joins_calls: bool

    async def take(self, takes: Sequence[Take]) -> list[Decision]:
        """All or nothing: when any bucket lacks its cost, nothing is taken and that one is refused."""
        ...

    async def settle(
        self, key: str, reserved: int, used: int, limit: int, window_s: float, refills: bool = True
    ) -> None:
        """Correct a bucket after the fact, by `correction(reserved, used, limit)`: using more than was reserved
        takes more (may go into debt), using less gives back (never above `limit`). `window_s` and `refills`
        as the Take's."""
        ...

    async def levels(self, keys: Sequence[str], limit: int, window_s: float, refills: bool = True) -> list[float]:
        """What is left in each bucket now (`limit` for one never charged or refilled), charging nothing."""
        ...

    async def bucket_keys(self, prefix: str, limit: int = 1000) -> list[str]:
        """Up to `limit` keys of buckets charged and not yet full again whose key starts with `prefix`."""
        ...

    async def acquire(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        """Hold one of `limit` slots under `key` for `holder` (unique to one request); a lease lapses after
        `lease_s` so a crashed process never keeps its slots."""
        ...

    async def release(self, key: str, holder: str) -> None: ...

    async def cache_get(self, key: str) -> CacheEntry | None: ...

    async def cache_set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store with a TTL; evict least recently used entries beyond the store's entry and byte bounds."""
        ...

    async def ping(self) -> None:
        """Raise StoreError unless the store answers."""
        ...

    async def close(self) -> None: ...
