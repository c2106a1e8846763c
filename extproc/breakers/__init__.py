"""Circuit breakers per provider, shared across ext_proc processes and replicas through the store."""

from __future__ import annotations

from extproc.breakers.manager import Breakers
from extproc.store.base import Store


def open_breakers(store: Store) -> Breakers:
    """Breakers on the same store as limits and the cache."""
    from extproc.store.redis_store import RedisStore

    if isinstance(store, RedisStore):
        from extproc.breakers.redis import RedisBreakers

        return Breakers(RedisBreakers(store))
    from extproc.breakers.memory import MemoryBreakers

    return Breakers(MemoryBreakers())
