"""Provider side: ChatRequest -> a request body for api.anthropic.com."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, NamedTuple

from extproc.formats.anthropic.common import ALNUM, dumps_lenient, new_id, tool_input
from extproc.formats.canonical import ChatRequest, FilePart, ImagePart, Message, Part, TextPart, with_user_turn
from extproc.formats.client_errors import invalid
from extproc.formats.provider_params import (
    Bounds,
    Param,
    function_fields,
    is_given,
    put_params,
    without_lacking,
)
from extproc.formats.render_options import RenderedRequest, RenderOptions, Unsupported
from extproc.formats.turns import append_turn, results_first

# reasoning_effort -> thinking.budget_tokens (Anthropic minimum is 1024)
EFFORT_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768}
DYNAMIC_THINKING_BUDGET = 4096  # Gemini's thinkingBudget -1 ("model decides")
MIN_THINKING_BUDGET = 1024
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
DEFAULT_INPUT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

_ID_CHARS = frozenset(ALNUM + "_-")  # tool_use ids must match ^[a-zA-Z0-9_-]+$
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")  # one C match per id: a conversation has one per call and result
_TOOL_CHOICE_OUT = {"auto": "auto", "required": "any", "none": "none", "function": "tool"}


def _safe_id(call_id: str | None) -> str:
    """Anthropic accepts tool ids matching ^[a-zA-Z0-9_-]+$; map other characters to _."""
    if not call_id:
        return new_id("toolu_")
    if _SAFE_ID.fullmatch(call_id):
        return call_id
    return "".join(c if c in _ID_CHARS else "_" for c in call_id)


def _image_block(part: ImagePart) -> dict[str, Any]:
    data, media_type, url = part.data, part.media_type, part.url
    if data is None and url and url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64":
            raise invalid("image data URLs must be base64 encoded", "image_url")
        data = payload
    if data is not None:
        media_type = (media_type or "").lower()
        if media_type == "image/jpg":
            media_type = "image/jpeg"
        if media_type not in IMAGE_MEDIA_TYPES:
            raise invalid(
                f"image media type {media_type or 'unknown'!r} is not supported by this provider"
                " (jpeg, png, gif and webp only)",
                "image_url",
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url:
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise invalid("an image needs data or a url", "image_url")


def _document_block(part: FilePart) -> dict[str, Any]:
    """A PDF as a document block; a text file as a plain-text document."""
    source: dict[str, Any]
    if part.data is None:
        source = {"type": "url", "url": part.url or ""}
    elif (part.media_type or "").startswith("text/"):
        try:
            text = base64.b64decode(part.data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise invalid("a text file must be base64 encoded UTF-8", "input_file") from None
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        source = {"type": "base64", "media_type": part.media_type or "application/pdf", "data": part.data}
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def _content_blocks(parts: list[Part], thinking: bool) -> list[dict[str, Any]]:
    if len(parts) == 1 and type(parts[0]) is TextPart:  # most turns: one text, read without the loop
        text = parts[0].text
        return [{"type": "text", "text": text}] if text else []  # the API refuses empty text blocks
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            if part.text:  # the API refuses empty text blocks
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part))
        elif isinstance(part, FilePart):
            blocks.append(_document_block(part))
        elif thinking and part.signature:  # unsigned thinking cannot be verified: left out
            if part.redacted:
                blocks.append({"type": "redacted_thinking", "data": part.signature})
            else:
                blocks.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
    return blocks


def _tool_result_block(msg: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": _safe_id(msg.tool_call_id)}
    content = msg.content
    if len(content) == 1 and type(content[0]) is TextPart:  # most results: one text, the block's content
        if content[0].text:
            block["content"] = content[0].text
        if msg.is_error:
            block["is_error"] = True
        return block
    parts = _content_blocks(content, thinking=False)
    if len(parts) == 1 and parts[0]["type"] == "text":
        block["content"] = parts[0]["text"]
    elif parts:
        block["content"] = parts
    if msg.is_error:
        block["is_error"] = True
    return block


def _is_tool_result(block: dict[str, Any]) -> bool:
    return bool(block["type"] == "tool_result")


def thinking_budget(req: ChatRequest) -> tuple[int | None, str | None]:
    """(budget or None, the client's field that asked for it)."""
    if req.thinking_budget is not None:
        budget = req.thinking_budget
        if budget < 0:
            return DYNAMIC_THINKING_BUDGET, "thinking_budget"
        if budget == 0:
            return None, None
        return max(budget, MIN_THINKING_BUDGET), "thinking_budget"
    if req.reasoning_effort:
        return EFFORT_BUDGETS.get(req.reasoning_effort), "reasoning_effort"
    return None, None


# `stop` is Anthropic's stop_sequences (what it has no place for is its kind record's `unsupported`).
_PARAMS = (Param("stop", "stop_sequences", is_given),)


class Sampling(NamedTuple):
    """A sampling parameter's bounds without thinking and with it. None: sent as it is without
    thinking, and dropped with thinking (the API refuses it)."""

    field: str
    plain: Bounds | None
    thinking: Bounds | None


_SAMPLING = (
    Sampling("temperature", Bounds(0.0, 1.0, as_float=True), None),  # OpenAI's range is 0-2
    Sampling("top_p", None, Bounds(0.95, 1.0)),  # the API refuses a lower top_p with thinking
    Sampling("top_k", None, None),
)


def _system_blocks(msg: Message, unsupported: Unsupported) -> list[dict[str, Any]]:
    """A system message's text; Anthropic's system prompt has no images or files."""
    blocks: list[dict[str, Any]] = []
    for part in msg.content:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            unsupported.lacks("system_image")
        elif isinstance(part, FilePart):
            unsupported.lacks("system_file")
    return blocks


def render_conversation(
    req: ChatRequest, unsupported: Unsupported
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the top-level system blocks, the messages)."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for msg in with_user_turn(req.messages):
        if msg.role == "system":
            # The system messages before the first turn are the top-level `system`; a later one keeps
            # its place, as a system message in `messages` (the API takes them anywhere).
            blocks = _system_blocks(msg, unsupported)
            if messages:
                append_turn(messages, "system", blocks)
            else:
                system += blocks
        elif msg.role == "tool":
            append_turn(messages, "user", [_tool_result_block(msg)])
        elif msg.role == "user":
            append_turn(messages, "user", _content_blocks(msg.content, thinking=False))
        else:
            blocks = _content_blocks(msg.content, thinking=True)
            for call in msg.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": _safe_id(call.id),
                        "name": call.name,
                        "input": tool_input(call.arguments),
                    }
                )
            append_turn(messages, "assistant", blocks)
    for message in messages:
        if message["role"] == "user":
            results_first(message, _is_tool_result)
    return system, messages


def render_thinking(req: ChatRequest, body: dict[str, Any], options: RenderOptions, unsupported: Unsupported) -> bool:
    """Sets `thinking` (and a max_tokens with room for it); whether the model thinks."""
    budget, budget_field = thinking_budget(req)
    if budget is None or budget_field is None:
        return False
    forced = req.tool_choice is not None and req.tool_choice.mode in ("required", "function")
    max_tokens = body["max_tokens"]
    if forced and req.tools:  # the API refuses forced tool use with thinking
        unsupported.lacks(budget_field)
        return False
    if budget >= max_tokens:
        if req.max_tokens is None:
            body["max_tokens"] = budget + options.default_max_tokens
        elif max_tokens - 1 >= MIN_THINKING_BUDGET:
            budget = max_tokens - 1
        else:
            unsupported.lacks(budget_field)
            return False
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if req.reasoning_summary:  # the client asked to see the reasoning
        body["thinking"]["display"] = "summarized"
    return True


def render_sampling(req: ChatRequest, body: dict[str, Any], thinking: bool, unsupported: Unsupported) -> None:
    for row in _SAMPLING:
        value = getattr(req, row.field)
        if value is None:
            continue
        if thinking and row.thinking is None:
            unsupported.drop(row.field)  # the API refuses it with thinking
            continue
        bounds = row.thinking if thinking else row.plain
        body[row.field] = value if bounds is None else bounds.clamp(value)


def render_tools(req: ChatRequest, body: dict[str, Any]) -> None:
    if not req.tools:
        return
    body["tools"] = [
        function_fields({}, tool, "input_schema", _input_schema(tool.parameters), True if tool.strict else None)
        for tool in req.tools
    ]
    choice: dict[str, Any] | None = None
    if req.tool_choice is not None:
        choice = {"type": _TOOL_CHOICE_OUT[req.tool_choice.mode]}
        if req.tool_choice.mode == "function":
            choice["name"] = req.tool_choice.name or ""
    if req.parallel_tool_calls is False and (choice is None or choice["type"] != "none"):
        choice = choice or {"type": "auto"}
        choice["disable_parallel_tool_use"] = True
    if choice is not None:
        body["tool_choice"] = choice


def _input_schema(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """The API wants an object schema with its type."""
    schema = parameters or DEFAULT_INPUT_SCHEMA
    return schema if "type" in schema else {"type": "object", **schema}


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    body, dropped = request_body(req, options)
    return RenderedRequest(dumps_lenient(body), dropped)


def request_body(req: ChatRequest, options: RenderOptions) -> tuple[dict[str, Any], list[str]]:
    """The Messages request as a dict, and the features it leaves out: written as it is for
    api.anthropic.com, edited first for Claude on a cloud (Bedrock's InvokeModel)."""
    unsupported = Unsupported(options.unsupported)
    req = without_lacking(req, options.lacks, unsupported)
    system, messages = render_conversation(req, unsupported)
    body: dict[str, Any] = dict(options.body_fields)
    if options.model_in_body:
        body["model"] = options.model
    body["max_tokens"] = req.max_tokens if req.max_tokens is not None else options.default_max_tokens
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 else system
    body["messages"] = messages
    render_sampling(req, body, render_thinking(req, body, options, unsupported), unsupported)
    put_params(req, _PARAMS, body)
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        if fmt.type == "json_schema" and fmt.schema:
            body["output_config"] = {"format": {"type": "json_schema", "schema": fmt.schema}}
        else:
            unsupported.lacks("response_format")
    render_tools(req, body)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body, unsupported.dropped
