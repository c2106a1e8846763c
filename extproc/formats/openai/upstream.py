"""Provider side: ChatRequest -> an OpenAI `/v1/chat/completions` body (`render_request`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from extproc.formats.canonical import ChatRequest, FilePart, ImagePart, Message, Part, TextPart, ThinkingPart, effort_of
from extproc.formats.input_bounds import dumps_request
from extproc.formats.openai.common import MAX_TOKENS_FIELD, _add_dropped, _tool_call_json
from extproc.formats.render_options import RenderedRequest, RenderOptions


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


def _files(m: Message, options: RenderOptions, dropped: list[str]) -> None:
    """Chat Completions takes files inline in user messages only."""
    for p in m.content:
        if isinstance(p, FilePart) and (p.data is None or m.role != "user"):
            _add_dropped("file_url" if p.data is None else f"{m.role}_file", options, dropped)


def _render_message(m: Message, options: RenderOptions, dropped: list[str]) -> dict[str, Any]:
    _files(m, options, dropped)
    if m.role == "user":
        return {"role": "user", "content": _parts_content(m.content, True)}
    if (
        m.role == "system"
    ):  # in its place: OpenAI reads system messages anywhere (Anthropic's mid-conversation ones too)
        if any(isinstance(p, ImagePart) for p in m.content):
            _add_dropped("system_image", options, dropped)
        return {"role": "system", "content": _parts_content(m.content, False)}
    if m.role == "tool":
        if any(isinstance(p, ImagePart) for p in m.content):
            _add_dropped("tool_result_image", options, dropped)
        content = _parts_content(m.content, False)
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": content or ""}
    # assistant: thinking has no OpenAI field and is left out of the history
    if any(isinstance(p, ImagePart) for p in m.content):
        _add_dropped("assistant_image", options, dropped)
    texts = [p for p in m.content if isinstance(p, TextPart)]
    out: dict[str, Any] = {"role": "assistant"}
    if texts:
        out["content"] = _parts_content(texts, False)
    else:
        out["content"] = None if m.tool_calls else ""
    if m.tool_calls:
        out["tool_calls"] = [_tool_call_json(tc) for tc in m.tool_calls]
    return out


def _says_nothing(m: Message) -> bool:
    """An assistant turn of thinking only (Chat Completions has no field for it): left out, not sent empty."""
    return m.role == "assistant" and not m.tool_calls and all(isinstance(p, ThinkingPart) for p in m.content)


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """ChatRequest -> an OpenAI /v1/chat/completions body for the provider."""
    dropped: list[str] = []
    body: dict[str, Any] = {
        "model": options.model,
        "messages": [_render_message(m, options, dropped) for m in req.messages if not _says_nothing(m)],
    }
    if req.max_tokens is not None:
        body[MAX_TOKENS_FIELD] = req.max_tokens
    for key in ("temperature", "top_p", "n", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.top_k is not None:
        _add_dropped("top_k", options, dropped)
    if req.stop:
        body["stop"] = req.stop
    rf = req.response_format
    if rf is not None:
        if rf.type == "json_schema":
            js: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {}}
            if rf.strict is not None:
                js["strict"] = rf.strict
            body["response_format"] = {"type": "json_schema", "json_schema": js}
        else:
            body["response_format"] = {"type": rf.type}
    if req.tools:
        tools = []
        for t in req.tools:
            fn: dict[str, Any] = {"name": t.name}
            if t.description is not None:
                fn["description"] = t.description
            if t.parameters is not None:
                fn["parameters"] = t.parameters
            if t.strict is not None:
                fn["strict"] = t.strict
            tools.append({"type": "function", "function": fn})
        body["tools"] = tools
    tc = req.tool_choice
    if tc is not None and req.tools:  # OpenAI refuses tool_choice without tools
        if tc.mode == "function":
            body["tool_choice"] = {"type": "function", "function": {"name": tc.name or ""}}
        else:
            body["tool_choice"] = tc.mode
    if req.parallel_tool_calls is not None and req.tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.user is not None:
        body["user"] = req.user
    effort = effort_of(req)  # Anthropic adaptive thinking's effort, or a level for a thinking budget
    if effort is not None:
        body["reasoning_effort"] = effort
    if req.stream:
        body["stream"] = True
        if req.include_usage:
            body["stream_options"] = {"include_usage": True}
    return RenderedRequest(dumps_request(body), dropped)
