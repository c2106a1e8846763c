"""Provider side: ChatRequest -> a Converse (and ConverseStream) request body.

The body is the same for both; the path says whether to stream. What Converse cannot carry is in
`UNSUPPORTED`, each dropped and named, or refused, per the provider's `unsupported` policy.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import orjson

from extproc.formats.anthropic.common import dumps_lenient, tool_input
from extproc.formats.anthropic.upstream import MIN_THINKING_BUDGET, thinking_budget
from extproc.formats.bedrock.paths import is_anthropic, is_nova
from extproc.formats.canonical import (
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    with_user_turn,
)
from extproc.formats.client_errors import invalid
from extproc.formats.provider_params import without_lacking
from extproc.formats.render_options import RenderedRequest, RenderOptions, Unsupported
from extproc.formats.turns import append_turn, results_first

# Feature -> why Converse cannot carry it (the feature is the name a client sees in
# x-gateway-dropped-features, or the field a refusal names). The plain parameters it has no field
# for are the bedrock kind's record's `unsupported`; these depend on the model or the content.
UNSUPPORTED: dict[str, str] = {
    "image_url": "images by bytes only (an https URL is not fetched)",
    "file_url": "documents by bytes only",
    "system_image": "system prompts are text",
    "system_file": "system prompts are text",
    "top_k": "top_k only for Anthropic and Nova models",
    "reasoning_effort": "thinking only for Anthropic models",
    "thinking_budget": "thinking only for Anthropic models",
    "tool_choice": "no tool_choice none (the tools stay offered)",
    "response_format": "JSON output only with a schema",
}

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_TOOL_CHOICE: dict[str, dict[str, Any]] = {"auto": {"auto": {}}, "required": {"any": {}}}
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_.:-]")
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9\s\-()\[\]]")  # a document's name: Bedrock's allowed characters
MAX_TOOL_USE_ID = 64


def tool_use_id(call_id: str | None) -> str:
    """A call id as Converse takes it ([a-zA-Z0-9_.:-], 1 to 64): the same id for the call and its
    result, whatever the client's id looked like."""
    if not call_id:
        return "tooluse_none"
    safe = _ID_UNSAFE.sub("_", call_id)
    if len(safe) > MAX_TOOL_USE_ID:
        safe = safe[:40] + "_" + hashlib.sha256(call_id.encode()).hexdigest()[:23]
    return safe


class _Render:
    __slots__ = ("anthropic", "lacks")

    def __init__(self, lacks: Unsupported, anthropic: bool) -> None:
        self.lacks = lacks
        self.anthropic = anthropic

    def image(self, part: ImagePart) -> dict[str, Any] | None:
        data, media_type = part.data, part.media_type
        url = part.url or ""
        if data is None and url.startswith("data:"):
            header, _, data = url[5:].partition(",")
            media_type, _, encoding = header.partition(";")
            if encoding != "base64":
                raise invalid("image data URLs must be base64 encoded", "image_url")
        if data is None:
            self.lacks.lacks("image_url")
            return None
        image_format = IMAGE_FORMATS.get((media_type or "").lower())
        if image_format is None:
            raise invalid(
                f"image media type {media_type or 'unknown'!r} is not supported by Bedrock (png, jpeg, gif and webp only)",
                "image_url",
            )
        return {"image": {"format": image_format, "source": {"bytes": data}}}

    def document(self, part: FilePart, number: int) -> dict[str, Any] | None:
        if part.data is None:
            self.lacks.lacks("file_url")
            return None
        media_type = (part.media_type or "application/pdf").lower()
        doc_format = DOCUMENT_FORMATS.get(media_type)
        if doc_format is None:
            raise invalid(f"file type {media_type!r} is not supported by Bedrock", "file")
        # Bedrock requires a name: letters, digits, single spaces, hyphens, parentheses, brackets
        name = " ".join(_NAME_UNSAFE.sub(" ", (part.filename or "").rsplit(".", 1)[0]).split())[:200]
        return {
            "document": {"format": doc_format, "name": name or f"document {number}", "source": {"bytes": part.data}}
        }

    def blocks(self, parts: list[Part], assistant: bool, documents: list[int]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in parts:
            block: dict[str, Any] | None = None
            if isinstance(part, TextPart):
                if part.text:  # Converse refuses empty text blocks
                    block = {"text": part.text}
            elif isinstance(part, ImagePart):
                block = self.image(part)
            elif isinstance(part, FilePart):
                documents[0] += 1
                block = self.document(part, documents[0])
            elif assistant and isinstance(part, ThinkingPart):
                block = self.reasoning(part)
            if block is not None:
                out.append(block)
        return out

    def reasoning(self, part: ThinkingPart) -> dict[str, Any] | None:
        """Signed reasoning goes back as it came (Claude checks the signature); unsigned reasoning,
        and another API's opaque reasoning, cannot be checked and is left out (as for Anthropic)."""
        if not part.signature or part.encrypted is not None:
            return None
        if part.redacted:  # Anthropic's redacted data, sent as Bedrock's blob (base64 on the wire)
            return {"reasoningContent": {"redactedContent": base64.b64encode(part.signature.encode()).decode()}}
        return {"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}}

    def tool_result(self, msg: Message, documents: list[int]) -> dict[str, Any]:
        content = self.blocks(msg.content, assistant=False, documents=documents) or [{"text": ""}]
        result: dict[str, Any] = {"toolUseId": tool_use_id(msg.tool_call_id), "content": content}
        if msg.is_error:
            result["status"] = "error"
        return {"toolResult": result}


def _is_tool_result(block: dict[str, Any]) -> bool:
    return "toolResult" in block


def request_body(req: ChatRequest, options: RenderOptions) -> tuple[dict[str, Any], list[str]]:
    model = options.model
    lacks = Unsupported(options.unsupported, "Bedrock Converse")
    req = without_lacking(req, options.lacks, lacks)  # the parameters the kind's record says Converse has no field for
    render = _Render(lacks, is_anthropic(model))
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    called: dict[str, None] = {}  # tool names used in the history (ordered)
    documents = [0]
    for msg in with_user_turn(req.messages):
        if msg.role == "system":
            # Converse has one system prompt: every system message is folded into it in order (as for Gemini)
            for part in msg.content:
                if isinstance(part, TextPart):
                    if part.text:
                        system.append({"text": part.text})
                elif isinstance(part, ImagePart):
                    lacks.lacks("system_image")
                elif isinstance(part, FilePart):
                    lacks.lacks("system_file")
        elif msg.role == "tool":
            append_turn(messages, "user", [render.tool_result(msg, documents)])
        elif msg.role == "user":
            append_turn(messages, "user", render.blocks(msg.content, assistant=False, documents=documents))
        else:
            blocks = render.blocks(msg.content, assistant=True, documents=documents)
            for call in msg.tool_calls:
                called[call.name] = None
                blocks.append(
                    {
                        "toolUse": {
                            "toolUseId": tool_use_id(call.id),
                            "name": call.name,
                            "input": tool_input(call.arguments),
                        }
                    }
                )
            append_turn(messages, "assistant", blocks)
    for message in messages:
        if message["role"] == "user":
            results_first(message, _is_tool_result)

    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    extra: dict[str, Any] = {}  # additionalModelRequestFields: the model family's own fields
    if req.max_tokens is not None:
        inference["maxTokens"] = req.max_tokens

    budget = _thinking(req, render, lacks, inference, extra)
    if req.temperature is not None:
        if budget is not None:
            lacks.drop("temperature")  # Claude refuses temperature with thinking
        else:
            inference["temperature"] = min(max(float(req.temperature), 0.0), 1.0)
    if req.top_p is not None:
        top_p = min(max(float(req.top_p), 0.0), 1.0)
        inference["topP"] = max(top_p, 0.95) if budget is not None else top_p
    if req.top_k is not None:
        if render.anthropic:
            if budget is not None:
                lacks.drop("top_k")
            else:
                extra["top_k"] = req.top_k
        elif is_nova(model):
            extra["inferenceConfig"] = {"topK": req.top_k}
        else:
            lacks.lacks("top_k")
    if req.stop:
        inference["stopSequences"] = list(req.stop)
    if inference:
        body["inferenceConfig"] = inference
    fmt = req.response_format
    if fmt is not None and fmt.type != "text":
        if fmt.type == "json_schema" and fmt.schema:
            schema: dict[str, Any] = {"schema": orjson.dumps(fmt.schema).decode()}  # Converse takes it as text
            if fmt.name:
                schema["name"] = fmt.name
            body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
        else:
            lacks.lacks("response_format")
    tool_config = _tool_config(req, lacks, called)
    if tool_config:
        body["toolConfig"] = tool_config
    # Claude's betas, where Converse takes Claude's own fields: only those a provider lists (Converse
    # refuses a beta it does not take, and before anthropic_betas it was sent none)
    if options.betas and options.betas_listed and render.anthropic:
        extra["anthropic_beta"] = list(options.betas)
    if extra:
        body["additionalModelRequestFields"] = extra
    return body, lacks.dropped


def _thinking(
    req: ChatRequest,
    render: _Render,
    lacks: Unsupported,
    inference: dict[str, Any],
    extra: dict[str, Any],
) -> int | None:
    """Claude's thinking in additionalModelRequestFields, fitted under maxTokens as the Anthropic
    API wants it (see anthropic.upstream); another family has no common switch for it."""
    budget, budget_field = thinking_budget(req)
    if budget is None or budget_field is None:
        return None
    if not render.anthropic:
        lacks.lacks(budget_field)
        return None
    forced = req.tool_choice is not None and req.tool_choice.mode in ("required", "function")
    if forced and req.tools:  # Claude refuses forced tool use with thinking
        lacks.lacks(budget_field)
        return None
    max_tokens = inference.get("maxTokens")  # unset: Bedrock uses the model's maximum, over any budget
    if max_tokens is not None and budget >= max_tokens:
        if max_tokens - 1 < MIN_THINKING_BUDGET:
            lacks.lacks(budget_field)
            return None
        budget = max_tokens - 1
    extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if req.reasoning_summary:
        extra["thinking"]["display"] = "summarized"
    return budget


def _tool_config(req: ChatRequest, lacks: Unsupported, called: dict[str, None]) -> dict[str, Any] | None:
    tools: list[dict[str, Any]] = []
    for tool in req.tools:
        spec: dict[str, Any] = {"name": tool.name}
        if tool.description:  # Converse refuses an empty description
            spec["description"] = tool.description
        schema = tool.parameters or _EMPTY_SCHEMA
        spec["inputSchema"] = {"json": schema if "type" in schema else {"type": "object", **schema}}
        if tool.strict:
            spec["strict"] = True
        tools.append({"toolSpec": spec})
    if not tools and called:
        # Converse refuses toolUse/toolResult blocks without a toolConfig: the tools the history
        # called are declared again, without a schema (none is known)
        tools = [{"toolSpec": {"name": name, "inputSchema": {"json": _EMPTY_SCHEMA}}} for name in called]
        return {"tools": tools}
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    choice = req.tool_choice
    if choice is not None:
        if choice.mode == "function":
            config["toolChoice"] = {"tool": {"name": choice.name or ""}}
        elif choice.mode == "none":
            lacks.lacks("tool_choice")
        else:
            config["toolChoice"] = _TOOL_CHOICE[choice.mode]
    return config


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    body, dropped = request_body(req, options)
    return RenderedRequest(dumps_lenient(body), dropped)
