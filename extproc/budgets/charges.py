"""Budgets in USD: the limit rules' `usd`, kept in the store as whole micro-dollars.

A request reserves its worst case before it goes (the prompt estimate at the input price plus
`max_tokens` at the output price, `PriceTable.reservation`) and settles at its real cost when it
ends, by the same rules as tokens: the charge is never below 0, and without the provider's own
usage (a cut stream, a client that hung up) it is the estimate, never more than what was reserved.
The provider's usage is charged in full, even above the reservation (the bucket goes into debt).
"""

from __future__ import annotations

import math

from extproc.observe.metrics import BUDGET_USED, labelled
from extproc.spend.prices import Cost, PriceTable

MICRO = 1_000_000  # store units per USD
_MAX_GAUGES = 1000  # budget buckets with a series of their own (a bucket may be keyed on a client's model)
_gauged: set[tuple[str, str]] = set()


def to_micro(usd: float) -> int:
    """USD as store units; a reservation or a cost is rounded up, so a budget is never under-charged."""
    return max(0, math.ceil(usd * MICRO - 1e-6))


def to_usd(micro: float) -> float:
    return round(micro / MICRO, 6)


def worst_case(table: PriceTable, kind: str, model: str, prompt_tokens: int, max_tokens: int) -> Cost:
    """A request's reservation in USD, and whether the model is priced at all (one lookup)."""
    return table.reservation(kind, model, max(prompt_tokens, 0), max(max_tokens, 0))


def reservation(table: PriceTable, kind: str, model: str, prompt_tokens: int, max_tokens: int) -> int:
    return to_micro(worst_case(table, kind, model, prompt_tokens, max_tokens).usd)


def charge(usd: float, known: bool, reserved: int) -> int:
    """What a request pays in all, in micro-dollars: its cost; when that cost is from an estimate
    (`known` False: no provider count), never more than it reserved."""
    cost = to_micro(usd)
    return cost if known else min(cost, max(reserved, 0))


def show_used(rule: str, bucket: str, limit: int, remaining: float) -> None:
    """gateway_budget_used_ratio of a bucket: scope is the rule, name its values (`*` for one bucket)."""
    series = (rule, bucket or "*")
    if series not in _gauged:
        if len(_gauged) >= _MAX_GAUGES:
            return
        _gauged.add(series)
    labelled(BUDGET_USED, *series).set(max(0.0, limit - remaining) / limit)
