"""Bedrock Converse, provider side: canonical requests render to the bodies real Bedrock clients sent
(recorded in tests/fixtures/bedrock), what Converse cannot carry is named or refused per the policy,
recorded real answers read back into the canonical answer, and Bedrock's errors reach the gateway's
error kinds (so each client gets the status the error table gives them)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.errors import GatewayError, client_status
from extproc.formats.bedrock import converse_answer, converse_request
from extproc.formats.bedrock.errors import ERROR_KINDS, parse_http_error
from extproc.formats.bedrock.paths import converse_path, invoke_path, is_anthropic
from extproc.formats.bedrock.wire import CONVERSE
from extproc.formats.canonical import (
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from extproc.formats.render_options import RenderOptions
from extproc.provider_kinds import BEDROCK
from extproc.providers.rendering import lacks_of

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "bedrock" / "recorded_converse.json"
CLAUDE = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA = "us.amazon.nova-micro-v1:0"


@cache
def recorded() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(RECORDED.read_text())
    return loaded


def rendered(request: ChatRequest, model: str = CLAUDE, unsupported: str = "drop") -> tuple[dict[str, Any], list[str]]:
    made = CONVERSE.render_request(request, RenderOptions(model, unsupported, lacks=lacks_of(BEDROCK)))  # type: ignore[arg-type]
    return orjson.loads(made.body), made.dropped


def without_empty_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """pydantic-ai sends `system: []` and `inferenceConfig: {}` where it has nothing to say; the gateway leaves them out."""
    return {key: value for key, value in body.items() if value not in ([], {})}


def test_reasoning_tool_call_and_tool_result_render_as_the_recorded_request() -> None:
    real = recorded()["converse_after_tool_result"]["request_body"]
    thinking = real["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]
    schema = real["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]
    request = ChatRequest(
        model="claude",
        messages=[
            Message("user", [TextPart("What is the largest city in the user country?")]),
            Message(
                "assistant",
                [
                    ThinkingPart(thinking["text"], thinking["signature"]),
                    TextPart("I'll need to check what country you're from to answer that question."),
                ],
                tool_calls=[ToolCall("tooluse_W9DaUFg4Tj2cRPpndqxWSg", "get_user_country", "{}")],
            ),
            Message("tool", [TextPart("Mexico")], tool_call_id="tooluse_W9DaUFg4Tj2cRPpndqxWSg"),
        ],
        tools=[Tool("get_user_country", None, schema)],
        thinking_budget=1024,
    )
    body, dropped = rendered(request)
    expected = without_empty_defaults(real)
    expected["messages"][2]["content"][0]["toolResult"].pop("status")  # success is the default
    assert body == expected
    assert dropped == []


def test_top_k_for_claude_goes_in_additional_model_request_fields_as_recorded() -> None:
    real = recorded()["converse_top_k_anthropic"]["request_body"]
    request = ChatRequest(model="m", messages=[Message("user", [TextPart("Reply with the single word: ok")])], top_k=20)
    assert rendered(request, "us.anthropic.claude-sonnet-4-5-20250929-v1:0")[0] == without_empty_defaults(real)


def test_listed_betas_go_in_claudes_additional_model_request_fields_and_nowhere_for_nova_or_unlisted() -> None:
    request = ChatRequest(model="m", messages=[Message("user", [TextPart("hi")])])
    betas = ("context-1m-2025-08-07", "interleaved-thinking-2025-05-14")
    for model, listed, expected in [
        (CLAUDE, True, {"anthropic_beta": list(betas)}),
        (NOVA, True, None),
        (CLAUDE, False, None),  # a provider without anthropic_betas: Converse gets none, as before the option
    ]:
        options = RenderOptions(model, lacks=lacks_of(BEDROCK), betas=betas, betas_listed=listed)  # type: ignore[arg-type]
        made = CONVERSE.render_request(request, options)
        assert orjson.loads(made.body).get("additionalModelRequestFields") == expected, (model, listed)


def test_top_k_for_nova_goes_in_its_inference_config_and_elsewhere_is_named_as_dropped() -> None:
    request = ChatRequest(model="m", messages=[Message("user", [TextPart("hi")])], top_k=20)
    assert rendered(request, NOVA)[0]["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 20}}
    body, dropped = rendered(request, "meta.llama3-70b-instruct-v1:0")
    assert "additionalModelRequestFields" not in body and dropped == ["top_k"]


def test_an_image_renders_as_base64_bytes_as_recorded() -> None:
    real = recorded()["converse_image_bytes"]["request_body"]
    data = real["messages"][0]["content"][1]["image"]["source"]["bytes"]
    request = ChatRequest(
        model="m",
        messages=[
            Message("system", [TextPart("You are a helpful chatbot.")]),
            Message("user", [TextPart("What fruit is in the image?"), ImagePart(url=f"data:image/png;base64,{data}")]),
        ],
    )
    assert rendered(request, "us.amazon.nova-pro-v1:0")[0] == without_empty_defaults(real)


def test_inference_config_tools_choice_and_system_render_in_their_converse_places() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message("system", [TextPart("Be brief.")]),
            Message("user", [TextPart("hi"), FilePart("application/pdf", "JVBERi0=", filename="report v2.pdf")]),
            Message("system", [TextPart("Answer in French.")]),
        ],
        max_tokens=300,
        temperature=1.5,
        top_p=0.9,
        stop=["END"],
        tools=[Tool("lookup", "Look it up", {"properties": {"q": {"type": "string"}}})],
        tool_choice=ToolChoice("function", "lookup"),
        response_format=ResponseFormat("json_schema", {"type": "object"}, "answer"),
    )
    body, dropped = rendered(request, NOVA)
    assert body["system"] == [{"text": "Be brief."}, {"text": "Answer in French."}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "hi"},
                {"document": {"format": "pdf", "name": "report v2", "source": {"bytes": "JVBERi0="}}},
            ],
        }
    ]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 1.0, "topP": 0.9, "stopSequences": ["END"]}
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "lookup",
                    "description": "Look it up",
                    "inputSchema": {"json": {"type": "object", "properties": {"q": {"type": "string"}}}},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "lookup"}},
    }
    assert body["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": '{"type":"object"}', "name": "answer"}},
        }
    }
    assert dropped == []


def test_thinking_on_claude_drops_temperature_and_fits_the_budget_under_max_tokens() -> None:
    request = ChatRequest(
        model="m", messages=[Message("user", [TextPart("hi")])], max_tokens=2000, temperature=0.3, thinking_budget=4096
    )
    body, dropped = rendered(request)
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1999}}
    assert body["inferenceConfig"] == {"maxTokens": 2000}
    assert dropped == ["temperature"]


@pytest.mark.parametrize(
    ("fields", "feature"),
    [
        ({"n": 2}, "n"),
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"response_format": ResponseFormat("json_object")}, "response_format"),
        ({"tools": [Tool("t")], "tool_choice": ToolChoice("none")}, "tool_choice"),
        ({"tools": [Tool("t")], "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"messages": [Message("user", [ImagePart(url="https://example.com/a.png")])]}, "image_url"),
        (
            {"messages": [Message("system", [ImagePart("image/png", "iVBO")]), Message("user", [TextPart("x")])]},
            "system_image",
        ),
    ],
)
def test_what_converse_cannot_carry_is_named_or_refused_per_the_policy(fields: dict[str, Any], feature: str) -> None:
    assert feature in converse_request.UNSUPPORTED or feature in BEDROCK.unsupported
    base: dict[str, Any] = {"model": "m", "messages": [Message("user", [TextPart("hi")])]}
    assert rendered(ChatRequest(**{**base, **fields}), NOVA)[1] == [feature]
    with pytest.raises(GatewayError) as refused:
        rendered(ChatRequest(**{**base, **fields}), NOVA, unsupported="reject")
    assert refused.value.status == 400 and refused.value.param == feature


def test_tool_call_ids_are_made_converse_safe_the_same_way_for_the_call_and_its_result() -> None:
    odd = "call/with spaces+" + "x" * 80
    request = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("go")]),
            Message("assistant", tool_calls=[ToolCall(odd, "lookup", '{"q": 1}')]),
            Message("tool", [TextPart("done")], tool_call_id=odd, is_error=True),
        ],
    )
    body, _ = rendered(request, NOVA)
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"] and len(use["toolUseId"]) <= 64
    assert all(c.isalnum() or c in "_.:-" for c in use["toolUseId"])
    assert use["input"] == {"q": 1} and result["status"] == "error"
    # a history with tool calls and no tools still gets the toolConfig Converse requires
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]
    }


def test_model_ids_and_arns_stay_one_path_segment() -> None:
    assert converse_path(CLAUDE, False) == "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert converse_path(arn, True) == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
        "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"
    )
    assert invoke_path("a/../b?c#d", True) == "/model/a%2F..%2Fb%3Fc%23d/invoke-with-response-stream"
    assert is_anthropic(arn) and is_anthropic("anthropic.claude-v2") and not is_anthropic(NOVA)
    with pytest.raises(GatewayError):
        converse_path("..", False)


def answer(name: str) -> Any:
    return CONVERSE.parse_response(orjson.dumps(recorded()[name]["body"]))


def test_a_recorded_answer_with_reasoning_and_a_tool_call_reads_back_whole() -> None:
    choice = answer("converse_reasoning_tool_call").choices[0]
    assert choice.text == "I'll need to check what country you're from to answer that question."
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == [
        ("tooluse_W9DaUFg4Tj2cRPpndqxWSg", "get_user_country", "{}")
    ]
    assert choice.thinking[0].text.startswith("The user is asking") and choice.thinking[0].signature.startswith("ErcB")
    assert choice.finish_reason == "tool_calls"


def test_redacted_reasoning_is_anthropics_data_and_renders_back_as_bedrock_sent_it() -> None:
    blob = recorded()["converse_redacted_reasoning"]["body"]["output"]["message"]["content"][0]["reasoningContent"]
    thinking = answer("converse_redacted_reasoning").choices[0].thinking[0]
    assert thinking.redacted and thinking.signature is not None and thinking.signature.startswith("Eu8E")
    request = ChatRequest(
        model="m", messages=[Message("user", [TextPart("q")]), Message("assistant", [thinking, TextPart("a")])]
    )
    assert rendered(request)[0]["messages"][1]["content"][0] == {"reasoningContent": blob}


@pytest.mark.parametrize(
    ("name", "input_tokens", "cached", "written", "output", "finish"),
    [
        ("converse_nova_text", 7, 0, 0, 30, "stop"),
        ("converse_cache_write", 1324, 0, 1322, 5, "stop"),
        ("converse_cache_read", 1324, 1322, 0, 5, "stop"),
        ("converse_max_tokens", 26, 0, 0, 100, "length"),
    ],
)
def test_recorded_usage_and_stop_reasons_read_as_canonical(
    name: str, input_tokens: int, cached: int, written: int, output: int, finish: str
) -> None:
    response = answer(name)
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.cached_tokens, usage.cache_creation_tokens, usage.output_tokens) == (
        input_tokens,
        cached,
        written,
        output,
    )
    assert usage.total_tokens == recorded()[name]["body"]["usage"]["totalTokens"]
    assert response.choices[0].finish_reason == finish


def test_cache_writes_kept_an_hour_are_read_from_the_cache_details_by_ttl() -> None:
    # TokenUsage.cacheDetails (the service model): the writes by TTL, 1h before 5m.
    usage = {
        "inputTokens": 10,
        "outputTokens": 5,
        "totalTokens": 1015,
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 1000,
        "cacheDetails": [{"ttl": "1h", "inputTokens": 600}, {"ttl": "5m", "inputTokens": 400}],
    }
    read = converse_answer.usage_of(usage)
    assert read is not None
    assert (read.cache_creation_tokens, read.cache_write_1h_tokens, read.total_tokens) == (1000, 600, 1015)
    without = converse_answer.usage_of({k: v for k, v in usage.items() if k != "cacheDetails"})
    assert without is not None and without.cache_write_1h_tokens == 0  # no split: all at the 5-minute rate


def test_every_stop_reason_of_the_service_model_has_a_finish_reason() -> None:
    stop_reasons = {
        "end_turn", "tool_use", "max_tokens", "stop_sequence", "guardrail_intervened", "content_filtered",
        "malformed_model_output", "malformed_tool_use", "model_context_window_exceeded",
    }  # fmt: skip
    assert set(converse_answer.STOP_REASONS) == stop_reasons


def test_a_server_run_tool_is_not_handed_to_the_client_as_a_call() -> None:
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "code", "input": {}, "type": "server_tool_use"}}],
            }
        },
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "p": "abcdef",
    }
    assert CONVERSE.parse_response(orjson.dumps(body)).choices[0].tool_calls == []


def test_an_answer_that_is_not_converse_is_a_provider_error() -> None:
    for body in (b"not json", b"[]", b'{"output": {}}'):
        with pytest.raises(GatewayError) as failed:
            CONVERSE.parse_response(body)
        assert failed.value.kind == "provider_error"


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("ThrottlingException", "rate_limit", 429),
        ("ModelNotReadyException", "rate_limit", 429),
        ("ServiceQuotaExceededException", "rate_limit", 429),
        ("ValidationException", "invalid_request", 400),
        ("AccessDeniedException", "provider_auth", 502),
        ("ResourceNotFoundException", "not_found", 404),
        ("ServiceUnavailableException", "unavailable", 503),
        ("InternalServerException", "provider_error", 502),
        ("ModelErrorException", "provider_error", 502),
        ("ModelStreamErrorException", "provider_error", 502),
        ("ModelTimeoutException", "timeout", 504),
    ],
)
def test_bedrock_error_names_map_through_the_error_table(name: str, kind: str, status: int) -> None:
    assert ERROR_KINDS[name] == kind
    error = parse_http_error(400, b'{"message": "m"}', f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/")
    assert (error.kind, client_status(error), error.code) == (kind, status, name)


def test_recorded_http_errors_read_with_and_without_their_header() -> None:
    validation = recorded()["error_validation"]
    error = parse_http_error(400, orjson.dumps(validation["body"]), validation["headers"]["x-amzn-errortype"])
    assert (error.kind, error.status, error.message) == (
        "invalid_request",
        400,
        "The provided model identifier is invalid.",
    )
    refused = recorded()["error_unrecognized_client"]
    error = parse_http_error(403, orjson.dumps(refused["body"]), refused["headers"]["x-amzn-errortype"])
    assert error.kind == "provider_auth" and client_status(error) == 502
    assert "security token" not in error.message  # about the gateway's credential, not the client's
    unnamed = recorded()["converse_invalid_model"]
    error = CONVERSE.parse_error(unnamed["status"], orjson.dumps(unnamed["body"]))
    assert (error.kind, error.status) == ("invalid_request", 400)


def test_without_a_name_bedrocks_own_statuses_are_read_as_bedrock_means_them() -> None:
    assert CONVERSE.parse_error(408, b'{"message": "slow"}').kind == "timeout"
    assert CONVERSE.parse_error(424, b'{"message": "model failed"}').kind == "provider_error"
    assert CONVERSE.parse_error(500, b"<html>").kind == "provider_error"
    assert (
        CONVERSE.parse_error(400, b'{"__type": "com.amazon#ThrottlingException", "Message": "x"}').kind == "rate_limit"
    )
