"""xds/render_pool.py: a pooled route as one cluster of its providers, the upstream filters each
attempt runs through, and the route's retry policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.contract import ATTEMPT_PROVIDER_HEADER, INTERNAL_PREFIX
from extproc.providers import kind_of
from extproc.xds.render_pool import (
    HTTP_OPTIONS_KEY,
    pool_cluster,
    pool_members,
    pool_route,
    strip_internal_headers,
    upstream_cluster,
)

CONFIG = """
providers:
  - {name: oa, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: an, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
  - {name: gm, kind: gemini, base_url: "http://127.0.0.1:9", api_key_env: K}
  - {name: az, kind: openai, base_url: "https://r.openai.azure.com", api_key_env: K, azure: {api_version: "2024-10-21"}}
  - {name: local, kind: openai-compatible, base_url: "http://127.0.0.2:8000/v1"}
routes:
  - name: chat
    model: "*"
    pool:
      - {provider: az, weight: 2}
      - {provider: oa}
      - {provider: an, priority: 1}
      - {provider: gm, priority: 2}
      - {provider: local, priority: 2}
    retry: {attempts: 2, retry_on: [reset, connect-failure]}
"""


def config() -> GatewayConfig:
    return load_text(CONFIG, {"K": "sk-secret"}, Path("."))


def filters_of(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    return cluster["typed_extension_protocol_options"][HTTP_OPTIONS_KEY]["http_filters"]


def test_members_come_in_the_route_order_with_their_weight_and_priority() -> None:
    loaded = config()
    members = [
        (provider.name, weight, priority) for provider, weight, priority in pool_members(loaded, loaded.routes[0])
    ]
    assert members == [("az", 2, 0), ("oa", 1, 0), ("an", 1, 1), ("gm", 1, 2), ("local", 1, 2)]


def test_an_earlier_attempts_credential_is_removed_whichever_kind_sent_it(tmp_path: Path) -> None:
    loaded = config()
    forget = filters_of(pool_cluster(loaded, loaded.routes[0], tmp_path, None))[0]
    assert forget["name"] == "forget-earlier-attempt"
    removed = {mutation["remove"] for mutation in forget["typed_config"]["mutations"]["request_mutations"]}
    for provider, _, _ in pool_members(loaded, loaded.routes[0]):
        credential = kind_of(provider).credential
        assert credential is None or credential.header in removed, provider.name


def test_each_credential_injector_runs_only_on_attempts_to_its_own_provider(tmp_path: Path) -> None:
    loaded = config()
    filters = filters_of(pool_cluster(loaded, loaded.routes[0], tmp_path, None))
    injectors = {f["name"]: f["typed_config"] for f in filters if f["name"].startswith("credential-")}
    assert set(injectors) == {"credential-az", "credential-oa", "credential-an", "credential-gm"}  # local has no key
    for name, typed in injectors.items():
        (matcher,) = typed["xds_matcher"]["matcher_list"]["matchers"]
        skipped_unless = matcher["predicate"]["not_matcher"]["single_predicate"]
        assert skipped_unless["input"]["typed_config"]["header_name"] == ATTEMPT_PROVIDER_HEADER
        assert skipped_unless["value_match"] == {"exact": name.removeprefix("credential-")}
    assert filters[-2]["name"] == "attempt-provider-off"  # the name never leaves for the provider
    assert "sk-secret" not in json.dumps(filters)


def test_endpoints_are_grouped_by_priority_and_only_https_members_get_tls(tmp_path: Path) -> None:
    loaded = config()
    cluster = pool_cluster(loaded, loaded.routes[0], tmp_path, None)
    levels = cluster["load_assignment"]["endpoints"]
    assert [(level["priority"], len(level["lb_endpoints"])) for level in levels] == [(0, 2), (1, 1), (2, 2)]
    assert [match["name"] for match in cluster["transport_socket_matches"]] == ["az", "oa", "an"]
    assert cluster["type"] == "STRICT_DNS"
    assert cluster["outlier_detection"]["consecutive_5xx"] == 5  # the defaults when the route sets none
    assert "circuit_breakers" not in cluster


def test_a_cluster_of_addresses_only_needs_no_dns() -> None:
    loaded = config()
    assert upstream_cluster(loaded, "x", ["127.0.0.1", "::1"], [])["type"] == "STATIC"
    assert upstream_cluster(loaded, "x", ["127.0.0.1", "api.openai.com"], [])["type"] == "STRICT_DNS"
    assert upstream_cluster(loaded, "x", ["127.0.0.1"], [])["per_connection_buffer_limit_bytes"] == (
        loaded.envoy.max_request_bytes
    )


def test_the_route_retries_on_what_the_pool_names_without_status_codes_unless_429() -> None:
    loaded = config()
    action = pool_route(loaded, loaded.routes[0])
    retry = action["retry_policy"]
    assert retry["retry_on"] == "connect-failure,reset"
    assert retry["num_retries"] == 2
    assert "retriable_status_codes" not in retry
    assert retry["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert action["cluster"] == loaded.routes[0].cluster


def test_internal_and_envoy_headers_are_cut_by_prefix_before_a_request_leaves() -> None:
    mutations = strip_internal_headers()["typed_config"]["mutations"]["request_mutations"]
    prefixes = [mutation["remove_on_match"]["key_matcher"]["prefix"] for mutation in mutations]
    assert prefixes == [INTERNAL_PREFIX, "x-envoy-"]
