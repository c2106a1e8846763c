"""Provider side: a Responses API `response` object -> ChatResponse (`parse_response`).

Read for a translated answer, and for a passed-through one (its usage, the cache entry).
Items the canonical model has no place for (hosted tool calls) are left out of it; a
passed-through answer reaches its client unchanged anyway.
"""

from __future__ import annotations

import time
from typing import Any

from extproc.formats.answer_values import provider_error
from extproc.formats.canonical import ChatResponse, Choice, ThinkingPart, ToolCall
from extproc.formats.json_fields import is_int
from extproc.formats.openai.answers import load_answer
from extproc.formats.openai.provider_errors import error_from_object
from extproc.formats.responses.common import finish_of, flat_tool_name, new_response_id, parse_usage


def call_name(item: dict[str, Any]) -> str:
    """A function_call item's name, a namespaced one flattened as the request's tools were."""
    name = item.get("name")
    name = name if isinstance(name, str) else ""
    namespace = item.get("namespace")
    return flat_tool_name(namespace, name) if isinstance(namespace, str) and namespace else name


def summary_text(item: dict[str, Any]) -> str:
    """A reasoning item's text: its summary, else its full reasoning text."""
    for key in ("summary", "content"):
        parts = item.get(key)
        if isinstance(parts, list):
            texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
            if texts:
                return "\n\n".join(texts)
    return ""


def message_text(item: dict[str, Any]) -> tuple[str, str | None]:
    """(text, refusal) of a message item."""
    texts: list[str] = []
    refusal = None
    content = item.get("content")
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "output_text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            refusal = part["refusal"]
    return "".join(texts), refusal


def parse_response(body: bytes) -> ChatResponse:
    data = load_answer(body, "output")
    if data.get("status") == "failed":
        raise error_from_object(data.get("error") or "the provider failed to answer", None)
    output = data.get("output")
    if not isinstance(output, list):
        raise provider_error("provider response has no output")
    choice = Choice()
    texts: list[str] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            text, refusal = message_text(item)
            texts.append(text)
            choice.refusal = refusal or choice.refusal
        elif kind == "function_call":
            arguments = item.get("arguments")
            call_id = item.get("call_id")
            choice.tool_calls.append(
                ToolCall(
                    call_id if isinstance(call_id, str) else "",
                    call_name(item),
                    arguments if isinstance(arguments, str) else "",
                )
            )
        elif kind == "reasoning":
            encrypted = item.get("encrypted_content")
            text = summary_text(item)
            if text or isinstance(encrypted, str):
                choice.thinking.append(ThinkingPart(text, encrypted=encrypted if isinstance(encrypted, str) else None))
    choice.text = "".join(texts)
    choice.finish_reason = finish_of(data.get("status"), data.get("incomplete_details"), bool(choice.tool_calls))
    rid, model, created = data.get("id"), data.get("model"), data.get("created_at")
    return ChatResponse(
        id=rid if isinstance(rid, str) and rid else new_response_id(),
        model=model if isinstance(model, str) else "",
        created=created if is_int(created) else int(time.time()),
        choices=[choice],
        usage=parse_usage(data.get("usage")),
    )
