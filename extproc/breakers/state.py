"""A breaker's policy, and the store interface its state lives behind.

Closed: requests flow; failures (5xx, 429, timeouts, resets) and successes
are counted over a window, and once at least `min_requests` were seen with a
failure ratio of `failure_ratio` or more, it opens. A failure that says
`Retry-After` opens it for at least that long. Open: requests are not sent
(a pool skips the provider). Half-open (the open time is over): one probe at
a time may pass; its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from extproc.config.route_model import BreakerPolicy

__all__ = ["BreakerPolicy", "BreakerStore", "BreakerView", "Permit", "State", "Transition"]

State = Literal["closed", "open", "half_open"]
Transition = Literal["", "opened", "closed"]


@dataclass(frozen=True, slots=True)
class Permit:
    allowed: bool
    probe: bool = False  # the one request let through a half-open breaker
    retry_in_s: float = 0.0  # until it may be tried again (refused)


@dataclass(frozen=True, slots=True)
class BreakerView:
    state: State
    retry_in_s: float
    failures: int
    requests: int


class BreakerStore(Protocol):
    async def allow(self, key: str, policy: BreakerPolicy) -> Permit: ...

    async def record(self, key: str, ok: bool, retry_after_s: float, policy: BreakerPolicy) -> Transition: ...

    async def view(self, key: str, policy: BreakerPolicy) -> BreakerView: ...
