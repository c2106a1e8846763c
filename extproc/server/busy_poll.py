"""Keep the event loop polling for a short while when a message is due, instead of sleeping.

At low concurrency every ext_proc message is a hand-off between two sleeping processes, and
on a virtual machine waking an idle vCPU is the dearest part of it (a halt and an
interrupt). Two of a request's messages follow a reply at once: its body after the reply to
its headers, and the answer's body after the reply to the answer's headers. After those
replies (`poke`) the loop polls without blocking (a zero-timeout poll per turn: a callback
that schedules itself) until the next message arrives (`arrived`) or `window_s` has passed,
and sees it at once. After a body's reply the next message waits on the provider (its first
token, its next chunk) or on the client's next request, often for far longer than a window:
the loop sleeps. Each turn yields the CPU to any other runnable thread (Envoy's, on a shared
core). A window of 0 turns it off.
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
        """A message is due soon: poll until it arrives, for `window_s` at most."""
        self._last = time.monotonic()
        if not self._spinning:
            self._spinning = True
            self._loop.call_soon(self._turn)

    def arrived(self) -> None:
        """Data came in: the window it was open for closes at the next turn."""
        self._last = 0.0

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
