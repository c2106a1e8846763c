"""Gemini generateContent format: fixtures, round trips, streams, the google-genai SDK, fuzzing."""

from __future__ import annotations

import base64
import contextlib
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:  # the installed google-genai SDK is built on the httpx2 fork
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from extproc.errors import GatewayError
from extproc.formats import gemini as fmt
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    ImagePart,
    Message,
    ResponseFormat,
    StreamFailure,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    Usage,
    UsageUpdate,
)
from extproc.formats.render_options import RenderOptions
from extproc.provider_kinds import GEMINI
from extproc.providers.rendering import lacks_of

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("GATEWAY_FIXTURES", REPO.parent / "shared" / "fixtures"))
GEMINI_FIXTURES = FIXTURES / "gemini"

REQUEST_FIXTURES = [
    "generate-max-tokens",
    "generate-safety-settings",
    "generate-system-instruction",
    "request-snake-case-function-parts",
    "stream-after-function-response",
    "stream-nonsse-json-array",
]
RESPONSE_FIXTURES = [
    "generate-basic",
    "generate-finish-safety",
    "generate-function-call-thinking",
    "generate-max-tokens",
    "generate-safety-settings",
    "generate-system-instruction",
]
STREAM_FIXTURES = [
    "stream-after-function-response.response.sse",
    "stream-basic.response.sse",
    "stream-error-mid-stream.response.sse",
    "stream-nonsse-json-array.response.json",
    "stream-prompt-blocked.response.sse",
]
ERROR_FIXTURES = ["error-400-api-key", "error-404-unknown-model", "error-429-quota"]

OPTIONS = RenderOptions(model="gemini-2.5-flash", lacks=lacks_of(GEMINI))


def fixture(name: str) -> bytes:
    path = GEMINI_FIXTURES / name
    if not path.exists():
        pytest.skip(f"fixture {name} not found under {GEMINI_FIXTURES} (set GATEWAY_FIXTURES)")
    return path.read_bytes()


def fixture_json(name: str) -> Any:
    return orjson.loads(fixture(name))


def decode_all(raw: bytes, cuts: list[int] | None = None) -> list[Any]:
    decoder = fmt.StreamDecoder()
    events: list[Any] = []
    if cuts is None:
        events += decoder.feed(raw)
    else:
        start = 0
        for cut in [*sorted(cuts), len(raw)]:
            events += decoder.feed(raw[start:cut])
            start = cut
    events += decoder.close()
    return events


def normalised(events: list[Any]) -> list[Any]:
    """Events with generated values (ids made up when the provider gave none, the
    clock) replaced by placeholders numbered in order of appearance."""
    names: dict[str, str] = {}
    out = []
    for ev in events:
        if isinstance(ev, StreamStart):
            if ev.id.startswith("chatcmpl-"):
                ev = StreamStart(names.setdefault(ev.id, f"gen{len(names)}"), ev.model, 0, ev.input_tokens)
            else:
                ev = StreamStart(ev.id, ev.model, 0, ev.input_tokens)
        elif isinstance(ev, ToolCallStart) and ev.id.startswith("call_"):
            ev = ToolCallStart(ev.call_index, names.setdefault(ev.id, f"gen{len(names)}"), ev.name, ev.index)
        elif isinstance(ev, StreamFailure):
            ev = ("failure", ev.error.kind, ev.error.status, ev.error.message)
        out.append(ev)
    return out


def text_of(events: list[Any], index: int = 0) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.index == index)


def sse_payloads(raw: bytes) -> list[Any]:
    """JSON payloads of an SSE body, parsed independently of the module."""
    assert b"\r\n\r\n" in raw or not raw
    out = []
    for block in raw.split(b"\r\n\r\n"):
        if block:
            assert block.startswith(b"data: "), block
            out.append(orjson.loads(block[6:]))
    return out


# ---- the google-genai SDK through a mock transport


def sdk_client(handler: Callable[[Any], Any]) -> genai.Client:
    transport = httpx.MockTransport(handler)
    return genai.Client(
        api_key="x",
        http_options=genai_types.HttpOptions(base_url="http://t", client_args={"transport": transport}),
    )


def serving(body: bytes, status: int = 200, content_type: str = "application/json") -> tuple[genai.Client, list]:
    seen: list[Any] = []

    def handler(request: Any) -> Any:
        seen.append(request)
        return httpx.Response(status, content=body, headers={"content-type": content_type})

    return sdk_client(handler), seen


def capture_sdk_request(call: Callable[[genai.Client], Any]) -> tuple[str, bytes]:
    """What google-genai sends: (URL path, body)."""
    answer = fixture("generate-basic.response.json")
    client, seen = serving(answer)
    call(client)
    return seen[0].url.path, seen[0].content


def path_model(path: str) -> str:
    match = re.search(r"/models/([^:/]+):", path)
    assert match, path
    return match.group(1)


# =====================================================================
# client side: parse_request
# =====================================================================


def test_parse_request_system_instruction_fixture_gives_system_then_user():
    req = fmt.parse_request(fixture("generate-system-instruction.request.json"), "gemini-2.5-flash")
    assert req.model == "gemini-2.5-flash"
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.messages[0].content == [TextPart("You are a chatbot.")]
    assert req.messages[1].content == [TextPart("Hello!")]
    assert req.stream is False
    assert req.include_usage is True  # Gemini always reports usage


def test_parse_request_reads_snake_case_inside_camel_case_config():
    req = fmt.parse_request(fixture("generate-max-tokens.request.json"), "gemini-2.5-flash")
    assert req.max_tokens == 5
    assert req.thinking_budget == 0  # "thinking_budget" inside "thinkingConfig"
    assert req.messages[0].content == [TextPart("You are a helpful chatbot.")]


def test_parse_request_accepts_and_ignores_safety_settings():
    req = fmt.parse_request(fixture("generate-safety-settings.request.json"), "gemini-1.5-flash")
    assert [m.role for m in req.messages] == ["system", "user"]
    assert req.messages[1].content == [TextPart("Tell me a joke about a Brazilians.")]
    rendered = orjson.loads(fmt.render_request(req, OPTIONS).body)
    assert "safetySettings" not in rendered


def test_parse_request_snake_case_function_parts_pair_call_and_result():
    req = fmt.parse_request(fixture("request-snake-case-function-parts.request.json"), "gemini-2.5-flash")
    user, model, tool = req.messages
    assert user.content == [TextPart("Two names for a pet pelican")]
    assert model.role == "assistant"
    (call,) = model.tool_calls
    assert call.id == "call_27db36357f594e73b557ec8f70da9e87"
    assert call.name == "pelican_name_generator"
    assert call.arguments == "{}"
    assert call.signature and call.signature.startswith("ClgBEU0y")
    assert tool.role == "tool"
    assert tool.tool_call_id == call.id
    assert tool.name == "pelican_name_generator"
    assert tool.content == [TextPart("Charles")]  # {"output": "Charles"} unwrapped
    assert tool.is_error is False
    assert req.tools == [Tool("pelican_name_generator", None, {"properties": {}, "type": "object"})]


def test_parse_request_function_response_object_becomes_compact_json_text():
    req = fmt.parse_request(fixture("stream-after-function-response.request.json"), "gemini-3-pro-preview")
    _, model, tool = req.messages
    assert model.tool_calls[0].id == "pyd_ai_29bf73b69e02448588e15893d47a3e7e"
    assert model.tool_calls[0].signature.startswith("EpwICpkI")
    assert tool.tool_call_id == "pyd_ai_29bf73b69e02448588e15893d47a3e7e"
    assert tool.content == [TextPart('{"return_value":"Mexico"}')]
    (decl,) = req.tools
    assert decl.parameters == {"additionalProperties": False, "properties": {}, "type": "object"}
    assert decl.description == ""


@pytest.mark.parametrize("name", REQUEST_FIXTURES)
def test_request_fixture_round_trip_is_stable(name: str):
    first = fmt.parse_request(fixture(f"{name}.request.json"), "gemini-2.5-flash")
    body = fmt.render_request(first, OPTIONS).body
    second = fmt.parse_request(body, "gemini-2.5-flash")
    assert [feature.name for feature in first.api_features] in ([], ["safetySettings"])  # named, not rendered
    first.api_features = []
    assert second == first
    assert fmt.render_request(second, OPTIONS).body == body


def test_render_request_keeps_function_parts_of_snake_case_fixture_exactly():
    original = fixture_json("request-snake-case-function-parts.request.json")
    req = fmt.parse_request(orjson.dumps(original), "gemini-2.5-flash")
    rendered = orjson.loads(fmt.render_request(req, OPTIONS).body)
    model_turn = original["contents"][1]["parts"][0]
    assert rendered["contents"][1]["parts"][0] == {
        "functionCall": model_turn["function_call"],
        "thoughtSignature": model_turn["thoughtSignature"],
    }
    assert rendered["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": original["contents"][2]["parts"][0]["function_response"]}],
    }


def test_parse_request_from_google_genai_sdk_with_full_config():
    def call(client: genai.Client) -> None:
        client.models.generate_content(
            model="gemini-2.5-flash",
            contents=[
                genai_types.Content(
                    role="user",
                    parts=[
                        genai_types.Part(text="look"),
                        genai_types.Part(inline_data=genai_types.Blob(mime_type="image/png", data=b"\x89PNG")),
                        genai_types.Part(
                            file_data=genai_types.FileData(file_uri="gs://b/cat.jpg", mime_type="image/jpeg")
                        ),
                    ],
                )
            ],
            config=genai_types.GenerateContentConfig(
                system_instruction="be brief",
                temperature=0.5,
                top_p=0.9,
                top_k=3,
                max_output_tokens=10,
                stop_sequences=["END"],
                seed=7,
                candidate_count=2,
                presence_penalty=0.1,
                frequency_penalty=0.2,
                response_mime_type="application/json",
                response_schema={"type": "OBJECT", "properties": {"a": {"type": "STRING", "nullable": True}}},
                thinking_config=genai_types.ThinkingConfig(thinking_budget=100, include_thoughts=True),
                tools=[
                    genai_types.Tool(
                        function_declarations=[
                            genai_types.FunctionDeclaration(
                                name="f",
                                description="d",
                                parameters={"type": "OBJECT", "properties": {"x": {"type": "INTEGER"}}},
                            )
                        ]
                    )
                ],
                tool_config=genai_types.ToolConfig(
                    function_calling_config=genai_types.FunctionCallingConfig(mode="ANY", allowed_function_names=["f"])
                ),
                safety_settings=[
                    genai_types.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_NONE")
                ],
            ),
        )

    path, body = capture_sdk_request(call)
    req = fmt.parse_request(body, path_model(path))
    assert req.model == "gemini-2.5-flash"
    assert req.messages[0] == Message("system", [TextPart("be brief")])
    user = req.messages[1]
    assert user.content[0] == TextPart("look")
    assert user.content[1] == ImagePart(media_type="image/png", data="iVBORw==")
    assert user.content[2] == ImagePart(media_type="image/jpeg", url="gs://b/cat.jpg")
    assert (req.temperature, req.top_p, req.top_k, req.max_tokens) == (0.5, 0.9, 3, 10)
    assert isinstance(req.top_k, int)  # the SDK sends topK as 3.0
    assert (req.stop, req.seed, req.n) == (["END"], 7, 2)
    assert (req.presence_penalty, req.frequency_penalty) == (0.1, 0.2)
    assert req.response_format == ResponseFormat(
        "json_schema", schema={"properties": {"a": {"type": ["string", "null"]}}, "type": "object"}
    )
    assert req.thinking_budget == 100
    assert req.tools == [Tool("f", "d", {"properties": {"x": {"type": "integer"}}, "type": "object"})]
    assert req.tool_choice == ToolChoice("function", "f")


def test_parse_request_from_sdk_chat_with_function_call_history():
    def call(client: genai.Client) -> None:
        client.models.generate_content(
            model="gemini-2.5-pro",
            contents=[
                genai_types.Content(role="user", parts=[genai_types.Part(text="weather?")]),
                genai_types.Content(
                    role="model",
                    parts=[
                        genai_types.Part(text="thinking...", thought=True),
                        genai_types.Part(
                            function_call=genai_types.FunctionCall(name="w", args={"city": "Oslo"}),
                            thought_signature=b"sig",
                        ),
                    ],
                ),
                genai_types.Content(
                    role="user",
                    parts=[genai_types.Part.from_function_response(name="w", response={"output": "rain"})],
                ),
            ],
        )

    path, body = capture_sdk_request(call)
    req = fmt.parse_request(body, path_model(path))
    user, model, tool = req.messages
    assert user.content == [TextPart("weather?")]
    assert model.content == [ThinkingPart("thinking...")]
    (tc,) = model.tool_calls
    assert (tc.name, orjson.loads(tc.arguments), tc.signature) == ("w", {"city": "Oslo"}, "c2ln")
    assert tc.id.startswith("call_") and len(tc.id) == 29
    assert (tool.tool_call_id, tool.name, tool.content) == (tc.id, "w", [TextPart("rain")])


def test_function_responses_without_id_pair_with_calls_in_order():
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "two"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "f", "args": {"n": 1}}},
                    {"functionCall": {"name": "f", "args": {"n": 2}}},
                    {"functionCall": {"name": "g", "args": {}}},
                ],
            },
            {
                "parts": [
                    {"functionResponse": {"name": "g", "response": {"output": "G"}}},
                    {"functionResponse": {"name": "f", "response": {"output": "F1"}}},
                    {"functionResponse": {"name": "f", "response": {"output": "F2"}}},
                    {"text": "thanks"},
                ]
            },
        ]
    }
    req = fmt.parse_request(orjson.dumps(body), "m")
    calls = req.messages[1].tool_calls
    tools = [m for m in req.messages if m.role == "tool"]
    assert [(t.tool_call_id, t.content[0].text) for t in tools] == [
        (calls[2].id, "G"),
        (calls[0].id, "F1"),
        (calls[1].id, "F2"),
    ]
    assert req.messages[-1] == Message("user", [TextPart("thanks")])  # after the tool results


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
response_objects = st.dictionaries(
    st.sampled_from(["output", "error", "result", "x"]) | st.text(max_size=5), json_values, max_size=3
) | st.builds(lambda v: {"output": v}, st.text(max_size=12) | st.just('{"a": 1}') | st.just(" {}"))


@settings(max_examples=100, deadline=None)
@given(response=response_objects)
def test_function_response_object_survives_a_round_trip_exactly(response: dict):
    body = {
        "contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}, "id": "c1"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": response, "id": "c1"}}]},
        ]
    }
    req = fmt.parse_request(orjson.dumps(body), "m")
    rendered = orjson.loads(fmt.render_request(req, OPTIONS).body)
    assert rendered["contents"][1]["parts"][0]["functionResponse"]["response"] == response


def test_error_function_response_sets_is_error():
    body = {
        "contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "f", "id": "c1"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "id": "c1", "response": {"error": "boom"}}}]},
        ]
    }
    tool = fmt.parse_request(orjson.dumps(body), "m").messages[-1]
    assert (tool.content, tool.is_error) == ([TextPart("boom")], True)


def test_openapi_schema_is_converted_to_json_schema():
    schema = {
        "type": "OBJECT",
        "properties": {
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}, "max_items": "3"},
            "n": {"type": "INTEGER", "nullable": True, "format": "int32"},
            "u": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
        },
        "required": ["tags"],
        "propertyOrdering": ["tags", "n", "u"],
    }
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "tools": [{"function_declarations": [{"name": "f", "parameters": schema}]}],
    }
    (tool,) = fmt.parse_request(orjson.dumps(body), "m").tools
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 3},
            "n": {"type": ["integer", "null"], "format": "int32"},
            "u": {"anyOf": [{"type": "string"}, {"type": "number"}]},
        },
        "required": ["tags"],
    }


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "AUTO"}, ToolChoice("auto")),
        ({"mode": "none"}, ToolChoice("none")),
        ({"mode": "ANY"}, ToolChoice("required")),
        ({"mode": "ANY", "allowed_function_names": ["f", "g"]}, ToolChoice("required")),
        ({"mode": "ANY", "allowedFunctionNames": ["g"]}, ToolChoice("function", "g")),
    ],
)
def test_function_calling_config_maps_to_tool_choice(config: dict, expected: ToolChoice):
    body = {"contents": [{"parts": [{"text": "hi"}]}], "tool_config": {"function_calling_config": config}}
    assert fmt.parse_request(orjson.dumps(body), "m").tool_choice == expected


@pytest.mark.parametrize(
    ("thinking", "budget", "effort"),
    [
        ({"thinkingBudget": 2048}, 2048, None),
        ({"thinkingBudget": -1}, None, None),
        ({"thinkingLevel": "HIGH"}, None, "high"),
        ({"thinking_level": "low"}, None, "low"),
    ],
)
def test_thinking_config_maps_to_budget_or_effort(thinking: dict, budget: int | None, effort: str | None):
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"thinkingConfig": thinking}}
    req = fmt.parse_request(orjson.dumps(body), "m")
    assert (req.thinking_budget, req.reasoning_effort) == (budget, effort)


def test_json_mime_type_without_schema_is_json_object():
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"response_mime_type": "application/json"}}
    assert fmt.parse_request(orjson.dumps(body), "m").response_format == ResponseFormat("json_object")


def test_response_json_schema_is_kept_as_is():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    body = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
    }
    assert fmt.parse_request(orjson.dumps(body), "m").response_format == ResponseFormat("json_schema", schema=schema)


def test_models_prefix_in_path_model_is_stripped():
    body = orjson.dumps({"contents": [{"parts": [{"text": "hi"}]}]})
    assert fmt.parse_request(body, "models/gemini-2.5-flash").model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b"{}", "contents"),
        (b'{"contents": []}', "contents"),
        (b'{"contents": {}}', "contents"),
        (b'{"contents": [{"role": 5, "parts": [{"text": "x"}]}]}', "contents[0].role"),
        (b'{"contents": [{"role": "user"}]}', "contents[0].parts"),
        (b'{"contents": [{"parts": [{"text": 5}]}]}', "contents[0].parts[0].text"),
        (b'{"contents": [{"parts": [{"thought": true}]}]}', "contents[0].parts[0]"),
        (b'{"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]}', "contents[0].parts[0]"),
        (b'{"contents": [{"parts": [{"inlineData": {"data": "AA=="}}]}]}', "contents[0].parts[0].inlineData"),
        (b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 1.5}}', "generationConfig.topK"),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}}',
            "generationConfig.temperature",
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseModalities": [1]}}',
            "generationConfig.responseModalities",
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "toolConfig": {"functionCallingConfig": {"mode": 1}}}',
            "toolConfig.functionCallingConfig.mode",
        ),
    ],
)
def test_bad_requests_raise_invalid_request_naming_the_field(body: bytes, param: str):
    with pytest.raises(GatewayError) as info:
        fmt.parse_request(body, "gemini-2.5-flash")
    assert info.value.kind == "invalid_request"
    assert info.value.param == param


_TEXT = {"parts": [{"text": "x"}]}


@pytest.mark.parametrize(
    ("body", "name", "param"),
    [
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "role.assistant", "contents[0].role"),
        (
            {"contents": [{"parts": [{"executableCode": {"code": "1"}}]}]},
            "parts.executableCode",
            "contents[0].parts[0]",
        ),
        (
            {"contents": [_TEXT, {"role": "model", "parts": [{"codeExecutionResult": {"outcome": "OK"}}]}]},
            "parts.codeExecutionResult",
            "contents[1].parts[0]",
        ),
        ({"contents": [_TEXT], "cachedContent": "cachedContents/1"}, "cachedContent", "cachedContent"),
        ({"contents": [_TEXT], "tools": [{"googleSearch": {}}]}, "tools.googleSearch", "tools[0].googleSearch"),
        ({"contents": [_TEXT], "tools": [{"codeExecution": {}}]}, "tools.codeExecution", "tools[0].codeExecution"),
        (
            {"contents": [_TEXT], "generationConfig": {"responseMimeType": "text/x.enum"}},
            "generationConfig.responseMimeType.text/x.enum",
            "generationConfig.responseMimeType",
        ),
        (
            {"contents": [_TEXT], "generationConfig": {"responseModalities": ["IMAGE"]}},
            "generationConfig.responseModalities.IMAGE",
            "generationConfig.responseModalities",
        ),
        (
            {"contents": [_TEXT], "generationConfig": {"responseLogprobs": True}},
            "generationConfig.responseLogprobs",
            "generationConfig.responseLogprobs",
        ),
        (
            {"contents": [_TEXT], "toolConfig": {"functionCallingConfig": {"mode": "S"}}},
            "toolConfig.functionCallingConfig.mode.S",
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            {"contents": [_TEXT], "generationConfig": {"thinkingConfig": {"thinkingLevel": "ULTRA"}}},
            "generationConfig.thinkingConfig.thinkingLevel.ULTRA",
            "generationConfig.thinkingConfig.thinkingLevel",
        ),
        ({"contents": [_TEXT], "safetySettings": [{"category": "c"}]}, "safetySettings", "safetySettings"),
    ],
)
def test_what_the_canonical_model_cannot_carry_is_recorded_never_refused(body: dict, name: str, param: str):
    req = fmt.parse_request(orjson.dumps(body), "gemini-2.5-flash")
    (feature,) = req.api_features
    assert (feature.name, feature.param, feature.when_foreign) == (name, param, "policy")


def test_missing_model_is_invalid_request():
    with pytest.raises(GatewayError) as info:
        fmt.parse_request(b'{"contents": [{"parts": [{"text": "x"}]}]}', None)
    assert (info.value.kind, info.value.param) == ("invalid_request", "model")


# ---- fuzzing: nothing but GatewayError escapes a parser

KEYS = [
    "contents", "role", "parts", "text", "thought", "thoughtSignature", "functionCall", "function_call",
    "functionResponse", "function_response", "name", "args", "id", "response", "output", "error",
    "inlineData", "inline_data", "fileData", "mimeType", "data", "fileUri", "systemInstruction",
    "system_instruction", "tools", "functionDeclarations", "parameters", "parametersJsonSchema", "type",
    "properties", "items", "anyOf", "nullable", "maxItems", "toolConfig", "functionCallingConfig", "mode",
    "allowedFunctionNames", "generationConfig", "temperature", "topK", "topP", "maxOutputTokens",
    "stopSequences", "candidateCount", "seed", "responseMimeType", "responseSchema", "responseJsonSchema",
    "thinkingConfig", "thinkingBudget", "thinkingLevel", "responseModalities", "safetySettings", "model",
    "content", "requests", "taskType", "outputDimensionality", "candidates", "usageMetadata",
    "promptTokenCount", "finishReason", "index", "promptFeedback", "blockReason", "embedding", "embeddings",
    "values", "code", "status", "message", "details", "reason",
]  # fmt: skip
SCALARS = ["user", "model", "function", "OBJECT", "ANY", "AUTO", "application/json", "STOP", "HIGH", "x", ""]

fuzz_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(SCALARS)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=30,
)


def only_gateway_errors(call: Callable[[], Any]) -> None:
    """Any other exception propagates and fails the test."""
    with contextlib.suppress(GatewayError):
        call()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=fuzz_json)
def test_fuzz_parse_request_raises_only_gateway_errors(doc: Any):
    body = orjson.dumps(doc)
    only_gateway_errors(lambda: fmt.parse_request(body, "m"))
    only_gateway_errors(lambda: fmt.parse_request(orjson.dumps({"contents": doc}), "m"))
    only_gateway_errors(lambda: fmt.parse_request(orjson.dumps({"contents": [{"parts": doc}]}), "m"))
    only_gateway_errors(lambda: fmt.parse_request(orjson.dumps({"contents": [{"parts": [doc]}]}), "m"))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=64))
def test_fuzz_parse_request_with_raw_bytes_raises_only_gateway_errors(raw: bytes):
    only_gateway_errors(lambda: fmt.parse_request(raw, "m"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=fuzz_json)
def test_fuzz_other_parsers_raise_only_gateway_errors(doc: Any):
    body = orjson.dumps(doc)
    only_gateway_errors(lambda: fmt.parse_embedding_request(body, "m"))
    only_gateway_errors(lambda: fmt.parse_embedding_request(body, "m", batch=True))
    only_gateway_errors(lambda: fmt.parse_response(body))
    only_gateway_errors(lambda: fmt.parse_embedding_response(body))
    assert isinstance(fmt.parse_error(500, body), GatewayError)
    decoder = fmt.StreamDecoder()
    decoder.feed(b"data: " + body + b"\r\n\r\n")
    decoder.close()


def nested(depth: int, inner: bytes = b'{"type":"STRING"}') -> bytes:
    return b'{"type":"ARRAY","items":' * depth + inner + b"}" * depth


@pytest.mark.parametrize("depth", [300, 1000])
def test_deeply_nested_openapi_schema_is_invalid_request(depth: int):
    body = b'{"contents":[{"parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":"f","parameters":'
    body += nested(depth) + b"}]}]}"
    with pytest.raises(GatewayError) as info:
        req = fmt.parse_request(body, "m")
        fmt.render_request(req, OPTIONS)  # parsed: then too deep to write
    assert info.value.kind == "invalid_request"


def test_deeply_nested_function_args_are_invalid_request_or_provider_error():
    deep = b'{"a":' * 300 + b"1" + b"}" * 300
    body = b'{"contents":[{"role":"model","parts":[{"functionCall":{"name":"f","args":' + deep + b"}}]}]}"
    with pytest.raises(GatewayError) as info:
        fmt.parse_request(body, "m")
    assert (info.value.kind, info.value.param) == ("invalid_request", "contents[0].parts[0].functionCall.args")
    chunk = b'data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":' + deep + b"}}]}}]}\r\n\r\n"
    events = decode_all(chunk)
    assert isinstance(events[-1], StreamFailure) and events[-1].error.kind == "provider_error"


# =====================================================================
# provider side: render_request
# =====================================================================


def conversation() -> ChatRequest:
    return ChatRequest(
        model="gpt-x",
        messages=[
            Message("system", [TextPart("one")]),
            Message(
                "user", [TextPart("hi"), ImagePart(url="https://x/y/cat.PNG?s=1"), ImagePart("image/webp", "AAAA")]
            ),
            Message(
                "assistant",
                [TextPart("calling")],
                tool_calls=[
                    ToolCall("call_a", "get", '{"q": 1}', signature="c2lnLWE="),
                    ToolCall("call_b", "get", '{"q": 2}'),
                ],
            ),
            Message("tool", [TextPart("plain")], tool_call_id="call_a"),
            Message("tool", [TextPart('{"ok": true}')], tool_call_id="call_b"),
            Message("system", [TextPart("two")]),
            Message("user", [TextPart("thanks"), ImagePart(url="data:image/gif;base64,R0lG")]),
        ],
    )


def test_render_request_builds_gemini_contents():
    body = orjson.loads(fmt.render_request(conversation(), OPTIONS).body)
    assert body["systemInstruction"] == {"parts": [{"text": "one"}, {"text": "two"}]}
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "hi"},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://x/y/cat.PNG?s=1"}},
                {"inlineData": {"mimeType": "image/webp", "data": "AAAA"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "calling"},
                {"functionCall": {"name": "get", "args": {"q": 1}, "id": "call_a"}, "thoughtSignature": "c2lnLWE="},
                {"functionCall": {"name": "get", "args": {"q": 2}, "id": "call_b"}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get", "response": {"output": "plain"}, "id": "call_a"}},
                {"functionResponse": {"name": "get", "response": {"ok": True}, "id": "call_b"}},
            ],
        },
        {"role": "user", "parts": [{"text": "thanks"}, {"inlineData": {"mimeType": "image/gif", "data": "R0lG"}}]},
    ]


def test_render_request_maps_generation_settings():
    req = ChatRequest(
        model="x",
        messages=[Message("user", [TextPart("hi")])],
        max_tokens=99,
        temperature=0.3,
        top_p=0.8,
        top_k=5,
        stop=["a", "b"],
        n=2,
        seed=11,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        response_format=ResponseFormat("json_schema", schema={"type": "object"}, name="s", strict=True),
        tools=[Tool("f", "does f", {"type": "object", "properties": {}}, strict=True), Tool("g")],
        tool_choice=ToolChoice("function", "f"),
        parallel_tool_calls=True,
        user="someone",
        thinking_budget=512,
    )
    rendered = fmt.render_request(req, OPTIONS)
    body = orjson.loads(rendered.body)
    assert rendered.dropped == []  # parallel_tool_calls=true and user drop silently
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.8,
        "topK": 5,
        "maxOutputTokens": 99,
        "stopSequences": ["a", "b"],
        "candidateCount": 2,
        "seed": 11,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 512},
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "f", "description": "does f", "parametersJsonSchema": {"type": "object", "properties": {}}},
                {"name": "g"},
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}
    assert b"someone" not in rendered.body


@pytest.mark.parametrize(
    ("effort", "budget"), [("none", 0), ("minimal", 128), ("low", 1024), ("medium", 8192), ("high", 24576)]
)
def test_reasoning_effort_becomes_thinking_budget(effort: str, budget: int):
    req = ChatRequest(model="x", messages=[Message("user", [TextPart("hi")])], reasoning_effort=effort)
    body = orjson.loads(fmt.render_request(req, OPTIONS).body)
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": budget}


@pytest.mark.parametrize(("mode", "expected"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")])
def test_tool_choice_modes_render(mode: str, expected: str):
    req = ChatRequest(model="x", messages=[Message("user", [TextPart("hi")])], tool_choice=ToolChoice(mode))  # type: ignore[arg-type]
    body = orjson.loads(fmt.render_request(req, OPTIONS).body)
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": expected}}


def test_json_object_response_format_sets_only_the_mime_type():
    req = ChatRequest(
        model="x", messages=[Message("user", [TextPart("hi")])], response_format=ResponseFormat("json_object")
    )
    body = orjson.loads(fmt.render_request(req, OPTIONS).body)
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


def test_parallel_tool_calls_false_is_dropped_or_rejected():
    req = ChatRequest(model="x", messages=[Message("user", [TextPart("hi")])], parallel_tool_calls=False)
    assert fmt.render_request(req, OPTIONS).dropped == ["parallel_tool_calls"]
    with pytest.raises(GatewayError) as info:
        fmt.render_request(req, RenderOptions(model="m", unsupported="reject", lacks=lacks_of(GEMINI)))
    assert (info.value.kind, info.value.param) == ("invalid_request", "parallel_tool_calls")


def test_images_gemini_cannot_take_are_dropped_and_reported():
    req = ChatRequest(
        model="x",
        messages=[
            Message("system", [TextPart("sys"), ImagePart("image/png", "AAAA")]),
            Message("assistant", tool_calls=[ToolCall("c", "f", "{}")]),
            Message("tool", [TextPart("seen"), ImagePart("image/png", "BBBB")], tool_call_id="c"),
        ],
    )
    rendered = fmt.render_request(req, OPTIONS)
    assert rendered.dropped == ["system_image", "tool_result_image"]
    assert b"AAAA" not in rendered.body and b"BBBB" not in rendered.body
    with pytest.raises(GatewayError) as info:
        fmt.render_request(req, RenderOptions(model="m", unsupported="reject"))
    assert info.value.param == "system_image"


def test_unknown_reasoning_effort_is_dropped():
    req = ChatRequest(model="x", messages=[Message("user", [TextPart("hi")])], reasoning_effort="extreme")
    rendered = fmt.render_request(req, OPTIONS)
    assert rendered.dropped == ["reasoning_effort"]
    assert "generationConfig" not in orjson.loads(rendered.body)


def test_error_tool_result_renders_under_error_key():
    req = ChatRequest(
        model="x",
        messages=[
            Message("assistant", tool_calls=[ToolCall("c", "f", "{}")]),
            Message("tool", [TextPart("no such file")], tool_call_id="c", is_error=True),
        ],
    )
    body = orjson.loads(fmt.render_request(req, OPTIONS).body)
    assert body["contents"][1]["parts"][0]["functionResponse"]["response"] == {"error": "no such file"}


def test_tool_message_without_a_known_call_is_invalid_request():
    req = ChatRequest(model="x", messages=[Message("tool", [TextPart("x")], tool_call_id="nope")])
    with pytest.raises(GatewayError) as info:
        fmt.render_request(req, OPTIONS)
    assert (info.value.kind, info.value.param) == ("invalid_request", "messages[0].tool_call_id")


def test_signature_only_thinking_attaches_to_the_function_call():
    req = ChatRequest(
        model="x",
        messages=[
            Message(
                "assistant",
                [ThinkingPart("plan", "sig-thought"), ThinkingPart("", "sig-call"), ThinkingPart("r", redacted=True)],
                tool_calls=[ToolCall("c", "f", "")],
            )
        ],
    )
    body = orjson.loads(fmt.render_request(req, OPTIONS).body)
    assert body["contents"][0]["parts"] == [
        {"text": "plan", "thought": True, "thoughtSignature": "sig-thought"},
        {"functionCall": {"name": "f", "args": {}, "id": "c"}, "thoughtSignature": "sig-call"},
    ]


# =====================================================================
# provider side: parse_response
# =====================================================================

EXPECTED_RESPONSES = {
    # name: (text, finish, usage (in, out, cached, reasoning), model, id or None)
    "generate-basic": (
        "Google's headquarters, also known as the Googleplex, is located in **Mountain View, California**.\n",
        "stop",
        (7, 22, 0, 0),
        "gemini-2.0-flash",
        None,
    ),
    "generate-finish-safety": (
        "Safety error incoming in 5, 4, 3, 2...",
        "content_filter",
        (7, 20, 0, 0),
        "gemini-2.0-flash",
        None,
    ),
    "generate-function-call-thinking": (
        "",
        "tool_calls",
        (38, 509, 0, 501),
        "gemini-2.5-pro",
        "38CHaLjMG6TujrEPtvTiuQk",
    ),
    "generate-max-tokens": (
        "The capital of France is",
        "length",
        (15, 5, 0, 0),
        "gemini-2.5-flash",
        "R5MoavWNNp_8qtsP2fWD2A0",
    ),
    "generate-safety-settings": ("", "content_filter", (14, 0, 0, 0), "gemini-1.5-flash", "5lpeaLOIBf__698Pv8HGgAg"),
    "generate-system-instruction": (
        "Hello! How can I help you today?",
        "stop",
        (9, 43, 0, 34),
        "gemini-2.5-flash",
        "bzlXaa_EE_aHqtsPi_zw8Ao",
    ),
}


@pytest.mark.parametrize("name", RESPONSE_FIXTURES)
def test_parse_response_fixture_values(name: str):
    raw = fixture(f"{name}.response.json")
    resp = fmt.parse_response(raw)
    text, finish, usage, model, rid = EXPECTED_RESPONSES[name]
    (choice,) = resp.choices
    assert choice.text == text
    assert choice.finish_reason == finish
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.reasoning_tokens) == usage
    assert u.total_tokens == orjson.loads(raw)["usageMetadata"]["totalTokenCount"]
    assert resp.model == model
    if rid:
        assert resp.id == rid
    else:
        assert resp.id


def test_parse_response_function_call_with_thought_summary_and_signature():
    resp = fmt.parse_response(fixture("generate-function-call-thinking.response.json"))
    (choice,) = resp.choices
    (call,) = choice.tool_calls
    assert (call.name, call.arguments) == ("now", "{}")
    assert call.id.startswith("call_")
    assert call.signature and call.signature.startswith("CtQOAVSo")
    (thought,) = choice.thinking
    assert thought.text.startswith("**Thinking Through the New Year's Eve Calculation**")
    assert choice.text == ""  # thought text is not answer text


def test_parse_response_prompt_blocked_without_candidates_is_content_filter():
    raw = fixture("stream-prompt-blocked.response.sse")
    body = raw.split(b"data: ", 1)[1].strip()
    resp = fmt.parse_response(body)
    assert [(c.index, c.text, c.finish_reason) for c in resp.choices] == [(0, "", "content_filter")]


@pytest.mark.parametrize("name", RESPONSE_FIXTURES)
def test_response_fixture_round_trip_is_stable(name: str):
    first = fmt.parse_response(fixture(f"{name}.response.json"))
    rendered = fmt.render_response(first)
    second = fmt.parse_response(rendered)
    second.created = first.created
    assert second == first
    assert fmt.render_response(second) == rendered


def test_parse_response_with_invalid_json_is_provider_error():
    with pytest.raises(GatewayError) as info:
        fmt.parse_response(b"<html>")
    assert info.value.kind == "provider_error"


# =====================================================================
# client side: render_response through the google-genai SDK
# =====================================================================


def sample_response() -> ChatResponse:
    return ChatResponse(
        id="resp-1",
        model="gemini-2.5-pro",
        created=1,
        choices=[
            Choice(
                index=0,
                text="Let me check.",
                thinking=[ThinkingPart("hmm", "c2lnLXQ=")],
                tool_calls=[ToolCall("call_1", "lookup", '{"q":"x","n":2}', signature="c2lnLWM=")],
                finish_reason="tool_calls",
            )
        ],
        usage=Usage(input_tokens=20, output_tokens=15, cached_tokens=4, reasoning_tokens=5),
    )


def test_render_response_parsed_by_google_genai():
    client, _ = serving(fmt.render_response(sample_response()))
    result = client.models.generate_content(model="gemini-2.5-pro", contents="hi")
    (candidate,) = result.candidates
    assert candidate.finish_reason == genai_types.FinishReason.STOP
    parts = candidate.content.parts
    assert (parts[0].text, parts[0].thought, parts[0].thought_signature) == ("hmm", True, b"sig-t")
    assert parts[1].text == "Let me check."
    (call,) = result.function_calls
    assert (call.name, call.args, call.id) == ("lookup", {"q": "x", "n": 2}, "call_1")
    assert parts[2].thought_signature == b"sig-c"
    usage = result.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (20, 10, 35)
    assert (usage.thoughts_token_count, usage.cached_content_token_count) == (5, 4)
    assert result.model_version == "gemini-2.5-pro"
    assert result.response_id == "resp-1"


@pytest.mark.parametrize(
    ("finish", "gemini"),
    [
        ("stop", "STOP"),
        ("tool_calls", "STOP"),
        ("length", "MAX_TOKENS"),
        ("content_filter", "SAFETY"),
        ("error", "OTHER"),
    ],
)
def test_render_response_finish_reasons(finish: str, gemini: str):
    resp = ChatResponse("r", "m", 1, [Choice(text="x", finish_reason=finish)])  # type: ignore[arg-type]
    body = orjson.loads(fmt.render_response(resp))
    assert body["candidates"][0]["finishReason"] == gemini
    assert "usageMetadata" not in body


def test_render_response_omits_zero_thoughts_and_cache_counts():
    resp = ChatResponse("r", "m", 1, [Choice(text="x", finish_reason="stop")], Usage(3, 4))
    assert orjson.loads(fmt.render_response(resp))["usageMetadata"] == {
        "promptTokenCount": 3,
        "candidatesTokenCount": 4,
        "totalTokenCount": 7,
    }


# =====================================================================
# provider side: StreamDecoder
# =====================================================================


def test_decode_basic_stream_fixture():
    events = decode_all(fixture("stream-basic.response.sse"))
    assert isinstance(events[0], StreamStart)
    assert (events[0].model, events[0].input_tokens) == ("gemini-2.0-flash", 7)
    assert events[0].id.startswith("chatcmpl-")  # the fixture has no responseId
    assert text_of(events) == "The capital of Wyoming is **Cheyenne**.\n"
    assert events[-2:] == [Finish("stop", 0), UsageUpdate(Usage(input_tokens=7, output_tokens=10))]


def test_decode_stream_takes_usage_from_the_last_chunk():
    events = decode_all(fixture("stream-after-function-response.response.sse"))
    assert events[0] == StreamStart("REVVabaiCdq4qtsPnZu96Qo", "gemini-3-pro-preview", events[0].created, 55)
    assert text_of(events) == "The capital of Mexico is Mexico City."
    assert events[-1] == UsageUpdate(Usage(input_tokens=257, output_tokens=8))
    assert [e for e in events if isinstance(e, Finish)] == [Finish("stop", 0)]


def test_decode_mid_stream_bare_json_error_is_stream_failure():
    events = decode_all(fixture("stream-error-mid-stream.response.sse"))
    assert text_of(events) == "First Second "
    failure = events[-1]
    assert isinstance(failure, StreamFailure)
    assert failure.error.kind == "provider_error"  # 499 CANCELLED
    assert failure.error.message == "The operation was cancelled."
    assert not any(isinstance(e, Finish | UsageUpdate) for e in events)


def test_decode_prompt_blocked_stream_finishes_with_content_filter():
    events = decode_all(fixture("stream-prompt-blocked.response.sse"))
    assert isinstance(events[0], StreamStart)
    assert events[1:] == [Finish("content_filter", 0)]


def test_decode_json_array_stream_with_thought_and_function_call():
    events = decode_all(fixture("stream-nonsse-json-array.response.json"))
    assert events[0].id == "OYpyaqycKd2V_uMP65TsgA0"
    thinking = [e for e in events if isinstance(e, ThinkingDelta)]
    assert thinking[0].text.startswith("**Generating Pelican Names**")
    start = next(e for e in events if isinstance(e, ToolCallStart))
    assert (start.call_index, start.name) == (0, "pelican_name_generator")
    assert [e for e in events if isinstance(e, ToolCallDelta)] == [ToolCallDelta(0, "{}", 0)]
    assert thinking[-1].text == "" and thinking[-1].signature.startswith("ClgBEU0y")
    assert events[-2:] == [
        Finish("tool_calls", 0),
        UsageUpdate(Usage(input_tokens=32, output_tokens=54, reasoning_tokens=42)),
    ]


@pytest.mark.parametrize("name", STREAM_FIXTURES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_decode_fixture_split_anywhere_gives_the_same_events(name: str, data: st.DataObject):
    raw = fixture(name)
    whole = normalised(decode_all(raw))
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert normalised(decode_all(raw, cuts)) == whole


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_decode_fixture_fed_byte_by_byte_gives_the_same_events(name: str):
    raw = fixture(name)
    assert normalised(decode_all(raw, list(range(len(raw))))) == normalised(decode_all(raw))


def test_decode_survives_lf_framing_comments_and_missing_last_blank_line():
    raw = fixture("stream-basic.response.sse")
    expected = normalised(decode_all(raw))
    lf = raw.replace(b"\r\n", b"\n")
    assert normalised(decode_all(lf)) == expected
    assert normalised(decode_all(lf.rstrip(b"\n"))) == expected
    with_pings = raw.replace(b"\r\n\r\ndata", b"\r\n\r\n: keep-alive\r\n\r\ndata")
    assert with_pings != raw
    assert normalised(decode_all(with_pings)) == expected


def test_decode_data_error_mid_stream_maps_status():
    raw = (
        b'data: {"candidates":[{"content":{"parts":[{"text":"a"}]}}]}\r\n\r\n'
        b'data: {"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}}\r\n\r\n'
        b'data: {"candidates":[{"content":{"parts":[{"text":"ignored"}]}}]}\r\n\r\n'
    )
    events = decode_all(raw)
    assert text_of(events) == "a"
    assert isinstance(events[-1], StreamFailure)
    assert (events[-1].error.kind, events[-1].error.status) == ("rate_limit", 429)


def test_decode_bare_json_error_as_the_whole_body_is_stream_failure():
    raw = b'{\n  "error": {\n    "code": 503,\n    "message": "overloaded",\n    "status": "UNAVAILABLE"\n  }\n}\n'
    assert normalised(decode_all(raw)) == [("failure", "unavailable", 503, "overloaded")]
    array = b'[{\n  "error": {"code": 500, "message": "boom", "status": "INTERNAL"}\n}\n]'
    assert normalised(decode_all(array)) == [("failure", "provider_error", 500, "boom")]


def test_decode_malformed_data_is_stream_failure():
    events = decode_all(b'data: {"candidates": [\r\n\r\n')
    assert isinstance(events[-1], StreamFailure)
    assert events[-1].error.kind == "provider_error"


def test_decode_multiple_candidates_keep_their_index():
    raw = (
        b'data: {"candidates":[{"content":{"parts":[{"text":"a"}]},"index":0},'
        b'{"content":{"parts":[{"text":"b"}]},"index":1}]}\r\n\r\n'
        b'data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"x":1},"id":"fc1"}}]},'
        b'"finishReason":"STOP","index":1},{"content":{"parts":[{"text":"!"}]},"finishReason":"MAX_TOKENS","index":0}]}'
        b"\r\n\r\n"
    )
    events = decode_all(raw)
    assert (text_of(events, 0), text_of(events, 1)) == ("a!", "b")
    assert ToolCallStart(0, "fc1", "f", 1) in events
    assert ToolCallDelta(0, '{"x":1}', 1) in events
    assert [e for e in events if isinstance(e, Finish)] == [Finish("length", 0), Finish("tool_calls", 1)]


# =====================================================================
# client side: StreamEncoder
# =====================================================================


def request_for(model: str = "gemini-2.5-flash") -> ChatRequest:
    return ChatRequest(model=model, messages=[Message("user", [TextPart("hi")])], stream=True)


def encode(batches: list[list[Any]], sse: bool = True, model: str = "gemini-2.5-flash") -> bytes:
    encoder = fmt.StreamEncoder(request_for(model), sse=sse)
    out = b"".join(encoder.encode(batch) for batch in batches) + encoder.close()
    assert encoder.close() == b""  # closing frames exactly once
    return out


def stream_via_sdk(body: bytes) -> list[Any]:
    client, seen = serving(body, content_type="text/event-stream")
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert seen[0].url.params.get("alt") == "sse"
    return chunks


OPENAI_STYLE = [
    [StreamStart("chatcmpl-1", "gpt-x", 1)],
    [TextDelta("Hel")],
    [TextDelta("lo")],
    [ToolCallStart(0, "call_1", "get")],
    [ToolCallDelta(0, '{"q":')],
    [ToolCallDelta(0, '"x"}'), ToolCallStart(1, "call_2", "put"), ToolCallDelta(1, "")],
    [Finish("tool_calls")],
    [UsageUpdate(Usage(input_tokens=10, output_tokens=7, reasoning_tokens=2))],
]

ANTHROPIC_STYLE = [
    [StreamStart("msg_1", "claude-x", 1, input_tokens=12)],
    [ThinkingDelta("let me")],
    [ThinkingDelta(" think")],
    [ThinkingDelta("", signature="RXFRQkNrZ0lBUkFC")],
    [TextDelta("Answer")],
    [UsageUpdate(Usage(input_tokens=12, output_tokens=1))],
    [TextDelta(" done")],
    [Finish("length"), UsageUpdate(Usage(input_tokens=12, output_tokens=9))],
    [],
]


def test_encoder_output_parsed_by_google_genai_openai_style_events():
    chunks = stream_via_sdk(encode(OPENAI_STYLE))
    assert "".join(c.text or "" for c in chunks[:-1]) == "Hello"
    final = chunks[-1]
    calls = final.function_calls
    assert [(c.id, c.name, c.args) for c in calls] == [("call_1", "get", {"q": "x"}), ("call_2", "put", {})]
    assert final.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert all(c.candidates[0].finish_reason is None for c in chunks[:-1])
    usage = final.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (10, 5, 2)
    assert usage.total_token_count == 17
    assert {c.response_id for c in chunks} == {"chatcmpl-1"}
    assert {c.model_version for c in chunks} == {"gpt-x"}


def test_encoder_output_parsed_by_google_genai_anthropic_style_events():
    chunks = stream_via_sdk(encode(ANTHROPIC_STYLE))
    thoughts = [p for c in chunks for p in c.candidates[0].content.parts if p.thought]
    assert "".join(p.text for p in thoughts) == "let me think"
    assert thoughts[-1].thought_signature == b"EqQBCkgIARAB"  # the signature followed its thought text
    assert "".join(c.text or "" for c in chunks) == "Answer done"
    final = chunks[-1]
    assert final.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS
    assert (final.usage_metadata.prompt_token_count, final.usage_metadata.candidates_token_count) == (12, 9)
    # usage known early rides along on earlier chunks too
    assert chunks[0].usage_metadata.prompt_token_count == 12


def test_encoder_sse_framing_and_chunk_fields():
    raw = encode(OPENAI_STYLE)
    assert raw.startswith(b"data: {") and raw.endswith(b"}\r\n\r\n")
    payloads = sse_payloads(raw)
    for payload in payloads:
        assert payload["modelVersion"] == "gpt-x" and payload["responseId"] == "chatcmpl-1"
        for candidate in payload["candidates"]:
            assert candidate["content"]["role"] == "model"
    assert [("finishReason" in p["candidates"][0]) for p in payloads] == [False] * (len(payloads) - 1) + [True]
    # text goes out per batch, not at the end
    assert payloads[0]["candidates"][0]["content"]["parts"] == [{"text": "Hel"}]


def test_encoder_json_array_framing_matches_the_real_api():
    raw = encode(OPENAI_STYLE, sse=False)
    assert raw.startswith(b"[{") and raw.endswith(b"}\n]")
    assert raw.count(b"\n,\r\n") == len(orjson.loads(raw)) - 1
    fixture_raw = fixture("stream-nonsse-json-array.response.json")
    assert fixture_raw.startswith(b"[{") and b"}\n,\r\n{" in fixture_raw and fixture_raw.endswith(b"}\n]")


def test_encoder_json_array_is_written_incrementally():
    encoder = fmt.StreamEncoder(request_for(), sse=False)
    first = encoder.encode([StreamStart("r", "m", 1), TextDelta("a")])
    second = encoder.encode([TextDelta("b")])
    assert first.startswith(b"[{") and second.startswith(b"\n,\r\n{")
    assert orjson.loads(first + second + encoder.close())[1]["candidates"][0]["content"]["parts"] == [{"text": "b"}]


@pytest.mark.parametrize("sse", [True, False])
def test_encoder_output_decodes_back_to_the_same_content(sse: bool):
    raw = encode(OPENAI_STYLE, sse=sse)
    events = decode_all(raw)
    assert text_of(events) == "Hello"
    assert [e for e in events if isinstance(e, ToolCallStart)] == [
        ToolCallStart(0, "call_1", "get"),
        ToolCallStart(1, "call_2", "put"),
    ]
    assert [e.arguments for e in events if isinstance(e, ToolCallDelta)] == ['{"q":"x"}', "{}"]
    assert events[-2:] == [
        Finish("tool_calls"),
        UsageUpdate(Usage(input_tokens=10, output_tokens=7, reasoning_tokens=2)),
    ]


@pytest.mark.parametrize("name", STREAM_FIXTURES)
def test_fixture_stream_decoded_and_reencoded_decodes_the_same(name: str):
    events = decode_all(fixture(name))
    reencoded = decode_all(encode([[e] for e in events]))
    assert normalised(reencoded)[1:] == normalised(events)[1:]


def test_encoder_keeps_gemini_function_call_signature_through_a_stream():
    raw = fixture("stream-nonsse-json-array.response.json")
    chunks = stream_via_sdk(encode([decode_all(raw)]))
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    (call_part,) = [p for p in parts if p.function_call]
    assert call_part.function_call.name == "pelican_name_generator"
    expected = orjson.loads(raw)[1]["candidates"][0]["content"]["parts"][0]["thoughtSignature"]
    assert call_part.thought_signature == base64.b64decode(expected)


def test_encoder_in_band_error_raises_in_google_genai():
    failure = StreamFailure(GatewayError("rate_limit", "too many requests"))
    raw = encode([[StreamStart("r", "m", 1), TextDelta("partial")], [failure], [TextDelta("after")]])
    assert raw.endswith(b"\r\n\r\n") and b"after" not in raw
    client, _ = serving(raw, content_type="text/event-stream")
    texts = []
    with pytest.raises(genai_errors.ClientError) as info:
        for chunk in client.models.generate_content_stream(model="m", contents="hi"):
            texts.append(chunk.text)
    assert texts == ["partial"]
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"


def test_encoder_in_band_error_in_json_array_then_closes_the_array():
    failure = StreamFailure(GatewayError("unavailable", "overloaded"))
    raw = encode([[StreamStart("r", "m", 1), TextDelta("x")], [failure]], sse=False)
    elements = orjson.loads(raw)
    assert elements[0]["candidates"][0]["content"]["parts"] == [{"text": "x"}]
    assert elements[-1]["error"]["code"] == 503 and elements[-1]["error"]["status"] == "UNAVAILABLE"
    assert raw.endswith(b"\n]")


def test_encoder_error_as_the_first_event_still_makes_a_valid_array():
    raw = encode([[StreamFailure(GatewayError("timeout", "slow"))]], sse=False)
    assert orjson.loads(raw)[0]["error"]["status"] == "DEADLINE_EXCEEDED"


def test_encoder_empty_stream_still_writes_one_final_chunk():
    payloads = sse_payloads(encode([]))
    assert len(payloads) == 1
    assert payloads[0]["candidates"] == [{"content": {"parts": [{"text": ""}], "role": "model"}, "index": 0}]
    (element,) = orjson.loads(encode([], sse=False))
    assert element["candidates"] == payloads[0]["candidates"]


def test_signatures_that_are_not_base64_are_left_out_for_the_sdk():
    resp = sample_response()
    resp.choices[0].thinking = [ThinkingPart("hmm", "not base64!")]
    resp.choices[0].tool_calls[0].signature = "abcde"  # 5 characters: not decodable
    body = fmt.render_response(resp)
    assert b"thoughtSignature" not in body
    client, _ = serving(body)
    assert client.models.generate_content(model="m", contents="hi").function_calls[0].name == "lookup"
    raw = encode([[StreamStart("r", "m", 1), ThinkingDelta("t", signature="x")], [ThinkingDelta("", "y y")]])
    assert b"thoughtSignature" not in raw


def test_encoder_final_chunk_has_text_part_for_sdk_text_accumulation():
    chunks = stream_via_sdk(
        encode([[StreamStart("r", "m", 1), TextDelta("hi")], [Finish("stop")], [UsageUpdate(Usage(1, 1))]])
    )
    assert [c.text for c in chunks] == ["hi", ""]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_encoder_always_emits_valid_json_for_shuffled_event_batches(seed: int):
    rng = random.Random(seed)
    events = [e for batch in rng.choice([OPENAI_STYLE, ANTHROPIC_STYLE]) for e in batch]
    start, rest = events[0], events[1:]
    rng.shuffle(rest)
    batches: list[list[Any]] = [[start]]
    for ev in rest:
        if rng.random() < 0.5:
            batches[-1].append(ev)
        else:
            batches.append([ev])
    for sse in (True, False):
        raw = encode(batches, sse=sse)
        chunks = sse_payloads(raw) if sse else orjson.loads(raw)
        assert sum("finishReason" in c for p in chunks for c in p.get("candidates", [])) <= 1


# =====================================================================
# errors and models
# =====================================================================

EXPECTED_ERRORS = {
    "error-400-api-key": ("provider_auth", 502),
    "error-404-unknown-model": ("not_found", 404),
    "error-429-quota": ("rate_limit", 429),
}


@pytest.mark.parametrize("name", ERROR_FIXTURES)
def test_parse_error_fixture(name: str):
    raw = fixture(f"{name}.response.json")
    status = orjson.loads(raw)["error"]["code"]
    error = fmt.parse_error(status, raw)
    assert (error.kind, error.status) == EXPECTED_ERRORS[name]
    if error.kind != "provider_auth":
        assert error.message == orjson.loads(raw)["error"]["message"]
    else:
        assert "gateway" in error.message  # not the client's key


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (503, b'{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}', "unavailable", 503),
        (500, b'{"error":{"code":500,"message":"oops","status":"INTERNAL"}}', "provider_error", 500),
        (403, b'{"error":{"code":403,"message":"no","status":"PERMISSION_DENIED"}}', "provider_auth", 502),
        (400, b'[{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]', "invalid_request", 400),
        (502, b"<html>bad gateway</html>", "provider_error", 502),
        (504, b"", "timeout", 504),
    ],
)
def test_parse_error_statuses(status: int, body: bytes, kind: str, code: int):
    error = fmt.parse_error(status, body)
    assert (error.kind, error.status) == (kind, code)
    assert error.message


@pytest.mark.parametrize(
    ("kind", "status", "sdk_error"),
    [
        ("invalid_request", 400, genai_errors.ClientError),
        ("not_found", 404, genai_errors.ClientError),
        ("rate_limit", 429, genai_errors.ClientError),
        ("provider_auth", 502, genai_errors.ServerError),
        ("unavailable", 503, genai_errors.ServerError),
    ],
)
def test_render_error_is_the_sdk_typed_error(kind: str, status: int, sdk_error: type):
    error = GatewayError(kind, "went wrong")  # type: ignore[arg-type]
    client, _ = serving(fmt.render_error(error, "req-1"), status=status)
    with pytest.raises(sdk_error) as info:
        client.models.generate_content(model="m", contents="hi")
    assert info.value.code == status
    assert info.value.message == "went wrong"


def test_render_models_parsed_by_google_genai():
    client, seen = serving(fmt.render_models(["gemini-2.5-flash", "models/gemini-embedding-001"]))
    models = list(client.models.list())
    assert seen[0].url.path.endswith("/models")
    assert [m.name for m in models] == ["models/gemini-2.5-flash", "models/gemini-embedding-001"]
    assert models[0].display_name == "gemini-2.5-flash"
    assert models[0].supported_actions == ["generateContent", "streamGenerateContent"]
    assert models[1].supported_actions == ["embedContent", "batchEmbedContents"]


# =====================================================================
# embeddings
# =====================================================================


def test_parse_single_embed_content_request():
    body = {"content": {"parts": [{"text": "hello"}]}, "taskType": "RETRIEVAL_QUERY", "output_dimensionality": 8}
    req = fmt.parse_embedding_request(orjson.dumps(body), "gemini-embedding-001")
    assert req == EmbeddingRequest("gemini-embedding-001", ["hello"], 8, task_type="RETRIEVAL_QUERY")


def test_embeddings_through_google_genai_batch_endpoint():
    seen: list[Any] = []

    def handler(request: Any) -> Any:
        seen.append(request)
        batch = request.url.path.endswith(":batchEmbedContents")
        req = fmt.parse_embedding_request(request.content, path_model(request.url.path), batch=batch)
        vectors = [[float(len(t)), 0.5] for t in req.inputs]
        body = fmt.render_embedding_response(EmbeddingResponse(req.model, vectors), batch=batch)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    client = sdk_client(handler)
    result = client.models.embed_content(
        model="gemini-embedding-001",
        contents=["a", "bbb"],
        config=genai_types.EmbedContentConfig(task_type="SEMANTIC_SIMILARITY", output_dimensionality=2),
    )
    assert [e.values for e in result.embeddings] == [[1.0, 0.5], [3.0, 0.5]]
    req = fmt.parse_embedding_request(seen[0].content, "gemini-embedding-001", batch=True)
    assert (req.inputs, req.task_type, req.dimensions) == (["a", "bbb"], "SEMANTIC_SIMILARITY", 2)


def test_batch_with_mixed_task_types_is_invalid_request():
    body = {
        "requests": [
            {"content": {"parts": [{"text": "a"}]}, "taskType": "A"},
            {"content": {"parts": [{"text": "b"}]}, "taskType": "B"},
        ]
    }
    with pytest.raises(GatewayError) as info:
        fmt.parse_embedding_request(orjson.dumps(body), "m", batch=True)
    assert (info.value.kind, info.value.param) == ("invalid_request", "requests[1]")


def test_render_single_embedding_response_shape():
    body = orjson.loads(fmt.render_embedding_response(EmbeddingResponse("m", [[0.25, -1.0]])))
    assert body == {"embedding": {"values": [0.25, -1.0]}}


def test_render_embedding_request_is_always_batch_shaped():
    req = EmbeddingRequest("text-embedding-3-small", ["x", "y"], dimensions=64, task_type="CLUSTERING")
    body = orjson.loads(fmt.render_embedding_request(req, RenderOptions(model="gemini-embedding-001")).body)
    assert body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": t}]},
                "taskType": "CLUSTERING",
                "outputDimensionality": 64,
            }
            for t in ("x", "y")
        ]
    }


@pytest.mark.parametrize(
    ("body", "vectors"),
    [
        (b'{"embedding": {"values": [1.5, 2]}}', [[1.5, 2]]),
        (b'{"embeddings": [{"values": [1]}, {"values": [2, 3]}]}', [[1], [2, 3]]),
    ],
)
def test_parse_embedding_response_both_shapes(body: bytes, vectors: list):
    assert fmt.parse_embedding_response(body, "m") == EmbeddingResponse("m", vectors)


def test_parse_embedding_response_without_vectors_is_provider_error():
    with pytest.raises(GatewayError) as info:
        fmt.parse_embedding_response(b'{"nothing": 1}')
    assert info.value.kind == "provider_error"
