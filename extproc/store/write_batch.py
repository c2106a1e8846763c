"""Store writes that nobody waits for, gathered for a few milliseconds and sent in one round trip.

Every request ends with a settle (its token estimate corrected) and a streaming
request with a release (its concurrency slot). Under load, many requests of one
client end within milliseconds of each other: their corrections to one bucket
sum into one script call, their releases of one key into one ZREM, and all of
it leaves as one pipeline. At one request at a time each write still leaves
alone, `WINDOW_S` later. Summing changes nothing a client can tell: a settle is
already applied after the answer went out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

WINDOW_S = 0.005


@dataclass(slots=True)
class SettleSum:
    delta: int
    limit: int
    window_s: float
    refills: bool = True


@dataclass(slots=True)
class Batch:
    settles: dict[str, SettleSum] = field(default_factory=dict)  # bucket key -> summed correction
    releases: dict[str, list[str]] = field(default_factory=dict)  # slots key -> holders


Flush = Callable[[Batch], Awaitable[None]]


class WriteBatch:
    def __init__(self, flush: Flush, window_s: float = WINDOW_S) -> None:
        self._flush = flush
        self._window_s = window_s
        self._batch = Batch()
        self._done: asyncio.Future[None] | None = None  # resolved when the pending batch was sent
        self._sending: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references

    def settle(self, key: str, delta: int, limit: int, window_s: float, refills: bool = True) -> asyncio.Future[None]:
        done = self._pending()
        if (known := self._batch.settles.get(key)) is not None:
            known.delta += delta
            # the latest rule wins, as one call would
            known.limit, known.window_s, known.refills = limit, window_s, refills
        else:
            self._batch.settles[key] = SettleSum(delta, limit, window_s, refills)
        return done

    def release(self, key: str, holder: str) -> asyncio.Future[None]:
        done = self._pending()
        self._batch.releases.setdefault(key, []).append(holder)
        return done

    def _pending(self) -> asyncio.Future[None]:
        """The future of the batch being gathered; the first write of a batch schedules its send."""
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            loop.call_later(self._window_s, self._send)
        return self._done

    def _send(self) -> None:
        batch, done = self._batch, self._done
        self._batch, self._done = Batch(), None
        if done is not None:
            task = asyncio.get_running_loop().create_task(self._sent(batch, done))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _sent(self, batch: Batch, done: asyncio.Future[None]) -> None:
        try:
            await self._flush(batch)
        except Exception as error:  # each waiter reports it (store.background)
            if not done.done():
                done.set_exception(error)
                done.exception()  # marked retrieved: a batch nobody awaits any more is not a loose error
        else:
            if not done.done():
                done.set_result(None)

    async def drain(self) -> None:
        """Send what is gathered now (the store is closing)."""
        if self._done is not None:
            batch, done = self._batch, self._done
            self._batch, self._done = Batch(), None
            await self._sent(batch, done)
