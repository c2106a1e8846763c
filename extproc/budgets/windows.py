"""Calendar windows (a UTC day or month): which one a moment falls in, and when it ends.

A limit counted over a calendar window keeps its bucket under a key that names the window
(`.../usd@2026-12`), so the next window starts on a bucket of its own, and the store forgets the
old one when it ends. Rolling windows (`window_s`) need none of this: their buckets refill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from extproc.config.traffic import CalendarWindow


@dataclass(frozen=True, slots=True)
class Window:
    label: str  # "2026-12-07" for a day, "2026-12" for a month
    start: float  # epoch seconds, UTC
    end: float

    def left_s(self, now: float) -> float:
        """Seconds until the window ends (at least a millisecond: a window that just ended is over)."""
        return max(0.001, self.end - now)


def calendar_window(kind: CalendarWindow, now: float) -> Window:
    """The UTC day or month that `now` (epoch seconds) falls in."""
    moment = datetime.fromtimestamp(now, UTC)
    if kind == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromtimestamp(start.timestamp() + 86400, UTC)
        return Window(start.strftime("%Y-%m-%d"), start.timestamp(), end.timestamp())
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Window(start.strftime("%Y-%m"), start.timestamp(), end.timestamp())


class WindowClock:
    """The window of a kind at `now`, worked out once per window rather than per request."""

    def __init__(self) -> None:
        self._known: dict[CalendarWindow, Window] = {}

    def at(self, kind: CalendarWindow, now: float) -> Window:
        known = self._known.get(kind)
        if known is None or not known.start <= now < known.end:
            known = self._known[kind] = calendar_window(kind, now)
        return known
