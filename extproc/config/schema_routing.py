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
        "name": {"type": "string", "minLength": 1},
        "exact": {"type": "string"},
        "regex": {"type": "string"},
        "present": {"type": "boolean"},
    },
}

ROUTE_MATCH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "more conditions besides the model; all must hold",
    "properties": {
        "headers": {"type": "array", "items": _header_match},
        "clients": _strings,
        "tenants": _strings,
        "apis": {"type": "array", "minItems": 1, "items": {"enum": ["openai", "anthropic", "gemini"]}},
        "path_prefix": {"type": "string", "pattern": "^/"},
    },
}

POOL_MEMBER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["provider"],
    "properties": {
        "provider": {"type": "string"},
        "model": {"type": "string", "minLength": 1, "description": "the model name sent to this provider"},
        "weight": {**_positive, "maximum": 1000, "description": "load share among its priority (default 1)"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 10, "description": "failover order, 0 first"},
    },
}

RETRY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": {"type": "integer", "minimum": 0, "maximum": 5, "description": "retries after the first try"},
        "retry_on": {
            "type": "array",
            "items": {"enum": ["5xx", "reset", "connect-failure", "429"]},
            "description": "what is retried (default 5xx, reset, connect-failure)",
        },
    },
}

TIMEOUTS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "total_ms": {**_positive, "description": "the whole request, every attempt included"},
        "first_byte_ms": {**_positive, "description": "per attempt, until the provider's answer starts"},
        "idle_ms": {**_positive, "description": "per attempt, between two pieces of the answer (streams)"},
    },
}

OUTLIER_DETECTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Envoy ejects a provider endpoint that keeps failing",
    "properties": {
        "consecutive_5xx": _positive,
        "interval_ms": _positive,
        "base_ejection_ms": _positive,
        "max_ejection_percent": {"type": "integer", "minimum": 0, "maximum": 100},
    },
}

CIRCUIT_BREAKERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Envoy's limits on what is in flight to the pool's providers",
    "properties": {"max_connections": _positive, "max_pending_requests": _positive, "max_requests": _positive},
}

BREAKERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "a circuit breaker per provider, shared through the store; on when this section is present",
    "properties": {
        "failure_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description": "default 0.5"},
        "min_requests": {**_positive, "description": "seen in the window before the ratio counts (default 10)"},
        "window_s": {"type": "number", "exclusiveMinimum": 0, "description": "default 30"},
        "open_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "before a probe is let through (default 30)",
        },
    },
}
