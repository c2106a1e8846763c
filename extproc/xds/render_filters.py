"""The ext_proc HTTP filter, shared by the listener (router pass) and the provider clusters (upstream pass)."""

from __future__ import annotations

from typing import Any

from extproc.config.model import GatewayConfig
from extproc.contract import (
    LISTENER_METADATA_KEY,
    OBSERVE_HEADER,
    OBSERVER_PASS,
    PASS_METADATA_KEY,
    PROVIDER_ATTRIBUTE,
    REQUEST_METADATA_NAMESPACE,
)

EXTPROC_CLUSTER = "extproc"
OBSERVER_CLUSTER = "extproc_observer"  # the same processes, on connections only the observer uses
EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
_EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
_FILTER_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
_MATCHED_TYPE = "type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher"
_SKIP_TYPE = "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"
_ANSWER_HEADER_INPUT = "type.googleapis.com/envoy.type.matcher.v3.HttpResponseHeaderMatchInput"
_HEADER_MUTATION_TYPE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
OBSERVER_FILTER = "llm_gateway.observer"
UNMARK_FILTER = "llm_gateway.unmark"


def ms(value: int) -> str:
    return f"{value / 1000:g}s"


def _grpc_service(cluster: str, timeout: str, pass_name: str, listener: str = "") -> dict[str, Any]:
    """The ext_proc's gRPC service; the stream's metadata tells it which pass (and listener) it is."""
    metadata = [{"key": PASS_METADATA_KEY, "value": pass_name}]
    if listener:
        metadata.append({"key": LISTENER_METADATA_KEY, "value": listener})
    return {"envoy_grpc": {"cluster_name": cluster}, "timeout": timeout, "initial_metadata": metadata}


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
        "grpc_service": _grpc_service(EXTPROC_CLUSTER, timeout, "upstream" if upstream else "router", listener),
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


def observer_name(worker: int, base: str) -> str:
    """Worker 0's observer filter, cluster or stats keep their plain name; worker N's get `_N`."""
    return base if worker == 0 else f"{base}_{worker}"


def observer_filters(config: GatewayConfig) -> list[dict[str, Any]]:
    """The observer: an ext_proc filter per worker that reads a same-API stream's body beside it
    (`observability_mode`: Envoy sends each chunk and goes on without waiting for a reply), for the
    answers the router pass marks with OBSERVE_HEADER; every other answer skips it. The mark is the
    worker's index, and each worker's filter calls that worker alone (its own cluster): the stream
    reaches the process that holds the request. Before the router pass in the chain, so it sees the
    answer after it (the mark set, the body let go); the header mutation before them removes the
    mark before the answer leaves."""
    unmark = {
        "@type": _HEADER_MUTATION_TYPE,
        "mutations": {"response_mutations": [{"remove": OBSERVE_HEADER}]},
    }
    observers = [
        {"name": observer_name(worker, OBSERVER_FILTER), "typed_config": _observer(config, worker)}
        for worker in range(config.extproc.workers)
    ]
    return [{"name": UNMARK_FILTER, "typed_config": unmark}, *observers]


def _observer(config: GatewayConfig, worker: int) -> dict[str, Any]:
    timeout = ms(config.extproc.message_timeout_ms)
    observer: dict[str, Any] = {
        "@type": _EXT_PROC_TYPE,
        "grpc_service": _grpc_service(observer_name(worker, OBSERVER_CLUSTER), timeout, OBSERVER_PASS),
        "observability_mode": True,
        # Envoy's ext_proc stats of this filter apart from the router pass's
        "stat_prefix": observer_name(worker, "observer"),
        "deferred_close_timeout": "1s",  # after the request: what Envoy sent is read by then (batches of 10 ms)
        "failure_mode_allow": True,  # what it reads never holds up or fails an answer
        "message_timeout": timeout,
        "processing_mode": {
            "request_header_mode": "SKIP",
            "request_body_mode": "NONE",
            "response_header_mode": "SKIP",
            "response_body_mode": "STREAMED",
            "request_trailer_mode": "SKIP",
            "response_trailer_mode": "SKIP",
        },
        "metadata_options": {"forwarding_namespaces": {"untyped": [REQUEST_METADATA_NAMESPACE]}},
    }
    unmarked = {
        "not_matcher": {
            "single_predicate": {
                "input": {
                    "name": "observe-mark",
                    "typed_config": {"@type": _ANSWER_HEADER_INPUT, "header_name": OBSERVE_HEADER},
                },
                "value_match": {"exact": str(worker)},
            }
        }
    }
    skip = {"action": {"name": "skip", "typed_config": {"@type": _SKIP_TYPE}}}
    return {
        "@type": _MATCHED_TYPE,
        "extension_config": {"name": EXT_PROC_FILTER, "typed_config": observer},
        "xds_matcher": {"matcher_list": {"matchers": [{"predicate": unmarked, "on_match": skip}]}},
    }
