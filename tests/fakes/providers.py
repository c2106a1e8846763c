"""Fake OpenAI, Anthropic and Gemini servers that speak the real wire formats.

Each fake is an aiohttp server on 127.0.0.1 (free port) in its own thread with
its own event loop, so synchronous SDK clients, the gateway under test and
async tests can all talk to it. A fake answers with, in order:

1. replies queued with :meth:`FakeProvider.enqueue` / ``enqueue_fixture``
   (sent as they are, without auth or model checks: the test chose them);
2. otherwise a deterministic default answer derived from the request, written
   in the provider's exact format (auth, model and validation errors included).

Formats follow the recordings in ``shared/fixtures`` (see mapping.md there).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import random
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import orjson
from aiohttp import web
from multidict import CIMultiDict

from tests.support.fixtures import fixture_bytes, fixture_content_type, fixture_status

__all__ = [
    "FakeAnthropic",
    "FakeGemini",
    "FakeOpenAI",
    "FakeProvider",
    "RecordedRequest",
    "Reply",
    "split_sse_events",
    "wait_until",
]

JSON = "application/json"
JSON_UTF8 = "application/json; charset=utf-8"
GEMINI_JSON = "application/json; charset=UTF-8"
SSE_UTF8 = "text/event-stream; charset=utf-8"
GEMINI_SSE = "text/event-stream"

# A fixed timestamp keeps default answers byte-for-byte reproducible.
CREATED = 1755133833


# --------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted HTTP answer.

    ``chunks`` switches to a chunked (streamed) body: each chunk is written and
    flushed on its own, ``chunk_delay`` seconds apart. ``abort_after_chunks``
    closes the TCP connection abruptly after that many chunks (a provider
    dying mid-stream); ``hang`` never answers at all.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None
    chunk_delay: float = 0.0
    delay: float = 0.0
    abort_after_chunks: int | None = None
    hang: bool = False


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    json: Any = None


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; the fakes update their
    counters from their own thread, so tests sometimes have to wait."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --------------------------------------------------------------------------
# Small helpers shared by the three providers
# --------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def stable_id(seed: bytes | str, length: int) -> str:
    """A base62 id derived from ``seed``: same request, same id."""
    if isinstance(seed, str):
        seed = seed.encode()
    number = int.from_bytes(hashlib.sha256(seed).digest(), "big")
    chars = []
    while len(chars) < length:
        number, rest = divmod(number, 62)
        chars.append(_BASE62[rest])
    return "".join(chars)


def split_pieces(text: str) -> list[str]:
    """Split text into word-sized pieces (with their leading space) that join
    back to the exact text; one piece counts as one token."""
    return re.findall(r"\s*\S+|\s+$", text)


def count_tokens(text: str) -> int:
    return len(split_pieces(text))


def split_fragments(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def split_sse_events(body: bytes) -> list[bytes]:
    """Split an SSE body after each blank line (LF or CRLF framing); the parts
    join back to the exact body. Anything after the last event stays whole."""
    parts = re.split(rb"(?<=\r\n\r\n)|(?<=\n\n)", body)
    return [part for part in parts if part]


def split_sizes(body: bytes, sizes: list[int]) -> list[bytes]:
    chunks, offset = [], 0
    for size in sizes:
        if offset >= len(body):
            break
        chunks.append(body[offset : offset + size])
        offset += size
    if offset < len(body):
        chunks.append(body[offset:])
    return chunks


def json_reply(obj: Any, status: int = 200, content_type: str = JSON, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=dumps(obj), content_type=content_type, headers=headers or {})


def mask_key(key: str) -> str:
    if len(key) <= 8:
        return key
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def example_value(schema: Any, fallback_text: str) -> Any:
    """A deterministic value that satisfies a (JSON or Gemini OpenAPI) schema."""
    if not isinstance(schema, dict):
        return fallback_text
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "string")).lower()
    if kind == "object":
        return example_arguments(schema, fallback_text)
    if kind == "array":
        return [example_value(schema.get("items", {}), fallback_text)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, fallback_text)


def example_arguments(schema: Any, fallback_text: str) -> dict[str, Any]:
    """Arguments for a tool call: every property of the parameter schema."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties") or {}
    return {name: example_value(sub, fallback_text) for name, sub in properties.items()}


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector whose values are exact float32 numbers, so
    the float and the base64 encodings decode to the same list."""
    rng = random.Random(f"embedding:{text}")
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = sum(value * value for value in raw) ** 0.5 or 1.0
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def vector_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def text_of(value: Any) -> str:
    """Text of a content value in any of the three formats: a string, or a
    list of text parts / blocks (tool_result blocks count with their content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(text_of(item) for item in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return value["text"]
        if value.get("type") == "tool_result":
            return text_of(value.get("content"))
    return ""


def response_text(response: Any) -> str:
    """Text of a Gemini functionResponse.response: its only string value
    (e.g. ``{"output": "..."}``), else the JSON."""
    if isinstance(response, dict) and len(response) == 1:
        (value,) = response.values()
        if isinstance(value, str):
            return value
    return orjson.dumps(response).decode()


# --------------------------------------------------------------------------
# What to answer: one provider-neutral plan rendered by each provider
# --------------------------------------------------------------------------

Finish = Literal["stop", "length", "tool"]


@dataclass
class ToolSpec:
    name: str
    schema: Any


@dataclass
class Plan:
    text: str  # answer text ("" for a tool call)
    pieces: list[str]  # the text split into stream pieces / tokens
    finish: Finish
    prompt_tokens: int
    tool: ToolSpec | None = None
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        if self.tool is not None:
            return len(split_fragments(self.arguments_json)) + 1
        return max(len(self.pieces), 1)

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


def make_plan(
    *, prefix: str, last_text: str, prompt_text: str, message_count: int, tool: ToolSpec | None, max_tokens: Any
) -> Plan:
    prompt_tokens = count_tokens(prompt_text) + 3 * max(message_count, 1)
    if tool is not None:
        arguments = example_arguments(tool.schema, last_text or "fake")
        return Plan("", [], "tool", prompt_tokens, tool, arguments)
    pieces = split_pieces(f"{prefix} says: {last_text}")
    finish: Finish = "stop"
    if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
        pieces, finish = pieces[:max_tokens], "length"
    return Plan("".join(pieces), pieces, finish, prompt_tokens)


# --------------------------------------------------------------------------
# The server machinery
# --------------------------------------------------------------------------


class FakeProvider:
    """Base class: threading, recording, the reply queue and reply delivery.

    Subclasses implement :meth:`answer` (the default answers) and may add
    provider headers in :meth:`decorate`.
    """

    name = "fake"
    default_api_key = "test-key"
    default_models: tuple[str, ...] = ()

    def __init__(self, api_key: str | None = None, models: Iterable[str] | None = None) -> None:
        self.api_key = api_key if api_key is not None else self.default_api_key
        # None: every model name is known (the listing shows default_models).
        self.models = list(models) if models is not None else None
        self.base_url = ""
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.stream_disconnects = 0
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready), name=f"{type(self).__name__}:{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(10) or self._startup_error is not None:
            raise RuntimeError(f"{type(self).__name__} did not start") from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        future.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as error:  # reported by start()
            self._startup_error = error
            ready.set()
            loop.close()
            return
        self._loop = loop
        ready.set()
        loop.run_forever()
        loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that goes away cancels its handler,
        # which is how mid-stream disconnects are noticed while sleeping.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()  # releases hanging replies
        await self._runner.cleanup()

    # -- scripting ---------------------------------------------------------

    def enqueue(self, reply: Reply) -> None:
        with self._lock:
            self._queue.append(reply)

    def enqueue_fixture(self, rel: str, *, chunk_sizes: list[int] | None = None, delay: float = 0.0) -> None:
        """Queue a recorded response: exact bytes, status and content type.
        SSE bodies are sent one event per chunk unless ``chunk_sizes`` says
        how to cut the bytes."""
        body = fixture_bytes(rel)
        content_type = fixture_content_type(rel)
        chunks: list[bytes] | None = None
        if chunk_sizes:
            chunks = split_sizes(body, chunk_sizes)
        elif content_type.startswith("text/event-stream"):
            chunks = split_sse_events(body)
        reply = Reply(status=fixture_status(rel), body=body, content_type=content_type, chunks=chunks, delay=delay)
        self.enqueue(reply)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
        self.requests.clear()
        self.stream_disconnects = 0

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    def _next_queued(self) -> Reply | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    # -- provider hooks ----------------------------------------------------

    def answer(self, request: RecordedRequest) -> Reply:
        return json_reply({"error": "not implemented"}, status=404)

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        """Add headers the real provider always sends (request ids...)."""
        return reply

    def known_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def listed_models(self) -> list[str]:
        return list(self.models) if self.models is not None else list(self.default_models)

    # -- request handling --------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        reply = self._next_queued() or self.answer(recorded)
        return await self._send(request, self.decorate(reply, recorded))

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=body,
            json=parsed,
        )
        self.requests.append(recorded)
        return recorded

    async def _send(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        if reply.hang:
            return await self._hang(request)
        headers = {"Content-Type": reply.content_type, **reply.headers}
        if reply.chunks is None:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            return web.Response(status=reply.status, body=reply.body, headers=headers)
        return await self._stream(request, reply, headers)

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        assert self._stopping is not None
        await self._stopping.wait()
        self._abort(request)  # the server goes away without answering
        return web.Response(status=503)

    async def _stream(self, request: web.Request, reply: Reply, headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers=headers)
        chunks = reply.chunks or []
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
            await response.prepare(request)
            for index, chunk in enumerate(chunks):
                if reply.abort_after_chunks is not None and index >= reply.abort_after_chunks:
                    break
                if index and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                await response.write(chunk)  # one transport write per chunk
            if reply.abort_after_chunks is not None:
                self._abort(request)  # no terminating chunk: a truncated body
                return response
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            # Why both: a write to a closed socket raises ConnectionResetError;
            # a client leaving while we sleep cancels the handler.
            self.stream_disconnects += 1
            raise
        return response

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()


# --------------------------------------------------------------------------
# OpenAI (and Azure OpenAI)
# --------------------------------------------------------------------------

_AZURE_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/(?P<op>chat/completions|embeddings)$")

_OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the basic auth username:password "
    "pair (i.e. username: YOUR_KEY, password: empty). You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)
_AZURE_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)
_AZURE_NO_DEPLOYMENT = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)


def openai_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Reply:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_reply(body, status, JSON_UTF8)


def azure_error(status: int, code: str, message: str) -> Reply:
    return json_reply({"error": {"code": code, "message": message}}, status, JSON)


class FakeOpenAI(FakeProvider):
    """``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``GET /v1/models``
    (Bearer auth) and the Azure paths ``/openai/deployments/{d}/...``
    (``api-key`` header, ``api-version`` query)."""

    name = "openai"
    default_api_key = "sk-test-openai"
    default_models = ("gpt-4o-mini", "gpt-5-nano", "text-embedding-3-small")
    embedding_dimensions = 1536

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        if "x-request-id" in {key.lower() for key in reply.headers}:
            return reply
        request_id = "req_" + stable_id(request.body + request.path.encode(), 32).lower()
        return dataclasses.replace(reply, headers={"x-request-id": request_id, **reply.headers})

    def answer(self, request: RecordedRequest) -> Reply:
        azure = _AZURE_PATH.match(request.path)
        if azure:
            return self._azure(request, azure["deployment"], azure["op"])
        if (error := self._check_bearer(request)) is not None:
            return error
        route = (request.method, request.path)
        if route == ("POST", "/v1/chat/completions"):
            return self._chat(request, None)
        if route == ("POST", "/v1/embeddings"):
            return self._embeddings(request, None)
        if route == ("GET", "/v1/models"):
            return json_reply({"object": "list", "data": [self._model(m) for m in self.listed_models()]})
        if request.method == "GET" and request.path.startswith("/v1/models/"):
            return self._get_model(request.path.removeprefix("/v1/models/"))
        return openai_error(404, f"Invalid URL ({request.method} {request.path})")

    # -- auth and validation -----------------------------------------------

    def _check_bearer(self, request: RecordedRequest) -> Reply | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return openai_error(401, _OPENAI_NO_KEY)
        key = auth[7:].strip()
        if key != self.api_key:
            message = (
                f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            return openai_error(401, message, code="invalid_api_key")
        return None

    def _azure(self, request: RecordedRequest, deployment: str, op: str) -> Reply:
        if "api-version" not in request.query:
            return azure_error(404, "404", "Resource not found")
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("api-key") or (auth[7:].strip() if auth.startswith("Bearer ") else "")
        if key != self.api_key:
            return azure_error(401, "401", _AZURE_BAD_KEY)
        if not self.known_model(deployment):
            return azure_error(404, "DeploymentNotFound", _AZURE_NO_DEPLOYMENT)
        if request.method != "POST":
            return azure_error(404, "404", "Resource not found")
        if op == "embeddings":
            return self._embeddings(request, deployment)
        return self._chat(request, deployment)

    def _body(self, request: RecordedRequest) -> dict[str, Any] | Reply:
        if not isinstance(request.json, dict):
            return openai_error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.",
            )
        return request.json

    # -- chat completions --------------------------------------------------

    def _chat(self, request: RecordedRequest, deployment: str | None) -> Reply:
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        model = body.get("model") or deployment
        if not model:
            return openai_error(400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return openai_error(
                400, "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
            )
        if deployment is None and not self.known_model(model):
            return openai_error(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        plan = self._plan(body, messages)
        completion_id = "chatcmpl-" + stable_id(request.body, 29)
        azure = deployment is not None
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            frames = self._stream_frames(plan, model, completion_id, include_usage, azure)
            return Reply(content_type=SSE_UTF8, chunks=frames)
        return json_reply(self._completion(plan, model, completion_id, azure))

    def _plan(self, body: dict[str, Any], messages: list[Any]) -> Plan:
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        return make_plan(
            prefix="fake-openai",
            last_text=text_of(last.get("content")),
            prompt_text=" ".join(text_of(m.get("content")) for m in messages if isinstance(m, dict)),
            message_count=len(messages),
            tool=self._tool_to_call(body, last),
            max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        )

    @staticmethod
    def _tool_to_call(body: dict[str, Any], last: dict[str, Any]) -> ToolSpec | None:
        tools = [t.get("function") or {} for t in body.get("tools") or [] if isinstance(t, dict)]
        choice = body.get("tool_choice")
        if not tools or last.get("role") != "user" or choice == "none":
            return None
        wanted = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        chosen = next((t for t in tools if t.get("name") == wanted), tools[0])
        return ToolSpec(chosen.get("name", "tool"), chosen.get("parameters"))

    @staticmethod
    def _usage(plan: Plan) -> dict[str, Any]:
        return {
            "prompt_tokens": plan.prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": plan.prompt_tokens + plan.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish_reason(plan: Plan) -> str:
        return {"stop": "stop", "length": "length", "tool": "tool_calls"}[plan.finish]

    @staticmethod
    def _call_id(plan: Plan) -> str:
        return "call_" + stable_id(f"{plan.tool.name if plan.tool else ''}{plan.arguments_json}", 24)

    def _completion(self, plan: Plan, model: str, completion_id: str, azure: bool) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": plan.text if plan.tool is None else None,
            "refusal": None,
            "annotations": [],
        }
        if plan.tool is not None:
            function = {"name": plan.tool.name, "arguments": plan.arguments_json}
            message["tool_calls"] = [{"id": self._call_id(plan), "type": "function", "function": function}]
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self._finish_reason(plan)}
        completion: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [choice],
            "usage": self._usage(plan),
            "service_tier": "default",
            "system_fingerprint": None,
        }
        if azure:  # Azure adds content-filter verdicts to every answer
            choice["content_filter_results"] = _AZURE_FILTERS
            completion["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": _AZURE_FILTERS}]
        return completion

    def _stream_frames(
        self, plan: Plan, model: str, completion_id: str, include_usage: bool, azure: bool
    ) -> list[bytes]:
        def chunk(choices: list[Any], usage: Any = None) -> bytes:
            obj: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": None,
                "choices": choices,
            }
            if include_usage:  # real chunks carry "usage": null only when asked for usage
                obj["usage"] = usage
            # Real chunks pad themselves with random characters; ours are fixed.
            obj["obfuscation"] = stable_id(repr(choices), 1 + len(repr(choices)) % 14)
            return b"data: " + dumps(obj) + b"\n\n"

        def delta(content: dict[str, Any], finish: str | None = None) -> list[Any]:
            return [{"index": 0, "delta": content, "finish_reason": finish}]

        frames = []
        if azure:  # Azure's first chunk: prompt filter results and no choices
            first = {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _AZURE_FILTERS}],
            }
            frames.append(b"data: " + dumps(first) + b"\n\n")
        if plan.tool is None:
            frames.append(chunk(delta({"role": "assistant", "content": "", "refusal": None})))
            frames += [chunk(delta({"content": piece})) for piece in plan.pieces]
        else:
            call = {
                "index": 0,
                "id": self._call_id(plan),
                "type": "function",
                "function": {"name": plan.tool.name, "arguments": ""},
            }
            frames.append(chunk(delta({"role": "assistant", "content": None, "tool_calls": [call], "refusal": None})))
            for fragment in split_fragments(plan.arguments_json):
                frames.append(chunk(delta({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]})))
        frames.append(chunk(delta({}, self._finish_reason(plan))))
        if include_usage:
            frames.append(chunk([], self._usage(plan)))
        frames.append(b"data: [DONE]\n\n")
        return frames

    # -- embeddings and models ---------------------------------------------

    def _embeddings(self, request: RecordedRequest, deployment: str | None) -> Reply:
        body = self._body(request)
        if isinstance(body, Reply):
            return body
        model = body.get("model") or deployment
        if not model:
            return openai_error(400, "you must provide a model parameter")
        inputs = self._embedding_inputs(body.get("input"))
        if not inputs:
            return openai_error(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            )
        if deployment is None and not self.known_model(model):
            return openai_error(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        dimensions = int(body.get("dimensions") or self.embedding_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(inputs):
            vector = fake_vector(text, dimensions)
            data.append(
                {"object": "embedding", "index": index, "embedding": vector_base64(vector) if as_base64 else vector}
            )
        tokens = sum(count_tokens(text) for text in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return json_reply({"object": "list", "data": data, "model": model, "usage": usage})

    @staticmethod
    def _embedding_inputs(raw: Any) -> list[str]:
        if isinstance(raw, str):
            return [raw]
        if not isinstance(raw, list) or not raw:
            return []
        if all(isinstance(item, int) for item in raw):  # one pre-tokenized input
            return [" ".join(map(str, raw))]
        return [item if isinstance(item, str) else " ".join(map(str, item)) for item in raw]

    @staticmethod
    def _model(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "system"}

    def _get_model(self, model_id: str) -> Reply:
        if not self.known_model(model_id):
            return openai_error(404, f"The model '{model_id}' does not exist", param="model", code="model_not_found")
        return json_reply(self._model(model_id))


_AZURE_FILTERS = {
    category: {"filtered": False, "severity": "safe"} for category in ("hate", "self_harm", "sexual", "violence")
}


# --------------------------------------------------------------------------
# Anthropic
# --------------------------------------------------------------------------


def anthropic_error(status: int, type_: str, message: str, request_id: str) -> Reply:
    body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
    return json_reply(body, status, JSON, {"request-id": request_id})


class FakeAnthropic(FakeProvider):
    """``POST /v1/messages`` (``x-api-key`` or ``Authorization: Bearer``, plus
    ``anthropic-version``), ``POST /v1/messages/count_tokens``, ``GET /v1/models``."""

    name = "anthropic"
    default_api_key = "sk-ant-test"
    default_models = ("claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-6")

    def decorate(self, reply: Reply, request: RecordedRequest) -> Reply:
        """Every real answer carries a ``request-id`` header; for a recorded
        error body use the id it contains."""
        if "request-id" in {key.lower() for key in reply.headers}:
            return reply
        request_id = self._body_request_id(reply.body) or self._request_id(request)
        return dataclasses.replace(reply, headers={"request-id": request_id, **reply.headers})

    @staticmethod
    def _body_request_id(body: bytes) -> str | None:
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return None
        value = parsed.get("request_id") if isinstance(parsed, dict) else None
        return value if isinstance(value, str) else None

    @staticmethod
    def _request_id(request: RecordedRequest) -> str:
        return "req_011C" + stable_id(request.body + request.path.encode(), 20)

    def answer(self, request: RecordedRequest) -> Reply:
        request_id = self._request_id(request)
        if (error := self._check_auth(request, request_id)) is not None:
            return error
        route = (request.method, request.path)
        if route == ("GET", "/v1/models"):
            return json_reply(self._model_list())
        if route not in {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens")}:
            return anthropic_error(404, "not_found_error", "Not Found", request_id)
        if not request.headers.get("anthropic-version"):
            return anthropic_error(400, "invalid_request_error", "anthropic-version: header is required", request_id)
        body = request.json
        if not isinstance(body, dict):
            return anthropic_error(
                400, "invalid_request_error", "There was an issue with the JSON body of your request.", request_id
            )
        if (error := self._validate(body, request.path, request_id)) is not None:
            return error
        plan = self._plan(body)
        if request.path.endswith("/count_tokens"):
            return json_reply({"input_tokens": plan.prompt_tokens})
        message_id = "msg_01" + stable_id(request.body, 22)
        if body.get("stream"):
            return Reply(content_type=SSE_UTF8, chunks=self._stream_frames(plan, body["model"], message_id))
        return json_reply(self._message(plan, body["model"], message_id))

    def _check_auth(self, request: RecordedRequest, request_id: str) -> Reply | None:
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("x-api-key") or (auth[7:].strip() if auth.startswith("Bearer ") else "")
        if not key:
            return anthropic_error(401, "authentication_error", "x-api-key header is required", request_id)
        if key != self.api_key:
            return anthropic_error(401, "authentication_error", "invalid x-api-key", request_id)
        return None

    def _validate(self, body: dict[str, Any], path: str, request_id: str) -> Reply | None:
        required = ["model", "messages"] if path.endswith("/count_tokens") else ["max_tokens", "messages", "model"]
        for name in required:
            if body.get(name) in (None, []):
                return anthropic_error(400, "invalid_request_error", f"{name}: Field required", request_id)
        if not self.known_model(str(body["model"])):
            return anthropic_error(404, "not_found_error", f"model: {body['model']}", request_id)
        return None

    def _plan(self, body: dict[str, Any]) -> Plan:
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        last = messages[-1] if messages else {}
        prompt = " ".join([text_of(body.get("system"))] + [text_of(m.get("content")) for m in messages])
        return make_plan(
            prefix="fake-anthropic",
            last_text=text_of(last.get("content")),
            prompt_text=prompt,
            message_count=len(messages),
            tool=self._tool_to_call(body, last),
            max_tokens=body.get("max_tokens"),
        )

    @staticmethod
    def _tool_to_call(body: dict[str, Any], last: dict[str, Any]) -> ToolSpec | None:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
        choice = body.get("tool_choice") or {}
        content = last.get("content")
        has_result = isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        )
        if not tools or last.get("role") != "user" or has_result or choice.get("type") == "none":
            return None
        wanted = choice.get("name") if choice.get("type") == "tool" else None
        chosen = next((t for t in tools if t.get("name") == wanted), tools[0])
        return ToolSpec(chosen["name"], chosen.get("input_schema"))

    @staticmethod
    def _stop_reason(plan: Plan) -> str:
        return {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}[plan.finish]

    @staticmethod
    def _tool_id(plan: Plan) -> str:
        return "toolu_01" + stable_id(f"{plan.tool.name if plan.tool else ''}{plan.arguments_json}", 22)

    def _content(self, plan: Plan) -> list[dict[str, Any]]:
        if plan.tool is None:
            return [{"type": "text", "text": plan.text}]
        return [{"type": "tool_use", "id": self._tool_id(plan), "name": plan.tool.name, "input": plan.arguments}]

    @staticmethod
    def _usage(plan: Plan, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _message(self, plan: Plan, model: str, message_id: str) -> dict[str, Any]:
        return {
            "model": model,
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": self._content(plan),
            "stop_reason": self._stop_reason(plan),
            "stop_sequence": None,
            "usage": self._usage(plan, plan.completion_tokens),
        }

    def _stream_frames(self, plan: Plan, model: str, message_id: str) -> list[bytes]:
        def event(obj: dict[str, Any]) -> bytes:
            return b"event: " + obj["type"].encode() + b"\ndata: " + dumps(obj) + b"\n\n"

        start = self._message(plan, model, message_id)
        start.update(content=[], stop_reason=None, usage=self._usage(plan, 1))
        frames = [event({"type": "message_start", "message": start})]
        if plan.tool is None:
            block: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in plan.pieces]
        else:
            block = {"type": "tool_use", "id": self._tool_id(plan), "name": plan.tool.name, "input": {}}
            # The real API's first input_json_delta is an empty string.
            fragments = ["", *split_fragments(plan.arguments_json)]
            deltas = [{"type": "input_json_delta", "partial_json": fragment} for fragment in fragments]
        frames.append(event({"type": "content_block_start", "index": 0, "content_block": block}))
        frames.append(b'event: ping\ndata: {"type": "ping"}\n\n')  # spelled like the real API
        frames += [event({"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas]
        frames.append(event({"type": "content_block_stop", "index": 0}))
        usage = {
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": plan.completion_tokens,
        }
        stop = {"stop_reason": self._stop_reason(plan), "stop_sequence": None}
        frames.append(event({"type": "message_delta", "delta": stop, "usage": usage}))
        frames.append(event({"type": "message_stop"}))
        return frames

    def _model_list(self) -> dict[str, Any]:
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m.replace("-", " ").title(),
                "created_at": "2025-09-29T00:00:00Z",
            }
            for m in self.listed_models()
        ]
        first = data[0]["id"] if data else None
        last = data[-1]["id"] if data else None
        return {"data": data, "has_more": False, "first_id": first, "last_id": last}


# --------------------------------------------------------------------------
# Gemini (Developer API)
# --------------------------------------------------------------------------

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
    def _tool_to_call(body: dict[str, Any]) -> ToolSpec | None:
        declarations = [
            declaration
            for tool in field_of(body, "tools") or []
            for declaration in field_of(tool, "functionDeclarations") or []
            if isinstance(declaration, dict)
        ]
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
