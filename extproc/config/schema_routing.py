"""JSON Schema of a route's rule (`match`) and action (`pool`, `retry`, resilience settings)."""

from __future__ import annotations

from typing import Any

_positive = {"type": "integer", "minimum": 1}
_strings = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}

_header_match = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "description": "give one of exact, regex (whole value) or present",
    "properties": {
        "name": {
            "type": "string",
            "minLength": 1,
            "description": "the request header's name (case does not matter)",
            "examples": ["x-team"],
        },
        "exact": {"type": "string", "description": "the header's whole value", "examples": ["a"]},
        "regex": {
            "type": "string",
            "description": "a regular expression (Python syntax) the header's whole value must match",
            "examples": ["^beta-.*"],
        },
        "present": {
            "type": "boolean",
            "description": "true: the header must be sent; false: it must not be",
            "examples": [True],
        },
    },
}

ROUTE_MATCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "more conditions besides the model; all must hold",
    "properties": {
        "headers": {"type": "array", "items": _header_match, "description": "conditions on request headers"},
        "clients": {
            **_strings,
            "description": "the client's id is one of these (exact names; needs client auth)",
            "examples": [["search-team"]],
        },
        "tenants": {
            **_strings,
            "description": "the client's tenant is one of these (exact names; needs client auth)",
            "examples": [["acme"]],
        },
        "apis": {
            "type": "array",
            "minItems": 1,
            "items": {"enum": ["openai", "responses", "anthropic", "gemini"]},
            "description": "the API the client speaks is one of these (openai: Chat Completions and embeddings; "
            "responses: the Responses API)",
            "examples": [["anthropic"]],
        },
        "path_prefix": {
            "type": "string",
            "pattern": "^/",
            "description": "the request's path starts with this",
            "examples": ["/v1beta/"],
        },
    },
}

POOL_MEMBER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["provider"],
    "properties": {
        "provider": {
            "type": "string",
            "description": "a provider's name (not a mock provider: it answers locally)",
            "examples": ["openai"],
        },
        "model": {
            "type": "string",
            "minLength": 1,
            "description": "the model name sent to this provider (not set: the route's upstream_model, "
            "else the client's)",
            "examples": ["gemini-2.5-flash"],
        },
        "weight": {**_positive, "maximum": 1000, "default": 1, "description": "load share among its priority"},
        "priority": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "default": 0,
            "description": "failover order, 0 first: a priority is used once the ones before it failed",
        },
    },
}

RETRY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Envoy's retries for a pool: each retry goes to another provider of the pool (pools only)",
    "properties": {
        "attempts": {
            "type": "integer",
            "minimum": 0,
            "maximum": 5,
            "default": 2,
            "description": "retries after the first try",
        },
        "retry_on": {
            "type": "array",
            "items": {"enum": ["5xx", "reset", "connect-failure", "429"]},
            "default": ["5xx", "reset", "connect-failure"],
            "description": "what is retried: a 5xx answer, a reset connection, a failed connect, a 429",
        },
    },
}

TIMEOUTS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "a pool's timeouts (pools only; Envoy applies them per route, not per provider)",
    "properties": {
        "total_ms": {
            **_positive,
            "description": "the whole request, every attempt included (not set: the largest timeout_ms of the "
            "pool's providers)",
            "examples": [120000],
        },
        "first_byte_ms": {
            **_positive,
            "description": "per attempt, until the provider's answer starts (not set: the largest "
            "first_byte_timeout_ms of the pool's providers; none given: no bound per attempt)",
            "examples": [20000],
        },
        "idle_ms": {
            **_positive,
            "description": "per attempt, between two pieces of the answer (streams); not set: only the route's idle "
            "timeout, the largest idle_timeout_ms of the pool's providers, bounds a stall",
            "examples": [30000],
        },
    },
}

OUTLIER_DETECTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Envoy ejects a provider endpoint that keeps failing",
    "properties": {
        "consecutive_5xx": {
            **_positive,
            "default": 5,
            "description": "consecutive 5xx answers after which an endpoint is ejected",
        },
        "interval_ms": {**_positive, "default": 10000, "description": "how often ejections are evaluated"},
        "base_ejection_ms": {
            **_positive,
            "default": 30000,
            "description": "how long an ejected endpoint stays out (times the number of its ejections)",
        },
        "max_ejection_percent": {
            "type": "integer",
            "minimum": 0,
            "maximum": 100,
            "default": 100,
            "description": "the share of the pool's endpoints that may be ejected at once",
        },
    },
}

CIRCUIT_BREAKERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Envoy's limits on what is in flight to the pool's providers (pools only); over a limit, "
    "Envoy answers 503 at once",
    "properties": {
        "max_connections": {
            **_positive,
            "description": "connections to the pool's providers (not set: Envoy's default, 1024)",
            "examples": [1000],
        },
        "max_pending_requests": {
            **_positive,
            "description": "requests waiting for a connection (not set: Envoy's default, 1024)",
            "examples": [1000],
        },
        "max_requests": {
            **_positive,
            "description": "requests in flight (not set: Envoy's default, 1024)",
            "examples": [1000],
        },
    },
}

BREAKERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "a circuit breaker per provider, shared through the store; on when this section is present",
    "properties": {
        "failure_ratio": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": 0.5,
            "description": "the share of failed requests in the window (5xx, 429, timeouts, a single provider's "
            "resets; never a client hanging up) that opens the breaker",
        },
        "min_requests": {
            **_positive,
            "default": 10,
            "description": "requests seen in the window before the ratio counts",
        },
        "window_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30.0,
            "description": "the window the failure ratio is measured over",
        },
        "open_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 30.0,
            "description": "how long the breaker stays open before a probe is let through",
        },
    },
}
