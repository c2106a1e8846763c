"""A pooled route in Envoy: one cluster whose endpoints are the pool's providers, and the route's
retry policy, timeouts, outlier detection and circuit breakers.

Each endpoint carries its provider's name (metadata), weight and priority, and
its own TLS context (transport socket match: SNI and SAN per provider). Per
attempt, the upstream filters run in order: credential headers of an earlier
attempt are removed (measured: header changes made by upstream filters stay
on the request for the retry), the upstream pass renders the body for the
attempt's provider and names it in `x-gateway-attempt-provider`, the one
credential injector whose provider it names adds the key (the others skip,
via a matcher), and the name is removed before the request leaves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from extproc.config.model import GatewayConfig, Provider, Route
from extproc.config.route_model import OutlierDetection
from extproc.contract import ATTEMPT_PROVIDER_HEADER, INTERNAL_PREFIX, METADATA_NAMESPACE
from extproc.provider_kinds import AWS_SIGNING_HEADERS, CREDENTIAL_HEADERS
from extproc.xds.pool_timeouts import PoolTimeouts
from extproc.xds.render_aws_signing import signing_filter
from extproc.xds.render_credentials import credential_filter
from extproc.xds.render_filters import ext_proc_filter, ms
from extproc.xds.render_tls import is_ip, upstream_tls

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
HTTP_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
UPSTREAM_CODEC = {
    "name": "envoy.filters.http.upstream_codec",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"},
}
_MUTATION_TYPE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
_WITH_MATCHER_TYPE = "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher"
_HEADER_INPUT_TYPE = "type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput"
_SKIP_TYPE = "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"
_SOCKET_MATCH_KEY = "envoy.transport_socket_match"
_RETRY_ON = {"5xx": "5xx", "reset": "reset", "connect-failure": "connect-failure", "429": "retriable-status-codes"}
_OUTLIER_DEFAULTS = dataclasses.asdict(OutlierDetection())  # for the keys a route leaves out


def pool_members(config: GatewayConfig, route: Route) -> list[tuple[Provider, int, int]]:
    """(provider, weight, priority) per member."""
    members = []
    for member in route.pool:
        provider = config.provider(member.provider)
        assert provider is not None  # checked by config validation
        members.append((provider, member.weight, member.priority))
    return members


def pool_cluster(config: GatewayConfig, route: Route, keys_dir: Path, ca_secrets: Path | None) -> dict[str, Any]:
    members = pool_members(config, route)
    resilience = route.resilience
    by_priority: dict[int, list[dict[str, Any]]] = {}
    for provider, weight, priority in members:
        by_priority.setdefault(priority, []).append(_endpoint(provider, weight))
    credentials = [
        _only_for(provider, injector)
        for provider, _, _ in members
        if (injector := credential_filter(provider, keys_dir)) is not None
    ]
    signers = [
        _only_for(provider, signer, "signer")
        for provider, _, _ in members
        if (signer := signing_filter(provider)) is not None
    ]
    outlier = {**_OUTLIER_DEFAULTS, **resilience.outlier_detection}
    filters = [
        _remove_headers("forget-earlier-attempt", (*CREDENTIAL_HEADERS, *AWS_SIGNING_HEADERS)),
        ext_proc_filter(config, upstream=True),
        *credentials,
        *signers,  # after the upstream pass: the signature covers the body rendered for this attempt
        _remove_headers("attempt-provider-off", (ATTEMPT_PROVIDER_HEADER,)),
        UPSTREAM_CODEC,
    ]
    cluster = upstream_cluster(config, route.cluster, [p.host for p, _, _ in members], filters)
    cluster |= {
        "outlier_detection": {
            "consecutive_5xx": outlier["consecutive_5xx"],
            "interval": ms(outlier["interval_ms"]),
            "base_ejection_time": ms(outlier["base_ejection_ms"]),
            "max_ejection_percent": outlier["max_ejection_percent"],
        },
        "load_assignment": {
            "cluster_name": route.cluster,
            "endpoints": [{"priority": p, "lb_endpoints": by_priority[p]} for p in sorted(by_priority)],
        },
    }
    if resilience.circuit_breakers:
        cluster["circuit_breakers"] = {"thresholds": [{"priority": "DEFAULT", **resilience.circuit_breakers}]}
    matches = [
        {
            "name": provider.name,
            "match": {"provider": provider.name},
            "transport_socket": upstream_tls(provider, ca_secrets),
        }
        for provider, _, _ in members
        if provider.tls
    ]
    if matches:
        cluster["transport_socket_matches"] = matches
    return cluster


def upstream_cluster(
    config: GatewayConfig, name: str, hosts: list[str], http_filters: list[dict[str, Any]]
) -> dict[str, Any]:
    """What a provider's cluster and a pool's share: resolution, buffers, HTTP/1.1, the upstream filters."""
    return {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC" if all(is_ip(host) for host in hosts) else "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "per_connection_buffer_limit_bytes": config.envoy.max_request_bytes,
        "typed_extension_protocol_options": {
            HTTP_OPTIONS_KEY: {
                "@type": HTTP_OPTIONS_TYPE,
                "explicit_http_config": {"http_protocol_options": {}},
                "http_filters": http_filters,
            }
        },
    }


def pool_route(config: GatewayConfig, route: Route) -> dict[str, Any]:
    """The route action: Envoy's retries move to another provider (another priority once a
    priority failed), each attempt bounded by the first-byte and idle timeouts."""
    resilience = route.resilience
    retry: dict[str, Any] = {
        "retry_on": ",".join(sorted({_RETRY_ON[item] for item in resilience.retry_on})),
        "num_retries": resilience.retry_attempts,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 5,
        "retry_priority": {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3"
                ".PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        },
    }
    if "429" in resilience.retry_on:
        retry["retriable_status_codes"] = [429]
    timeouts = PoolTimeouts.for_route(config, route)
    if timeouts.first_byte_ms:
        retry["per_try_timeout"] = ms(timeouts.first_byte_ms)
    if timeouts.attempt_idle_ms:
        retry["per_try_idle_timeout"] = ms(timeouts.attempt_idle_ms)
    action = {"cluster": route.cluster, "timeout": ms(timeouts.total_ms), "retry_policy": retry}
    # Between two pieces of a stream: measured, the per-try idle timeout stops once the answer is
    # being forwarded, so the route's own idle timeout bounds a stream that stalls midway (it also
    # runs while attempts wait: see PoolTimeouts).
    action["idle_timeout"] = ms(timeouts.idle_ms)
    return action


def _endpoint(provider: Provider, weight: int) -> dict[str, Any]:
    return {
        "endpoint": {
            "address": {"socket_address": {"address": provider.host, "port_value": provider.port}},
            "hostname": provider.host,
        },
        "metadata": {
            "filter_metadata": {
                METADATA_NAMESPACE: {"provider": provider.name},
                _SOCKET_MATCH_KEY: {"provider": provider.name},
            }
        },
        "load_balancing_weight": weight,
    }


def _only_for(provider: Provider, injector: dict[str, Any], what: str = "credential") -> dict[str, Any]:
    """The provider's credential injector (or signer), skipped on attempts to any other provider."""
    is_provider = {
        "single_predicate": {
            "input": {
                "name": "attempt-provider",
                "typed_config": {"@type": _HEADER_INPUT_TYPE, "header_name": ATTEMPT_PROVIDER_HEADER},
            },
            "value_match": {"exact": provider.name},
        }
    }
    skip = {"action": {"name": "skip", "typed_config": {"@type": _SKIP_TYPE}}}
    return {
        "name": f"{what}-{provider.name}",
        "typed_config": {
            "@type": _WITH_MATCHER_TYPE,
            "extension_config": injector,
            "xds_matcher": {
                "matcher_list": {"matchers": [{"predicate": {"not_matcher": is_provider}, "on_match": skip}]}
            },
        },
    }


def strip_internal_headers() -> dict[str, Any]:
    """Every x-gw-* header (the router pass's routing facts) and every x-envoy-* one Envoy added
    after the router pass, removed before a request leaves for a provider."""
    prefixes = [{"remove_on_match": {"key_matcher": {"prefix": prefix}}} for prefix in (INTERNAL_PREFIX, "x-envoy-")]
    return {
        "name": "internal-headers-off",
        "typed_config": {"@type": _MUTATION_TYPE, "mutations": {"request_mutations": prefixes}},
    }


def _remove_headers(name: str, headers: tuple[str, ...]) -> dict[str, Any]:
    return {
        "name": name,
        "typed_config": {
            "@type": _MUTATION_TYPE,
            "mutations": {"request_mutations": [{"remove": header} for header in headers]},
        },
    }
