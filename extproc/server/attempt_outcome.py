"""What one upstream attempt came to, reported to the provider's circuit breaker.

A status of 5xx or 429 is a failure (with the provider's Retry-After); any other
status is a success; an attempt that ends without an answer (a timeout or a
reset) is a failure. Attempts after the first are counted as retries.
"""

from __future__ import annotations

import time

from extproc.breakers.manager import Breakers, judge
from extproc.breakers.state import BreakerPolicy
from extproc.config.model import Provider
from extproc.contract import ATTEMPT_COUNT_HEADER
from extproc.formats.endpoint import Format
from extproc.observe.metrics import RETRIES
from extproc.server.pool_attempt import PoolAttempt


class AttemptOutcome:
    def __init__(self, breakers: Breakers, policy: BreakerPolicy | None) -> None:
        self._breakers = breakers
        self._policy = policy
        self.headers: dict[str, str] = {}
        self.attempt: PoolAttempt | None = None  # for a pooled route
        self.client_format: Format = "openai"  # the API errors are answered in
        self._provider: Provider | None = None
        self._started = 0.0
        self._reported = False

    def started(self, provider: Provider, headers: dict[str, str]) -> None:
        self._provider, self._started = provider, time.monotonic()
        if headers.get(ATTEMPT_COUNT_HEADER, "1") != "1":
            RETRIES.labels(provider.name).inc()

    def answered(self, headers: dict[str, str]) -> None:
        self._report(*judge(headers))

    def abandon(self) -> None:
        """The gateway itself refused the attempt: nothing to say about the provider."""
        self._reported = True

    def ended(self) -> None:
        if self._provider is not None and not self._reported:
            self._report(False, 0.0)  # no answer: timed out or reset

    def _report(self, ok: bool, retry_after_s: float) -> None:
        self._reported = True
        if self._policy is None or self._provider is None:
            return
        latency = time.monotonic() - self._started
        self._breakers.record(self._provider.name, ok, retry_after_s, latency, self._policy)
