"""Shared by the client and provider sides: ids, JSON output, finish reasons, usage and tool input."""

from __future__ import annotations

import secrets
import string
from typing import Any

import orjson

from extproc.formats.canonical import FinishReason, Usage
from extproc.formats.input_bounds import MAX_DEPTH, ORJSON_WRITE_DEPTH, too_deep

ALNUM = string.ascii_letters + string.digits

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


def finish_in(reason: str) -> FinishReason:
    """An Anthropic stop_reason as the canonical finish reason."""
    return _FINISH_IN.get(reason, "stop")


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ALNUM) for _ in range(24))


def message_id(source: str) -> str:
    """Anthropic ids start with msg_; another provider's id is kept after it for tracing."""
    if not source:
        return new_id("msg_")
    return source if source.startswith("msg_") else "msg_" + source


def dumps_lenient(value: Any) -> bytes:
    """orjson refuses lone surrogates; replace them rather than emit nothing. It also refuses
    values deeper than it writes (a client's tool schema or tool input): a 400."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return orjson.dumps(_scrub(value, 0))
    except TypeError:
        raise too_deep("body", ORJSON_WRITE_DEPTH) from None


def _scrub(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if depth > MAX_DEPTH:  # the walk is ours: bounded like every walk over client JSON
        raise too_deep("body")
    if isinstance(value, dict):
        return {_scrub(k, depth): _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, depth + 1) for v in value]
    return value


def anthropic_usage(usage: Usage | None) -> dict[str, Any]:
    """`usage` of a message (and of a stream's message_start and message_delta). Reasoning tokens,
    whichever provider counted them, are `output_tokens_details.thinking_tokens` (part of
    output_tokens, as the API reports them)."""
    if usage is None:
        return {
            "input_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 0,
        }
    uncached = usage.input_tokens - usage.cached_tokens - usage.cache_creation_tokens
    out: dict[str, Any] = {
        "input_tokens": max(uncached, 0),
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }
    if usage.cache_creation_tokens > 0:  # the writes by how long they are kept, as the API splits them
        kept_1h = min(max(usage.cache_write_1h_tokens, 0), usage.cache_creation_tokens)
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_creation_tokens - kept_1h,
            "ephemeral_1h_input_tokens": kept_1h,
        }
    if usage.reasoning_tokens > 0:
        out["output_tokens_details"] = {"thinking_tokens": min(usage.reasoning_tokens, usage.output_tokens)}
    return out


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's JSON text as the object Anthropic wants; anything else becomes {}."""
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def stop_reason(reason: str | None, has_tools: bool) -> str:
    if reason is None:
        return "tool_use" if has_tools else "end_turn"
    return _FINISH_OUT.get(reason, "end_turn")
