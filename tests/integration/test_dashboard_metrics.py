"""Every metric the shipped dashboard (deploy/grafana/gateway.json) and alert rules
(deploy/prometheus/alerts.yml) read is one a running gateway exports: the ext_proc's /metrics and
Envoy's /stats/prometheus, scraped after a request went through the real Envoy to a provider and
to a pool, as Prometheus scrapes them (deploy/prometheus.yml)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROVIDER_ENV
from tests.fakes.providers import FakeOpenAI
from tests.integration.sdk_outcomes import openai_client
from tests.support.metrics import wait_settled
from tests.support.observability import metric_names_used
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

_SAMPLE_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


def exported_names(text: str) -> set[str]:
    """The series names a Prometheus scrape of `text` (the text exposition format) stores, read as
    written: prometheus_client's parser would add `_total` to Envoy's counters, which Prometheus does
    not. A family declared with no series yet (labels not seen yet) counts with the names its first
    series will have."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.update(name + suffix for suffix in _SAMPLE_SUFFIXES.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI) -> Iterator[GatewayStack]:
    openai_url = fake_openai.base_url + "/v1"
    config = {
        "extproc": {"workers": 1},
        "breakers": {},  # gateway_breaker_state has a series per provider only with breakers on
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": openai_url, "api_key_env": "TEST_OPENAI_KEY"},
            {"name": "backup", "kind": "openai", "base_url": openai_url, "api_key_env": "TEST_OPENAI_KEY"},
        ],
        "routes": [
            {"name": "chat", "model": "gpt-*", "provider": "openai"},
            {
                "name": "pooled",
                "model": "pool-*",
                "pool": [{"provider": "openai"}, {"provider": "backup", "priority": 1}],
            },
        ],
    }
    stack = GatewayStack(Path(tmp_path_factory.mktemp("dashboard")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def test_every_metric_the_dashboard_and_alerts_read_is_exported(stack: GatewayStack) -> None:
    client = openai_client(stack.base_url)
    for model in ("gpt-4o", "pool-4o"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    wait_settled(stack)
    extproc = exported_names(httpx.get(stack.admin_url + "/metrics", timeout=10).text)
    envoy = exported_names(httpx.get(stack.envoy_admin_url + "/stats/prometheus", timeout=10).text)
    used = metric_names_used()

    missing = sorted(name for name in used if name not in extproc | envoy)
    assert missing == [], f"read by the dashboard or alert rules, exported by neither: {missing}"
    # Both halves are read: the ext_proc's families and Envoy's upstream stats of the provider clusters.
    assert {"gateway_requests_total", "gen_ai_server_time_to_first_token_seconds_bucket"} <= used & extproc
    assert {"envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_time_bucket"} <= used & envoy
