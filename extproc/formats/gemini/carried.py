"""What of a generateContent body the canonical request carries (see `formats.carried`).

Only what `render_request` writes back as the client sent it counts: `safetySettings`,
OpenAPI-style `parameters` and `responseSchema` (converted to JSON Schema), `thinkingLevel`,
`includeThoughts`, a dynamic thinking budget (-1), function calling modes the canonical
request cannot say, and every field the gateway does not model are not carried. Both
spellings of a field (camelCase, snake_case) are read alike.
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import ApiFeature, unset
from extproc.formats.carried import CARRIED, Choose, Each, Fields, Rule, When
from extproc.formats.json_fields import is_int


def _both(camel: str, snake: str, rule: Rule = CARRIED) -> dict[str, Rule]:
    return {camel: rule, snake: rule}


_INLINE = Fields({"data": CARRIED, **_both("mimeType", "mime_type")})
_FILE = Fields({**_both("fileUri", "file_uri"), **_both("mimeType", "mime_type")})
_MEDIA = {**_both("inlineData", "inline_data", _INLINE), **_both("fileData", "file_data", _FILE)}
_USER_PART = Fields(
    {
        "text": CARRIED,
        **_MEDIA,
        **_both("functionResponse", "function_response", Fields({"name": CARRIED, "response": CARRIED, "id": CARRIED})),
    }
)
_MODEL_PART = Fields(
    {
        "text": CARRIED,
        "thought": CARRIED,
        **_both("thoughtSignature", "thought_signature"),
        **_MEDIA,
        **_both("functionCall", "function_call", Fields({"name": CARRIED, "args": CARRIED, "id": CARRIED})),
    }
)
_DECLARATION = Fields(
    {"name": CARRIED, "description": CARRIED, **_both("parametersJsonSchema", "parameters_json_schema")}
)


def _plain_calling(value: Any, parent: dict[str, Any]) -> bool:
    """A functionCallingConfig the canonical tool choice says exactly: AUTO or NONE for any
    tool, ANY for any tool or for one named."""
    if not isinstance(value, dict) or not value.keys() <= {"mode", "allowedFunctionNames", "allowed_function_names"}:
        return False
    mode = value.get("mode")
    mode = "AUTO" if mode is None else str(mode).upper()
    names = value.get("allowedFunctionNames") or value.get("allowed_function_names") or []
    if mode == "ANY":
        return len(names) <= 1
    return mode in ("AUTO", "NONE", "MODE_UNSPECIFIED") and not names


def _fixed_budget(value: Any, parent: dict[str, Any]) -> bool:
    return is_int(value) and value >= 0  # -1 (dynamic) reads as no budget at all


_BUDGET = When(_fixed_budget)
_GENERATION = Fields(
    {
        "temperature": CARRIED,
        "seed": CARRIED,
        **_both("topP", "top_p"),
        **_both("topK", "top_k"),
        **_both("maxOutputTokens", "max_output_tokens"),
        **_both("candidateCount", "candidate_count"),
        **_both("presencePenalty", "presence_penalty"),
        **_both("frequencyPenalty", "frequency_penalty"),
        **_both("stopSequences", "stop_sequences"),
        **_both("responseMimeType", "response_mime_type"),
        **_both("responseJsonSchema", "response_json_schema"),
        **_both("thinkingConfig", "thinking_config", Fields(_both("thinkingBudget", "thinking_budget", _BUDGET))),
    }
)

GENERATE_CONTENT = Fields(
    {
        "contents": Each(
            Choose(
                "role",
                {"model": Fields({"role": CARRIED, "parts": Each(_MODEL_PART)})},
                Fields({"role": CARRIED, "parts": Each(_USER_PART)}),
            )
        ),
        **_both(
            "systemInstruction",
            "system_instruction",
            Fields({"role": CARRIED, "parts": Each(Fields({"text": CARRIED}))}),
        ),
        "tools": Each(Fields(_both("functionDeclarations", "function_declarations", Each(_DECLARATION)))),
        **_both(
            "toolConfig",
            "tool_config",
            Fields(_both("functionCallingConfig", "function_calling_config", When(_plain_calling))),
        ),
        **_both("generationConfig", "generation_config", _GENERATION),
    }
)


def asks_for_uncarried_answer(body: dict[str, Any], features: list[ApiFeature]) -> bool:
    """The body asks for answer parts the canonical answer does not carry: log probabilities,
    images or audio, a built-in tool's results (Google Search grounding, code execution). A
    replay from the cache could not give them back."""
    tools = body.get("tools")
    if isinstance(tools, list) and any(
        isinstance(tool, dict) and any(name not in _DECLARATIONS and not unset(value) for name, value in tool.items())
        for tool in tools
    ):
        return True
    config = body.get("generationConfig") or body.get("generation_config")
    if not isinstance(config, dict):
        return False
    modalities = config.get("responseModalities") or config.get("response_modalities") or []
    return (
        bool(config.get("responseLogprobs") or config.get("response_logprobs"))
        or config.get("logprobs") is not None
        or (isinstance(modalities, list) and any(str(m).upper() != "TEXT" for m in modalities))
    )


_DECLARATIONS = ("functionDeclarations", "function_declarations")
