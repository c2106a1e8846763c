"""Route rules (first match wins), pooled routes in config, and how a pool is rendered for Envoy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.config.load import ConfigError, load_text
from extproc.config.model import GatewayConfig
from extproc.routing import Facts, Router
from extproc.xds.render import render_clusters, render_listeners

PROVIDERS = """
providers:
  - {name: oa, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: an, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
  - {name: gm, kind: gemini, base_url: "http://127.0.0.1:9", api_key_env: K}
  - {name: mock, kind: mock}
"""


def load(routes: str, extra: str = "") -> GatewayConfig:
    return load_text(PROVIDERS + "routes:\n" + routes + extra, {"K": "secret"}, Path("."))


def problems(routes: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(routes)
    return raised.value.problems


def facts(headers: dict[str, str] | None = None, api: str = "openai", client: str = "c", tenant: str = "t") -> Facts:
    return Facts(headers or {}, api, "/v1/chat/completions", client, tenant)


RULES = """
  - {name: team-a, model: "gpt-*", provider: an, match: {headers: [{name: X-Team, exact: a}]}}
  - {name: beta, model: "gpt-*", provider: gm, match: {headers: [{name: x-beta, present: true}]}}
  - {name: versioned, model: "gpt-*", provider: gm, match: {headers: [{name: x-version, regex: "v[0-9]+"}]}}
  - {name: acme, model: "*", provider: an, match: {tenants: [acme]}}
  - {name: from-claude-sdk, model: "*", provider: an, match: {apis: [anthropic]}}
  - {name: gpt, model: "gpt-*", provider: oa}
  - {name: default, model: "*", provider: mock}
"""


def test_the_first_rule_whose_model_and_conditions_hold_wins() -> None:
    router = Router(load(RULES))

    def route(model: str, **kwargs: object) -> str:
        target = router.resolve(model, facts(**kwargs))  # type: ignore[arg-type]
        assert target is not None
        return target.route

    assert route("gpt-4o", headers={"x-team": "a"}) == "team-a"
    assert route("gpt-4o", headers={"x-team": "b"}) == "gpt"
    assert route("gpt-4o", headers={"x-beta": ""}) == "beta"
    assert route("gpt-4o", headers={"x-version": "v2"}) == "versioned"
    assert route("gpt-4o", headers={"x-version": "v2-beta"}) == "gpt"  # a regex matches the whole value
    assert route("gpt-4o", tenant="acme") == "acme"
    assert route("claude-x", api="anthropic") == "from-claude-sdk"
    assert route("gpt-4o") == "gpt"
    assert route("anything") == "default"


def test_rules_on_clients_or_tenants_are_known_to_need_the_identity() -> None:
    assert Router(load(RULES)).needs_identity
    assert not Router(load('  - {model: "*", provider: oa}\n')).needs_identity


JWT = "jwt: {issuer: i, audience: a, jwks_url: 'https://i.example/jwks.json'}\n"
AUTH_RULES = """
  - {name: vip, model: "gpt-*", provider: oa, match: {tenants: ["jwt:acme"]}}
  - {name: jwt-only, model: "o3-*", provider: oa, auth: jwt}
  - {name: public, model: "open-*", provider: mock, auth: none, match: {headers: [{name: x-public, present: true}]}}
  - {name: claude-open, model: "*", provider: an, auth: none, match: {apis: [anthropic]}}
  - {name: keyed, model: "*", provider: mock, auth: any}
"""


def test_the_methods_before_the_body_are_those_of_every_rule_the_headers_leave_possible() -> None:
    router = Router(load(AUTH_RULES, JWT))
    # The vip rule (no own method: the listener's) cannot be ruled out before the caller is known.
    assert router.methods_before_body("api_key", facts()) == {"api_key", "jwt", "any"}
    assert router.methods_before_body("api_key", facts({"x-public": "1"})) == {"api_key", "jwt", "none", "any"}
    assert router.methods_before_body("jwt", facts(api="anthropic")) == {"jwt", "none", "any"}


def test_a_provider_listing_models_adds_the_listeners_method_before_the_body() -> None:
    only_jwt = '  - {model: "o3-*", provider: oa, auth: jwt}\n'
    assert Router(load(only_jwt, JWT)).methods_before_body("none", facts()) == {"jwt"}
    listed = PROVIDERS.replace("{name: mock, kind: mock}", "{name: mock, kind: mock, models: [mock-1]}")
    config = load_text(listed + "routes:\n" + only_jwt + JWT, {"K": "secret"}, Path("."))
    assert Router(config).methods_before_body("none", facts()) == {"jwt", "none"}


def test_a_pool_needs_a_name_real_providers_and_at_least_two_members() -> None:
    assert problems('  - {model: "*", pool: [{provider: oa}, {provider: an}]}\n') == [
        "routes[0].name: a route with a pool needs a name (a-z, 0-9, _ and -)"
    ]
    assert problems('  - {name: p, model: "*", pool: [{provider: oa}, {provider: mock}]}\n') == [
        "routes[0].pool[1].provider: the mock provider answers locally and cannot be pooled"
    ]
    assert problems('  - {name: p, model: "*", pool: [{provider: oa}, {provider: nope}]}\n') == [
        "routes[0].pool[1].provider: no provider named 'nope'"
    ]
    assert problems('  - {name: p, model: "*", pool: [{provider: oa}]}\n')  # one member is not a pool
    assert problems('  - {name: p, model: "*", provider: oa, pool: [{provider: oa}, {provider: an}]}\n')


def test_pool_settings_on_a_single_provider_route_are_refused_not_ignored() -> None:
    assert problems('  - {model: "*", provider: oa, retry: {attempts: 3}, timeouts: {total_ms: 5000}}\n') == [
        "routes[0].retry: applies to a pool only; a single provider's timeouts are set on the provider",
        "routes[0].timeouts: applies to a pool only; a single provider's timeouts are set on the provider",
    ]
    assert problems('  - {model: "*", provider: oa, circuit_breakers: {max_requests: 5}}\n')
    assert problems('  - {model: "*", provider: oa, outlier_detection: {consecutive_5xx: 3}}\n')


def test_header_conditions_take_exactly_one_test_and_a_valid_regex() -> None:
    assert problems('  - {model: "*", provider: oa, match: {headers: [{name: x, exact: a, present: true}]}}\n') == [
        "routes[0].match.headers[0]: give exactly one of exact, regex, present"
    ]
    (problem,) = problems('  - {model: "*", provider: oa, match: {headers: [{name: x, regex: "("}]}}\n')
    assert problem.startswith("routes[0].match.headers[0].regex:")


POOL = """
  - name: chat
    model: "gpt-*"
    pool:
      - {provider: oa, weight: 3}
      - {provider: an, weight: 1}
      - {provider: gm, priority: 1, model: gemini-2.5-flash}
    retry: {attempts: 3, retry_on: [5xx, "429"]}
    timeouts: {total_ms: 60000, first_byte_ms: 5000, idle_ms: 20000}
    outlier_detection: {consecutive_5xx: 3}
    circuit_breakers: {max_requests: 50}
"""


def test_a_pool_is_one_cluster_of_its_providers_by_priority_and_weight(tmp_path: Path) -> None:
    config = load(POOL)
    (cluster,) = [c for c in render_clusters(config, tmp_path) if c["name"] == "pool_chat"]
    levels = cluster["load_assignment"]["endpoints"]
    assert [level["priority"] for level in levels] == [0, 1]
    first = levels[0]["lb_endpoints"]
    assert [
        (e["metadata"]["filter_metadata"]["llm_gateway"]["provider"], e["load_balancing_weight"]) for e in first
    ] == [
        ("oa", 3),
        ("an", 1),
    ]
    assert {m["name"] for m in cluster["transport_socket_matches"]} == {"oa", "an"}  # gm is plain http
    sni = {m["name"]: m["transport_socket"]["typed_config"]["sni"] for m in cluster["transport_socket_matches"]}
    assert sni == {"oa": "api.openai.com", "an": "api.anthropic.com"}
    assert cluster["outlier_detection"]["consecutive_5xx"] == 3
    assert cluster["circuit_breakers"]["thresholds"][0]["max_requests"] == 50
    filters = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    names = [f["name"] for f in filters["http_filters"]]
    assert names == [
        "forget-earlier-attempt",
        "envoy.filters.http.ext_proc",
        "credential-oa",
        "credential-an",
        "credential-gm",
        "attempt-provider-off",
        "envoy.filters.http.upstream_codec",
    ]
    text = json.dumps(filters)
    assert "secret" not in text  # keys stay in the SDS files


def test_a_pools_route_retries_on_other_providers_and_priorities() -> None:
    config = load(POOL)
    hcm = render_listeners(config, Path("secrets"))[0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    (pool,) = [r for r in routes if r["name"] == "pool_chat"]
    retry = pool["route"]["retry_policy"]
    assert retry["num_retries"] == 3
    assert retry["retry_on"] == "5xx,retriable-status-codes" and retry["retriable_status_codes"] == [429]
    assert retry["per_try_timeout"] == "5s" and retry["per_try_idle_timeout"] == "20s"
    assert retry["retry_priority"]["name"] == "envoy.retry_priorities.previous_priorities"
    assert pool["route"]["timeout"] == "60s"
    assert pool["route"]["idle_timeout"] == "21s"  # every attempt keeps its first-byte time


def test_single_provider_routes_pay_nothing_for_pools(tmp_path: Path) -> None:
    config = load('  - {model: "*", provider: oa}\n')
    (cluster,) = [c for c in render_clusters(config, tmp_path) if c["name"] == "provider_oa"]
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    # No upstream pass at all: one gRPC stream per request; internal headers are cut by Envoy itself.
    names = [f["name"] for f in options["http_filters"]]
    assert names == [
        "internal-headers-off",
        "envoy.filters.http.credential_injector",
        "envoy.filters.http.upstream_codec",
    ]
    assert not [c for c in render_clusters(config, tmp_path) if c["name"].startswith("pool_")]


def test_a_private_ca_is_read_through_one_sds_secret_by_the_provider_and_its_pools(tmp_path: Path) -> None:
    from extproc.xds.render import write_clusters
    from extproc.xds.render_credentials import secrets_dir

    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    private = (
        '  - {name: pv, kind: openai, base_url: "https://llm.internal/v1", api_key_env: K, tls: {ca_file: ca.pem}}\n'
    )
    routes = '  - {name: chat, model: "*", pool: [{provider: pv}, {provider: oa}]}\n'
    config = load_text(PROVIDERS + private + "routes:\n" + routes, {"K": "secret"}, tmp_path)
    write_clusters(config, tmp_path / "xds")
    clusters = {c["name"]: c for c in render_clusters(config, secrets_dir(tmp_path / "xds"))}
    (member,) = [m["transport_socket"] for m in clusters["pool_chat"]["transport_socket_matches"] if m["name"] == "pv"]
    for socket in (clusters["provider_pv"]["transport_socket"], member):
        combined = socket["typed_config"]["common_tls_context"]["combined_validation_context"]
        assert combined["default_validation_context"]["match_typed_subject_alt_names"][0]["matcher"] == {
            "exact": "llm.internal"
        }
        assert combined["validation_context_sds_secret_config"]["name"] == "provider_ca_pv"
    written = (secrets_dir(tmp_path / "xds") / "provider_ca_pv.yaml").read_text()
    assert str(tmp_path / "ca.pem") in written and "watched_directory" in written
    public = clusters["provider_oa"]["transport_socket"]["typed_config"]["common_tls_context"]
    assert "trusted_ca" in public["validation_context"]  # the system's CAs, inline: no private CA to watch
