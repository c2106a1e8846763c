"""Bedrock through the real Envoy: every client API to Converse and to Claude's InvokeModel, plain and
streamed, against a fake Bedrock Runtime that recomputes each SigV4 signature with botocore. Envoy
signs (the ext_proc never holds an AWS secret), after the ext_proc rewrote the body."""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from google.genai import types

from tests.conftest import OPENAI_KEY, PROVIDER_ENV
from tests.fakes.answers import Answer, ToolCall
from tests.fakes.aws_sigv4 import AwsCredentials, write_credentials_file
from tests.fakes.bedrock import FakeBedrock, StreamFault
from tests.fakes.openai import FakeOpenAI
from tests.fakes.plans import count_tokens, fake_vector, vector_base64
from tests.integration.sdk_outcomes import gemini_client
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

NOVA = "us.amazon.nova-micro-v1:0"
CLAUDE = "us.anthropic.claude-sonnet-4-20250514-v1:0"
PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
# What Claude Code sends (docs/clients/claude-code.md), on a provider that lists what its Bedrock takes
CLAUDE_CODE_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,advanced-tool-use-2025-11-20"
NARROWED = ["interleaved-thinking-2025-05-14", "tool-search-tool-2025-10-19"]
FIRST = AwsCredentials("AKIDFIRSTKEY0001", "first/secret+key0000000000000000000000000")
ROTATED = AwsCredentials("AKIDROTATED00002", "rotated/secret+key00000000000000000000000")
BEDROCK_API_KEY = "bedrock-api-key-test-0001"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(FIRST, models=[NOVA, CLAUDE, PROFILE_ARN, TITAN, COHERE]) as fake:
        yield fake


@pytest.fixture(scope="module")
def keyed_bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(AwsCredentials("AKIDUNUSED", "unused"), api_key=BEDROCK_API_KEY, models=[NOVA]) as fake:
        yield fake


@pytest.fixture(scope="module")
def credentials_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("aws") / "credentials"
    write_credentials_file(path, FIRST)
    return path


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    bedrock: FakeBedrock,
    keyed_bedrock: FakeBedrock,
    fake_openai: FakeOpenAI,
    credentials_path: Path,
) -> Iterator[GatewayStack]:
    signed = {
        "kind": "bedrock",
        "base_url": bedrock.base_url,
        "bedrock": {"region": "us-east-1"},
        "aws_credentials": {"source": "file", "path": str(credentials_path)},
    }
    signed["cache_ttl_s"] = 0
    config = {
        "log_level": "info",
        "listeners": [{"name": "main"}],
        "cache": {},  # on, but every provider's TTL is 0: only a route that says so is cached
        "providers": [
            {"name": "bedrock", **signed},
            {"name": "bedrock-converse", **signed, "bedrock": {"region": "us-east-1", "api": "converse"}},
            {"name": "bedrock-narrow", **signed, "anthropic_betas": NARROWED},
            {
                "name": "bedrock-converse-narrow",
                **signed,
                "bedrock": {"region": "us-east-1", "api": "converse"},
                "anthropic_betas": NARROWED,
            },
            {"name": "bedrock-strict", **signed, "anthropic_betas": NARROWED, "unsupported": "reject"},
            {
                "name": "bedrock-keyed",
                "kind": "bedrock",
                "base_url": keyed_bedrock.base_url,
                "bedrock": {"region": "us-east-1"},
                "api_key_env": "TEST_BEDROCK_KEY",
                "cache_ttl_s": 0,
            },
            {
                "name": "openai",
                "kind": "openai",
                "base_url": fake_openai.base_url + "/v1",
                "api_key_env": "TEST_OPENAI_KEY",
                "cache_ttl_s": 0,
            },
        ],
        "routes": [
            {"model": "nova", "provider": "bedrock", "upstream_model": NOVA},
            {"model": "claude", "provider": "bedrock", "upstream_model": CLAUDE},
            {"model": "claude-converse", "provider": "bedrock-converse", "upstream_model": CLAUDE},
            {"model": "claude-narrow", "provider": "bedrock-narrow", "upstream_model": CLAUDE},
            {"model": "claude-converse-narrow", "provider": "bedrock-converse-narrow", "upstream_model": CLAUDE},
            {"model": "claude-strict", "provider": "bedrock-strict", "upstream_model": CLAUDE},
            {"model": "claude-cached", "provider": "bedrock", "upstream_model": CLAUDE, "cache_ttl_s": 600},
            {"model": "profile", "provider": "bedrock", "upstream_model": PROFILE_ARN},
            {"model": "keyed", "provider": "bedrock-keyed", "upstream_model": NOVA},
            {"model": "titan", "provider": "bedrock", "upstream_model": TITAN},
            {"model": "cohere", "provider": "bedrock", "upstream_model": COHERE},
            {"model": "us.*", "provider": "bedrock"},
            {
                "name": "claude-then-openai",
                "model": "pool-claude",
                "pool": [
                    {"provider": "bedrock", "model": CLAUDE},
                    {"provider": "openai", "priority": 1, "model": "gpt-4o-mini"},
                ],
            },
            {
                "name": "narrow-then-openai",
                "model": "narrow-pool",
                "pool": [
                    {"provider": "bedrock-narrow", "model": CLAUDE},
                    {"provider": "openai", "priority": 1, "model": "gpt-4o-mini"},
                ],
            },
            {
                "name": "cohere-then-openai",
                "model": "embed-pool",
                "pool": [
                    {"provider": "bedrock", "model": COHERE},
                    {"provider": "openai", "priority": 1, "model": "text-embedding-3-small"},
                ],
            },
            {
                "name": "bedrock-then-openai",
                "model": "pool-*",
                "pool": [
                    {"provider": "bedrock", "model": NOVA},
                    {"provider": "openai", "priority": 1, "model": "gpt-4o-mini"},
                ],
            },
        ],
    }
    env = {**PROVIDER_ENV, "TEST_BEDROCK_KEY": BEDROCK_API_KEY}
    stack = GatewayStack(Path(tmp_path_factory.mktemp("bedrock-gateway")), config, env).start()
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def _fresh(bedrock: FakeBedrock, keyed_bedrock: FakeBedrock) -> None:
    bedrock.reset()
    keyed_bedrock.reset()


def _openai(stack: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key="unused", max_retries=0)


def _anthropic(stack: GatewayStack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base_url, api_key="unused", max_retries=0)


def _with_claude_codes_betas(stack: GatewayStack, model: str) -> Any:
    """An Anthropic client's answer (raw: its headers read) to a request naming Claude Code's betas."""
    return _anthropic(stack).messages.with_raw_response.create(
        model=model,
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS},
    )


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "the weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_openai_chat_reaches_converse_signed_by_envoy_with_the_body_the_gateway_rewrote(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue_answer(Answer("Hello from Nova", input_tokens=12, output_tokens=4))
    answer = _openai(stack).chat.completions.create(
        model="nova", messages=[{"role": "user", "content": "hi"}], max_tokens=50
    )
    assert answer.choices[0].message.content == "Hello from Nova"
    assert answer.usage is not None and answer.usage.prompt_tokens == 12 and answer.usage.completion_tokens == 4
    sent = bedrock.last_request
    assert sent.auth == "sigv4", bedrock.auth_refusals
    assert sent.raw_path == "/model/us.amazon.nova-micro-v1%3A0/converse"
    assert sent.json["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]  # rendered by the gateway
    assert sent.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={FIRST.access_key_id}/")


def test_openai_chat_stream_with_a_tool_call_is_decoded_from_event_stream_frames(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    call = ToolCall("get_weather", {"city": "Paris"})
    bedrock.enqueue_answer(Answer("Let me look.", tool_calls=(call,), input_tokens=30, output_tokens=9))
    stream = _openai(stack).chat.completions.create(
        model="nova",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    text, arguments, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for tool in choice.delta.tool_calls or []:
                arguments += (tool.function.arguments if tool.function else None) or ""
            finish = choice.finish_reason or finish
    assert text == "Let me look." and finish == "tool_calls"
    assert arguments.replace(" ", "") == '{"city":"Paris"}'
    assert usage is not None and usage.prompt_tokens == 30 and usage.completion_tokens == 9
    assert bedrock.last_request.operation == "converse-stream" and bedrock.last_request.auth == "sigv4"
    assert bedrock.last_request.json["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


def test_an_image_goes_to_converse_as_bytes(stack: GatewayStack, bedrock: FakeBedrock) -> None:
    _openai(stack).chat.completions.create(
        model="nova",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    (_, image) = bedrock.last_request.json["messages"][0]["content"]
    assert image == {"image": {"format": "png", "source": {"bytes": PNG}}}
    assert bedrock.last_request.auth == "sigv4"


def test_responses_api_plain_and_streamed_reach_converse(stack: GatewayStack, bedrock: FakeBedrock) -> None:
    client = _openai(stack)
    bedrock.enqueue_answer(Answer("plain answer"))
    assert client.responses.create(model="nova", input="hi").output_text == "plain answer"
    bedrock.enqueue_answer(Answer("streamed answer"))
    events = list(client.responses.create(model="nova", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "streamed answer"  # type: ignore[union-attr]
    assert [r.operation for r in bedrock.requests] == ["converse", "converse-stream"]


def test_gemini_generate_content_plain_and_streamed_reach_converse(stack: GatewayStack, bedrock: FakeBedrock) -> None:
    client = gemini_client(stack.base_url)
    bedrock.enqueue_answer(Answer("from converse"))
    assert client.models.generate_content(model="nova", contents="hi").text == "from converse"
    bedrock.enqueue_answer(Answer("streamed from converse"))
    chunks = client.models.generate_content_stream(
        model="nova", contents="hi", config=types.GenerateContentConfig(max_output_tokens=64)
    )
    assert "".join(chunk.text or "" for chunk in chunks) == "streamed from converse"
    assert all(r.auth == "sigv4" for r in bedrock.requests)


def test_anthropic_client_reaches_claude_on_invoke_with_its_own_body(stack: GatewayStack, bedrock: FakeBedrock) -> None:
    bedrock.enqueue_answer(Answer("Claude here", input_tokens=20, output_tokens=3, cache_read_tokens=7))
    message = _anthropic(stack).messages.create(
        model="claude",
        max_tokens=100,
        system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].text == "Claude here"  # type: ignore[union-attr]
    assert message.usage.cache_read_input_tokens == 7
    sent = bedrock.last_request
    assert sent.raw_path == "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/invoke"
    assert sent.json["anthropic_version"] == "bedrock-2023-05-31" and "model" not in sent.json
    assert sent.json["system"][0]["cache_control"] == {"type": "ephemeral"}  # kept: not flattened through Converse
    assert sent.auth == "sigv4"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_an_anthropic_clients_betas_reach_invoke_in_the_body_and_the_header_stays_behind(
    stack: GatewayStack, bedrock: FakeBedrock, streamed: bool
) -> None:
    betas = ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
    bedrock.enqueue_answer(Answer("with betas"))
    client = _anthropic(stack).beta.messages
    if streamed:
        with client.stream(
            model="claude", max_tokens=50, betas=betas, messages=[{"role": "user", "content": "hi"}]
        ) as s:
            text = s.get_final_text()
    else:
        message = client.create(
            model="claude", max_tokens=50, betas=betas, messages=[{"role": "user", "content": "hi"}]
        )
        text = message.content[0].text  # type: ignore[union-attr]
    assert text == "with betas"
    sent = bedrock.last_request
    assert sent.json["anthropic_beta"] == betas
    assert sent.operation == ("invoke-with-response-stream" if streamed else "invoke")
    assert "anthropic-beta" not in {name.lower() for name in sent.headers}  # Bedrock reads the body's, not a header
    assert "?" not in sent.raw_path  # the SDK's ?beta=true is Anthropic's API's, not Bedrock's
    assert sent.auth == "sigv4"


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
def test_only_the_betas_a_provider_lists_reach_invoke_by_bedrocks_names_and_the_others_are_named(
    stack: GatewayStack, bedrock: FakeBedrock, streamed: bool
) -> None:
    bedrock.refused_betas.update({"claude-code-20250219", "advanced-tool-use-2025-11-20"})  # as Bedrock would
    bedrock.enqueue_answer(Answer("narrowed"))
    try:
        raw = _anthropic(stack).messages.with_raw_response.create(
            model="claude-narrow",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            stream=streamed,
            extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS},
        )
        assert raw.status_code == 200 and b"narrowed" in raw.http_response.read()
    finally:
        bedrock.refused_betas.clear()
    # Bedrock names Anthropic's tool search beta tool-search-tool-2025-10-19
    assert bedrock.last_request.json["anthropic_beta"] == NARROWED
    assert raw.headers["x-gateway-dropped-features"] == "anthropic-beta:claude-code-20250219"


def test_a_pools_bedrock_attempt_gets_only_the_listed_betas_and_the_answer_names_the_others(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue_answer(Answer("pooled and narrowed"))
    raw = _with_claude_codes_betas(stack, "narrow-pool")
    assert raw.parse().content[0].text == "pooled and narrowed"  # type: ignore[union-attr]
    assert bedrock.last_request.json["anthropic_beta"] == NARROWED
    assert raw.headers["x-gateway-dropped-features"] == "anthropic-beta:claude-code-20250219"


def test_a_beta_a_provider_does_not_list_is_a_400_naming_it_under_the_reject_policy(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    asked = len(bedrock.requests)
    with pytest.raises(anthropic.BadRequestError) as refused:
        _anthropic(stack).messages.create(
            model="claude-strict",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"anthropic-beta": CLAUDE_CODE_BETAS},
        )
    assert "anthropic-beta:claude-code-20250219 is not supported by provider bedrock-strict" in refused.value.message
    assert len(bedrock.requests) == asked  # nothing reached Bedrock


def test_without_a_list_every_beta_reaches_invoke_anthropics_tool_search_by_bedrocks_name(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue_answer(Answer("all of them"))
    raw = _with_claude_codes_betas(stack, "claude")
    assert raw.parse().content[0].text == "all of them"  # type: ignore[union-attr]
    assert bedrock.last_request.json["anthropic_beta"] == [
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "tool-search-tool-2025-10-19",
    ]
    assert "x-gateway-dropped-features" not in raw.headers


@pytest.mark.parametrize(
    ("model", "reaching", "dropped"),
    [("claude-converse-narrow", NARROWED, "anthropic-beta:claude-code-20250219"), ("claude-converse", None, None)],
    ids=["listed", "unlisted"],
)
def test_claude_on_converse_gets_the_betas_its_provider_lists_in_its_own_fields_and_none_unlisted(
    stack: GatewayStack, bedrock: FakeBedrock, model: str, reaching: list[str] | None, dropped: str | None
) -> None:
    bedrock.enqueue_answer(Answer("conversed"))
    raw = _with_claude_codes_betas(stack, model)
    assert raw.parse().content[0].text == "conversed"  # type: ignore[union-attr]
    sent = bedrock.last_request
    assert sent.operation == "converse"
    assert (sent.json.get("additionalModelRequestFields") or {}).get("anthropic_beta") == reaching
    assert raw.headers.get("x-gateway-dropped-features") == dropped


def test_betas_reach_invoke_in_the_body_on_a_pool_attempt_too(stack: GatewayStack, bedrock: FakeBedrock) -> None:
    bedrock.enqueue_answer(Answer("pooled betas"))
    message = _anthropic(stack).beta.messages.create(
        model="pool-claude",
        max_tokens=50,
        betas=["context-1m-2025-08-07"],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].text == "pooled betas"  # type: ignore[union-attr]
    assert bedrock.last_request.operation == "invoke"
    assert bedrock.last_request.json["anthropic_beta"] == ["context-1m-2025-08-07"]
    assert "anthropic-beta" not in {name.lower() for name in bedrock.last_request.headers}


def test_a_repeated_anthropic_request_to_claude_on_invoke_is_a_hit_keyed_on_what_invoke_gets(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    """The key is computed on the body InvokeModel really gets: the client's own, betas included."""
    client = _anthropic(stack)

    def ask(text: str, **extra: Any) -> str:
        raw = client.messages.with_raw_response.create(
            model="claude-cached", max_tokens=50, messages=[{"role": "user", "content": text}], **extra
        )
        assert raw.parse().content[0].type == "text"
        return raw.headers["x-gateway-cache"]

    text = f"cache me {uuid.uuid4()}"
    assert ask(text) == "MISS"
    assert ask(text) == "HIT"
    assert len(bedrock.requests) == 1 and bedrock.last_request.operation == "invoke"
    beta = {"extra_headers": {"anthropic-beta": "context-1m-2025-08-07"}}
    assert ask(text, **beta) == "MISS"  # another body reaches Bedrock: its own entry
    assert bedrock.last_request.json["anthropic_beta"] == ["context-1m-2025-08-07"]
    assert ask(text, **beta) == "HIT"
    uncarried = {"metadata": {"user_id": "u-1"}, "extra_body": {"metadata": {"user_id": "u-1", "tag": "x"}}}
    assert ask(text, **uncarried) == "MISS"  # a member only the client's own body carries
    assert bedrock.last_request.json["metadata"] == {"user_id": "u-1", "tag": "x"}
    assert len(bedrock.requests) == 3


def test_anthropic_stream_from_invoke_arrives_as_anthropic_sse_with_thinking(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue_answer(Answer("The answer is 4.", reasoning="2 plus 2", input_tokens=15, output_tokens=8))
    with _anthropic(stack).messages.stream(
        model="claude",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "2+2?"}],
    ) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text"]
    assert final.content[1].text == "The answer is 4."  # type: ignore[union-attr]
    assert final.usage.output_tokens == 8
    assert bedrock.last_request.operation == "invoke-with-response-stream"
    assert "stream" not in bedrock.last_request.json and bedrock.last_request.auth == "sigv4"


def test_openai_client_to_claude_on_invoke_and_on_converse(stack: GatewayStack, bedrock: FakeBedrock) -> None:
    client = _openai(stack)
    for model, operation in (("claude", "invoke-with-response-stream"), ("claude-converse", "converse-stream")):
        bedrock.enqueue_answer(Answer(f"via {operation}"))
        chunks = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"via {operation}"
        assert bedrock.last_request.operation == operation


def test_model_ids_with_a_colon_and_an_inference_profile_arn_stay_one_path_segment(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    client = _openai(stack)
    client.chat.completions.create(model=NOVA, messages=[{"role": "user", "content": "hi"}])
    assert bedrock.last_request.raw_path == "/model/us.amazon.nova-micro-v1%3A0/converse"
    client.chat.completions.create(model="profile", messages=[{"role": "user", "content": "hi"}])
    assert bedrock.last_request.raw_path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse"
    )
    assert bedrock.last_request.model_id == PROFILE_ARN
    assert [r.auth for r in bedrock.requests] == ["sigv4", "sigv4"]


def test_a_bedrock_api_key_is_sent_as_a_bearer_by_envoy(stack: GatewayStack, keyed_bedrock: FakeBedrock) -> None:
    keyed_bedrock.enqueue_answer(Answer("keyed"))
    answer = _openai(stack).chat.completions.create(model="keyed", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "keyed"
    assert keyed_bedrock.last_request.auth == "bearer"


@pytest.mark.parametrize(
    ("code", "openai_status", "anthropic_status"),
    [
        ("ThrottlingException", 429, 429),
        ("ModelNotReadyException", 429, 429),
        ("ValidationException", 400, 400),
        ("AccessDeniedException", 502, 502),
        ("ServiceUnavailableException", 503, 503),
        ("InternalServerException", 502, 502),
    ],
)
def test_each_bedrock_error_reaches_each_client_in_its_own_format_and_status(
    stack: GatewayStack, bedrock: FakeBedrock, code: str, openai_status: int, anthropic_status: int
) -> None:
    bedrock.enqueue_error(code, "the provider said no")
    with pytest.raises(openai.APIStatusError) as openai_error:
        _openai(stack).chat.completions.create(model="nova", messages=[{"role": "user", "content": "hi"}])
    assert openai_error.value.status_code == openai_status
    assert openai_error.value.response.headers.get("x-request-id")
    bedrock.enqueue_error(code, "the provider said no")
    with pytest.raises(anthropic.APIStatusError) as anthropic_error:  # Claude on invoke: still mapped
        _anthropic(stack).messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert anthropic_error.value.status_code == anthropic_status
    body = anthropic_error.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] != code


STORY = "one two three four five six seven eight nine ten"


def _read_then_break(stack: GatewayStack, bedrock: FakeBedrock, **fault: Any) -> tuple[list[str], Exception | None]:
    """An OpenAI client streams from Converse; the fake sends three events (the first two words),
    waits until the client has read them, then breaks the stream as `fault` says."""
    release = threading.Event()
    bedrock.enqueue_answer(Answer(STORY))
    bedrock.enqueue_stream_fault(StreamFault(after_events=3, release=release, **fault))
    words: list[str] = []
    try:
        stream = _openai(stack).chat.completions.create(
            model="nova", messages=[{"role": "user", "content": "tell me a story"}], stream=True
        )
        for chunk in stream:
            words += [chunk.choices[0].delta.content or ""] if chunk.choices else []
            if "".join(words) == "one two":
                release.set()
    except openai.APIError as error:
        return words, error
    finally:
        release.set()
    return words, None


@pytest.mark.parametrize(
    "fault", [{"corrupt": "message"}, {"truncate": True, "eof": True}, {"exception": "throttlingException"}]
)
def test_a_broken_converse_stream_keeps_what_was_sent_and_ends_with_an_in_band_error(
    stack: GatewayStack, bedrock: FakeBedrock, fault: dict[str, Any]
) -> None:
    """A bad CRC, a body that ends inside a frame, an exception frame: the client has the words
    decoded before, then the SDK raises the in-band error (not a dropped connection)."""
    words, error = _read_then_break(stack, bedrock, **fault)
    assert "".join(words) == "one two"
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIConnectionError), error
    assert error.message


def test_a_converse_stream_reset_after_the_client_read_from_it_keeps_what_was_sent(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    """The provider's connection reset mid-frame once the stream reached the client: Envoy resets
    the client's connection (nothing can be written after a reset); the words before are the client's."""
    words, error = _read_then_break(stack, bedrock, truncate=True)
    assert "".join(words) == "one two"
    assert isinstance(error, openai.APIConnectionError)


def test_a_converse_stream_reset_before_the_gateway_sent_its_headers_is_a_502_in_the_clients_format(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    """The reset reaches Envoy while the ext_proc still holds the answer's headers: Envoy answers
    by itself, past the ext_proc; that answer is still the client's own error JSON. (Here the
    fake's whole answer and its reset usually arrive before the ext_proc has read the headers;
    under load the ext_proc may be first, and the client gets the stream, then a reset.)"""
    for _ in range(3):
        bedrock.enqueue_answer(Answer(STORY))
        bedrock.enqueue_stream_fault(StreamFault(after_events=3, truncate=True))
        with httpx.stream(
            "POST",
            stack.base_url + "/v1/chat/completions",
            json={"model": "nova", "stream": True, "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": "Bearer unused"},
            timeout=30,
        ) as response:
            try:
                response.read()
            except httpx.RemoteProtocolError:  # the ext_proc was first: the stream started, then the reset
                assert response.status_code == 200
                continue
        assert response.status_code == 502
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == "provider_error" and response.headers["x-request-id"] in error["message"]


@pytest.mark.parametrize(
    "fault", [StreamFault(corrupt="message"), StreamFault(truncate=True, eof=True)], ids=["crc", "cut"]
)
def test_a_corrupt_or_cut_invoke_stream_ends_the_anthropic_stream_with_an_error_never_a_hang(
    stack: GatewayStack, bedrock: FakeBedrock, fault: StreamFault
) -> None:
    """InvokeModel to an Anthropic client (reframed): the in-band error after the events before."""
    bedrock.enqueue_answer(Answer(STORY))
    bedrock.enqueue_stream_fault(fault)
    with (
        pytest.raises(anthropic.APIError) as anthropic_error,
        _anthropic(stack).messages.stream(
            model="claude", max_tokens=100, messages=[{"role": "user", "content": "tell me a story"}]
        ) as anthropic_stream,
    ):
        for _ in anthropic_stream:
            pass
    assert not isinstance(anthropic_error.value, anthropic.APIConnectionError)
    assert anthropic_error.value.message


def test_a_pool_fails_over_from_bedrock_to_openai_in_one_request_streamed(
    stack: GatewayStack, bedrock: FakeBedrock, fake_openai: FakeOpenAI
) -> None:
    bedrock.enqueue_error("ServiceUnavailableException")
    stream = _openai(stack).chat.completions.create(
        model="pool-x", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text  # answered by OpenAI after Bedrock's 503
    assert bedrock.last_request.auth == "sigv4"  # the Bedrock attempt was signed
    openai_headers = {k.lower(): v for k, v in fake_openai.last_request.headers.items()}
    assert openai_headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert not any(name.startswith("x-amz-") for name in openai_headers)  # nothing of the signer's followed


def test_a_pool_attempt_to_bedrock_is_signed_and_plain_answer_is_read(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue_answer(Answer("pool answer"))
    answer = _openai(stack).chat.completions.create(model="pool-y", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "pool answer"
    assert bedrock.last_request.auth == "sigv4"


def test_a_client_cannot_get_its_own_credentials_signed_or_forwarded(stack: GatewayStack, bedrock: FakeBedrock) -> None:
    headers = {
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDCLIENT/20260101/us-east-1/bedrock/aws4_request",
        "x-amz-security-token": "client-token",
        "x-amz-date": "20200101T000000Z",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    }
    response = httpx.post(
        stack.base_url + "/v1/chat/completions",
        json={"model": "nova", "messages": [{"role": "user", "content": "hi"}]},
        headers={**headers, "authorization": "Bearer unused"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    sent = {k.lower(): v for k, v in bedrock.last_request.headers.items()}
    assert bedrock.last_request.auth == "sigv4"
    assert "x-amz-security-token" not in sent and "client-token" not in str(sent)
    assert sent["x-amz-content-sha256"] != "UNSIGNED-PAYLOAD"


def test_the_extproc_process_holds_no_aws_secret(stack: GatewayStack) -> None:
    environ = Path(f"/proc/{stack.extproc_process.pid}/environ").read_bytes()
    config = (stack.workdir / "gateway.yaml").read_bytes()
    for secret in (FIRST.secret_access_key, ROTATED.secret_access_key):
        assert secret.encode() not in environ and secret.encode() not in config
    assert b"AWS_SECRET_ACCESS_KEY" not in environ or os.environ.get("AWS_SECRET_ACCESS_KEY")


def test_a_replaced_credentials_file_is_used_without_a_restart(
    stack: GatewayStack, bedrock: FakeBedrock, credentials_path: Path
) -> None:
    client = _openai(stack)
    bedrock.credentials = ROTATED  # the old key is no longer accepted
    write_credentials_file(credentials_path, ROTATED)

    def signed_with_rotated() -> bool:
        try:
            client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError:
            return False
        return ROTATED.access_key_id in bedrock.last_request.headers["Authorization"]

    try:
        wait_until(signed_with_rotated, timeout=15)
    finally:
        bedrock.credentials = FIRST
        write_credentials_file(credentials_path, FIRST)
        wait_until(lambda: _answers(client), timeout=15)


def _answers(client: openai.OpenAI) -> bool:
    try:
        client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError:
        return False
    return True


# -- embeddings and token counts ---------------------------------------------------------------


def test_openai_embeddings_of_one_input_reach_titan_with_its_dimensions_and_its_token_count(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    answer = _openai(stack).embeddings.create(model="titan", input="the quick brown fox", dimensions=256)
    assert len(answer.data) == 1 and len(answer.data[0].embedding) == 256
    sent = bedrock.last_request
    assert sent.raw_path == "/model/amazon.titan-embed-text-v2%3A0/invoke" and sent.auth == "sigv4"
    assert sent.json == {"inputText": "the quick brown fox", "dimensions": 256, "normalize": True}
    assert answer.usage.prompt_tokens == count_tokens("the quick brown fox")  # Titan's inputTextTokenCount


def test_openai_embeddings_of_several_inputs_reach_cohere_in_one_call_in_either_encoding(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    texts = ["first document", "a second, longer document", "third"]
    floats = _openai(stack).embeddings.create(model="cohere", input=texts)
    assert [item.index for item in floats.data] == [0, 1, 2]
    assert [item.embedding for item in floats.data] == [fake_vector(text, 1024) for text in texts]
    sent = bedrock.last_request
    assert sent.raw_path == "/model/cohere.embed-english-v3/invoke" and sent.auth == "sigv4"
    assert sent.json == {"texts": texts, "input_type": "search_document", "embedding_types": ["float"]}
    # Cohere's body has no count: Bedrock's x-amzn-bedrock-input-token-count header is the usage
    assert floats.usage.prompt_tokens == sum(count_tokens(text) for text in texts)
    raw = httpx.post(
        f"{stack.base_url}/v1/embeddings",
        json={"model": "cohere", "input": texts[:2], "encoding_format": "base64"},
        timeout=20,
    )
    assert raw.status_code == 200, raw.text
    assert [item["embedding"] for item in raw.json()["data"]] == [
        vector_base64(fake_vector(t, 1024)) for t in texts[:2]
    ]


def test_several_inputs_to_titan_are_a_400_in_openais_format_naming_the_limit(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        _openai(stack).embeddings.create(model="titan", input=["one", "two"])
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "input"
    assert "one input per request" in error["message"] and "has 2" in error["message"]
    assert refused.value.response.headers.get("x-request-id")
    assert bedrock.requests == []  # nothing reached Bedrock


def test_google_genai_embed_content_reaches_titan_and_cohere_with_its_task_type(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    client = gemini_client(stack.base_url)
    single = client.models.embed_content(model="titan", contents="what is the capital of France")
    assert single.embeddings and len(single.embeddings[0].values or []) == 1024
    assert bedrock.last_request.json["inputText"] == "what is the capital of France"
    batch = client.models.embed_content(
        model="cohere",
        contents=["what is the capital of France", "Paris"],
        config=types.EmbedContentConfig(task_type="RETRIEVAL_QUERY"),
    )
    assert [e.values for e in batch.embeddings or []] == [
        fake_vector("what is the capital of France", 1024),
        fake_vector("Paris", 1024),
    ]
    assert bedrock.last_request.json["input_type"] == "search_query"


def test_a_pools_embeddings_attempt_reaches_cohere_signed_and_fails_over_to_openai(
    stack: GatewayStack, bedrock: FakeBedrock, fake_openai: FakeOpenAI
) -> None:
    answer = _openai(stack).embeddings.create(model="embed-pool", input=["alpha", "beta"])
    assert [item.embedding for item in answer.data] == [fake_vector("alpha", 1024), fake_vector("beta", 1024)]
    assert answer.usage.prompt_tokens == 2  # Bedrock's header, read on the pool's answer too
    assert bedrock.last_request.operation == "invoke" and bedrock.last_request.auth == "sigv4"
    bedrock.enqueue_error("ServiceUnavailableException")
    failed_over = _openai(stack).embeddings.create(model="embed-pool", input=["alpha", "beta"])
    assert len(failed_over.data) == 2
    assert fake_openai.last_request.json["model"] == "text-embedding-3-small"


def test_an_anthropic_clients_count_reaches_claudes_count_tokens_as_the_invoke_body(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    raw = _anthropic(stack).messages.with_raw_response.count_tokens(
        model="claude", system="be brief", messages=[{"role": "user", "content": "count these words please"}]
    )
    counted = raw.parse()
    assert "x-gateway-token-count" not in raw.headers  # Bedrock's count, not an estimate
    assert counted.input_tokens == count_tokens("be brief count these words please") + 3
    sent = bedrock.last_request
    # the foundation model's own id: CountTokens does not take a cross-region profile's
    assert sent.raw_path == "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/count-tokens"
    assert sent.auth == "sigv4"
    body = orjson.loads(base64.b64decode(sent.json["input"]["invokeModel"]["body"]))
    assert body["anthropic_version"] == "bedrock-2023-05-31" and "model" not in body and body["max_tokens"] > 0
    assert body["system"] == "be brief"


def test_a_responses_clients_count_reaches_count_tokens_as_converse_input(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    counted = _openai(stack).responses.input_tokens.count(
        model="claude-converse", instructions="be brief", input="count these words please"
    )
    assert counted.input_tokens == count_tokens("be brief count these words please") + 3
    converse = bedrock.last_request.json["input"]["converse"]
    assert converse["messages"] == [{"role": "user", "content": [{"text": "count these words please"}]}]
    assert converse["system"] == [{"text": "be brief"}]
    assert set(converse) <= {"messages", "system", "toolConfig", "additionalModelRequestFields"}


def test_a_count_for_a_model_bedrock_cannot_count_is_an_estimate_marked_as_one(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    raw = _anthropic(stack).messages.with_raw_response.count_tokens(
        model="nova", messages=[{"role": "user", "content": "hello " * 400}]
    )
    assert raw.headers["x-gateway-token-count"] == "estimate" and raw.parse().input_tokens > 300
    assert bedrock.requests == []


def test_bedrock_errors_on_embeddings_and_counts_reach_the_client_in_its_own_format(
    stack: GatewayStack, bedrock: FakeBedrock
) -> None:
    bedrock.enqueue_error("ThrottlingException")
    with pytest.raises(openai.RateLimitError) as limited:
        _openai(stack).embeddings.create(model="cohere", input="hi")
    assert limited.value.response.headers.get("x-request-id")
    assert isinstance(limited.value.body, dict) and "Too many requests" in limited.value.body["message"]
    bedrock.enqueue_error("ValidationException", "The provided model doesn't support counting tokens.")
    with pytest.raises(anthropic.BadRequestError) as refused:
        _anthropic(stack).messages.count_tokens(model="claude", messages=[{"role": "user", "content": "hi"}])
    body = refused.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "counting tokens" in body["error"]["message"]
    assert refused.value.response.headers.get("request-id") or refused.value.response.headers.get("x-request-id")
