"""Client side: the pieces of a Responses answer, shared by the whole answer and the stream:
output items (message, function_call, reasoning) and the `response` object around them."""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.formats.canonical import ChatRequest, Choice, ThinkingPart, ToolChoice, Usage
from extproc.formats.responses import reasoning
from extproc.formats.responses.common import new_item_id, usage_json


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(item_id: str, text: str, refusal: str | None, status: str = "completed") -> dict[str, Any]:
    content = [text_part(text)] if text or not refusal else []
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, request: ChatRequest, status: str = "completed"
) -> dict[str, Any]:
    """A function_call item; a flattened namespace tool goes back as namespace + name."""
    item: dict[str, Any] = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }
    nested = request.tool_namespaces.get(name)
    if nested is not None:
        item["namespace"], item["name"] = nested
    return item


def reasoning_item(item_id: str, part: ThinkingPart, summarize: bool) -> dict[str, Any]:
    """A reasoning item: its text as the summary when the client asked for one (as OpenAI
    shows reasoning only then), and what the provider needs back in encrypted_content."""
    summary = [{"type": "summary_text", "text": part.text}] if summarize and part.text else []
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": summary}
    encrypted = reasoning.encode(part)
    if encrypted is not None:
        item["encrypted_content"] = encrypted
    return item


def output_items(choice: Choice, request: ChatRequest) -> list[dict[str, Any]]:
    """A whole answer's output, in OpenAI's order: reasoning, the message, the calls."""
    summarize = request.reasoning_summary is not None
    items = [reasoning_item(new_item_id("rs_"), part, summarize) for part in choice.thinking if _kept(part)]
    if choice.text or choice.refusal:
        items.append(message_item(new_item_id("msg_"), choice.text, choice.refusal))
    for call in choice.tool_calls:
        if call.signature:  # Gemini's thoughtSignature of the call, back with the next turn
            items.append(reasoning_item(new_item_id("rs_"), ThinkingPart("", call.signature), False))
        items.append(call_item(new_item_id("fc_"), call.id, call.name, call.arguments, request))
    return items


def _kept(part: ThinkingPart) -> bool:
    """Thinking with neither text nor anything to verify it by says nothing."""
    return bool(part.text or part.signature or part.encrypted)


def tool_choice_json(choice: ToolChoice | None) -> Any:
    if choice is None:
        return "auto"
    if choice.mode == "function":
        return {"type": "function", "name": choice.name}
    return choice.mode


def response_head(response_id: str, model: str, created: int, request: ChatRequest) -> bytes:
    """The `response` object's fields that stay the same all through a stream, as JSON without
    its closing brace: `response_json` finishes it (the stream writes it three times)."""
    fmt = request.response_format
    text_format: dict[str, Any] = {"type": fmt.type if fmt is not None else "text"}
    if fmt is not None and fmt.type == "json_schema":
        text_format.update(name=fmt.name or "response", schema=fmt.schema or {}, strict=bool(fmt.strict))
    head = {
        "id": response_id,
        "object": "response",
        "created_at": created or int(time.time()),
        "background": False,
        "instructions": None,
        "max_output_tokens": request.max_tokens,
        "max_tool_calls": None,
        "model": model or request.model,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": None,
        "reasoning": {"effort": request.reasoning_effort, "summary": request.reasoning_summary},
        "service_tier": "default",
        "store": False,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": {"format": text_format, "verbosity": "medium"},
        "tool_choice": tool_choice_json(request.tool_choice),
        "tools": [],
        "top_logprobs": 0,
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": "disabled",
        "user": request.user,
        "metadata": {},
    }
    return orjson.dumps(head)[:-1]


def response_json(
    head: bytes,
    status: str,
    output: list[bytes],
    usage: Usage | None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, Any] | None = None,
) -> bytes:
    """The whole `response` object: `head`, then what changes as the answer goes on."""
    return b'%s,"status":"%s","error":%s,"incomplete_details":%s,"output":[%s],"usage":%s}' % (
        head,
        status.encode(),
        orjson.dumps(error),
        orjson.dumps(incomplete),
        b",".join(output),
        orjson.dumps(usage_json(usage)),
    )
