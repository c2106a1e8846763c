"""The Store behaviour every backend shares (StoreContract), run here against MemoryStore on a fake clock.

tests/integration/test_store_redis.py runs the same contract against RedisStore and a real
redis-server; time there is real, so the figures below use short windows and a tolerance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pytest import approx

from extproc.store.base import Store, Take
from extproc.store.memory import SWEEP_EVERY, MemoryStore

Scenario = Callable[[Store], Awaitable[None]]


class StoreContract:
    """A subclass says how to open its store, how time passes, and how exact time figures are."""

    slack_s: float  # tolerance on times the store reports

    def open_store(self, max_entries: int, max_bytes: int) -> Store:
        raise NotImplementedError

    async def pause(self, seconds: float) -> None:
        raise NotImplementedError

    def run(self, scenario: Scenario, max_entries: int = 100, max_bytes: int = 1 << 20) -> None:
        async def main() -> None:
            store = self.open_store(max_entries, max_bytes)  # inside the loop that will use it
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())

    # Token buckets

    def test_bucket_allows_limit_takes_then_refuses_until_one_token_refills(self) -> None:
        async def scenario(store: Store) -> None:
            take = Take("k", cost=1, limit=5, window_s=5)  # a token a second
            decisions = [(await store.take([take]))[0] for _ in range(5)]
            assert all(d.allowed for d in decisions)
            assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
            assert decisions[0].limit == 5
            assert decisions[0].reset_s == approx(1, abs=self.slack_s)
            assert decisions[0].retry_after_s == 0
            [refused] = await store.take([take])
            assert not refused.allowed
            assert refused.remaining == 0
            assert refused.retry_after_s == approx(1, abs=self.slack_s)

        self.run(scenario)

    def test_a_calendar_bucket_keeps_what_was_spent_until_its_window_ends(self) -> None:
        async def scenario(store: Store) -> None:
            take = Take("budget/usd@2026-12", cost=600, limit=1000, window_s=0.5, refills=False)
            assert (await store.take([take]))[0].allowed
            await self.pause(0.2)  # a rolling bucket would have refilled 400 by now
            [refused] = await store.take([take])
            assert not refused.allowed and refused.remaining == 400
            assert refused.retry_after_s == approx(0.5, abs=self.slack_s)  # the window's end frees it all
            await store.settle(take.key, 600, 100, 1000, 0.5, refills=False)  # it cost 100 in the end
            assert await store.levels([take.key, "budget/usd@other"], 1000, 0.5, refills=False) == [900, 1000]
            assert await store.bucket_keys("budget/") == [take.key]
            await self.pause(0.5)  # the window has ended (the settle did not move its end)
            assert await store.levels([take.key], 1000, 0.5, refills=False) == [1000]
            assert await store.bucket_keys("budget/") == []

        self.run(scenario)

    def test_bucket_refills_evenly_over_the_window(self) -> None:
        async def scenario(store: Store) -> None:
            [empty] = await store.take([Take("k", cost=5, limit=5, window_s=1)])  # a token every 0.2 s
            assert empty.allowed and empty.remaining == 0
            await self.pause(0.5)  # half the window: 2.5 tokens
            [two] = await store.take([Take("k", cost=2, limit=5, window_s=1)])
            assert two.allowed and two.remaining == 0
            [three] = await store.take([Take("k", cost=1, limit=5, window_s=1)])
            assert not three.allowed
            assert three.retry_after_s == approx(0.1, abs=self.slack_s)  # the missing half token
            await self.pause(1)
            [full] = await store.take([Take("k", cost=5, limit=5, window_s=1)])
            assert full.allowed

        self.run(scenario)

    def test_a_refusal_by_one_bucket_takes_nothing_from_the_others(self) -> None:
        async def scenario(store: Store) -> None:
            a, b = Take("a", cost=1, limit=2, window_s=60), Take("b", cost=1, limit=1, window_s=60)
            first = await store.take([a, b])
            assert [d.allowed for d in first] == [True, True]
            assert [d.remaining for d in first] == [1, 0]
            second = await store.take([a, b])
            assert [d.allowed for d in second] == [True, False]  # a could pay, b could not
            assert second[0].remaining == 1  # a's current figure, nothing taken
            assert second[1].retry_after_s == approx(60, abs=self.slack_s)
            [third] = await store.take([a])
            assert third.allowed and third.remaining == 0

        self.run(scenario)

    def test_a_bucket_named_twice_in_one_take_pays_both_costs(self) -> None:
        async def scenario(store: Store) -> None:
            a = Take("a", cost=1, limit=1, window_s=60)
            decisions = await store.take([a, a])
            assert [d.allowed for d in decisions] == [True, False]
            [alone] = await store.take([a])
            assert alone.allowed  # the refused pair took nothing

        self.run(scenario)

    def test_settling_into_debt_delays_the_next_take(self) -> None:
        async def scenario(store: Store) -> None:
            take = Take("k", cost=1, limit=10, window_s=1)  # a token every 0.1 s
            [first] = await store.take([take])
            assert first.remaining == 9
            await store.settle("k", reserved=1, used=15, limit=10, window_s=1)  # 9 - 14 = 5 tokens of debt
            [refused] = await store.take([take])
            assert not refused.allowed
            assert refused.remaining == 0
            assert refused.retry_after_s == approx(0.6, abs=self.slack_s)  # from -5 up to 1
            assert refused.reset_s == approx(1.5, abs=self.slack_s)

        self.run(scenario)

    def test_settling_back_gives_tokens_back_but_never_above_the_limit(self) -> None:
        async def scenario(store: Store) -> None:
            [taken] = await store.take([Take("k", cost=4, limit=10, window_s=60)])
            assert taken.remaining == 6
            await store.settle("k", reserved=4, used=2, limit=10, window_s=60)
            [after] = await store.take([Take("k", cost=1, limit=10, window_s=60)])
            assert after.remaining == 7  # 6 + 2 - 1
            await store.settle("k", reserved=10, used=0, limit=10, window_s=60)
            [capped] = await store.take([Take("k", cost=1, limit=10, window_s=60)])
            assert capped.remaining == 9

        self.run(scenario)

    def test_a_take_costs_no_less_than_nothing_and_no_more_than_the_bucket(self) -> None:
        async def scenario(store: Store) -> None:
            await store.take([Take("k", cost=6, limit=10, window_s=3600)])
            [negative] = await store.take([Take("k", cost=-1_000_000_000_000, limit=10, window_s=3600)])
            assert negative.allowed and negative.remaining == 4  # nothing given back
            [left] = await store.take([Take("k", cost=1, limit=10, window_s=3600)])
            assert left.remaining == 3
            [huge] = await store.take([Take("full", cost=10**15, limit=10, window_s=3600)])
            assert huge.allowed and huge.remaining == 0  # the bucket's size: a full bucket pays it
            [refused] = await store.take([Take("full", cost=10**15, limit=10, window_s=3600)])
            assert not refused.allowed
            assert refused.retry_after_s == approx(3600, abs=self.slack_s)  # until the bucket is full again

        self.run(scenario)

    def test_a_settle_charges_what_was_used_and_gives_back_no_more_than_was_reserved(self) -> None:
        async def scenario(store: Store) -> None:
            limit, window = 100, 3600
            await store.take([Take("k", cost=50, limit=limit, window_s=window)])
            await store.take([Take("k", cost=20, limit=limit, window_s=window)])  # 30 left
            await store.settle("k", reserved=20, used=-1_000_000_000_000, limit=limit, window_s=window)
            [after] = await store.take([Take("k", cost=1, limit=limit, window_s=window)])
            assert after.remaining == 49  # 30 + the 20 reserved, not the whole bucket
            await store.settle("k", reserved=-1_000_000_000_000, used=9, limit=limit, window_s=window)
            [charged] = await store.take([Take("k", cost=1, limit=limit, window_s=window)])
            assert charged.remaining == 39  # 49 - 9 used - 1 taken: nothing more for a reservation below 0
            await store.settle("k", reserved=10**15, used=0, limit=limit, window_s=window)
            [refilled] = await store.take([Take("k", cost=1, limit=limit, window_s=window)])
            assert refilled.remaining == 99  # back to full at most, whatever the reservation claims

        self.run(scenario)

    # Concurrency slots

    def test_slots_cap_holders_and_a_release_frees_one(self) -> None:
        async def scenario(store: Store) -> None:
            assert await store.acquire("k", "r1", limit=2, lease_s=60)
            assert await store.acquire("k", "r2", limit=2, lease_s=60)
            assert not await store.acquire("k", "r3", limit=2, lease_s=60)
            assert await store.acquire("k", "r1", limit=2, lease_s=60)  # a holder may renew its lease
            await store.release("k", "r1")
            assert await store.acquire("k", "r3", limit=2, lease_s=60)
            assert not await store.acquire("other", "r1", limit=0, lease_s=60)
            await store.release("k", "never-held")

        self.run(scenario)

    def test_a_lease_lapses_so_a_lost_holder_frees_its_slot(self) -> None:
        async def scenario(store: Store) -> None:
            assert await store.acquire("k", "crashed", limit=1, lease_s=0.3)
            assert not await store.acquire("k", "next", limit=1, lease_s=0.3)
            await self.pause(0.35)
            assert await store.acquire("k", "next", limit=1, lease_s=0.3)

        self.run(scenario)

    # Response cache

    def test_cache_returns_what_was_stored_and_its_age(self) -> None:
        async def scenario(store: Store) -> None:
            value = bytes(range(256))  # raw bytes, not text
            await store.cache_set("k", value, ttl_s=60)
            await self.pause(0.2)
            entry = await store.cache_get("k")
            assert entry is not None
            assert entry.value == value
            assert entry.age_s == approx(0.2, abs=self.slack_s)
            assert await store.cache_get("missing") is None
            await store.cache_set("k", b"newer", ttl_s=60)
            replaced = await store.cache_get("k")
            assert replaced is not None and replaced.value == b"newer"

        self.run(scenario)

    def test_cache_entry_expires_after_its_ttl(self) -> None:
        async def scenario(store: Store) -> None:
            await store.cache_set("k", b"v", ttl_s=0.3)
            await self.pause(0.1)
            assert await store.cache_get("k") is not None
            await self.pause(0.3)
            assert await store.cache_get("k") is None

        self.run(scenario)

    def test_cache_evicts_the_least_recently_read_entry_beyond_max_entries(self) -> None:
        async def scenario(store: Store) -> None:
            for key in ("a", "b", "c"):
                await store.cache_set(key, b"v", ttl_s=60)
            assert await store.cache_get("a") is not None  # now b is the least recently used
            await store.cache_set("d", b"v", ttl_s=60)
            assert await store.cache_get("b") is None
            for key in ("a", "c", "d"):
                assert await store.cache_get(key) is not None

        self.run(scenario, max_entries=3)

    def test_cache_evicts_the_least_recently_read_entry_beyond_max_bytes(self) -> None:
        async def scenario(store: Store) -> None:
            for key in ("a", "b", "c"):
                await store.cache_set(key, b"x" * 10, ttl_s=60)
            assert await store.cache_get("a") is not None
            await store.cache_set("d", b"x" * 10, ttl_s=60)  # 40 bytes > 30
            assert await store.cache_get("b") is None
            for key in ("a", "c", "d"):
                assert await store.cache_get(key) is not None

        self.run(scenario, max_bytes=30)

    def test_cache_replacing_an_entry_counts_only_its_new_size(self) -> None:
        async def scenario(store: Store) -> None:
            await store.cache_set("a", b"x" * 20, ttl_s=60)
            await store.cache_set("a", b"x" * 10, ttl_s=60)
            await store.cache_set("b", b"x" * 10, ttl_s=60)
            await store.cache_set("c", b"x" * 10, ttl_s=60)  # 30 bytes: fits exactly
            for key in ("a", "b", "c"):
                assert await store.cache_get(key) is not None

        self.run(scenario, max_bytes=30)

    def test_cache_skips_a_value_larger_than_max_bytes_and_keeps_the_rest(self) -> None:
        async def scenario(store: Store) -> None:
            await store.cache_set("a", b"x" * 10, ttl_s=60)
            await store.cache_set("big", b"x" * 31, ttl_s=60)
            assert await store.cache_get("big") is None
            assert await store.cache_get("a") is not None

        self.run(scenario, max_bytes=30)

    def test_cache_drops_expired_entries_before_evicting_a_live_one(self) -> None:
        async def scenario(store: Store) -> None:
            await store.cache_set("short", b"v", ttl_s=0.1)
            await store.cache_set("long", b"v", ttl_s=60)
            assert await store.cache_get("short") is not None  # the most recently read, yet expiring
            await self.pause(0.15)
            await store.cache_set("new", b"v", ttl_s=60)
            assert await store.cache_get("long") is not None
            assert await store.cache_get("new") is not None

        self.run(scenario, max_entries=2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestMemoryStore(StoreContract):
    slack_s = 1e-9

    def setup_method(self) -> None:
        self.clock = FakeClock()

    def open_store(self, max_entries: int, max_bytes: int) -> Store:
        return MemoryStore(max_entries, max_bytes, clock=self.clock)

    async def pause(self, seconds: float) -> None:
        self.clock.now += seconds


# What only the embedded store has to prove: its dicts do not grow with every key ever seen.


def test_memory_store_forgets_a_bucket_once_it_has_refilled() -> None:
    clock = FakeClock()
    store = MemoryStore(10, 1000, clock=clock)

    async def scenario() -> None:
        await store.take([Take("k", cost=1, limit=5, window_s=1)])
        assert "k" in store._buckets
        clock.now += 1
        await store.settle("k", reserved=1, used=1, limit=5, window_s=1)  # seen again, full
        assert "k" not in store._buckets

    asyncio.run(scenario())


def test_memory_store_sweeps_refilled_buckets_lapsed_leases_and_expired_entries() -> None:
    clock = FakeClock()
    store = MemoryStore(10_000, 1 << 20, clock=clock)

    async def scenario() -> None:
        for i in range(500):
            await store.take([Take(f"client-{i}", cost=1, limit=5, window_s=1)])
            await store.acquire(f"route-{i}", "r", limit=1, lease_s=1)
            await store.cache_set(f"entry-{i}", b"v", ttl_s=1)
        clock.now += 2
        for _ in range(SWEEP_EVERY):
            await store.take([Take("busy", cost=0, limit=5, window_s=1)])
        assert store._buckets == {}
        assert store._slots == {}
        assert len(store._cache) == 0 and store._cache_bytes == 0

    asyncio.run(scenario())
