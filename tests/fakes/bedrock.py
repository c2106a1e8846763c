"""Fake AWS Bedrock Runtime: Converse, ConverseStream, InvokeModel, InvokeModelWithResponseStream and
CountTokens, behind a SigV4 check (or a Bedrock API key) on every request.

Shapes follow real recordings (tests/fixtures/bedrock, and the issue's facts): JSON keys sorted as AWS
writes them; every stream event carries a ``p`` padding field; a text block opens on its first delta (no
``contentBlockStart``); ``metadata`` comes last; in-stream exceptions name the union member in
lowerCamel (``throttlingException``); HTTP errors carry ``x-amzn-errortype``. Invoke bodies are
Anthropic Messages (``anthropic_version: bedrock-2023-05-31``, no ``model``, no ``stream``); their
stream frames carry base64 Anthropic events, the last with ``amazon-bedrock-invocationMetrics``.

Scripting is as with the other fakes: :meth:`enqueue` whole replies (sent after the auth check),
:meth:`enqueue_answer` an :class:`~tests.fakes.answers.Answer` rendered in the format asked for,
:meth:`enqueue_stream_fault` to break the next default stream (an exception frame, a bad CRC, a cut),
``refused_betas`` for InvokeModel betas it does not know, ``script`` for a tool round trip; every request is recorded with its raw path and auth verdict.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

import orjson
from aiohttp import web

from extproc.formats.eventstream import encode_message
from tests.fakes.answers import (
    Answer,
    anthropic_events,
    anthropic_message,
    converse_events,
    converse_response,
)
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.aws_sigv4 import AwsCredentials, Refusal, verify
from tests.fakes.base import JSON, FakeProvider, RecordedRequest, Reply, json_reply, stable_id
from tests.fakes.plans import Plan, ToolSpec, count_tokens, fake_vector, make_plan

EVENT_STREAM = "application/vnd.amazon.eventstream"
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_BEDROCK_URI = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_CORAL_URI = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# HTTP status of each error (the service model's error shapes, plus the generic AWS ones).
ERROR_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "ConflictException": 400,
    "SerializationException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "IncompleteSignatureException": 403,
    "MissingAuthenticationTokenException": 403,
    "ExpiredTokenException": 403,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
_AUTH_ERRORS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
}
DEFAULT_MESSAGES: dict[str, str] = {
    "ValidationException": "The provided model identifier is invalid.",
    "ServiceQuotaExceededException": "Your request exceeds the service quota for your account.",
    "AccessDeniedException": "You don't have access to the model with the specified model ID.",
    "ResourceNotFoundException": "The requested resource could not be found.",
    "ModelTimeoutException": "Model has timed out in processing the request. Try your request again.",
    "ModelErrorException": "The model returned an error.",
    "ModelStreamErrorException": "The model stream returned an error.",
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ModelNotReadyException": "Model is not ready for inference. Wait and try your request again.",
    "InternalServerException": "The system encountered an unexpected error during processing. Try your request again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
}

TITAN_DIMENSIONS = (256, 512, 1024)
COHERE_MAX_TEXTS = 96
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
CROSS_REGION_PREFIXES = ("us", "us-gov", "eu", "apac", "jp", "au", "ca", "global")
_OPERATIONS = {"converse", "converse-stream", "invoke", "invoke-with-response-stream", "count-tokens"}
BEDROCK_TOOL_ID = "toolu_bdrk_01"


def bedrock_error(code: str, message: str | None = None, **extra: Any) -> Reply:
    """An HTTP error as Bedrock sends it: ``{"message": ...}`` and ``x-amzn-errortype: <code>:<uri>``."""
    uri = _CORAL_URI if code in _AUTH_ERRORS else _BEDROCK_URI
    body = {"message": message or DEFAULT_MESSAGES.get(code, code), **extra}
    return json_reply(body, ERROR_STATUS.get(code, 400), JSON, {"x-amzn-errortype": f"{code}:{uri}"})


def padded(payload: dict[str, Any]) -> bytes:
    """An event payload as Bedrock writes it: sorted keys and a ``p`` field of a length that varies."""
    length = 1 + zlib.crc32(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)) % len(_PADDING)
    return orjson.dumps({**payload, "p": _PADDING[:length]}, option=orjson.OPT_SORT_KEYS)


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, padded(payload))


def exception_frame(exception_type: str, message: str, **extra: Any) -> bytes:
    """A modeled in-stream error: ``exception_type`` is the union member name, e.g. ``throttlingException``."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, orjson.dumps({"message": message, **extra}))


def error_frame(code: str, message: str) -> bytes:
    """An unmodeled in-stream error: the code and message in headers, no payload."""
    return encode_message({":message-type": "error", ":error-code": code, ":error-message": message}, b"")


@dataclass(frozen=True)
class StreamFault:
    """Breaks the next default stream after ``after_events`` events: with an exception frame
    (``exception``, lowerCamel), with a frame whose CRC is wrong (``corrupt``), or by closing the
    connection in the middle of a frame (``truncate``; with ``eof`` the body ends there cleanly
    instead, as a proxy that closes its side in order would). With ``release``, the break waits until the
    test sets it (once its client has read the events sent before)."""

    after_events: int = 1
    exception: str | None = None
    message: str = "The model stream returned an error."
    corrupt: Literal["prelude", "message"] | None = None
    truncate: bool = False
    eof: bool = False
    release: threading.Event | None = dataclasses.field(default=None, compare=False)


@dataclass
class AwsRecordedRequest(RecordedRequest):
    raw_path: str = ""  # path and query as received, percent-encoding kept
    auth: str = ""  # "sigv4", "bearer", or why the request was refused

    @property
    def model_id(self) -> str:
        """The model id from the path, percent-decoded (``us.amazon.nova-micro-v1:0``, or an ARN)."""
        parts = self.raw_path.split("?", 1)[0].split("/")
        return unquote(parts[2]) if len(parts) == 4 and parts[1] == "model" else ""

    @property
    def operation(self) -> str:
        """The path's last segment: ``converse``, ``converse-stream``, ``invoke``..."""
        return self.raw_path.split("?", 1)[0].rsplit("/", 1)[-1]


class FakeBedrock(FakeProvider):
    """``POST /model/{modelId}/{converse|converse-stream|invoke|invoke-with-response-stream|count-tokens}``.

    Every request must be SigV4-signed for service ``bedrock`` in ``region`` with ``credentials``, or carry
    ``Authorization: Bearer <api_key>`` when an ``api_key`` is given."""

    name = "bedrock"
    default_api_key = ""
    default_models = (
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "us.amazon.nova-micro-v1:0",
        "amazon.titan-embed-text-v2:0",
        "cohere.embed-english-v3",
    )
    embedding_dimensions = 1024

    def __init__(
        self,
        credentials: AwsCredentials | None = None,
        *,
        region: str = "us-east-1",
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        **server: Any,
    ) -> None:
        super().__init__(api_key or "", models, **server)
        self.credentials = credentials or AwsCredentials()
        self.region = region
        self.accepts_api_key = api_key is not None
        # The server's clock for the signature's date; a test moves it to make a signature stale.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.auth_refusals: list[Refusal] = []
        # Betas this Bedrock does not know: an InvokeModel body naming one is refused as Bedrock refuses
        # it (a 400 ValidationException "invalid beta flag"); a test sets them, reset() clears them.
        self.refused_betas: set[str] = set()
        self._faults: deque[StreamFault] = deque()
        self._answers: deque[Answer] = deque()
        self._fault_lock = threading.Lock()
        self._anthropic = FakeAnthropic(models=None)  # its answer builders, never started

    @property
    def last_request(self) -> AwsRecordedRequest:
        request = self.requests[-1]
        assert isinstance(request, AwsRecordedRequest)
        return request

    # -- scripting ---------------------------------------------------------

    def enqueue_error(self, code: str, message: str | None = None, **extra: Any) -> None:
        self.enqueue(bedrock_error(code, message, **extra))

    def enqueue_answer(self, answer: Answer) -> None:
        """The next Converse or InvokeModel call (streamed or not) answers this, in its own format."""
        with self._fault_lock:
            self._answers.append(answer)

    def enqueue_stream_fault(self, fault: StreamFault) -> None:
        with self._fault_lock:
            self._faults.append(fault)

    def reset(self) -> None:
        super().reset()
        with self._fault_lock:
            self._faults.clear()
            self._answers.clear()
        self.auth_refusals.clear()
        self.refused_betas.clear()

    def _next_answer(self) -> Answer | None:
        with self._fault_lock:
            return self._answers.popleft() if self._answers else None

    def _next_fault(self) -> StreamFault | None:
        with self._fault_lock:
            return self._faults.popleft() if self._faults else None

    # -- request handling --------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        aws = AwsRecordedRequest(**vars(recorded), raw_path=request.raw_path)
        self.requests[-1] = aws  # same loop, no await since it was appended
        refusal = self._check_auth(aws)
        if refusal is not None:
            aws.auth = refusal.reason
            self.auth_refusals.append(refusal)
            reply = bedrock_error(refusal.code, refusal.message)
            if refusal.code == "AccessDeniedException":  # a Bedrock API key refused: capitalised, as recorded
                reply = json_reply({"Message": refusal.message}, 403, JSON, reply.headers)
        else:
            reply = self._next_queued() or self.answer(aws)
        return await self._send(request, self.decorate(reply, aws))

    def _check_auth(self, request: AwsRecordedRequest) -> Refusal | None:
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer "):
            if self.accepts_api_key and authorization[7:].strip() == self.api_key:
                request.auth = "bearer"
                return None
            message = "Authentication failed: Please make sure your API Key is valid."
            return Refusal("AccessDeniedException", message, "API key refused")
        headers = {name.lower(): value for name, value in request.headers.items()}
        refusal = verify(
            request.method,
            request.raw_path,
            headers,
            request.body,
            self.credentials,
            service="bedrock",
            region=self.region,
            now=self.clock(),
        )
        if refusal is None:
            request.auth = "sigv4"
        return refusal

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        if any(key.lower() == "x-amzn-requestid" for key in reply.headers):
            return reply
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, request.path + stable_id(request.body, 22)))
        return dataclasses.replace(reply, headers={"x-amzn-RequestId": request_id, **reply.headers})

    def answer(self, request: RecordedRequest) -> Reply:
        raw_path = request.raw_path if isinstance(request, AwsRecordedRequest) else request.path
        parts = raw_path.split("?", 1)[0].split("/")
        if len(parts) != 4 or parts[:2] != ["", "model"] or parts[3] not in _OPERATIONS:
            return bedrock_error("UnknownOperationException", "Unable to determine service/operation name")
        if request.method != "POST":
            return bedrock_error("UnknownOperationException", f"{request.method} is not supported")
        model, operation = unquote(parts[2]), parts[3]
        if not isinstance(request.json, dict):
            return bedrock_error("SerializationException", "Unexpected content: the body is not a JSON object")
        if not self.known_model(model) and not (operation == "count-tokens" and self._known_foundation(model)):
            return bedrock_error("ValidationException", "The provided model identifier is invalid.")
        body: dict[str, Any] = request.json
        if operation.startswith("converse"):
            return self._converse(body, model, stream=operation == "converse-stream")
        if operation == "count-tokens":
            return self._count_tokens(body, model)
        return self._invoke(body, model, stream=operation == "invoke-with-response-stream")

    def _known_foundation(self, model: str) -> bool:
        """The foundation model behind a known cross-region profile (us.anthropic.x -> anthropic.x)."""
        return any(self.known_model(f"{prefix}.{model}") for prefix in CROSS_REGION_PREFIXES)

    # -- Converse ------------------------------------------------------------

    def _converse(self, body: dict[str, Any], model: str, *, stream: bool) -> Reply:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        if not messages:
            return bedrock_error(
                "ValidationException",
                "1 validation error detected: Value null at 'messages' failed to satisfy constraint: "
                "Member must not be null",
            )
        answer = self._next_answer() or Answer.from_plan(self._converse_plan(body, messages), self._thinking(body))
        if stream:
            return self._stream_reply(converse_events(answer))
        return Reply(body=orjson.dumps(converse_response(answer), option=orjson.OPT_SORT_KEYS), content_type=JSON)

    def _converse_plan(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> Plan:
        tools = [t["toolSpec"] for t in (body.get("toolConfig") or {}).get("tools") or [] if "toolSpec" in t]
        results = [
            _result_text(block["toolResult"])
            for message in messages
            for block in message.get("content") or []
            if isinstance(block, dict) and isinstance(block.get("toolResult"), dict)
        ]
        prompt = " ".join([_text(body.get("system"))] + [_text(message.get("content")) for message in messages])
        if self.script is not None:
            return self.script.plan(
                offered=[str(tool.get("name")) for tool in tools],
                tool_results=results,
                prompt_text=prompt,
                message_count=len(messages),
            )
        last = messages[-1]
        last_blocks = [b for b in last.get("content") or [] if isinstance(b, dict)]
        tool = None
        if tools and last.get("role") == "user" and not any("toolResult" in b for b in last_blocks):
            choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
            wanted = (choice.get("tool") or {}).get("name")
            chosen = next((t for t in tools if t.get("name") == wanted), tools[0])
            tool = ToolSpec(str(chosen.get("name")), (chosen.get("inputSchema") or {}).get("json"))
        return make_plan(
            prefix="fake-bedrock",
            last_text=_text(last_blocks),
            prompt_text=prompt,
            message_count=len(messages),
            tool=tool,
            max_tokens=(body.get("inferenceConfig") or {}).get("maxTokens"),
        )

    @staticmethod
    def _thinking(body: dict[str, Any]) -> str | None:
        """Reasoning text when Anthropic thinking is asked for through additionalModelRequestFields."""
        thinking = (body.get("additionalModelRequestFields") or {}).get("thinking") or {}
        if thinking.get("type") not in ("enabled", "adaptive"):
            return None
        return "Let me think about what was asked and answer it."

    # -- InvokeModel (Anthropic bodies) and embeddings -------------------------

    def _invoke(self, body: dict[str, Any], model: str, *, stream: bool) -> Reply:
        if "titan-embed" in model or "cohere.embed" in model:
            if stream:
                return bedrock_error("ValidationException", "The model is unsupported for streaming.")
            return self._embed(body, model)
        if "anthropic." not in model:
            return bedrock_error("ValidationException", "This fake answers InvokeModel for Anthropic models only.")
        if (error := self._check_anthropic_body(body)) is not None:
            return error
        if self.refused_betas.intersection(body.get("anthropic_beta") or []):
            return bedrock_error("ValidationException", "invalid beta flag")
        answer = self._next_answer()
        if answer is None:
            self._anthropic.script = self.script
            thinking = body.get("thinking") or {}
            reasoning = self._thinking({"additionalModelRequestFields": {"thinking": thinking}})
            answer = Answer.from_plan(self._anthropic._plan(body), reasoning)
        message_id = "msg_bdrk_01" + stable_id(orjson.dumps(body), 22)
        name = _anthropic_model_name(model)
        metrics = {
            "inputTokenCount": answer.input_tokens,
            "outputTokenCount": answer.output_count,
            "invocationLatency": 1167,
            "firstByteLatency": 549,
        }
        if not stream:
            headers = {
                "x-amzn-bedrock-input-token-count": str(answer.input_tokens),
                "x-amzn-bedrock-output-token-count": str(answer.output_count),
                "x-amzn-bedrock-invocation-latency": str(metrics["invocationLatency"]),
            }
            if answer.cached:
                headers["x-amzn-bedrock-cache-read-input-token-count"] = str(answer.cache_read_tokens)
                headers["x-amzn-bedrock-cache-write-input-token-count"] = str(answer.cache_write_tokens)
            message = anthropic_message(answer, name, message_id, BEDROCK_TOOL_ID)
            return json_reply(message, 200, JSON, headers)
        events = anthropic_events(answer, name, message_id, BEDROCK_TOOL_ID, ping=False)
        events[-1]["amazon-bedrock-invocationMetrics"] = metrics
        chunks = [("chunk", {"bytes": base64.b64encode(orjson.dumps(event)).decode()}) for event in events]
        reply = self._stream_reply(chunks)
        return dataclasses.replace(reply, headers={"x-amzn-bedrock-content-type": JSON})

    @staticmethod
    def _check_anthropic_body(body: dict[str, Any]) -> Reply | None:
        def malformed(detail: str) -> Reply:
            return bedrock_error(
                "ValidationException",
                f"Malformed input request: #: {detail}, please reformat your input and try again.",
            )

        for key in ("model", "stream"):
            if key in body:
                return malformed(f"extraneous key [{key}] is not permitted")
        for key in ("anthropic_version", "max_tokens", "messages"):
            if key not in body:
                return malformed(f"required key [{key}] not found")
        if body["anthropic_version"] != BEDROCK_ANTHROPIC_VERSION:
            return bedrock_error("ValidationException", f"invalid anthropic_version: {body['anthropic_version']}")
        return None

    def _embed(self, body: dict[str, Any], model: str) -> Reply:
        """Titan Text Embeddings (one ``inputText``) or Cohere Embed (``texts``), as InvokeModel answers
        them; the input tokens are in ``x-amzn-bedrock-input-token-count`` for both (Cohere's body has
        no count)."""
        if "cohere" in model:
            return self._cohere_embed(body, model)
        v1 = "titan-embed-text-v1" in model
        allowed = {"inputText"} if v1 else {"inputText", "dimensions", "normalize", "embeddingTypes"}
        if (error := _malformed_keys(body, allowed, ("inputText",))) is not None:
            return error
        text = body["inputText"]
        if not isinstance(text, str) or not text:
            return _malformed("#/inputText: expected minLength: 1, actual: 0")
        dimensions = body.get("dimensions", 1536 if v1 else 1024)
        if dimensions not in TITAN_DIMENSIONS and not v1:
            return _malformed(f"#/dimensions: {dimensions} is not a valid enum value")
        vector = fake_vector(text, dimensions)
        tokens = count_tokens(text)
        answer: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": tokens}
        if not v1:
            answer["embeddingsByType"] = {"float": vector}
        return json_reply(answer, headers=_token_headers(tokens))

    def _cohere_embed(self, body: dict[str, Any], model: str) -> Reply:
        allowed = {"texts", "images", "input_type", "truncate", "embedding_types"}
        if "v4" in model:
            allowed |= {"inputs", "output_dimension", "max_tokens"}
        if (error := _malformed_keys(body, allowed, ("texts", "input_type"))) is not None:
            return error
        texts = body["texts"]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _malformed("#/texts: expected type: JSONArray of strings")
        if len(texts) > COHERE_MAX_TEXTS:
            return _malformed(f"#/texts: expected maximum item count: {COHERE_MAX_TEXTS}, found: {len(texts)}")
        if body["input_type"] not in COHERE_INPUT_TYPES:
            return _malformed(f"#/input_type: {body['input_type']} is not a valid enum value")
        dimensions = int(body.get("output_dimension") or self.embedding_dimensions)
        vectors = [fake_vector(text, dimensions) for text in texts]
        answer: dict[str, Any] = {
            "embeddings": vectors,
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, stable_id(orjson.dumps(texts), 22))),
            "response_type": "embeddings_floats",
            "texts": texts,
        }
        if body.get("embedding_types"):
            answer["embeddings"] = {kind: vectors for kind in body["embedding_types"]}
            answer["response_type"] = "embeddings_by_type"
        return json_reply(answer, headers=_token_headers(sum(count_tokens(t) for t in texts)))

    def _count_tokens(self, body: dict[str, Any], model: str) -> Reply:
        """CountTokens for Claude's foundation models (their bare ids, not a cross-region profile's)."""
        if "anthropic." not in model or model.split(".", 1)[0] in CROSS_REGION_PREFIXES:
            return bedrock_error("ValidationException", "The provided model doesn't support counting tokens.")
        request = body.get("input")
        if not isinstance(request, dict) or len(request) != 1:
            return bedrock_error("ValidationException", "The input must be exactly one of converse or invokeModel.")
        if "converse" in request:
            converse = request["converse"] or {}
            unknown = set(converse) - {"messages", "system", "toolConfig", "additionalModelRequestFields"}
            if unknown or not converse.get("messages"):
                return bedrock_error("ValidationException", f"Invalid converse input: {sorted(unknown) or 'messages'}")
            counted = converse
        elif "invokeModel" in request:
            try:
                counted = orjson.loads(
                    base64.b64decode((request["invokeModel"] or {}).get("body") or "", validate=True)
                )
            except (ValueError, orjson.JSONDecodeError):
                return bedrock_error("SerializationException", "invokeModel.body is not base64 of a JSON body")
            if (error := self._check_anthropic_body(counted)) is not None:
                return error
        else:
            return bedrock_error("ValidationException", "The input must be one of converse or invokeModel.")
        messages = counted.get("messages") or []
        prompt = " ".join([_text(counted.get("system"))] + [_text(m.get("content")) for m in messages])
        return json_reply({"inputTokens": count_tokens(prompt) + 3 * max(len(messages), 1)})

    # -- streams and their faults -----------------------------------------------

    def _stream_reply(self, events: list[tuple[str, dict[str, Any]]]) -> Reply:
        frames = [event_frame(kind, payload) for kind, payload in events]
        fault = self._next_fault()
        if fault is None:
            return Reply(content_type=EVENT_STREAM, chunks=frames)
        kept = frames[: fault.after_events]
        held = {"hold_at_chunk": len(kept), "release": fault.release}
        if fault.exception is not None:
            chunks = [*kept, exception_frame(fault.exception, fault.message)]
            return Reply(content_type=EVENT_STREAM, chunks=chunks, **held)  # type: ignore[arg-type]
        broken = bytearray(frames[fault.after_events] if fault.after_events < len(frames) else frames[-1])
        if fault.corrupt is not None:
            broken[4 if fault.corrupt == "prelude" else len(broken) - 6] ^= 0x01
            return Reply(content_type=EVENT_STREAM, chunks=[*kept, bytes(broken)], **held)  # type: ignore[arg-type]
        # truncate: half of the next frame, then the connection closes without the last chunk (or,
        # with eof, the body ends there in order)
        return Reply(
            content_type=EVENT_STREAM,
            chunks=[*kept, bytes(broken[: len(broken) // 2])],
            abort_after_chunks=None if fault.eof else len(kept) + 1,
            hold_at_chunk=len(kept),
            release=fault.release,
        )


def _malformed(detail: str) -> Reply:
    """InvokeModel's refusal of a body its model's schema does not take."""
    return bedrock_error(
        "ValidationException", f"Malformed input request: {detail}, please reformat your input and try again."
    )


def _malformed_keys(body: dict[str, Any], allowed: set[str], required: tuple[str, ...]) -> Reply | None:
    for key in sorted(set(body) - allowed):
        return _malformed(f"#: extraneous key [{key}] is not permitted")
    for key in required:
        if key not in body:
            return _malformed(f"#: required key [{key}] not found")
    return None


def _token_headers(tokens: int) -> dict[str, str]:
    return {"x-amzn-bedrock-input-token-count": str(tokens), "x-amzn-bedrock-invocation-latency": "52"}


def _text(value: Any) -> str:
    """The text of Converse content (``[{"text": ...}]``), a system list, or Anthropic content."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(item) for item in value)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    return ""


def _result_text(result: dict[str, Any]) -> str:
    parts = []
    for item in result.get("content") or []:
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            parts.append(item["text"])
        elif isinstance(item, dict) and "json" in item:
            parts.append(orjson.dumps(item["json"]).decode())
    return "".join(parts)


def _anthropic_model_name(model_id: str) -> str:
    """``us.anthropic.claude-haiku-4-5-20251001-v1:0`` answers as ``claude-haiku-4-5-20251001``."""
    name = model_id.rsplit("/", 1)[-1]
    name = re.sub(r"^(?:[a-z]{2,4}\.)?anthropic\.", "", name)
    return re.sub(r"-v\d+(?::\d+)?$", "", name)
