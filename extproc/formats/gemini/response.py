"""Client side: ChatResponse, errors and the model list -> Gemini JSON."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError, render_gemini_error
from extproc.formats.canonical import ChatResponse, Usage
from extproc.formats.gemini.parts import call_part, thought_part

FINISH_OUT = {
    "stop": "STOP",
    "tool_calls": "STOP",  # Gemini reports STOP for function calls
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "error": "OTHER",
}


def usage_json(usage: Usage, final: bool = True) -> dict:
    reasoning = usage.reasoning_tokens
    candidates = max(usage.output_tokens - reasoning, 0)
    out: dict[str, int] = {"promptTokenCount": usage.input_tokens}
    if candidates or final:
        out["candidatesTokenCount"] = candidates
    out["totalTokenCount"] = usage.input_tokens + usage.output_tokens
    if usage.cached_tokens > 0:
        out["cachedContentTokenCount"] = usage.cached_tokens
    if reasoning > 0:
        out["thoughtsTokenCount"] = reasoning
    return out


def render_response(resp: ChatResponse) -> bytes:
    candidates = []
    for choice in resp.choices:
        parts = [thought_part(t.text, t.signature) for t in choice.thinking if not t.redacted]
        text = choice.text or choice.refusal or ""
        if text:
            parts.append({"text": text})
        parts.extend(call_part(call) for call in choice.tool_calls)
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if choice.finish_reason is not None:
            candidate["finishReason"] = FINISH_OUT.get(choice.finish_reason, "OTHER")
        candidate["index"] = choice.index
        candidates.append(candidate)
    out: dict[str, Any] = {"candidates": candidates}
    if resp.usage is not None:
        out["usageMetadata"] = usage_json(resp.usage)
    out["modelVersion"] = resp.model
    out["responseId"] = resp.id
    return orjson.dumps(out)


def render_error(error: GatewayError, request_id: str = "") -> bytes:
    return render_gemini_error(error, request_id)


def render_models(models: list[str]) -> bytes:
    """A models.list page. Names containing "embedding" advertise the embedding methods."""
    entries = []
    for model in models:
        name = model[7:] if model.startswith("models/") else model
        if "embedding" in name:
            methods = ["embedContent", "batchEmbedContents"]
        else:
            methods = ["generateContent", "streamGenerateContent"]
        entries.append({"name": "models/" + name, "displayName": name, "supportedGenerationMethods": methods})
    return orjson.dumps({"models": entries})
