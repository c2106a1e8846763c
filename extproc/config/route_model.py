"""Typed route rules and pools: what a route matches, and where (and how resiliently) it sends."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: str  # lower case
    exact: str | None = None
    regex: re.Pattern[str] | None = None
    present: bool | None = None

    def holds(self, headers: dict[str, str]) -> bool:
        value = headers.get(self.name)
        if self.present is not None:
            return (value is not None) == self.present
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return self.regex is not None and self.regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    headers: tuple[HeaderMatch, ...] = ()
    clients: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    apis: tuple[str, ...] = ()
    path_prefix: str | None = None

    @property
    def needs_identity(self) -> bool:
        return bool(self.clients or self.tenants)


@dataclass(frozen=True, slots=True)
class PoolMember:
    provider: str
    model: str | None = None  # None: the client's model
    weight: int = 1
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Resilience:
    """Envoy's retry policy, timeouts, outlier detection and circuit breakers for a pool."""

    retry_attempts: int = 2
    retry_on: tuple[str, ...] = ("5xx", "reset", "connect-failure")
    total_ms: int | None = None
    first_byte_ms: int | None = None
    idle_ms: int | None = None
    outlier_detection: dict[str, int] = field(default_factory=dict)
    circuit_breakers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """A provider's circuit breaker (see extproc.breakers)."""

    failure_ratio: float = 0.5
    min_requests: int = 10
    window_s: float = 30.0
    open_s: float = 30.0
    probe_s: float = 30.0  # a probe that never reports frees its slot after this
