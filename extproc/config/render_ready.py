"""Envoy readiness for probes from outside the pod: GET /ready on an extra address of the first gateway listener.

Why not a listener of its own (measured, Envoy 1.40, file-based LDS): when the gateway
listener cannot bind (port taken), Envoy rejects that listener but still adds the others,
so a separate ready listener (and admin's /ready) would answer 200 with no gateway
listening. An additional address of the gateway listener is bound with it or not at all.
A filter chain matched on the ready port serves /ready only: neither the gateway's API
nor admin (with its mutating endpoints, kept on loopback) is reachable there.
"""

from __future__ import annotations

from typing import Any

from extproc.config.model import EnvoySettings

READY_PATH = "/ready"
HCM_NAME = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def _ready_chain(port: int) -> dict[str, Any]:
    """/ready -> 200, or 503 while Envoy fails health checks (draining); any other path -> 404."""
    health_check = {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": READY_PATH}}],
        },
    }
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": "ready",
        "codec_type": "AUTO",
        "route_config": {
            "name": "ready",
            "virtual_hosts": [
                {
                    "name": "ready",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 404}}],
                }
            ],
        },
        "http_filters": [health_check, ROUTER],
    }
    return {
        "name": "ready",
        "filter_chain_match": {"destination_port": port},
        "filters": [{"name": HCM_NAME, "typed_config": hcm}],
    }


def add_ready_address(listener: dict[str, Any], envoy: EnvoySettings) -> None:
    """Give a rendered gateway listener the ready address and the filter chain that serves it."""
    assert envoy.ready_port is not None
    address = {"socket_address": {"address": envoy.ready_address, "port_value": envoy.ready_port}}
    listener["additional_addresses"] = [{"address": address}]
    listener["filter_chains"].insert(0, _ready_chain(envoy.ready_port))
