"""Read the gateway's Prometheus metrics in tests."""

from __future__ import annotations

import httpx

from tests.support.stack import GatewayStack


def metric_sum(stack: GatewayStack, name: str, *labels: str) -> float:
    """The sum of every sample of `name` whose labels include each of `labels` (`key="value"`)."""
    total = 0.0
    for line in httpx.get(stack.admin_url + "/metrics").text.splitlines():
        if line.startswith(name + "{") and all(label in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total
