"""A gateway with client auth (API keys and RS256 JWTs from a JWKS file), shared by the auth tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm

from extproc.auth.apikeys import hash_key, new_key
from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.support.stack import GatewayStack

ISSUER = "https://issuer.test"
AUDIENCE = "llm-gateway"


def rsa_key() -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(keys: dict[str, RSAPrivateKey]) -> dict[str, Any]:
    items = []
    for kid, key in keys.items():
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        items.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": items}


@dataclass
class AuthGateway:
    stack: GatewayStack
    jwks_path: Path
    full_key: str  # a client allowed every model
    limited_key: str  # a client allowed gpt-* and mock-* only
    signing_key: RSAPrivateKey
    kid: str = "key-1"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    def token(
        self,
        key: RSAPrivateKey | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "jwt-client", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(
            payload, key or self.signing_key, algorithm="RS256", headers={"kid": kid if kid is not None else self.kid}
        )

    def write_jwks(self, keys: dict[str, RSAPrivateKey]) -> None:
        staged = self.jwks_path.with_suffix(".tmp")
        staged.write_text(json.dumps(jwks_of(keys)))
        staged.replace(self.jwks_path)  # a new inode: the change is seen even within one mtime tick


@pytest.fixture(scope="session")
def auth_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[AuthGateway]:
    """The standard routes behind API-key and JWT auth, plus a JWT-only route and an open mock route."""
    workdir = Path(tmp_path_factory.mktemp("auth-gateway"))
    full_key, limited_key, signing_key = new_key(), new_key(), rsa_key()
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["routes"] = [
        {"model": "gpt-jwt-*", "provider": "openai", "auth": "jwt"},
        {  # every keyed kind in one pool: what a neighbour posing as the upstream pass could ask for
            "name": "every-kind",
            "model": "pool-every-*",
            "pool": [{"provider": name} for name in ("openai", "anthropic", "gemini", "azure")],
        },
        {"model": "open-*", "provider": "mock", "auth": "none"},
        *config["routes"],
    ]
    config["auth"] = "any"
    config["clients"] = [
        {"id": "full", "tenant": "t1", "key_hashes": [hash_key(full_key)]},
        {"id": "limited", "tenant": "t2", "key_hashes": [hash_key(limited_key)], "models": ["gpt-*", "mock-*"]},
    ]
    gateway = AuthGateway(None, workdir / "jwks.json", full_key, limited_key, signing_key)  # type: ignore[arg-type]
    gateway.write_jwks({gateway.kid: signing_key})
    config["jwt"] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": ["RS256"],
        "jwks_file": str(gateway.jwks_path),
        "leeway_s": 0,
    }
    gateway.stack = GatewayStack(workdir, config, PROVIDER_ENV).start()
    yield gateway
    gateway.stack.stop()
