"""Anthropic Messages API (`POST /v1/messages`) <-> canonical model.

Client side: what the official `anthropic` SDK sends and expects back
(message objects, the `event:`-framed stream, error bodies, `/v1/models`).
Provider side: requests to api.anthropic.com and decoding of its answers.

Choices made here:
- Canonical `input_tokens` includes cached tokens; Anthropic's `input_tokens`
  does not, so the cache read/creation counts are added when parsing and
  subtracted when rendering.
- Client side, anything the canonical model cannot carry is refused with a
  400 naming the field (server tools, document blocks, file image sources)
  rather than silently changing the request; `cache_control` is ignored.
- `thinking.type == "adaptive"` becomes `reasoning_effort` (the
  `output_config.effort`, default "high" like the API); "disabled" is the
  default and maps to nothing. `output_config.format` (structured outputs)
  is the canonical json_schema response format, both ways.
- Provider side, OpenAI's temperature range 0-2 is clamped to Anthropic's
  0-1 (not scaled: 0.7 means the same on both). With thinking on, the API
  refuses temperature/top_k (dropped and reported) and top_p < 0.95
  (clamped), and forced tool use (thinking is then dropped and reported).
- `reasoning_effort` -> thinking budget: see `EFFORT_BUDGETS`; "minimal" and
  "none" leave thinking off. A budget that does not fit under max_tokens
  raises max_tokens when the client gave none, else is lowered to
  max_tokens - 1 (or dropped when that is under the 1024 minimum).
- `response_format: json_object` has no schema-free equivalent: unsupported.
- A canonical "error" finish reason has no Anthropic value: sent as end_turn.
- Which stop sequence ended a turn is not in the canonical model: a stream or
  response rendered here says `end_turn` with `stop_sequence: null`.
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

import orjson

from extproc.errors import ERROR_TABLE, GatewayError, kind_for_status, render_anthropic_error
from extproc.formats.base import RenderedRequest, RenderOptions, invalid, is_int, is_num
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    Finish,
    FinishReason,
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
from extproc.formats.sse import SSEEvent, SSEParser, frame

# reasoning_effort -> thinking.budget_tokens (Anthropic minimum is 1024)
EFFORT_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
DYNAMIC_THINKING_BUDGET = 4096  # Gemini's thinkingBudget -1 ("model decides")
MIN_THINKING_BUDGET = 1024
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MODELS_CREATED_AT = "1970-01-01T00:00:00Z"  # the API's own value for an unknown release date
DEFAULT_INPUT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

_ALNUM = string.ascii_letters + string.digits
_ID_CHARS = frozenset(_ALNUM + "_-")  # tool_use ids must match ^[a-zA-Z0-9_-]+$

_FINISH_IN: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}
_FINISH_OUT: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}
_TOOL_CHOICE_IN = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}
_TOOL_CHOICE_OUT = {"auto": "auto", "required": "any", "none": "none", "function": "tool"}
_EFFORT_IN = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
# Anthropic error `type` -> gateway kind (an in-band stream error has no HTTP status)
_ERROR_KINDS: dict[str, Any] = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "provider_auth",
    "permission_error": "provider_auth",
    "billing_error": "provider_auth",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "rate_limit_error": "rate_limit",
    "api_error": "provider_error",
    "overloaded_error": "unavailable",
    "timeout_error": "timeout",
}


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(24))


def _message_id(source: str) -> str:
    """Anthropic ids start with msg_; another provider's id is kept after it for tracing."""
    if not source:
        return _new_id("msg_")
    return source if source.startswith("msg_") else "msg_" + source


def _dumps(value: Any) -> bytes:
    """orjson refuses lone surrogates; replace them rather than emit nothing."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(_scrub(value))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return frame(_dumps(payload), kind)


# ---------------------------------------------------------------- client side: request


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
            msg.tool_calls.append(ToolCall(call_id, name, orjson.dumps(args).decode()))
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
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        raise invalid("request body is not valid JSON", None) from None
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object", None)
    model = data.get("model", path_model)
    if not isinstance(model, str) or not model:
        raise invalid("model: a non-empty string is required", "model")
    max_tokens = data.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: field required", "max_tokens")
    if not is_int(max_tokens) or max_tokens < 1:
        raise invalid("max_tokens must be a positive integer", "max_tokens")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list):
        raise invalid("messages: an array is required", "messages")

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


# ---------------------------------------------------------------- client side: response


def _anthropic_usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
    uncached = usage.input_tokens - usage.cached_tokens - usage.cache_creation_tokens
    return {
        "input_tokens": max(uncached, 0),
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }


def _tool_input(arguments: str) -> dict[str, Any]:
    """A call's JSON text as the object Anthropic wants; anything else becomes {}."""
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _stop_reason(reason: str | None, has_tools: bool) -> str:
    if reason is None:
        return "tool_use" if has_tools else "end_turn"
    return _FINISH_OUT.get(reason, "end_turn")


def render_response(resp: ChatResponse) -> bytes:
    choice = resp.choices[0] if resp.choices else Choice()
    content: list[dict[str, Any]] = []
    for part in choice.thinking:
        if part.redacted:
            content.append({"type": "redacted_thinking", "data": part.signature or ""})
        else:
            content.append({"type": "thinking", "thinking": part.text, "signature": part.signature or ""})
    text = choice.text or ("" if choice.tool_calls else choice.refusal or "")
    if text or not (content or choice.tool_calls):
        content.append({"type": "text", "text": text})
    for call in choice.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id or _new_id("toolu_"),
                "name": call.name,
                "input": _tool_input(call.arguments),
            }
        )
    body = {
        "id": _message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": _stop_reason(choice.finish_reason, bool(choice.tool_calls)),
        "stop_sequence": None,
        "usage": _anthropic_usage(resp.usage),
    }
    return _dumps(body)


def render_error(error: GatewayError, request_id: str = "") -> bytes:
    return render_anthropic_error(error, request_id)


def render_models(models: list[str]) -> bytes:
    data = [{"type": "model", "id": m, "display_name": m, "created_at": MODELS_CREATED_AT} for m in models]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None,
        }
    )


class StreamEncoder:
    """Canonical stream events -> the Anthropic event sequence.

    message_start goes out at the end of the first batch that has a StreamStart
    (so usage decoded with it is included), content blocks open and close as
    the kind of content changes, and message_delta + message_stop are written
    by close(): other providers report final usage after their finish reason.
    """

    def __init__(self, request: ChatRequest) -> None:
        self._model = request.model
        self._id = ""
        self._start_pending = False
        self._started = False
        self._failed = False
        self._closed = False
        self._next_block = 0
        self._open: str | None = None  # "text" | "thinking" | "tool"
        self._open_index = -1
        self._signed = False  # the open thinking block already has its signature
        self._call_blocks: dict[int, int] = {}  # call_index -> block index
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._start_input: int | None = None

    def encode(self, events: list[StreamEvent]) -> bytes:
        if self._closed or self._failed:
            return b""
        out: list[bytes] = []
        for event in events:
            self._encode_one(event, out)
            if self._failed:
                break
        if self._start_pending:
            self._emit_start(out)
        return b"".join(out)

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        if self._failed:
            return b""
        out: list[bytes] = []
        self._ensure_started(out)
        self._close_block(out)
        usage: dict[str, int] = {"output_tokens": 0}
        if self._usage is not None:
            usage = _anthropic_usage(self._usage)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": _stop_reason(self._finish, bool(self._call_blocks)),
                "stop_sequence": None,
            },
            "usage": usage,
        }
        out.append(_event("message_delta", delta))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    # ---- internals

    def _encode_one(self, event: StreamEvent, out: list[bytes]) -> None:
        if isinstance(event, TextDelta):
            if event.index == 0 and event.text:
                self._text(event.text, out)
        elif isinstance(event, ToolCallDelta):
            if event.index == 0 and event.arguments:
                self._tool_delta(event, out)
        elif isinstance(event, ToolCallStart):
            if event.index == 0 and self._call_blocks.get(event.call_index) is None:
                self._ensure_started(out)
                self._tool_start(event.call_index, event.id, event.name, out)
        elif isinstance(event, ThinkingDelta):
            if event.index == 0:
                self._thinking(event, out)
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, Finish):
            if event.index == 0:
                self._ensure_started(out)
                self._close_block(out)
                self._finish = event.reason
        elif isinstance(event, StreamStart):
            if not self._started and not self._start_pending:
                self._id = _message_id(event.id)
                self._model = event.model or self._model
                self._start_input = event.input_tokens
                self._start_pending = True
        elif isinstance(event, StreamFailure):
            if self._start_pending:
                self._emit_start(out)
            self._failure(event.error, out)

    def _failure(self, error: Any, out: list[bytes]) -> None:
        if isinstance(error, GatewayError):
            detail = {"type": ERROR_TABLE[error.kind][2], "message": error.message}
        else:
            detail = {"type": "api_error", "message": str(error)}
        out.append(_event("error", {"type": "error", "error": detail}))
        self._failed = True

    def _ensure_started(self, out: list[bytes]) -> None:
        if not self._started:
            if not self._id:
                self._id = _new_id("msg_")
            self._emit_start(out)

    def _emit_start(self, out: list[bytes]) -> None:
        self._start_pending = False
        self._started = True
        usage = _anthropic_usage(self._usage)
        if self._usage is None and self._start_input is not None:
            usage["input_tokens"] = self._start_input
        message = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(_event("message_start", {"type": "message_start", "message": message}))

    def _open_block(self, kind: str, block: dict[str, Any], out: list[bytes]) -> int:
        self._close_block(out)
        index = self._next_block
        self._next_block += 1
        self._open, self._open_index, self._signed = kind, index, False
        start = {"type": "content_block_start", "index": index, "content_block": block}
        out.append(_event("content_block_start", start))
        return index

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        stop = {"type": "content_block_stop", "index": self._open_index}
        out.append(_event("content_block_stop", stop))
        self._open = None

    def _delta(self, index: int, delta: dict[str, Any], out: list[bytes]) -> None:
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        out.append(_event("content_block_delta", payload))

    def _text(self, text: str, out: list[bytes]) -> None:
        self._ensure_started(out)
        if self._open != "text":
            self._open_block("text", {"type": "text", "text": ""}, out)
        self._delta(self._open_index, {"type": "text_delta", "text": text}, out)

    def _thinking(self, event: ThinkingDelta, out: list[bytes]) -> None:
        if not event.text and not event.signature:
            return
        self._ensure_started(out)
        # a signature closes a thinking block: more thinking text starts another one
        if self._open != "thinking" or (event.text and self._signed):
            block = {"type": "thinking", "thinking": "", "signature": ""}
            self._open_block("thinking", block, out)
        if event.text:
            self._delta(self._open_index, {"type": "thinking_delta", "thinking": event.text}, out)
        if event.signature:
            delta = {"type": "signature_delta", "signature": event.signature}
            self._delta(self._open_index, delta, out)
            self._signed = True

    def _tool_start(self, call_index: int, call_id: str, name: str, out: list[bytes]) -> None:
        block = {"type": "tool_use", "id": call_id or _new_id("toolu_"), "name": name, "input": {}}
        self._call_blocks[call_index] = self._open_block("tool", block, out)

    def _tool_delta(self, event: ToolCallDelta, out: list[bytes]) -> None:
        self._ensure_started(out)
        index = self._call_blocks.get(event.call_index)
        if index is None:  # arguments without a start: open the call with what we know
            self._tool_start(event.call_index, "", "", out)
            index = self._open_index
        # a late fragment for an already closed call still goes to its own block index
        self._delta(index, {"type": "input_json_delta", "partial_json": event.arguments}, out)


# ---------------------------------------------------------------- provider side: request


def _safe_id(call_id: str | None) -> str:
    """Anthropic accepts tool ids matching ^[a-zA-Z0-9_-]+$; map other characters to _."""
    if not call_id:
        return _new_id("toolu_")
    if all(c in _ID_CHARS for c in call_id):
        return call_id
    return "".join(c if c in _ID_CHARS else "_" for c in call_id)


def _image_block(part: ImagePart) -> dict[str, Any]:
    data, media_type, url = part.data, part.media_type, part.url
    if data is None and url and url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64":
            raise invalid("image data URLs must be base64 encoded", "image_url")
        data = payload
    if data is not None:
        media_type = (media_type or "").lower()
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in IMAGE_MEDIA_TYPES:
            raise invalid(
                f"image media type {media_type or 'unknown'!r} is not supported by this provider"
                " (jpeg, png, gif and webp only)",
                "image_url",
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url:
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid("an image needs data or a url", "image_url")


def _content_blocks(parts: list[Part], thinking: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            if part.text:  # the API refuses empty text blocks
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part))
        elif thinking and part.signature:  # unsigned thinking cannot be verified: left out
            if part.redacted:
                blocks.append({"type": "redacted_thinking", "data": part.signature})
            else:
                blocks.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
    return blocks


def _tool_result_block(msg: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _safe_id(msg.tool_call_id)}
    parts = _content_blocks(msg.content, thinking=False)
    if len(parts) == 1 and parts[0]["type"] == "text":
        block["content"] = parts[0]["text"]
    elif parts:
        block["content"] = parts
    if msg.is_error:
        block["is_error"] = True
    return block


def _append(out: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Consecutive same-role turns merge: Anthropic wants user/assistant alternation."""
    if not blocks:
        return
    if out and out[-1]["role"] == role:
        out[-1]["content"].extend(blocks)
    else:
        out.append({"role": role, "content": blocks})


def _results_first(message: dict[str, Any]) -> None:
    """The API wants a user turn's tool_result blocks before its other blocks."""
    blocks = message["content"]
    seen_other = False
    for block in blocks:
        if block["type"] != "tool_result":
            seen_other = True
        elif seen_other:
            results = [b for b in blocks if b["type"] == "tool_result"]
            message["content"] = results + [b for b in blocks if b["type"] != "tool_result"]
            return


def _thinking_budget(req: ChatRequest) -> tuple[int | None, str | None]:
    """(budget or None, the client's field that asked for it)."""
    if req.thinking_budget is not None:
        budget = req.thinking_budget
        if budget < 0:
            return DYNAMIC_THINKING_BUDGET, "thinking_budget"
        if budget == 0:
            return None, None
        return max(budget, MIN_THINKING_BUDGET), "thinking_budget"
    if req.reasoning_effort:
        return EFFORT_BUDGETS.get(req.reasoning_effort), "reasoning_effort"
    return None, None


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    dropped: list[str] = []

    def unsupported(feature: str) -> None:
        if options.unsupported == "reject":
            raise invalid(f"{feature} is not supported by this provider", feature)
        dropped.append(feature)

    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for msg in with_user_turn(req.messages):
        if msg.role == "system":
            for part in msg.content:
                if isinstance(part, TextPart):
                    if part.text:
                        system.append({"type": "text", "text": part.text})
                elif isinstance(part, ImagePart) and "system_image" not in dropped:
                    unsupported("system_image")
        elif msg.role == "tool":
            _append(messages, "user", [_tool_result_block(msg)])
        elif msg.role == "user":
            _append(messages, "user", _content_blocks(msg.content, thinking=False))
        else:
            blocks = _content_blocks(msg.content, thinking=True)
            for call in msg.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": _safe_id(call.id),
                        "name": call.name,
                        "input": _tool_input(call.arguments),
                    }
                )
            _append(messages, "assistant", blocks)
    for message in messages:
        if message["role"] == "user":
            _results_first(message)

    max_tokens = req.max_tokens if req.max_tokens is not None else options.default_max_tokens
    body: dict[str, Any] = {"model": options.model, "max_tokens": max_tokens}
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 else system
    body["messages"] = messages

    budget, budget_field = _thinking_budget(req)
    forced = req.tool_choice is not None and req.tool_choice.mode in ("required", "function")
    if budget is not None and budget_field is not None:
        if forced and req.tools:  # the API refuses forced tool use with thinking
            unsupported(budget_field)
            budget = None
        elif budget >= max_tokens:
            if req.max_tokens is None:
                max_tokens = budget + options.default_max_tokens
                body["max_tokens"] = max_tokens
            elif max_tokens - 1 >= MIN_THINKING_BUDGET:
                budget = max_tokens - 1
            else:
                unsupported(budget_field)
                budget = None
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}

    if req.temperature is not None:
        if budget is not None:
            dropped.append("temperature")  # the API refuses temperature with thinking
        else:
            body["temperature"] = min(max(float(req.temperature), 0.0), 1.0)
    if req.top_p is not None:
        body["top_p"] = min(max(req.top_p, 0.95), 1.0) if budget is not None else req.top_p
    if req.top_k is not None:
        if budget is not None:
            dropped.append("top_k")
        else:
            body["top_k"] = req.top_k
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.n is not None and req.n > 1:
        unsupported("n")
    if req.seed is not None:
        unsupported("seed")
    if req.presence_penalty:
        unsupported("presence_penalty")
    if req.frequency_penalty:
        unsupported("frequency_penalty")
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        if fmt.type == "json_schema" and fmt.schema:
            body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema}}
        else:
            unsupported("response_format")
    if req.tools:
        tools = []
        for tool in req.tools:
            schema = tool.parameters or DEFAULT_INPUT_SCHEMA
            if "type" not in schema:
                schema = {"type": "object", **schema}
            rendered: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                rendered["description"] = tool.description
            rendered["input_schema"] = schema
            if tool.strict:
                rendered["strict"] = True
            tools.append(rendered)
        body["tools"] = tools
        choice: dict[str, Any] | None = None
        if req.tool_choice is not None:
            choice = {"type": _TOOL_CHOICE_OUT[req.tool_choice.mode]}
            if req.tool_choice.mode == "function":
                choice["name"] = req.tool_choice.name or ""
        if req.parallel_tool_calls is False and (choice is None or choice["type"] != "none"):
            choice = choice or {"type": "auto"}
            choice["disable_parallel_tool_use"] = True
        if choice is not None:
            body["tool_choice"] = choice
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return RenderedRequest(_dumps(body), dropped)


# ---------------------------------------------------------------- provider side: answers


class _UsageTracker:
    """Anthropic reports input from message_start and cumulative totals in message_delta."""

    __slots__ = ("cache_creation", "cache_read", "output", "uncached")

    def __init__(self) -> None:
        self.uncached = self.cache_read = self.cache_creation = self.output = 0

    def update(self, usage: Any) -> bool:
        if not isinstance(usage, dict):
            return False
        if is_int(usage.get("input_tokens")):
            self.uncached = usage["input_tokens"]
        if is_int(usage.get("cache_read_input_tokens")):
            self.cache_read = usage["cache_read_input_tokens"]
        if is_int(usage.get("cache_creation_input_tokens")):
            self.cache_creation = usage["cache_creation_input_tokens"]
        if is_int(usage.get("output_tokens")):
            self.output = usage["output_tokens"]
        return True

    def canonical(self) -> Usage:
        return Usage(
            input_tokens=self.uncached + self.cache_read + self.cache_creation,
            output_tokens=self.output,
            cached_tokens=self.cache_read,
            cache_creation_tokens=self.cache_creation,
        )


def _provider_failure(message: str) -> GatewayError:
    return GatewayError("provider_error", message)


def _error_from_object(data: dict[str, Any], status: int | None) -> GatewayError:
    error = data.get("error")
    etype = message = None
    if isinstance(error, dict):
        etype, message = error.get("type"), error.get("message")
    if not isinstance(etype, str):
        etype = None
    if not isinstance(message, str) or not message:
        message = f"provider error ({etype or status or 'unknown'})"
    if status is None:
        kind = _ERROR_KINDS.get(etype or "", "provider_error")
        return GatewayError(kind, message, code=etype)
    kind = kind_for_status(status)
    if kind == "provider_auth":
        # the gateway's own key was refused: the operator's problem, reported as a 502
        # without the provider's text (which is about a key the client never saw)
        return GatewayError(kind, f"the provider refused the gateway's credentials ({status})", code=etype)
    return GatewayError(kind, message, code=etype, status=status)


def parse_error(status: int, body: bytes) -> GatewayError:
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        data = None
    if not isinstance(data, dict):
        text = body[:200].decode("utf-8", "replace").strip() if isinstance(body, bytes) else ""
        data = {"error": {"message": text or None}}
    return _error_from_object(data, status)


def parse_response(body: bytes) -> ChatResponse:
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        raise _provider_failure("provider answer is not valid JSON") from None
    if not isinstance(data, dict):
        raise _provider_failure("provider answer is not a JSON object")
    if data.get("type") == "error":
        raise _error_from_object(data, None)
    content = data.get("content")
    if not isinstance(content, list):
        raise _provider_failure("provider answer has no content array")
    choice = Choice(index=0)
    texts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        btype = block.get("type")
        if btype == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif btype == "tool_use":
            args = block.get("input")
            call_id, name = block.get("id"), block.get("name")
            choice.tool_calls.append(
                ToolCall(
                    call_id if isinstance(call_id, str) and call_id else _new_id("toolu_"),
                    name if isinstance(name, str) else "",
                    orjson.dumps(args).decode() if isinstance(args, dict) else "{}",
                )
            )
        elif btype == "thinking":
            text, signature = block.get("thinking"), block.get("signature")
            choice.thinking.append(
                ThinkingPart(
                    text if isinstance(text, str) else "",
                    signature if isinstance(signature, str) and signature else None,
                )
            )
        elif btype == "redacted_thinking" and isinstance(block.get("data"), str):
            choice.thinking.append(ThinkingPart("", block["data"], redacted=True))
    choice.text = "".join(texts)
    stop_reason = data.get("stop_reason")
    if isinstance(stop_reason, str):
        choice.finish_reason = _FINISH_IN.get(stop_reason, "stop")
    tracker = _UsageTracker()
    usage = tracker.canonical() if tracker.update(data.get("usage")) else None
    msg_id, model = data.get("id"), data.get("model")
    return ChatResponse(
        id=msg_id if isinstance(msg_id, str) and msg_id else _new_id("msg_"),
        model=model if isinstance(model, str) else "",
        created=int(time.time()),
        choices=[choice],
        usage=usage,
    )


class StreamDecoder:
    """Anthropic's SSE stream -> canonical events.

    message_start -> StreamStart + UsageUpdate(input), text/thinking/tool deltas,
    message_delta -> Finish + UsageUpdate (cumulative), `event: error` -> StreamFailure.
    A stream that ends before its stop reason is reported as a StreamFailure.
    Redacted thinking blocks have no canonical stream event and are skipped.
    """

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._created = int(time.time())
        self._started = False
        self._finished = False
        self._failed = False
        self._closed = False
        self._calls = 0
        self._blocks: dict[int, int] = {}  # content block index -> call_index (tool_use only)
        self._usage = _UsageTracker()

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for sse in self._sse.feed(chunk):
            self._handle(sse, events)
        return events

    def close(self) -> list[StreamEvent]:
        if self._closed:
            return []
        self._closed = True
        events: list[StreamEvent] = []
        for sse in self._sse.close():
            self._handle(sse, events)
        if not self._finished and not self._failed:
            self._fail(_provider_failure("provider stream ended before the message was complete"), events)
        return events

    def _fail(self, error: GatewayError, events: list[StreamEvent]) -> None:
        self._failed = True
        events.append(StreamFailure(error))

    def _handle(self, sse: SSEEvent, events: list[StreamEvent]) -> None:
        if self._failed:
            return
        if not sse.data:
            # a line that is no SSE field: only a bare JSON error object means something
            if sse.raw and not sse.event:
                self._raw_error("\n".join(sse.raw), events)
            return
        try:
            data = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            self._fail(_provider_failure("malformed event in the provider stream"), events)
            return
        etype = data.get("type")
        if not isinstance(etype, str):
            etype = sse.event
        if etype == "error":
            self._fail(_error_from_object(data, None), events)
        elif etype == "content_block_delta":
            self._block_delta(data, events)
        elif etype == "content_block_start":
            self._block_start(data, events)
        elif etype == "message_start":
            self._message_start(data.get("message"), events)
        elif etype == "message_delta":
            self._message_delta(data, events)
        # ping, content_block_stop, message_stop and unknown types carry nothing

    def _raw_error(self, text: str, events: list[StreamEvent]) -> None:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if isinstance(data, dict) and "error" in data:
            self._fail(_error_from_object(data, None), events)

    def _ensure_started(self, events: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            events.append(StreamStart(_new_id("msg_"), "", self._created))

    def _message_start(self, message: Any, events: list[StreamEvent]) -> None:
        if self._started or not isinstance(message, dict):
            self._ensure_started(events)
            return
        self._started = True
        msg_id, model = message.get("id"), message.get("model")
        has_usage = self._usage.update(message.get("usage"))
        usage = self._usage.canonical()
        events.append(
            StreamStart(
                msg_id if isinstance(msg_id, str) and msg_id else _new_id("msg_"),
                model if isinstance(model, str) else "",
                self._created,
                usage.input_tokens if has_usage else None,
            )
        )
        if has_usage:
            events.append(UsageUpdate(usage))

    def _block_start(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        self._ensure_started(events)
        block, index = data.get("content_block"), data.get("index")
        if not isinstance(block, dict) or not is_int(index):
            return
        btype = block.get("type")
        if btype == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            call_index = self._calls
            self._calls += 1
            self._blocks[index] = call_index
            events.append(
                ToolCallStart(
                    call_index,
                    call_id if isinstance(call_id, str) and call_id else _new_id("toolu_"),
                    name if isinstance(name, str) else "",
                )
            )
            args = block.get("input")
            if isinstance(args, dict) and args:  # a start that already carries its input
                events.append(ToolCallDelta(call_index, orjson.dumps(args).decode()))
        elif btype == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        elif btype == "thinking":
            text, signature = block.get("thinking"), block.get("signature")
            text = text if isinstance(text, str) else ""
            signature = signature if isinstance(signature, str) and signature else None
            if text or signature:
                events.append(ThinkingDelta(text, signature))

    def _block_delta(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        self._ensure_started(events)
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return
        dtype = delta.get("type")
        if dtype == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text))
        elif dtype == "input_json_delta":
            index = data.get("index")
            call_index = self._blocks.get(index) if is_int(index) else None
            fragment = delta.get("partial_json")
            if call_index is not None and isinstance(fragment, str) and fragment:
                events.append(ToolCallDelta(call_index, fragment))
        elif dtype == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                events.append(ThinkingDelta(text))
        elif dtype == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str) and signature:
                events.append(ThinkingDelta("", signature))

    def _message_delta(self, data: dict[str, Any], events: list[StreamEvent]) -> None:
        self._ensure_started(events)
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        if isinstance(reason, str) and not self._finished:
            self._finished = True
            events.append(Finish(_FINISH_IN.get(reason, "stop")))
        if self._usage.update(data.get("usage")):
            events.append(UsageUpdate(self._usage.canonical()))
