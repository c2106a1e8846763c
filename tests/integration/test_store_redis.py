"""RedisStore against a real redis-server: the shared Store contract, then what only a shared store must do.

Skipped when redis-server is not installed (the Makefile and CI install it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from extproc.store.base import Store, StoreError, Take
from extproc.store.redis_store import DEFAULT_PREFIX, RedisStore
from tests.support.redis_server import RedisServer
from tests.support.wait import wait_until_awaited
from tests.unit.test_store_memory import StoreContract

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.2


def connect(
    server: RedisServer, password: str | None = None, max_entries: int = 100, max_bytes: int = 1 << 20
) -> RedisStore:
    return RedisStore.connect(server.url, password, None, DEFAULT_PREFIX, TIMEOUT_S, max_entries, max_bytes)


class TestRedisStore(StoreContract):
    slack_s = 0.08  # real time passes between calls (more on a loaded machine); the server counts milliseconds

    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer) -> None:
        self.server = redis_server

    def open_store(self, max_entries: int, max_bytes: int) -> Store:
        return connect(self.server, max_entries=max_entries, max_bytes=max_bytes)

    async def pause(self, seconds: float) -> None:
        """Until the server's own clock has moved `seconds` (refills and expiries are what is
        tested, and a Redis server's time cannot be faked as the memory store's is)."""
        clock = redis.Redis.from_url(self.server.url)
        try:
            start = await _server_time(clock)

            async def moved() -> bool:
                return await _server_time(clock) >= start + seconds

            assert await wait_until_awaited(moved, timeout=seconds + 5)
        finally:
            await clock.aclose()


async def _server_time(clock: redis.Redis) -> float:
    """The Redis server's clock (TIME: seconds and microseconds)."""
    whole, micros = await clock.time()
    return whole + micros / 1e6


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_two_processes_share_one_bucket_and_never_allow_twice_the_limit(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        first, second = connect(redis_server), connect(redis_server)
        take = Take("shared", cost=1, limit=20, window_s=60)
        try:
            decisions = await asyncio.gather(*(store.take([take]) for store in [first, second] * 20))
        finally:
            await first.close()
            await second.close()
        assert sum(d.allowed for [d] in decisions) == 20

    run(scenario)


def test_two_processes_share_the_cache_and_its_bounds(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        first, second = connect(redis_server, max_entries=2), connect(redis_server, max_entries=2)
        try:
            await first.cache_set("a", b"from first", ttl_s=60)
            await second.cache_set("b", b"from second", ttl_s=60)
            entry = await second.cache_get("a")
            assert entry is not None and entry.value == b"from first"
            await first.cache_set("c", b"v", ttl_s=60)  # b is now the least recently read, by either process
            assert await first.cache_get("b") is None
            assert await second.cache_get("a") is not None
        finally:
            await first.close()
            await second.close()

    run(scenario)


def test_every_key_carries_the_prefix_and_idle_buckets_expire(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore.connect(redis_server.url, None, None, "tenant-x:", TIMEOUT_S, 10, 1000)
        raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await store.take([Take("k", cost=1, limit=5, window_s=1)])
            await store.acquire("k", "r1", limit=1, lease_s=30)
            await store.cache_set("k", b"v", ttl_s=30)
            keys = sorted(str(key) for key in await raw.keys("*"))
            assert keys and all(key.startswith("tenant-x:") for key in keys), keys
            assert 0 < await raw.pttl("tenant-x:b:k") <= 2000
            assert 0 < await raw.pttl("tenant-x:s:k") <= 30_000
            assert 0 < await raw.pttl("tenant-x:c:k") <= 30_000
        finally:
            await store.close()
            await raw.aclose()

    run(scenario)


def every_operation(store: RedisStore) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "take": lambda: store.take([Take("k", cost=1, limit=5, window_s=60)]),
        "settle": lambda: store.settle("k", reserved=1, used=2, limit=5, window_s=60),
        "acquire": lambda: store.acquire("k", "r1", limit=1, lease_s=60),
        "release": lambda: store.release("k", "r1"),
        "cache_get": lambda: store.cache_get("k"),
        "cache_set": lambda: store.cache_set("k", b"v", ttl_s=60),
        "ping": store.ping,
    }


def test_a_stopped_server_fails_every_operation_quickly_and_a_restart_heals_the_same_store(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        store = connect(redis_server)
        try:
            await store.ping()  # a pooled connection that the stop will break
            redis_server.stop()
            for name, operation in every_operation(store).items():
                started = time.monotonic()
                with pytest.raises(StoreError, match=name):
                    await operation()
                assert time.monotonic() - started < 1, name
            redis_server.start()  # same port, empty: the scripts must be loaded again
            for operation in every_operation(store).values():
                await operation()
            [decision] = await store.take([Take("fresh", cost=1, limit=5, window_s=60)])
            assert decision.allowed
        finally:
            await store.close()

    run(scenario)


def test_restart_keeps_the_port_and_a_live_store_reconnects(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = connect(redis_server)
        try:
            await store.cache_set("k", b"v", ttl_s=60)
            port = redis_server.port
            redis_server.restart()  # the pooled connection is now dead; the store replaces it
            assert redis_server.port == port
            assert await store.cache_get("k") is None  # no persistence
            await store.ping()
        finally:
            await store.close()

    run(scenario)


def test_a_password_protected_server_takes_the_right_password_and_hides_a_wrong_one(tmp_path: Path) -> None:
    right, wrong = "right-secret-4f1d", "wrong-secret-9c2e"

    async def scenario(server: RedisServer) -> None:
        good = connect(server, password=right)
        try:
            await good.ping()
            [decision] = await good.take([Take("k", cost=1, limit=5, window_s=60)])
            assert decision.allowed
        finally:
            await good.close()
        for password in (wrong, None):
            bad = connect(server, password=password)
            try:
                with pytest.raises(StoreError) as raised:
                    await bad.ping()
                with pytest.raises(StoreError):
                    await bad.take([Take("k", cost=1, limit=5, window_s=60)])
            finally:
                await bad.close()
            assert wrong not in str(raised.value) and right not in str(raised.value)

    with RedisServer(tmp_path / "redis", password=right) as server:
        asyncio.run(scenario(server))


def test_a_bad_url_is_a_store_error_that_hides_the_password() -> None:
    with pytest.raises(StoreError) as raised:
        RedisStore.connect("http://:hunter2@127.0.0.1:1", None, None, DEFAULT_PREFIX, TIMEOUT_S, 10, 1000)
    assert "hunter2" not in str(raised.value)


def test_settles_and_releases_made_together_are_one_round_trip_and_survive_a_server_that_forgot_its_scripts(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        store = connect(redis_server)
        raw = redis.Redis.from_url(redis_server.url)
        try:
            take = Take("k", cost=10, limit=10, window_s=3600)
            assert (await store.take([take]))[0].allowed  # the bucket is empty now
            for holder in ("r1", "r2"):
                assert await store.acquire("slots", holder, limit=2, lease_s=30)
            await raw.script_flush()  # as after a restart: the settle script must be loaded again
            before = await _calls(raw)
            await asyncio.gather(
                *(store.settle("k", reserved=3, used=1, limit=10, window_s=3600) for _ in range(3)),
                store.release("slots", "r1"),
                store.release("slots", "r2"),
            )
            after = await _calls(raw)
            # One summed settle and one ZREM, sent twice (again after loading the script): not 3 + 2 calls.
            assert after["evalsha"] - before["evalsha"] <= 2 and after["zrem"] - before["zrem"] <= 2
            assert [d.remaining for d in await store.take([Take("k", cost=6, limit=10, window_s=3600)])] == [0]
            assert await store.acquire("slots", "r3", limit=2, lease_s=30)
        finally:
            await store.close()
            await raw.aclose()

    run(scenario)


async def _calls(raw: redis.Redis) -> dict[str, int]:
    stats = await raw.info("commandstats")
    return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "zrem")}
