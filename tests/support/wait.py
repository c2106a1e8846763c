"""The one way tests wait: poll the signal a step produces, never sleep a fixed time.

A test names what it waits for (a metric reaching a value, a log line, a key in the
store, a file's version) as a predicate; these poll it until it holds or the timeout
passes, then report whether it held. The timeout only bounds a failure: a passing test
waits as long as the signal takes, and no longer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.01


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0, interval: float = POLL_S) -> bool:
    """Poll `predicate` until it is true or `timeout` passed; its last answer.

    `interval` for predicates that cost something (a request through the gateway)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


async def wait_until_async(predicate: Callable[[], bool], timeout: float = 2.0, interval: float = 0.0) -> bool:
    """`wait_until` inside an event loop: the loop runs (the work under test with it) between polls.

    The default polls once per turn of the loop, for work that needs only turns to finish."""

    async def check() -> bool:
        return predicate()

    return await wait_until_awaited(check, timeout, interval)


async def wait_until_awaited(
    check: Callable[[], Awaitable[bool]], timeout: float = 2.0, interval: float = POLL_S
) -> bool:
    """`wait_until_async` for a signal read with I/O of its own (a server's clock, a key's state)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(interval)
    return await check()


async def loop_turns(count: int) -> None:
    """Let the event loop run `count` turns, with no timer: each runs what was ready in it, so work
    that schedules itself turn after turn (a busy poll) would run in every one of them. For showing
    that something that stopped stays stopped."""
    loop = asyncio.get_running_loop()
    for _ in range(count):
        turned = loop.create_future()
        loop.call_soon(turned.set_result, None)
        await turned
