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
_SOURCE = "; give one of jwks_file, jwks_url, secret_env, secret_file"

JWT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issuer", "audience"],
    "description": "JWT clients: give exactly one key source (jwks_file, jwks_url, secret_env, secret_file)",
    "properties": {
        "issuer": {
            "type": "string",
            "minLength": 1,
            "description": "the `iss` a token must carry",
            "examples": ["https://issuer.example"],
        },
        "audience": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            ],
            "description": "the `aud` a token must carry (one of these, when a list)",
            "examples": ["llm-gateway"],
        },
        "algorithms": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": list(ALGORITHMS)},
            "default": ["RS256", "ES256"],
            "description": "signing algorithms accepted: RS256/ES256 with a JWKS, HS256 with a secret (not both)",
        },
        "jwks_file": {
            "type": "string",
            "description": "JWKS file, re-read when it changes" + _SOURCE,
            "examples": ["jwks.json"],
        },
        "jwks_url": {
            "type": "string",
            "pattern": "^https?://[^/?#@\\s]+",
            "description": "http(s) URL of a JWKS, fetched by the ext_proc. An http:// URL must point at loopback "
            "(127.0.0.0/8, ::1, localhost) unless allow_plaintext is true" + _SOURCE,
            "examples": ["https://issuer.example/.well-known/jwks.json"],
        },
        "allow_plaintext": {
            "type": "boolean",
            "default": False,
            "description": "allow an http:// jwks_url to a host beyond loopback: whoever is on the path could "
            "swap the keys and sign any token (only for a trusted network, e.g. a service mesh doing mTLS)",
        },
        "secret_env": {
            "type": "string",
            "description": "HS256: environment variable holding the secret (at least 32 bytes)" + _SOURCE,
            "examples": ["GATEWAY_JWT_SECRET"],
        },
        "secret_file": {
            "type": "string",
            "description": "HS256: file holding the secret (at least 32 bytes)" + _SOURCE,
            "examples": ["/run/secrets/jwt/secret"],
        },
        "leeway_s": {
            "type": "number",
            "minimum": 0,
            "maximum": 600,
            "default": 30.0,
            "description": "clock skew allowed when checking `exp` and `nbf`, in seconds",
        },
        "jwks_refresh_s": {
            "type": "number",
            "minimum": 10,
            "default": 300.0,
            "description": "how often a jwks_url is fetched again; a token with an unknown `kid` fetches it sooner",
        },
        "claims": {
            "type": "object",
            "additionalProperties": False,
            "description": "which claims carry the client's identity",
            "properties": {
                "client": {
                    **_claim,
                    "default": "sub",
                    "description": "the claim naming the client; the gateway calls it `jwt:<value>` (in logs, "
                    "limits, route matches and the cache scope), so it never meets an API-key client's id",
                },
                "tenant": {
                    **_claim,
                    "default": "tenant",
                    "description": "the claim naming the client's tenant, called `jwt:<value>` like the client "
                    "(`jwt:default` for a token without it)",
                },
                "models": {
                    **_claim,
                    "default": "models",
                    "description": "the claim listing the model globs the client may use (a list, or one string "
                    "separated by spaces)",
                },
                "labels": {
                    "type": "array",
                    "items": _claim,
                    "default": [],
                    "description": "string claims copied into the client's labels (written in its access-log lines)",
                    "examples": [["team"]],
                },
            },
        },
        "default_models": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "default": ["*"],
            "description": "model globs for tokens without a models claim",
        },
    },
}

AUTH_PROPERTIES: dict[str, Any] = {
    "auth": {
        **AUTH_METHOD,
        "description": "client auth for every listener: none | api_key | jwt | any (an API key or a JWT); not "
        "set: any when clients, a keys_file or jwt are configured, else none",
    },
    "clients": {"type": "array", "items": CLIENT_SCHEMA, "description": "API-key clients; keys stored hashed only"},
    "keys_file": {
        "type": "string",
        "description": "YAML file with more clients (clients: [...]); reloaded on change",
        "examples": ["clients.yaml"],
    },
    "jwt": JWT_SCHEMA,
}
