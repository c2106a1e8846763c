"""Client side: a generateContent / streamGenerateContent body -> ChatRequest.

Strict only where the canonical model needs the request. A role, part kind, tool kind, setting or
top-level field it does not know (cachedContent, codeExecution, googleSearch, ...) is an
ApiFeature: it goes on untouched to a Gemini provider, and is dropped and named, or refused, per
the `unsupported` policy of any other.
"""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import (
    ApiFeature,
    ChatRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCall,
    note_unknown,
    note_unknown_fields,
)
from extproc.formats.client_errors import invalid
from extproc.formats.gemini.common import (
    either_spelling,
    json_object,
    json_text,
    new_call_id,
    one_spelling,
    request_and_model,
)
from extproc.formats.gemini.request_config import parse_generation_config, parse_tool_config, parse_tools
from extproc.formats.input_bounds import MAX_MESSAGES, check_count, check_schema_depth
from extproc.formats.json_fields import as_array, as_object, as_string
from extproc.formats.repeated_keys import ARRAY, NUMBER_OR_STRING, OBJECT, Field

_CONFIG = ("generationConfig", "generation_config")
_THINKING = ("thinkingConfig", "thinking_config")
# What the gateway decides on (token limits) and the conversation it estimates and keys the cache
# on: never repeated; the model and streaming come from the URL. Each name present costs a search
# of the raw body. `_get_one` refuses a checked field given in both spellings.
CHECKED_FIELDS = (
    Field(("contents",), ARRAY),
    *(Field((config,), OBJECT) for config in _CONFIG),
    *(Field((c, name), NUMBER_OR_STRING) for c in _CONFIG for name in ("maxOutputTokens", "max_output_tokens")),
    *(
        Field((c, t, name), NUMBER_OR_STRING)
        for c in _CONFIG
        for t in _THINKING
        for name in ("thinkingBudget", "thinking_budget")
    ),
)

_ROLES_USER = ("user", "function")  # "function" is the legacy role for functionResponse turns
# what the canonical request is read from (both spellings); any other top-level field is an ApiFeature
_READ_FIELDS = frozenset(
    {
        "model", "contents", "systemInstruction", "system_instruction", "tools", "toolConfig", "tool_config",
        "generationConfig", "generation_config",
    }
)  # fmt: skip
_PART_FIELDS = frozenset({"thought", "thoughtSignature", "thought_signature"})  # beside a part's data


def parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    """A generateContent / streamGenerateContent body. The model comes from the
    URL; the server sets `stream` for :streamGenerateContent."""
    try:
        return _parse_request(body, path_model)
    except RecursionError:
        raise invalid("request is nested too deeply", "contents") from None


def _parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    data, model = request_and_model(body, path_model, CHECKED_FIELDS)
    features: list[ApiFeature] = []
    messages: list[Message] = []
    system = either_spelling(data, "systemInstruction", "system_instruction")
    if system is not None:
        messages.append(_parse_system(system))
    contents = data.get("contents")
    if contents is None:
        raise invalid("'contents' is required", "contents")
    contents = as_array(contents, "contents")
    if not contents:
        raise invalid("'contents' must not be empty", "contents")
    check_count(contents, MAX_MESSAGES, "contents")
    messages.extend(_parse_contents(contents, features))

    req = ChatRequest(model=model, messages=messages, include_usage=True, api_features=features, source=data)

    schemas: list[tuple[str, Any]] = []  # (param, JSON schema) as the gateway carries them
    tools = data.get("tools")
    if tools is not None:
        req.tools = parse_tools(as_array(tools, "tools"), features, schemas)
    tool_config = either_spelling(data, "toolConfig", "tool_config")
    if tool_config is not None:
        req.tool_choice = parse_tool_config(as_object(tool_config, "toolConfig"), features)
    config = one_spelling(data, *_CONFIG, "generationConfig")
    if config is not None:
        parse_generation_config(as_object(config, "generationConfig"), req, features, schemas)
    check_schema_depth([schema for _, schema in schemas], lambda: [param for param, _ in schemas])
    note_unknown_fields(data, _READ_FIELDS, features)  # cachedContent, safetySettings, labels, ...
    return req


def _parse_system(system: Any) -> Message:
    if isinstance(system, str):  # lenient: a bare string
        return Message("system", [TextPart(system)])
    system = as_object(system, "systemInstruction")
    parts = as_array(system.get("parts") or [], "systemInstruction.parts")
    content: list[Part] = []
    for j, part in enumerate(parts):
        param = f"systemInstruction.parts[{j}]"
        text = as_object(part, param).get("text")
        if text is None:
            raise invalid("systemInstruction parts must be text", param)
        content.append(TextPart(as_string(text, param + ".text")))
    return Message("system", content)


def _parse_contents(contents: list, features: list[ApiFeature]) -> list[Message]:
    messages: list[Message] = []
    open_calls: dict[str, list[str]] = {}  # function name -> unanswered call ids, oldest first
    for i, content in enumerate(contents):
        param = f"contents[{i}]"
        content = as_object(content, param)
        role = content.get("role")
        role = "user" if role is None or role == "" else as_string(role, param + ".role")
        parts = content.get("parts")
        if parts is None:
            raise invalid("'parts' is required", param + ".parts")
        parts = as_array(parts, param + ".parts")
        if not parts:
            raise invalid("'parts' must not be empty", param + ".parts")
        if role == "model":
            messages.append(_parse_model_turn(parts, param, open_calls, features))
        elif role in _ROLES_USER:
            messages.extend(_parse_user_turn(parts, param, open_calls, features))
        else:
            note_unknown(features, "role.", role, param + ".role", content)
    return messages


def _signature(part: dict, param: str) -> str | None:
    sig = either_spelling(part, "thoughtSignature", "thought_signature")
    return None if sig is None else as_string(sig, param + ".thoughtSignature")


def _media_part(part: dict, param: str) -> ImagePart | None:
    inline = either_spelling(part, "inlineData", "inline_data")
    if inline is not None:
        p = param + ".inlineData"
        inline = as_object(inline, p)
        data = inline.get("data")
        mime = either_spelling(inline, "mimeType", "mime_type")
        if data is None or mime is None:
            raise invalid("inlineData needs 'mimeType' and 'data'", p)
        return ImagePart(media_type=as_string(mime, p + ".mimeType"), data=as_string(data, p + ".data"))
    file = either_spelling(part, "fileData", "file_data")
    if file is not None:
        p = param + ".fileData"
        file = as_object(file, p)
        uri = either_spelling(file, "fileUri", "file_uri")
        if uri is None:
            raise invalid("fileData needs 'fileUri'", p)
        mime = either_spelling(file, "mimeType", "mime_type")
        return ImagePart(
            media_type=None if mime is None else as_string(mime, p + ".mimeType"),
            url=as_string(uri, p + ".fileUri"),
        )
    return None


def _unknown_part(part: dict, param: str, features: list[ApiFeature]) -> None:
    """A part of a kind the canonical model does not carry (executableCode, codeExecutionResult,
    videoMetadata, ...), named by its data field; a part with nothing in it is the client's error."""
    kinds = sorted(k for k, v in part.items() if v is not None and k not in _PART_FIELDS)
    if not kinds:
        raise invalid("a part needs data (text, inlineData, fileData, functionCall, ...)", param)
    note_unknown(features, "parts.", kinds[0], param, part)


def _parse_model_turn(parts: list, param: str, open_calls: dict[str, list[str]], features: list[ApiFeature]) -> Message:
    msg = Message("assistant")
    for j, part in enumerate(parts):
        p = f"{param}.parts[{j}]"
        part = as_object(part, p)
        sig = _signature(part, p)
        call = either_spelling(part, "functionCall", "function_call")
        if call is not None:
            pc = p + ".functionCall"
            call = as_object(call, pc)
            name = as_string(call.get("name"), pc + ".name")
            args = call.get("args")
            if args is not None:
                args = as_object(args, pc + ".args")
            call_id = call.get("id")
            call_id = new_call_id() if call_id is None or call_id == "" else as_string(call_id, pc + ".id")
            msg.tool_calls.append(ToolCall(call_id, name, json_text(args or {}, pc + ".args"), sig))
            open_calls.setdefault(name, []).append(call_id)
            continue
        text = part.get("text")
        if text is not None:
            text = as_string(text, p + ".text")
            if part.get("thought") is True:
                msg.content.append(ThinkingPart(text, sig))
            else:
                msg.content.append(TextPart(text))
            continue
        media = _media_part(part, p)
        if media is not None:
            msg.content.append(media)
            continue
        if either_spelling(part, "functionResponse", "function_response") is not None:
            raise invalid("functionResponse parts belong in a user turn", p)
        if sig is not None and all(k in _PART_FIELDS for k, v in part.items() if v is not None):
            msg.content.append(ThinkingPart("", sig))  # a signature-only part
            continue
        _unknown_part(part, p, features)
    return msg


def _response_text(response: dict, param: str) -> tuple[str, bool]:
    """functionResponse.response -> (tool message text, is_error); see the package doc."""
    if len(response) == 1:
        key, value = next(iter(response.items()))
        if key in ("output", "error"):
            if isinstance(value, str) and json_object(value) is None:
                return value, key == "error"
            if key == "error" and isinstance(value, dict):
                return json_text(value, param), True
    return json_text(response, param), False


def _parse_user_turn(
    parts: list, param: str, open_calls: dict[str, list[str]], features: list[ApiFeature]
) -> list[Message]:
    # Tool results come first: OpenAI wants them right after the assistant turn.
    out: list[Message] = []
    user = Message("user")
    for j, part in enumerate(parts):
        p = f"{param}.parts[{j}]"
        part = as_object(part, p)
        resp = either_spelling(part, "functionResponse", "function_response")
        if resp is not None:
            pr = p + ".functionResponse"
            resp = as_object(resp, pr)
            name = as_string(resp.get("name"), pr + ".name")
            response = resp.get("response")
            response = {} if response is None else as_object(response, pr + ".response")
            given_id = resp.get("id")
            pending = open_calls.get(name, [])
            if given_id is None or given_id == "":
                call_id = pending.pop(0) if pending else new_call_id()
            else:
                call_id = as_string(given_id, pr + ".id")
                if call_id in pending:
                    pending.remove(call_id)
            text, is_error = _response_text(response, pr + ".response")
            out.append(Message("tool", [TextPart(text)], tool_call_id=call_id, name=name, is_error=is_error))
            continue
        plain = part.get("text")
        if plain is not None:
            user.content.append(TextPart(as_string(plain, p + ".text")))
            continue
        media = _media_part(part, p)
        if media is not None:
            user.content.append(media)
            continue
        if either_spelling(part, "functionCall", "function_call") is not None:
            raise invalid("functionCall parts belong in a model turn", p)
        _unknown_part(part, p, features)
    if user.content:
        out.append(user)
    return out
