"""The Authenticator: method per listener, JWT vs API key routing, failures counted by reason."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import jwt
import pytest

from extproc.auth.apikeys import ClientRecord, hash_key
from extproc.auth.authenticator import Authenticator, looks_like_jwt
from extproc.auth.errors import AuthError
from extproc.auth.identity import ANONYMOUS, AuthMethod, Identity
from extproc.auth.settings import AuthSettings, JwtSettings
from extproc.observe.metrics import AUTH_FAILURES

SECRET = b"an-hs256-secret-of-at-least-32-bytes!!"
INLINE_KEY, FILE_KEY = "gw-inline-key", "gw-file-key"


def jwt_token(**extra: object) -> str:
    now = int(time.time())
    body = {"sub": "svc", "tenant": "t1", "iss": "https://i.test", "aud": "gw", "exp": now + 60, **extra}
    return jwt.encode(body, SECRET, algorithm="HS256")


@pytest.fixture
def authenticator(tmp_path: Path) -> Authenticator:
    keys_file = tmp_path / "clients.yaml"
    keys_file.write_text(f'clients:\n  - {{id: from-file, tenant: t2, key_hashes: ["{hash_key(FILE_KEY)}"]}}\n')
    settings = AuthSettings(
        default_method="any",
        clients=(ClientRecord("inline", "t1", (hash_key(INLINE_KEY),), ("gpt-*",), (("team", "a"),)),),
        keys_file=keys_file,
        jwt=JwtSettings(issuer="https://i.test", audience=("gw",), algorithms=("HS256",), secret=SECRET),
    )
    return Authenticator(settings, tmp_path)


def authenticate(auth: Authenticator, headers: dict[str, str], method: AuthMethod, path: str = "/v1/x") -> Identity:
    return asyncio.run(auth.authenticate(headers, path, method))


def failure(auth: Authenticator, headers: dict[str, str], method: AuthMethod, path: str = "/v1/x") -> str:
    with pytest.raises(AuthError) as raised:
        authenticate(auth, headers, method, path)
    return raised.value.reason


def test_method_none_is_anonymous_without_looking(authenticator: Authenticator) -> None:
    # Even a conflicting, malformed credential is not looked at.
    assert authenticate(authenticator, {"authorization": "Basic x", "x-api-key": "y"}, "none") is ANONYMOUS


def test_inline_client_then_keys_file_client(authenticator: Authenticator) -> None:
    inline = authenticate(authenticator, {"x-api-key": INLINE_KEY}, "api_key")
    assert (inline.client_id, inline.tenant, inline.method, inline.models) == ("inline", "t1", "api_key", ("gpt-*",))
    from_file = authenticate(authenticator, {}, "any", path=f"/v1beta/models/m:generateContent?key={FILE_KEY}")
    assert (from_file.client_id, from_file.tenant) == ("from-file", "t2")


def test_a_jwt_goes_to_the_verifier(authenticator: Authenticator) -> None:
    identity = authenticate(authenticator, {"authorization": f"Bearer {jwt_token()}"}, "jwt")
    assert (identity.client_id, identity.tenant, identity.method) == ("jwt:svc", "jwt:t1", "jwt")
    assert authenticate(authenticator, {"authorization": f"Bearer {jwt_token()}"}, "any").method == "jwt"


def test_a_jwt_where_only_api_keys_are_allowed_is_refused(authenticator: Authenticator) -> None:
    assert failure(authenticator, {"authorization": f"Bearer {jwt_token()}"}, "api_key") == "method_not_allowed"


def test_an_api_key_where_only_jwt_is_allowed_is_refused(authenticator: Authenticator) -> None:
    assert failure(authenticator, {"x-api-key": INLINE_KEY}, "jwt") == "method_not_allowed"


def test_no_credential_is_missing_and_an_unknown_key_is_unknown(authenticator: Authenticator) -> None:
    assert failure(authenticator, {}, "any") == "missing"
    assert failure(authenticator, {"x-api-key": "gw-nobody"}, "api_key") == "unknown_key"


def test_failures_are_counted_by_reason(authenticator: Authenticator) -> None:
    before = AUTH_FAILURES.labels("unknown_key")._value.get()
    failure(authenticator, {"x-api-key": "gw-nobody"}, "any")
    failure(authenticator, {"x-api-key": "gw-nobody-2"}, "any")
    assert AUTH_FAILURES.labels("unknown_key")._value.get() == before + 2


def test_a_jwt_with_a_bad_signature_is_not_tried_as_an_api_key(authenticator: Authenticator) -> None:
    forged = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, b"x" * 32, algorithm="HS256")
    assert failure(authenticator, {"authorization": f"Bearer {forged}"}, "any") == "bad_signature"


def test_jwt_shape_detection() -> None:
    assert looks_like_jwt(jwt_token())
    assert looks_like_jwt(jwt.encode({"a": 1}, None, algorithm="none"))  # then refused by the verifier
    assert not looks_like_jwt("gw-" + "a" * 43)
    assert not looks_like_jwt("abc.def.ghi")  # segments, but no JSON header
    assert not looks_like_jwt("eyJmb28iOjF9.e30.sig")  # JSON header without alg
