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

PROVIDER_KINDS = ["openai", "openai-compatible", "openai-responses", "anthropic", "gemini", "mock"]

_port = {"type": "integer", "minimum": 1, "maximum": 65535}
_positive = {"type": "integer", "minimum": 1}
# extproc.max_stream_line_bytes's default, declared here once (the SSE parser's own default reads it).
MAX_STREAM_LINE_BYTES = 4 * 1024 * 1024
_name = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "maxLength": 60}

_capabilities = {
    "type": "object",
    "additionalProperties": False,
    "description": "What the provider supports; requests using more are adapted, dropped or rejected.",
    "properties": {
        "streaming": {
            "type": "boolean",
            "default": True,
            "description": "the provider can stream; false: a client's stream is served from its whole answer",
        },
        "tools": {
            "type": "boolean",
            "default": True,
            "description": "the provider takes tool (function) definitions; false: tools are dropped or rejected",
        },
        "images": {
            "type": "boolean",
            "default": True,
            "description": "the provider takes images in user messages; false: images are dropped or rejected",
        },
        "json_schema": {
            "type": "boolean",
            "default": True,
            "description": "the provider follows a JSON Schema response format; false: the schema is dropped "
            "(plain JSON mode is asked instead) or rejected",
        },
        "embeddings": {
            "type": "boolean",
            "default": True,
            "description": "the provider has an embeddings API; false: embeddings requests for it are a 400",
        },
        "max_tokens": {
            **_positive,
            "description": "the largest max_tokens the provider takes: a request asking for more is capped to it "
            "(not set: no cap)",
            "examples": [8192],
        },
    },
}

_provider = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind"],
    "properties": {
        "name": {
            **_name,
            "description": "unique name: routes and pools refer to it, metrics and logs show it, and "
            "GATEWAY_PROVIDER_<NAME>_API_KEY / _BASE_URL override its key and base_url",
            "examples": ["openai"],
        },
        "kind": {
            "enum": PROVIDER_KINDS,
            "description": "the provider's API (docs/providers/<kind>.md); mock answers locally, for tests",
        },
        "base_url": {
            "type": "string",
            "pattern": "^https?://[^/?#@\\s]+",
            "description": "http(s) URL of the provider's API root (required except for kind mock). An http:// "
            "URL must point at loopback (127.0.0.0/8, ::1, localhost) unless allow_plaintext is true",
            "examples": ["https://api.openai.com/v1"],
        },
        "allow_plaintext": {
            "type": "boolean",
            "default": False,
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
                    "description": "PEM bundle of CAs to trust instead of the system's (a private CA); Envoy watches its "
                    "directory: a bundle replaced there (a Kubernetes secret's update) is trusted for new "
                    "connections without a restart",
                    "examples": ["private-ca.pem"],
                }
            },
        },
        "api_key_env": {
            "type": "string",
            "description": "environment variable holding the key (openai, anthropic and gemini need a key)",
            "examples": ["OPENAI_API_KEY"],
        },
        "api_key_file": {
            "type": "string",
            "description": "file holding the key (k8s secret mount); a change to it is applied like a config reload",
            "examples": ["/run/secrets/openai/key"],
        },
        "models": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "default": [],
            "description": "model names served by this provider even when no route names them; listed by "
            "GET /v1/models",
            "examples": [["gpt-4o-mini", "gpt-4o"]],
        },
        "timeout_ms": {
            **_positive,
            "default": 600000,
            "description": "the whole request, to the answer's last byte (Envoy's route timeout)",
        },
        "first_byte_timeout_ms": {
            **_positive,
            "description": "until the answer starts (not set: no bound of its own)",
            "examples": [30000],
        },
        "idle_timeout_ms": {
            **_positive,
            "default": 120000,
            "description": "between two pieces of the answer",
        },
        "capabilities": _capabilities,
        "unsupported": {
            "enum": ["drop", "reject"],
            "default": "drop",
            "description": "what to do with a feature the provider lacks: drop it (named in the "
            "x-gateway-dropped-features response header) or reject the request with a 400",
        },
        "default_max_tokens": {
            **_positive,
            "default": 4096,
            "description": "max_tokens sent to an anthropic provider when the client gave none (its API requires one)",
        },
        "cache_ttl_s": CACHE_TTL,
        "azure": {
            "type": "object",
            "additionalProperties": False,
            "required": ["api_version"],
            "properties": {
                "api_version": {
                    "type": "string",
                    "description": "the api-version query parameter of every request",
                    "examples": ["2024-10-21"],
                }
            },
            "description": "Azure OpenAI: deployment paths, api-version and the api-key header",
        },
        "mock": {
            "type": "object",
            "additionalProperties": False,
            "description": "the mock provider's answers (kind mock only)",
            "properties": {
                "latency_ms": {
                    "type": "integer",
                    "minimum": 0,
                    "default": 0,
                    "description": "wait this long before answering (inside the ext_proc)",
                },
                "text": {
                    "type": "string",
                    "default": "This is the gateway's mock provider answering.",
                    "description": "the answer's text, cut to the request's max_tokens words",
                },
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
        "name": {
            **_name,
            "description": "names the route in limits, the cache and metrics (not set: its model pattern); "
            "required for a pool",
            "examples": ["chat"],
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "description": "model name or glob (gpt-*) the client asks for",
            "examples": ["gpt-*"],
        },
        "provider": {
            "type": "string",
            "description": "the provider's name (give provider or pool)",
            "examples": ["openai"],
        },
        "upstream_model": {
            "type": "string",
            "description": "model name sent to the provider (not set: the client's)",
            "examples": ["gpt-4o-mini"],
        },
        "auth": {
            **AUTH_METHOD,
            "description": "this route's client auth, instead of its listener's: a credential is checked on the "
            "request headers under the widest method of the routes they leave possible (once the body is read "
            "when one of them is none), and the route taken admits only its own; not with match.clients or "
            "match.tenants",
        },
        "cache_ttl_s": CACHE_TTL,
    },
}

_listener = {
    "type": "object",
    "additionalProperties": False,
    "required": ["port"],
    "properties": {
        "name": {
            **_name,
            "description": "names the listener, as in Envoy's stats (gateway_<name>.*); not set: listener<index>",
            "examples": ["main"],
        },
        "address": {
            "type": "string",
            "default": "127.0.0.1",
            "description": "address Envoy listens on; beyond loopback, client auth (or an explicit auth: none) "
            "is required. The first listener's: GATEWAY_LISTEN_ADDRESS",
        },
        "port": {
            **_port,
            "description": "port Envoy listens on. The first listener's: GATEWAY_LISTEN_PORT",
            "examples": [10000],
        },
        "auth": {**AUTH_METHOD, "description": "this listener's client auth (not set: the top-level auth)"},
        "local_rate_limit": LOCAL_RATE_LIMIT,
        "tls": {
            "type": "object",
            "additionalProperties": False,
            "required": ["cert_file", "key_file"],
            "description": "serve HTTPS on this listener (HTTP/2 or HTTP/1.1, chosen by ALPN). Envoy watches "
            "the certificate's directory: files replaced there (a Kubernetes secret's update, a renewal) are "
            "served to new connections without a restart",
            "properties": {
                "cert_file": {
                    "type": "string",
                    "description": "PEM certificate chain presented to clients",
                    "examples": ["certs/gateway.pem"],
                },
                "key_file": {
                    "type": "string",
                    "description": "PEM private key of that certificate",
                    "examples": ["certs/gateway-key.pem"],
                },
            },
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
        "log_level": {
            "enum": ["debug", "info", "warning", "error"],
            "default": "info",
            "description": "level of the ext_proc's JSON log lines (GATEWAY_LOG_LEVEL overrides it)",
        },
        "log_bodies": {
            "type": "boolean",
            "default": False,
            "description": "debugging aid: the access line also carries the request's and the answer's bodies, "
            "with credentials (key-like fields) and images (base64 data, data: URLs) redacted; never in production",
        },
        "listeners": {
            "type": "array",
            "minItems": 1,
            "items": _listener,
            "default": [{"name": "main", "port": 10000}],
            "description": "Envoy's listeners; each serves the OpenAI, Anthropic and Gemini APIs",
        },
        "extproc": {
            "type": "object",
            "additionalProperties": False,
            "description": "the ext_proc service: its gRPC address, worker processes and admin HTTP server",
            "properties": {
                "address": {
                    "type": "string",
                    "default": "127.0.0.1",
                    "description": "address of the gRPC service Envoy calls, for `extproc serve` (restart to change)",
                },
                "port": {
                    **_port,
                    "default": 50051,
                    "description": "gRPC port of `extproc serve`; worker N listens on port + N. `extproc run` (Envoy on the same "
                    "host) uses a 0600 socket among its run files instead, unless unix_socket is set "
                    "(GATEWAY_EXTPROC_PORT; restart to change)",
                },
                "unix_socket": {
                    "type": "string",
                    "description": "serve gRPC on this Unix socket (mode 0600; worker N on <path>.N) instead of TCP "
                    "(GATEWAY_EXTPROC_SOCKET; restart to change)",
                    "examples": ["/run/gateway/extproc.sock"],
                },
                "workers": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 64,
                    "default": 1,
                    "description": "ext_proc processes; each is one endpoint of Envoy's ext_proc cluster. With "
                    "limits or the cache, more than one needs store.backend redis (restart to change)",
                },
                "admin_address": {
                    "type": "string",
                    "default": "127.0.0.1",
                    "description": "address of the admin HTTP server: /healthz, /readyz, /metrics, /status, "
                    "POST /reload (restart to change)",
                },
                "admin_port": {
                    **_port,
                    "default": 9090,
                    "description": "port of the admin HTTP server (GATEWAY_ADMIN_PORT; restart to change)",
                },
                "admin_token_env": {
                    "type": "string",
                    "description": "environment variable holding the bearer token that GET /status and POST /reload then "
                    "need from every peer, loopback included",
                    "examples": ["GATEWAY_ADMIN_TOKEN"],
                },
                "admin_token_file": {
                    "type": "string",
                    "description": "file holding that token (k8s secret mount)",
                    "examples": ["/run/secrets/gateway/admin-token"],
                },
                "message_timeout_ms": {
                    **_positive,
                    "default": 30000,
                    "description": "how long Envoy waits for each answer of the ext_proc; slower is a 504 "
                    "(gateway_timeout). Size it for the largest body accepted",
                },
                "max_stream_line_bytes": {
                    "type": "integer",
                    "minimum": 1024,
                    "maximum": 1 << 30,
                    "default": MAX_STREAM_LINE_BYTES,
                    "description": "the longest line (or SSE event) of a provider's stream the gateway reads (4 "
                    "MiB): a longer one ends the client's stream with an in-band error in its format, so a "
                    "provider cannot make the ext_proc hold and scan an endless line",
                },
                "grace_period_s": {
                    "type": "number",
                    "minimum": 0,
                    "default": 10.0,
                    "description": "on SIGTERM, how long requests in flight may take to finish",
                },
                "busy_poll_us": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 100000,
                    "default": 500,
                    "description": "after each ext_proc message, how long (µs) each ext_proc process keeps "
                    "polling for the next one instead of sleeping, while its connection from Envoy carries at most "
                    "4 streams: at low concurrency each message then skips a process wake-up (README, "
                    "Performance), for up to this much CPU after each burst of messages; 0 turns it off "
                    "(restart to change)",
                },
            },
        },
        "envoy": {
            "type": "object",
            "additionalProperties": False,
            "description": "the Envoy process: admin, rendered files, request size, client addresses, readiness",
            "properties": {
                "admin_port": {
                    **_port,
                    "default": 9901,
                    "description": "port of Envoy's admin on 127.0.0.1 (GATEWAY_ENVOY_ADMIN_PORT; restart to change)",
                },
                "admin_socket": {
                    "type": "string",
                    "description": "serve Envoy's admin on this Unix socket (mode 0600) instead of 127.0.0.1:admin_port,"
                    " so no other container of the pod can reach it (restart to change)",
                    "examples": ["/run/gateway/envoy-admin.sock"],
                },
                "xds_dir": {
                    "type": "string",
                    "description": "directory of the files Envoy watches (lds.yaml, cds.yaml, secrets/); the bootstrap "
                    "is written beside it (GATEWAY_XDS_DIR; restart to change). Unset: .run/<pid>/xds, this "
                    "instance's own, removed when it stops",
                    "examples": ["/run/gateway/xds"],
                },
                "max_request_bytes": {
                    **_positive,
                    "default": 33554432,
                    "description": "the largest request body Envoy buffers (32 MiB); a larger one is a 413",
                },
                "base_id": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Envoy's --base-id, to run several Envoys on one host (not set: hot restart is "
                    "disabled; restart to change)",
                    "examples": [1],
                },
                "concurrency": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 256,
                    "description": "Envoy's worker threads when `extproc run` starts it (--concurrency; restart to "
                    "change). Not set: one per core this process may use (its CPU affinity and cgroup quota; Envoy's "
                    "own default counts every core of the host)",
                    "examples": [2],
                },
                "use_remote_address": {
                    "type": "boolean",
                    "default": True,
                    "description": "true: the client's address is the TCP peer's; false trusts "
                    "X-Forwarded-For as sent, which only a proxy in front of Envoy should set",
                },
                "xff_num_trusted_hops": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 10,
                    "default": 0,
                    "description": "proxies in front of Envoy whose X-Forwarded-For entries are trusted",
                },
                "ready_port": {
                    **_port,
                    "description": "port where Envoy answers GET /ready (200; 503 while draining) for a Kubernetes "
                    "readiness probe, and Envoy's metrics (GET /stats/prometheus) and the ext_proc's (GET /metrics) for "
                    "a scraper: an extra address of the first listener, so it is bound only with it; it serves "
                    "nothing else (both admin servers can stay on loopback or a Unix socket). Off when absent",
                    "examples": [9902],
                },
                "ready_address": {
                    "type": "string",
                    "default": "127.0.0.1",
                    "description": "address for ready_port (0.0.0.0 in a pod)",
                },
            },
        },
        "providers": {
            "type": "array",
            "minItems": 1,
            "items": _provider,
            "description": "the LLM providers the gateway calls",
        },
        "routes": {
            "type": "array",
            "items": _route,
            "default": [],
            "description": "rules picking a provider or pool per request, first match wins; a model no rule takes "
            "goes to the provider listing it in models, else it is a 404",
        },
        **AUTH_PROPERTIES,
        "breakers": BREAKERS,
        "store": STORE_SCHEMA,
        "limits": LIMITS_SCHEMA,
        "cache": CACHE_SCHEMA,
    },
}
