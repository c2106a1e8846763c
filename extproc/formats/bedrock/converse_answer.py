"""Provider side: a Converse answer -> ChatResponse; the stop reasons and usage the stream shares."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import orjson

from extproc.formats.answer_values import count, provider_error, random_text
from extproc.formats.canonical import ChatResponse, Choice, FinishReason, ThinkingPart, ToolCall, Usage

# stopReason -> finish reason (docs: mapping.md). A guardrail or a content filter that ended the
# turn is a content filter; a model that wrote a malformed answer or tool call failed.
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}


def finish_reason(stop_reason: Any, has_calls: bool) -> FinishReason:
    if isinstance(stop_reason, str) and stop_reason in STOP_REASONS:
        return STOP_REASONS[stop_reason]
    return "tool_calls" if has_calls else "stop"


def usage_of(usage: Any) -> Usage | None:
    """Converse's `inputTokens` leaves out the tokens read from and written to the cache; the
    canonical input count includes them (the totalTokens Bedrock reports agrees)."""
    if not isinstance(usage, dict):
        return None
    read, written = count(usage, "cacheReadInputTokens"), count(usage, "cacheWriteInputTokens")
    return Usage(
        input_tokens=count(usage, "inputTokens") + read + written,
        output_tokens=count(usage, "outputTokens"),
        cached_tokens=read,
        cache_creation_tokens=written,
        cache_write_1h_tokens=_kept_an_hour(usage.get("cacheDetails")),
    )


def _kept_an_hour(details: Any) -> int:
    """The cache writes kept an hour: `cacheDetails` splits the writes by TTL (`5m`, `1h`)."""
    if not isinstance(details, list):
        return 0
    return sum(count(d, "inputTokens") for d in details if isinstance(d, dict) and d.get("ttl") == "1h")


def redacted_data(blob: Any) -> str | None:
    """Bedrock's redactedContent (base64 of Anthropic's redacted data, a blob in the model) as
    Anthropic's data, which is what the canonical model carries; None when it is not that."""
    if not isinstance(blob, str) or not blob:
        return None
    try:
        return base64.b64decode(blob, validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def tool_arguments(value: Any) -> str:
    return orjson.dumps(value).decode() if isinstance(value, dict) else "{}"


def new_id() -> str:
    """Converse answers carry no id (the request id is a header)."""
    return "chatcmpl-" + random_text(24)


def parse_response(body: bytes) -> ChatResponse:
    try:
        data = orjson.loads(body)
    except (orjson.JSONDecodeError, TypeError):
        raise provider_error("provider answer is not valid JSON") from None
    if not isinstance(data, dict):
        raise provider_error("provider answer is not a JSON object")
    output = data.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise provider_error("provider answer has no output.message.content")
    choice = Choice(index=0)
    texts: list[str] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            call = block["toolUse"]
            if call.get("type") == "server_tool_use":
                continue  # run by Bedrock itself (code execution): nothing for the client to call
            call_id, name = call.get("toolUseId"), call.get("name")
            choice.tool_calls.append(
                ToolCall(
                    call_id if isinstance(call_id, str) and call_id else "tooluse_" + random_text(22),
                    name if isinstance(name, str) else "",
                    tool_arguments(call.get("input")),
                )
            )
        elif isinstance(block.get("reasoningContent"), dict):
            thinking = _reasoning(block["reasoningContent"])
            if thinking is not None:
                choice.thinking.append(thinking)
    choice.text = "".join(texts)
    choice.finish_reason = finish_reason(data.get("stopReason"), bool(choice.tool_calls))
    return ChatResponse(new_id(), "", int(time.time()), [choice], usage_of(data.get("usage")))


def _reasoning(reasoning: dict[str, Any]) -> ThinkingPart | None:
    text_block = reasoning.get("reasoningText")
    if isinstance(text_block, dict):
        text, signature = text_block.get("text"), text_block.get("signature")
        return ThinkingPart(
            text if isinstance(text, str) else "", signature if isinstance(signature, str) and signature else None
        )
    data = redacted_data(reasoning.get("redactedContent"))
    return ThinkingPart("", data, redacted=True) if data is not None else None
