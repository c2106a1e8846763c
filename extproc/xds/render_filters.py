"""The ext_proc HTTP filter, shared by the listener (router pass) and the provider clusters (upstream pass)."""

from __future__ import annotations

from typing import Any

from extproc.config.model import GatewayConfig
from extproc.contract import LISTENER_METADATA_KEY, PASS_METADATA_KEY, PROVIDER_ATTRIBUTE, REQUEST_METADATA_NAMESPACE

EXTPROC_CLUSTER = "extproc"
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
_EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
_FILTER_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.FilterConfig"


def ms(value: int) -> str:
    return f"{value / 1000:g}s"


def ext_proc_filter(config: GatewayConfig, *, upstream: bool, listener: str = "") -> dict[str, Any]:
    """The ext_proc filter: the router pass (listener) or the upstream pass (a pool's cluster).

    The listener's copy is disabled here and enabled by the route configuration
    (`enable_ext_proc_per_route`): a codec error (a 1 MB header, Content-Length
    with Transfer-Encoding) matches no route, so the filter is never created for
    it and the client gets Envoy's own 431/400. (measured: enabled on the HCM,
    the filter takes that local reply over and the client gets a reset, no status.)
    """
    if upstream:
        # The upstream pass renders the body per attempt, so it reads it.
        # With breakers, each attempt's answer status is reported (a retried failure never reaches the router pass).
        answer = "SEND" if config.breakers is not None else "SKIP"
        mode = {"request_header_mode": "SEND", "request_body_mode": "BUFFERED", "response_header_mode": answer}
    else:
        mode = {"request_header_mode": "SEND", "request_body_mode": "BUFFERED", "response_header_mode": "SEND"}
    mode |= {"response_body_mode": "NONE", "request_trailer_mode": "SKIP", "response_trailer_mode": "SKIP"}
    timeout = ms(config.extproc.message_timeout_ms)
    typed: dict[str, Any] = {
        "@type": _EXT_PROC_TYPE,
        "grpc_service": {
            "envoy_grpc": {"cluster_name": EXTPROC_CLUSTER},
            "timeout": timeout,
            # Tells the service which pass (and listener) a stream belongs to.
            "initial_metadata": [
                {"key": PASS_METADATA_KEY, "value": "upstream" if upstream else "router"},
                *([{"key": LISTENER_METADATA_KEY, "value": listener}] if listener else []),
            ],
        },
        "failure_mode_allow": False,
        "message_timeout": timeout,
        "max_message_timeout": timeout,
        "allow_mode_override": True,
        "processing_mode": mode,
        # allow_envoy: x-envoy-* headers can be removed (measured: without it, removals are dropped silently).
        "mutation_rules": {"allow_all_routing": True, "allow_envoy": True},
    }
    namespaces = {"untyped": [REQUEST_METADATA_NAMESPACE]}
    if upstream:
        typed["request_attributes"] = [PROVIDER_ATTRIBUTE]
        typed["metadata_options"] = {"forwarding_namespaces": namespaces}
        return {"name": EXT_PROC_FILTER, "typed_config": typed}
    typed["metadata_options"] = {"receiving_namespaces": namespaces}  # the router pass's facts for a pool
    return {"name": EXT_PROC_FILTER, "typed_config": typed, "disabled": True}


def enable_ext_proc_per_route() -> dict[str, Any]:
    """`typed_per_filter_config` that turns the listener's disabled ext_proc filter on."""
    return {EXT_PROC_FILTER: {"@type": _FILTER_CONFIG_TYPE, "config": {}}}
