"""Fake Gemini (Developer API) server."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import orjson

from tests.fakes.base import (
    GEMINI_JSON,
    GEMINI_SSE,
    FakeProvider,
    RecordedRequest,
    Reply,
    dumps,
    json_reply,
    stable_id,
)
from tests.fakes.plans import Plan, ToolSpec, count_tokens, fake_vector, make_plan, response_text, text_of

_GEMINI_PATH = re.compile(r"^/(?P<version>v1beta|v1|v1alpha)/models(?:/(?P<model>[^:/]+)(?::(?P<method>\w+))?)?$")

_GEMINI_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_GEMINI_BAD_KEY = "API key not valid. Please pass a valid API key."


def gemini_error(code: int, status: str, message: str, details: list[Any] | None = None) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return json_reply({"error": error}, code, GEMINI_JSON)


def gemini_bad_key() -> Reply:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": _GEMINI_BAD_KEY},
    ]
    return gemini_error(400, "INVALID_ARGUMENT", _GEMINI_BAD_KEY, details)


def field_of(obj: Any, camel: str, default: Any = None) -> Any:
    """Gemini accepts camelCase and snake_case field names alike."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower(), default)


class FakeGemini(FakeProvider):
    """``/v1beta/models/{m}:generateContent``, ``:streamGenerateContent``
    (``alt=sse`` or a JSON array), ``:countTokens``, ``:embedContent``,
    ``:batchEmbedContents`` and ``GET /v1beta/models``; also under ``/v1/``.
    The key comes from ``x-goog-api-key`` or ``?key=``."""

    name = "gemini"
    default_api_key = "test-gemini-key"
    default_models = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001")
    embedding_dimensions = 768

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        # The real SSE answer is served as a download.
        if reply.content_type.startswith("text/event-stream") and "Content-Disposition" not in reply.headers:
            return dataclasses.replace(reply, headers={"Content-Disposition": "attachment", **reply.headers})
        return reply

    def answer(self, request: RecordedRequest) -> Reply:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return gemini_error(403, "PERMISSION_DENIED", _GEMINI_NO_KEY)
        if key != self.api_key:
            return gemini_bad_key()
        match = _GEMINI_PATH.match(request.path)
        if match is None:
            return gemini_error(404, "NOT_FOUND", "Requested entity was not found.")
        version, model, method = match["version"], match["model"], match["method"]
        if request.method == "GET" and method is None:
            return self._get_models(model, version)
        if request.method != "POST" or model is None or method is None:
            return gemini_error(404, "NOT_FOUND", "Requested entity was not found.")
        return self._call(request, version, model, method)

    def _call(self, request: RecordedRequest, version: str, model: str, method: str) -> Reply:
        handlers = {
            "generateContent": self._generate,
            "streamGenerateContent": self._generate,
            "countTokens": self._count_tokens,
            "embedContent": self._embed,
            "batchEmbedContents": self._embed,
        }
        handler = handlers.get(method)
        if handler is None:
            return gemini_error(404, "NOT_FOUND", "Requested entity was not found.")
        if not isinstance(request.json, dict):
            return gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token.")
        if not self.known_model(model):
            message = (
                f"models/{model} is not found for API version {version}, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their supported methods."
            )
            details = [{"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": message}]
            return gemini_error(404, "NOT_FOUND", message, details)
        return handler(request, model, method)

    # -- generateContent ---------------------------------------------------

    def _generate(self, request: RecordedRequest, model: str, method: str) -> Reply:
        body = request.json
        contents = [c for c in field_of(body, "contents") or [] if isinstance(c, dict)]
        if not contents:
            return gemini_error(
                400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"
            )
        plan = self._plan(body, contents)
        response_id = stable_id(request.body, 23)
        if method == "generateContent":
            return json_reply(self._response(plan, model, response_id, plan.pieces, final=True), 200, GEMINI_JSON)
        chunks = self._stream_chunks(plan, model, response_id)
        if request.query.get("alt") == "sse":
            return Reply(content_type=GEMINI_SSE, chunks=[b"data: " + dumps(c) + b"\r\n\r\n" for c in chunks])
        return Reply(content_type=GEMINI_JSON, chunks=self._json_array_frames(chunks))

    def _plan(self, body: dict[str, Any], contents: list[dict[str, Any]]) -> Plan:
        last = contents[-1]
        parts = [p for p in field_of(last, "parts") or [] if isinstance(p, dict)]
        responses = [field_of(p, "functionResponse") for p in parts if field_of(p, "functionResponse")]
        if responses:
            last_text = " ".join(response_text(field_of(r, "response")) for r in responses)
        else:
            last_text = "".join(p["text"] for p in parts if isinstance(p.get("text"), str))
        system = field_of(body, "systemInstruction") or {}
        prompt = " ".join(
            text_of(field_of(content, "parts")) for content in [system, *contents] if isinstance(content, dict)
        )
        if self.script is not None:
            return self.script.plan(
                offered=[str(d.get("name")) for d in self._declarations(body)],
                tool_results=[
                    response_text(field_of(field_of(part, "functionResponse"), "response"))
                    for content in contents
                    for part in field_of(content, "parts") or []
                    if isinstance(part, dict) and field_of(part, "functionResponse")
                ],
                prompt_text=prompt,
                message_count=len(contents),
            )
        tool = None
        if not responses and field_of(last, "role", "user") == "user":
            tool = self._tool_to_call(body)
        config = field_of(body, "generationConfig") or {}
        return make_plan(
            prefix="fake-gemini",
            last_text=last_text,
            prompt_text=prompt,
            message_count=len(contents),
            tool=tool,
            max_tokens=field_of(config, "maxOutputTokens"),
        )

    @staticmethod
    def _declarations(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            declaration
            for tool in field_of(body, "tools") or []
            for declaration in field_of(tool, "functionDeclarations") or []
            if isinstance(declaration, dict)
        ]

    @classmethod
    def _tool_to_call(cls, body: dict[str, Any]) -> ToolSpec | None:
        declarations = cls._declarations(body)
        calling = field_of(field_of(body, "toolConfig") or {}, "functionCallingConfig") or {}
        if not declarations or str(field_of(calling, "mode", "AUTO")).upper() == "NONE":
            return None
        allowed = field_of(calling, "allowedFunctionNames") or []
        chosen = next((d for d in declarations if d.get("name") in allowed), declarations[0])
        schema = field_of(chosen, "parameters") or field_of(chosen, "parametersJsonSchema")
        return ToolSpec(chosen.get("name", "tool"), schema)

    @staticmethod
    def _usage(plan: Plan, candidates_tokens: int) -> dict[str, Any]:
        return {
            "promptTokenCount": plan.prompt_tokens,
            "candidatesTokenCount": candidates_tokens,
            "totalTokenCount": plan.prompt_tokens + candidates_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}],
        }

    def _response(
        self, plan: Plan, model: str, response_id: str, pieces: list[str], *, final: bool, sent: int | None = None
    ) -> dict[str, Any]:
        """One GenerateContentResponse; a stream chunk when ``final`` is false
        (no finishReason) or is the last chunk. Usage is cumulative."""
        if plan.tool is not None:
            parts: list[dict[str, Any]] = [{"functionCall": {"name": plan.tool.name, "args": plan.arguments}}]
        else:
            parts = [{"text": "".join(pieces)}]
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if final:
            candidate["finishReason"] = "MAX_TOKENS" if plan.finish == "length" else "STOP"
        candidate["index"] = 0
        tokens = plan.completion_tokens if sent is None else sent
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(plan, tokens),
            "modelVersion": model,
            "responseId": response_id,
        }

    def _stream_chunks(self, plan: Plan, model: str, response_id: str) -> list[dict[str, Any]]:
        if plan.tool is not None:  # a whole functionCall arrives in one chunk
            return [self._response(plan, model, response_id, [], final=True)]
        last = len(plan.pieces) - 1
        return [
            self._response(plan, model, response_id, [piece], final=index == last, sent=index + 1)
            for index, piece in enumerate(plan.pieces)
        ]

    @staticmethod
    def _json_array_frames(chunks: list[dict[str, Any]]) -> list[bytes]:
        """streamGenerateContent without alt=sse: one JSON array written
        incrementally, elements separated by ``\\n,\\r\\n`` as the real API does."""
        frames = []
        for index, chunk in enumerate(chunks):
            separator = b"[" if index == 0 else b"\n,\r\n"
            frames.append(separator + orjson.dumps(chunk, option=orjson.OPT_INDENT_2))
        frames.append(b"\n]")
        return frames

    # -- countTokens and embeddings -----------------------------------------

    def _count_tokens(self, request: RecordedRequest, model: str, method: str) -> Reply:
        body = request.json
        inner = field_of(body, "generateContentRequest") or body
        contents = field_of(inner, "contents") or []
        tokens = sum(count_tokens(text_of(field_of(c, "parts"))) for c in contents if isinstance(c, dict))
        details = [{"modality": "TEXT", "tokenCount": tokens}]
        return json_reply({"totalTokens": tokens, "promptTokensDetails": details}, 200, GEMINI_JSON)

    def _embed(self, request: RecordedRequest, model: str, method: str) -> Reply:
        body = request.json
        if method == "embedContent":
            return json_reply({"embedding": self._embedding(body)}, 200, GEMINI_JSON)
        requests = [r for r in field_of(body, "requests") or [] if isinstance(r, dict)]
        if not requests:
            return gemini_error(
                400, "INVALID_ARGUMENT", "* BatchEmbedContentsRequest.requests: requests is not specified\n"
            )
        return json_reply({"embeddings": [self._embedding(r) for r in requests]}, 200, GEMINI_JSON)

    def _embedding(self, embed_request: dict[str, Any]) -> dict[str, Any]:
        text = text_of(field_of(field_of(embed_request, "content") or {}, "parts"))
        dimensions = int(field_of(embed_request, "outputDimensionality") or self.embedding_dimensions)
        return {"values": fake_vector(text, dimensions)}

    # -- models ------------------------------------------------------------

    def _get_models(self, model: str | None, version: str) -> Reply:
        if model is None:
            return json_reply({"models": [self._model(m) for m in self.listed_models()]}, 200, GEMINI_JSON)
        if not self.known_model(model):
            return gemini_error(404, "NOT_FOUND", f"models/{model} is not found for API version {version}.")
        return json_reply(self._model(model), 200, GEMINI_JSON)

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        if "embedding" in model:
            methods = ["embedContent", "countTextTokens", "countTokens"]
        else:
            methods = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model.replace("-", " ").title(),
            "description": f"Fake {model}",
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": methods,
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
        }
