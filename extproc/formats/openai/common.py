"""Constants and small helpers shared by the OpenAI format's client and provider sides."""

from __future__ import annotations

import sys
from typing import Any

from extproc.formats.answer_values import random_text
from extproc.formats.canonical import ToolCall, Usage

MAX_TOKENS_FIELD = "max_completion_tokens"  # field used for canonical max_tokens upstream
MODELS_OWNED_BY = "gateway"
MODELS_CREATED = 0  # /v1/models "created": the gateway does not know the real date

DONE = b"data: [DONE]\n\n"
FINISH_IN = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_FINISH_OUT = {"error": "stop"}  # canonical -> OpenAI where the names differ
SYSTEM_ROLES = ("system", "developer")
LITTLE_ENDIAN = sys.byteorder == "little"
# what a missed shape check can raise; parsers turn these into GatewayError
SHAPE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError)


def new_completion_id() -> str:
    return "chatcmpl-" + random_text(29)


def new_call_id() -> str:
    return "call_" + random_text(24)


def usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def finish_out(reason: str | None) -> str:
    if reason is None:
        return "stop"
    return _FINISH_OUT.get(reason, reason)


def tool_call_json(tc: ToolCall) -> dict[str, Any]:
    return {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}
