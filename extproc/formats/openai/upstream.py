"""Provider side: ChatRequest -> an OpenAI `/v1/chat/completions` body (`render_request`)."""

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
from extproc.formats.openai.common import MAX_TOKENS_FIELD, tool_call_json
from extproc.formats.provider_params import (
    Param,
    function_fields,
    is_given,
    put_params,
    schema_format_fields,
    without_lacking,
)
from extproc.formats.render_options import RenderedRequest, RenderOptions, Unsupported


def _parts_content(parts: Sequence[Part], allow_images: bool) -> str | list[dict[str, Any]]:
    """Canonical parts -> OpenAI content: a plain string when it is one text part."""
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart) and allow_images:
            url = f"data:{p.media_type or 'image/png'};base64,{p.data}" if p.data is not None else p.url or ""
            image: dict[str, Any] = {"url": url}
            if p.detail:
                image["detail"] = p.detail
            out.append({"type": "image_url", "image_url": image})
        elif isinstance(p, FilePart) and allow_images and p.data is not None:  # a URL has no place: see _files
            file = {"file_data": f"data:{p.media_type or 'application/pdf'};base64,{p.data}"}
            if p.filename:
                file["filename"] = p.filename
            out.append({"type": "file", "file": file})
    if len(out) == 1 and out[0]["type"] == "text":
        return out[0]["text"]
    return out


# Chat Completions' plain parameters: the canonical names are OpenAI's.
_PARAMS = (
    Param("max_tokens", MAX_TOKENS_FIELD),
    Param("temperature", "temperature"),
    Param("top_p", "top_p"),
    Param("n", "n"),
    Param("seed", "seed"),
    Param("presence_penalty", "presence_penalty"),
    Param("frequency_penalty", "frequency_penalty"),
    Param("stop", "stop", is_given),
)


def _files(m: Message, unsupported: Unsupported) -> None:
    """Chat Completions takes files inline in user messages only."""
    for p in m.content:
        if isinstance(p, FilePart) and (p.data is None or m.role != "user"):
            unsupported.lacks("file_url" if p.data is None else f"{m.role}_file")


def render_message(m: Message, unsupported: Unsupported) -> dict[str, Any]:
    _files(m, unsupported)
    if m.role == "user":
        return {"role": "user", "content": _parts_content(m.content, True)}
    if (
        m.role == "system"
    ):  # in its place: OpenAI reads system messages anywhere (Anthropic's mid-conversation ones too)
        if any(isinstance(p, ImagePart) for p in m.content):
            unsupported.lacks("system_image")
        return {"role": "system", "content": _parts_content(m.content, False)}
    if m.role == "tool":
        if any(isinstance(p, ImagePart) for p in m.content):
            unsupported.lacks("tool_result_image")
        content = _parts_content(m.content, False)
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": content or ""}
    # assistant: thinking has no OpenAI field and is left out of the history
    if any(isinstance(p, ImagePart) for p in m.content):
        unsupported.lacks("assistant_image")
    texts = [p for p in m.content if isinstance(p, TextPart)]
    out: dict[str, Any] = {"role": "assistant"}
    if texts:
        out["content"] = _parts_content(texts, False)
    else:
        out["content"] = None if m.tool_calls else ""
    if m.tool_calls:
        out["tool_calls"] = [tool_call_json(tc) for tc in m.tool_calls]
    return out


def _says_nothing(m: Message) -> bool:
    """An assistant turn of thinking only (Chat Completions has no field for it): left out, not sent empty."""
    return m.role == "assistant" and not m.tool_calls and all(isinstance(p, ThinkingPart) for p in m.content)


def render_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_schema":
        return {"type": "json_schema", "json_schema": schema_format_fields({}, fmt)}
    return {"type": fmt.type}


def render_tools(req: ChatRequest, body: dict[str, Any]) -> None:
    """The tools, and how they may be called: OpenAI refuses tool_choice and parallel_tool_calls
    without tools."""
    if not req.tools:
        return
    body["tools"] = [
        {"type": "function", "function": function_fields({}, t, "parameters", t.parameters, t.strict)}
        for t in req.tools
    ]
    tc = req.tool_choice
    if tc is not None:
        if tc.mode == "function":
            body["tool_choice"] = {"type": "function", "function": {"name": tc.name or ""}}
        else:
            body["tool_choice"] = tc.mode
    if req.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = req.parallel_tool_calls


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """ChatRequest -> an OpenAI /v1/chat/completions body for the provider."""
    unsupported = Unsupported(options.unsupported)
    req = without_lacking(req, options.lacks, unsupported)
    body: dict[str, Any] = {
        "model": options.model,
        "messages": [render_message(m, unsupported) for m in req.messages if not _says_nothing(m)],
    }
    put_params(req, _PARAMS, body)
    if req.response_format is not None:
        body["response_format"] = render_response_format(req.response_format)
    render_tools(req, body)
    if req.user is not None:
        body["user"] = req.user
    effort = effort_of(req)  # Anthropic adaptive thinking's effort, or a level for a thinking budget
    if effort is not None:
        body["reasoning_effort"] = effort
    if req.stream:
        body["stream"] = True
        if req.include_usage:
            body["stream_options"] = {"include_usage": True}
    return RenderedRequest(dumps_request(body), unsupported.dropped)
