"""Client side: an Anthropic Messages request (what the `anthropic` SDK and Claude Code send) -> ChatRequest.

Strict only where the canonical model needs the request: the fields it reads must have their
types. What it does not know (a role, a block, tool or thinking type, a tool option, a top-level
field, a value added since) is never a 400 here: it is an ApiFeature, which goes on untouched to
an Anthropic provider and is dropped and named, or refused, per the `unsupported` policy of any
other (`providers.capabilities`).
"""

from __future__ import annotations

from functools import partial
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
    note_unknown,
    note_unknown_fields,
)
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import (
    MAX_MESSAGES,
    ORJSON_WRITE_DEPTH,
    check_count,
    check_schema_depth,
    check_tokens,
    too_deep,
)
from extproc.formats.json_fields import (
    PLAIN,
    as_array,
    as_object,
    is_int,
    opt_bool,
    opt_int,
    opt_num,
    opt_object,
    opt_str,
    read_field,
    req_object,
    req_str,
    request_object,
    request_top,
    unread_array,
)
from extproc.formats.model_name import check_model
from extproc.formats.repeated_keys import ARRAY, BOOLEAN, NUMBER, STRING, Field

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
_NOT_AN_OBJECT = "request body must be a JSON object"
_CONVERSATION = frozenset(
    {"system", "messages", "tools"}
)  # left unread (json_fields.request_top) where the bytes go on
_TOOL_FIELDS = frozenset({"type", "name", "description", "input_schema", "strict", "cache_control"})
_OUTPUT_CONFIG_FIELDS = frozenset({"format", "effort"})


class _Context:
    """What one parse gathers besides the messages: tool names by call id (tool results name their
    function) and the features the canonical model cannot carry."""

    __slots__ = ("cache_hint", "features", "schemas", "tool_names")

    def __init__(self) -> None:
        self.tool_names: dict[str, str] = {}  # tool_use id -> name, for the tool results that follow
        self.features: list[ApiFeature] = []
        self.cache_hint = False  # a cache_control was seen (named once)
        self.schemas: list[tuple[str, Any]] = []  # (param, tool or response schema), bounded once read

    def cache_control(self, obj: dict[str, Any], path: str) -> None:
        """Prompt caching breakpoints: Anthropic's own; meaningless to another provider."""
        if not self.cache_hint and obj.get("cache_control") is not None:
            self.cache_hint = True
            self.features.append(ApiFeature("cache_control", f"{path}.cache_control", value=obj["cache_control"]))


def _block_type(block: Any, path: str) -> str:
    if not isinstance(block, dict):
        raise invalid(f"{path} must be a content block object", path)
    btype = block.get("type")
    if not isinstance(btype, str):
        raise PLAIN.required(f"{path}.type", "a string")
    return btype


def _parse_image(block: dict[str, Any], path: str, ctx: _Context) -> ImagePart | None:
    source = req_object(block, "source", path, PLAIN)
    spath = f"{path}.source"
    stype = source.get("type")
    if stype == "base64":
        return ImagePart(
            media_type=req_str(source, "media_type", spath, PLAIN), data=req_str(source, "data", spath, PLAIN)
        )
    if stype == "url":
        return ImagePart(url=req_str(source, "url", spath, PLAIN))
    note_unknown(ctx.features, "image.source.", stype, f"{spath}.type", block)  # a Files API file_id, ...
    return None


def _parse_text_or_image(block: dict[str, Any], path: str, btype: str, ctx: _Context) -> Part | None:
    """None: a block the canonical model cannot carry (recorded)."""
    ctx.cache_control(block, path)
    if btype == "text":
        return TextPart(req_str(block, "text", path, PLAIN))
    if btype == "image":
        return _parse_image(block, path, ctx)
    note_unknown(ctx.features, "content.", btype, f"{path}.type", block)  # document, search_result, ...
    return None


def _parse_tool_result(block: dict[str, Any], path: str, ctx: _Context) -> Message:
    call_id = req_str(block, "tool_use_id", path, PLAIN)
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
        raise PLAIN.must(f"{path}.content", "a string or an array")
    is_error = opt_bool(block, "is_error", path, PLAIN)
    return Message("tool", parts, tool_call_id=call_id, name=ctx.tool_names.get(call_id), is_error=bool(is_error))


def _parse_assistant(content: list[Any], path: str, ctx: _Context) -> Message:
    msg = Message("assistant")
    for j, block in enumerate(content):
        bpath = f"{path}.content[{j}]"
        btype = _block_type(block, bpath)
        ctx.cache_control(block, bpath)
        if btype == "text":
            msg.content.append(TextPart(req_str(block, "text", bpath, PLAIN)))
        elif btype == "tool_use":
            call_id = req_str(block, "id", bpath, PLAIN)
            name = req_str(block, "name", bpath, PLAIN)
            args = block.get("input", {})
            if not isinstance(args, dict):  # inline: the path is written only for a refusal
                raise PLAIN.must(f"{bpath}.input", "an object")
            ctx.tool_names[call_id] = name
            try:
                arguments = orjson.dumps(args).decode()
            except orjson.JSONEncodeError:  # deeper than orjson writes
                raise too_deep(f"{bpath}.input", ORJSON_WRITE_DEPTH) from None
            msg.tool_calls.append(ToolCall(call_id, name, arguments))
        elif btype == "thinking":
            text = req_str(block, "thinking", bpath, PLAIN)
            msg.content.append(ThinkingPart(text, opt_str(block, "signature", bpath, PLAIN) or None))
        elif btype == "redacted_thinking":
            # the opaque `data` travels as the signature: both only mean something to Anthropic
            msg.content.append(ThinkingPart("", req_str(block, "data", bpath, PLAIN), redacted=True))
        elif btype == "image":
            if (image := _parse_image(block, bpath, ctx)) is not None:
                msg.content.append(image)
        elif btype == "tool_result":
            raise invalid("tool_result blocks belong in user messages", f"{bpath}.type")
        else:  # server_tool_use, web_search_tool_result, mcp_tool_use, ...
            note_unknown(ctx.features, "content.", btype, f"{bpath}.type", block)
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
        raise PLAIN.must(path, "a string or an array of text blocks")
    parts: list[Part] = []
    for i, block in enumerate(system):
        bpath = f"{path}[{i}]"
        btype = _block_type(block, bpath)
        ctx.cache_control(block, bpath)
        if btype == "text":
            parts.append(TextPart(req_str(block, "text", bpath, PLAIN)))
        else:
            note_unknown(ctx.features, "system.", btype, f"{bpath}.type", block)
    return parts


def _parse_tools(tools: Any, ctx: _Context) -> list[Tool]:
    out: list[Tool] = []
    for i, tool in enumerate(as_array(tools, "tools", PLAIN)):
        path = f"tools[{i}]"
        ttype = as_object(tool, path, PLAIN).get("type")
        if ttype is not None and ttype != "custom":
            # server tools (web search, code execution, ...) run inside Anthropic, and its own client
            # tools (bash, text_editor, ...) have schemas only Anthropic knows: nothing to translate to
            note_unknown(ctx.features, "tools.", ttype, path, tool)
            continue
        ctx.cache_control(tool, path)
        note_unknown_fields(
            tool, _TOOL_FIELDS, ctx.features, "tools.", f"{path}."
        )  # defer_loading, input_examples, ...
        name = req_str(tool, "name", path, PLAIN)
        schema = req_object(tool, "input_schema", path, PLAIN)
        ctx.schemas.append((f"{path}.input_schema", schema))
        strict = opt_bool(tool, "strict", path, PLAIN)
        out.append(Tool(name, opt_str(tool, "description", path, PLAIN), schema, strict))
    return out


def _parse_tool_choice(choice: Any, req: ChatRequest, ctx: _Context) -> None:
    ctype = as_object(choice, "tool_choice", PLAIN).get("type")
    if not isinstance(ctype, str):
        raise PLAIN.required("tool_choice.type", "a string")
    mode = _TOOL_CHOICE_IN.get(ctype)
    if mode is None:
        note_unknown(ctx.features, "tool_choice.", ctype, "tool_choice.type", choice)
        return
    name = req_str(choice, "name", "tool_choice", PLAIN) if mode == "function" else None
    req.tool_choice = ToolChoice(mode, name)  # type: ignore[arg-type]
    if opt_bool(choice, "disable_parallel_tool_use", "tool_choice", PLAIN):
        req.parallel_tool_calls = False


def _parse_thinking(thinking: Any, req: ChatRequest, effort: str | None, ctx: _Context) -> None:
    """enabled -> a thinking budget, adaptive -> an effort (output_config.effort, else the API's
    default "high"); `output_config.effort` beside enabled thinking is kept too, for the APIs that
    take a level. `display` says whether the thinking is shown (canonical reasoning_summary)."""
    ttype = as_object(thinking, "thinking", PLAIN).get("type")
    if ttype == "disabled":
        return
    if ttype == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_int(budget):
            raise PLAIN.required("thinking.budget_tokens", "an integer")
        req.thinking_budget = check_tokens(budget, "thinking.budget_tokens")
        req.reasoning_effort = effort
    elif ttype == "adaptive":
        req.reasoning_effort = effort or "high"
    elif isinstance(ttype, str):
        note_unknown(ctx.features, "thinking.", ttype, "thinking.type", thinking)
        return
    else:
        raise PLAIN.required("thinking.type", "a string")
    display = opt_str(thinking, "display", "thinking", PLAIN)
    if display is None:
        return
    if display in _DISPLAY_IN:
        req.reasoning_summary = _DISPLAY_IN[display]
    else:
        note_unknown(ctx.features, "thinking.display.", display, "thinking.display", display)


def _parse_output_config(config: Any, req: ChatRequest, ctx: _Context) -> str | None:
    """Sets the response format; returns the effort (applied with the thinking it goes with)."""
    fmt = as_object(config, "output_config", PLAIN).get("format")
    if fmt is not None:
        ftype = fmt.get("type") if isinstance(fmt, dict) else None
        if not isinstance(ftype, str):
            raise invalid("output_config.format.type: a string is required", "output_config.format")
        if ftype == "json_schema":
            schema = req_object(fmt, "schema", "output_config.format", PLAIN)
            req.response_format = ResponseFormat("json_schema", schema=schema)
            ctx.schemas.append(("output_config.format.schema", schema))
        else:
            note_unknown(ctx.features, "output_config.format.", ftype, "output_config.format.type", fmt)
    note_unknown_fields(config, _OUTPUT_CONFIG_FIELDS, ctx.features, "output_config.", "output_config.")
    effort = opt_str(config, "effort", "output_config", PLAIN)
    if effort is None:
        return None
    if effort not in _EFFORT_IN:
        note_unknown(ctx.features, "output_config.effort.", effort, "output_config.effort", effort)
        return None
    return _EFFORT_IN[effort]


def parse_request(
    body: bytes, path_model: str | None = None, counting: bool = False, whole: bool = True
) -> ChatRequest:
    """`counting`: a `/v1/messages/count_tokens` body, which has no max_tokens. Not `whole`: the
    system prompt, messages and tools are left for `read_conversation`, for a request whose bytes
    go on as they are (the provider, of the client's own API, judges them)."""
    if whole:
        data = request_object(body, CHECKED_FIELDS, None, _NOT_AN_OBJECT)
    else:
        data = request_top(body, CHECKED_FIELDS, _CONVERSATION, None, _NOT_AN_OBJECT)
    model = data.get("model", path_model)
    if not isinstance(model, str) or not model:
        raise PLAIN.required("model", "a non-empty string")
    check_model(model)
    max_tokens = data.get("max_tokens")
    if counting:
        max_tokens = None
    elif max_tokens is None:
        raise PLAIN.missing("max_tokens")
    elif not is_int(max_tokens):
        raise PLAIN.must("max_tokens", "an integer")
    else:
        check_tokens(max_tokens, "max_tokens")
    if not unread_array(data.get("messages")):  # read now: refused as ever
        _check_messages(read_field(data, "messages", None))

    ctx = _Context()  # what the fields besides the conversation gather
    req = ChatRequest(model=model, messages=[], max_tokens=max_tokens, source=data)
    req.stream = bool(opt_bool(data, "stream", "", PLAIN)) and not counting  # a count is one JSON answer
    req.include_usage = req.stream  # Anthropic streams always report usage
    req.temperature = opt_num(data, "temperature", "", PLAIN)
    req.top_p = opt_num(data, "top_p", "", PLAIN)
    req.top_k = opt_int(data, "top_k", "", PLAIN)
    stop = data.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise PLAIN.must("stop_sequences", "an array of strings")
        req.stop = stop
    metadata = opt_object(data, "metadata", "", PLAIN)
    if metadata is not None:
        req.user = opt_str(metadata, "user_id", "metadata", PLAIN)
    effort = None
    if data.get("output_config") is not None:
        effort = _parse_output_config(data["output_config"], req, ctx)
    thinking = data.get("thinking")
    if thinking is not None:
        _parse_thinking(thinking, req, effort, ctx)
    elif effort is not None:
        req.reasoning_effort = effort  # effort without a thinking setting: the model's own default thinking
    before_tools = len(ctx.features)
    if data.get("tool_choice") is not None:
        _parse_tool_choice(data["tool_choice"], req, ctx)
    note_unknown_fields(
        data, _READ_FIELDS, ctx.features
    )  # context_management, container, mcp_servers, service_tier, ...
    req.api_features = ctx.features
    read = partial(_read_conversation, data=data, head=ctx, before_tools=before_tools)
    if whole:
        read(req)
    else:
        req.unread = read
    return req


def _check_messages(raw_messages: Any) -> None:
    if not isinstance(raw_messages, list):
        raise PLAIN.required("messages", "an array")
    check_count(raw_messages, MAX_MESSAGES, "messages")


def _read_conversation(req: ChatRequest, data: dict[str, Any], head: _Context, before_tools: int) -> None:
    """The system prompt, messages and tools into `req`, their schemas bounded with the response
    format's; their features go where one pass in the body's order puts them (the conversation's
    first, the tools' after the output config's and thinking's, which end at `before_tools`)."""
    ctx = _Context()
    messages: list[Message] = []
    raw_messages = read_field(data, "messages", None)
    _check_messages(raw_messages)
    system = read_field(data, "system", None)
    if system is not None:
        parts = _parse_system(system, "system", ctx)
        if parts:
            messages.append(Message("system", parts))
    for i, raw in enumerate(raw_messages):
        path = f"messages[{i}]"
        role = as_object(raw, path, PLAIN).get("role")
        content = raw.get("content")
        if role == "system":  # anywhere in the conversation: canonical system messages keep their place
            parts = _parse_system(content, f"{path}.content", ctx)
            if parts:
                messages.append(Message("system", parts))
            continue
        if role not in ("user", "assistant"):
            if not isinstance(role, str):
                raise PLAIN.required(f"{path}.role", "a string")
            note_unknown(ctx.features, "role.", role, f"{path}.role", raw)
            continue
        if isinstance(content, str):
            messages.append(Message(role, [TextPart(content)] if content else []))
        elif not isinstance(content, list):
            raise PLAIN.must(f"{path}.content", "a string or an array of blocks")
        elif role == "assistant":
            messages.append(_parse_assistant(content, path, ctx))
        else:
            _parse_user(content, path, ctx, messages)
    req.messages = messages
    in_conversation = len(ctx.features)
    tools = read_field(data, "tools", None)
    if tools is not None:
        req.tools = _parse_tools(tools, ctx)
    features = req.api_features
    features[:] = [
        *ctx.features[:in_conversation],
        *features[:before_tools],
        *ctx.features[in_conversation:],
        *features[before_tools:],
    ]
    schemas = head.schemas + ctx.schemas
    check_schema_depth([schema for _, schema in schemas], lambda: [param for param, _ in schemas])
