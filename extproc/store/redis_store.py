"""The shared store: limits and the cache in Redis, shared by every ext_proc process and replica.

Each operation is a Lua script (EVALSHA, loaded again when the server has forgotten it, e.g.
after a restart) that runs atomically on the server, so concurrent replicas never both spend
the last token. The takes and acquires made in one turn of the event loop share one round trip
(`script_pipeline`); settles and releases are gathered for a few milliseconds first
(`write_batch`). Scripts read the server's clock, so replicas with skewed clocks agree on
refills and leases.

Keys, under the configured prefix:
  b:<key>   token bucket, hash {t: tokens, s: stamp ms}; expires once it would be full again (a calendar
            window's, which never refills, when its window ends)
  s:<key>   concurrency slots, zset holder -> lease expiry ms
  c:<key>   cache entry, hash {v: value, at: stored ms}; expires with its TTL
  c:lru     zset cache key -> last access ms, made strictly increasing (the eviction order)
  c:exp     zset cache key -> expiry ms (so entries Redis already expired leave the bounds)
  c:size    hash cache key -> value bytes
  c:bytes   total value bytes of the indexed entries

The scripts touch only the keys they are given, except cache eviction, which
deletes the entries it pops from the index (fine on one server; not cluster-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from extproc.store.base import CacheEntry, Decision, StoreError, Take, correction, within_bucket
from extproc.store.script_pipeline import ScriptPipeline
from extproc.store.write_batch import Batch, WriteBatch

T = TypeVar("T")

DEFAULT_PREFIX = "gw:"
# How often an idle pooled connection is checked with PING before use, so a dead one is replaced first.
HEALTH_CHECK_INTERVAL_S = 15
# Expired cache entries removed per cache_set beyond those needed to make room: bounded work per call.
EXPIRED_PER_SET = 16

# Shared by the bucket scripts: the server's clock, a bucket's level after refilling, and a write that
# lets the key expire once the bucket would be full again (a full bucket and a missing one are the same).
_BUCKET_LUA = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function level(key, limit, window_ms, now, refills)
  local h = redis.call('HMGET', key, 't', 's')
  if not h[1] then return limit end
  if refills == 0 then return math.min(limit, tonumber(h[1])) end
  local elapsed = math.max(0, now - tonumber(h[2]))
  return math.min(limit, tonumber(h[1]) + elapsed * limit / window_ms)
end

local function until_full(tokens, limit, window_ms)
  return math.max(0, (limit - tokens) * window_ms / limit)
end

local function write(key, tokens, limit, window_ms, now, refills)
  if tokens >= limit then
    redis.call('DEL', key)
    return
  end
  if refills == 0 then
    -- A calendar window: the key goes when the window ends (kept where the first take put it).
    local left = redis.call('PTTL', key)
    redis.call('HSET', key, 't', tokens, 's', now)
    if left <= 0 then redis.call('PEXPIRE', key, math.max(1, math.ceil(window_ms))) end
    return
  end
  redis.call('HSET', key, 't', tokens, 's', now)
  -- Twice the window, or longer when deep debt takes longer than that to refill.
  local ttl = math.max(math.ceil(window_ms * 2), math.ceil(until_full(tokens, limit, window_ms)))
  redis.call('PEXPIRE', key, ttl)
end
"""

# KEYS: bucket keys. ARGV: cost, limit, window_s, refills (1, or 0 for a calendar window) for each key, in order.
# Returns allowed, remaining, reset_ms, retry_after_ms for each key. All or nothing: when any bucket
# lacks its cost nothing is written, the lacking ones say 0 and the others say 1 with their current figures.
_TAKE_LUA = (
    _BUCKET_LUA
    + """
local now = now_ms()
local levels, before, fits = {}, {}, {}
local all_fit = true
for i, key in ipairs(KEYS) do
  local cost, limit = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
  local window_ms, refills = tonumber(ARGV[4 * i - 1]) * 1000, tonumber(ARGV[4 * i])
  local tokens = levels[key]
  if tokens == nil then tokens = level(key, limit, window_ms, now, refills) end
  before[i] = tokens
  fits[i] = tokens >= cost
  if fits[i] then levels[key] = tokens - cost else levels[key] = tokens; all_fit = false end
end
local out = {}
for i, key in ipairs(KEYS) do
  local cost, limit = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
  local window_ms, refills = tonumber(ARGV[4 * i - 1]) * 1000, tonumber(ARGV[4 * i])
  local tokens, allowed, retry = before[i], 1, 0
  if all_fit then
    tokens = tokens - cost
    write(key, levels[key], limit, window_ms, now, refills)
  elseif not fits[i] then
    allowed = 0
    if refills == 0 then retry = math.ceil(window_ms) else retry = math.ceil((cost - tokens) * window_ms / limit) end
  end
  out[#out + 1] = allowed
  out[#out + 1] = math.max(0, math.floor(tokens))
  if refills == 0 then
    out[#out + 1] = math.ceil(window_ms)
  else
    out[#out + 1] = math.ceil(until_full(tokens, limit, window_ms))
  end
  out[#out + 1] = retry
end
return out
"""
)

# KEYS: bucket. ARGV: delta, limit, window_s, refills. Positive delta takes more (debt allowed), negative gives back.
_SETTLE_LUA = (
    _BUCKET_LUA
    + """
local now = now_ms()
local delta, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local window_ms, refills = tonumber(ARGV[3]) * 1000, tonumber(ARGV[4])
local tokens = level(KEYS[1], limit, window_ms, now, refills)
write(KEYS[1], math.min(limit, tokens - delta), limit, window_ms, now, refills)
return 1
"""
)

# KEYS: buckets. ARGV: limit, window_s, refills. Returns each bucket's level now (as a string: it may be fractional).
_LEVELS_LUA = (
    _BUCKET_LUA
    + """
local now = now_ms()
local limit, window_ms, refills = tonumber(ARGV[1]), tonumber(ARGV[2]) * 1000, tonumber(ARGV[3])
local out = {}
for i, key in ipairs(KEYS) do out[i] = tostring(level(key, limit, window_ms, now, refills)) end
return out
"""
)

# KEYS: slots zset. ARGV: holder, limit, lease_s. Returns 1 when `holder` holds a slot.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, holder, limit = KEYS[1], ARGV[1], tonumber(ARGV[2])
local lease_ms = math.ceil(tonumber(ARGV[3]) * 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, holder) and redis.call('ZCARD', key) >= limit then
  return 0
end
redis.call('ZADD', key, now + lease_ms, holder)
-- The key lives as long as its longest lease.
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', key, math.max(1, math.ceil(tonumber(last[2]) - now)))
return 1
"""

# Shared by the cache scripts: forget an entry and its place in the bounds, and mark one as just used.
_CACHE_LUA = """
local function forget(entry, index, expiry, sizes, total)
  local size = tonumber(redis.call('HGET', sizes, entry)) or 0
  redis.call('DEL', entry)
  redis.call('ZREM', index, entry)
  redis.call('ZREM', expiry, entry)
  redis.call('HDEL', sizes, entry)
  if size ~= 0 then redis.call('DECRBY', total, size) end
end

-- Strictly after the latest use, even within one millisecond or if the server's clock steps back.
local function touch(index, entry, now)
  local latest = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')[2]
  redis.call('ZADD', index, math.max(now, (tonumber(latest) or 0) + 1), entry)
end
"""

# KEYS: entry, lru index, expiry index, sizes, byte total. ARGV: value, ttl_ms, max_entries, max_bytes, expired_per_set.
_CACHE_SET_LUA = (
    _CACHE_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entry, index, expiry, sizes, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local value, ttl_ms = ARGV[1], tonumber(ARGV[2])
local max_entries, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
forget(entry, index, expiry, sizes, total)
-- A value that could never fit must not empty the whole cache on its way out.
if ttl_ms <= 0 or #value > max_bytes then return 0 end
-- Entries Redis has already expired still count in the bounds until removed here.
local lapsed = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
for _, old in ipairs(lapsed) do forget(old, index, expiry, sizes, total) end
redis.call('HSET', entry, 'v', value, 'at', now)
redis.call('PEXPIRE', entry, ttl_ms)
touch(index, entry, now)
redis.call('ZADD', expiry, now + ttl_ms, entry)
redis.call('HSET', sizes, entry, #value)
local bytes = redis.call('INCRBY', total, #value)
while redis.call('ZCARD', index) > max_entries or bytes > max_bytes do
  local lru = redis.call('ZRANGE', index, 0, 0)[1]
  if not lru then break end
  forget(lru, index, expiry, sizes, total)
  bytes = tonumber(redis.call('GET', total)) or 0
end
return 1
"""
)

# KEYS: entry, lru index, expiry index, sizes, byte total. Returns {value, age_ms} or nil.
_CACHE_GET_LUA = (
    _CACHE_LUA
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entry, index = KEYS[1], KEYS[2]
local h = redis.call('HMGET', entry, 'v', 'at')
if not h[1] then
  -- Expired (or evicted): drop what still counts it in the bounds.
  if redis.call('ZSCORE', index, entry) then forget(entry, index, KEYS[3], KEYS[4], KEYS[5]) end
  return false
end
touch(index, entry, now)
return {h[1], math.max(0, now - tonumber(h[2]))}
"""
)


def _glob_escaped(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RedisStore:
    """The Store on one Redis client (decode_responses=False: cached values are raw bytes)."""

    joins_calls = True  # calls made together share a pipeline (script_pipeline.py)

    def __init__(self, client: redis.Redis, prefix: str, max_entries: int, max_bytes: int) -> None:
        self._client = client
        self._prefix = prefix
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._cache_keys = [prefix + "c:lru", prefix + "c:exp", prefix + "c:size", prefix + "c:bytes"]
        self._take = client.register_script(_TAKE_LUA)
        self._settle = client.register_script(_SETTLE_LUA)
        self._levels = client.register_script(_LEVELS_LUA)
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._cache_set = client.register_script(_CACHE_SET_LUA)
        self._cache_get = client.register_script(_CACHE_GET_LUA)
        self._scripts = ScriptPipeline(client)  # takes and acquires of one turn of the loop: one pipeline
        self._writes = WriteBatch(self._send_writes)  # settles and releases: one pipeline per few ms
        # Scrubbed from error messages (from_url has moved a password in the url here too).
        password = client.connection_pool.connection_kwargs.get("password")
        self._secrets = [password] if isinstance(password, str) and password else []

    @classmethod
    def connect(
        cls,
        url: str,
        password: str | None,
        ca_file: str | None,
        prefix: str,
        timeout_s: float,
        max_entries: int,
        max_bytes: int,
    ) -> RedisStore:
        """A store on a new client; nothing connects until the first operation."""
        options: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "health_check_interval": HEALTH_CHECK_INTERVAL_S,
            # One immediate retry on a broken connection (e.g. the server restarted) and none on a timeout:
            # the default exponential backoff would hold a request for seconds, and a retried take could
            # spend tokens twice.
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        }
        if password is not None:
            options["password"] = password
        if url.startswith("rediss://") and ca_file:
            options["ssl_ca_certs"] = ca_file
        try:
            client = redis.Redis.from_url(url, **options)
        except (RedisError, ValueError) as error:
            # The url may hold a password: name the problem, not the url.
            raise StoreError(f"redis: bad url ({type(error).__name__})") from None
        return cls(client, prefix, max_entries, max_bytes)

    async def _call(self, op: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except (RedisError, OSError) as error:  # OSError covers socket errors and timeouts
            detail = str(error) or type(error).__name__
            for secret in self._secrets:
                detail = detail.replace(secret, "***")
            # `from None`: a logged traceback should not carry the original exception either.
            raise StoreError(f"redis {op} failed: {detail}") from None

    def _bucket(self, key: str) -> str:
        return self._prefix + "b:" + key

    async def take(self, takes: Sequence[Take]) -> list[Decision]:
        if not takes:
            return []
        args: list[int | float] = []
        for take in takes:
            cost = take.cost if 0 <= take.cost <= take.limit else within_bucket(take.cost, take.limit)
            args += [cost, take.limit, take.window_s, int(take.refills)]
        keys = [self._bucket(take.key) for take in takes]
        reply = await self._call("take", self._scripts.call(self._take.sha, _TAKE_LUA, keys, args))
        return [
            Decision(
                allowed=bool(reply[4 * i]),
                limit=take.limit,
                remaining=int(reply[4 * i + 1]),
                reset_s=int(reply[4 * i + 2]) / 1000,
                retry_after_s=int(reply[4 * i + 3]) / 1000,
            )
            for i, take in enumerate(takes)
        ]

    async def settle(
        self, key: str, reserved: int, used: int, limit: int, window_s: float, refills: bool = True
    ) -> None:
        # Bounded per request here: the batch sums the corrections of one bucket into one script call.
        delta = correction(reserved, used, limit)
        await self._call("settle", self._writes.settle(key, delta, limit, window_s, refills))

    async def levels(self, keys: Sequence[str], limit: int, window_s: float, refills: bool = True) -> list[float]:
        if not keys:
            return []
        names = [self._bucket(key) for key in keys]
        reply = await self._call("levels", self._levels(keys=names, args=[limit, window_s, int(refills)]))
        return [float(level) for level in reply]

    async def bucket_keys(self, prefix: str, limit: int = 1000) -> list[str]:
        """SCAN: bounded work per call, run only by the admin side (/spend), never by a request."""
        start = len(self._bucket(""))
        pattern = _glob_escaped(self._bucket(prefix)) + "*"
        found: list[str] = []
        async for name in self._client.scan_iter(match=pattern, count=500):
            found.append(bytes(name).decode()[start:])
            if len(found) >= limit:
                break
        return found

    async def acquire(self, key: str, holder: str, limit: int, lease_s: float) -> bool:
        keys, args = [self._prefix + "s:" + key], [holder, limit, lease_s]
        reply = await self._call("acquire", self._scripts.call(self._acquire.sha, _ACQUIRE_LUA, keys, args))
        return bool(reply)

    async def release(self, key: str, holder: str) -> None:
        await self._call("release", self._writes.release(self._prefix + "s:" + key, holder))

    async def _send_writes(self, batch: Batch) -> None:
        """The batch's summed settles and its releases, in the script pipeline's next send."""
        replies = [
            self._scripts.call(
                self._settle.sha,
                _SETTLE_LUA,
                [self._bucket(key)],
                [correction.delta, correction.limit, correction.window_s, int(correction.refills)],
            )
            for key, correction in batch.settles.items()
            if correction.delta
        ]
        replies += [self._scripts.command("ZREM", key, *holders) for key, holders in batch.releases.items()]
        for outcome in await asyncio.gather(*replies, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def cache_get(self, key: str) -> CacheEntry | None:
        keys = [self._prefix + "c:" + key, *self._cache_keys]
        reply = await self._call("cache_get", self._cache_get(keys=keys))
        if not reply:
            return None
        value, age_ms = reply
        return CacheEntry(value=bytes(value), age_s=int(age_ms) / 1000)

    async def cache_set(self, key: str, value: bytes, ttl_s: float) -> None:
        keys = [self._prefix + "c:" + key, *self._cache_keys]
        args: list[bytes | int] = [value, int(ttl_s * 1000), self._max_entries, self._max_bytes, EXPIRED_PER_SET]
        await self._call("cache_set", self._cache_set(keys=keys, args=args))

    # For companions on the same client (the breakers): their scripts, keys and error mapping.

    def script(self, source: str) -> AsyncScript:
        return self._client.register_script(source)

    def key(self, suffix: str) -> str:
        return self._prefix + suffix

    async def run(self, op: str, call: Awaitable[T]) -> T:
        return await self._call(op, call)

    async def ping(self) -> None:
        await self._call("ping", self._client.ping())

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):  # counted where each write was made
            await self._writes.drain()
        await self._client.aclose()
