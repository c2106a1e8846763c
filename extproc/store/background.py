"""Store writes nobody waits for (settling tokens, filling the cache), and the store's health.

Background writes run after the answer went out; a failure is logged and
counted, never raised into a request. An outage is logged once when it starts
and once when the store answers again, while every failed operation is counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from extproc.observe.metrics import STORE_ERRORS
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
    task = asyncio.get_running_loop().create_task(_guarded(operation, work))
    _running.add(task)
    task.add_done_callback(_running.discard)


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
