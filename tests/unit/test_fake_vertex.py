"""The fake Google token endpoint issues tokens as Google does to google-auth, and the fake Vertex accepts only
those tokens while they last, answering Gemini and Claude in Vertex's formats.

Witnesses: google-auth (service-account key and metadata-server credentials), google-genai with
``vertexai=True``, the Anthropic SDK's ``AnthropicVertex``, and the recorded Vertex and Gemini answers in
shared/fixtures (the same keys and framing).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anthropic
import google.auth.transport.requests
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.auth.exceptions import RefreshError
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from google.oauth2 import service_account

from tests.fakes.answers import Answer, ToolCall
from tests.fakes.google_auth import CLOUD_PLATFORM, GOOGLE_TOKEN_URL, JWT_BEARER, FakeGoogleTokens
from tests.fakes.script import ToolRoundTrip
from tests.fakes.vertex import VERTEX_ANTHROPIC_VERSION, FakeVertex
from tests.support.fixtures import fixture_bytes, fixture_json, require_fixtures
from tests.support.wait import wait_until

PROJECT = "fake-project"
GEMINI = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4@20250514"
VERSION = {"anthropic_version": VERTEX_ANTHROPIC_VERSION}


@pytest.fixture(scope="module")
def tokens() -> Iterator[FakeGoogleTokens]:
    with FakeGoogleTokens() as server:
        yield server


@pytest.fixture(scope="module")
def vertex(tokens: FakeGoogleTokens) -> Iterator[FakeVertex]:
    with FakeVertex(tokens, projects=[PROJECT], models=FakeVertex.default_models) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    tokens.reset()
    tokens.token_lifetime = 3600
    vertex.reset()


def credentials(tokens: FakeGoogleTokens, info: dict[str, str] | None = None) -> service_account.Credentials:
    creds = service_account.Credentials.from_service_account_info(
        info or tokens.service_account_info(), scopes=[CLOUD_PLATFORM]
    )
    creds.refresh(google.auth.transport.requests.Request())
    return creds


def gemini_client(vertex: FakeVertex, creds: Any, location: str = "global") -> genai.Client:
    retry = genai_types.HttpRetryOptions(attempts=1)
    options = genai_types.HttpOptions(base_url=vertex.base_url, retry_options=retry)
    return genai.Client(vertexai=True, project=PROJECT, location=location, credentials=creds, http_options=options)


def claude_client(vertex: FakeVertex, token: str) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region="us-east5", project_id=PROJECT, access_token=token, base_url=vertex.base_url + "/v1", max_retries=0
    )


def claude_url(vertex: FakeVertex, rpc: str, model: str = CLAUDE, project: str = PROJECT) -> str:
    return f"{vertex.base_url}/v1/projects/{project}/locations/us-east5/publishers/anthropic/models/{model}:{rpc}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------


def test_a_service_account_key_gets_a_token_with_the_lifetime_set_and_the_issue_is_counted(
    tokens: FakeGoogleTokens,
) -> None:
    tokens.token_lifetime = 90
    before = datetime.now(UTC).replace(tzinfo=None)
    creds = credentials(tokens)
    assert creds.token.startswith("ya29.")
    assert 85 <= (creds.expiry - before).total_seconds() <= 95
    assert tokens.issue_count == 1
    assert tokens.issued[0].via == "jwt-bearer" and tokens.issued[0].scopes == (CLOUD_PLATFORM,)
    assert tokens.check(creds.token) == "valid"
    grant = tokens.last_request
    assert grant.headers["content-type"] == "application/x-www-form-urlencoded"


def test_a_second_refresh_issues_a_new_token(tokens: FakeGoogleTokens) -> None:
    creds = credentials(tokens)
    first = creds.token
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token != first and tokens.issue_count == 2


def test_a_jwt_signed_by_another_key_is_refused_as_an_invalid_grant(tokens: FakeGoogleTokens) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": tokens.client_email,
        "aud": GOOGLE_TOKEN_URL,
        "iat": now,
        "exp": now + 3600,
        "scope": CLOUD_PLATFORM,
    }
    assertion = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": tokens.private_key_id})
    response = httpx.post(tokens.token_uri, data={"grant_type": JWT_BEARER, "assertion": assertion})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    assert tokens.issue_count == 0


def test_a_key_for_another_account_is_refused(tokens: FakeGoogleTokens) -> None:
    info = {**tokens.service_account_info(), "client_email": "someone@else.iam.gserviceaccount.com"}
    with pytest.raises(RefreshError, match="invalid_grant"):
        credentials(tokens, info)


def test_a_refused_refresh_keeps_the_old_token_in_google_auth(tokens: FakeGoogleTokens) -> None:
    creds = credentials(tokens)
    old = creds.token
    tokens.refuse_grants = True
    with pytest.raises(RefreshError, match="invalid_grant"):
        creds.refresh(google.auth.transport.requests.Request())
    assert creds.token == old and tokens.issue_count == 1


def test_the_metadata_server_issues_tokens_to_compute_engine_credentials(
    tokens: FakeGoogleTokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", tokens.metadata_host)
    creds = compute_engine.Credentials()
    creds.refresh(google.auth.transport.requests.Request())
    assert tokens.check(creds.token) == "valid"
    assert tokens.issued[-1].via == "metadata"
    assert creds.service_account_email == tokens.client_email
    assert all(r.headers.get("metadata-flavor") == "Google" for r in tokens.requests)


def test_the_metadata_server_refuses_a_request_without_the_flavor_header(tokens: FakeGoogleTokens) -> None:
    url = f"{tokens.base_url}/computeMetadata/v1/instance/service-accounts/default/token"
    response = httpx.get(url)
    assert response.status_code == 403 and tokens.issue_count == 0
    assert httpx.get(url, headers={"Metadata-Flavor": "Google"}).json()["expires_in"] == 3600


# --------------------------------------------------------------------------
# The bearer check
# --------------------------------------------------------------------------


def test_an_issued_token_is_accepted_until_it_expires(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    tokens.token_lifetime = 1
    token = credentials(tokens).token
    body = {**VERSION, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(claude_url(vertex, "rawPredict"), json=body, headers=bearer(token)).status_code == 200
    assert wait_until(lambda: tokens.check(token) == "expired", timeout=5)
    expired = httpx.post(claude_url(vertex, "rawPredict"), json=body, headers=bearer(token))
    assert expired.status_code == 401
    assert expired.json()["error"]["status"] == "UNAUTHENTICATED"
    assert expired.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_EXPIRED"
    assert vertex.last_request.auth == "expired"


@pytest.mark.parametrize(
    ("headers", "verdict"), [({}, "missing"), (bearer("ya29.made-up"), "unknown"), ({"x-goog-api-key": "k"}, "missing")]
)
def test_a_missing_or_unknown_token_is_unauthenticated(
    vertex: FakeVertex, headers: dict[str, str], verdict: str
) -> None:
    vertex.enqueue_answer(Answer(text="never"))
    response = httpx.post(claude_url(vertex, "rawPredict"), json={}, headers=headers)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "status", "details"}
    assert vertex.last_request.auth == verdict


def test_a_project_that_is_not_configured_is_permission_denied(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    token = credentials(tokens).token
    response = httpx.post(claude_url(vertex, "rawPredict", project="other-project"), json={}, headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "projects/other-project/locations/us-east5" in response.json()["error"]["message"]


def test_a_queued_quota_error_has_the_recorded_vertex_shape_and_reaches_google_genai(
    tokens: FakeGoogleTokens, vertex: FakeVertex
) -> None:
    require_fixtures()
    vertex.enqueue_error(429, reason="RATE_LIMIT_EXCEEDED")
    client = gemini_client(vertex, credentials(tokens))  # kept: a client only referenced inline is closed
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model=GEMINI, contents="hi")
    assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"
    recorded = fixture_json("gemini/error-429-quota.response.json")["error"]
    assert set(raised.value.details["error"]) == set(recorded)
    assert raised.value.details["error"]["details"][0]["@type"] == recorded["details"][0]["@type"]


# --------------------------------------------------------------------------
# Gemini on Vertex
# --------------------------------------------------------------------------


def test_google_genai_reaches_gemini_on_vertex_with_a_service_account_token(
    tokens: FakeGoogleTokens, vertex: FakeVertex
) -> None:
    client = gemini_client(vertex, credentials(tokens))
    response = client.models.generate_content(model=GEMINI, contents="hello there")
    assert response.text == "fake-gemini says: hello there"
    assert response.usage_metadata is not None and response.usage_metadata.traffic_type == "ON_DEMAND"
    request = vertex.last_request
    assert (
        request.path
        == f"/v1beta1/projects/{PROJECT}/locations/global/publishers/google/models/{GEMINI}:generateContent"
    )
    assert (request.auth, request.project, request.location, request.model) == ("valid", PROJECT, "global", GEMINI)


def test_google_genai_streams_gemini_on_vertex_in_crlf_framed_sse(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    client = gemini_client(vertex, credentials(tokens), location="europe-west1")
    texts = [chunk.text for chunk in client.models.generate_content_stream(model=GEMINI, contents="hello there")]
    assert "".join(t or "" for t in texts) == "fake-gemini says: hello there"
    assert vertex.last_request.query == {"alt": "sse"}


def test_the_sse_framing_and_keys_are_the_recorded_ones(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    require_fixtures()
    url = f"{vertex.base_url}/v1/projects/{PROJECT}/locations/global/publishers/google/models/{GEMINI}"
    body = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
    stream = httpx.post(url + ":streamGenerateContent?alt=sse", json=body, headers=bearer(credentials(tokens).token))
    real = fixture_bytes("gemini/stream-basic.response.sse")
    event = re.compile(rb"data: (\{[^\r\n]*\})\r\n\r\n")
    assert event.sub(b"", stream.content) == b"" and event.sub(b"", real) == b""
    mine = [json.loads(m) for m in event.findall(stream.content)]
    recorded = [json.loads(m) for m in event.findall(real)]
    assert set(recorded[-1]) - {"safetyRatings"} <= set(mine[-1])
    assert set(recorded[-1]["usageMetadata"]) <= set(mine[-1]["usageMetadata"])
    assert set(recorded[-1]["candidates"][0]) - {"safetyRatings", "citationMetadata"} <= set(mine[-1]["candidates"][0])
    assert "finishReason" not in mine[0]["candidates"][0] and "finishReason" in mine[-1]["candidates"][0]


def test_count_tokens_on_vertex_adds_billable_characters(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    client = gemini_client(vertex, credentials(tokens))
    counted = client.models.count_tokens(model=GEMINI, contents="hello there")
    assert counted.total_tokens == 2
    url = f"{vertex.base_url}/v1/projects/{PROJECT}/locations/global/publishers/google/models/{GEMINI}:countTokens"
    body = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
    raw = httpx.post(url, json=body, headers=bearer(credentials(tokens).token)).json()
    assert raw["totalBillableCharacters"] == len("hellothere")


def test_google_genai_embeds_with_text_embedding_005_by_predict_and_reads_its_statistics(
    tokens: FakeGoogleTokens, vertex: FakeVertex
) -> None:
    client = gemini_client(vertex, credentials(tokens), location="us-east5")
    config = genai_types.EmbedContentConfig(task_type="RETRIEVAL_DOCUMENT", title="Doc", output_dimensionality=16)
    answer = client.models.embed_content(model="text-embedding-005", contents=["hello there", "bye"], config=config)
    assert answer.embeddings is not None and [len(e.values or []) for e in answer.embeddings] == [16, 16]
    statistics = [e.statistics for e in answer.embeddings]
    assert [s.token_count for s in statistics if s is not None] == [2.0, 1.0]
    assert answer.metadata is not None and answer.metadata.billable_character_count == len("hellotherebye")
    seen = vertex.last_request
    assert (seen.rpc, seen.auth) == ("predict", "valid")
    assert seen.json["instances"][0] == {"content": "hello there", "task_type": "RETRIEVAL_DOCUMENT", "title": "Doc"}
    assert seen.json["parameters"] == {"outputDimensionality": 16}


def test_gemini_embedding_001_takes_one_instance_and_refuses_more_as_vertex_does(
    tokens: FakeGoogleTokens, vertex: FakeVertex
) -> None:
    url = f"{vertex.base_url}/v1/projects/{PROJECT}/locations/global/publishers/google/models/gemini-embedding-001"
    headers = bearer(credentials(tokens).token)
    one = httpx.post(url + ":predict", json={"instances": [{"content": "a"}]}, headers=headers).json()
    assert len(one["predictions"][0]["embeddings"]["values"]) == 3072
    two = httpx.post(url + ":predict", json={"instances": [{"content": "a"}, {"content": "b"}]}, headers=headers)
    assert two.status_code == 400 and two.json()["error"]["status"] == "INVALID_ARGUMENT"
    chat = httpx.post(url + ":generateContent", json={"contents": []}, headers=headers)
    assert chat.status_code == 400


def test_a_scripted_answer_reaches_google_genai_with_thoughts_calls_and_cached_tokens(
    tokens: FakeGoogleTokens, vertex: FakeVertex
) -> None:
    vertex.enqueue_answer(
        Answer(
            text="Let me check.",
            reasoning="They want weather.",
            tool_calls=(ToolCall("get_weather", {"city": "Paris"}),),
            input_tokens=5,
            cache_read_tokens=100,
        )
    )
    client = gemini_client(vertex, credentials(tokens))
    response = client.models.generate_content(model=GEMINI, contents="weather?")
    assert response.function_calls is not None and response.function_calls[0].args == {"city": "Paris"}
    parts = response.candidates[0].content.parts  # type: ignore[index, union-attr]
    assert parts is not None and parts[0].thought is True
    assert response.usage_metadata is not None and response.usage_metadata.cached_content_token_count == 100


def test_an_unknown_gemini_model_is_not_found(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    client = gemini_client(vertex, credentials(tokens))
    with pytest.raises(genai_errors.ClientError) as raised:
        client.models.generate_content(model="gemini-0", contents="hi")
    assert raised.value.code == 404 and "Publisher Model" in str(raised.value.message)


# --------------------------------------------------------------------------
# Claude on Vertex
# --------------------------------------------------------------------------


def test_the_anthropic_sdk_reaches_claude_on_vertex_with_raw_predict(
    tokens: FakeGoogleTokens, vertex: FakeVertex
) -> None:
    client = claude_client(vertex, credentials(tokens).token)
    message = client.messages.create(
        model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "hi"}], extra_body=VERSION
    )
    assert message.content[0].type == "text" and message.content[0].text == "fake-anthropic says: hi"
    assert message.id.startswith("msg_vrtx_01")
    request = vertex.last_request
    assert request.rpc == "rawPredict" and request.model == CLAUDE
    assert "model" not in request.json and request.json["anthropic_version"] == VERTEX_ANTHROPIC_VERSION


def test_the_anthropic_sdk_streams_claude_on_vertex_with_stream_raw_predict(
    tokens: FakeGoogleTokens, vertex: FakeVertex
) -> None:
    vertex.enqueue_answer(Answer(text="Sunny.", reasoning="Think.", cache_write_tokens=7))
    client = claude_client(vertex, credentials(tokens).token)
    with client.messages.stream(
        model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "hi"}], extra_body=VERSION
    ) as stream:
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.usage.cache_creation_input_tokens == 7
    assert vertex.last_request.rpc == "streamRawPredict" and vertex.last_request.json["stream"] is True


def test_a_tool_round_trip_script_drives_claude_on_vertex(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    vertex.script = ToolRoundTrip("get_weather", {"city": "Oslo"})
    tools: Any = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]
    client = claude_client(vertex, credentials(tokens).token)
    first = client.messages.create(
        model=CLAUDE, max_tokens=20, tools=tools, messages=[{"role": "user", "content": "w?"}], extra_body=VERSION
    )
    call = first.content[0]
    assert call.type == "tool_use" and call.id.startswith("toolu_vrtx_01") and call.input == {"city": "Oslo"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, "anthropic_version"),
        ({**VERSION, "model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, "model:"),
        (
            {"anthropic_version": "2023-06-01", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            "anthropic_version",
        ),
        ({**VERSION, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ],
)
def test_a_body_not_in_vertexs_anthropic_format_is_an_anthropic_invalid_request(
    tokens: FakeGoogleTokens, vertex: FakeVertex, body: dict[str, Any], message: str
) -> None:
    response = httpx.post(claude_url(vertex, "rawPredict"), json=body, headers=bearer(credentials(tokens).token))
    assert response.status_code == 400
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"
    assert message in response.json()["error"]["message"]


def test_claude_count_tokens_keeps_the_model_in_the_body(tokens: FakeGoogleTokens, vertex: FakeVertex) -> None:
    body = {**VERSION, "model": CLAUDE, "messages": [{"role": "user", "content": "hello there"}]}
    url = claude_url(vertex, "rawPredict", model="count-tokens")
    response = httpx.post(url, json=body, headers=bearer(credentials(tokens).token))
    assert response.status_code == 200 and response.json() == {"input_tokens": 2 + 3}
