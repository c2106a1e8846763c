"""Client side: the request's tools, toolConfig and generationConfig -> ChatRequest fields.

A tool kind, calling mode, output modality or MIME type, thinking level or generationConfig field
the canonical model does not carry is an ApiFeature (see `request`), never a 400."""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import ApiFeature, ChatRequest, ResponseFormat, Tool, ToolChoice, feature_name, unset
from extproc.formats.gemini.common import _GENERATION_NUMBERS, _bad, _dict, _get, _get_one, _int, _list, _str
from extproc.formats.gemini.schema_to_json import _schema_to_json
from extproc.formats.input_bounds import MAX_CHOICES, MAX_TOKENS, check_positive, check_tokens

_CHECKED_NUMBERS = ("max_tokens",)  # generationConfig numbers the gateway decides on

# generationConfig fields the canonical request is read from (both spellings); others are ApiFeatures
_CONFIG_FIELDS = frozenset(
    {camel for camel, _, _, _ in _GENERATION_NUMBERS}
    | {snake for _, snake, _, _ in _GENERATION_NUMBERS}
    | {
        "stopSequences", "stop_sequences", "responseModalities", "response_modalities", "responseMimeType",
        "response_mime_type", "responseJsonSchema", "response_json_schema", "responseSchema", "response_schema",
        "thinkingConfig", "thinking_config",
    }
)  # fmt: skip


def _unknown(features: list[ApiFeature], prefix: str, word: object, param: str, value: object) -> None:
    features.append(ApiFeature(feature_name(prefix, word), param, value=value))


def _parse_tools(tools: list, features: list[ApiFeature], schemas: list[tuple[str, Any]]) -> list[Tool]:
    """The function declarations; each one's schema, as carried, goes to `schemas` (param, schema)."""
    result: list[Tool] = []
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        tool = _dict(tool, param)
        for key, value in tool.items():
            if not unset(value) and key not in ("functionDeclarations", "function_declarations"):
                _unknown(features, "tools.", key, f"{param}.{key}", value)  # googleSearch, codeExecution, ...
        decls = _get(tool, "functionDeclarations", "function_declarations")
        if decls is None:
            continue
        for j, decl in enumerate(_list(decls, param + ".functionDeclarations")):
            p = f"{param}.functionDeclarations[{j}]"
            decl = _dict(decl, p)
            name = _str(decl.get("name"), p + ".name")
            description = decl.get("description")
            if description is not None:
                description = _str(description, p + ".description")
            parameters = _get(decl, "parametersJsonSchema", "parameters_json_schema")
            if parameters is not None:
                parameters = _dict(parameters, p + ".parametersJsonSchema")
                schemas.append((p + ".parametersJsonSchema", parameters))
            else:
                schema = decl.get("parameters")
                if schema is not None:
                    parameters = _schema_to_json(schema, p + ".parameters")
                    schemas.append((p + ".parameters", parameters))
            result.append(Tool(name, description, parameters))
    return result


def _parse_tool_config(config: dict, features: list[ApiFeature]) -> ToolChoice | None:
    fcc = _get(config, "functionCallingConfig", "function_calling_config")
    if fcc is None:
        return None
    fcc = _dict(fcc, "toolConfig.functionCallingConfig")
    param = "toolConfig.functionCallingConfig.mode"
    mode = fcc.get("mode")
    mode = "AUTO" if mode is None else _str(mode, param).upper()
    names = _get(fcc, "allowedFunctionNames", "allowed_function_names")
    if names is not None:
        names = [
            _str(n, "toolConfig.functionCallingConfig.allowedFunctionNames")
            for n in _list(names, "toolConfig.functionCallingConfig.allowedFunctionNames")
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
        _unknown(features, "toolConfig.functionCallingConfig.mode.", mode, param, fcc)
    return None


_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}


def _parse_generation_config(
    config: dict, req: ChatRequest, features: list[ApiFeature], schemas: list[tuple[str, Any]]
) -> None:
    p = "generationConfig."
    for key, value in config.items():
        if key not in _CONFIG_FIELDS and not unset(value):
            _unknown(features, p, key, p + key, value)  # responseLogprobs, speechConfig, mediaResolution, ...
    for camel, snake, field_name, read in _GENERATION_NUMBERS:
        checked = field_name in _CHECKED_NUMBERS
        value = _get_one(config, camel, snake, p + camel) if checked else _get(config, camel, snake)
        if value is not None:
            setattr(req, field_name, read(value, p + camel))
    if req.max_tokens is not None:
        check_tokens(req.max_tokens, p + "maxOutputTokens")
    if req.n is not None:  # each candidate is a whole answer: bounded like OpenAI's n
        check_positive(req.n, MAX_CHOICES, p + "candidateCount")
    value = _get(config, "stopSequences", "stop_sequences")
    if value is not None:
        req.stop = [_str(s, p + "stopSequences") for s in _list(value, p + "stopSequences")]

    modalities = _get(config, "responseModalities", "response_modalities")
    if modalities is not None:
        for m in _list(modalities, p + "responseModalities"):
            if _str(m, p + "responseModalities").upper() != "TEXT":  # IMAGE, AUDIO
                _unknown(features, p + "responseModalities.", m, p + "responseModalities", modalities)

    mime = _get(config, "responseMimeType", "response_mime_type")
    if mime is not None:
        mime = _str(mime, p + "responseMimeType")
    json_schema = _get(config, "responseJsonSchema", "response_json_schema")
    schema = _get(config, "responseSchema", "response_schema")
    if json_schema is not None:
        json_schema = _dict(json_schema, p + "responseJsonSchema")
        schemas.append((p + "responseJsonSchema", json_schema))
    elif schema is not None:
        json_schema = _schema_to_json(schema, p + "responseSchema")
        schemas.append((p + "responseSchema", json_schema))
    if mime in (None, "text/plain") and json_schema is None:
        pass
    elif mime in (None, "application/json"):
        if json_schema is None:
            req.response_format = ResponseFormat("json_object")
        else:
            req.response_format = ResponseFormat("json_schema", schema=json_schema)
    else:  # text/x.enum, ...
        _unknown(features, p + "responseMimeType.", mime, p + "responseMimeType", config)

    thinking = _get_one(config, "thinkingConfig", "thinking_config", p + "thinkingConfig")
    if thinking is not None:
        thinking = _dict(thinking, p + "thinkingConfig")
        param = p + "thinkingConfig.thinkingBudget"
        budget = _get_one(thinking, "thinkingBudget", "thinking_budget", param)
        if budget is not None:
            req.thinking_budget = _thinking_budget(_int(budget, param), param)
        if _get(thinking, "includeThoughts", "include_thoughts") is True:
            req.reasoning_summary = "auto"
        level = _get(thinking, "thinkingLevel", "thinking_level")
        if level is not None:
            level = _str(level, p + "thinkingConfig.thinkingLevel").upper()
            if level in _LEVELS:
                req.reasoning_effort = _LEVELS[level]
            elif level != "THINKING_LEVEL_UNSPECIFIED":
                _unknown(
                    features, p + "thinkingConfig.thinkingLevel.", level, p + "thinkingConfig.thinkingLevel", level
                )


def _thinking_budget(budget: int, param: str) -> int | None:
    """Gemini's own values: -1 lets the model choose (the default: None), 0 turns thinking off."""
    if budget == -1:
        return None
    if not 0 <= budget <= MAX_TOKENS:
        raise _bad(f"'{param}' must be -1 (dynamic), 0 (off) or a positive integer of at most {MAX_TOKENS}", param)
    return budget
