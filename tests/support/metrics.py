"""Read the gateway's Prometheus metrics in tests."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.stack import GatewayStack
from tests.support.wait import wait_until


def samples(stack: GatewayStack | str, name: str) -> list[Sample]:
    """Every sample named `name` (a histogram's are `name_bucket`, `name_sum`, `name_count`);
    `stack` may be the admin server's URL, for a gateway started otherwise."""
    admin_url = stack if isinstance(stack, str) else stack.admin_url
    text = httpx.get(admin_url + "/metrics").text
    return [
        sample for family in text_string_to_metric_families(text) for sample in family.samples if sample.name == name
    ]


def metric_sum(stack: GatewayStack | str, name: str, *labels: str) -> float:
    """The sum of every sample of `name` whose labels include each of `labels` (`key="value"`, exactly)."""
    wanted = [_pair(label) for label in labels]
    return sum(sample.value for sample in samples(stack, name) if all(sample.labels.get(k) == v for k, v in wanted))


def settled(stack: GatewayStack) -> bool:
    """No request is inside the ext_proc, and every store write the finished ones made is done.

    A request's settles, slot releases, cache fill, breaker outcome, metrics and access line are
    all made before its stream is counted out of `gateway_active_streams`, and its store writes
    are counted in `gateway_store_pending_writes` from then until they are done."""
    text = httpx.get(stack.admin_url + "/metrics").text
    busy = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("gateway_active_streams", "gateway_store_pending_writes")
    ]
    return not any(busy)


def wait_settled(stack: GatewayStack, timeout: float = 10) -> None:
    """Until the requests made so far are finished in the ext_proc and their store writes done."""
    assert wait_until(lambda: settled(stack), timeout), httpx.get(stack.admin_url + "/metrics").text[-3000:]


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


def pending_writes_here() -> float:
    """Store writes this test process has made after an answer and not done yet (a stage driven alone)."""
    return REGISTRY.get_sample_value("gateway_store_pending_writes") or 0.0
