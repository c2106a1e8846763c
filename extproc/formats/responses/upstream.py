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
    ResponseFormat,
    TextPart,
    ThinkingPart,
    effort_of,
)
from extproc.formats.input_bounds import dumps_request
from extproc.formats.provider_params import (
    Param,
    function_fields,
    put_params,
    schema_format_fields,
    without_lacking,
)
from extproc.formats.render_options import RenderedRequest, RenderOptions, Unsupported


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


def render_input(messages: list[Message]) -> list[dict[str, Any]]:
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


# The Responses API's plain parameters (the canonical ones it has no place for are its kind record's `unsupported`).
_PARAMS = (Param("max_tokens", "max_output_tokens"), Param("temperature", "temperature"), Param("top_p", "top_p"))
_NO_PARAMETERS = {"type": "object", "properties": {}}  # the API wants a function's parameters


def render_text_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_schema":
        return schema_format_fields({"type": "json_schema"}, fmt)
    return {"type": fmt.type}


def render_tools(req: ChatRequest, body: dict[str, Any]) -> None:
    if not req.tools:
        return
    body["tools"] = [
        function_fields(
            {"type": "function"},
            tool,
            "parameters",
            tool.parameters if tool.parameters is not None else _NO_PARAMETERS,
            tool.strict,
        )
        for tool in req.tools
    ]
    if req.tool_choice is not None:
        choice = req.tool_choice
        body["tool_choice"] = {"type": "function", "name": choice.name} if choice.mode == "function" else choice.mode
    if req.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = req.parallel_tool_calls


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    unsupported = Unsupported(options.unsupported)
    req = without_lacking(req, options.lacks, unsupported)
    body: dict[str, Any] = {"model": options.model, "input": render_input(req.messages), "store": False}
    put_params(req, _PARAMS, body)
    if req.response_format is not None:
        body["text"] = {"format": render_text_format(req.response_format)}
    render_tools(req, body)
    effort = effort_of(req)  # the client's level, or one for its thinking budget
    if effort is not None or req.reasoning_summary is not None:
        body["reasoning"] = {
            key: value for key, value in (("effort", effort), ("summary", req.reasoning_summary)) if value
        }
    if req.user is not None:
        body["user"] = req.user
    if req.stream:
        body["stream"] = True
    return RenderedRequest(dumps_request(body), unsupported.dropped)
