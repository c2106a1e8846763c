"""docs/config-reference.md is generated from the JSON Schema, and the schema's defaults are the
ones the gateway applies: each `default` equals what loading a file without that key gives, and
the dataclass default of the field it lands in, where there is one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from extproc.auth.apikeys import ClientRecord
from extproc.auth.settings import JwtSettings
from extproc.config.load import load_text
from extproc.config.model import Capabilities, EnvoySettings, ExtprocSettings, GatewayConfig, Provider
from extproc.config.reference import REGENERATE, config_reference, example_of, options, type_of
from extproc.config.route_model import BreakerPolicy, PoolMember, Resilience
from extproc.config.tracing import TracingSettings
from extproc.config.traffic import CacheSettings, LimitRule, LimitSettings, RedisSettings
from extproc.xds.render_pool import _OUTLIER_DEFAULTS
from tests.support.cli import REPO, run_cli

DOC = REPO / "docs" / "config-reference.md"

# Every section present, with nothing set that has a default.
FULL = """
providers:
  - {name: p, kind: openai, base_url: "https://p.example/v1", api_key_env: KEY}
  - {name: q, kind: openai, base_url: "https://q.example/v1", api_key_env: KEY}
  - {name: m, kind: mock}
  - {name: v, kind: vertex, vertex: {project: pr}}
routes:
  - {name: pooled, model: "a*", pool: [{provider: p}, {provider: q}]}
clients:
  - {id: c, key_hashes: ["sha256:f260dec37754594998f4ab622a2fcca583168ff2cfe956b13e2e03ff8a31d33b"]}
jwt: {issuer: "https://issuer.example", audience: gateway, jwks_url: "https://issuer.example/jwks"}
breakers: {}
store: {redis: {url: "redis://localhost:6379/0"}}
limits: {rules: [{name: r, key: [], requests: 1}]}
cache: {}
tracing: {otlp_endpoint: "http://127.0.0.1:4317"}
"""
# Only what is required.
BARE = "providers:\n  - {name: m, kind: mock}\n"

Loaded = Callable[[GatewayConfig, GatewayConfig], Any]  # (full, bare) -> the value the gateway applies

# schema path -> (the value applied when the key is left out, the dataclass field it documents)
APPLIED: dict[str, tuple[Loaded, tuple[type, str] | None]] = {
    "log_level": (lambda f, b: b.log_level, (GatewayConfig, "log_level")),
    "log_bodies": (lambda f, b: b.log_bodies, (GatewayConfig, "log_bodies")),
    "prices": (lambda f, b: b.prices, (GatewayConfig, "prices")),
    "listeners": (lambda f, b: [{"name": item.name, "port": item.port} for item in b.listeners], None),
    "listeners[].address": (lambda f, b: b.listeners[0].address, None),
    "extproc.address": (lambda f, b: b.extproc.address, (ExtprocSettings, "address")),
    "extproc.port": (lambda f, b: b.extproc.port, (ExtprocSettings, "port")),
    "extproc.workers": (lambda f, b: b.extproc.workers, (ExtprocSettings, "workers")),
    "extproc.admin_address": (lambda f, b: b.extproc.admin_address, (ExtprocSettings, "admin_address")),
    "extproc.admin_port": (lambda f, b: b.extproc.admin_port, (ExtprocSettings, "admin_port")),
    "extproc.message_timeout_ms": (lambda f, b: b.extproc.message_timeout_ms, (ExtprocSettings, "message_timeout_ms")),
    "extproc.grace_period_s": (lambda f, b: b.extproc.grace_period_s, (ExtprocSettings, "grace_period_s")),
    "extproc.busy_poll_us": (lambda f, b: b.extproc.busy_poll_us, (ExtprocSettings, "busy_poll_us")),
    "extproc.observe_streams": (lambda f, b: b.extproc.observe_streams, (ExtprocSettings, "observe_streams")),
    "extproc.max_stream_line_bytes": (
        lambda f, b: b.extproc.max_stream_line_bytes,
        (ExtprocSettings, "max_stream_line_bytes"),
    ),
    "envoy.admin_port": (lambda f, b: b.envoy.admin_port, (EnvoySettings, "admin_port")),
    "envoy.max_request_bytes": (lambda f, b: b.envoy.max_request_bytes, (EnvoySettings, "max_request_bytes")),
    "envoy.use_remote_address": (lambda f, b: b.envoy.use_remote_address, (EnvoySettings, "use_remote_address")),
    "envoy.xff_num_trusted_hops": (lambda f, b: b.envoy.xff_num_trusted_hops, (EnvoySettings, "xff_num_trusted_hops")),
    "envoy.ready_address": (lambda f, b: b.envoy.ready_address, (EnvoySettings, "ready_address")),
    "providers[].allow_plaintext": (lambda f, b: f.providers[0].allow_plaintext, (Provider, "allow_plaintext")),
    "providers[].models": (lambda f, b: f.providers[0].models, (Provider, "models")),
    "providers[].timeout_ms": (lambda f, b: f.providers[0].timeout_ms, (Provider, "timeout_ms")),
    "providers[].idle_timeout_ms": (lambda f, b: f.providers[0].idle_timeout_ms, (Provider, "idle_timeout_ms")),
    "providers[].unsupported": (lambda f, b: f.providers[0].unsupported, (Provider, "unsupported")),
    "providers[].vertex.location": (lambda f, b: f.providers[3].vertex_location, (Provider, "vertex_location")),
    "providers[].azure.deployments": (lambda f, b: f.providers[0].azure_deployments, (Provider, "azure_deployments")),
    "providers[].default_max_tokens": (
        lambda f, b: f.providers[0].default_max_tokens,
        (Provider, "default_max_tokens"),
    ),
    "providers[].mock.latency_ms": (lambda f, b: b.providers[0].mock_latency_ms, (Provider, "mock_latency_ms")),
    "providers[].mock.text": (lambda f, b: b.providers[0].mock_text, (Provider, "mock_text")),
    "providers[].bedrock.api": (lambda f, b: f.providers[0].bedrock_api, (Provider, "bedrock_api")),
    **{
        f"providers[].capabilities.{name}": (
            lambda f, b, name=name: getattr(f.providers[0].capabilities, name),
            (Capabilities, name),
        )
        for name in ("streaming", "tools", "images", "json_schema", "embeddings")
    },
    "routes": (lambda f, b: b.routes, (GatewayConfig, "routes")),
    "routes[].pool[].weight": (lambda f, b: f.routes[0].pool[0].weight, (PoolMember, "weight")),
    "routes[].pool[].priority": (lambda f, b: f.routes[0].pool[0].priority, (PoolMember, "priority")),
    "routes[].retry.attempts": (lambda f, b: f.routes[0].resilience.retry_attempts, (Resilience, "retry_attempts")),
    "routes[].retry.retry_on": (lambda f, b: f.routes[0].resilience.retry_on, (Resilience, "retry_on")),
    **{
        f"routes[].outlier_detection.{name}": (lambda f, b, name=name: _OUTLIER_DEFAULTS[name], None)
        for name in ("consecutive_5xx", "interval_ms", "base_ejection_ms", "max_ejection_percent")
    },
    "clients[].tenant": (lambda f, b: f.auth.clients[0].tenant, None),
    "clients[].models": (lambda f, b: f.auth.clients[0].models, (ClientRecord, "models")),
    "clients[].labels": (lambda f, b: f.auth.clients[0].labels, (ClientRecord, "labels")),
    "jwt.algorithms": (lambda f, b: _jwt(f).algorithms, (JwtSettings, "algorithms")),
    "jwt.leeway_s": (lambda f, b: _jwt(f).leeway_s, (JwtSettings, "leeway_s")),
    "jwt.jwks_refresh_s": (lambda f, b: _jwt(f).jwks_refresh_s, (JwtSettings, "jwks_refresh_s")),
    "jwt.allow_plaintext": (lambda f, b: _jwt(f).allow_plaintext, (JwtSettings, "allow_plaintext")),
    "jwt.claims.client": (lambda f, b: _jwt(f).client_claim, (JwtSettings, "client_claim")),
    "jwt.claims.tenant": (lambda f, b: _jwt(f).tenant_claim, (JwtSettings, "tenant_claim")),
    "jwt.claims.models": (lambda f, b: _jwt(f).models_claim, (JwtSettings, "models_claim")),
    "jwt.claims.labels": (lambda f, b: _jwt(f).labels_claims, (JwtSettings, "labels_claims")),
    "jwt.default_models": (lambda f, b: _jwt(f).default_models, (JwtSettings, "default_models")),
    **{
        f"breakers.{name}": (lambda f, b, name=name: getattr(f.breakers, name), (BreakerPolicy, name))
        for name in ("failure_ratio", "min_requests", "window_s", "open_s")
    },
    "store.redis.key_prefix": (lambda f, b: _redis(f).key_prefix, (RedisSettings, "key_prefix")),
    "store.redis.timeout_ms": (lambda f, b: _redis(f).timeout_ms, (RedisSettings, "timeout_ms")),
    "limits.on_store_error": (lambda f, b: f.limits.on_store_error, (LimitSettings, "on_store_error")),
    "limits.rules[].window_s": (lambda f, b: f.limits.rules[0].window_s, (LimitRule, "window_s")),
    # CacheSettings.enabled is False for a file without a cache section; a present section is on.
    "cache.enabled": (lambda f, b: f.cache.enabled, None),
    **{
        f"cache.{name}": (lambda f, b, name=name: getattr(f.cache, name), (CacheSettings, name))
        for name in ("scope", "chat_ttl_s", "embeddings_ttl_s", "max_entries", "max_bytes", "max_entry_bytes")
    },
    **{
        f"tracing.{name}": (lambda f, b, name=name: getattr(f.tracing, name), (TracingSettings, name))
        for name in ("protocol", "sample_ratio", "allow_plaintext")
    },
}


def _jwt(config: GatewayConfig) -> JwtSettings:
    assert config.auth.jwt is not None
    return config.auth.jwt


def _redis(config: GatewayConfig) -> RedisSettings:
    assert config.store.redis is not None
    return config.store.redis


def _plain(value: Any, like: Any) -> Any:
    """A Python value as YAML holds it, shaped like the documented default `like`: tuples as
    lists, and a record's (key, value) pairs as the mapping they were written as."""
    if isinstance(like, dict) and isinstance(value, (tuple, list)):
        return dict(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item, None) for item in value]
    return value


def _field_default(cls: type, name: str) -> Any:
    field = next(field for field in dataclasses.fields(cls) if field.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _schema_defaults() -> dict[str, Any]:
    return {option.path: option.schema["default"] for option in options() if "default" in option.schema}


def test_the_reference_in_docs_is_the_generated_one() -> None:
    assert DOC.read_text() == config_reference(), f"docs/config-reference.md is stale; regenerate: {REGENERATE}"


def test_the_schema_command_prints_the_reference() -> None:
    result = run_cli("schema", "--markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout == config_reference()


def test_every_option_has_a_description_and_every_leaf_a_type_and_an_example() -> None:
    lacking = []
    for option in options():
        if not option.schema.get("description"):
            lacking.append(f"{option.path}: no description")
        if option.leaf and not type_of(option.schema):
            lacking.append(f"{option.path}: no type")
        if option.leaf and example_of(option) is None:
            lacking.append(f"{option.path}: no example (give `examples` or `default` in the schema)")
    assert not lacking, "\n".join(lacking)


def test_every_schema_default_is_checked_against_the_code() -> None:
    assert set(_schema_defaults()) == set(APPLIED), "add each new schema `default` to APPLIED, with where it lands"


@pytest.fixture(scope="module")
def loaded() -> tuple[GatewayConfig, GatewayConfig]:
    return load_text(FULL, {"KEY": "k"}, Path(".")), load_text(BARE, {}, Path("."))


@pytest.mark.parametrize("path", sorted(_schema_defaults()))
def test_schema_default_is_the_default_the_gateway_applies(path: str, loaded: tuple[Any, Any]) -> None:
    documented = _schema_defaults()[path]
    value, field = APPLIED[path]
    assert _plain(value(*loaded), documented) == documented, f"{path}: loading without it gives another value"
    if field is not None:
        cls, name = field
        default = _plain(_field_default(cls, name), documented)
        assert default == documented, f"{path}: {cls.__name__}.{name} defaults otherwise"
