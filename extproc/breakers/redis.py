"""Breakers in Redis, shared by every ext_proc process and replica: the same rules as
`memory.py`, each operation one atomic script timed by Redis's clock. A breaker is a hash
{o: open until ms (0 closed), p: probe until ms, w: window start ms, s: successes, f: failures}."""

from __future__ import annotations

from typing import cast

from extproc.breakers.state import BreakerPolicy, BreakerView, Permit, Transition
from extproc.store.redis_store import RedisStore

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'o', 'p', 'w', 's', 'f')
local o, p = tonumber(h[1] or 0), tonumber(h[2] or 0)
local w, s, f = tonumber(h[3] or now), tonumber(h[4] or 0), tonumber(h[5] or 0)
local keep = tonumber(ARGV[1])
"""

# ARGV: keep_ms, probe_ms. Returns allowed, probe, retry_in_ms.
_ALLOW = (
    _NOW
    + """
if o == 0 then return {1, 0, 0} end
if now < o then return {0, 0, o - now} end
if now < p then return {0, 0, p - now} end
redis.call('HSET', KEYS[1], 'p', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], keep)
return {1, 1, 0}
"""
)

# ARGV: keep_ms, ok, retry_after_ms, open_ms, window_ms, min_requests, failure_ratio. Returns the transition.
_RECORD = (
    _NOW
    + """
local ok, retry_after, open_ms = ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local function trip(duration)
  redis.call('HSET', KEYS[1], 'o', now + duration, 'p', 0, 'w', now, 's', 0, 'f', 0)
  redis.call('PEXPIRE', KEYS[1], keep + duration)
  return 'opened'
end
if o > 0 then
  if now < o then return '' end
  if ok then redis.call('DEL', KEYS[1]) return 'closed' end
  return trip(math.max(open_ms, retry_after))
end
if now - w > tonumber(ARGV[5]) then w, s, f = now, 0, 0 end
if ok then s = s + 1 else f = f + 1 end
local total = s + f
if not ok and total >= tonumber(ARGV[6]) and f / total >= tonumber(ARGV[7]) then
  return trip(math.max(open_ms, retry_after))
end
if not ok and retry_after > 0 then return trip(retry_after) end
redis.call('HSET', KEYS[1], 'w', w, 's', s, 'f', f)
redis.call('PEXPIRE', KEYS[1], keep)
return ''
"""
)

# Returns state (0 closed, 1 open, 2 half-open), retry_in_ms, failures, requests.
_VIEW = (
    _NOW
    + """
if o == 0 then return {0, 0, f, s + f} end
if now < o then return {1, o - now, 0, 0} end
return {2, 0, 0, 0}
"""
)

_STATES = ("closed", "open", "half_open")


class RedisBreakers:
    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._allow = store.script(_ALLOW)
        self._record = store.script(_RECORD)
        self._view = store.script(_VIEW)

    def _key(self, key: str) -> list[str]:
        return [self._store.key("k:" + key)]

    async def allow(self, key: str, policy: BreakerPolicy) -> Permit:
        args = [_keep_ms(policy), int(policy.probe_s * 1000)]
        allowed, probe, retry_in = await self._store.run("breaker", self._allow(keys=self._key(key), args=args))
        return Permit(bool(allowed), bool(probe), int(retry_in) / 1000)

    async def record(self, key: str, ok: bool, retry_after_s: float, policy: BreakerPolicy) -> Transition:
        args = [
            _keep_ms(policy),
            1 if ok else 0,
            int(retry_after_s * 1000),
            int(policy.open_s * 1000),
            int(policy.window_s * 1000),
            policy.min_requests,
            policy.failure_ratio,
        ]
        reply = await self._store.run("breaker", self._record(keys=self._key(key), args=args))
        return cast(Transition, reply.decode() if isinstance(reply, bytes) else reply)

    async def view(self, key: str, policy: BreakerPolicy) -> BreakerView:
        state, retry_in, failures, requests = await self._store.run(
            "breaker", self._view(keys=self._key(key), args=[_keep_ms(policy)])
        )
        return BreakerView(_STATES[int(state)], int(retry_in) / 1000, int(failures), int(requests))  # type: ignore[arg-type]


def _keep_ms(policy: BreakerPolicy) -> int:
    """How long an idle breaker's hash is kept: a window and an open period past its last write."""
    return int((policy.window_s + policy.open_s + policy.probe_s) * 1000)
