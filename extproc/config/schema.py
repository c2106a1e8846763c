"""JSON Schema of gateway.yaml: the one description of what the file may hold.

Used to validate (every error at once, with its path) and printed by
`extproc schema` for editors.
"""

from __future__ import annotations

from typing import Any

from extproc.config.schema_auth import AUTH_METHOD, AUTH_PROPERTIES
from extproc.config.schema_routing import (
    BREAKERS,
    CIRCUIT_BREAKERS,
    OUTLIER_DETECTION,
    POOL_MEMBER,
    RETRY,
    ROUTE_MATCH,
    TIMEOUTS,
)
from extproc.config.schema_traffic import CACHE_SCHEMA, CACHE_TTL, LIMITS_SCHEMA, LOCAL_RATE_LIMIT, STORE_SCHEMA

PROVIDER_KINDS = ["openai", "openai-compatible", "anthropic", "gemini", "mock"]

_port = {"type": "integer", "minimum": 1, "maximum": 65535}
_positive = {"type": "integer", "minimum": 1}
_name = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "maxLength": 60}

_capabilities = {
    "type": "object",
    "additionalProperties": False,
    "description": "What the provider supports; requests using more are adapted, dropped or rejected.",
    "properties": {
        "streaming": {"type": "boolean"},
        "tools": {"type": "boolean"},
        "images": {"type": "boolean"},
        "json_schema": {"type": "boolean"},
        "embeddings": {"type": "boolean"},
        "max_tokens": _positive,
    },
}

_provider = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind"],
    "properties": {
        "name": _name,
        "kind": {"enum": PROVIDER_KINDS},
        "base_url": {
            "type": "string",
            "pattern": "^https?://[^/?#@\\s]+",
            "description": "http(s) URL of the provider's API root. An http:// URL must point at loopback "
            "(127.0.0.0/8, ::1, localhost) unless allow_plaintext is true",
        },
        "allow_plaintext": {
            "type": "boolean",
            "description": "allow an http:// base_url to a host beyond loopback: prompts and the API key "
            "then cross the network unencrypted (only for a trusted network, e.g. a service mesh doing mTLS)",
        },
        "tls": {
            "type": "object",
            "additionalProperties": False,
            "description": "how Envoy checks an https:// provider's certificate; its host name (or IP) must "
            "always match the base_url's host",
            "properties": {
                "ca_file": {
                    "type": "string",
                    "description": "PEM bundle of CAs to trust instead of the system's (a private CA)",
                }
            },
        },
        "api_key_env": {"type": "string", "description": "environment variable holding the key"},
        "api_key_file": {"type": "string", "description": "file holding the key (k8s secret mount)"},
        "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "timeout_ms": {**_positive, "description": "the whole request (default 600000)"},
        "first_byte_timeout_ms": {**_positive, "description": "until the answer starts (default: no bound of its own)"},
        "idle_timeout_ms": {**_positive, "description": "between two pieces of the answer (default 120000)"},
        "capabilities": _capabilities,
        "unsupported": {"enum": ["drop", "reject"], "description": "what to do with features the provider lacks"},
        "default_max_tokens": _positive,
        "cache_ttl_s": CACHE_TTL,
        "azure": {
            "type": "object",
            "additionalProperties": False,
            "required": ["api_version"],
            "properties": {"api_version": {"type": "string"}},
            "description": "Azure OpenAI: deployment paths, api-version and the api-key header",
        },
        "mock": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "latency_ms": {"type": "integer", "minimum": 0},
                "text": {"type": "string"},
            },
        },
    },
}

_route = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model"],
    "oneOf": [{"required": ["provider"]}, {"required": ["pool"]}],
    "description": "first match wins: the model (exact or glob) and every `match` condition must hold",
    "properties": {
        "match": ROUTE_MATCH,
        "pool": {
            "type": "array",
            "minItems": 2,
            "items": POOL_MEMBER,
            "description": "providers Envoy balances (weight) and fails over between (priority), in one request; "
            "needs a route name",
        },
        "retry": RETRY,
        "timeouts": TIMEOUTS,
        "outlier_detection": OUTLIER_DETECTION,
        "circuit_breakers": CIRCUIT_BREAKERS,
        "name": {**_name, "description": "names the route in limits and the cache (default: its model pattern)"},
        "model": {"type": "string", "minLength": 1, "description": "model name or glob (gpt-*)"},
        "provider": {"type": "string"},
        "upstream_model": {"type": "string", "description": "model name sent to the provider"},
        "auth": AUTH_METHOD,
        "cache_ttl_s": CACHE_TTL,
    },
}

_listener = {
    "type": "object",
    "additionalProperties": False,
    "required": ["port"],
    "properties": {
        "name": _name,
        "address": {"type": "string"},
        "port": _port,
        "auth": AUTH_METHOD,
        "local_rate_limit": LOCAL_RATE_LIMIT,
        "tls": {
            "type": "object",
            "additionalProperties": False,
            "required": ["cert_file", "key_file"],
            "properties": {"cert_file": {"type": "string"}, "key_file": {"type": "string"}},
        },
    },
}

GATEWAY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "gateway.yaml",
    "type": "object",
    "additionalProperties": False,
    "required": ["providers"],
    "properties": {
        "log_level": {"enum": ["debug", "info", "warning", "error"]},
        "listeners": {"type": "array", "minItems": 1, "items": _listener},
        "extproc": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "address": {"type": "string"},
                "port": _port,
                "unix_socket": {"type": "string"},
                "workers": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 64,
                    "description": "ext_proc processes; each is one endpoint of Envoy's ext_proc cluster",
                },
                "admin_address": {"type": "string"},
                "admin_port": _port,
                "admin_token_env": {
                    "type": "string",
                    "description": "environment variable holding the bearer token for POST /reload from non-loopback peers",
                },
                "admin_token_file": {"type": "string", "description": "file holding that token (k8s secret mount)"},
                "message_timeout_ms": _positive,
                "grace_period_s": {"type": "number", "minimum": 0},
            },
        },
        "envoy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "admin_port": _port,
                "admin_socket": {
                    "type": "string",
                    "description": "serve Envoy's admin on this Unix socket (mode 0600) instead of 127.0.0.1:admin_port,"
                    " so no other container of the pod can reach it",
                },
                "xds_dir": {"type": "string"},
                "max_request_bytes": _positive,
                "base_id": {"type": "integer", "minimum": 0},
                "use_remote_address": {
                    "type": "boolean",
                    "description": "the client's address is the TCP peer's (default true); false trusts "
                    "X-Forwarded-For as sent, which only a proxy in front of Envoy should set",
                },
                "xff_num_trusted_hops": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 10,
                    "description": "proxies in front of Envoy whose X-Forwarded-For entries are trusted (default 0)",
                },
                "ready_port": {
                    **_port,
                    "description": "port where Envoy answers GET /ready (200; 503 while draining) for a Kubernetes "
                    "readiness probe: an extra address of the first listener, so it is bound only with it; it "
                    "serves nothing else (admin stays on 127.0.0.1). Off when absent",
                },
                "ready_address": {
                    "type": "string",
                    "description": "address for ready_port (default 127.0.0.1; 0.0.0.0 in a pod)",
                },
            },
        },
        "providers": {"type": "array", "minItems": 1, "items": _provider},
        "routes": {"type": "array", "items": _route},
        **AUTH_PROPERTIES,
        "breakers": BREAKERS,
        "store": STORE_SCHEMA,
        "limits": LIMITS_SCHEMA,
        "cache": CACHE_SCHEMA,
    },
}
