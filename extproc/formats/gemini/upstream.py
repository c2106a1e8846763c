"""Provider side: ChatRequest -> a generateContent body."""

from __future__ import annotations

from typing import Any

import orjson

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
from extproc.formats.gemini.parts import call_part, thought_part
from extproc.formats.provider_params import Param, function_fields, is_given, put_params, without_lacking
from extproc.formats.render_options import RenderedRequest, RenderOptions, Unsupported

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
                parts.append(thought_part(part.text, part.signature))
            elif part.signature:
                bare_signatures.append(part.signature)
        elif isinstance(part, ImagePart):
            parts.append(_image_json(part))
    for call in msg.tool_calls:
        signature = call.signature
        if signature is None and bare_signatures:
            signature = bare_signatures.pop(0)
        parts.append(call_part(ToolCall(call.id, call.name, call.arguments, signature)))
    parts.extend(thought_part("", sig) for sig in bare_signatures)
    return parts


# generationConfig's plain parameters (the same table reads them from a Gemini client).
_PARAMS = (
    *(Param(field, camel) for camel, _, field, _ in GENERATION_NUMBERS),
    Param("stop", "stopSequences", is_given),
)
_MODES = {"auto": "AUTO", "none": "NONE"}  # any other: ANY


def _user_parts(msg: Message) -> list[dict]:
    parts: list[dict] = []
    for part in msg.content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image_json(part))
        elif isinstance(part, FilePart):
            parts.append(_file_json(part))
    return parts


def _function_response(msg: Message, i: int, names: dict[str, str], unsupported: Unsupported) -> dict:
    name = msg.name or names.get(msg.tool_call_id or "")
    if not name:
        raise invalid("tool message does not answer a known tool call", f"messages[{i}].tool_call_id")
    if any(isinstance(p, ImagePart) for p in msg.content):
        unsupported.lacks("tool_result_image")
    if any(isinstance(p, FilePart) for p in msg.content):
        unsupported.lacks("tool_file")
    response: dict[str, Any] = {"name": name, "response": _tool_response_json(msg)}
    if msg.tool_call_id:
        response["id"] = msg.tool_call_id
    return {"functionResponse": response}


def render_conversation(req: ChatRequest, unsupported: Unsupported) -> tuple[list[dict], list[dict]]:
    """(the systemInstruction's parts, the contents)."""
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
                    unsupported.lacks("system_image")
                elif isinstance(part, FilePart):
                    unsupported.lacks("system_file")
            continue
        if msg.role == "tool":
            if tool_turn is None:
                tool_turn = {"role": "user", "parts": []}
                contents.append(tool_turn)
            tool_turn["parts"].append(_function_response(msg, i, names, unsupported))
            continue
        tool_turn = None
        if msg.role == "assistant":
            for call in msg.tool_calls:
                names[call.id] = call.name
            parts = _model_parts(msg)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif parts := _user_parts(msg):
            contents.append({"role": "user", "parts": parts})
    return system, contents


def render_tools(req: ChatRequest, body: dict[str, Any]) -> None:
    if req.tools:
        decls = [function_fields({}, tool, "parametersJsonSchema", tool.parameters, None) for tool in req.tools]
        body["tools"] = [{"functionDeclarations": decls}]
    if req.tool_choice is not None:
        choice = req.tool_choice
        fcc: dict[str, Any] = {"mode": _MODES.get(choice.mode, "ANY")}
        if choice.mode == "function" and choice.name:
            fcc["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": fcc}


def render_thinking_config(req: ChatRequest, unsupported: Unsupported) -> dict[str, Any]:
    budget = req.thinking_budget
    if budget is None and req.reasoning_effort is not None:
        budget = _EFFORT_BUDGET.get(req.reasoning_effort)
        if budget is None:
            unsupported.lacks("reasoning_effort")
    thinking: dict[str, Any] = {}
    if budget is not None:
        thinking["thinkingBudget"] = budget
    if req.reasoning_summary and budget != 0:  # the client asked to see the reasoning: Gemini's thought summaries
        thinking["includeThoughts"] = True
    return thinking


def render_generation_config(req: ChatRequest, unsupported: Unsupported) -> dict[str, Any]:
    config: dict[str, Any] = {}
    put_params(req, _PARAMS, config)
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = fmt.schema
    if thinking := render_thinking_config(req, unsupported):
        config["thinkingConfig"] = thinking
    return config


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """A generateContent body (the model and streaming go in the URL)."""
    unsupported = Unsupported(options.unsupported)
    req = without_lacking(req, options.lacks, unsupported)
    system, contents = render_conversation(req, unsupported)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    render_tools(req, body)
    if config := render_generation_config(req, unsupported):
        body["generationConfig"] = config
    try:
        return RenderedRequest(orjson.dumps(body), unsupported.dropped)
    except orjson.JSONEncodeError:  # a schema deeper than orjson writes (254 levels)
        raise invalid("the request is nested too deeply", "tools") from None
