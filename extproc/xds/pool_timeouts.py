"""A pooled route's timeouts as Envoy applies them (`render_pool` renders them), and whether an
attempt that ended without an answer ran into one of them.

Envoy closes an attempt's upstream pass the same way whether one of these timeouts cut it or the
client hung up; only the first is the provider's failure. The upstream pass tells them apart by
the time the attempt and its request had run: its clocks start before Envoy's timers do, so an
attempt Envoy cut has always run for at least the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from extproc.config.model import GatewayConfig, Route

_TIMER_SLACK_S = 0.05  # the part of a timeout a client hanging up just before it may be taken for it


@dataclass(frozen=True, slots=True)
class PoolTimeouts:
    total_ms: int  # the route's, from the end of the client's request
    idle_ms: int  # the route's stream idle timeout
    first_byte_ms: int | None  # per attempt
    attempt_idle_ms: int | None  # per attempt, also while it waits for a first byte

    @classmethod
    def for_route(cls, config: GatewayConfig, route: Route) -> PoolTimeouts:
        providers = [provider for member in route.pool if (provider := config.provider(member.provider))]
        resilience = route.resilience
        total = resilience.total_ms or max(provider.timeout_ms for provider in providers)
        first_byte = resilience.first_byte_ms or _largest([p.first_byte_timeout_ms for p in providers])
        idle = resilience.idle_ms or max(provider.idle_timeout_ms for provider in providers)
        if first_byte:
            # The route's idle timer also runs while attempts wait: leave every attempt its first-byte time.
            idle = max(idle, first_byte * (resilience.retry_attempts + 1) + 1000)
        return cls(total, idle, first_byte, resilience.idle_ms)

    def cut_attempt(self, attempt_s: float, request_s: float) -> bool:
        """Whether an attempt that ended without an answer, `attempt_s` after it started and `request_s`
        after its request's body was read, ran into a timeout (else its client hung up)."""
        per_attempt = [ms for ms in (self.first_byte_ms, self.attempt_idle_ms) if ms]
        if per_attempt and attempt_s >= min(per_attempt) / 1000 - _TIMER_SLACK_S:
            return True
        return request_s >= min(self.total_ms, self.idle_ms) / 1000 - _TIMER_SLACK_S


def _largest(values: list[int | None]) -> int | None:
    """A pool's bound when the route gives none: its most patient provider's (Envoy bounds attempts per route)."""
    given = [value for value in values if value]
    return max(given) if given else None
