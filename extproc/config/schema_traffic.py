"""JSON Schema of gateway.yaml's shared-traffic sections: `store`, `limits`, `cache`."""

from __future__ import annotations

from typing import Any

LIMIT_KEYS = ("client", "tenant", "provider", "model", "route")

_positive = {"type": "integer", "minimum": 1}
_seconds = {"type": "number", "exclusiveMinimum": 0}
_strings = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}

STORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "where limits and the cache live: memory (one process) or redis (shared by workers and replicas)",
    "properties": {
        "backend": {"enum": ["memory", "redis"]},
        "redis": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "properties": {
                "url": {
                    "type": "string",
                    "pattern": "^rediss?://[^\\s]+$",
                    "description": "redis://host:port/db, or rediss:// for TLS; no password in it",
                },
                "password_env": {"type": "string", "description": "environment variable holding the password"},
                "password_file": {"type": "string", "description": "file holding the password (k8s secret mount)"},
                "ca_file": {"type": "string", "description": "PEM CAs to verify a rediss:// server with"},
                "key_prefix": {"type": "string", "maxLength": 64},
                "timeout_ms": {**_positive, "description": "per command and connect (default 250)"},
            },
        },
    },
}

_limit_rule = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "key"],
    "anyOf": [{"required": ["requests"]}, {"required": ["tokens"]}, {"required": ["concurrent_streams"]}],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$", "maxLength": 60},
        "key": {
            "type": "array",
            "items": {"enum": list(LIMIT_KEYS)},
            "uniqueItems": True,
            "description": "what is counted separately: [client] is per client, [tenant, model] per tenant and "
            "model, [] one budget for everything the rule matches",
        },
        "match": {
            "type": "object",
            "additionalProperties": False,
            "description": "the rule applies only to requests matching all of these (globs for models)",
            "properties": {
                "clients": _strings,
                "tenants": _strings,
                "providers": _strings,
                "models": _strings,
                "routes": _strings,
            },
        },
        "window_s": {**_seconds, "description": "the window requests and tokens are counted over (default 60)"},
        "requests": {**_positive, "description": "requests per window"},
        "tokens": {**_positive, "description": "input + output tokens per window"},
        "concurrent_streams": {**_positive, "description": "streaming requests in flight at once"},
    },
}

LIMITS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "on_store_error": {
            "enum": ["allow", "deny"],
            "description": "when the store cannot be reached: let requests through (default) or refuse them",
        },
        "rules": {"type": "array", "items": _limit_rule},
    },
}

CACHE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "exact-match response cache, per tenant; on when this section is present",
    "properties": {
        "enabled": {"type": "boolean"},
        "scope": {"enum": ["tenant", "client"], "description": "who shares entries (default tenant)"},
        "chat_ttl_s": {**_seconds, "description": "default 300"},
        "embeddings_ttl_s": {**_seconds, "description": "default 86400"},
        "max_entries": {**_positive, "description": "default 10000"},
        "max_bytes": {**_positive, "description": "default 64 MiB"},
        "max_entry_bytes": {**_positive, "description": "larger answers are not cached (default 1 MiB)"},
    },
}

CACHE_TTL = {
    "type": "number",
    "minimum": 0,
    "description": "cache TTL for answers through this route or provider (0: never cached)",
}

LOCAL_RATE_LIMIT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["requests_per_s"],
    "description": "Envoy's local_ratelimit on this listener: a coarse guard in front of everything (per Envoy)",
    "properties": {"requests_per_s": _positive, "burst": _positive},
}
