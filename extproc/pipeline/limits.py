"""Stage: rate limits in requests, tokens, USD and concurrent streams, per the config's rules.

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

A budget (`usd`) is charged the same way in micro-dollars (extproc.budgets.charges): the worst case
before, the real cost after. A rule with a calendar `window` counts in a bucket named for the
current UTC day or month, which never refills: what is spent stays spent until the window ends.
A model with no price would cost a budget nothing: under a budget it is refused (a 403), unless
the gateway answers it itself or its name is a deployment `azure.deployments` does not list (the
answer names the model). A pool is priced by its dearest member: any of them may answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time

from extproc.budgets import charges as budgets
from extproc.budgets.windows import WindowClock
from extproc.config.traffic import LimitRule
from extproc.errors import GatewayError
from extproc.formats.canonical import ChatRequest
from extproc.observe.metrics import LIMIT_DECISIONS, labelled
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.spend import asked_model, deployment_model, priced_kind, request_cost
from extproc.pipeline.stage import Stage
from extproc.pipeline.usage import usage_seen
from extproc.providers import kind_of
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
_windows = WindowClock()


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
        budget = None if counting else next((rule for rule in rules if rule.usd is not None), None)
        takes, kinds = _takes(rules, subject, reserve, _usd_reservation(ex, budget) if budget else 0)
        streams = ex.stream and any(rule.concurrent_streams is not None for rule in rules)
        slots = None  # on Redis a stream's slots are asked for beside its take: both leave in one round trip
        if streams and self._store.joins_calls:
            slots = asyncio.ensure_future(self._hold_stream_slots(ex, rules, subject))
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
        refused = [(*kinds[i], d) for i, d in enumerate(decisions) if not d.allowed]
        if refused:  # all or nothing: the store took none
            await _outcome(slots)
            raise _refusal(refused, ex.limit_headers)
        ex.reserved = [take for take, (_, kind) in zip(takes, kinds, strict=True) if kind == "tokens"]
        ex.reserved_usd = [take for take, (_, kind) in zip(takes, kinds, strict=True) if kind == "usd"]
        if ex.reserved_usd:
            _show_budgets(takes, kinds, decisions)
        if streams:
            try:
                await (slots if slots is not None else self._hold_stream_slots(ex, rules, subject))
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
        if len(limited) == 1:  # the usual case: no gather to make
            _, limit, key = limited[0]
            held = [await self._store.acquire(key, holder, limit, lease_s)]
        else:
            held = await asyncio.gather(
                *(self._store.acquire(key, holder, limit, lease_s) for _, limit, key in limited)
            )
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
        if not ex.reserved and not ex.reserved_usd:
            return
        usage, known = usage_seen(ex)
        used = usage.input_tokens + usage.output_tokens
        for take in ex.reserved:
            if used != take.cost:
                background.spawn(
                    "limits", self._store.settle(take.key, take.cost, used, take.limit, take.window_s, take.refills)
                )
        if ex.reserved_usd:
            self._settle_usd(ex, known)

    def _settle_usd(self, ex: Exchange, known: bool) -> None:
        """Each budget pays the request's real cost: the one the access line and the metrics show."""
        usd = request_cost(ex).usd
        for take in ex.reserved_usd:
            cost = budgets.charge(usd, known, take.cost)
            if cost != take.cost:
                background.spawn(
                    "limits", self._store.settle(take.key, take.cost, cost, take.limit, take.window_s, take.refills)
                )


async def _outcome(slots: asyncio.Future[None] | None) -> None:
    """Let the slots' request finish before the request is refused: what it holds is then known."""
    if slots is not None:
        with contextlib.suppress(GatewayError, StoreError):
            await slots


def _usd_reservation(ex: Exchange, budget: LimitRule) -> int:
    """The request's worst case in micro-USD (only worked out when `budget`, the first of the budgets
    that apply, does): a pool's is its dearest member's, since any of them may answer. A GatewayError
    when a model that may answer has no price the budget could bound it by."""
    provider, target = ex.provider, ex.target
    if provider is None:
        return 0
    request = ex.request
    max_tokens = request.max_tokens if isinstance(request, ChatRequest) and request.max_tokens else 0
    if target is not None and target.pooled:
        config = ex.snapshot.config
        members = ((config.provider(m.provider), target.model_for(m.provider, ex.model)) for m in target.pool)
        answerers = [(member, model) for member, model in members if member is not None]
    else:
        answerers = [(provider, asked_model(ex))]
    worst = 0.0
    for answerer, model in answerers:
        listed = deployment_model(answerer, model)
        priced_as = listed or model
        cost = budgets.worst_case(ex.snapshot.prices, priced_kind(answerer), priced_as, ex.input_estimate, max_tokens)
        record = kind_of(answerer)
        unlisted_deployment = record.names_deployments and listed is None
        if not (cost.priced or record.answers_locally or unlisted_deployment):
            raise GatewayError(
                "permission",
                f"model {priced_as!r} of provider {answerer.name!r} has no price, so budget {budget.name!r} cannot "
                "bound what it costs: an operator can price it under `prices:` in gateway.yaml (0 if it is free)",
                code="model_not_priced",
            )
        worst = max(worst, cost.usd)
    return budgets.to_micro(worst)


def _refusal(refused: list[tuple[LimitRule, str, Decision]], limit_headers: list[tuple[str, str]]) -> GatewayError:
    """A spent budget outranks a rate limit: waiting for the rate limit alone would not get through."""
    spent = [item for item in refused if item[1] == "usd"]
    rule, _, decision = max(spent or refused, key=lambda item: item[2].retry_after_s)
    headers = (*retry_headers(decision.retry_after_s), *limit_headers)
    if spent:
        return GatewayError(
            "insufficient_quota",
            f"budget {rule.name!r} is spent for its window; retry in {decision.retry_after_s:.0f}s",
            code="insufficient_quota",
            headers=headers,
        )
    return GatewayError(
        "rate_limit",
        f"rate limit {rule.name!r} reached; retry in {decision.retry_after_s:.1f}s",
        code="rate_limit_exceeded",
        headers=headers,
    )


def _show_budgets(takes: list[Take], kinds: list[tuple[LimitRule, str]], decisions: list[Decision]) -> None:
    for take, (rule, kind), decision in zip(takes, kinds, decisions, strict=True):
        if kind == "usd":
            budgets.show_used(rule.name, bucket_values(take.key), decision.limit, decision.remaining)


def _takes(
    rules: list[LimitRule], subject: Subject, reserve: int, usd_reserve: int
) -> tuple[list[Take], list[tuple[LimitRule, str]]]:
    takes: list[Take] = []
    kinds: list[tuple[LimitRule, str]] = []
    now = 0.0
    for rule in rules:
        key = bucket_key(rule, subject)
        window_s, refills, named = rule.window_s, True, ""
        if rule.window is not None:  # a calendar window: its own bucket, for the time it has left
            now = now or time.time()
            window = _windows.at(rule.window, now)
            window_s, refills, named = window.left_s(now), False, "@" + window.label
        if rule.requests is not None:
            takes.append(Take(key + "/requests" + named, 1, rule.requests, window_s, refills))
            kinds.append((rule, "requests"))
        if rule.tokens is not None:
            cost = within_bucket(reserve, rule.tokens)
            takes.append(Take(key + "/tokens" + named, cost, rule.tokens, window_s, refills))
            kinds.append((rule, "tokens"))
        if rule.usd is not None:
            limit = budgets.to_micro(rule.usd)
            takes.append(Take(key + "/usd" + named, within_bucket(usd_reserve, limit), limit, window_s, refills))
            kinds.append((rule, "usd"))
    return takes, kinds


def bucket_values(key: str) -> str:
    """`client=alice` of `rule/client=alice/usd@2026-12`: what a bucket is counted per (empty: one bucket)."""
    return key.split("/", 1)[1].rsplit("/", 1)[0] if key.count("/") > 1 else ""


def _headers(kinds: list[tuple[LimitRule, str]], decisions: list[Decision]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for kind in ("requests", "tokens"):
        decision = tightest([d for (_, k), d in zip(kinds, decisions, strict=True) if k == kind])
        if decision is not None:
            headers += limit_headers(kind, decision)
    return headers
