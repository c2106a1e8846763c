"""Client side: ChatResponse -> an Anthropic message; error bodies and `/v1/models`."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError, render_anthropic_error
from extproc.formats.anthropic.common import anthropic_usage, dumps_lenient, message_id, new_id, stop_reason, tool_input
from extproc.formats.canonical import ChatResponse, Choice

MODELS_CREATED_AT = "1970-01-01T00:00:00Z"  # the API's own value for an unknown release date


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
                "id": call.id or new_id("toolu_"),
                "name": call.name,
                "input": tool_input(call.arguments),
            }
        )
    body = {
        "id": message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason(choice.finish_reason, bool(choice.tool_calls)),
        "stop_sequence": None,
        "usage": anthropic_usage(resp.usage),
    }
    return dumps_lenient(body)


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
