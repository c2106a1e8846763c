"""Keep the event loop polling for a short while after each message, instead of sleeping.

At low concurrency every ext_proc message is a hand-off between two sleeping processes, and
on a virtual machine waking an idle vCPU is the dearest part of it (a halt and an
interrupt). A request sends its messages within a millisecond of each other, so for
`window_s` after data arrives the loop polls without blocking (a zero-timeout poll per
turn: a callback that schedules itself) and sees the next message at once. Each turn
yields the CPU to any other runnable thread (Envoy's, on a shared core). Under load the
loop is never idle, so this costs nothing there; at low load it costs up to `window_s`
of CPU after each burst of messages. A window of 0 turns it off.
"""

from __future__ import annotations

import asyncio
import os
import time


class BusyPoll:
    __slots__ = ("_last", "_loop", "_spinning", "_window", "last_turn", "turns")

    def __init__(self, loop: asyncio.AbstractEventLoop, window_s: float) -> None:
        self._loop = loop
        self._window = window_s
        self._last = 0.0
        self._spinning = False
        self.turns = 0  # polling turns so far, and when the latest began (for tests and profiles)
        self.last_turn = 0.0

    @property
    def spinning(self) -> bool:
        """Whether the loop is polling now (a window is open)."""
        return self._spinning

    def poke(self) -> None:
        """Data arrived: keep polling until `window_s` after now."""
        self._last = time.monotonic()
        if not self._spinning:
            self._spinning = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        now = time.monotonic()
        if now - self._last < self._window:
            self.turns += 1
            self.last_turn = now
            os.sched_yield()
            self._loop.call_soon(self._turn)
        else:
            self._spinning = False


def busy_poll(window_us: int) -> BusyPoll | None:
    """The running loop's busy poll, or None when the window is 0."""
    return BusyPoll(asyncio.get_running_loop(), window_us / 1e6) if window_us > 0 else None
