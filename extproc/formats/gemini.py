"""Gemini generateContent (Developer API, v1beta and v1) <-> the canonical model.

Client side: the API a google-genai caller speaks. Provider side: the API the
gateway speaks to generativelanguage.googleapis.com. See /work/shared/mapping.md.

Documented choices (the places where the formats do not line up one to one):

* Every request field is accepted in camelCase and snake_case, at every level.
* `safetySettings`, `responseModalities: ["TEXT"]`, `thinkingConfig.includeThoughts`,
  logprobs settings, `labels` and other tuning knobs are accepted and ignored
  (the canonical model has no place for them). Things whose loss would change
  the answer (`cachedContent`, non-function tools such as googleSearch,
  non-text modalities, other response MIME types, code execution parts) are
  rejected with invalid_request.
* functionResponse.response <-> tool message text: `{"output": s}` becomes the
  text `s` and `{"error": s}` the text `s` with `is_error`, unless `s` is itself
  JSON object text; any other object becomes its compact JSON text. Rendering
  does the reverse: JSON object text is sent as that object (under "error"
  when is_error), any other text as `{"output": text}` / `{"error": text}`.
  The round trip is exact.
* A functionResponse without an id answers the earliest unanswered call with
  that name (FIFO, so parallel calls of one function pair up in order); if none
  is open a fresh `call_...` id is generated.
* `thinkingBudget: -1` (dynamic) is the provider default and maps to None;
  `thinkingLevel` maps to reasoning_effort. Rendering sends reasoning_effort as
  thinkingBudget: none 0, minimal 128, low 1024, medium 8192, high/xhigh 24576.
* thoughtSignature on a functionCall is kept in ToolCall.signature. Stream
  events have no such field, so the decoder emits a signature-only
  ThinkingDelta right after the call's ToolCallStart/ToolCallDelta, and the
  encoder attaches a signature-only ThinkingDelta to the item just before it
  (the buffered call, or the thought part). Signatures on plain text parts are
  dropped (Gemini only requires the function-call ones).
* Gemini always reports usage: parse_request sets include_usage, and the
  stream encoder always writes usageMetadata once it is known.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson

from extproc.errors import GatewayError, kind_for_status, render_gemini_error
from extproc.formats.base import RenderedRequest, RenderOptions, count, provider_error, random_text
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    StreamEvent,
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
    with_user_turn,
)
from extproc.formats.sse import SSEParser

__all__ = [
    "StreamDecoder",
    "StreamEncoder",
    "parse_embedding_request",
    "parse_embedding_response",
    "parse_error",
    "parse_request",
    "parse_response",
    "render_embedding_request",
    "render_embedding_response",
    "render_error",
    "render_models",
    "render_request",
    "render_response",
]


def _call_id() -> str:
    return "call_" + random_text(24)


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError("invalid_request", message, param=param)


def _get(obj: dict, camel: str, snake: str) -> Any:
    """A field in camelCase or snake_case; null counts as absent (proto3 JSON)."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _json_text(value: Any, param: str | None = None) -> str:
    """Compact JSON text. orjson writes at most 254 levels though it reads 1024:
    deeper input is the client's fault (`param` names it) or the provider's."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        if param is None:
            raise provider_error("the provider returned JSON nested too deeply") from None
        raise _bad("the value is nested too deeply", param) from None


def _json_object(text: str) -> dict | None:
    """`text` parsed when it is JSON object text, else None."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _object_fragment(text: str) -> orjson.Fragment | None:
    """JSON object text, embedded as-is (no second serialisation), else None."""
    return orjson.Fragment(text) if _json_object(text) is not None else None


def _args_object(arguments: str) -> dict | orjson.Fragment:
    """Tool call arguments as the object Gemini wants. Text that is not a JSON
    object (a model's broken output from another provider) is kept under
    "arguments" rather than lost."""
    if not arguments.strip():
        return {}
    value = _object_fragment(arguments)
    return value if value is not None else {"arguments": arguments}


# ---- request validation helpers (client input)


def _dict(value: Any, param: str) -> dict:
    if not isinstance(value, dict):
        raise _bad(f"'{param}' must be an object", param)
    return value


def _list(value: Any, param: str) -> list:
    if not isinstance(value, list):
        raise _bad(f"'{param}' must be an array", param)
    return value


def _str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"'{param}' must be a string", param)
    return value


def _num(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"'{param}' must be a number", param)
    return value


def _int(value: Any, param: str) -> int:
    # proto3 JSON accepts 3.0 for an int32 (the SDK sends topK as a float) and "3"
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    raise _bad(f"'{param}' must be an integer", param)


# ---- client side: request


_ROLES_USER = ("user", "function")  # "function" is the legacy role for functionResponse turns


def parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    """A generateContent / streamGenerateContent body. The model comes from the
    URL; the server sets `stream` for :streamGenerateContent."""
    try:
        return _parse_request(body, path_model)
    except RecursionError:
        raise _bad("request is nested too deeply", "contents") from None


def _parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON: {exc}", "body") from None
    data = _dict(data, "body")
    model = path_model or data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("the model name is missing from the URL", "model")
    if model.startswith("models/"):
        model = model[7:]

    if _get(data, "cachedContent", "cached_content") is not None:
        raise _bad("cachedContent is not supported by this gateway", "cachedContent")

    messages: list[Message] = []
    system = _get(data, "systemInstruction", "system_instruction")
    if system is not None:
        messages.append(_parse_system(system))
    contents = data.get("contents")
    if contents is None:
        raise _bad("'contents' is required", "contents")
    contents = _list(contents, "contents")
    if not contents:
        raise _bad("'contents' must not be empty", "contents")
    messages.extend(_parse_contents(contents))

    req = ChatRequest(model=model, messages=messages, include_usage=True)

    tools = data.get("tools")
    if tools is not None:
        req.tools = _parse_tools(_list(tools, "tools"))
    tool_config = _get(data, "toolConfig", "tool_config")
    if tool_config is not None:
        req.tool_choice = _parse_tool_config(_dict(tool_config, "toolConfig"))
    config = _get(data, "generationConfig", "generation_config")
    if config is not None:
        _parse_generation_config(_dict(config, "generationConfig"), req)
    safety = _get(data, "safetySettings", "safety_settings")
    if safety is not None:
        _list(safety, "safetySettings")  # accepted and ignored: no canonical equivalent
    return req


def _parse_system(system: Any) -> Message:
    if isinstance(system, str):  # lenient: a bare string
        return Message("system", [TextPart(system)])
    system = _dict(system, "systemInstruction")
    parts = _list(system.get("parts") or [], "systemInstruction.parts")
    content: list[Part] = []
    for j, part in enumerate(parts):
        param = f"systemInstruction.parts[{j}]"
        text = _dict(part, param).get("text")
        if text is None:
            raise _bad("systemInstruction parts must be text", param)
        content.append(TextPart(_str(text, param + ".text")))
    return Message("system", content)


def _parse_contents(contents: list) -> list[Message]:
    messages: list[Message] = []
    open_calls: dict[str, list[str]] = {}  # function name -> unanswered call ids, oldest first
    for i, content in enumerate(contents):
        param = f"contents[{i}]"
        content = _dict(content, param)
        role = content.get("role")
        role = "user" if role is None or role == "" else _str(role, param + ".role")
        parts = content.get("parts")
        if parts is None:
            raise _bad("'parts' is required", param + ".parts")
        parts = _list(parts, param + ".parts")
        if not parts:
            raise _bad("'parts' must not be empty", param + ".parts")
        if role == "model":
            messages.append(_parse_model_turn(parts, param, open_calls))
        elif role in _ROLES_USER:
            messages.extend(_parse_user_turn(parts, param, open_calls))
        else:
            raise _bad(f"role must be 'user' or 'model', got {role!r}", param + ".role")
    return messages


def _signature(part: dict, param: str) -> str | None:
    sig = _get(part, "thoughtSignature", "thought_signature")
    return None if sig is None else _str(sig, param + ".thoughtSignature")


def _media_part(part: dict, param: str) -> ImagePart | None:
    inline = _get(part, "inlineData", "inline_data")
    if inline is not None:
        p = param + ".inlineData"
        inline = _dict(inline, p)
        data = inline.get("data")
        mime = _get(inline, "mimeType", "mime_type")
        if data is None or mime is None:
            raise _bad("inlineData needs 'mimeType' and 'data'", p)
        return ImagePart(media_type=_str(mime, p + ".mimeType"), data=_str(data, p + ".data"))
    file = _get(part, "fileData", "file_data")
    if file is not None:
        p = param + ".fileData"
        file = _dict(file, p)
        uri = _get(file, "fileUri", "file_uri")
        if uri is None:
            raise _bad("fileData needs 'fileUri'", p)
        mime = _get(file, "mimeType", "mime_type")
        return ImagePart(
            media_type=None if mime is None else _str(mime, p + ".mimeType"),
            url=_str(uri, p + ".fileUri"),
        )
    return None


def _unsupported_part(part: dict, param: str) -> GatewayError:
    keys = ", ".join(sorted(k for k, v in part.items() if v is not None)) or "nothing"
    return _bad(f"unsupported part (has {keys})", param)


def _parse_model_turn(parts: list, param: str, open_calls: dict[str, list[str]]) -> Message:
    msg = Message("assistant")
    for j, part in enumerate(parts):
        p = f"{param}.parts[{j}]"
        part = _dict(part, p)
        sig = _signature(part, p)
        call = _get(part, "functionCall", "function_call")
        if call is not None:
            pc = p + ".functionCall"
            call = _dict(call, pc)
            name = _str(call.get("name"), pc + ".name")
            args = call.get("args")
            if args is not None:
                args = _dict(args, pc + ".args")
            call_id = call.get("id")
            call_id = _call_id() if call_id is None or call_id == "" else _str(call_id, pc + ".id")
            msg.tool_calls.append(ToolCall(call_id, name, _json_text(args or {}, pc + ".args"), sig))
            open_calls.setdefault(name, []).append(call_id)
            continue
        text = part.get("text")
        if text is not None:
            text = _str(text, p + ".text")
            if part.get("thought") is True:
                msg.content.append(ThinkingPart(text, sig))
            else:
                msg.content.append(TextPart(text))
            continue
        media = _media_part(part, p)
        if media is not None:
            msg.content.append(media)
            continue
        if _get(part, "functionResponse", "function_response") is not None:
            raise _bad("functionResponse parts belong in a user turn", p)
        if sig is not None:  # a signature-only part
            msg.content.append(ThinkingPart("", sig))
            continue
        raise _unsupported_part(part, p)
    return msg


def _response_text(response: dict, param: str) -> tuple[str, bool]:
    """functionResponse.response -> (tool message text, is_error); see module doc."""
    if len(response) == 1:
        key, value = next(iter(response.items()))
        if key in ("output", "error"):
            if isinstance(value, str) and _json_object(value) is None:
                return value, key == "error"
            if key == "error" and isinstance(value, dict):
                return _json_text(value, param), True
    return _json_text(response, param), False


def _parse_user_turn(parts: list, param: str, open_calls: dict[str, list[str]]) -> list[Message]:
    # Tool results come first: OpenAI wants them right after the assistant turn.
    out: list[Message] = []
    user = Message("user")
    for j, part in enumerate(parts):
        p = f"{param}.parts[{j}]"
        part = _dict(part, p)
        resp = _get(part, "functionResponse", "function_response")
        if resp is not None:
            pr = p + ".functionResponse"
            resp = _dict(resp, pr)
            name = _str(resp.get("name"), pr + ".name")
            response = resp.get("response")
            response = {} if response is None else _dict(response, pr + ".response")
            call_id = resp.get("id")
            pending = open_calls.get(name, [])
            if call_id is None or call_id == "":
                call_id = pending.pop(0) if pending else _call_id()
            else:
                call_id = _str(call_id, pr + ".id")
                if call_id in pending:
                    pending.remove(call_id)
            text, is_error = _response_text(response, pr + ".response")
            out.append(Message("tool", [TextPart(text)], tool_call_id=call_id, name=name, is_error=is_error))
            continue
        text = part.get("text")
        if text is not None:
            user.content.append(TextPart(_str(text, p + ".text")))
            continue
        media = _media_part(part, p)
        if media is not None:
            user.content.append(media)
            continue
        if _get(part, "functionCall", "function_call") is not None:
            raise _bad("functionCall parts belong in a model turn", p)
        raise _unsupported_part(part, p)
    if user.content:
        out.append(user)
    return out


# OpenAPI-subset Schema (Gemini `parameters` / `responseSchema`) -> JSON Schema
_SCHEMA_SNAKE = {
    "any_of": "anyOf",
    "min_items": "minItems",
    "max_items": "maxItems",
    "min_length": "minLength",
    "max_length": "maxLength",
    "min_properties": "minProperties",
    "max_properties": "maxProperties",
    "property_ordering": "propertyOrdering",
}
_SCHEMA_INTS = frozenset(("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"))


def _schema_to_json(schema: Any, param: str) -> dict:
    schema = _dict(schema, param)
    out: dict[str, Any] = {}
    nullable = False
    for key, value in schema.items():
        key = _SCHEMA_SNAKE.get(key, key)
        if value is None or key in ("propertyOrdering", "example"):
            continue
        p = f"{param}.{key}"
        if key == "type":
            if isinstance(value, str):
                value = value.lower()
                if value == "type_unspecified":
                    continue
            elif isinstance(value, list):
                value = [_str(t, p).lower() for t in value]
            else:
                raise _bad(f"'{p}' must be a string", p)
        elif key == "nullable":
            nullable = value is True
            continue
        elif key == "properties":
            value = {_str(name, p): _schema_to_json(sub, f"{p}.{name}") for name, sub in _dict(value, p).items()}
        elif key == "items":
            value = _schema_to_json(value, p)
        elif key == "anyOf":
            value = [_schema_to_json(sub, f"{p}[{k}]") for k, sub in enumerate(_list(value, p))]
        elif key in _SCHEMA_INTS:
            value = _int(value, p)
        out[key] = value
    if nullable:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
    return out


def _parse_tools(tools: list) -> list[Tool]:
    result: list[Tool] = []
    for i, tool in enumerate(tools):
        param = f"tools[{i}]"
        tool = _dict(tool, param)
        for key, value in tool.items():
            if value is not None and key not in ("functionDeclarations", "function_declarations"):
                raise _bad(f"tool '{key}' is not supported by this gateway", f"{param}.{key}")
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
            else:
                schema = decl.get("parameters")
                if schema is not None:
                    parameters = _schema_to_json(schema, p + ".parameters")
            result.append(Tool(name, description, parameters))
    return result


def _parse_tool_config(config: dict) -> ToolChoice | None:
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
    if mode == "MODE_UNSPECIFIED":
        return None
    raise _bad(f"unknown function calling mode {mode!r}", param)


_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}


def _parse_generation_config(config: dict, req: ChatRequest) -> None:
    p = "generationConfig."
    value = config.get("temperature")
    if value is not None:
        req.temperature = _num(value, p + "temperature")
    value = _get(config, "topP", "top_p")
    if value is not None:
        req.top_p = _num(value, p + "topP")
    value = _get(config, "topK", "top_k")
    if value is not None:
        req.top_k = _int(value, p + "topK")
    value = _get(config, "maxOutputTokens", "max_output_tokens")
    if value is not None:
        req.max_tokens = _int(value, p + "maxOutputTokens")
    value = _get(config, "stopSequences", "stop_sequences")
    if value is not None:
        req.stop = [_str(s, p + "stopSequences") for s in _list(value, p + "stopSequences")]
    value = _get(config, "candidateCount", "candidate_count")
    if value is not None:
        req.n = _int(value, p + "candidateCount")
    value = config.get("seed")
    if value is not None:
        req.seed = _int(value, p + "seed")
    value = _get(config, "presencePenalty", "presence_penalty")
    if value is not None:
        req.presence_penalty = _num(value, p + "presencePenalty")
    value = _get(config, "frequencyPenalty", "frequency_penalty")
    if value is not None:
        req.frequency_penalty = _num(value, p + "frequencyPenalty")

    modalities = _get(config, "responseModalities", "response_modalities")
    if modalities is not None:
        for m in _list(modalities, p + "responseModalities"):
            if _str(m, p + "responseModalities").upper() != "TEXT":
                raise _bad(f"response modality {m!r} is not supported", p + "responseModalities")

    mime = _get(config, "responseMimeType", "response_mime_type")
    if mime is not None:
        mime = _str(mime, p + "responseMimeType")
    json_schema = _get(config, "responseJsonSchema", "response_json_schema")
    schema = _get(config, "responseSchema", "response_schema")
    if json_schema is not None:
        json_schema = _dict(json_schema, p + "responseJsonSchema")
    elif schema is not None:
        json_schema = _schema_to_json(schema, p + "responseSchema")
    if mime in (None, "text/plain") and json_schema is None:
        pass
    elif mime in (None, "application/json"):
        if json_schema is None:
            req.response_format = ResponseFormat("json_object")
        else:
            req.response_format = ResponseFormat("json_schema", schema=json_schema)
    else:
        raise _bad(f"responseMimeType {mime!r} is not supported", p + "responseMimeType")

    thinking = _get(config, "thinkingConfig", "thinking_config")
    if thinking is not None:
        thinking = _dict(thinking, p + "thinkingConfig")
        budget = _get(thinking, "thinkingBudget", "thinking_budget")
        if budget is not None:
            budget = _int(budget, p + "thinkingConfig.thinkingBudget")
            req.thinking_budget = None if budget < 0 else budget  # -1: dynamic, the default
        level = _get(thinking, "thinkingLevel", "thinking_level")
        if level is not None:
            level = _str(level, p + "thinkingConfig.thinkingLevel").upper()
            if level in _LEVELS:
                req.reasoning_effort = _LEVELS[level]
            elif level != "THINKING_LEVEL_UNSPECIFIED":
                raise _bad(f"unknown thinking level {level!r}", p + "thinkingConfig.thinkingLevel")


# ---- client side: responses


_FINISH_OUT = {
    "stop": "STOP",
    "tool_calls": "STOP",  # Gemini reports STOP for function calls
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "error": "OTHER",
}


def _usage_json(usage: Usage, final: bool = True) -> dict:
    reasoning = usage.reasoning_tokens
    candidates = max(usage.output_tokens - reasoning, 0)
    out: dict[str, int] = {"promptTokenCount": usage.input_tokens}
    if candidates or final:
        out["candidatesTokenCount"] = candidates
    out["totalTokenCount"] = usage.input_tokens + usage.output_tokens
    if usage.cached_tokens > 0:
        out["cachedContentTokenCount"] = usage.cached_tokens
    if reasoning > 0:
        out["thoughtsTokenCount"] = reasoning
    return out


_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _signature_ok(signature: str | None) -> bool:
    """thoughtSignature is a bytes field: google-genai rejects the whole response
    (and Gemini the request) when it is not base64, e.g. a foreign signature."""
    return bool(signature) and _BASE64.fullmatch(signature) is not None and len(signature.rstrip("=")) % 4 != 1


def _call_part(call: ToolCall) -> dict:
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": _args_object(call.arguments), "id": call.id}}
    if _signature_ok(call.signature):
        part["thoughtSignature"] = call.signature
    return part


def _thought_part(text: str, signature: str | None) -> dict:
    part: dict[str, Any] = {"text": text, "thought": True}
    if _signature_ok(signature):
        part["thoughtSignature"] = signature
    return part


def render_response(resp: ChatResponse) -> bytes:
    candidates = []
    for choice in resp.choices:
        parts = [_thought_part(t.text, t.signature) for t in choice.thinking if not t.redacted]
        text = choice.text or choice.refusal or ""
        if text:
            parts.append({"text": text})
        parts.extend(_call_part(call) for call in choice.tool_calls)
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if choice.finish_reason is not None:
            candidate["finishReason"] = _FINISH_OUT.get(choice.finish_reason, "OTHER")
        candidate["index"] = choice.index
        candidates.append(candidate)
    out: dict[str, Any] = {"candidates": candidates}
    if resp.usage is not None:
        out["usageMetadata"] = _usage_json(resp.usage)
    out["modelVersion"] = resp.model
    out["responseId"] = resp.id
    return orjson.dumps(out)


def render_error(error: GatewayError, request_id: str = "") -> bytes:
    return render_gemini_error(error, request_id)


def render_models(models: list[str]) -> bytes:
    """A models.list page. Names containing "embedding" advertise the embedding methods."""
    entries = []
    for model in models:
        name = model[7:] if model.startswith("models/") else model
        if "embedding" in name:
            methods = ["embedContent", "batchEmbedContents"]
        else:
            methods = ["generateContent", "streamGenerateContent"]
        entries.append({"name": "models/" + name, "displayName": name, "supportedGenerationMethods": methods})
    return orjson.dumps({"models": entries})


class _Call:
    __slots__ = ("fragments", "id", "name", "signature")

    def __init__(self, call_id: str, name: str, signature: str | None) -> None:
        self.id = call_id
        self.name = name
        self.fragments: list[str] = []
        self.signature = signature

    def part(self) -> dict:
        return _call_part(ToolCall(self.id, self.name, "".join(self.fragments), self.signature))


class StreamEncoder:
    """Canonical stream events -> streamGenerateContent output.

    sse=True (`?alt=sse`, what google-genai uses): `data: <json>\\r\\n\\r\\n` per
    chunk, no terminator. sse=False: the incremental JSON array Gemini writes
    without alt=sse (`[` elem `\\n,\\r\\n` elem ... `\\n]`).

    Text and thought deltas go out with each event batch. Tool calls are
    buffered until their choice finishes (Gemini sends a functionCall whole);
    content arriving with or after a choice's Finish is held for the final
    chunk, which close() writes with finishReason and the final usage.
    """

    def __init__(self, request: ChatRequest, sse: bool = True) -> None:
        self._sse = sse
        self._id = ""
        self._model = request.model
        self._usage: Usage | None = None
        self._calls: dict[int, dict[int, _Call]] = {}
        self._finish: dict[int, str] = {}
        self._held: dict[int, list[dict]] = {}
        # the last item per choice, for a signature-only ThinkingDelta to attach to
        self._last: dict[int, _Call | dict | None] = {}
        self._written = 0
        self._failed = False
        self._closed = False

    # -- framing

    def _frame(self, obj: dict) -> bytes:
        data = orjson.dumps(obj)
        self._written += 1
        if self._sse:
            return b"data: " + data + b"\r\n\r\n"
        return (b"[" if self._written == 1 else b"\n,\r\n") + data

    def _chunk(self, candidates: list[dict], final: bool) -> dict:
        out: dict[str, Any] = {"candidates": candidates}
        if self._usage is not None:
            out["usageMetadata"] = _usage_json(self._usage, final)
        out["modelVersion"] = self._model
        out["responseId"] = self._response_id()
        return out

    def _response_id(self) -> str:
        if not self._id:
            self._id = random_text(22)
        return self._id

    # -- events

    def _add(self, batch: dict[int, list[dict]], index: int, part: dict) -> None:
        target = self._held.setdefault(index, []) if index in self._finish else batch.setdefault(index, [])
        last = target[-1] if target else None
        # merge consecutive deltas of one kind into one part
        if (
            last is not None
            and "text" in part
            and "text" in last
            and last.get("thought") == part.get("thought")
            and "thoughtSignature" not in last
        ):
            last["text"] += part["text"]
        else:
            target.append(part)
            last = part
        self._last[index] = last

    def _signature(self, batch: dict[int, list[dict]], index: int, signature: str) -> None:
        if not _signature_ok(signature):
            return
        last = self._last.get(index)
        if isinstance(last, _Call):
            if last.signature is None:
                last.signature = signature
                return
        elif last is not None and "thoughtSignature" not in last:
            last["thoughtSignature"] = signature
            return
        self._add(batch, index, _thought_part("", signature))

    def _flush_calls(self, index: int) -> list[dict]:
        calls = self._calls.pop(index, None)
        if not calls:
            return []
        if isinstance(self._last.get(index), _Call):
            self._last[index] = None
        return [calls[k].part() for k in sorted(calls)]

    def encode(self, events: list[StreamEvent]) -> bytes:
        if self._failed or self._closed:
            return b""
        batch: dict[int, list[dict]] = {}
        out: list[bytes] = []
        for ev in events:
            if isinstance(ev, TextDelta):
                if ev.text:
                    self._add(batch, ev.index, {"text": ev.text})
            elif isinstance(ev, ThinkingDelta):
                if ev.text:
                    self._add(batch, ev.index, _thought_part(ev.text, None))
                if ev.signature:
                    self._signature(batch, ev.index, ev.signature)
            elif isinstance(ev, ToolCallStart):
                call = _Call(ev.id or _call_id(), ev.name, getattr(ev, "signature", None))
                self._calls.setdefault(ev.index, {})[ev.call_index] = call
                self._last[ev.index] = call
            elif isinstance(ev, ToolCallDelta):
                calls = self._calls.setdefault(ev.index, {})
                call = calls.get(ev.call_index)
                if call is None:  # a delta without its start: keep the arguments anyway
                    call = calls[ev.call_index] = _Call(_call_id(), "", None)
                call.fragments.append(ev.arguments)
            elif isinstance(ev, Finish):
                held = self._held.setdefault(ev.index, [])
                held.extend(batch.pop(ev.index, ()))
                held.extend(self._flush_calls(ev.index))
                self._finish[ev.index] = _FINISH_OUT.get(ev.reason, "OTHER")
                self._last[ev.index] = held[-1] if held else None
            elif isinstance(ev, UsageUpdate):
                self._usage = ev.usage
            elif isinstance(ev, StreamStart):
                self._id = ev.id or self._id
                self._model = ev.model or self._model
                if ev.input_tokens is not None and self._usage is None:
                    self._usage = Usage(input_tokens=ev.input_tokens)
            elif isinstance(ev, StreamFailure):
                for index, parts in self._held.items():
                    batch.setdefault(index, [])[:0] = parts
                self._held.clear()
                if batch:
                    out.append(self._frame(self._chunk(self._candidates(batch), False)))
                error = ev.error
                if not isinstance(error, GatewayError):
                    error = GatewayError("provider_error", str(error))
                out.append(self._frame(orjson.loads(render_gemini_error(error))))
                self._failed = True
                return b"".join(out)
        if batch:
            out.append(self._frame(self._chunk(self._candidates(batch), False)))
            # what was just written can no longer take a signature
            for index in batch:
                if not isinstance(self._last.get(index), _Call):
                    self._last[index] = None
        return b"".join(out)

    def _candidates(self, parts_by_choice: dict[int, list[dict]], final: bool = False) -> list[dict]:
        candidates = []
        for index in sorted(parts_by_choice):
            parts = parts_by_choice[index]
            if final and not parts:
                parts = [{"text": ""}]  # like Gemini: chunk.text stays a string
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if final and index in self._finish:
                candidate["finishReason"] = self._finish[index]
            candidate["index"] = index
            candidates.append(candidate)
        return candidates

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        if self._failed:
            return b"" if self._sse else b"\n]"
        final: dict[int, list[dict]] = {}
        for index in set(self._held) | set(self._calls) | set(self._finish):
            final[index] = self._held.get(index, []) + self._flush_calls(index)
        if not final and not self._written:
            final[0] = []
        out = self._frame(self._chunk(self._candidates(final, final=True), True)) if final or self._usage else b""
        if not self._sse:
            out += b"\n]" if self._written else b"[]"
        return out


# ---- provider side: request


_EFFORT_BUDGET = {"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}

_MIME_BY_EXT = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "mp4": "video/mp4",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "txt": "text/plain",
}


def _guess_mime(url: str) -> str:
    path = url.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MIME_BY_EXT.get(ext, "image/jpeg")


def _image_json(part: ImagePart) -> dict:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type or "image/jpeg", "data": part.data}}
    url = part.url or ""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";", 1)[0] or part.media_type or "image/jpeg"
        return {"inlineData": {"mimeType": mime, "data": data}}
    return {"fileData": {"mimeType": part.media_type or _guess_mime(url), "fileUri": url}}


def _unsupported(feature: str, options: RenderOptions, dropped: list[str]) -> None:
    if options.unsupported == "reject":
        raise GatewayError("invalid_request", f"{feature} is not supported by this provider", param=feature)
    if feature not in dropped:
        dropped.append(feature)


def _tool_response_json(msg: Message) -> dict | orjson.Fragment:
    text = "".join(p.text for p in msg.content if isinstance(p, TextPart))
    obj = _object_fragment(text)
    if msg.is_error:
        return {"error": text if obj is None else obj}
    return {"output": text} if obj is None else obj


def _model_parts(msg: Message) -> list[dict]:
    parts: list[dict] = []
    bare_signatures: list[str] = []  # signature-only thinking: belongs to a function call
    for part in msg.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ThinkingPart):
            if part.redacted:
                continue  # opaque Anthropic data, meaningless to Gemini
            if part.text:
                parts.append(_thought_part(part.text, part.signature))
            elif part.signature:
                bare_signatures.append(part.signature)
        elif isinstance(part, ImagePart):
            parts.append(_image_json(part))
    for call in msg.tool_calls:
        signature = call.signature
        if signature is None and bare_signatures:
            signature = bare_signatures.pop(0)
        parts.append(_call_part(ToolCall(call.id, call.name, call.arguments, signature)))
    parts.extend(_thought_part("", sig) for sig in bare_signatures)
    return parts


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """A generateContent body (the model and streaming go in the URL)."""
    dropped: list[str] = []
    system: list[dict] = []
    contents: list[dict] = []
    names: dict[str, str] = {}  # tool call id -> function name
    tool_turn: dict | None = None  # the user content collecting consecutive tool results
    for i, msg in enumerate(with_user_turn(req.messages)):
        if msg.role == "system":
            for part in msg.content:
                if isinstance(part, TextPart):
                    system.append({"text": part.text})
                elif isinstance(part, ImagePart):
                    _unsupported("system_image", options, dropped)
            continue
        if msg.role == "tool":
            name = msg.name or names.get(msg.tool_call_id or "")
            if not name:
                raise _bad("tool message does not answer a known tool call", f"messages[{i}].tool_call_id")
            if any(isinstance(p, ImagePart) for p in msg.content):
                _unsupported("tool_result_image", options, dropped)
            response: dict[str, Any] = {"name": name, "response": _tool_response_json(msg)}
            if msg.tool_call_id:
                response["id"] = msg.tool_call_id
            if tool_turn is None:
                tool_turn = {"role": "user", "parts": []}
                contents.append(tool_turn)
            tool_turn["parts"].append({"functionResponse": response})
            continue
        tool_turn = None
        if msg.role == "assistant":
            for call in msg.tool_calls:
                names[call.id] = call.name
            parts = _model_parts(msg)
            if parts:
                contents.append({"role": "model", "parts": parts})
        else:
            parts = []
            for part in msg.content:
                if isinstance(part, TextPart):
                    if part.text:
                        parts.append({"text": part.text})
                elif isinstance(part, ImagePart):
                    parts.append(_image_json(part))
            if parts:
                contents.append({"role": "user", "parts": parts})

    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if req.tools:
        decls = []
        for tool in req.tools:
            decl: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                decl["description"] = tool.description
            if tool.parameters is not None:
                decl["parametersJsonSchema"] = tool.parameters
            decls.append(decl)
        body["tools"] = [{"functionDeclarations": decls}]
    if req.tool_choice is not None:
        choice = req.tool_choice
        fcc: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE"}.get(choice.mode, "ANY")}
        if choice.mode == "function" and choice.name:
            fcc["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": fcc}
    if req.parallel_tool_calls is False:
        _unsupported("parallel_tool_calls", options, dropped)

    config: dict[str, Any] = {}
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.top_k is not None:
        config["topK"] = req.top_k
    if req.max_tokens is not None:
        config["maxOutputTokens"] = req.max_tokens
    if req.stop:
        config["stopSequences"] = req.stop
    if req.n is not None:
        config["candidateCount"] = req.n
    if req.seed is not None:
        config["seed"] = req.seed
    if req.presence_penalty is not None:
        config["presencePenalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        config["frequencyPenalty"] = req.frequency_penalty
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = fmt.schema
    budget = req.thinking_budget
    if budget is None and req.reasoning_effort is not None:
        budget = _EFFORT_BUDGET.get(req.reasoning_effort)
        if budget is None:
            _unsupported("reasoning_effort", options, dropped)
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget}
    if config:
        body["generationConfig"] = config
    try:
        return RenderedRequest(orjson.dumps(body), dropped)
    except orjson.JSONEncodeError:  # a schema deeper than orjson writes (254 levels)
        raise _bad("the request is nested too deeply", "tools") from None


# ---- provider side: responses


_FILTERED = frozenset(
    (
        "SAFETY",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    )
)


def _finish_in(reason: str, has_calls: bool) -> str:
    if reason == "STOP" or reason == "FINISH_REASON_UNSPECIFIED":
        return "tool_calls" if has_calls else "stop"
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "error"  # OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...


def _parse_usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = count(meta, "thoughtsTokenCount")
    return Usage(
        input_tokens=count(meta, "promptTokenCount") + count(meta, "toolUsePromptTokenCount"),
        output_tokens=count(meta, "candidatesTokenCount") + thoughts,
        cached_tokens=count(meta, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _parts_of(candidate: dict) -> list:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _call_from(call: dict, signature: Any) -> ToolCall:
    call_id = call.get("id")
    name = call.get("name")
    args = call.get("args")
    return ToolCall(
        call_id if isinstance(call_id, str) and call_id else _call_id(),
        name if isinstance(name, str) else "",
        _json_text(args if args is not None else {}),
        signature if isinstance(signature, str) else None,
    )


_KIND_BY_STATUS = {
    "INVALID_ARGUMENT": "invalid_request",
    "FAILED_PRECONDITION": "invalid_request",
    "OUT_OF_RANGE": "invalid_request",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "rate_limit",
    "UNAVAILABLE": "unavailable",
    "DEADLINE_EXCEEDED": "timeout",
    "UNAUTHENTICATED": "provider_auth",
    "PERMISSION_DENIED": "provider_auth",
}
_AUTH_REASONS = frozenset(
    ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED")
)


def _error_from(http_status: int, err: Any, fallback: str) -> GatewayError:
    """A Gemini `error` object (or nothing usable) -> GatewayError."""
    err = err if isinstance(err, dict) else {}
    message = err.get("message")
    message = message if isinstance(message, str) and message else fallback
    status = err.get("status")
    status = status if isinstance(status, str) else ""
    code = err.get("code")
    if not http_status or http_status < 400:  # an in-band error: its code is the HTTP status
        http_status = code if isinstance(code, int) and not isinstance(code, bool) else 0
    reason = None
    details = err.get("details")
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
                reason = detail["reason"]
                break
    if reason in _AUTH_REASONS or status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        kind = "provider_auth"
    elif http_status == 499 or status == "CANCELLED":
        kind = "provider_error"
    elif http_status >= 400:
        kind = kind_for_status(http_status)
    else:
        kind = _KIND_BY_STATUS.get(status, "provider_error")
    if kind == "provider_auth":
        return GatewayError(kind, f"the provider rejected the gateway's credentials: {message}")
    keep = http_status in (400, 404, 413, 429) or 500 <= http_status < 600
    return GatewayError(kind, message, code=reason, status=http_status if keep else 0)


def parse_error(status: int, body: bytes) -> GatewayError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:  # streamGenerateContent without alt=sse: [{"error":...}]
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    text = bytes(body[:200]).decode("utf-8", "replace").strip() if body else ""
    return _error_from(status, err, text or f"provider returned HTTP {status}")


def _parse_candidate(position: int, candidate: dict) -> Choice:
    index = candidate.get("index")
    choice = Choice(index=index if isinstance(index, int) and not isinstance(index, bool) else position)
    texts: list[str] = []
    for part in _parts_of(candidate):
        if not isinstance(part, dict):
            continue
        sig = part.get("thoughtSignature")
        call = part.get("functionCall")
        if isinstance(call, dict):
            choice.tool_calls.append(_call_from(call, sig))
            continue
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is True:
                choice.thinking.append(ThinkingPart(text, sig if isinstance(sig, str) else None))
            else:
                texts.append(text)
    choice.text = "".join(texts)
    reason = candidate.get("finishReason")
    if isinstance(reason, str):
        choice.finish_reason = _finish_in(reason, bool(choice.tool_calls))
    return choice


def parse_response(body: bytes) -> ChatResponse:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise provider_error("the provider returned invalid JSON") from None
    if not isinstance(data, dict):
        raise provider_error("the provider returned an unexpected response")
    if "error" in data:
        raise _error_from(0, data["error"], "the provider returned an error")
    candidates = data.get("candidates")
    choices = []
    if isinstance(candidates, list):
        choices = [_parse_candidate(i, c) for i, c in enumerate(candidates) if isinstance(c, dict)]
    if not choices:
        feedback = data.get("promptFeedback")
        blocked = isinstance(feedback, dict) and feedback.get("blockReason") is not None
        choices = [Choice(finish_reason="content_filter" if blocked else "stop")]
    rid = data.get("responseId")
    model = data.get("modelVersion")
    return ChatResponse(
        id=rid if isinstance(rid, str) and rid else "chatcmpl-" + random_text(24),
        model=model if isinstance(model, str) else "",
        created=int(time.time()),
        choices=choices,
        usage=_parse_usage(data.get("usageMetadata")),
    )


class _ArraySplitter:
    """Splits the JSON array a non-SSE streamGenerateContent writes into its elements."""

    _SPECIAL = re.compile(rb'["\\\[\]{}]')

    def __init__(self) -> None:
        self._depth = 0  # 1 inside the outer array, >= 2 inside an element
        self._in_string = False
        self._escape = False
        self._element = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos = 0
        size = len(chunk)
        while pos < size:
            if self._escape:
                self._escape = False
                if self._depth >= 2:
                    self._element += chunk[pos : pos + 1]
                pos += 1
                continue
            match = self._SPECIAL.search(chunk, pos)
            end = match.start() if match else size
            if self._depth >= 2:
                self._element += chunk[pos:end]
            if match is None:
                break
            char = chunk[end]
            pos = end + 1
            if self._in_string:
                self._element += chunk[end:pos]
                if char == 0x5C:  # backslash
                    self._escape = True
                elif char == 0x22:
                    self._in_string = False
                continue
            if char in (0x7B, 0x5B):  # { [
                self._depth += 1
                if self._depth >= 2:
                    self._element += chunk[end:pos]
            elif char in (0x7D, 0x5D):  # } ]
                if self._depth >= 2:
                    self._element += chunk[end:pos]
                self._depth = max(self._depth - 1, 0)
                if self._depth == 1 and self._element:
                    out.append(bytes(self._element))
                    self._element.clear()
            elif char == 0x22 and self._depth >= 2:
                self._element += chunk[end:pos]
                self._in_string = True
        return out

    @property
    def pending(self) -> bool:
        return bool(self._element)


_RAW_LIMIT = 1 << 20


class StreamDecoder:
    """streamGenerateContent output -> canonical events. Handles `alt=sse` (CRLF
    framing, no terminator, bare JSON error lines mid-stream) and, detected from
    the first byte, the JSON-array stream written without alt=sse.

    Gemini puts finishReason on the last chunk and reports cumulative usage on
    every chunk, so Finish and one final UsageUpdate are emitted at close()."""

    def __init__(self, model: str = "") -> None:
        self._model = model
        self._mode = ""  # "sse" | "array", decided by the first non-blank byte
        self._sse = SSEParser()
        self._array = _ArraySplitter()
        self._raw: list[str] = []
        self._raw_size = 0
        self._started = False
        self._failed = False
        self._closed = False
        self._usage: Usage | None = None
        self._finish: dict[int, str] = {}
        self._calls: dict[int, int] = {}

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._failed or self._closed or not chunk:
            return events
        if not self._mode:
            chunk = bytes(chunk).lstrip()
            if not chunk:
                return events
            self._mode = "array" if chunk[:1] == b"[" else "sse"
        if self._mode == "array":
            for element in self._array.feed(bytes(chunk)):
                self._handle_json(element, events)
                if self._failed:
                    break
        else:
            for event in self._sse.feed(bytes(chunk)):
                self._handle_sse(event, events)
                if self._failed:
                    break
        return events

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._closed:
            return events
        if not self._failed:
            if self._mode == "sse":
                for event in self._sse.close():
                    self._handle_sse(event, events)
                    if self._failed:
                        break
            elif self._mode == "array" and self._array.pending:
                self._fail(provider_error("the provider stream ended mid-element"), events)
            if self._raw and not self._failed:
                self._fail(provider_error("the provider stream contained malformed data"), events)
        self._closed = True
        if self._failed or not self._started:
            return events
        for index in sorted(self._finish):
            reason = self._finish[index]
            if reason == "__blocked__":
                events.append(Finish("content_filter", index))
            else:
                events.append(Finish(_finish_in(reason, self._calls.get(index, 0) > 0), index))
        if self._usage is not None:
            events.append(UsageUpdate(self._usage))
        return events

    def _fail(self, error: GatewayError, events: list[StreamEvent]) -> None:
        events.append(StreamFailure(error))
        self._failed = True

    def _handle_sse(self, event: Any, events: list[StreamEvent]) -> None:
        if event.data:
            self._handle_json(event.data, events)
        if event.raw and not self._failed:
            # a bare JSON object written without `data:` (Gemini's mid-stream error)
            self._raw.extend(event.raw)
            self._raw_size += sum(len(line) for line in event.raw)
            try:
                obj = orjson.loads("\n".join(self._raw))
            except orjson.JSONDecodeError:
                if self._raw_size > _RAW_LIMIT:
                    self._fail(provider_error("the provider stream contained malformed data"), events)
                obj = None
            if obj is not None:
                self._raw.clear()
                self._raw_size = 0
                self._handle(obj, events)

    def _handle_json(self, data: bytes | str, events: list[StreamEvent]) -> None:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._fail(provider_error("the provider stream contained invalid JSON"), events)
            return
        self._handle(obj, events)

    def _handle(self, obj: Any, events: list[StreamEvent]) -> None:
        try:
            self._chunk(obj, events)
        except GatewayError as exc:  # function call args nested too deeply
            self._fail(exc, events)

    def _chunk(self, obj: Any, events: list[StreamEvent]) -> None:
        if not isinstance(obj, dict):
            return
        if "error" in obj:
            self._fail(_error_from(0, obj["error"], "the provider failed mid-stream"), events)
            return
        usage = _parse_usage(obj.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        if not self._started:
            self._started = True
            rid = obj.get("responseId")
            model = obj.get("modelVersion")
            events.append(
                StreamStart(
                    id=rid if isinstance(rid, str) and rid else "chatcmpl-" + random_text(24),
                    model=model if isinstance(model, str) and model else self._model,
                    created=int(time.time()),
                    input_tokens=usage.input_tokens if usage is not None else None,
                )
            )
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason") is not None:
                self._finish[0] = "__blocked__"
            return
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                continue
            index = candidate.get("index")
            if not isinstance(index, int) or isinstance(index, bool):
                index = position
            for part in _parts_of(candidate):
                if isinstance(part, dict):
                    self._part(part, index, events)
            reason = candidate.get("finishReason")
            if isinstance(reason, str):
                self._finish[index] = reason

    def _part(self, part: dict, index: int, events: list[StreamEvent]) -> None:
        sig = part.get("thoughtSignature")
        sig = sig if isinstance(sig, str) and sig else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            n = self._calls.get(index, 0)
            self._calls[index] = n + 1
            tc = _call_from(call, None)
            events.append(ToolCallStart(n, tc.id, tc.name, index))
            events.append(ToolCallDelta(n, tc.arguments, index))
            if sig:  # ToolCallStart has no signature field: see the module doc
                events.append(ThinkingDelta("", sig, index))
            return
        text = part.get("text")
        if not isinstance(text, str):
            return
        if part.get("thought") is True:
            if text or sig:
                events.append(ThinkingDelta(text, sig, index))
        elif text:
            events.append(TextDelta(text, index))


# ---- embeddings


def _embed_text(content: Any, param: str) -> str:
    content = _dict(content, param)
    parts = _list(content.get("parts"), param + ".parts")
    texts = []
    for j, part in enumerate(parts):
        p = f"{param}.parts[{j}]"
        text = _dict(part, p).get("text")
        if text is None:
            raise _bad("only text parts can be embedded", p)
        texts.append(_str(text, p + ".text"))
    if not texts:
        raise _bad("'parts' must not be empty", param + ".parts")
    return "\n".join(texts)


def _embed_options(req: dict, param: str) -> tuple[str | None, int | None]:
    task = _get(req, "taskType", "task_type")
    dims = _get(req, "outputDimensionality", "output_dimensionality")
    return (
        None if task is None else _str(task, param + "taskType"),
        None if dims is None else _int(dims, param + "outputDimensionality"),
    )


def parse_embedding_request(body: bytes, path_model: str | None, *, batch: bool = False) -> EmbeddingRequest:
    """`:embedContent` (batch=False) or `:batchEmbedContents` (batch=True).
    `title` is accepted and ignored. A batch must use one taskType and one
    outputDimensionality for all its requests (the canonical request has one)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON: {exc}", "body") from None
    data = _dict(data, "body")
    model = path_model or data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("the model name is missing from the URL", "model")
    if model.startswith("models/"):
        model = model[7:]
    if not batch:
        if data.get("content") is None:
            raise _bad("'content' is required", "content")
        task, dims = _embed_options(data, "")
        return EmbeddingRequest(model, [_embed_text(data["content"], "content")], dims, task_type=task)
    requests = data.get("requests")
    if requests is None:
        raise _bad("'requests' is required", "requests")
    requests = _list(requests, "requests")
    if not requests:
        raise _bad("'requests' must not be empty", "requests")
    inputs = []
    options = None
    for i, item in enumerate(requests):
        param = f"requests[{i}]"
        item = _dict(item, param)
        if item.get("content") is None:
            raise _bad("'content' is required", param + ".content")
        inputs.append(_embed_text(item["content"], param + ".content"))
        these = _embed_options(item, param + ".")
        if options is None:
            options = these
        elif these != options:
            raise _bad(
                "all requests of a batch must use the same taskType and outputDimensionality",
                param,
            )
    task, dims = options or (None, None)
    return EmbeddingRequest(model, inputs, dims, task_type=task)


def render_embedding_response(resp: EmbeddingResponse, *, batch: bool = False) -> bytes:
    if batch:
        return orjson.dumps({"embeddings": [{"values": v} for v in resp.vectors]})
    return orjson.dumps({"embedding": {"values": resp.vectors[0] if resp.vectors else []}})


def render_embedding_request(req: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
    """Always the `:batchEmbedContents` shape, whatever the number of inputs."""
    model = options.model if options.model.startswith("models/") else "models/" + options.model
    requests = []
    for text in req.inputs:
        item: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
        if req.task_type is not None:
            item["taskType"] = req.task_type
        if req.dimensions is not None:
            item["outputDimensionality"] = req.dimensions
        requests.append(item)
    return RenderedRequest(orjson.dumps({"requests": requests}))


def _values(item: Any) -> list[float]:
    values = item.get("values") if isinstance(item, dict) else None
    if not isinstance(values, list):
        raise provider_error("the provider returned an embedding without values")
    return values


def parse_embedding_response(body: bytes, model: str = "") -> EmbeddingResponse:
    """Either shape: `{"embedding": {...}}` or `{"embeddings": [...]}`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise provider_error("the provider returned invalid JSON") from None
    if not isinstance(data, dict):
        raise provider_error("the provider returned an unexpected response")
    if "error" in data:
        raise _error_from(0, data["error"], "the provider returned an error")
    if "embeddings" in data:
        items = data["embeddings"]
        if not isinstance(items, list):
            raise provider_error("the provider returned malformed embeddings")
        vectors = [_values(item) for item in items]
    elif "embedding" in data:
        vectors = [_values(data["embedding"])]
    else:
        raise provider_error("the provider returned no embeddings")
    return EmbeddingResponse(model=model, vectors=vectors)
