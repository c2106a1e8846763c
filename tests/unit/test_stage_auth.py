"""AuthStage driven alone with an Exchange: a credential becomes the caller's identity (at the
headers, or at the body when a route that takes anyone is possible), credentials never go on, a
bad one is a 401 in the client's format, and the route and the models admit only their callers.

tests/unit/test_pipeline_auth.py drives the same through the whole router pass; the attacks go
through the real Envoy in tests/integration/test_client_auth.py and test_route_auth.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import jwt
import pytest

from extproc.auth.apikeys import hash_key
from extproc.auth.identity import ANONYMOUS
from extproc.errors import GatewayError
from extproc.pipeline.auth import AuthStage
from extproc.pipeline.endpoint import classify
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.pipeline.parse import resolve
from extproc.state import Snapshot
from tests.support.exchanges import CHAT_PATH, MESSAGES_PATH, PROVIDERS, at_headers, snapshot

KEY = "gw-stage-auth-key"
SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
CLIENTS = f"""
clients:
  - {{id: search, tenant: acme, key_hashes: ["{hash_key(KEY)}"], models: ["gpt-*", "mock-*"]}}
jwt: {{issuer: https://issuer.test, audience: gateway, algorithms: [HS256], secret_env: S}}
"""
KEYED = snapshot(
    "auth: api_key\n" + CLIENTS + PROVIDERS + 'routes:\n  - {model: "gpt-*", provider: openai}\n'
    '  - {model: "claude-*", provider: anthropic}\n  - {model: "mock-*", provider: mock}\n',
    {"S": SECRET},
)
# The listener takes API keys; one route takes anyone, one only tokens, one either.
ROUTE_AUTH = snapshot(
    "auth: api_key\n" + CLIENTS + PROVIDERS + "routes:\n"
    '  - {model: "open-*", provider: mock, auth: none}\n'
    '  - {model: "mock-jwt-*", provider: mock, auth: jwt}\n'
    '  - {model: "mock-*", provider: mock, auth: any}\n'
    '  - {model: "gpt-*", provider: openai}\n',
    {"S": SECRET},
)


def token(sub: str = "alice") -> str:
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "aud": "gateway", "sub": sub, "iat": now, "exp": now + 600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def arrived(snap: Snapshot, path: str = CHAT_PATH, **headers: str) -> Exchange:
    ex = at_headers(snap, path, headers)
    ex.endpoint = classify("POST", path, ex.headers)  # what the endpoint stage found
    assert ex.endpoint is not None
    ex.error_format = ex.endpoint.format
    return ex


def at_the_headers(ex: Exchange) -> PhaseReply:
    reply = PhaseReply()
    assert asyncio.run(AuthStage().request_headers(ex, reply, False)) is None
    return reply


def at_the_body(ex: Exchange, model: str) -> None:
    """The body named `model` (what the parse stage leaves: the model and the route as far as known)."""
    ex.model = model
    ex.target = resolve(ex)
    assert asyncio.run(AuthStage().request_body(ex, PhaseReply(), b"{}")) is None


def refused(step: Callable[[], object]) -> GatewayError:
    with pytest.raises(GatewayError) as error:
        step()
    return error.value


def test_an_api_key_becomes_the_clients_identity_and_goes_no_further() -> None:
    ex = arrived(KEYED, authorization=f"Bearer {KEY}", cookie="c=1")
    reply = at_the_headers(ex)
    assert (ex.identity.client_id, ex.identity.tenant, ex.identity.method) == ("search", "acme", "api_key")
    assert ex.auth_method == "api_key"
    assert reply.remove_headers == ["authorization"]


def test_anthropics_key_header_is_read_and_removed() -> None:
    ex = arrived(KEYED, MESSAGES_PATH, **{"x-api-key": KEY, "anthropic-version": "2023-06-01"})
    reply = at_the_headers(ex)
    assert ex.identity.client_id == "search" and reply.remove_headers == ["x-api-key"]


def test_geminis_key_in_the_query_is_read_and_cut_from_the_path() -> None:
    path = f"/v1beta/models/gemini-2.5-flash:generateContent?key={KEY}&alt=json"
    ex = arrived(KEYED, path)
    reply = at_the_headers(ex)
    assert ex.identity.client_id == "search"
    assert reply.set_headers == [(":path", "/v1beta/models/gemini-2.5-flash:generateContent?alt=json")]
    assert ex.path == "/v1beta/models/gemini-2.5-flash:generateContent?alt=json"


def test_an_unknown_key_is_a_401_that_says_how_to_authenticate() -> None:
    ex = arrived(KEYED, authorization="Bearer gw-not-a-key")
    error = refused(lambda: at_the_headers(ex))
    assert (error.kind, error.status, error.code) == ("authentication", 401, "invalid_api_key")
    assert ("www-authenticate", 'Bearer realm="llm-gateway"') in error.headers
    assert ex.identity is ANONYMOUS and ex.auth_method is None


def test_an_anthropic_client_without_a_key_gets_a_401_without_a_bearer_challenge() -> None:
    ex = arrived(KEYED, MESSAGES_PATH, **{"anthropic-version": "2023-06-01"})
    error = refused(lambda: at_the_headers(ex))
    assert (error.status, error.code) == (401, "missing") and error.headers == ()


def test_a_client_may_use_only_its_allowed_models() -> None:
    ex = arrived(KEYED, authorization=f"Bearer {KEY}")
    at_the_headers(ex)
    at_the_body(ex, "gpt-4o")  # allowed
    error = refused(lambda: at_the_body(ex, "claude-sonnet-4"))
    assert (error.kind, error.status, error.code, error.param) == ("permission", 403, "model_not_allowed", "model")


def test_where_a_route_takes_anyone_the_check_waits_for_the_route() -> None:
    ex = arrived(ROUTE_AUTH)  # no credential
    at_the_headers(ex)
    assert ex.auth_method is None  # not refused at the headers: an open route was possible
    at_the_body(ex, "open-1")
    assert ex.identity == ANONYMOUS and ex.auth_method == "none"


def test_a_route_that_needs_a_credential_refuses_a_caller_without_one_at_the_body() -> None:
    ex = arrived(ROUTE_AUTH)
    at_the_headers(ex)
    error = refused(lambda: at_the_body(ex, "gpt-4o"))  # the listener's api_key
    assert (error.status, error.code) == (401, "missing")


# No route takes anyone: the key is checked at the headers, under the widest method (any).
CHECKED_EARLY = snapshot(
    "auth: api_key\n" + CLIENTS + PROVIDERS + "routes:\n"
    '  - {model: "mock-jwt-*", provider: mock, auth: jwt}\n'
    '  - {model: "mock-*", provider: mock, auth: any}\n',
    {"S": SECRET},
)


def test_the_final_route_admits_only_its_own_method() -> None:
    ex = arrived(CHECKED_EARLY, authorization=f"Bearer {KEY}")
    at_the_headers(ex)
    assert ex.auth_method == "any" and ex.identity.method == "api_key"
    at_the_body(ex, "mock-1")  # auth: any takes the key
    ex = arrived(CHECKED_EARLY, authorization=f"Bearer {KEY}")
    at_the_headers(ex)
    error = refused(lambda: at_the_body(ex, "mock-jwt-1"))  # auth: jwt does not, though the key was good
    assert (error.status, error.code) == (401, "method_not_allowed")


def test_a_token_becomes_an_identity_in_the_jwt_namespace() -> None:
    ex = arrived(ROUTE_AUTH, authorization=f"Bearer {token('search')}")
    at_the_headers(ex)
    at_the_body(ex, "mock-jwt-1")
    assert ex.identity.client_id == "jwt:search" and ex.identity.method == "jwt"  # never the key's client
