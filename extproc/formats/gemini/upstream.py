"""Provider side: ChatRequest -> a generateContent body."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.canonical import (
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCall,
    with_user_turn,
)
from extproc.formats.client_errors import invalid
from extproc.formats.gemini.common import GENERATION_NUMBERS, object_fragment
from extproc.formats.gemini.parts import _call_part, _thought_part
from extproc.formats.render_options import RenderedRequest, RenderOptions

_EFFORT_BUDGET = {"none": 0, "minimal": 128, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}

_MIME_BY_EXT = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "mp4": "video/mp4",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "txt": "text/plain",
}


def _guess_mime(url: str) -> str:
    path = url.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MIME_BY_EXT.get(ext, "image/jpeg")


def _image_json(part: ImagePart) -> dict:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type or "image/jpeg", "data": part.data}}
    url = part.url or ""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";", 1)[0] or part.media_type or "image/jpeg"
        return {"inlineData": {"mimeType": mime, "data": data}}
    return {"fileData": {"mimeType": part.media_type or _guess_mime(url), "fileUri": url}}


def _file_json(part: FilePart) -> dict:
    media_type = part.media_type or "application/pdf"
    if part.data is not None:
        return {"inlineData": {"mimeType": media_type, "data": part.data}}
    return {"fileData": {"mimeType": media_type, "fileUri": part.url or ""}}


def _unsupported(feature: str, options: RenderOptions, dropped: list[str]) -> None:
    if options.unsupported == "reject":
        raise GatewayError("invalid_request", f"{feature} is not supported by this provider", param=feature)
    if feature not in dropped:
        dropped.append(feature)


def _tool_response_json(msg: Message) -> dict | orjson.Fragment:
    text = "".join(p.text for p in msg.content if isinstance(p, TextPart))
    obj = object_fragment(text)
    if msg.is_error:
        return {"error": text if obj is None else obj}
    return {"output": text} if obj is None else obj


def _model_parts(msg: Message) -> list[dict]:
    parts: list[dict] = []
    bare_signatures: list[str] = []  # signature-only thinking: belongs to a function call
    for part in msg.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ThinkingPart):
            if part.redacted or part.encrypted is not None:
                continue  # opaque Anthropic or OpenAI data, meaningless to Gemini
            if part.text:
                parts.append(_thought_part(part.text, part.signature))
            elif part.signature:
                bare_signatures.append(part.signature)
        elif isinstance(part, ImagePart):
            parts.append(_image_json(part))
    for call in msg.tool_calls:
        signature = call.signature
        if signature is None and bare_signatures:
            signature = bare_signatures.pop(0)
        parts.append(_call_part(ToolCall(call.id, call.name, call.arguments, signature)))
    parts.extend(_thought_part("", sig) for sig in bare_signatures)
    return parts


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """A generateContent body (the model and streaming go in the URL)."""
    dropped: list[str] = []
    system: list[dict] = []
    contents: list[dict] = []
    names: dict[str, str] = {}  # tool call id -> function name
    tool_turn: dict | None = None  # the user content collecting consecutive tool results
    for i, msg in enumerate(with_user_turn(req.messages)):
        if msg.role == "system":
            # Gemini has one systemInstruction and no system turns. Every system message, a later one
            # too (Anthropic's and OpenAI's mid-conversation system messages), is folded into it in
            # conversation order: it keeps its authority (the meaning) and its order among the other
            # system texts, not its place among the turns. As a user turn it would keep the place but
            # speak with the user's voice, which changes what it means more.
            for part in msg.content:
                if isinstance(part, TextPart):
                    system.append({"text": part.text})
                elif isinstance(part, ImagePart):
                    _unsupported("system_image", options, dropped)
                elif isinstance(part, FilePart):
                    _unsupported("system_file", options, dropped)
            continue
        if msg.role == "tool":
            name = msg.name or names.get(msg.tool_call_id or "")
            if not name:
                raise invalid("tool message does not answer a known tool call", f"messages[{i}].tool_call_id")
            if any(isinstance(p, ImagePart) for p in msg.content):
                _unsupported("tool_result_image", options, dropped)
            if any(isinstance(p, FilePart) for p in msg.content):
                _unsupported("tool_file", options, dropped)
            response: dict[str, Any] = {"name": name, "response": _tool_response_json(msg)}
            if msg.tool_call_id:
                response["id"] = msg.tool_call_id
            if tool_turn is None:
                tool_turn = {"role": "user", "parts": []}
                contents.append(tool_turn)
            tool_turn["parts"].append({"functionResponse": response})
            continue
        tool_turn = None
        if msg.role == "assistant":
            for call in msg.tool_calls:
                names[call.id] = call.name
            parts = _model_parts(msg)
            if parts:
                contents.append({"role": "model", "parts": parts})
        else:
            parts = []
            for part in msg.content:
                if isinstance(part, TextPart):
                    if part.text:
                        parts.append({"text": part.text})
                elif isinstance(part, ImagePart):
                    parts.append(_image_json(part))
                elif isinstance(part, FilePart):
                    parts.append(_file_json(part))
            if parts:
                contents.append({"role": "user", "parts": parts})

    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if req.tools:
        decls = []
        for tool in req.tools:
            decl: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                decl["description"] = tool.description
            if tool.parameters is not None:
                decl["parametersJsonSchema"] = tool.parameters
            decls.append(decl)
        body["tools"] = [{"functionDeclarations": decls}]
    if req.tool_choice is not None:
        choice = req.tool_choice
        fcc: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE"}.get(choice.mode, "ANY")}
        if choice.mode == "function" and choice.name:
            fcc["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": fcc}
    if req.parallel_tool_calls is False:
        _unsupported("parallel_tool_calls", options, dropped)

    config: dict[str, Any] = {}
    for camel, _, field_name, _ in GENERATION_NUMBERS:
        value = getattr(req, field_name)
        if value is not None:
            config[camel] = value
    if req.stop:
        config["stopSequences"] = req.stop
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = fmt.schema
    budget = req.thinking_budget
    if budget is None and req.reasoning_effort is not None:
        budget = _EFFORT_BUDGET.get(req.reasoning_effort)
        if budget is None:
            _unsupported("reasoning_effort", options, dropped)
    thinking: dict[str, Any] = {}
    if budget is not None:
        thinking["thinkingBudget"] = budget
    if req.reasoning_summary and budget != 0:  # the client asked to see the reasoning: Gemini's thought summaries
        thinking["includeThoughts"] = True
    if thinking:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    try:
        return RenderedRequest(orjson.dumps(body), dropped)
    except orjson.JSONEncodeError:  # a schema deeper than orjson writes (254 levels)
        raise invalid("the request is nested too deeply", "tools") from None
