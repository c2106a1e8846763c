"""Envoy's gateway listeners: HTTP connection manager, routes, the router pass's ext_proc filter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extproc.config.model import GatewayConfig, Listener, Provider
from extproc.contract import (
    ENVOY_HEADER_COUNT_CAP,
    ENVOY_HEADER_KB_CAP,
    METADATA_NAMESPACE,
    PROVIDER_HEADER,
    ROUTE_HEADER,
)
from extproc.provider_kinds import KINDS
from extproc.xds.render_filters import enable_ext_proc_per_route, ext_proc_filter, ms, observer_filters
from extproc.xds.render_local_reply import local_reply_config
from extproc.xds.render_pool import pool_route
from extproc.xds.render_rate_limit import local_rate_limit_filter
from extproc.xds.render_ready import HCM_NAME, HCM_TYPE, ROUTER, add_ready_address
from extproc.xds.render_tls import downstream_tls
from extproc.xds.render_tracing import hcm_tracing

LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"


# Tells the router pass which provider answered (a pool's answer is read by its provider's format).
_ANSWERED_BY = {
    "header": {"key": PROVIDER_HEADER, "value": f"%UPSTREAM_METADATA({METADATA_NAMESPACE}:provider)%"},
    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
}


def _single_route(provider: Provider) -> dict[str, Any]:
    action: dict[str, Any] = {
        "cluster": provider.cluster,
        "timeout": ms(provider.timeout_ms),
        "idle_timeout": ms(provider.idle_timeout_ms),
    }
    if provider.first_byte_timeout_ms:  # the wait for the answer's start: Envoy's per-try timeout, no retries
        action["retry_policy"] = {
            "retry_on": "reset",
            "num_retries": 0,
            "per_try_timeout": ms(provider.first_byte_timeout_ms),
        }
    return action


def _routes(config: GatewayConfig) -> list[dict[str, Any]]:
    routes = []
    for provider in config.providers:
        if KINDS[provider.kind].answers_locally:
            continue
        routes.append(
            {
                "name": provider.cluster,
                "match": {
                    "prefix": "/",
                    "headers": [{"name": ROUTE_HEADER, "string_match": {"exact": provider.cluster}}],
                },
                "route": _single_route(provider),
                "response_headers_to_add": [_ANSWERED_BY],
            }
        )
    for route in config.routes:
        if route.pool:
            routes.append(
                {
                    "name": route.cluster,
                    "match": {
                        "prefix": "/",
                        "headers": [{"name": ROUTE_HEADER, "string_match": {"exact": route.cluster}}],
                    },
                    "route": pool_route(config, route),
                    "response_headers_to_add": [_ANSWERED_BY],
                }
            )
    # Reached only if the router pass let a request through unrouted.
    routes.append(
        {
            "name": "unrouted",
            "match": {"prefix": "/"},
            "direct_response": {
                "status": 404,
                "body": {
                    "inline_string": '{"error":{"message":"no route for this request",'
                    '"type":"invalid_request_error","param":null,"code":"not_found"}}'
                },
            },
        }
    )
    return routes


def _http_connection_manager(config: GatewayConfig, stat_prefix: str, listener: Listener) -> dict[str, Any]:
    guard = local_rate_limit_filter(listener)
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        "codec_type": "AUTO",
        "always_set_request_id_in_response": True,
        "use_remote_address": config.envoy.use_remote_address,
        "xff_num_trusted_hops": config.envoy.xff_num_trusted_hops,
        "local_reply_config": local_reply_config(),
        # Above the router pass's own header limits (a 431 in the client's format), below Envoy's codec.
        "max_request_headers_kb": ENVOY_HEADER_KB_CAP,
        "common_http_protocol_options": {"max_headers_count": ENVOY_HEADER_COUNT_CAP},
        "stream_idle_timeout": "300s",
        "request_timeout": "0s",
        "route_config": {
            "name": "gateway",
            "virtual_hosts": [
                {
                    "name": "gateway",
                    "domains": ["*"],
                    "routes": _routes(config),
                    # x-envoy-attempt-count on each attempt (the upstream pass counts retries with it)
                    # and on the answer (the router pass logs them; it never reaches the client).
                    "include_request_attempt_count": True,
                    "include_attempt_count_in_response": True,
                    # Every route of the gateway runs the router pass; a request with no route never does.
                    "typed_per_filter_config": enable_ext_proc_per_route(),
                }
            ],
        },
        "http_filters": [
            *([guard] if guard else []),
            *(observer_filters(config) if config.extproc.observe_streams else ()),
            ext_proc_filter(config, upstream=False, listener=listener.name),
            ROUTER,
        ],
    }
    if config.tracing is not None:
        hcm["tracing"] = hcm_tracing(config.tracing)
    return hcm


def gateway_listener(config: GatewayConfig, index: int, secrets: Path | None) -> dict[str, Any]:
    """`secrets`: the SDS directory (a TLS listener's certificate is read through it, see render_tls)."""
    listener = config.listeners[index]
    hcm = _http_connection_manager(config, f"gateway_{listener.name}", listener)
    chain: dict[str, Any] = {"filters": [{"name": HCM_NAME, "typed_config": hcm}]}
    if listener.tls_cert_file and listener.tls_key_file:
        chain["transport_socket"] = downstream_tls(listener, secrets)
    rendered: dict[str, Any] = {
        "@type": LISTENER_TYPE,
        "name": f"listener_{listener.name}",
        "address": {"socket_address": {"address": listener.address, "port_value": listener.port}},
        "per_connection_buffer_limit_bytes": config.envoy.max_request_bytes,
        "filter_chains": [chain],
    }
    if index == 0 and config.envoy.ready_port is not None:
        add_ready_address(rendered, config.envoy)
    return rendered
