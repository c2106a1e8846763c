"""Provider side: a generateContent answer or an error body -> ChatResponse / GatewayError."""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.errors import ErrorKind, GatewayError, kind_for_status
from extproc.formats.answer_values import answer_object, count, random_text
from extproc.formats.canonical import ChatResponse, Choice, FinishReason, ThinkingPart, ToolCall, Usage
from extproc.formats.gemini.common import json_text, new_call_id

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


def finish_in(reason: str, has_calls: bool) -> FinishReason:
    if reason == "STOP" or reason == "FINISH_REASON_UNSPECIFIED":
        return "tool_calls" if has_calls else "stop"
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "error"  # OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...


def parse_usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = count(meta, "thoughtsTokenCount")
    return Usage(
        input_tokens=count(meta, "promptTokenCount") + count(meta, "toolUsePromptTokenCount"),
        output_tokens=count(meta, "candidatesTokenCount") + thoughts,
        cached_tokens=count(meta, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def parts_of(candidate: dict) -> list:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def call_from(call: dict, signature: Any) -> ToolCall:
    call_id = call.get("id")
    name = call.get("name")
    args = call.get("args")
    return ToolCall(
        call_id if isinstance(call_id, str) and call_id else new_call_id(),
        name if isinstance(name, str) else "",
        json_text(args if args is not None else {}),
        signature if isinstance(signature, str) else None,
    )


_KIND_BY_STATUS: dict[str, ErrorKind] = {
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


def error_from(http_status: int, err: Any, fallback: str) -> GatewayError:
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
    kind: ErrorKind
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
    return error_from(status, err, text or f"provider returned HTTP {status}")


def _parse_candidate(position: int, candidate: dict) -> Choice:
    index = candidate.get("index")
    choice = Choice(index=index if isinstance(index, int) and not isinstance(index, bool) else position)
    texts: list[str] = []
    for part in parts_of(candidate):
        if not isinstance(part, dict):
            continue
        sig = part.get("thoughtSignature")
        call = part.get("functionCall")
        if isinstance(call, dict):
            choice.tool_calls.append(call_from(call, sig))
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
        choice.finish_reason = finish_in(reason, bool(choice.tool_calls))
    return choice


def parse_response(body: bytes) -> ChatResponse:
    data = answer_object(body)
    if "error" in data:
        raise error_from(0, data["error"], "the provider returned an error")
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
        usage=parse_usage(data.get("usageMetadata")),
    )
