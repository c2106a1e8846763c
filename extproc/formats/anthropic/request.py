"""Client side: an Anthropic Messages request (what the `anthropic` SDK sends) -> ChatRequest."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.base import invalid, is_int, is_num
from extproc.formats.canonical import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolChoice,
)
from extproc.formats.limits import MAX_MESSAGES, ORJSON_WRITE_DEPTH, check_count, loads, too_deep
from extproc.formats.model_name import check_model

_TOOL_CHOICE_IN = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}
_EFFORT_IN = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def _req_str(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise invalid(f"{path}.{key}: a string is required", f"{path}.{key}")
    return value


def _opt_str(obj: dict[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{path}.{key} must be a string", f"{path}.{key}")
    return value


def _block_type(block: Any, path: str) -> str:
    if not isinstance(block, dict):
        raise invalid(f"{path} must be a content block object", path)
    btype = block.get("type")
    if not isinstance(btype, str):
        raise invalid(f"{path}.type: a string is required", f"{path}.type")
    return btype


def _unsupported_block(btype: str, path: str) -> GatewayError:
    return invalid(f"content block type {btype!r} is not supported by this gateway", f"{path}.type")


def _parse_image(block: dict[str, Any], path: str) -> ImagePart:
    source = block.get("source")
    spath = f"{path}.source"
    if not isinstance(source, dict):
        raise invalid(f"{spath}: an object is required", spath)
    stype = source.get("type")
    if stype == "base64":
        return ImagePart(media_type=_req_str(source, "media_type", spath), data=_req_str(source, "data", spath))
    if stype == "url":
        return ImagePart(url=_req_str(source, "url", spath))
    raise invalid(f"image source type {stype!r} is not supported by this gateway", f"{spath}.type")


def _parse_text_or_image(block: Any, path: str, btype: str) -> Part:
    if btype == "text":
        return TextPart(_req_str(block, "text", path))
    if btype == "image":
        return _parse_image(block, path)
    raise _unsupported_block(btype, path)


def _parse_tool_result(block: dict[str, Any], path: str, tool_names: dict[str, str]) -> Message:
    call_id = _req_str(block, "tool_use_id", path)
    content = block.get("content")
    parts: list[Part] = []
    if isinstance(content, str):
        parts.append(TextPart(content))
    elif isinstance(content, list):
        for j, inner in enumerate(content):
            ipath = f"{path}.content[{j}]"
            parts.append(_parse_text_or_image(inner, ipath, _block_type(inner, ipath)))
    elif content is not None:
        raise invalid(f"{path}.content must be a string or an array", f"{path}.content")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise invalid(f"{path}.is_error must be a boolean", f"{path}.is_error")
    return Message("tool", parts, tool_call_id=call_id, name=tool_names.get(call_id), is_error=bool(is_error))


def _parse_assistant(content: list[Any], path: str, tool_names: dict[str, str]) -> Message:
    msg = Message("assistant")
    for j, block in enumerate(content):
        bpath = f"{path}.content[{j}]"
        btype = _block_type(block, bpath)
        if btype == "text":
            msg.content.append(TextPart(_req_str(block, "text", bpath)))
        elif btype == "tool_use":
            call_id = _req_str(block, "id", bpath)
            name = _req_str(block, "name", bpath)
            args = block.get("input", {})
            if not isinstance(args, dict):
                raise invalid(f"{bpath}.input must be an object", f"{bpath}.input")
            tool_names[call_id] = name
            try:
                arguments = orjson.dumps(args).decode()
            except orjson.JSONEncodeError:  # deeper than orjson writes
                raise too_deep(f"{bpath}.input", ORJSON_WRITE_DEPTH) from None
            msg.tool_calls.append(ToolCall(call_id, name, arguments))
        elif btype == "thinking":
            text = _req_str(block, "thinking", bpath)
            msg.content.append(ThinkingPart(text, _opt_str(block, "signature", bpath) or None))
        elif btype == "redacted_thinking":
            # the opaque `data` travels as the signature: both only mean something to Anthropic
            msg.content.append(ThinkingPart("", _req_str(block, "data", bpath), redacted=True))
        elif btype == "image":
            msg.content.append(_parse_image(block, bpath))
        elif btype == "tool_result":
            raise invalid("tool_result blocks belong in user messages", f"{bpath}.type")
        else:
            raise _unsupported_block(btype, bpath)
    return msg


def _parse_user(content: list[Any], path: str, tool_names: dict[str, str], out: list[Message]) -> None:
    """Each tool_result becomes a canonical tool message; the other blocks around
    them become user messages, in their original order."""
    pending: Message | None = None
    if not content:
        out.append(Message("user"))
    for j, block in enumerate(content):
        bpath = f"{path}.content[{j}]"
        btype = _block_type(block, bpath)
        if btype == "tool_result":
            pending = None
            out.append(_parse_tool_result(block, bpath, tool_names))
            continue
        if btype in ("tool_use", "thinking", "redacted_thinking"):
            raise invalid(f"{btype} blocks belong in assistant messages", f"{bpath}.type")
        part = _parse_text_or_image(block, bpath, btype)
        if pending is None:
            pending = Message("user")
            out.append(pending)
        pending.content.append(part)


def _parse_system(system: Any) -> list[Part]:
    if isinstance(system, str):
        return [TextPart(system)] if system else []
    if not isinstance(system, list):
        raise invalid("system must be a string or an array of text blocks", "system")
    parts: list[Part] = []
    for i, block in enumerate(system):
        path = f"system[{i}]"
        if _block_type(block, path) != "text":
            raise invalid("system blocks must be of type 'text'", f"{path}.type")
        parts.append(TextPart(_req_str(block, "text", path)))
    return parts


def _parse_tools(tools: Any) -> list[Tool]:
    if not isinstance(tools, list):
        raise invalid("tools must be an array", "tools")
    out: list[Tool] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid(f"{path} must be an object", path)
        ttype = tool.get("type")
        if ttype is not None and ttype != "custom":
            # server tools (web search, bash, ...) run inside Anthropic: nothing to translate to
            raise invalid(f"tool type {ttype!r} is not supported by this gateway", f"{path}.type")
        name = _req_str(tool, "name", path)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise invalid(f"{path}.input_schema: an object is required", f"{path}.input_schema")
        strict = tool.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise invalid(f"{path}.strict must be a boolean", f"{path}.strict")
        out.append(Tool(name, _opt_str(tool, "description", path), schema, strict))
    return out


def _parse_tool_choice(choice: Any, req: ChatRequest) -> None:
    if not isinstance(choice, dict):
        raise invalid("tool_choice must be an object", "tool_choice")
    ctype = choice.get("type")
    mode = _TOOL_CHOICE_IN.get(ctype) if isinstance(ctype, str) else None
    if mode is None:
        raise invalid("tool_choice.type must be auto, any, tool or none", "tool_choice.type")
    name = _req_str(choice, "name", "tool_choice") if mode == "function" else None
    req.tool_choice = ToolChoice(mode, name)  # type: ignore[arg-type]
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise invalid(
            "tool_choice.disable_parallel_tool_use must be a boolean",
            "tool_choice.disable_parallel_tool_use",
        )
    if disable:
        req.parallel_tool_calls = False


def _parse_thinking(thinking: Any, req: ChatRequest, effort: str | None) -> None:
    if not isinstance(thinking, dict):
        raise invalid("thinking must be an object", "thinking")
    ttype = thinking.get("type")
    if ttype == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_int(budget):
            raise invalid("thinking.budget_tokens: an integer is required", "thinking.budget_tokens")
        req.thinking_budget = budget
    elif ttype == "adaptive":
        req.reasoning_effort = effort or "high"
    elif ttype != "disabled":
        raise invalid("thinking.type must be enabled, adaptive or disabled", "thinking.type")


def _parse_output_config(config: Any, req: ChatRequest) -> str | None:
    """Sets the response format; returns the effort (only meaningful with adaptive thinking)."""
    if not isinstance(config, dict):
        raise invalid("output_config must be an object", "output_config")
    fmt = config.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise invalid("output_config.format.type must be json_schema", "output_config.format")
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise invalid("output_config.format.schema: an object is required", "output_config.format.schema")
        req.response_format = ResponseFormat("json_schema", schema=schema)
    effort = config.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in _EFFORT_IN:
        raise invalid("output_config.effort must be low, medium, high, xhigh or max", "output_config.effort")
    return _EFFORT_IN[effort]


def parse_request(body: bytes, path_model: str | None = None) -> ChatRequest:
    data = loads(body, None)
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object", None)
    model = data.get("model", path_model)
    if not isinstance(model, str) or not model:
        raise invalid("model: a non-empty string is required", "model")
    check_model(model)
    max_tokens = data.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: field required", "max_tokens")
    if not is_int(max_tokens) or max_tokens < 1:
        raise invalid("max_tokens must be a positive integer", "max_tokens")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list):
        raise invalid("messages: an array is required", "messages")
    check_count(raw_messages, MAX_MESSAGES, "messages")

    messages: list[Message] = []
    system = data.get("system")
    if system is not None:
        parts = _parse_system(system)
        if parts:
            messages.append(Message("system", parts))
    tool_names: dict[str, str] = {}  # tool_use id -> name, for the tool results that follow
    for i, raw in enumerate(raw_messages):
        path = f"messages[{i}]"
        if not isinstance(raw, dict):
            raise invalid(f"{path} must be an object", path)
        role = raw.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"{path}.role must be 'user' or 'assistant'", f"{path}.role")
        content = raw.get("content")
        if isinstance(content, str):
            messages.append(Message(role, [TextPart(content)] if content else []))
        elif not isinstance(content, list):
            raise invalid(f"{path}.content must be a string or an array of blocks", f"{path}.content")
        elif role == "assistant":
            messages.append(_parse_assistant(content, path, tool_names))
        else:
            _parse_user(content, path, tool_names, messages)

    req = ChatRequest(model=model, messages=messages, max_tokens=max_tokens)
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream must be a boolean", "stream")
    req.stream = bool(stream)
    req.include_usage = req.stream  # Anthropic streams always report usage
    for key in ("temperature", "top_p"):
        value = data.get(key)
        if value is not None and not is_num(value):
            raise invalid(f"{key} must be a number", key)
    req.temperature = data.get("temperature")
    req.top_p = data.get("top_p")
    top_k = data.get("top_k")
    if top_k is not None and not is_int(top_k):
        raise invalid("top_k must be an integer", "top_k")
    req.top_k = top_k
    stop = data.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise invalid("stop_sequences must be an array of strings", "stop_sequences")
        req.stop = stop
    metadata = data.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid("metadata must be an object", "metadata")
        req.user = _opt_str(metadata, "user_id", "metadata")
    effort = None
    if data.get("output_config") is not None:
        effort = _parse_output_config(data["output_config"], req)
    if data.get("thinking") is not None:
        _parse_thinking(data["thinking"], req, effort)
    if data.get("tools") is not None:
        req.tools = _parse_tools(data["tools"])
    if data.get("tool_choice") is not None:
        _parse_tool_choice(data["tool_choice"], req)
    return req
