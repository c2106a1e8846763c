"""Provider side: ChatRequest -> a `POST /v1/responses` body (`render_request`).

For a client of another API reaching a provider that speaks only the Responses API. Nothing
is stored at the provider (`store: false`). Reasoning the provider gave earlier goes back as
reasoning items with its encrypted_content; another provider's thinking has no place there
and is left out (as Chat Completions does). The Responses API has no `stop`, `n`, `seed`,
penalties or `top_k`: they are dropped and named, or refused, per the provider's policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from extproc.formats.canonical import (
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    effort_of,
)
from extproc.formats.input_bounds import dumps_request
from extproc.formats.openai.common import _add_dropped
from extproc.formats.render_options import RenderedRequest, RenderOptions


def _content(parts: Sequence[Part], text_type: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            out.append({"type": text_type, "text": part.text})
        elif isinstance(part, ImagePart):
            url = f"data:{part.media_type or 'image/png'};base64,{part.data}" if part.data is not None else part.url
            image: dict[str, Any] = {"type": "input_image", "image_url": url, "detail": part.detail or "auto"}
            out.append(image)
        elif isinstance(part, FilePart):
            file: dict[str, Any] = {"type": "input_file"}
            if part.data is not None:
                file["file_data"] = f"data:{part.media_type or 'application/pdf'};base64,{part.data}"
            else:
                file["file_url"] = part.url
            if part.filename:
                file["filename"] = part.filename
            out.append(file)
    return out


def _assistant(message: Message, items: list[dict[str, Any]]) -> None:
    for part in message.content:
        if isinstance(part, ThinkingPart) and part.encrypted is not None:
            summary = [{"type": "summary_text", "text": part.text}] if part.text else []
            items.append({"type": "reasoning", "summary": summary, "encrypted_content": part.encrypted})
    texts = [part for part in message.content if isinstance(part, TextPart)]
    if texts:
        items.append({"type": "message", "role": "assistant", "content": _content(texts, "output_text")})
    for call in message.tool_calls:
        items.append({"type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments})


def _input(messages: list[Message]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            _assistant(message, items)
        elif message.role == "tool":
            content = message.content
            output: Any = content[0].text if len(content) == 1 and isinstance(content[0], TextPart) else None
            if output is None:
                output = _content(content, "input_text") if content else ""
            items.append({"type": "function_call_output", "call_id": message.tool_call_id or "", "output": output})
        else:
            items.append({"type": "message", "role": message.role, "content": _content(message.content, "input_text")})
    return items


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    dropped: list[str] = []
    body: dict[str, Any] = {"model": options.model, "input": _input(req.messages), "store": False}
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    for feature, asked in (
        ("stop", req.stop),
        ("n", req.n is not None and req.n > 1),
        ("seed", req.seed is not None),
        ("presence_penalty", req.presence_penalty),
        ("frequency_penalty", req.frequency_penalty),
        ("top_k", req.top_k is not None),
    ):
        if asked:
            _add_dropped(feature, options, dropped)
    fmt = req.response_format
    if fmt is not None:
        text_format: dict[str, Any] = {"type": fmt.type}
        if fmt.type == "json_schema":
            text_format.update(name=fmt.name or "response", schema=fmt.schema or {})
            if fmt.strict is not None:
                text_format["strict"] = fmt.strict
        body["text"] = {"format": text_format}
    if req.tools:
        body["tools"] = [_tool(tool) for tool in req.tools]
        if req.tool_choice is not None:
            choice = req.tool_choice
            body["tool_choice"] = (
                {"type": "function", "name": choice.name} if choice.mode == "function" else choice.mode
            )
        if req.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = req.parallel_tool_calls
    effort = effort_of(req)  # the client's level, or one for its thinking budget
    if effort is not None or req.reasoning_summary is not None:
        body["reasoning"] = {
            key: value for key, value in (("effort", effort), ("summary", req.reasoning_summary)) if value
        }
    if req.user is not None:
        body["user"] = req.user
    if req.stream:
        body["stream"] = True
    return RenderedRequest(dumps_request(body), dropped)


def _tool(tool: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parameters"] = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out
