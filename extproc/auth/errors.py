"""Why authentication failed: a bounded reason (a metric label) and a message safe to show the client."""

from __future__ import annotations

from typing import Literal

AuthReason = Literal[
    "missing",
    "malformed",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "unknown_kid",
    "alg_not_allowed",
    "method_not_allowed",
    "jwks_unavailable",
]

_DEFAULT_MESSAGES: dict[str, str] = {
    "missing": "no credential: send an API key or a bearer token",
    "malformed": "the credential is malformed",
    "unknown_key": "unknown API key",
    "bad_signature": "the token signature is not valid",
    "expired": "the token has expired",
    "not_yet_valid": "the token is not valid yet",
    "wrong_issuer": "the token was issued by an issuer this gateway does not trust",
    "wrong_audience": "the token is not meant for this gateway",
    "unknown_kid": "the token was signed with an unknown key",
    "alg_not_allowed": "the token's signing algorithm is not allowed",
    "method_not_allowed": "this kind of credential is not accepted here",
    "jwks_unavailable": "the token signing keys are unavailable; try again later",
}


class AuthError(Exception):
    """Authentication failed. Never put the credential into `message`: clients and logs see it."""

    def __init__(self, reason: AuthReason, message: str | None = None) -> None:
        self.reason: AuthReason = reason
        self.message: str = message or _DEFAULT_MESSAGES[reason]
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"AuthError({self.reason!r}, {self.message!r})"
