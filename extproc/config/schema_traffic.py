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
        "backend": {
            "enum": ["memory", "redis"],
            "description": "memory (this process only) or redis (not set: redis when store.redis is given, "
            "else memory); restart to change",
        },
        "redis": {
            "type": "object",
            "additionalProperties": False,
            "required": ["url"],
            "description": "the Redis server (restart to change)",
            "properties": {
                "url": {
                    "type": "string",
                    "pattern": "^rediss?://[^\\s]+$",
                    "description": "redis://host:port/db, or rediss:// for TLS; no password in it",
                    "examples": ["redis://redis:6379/0"],
                },
                "password_env": {
                    "type": "string",
                    "description": "environment variable holding the password",
                    "examples": ["REDIS_PASSWORD"],
                },
                "password_file": {
                    "type": "string",
                    "description": "file holding the password (k8s secret mount)",
                    "examples": ["/run/secrets/redis/password"],
                },
                "ca_file": {
                    "type": "string",
                    "description": "PEM CAs to verify a rediss:// server with",
                    "examples": ["redis-ca.pem"],
                },
                "key_prefix": {
                    "type": "string",
                    "maxLength": 64,
                    "default": "gw:",
                    "description": "prefix of every key the gateway writes (several gateways can share one Redis)",
                },
                "timeout_ms": {
                    **_positive,
                    "default": 250,
                    "description": "per command and connect: a Redis outage costs a request at most this",
                },
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
        "name": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_.-]*$",
            "maxLength": 60,
            "description": "names the rule in metrics and in the 429's message",
            "examples": ["per-client"],
        },
        "key": {
            "type": "array",
            "items": {"enum": list(LIMIT_KEYS)},
            "uniqueItems": True,
            "description": "what is counted separately: [client] is per client, [tenant, model] per tenant and "
            "model, [] one budget for everything the rule matches",
            "examples": [["client"]],
        },
        "match": {
            "type": "object",
            "additionalProperties": False,
            "description": "the rule applies only to requests matching all of these (globs for models)",
            "properties": {
                "clients": {**_strings, "description": "client ids (exact)", "examples": [["search-team"]]},
                "tenants": {**_strings, "description": "tenants (exact)", "examples": [["acme"]]},
                "providers": {**_strings, "description": "provider names (exact)", "examples": [["openai"]]},
                "models": {**_strings, "description": "model globs (the client's model)", "examples": [["gpt-4o*"]]},
                "routes": {**_strings, "description": "route names (exact)", "examples": [["chat"]]},
            },
        },
        "window_s": {**_seconds, "default": 60.0, "description": "the window requests and tokens are counted over"},
        "requests": {**_positive, "description": "requests per window", "examples": [60]},
        "tokens": {**_positive, "description": "input + output tokens per window", "examples": [100000]},
        "concurrent_streams": {
            **_positive,
            "description": "streaming requests in flight at once",
            "examples": [4],
        },
    },
}

LIMITS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "rate limits in requests, tokens and concurrent streams, kept in the store",
    "properties": {
        "on_store_error": {
            "enum": ["allow", "deny"],
            "default": "allow",
            "description": "when the store cannot be reached: let requests through (allow) or refuse them with a "
            "503 (deny)",
        },
        "rules": {
            "type": "array",
            "items": _limit_rule,
            "description": "a request is charged in every rule that matches it (all at once, or none)",
        },
    },
}

CACHE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "exact-match response cache, per tenant; on when this section is present",
    "properties": {
        "enabled": {
            "type": "boolean",
            "default": True,
            "description": "false turns the cache off and keeps the section",
        },
        "scope": {"enum": ["tenant", "client"], "default": "tenant", "description": "who shares entries"},
        "chat_ttl_s": {**_seconds, "default": 300.0, "description": "how long a chat answer is kept"},
        "embeddings_ttl_s": {**_seconds, "default": 86400.0, "description": "how long embeddings are kept"},
        "max_entries": {**_positive, "default": 10000, "description": "entries kept; the least recently used go"},
        "max_bytes": {
            **_positive,
            "default": 67108864,
            "description": "bytes kept (64 MiB); the least recently used entries go",
        },
        "max_entry_bytes": {
            **_positive,
            "default": 1048576,
            "description": "answers larger than this are not cached",
        },
    },
}

CACHE_TTL = {
    "type": "number",
    "minimum": 0,
    "description": "cache TTL for answers through this route or provider, in seconds (0: never cached); a "
    "route's wins over its provider's; not set: cache.chat_ttl_s or cache.embeddings_ttl_s",
    "examples": [600],
}

LOCAL_RATE_LIMIT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["requests_per_s"],
    "description": "Envoy's local_ratelimit on this listener: a coarse guard in front of everything (per Envoy)",
    "properties": {
        "requests_per_s": {**_positive, "description": "requests per second, refilled evenly", "examples": [500]},
        "burst": {**_positive, "description": "requests allowed at once (not set: requests_per_s)", "examples": [1000]},
    },
}
