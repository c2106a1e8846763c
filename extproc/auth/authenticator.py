"""A request's credential -> its client Identity, under the method a listener or route asks for."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

from extproc.auth.apikeys import ApiKeyStore
from extproc.auth.credentials import find_credential
from extproc.auth.errors import AuthError
from extproc.auth.identity import ANONYMOUS, AuthMethod, Identity
from extproc.auth.keys_file import KeysFile
from extproc.auth.settings import AuthSettings
from extproc.observe.metrics import AUTH_FAILURES

if TYPE_CHECKING:
    from extproc.auth.jwt_verifier import JwtVerifier

_SEND_A_KEY = "a JWT is not accepted here; send an API key"
_SEND_A_JWT = "an API key is not accepted here; send a JWT"
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class Authenticator:
    def __init__(self, settings: AuthSettings, base_dir: Path) -> None:
        # base_dir is kept for symmetry with the loader; settings already hold resolved paths.
        self._base_dir = base_dir
        self._inline = ApiKeyStore(settings.clients)
        self._keys_file = KeysFile(settings.keys_file) if settings.keys_file is not None else None
        self._jwt: JwtVerifier | None = None
        if settings.jwt is not None:  # pyjwt and cryptography load only where JWTs are accepted
            from extproc.auth.jwt_verifier import JwtVerifier

            self._jwt = JwtVerifier(settings.jwt)

    async def authenticate(self, headers: Mapping[str, str], path: str, method: AuthMethod) -> Identity:
        if method == "none":
            return ANONYMOUS
        try:
            return await self._authenticate(headers, path, method)
        except AuthError as error:
            AUTH_FAILURES.labels(error.reason).inc()
            raise

    def admit(self, identity: Identity, method: AuthMethod) -> Identity:
        """The identity a route whose method is `method` serves, once the route is known: anyone, as
        anonymous, under `none`; else the caller, if it authenticated the way the route asks."""
        if method == "none":
            return ANONYMOUS
        if identity.method == method or (method == "any" and identity.method != "none"):
            return identity
        if identity.method == "none":
            error = AuthError("missing")
        else:
            error = AuthError("method_not_allowed", _SEND_A_JWT if method == "jwt" else _SEND_A_KEY)
        AUTH_FAILURES.labels(error.reason).inc()
        raise error

    async def _authenticate(self, headers: Mapping[str, str], path: str, method: AuthMethod) -> Identity:
        credential = find_credential(headers, path)
        if credential is None:
            raise AuthError("missing")
        if looks_like_jwt(credential.value):
            if method not in ("jwt", "any") or self._jwt is None:
                raise AuthError("method_not_allowed", _SEND_A_KEY)
            return await self._jwt.verify(credential.value)
        if method not in ("api_key", "any"):
            raise AuthError("method_not_allowed", _SEND_A_JWT)
        identity = self._inline.lookup(credential.value)
        if identity is None and self._keys_file is not None:
            identity = self._keys_file.current().lookup(credential.value)
        if identity is None:
            raise AuthError("unknown_key")
        return identity


def method_before_body(methods: set[str]) -> AuthMethod | None:
    """The one method to check a credential under at the request headers, given every method the
    request may meet once its route is known. When each of them needs a credential, a credential
    that fails the widest fails them all: it is refused before any body is read. None: some route
    takes anyone, so the check waits for the route."""
    if "none" in methods:
        return None
    if len(methods) == 1:
        return cast(AuthMethod, next(iter(methods)))
    return "any"


def looks_like_jwt(value: str) -> bool:
    """Three base64url segments whose first is a JSON object naming an alg."""
    if not _JWT_SHAPE.fullmatch(value):
        return False
    head = value.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header
