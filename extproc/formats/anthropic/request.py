"""Client side: an Anthropic Messages request (what the `anthropic` SDK and Claude Code send) -> ChatRequest.

Strict only where the canonical model needs the request: the fields it reads must have their
types. What it does not know (a role, a block, tool or thinking type, a tool option, a top-level
field, a value added since) is never a 400 here: it is an ApiFeature, which goes on untouched to
an Anthropic provider and is dropped and named, or refused, per the `unsupported` policy of any
other (`providers.capabilities`).
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.formats.canonical import (
    ApiFeature,
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
    feature_name,
    unset,
)
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import (
    MAX_MESSAGES,
    ORJSON_WRITE_DEPTH,
    check_count,
    check_schema_depth,
    check_tokens,
    loads,
    too_deep,
)
from extproc.formats.json_fields import is_int, is_num
from extproc.formats.model_name import check_model
from extproc.formats.repeated_keys import ARRAY, BOOLEAN, NUMBER, STRING, Field, refuse_repeated

# What the gateway decides on (route, allow-list, streaming, token limits) and the conversation it
# estimates and keys the cache on: never repeated. Each name costs a search of the raw body.
# `thinking` itself is not searched for (every thinking block has a "thinking" key): its budget is.
CHECKED_FIELDS = (
    Field(("model",), STRING),
    Field(("stream",), BOOLEAN),
    Field(("max_tokens",), NUMBER),
    Field(("messages",), ARRAY),
    Field(("thinking", "budget_tokens"), NUMBER),
)
_TOOL_CHOICE_IN = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}
_EFFORT_IN = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
# thinking.display -> canonical reasoning_summary: "summarized" asks to see the thinking
_DISPLAY_IN: dict[str, str | None] = {"summarized": "auto", "omitted": None}
# what the canonical request is read from; any other top-level field is an ApiFeature
_READ_FIELDS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "stream", "temperature", "top_p", "top_k",
        "stop_sequences", "metadata", "output_config", "thinking", "tools", "tool_choice",
    }
)  # fmt: skip
_TOOL_FIELDS = frozenset({"type", "name", "description", "input_schema", "strict", "cache_control"})


class _Context:
    """What one parse gathers besides the messages: tool names by call id (tool results name their
    function) and the features the canonical model cannot carry."""

    __slots__ = ("cache_hint", "features", "schemas", "tool_names")

    def __init__(self) -> None:
        self.tool_names: dict[str, str] = {}  # tool_use id -> name, for the tool results that follow
        self.features: list[ApiFeature] = []
        self.cache_hint = False  # a cache_control was seen (named once)
        self.schemas: list[tuple[str, Any]] = []  # (param, tool or response schema), bounded once read

    def unknown(self, prefix: str, word: object, param: str, value: Any) -> None:
        self.features.append(ApiFeature(feature_name(prefix, word), param, value=value))

    def cache_control(self, obj: dict[str, Any], path: str) -> None:
        """Prompt caching breakpoints: Anthropic's own; meaningless to another provider."""
        if not self.cache_hint and obj.get("cache_control") is not None:
            self.cache_hint = True
            self.features.append(ApiFeature("cache_control", f"{path}.cache_control", value=obj["cache_control"]))


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


def _parse_image(block: dict[str, Any], path: str, ctx: _Context) -> ImagePart | None:
    source = block.get("source")
    spath = f"{path}.source"
    if not isinstance(source, dict):
        raise invalid(f"{spath}: an object is required", spath)
    stype = source.get("type")
    if stype == "base64":
        return ImagePart(media_type=_req_str(source, "media_type", spath), data=_req_str(source, "data", spath))
    if stype == "url":
        return ImagePart(url=_req_str(source, "url", spath))
    ctx.unknown("image.source.", stype, f"{spath}.type", block)  # a Files API file_id, ...
    return None


def _parse_text_or_image(block: dict[str, Any], path: str, btype: str, ctx: _Context) -> Part | None:
    """None: a block the canonical model cannot carry (recorded)."""
    ctx.cache_control(block, path)
    if btype == "text":
        return TextPart(_req_str(block, "text", path))
    if btype == "image":
        return _parse_image(block, path, ctx)
    ctx.unknown("content.", btype, f"{path}.type", block)  # document, search_result, ...
    return None


def _parse_tool_result(block: dict[str, Any], path: str, ctx: _Context) -> Message:
    call_id = _req_str(block, "tool_use_id", path)
    ctx.cache_control(block, path)
    content = block.get("content")
    parts: list[Part] = []
    if isinstance(content, str):
        parts.append(TextPart(content))
    elif isinstance(content, list):
        for j, inner in enumerate(content):
            ipath = f"{path}.content[{j}]"
            part = _parse_text_or_image(inner, ipath, _block_type(inner, ipath), ctx)
            if part is not None:
                parts.append(part)
    elif content is not None:
        raise invalid(f"{path}.content must be a string or an array", f"{path}.content")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise invalid(f"{path}.is_error must be a boolean", f"{path}.is_error")
    return Message("tool", parts, tool_call_id=call_id, name=ctx.tool_names.get(call_id), is_error=bool(is_error))


def _parse_assistant(content: list[Any], path: str, ctx: _Context) -> Message:
    msg = Message("assistant")
    for j, block in enumerate(content):
        bpath = f"{path}.content[{j}]"
        btype = _block_type(block, bpath)
        ctx.cache_control(block, bpath)
        if btype == "text":
            msg.content.append(TextPart(_req_str(block, "text", bpath)))
        elif btype == "tool_use":
            call_id = _req_str(block, "id", bpath)
            name = _req_str(block, "name", bpath)
            args = block.get("input", {})
            if not isinstance(args, dict):
                raise invalid(f"{bpath}.input must be an object", f"{bpath}.input")
            ctx.tool_names[call_id] = name
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
            if (image := _parse_image(block, bpath, ctx)) is not None:
                msg.content.append(image)
        elif btype == "tool_result":
            raise invalid("tool_result blocks belong in user messages", f"{bpath}.type")
        else:  # server_tool_use, web_search_tool_result, mcp_tool_use, ...
            ctx.unknown("content.", btype, f"{bpath}.type", block)
    return msg


def _parse_user(content: list[Any], path: str, ctx: _Context, out: list[Message]) -> None:
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
            out.append(_parse_tool_result(block, bpath, ctx))
            continue
        if btype in ("tool_use", "thinking", "redacted_thinking"):
            raise invalid(f"{btype} blocks belong in assistant messages", f"{bpath}.type")
        part = _parse_text_or_image(block, bpath, btype, ctx)
        if part is None:
            continue
        if pending is None:
            pending = Message("user")
            out.append(pending)
        pending.content.append(part)


def _parse_system(system: Any, path: str, ctx: _Context) -> list[Part]:
    """The top-level `system`, or a system message's content: a string or text blocks."""
    if isinstance(system, str):
        return [TextPart(system)] if system else []
    if not isinstance(system, list):
        raise invalid(f"{path} must be a string or an array of text blocks", path)
    parts: list[Part] = []
    for i, block in enumerate(system):
        bpath = f"{path}[{i}]"
        btype = _block_type(block, bpath)
        ctx.cache_control(block, bpath)
        if btype == "text":
            parts.append(TextPart(_req_str(block, "text", bpath)))
        else:
            ctx.unknown("system.", btype, f"{bpath}.type", block)
    return parts


def _parse_tools(tools: Any, ctx: _Context) -> list[Tool]:
    if not isinstance(tools, list):
        raise invalid("tools must be an array", "tools")
    out: list[Tool] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid(f"{path} must be an object", path)
        ttype = tool.get("type")
        if ttype is not None and ttype != "custom":
            # server tools (web search, code execution, ...) run inside Anthropic, and its own client
            # tools (bash, text_editor, ...) have schemas only Anthropic knows: nothing to translate to
            ctx.unknown("tools.", ttype, path, tool)
            continue
        ctx.cache_control(tool, path)
        for key, value in tool.items():
            if key not in _TOOL_FIELDS and not unset(value):
                ctx.unknown("tools.", key, f"{path}.{key}", value)  # defer_loading, input_examples, ...
        name = _req_str(tool, "name", path)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise invalid(f"{path}.input_schema: an object is required", f"{path}.input_schema")
        ctx.schemas.append((f"{path}.input_schema", schema))
        strict = tool.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise invalid(f"{path}.strict must be a boolean", f"{path}.strict")
        out.append(Tool(name, _opt_str(tool, "description", path), schema, strict))
    return out


def _parse_tool_choice(choice: Any, req: ChatRequest, ctx: _Context) -> None:
    if not isinstance(choice, dict):
        raise invalid("tool_choice must be an object", "tool_choice")
    ctype = choice.get("type")
    if not isinstance(ctype, str):
        raise invalid("tool_choice.type: a string is required", "tool_choice.type")
    mode = _TOOL_CHOICE_IN.get(ctype)
    if mode is None:
        ctx.unknown("tool_choice.", ctype, "tool_choice.type", choice)
        return
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


def _parse_thinking(thinking: Any, req: ChatRequest, effort: str | None, ctx: _Context) -> None:
    """enabled -> a thinking budget, adaptive -> an effort (output_config.effort, else the API's
    default "high"); `output_config.effort` beside enabled thinking is kept too, for the APIs that
    take a level. `display` says whether the thinking is shown (canonical reasoning_summary)."""
    if not isinstance(thinking, dict):
        raise invalid("thinking must be an object", "thinking")
    ttype = thinking.get("type")
    if ttype == "disabled":
        return
    if ttype == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_int(budget):
            raise invalid("thinking.budget_tokens: an integer is required", "thinking.budget_tokens")
        req.thinking_budget = check_tokens(budget, "thinking.budget_tokens")
        req.reasoning_effort = effort
    elif ttype == "adaptive":
        req.reasoning_effort = effort or "high"
    elif isinstance(ttype, str):
        ctx.unknown("thinking.", ttype, "thinking.type", thinking)
        return
    else:
        raise invalid("thinking.type: a string is required", "thinking.type")
    display = thinking.get("display")
    if display is None:
        return
    if not isinstance(display, str):
        raise invalid("thinking.display must be a string", "thinking.display")
    if display in _DISPLAY_IN:
        req.reasoning_summary = _DISPLAY_IN[display]
    else:
        ctx.unknown("thinking.display.", display, "thinking.display", display)


def _parse_output_config(config: Any, req: ChatRequest, ctx: _Context) -> str | None:
    """Sets the response format; returns the effort (applied with the thinking it goes with)."""
    if not isinstance(config, dict):
        raise invalid("output_config must be an object", "output_config")
    fmt = config.get("format")
    if fmt is not None:
        ftype = fmt.get("type") if isinstance(fmt, dict) else None
        if not isinstance(ftype, str):
            raise invalid("output_config.format.type: a string is required", "output_config.format")
        if ftype == "json_schema":
            schema = fmt.get("schema")
            if not isinstance(schema, dict):
                raise invalid("output_config.format.schema: an object is required", "output_config.format.schema")
            req.response_format = ResponseFormat("json_schema", schema=schema)
            ctx.schemas.append(("output_config.format.schema", schema))
        else:
            ctx.unknown("output_config.format.", ftype, "output_config.format.type", fmt)
    for key, value in config.items():
        if key not in ("format", "effort") and not unset(value):
            ctx.unknown("output_config.", key, f"output_config.{key}", value)
    effort = config.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise invalid("output_config.effort must be a string", "output_config.effort")
    if effort not in _EFFORT_IN:
        ctx.unknown("output_config.effort.", effort, "output_config.effort", effort)
        return None
    return _EFFORT_IN[effort]


def parse_request(body: bytes, path_model: str | None = None, counting: bool = False) -> ChatRequest:
    """`counting`: a `/v1/messages/count_tokens` body, which has no max_tokens."""
    data = loads(body, None)
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object", None)
    refuse_repeated(body, data, CHECKED_FIELDS)
    model = data.get("model", path_model)
    if not isinstance(model, str) or not model:
        raise invalid("model: a non-empty string is required", "model")
    check_model(model)
    max_tokens = data.get("max_tokens")
    if counting:
        max_tokens = None
    elif max_tokens is None:
        raise invalid("max_tokens: field required", "max_tokens")
    elif not is_int(max_tokens):
        raise invalid("max_tokens must be an integer", "max_tokens")
    else:
        check_tokens(max_tokens, "max_tokens")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list):
        raise invalid("messages: an array is required", "messages")
    check_count(raw_messages, MAX_MESSAGES, "messages")

    ctx = _Context()
    messages: list[Message] = []
    system = data.get("system")
    if system is not None:
        parts = _parse_system(system, "system", ctx)
        if parts:
            messages.append(Message("system", parts))
    for i, raw in enumerate(raw_messages):
        path = f"messages[{i}]"
        if not isinstance(raw, dict):
            raise invalid(f"{path} must be an object", path)
        role = raw.get("role")
        content = raw.get("content")
        if role == "system":  # anywhere in the conversation: canonical system messages keep their place
            parts = _parse_system(content, f"{path}.content", ctx)
            if parts:
                messages.append(Message("system", parts))
            continue
        if role not in ("user", "assistant"):
            if not isinstance(role, str):
                raise invalid(f"{path}.role: a string is required", f"{path}.role")
            ctx.unknown("role.", role, f"{path}.role", raw)
            continue
        if isinstance(content, str):
            messages.append(Message(role, [TextPart(content)] if content else []))
        elif not isinstance(content, list):
            raise invalid(f"{path}.content must be a string or an array of blocks", f"{path}.content")
        elif role == "assistant":
            messages.append(_parse_assistant(content, path, ctx))
        else:
            _parse_user(content, path, ctx, messages)

    req = ChatRequest(model=model, messages=messages, max_tokens=max_tokens, source=data)
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream must be a boolean", "stream")
    req.stream = bool(stream) and not counting  # a count is one JSON answer
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
        effort = _parse_output_config(data["output_config"], req, ctx)
    thinking = data.get("thinking")
    if thinking is not None:
        _parse_thinking(thinking, req, effort, ctx)
    elif effort is not None:
        req.reasoning_effort = effort  # effort without a thinking setting: the model's own default thinking
    if data.get("tools") is not None:
        req.tools = _parse_tools(data["tools"], ctx)
    if data.get("tool_choice") is not None:
        _parse_tool_choice(data["tool_choice"], req, ctx)
    for key, value in data.items():
        if key not in _READ_FIELDS and not unset(value):
            ctx.unknown("", key, key, value)  # context_management, container, mcp_servers, service_tier, ...
    req.api_features = ctx.features
    check_schema_depth([schema for _, schema in ctx.schemas], lambda: [param for param, _ in ctx.schemas])
    return req
