"""Provider side: Anthropic's message and error answers -> ChatResponse and GatewayError."""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.errors import GatewayError, kind_for_status
from extproc.formats.anthropic.common import finish_in, new_id
from extproc.formats.canonical import ChatResponse, Choice, ThinkingPart, ToolCall, Usage
from extproc.formats.json_fields import is_int

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


class UsageTracker:
    """Anthropic reports input from message_start and cumulative totals in message_delta."""

    __slots__ = ("cache_creation", "cache_read", "kept_1h", "output", "thinking", "uncached")

    def __init__(self) -> None:
        self.uncached = self.cache_read = self.cache_creation = self.kept_1h = self.output = self.thinking = 0

    def update(self, usage: Any) -> bool:
        if not isinstance(usage, dict):
            return False
        if is_int(usage.get("input_tokens")):
            self.uncached = usage["input_tokens"]
        if is_int(usage.get("cache_read_input_tokens")):
            self.cache_read = usage["cache_read_input_tokens"]
        if is_int(usage.get("cache_creation_input_tokens")):
            self.cache_creation = usage["cache_creation_input_tokens"]
        written = usage.get("cache_creation")  # the writes by how long they are kept (priced apart)
        if isinstance(written, dict) and is_int(written.get("ephemeral_1h_input_tokens")):
            self.kept_1h = written["ephemeral_1h_input_tokens"]
        if is_int(usage.get("output_tokens")):
            self.output = usage["output_tokens"]
        details = usage.get("output_tokens_details")  # thinking_tokens: part of output_tokens
        if isinstance(details, dict) and is_int(details.get("thinking_tokens")):
            self.thinking = details["thinking_tokens"]
        return True

    def canonical(self) -> Usage:
        return Usage(
            input_tokens=self.uncached + self.cache_read + self.cache_creation,
            output_tokens=self.output,
            cached_tokens=self.cache_read,
            cache_creation_tokens=self.cache_creation,
            reasoning_tokens=self.thinking,
            cache_write_1h_tokens=self.kept_1h,
        )


def provider_failure(message: str) -> GatewayError:
    return GatewayError("provider_error", message)


def error_from_object(data: dict[str, Any], status: int | None) -> GatewayError:
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
    return error_from_object(data, status)


def parse_response(body: bytes) -> ChatResponse:
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        raise provider_failure("provider answer is not valid JSON") from None
    if not isinstance(data, dict):
        raise provider_failure("provider answer is not a JSON object")
    if data.get("type") == "error":
        raise error_from_object(data, None)
    content = data.get("content")
    if not isinstance(content, list):
        raise provider_failure("provider answer has no content array")
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
                    call_id if isinstance(call_id, str) and call_id else new_id("toolu_"),
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
        choice.finish_reason = finish_in(stop_reason)
    tracker = UsageTracker()
    usage = tracker.canonical() if tracker.update(data.get("usage")) else None
    msg_id, model = data.get("id"), data.get("model")
    return ChatResponse(
        id=msg_id if isinstance(msg_id, str) and msg_id else new_id("msg_"),
        model=model if isinstance(model, str) else "",
        created=int(time.time()),
        choices=[choice],
        usage=usage,
    )
