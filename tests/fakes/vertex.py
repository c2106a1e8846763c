"""Fake Vertex AI: Gemini and Claude models behind ``Authorization: Bearer <access token>``, where the token
must be one a :class:`~tests.fakes.google_auth.FakeGoogleTokens` issued and not yet expired.

Paths (``v1`` or ``v1beta1``, which google-genai uses for Vertex)::

    /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
                                                               :streamGenerateContent?alt=sse
                                                               :countTokens
                                                               :predict (text embedding models)
    /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:rawPredict
                                                                  :streamRawPredict
    /v1/projects/{p}/locations/{l}/publishers/anthropic/models/count-tokens:rawPredict

Gemini answers are the Gemini fake's (tests/fakes/gemini.py) with Vertex's additions (``createTime``,
``usageMetadata.trafficType``, ``totalBillableCharacters``); embeddings are ``{"predictions": [{"embeddings":
{"values", "statistics": {"truncated", "token_count"}}}], "metadata": {"billableCharacterCount"}}`` for
``{"instances": [{"content", "task_type", "title"}], "parameters": {"outputDimensionality"}}``, at most 250
instances and, for gemini-embedding-001, one; Claude answers are Anthropic Messages for a
body with ``anthropic_version: vertex-2023-10-16`` and no ``model``. Google front-end errors (auth, project,
quota) are ``{"error": {"code", "message", "status"}}``; model errors are Anthropic's or Gemini's own.

Scripting: :meth:`enqueue` whole replies (sent after the token check), :meth:`enqueue_error` a Google
error by status, :meth:`enqueue_answer` an :class:`~tests.fakes.answers.Answer` rendered in the format the
next call asks for, ``script`` for a tool round trip. Requests are recorded with ``auth`` set to the verdict.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.answers import Answer, anthropic_events, anthropic_message, anthropic_sse, gemini_chunks, gemini_parts
from tests.fakes.answers import gemini_response as render_gemini
from tests.fakes.anthropic import FakeAnthropic, anthropic_error
from tests.fakes.base import (
    GEMINI_JSON,
    GEMINI_SSE,
    SSE_UTF8,
    FakeProvider,
    RecordedRequest,
    Reply,
    dumps,
    json_reply,
    stable_id,
)
from tests.fakes.gemini import FakeGemini, field_of
from tests.fakes.google_auth import FakeGoogleTokens
from tests.fakes.plans import count_tokens, fake_vector, text_of

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
# The text embedding models served by :predict, each with its largest outputDimensionality (the default)
EMBEDDING_DIMENSIONS = {"text-embedding-005": 768, "text-multilingual-embedding-002": 768, "gemini-embedding-001": 3072}
MAX_INSTANCES = 250
VERTEX_TOOL_ID = "toolu_vrtx_01"

_PATH = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>google|anthropic)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    429: "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    503: "The service is currently unavailable.",
}
_NO_CREDENTIAL = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def vertex_error(code: int, message: str | None = None, reason: str | None = None) -> Reply:
    """A Google front-end error (``google.rpc.Status`` JSON)."""
    error: dict[str, Any] = {"code": code, "message": message or _DEFAULT_MESSAGES.get(code, "Error"), "status": ""}
    error["status"] = STATUS_NAMES.get(code, "UNKNOWN")
    if reason is not None:
        info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}
        error["details"] = [info | {"metadata": {"service": "aiplatform.googleapis.com"}}]
    return json_reply({"error": error}, code, GEMINI_JSON)


@dataclass
class VertexRecordedRequest(RecordedRequest):
    auth: str = ""  # "valid", or why the token was refused ("missing", "expired", "unknown")
    project: str = ""
    location: str = ""
    publisher: str = ""
    model: str = ""
    rpc: str = ""  # generateContent, streamGenerateContent, countTokens, predict, rawPredict, streamRawPredict


class FakeVertex(FakeProvider):
    name = "vertex"
    default_api_key = ""
    default_models = (
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "claude-sonnet-4@20250514",
        "claude-haiku-4-5@20251001",
        *EMBEDDING_DIMENSIONS,
    )

    def __init__(
        self,
        tokens: FakeGoogleTokens,
        *,
        projects: Iterable[str] = ("fake-project",),
        locations: Iterable[str] = ("global", "us-east5", "europe-west1"),
        models: Iterable[str] | None = None,
        **server: Any,
    ) -> None:
        super().__init__("", models, **server)
        self.tokens = tokens
        self.projects = set(projects)
        self.locations = set(locations)
        self._answers: deque[Answer] = deque()
        self._answers_lock = threading.Lock()
        # Their answer builders, never started.
        self._gemini = FakeGemini(api_key="inner", models=None)
        self._anthropic = FakeAnthropic(api_key="inner", models=None)

    @property
    def last_request(self) -> VertexRecordedRequest:
        request = self.requests[-1]
        assert isinstance(request, VertexRecordedRequest)
        return request

    # -- scripting -----------------------------------------------------------------

    def enqueue_error(self, code: int, message: str | None = None, reason: str | None = None) -> None:
        self.enqueue(vertex_error(code, message, reason))

    def enqueue_answer(self, answer: Answer) -> None:
        with self._answers_lock:
            self._answers.append(answer)

    def reset(self) -> None:
        super().reset()
        with self._answers_lock:
            self._answers.clear()

    def _next_answer(self) -> Answer | None:
        with self._answers_lock:
            return self._answers.popleft() if self._answers else None

    # -- request handling ----------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        vertex = VertexRecordedRequest(**vars(recorded))
        self.requests[-1] = vertex  # same loop, no await since it was appended
        if (match := _PATH.match(request.path)) is not None:
            vertex.project, vertex.location, vertex.publisher = match["project"], match["location"], match["publisher"]
            vertex.model, vertex.rpc = match["model"], match["method"]
        refusal = self._check_token(vertex)
        reply = refusal or self._next_queued() or self.answer(vertex)
        return await self._send(request, reply)

    def _check_token(self, request: VertexRecordedRequest) -> Reply | None:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            request.auth = "missing"
            return vertex_error(401, _NO_CREDENTIAL, "CREDENTIALS_MISSING")
        request.auth = self.tokens.check(authorization[7:].strip())
        if request.auth == "valid":
            return None
        return vertex_error(
            401, None, "ACCESS_TOKEN_EXPIRED" if request.auth == "expired" else "ACCESS_TOKEN_TYPE_UNSUPPORTED"
        )

    def answer(self, request: RecordedRequest) -> Reply:
        assert isinstance(request, VertexRecordedRequest)
        if not request.rpc or request.method != "POST":
            return vertex_error(404, f"The requested URL {request.path} was not found on this server.")
        resource = (
            f"projects/{request.project}/locations/{request.location}/publishers/{request.publisher}"
            f"/models/{request.model}"
        )
        if request.project not in self.projects:
            message = f"Permission 'aiplatform.endpoints.predict' denied on resource '//aiplatform.googleapis.com/{resource}' (or it may not exist)."
            return vertex_error(403, message, "IAM_PERMISSION_DENIED")
        if request.location not in self.locations:
            return vertex_error(400, f"Location {request.location} is not supported for this request.")
        if request.model != "count-tokens" and not self.known_model(request.model):
            message = f"Publisher Model `{resource}` was not found or your project does not have access to it."
            return vertex_error(404, message)
        if not isinstance(request.json, dict):
            return vertex_error(400, "Invalid JSON payload received.")
        if request.model in EMBEDDING_DIMENSIONS:
            return self._predict(request)
        if request.publisher == "google":
            return self._gemini_call(request)
        return self._anthropic_call(request)

    # -- Gemini --------------------------------------------------------------------

    def _gemini_call(self, request: VertexRecordedRequest) -> Reply:
        if request.rpc not in ("generateContent", "streamGenerateContent", "countTokens"):
            return vertex_error(400, f"Method {request.rpc} is not supported by this model.")
        if request.rpc == "countTokens":
            return self._gemini_count(request)
        answer = self._next_answer()
        sse = request.query.get("alt") == "sse"
        if answer is not None:
            response_id = stable_id(request.body, 23)
            if request.rpc == "generateContent":
                whole = render_gemini(
                    answer, request.model, response_id, gemini_parts(answer), final=True, candidates=answer.output_count
                )
                return json_reply(whole, 200, GEMINI_JSON)
            chunks = gemini_chunks(answer, request.model, response_id)
            return self._gemini_stream(chunks, sse=sse)
        self._gemini.script = self.script
        inner = RecordedRequest(
            request.method,
            f"/v1beta/models/{request.model}:{request.rpc}",
            request.query,
            CIMultiDict({"x-goog-api-key": "inner"}),
            request.body,
            request.json,
        )
        reply = self._gemini.answer(inner)
        if reply.status != 200:
            return reply
        if reply.chunks is None:
            return dataclasses.replace(reply, body=dumps(_vertexify(orjson.loads(reply.body))))
        if not sse:
            return reply  # a JSON array: left as the Gemini fake writes it
        chunks = [_vertexify(orjson.loads(chunk.split(b"data: ", 1)[1])) for chunk in reply.chunks]
        return self._gemini_stream(chunks, sse=True)

    @staticmethod
    def _gemini_stream(chunks: list[dict[str, Any]], *, sse: bool) -> Reply:
        if sse:
            return Reply(content_type=GEMINI_SSE, chunks=[b"data: " + dumps(c) + b"\r\n\r\n" for c in chunks])
        return Reply(content_type=GEMINI_JSON, chunks=FakeGemini._json_array_frames(chunks))

    @staticmethod
    def _gemini_count(request: VertexRecordedRequest) -> Reply:
        contents = field_of(request.json, "contents") or []
        text = "".join(text_of(field_of(c, "parts")) for c in contents if isinstance(c, dict))
        tokens = count_tokens(text)
        answer = {
            "totalTokens": tokens,
            "totalBillableCharacters": len(text.replace(" ", "")),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
        }
        return json_reply(answer, 200, GEMINI_JSON)

    # -- text embeddings (predict) -------------------------------------------------------

    @staticmethod
    def _predict(request: VertexRecordedRequest) -> Reply:
        if request.rpc != "predict" or request.publisher != "google":
            return vertex_error(400, f"Method {request.rpc} is not supported by this model.")
        instances = request.json.get("instances")
        if not isinstance(instances, list) or not instances:
            return vertex_error(400, "Request contains an invalid argument: instances must be a non-empty list.")
        limit = 1 if request.model.startswith("gemini-embedding") else MAX_INSTANCES
        if len(instances) > limit:
            message = (
                f"Unable to submit request because {request.model} supports at most {limit} instance(s) per request."
            )
            return vertex_error(400, message)
        if not all(isinstance(i, dict) and isinstance(i.get("content"), str) for i in instances):
            return vertex_error(400, "Request contains an invalid argument: every instance needs a string content.")
        parameters = request.json.get("parameters") or {}
        dimensions = parameters.get("outputDimensionality", EMBEDDING_DIMENSIONS[request.model])
        if not isinstance(dimensions, int) or not 0 < dimensions <= EMBEDDING_DIMENSIONS[request.model]:
            return vertex_error(400, f"Unsupported outputDimensionality {dimensions} for {request.model}.")
        predictions = [
            {
                "embeddings": {
                    "statistics": {"truncated": False, "token_count": count_tokens(i["content"])},
                    "values": fake_vector(i["content"], dimensions),
                }
            }
            for i in instances
        ]
        characters = sum(len(i["content"].replace(" ", "")) for i in instances)
        return json_reply(
            {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}, 200, GEMINI_JSON
        )

    # -- Claude (rawPredict) ----------------------------------------------------------

    def _anthropic_call(self, request: VertexRecordedRequest) -> Reply:
        body: dict[str, Any] = request.json
        request_id = "req_vrtx_011C" + stable_id(request.body + request.path.encode(), 20)
        if request.rpc not in ("rawPredict", "streamRawPredict"):
            return vertex_error(400, f"Method {request.rpc} is not supported by this model.")
        if body.get("anthropic_version") != VERTEX_ANTHROPIC_VERSION:
            message = f"anthropic_version: expected {VERTEX_ANTHROPIC_VERSION!r}, got {body.get('anthropic_version')!r}"
            return anthropic_error(400, "invalid_request_error", message, request_id)
        if request.model == "count-tokens":
            if not body.get("model") or not body.get("messages"):
                return anthropic_error(400, "invalid_request_error", "model: Field required", request_id)
            return json_reply({"input_tokens": self._anthropic._plan(body).prompt_tokens})
        if "model" in body:
            return anthropic_error(400, "invalid_request_error", "model: Extra inputs are not permitted", request_id)
        for name in ("max_tokens", "messages"):
            if body.get(name) in (None, []):
                return anthropic_error(400, "invalid_request_error", f"{name}: Field required", request_id)
        answer = self._next_answer()
        if answer is None:
            self._anthropic.script = self.script
            thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
            reasoning = "Let me think about what was asked and answer it." if thinking else None
            answer = Answer.from_plan(self._anthropic._plan(body), reasoning)
        message_id = "msg_vrtx_01" + stable_id(request.body, 22)
        name = request.model.replace("@", "-")
        headers = {"request-id": request_id}
        if request.rpc == "streamRawPredict" or body.get("stream"):
            events = anthropic_events(answer, name, message_id, VERTEX_TOOL_ID, ping=True)
            return Reply(content_type=SSE_UTF8, chunks=anthropic_sse(events), headers=headers)
        return json_reply(anthropic_message(answer, name, message_id, VERTEX_TOOL_ID), headers=headers)


def _vertexify(response: dict[str, Any]) -> dict[str, Any]:
    """Add what Vertex writes and the Gemini API does not."""
    response.setdefault("createTime", "2025-08-14T01:10:33.123456Z")
    usage = response.get("usageMetadata")
    if isinstance(usage, dict):
        usage.setdefault("trafficType", "ON_DEMAND")
        if "candidatesTokenCount" in usage:
            details = [{"modality": "TEXT", "tokenCount": usage["candidatesTokenCount"]}]
            usage.setdefault("candidatesTokensDetails", details)
    return response
