"""What /spend answers: every budget's buckets in their current windows, read from the store.

A budget's buckets are the ones the limit rule has charged (`<rule>/<dimension>=<value>.../usd`, a
calendar window's with `@<day or month>`), so on Redis the report covers every instance. Spend per
client, tenant, provider, route and model is summed from the buckets of the budgets counted per that
dimension, per window: budgets that match the same requests over one window count them once each.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from extproc.budgets.charges import show_used, to_micro, to_usd
from extproc.budgets.windows import calendar_window
from extproc.config.traffic import LimitRule, LimitSettings
from extproc.store.base import Store

MAX_BUCKETS = 1000  # per budget: a report of bounded size and bounded store work


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _values(key: str, rule: str) -> dict[str, str]:
    """{client: alice} of `rule/client=alice/usd@2026-12` (values are quoted in the key)."""
    middle = key[len(rule) + 1 :].rsplit("/", 1)[0] if key.count("/") > 1 else ""
    return dict(
        (name, unquote(value)) for name, _, value in (part.partition("=") for part in middle.split("/") if part)
    )


async def _budget(
    rule: LimitRule, store: Store, now: float
) -> tuple[dict[str, Any], str, list[tuple[dict[str, str], float]]]:
    assert rule.usd is not None
    limit = to_micro(rule.usd)
    if rule.window is not None:
        window = calendar_window(rule.window, now)
        suffix, window_s, refills, name = "/usd@" + window.label, window.left_s(now), False, str(rule.window)
        described: dict[str, Any] = {"calendar": rule.window, "start": _iso(window.start), "end": _iso(window.end)}
    else:
        suffix, window_s, refills, name = "/usd", rule.window_s, True, f"{rule.window_s:g}s"
        described = {"rolling_s": rule.window_s}
    keys = [key for key in await store.bucket_keys(rule.name + "/", MAX_BUCKETS) if key.endswith(suffix)]
    levels = await store.levels(keys, limit, window_s, refills)
    buckets: list[dict[str, Any]] = []
    spent_by: list[tuple[dict[str, str], float]] = []
    for key, level in sorted(zip(keys, levels, strict=True)):
        values = _values(key, rule.name)
        spent = max(0.0, limit - level)
        show_used(rule.name, "/".join(f"{k}={v}" for k, v in values.items()), limit, level)
        buckets.append(
            {
                "for": values,
                "spent_usd": to_usd(spent),
                "remaining_usd": to_usd(max(0.0, level)),
                "used_ratio": round(spent / limit, 6),
            }
        )
        spent_by.append((values, spent))
    report = {"name": rule.name, "key": list(rule.key), "limit_usd": rule.usd, "window": described, "buckets": buckets}
    return report, name, spent_by


async def spend_report(limits: LimitSettings, store: Store, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    budgets: list[dict[str, Any]] = []
    spend: dict[str, dict[str, dict[str, float]]] = {}
    for rule in limits.rules:
        if rule.usd is None:
            continue
        report, window, spent_by = await _budget(rule, store, now)
        budgets.append(report)
        for values, spent in spent_by:
            for dimension, value in values.items():
                per_window = spend.setdefault(dimension, {}).setdefault(window, {})
                per_window[value] = per_window.get(value, 0.0) + spent
    totals = {
        dimension: {
            window: {value: to_usd(micro) for value, micro in sorted(values.items())}
            for window, values in windows.items()
        }
        for dimension, windows in sorted(spend.items())
    }
    return {"at": _iso(now), "budgets": budgets, "spend": totals}
