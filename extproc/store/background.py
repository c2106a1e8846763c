"""Store writes nobody waits for (settling tokens, filling the cache), and the store's health.

Background writes run after the answer went out; a failure is logged and
counted, never raised into a request. Those not done yet are counted in
`gateway_store_pending_writes`: a backlog shows a store slower than the
traffic. An outage is logged once when it starts and once when the store
answers again, while every failed operation is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from extproc.observe.metrics import STORE_ERRORS, STORE_PENDING_WRITES
from extproc.store.base import StoreError

log = logging.getLogger(__name__)
_running: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references
_down = False


def failed(operation: str, error: StoreError) -> None:
    global _down
    STORE_ERRORS.labels(operation).inc()
    if not _down:
        _down = True
        log.error("store unreachable; cache bypassed, limits follow on_store_error", extra={"error": str(error)})


def succeeded() -> None:
    global _down
    if _down:
        _down = False
        log.info("store reachable again")


def spawn(operation: str, work: Coroutine[Any, Any, None]) -> None:
    STORE_PENDING_WRITES.inc()
    task = asyncio.get_running_loop().create_task(_guarded(operation, work))
    _running.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[None]) -> None:
    _running.discard(task)
    STORE_PENDING_WRITES.dec()  # here, not in the task: a task cancelled before it ran is done too


async def _guarded(operation: str, work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except StoreError as error:
        failed(operation, error)
        return
    except Exception:
        log.exception("store write failed", extra={"operation": operation})
        return
    succeeded()
