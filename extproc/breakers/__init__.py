"""Circuit breakers per provider, shared across ext_proc processes and replicas through the store."""

from __future__ import annotations

from extproc.breakers.manager import Breakers
from extproc.config.model import GatewayConfig
from extproc.store.base import Store


def open_breakers(config: GatewayConfig, store: Store) -> Breakers:
    """Breakers on the same store as limits and the cache (the redis client loads only for Redis)."""
    if config.store.backend == "redis":
        from extproc.breakers.redis import RedisBreakers
        from extproc.store.redis_store import RedisStore

        assert isinstance(store, RedisStore)
        return Breakers(RedisBreakers(store))
    from extproc.breakers.memory import MemoryBreakers

    return Breakers(MemoryBreakers())
