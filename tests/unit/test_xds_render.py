"""xds/render.py: the clusters and the bootstrap rendered from gateway.yaml, and the xDS files
written for Envoy, each stamped with the version Envoy reports back once it applied it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.contract import EXTPROC_TOKEN_HEADER
from extproc.xds.render import (
    EXTPROC_CLUSTER,
    OBSERVER_CLUSTER,
    envoy_binary,
    render_bootstrap,
    render_clusters,
    write_bootstrap,
    write_clusters,
    write_listeners,
)
from extproc.xds.render_credentials import secrets_dir
from extproc.xds.render_pool import HTTP_OPTIONS_KEY
from extproc.xds.render_ready import EXTPROC_ADMIN_CLUSTER

PROVIDERS = """
providers:
  - {name: oa, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
  - {name: an, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
  - {name: m, kind: mock}
"""
ROUTES = "routes: [{model: '*', provider: oa}]\n"


def config(extra: str = "", providers: str = PROVIDERS) -> GatewayConfig:
    return load_text(providers + ROUTES + extra, {"K": "sk"}, Path("."))


def clusters(loaded: GatewayConfig, keys: Path) -> dict[str, dict[str, Any]]:
    return {cluster["name"]: cluster for cluster in render_clusters(loaded, keys)}


def test_every_provider_but_the_mock_has_a_cluster_and_the_metrics_one_comes_with_the_ready_port(
    tmp_path: Path,
) -> None:
    assert list(clusters(config(), tmp_path)) == [EXTPROC_CLUSTER, OBSERVER_CLUSTER, "provider_oa", "provider_an"]
    assert OBSERVER_CLUSTER not in clusters(config("extproc: {observe_streams: false}\n"), tmp_path)
    assert EXTPROC_ADMIN_CLUSTER in clusters(config("envoy: {ready_port: 9902}\n"), tmp_path)


def test_the_extproc_cluster_has_one_endpoint_per_worker_and_a_token_only_on_tcp(tmp_path: Path) -> None:
    two = clusters(config("extproc: {port: 50100, workers: 2}\n"), tmp_path)
    for worker, name in enumerate((OBSERVER_CLUSTER, f"{OBSERVER_CLUSTER}_1")):  # each worker's observer: itself
        (endpoint,) = two[name]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        assert endpoint["endpoint"]["address"]["socket_address"]["port_value"] == 50100 + worker
    tcp = two[EXTPROC_CLUSTER]
    endpoints = tcp["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints] == [50100, 50101]
    options = tcp["typed_extension_protocol_options"][HTTP_OPTIONS_KEY]
    assert options["http_filters"][0]["typed_config"]["credential"]["typed_config"]["header"] == EXTPROC_TOKEN_HEADER
    unix = clusters(config("extproc: {unix_socket: /run/gw/extproc.sock, workers: 2}\n"), tmp_path)[EXTPROC_CLUSTER]
    endpoints = unix["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"] for e in endpoints] == [
        {"pipe": {"path": "/run/gw/extproc.sock"}},
        {"pipe": {"path": "/run/gw/extproc.sock.1"}},
    ]
    assert "http_filters" not in unix["typed_extension_protocol_options"][HTTP_OPTIONS_KEY]


def test_the_envoy_binary_is_found_and_executable() -> None:
    binary = Path(envoy_binary())
    assert binary.is_file() and os.access(binary, os.X_OK)


def test_the_bootstrap_names_the_admin_address_and_the_watched_directory(tmp_path: Path) -> None:
    bootstrap = yaml.safe_load(render_bootstrap(config("envoy: {admin_port: 9911}\n"), tmp_path / "xds"))
    assert bootstrap["admin"]["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 9911}}
    xds = str((tmp_path / "xds").resolve())
    assert bootstrap["dynamic_resources"]["cds_config"]["path_config_source"] == {
        "path": f"{xds}/cds.yaml",
        "watched_directory": {"path": xds},
    }
    written = write_bootstrap(config(), tmp_path / "xds")
    assert written == tmp_path / "envoy-bootstrap.yaml" and written.is_file()


def test_clusters_a_new_config_drops_are_kept_while_retained_and_named(tmp_path: Path) -> None:
    running, new = config(), config(providers=PROVIDERS.replace("  - {name: an", "  # - {name: an"))
    assert write_clusters(running, tmp_path, "v1") == []
    assert write_clusters(new, tmp_path, "v2", retaining=running) == ["provider_an"]
    cds = yaml.safe_load((tmp_path / "cds.yaml").read_text())
    assert cds["version_info"] == "v2"
    assert [r["name"] for r in cds["resources"]] == [EXTPROC_CLUSTER, OBSERVER_CLUSTER, "provider_oa", "provider_an"]
    assert write_clusters(new, tmp_path, "v3") == []
    cds = yaml.safe_load((tmp_path / "cds.yaml").read_text())
    assert [r["name"] for r in cds["resources"]] == [EXTPROC_CLUSTER, OBSERVER_CLUSTER, "provider_oa"]
    assert sorted(path.name for path in secrets_dir(tmp_path).iterdir()) == [
        "extproc_token.yaml",  # on TCP: Envoy's token for the ext_proc
        "provider_key_an.yaml",  # a retained cluster's key stays readable
        "provider_key_oa.yaml",
    ]


def test_listeners_are_written_with_their_version_and_without_one_when_none_is_given(tmp_path: Path) -> None:
    write_listeners(config(), tmp_path, "v7")
    lds = yaml.safe_load((tmp_path / "lds.yaml").read_text())
    assert lds["version_info"] == "v7"
    assert [r["name"] for r in lds["resources"]] == ["listener_main"]
    write_listeners(config(), tmp_path)
    assert "version_info" not in yaml.safe_load((tmp_path / "lds.yaml").read_text())
