"""Callers of different auth methods never share a cache scope or a limit bucket, through the
real Envoy with the official SDKs.

A JWT's client and tenant are `jwt:<claim>`, so a token whose `sub` (and tenant) equal an API-key
client's id (and tenant) is another caller; anyone on a listener with `auth: none` is client and
tenant `anonymous`, never tenant `default`. Each gateway has a listener `main` (API keys or JWTs)
and a listener `open` (auth: none) over the same routes; `counted` allows three requests per
client and three per tenant.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import openai
import pytest

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.conftest import AUDIENCE, ISSUER, jwks_of, rsa_key
from tests.integration.sdk_outcomes import openai_client
from tests.support.clients import keyed_clients
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

KEYS, CLIENTS = keyed_clients({"alice": "acme", "bob": "bravo", "carol": "default"})
SIGNING_KEY = rsa_key()
LIMIT = 3


def token(sub: str, tenant: str | None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600}
    if tenant is not None:
        claims["tenant"] = tenant
    return jwt.encode(claims, SIGNING_KEY, algorithm="RS256", headers={"kid": "k1"})


def _start(workdir: Path, fakes: tuple[FakeOpenAI, FakeAnthropic, FakeGemini], scope: str) -> GatewayStack:
    (workdir / "jwks.json").write_text(json.dumps(jwks_of({"k1": SIGNING_KEY})))
    config = standard_config(*(fake.base_url for fake in fakes))
    config["listeners"] = [{"name": "main"}, {"name": "open", "auth": "none"}]
    config["auth"] = "any"
    config["clients"] = CLIENTS
    config["jwt"] = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["RS256"], "jwks_file": "jwks.json"}
    config["routes"] = [
        {"name": "counted", "model": "counted-*", "provider": "mock"},
        {"name": "chat", "model": "gpt-*", "provider": "openai"},
    ]
    config["cache"] = {"chat_ttl_s": 600, "scope": scope}
    budget = {"requests": LIMIT, "window_s": 3600, "match": {"routes": ["counted"]}}
    config["limits"] = {
        "rules": [
            {"name": "per-client", "key": ["client"], **budget},
            {"name": "per-tenant", "key": ["tenant"], **budget},
        ]
    }
    return GatewayStack(workdir, config, PROVIDER_ENV).start()


@pytest.fixture(scope="module")
def client_scoped(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    stack = _start(Path(tmp_path_factory.mktemp("ns-client")), (fake_openai, fake_anthropic, fake_gemini), "client")
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def tenant_scoped(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    stack = _start(Path(tmp_path_factory.mktemp("ns-tenant")), (fake_openai, fake_anthropic, fake_gemini), "tenant")
    yield stack
    stack.stop()


def open_url(stack: GatewayStack) -> str:
    return f"http://127.0.0.1:{stack.extra_listener_ports[0]}"


def cache_status(client: openai.OpenAI, question: str) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": question}], max_tokens=20
    )
    assert raw.parse().choices[0].message.content
    return raw.headers["x-gateway-cache"]


def allowed(client: openai.OpenAI) -> bool:
    try:
        client.chat.completions.create(model="counted-1", messages=[{"role": "user", "content": "hi"}])
    except openai.RateLimitError:
        return False
    return True


# --------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------


def test_a_jwt_whose_sub_is_an_api_key_clients_id_does_not_get_that_clients_cached_answer(
    client_scoped: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    question = "What did alice ask, per client?"
    assert cache_status(openai_client(client_scoped.base_url, KEYS["alice"]), question) == "MISS"
    as_jwt = openai_client(client_scoped.base_url, token("alice", "acme"))
    assert cache_status(as_jwt, question) == "MISS"
    assert len(fake_openai.requests) == 2
    assert cache_status(as_jwt, question) == "HIT"  # the token's caller has an entry of its own
    assert len(fake_openai.requests) == 2


def test_a_jwt_of_the_same_tenant_name_does_not_get_the_api_key_tenants_cached_answer(
    tenant_scoped: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    question = "What did acme ask, per tenant?"
    assert cache_status(openai_client(tenant_scoped.base_url, KEYS["alice"]), question) == "MISS"
    assert cache_status(openai_client(tenant_scoped.base_url, token("someone-else", "acme")), question) == "MISS"
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("tenant", [None, "default"], ids=["no-tenant-claim", "tenant-claim-default"])
def test_neither_an_anonymous_caller_nor_a_jwt_shares_the_cache_of_the_api_key_tenant_named_default(
    tenant_scoped: GatewayStack, fake_openai: FakeOpenAI, tenant: str | None
) -> None:
    question = f"What did tenant default ask ({tenant})?"
    assert cache_status(openai_client(tenant_scoped.base_url, KEYS["carol"]), question) == "MISS"
    anonymous = openai_client(open_url(tenant_scoped), "any-key-is-ignored-here")
    assert cache_status(anonymous, question) == "MISS"
    assert cache_status(openai_client(tenant_scoped.base_url, token("svc", tenant)), question) == "MISS"
    assert len(fake_openai.requests) == 3
    assert cache_status(anonymous, question) == "HIT"  # anonymous callers share their own scope


# --------------------------------------------------------------------------
# Limit buckets
# --------------------------------------------------------------------------


def test_a_jwt_whose_sub_and_tenant_are_an_api_key_clients_does_not_consume_that_clients_buckets(
    client_scoped: GatewayStack,
) -> None:
    as_jwt = openai_client(client_scoped.base_url, token("bob", "bravo"))
    assert [allowed(as_jwt) for _ in range(LIMIT + 1)] == [True] * LIMIT + [False]
    assert allowed(openai_client(client_scoped.base_url, KEYS["bob"]))


def test_an_anonymous_caller_does_not_consume_the_bucket_of_the_tenant_named_default(
    tenant_scoped: GatewayStack,
) -> None:
    anonymous = openai_client(open_url(tenant_scoped), "any-key-is-ignored-here")
    assert [allowed(anonymous) for _ in range(LIMIT + 1)] == [True] * LIMIT + [False]
    assert allowed(openai_client(tenant_scoped.base_url, KEYS["carol"]))
