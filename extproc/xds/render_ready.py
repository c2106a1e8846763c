"""Envoy for probes and scrapers from outside the pod: GET /ready, GET /stats/prometheus and the
ext_proc's GET /metrics on an extra address of the first gateway listener (`envoy.ready_port`).

Why not a listener of its own (measured, Envoy 1.40, file-based LDS): when the gateway
listener cannot bind (port taken), Envoy rejects that listener but still adds the others,
so a separate ready listener (and admin's /ready) would answer 200 with no gateway
listening. An additional address of the gateway listener is bound with it or not at all.

A filter chain matched on the ready port serves two things and nothing else:
- GET /ready: 200, or 503 while Envoy fails health checks (draining), answered by the
  health_check filter;
- GET /stats/prometheus: Envoy's own metrics, proxied to its admin through the static
  cluster `envoy_admin` of the bootstrap (admin itself stays on loopback or a Unix socket:
  it has mutating endpoints). Only that exact path reaches admin (a query string, e.g.
  `?usedonly`, travels with it: admin's options for that page only read); another method
  on it is a 405;
- GET /metrics: the ext_proc's metrics, proxied to its admin server (cluster `extproc_admin`),
  so that server can stay on loopback: /status and POST /reload are not reachable from here.
Any other path is a 404: neither the gateway's API nor the rest of admin is reachable there.
"""

from __future__ import annotations

from typing import Any

from extproc.config.model import EnvoySettings, ExtprocSettings

READY_PATH = "/ready"
STATS_PATH = "/stats/prometheus"
EXTPROC_METRICS_PATH = "/metrics"
ADMIN_CLUSTER = "envoy_admin"
EXTPROC_ADMIN_CLUSTER = "extproc_admin"
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
HCM_NAME = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def admin_address(envoy: EnvoySettings) -> dict[str, Any]:
    """Envoy's admin on loopback TCP, or on an owner-only Unix socket no other container can dial."""
    if envoy.admin_socket:
        return {"pipe": {"path": envoy.admin_socket, "mode": 0o600}}
    return {"socket_address": {"address": "127.0.0.1", "port_value": envoy.admin_port}}


def admin_cluster(envoy: EnvoySettings) -> dict[str, Any]:
    """Envoy's admin as a static cluster of the bootstrap, for the ready chain's GET /stats/prometheus.

    Always rendered: `ready_port` may be added by a reload, and admin's address only changes
    with a restart (app/restart.py), as the bootstrap does."""
    endpoint = {"endpoint": {"address": admin_address(envoy)}}
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def extproc_admin_cluster(extproc: ExtprocSettings) -> dict[str, Any]:
    """The ext_proc's admin server, for the ready chain's GET /metrics (in cds.yaml: the ready port
    may come with a reload). An admin bound to every address is reached on loopback."""
    host = _ANY_ADDRESS.get(extproc.admin_address, extproc.admin_address)
    endpoint = {"endpoint": {"address": {"socket_address": {"address": host, "port_value": extproc.admin_port}}}}
    return {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": EXTPROC_ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": EXTPROC_ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }


def _ready_routes() -> list[dict[str, Any]]:
    """GET /stats/prometheus -> Envoy's admin, GET /metrics -> the ext_proc's; any other method on
    them -> 405; every other path -> 404."""
    get = [{"name": ":method", "string_match": {"exact": "GET"}}]
    routes: list[dict[str, Any]] = []
    for path, cluster in ((STATS_PATH, ADMIN_CLUSTER), (EXTPROC_METRICS_PATH, EXTPROC_ADMIN_CLUSTER)):
        routes.append({"match": {"path": path, "headers": get}, "route": {"cluster": cluster}})
        routes.append(
            {
                "match": {"path": path},
                "direct_response": {"status": 405},
                "response_headers_to_add": [{"header": {"key": "allow", "value": "GET"}}],
            }
        )
    return [*routes, {"match": {"prefix": "/"}, "direct_response": {"status": 404}}]


def _ready_chain(port: int) -> dict[str, Any]:
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
            "virtual_hosts": [{"name": "ready", "domains": ["*"], "routes": _ready_routes()}],
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
