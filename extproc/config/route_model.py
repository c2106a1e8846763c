"""Typed route rules and pools: what a route matches, and where (and how resiliently) it sends.
Each field is the declaration of its option of gateway.yaml (extproc.declare)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from extproc.declare import Group, NonEmpty, NonNegative, Positive, Schema, Seconds, derived, option, section

_Names = Annotated[tuple[NonEmpty, ...], Schema(minItems=1)]
ClientApi = Literal["openai", "responses", "anthropic", "gemini"]
RetryOn = Literal["5xx", "reset", "connect-failure", "429"]


@section("give one of exact, regex (whole value) or present")
@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: NonEmpty = option(
        description="the request header's name (case does not matter)", examples=["x-team"]
    )  # lower case once loaded
    exact: str | None = option(None, description="the header's whole value", examples=["a"])
    regex: re.Pattern[str] | None = option(
        None,
        schema={"type": "string"},
        description="a regular expression (Python syntax) the header's whole value must match",
        examples=["^beta-.*"],
    )
    present: bool | None = option(
        None, description="true: the header must be sent; false: it must not be", examples=[True]
    )

    def holds(self, headers: dict[str, str]) -> bool:
        value = headers.get(self.name)
        if self.present is not None:
            return (value is not None) == self.present
        if value is None:
            return False
        if self.exact is not None:
            return value == self.exact
        return self.regex is not None and self.regex.fullmatch(value) is not None


@section("more conditions besides the model; all must hold")
@dataclass(frozen=True, slots=True)
class RouteMatch:
    headers: tuple[HeaderMatch, ...] = option((), unset=True, description="conditions on request headers")
    clients: _Names = option(
        (),
        unset=True,
        description="the client's id is one of these (exact names; needs client auth)",
        examples=[["search-team"]],
    )
    tenants: _Names = option(
        (),
        unset=True,
        description="the client's tenant is one of these (exact names; needs client auth)",
        examples=[["acme"]],
    )
    apis: Annotated[tuple[ClientApi, ...], Schema(minItems=1)] = option(
        (),
        unset=True,
        description="the API the client speaks is one of these (openai: Chat Completions and embeddings; "
        "responses: the Responses API)",
        examples=[["anthropic"]],
    )
    path_prefix: str | None = option(
        None, pattern="^/", description="the request's path starts with this", examples=["/v1beta/"]
    )

    @property
    def needs_identity(self) -> bool:
        return bool(self.clients or self.tenants)


@dataclass(frozen=True, slots=True)
class PoolMember:
    provider: str = option(
        description="a provider's name (not a mock provider: it answers locally)", examples=["openai"]
    )
    model: NonEmpty | None = option(
        None,
        description="the model name sent to this provider (not set: the route's upstream_model, else the client's)",
        examples=["gemini-2.5-flash"],
    )  # None: the client's model
    weight: Annotated[Positive, Schema(maximum=1000)] = option(1, description="load share among its priority")
    priority: Annotated[NonNegative, Schema(maximum=10)] = option(
        0, description="failover order, 0 first: a priority is used once the ones before it failed"
    )


@section("Envoy ejects a provider endpoint that keeps failing")
@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """The shape of a pool's `outlier_detection` (the route holds the keys given, these fill the rest)."""

    consecutive_5xx: Positive = option(5, description="consecutive 5xx answers after which an endpoint is ejected")
    interval_ms: Positive = option(10_000, description="how often ejections are evaluated")
    base_ejection_ms: Positive = option(
        30_000, description="how long an ejected endpoint stays out (times the number of its ejections)"
    )
    max_ejection_percent: Annotated[NonNegative, Schema(maximum=100)] = option(
        100, description="the share of the pool's endpoints that may be ejected at once"
    )


@section(
    "Envoy's limits on what is in flight to the pool's providers (pools only); over a limit, Envoy answers 503 at once"
)
@dataclass(frozen=True, slots=True)
class CircuitBreakers:
    """The shape of a pool's `circuit_breakers` (the route holds the keys given; Envoy's defaults the rest)."""

    max_connections: Positive | None = option(
        None,
        description="connections to the pool's providers (not set: Envoy's default, 1024)",
        examples=[1000],
    )
    max_pending_requests: Positive | None = option(
        None, description="requests waiting for a connection (not set: Envoy's default, 1024)", examples=[1000]
    )
    max_requests: Positive | None = option(
        None, description="requests in flight (not set: Envoy's default, 1024)", examples=[1000]
    )


@section(
    groups={
        "retry": Group("Envoy's retries for a pool: each retry goes to another provider of the pool (pools only)"),
        "timeouts": Group("a pool's timeouts (pools only; Envoy applies them per route, not per provider)"),
    }
)
@dataclass(frozen=True, slots=True)
class Resilience:
    """Envoy's retry policy, timeouts, outlier detection and circuit breakers for a pool (keys of the route)."""

    retry_attempts: Annotated[NonNegative, Schema(maximum=5)] = option(
        2, key="retry.attempts", description="retries after the first try"
    )
    retry_on: tuple[RetryOn, ...] = option(
        ("5xx", "reset", "connect-failure"),
        key="retry.retry_on",
        description="what is retried: a 5xx answer, a reset connection, a failed connect, a 429",
    )
    total_ms: Positive | None = option(
        None,
        key="timeouts.total_ms",
        description="the whole request, every attempt included (not set: the largest timeout_ms of the "
        "pool's providers)",
        examples=[120000],
    )
    first_byte_ms: Positive | None = option(
        None,
        key="timeouts.first_byte_ms",
        description="per attempt, until the provider's answer starts (not set: the largest "
        "first_byte_timeout_ms of the pool's providers; none given: no bound per attempt)",
        examples=[20000],
    )
    idle_ms: Positive | None = option(
        None,
        key="timeouts.idle_ms",
        description="per attempt, between two pieces of the answer (streams); not set: only the route's idle "
        "timeout, the largest idle_timeout_ms of the pool's providers, bounds a stall",
        examples=[30000],
    )
    outlier_detection: dict[str, int] = option(factory=dict, unset=True, shape=OutlierDetection)  # the keys given
    circuit_breakers: dict[str, int] = option(factory=dict, unset=True, shape=CircuitBreakers)  # the keys given


@section("a circuit breaker per provider, shared through the store; on when this section is present")
@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """A provider's circuit breaker (see extproc.breakers)."""

    failure_ratio: Annotated[float, Schema(exclusiveMinimum=0, maximum=1)] = option(
        0.5,
        description="the share of failed requests in the window (5xx, 429, timeouts, a single provider's "
        "resets; never a client hanging up) that opens the breaker",
    )
    min_requests: Positive = option(10, description="requests seen in the window before the ratio counts")
    window_s: Seconds = option(30.0, description="the window the failure ratio is measured over")
    open_s: Seconds = option(30.0, description="how long the breaker stays open before a probe is let through")
    probe_s: float = derived(30.0)  # not an option: a probe that never reports frees its slot after this


def member_model(pool: tuple[PoolMember, ...], provider: str, otherwise: str | None) -> str | None:
    """The model pool member `provider` is asked for: its own `model`, else `otherwise`."""
    member = next((m for m in pool if m.provider == provider), None)
    return (member.model if member else None) or otherwise
