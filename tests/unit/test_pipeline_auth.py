"""The auth stage driven through the router pass alone (no Envoy): when a credential is
checked, what leaves with it, and what a client may use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.auth.apikeys import hash_key
from extproc.config.load import load_text
from extproc.server.router_pass import RouterPass
from extproc.state import GatewayState
from tests.support.stack import free_port

KEY = "gw-test-key-search"
CONFIG = f"""
auth: api_key
clients:
  - {{id: search, tenant: acme, key_hashes: ["{hash_key(KEY)}"], models: ["claude-*", "mock-*"]}}
providers:
  - {{name: mock, kind: mock}}
  - {{name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}}
routes:
  - {{model: "claude-*", provider: claude}}
  - {{model: "*", provider: mock}}
"""
SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
# The listener asks for JWTs; one route takes API keys too, one takes anyone but only with x-public.
ROUTE_AUTH = f"""
auth: jwt
clients:
  - {{id: search, tenant: acme, key_hashes: ["{hash_key(KEY)}"]}}
jwt: {{issuer: https://issuer.test, audience: gateway, algorithms: [HS256], secret_env: S}}
providers:
  - {{name: mock, kind: mock}}
routes:
  - {{name: vip, model: "gpt-*", provider: mock, match: {{tenants: [acme, "jwt:acme"]}}}}
  - {{name: public, model: "open-*", provider: mock, auth: none, match: {{headers: [{{name: x-public, present: true}}]}}}}
  - {{name: shared, model: "*", provider: mock, auth: any}}
"""
OPEN_ROUTE = CONFIG.replace('  - {model: "*", provider: mock}', '  - {model: "*", provider: mock, auth: none}')


def headers(pairs: dict[str, str], end: bool = False) -> ProcessingRequest:
    values = [HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
    return ProcessingRequest(request_headers=HttpHeaders(headers=HeaderMap(headers=values), end_of_stream=end))


def body(model: str) -> ProcessingRequest:
    payload = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    return ProcessingRequest(request_body=HttpBody(body=orjson.dumps(payload), end_of_stream=True))


def run(config: str, messages: list[ProcessingRequest]) -> list[ProcessingResponse]:
    state = GatewayState(load_text(config, {"K": "provider-secret", "S": SECRET}, Path(".")))

    async def feed() -> AsyncIterator[ProcessingRequest]:
        for message in messages:
            yield message

    async def collect() -> list[ProcessingResponse]:
        return [response async for response in RouterPass(state).process(feed(), "main")]

    return asyncio.run(collect())


def chat(credential: dict[str, str], path: str = "/v1/chat/completions") -> dict[str, str]:
    return {":method": "POST", ":path": path, "x-request-id": "rid-a", **credential}


def test_a_missing_key_is_refused_at_the_headers_before_any_body_is_buffered() -> None:
    (answer,) = run(CONFIG, [headers(chat({}))])
    assert answer.immediate_response.status.code == 401
    error = orjson.loads(answer.immediate_response.body)["error"]
    assert error["type"] == "authentication_error" and "rid-a" in error["message"]
    challenge = {h.header.key: h.header.raw_value for h in answer.immediate_response.headers.set_headers}
    assert challenge["www-authenticate"].startswith(b"Bearer")


def test_a_good_key_goes_on_and_is_removed_from_what_is_forwarded() -> None:
    first, routed = run(CONFIG, [headers(chat({"authorization": f"Bearer {KEY}"})), body("claude-3")])
    assert "authorization" in first.request_headers.response.header_mutation.remove_headers
    assert routed.WhichOneof("response") == "request_body"


def test_a_model_outside_the_clients_globs_is_forbidden() -> None:
    _, answer = run(CONFIG, [headers(chat({"x-api-key": KEY}, "/v1/messages")), body("gpt-4o")])
    assert answer.immediate_response.status.code == 403
    assert orjson.loads(answer.immediate_response.body)["error"]["type"] == "permission_error"


def test_geminis_key_parameter_is_cut_from_the_path() -> None:
    path = f"/v1beta/models/mock-1:generateContent?alt=sse&key={KEY}"
    (first,) = run(CONFIG, [headers(chat({}, path))])
    set_headers = {
        h.header.key: h.header.raw_value.decode() for h in first.request_headers.response.header_mutation.set_headers
    }
    assert set_headers[":path"] == "/v1beta/models/mock-1:generateContent?alt=sse"


def test_a_route_that_says_auth_none_answers_without_a_key_while_others_still_need_one() -> None:
    _, open_answer = run(OPEN_ROUTE, [headers(chat({})), body("mock-1")])
    assert open_answer.immediate_response.status.code == 200
    _, closed = run(OPEN_ROUTE, [headers(chat({})), body("claude-3")])
    assert closed.immediate_response.status.code == 401


def test_an_unknown_model_is_a_401_not_a_404_for_a_caller_without_a_key() -> None:
    config = CONFIG.replace('  - {model: "*", provider: mock}\n', "")
    (answer,) = run(config, [headers(chat({}))])
    assert answer.immediate_response.status.code == 401


def test_signing_keys_that_cannot_be_fetched_are_a_503_to_retry_not_a_401_blaming_the_token() -> None:
    config = f"""
auth: jwt
jwt: {{issuer: https://issuer.test, audience: gateway, jwks_url: "http://127.0.0.1:{free_port()}/jwks.json"}}
providers:
  - {{name: mock, kind: mock}}
routes:
  - {{model: "*", provider: mock}}
"""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": "https://issuer.test", "aud": "gateway", "sub": "svc", "exp": 4102444800}
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    request = {":method": "POST", ":path": "/v1/chat/completions", "authorization": f"Bearer {token}"}
    (answer,) = run(config, [headers(request)])
    assert answer.immediate_response.status.code == 503
    error = orjson.loads(answer.immediate_response.body)["error"]
    assert error["code"] == "jwks_unavailable" and "try again later" in error["message"]
    sent = {h.header.key: h.header.raw_value for h in answer.immediate_response.headers.set_headers}
    assert sent["retry-after"] == b"5" and "www-authenticate" not in sent


def token(**claims: object) -> str:
    base = {"iss": "https://issuer.test", "aud": "gateway", "sub": "svc", "tenant": "acme", "exp": 4102444800}
    return jwt.encode({**base, **claims}, SECRET, algorithm="HS256")


def status(answer: ProcessingResponse) -> int:
    return answer.immediate_response.status.code if answer.HasField("immediate_response") else 0


def test_a_bad_or_missing_credential_is_refused_at_the_headers_even_where_routes_choose_their_own_auth() -> None:
    expired = token(exp=1_700_000_000)
    for credential in ({}, {"x-api-key": "gw-nobody"}, {"authorization": f"Bearer {expired}"}):
        (answer,) = run(ROUTE_AUTH, [headers(chat(credential))])  # no body is ever asked for
        assert status(answer) == 401, credential


def test_a_route_taking_anyone_that_the_headers_leave_possible_waits_for_the_route() -> None:
    public = chat({"x-public": "1"})
    first, answer = run(ROUTE_AUTH, [headers(public), body("open-1")])
    assert first.WhichOneof("response") == "request_headers"
    assert status(answer) == 200
    _, refused = run(ROUTE_AUTH, [headers(public), body("other-1")])
    assert status(refused) == 401


def test_an_api_key_is_refused_by_the_jwt_route_it_resolves_to_once_the_caller_is_known() -> None:
    keyed = {"x-api-key": KEY}
    for extra in ({}, {"x-public": "1"}):  # checked at the headers, and once the route is known
        _, refused = run(ROUTE_AUTH, [headers(chat({**keyed, **extra})), body("gpt-4o")])
        assert status(refused) == 401
        assert orjson.loads(refused.immediate_response.body)["error"]["code"] == "method_not_allowed"
        _, shared = run(ROUTE_AUTH, [headers(chat({**keyed, **extra})), body("other-1")])
        assert status(shared) == 200
    _, vip = run(ROUTE_AUTH, [headers(chat({"authorization": f"Bearer {token()}"})), body("gpt-4o")])
    assert status(vip) == 200
