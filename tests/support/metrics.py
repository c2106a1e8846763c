"""Read the gateway's Prometheus metrics in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.stack import GatewayStack


def samples(stack: GatewayStack, name: str) -> list[Sample]:
    """Every sample named `name` (a histogram's are `name_bucket`, `name_sum`, `name_count`)."""
    text = httpx.get(stack.admin_url + "/metrics").text
    return [
        sample for family in text_string_to_metric_families(text) for sample in family.samples if sample.name == name
    ]


def metric_sum(stack: GatewayStack, name: str, *labels: str) -> float:
    """The sum of every sample of `name` whose labels include each of `labels` (`key="value"`, exactly)."""
    wanted = [_pair(label) for label in labels]
    return sum(sample.value for sample in samples(stack, name) if all(sample.labels.get(k) == v for k, v in wanted))


def _pair(label: str) -> tuple[str, str]:
    key, _, value = label.partition("=")
    return key, value.strip('"')


def served_per_worker(stack: GatewayStack) -> list[int]:
    """How many streams Envoy opened to each ext_proc endpoint (one per worker), from its cluster stats."""
    clusters = httpx.get(stack.envoy_admin_url + "/clusters", params={"format": "json"}).json()
    extproc = next(c for c in clusters["cluster_statuses"] if c["name"] == "extproc")
    return [
        next((int(s.get("value", 0)) for s in host["stats"] if s["name"] == "rq_total"), 0)
        for host in extproc["host_statuses"]
    ]
