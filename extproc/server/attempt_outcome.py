"""What one upstream attempt came to, reported to the provider's circuit breaker.

A status of 5xx or 429 is a failure (with the provider's Retry-After); any other
status is a success. An attempt that ends without an answer is a failure when
one of its route's timeouts cut it; otherwise its client hung up (or Envoy
reset it: Envoy's outlier detection and retries deal with those), which says
nothing about the provider. Attempts after the first are counted as retries.
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
from extproc.xds.pool_timeouts import PoolTimeouts


class AttemptOutcome:
    def __init__(self, breakers: Breakers, policy: BreakerPolicy | None) -> None:
        self._breakers = breakers
        self._policy = policy
        self.headers: dict[str, str] = {}
        self.attempt: PoolAttempt | None = None  # for a pooled route
        self.client_format: Format = "openai"  # the API errors are answered in
        self._provider: Provider | None = None
        self._started = 0.0
        self._request_read_at = 0.0
        self._timeouts: PoolTimeouts | None = None
        self._reported = False

    def started(self, provider: Provider, headers: dict[str, str]) -> None:
        self._provider, self._started = provider, time.monotonic()
        if headers.get(ATTEMPT_COUNT_HEADER, "1") != "1":
            RETRIES.labels(provider.name).inc()

    def bounded_by(self, timeouts: PoolTimeouts, read_at: float) -> None:
        """The route's timeouts, and when the router pass had read the request's body (time.monotonic())."""
        self._timeouts, self._request_read_at = timeouts, read_at

    def answered(self, headers: dict[str, str]) -> None:
        self._report(*judge(headers))

    def abandon(self) -> None:
        """The gateway itself refused the attempt: nothing to say about the provider."""
        self._reported = True

    def ended(self) -> None:
        if self._provider is None or self._reported or self._timeouts is None:
            return  # answered, refused by the gateway, or no breakers
        now = time.monotonic()
        if self._timeouts.cut_attempt(now - self._started, now - self._request_read_at):
            self._report(False, 0.0)  # no answer in time

    def _report(self, ok: bool, retry_after_s: float) -> None:
        self._reported = True
        if self._policy is None or self._provider is None:
            return
        latency = time.monotonic() - self._started
        self._breakers.record(self._provider.name, ok, retry_after_s, latency, self._policy)
