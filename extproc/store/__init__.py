"""The store limits and the cache share: `open_store` picks the backend the config names."""

from __future__ import annotations

from extproc.config.model import GatewayConfig
from extproc.store.base import Store


def open_store(config: GatewayConfig) -> Store:
    settings, cache = config.store, config.cache
    if settings.backend == "redis" and settings.redis is not None:
        from extproc.store.redis_store import RedisStore

        redis = settings.redis
        return RedisStore.connect(
            redis.url,
            password=redis.password,
            ca_file=redis.ca_file,
            prefix=redis.key_prefix,
            timeout_s=redis.timeout_ms / 1000,
            max_entries=cache.max_entries,
            max_bytes=cache.max_bytes,
        )
    from extproc.store.memory import MemoryStore

    return MemoryStore(cache.max_entries, cache.max_bytes)
