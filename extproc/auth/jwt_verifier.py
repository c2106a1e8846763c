"""Verify a client's JWT (pyjwt) and turn its claims into an Identity.

The token's header is checked before any decoding: an algorithm outside the
configured list (`none`, or HS256 signed with an RSA public key as the
secret) is refused without ever choosing a key for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
from jwt import PyJWK

from extproc.auth.errors import AuthError
from extproc.auth.identity import Identity, Labels, jwt_name
from extproc.auth.jwks import JwksFile, JwksUrl, KeySet, KeySource
from extproc.auth.settings import JwtSettings

UNKNOWN_KID_REFRESH_S = 10.0  # a flood of made-up kids must not become a flood of JWKS fetches


class JwtVerifier:
    def __init__(self, settings: JwtSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._source: KeySource | None = None
        if settings.jwks_file is not None:
            self._source = JwksFile(settings.jwks_file, clock)
        elif settings.jwks_url is not None:
            self._source = JwksUrl(settings.jwks_url, settings.jwks_refresh_s, clock)
        self._last_forced_refresh = float("-inf")

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthError("malformed", "the bearer token is not a valid JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._settings.algorithms:
            raise AuthError("alg_not_allowed")
        key = self._settings.secret if alg == "HS256" else await self._public_key(header, alg)
        claims = self._decode(token, key, alg)
        return self._identity(claims)

    async def _public_key(self, header: dict[str, Any], alg: str) -> Any:
        if self._source is None:
            raise AuthError("alg_not_allowed")
        kid = header.get("kid", "")
        if not isinstance(kid, str):
            raise AuthError("malformed", "the token's kid is not a string")
        found = _pick(await self._source.keys(), kid)
        if found is None and self._may_force_refresh():
            found = _pick(await self._source.keys(refresh=True), kid)
        if found is None:
            raise AuthError("unknown_kid")
        if found.algorithm_name != alg:
            raise AuthError("alg_not_allowed", "the token's algorithm does not match its key")
        return found.key

    def _may_force_refresh(self) -> bool:
        now = self._clock()
        if now - self._last_forced_refresh < UNKNOWN_KID_REFRESH_S:
            return False
        self._last_forced_refresh = now
        return True

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        s = self._settings
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(s.audience),
                issuer=s.issuer,
                leeway=s.leeway_s,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("not_yet_valid") from None
        except jwt.InvalidAudienceError:
            raise AuthError("wrong_audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("wrong_issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthError("bad_signature") from None
        except jwt.MissingRequiredClaimError as error:
            reason = {"iss": "wrong_issuer", "aud": "wrong_audience"}.get(error.claim)
            if reason is not None:
                raise AuthError(reason) from None  # type: ignore[arg-type]
            raise AuthError("malformed", f"the token lacks the {error.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise AuthError("malformed", "the bearer token is not a valid JWT") from None

    def _identity(self, claims: dict[str, Any]) -> Identity:
        s = self._settings
        client = claims.get(s.client_claim)
        if not isinstance(client, str) or not client:
            raise AuthError("malformed", f"the token lacks the {s.client_claim!r} claim")
        tenant = claims.get(s.tenant_claim)
        labels = {name: claims[name] for name in s.labels_claims if isinstance(claims.get(name), str)}
        return Identity(  # in the JWT namespace: a `sub` equal to an API-key client's id is another caller
            client_id=jwt_name(client),
            tenant=jwt_name(tenant if isinstance(tenant, str) and tenant else "default"),
            models=_models(claims.get(s.models_claim), s.default_models),
            labels=Labels(labels),
            method="jwt",
        )


def _pick(keys: KeySet, kid: str) -> PyJWK | None:
    if kid:
        return keys.get(kid)
    # A token without kid: only unambiguous when the set holds one key.
    return next(iter(keys.values())) if len(keys) == 1 else None


def _models(claim: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(claim, str):
        return tuple(claim.split())
    if isinstance(claim, list) and all(isinstance(glob, str) for glob in claim):
        return tuple(claim)
    if claim is None:
        return default
    raise AuthError("malformed", "the token's models claim must be a list or a space separated string")
