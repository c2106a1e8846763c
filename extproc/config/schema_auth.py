"""JSON Schema of gateway.yaml's client-auth sections: `auth`, `clients`, `keys_file`, `jwt`."""

from __future__ import annotations

from typing import Any

from extproc.auth.clients import CLIENT_SCHEMA
from extproc.auth.identity import AUTH_METHODS
from extproc.auth.settings import ALGORITHMS

AUTH_METHOD: dict[str, Any] = {
    "enum": list(AUTH_METHODS),
    "description": "client auth: none | api_key | jwt | any (an API key or a JWT)",
}

_claim = {"type": "string", "minLength": 1}

JWT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issuer", "audience"],
    "description": "JWT clients: give exactly one key source (jwks_file, jwks_url, secret_env, secret_file)",
    "properties": {
        "issuer": {"type": "string", "minLength": 1},
        "audience": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            ]
        },
        "algorithms": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(ALGORITHMS)}},
        "jwks_file": {"type": "string", "description": "JWKS file, re-read when it changes"},
        "jwks_url": {"type": "string", "pattern": "^https?://[^/?#@\\s]+", "description": "http(s) URL of a JWKS"},
        "secret_env": {"type": "string", "description": "HS256: environment variable holding the secret"},
        "secret_file": {"type": "string", "description": "HS256: file holding the secret"},
        "leeway_s": {"type": "number", "minimum": 0, "maximum": 600},
        "jwks_refresh_s": {"type": "number", "minimum": 10},
        "claims": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "client": _claim,
                "tenant": _claim,
                "models": _claim,
                "labels": {"type": "array", "items": _claim, "description": "string claims copied into labels"},
            },
        },
        "default_models": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "model globs for tokens without a models claim",
        },
    },
}

AUTH_PROPERTIES: dict[str, Any] = {
    "auth": AUTH_METHOD,
    "clients": {"type": "array", "items": CLIENT_SCHEMA, "description": "API-key clients; keys stored hashed only"},
    "keys_file": {"type": "string", "description": "YAML file with more clients (clients: [...]); reloaded on change"},
    "jwt": JWT_SCHEMA,
}
