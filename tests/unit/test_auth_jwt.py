"""JWT verification with real keys: algorithms, claims, time, and JWKS rotation from a file and a URL."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from extproc.auth.errors import AuthError
from extproc.auth.jwt_verifier import JwtVerifier
from extproc.auth.settings import JwtSettings

ISSUER, AUDIENCE = "https://issuer.test", "llm-gateway"
SECRET = b"an-hs256-secret-of-at-least-32-bytes!!"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(key: Any, kid: str) -> dict[str, Any]:
    public = key.public_key()
    as_dict = RSAAlgorithm.to_jwk(public, as_dict=True) if isinstance(key, rsa.RSAPrivateKey) else None
    as_dict = as_dict or ECAlgorithm.to_jwk(public, as_dict=True)
    return {**as_dict, "kid": kid, "use": "sig"}


def jwks(*pairs: tuple[Any, str]) -> dict[str, Any]:
    return {"keys": [jwk(key, kid) for key, kid in pairs]}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "svc-a", "tenant": "acme", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def token(key: Any, alg: str, kid: str | None = "k1", **overrides: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def settings(tmp_path: Path, **overrides: Any) -> JwtSettings:
    path = tmp_path / "jwks.json"
    if not path.exists():
        path.write_text(json.dumps(jwks((RSA_KEY, "k1"), (EC_KEY, "e1"))))
    base = JwtSettings(issuer=ISSUER, audience=(AUDIENCE,), jwks_file=path, labels_claims=("team",))
    return replace(base, **overrides)


def verify(verifier: JwtVerifier, value: str) -> Any:
    return asyncio.run(verifier.verify(value))


def reason_of(verifier: JwtVerifier, value: str) -> str:
    with pytest.raises(AuthError) as raised:
        verify(verifier, value)
    assert value not in str(raised.value) and value not in repr(raised.value)
    return raised.value.reason


def test_rs256_token_from_the_jwks_file_gives_its_identity(tmp_path: Path) -> None:
    verifier = JwtVerifier(settings(tmp_path))
    identity = verify(verifier, token(RSA_KEY, "RS256", models=["gpt-*"], team="search", level=3))
    assert (identity.client_id, identity.tenant, identity.method) == ("jwt:svc-a", "jwt:acme", "jwt")
    assert identity.models == ("gpt-*",)
    assert dict(identity.labels) == {"team": "search"}


def test_es256_token_is_accepted(tmp_path: Path) -> None:
    identity = verify(JwtVerifier(settings(tmp_path)), token(EC_KEY, "ES256", kid="e1"))
    assert identity.client_id == "jwt:svc-a"


def test_hs256_token_with_the_configured_secret_is_accepted(tmp_path: Path) -> None:
    verifier = JwtVerifier(settings(tmp_path, algorithms=("HS256",), jwks_file=None, secret=SECRET))
    assert verify(verifier, token(SECRET, "HS256", kid=None)).client_id == "jwt:svc-a"
    assert reason_of(verifier, token(b"another-secret-of-at-least-32-bytes-long", "HS256", kid=None)) == "bad_signature"


def test_models_claim_as_space_separated_string_or_absent(tmp_path: Path) -> None:
    verifier = JwtVerifier(settings(tmp_path, default_models=("mock-*",)))
    assert verify(verifier, token(RSA_KEY, "RS256", models="gpt-4o claude-*")).models == ("gpt-4o", "claude-*")
    identity = verify(verifier, token(RSA_KEY, "RS256"))
    assert identity.models == ("mock-*",)
    assert identity.allows("mock-1") and not identity.allows("gpt-4o")


def test_a_token_signed_by_another_key_with_a_known_kid_has_a_bad_signature(tmp_path: Path) -> None:
    assert reason_of(JwtVerifier(settings(tmp_path)), token(RSA_KEY_2, "RS256")) == "bad_signature"


def test_alg_none_is_refused(tmp_path: Path) -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})
    assert reason_of(JwtVerifier(settings(tmp_path)), unsigned) == "alg_not_allowed"


def test_hs256_signed_with_the_rsa_public_key_is_refused(tmp_path: Path) -> None:
    # Key confusion: the public key is public, so an HMAC "signed" with it proves nothing.
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac
    from base64 import urlsafe_b64encode

    def b64(data: bytes) -> str:
        return urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims()).encode())
    signature = b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert reason_of(JwtVerifier(settings(tmp_path)), f"{head}.{body}.{signature}") == "alg_not_allowed"


def test_an_alg_that_does_not_match_the_kid_key_is_refused(tmp_path: Path) -> None:
    # An ES256 token naming the RSA key's kid.
    assert reason_of(JwtVerifier(settings(tmp_path)), token(EC_KEY, "ES256", kid="k1")) == "alg_not_allowed"


def test_expired_token_is_refused(tmp_path: Path) -> None:
    now = int(time.time())
    expired = token(RSA_KEY, "RS256", iat=now - 600, exp=now - 120)
    assert reason_of(JwtVerifier(settings(tmp_path)), expired) == "expired"


def test_token_without_exp_is_malformed(tmp_path: Path) -> None:
    assert reason_of(JwtVerifier(settings(tmp_path)), token(RSA_KEY, "RS256", exp=None)) == "malformed"


def test_token_not_valid_yet_is_refused(tmp_path: Path) -> None:
    later = token(RSA_KEY, "RS256", nbf=int(time.time()) + 300)
    assert reason_of(JwtVerifier(settings(tmp_path)), later) == "not_yet_valid"


def test_leeway_accepts_small_clock_skew_both_ways(tmp_path: Path) -> None:
    now = int(time.time())
    just_expired = token(RSA_KEY, "RS256", iat=now - 300, exp=now - 10)
    nearly_valid = token(RSA_KEY, "RS256", nbf=now + 10, iat=now + 10)
    lenient, strict = JwtVerifier(settings(tmp_path)), JwtVerifier(settings(tmp_path, leeway_s=0))
    assert verify(lenient, just_expired).client_id == "jwt:svc-a"
    assert verify(lenient, nearly_valid).client_id == "jwt:svc-a"
    assert reason_of(strict, just_expired) == "expired"
    assert reason_of(strict, nearly_valid) == "not_yet_valid"


def test_wrong_audience_and_issuer_are_refused(tmp_path: Path) -> None:
    verifier = JwtVerifier(settings(tmp_path))
    assert reason_of(verifier, token(RSA_KEY, "RS256", aud="another-service")) == "wrong_audience"
    assert reason_of(verifier, token(RSA_KEY, "RS256", aud=None)) == "wrong_audience"
    assert reason_of(verifier, token(RSA_KEY, "RS256", iss="https://evil.test")) == "wrong_issuer"
    assert reason_of(verifier, token(RSA_KEY, "RS256", iss=None)) == "wrong_issuer"


def test_token_without_the_client_claim_is_malformed(tmp_path: Path) -> None:
    assert reason_of(JwtVerifier(settings(tmp_path)), token(RSA_KEY, "RS256", sub=None)) == "malformed"


def test_garbage_is_malformed(tmp_path: Path) -> None:
    assert reason_of(JwtVerifier(settings(tmp_path)), "not.a.jwt") == "malformed"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rewrite(path: Path, document: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)  # a new inode, as a ConfigMap symlink swap gives


def test_unknown_kid_is_refused(tmp_path: Path) -> None:
    assert reason_of(JwtVerifier(settings(tmp_path)), token(RSA_KEY_2, "RS256", kid="k2")) == "unknown_kid"


def test_an_unknown_kid_rereads_the_jwks_file_at_once(tmp_path: Path) -> None:
    clock = Clock()
    verifier = JwtVerifier(settings(tmp_path), clock)
    assert verify(verifier, token(RSA_KEY, "RS256")).client_id == "jwt:svc-a"
    rewrite(tmp_path / "jwks.json", jwks((RSA_KEY, "k1"), (RSA_KEY_2, "k2")))
    clock.now += 0.2  # the once-a-second look is not due yet
    assert verify(verifier, token(RSA_KEY_2, "RS256", kid="k2")).client_id == "jwt:svc-a"


def test_jwks_file_rotation_is_picked_up_without_restart(tmp_path: Path) -> None:
    clock = Clock()
    verifier = JwtVerifier(settings(tmp_path), clock)
    assert verify(verifier, token(RSA_KEY, "RS256")).client_id == "jwt:svc-a"
    rewrite(tmp_path / "jwks.json", jwks((RSA_KEY_2, "k2")))
    clock.now += 1.5
    assert verify(verifier, token(RSA_KEY_2, "RS256", kid="k2")).client_id == "jwt:svc-a"
    assert reason_of(verifier, token(RSA_KEY, "RS256")) == "unknown_kid"  # the retired key is gone


def test_a_broken_jwks_file_keeps_the_previous_keys(tmp_path: Path) -> None:
    clock = Clock()
    verifier = JwtVerifier(settings(tmp_path), clock)
    assert verify(verifier, token(RSA_KEY, "RS256")).client_id == "jwt:svc-a"
    (tmp_path / "jwks.json").write_text("{not json")
    clock.now += 1.5
    assert verify(verifier, token(RSA_KEY, "RS256")).client_id == "jwt:svc-a"


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 whose document and health the test controls."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.failing = False
        self.fetches = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.failing:
            return web.Response(status=503)
        return web.json_response(self.document)


@asynccontextmanager
async def jwks_server(document: dict[str, Any]) -> AsyncIterator[JwksServer]:
    server = JwksServer(document)
    app = web.Application()
    app.router.add_get("/jwks.json", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.url = f"http://{host}:{port}/jwks.json"
    try:
        yield server
    finally:
        await runner.cleanup()


def url_verifier(url: str, clock: Callable[[], float], **overrides: Any) -> JwtVerifier:
    base = JwtSettings(issuer=ISSUER, audience=(AUDIENCE,), jwks_url=url, jwks_refresh_s=300)
    return JwtVerifier(replace(base, **overrides), clock)


def test_jwks_url_is_fetched_cached_and_rotated_on_unknown_kid() -> None:
    async def scenario() -> None:
        clock = Clock()
        async with jwks_server(jwks((RSA_KEY, "k1"))) as server:
            verifier = url_verifier(server.url, clock)
            for _ in range(3):
                assert (await verifier.verify(token(RSA_KEY, "RS256"))).client_id == "jwt:svc-a"
            assert server.fetches == 1  # cached
            server.document = jwks((RSA_KEY, "k1"), (EC_KEY, "e2"))
            assert (await verifier.verify(token(EC_KEY, "ES256", kid="e2"))).client_id == "jwt:svc-a"
            assert server.fetches == 2  # fetched at once for the new kid
            clock.now += 301
            await verifier.verify(token(RSA_KEY, "RS256"))
            assert server.fetches == 3  # periodic refresh, lazily on use

    asyncio.run(scenario())


def test_unknown_kid_refetches_the_jwks_url_at_most_once_per_10_s() -> None:
    async def scenario() -> None:
        clock = Clock()
        async with jwks_server(jwks((RSA_KEY, "k1"))) as server:
            verifier = url_verifier(server.url, clock)
            made_up = token(RSA_KEY, "RS256", kid="made-up")
            for _ in range(5):
                with pytest.raises(AuthError) as raised:
                    await verifier.verify(made_up)
                assert raised.value.reason == "unknown_kid"
            assert server.fetches == 2  # the first fetch, then one refresh for the unknown kid
            clock.now += 10
            with pytest.raises(AuthError):
                await verifier.verify(made_up)
            assert server.fetches == 3

    asyncio.run(scenario())


def test_jwks_url_failure_keeps_the_cached_keys() -> None:
    async def scenario() -> None:
        clock = Clock()
        async with jwks_server(jwks((RSA_KEY, "k1"))) as server:
            verifier = url_verifier(server.url, clock)
            await verifier.verify(token(RSA_KEY, "RS256"))
            server.failing = True
            clock.now += 301
            assert (await verifier.verify(token(RSA_KEY, "RS256"))).client_id == "jwt:svc-a"
            assert server.fetches == 2

    asyncio.run(scenario())


def test_jwks_url_unreachable_with_nothing_cached_is_jwks_unavailable() -> None:
    async def scenario() -> None:
        async with jwks_server(jwks((RSA_KEY, "k1"))) as server:
            server.failing = True
            verifier = url_verifier(server.url, Clock())
            with pytest.raises(AuthError) as raised:
                await verifier.verify(token(RSA_KEY, "RS256"))
            assert raised.value.reason == "jwks_unavailable"

    asyncio.run(scenario())


def test_concurrent_verifications_share_one_jwks_fetch() -> None:
    async def scenario() -> None:
        async with jwks_server(jwks((RSA_KEY, "k1"))) as server:
            verifier = url_verifier(server.url, Clock())
            value = token(RSA_KEY, "RS256")
            results = await asyncio.gather(*(verifier.verify(value) for _ in range(10)))
            assert {r.client_id for r in results} == {"jwt:svc-a"}
            assert server.fetches == 1

    asyncio.run(scenario())


def test_jwks_url_must_be_http() -> None:
    with pytest.raises(ValueError):
        url_verifier("file:///etc/passwd", Clock())
