"""The fake Bedrock speaks Bedrock Runtime as AWS does and checks SigV4 as AWS does.

Proof by three witnesses: botocore's own bedrock-runtime client (signing, parsing every answer, raising
every error), the recorded real Bedrock streams in tests/fixtures/bedrock (the fake's streams have the same
event order, headers and payload keys) and a real Converse answer quoted from a public cassette (the fake
renders the same JSON for the same answer).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import ChecksumMismatch
from botocore.exceptions import ClientError, EventStreamError

from extproc.formats.eventstream import EventMessage, EventStreamDecoder
from tests.fakes.answers import Answer, ToolCall
from tests.fakes.aws_sigv4 import AwsCredentials
from tests.fakes.bedrock import ERROR_STATUS, EVENT_STREAM, FakeBedrock, StreamFault
from tests.fakes.script import ToolRoundTrip

RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "bedrock" / "recorded_streams.json"
NOVA = "us.amazon.nova-micro-v1:0"
CLAUDE = "anthropic.claude-haiku-4-5-20251001-v1:0"
CREDENTIALS = AwsCredentials("AKIDFAKEBEDROCK", "fake/secret+key", None)
HELLO = [{"role": "user", "content": [{"text": "hello there"}]}]
CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}
WEATHER_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock(CREDENTIALS, api_key="bedrock-api-key-1") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeBedrock) -> None:
    fake.reset()
    fake.clock = lambda: datetime.now(UTC)


def client(fake: FakeBedrock, secret: str = CREDENTIALS.secret_access_key, key: str = CREDENTIALS.access_key_id) -> Any:
    session = botocore.session.get_session()
    return session.create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.base_url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def recorded(name: str) -> list[EventMessage]:
    recording = json.loads(RECORDINGS.read_text())[name]
    decoder = EventStreamDecoder()
    messages = decoder.feed(base64.b64decode(recording["body_base64"]))
    decoder.close()
    return messages


def served(body: bytes) -> list[EventMessage]:
    decoder = EventStreamDecoder()
    messages = decoder.feed(body)
    decoder.close()
    return messages


def shape(value: Any) -> Any:
    """The keys of a JSON value, nested; lists by their first element; leaves by type name."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def collapsed(messages: list[EventMessage]) -> list[tuple[str | None, Any]]:
    """Each event's type and payload shape, runs of the same one kept once (delta counts differ)."""
    out: list[tuple[str | None, Any]] = []
    for message in messages:
        payload = json.loads(message.payload)
        payload.pop("p")
        item = (message.text(":event-type"), shape(payload))
        if not out or out[-1] != item:
            out.append(item)
    return out


def envoy_style_request(fake: FakeBedrock, body: bytes, *, sign_body: bytes | None = None) -> httpx.Response:
    """A request signed as Envoy's aws_request_signing signs it: ``user-agent`` and ``x-amz-content-sha256``
    signed too. ``sign_body`` signs other bytes than those sent (a body changed after signing)."""
    url = f"{fake.base_url}/model/{NOVA.replace(':', '%3A')}/converse"
    signed = sign_body if sign_body is not None else body
    headers = {
        "content-type": "application/json",
        "user-agent": "envoy",
        "x-amz-content-sha256": hashlib.sha256(signed).hexdigest(),
    }
    request = AWSRequest("POST", url, headers=headers, data=signed)

    class SignEverything(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> Any:
            chosen = super().headers_to_sign(request)
            chosen["user-agent"] = request.headers["user-agent"]
            return chosen

    SignEverything(
        Credentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key), "bedrock", "us-east-1"
    ).add_auth(request)
    assert "user-agent" in request.headers["Authorization"]
    return httpx.post(url, content=body, headers=dict(request.headers.items()))


# --------------------------------------------------------------------------
# botocore reaches every operation
# --------------------------------------------------------------------------


def test_botocore_converse_is_answered_and_the_request_recorded_with_its_decoded_model_id(fake: FakeBedrock) -> None:
    answer = client(fake).converse(modelId=NOVA, messages=HELLO, inferenceConfig={"maxTokens": 100})
    assert answer["output"]["message"] == {"role": "assistant", "content": [{"text": "fake-bedrock says: hello there"}]}
    assert answer["stopReason"] == "end_turn"
    assert answer["usage"]["totalTokens"] == answer["usage"]["inputTokens"] + answer["usage"]["outputTokens"]
    request = fake.last_request
    assert (request.raw_path, request.model_id, request.operation, request.auth) == (
        "/model/us.amazon.nova-micro-v1%3A0/converse",
        NOVA,
        "converse",
        "sigv4",
    )
    assert request.json["inferenceConfig"] == {"maxTokens": 100}


def test_an_inference_profile_arn_is_percent_encoded_in_the_path_and_decoded_by_the_fake(fake: FakeBedrock) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
    client(fake).converse(modelId=arn, messages=HELLO)
    assert fake.last_request.raw_path.startswith(
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
    )
    assert fake.last_request.model_id == arn


def test_botocore_converse_stream_parses_every_event_in_bedrocks_order(fake: FakeBedrock) -> None:
    response = client(fake).converse_stream(modelId=NOVA, messages=HELLO)
    events = [next(iter(event)) for event in response["stream"]]
    assert events == ["messageStart", *["contentBlockDelta"] * 4, "contentBlockStop", "messageStop", "metadata"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == EVENT_STREAM


def test_botocore_invoke_model_gets_an_anthropic_message_and_the_usage_headers(fake: FakeBedrock) -> None:
    response = client(fake).invoke_model(modelId=CLAUDE, body=json.dumps(CLAUDE_BODY))
    message = json.loads(response["body"].read())
    assert message["id"].startswith("msg_bdrk_01")
    assert message["model"] == "claude-haiku-4-5-20251001"
    assert message["content"] == [{"type": "text", "text": "fake-anthropic says: hi"}]
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == str(message["usage"]["input_tokens"])
    assert headers["x-amzn-bedrock-output-token-count"] == str(message["usage"]["output_tokens"])


def test_botocore_invoke_model_with_response_stream_gets_base64_anthropic_events(fake: FakeBedrock) -> None:
    response = client(fake).invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(CLAUDE_BODY))
    events = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    assert [event["type"] for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert set(events[-1]["amazon-bedrock-invocationMetrics"]) == {
        "inputTokenCount",
        "outputTokenCount",
        "invocationLatency",
        "firstByteLatency",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**CLAUDE_BODY, "model": "claude"}, "extraneous key [model] is not permitted"),
        ({**CLAUDE_BODY, "stream": True}, "extraneous key [stream] is not permitted"),
        ({k: v for k, v in CLAUDE_BODY.items() if k != "anthropic_version"}, "required key [anthropic_version]"),
        ({**CLAUDE_BODY, "anthropic_version": "2023-06-01"}, "invalid anthropic_version"),
    ],
)
def test_an_invoke_body_that_is_not_bedrocks_anthropic_format_is_a_validation_error(
    fake: FakeBedrock, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ClientError) as raised:
        client(fake).invoke_model(modelId=CLAUDE, body=json.dumps(body))
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert message in raised.value.response["Error"]["Message"]


def test_an_invoke_body_naming_a_refused_beta_is_an_invalid_beta_flag_validation_error(fake: FakeBedrock) -> None:
    fake.refused_betas.add("advanced-tool-use-2025-11-20")
    betas = {**CLAUDE_BODY, "anthropic_beta": ["interleaved-thinking-2025-05-14", "advanced-tool-use-2025-11-20"]}
    with pytest.raises(ClientError) as raised:
        client(fake).invoke_model(modelId=CLAUDE, body=json.dumps(betas))
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert raised.value.response["Error"]["Message"] == "invalid beta flag"
    accepted = {**CLAUDE_BODY, "anthropic_beta": ["interleaved-thinking-2025-05-14"]}
    assert json.loads(client(fake).invoke_model(modelId=CLAUDE, body=json.dumps(accepted))["body"].read())["content"]


def test_botocore_count_tokens_counts_a_converse_input(fake: FakeBedrock) -> None:
    answer = client(fake).count_tokens(modelId=CLAUDE, input={"converse": {"messages": HELLO}})
    assert answer["inputTokens"] == 2 + 3


def test_botocore_count_tokens_counts_an_invoke_model_body_sent_as_a_blob(fake: FakeBedrock) -> None:
    body = {**CLAUDE_BODY, "system": "be brief"}
    answer = client(fake).count_tokens(modelId=CLAUDE, input={"invokeModel": {"body": json.dumps(body).encode()}})
    assert answer["inputTokens"] == 3 + 3  # "be brief hi"
    sent = fake.last_request.json["input"]["invokeModel"]["body"]
    assert json.loads(base64.b64decode(sent)) == body  # botocore sends the blob base64 in the JSON


def test_count_tokens_refuses_a_cross_region_profile_and_a_model_that_cannot_count(fake: FakeBedrock) -> None:
    for model in (f"us.{CLAUDE}", "amazon.titan-embed-text-v2:0"):
        with pytest.raises(ClientError) as raised:
            client(fake).count_tokens(modelId=model, input={"converse": {"messages": HELLO}})
        assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_botocore_invoke_model_embeds_with_titan_v2_and_its_token_count(fake: FakeBedrock) -> None:
    body = {"inputText": "hello there", "dimensions": 256, "normalize": True}
    response = client(fake).invoke_model(modelId="amazon.titan-embed-text-v2:0", body=json.dumps(body))
    answer = json.loads(response["body"].read())
    assert len(answer["embedding"]) == 256 and answer["inputTextTokenCount"] == 2
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "2"


@pytest.mark.parametrize(
    ("model", "body", "detail"),
    [
        ("amazon.titan-embed-text-v2:0", {"texts": ["a"]}, "extraneous key [texts]"),
        ("amazon.titan-embed-text-v2:0", {"inputText": "a", "dimensions": 300}, "not a valid enum value"),
        ("amazon.titan-embed-text-v1", {"inputText": "a", "dimensions": 256}, "extraneous key [dimensions]"),
        ("cohere.embed-english-v3", {"texts": ["a"]}, "required key [input_type]"),
        ("cohere.embed-english-v3", {"texts": ["a"] * 97, "input_type": "search_query"}, "maximum item count: 96"),
    ],
)
def test_invoke_model_refuses_an_embedding_body_its_model_does_not_take(
    fake: FakeBedrock, model: str, body: dict[str, Any], detail: str
) -> None:
    with pytest.raises(ClientError) as raised:
        client(fake).invoke_model(modelId=model, body=json.dumps(body))
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert detail in raised.value.response["Error"]["Message"]


def test_cohere_answers_floats_or_by_type_with_the_token_count_only_in_a_header(fake: FakeBedrock) -> None:
    body: dict[str, Any] = {"texts": ["hello there", "hi"], "input_type": "search_document"}
    plain = client(fake).invoke_model(modelId="cohere.embed-english-v3", body=json.dumps(body))
    answer = json.loads(plain["body"].read())
    assert answer["response_type"] == "embeddings_floats" and len(answer["embeddings"]) == 2
    assert set(answer) == {"embeddings", "id", "response_type", "texts"}  # no count in the body
    assert plain["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"] == "3"
    typed = client(fake).invoke_model(
        modelId="cohere.embed-english-v3", body=json.dumps({**body, "embedding_types": ["float"]})
    )
    answer = json.loads(typed["body"].read())
    assert answer["response_type"] == "embeddings_by_type" and len(answer["embeddings"]["float"]) == 2


# --------------------------------------------------------------------------
# Scripted answers
# --------------------------------------------------------------------------

SCRIPTED = Answer(
    text="Checking.",
    reasoning="The user wants weather.",
    reasoning_signature="EuSIG",
    tool_calls=(ToolCall("get_weather", {"city": "Paris"}, "tooluse_abc"), ToolCall("get_time", {}, "tooluse_def")),
    input_tokens=7,
    output_tokens=30,
    cache_read_tokens=1322,
    cache_write_tokens=5,
)


def test_a_scripted_answer_renders_in_converse_with_reasoning_tools_and_cache_usage(fake: FakeBedrock) -> None:
    fake.enqueue_answer(SCRIPTED)
    answer = client(fake).converse(modelId=NOVA, messages=HELLO)
    assert answer["output"]["message"]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "The user wants weather.", "signature": "EuSIG"}}},
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_def", "name": "get_time", "input": {}}},
    ]
    assert answer["stopReason"] == "tool_use"
    assert answer["usage"] == {
        "inputTokens": 7,
        "outputTokens": 30,
        "totalTokens": 7 + 30 + 1322 + 5,
        "cacheReadInputTokens": 1322,
        "cacheWriteInputTokens": 5,
    }


def test_a_scripted_answer_streams_in_converse_with_tool_input_in_fragments(fake: FakeBedrock) -> None:
    fake.enqueue_answer(SCRIPTED)
    events = list(client(fake).converse_stream(modelId=NOVA, messages=HELLO)["stream"])
    reasoning = "".join(
        e["contentBlockDelta"]["delta"]["reasoningContent"].get("text", "")
        for e in events
        if "reasoningContent" in e.get("contentBlockDelta", {}).get("delta", {})
    )
    tool_input = "".join(
        e["contentBlockDelta"]["delta"]["toolUse"]["input"]
        for e in events
        if e.get("contentBlockDelta", {}).get("contentBlockIndex") == 2
    )
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert reasoning == "The user wants weather."
    assert json.loads(tool_input) == {"city": "Paris"}
    assert [s["contentBlockIndex"] for s in starts] == [2, 3]  # no start for the reasoning and the text
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    assert events[-1]["metadata"]["usage"]["cacheReadInputTokens"] == 1322


def test_a_scripted_answer_renders_in_invoke_as_anthropic_blocks_with_cache_usage(fake: FakeBedrock) -> None:
    fake.enqueue_answer(SCRIPTED)
    response = client(fake).invoke_model(modelId=CLAUDE, body=json.dumps(CLAUDE_BODY))
    message = json.loads(response["body"].read())
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use", "tool_use"]
    assert message["content"][0] == {"type": "thinking", "thinking": "The user wants weather.", "signature": "EuSIG"}
    assert message["usage"]["cache_read_input_tokens"] == 1322
    assert message["usage"]["cache_creation_input_tokens"] == 5
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-cache-read-input-token-count"] == "1322"


def test_a_scripted_answer_streams_in_invoke_with_thinking_and_signature_deltas(fake: FakeBedrock) -> None:
    fake.enqueue_answer(SCRIPTED)
    response = client(fake).invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(CLAUDE_BODY))
    events = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    deltas = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"]
    assert deltas[0] == "thinking_delta" and "signature_delta" in deltas and deltas[-1] == "input_json_delta"
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_a_tool_round_trip_script_drives_converse(fake: FakeBedrock) -> None:
    fake.script = ToolRoundTrip("get_weather", {"city": "Oslo"})
    bedrock = client(fake)
    first = bedrock.converse(modelId=NOVA, messages=HELLO, toolConfig={"tools": [WEATHER_TOOL]})
    call = first["output"]["message"]["content"][0]["toolUse"]
    assert call["input"] == {"city": "Oslo"}
    result = {"toolResult": {"toolUseId": call["toolUseId"], "content": [{"text": "sunny"}]}}
    messages = [*HELLO, first["output"]["message"], {"role": "user", "content": [result]}]
    second = bedrock.converse(modelId=NOVA, messages=messages, toolConfig={"tools": [WEATHER_TOOL]})
    assert second["output"]["message"]["content"] == [{"text": "The tool returned: sunny"}]
    assert fake.script.results_seen == ["sunny"]


# --------------------------------------------------------------------------
# The same shapes as real Bedrock
# --------------------------------------------------------------------------


def test_the_tool_call_stream_has_the_recorded_event_order_headers_and_payload_keys(fake: FakeBedrock) -> None:
    fake.enqueue_answer(
        Answer(text="<thinking> To find the temperature", tool_calls=(ToolCall("get_temperature", {"city": "Paris"}),))
    )
    response = httpx.post(
        f"{fake.base_url}/model/{NOVA}/converse-stream",
        json={"messages": HELLO},
        headers={"authorization": "Bearer bedrock-api-key-1"},
    )
    mine, real = served(response.content), recorded("converse_stream_tool_call")
    assert collapsed(mine) == collapsed(real)
    assert [list(m.headers) for m in mine] == [list(m.headers) for m in real[: len(mine)]]
    assert all(json.loads(m.payload)["p"] for m in mine)


def test_the_reasoning_stream_has_the_recorded_event_order_and_payload_keys(fake: FakeBedrock) -> None:
    fake.enqueue_answer(Answer(text="Hello! It's nice to meet you.", reasoning="The user has greeted me."))
    response = httpx.post(
        f"{fake.base_url}/model/{NOVA}/converse-stream",
        json={"messages": HELLO},
        headers={"authorization": "Bearer bedrock-api-key-1"},
    )
    assert collapsed(served(response.content)) == collapsed(recorded("converse_stream_reasoning"))


def test_the_invoke_stream_has_the_recorded_chunk_events_in_the_recorded_order(fake: FakeBedrock) -> None:
    body = json.dumps(CLAUDE_BODY).encode()
    response = httpx.post(
        f"{fake.base_url}/model/{CLAUDE}/invoke-with-response-stream",
        content=body,
        headers={"authorization": "Bearer bedrock-api-key-1"},
    )

    def events(messages: list[EventMessage]) -> list[tuple[str, list[str]]]:
        out = []
        for message in messages:
            payload = json.loads(message.payload)
            assert sorted(payload) == ["bytes", "p"] and message.text(":event-type") == "chunk"
            event = json.loads(base64.b64decode(payload["bytes"]))
            item = (event["type"], sorted(event))
            if not out or out[-1] != item:
                out.append(item)
        return out

    assert events(served(response.content)) == events(recorded("invoke_stream_anthropic"))


def test_a_converse_answer_is_the_recorded_json_for_the_same_answer(fake: FakeBedrock) -> None:
    # pydantic-ai tests/models/cassettes/test_bedrock/test_bedrock_cache_write_and_read.yaml, first call (real).
    real = (
        '{"metrics":{"latencyMs":2023},"output":{"message":{"content":[{"text":"21"}],"role":"assistant"}},'
        '"stopReason":"end_turn","usage":{"cacheReadInputTokenCount":0,"cacheReadInputTokens":0,'
        '"cacheWriteInputTokenCount":1322,"cacheWriteInputTokens":1322,"inputTokens":2,"outputTokens":5,'
        '"serverToolUsage":{},"totalTokens":1329}}'
    )
    fake.enqueue_answer(Answer(text="21", input_tokens=2, output_tokens=5, cache_write_tokens=1322))
    response = httpx.post(
        f"{fake.base_url}/model/{NOVA}/converse",
        json={"messages": HELLO},
        headers={"authorization": "Bearer bedrock-api-key-1"},
    )
    assert response.content == real.replace("2023", "268").encode()


# --------------------------------------------------------------------------
# Authentication: SigV4 recomputed, API keys
# --------------------------------------------------------------------------


def test_a_wrong_secret_is_refused_as_aws_refuses_it(fake: FakeBedrock) -> None:
    with pytest.raises(ClientError) as raised:
        client(fake, secret="not-the-secret").converse(modelId=NOVA, messages=HELLO)
    error = raised.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert fake.last_request.auth == "signature mismatch"


def test_an_unknown_access_key_is_an_unrecognized_client(fake: FakeBedrock) -> None:
    with pytest.raises(ClientError) as raised:
        client(fake, key="AKIDSTRANGER").converse(modelId=NOVA, messages=HELLO)
    assert raised.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert raised.value.response["Error"]["Message"] == "The security token included in the request is invalid."


def test_a_signature_older_than_five_minutes_is_expired(fake: FakeBedrock) -> None:
    fake.clock = lambda: datetime.now(UTC) + timedelta(minutes=5, seconds=30)
    with pytest.raises(ClientError) as raised:
        client(fake).converse(modelId=NOVA, messages=HELLO)
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert raised.value.response["Error"]["Message"].startswith("Signature expired: ")
    assert fake.last_request.auth == "stale x-amz-date"


def test_a_signature_within_the_skew_is_accepted(fake: FakeBedrock) -> None:
    fake.clock = lambda: datetime.now(UTC) + timedelta(minutes=4)
    client(fake).converse(modelId=NOVA, messages=HELLO)
    assert fake.last_request.auth == "sigv4"


def test_an_envoy_style_signature_over_user_agent_and_the_body_hash_is_accepted(fake: FakeBedrock) -> None:
    response = envoy_style_request(fake, json.dumps({"messages": HELLO}).encode())
    assert response.status_code == 200, response.text
    assert fake.last_request.auth == "sigv4"


def test_a_body_changed_after_signing_is_refused_by_its_hash(fake: FakeBedrock) -> None:
    signed = json.dumps({"messages": HELLO}).encode()
    response = envoy_style_request(fake, signed.replace(b"hello", b"HELLO"), sign_body=signed)
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"].startswith("InvalidSignatureException:")
    assert fake.last_request.auth == "x-amz-content-sha256 is not the body's hash"


def test_a_body_changed_after_a_boto3_style_signature_is_refused_by_the_signature(fake: FakeBedrock) -> None:
    url = f"{fake.base_url}/model/{NOVA}/converse"
    signed = json.dumps({"messages": HELLO}).encode()
    request = AWSRequest("POST", url, headers={"content-type": "application/json"}, data=signed)
    SigV4Auth(Credentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key), "bedrock", "us-east-1").add_auth(
        request
    )
    response = httpx.post(url, content=signed + b" ", headers=dict(request.headers.items()))
    assert response.status_code == 403
    assert fake.last_request.auth == "signature mismatch"


def test_an_unsigned_payload_is_refused(fake: FakeBedrock) -> None:
    url = f"{fake.base_url}/model/{NOVA}/converse"
    request = AWSRequest("POST", url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}, data=b"{}")
    SigV4Auth(Credentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key), "bedrock", "us-east-1").add_auth(
        request
    )
    response = httpx.post(url, content=b"{}", headers=dict(request.headers.items()))
    assert response.status_code == 403
    assert fake.last_request.auth == "the body is not signed"


@pytest.mark.parametrize(("service", "region"), [("bedrock-runtime", "us-east-1"), ("bedrock", "eu-west-1")])
def test_a_signature_for_another_service_or_region_is_refused(fake: FakeBedrock, service: str, region: str) -> None:
    url = f"{fake.base_url}/model/{NOVA}/converse"
    request = AWSRequest("POST", url, headers={"content-type": "application/json"}, data=b"{}")
    SigV4Auth(Credentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key), service, region).add_auth(request)
    response = httpx.post(url, content=b"{}", headers=dict(request.headers.items()))
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"].startswith("InvalidSignatureException:")


def test_no_authorization_is_a_missing_token(fake: FakeBedrock) -> None:
    response = httpx.post(f"{fake.base_url}/model/{NOVA}/converse", json={"messages": HELLO})
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException:")


def test_a_bedrock_api_key_is_accepted_as_a_bearer_and_a_wrong_one_refused(fake: FakeBedrock) -> None:
    url = f"{fake.base_url}/model/{NOVA}/converse"
    good = httpx.post(url, json={"messages": HELLO}, headers={"authorization": "Bearer bedrock-api-key-1"})
    assert good.status_code == 200 and fake.last_request.auth == "bearer"
    bad = httpx.post(url, json={"messages": HELLO}, headers={"authorization": "Bearer bedrock-api-key-2"})
    assert bad.status_code == 403
    assert bad.headers["x-amzn-errortype"].startswith("AccessDeniedException:")


# --------------------------------------------------------------------------
# Errors, over HTTP and inside streams
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "ValidationException",
        "AccessDeniedException",
        "ModelNotReadyException",
        "ServiceUnavailableException",
        "ModelTimeoutException",
        "InternalServerException",
        "ModelErrorException",
    ],
)
def test_a_queued_error_reaches_botocore_with_its_code_and_status(fake: FakeBedrock, code: str) -> None:
    fake.enqueue_error(code)
    with pytest.raises(ClientError) as raised:
        client(fake).converse(modelId=NOVA, messages=HELLO)
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == ERROR_STATUS[code]
    assert raised.value.response["ResponseMetadata"]["RequestId"]


def test_a_refused_request_does_not_use_up_a_queued_error(fake: FakeBedrock) -> None:
    fake.enqueue_error("ThrottlingException")
    with pytest.raises(ClientError) as refused:
        client(fake, secret="wrong").converse(modelId=NOVA, messages=HELLO)
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as queued:
        client(fake).converse(modelId=NOVA, messages=HELLO)
    assert queued.value.response["Error"]["Code"] == "ThrottlingException"


@pytest.mark.parametrize(
    "exception", ["throttlingException", "modelStreamErrorException", "serviceUnavailableException"]
)
def test_an_in_stream_exception_frame_reaches_botocore_after_the_earlier_events(
    fake: FakeBedrock, exception: str
) -> None:
    fake.enqueue_stream_fault(StreamFault(after_events=2, exception=exception, message="stop now"))
    seen: list[str] = []
    with pytest.raises(EventStreamError) as raised:
        for event in client(fake).converse_stream(modelId=NOVA, messages=HELLO)["stream"]:
            seen.append(next(iter(event)))
    assert seen == ["messageStart", "contentBlockDelta"]
    assert raised.value.response["Error"] == {"Code": exception, "Message": "stop now"}


def test_an_in_stream_model_timeout_reaches_an_invoke_stream(fake: FakeBedrock) -> None:
    fake.enqueue_stream_fault(StreamFault(after_events=1, exception="modelTimeoutException"))
    response = client(fake).invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(CLAUDE_BODY))
    with pytest.raises(EventStreamError) as raised:
        list(response["body"])
    assert raised.value.response["Error"]["Code"] == "modelTimeoutException"


@pytest.mark.parametrize("where", ["prelude", "message"])
def test_a_corrupt_frame_fails_botocores_crc_check(fake: FakeBedrock, where: Any) -> None:
    fake.enqueue_stream_fault(StreamFault(after_events=3, corrupt=where))
    with pytest.raises(ChecksumMismatch):
        list(client(fake).converse_stream(modelId=NOVA, messages=HELLO)["stream"])


def test_a_truncated_stream_ends_inside_a_frame(fake: FakeBedrock) -> None:
    fake.enqueue_stream_fault(StreamFault(after_events=2, truncate=True))
    url = f"{fake.base_url}/model/{NOVA}/converse-stream"
    received = b""
    with (
        pytest.raises(httpx.HTTPError),
        httpx.stream(
            "POST", url, json={"messages": HELLO}, headers={"authorization": "Bearer bedrock-api-key-1"}
        ) as response,
    ):
        for chunk in response.iter_raw():
            received += chunk
    decoder = EventStreamDecoder()
    assert len(decoder.feed(received)) == 2
    assert decoder.pending > 0
