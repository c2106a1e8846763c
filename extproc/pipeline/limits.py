"""Stage: rate limits in requests, tokens and concurrent streams, per the config's rules.

Runs once the route is known (rules may key on provider, model and route)
and before the cache, so a cached answer still counts as a request. Tokens
are reserved from an estimate now (never below 0, never above the bucket's
size: `store.base.within_bucket`) and settled with the provider's own count
when the request ends, whatever ended it: a cut stream settles with what the
client received, and a client that hung up before the answer started pays for
its prompt, which the provider was sent. Every bucket a request touches is
charged in one atomic store call, or none is. Figures go back as OpenAI's
x-ratelimit-* headers. A stream's concurrency slot is held under an id the
gateway makes, so streams that share a client's x-request-id hold one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os

from extproc.config.traffic import LimitRule
from extproc.errors import GatewayError
from extproc.observe.metrics import LIMIT_DECISIONS, labelled
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.ratelimit import estimate
from extproc.ratelimit.headers import limit_headers, retry_headers, tightest
from extproc.ratelimit.rules import Subject, applies, bucket_key
from extproc.store import background
from extproc.store.base import Decision, Store, StoreError, Take, within_bucket

_LEASE_MARGIN_S = 60.0  # a stream slot outlives the provider's own timeout, then lapses

# Whom a stream slot is held for: never the client's x-request-id (streams sending one id would share a
# slot), but a random prefix per process and a counter, unique across the processes and replicas that
# share a store without a system call per request. A forked child draws its own prefix.
_holder_prefix = os.urandom(8).hex()
_holders = itertools.count()


def _new_prefix() -> None:
    global _holder_prefix
    _holder_prefix = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_prefix)


class LimitsStage(Stage):
    name = "limits"

    def __init__(self, store: Store) -> None:
        self._store = store

    async def request_body(self, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
        settings = ex.snapshot.config.limits
        if not settings.rules or ex.target is None:
            return None
        subject = Subject(ex.identity.client_id, ex.identity.tenant, ex.provider_name, ex.model, ex.target.route)
        rules = [rule for rule in settings.rules if applies(rule, subject)]
        if not rules:
            return None
        counting = ex.endpoint is not None and ex.endpoint.operation == "count_tokens"
        ex.input_estimate, reserve = (0, 0) if counting else estimate.reserve(body, ex.request)
        takes, kinds = _takes(rules, subject, reserve)
        # A stream's slots are asked for beside its take: on Redis both leave in one round trip.
        streams = ex.stream and any(rule.concurrent_streams is not None for rule in rules)
        slots = asyncio.ensure_future(self._hold_stream_slots(ex, rules, subject)) if streams else None
        try:
            decisions = await self._store.take(takes) if takes else []
        except StoreError as error:
            await _outcome(slots)  # what it holds is released when the request ends
            self._store_down(ex, error)
            return None
        background.succeeded()
        for (rule, kind), decision in zip(kinds, decisions, strict=True):
            labelled(LIMIT_DECISIONS, rule.name, kind, "allow" if decision.allowed else "deny").inc()
        ex.limit_headers = _headers(kinds, decisions)
        refused = [(kinds[i][0], d) for i, d in enumerate(decisions) if not d.allowed]
        if refused:  # all or nothing: the store took none
            await _outcome(slots)
            rule, decision = max(refused, key=lambda item: item[1].retry_after_s)
            raise GatewayError(
                "rate_limit",
                f"rate limit {rule.name!r} reached; retry in {decision.retry_after_s:.1f}s",
                code="rate_limit_exceeded",
                headers=(*retry_headers(decision.retry_after_s), *ex.limit_headers),
            )
        ex.reserved = [take for take, (_, kind) in zip(takes, kinds, strict=True) if kind == "tokens"]
        if slots is not None:
            try:
                await slots
            except StoreError as error:
                self._store_down(ex, error)
        return None

    def _store_down(self, ex: Exchange, error: StoreError) -> None:
        background.failed("limits", error)
        if ex.snapshot.config.limits.on_store_error == "deny":
            raise GatewayError(
                "unavailable", "rate limits cannot be checked right now", headers=tuple(retry_headers(1))
            ) from None

    async def _hold_stream_slots(self, ex: Exchange, rules: list[LimitRule], subject: Subject) -> None:
        """A slot of every rule with a stream limit, asked for together; each one held goes into
        `ex.slots` (released when the request ends), and one refused refuses the request."""
        lease_s = (ex.provider.timeout_ms / 1000 if ex.provider else 600) + _LEASE_MARGIN_S
        limited = [
            (rule, rule.concurrent_streams, bucket_key(rule, subject) + "/streams")
            for rule in rules
            if rule.concurrent_streams is not None
        ]
        ex.slot_holder = holder = f"{_holder_prefix}-{next(_holders)}"
        held = await asyncio.gather(*(self._store.acquire(key, holder, limit, lease_s) for _, limit, key in limited))
        for (rule, _, key), granted in zip(limited, held, strict=True):
            labelled(LIMIT_DECISIONS, rule.name, "streams", "allow" if granted else "deny").inc()
            if granted:
                ex.slots.append(key)
        for (rule, limit, _), granted in zip(limited, held, strict=True):
            if not granted:
                raise GatewayError(
                    "rate_limit",
                    f"rate limit {rule.name!r}: at most {limit} streams at once",
                    code="rate_limit_exceeded",
                    headers=tuple(retry_headers(1)),
                )

    def response_headers(self, ex: Exchange, reply: PhaseReply, headers: dict[str, str]) -> None:
        reply.set_headers += ex.limit_headers

    def finish(self, ex: Exchange) -> None:
        for key in ex.slots:
            background.spawn("limits", self._store.release(key, ex.slot_holder))
        if not ex.reserved:
            return
        used = tokens_used(ex)
        for take in ex.reserved:
            if used != take.cost:
                background.spawn("limits", self._store.settle(take.key, take.cost, used, take.limit, take.window_s))


async def _outcome(slots: asyncio.Future[None] | None) -> None:
    """Let the slots' request finish before the request is refused: what it holds is then known."""
    if slots is not None:
        with contextlib.suppress(GatewayError, StoreError):
            await slots


def tokens_used(ex: Exchange) -> int:
    """What the request really cost: the provider's count, else an estimate from what was seen."""
    if ex.cache_status == "HIT":
        return 0  # answered without a provider
    if ex.usage is not None:
        return ex.usage.input_tokens + ex.usage.output_tokens
    if (assembler := ex.assembler) is not None:  # a stream that ended before its usage (cancelled, cut)
        output = assembler.estimated_output_tokens()
        seen = assembler.usage  # the count so far, when the provider sends one as it goes (Anthropic, Gemini)
        if seen is None or seen.input_tokens <= 0:
            return ex.input_estimate + output
        return seen.input_tokens + max(output, seen.output_tokens)
    if ex.status < 400:  # answered, or the client hung up before any answer (status 0): the prompt went out
        return ex.input_estimate
    return 0  # refused or failed: nothing was generated


def _takes(rules: list[LimitRule], subject: Subject, reserve: int) -> tuple[list[Take], list[tuple[LimitRule, str]]]:
    takes: list[Take] = []
    kinds: list[tuple[LimitRule, str]] = []
    for rule in rules:
        key = bucket_key(rule, subject)
        if rule.requests is not None:
            takes.append(Take(key + "/requests", 1, rule.requests, rule.window_s))
            kinds.append((rule, "requests"))
        if rule.tokens is not None:
            takes.append(Take(key + "/tokens", within_bucket(reserve, rule.tokens), rule.tokens, rule.window_s))
            kinds.append((rule, "tokens"))
    return takes, kinds


def _headers(kinds: list[tuple[LimitRule, str]], decisions: list[Decision]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for kind in ("requests", "tokens"):
        decision = tightest([d for (_, k), d in zip(kinds, decisions, strict=True) if k == kind])
        if decision is not None:
            headers += limit_headers(kind, decision)
    return headers
