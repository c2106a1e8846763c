"""The process's heap, tuned for a server whose requests allocate many short-lived objects.

Once started, everything loaded so far (modules, config, compiled schemas) is
moved out of the collector's sight (`gc.freeze`), and the youngest generation
is collected far less often: per-request garbage is freed by reference
counting anyway. Measured with `bench` (wrk, one worker, c=16): +6 to +17%
requests per second on the same-API and translated paths.

Freed memory goes back to the OS every few seconds (`return_freed_memory`): glibc keeps the
free pages of its heap otherwise, so a burst of large requests stays resident after it
(measured, 32 connections of 1 MB requests: +45 MB per process that stayed once the load
ended; trimmed, back to where it started). A trim takes well under a millisecond.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections.abc import Callable

_YOUNGEST_THRESHOLD = 50_000  # objects allocated between collections of generation 0 (Python's default: 700)
TRIM_EVERY_S = 10.0


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNGEST_THRESHOLD, 20, 20)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim; None where the C library has none (musl)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Give the OS back the free pages of the C heap (those of every malloc arena); False where
    the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def return_freed_memory(every_s: float = TRIM_EVERY_S) -> None:
    """Trim the heap every `every_s` seconds; runs until cancelled."""
    while trim_heap():
        await asyncio.sleep(every_s)
