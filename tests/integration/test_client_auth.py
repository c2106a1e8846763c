"""Client auth through the real Envoy, with the official SDKs: where each SDK sends its credential,
what a refused client sees, JWTs, per-route methods, spoofed internal headers and the header
allow-lists both ways. The provider always sees the operator's key and never the client's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from fnmatch import fnmatchcase

import anthropic
import httpx
import jwt
import openai
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.conftest import ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY
from tests.fakes.base import RecordedRequest
from tests.fakes.openai import chat_completion
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI, Reply
from tests.integration.conftest import AuthGateway, rsa_key
from tests.integration.sdk_outcomes import anthropic_client, gemini_client, openai_client
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

WRONG_KEY = "gw-this-key-was-never-issued"
HI = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": HI}
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def assert_sees_only_provider_key(seen: RecordedRequest, header: str, provider_value: str, client_key: str) -> None:
    assert seen.headers[header] == provider_value
    everything = str(list(seen.headers.items())) + seen.path + str(seen.query) + seen.body.decode(errors="replace")
    assert client_key not in everything
    assert "key" not in seen.query


def gemini_text(client: genai.Client, model: str = "gemini-2.5-flash") -> str:
    return client.models.generate_content(model=model, contents="hi").text or ""


# --------------------------------------------------------------------------
# Every credential place, each SDK, to a real provider route
# --------------------------------------------------------------------------


def test_openai_sdk_bearer_key_reaches_openai_with_the_operators_key(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI
) -> None:
    answer = openai_client(auth_gateway.base_url, auth_gateway.full_key).chat.completions.create(**CHAT)
    assert answer.choices[0].message.content
    assert len(fake_openai.requests) == 1
    seen = fake_openai.requests[0]
    assert_sees_only_provider_key(seen, "authorization", f"Bearer {OPENAI_KEY}", auth_gateway.full_key)


@pytest.mark.parametrize("place", ["api_key", "auth_token"])
def test_anthropic_sdk_key_as_x_api_key_or_bearer_reaches_anthropic_with_the_operators_key(
    auth_gateway: AuthGateway, fake_anthropic: FakeAnthropic, place: str
) -> None:
    client = anthropic.Anthropic(
        base_url=auth_gateway.base_url, max_retries=0, timeout=20, **{place: auth_gateway.full_key}
    )
    answer = client.messages.create(model="claude-test-1", max_tokens=50, messages=HI)
    assert answer.content[0].text
    seen = fake_anthropic.requests[-1]
    assert "authorization" not in seen.headers
    assert_sees_only_provider_key(seen, "x-api-key", ANTHROPIC_KEY, auth_gateway.full_key)


def test_genai_sdk_x_goog_api_key_reaches_gemini_with_the_operators_key(
    auth_gateway: AuthGateway, fake_gemini: FakeGemini
) -> None:
    client = gemini_client(auth_gateway.base_url, auth_gateway.full_key)
    assert gemini_text(client)
    seen = fake_gemini.requests[-1]
    assert_sees_only_provider_key(seen, "x-goog-api-key", GEMINI_KEY, auth_gateway.full_key)


def test_gemini_key_query_parameter_is_accepted_and_cut_from_the_path(
    auth_gateway: AuthGateway, fake_gemini: FakeGemini
) -> None:
    url = f"{auth_gateway.base_url}/v1beta/models/gemini-2.5-flash:generateContent?key={auth_gateway.full_key}"
    response = httpx.post(url, json=GEMINI_BODY, timeout=20)
    assert response.status_code == 200, response.text
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"]
    seen = fake_gemini.requests[-1]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert_sees_only_provider_key(seen, "x-goog-api-key", GEMINI_KEY, auth_gateway.full_key)


def test_gemini_key_query_parameter_is_cut_but_other_parameters_stay(
    auth_gateway: AuthGateway, fake_gemini: FakeGemini
) -> None:
    url = f"{auth_gateway.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    response = httpx.post(url, params={"alt": "sse", "key": auth_gateway.full_key}, json=GEMINI_BODY, timeout=20)
    assert response.status_code == 200, response.text
    assert response.text.startswith("data: ")
    seen = fake_gemini.requests[-1]
    assert seen.query == {"alt": "sse"}
    assert_sees_only_provider_key(seen, "x-goog-api-key", GEMINI_KEY, auth_gateway.full_key)


# --------------------------------------------------------------------------
# Refusals, in each API's own error format
# --------------------------------------------------------------------------

KEYS = {"missing": None, "wrong": WRONG_KEY}
WHY = {"missing": "no credential", "wrong": "unknown API key"}


@pytest.mark.parametrize("case", KEYS)
def test_openai_sdk_without_a_valid_key_gets_401_with_a_challenge(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI, case: str
) -> None:
    key = KEYS[case]
    client = openai.OpenAI(
        api_key=key or "unused",
        base_url=auth_gateway.base_url + "/v1",
        max_retries=0,
        timeout=20,
    )
    omit = {"Authorization": openai.Omit()} if key is None else None
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(**CHAT, extra_headers=omit)
    error = raised.value
    assert error.status_code == 401
    assert error.body["type"] == "authentication_error"
    assert error.body["code"] == {"missing": "missing", "wrong": "invalid_api_key"}[case]
    assert WHY[case] in error.body["message"]
    assert error.request_id
    assert error.response.headers["www-authenticate"].startswith("Bearer")
    assert fake_openai.requests == []


@pytest.mark.parametrize("case", KEYS)
def test_anthropic_sdk_without_a_valid_key_gets_401_in_anthropic_format(
    auth_gateway: AuthGateway, fake_anthropic: FakeAnthropic, case: str
) -> None:
    key = KEYS[case]
    client = anthropic.Anthropic(
        api_key=key,
        base_url=auth_gateway.base_url,
        max_retries=0,
        timeout=20,
    )
    omit = {"X-Api-Key": anthropic.Omit(), "Authorization": anthropic.Omit()} if key is None else None
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.create(model="claude-test-1", max_tokens=50, messages=HI, extra_headers=omit)
    error = raised.value
    assert error.status_code == 401
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == "authentication_error"
    assert WHY[case] in error.body["error"]["message"]
    assert error.body["request_id"]
    assert fake_anthropic.requests == []


@pytest.mark.parametrize("case", KEYS)
def test_genai_sdk_without_a_valid_key_gets_401_with_a_challenge(
    auth_gateway: AuthGateway, fake_gemini: FakeGemini, case: str
) -> None:
    key = KEYS[case]
    options = types.HttpOptions(
        base_url=auth_gateway.base_url,
        timeout=20_000,
        retry_options=types.HttpRetryOptions(attempts=1),
        headers={"x-goog-api-key": ""} if key is None else None,
    )
    client = genai.Client(api_key=key or "unused", http_options=options)
    with pytest.raises(genai_errors.ClientError) as raised:
        gemini_text(client)
    error = raised.value
    assert error.code == 401
    assert error.status == "UNAUTHENTICATED"
    assert WHY[case] in error.details["error"]["message"]
    assert error.details["error"]["details"][0]["metadata"]["request_id"]
    assert error.response.headers["www-authenticate"].startswith("Bearer")
    assert fake_gemini.requests == []


def test_client_may_not_use_a_model_outside_its_globs_in_any_api(
    auth_gateway: AuthGateway, fake_anthropic: FakeAnthropic, fake_gemini: FakeGemini
) -> None:
    key = auth_gateway.limited_key
    with pytest.raises(openai.PermissionDeniedError) as openai_raised:
        openai_client(auth_gateway.base_url, key).chat.completions.create(model="claude-test-1", messages=HI)
    assert openai_raised.value.body["code"] == "model_not_allowed"
    with pytest.raises(anthropic.PermissionDeniedError) as anthropic_raised:
        anthropic_client(auth_gateway.base_url, key).messages.create(model="claude-test-1", max_tokens=50, messages=HI)
    assert anthropic_raised.value.body["error"]["type"] == "permission_error"
    gemini = gemini_client(auth_gateway.base_url, key)
    with pytest.raises(genai_errors.ClientError) as gemini_raised:
        gemini_text(gemini)
    assert gemini_raised.value.code == 403
    assert gemini_raised.value.status == "PERMISSION_DENIED"
    assert fake_anthropic.requests == [] and fake_gemini.requests == []


def test_limited_client_still_reaches_its_allowed_models(auth_gateway: AuthGateway, fake_openai: FakeOpenAI) -> None:
    answer = openai_client(auth_gateway.base_url, auth_gateway.limited_key).chat.completions.create(**CHAT)
    assert answer.choices[0].message.content
    assert len(fake_openai.requests) == 1


def test_model_list_shows_only_the_clients_models_and_needs_a_key(auth_gateway: AuthGateway) -> None:
    full = {m.id for m in openai_client(auth_gateway.base_url, auth_gateway.full_key).models.list()}
    limited = {m.id for m in openai_client(auth_gateway.base_url, auth_gateway.limited_key).models.list()}
    assert {"mock-1", "alias-gemini"} <= full
    assert "mock-1" in limited
    assert limited < full
    assert all(fnmatchcase(model, "gpt-*") or fnmatchcase(model, "mock-*") for model in limited)
    anthropic_ids = {m.id for m in anthropic_client(auth_gateway.base_url, auth_gateway.limited_key).models.list()}
    assert anthropic_ids == limited
    for headers in ({}, {"authorization": f"Bearer {WRONG_KEY}"}):
        response = httpx.get(auth_gateway.base_url + "/v1/models", headers=headers, timeout=10)
        assert response.status_code == 401
        assert "data" not in response.json()


# --------------------------------------------------------------------------
# JWT
# --------------------------------------------------------------------------


def test_valid_rs256_token_is_accepted_by_the_openai_sdk(auth_gateway: AuthGateway, fake_openai: FakeOpenAI) -> None:
    token = auth_gateway.token()
    answer = openai_client(auth_gateway.base_url, token).chat.completions.create(**CHAT)
    assert answer.choices[0].message.content
    seen = fake_openai.requests[-1]
    assert_sees_only_provider_key(seen, "authorization", f"Bearer {OPENAI_KEY}", token)


def _hs256_signed_with_the_public_key(gateway: AuthGateway) -> str:
    """The algorithm-confusion attack: HS256 with the published RSA public key as the HMAC secret."""
    pem = gateway.signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(gateway.token(), options={"verify_signature": False})

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": gateway.kid}).encode())
    body = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{signature}"


def _bad_tokens(gateway: AuthGateway) -> dict[str, str]:
    now = 1_700_000_000
    unsigned = jwt.encode(
        {"iss": "https://issuer.test", "aud": "llm-gateway", "sub": "x", "exp": 4_000_000_000},
        None,
        algorithm="none",
        headers={"kid": gateway.kid},
    )
    return {
        "wrong_signature": gateway.token(key=rsa_key()),
        "alg_none": unsigned,
        "expired": gateway.token(iat=now - 600, exp=now),
        "wrong_audience": gateway.token(aud="someone-else"),
        "unknown_kid": gateway.token(kid="never-published"),
        "hs256_with_public_key": _hs256_signed_with_the_public_key(gateway),
        "wrong_issuer": gateway.token(iss="https://elsewhere.test"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong_signature",
        "alg_none",
        "expired",
        "wrong_audience",
        "unknown_kid",
        "hs256_with_public_key",
        "wrong_issuer",
    ],
)
def test_bad_tokens_are_refused_with_401(auth_gateway: AuthGateway, fake_openai: FakeOpenAI, case: str) -> None:
    token = _bad_tokens(auth_gateway)[case]
    with pytest.raises(openai.AuthenticationError) as raised:
        openai_client(auth_gateway.base_url, token).chat.completions.create(**CHAT)
    assert raised.value.response.headers["www-authenticate"].startswith("Bearer")
    assert fake_openai.requests == []


def test_token_models_claim_limits_the_models(auth_gateway: AuthGateway, fake_anthropic: FakeAnthropic) -> None:
    client = openai_client(auth_gateway.base_url, auth_gateway.token(models=["gpt-*"]))
    assert client.chat.completions.create(**CHAT).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="claude-test-1", messages=HI)
    assert fake_anthropic.requests == []


def test_two_different_credentials_in_one_request_are_refused(
    auth_gateway: AuthGateway, fake_anthropic: FakeAnthropic
) -> None:
    """A valid key in one place cannot vouch for a request that carries another credential elsewhere."""
    body = {"model": "claude-test-1", "max_tokens": 20, "messages": HI}
    headers = {
        "x-api-key": auth_gateway.full_key,
        "authorization": f"Bearer {WRONG_KEY}",
        "anthropic-version": "2023-06-01",
    }
    response = httpx.post(auth_gateway.base_url + "/v1/messages", json=body, headers=headers, timeout=20)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert fake_anthropic.requests == []


# --------------------------------------------------------------------------
# Per-route methods
# --------------------------------------------------------------------------


def test_jwt_only_route_refuses_an_api_key_that_other_routes_accept(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai_client(auth_gateway.base_url, auth_gateway.full_key).chat.completions.create(
            model="gpt-jwt-1", messages=HI
        )
    assert fake_openai.requests == []
    openai_client(auth_gateway.base_url, auth_gateway.full_key).chat.completions.create(**CHAT)
    answer = openai_client(auth_gateway.base_url, auth_gateway.token()).chat.completions.create(
        model="gpt-jwt-1", messages=HI
    )
    assert answer.choices[0].message.content
    assert [r.json["model"] for r in fake_openai.requests] == ["gpt-4o-mini", "gpt-jwt-1"]


def test_open_route_answers_without_a_key_on_a_listener_that_requires_one(auth_gateway: AuthGateway) -> None:
    chat = {"messages": HI}
    assert (
        httpx.post(auth_gateway.base_url + "/v1/chat/completions", json={**chat, "model": "open-1"}).status_code == 200
    )
    refused = httpx.post(auth_gateway.base_url + "/v1/chat/completions", json={**chat, "model": "mock-1"})
    assert refused.status_code == 401


# --------------------------------------------------------------------------
# Headers a client must not be able to steer with
# --------------------------------------------------------------------------

SPOOFED = {
    "x-gw-cluster": "provider_anthropic",
    "x-gw-provider": "anthropic",
    "x-gw-model": "claude-test-1",
    "x-gw-api": "anthropic.messages",
    "x-gw-body-format": "anthropic",
    "x-gw-stream": "1",
}


def test_spoofed_internal_headers_do_not_change_the_route(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    client = openai_client(auth_gateway.base_url, auth_gateway.full_key)
    answer = client.chat.completions.create(**CHAT, extra_headers=SPOOFED)
    assert answer.choices[0].message.content
    assert fake_anthropic.requests == []
    assert len(fake_openai.requests) == 1
    seen = fake_openai.requests[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.json["model"] == "gpt-4o-mini"
    assert not [name for name in seen.headers if name.lower().startswith("x-gw-")]


def test_envoy_steering_headers_from_a_client_have_no_effect(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(body=orjson.dumps(chat_completion("late but fine")), delay=0.3))
    steering = {
        "x-envoy-upstream-rq-timeout-ms": "1",
        "x-envoy-upstream-rq-per-try-timeout-ms": "1",
        "x-envoy-max-retries": "5",
        "x-envoy-retry-on": "5xx",
    }
    client = openai_client(auth_gateway.base_url, auth_gateway.full_key)
    answer = client.chat.completions.create(**CHAT, extra_headers=steering)
    assert answer.choices[0].message.content == "late but fine"
    forwarded = {name.lower(): value for name, value in fake_openai.requests[0].headers.items()}
    assert not [name for name in steering if name in forwarded]
    assert forwarded.get("x-envoy-expected-rq-timeout-ms") != "1"  # Envoy's own header tells its own timeout
    fake_openai.reset()
    fake_openai.enqueue(Reply(status=503, body=b'{"error": {"message": "busy", "type": "server_error"}}'))
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(**CHAT, extra_headers=steering)
    assert not wait_until(lambda: len(fake_openai.requests) > 1, timeout=0.5)


# --------------------------------------------------------------------------
# Header allow-lists, both ways
# --------------------------------------------------------------------------

CLIENT_ONLY_HEADERS = {
    "cookie": "session=client-cookie",
    "openai-organization": "org-client",
    "openai-project": "proj-client",
    "x-goog-user-project": "client-gcp-project",
    "proxy-authorization": "Basic Y2xpZW50OnNlY3JldA==",
    "x-forwarded-for": "203.0.113.7",
    "x-real-ip": "203.0.113.7",
    "forwarded": "for=203.0.113.7",
    "anthropic-version": "2023-01-01",
}
NEVER_FORWARDED = (*CLIENT_ONLY_HEADERS, "x-stainless-lang", "x-stainless-os", "x-stainless-package-version")


def test_provider_never_receives_client_identity_forwarding_or_sdk_headers(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI, fake_gemini: FakeGemini
) -> None:
    client = openai_client(auth_gateway.base_url, auth_gateway.full_key)
    client.chat.completions.create(**CHAT, extra_headers=CLIENT_ONLY_HEADERS)
    httpx.post(
        f"{auth_gateway.base_url}/v1beta/models/gemini-2.5-flash:generateContent",
        json=GEMINI_BODY,
        headers={**CLIENT_ONLY_HEADERS, "x-goog-api-key": auth_gateway.full_key},
        timeout=20,
    )
    for seen in (fake_openai.requests[-1], fake_gemini.requests[-1]):
        leaked = [name for name in NEVER_FORWARDED if name in seen.headers]
        assert leaked == []
        assert not [name for name in seen.headers if name.lower().startswith("x-stainless")]


def test_anthropic_clients_own_version_is_kept_on_an_anthropic_passthrough(
    auth_gateway: AuthGateway, fake_anthropic: FakeAnthropic
) -> None:
    client = anthropic.Anthropic(
        api_key=auth_gateway.full_key,
        base_url=auth_gateway.base_url,
        max_retries=0,
        timeout=20,
        default_headers={"anthropic-version": "2023-01-01", "cookie": "session=client-cookie"},
    )
    client.messages.create(model="claude-test-1", max_tokens=50, messages=HI)
    seen = fake_anthropic.requests[-1]
    assert seen.headers["anthropic-version"] == "2023-01-01"
    assert "cookie" not in seen.headers


def test_openai_client_to_anthropic_gets_the_gateways_version_not_its_own(
    auth_gateway: AuthGateway, fake_anthropic: FakeAnthropic
) -> None:
    client = openai_client(auth_gateway.base_url, auth_gateway.full_key)
    client.chat.completions.create(
        model="claude-test-1", messages=HI, extra_headers={"anthropic-version": "1999-01-01"}
    )
    assert fake_anthropic.requests[-1].headers["anthropic-version"] != "1999-01-01"


PROVIDER_ONLY_HEADERS = {
    "set-cookie": "provider-session=abc; Path=/",
    "openai-organization": "org-operator",
    "anthropic-organization-id": "operator-org-id",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-tokens": "149000",
    "openai-project": "proj-operator",
}


def test_client_never_sees_provider_cookies_organisation_or_quota_headers(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(Reply(body=orjson.dumps(chat_completion("scripted")), headers=PROVIDER_ONLY_HEADERS))
    client = openai_client(auth_gateway.base_url, auth_gateway.full_key)
    raw = client.chat.completions.with_raw_response.create(**CHAT)
    assert raw.parse().choices[0].message.content == "scripted"
    leaked = [name for name in PROVIDER_ONLY_HEADERS if name in raw.headers]
    assert leaked == []
    assert not [name for name in raw.headers if name.lower().startswith("x-ratelimit")]


def test_provider_error_answers_lose_cookies_organisation_and_quota_headers_too(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    busy = b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
    fake_openai.enqueue(Reply(status=429, body=busy, headers=PROVIDER_ONLY_HEADERS))
    with pytest.raises(openai.RateLimitError) as openai_raised:
        openai_client(auth_gateway.base_url, auth_gateway.full_key).chat.completions.create(**CHAT)
    anthropic_busy = b'{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}'
    fake_anthropic.enqueue(Reply(status=429, body=anthropic_busy, headers=PROVIDER_ONLY_HEADERS))
    with pytest.raises(anthropic.RateLimitError) as anthropic_raised:
        anthropic_client(auth_gateway.base_url, auth_gateway.full_key).messages.create(
            model="claude-test-1", max_tokens=20, messages=HI
        )
    for headers in (openai_raised.value.response.headers, anthropic_raised.value.response.headers):
        assert [name for name in PROVIDER_ONLY_HEADERS if name in headers] == []


def test_provider_refusing_the_operators_key_is_a_502_that_shows_no_part_of_it(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI
) -> None:
    masked = OPENAI_KEY[:3] + "****" + OPENAI_KEY[-4:]
    refusal = {"error": {"message": f"Incorrect API key provided: {masked}.", "type": "invalid_request_error"}}
    fake_openai.enqueue(Reply(status=401, body=orjson.dumps(refusal)))
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client(auth_gateway.base_url, auth_gateway.full_key).chat.completions.create(**CHAT)
    assert raised.value.status_code == 502
    assert OPENAI_KEY[-4:] not in raised.value.response.text


def test_azure_style_api_key_header_is_accepted_and_not_forwarded(
    auth_gateway: AuthGateway, fake_openai: FakeOpenAI
) -> None:
    response = httpx.post(
        auth_gateway.base_url + "/v1/chat/completions",
        json=CHAT,
        headers={"api-key": auth_gateway.full_key},
        timeout=20,
    )
    assert response.status_code == 200
    assert "api-key" not in fake_openai.requests[-1].headers
    assert_sees_only_provider_key(
        fake_openai.requests[-1], "authorization", f"Bearer {OPENAI_KEY}", auth_gateway.full_key
    )


# --------------------------------------------------------------------------
# Key rotation (last: it changes the JWKS, then puts it back)
# --------------------------------------------------------------------------


def test_jwks_rotation_is_picked_up_without_a_restart(auth_gateway: AuthGateway, fake_openai: FakeOpenAI) -> None:
    new_key, new_kid = rsa_key(), "key-2"
    new_token = auth_gateway.token(key=new_key, kid=new_kid)
    old_token = auth_gateway.token()

    def accepted(token: str) -> bool:
        try:
            openai_client(auth_gateway.base_url, token).chat.completions.create(**CHAT)
        except openai.AuthenticationError:
            return False
        return True

    auth_gateway.write_jwks({new_kid: new_key})
    try:
        assert wait_until(lambda: accepted(new_token), timeout=10)
        assert not accepted(old_token)  # the retired key is gone with the file
    finally:
        auth_gateway.write_jwks({auth_gateway.kid: auth_gateway.signing_key})
        assert wait_until(lambda: accepted(old_token), timeout=10)
