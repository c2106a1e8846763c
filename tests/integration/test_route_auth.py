"""Routes that choose their own client auth, attacked through the real Envoy with the official SDKs.

The listener asks for JWTs. `vip` (no own method: the listener's) serves tenant acme; `shared`
takes an API key or a JWT; `public` takes anyone, but only for requests that carry `x-public`.
A credential that fails every method a request could meet is refused at the request headers,
before Envoy buffers a byte of the body: proven by Envoy's own count of the messages it sent
to the ext_proc (one, the headers). And the route a request finally resolves to, once the
caller is known, admits only the method it asks for.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import jwt
import openai
import pytest
from google.genai import errors as genai_errors

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.integration.conftest import AUDIENCE, ISSUER, jwks_of, rsa_key
from tests.integration.sdk_outcomes import anthropic_client, gemini_client, openai_client
from tests.support.clients import keyed_clients
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

KEYS, CLIENTS = keyed_clients({"acme-ops": "acme", "beta-ops": "beta"})
SIGNING_KEY = rsa_key()
HI = [{"role": "user", "content": "hi"}]
THIRTY_MIB = "x" * (30 * 1024 * 1024)
PUBLIC = {"x-public": "yes"}


def token(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "svc", "tenant": "acme", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, SIGNING_KEY, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[GatewayStack]:
    workdir = Path(tmp_path_factory.mktemp("route-auth"))
    (workdir / "jwks.json").write_text(json.dumps(jwks_of({"k1": SIGNING_KEY})))
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["auth"] = "jwt"
    config["clients"] = CLIENTS
    config["jwt"] = {"issuer": ISSUER, "audience": AUDIENCE, "algorithms": ["RS256"], "jwks_file": "jwks.json"}
    config["routes"] = [
        {
            "name": "vip",
            "model": "gpt-*",
            "provider": "openai",
            "upstream_model": "gpt-vip",
            "match": {"tenants": ["acme", "jwt:acme"]},
        },
        {
            "name": "public",
            "model": "public-*",
            "provider": "mock",
            "auth": "none",
            "match": {"headers": [{"name": "x-public", "present": True}]},
        },
        {"name": "shared", "model": "*", "provider": "openai", "auth": "any"},
    ]
    stack = GatewayStack(workdir, config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def messages_sent_to_the_extproc(stack: GatewayStack) -> int:
    """Envoy's own count of the messages its router-pass ext_proc filter sent (headers, body, ...)."""
    stats = httpx.get(stack.envoy_admin_url + "/stats", params={"filter": "ext_proc.stream_msgs_sent$"}).text
    name, _, value = stats.strip().partition(": ")
    assert name == "http.gateway_main.ext_proc.stream_msgs_sent", stats
    return int(value)


# --------------------------------------------------------------------------
# A plainly bad credential never gets its body read
# --------------------------------------------------------------------------


def test_an_openai_caller_with_an_unknown_key_and_30_mib_is_refused_before_the_body_is_read(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    before = messages_sent_to_the_extproc(stack)
    with pytest.raises(openai.AuthenticationError) as raised:
        openai_client(stack.base_url, "gw-never-issued").chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": THIRTY_MIB}]
        )
    assert raised.value.body["code"] == "invalid_api_key"
    assert raised.value.request_id
    assert messages_sent_to_the_extproc(stack) - before == 1  # the headers only: no body went to the ext_proc
    assert fake_openai.requests == []


def test_an_anthropic_caller_without_a_credential_and_30_mib_is_refused_before_the_body_is_read(
    stack: GatewayStack,
) -> None:
    before = messages_sent_to_the_extproc(stack)
    client = anthropic.Anthropic(api_key="unused", base_url=stack.base_url, max_retries=0, timeout=30)
    omit = {"X-Api-Key": anthropic.Omit(), "Authorization": anthropic.Omit()}
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.create(
            model="claude-x", max_tokens=10, messages=[{"role": "user", "content": THIRTY_MIB}], extra_headers=omit
        )
    assert raised.value.body["error"]["type"] == "authentication_error"
    assert "no credential" in raised.value.body["error"]["message"]
    assert raised.value.body["request_id"]
    assert messages_sent_to_the_extproc(stack) - before == 1


@pytest.mark.parametrize("case", ["expired", "wrong_signature", "malformed"])
def test_a_gemini_caller_with_a_bad_jwt_and_30_mib_is_refused_before_the_body_is_read(
    stack: GatewayStack, case: str
) -> None:
    bad = {
        "expired": token(iat=1_700_000_000, exp=1_700_000_600),
        "wrong_signature": jwt.encode({"sub": "svc"}, rsa_key(), algorithm="RS256", headers={"kid": "k1"}),
        "malformed": token().split(".")[0] + ".bm90LWpzb24.c2ln",  # a JWT header over a body that is not JSON
    }[case]
    client = gemini_client(stack.base_url, bad)  # held: the SDK closes its transport when the client goes
    before = messages_sent_to_the_extproc(stack)
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model="gemini-2.5-flash", contents=THIRTY_MIB)
    assert raised.value.code == 401
    assert raised.value.status == "UNAUTHENTICATED"
    assert raised.value.details["error"]["details"][0]["metadata"]["request_id"]
    assert messages_sent_to_the_extproc(stack) - before == 1


def test_where_a_route_taking_anyone_is_possible_the_body_is_read_and_the_route_decides(
    stack: GatewayStack,
) -> None:
    """The counter tells a body read from none: with x-public, the check waits for the route."""
    client = openai_client(stack.base_url, "gw-never-issued")
    before = messages_sent_to_the_extproc(stack)
    assert client.chat.completions.create(model="public-1", messages=HI, extra_headers=PUBLIC).choices
    assert messages_sent_to_the_extproc(stack) - before == 2  # headers and body
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=HI, extra_headers=PUBLIC)


# --------------------------------------------------------------------------
# The route resolved once the caller is known admits only its own method
# --------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, PUBLIC], ids=["checked-at-headers", "checked-at-the-route"])
def test_an_api_key_of_tenant_acme_cannot_reach_the_jwt_only_route_its_tenant_resolves_to(
    stack: GatewayStack, fake_openai: FakeOpenAI, headers: dict[str, str]
) -> None:
    client = openai_client(stack.base_url, KEYS["acme-ops"])
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=HI, extra_headers=headers)
    assert raised.value.body["code"] == "method_not_allowed"
    assert "send a JWT" in raised.value.body["message"]
    assert raised.value.response.headers["www-authenticate"].startswith("Bearer")
    assert fake_openai.requests == []
    # The same key still reaches the route that takes API keys, and a JWT of acme reaches vip.
    assert client.chat.completions.create(model="other-1", messages=HI, extra_headers=headers).choices
    assert openai_client(stack.base_url, token()).chat.completions.create(model="gpt-4o", messages=HI).choices
    assert [request.json["model"] for request in fake_openai.requests] == ["other-1", "gpt-vip"]


def test_an_api_key_of_another_tenant_goes_on_to_the_shared_route(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    answer = openai_client(stack.base_url, KEYS["beta-ops"]).chat.completions.create(model="gpt-4o", messages=HI)
    assert answer.choices[0].message.content
    assert [request.json["model"] for request in fake_openai.requests] == ["gpt-4o"]


def test_an_anthropic_api_key_of_tenant_acme_is_refused_by_the_jwt_only_route_in_anthropics_format(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(anthropic.AuthenticationError) as raised:
        anthropic_client(stack.base_url, KEYS["acme-ops"]).messages.create(model="gpt-4o", max_tokens=10, messages=HI)
    assert raised.value.body["error"]["type"] == "authentication_error"
    assert raised.value.body["request_id"]
    assert fake_openai.requests == []
