"""Envoy's own OpenTelemetry tracer (the `tracing` section): the listeners' spans, to the collector
the ext_proc exports to.

Each listener's connection manager traces a `sample_ratio` share of requests (a client's sampled
`traceparent` is followed as it says: parent-based). Envoy's span of each call to the ext_proc
carries the trace to it in the gRPC stream's initial metadata (`traceparent`), so the ext_proc's
spans join the same trace; the provider gets the `traceparent` of Envoy's span of its attempt.
The collector's headers (`headers_file`, a credential) never appear in a rendered listener or
cluster: each is an owner-only SDS file Envoy's credential injector adds to every export, as a
provider's key is (render_credentials.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extproc.config.model import GatewayConfig
from extproc.config.tracing import TracingSettings
from extproc.xds.files import write_sds_file
from extproc.xds.render_pool import CLUSTER_TYPE, HTTP_OPTIONS_KEY, HTTP_OPTIONS_TYPE, UPSTREAM_CODEC
from extproc.xds.render_tls import SECRET_TYPE, is_ip, sds_source, system_ca_bundle

TRACE_CLUSTER = "trace_collector"
SERVICE_NAME = "llm-gateway-envoy"
_OTEL_CONFIG_TYPE = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
_SAMPLERS = "envoy.tracers.opentelemetry.samplers"
_SAMPLER_TYPES = "type.googleapis.com/envoy.extensions.tracers.opentelemetry.samplers.v3"
_INJECTOR_TYPE = "type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector"
_GENERIC_TYPE = "type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic"
_UPSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_EXPORT_TIMEOUT = "1s"
# Envoy exports every 5 s by default; these make its spans reach the collector about as soon as the ext_proc's.
RUNTIME = {"tracing.opentelemetry.flush_interval_ms": 1000, "tracing.opentelemetry.min_flush_spans": 5}


def hcm_tracing(tracing: TracingSettings) -> dict[str, Any]:
    """The connection manager's `tracing`: one span per request, one per upstream attempt."""
    ratio = {
        "name": f"{_SAMPLERS}.trace_id_ratio_based",
        "typed_config": {
            "@type": f"{_SAMPLER_TYPES}.TraceIdRatioBasedSamplerConfig",
            "sampling_percentage": {"numerator": round(tracing.sample_ratio * 1_000_000), "denominator": "MILLION"},
        },
    }
    provider: dict[str, Any] = {
        "@type": _OTEL_CONFIG_TYPE,
        "service_name": SERVICE_NAME,
        "sampler": {
            "name": f"{_SAMPLERS}.parent_based",
            "typed_config": {"@type": f"{_SAMPLER_TYPES}.ParentBasedSamplerConfig", "wrapped_sampler": ratio},
        },
    }
    if tracing.protocol == "grpc":
        provider["grpc_service"] = {"envoy_grpc": {"cluster_name": TRACE_CLUSTER}, "timeout": _EXPORT_TIMEOUT}
    else:
        uri = {"uri": tracing.traces_url, "cluster": TRACE_CLUSTER, "timeout": _EXPORT_TIMEOUT}
        provider["http_service"] = {"http_uri": uri}
    return {
        # The sampler decides; Envoy's own random sampling lets every request reach it.
        "random_sampling": {"value": 100},
        "spawn_upstream_span": True,
        "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": provider},
    }


def _header_secret(index: int) -> str:
    return f"trace_header_{index}"


def _header_file(index: int, secrets: Path) -> Path:
    return secrets / f"{_header_secret(index)}.yaml"


def _header_filter(index: int, name: str, secrets: Path) -> dict[str, Any]:
    generic = {
        "@type": _GENERIC_TYPE,
        "header": name,
        "credential": {"name": _header_secret(index), "sds_config": sds_source(_header_file(index, secrets), secrets)},
    }
    return {
        "name": f"trace_header_{index}",
        "typed_config": {
            "@type": _INJECTOR_TYPE,
            "overwrite": True,
            "credential": {"name": "envoy.http.injected_credentials.generic", "typed_config": generic},
        },
    }


def trace_cluster(config: GatewayConfig, secrets: Path) -> dict[str, Any] | None:
    """The collector, HTTP/2 for OTLP/gRPC; None without tracing."""
    tracing = config.tracing
    if tracing is None:
        return None
    filters = [_header_filter(i, name, secrets) for i, (name, _) in enumerate(tracing.headers)]
    protocol: dict[str, Any] = (
        {"http2_protocol_options": {}} if tracing.protocol == "grpc" else {"http_protocol_options": {}}
    )
    options: dict[str, Any] = {"@type": HTTP_OPTIONS_TYPE, "explicit_http_config": protocol}
    if filters:
        options["http_filters"] = [*filters, UPSTREAM_CODEC]
    host = tracing.host
    cluster: dict[str, Any] = {
        "@type": CLUSTER_TYPE,
        "name": TRACE_CLUSTER,
        "type": "STATIC" if is_ip(host) else "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {HTTP_OPTIONS_KEY: options},
        "load_assignment": {
            "cluster_name": TRACE_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": tracing.port}}}}
                    ]
                }
            ],
        },
    }
    if tracing.tls:
        san = {"san_type": "IP_ADDRESS" if is_ip(host) else "DNS", "matcher": {"exact": host}}
        context: dict[str, Any] = {
            "validation_context": {
                "trusted_ca": {"filename": system_ca_bundle()},
                "match_typed_subject_alt_names": [san],
            }
        }
        typed: dict[str, Any] = {"@type": _UPSTREAM_TLS_TYPE, "common_tls_context": context}
        if tracing.protocol == "grpc":
            context["alpn_protocols"] = ["h2"]
        if not is_ip(host):
            typed["sni"] = host
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": typed}
    return cluster


def write_trace_secrets(config: GatewayConfig, secrets: Path) -> None:
    """One owner-only SDS file per collector header (the directory is made owner-only by write_secrets)."""
    if config.tracing is None:
        return
    for index, (_, value) in enumerate(config.tracing.headers):
        resource = {
            "@type": SECRET_TYPE,
            "name": _header_secret(index),
            "generic_secret": {"secret": {"inline_string": value}},
        }
        write_sds_file(_header_file(index, secrets), resource)
