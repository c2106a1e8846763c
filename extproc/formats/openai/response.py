"""Client side: ChatResponse -> `chat.completion` JSON, error bodies and the `/v1/models` list."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError, render_openai_error
from extproc.formats.canonical import ChatResponse
from extproc.formats.openai.common import MODELS_CREATED, MODELS_OWNED_BY, finish_out, tool_call_json, usage_json


def render_response(resp: ChatResponse) -> bytes:
    """ChatResponse -> `chat.completion` JSON (thinking is dropped: no official field)."""
    choices = []
    for c in sorted(resp.choices, key=lambda c: c.index):
        # OpenAI sends null content for a pure tool-call / refusal answer
        content: str | None = c.text if c.text or not (c.tool_calls or c.refusal) else None
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": c.refusal, "annotations": []}
        if c.tool_calls:
            message["tool_calls"] = [tool_call_json(tc) for tc in c.tool_calls]
        choices.append(
            {"index": c.index, "message": message, "logprobs": None, "finish_reason": finish_out(c.finish_reason)}
        )
    out: dict[str, Any] = {
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": choices,
    }
    if resp.usage is not None:
        out["usage"] = usage_json(resp.usage)
    out["service_tier"] = "default"
    out["system_fingerprint"] = None
    return orjson.dumps(out)


def render_error(error: GatewayError, request_id: str = "") -> bytes:
    return render_openai_error(error, request_id)


def render_models(models: list[str]) -> bytes:
    data = [{"id": m, "object": "model", "created": MODELS_CREATED, "owned_by": MODELS_OWNED_BY} for m in models]
    return orjson.dumps({"object": "list", "data": data})
