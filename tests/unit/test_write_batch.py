"""Settles and releases gathered into one send."""

from __future__ import annotations

import asyncio

from extproc.store.write_batch import Batch, Flush, WriteBatch


def recorder() -> tuple[list[Batch], Flush]:
    """A flush that keeps what it was sent."""
    sent: list[Batch] = []

    async def flush(batch: Batch) -> None:
        sent.append(batch)

    return sent, flush


def test_writes_made_within_the_window_leave_together_with_settles_of_one_bucket_summed() -> None:
    sent, flush = recorder()

    async def run() -> None:
        writes = WriteBatch(flush, window_s=0.01)
        await asyncio.gather(
            writes.settle("client:a", -30, 1000, 60),
            writes.settle("client:a", 12, 1000, 60),
            writes.settle("client:b", 5, 500, 60),
            writes.release("slots:a", "req-1"),
            writes.release("slots:a", "req-2"),
        )
        await writes.settle("client:a", 1, 1000, 60)  # a later window: a batch of its own

    asyncio.run(run())
    first, second = sent
    assert {k: v.delta for k, v in first.settles.items()} == {"client:a": -18, "client:b": 5}
    assert first.releases == {"slots:a": ["req-1", "req-2"]}
    assert {k: v.delta for k, v in second.settles.items()} == {"client:a": 1} and not second.releases


def test_a_failed_send_reaches_every_write_it_carried() -> None:
    async def flush(batch: Batch) -> None:
        raise ConnectionError("store down")

    async def run() -> list[BaseException | None]:
        writes = WriteBatch(flush, window_s=0.001)
        results = await asyncio.gather(writes.settle("k", 1, 10, 60), writes.release("s", "h"), return_exceptions=True)
        return list(results)

    assert [type(result) for result in asyncio.run(run())] == [ConnectionError, ConnectionError]


def test_drain_sends_what_is_gathered_at_once() -> None:
    sent, flush = recorder()

    async def run() -> None:
        writes = WriteBatch(flush, window_s=60)
        pending = writes.release("s", "h")
        await writes.drain()
        assert pending.done()

    asyncio.run(run())
    assert sent[0].releases == {"s": ["h"]}


def test_nothing_is_sent_when_nothing_was_written() -> None:
    sent, flush = recorder()

    async def run() -> None:
        writes = WriteBatch(flush, window_s=0.001)
        await writes.drain()
        assert sent == []
        await writes.settle("k", 1, 10, 60)  # sent one window later: any send of nothing would have gone first

    asyncio.run(run())
    assert [batch.settles.keys() for batch in sent] == [{"k"}]
