"""xds/render_ready.py: Envoy's admin address and cluster, and the ready port's filter chain that
serves /ready, Envoy's metrics and the ext_proc's metrics, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.xds.render_ready import (
    ADMIN_CLUSTER,
    EXTPROC_ADMIN_CLUSTER,
    EXTPROC_METRICS_PATH,
    READY_PATH,
    STATS_PATH,
    add_ready_address,
    admin_address,
    admin_cluster,
    extproc_admin_cluster,
)

PROVIDERS = "providers: [{name: m, kind: mock}]\nroutes: [{model: '*', provider: m}]\n"


def config(extra: str) -> GatewayConfig:
    return load_text(PROVIDERS + extra, {}, Path("."))


def test_envoys_admin_is_on_loopback_or_on_an_owner_only_socket() -> None:
    tcp = config("envoy: {admin_port: 9911}\n").envoy
    assert admin_address(tcp) == {"socket_address": {"address": "127.0.0.1", "port_value": 9911}}
    unix = config("envoy: {admin_socket: /run/gateway/envoy-admin.sock}\n").envoy
    assert admin_address(unix) == {"pipe": {"path": "/run/gateway/envoy-admin.sock", "mode": 0o600}}
    cluster = admin_cluster(unix)
    assert cluster["name"] == ADMIN_CLUSTER
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == admin_address(unix)


def test_an_extproc_admin_bound_to_every_address_is_reached_on_loopback() -> None:
    def host(extra: str) -> str:
        cluster = extproc_admin_cluster(config(extra).extproc)
        assert cluster["name"] == EXTPROC_ADMIN_CLUSTER
        return cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
            "address"
        ]

    assert host("extproc: {admin_address: 0.0.0.0}\n") == "127.0.0.1"
    assert host("extproc: {admin_address: '::'}\n") == "::1"
    assert host("extproc: {admin_address: 10.0.0.7}\n") == "10.0.0.7"


def test_the_ready_chain_comes_first_and_serves_three_paths_to_get_only() -> None:
    envoy = config("envoy: {ready_port: 9902, ready_address: 0.0.0.0}\n").envoy
    gateway_chain: dict[str, Any] = {"filters": []}
    listener: dict[str, Any] = {"filter_chains": [gateway_chain]}
    add_ready_address(listener, envoy)
    assert listener["additional_addresses"] == [
        {"address": {"socket_address": {"address": "0.0.0.0", "port_value": 9902}}}
    ]
    ready, gateway = listener["filter_chains"]
    assert gateway is gateway_chain
    assert ready["filter_chain_match"] == {"destination_port": 9902}
    hcm = ready["filters"][0]["typed_config"]
    health = hcm["http_filters"][0]["typed_config"]
    assert health["headers"] == [{"name": ":path", "string_match": {"exact": READY_PATH}}]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    proxied = {route["match"]["path"]: route["route"]["cluster"] for route in routes if "route" in route}
    assert proxied == {STATS_PATH: ADMIN_CLUSTER, EXTPROC_METRICS_PATH: EXTPROC_ADMIN_CLUSTER}
    assert all(route["match"]["headers"][0]["string_match"] == {"exact": "GET"} for route in routes if "route" in route)
    refused = [(route["match"], route["direct_response"]["status"]) for route in routes if "direct_response" in route]
    assert refused == [({"path": STATS_PATH}, 405), ({"path": EXTPROC_METRICS_PATH}, 405), ({"prefix": "/"}, 404)]
