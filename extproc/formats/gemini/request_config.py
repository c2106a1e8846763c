"""Client side: the request's tools, toolConfig and generationConfig -> ChatRequest fields.

A tool kind, calling mode, output modality or MIME type, thinking level or generationConfig field
the canonical model does not carry is an ApiFeature (see `request`), never a 400."""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import (
    ApiFeature,
    ChatRequest,
    ResponseFormat,
    Tool,
    ToolChoice,
    note_unknown,
    note_unknown_fields,
)
from extproc.formats.client_errors import invalid
from extproc.formats.gemini.common import GENERATION_NUMBERS, either_spelling, one_spelling
from extproc.formats.gemini.schema_to_json import schema_to_json
from extproc.formats.input_bounds import MAX_CHOICES, MAX_TOKENS, check_positive, check_tokens
from extproc.formats.json_fields import as_array, as_object, as_proto3_int, as_string

_CHECKED_NUMBERS = ("max_tokens",)  # generationConfig numbers the gateway decides on

# generationConfig fields the canonical request is read from (both spellings); others are ApiFeatures
_CONFIG_FIELDS = frozenset(
    {camel for camel, _, _, _ in GENERATION_NUMBERS}
    | {snake for _, snake, _, _ in GENERATION_NUMBERS}
    | {
        "stopSequences", "stop_sequences", "responseModalities", "response_modalities", "responseMimeType",
        "response_mime_type", "responseJsonSchema", "response_json_schema", "responseSchema", "response_schema",
        "thinkingConfig", "thinking_config",
    }
)  # fmt: skip


_TOOL_FIELDS = frozenset({"functionDeclarations", "function_declarations"})  # of a tool; others are ApiFeatures


def parse_tools(tools: list, features: list[ApiFeature], schemas: list[tuple[str, Any]]) -> list[Tool]:
    """The function declarations; each one's schema, as carried, goes to `schemas` (param, schema)."""
    result: list[Tool] = []
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        tool = as_object(tool, param)
        note_unknown_fields(tool, _TOOL_FIELDS, features, "tools.", f"{param}.")  # googleSearch, codeExecution, ...
        decls = either_spelling(tool, "functionDeclarations", "function_declarations")
        if decls is None:
            continue
        for j, decl in enumerate(as_array(decls, param + ".functionDeclarations")):
            p = f"{param}.functionDeclarations[{j}]"
            decl = as_object(decl, p)
            name = as_string(decl.get("name"), p + ".name")
            description = decl.get("description")
            if description is not None:
                description = as_string(description, p + ".description")
            parameters = either_spelling(decl, "parametersJsonSchema", "parameters_json_schema")
            if parameters is not None:
                parameters = as_object(parameters, p + ".parametersJsonSchema")
                schemas.append((p + ".parametersJsonSchema", parameters))
            else:
                schema = decl.get("parameters")
                if schema is not None:
                    parameters = schema_to_json(schema, p + ".parameters")
                    schemas.append((p + ".parameters", parameters))
            result.append(Tool(name, description, parameters))
    return result


def parse_tool_config(config: dict, features: list[ApiFeature]) -> ToolChoice | None:
    fcc = either_spelling(config, "functionCallingConfig", "function_calling_config")
    if fcc is None:
        return None
    fcc = as_object(fcc, "toolConfig.functionCallingConfig")
    param = "toolConfig.functionCallingConfig.mode"
    mode = fcc.get("mode")
    mode = "AUTO" if mode is None else as_string(mode, param).upper()
    names = either_spelling(fcc, "allowedFunctionNames", "allowed_function_names")
    if names is not None:
        names = [
            as_string(n, "toolConfig.functionCallingConfig.allowedFunctionNames")
            for n in as_array(names, "toolConfig.functionCallingConfig.allowedFunctionNames")
        ]
    if mode in ("AUTO", "VALIDATED"):
        return ToolChoice("auto")
    if mode == "NONE":
        return ToolChoice("none")
    if mode == "ANY":
        # several allowed names cannot be expressed canonically: any tool is required
        if names and len(names) == 1:
            return ToolChoice("function", names[0])
        return ToolChoice("required")
    if mode != "MODE_UNSPECIFIED":
        note_unknown(features, "toolConfig.functionCallingConfig.mode.", mode, param, fcc)
    return None


_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}


def parse_generation_config(
    config: dict, req: ChatRequest, features: list[ApiFeature], schemas: list[tuple[str, Any]]
) -> None:
    p = "generationConfig."
    note_unknown_fields(config, _CONFIG_FIELDS, features, p, p)  # responseLogprobs, speechConfig, mediaResolution, ...
    for camel, snake, field_name, read in GENERATION_NUMBERS:
        checked = field_name in _CHECKED_NUMBERS
        value = one_spelling(config, camel, snake, p + camel) if checked else either_spelling(config, camel, snake)
        if value is not None:
            setattr(req, field_name, read(value, p + camel))
    if req.max_tokens is not None:
        check_tokens(req.max_tokens, p + "maxOutputTokens")
    if req.n is not None:  # each candidate is a whole answer: bounded like OpenAI's n
        check_positive(req.n, MAX_CHOICES, p + "candidateCount")
    value = either_spelling(config, "stopSequences", "stop_sequences")
    if value is not None:
        req.stop = [as_string(s, p + "stopSequences") for s in as_array(value, p + "stopSequences")]

    modalities = either_spelling(config, "responseModalities", "response_modalities")
    if modalities is not None:
        for m in as_array(modalities, p + "responseModalities"):
            if as_string(m, p + "responseModalities").upper() != "TEXT":  # IMAGE, AUDIO
                note_unknown(features, p + "responseModalities.", m, p + "responseModalities", modalities)

    mime = either_spelling(config, "responseMimeType", "response_mime_type")
    if mime is not None:
        mime = as_string(mime, p + "responseMimeType")
    json_schema = either_spelling(config, "responseJsonSchema", "response_json_schema")
    schema = either_spelling(config, "responseSchema", "response_schema")
    if json_schema is not None:
        json_schema = as_object(json_schema, p + "responseJsonSchema")
        schemas.append((p + "responseJsonSchema", json_schema))
    elif schema is not None:
        json_schema = schema_to_json(schema, p + "responseSchema")
        schemas.append((p + "responseSchema", json_schema))
    if mime in (None, "text/plain") and json_schema is None:
        pass
    elif mime in (None, "application/json"):
        if json_schema is None:
            req.response_format = ResponseFormat("json_object")
        else:
            req.response_format = ResponseFormat("json_schema", schema=json_schema)
    else:  # text/x.enum, ...
        note_unknown(features, p + "responseMimeType.", mime, p + "responseMimeType", config)

    thinking = one_spelling(config, "thinkingConfig", "thinking_config", p + "thinkingConfig")
    if thinking is not None:
        thinking = as_object(thinking, p + "thinkingConfig")
        param = p + "thinkingConfig.thinkingBudget"
        budget = one_spelling(thinking, "thinkingBudget", "thinking_budget", param)
        if budget is not None:
            req.thinking_budget = _thinking_budget(as_proto3_int(budget, param), param)
        if either_spelling(thinking, "includeThoughts", "include_thoughts") is True:
            req.reasoning_summary = "auto"
        level = either_spelling(thinking, "thinkingLevel", "thinking_level")
        if level is not None:
            level = as_string(level, p + "thinkingConfig.thinkingLevel").upper()
            if level in _LEVELS:
                req.reasoning_effort = _LEVELS[level]
            elif level != "THINKING_LEVEL_UNSPECIFIED":
                note_unknown(
                    features, p + "thinkingConfig.thinkingLevel.", level, p + "thinkingConfig.thinkingLevel", level
                )


def _thinking_budget(budget: int, param: str) -> int | None:
    """Gemini's own values: -1 lets the model choose (the default: None), 0 turns thinking off."""
    if budget == -1:
        return None
    if not 0 <= budget <= MAX_TOKENS:
        raise invalid(f"'{param}' must be -1 (dynamic), 0 (off) or a positive integer of at most {MAX_TOKENS}", param)
    return budget
