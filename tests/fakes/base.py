"""The machinery every fake provider shares: the reply and request types,
the content types, small byte/id helpers and :class:`FakeProvider` (threading,
recording, the reply queue and reply delivery)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self

import orjson
from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.script import ToolRoundTrip
from tests.support.fixtures import fixture_bytes, fixture_content_type, fixture_status
from tests.support.wait import wait_until  # noqa: F401 - importable beside the fakes, as it always was

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
    dying mid-stream); ``hang`` never answers at all. ``release`` holds the
    chunks from ``hold_at_chunk`` on until the test sets it (a stream that
    breaks only once the client has read what came before), or a whole
    answer, status included (a request still in flight while others arrive).
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
    hold_at_chunk: int = 0
    release: threading.Event | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes
    json: Any = None


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
    chars: list[str] = []
    while len(chars) < length:
        number, rest = divmod(number, 62)
        chars.append(_BASE62[rest])
    return "".join(chars)


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

    def __init__(
        self,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """``ssl_context`` serves HTTPS; ``host`` is the name ``base_url`` uses (say "localhost",
        to match a certificate's name): the server always listens on 127.0.0.1."""
        self.api_key = api_key if api_key is not None else self.default_api_key
        self.ssl_context = ssl_context
        self.host = host
        # None: every model name is known (the listing shows default_models).
        self.models = list(models) if models is not None else None
        self.base_url = ""
        self.port = 0
        self.requests: list[RecordedRequest] = []
        self.stream_disconnects = 0
        # A scripted conversation (script.py) replaces the default answers' plan when set.
        self.script: ToolRoundTrip | None = None
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
        scheme = "https" if self.ssl_context is not None else "http"
        self.base_url = f"{scheme}://{self.host}:{self.port}"
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
        await web.SockSite(self._runner, sock, ssl_context=self.ssl_context).start()

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
        self.script = None

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
            if reply.release is not None:
                await _released(reply.release)
            if reply.delay:
                await asyncio.sleep(reply.delay)  # not a wait: the scripted provider is slow to answer
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
                await asyncio.sleep(reply.delay)  # not a wait: the scripted provider is slow to start
            await response.prepare(request)
            for index, chunk in enumerate(chunks):
                if reply.abort_after_chunks is not None and index >= reply.abort_after_chunks:
                    break
                if reply.release is not None and index == reply.hold_at_chunk:
                    await _released(reply.release)
                if index and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)  # not a wait: the scripted stream's pace
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


RELEASE_TIMEOUT_S = 30.0


async def _released(release: threading.Event) -> None:
    """Until the test sets `release` (bounded: a test that never does fails, it does not hang)."""
    if not await asyncio.to_thread(release.wait, RELEASE_TIMEOUT_S):
        raise ConnectionError("the scripted stream was never released")
