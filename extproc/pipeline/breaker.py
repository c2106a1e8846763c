"""Stage: providers whose circuit breaker is open are not asked.

A single provider that is open: a fast 503 in the client's format, with
Retry-After. A pool skips its open members: when some are open, the request
goes straight to one of the others (the lowest priority left, by weight);
when a member's breaker lets one probe through, this request is the probe;
when every member is open, a fast 503. Runs after the cache: a cached answer
is still served while its provider is paused (a refused request gives its
reserved tokens back, like any failed one).
"""

from __future__ import annotations

import asyncio
import random

from extproc.breakers.manager import Breakers, judge
from extproc.breakers.state import Permit
from extproc.config.route_model import PoolMember
from extproc.errors import GatewayError
from extproc.observe.logs import monotonic
from extproc.observe.metrics import BREAKER_REJECTIONS
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.provider_kinds import KINDS
from extproc.ratelimit.headers import retry_headers
from extproc.routing import Target


class BreakerStage(Stage):
    name = "breaker"

    def __init__(self, breakers: Breakers) -> None:
        self._breakers = breakers

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        policy, target = ex.snapshot.config.breakers, ex.target
        if policy is None or target is None or KINDS[target.provider.kind].answers_locally:
            return None
        if not target.pooled:
            permit = await self._breakers.allow(target.provider.name, policy)
            if not permit.allowed:
                raise _open(target.provider.name, permit)
            return None
        names = list(dict.fromkeys(member.provider for member in target.pool))
        permits = dict(zip(names, await asyncio.gather(*(self._breakers.allow(n, policy) for n in names)), strict=True))
        usable = [member for member in target.pool if permits[member.provider].allowed]
        if len(usable) == len(target.pool) and not any(p.probe for p in permits.values()):
            return None  # all closed: Envoy balances and fails over over the whole pool
        if not usable:
            raise _open(", ".join(names), min(permits.values(), key=lambda p: p.retry_in_s))
        probes = [member for member in usable if permits[member.provider].probe]
        ex.target = direct(ex, target, probes[0] if probes else pick(usable))
        return None

    def response_headers(self, ex: Exchange, reply: PhaseReply, headers: dict[str, str]) -> None:
        """A single provider's answer (a pool's attempts are reported by the upstream pass)."""
        policy, target = ex.snapshot.config.breakers, ex.target
        if policy is None or target is None or target.pooled or KINDS[target.provider.kind].answers_locally:
            return
        ok, retry_after_s = judge(headers)
        self._breakers.record(target.provider.name, ok, retry_after_s, monotonic() - ex.started, policy)


def _open(names: str, permit: Permit) -> GatewayError:
    for name in names.split(", "):
        BREAKER_REJECTIONS.labels(name).inc()
    return GatewayError(
        "unavailable",
        f"provider {names} is failing and paused; retry in {permit.retry_in_s:.0f}s",
        code="provider_circuit_open",
        headers=tuple(retry_headers(max(1.0, permit.retry_in_s))),
    )


def pick(members: list[PoolMember]) -> PoolMember:
    first = min(member.priority for member in members)
    level = [member for member in members if member.priority == first]
    return random.choices(level, weights=[member.weight for member in level])[0]


def direct(ex: Exchange, target: Target, member: PoolMember) -> Target:
    """The request goes to one member's own cluster, rendered by the router pass as for a single provider."""
    provider = ex.snapshot.config.provider(member.provider)
    assert provider is not None
    model = target.model_for(provider.name, ex.model)
    return Target(provider, model, target.auth, target.route, target.cache_ttl_s, cluster=provider.cluster)
