"""The gRPC server of the ext_proc service, straight on HTTP/2 frames (asyncio, h2c).

Envoy calls one method, ExternalProcessor/Process, a bidirectional stream, and
each request costs several message exchanges on it. In grpc.aio every message
crosses grpc core's completion queue, a polling thread and the event loop:
about 0.2 ms of CPU per exchange, most of the ext_proc's CPU under load
(README, Performance). Here a message is a DATA frame parsed in place and
answered with one write. Scope: prior-knowledge h2c (Envoy's ext_proc cluster
is HTTP/2 only), that one method, uncompressed messages; any gRPC client can
call it (the tests use grpcio's). The peer is Envoy on loopback or a 0600 Unix
socket, checked (server/peer.py: the uid on a socket, Envoy's token on TCP); still, a
malformed peer gets a GOAWAY and its streams end, never a hang.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import cast

import hpack
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse
from google.protobuf.message import DecodeError

from extproc.config.model import host_and_port, socket_path
from extproc.server import http2 as h2
from extproc.server.busy_poll import BusyPoll, busy_poll
from extproc.server.peer import has_token, uid_allowed, unix_peer

log = logging.getLogger(__name__)

METHOD = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 10+ MB body (base64 images) in one buffered message
_MAX_FRAME = 1 << 20  # what we accept: a large body in few frames
_MAX_STREAMS = 10_000  # per connection; Envoy opens another connection beyond it
_REFILL = 1 << 30  # receive windows are topped up once half of the largest window is used
_OK, _RESOURCE_EXHAUSTED, _UNIMPLEMENTED, _INTERNAL, _UNAUTHENTICATED = 0, 8, 12, 13, 16
_MESSAGE_PREFIX = struct.Struct(">BI")
# Busy polling pays while requests are few. With more streams than this on a connection the
# next message comes soon anyway, and many long streams (a provider's chunk every few tens of
# ms each) would keep the process polling all the time for little.
BUSY_POLL_MAX_STREAMS = 4

Handler = Callable[[Mapping[str, str], AsyncIterator[ProcessingRequest]], AsyncGenerator[ProcessingResponse, None]]

_OUR_SETTINGS = h2.settings_frame(
    {
        h2.SETTINGS_ENABLE_PUSH: 0,
        h2.SETTINGS_MAX_CONCURRENT_STREAMS: _MAX_STREAMS,
        h2.SETTINGS_INITIAL_WINDOW_SIZE: h2.MAX_WINDOW,
        h2.SETTINGS_MAX_FRAME_SIZE: _MAX_FRAME,
        h2.SETTINGS_MAX_HEADER_LIST_SIZE: 64 * 1024,
    }
) + h2.window_update(0, h2.MAX_WINDOW - h2.DEFAULT_WINDOW)
_RESPONSE_HEADERS = h2.header_block([(":status", "200"), ("content-type", "application/grpc")])
_SETTINGS_ACK = h2.frame(h2.SETTINGS, h2.ACK, 0)


def _trailers(status: int, message: str = "") -> bytes:
    return h2.header_block([("grpc-status", str(status))] + ([("grpc-message", message)] if message else []))


_OK_TRAILERS = _trailers(_OK)


class Inbox:
    """The stream's request messages as an async iterator: the handler's side of the stream."""

    __slots__ = ("_ended", "_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[ProcessingRequest] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    def put(self, message: ProcessingRequest) -> None:
        self._items.append(message)
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> ProcessingRequest:
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            await self._waiter
            self._waiter = None
        return self._items.popleft()


class _Stream:
    __slots__ = ("headers_sent", "id", "inbox", "partial", "pending", "received", "send_window", "task", "trailers")

    def __init__(self, stream_id: int, send_window: int, loop: asyncio.AbstractEventLoop) -> None:
        self.id = stream_id
        self.inbox = Inbox(loop)
        self.partial = bytearray()  # a request message split across DATA frames
        self.send_window = send_window
        self.pending = bytearray()  # response bytes waiting for flow-control window
        self.trailers: bytes | None = None  # sent once pending is flushed
        self.headers_sent = False
        self.received = 0  # bytes received since this stream's window was last topped up
        self.task: asyncio.Task[None] | None = None


class ConnectionError_(Exception):
    """The peer broke the protocol: the connection ends with this HTTP/2 error code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class GrpcConnection(asyncio.Protocol):
    def __init__(
        self,
        handler: Handler,
        connections: set[GrpcConnection],
        busy: BusyPoll | None = None,
        token: bytes | None = None,
    ) -> None:
        self._handler = handler
        self._token = token  # None: no token asked for (a Unix socket, or none known)
        self._poke = busy.poke if busy is not None else None
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()  # kept: in Python 3.11 each lookup is a getpid() call
        self._buffer = bytearray()
        self._preface_seen = False
        self._decoder = h2.HeaderDecoder(max_list_size=64 * 1024)
        self._streams: dict[int, _Stream] = {}
        self._last_stream_id = 0
        self._continuation: tuple[int, int, bytearray] | None = None  # stream id, flags, block so far
        self._send_window = h2.DEFAULT_WINDOW
        self._initial_window = h2.DEFAULT_WINDOW
        self._max_send_frame = h2.DEFAULT_MAX_FRAME
        self._received = 0
        self._blocked: set[_Stream] = set()
        self.closing = False
        self._out: list[bytes] = []  # frames to send at the end of this turn of the event loop

    # -- connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        sock = transport.get_extra_info("socket")
        if sock is not None and (peer := unix_peer(sock)) is not None and not uid_allowed(peer[1]):
            log.warning("ext_proc refused a peer of another user", extra={"peer_pid": peer[0], "peer_uid": peer[1]})
            self._transport.abort()  # not a byte of HTTP/2 for it
            return
        self._connections.add(self)
        self._transport.write(_OUR_SETTINGS)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        for stream in self._streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self._streams.clear()
        self._blocked.clear()

    def data_received(self, data: bytes) -> None:
        if self._poke is not None and len(self._streams) <= BUSY_POLL_MAX_STREAMS:
            self._poke()
        buffer = self._buffer
        buffer += data
        try:
            if not self._preface_seen:
                if len(buffer) < len(h2.PREFACE):
                    return
                if buffer[: len(h2.PREFACE)] != h2.PREFACE:
                    raise ConnectionError_(h2.PROTOCOL_ERROR, "not an HTTP/2 prior-knowledge connection")
                del buffer[: len(h2.PREFACE)]
                self._preface_seen = True
            offset, size = 0, len(buffer)
            while size - offset >= 9:
                high, low, kind, flags, stream_id = h2.FRAME_HEADER.unpack_from(buffer, offset)
                length = high << 16 | low
                if length > _MAX_FRAME:
                    raise ConnectionError_(h2.FRAME_SIZE_ERROR, "frame larger than advertised")
                end = offset + 9 + length
                if end > size:
                    break
                payload = bytes(buffer[offset + 9 : end])
                offset = end
                self._frame(kind, flags, stream_id & h2.MAX_WINDOW, payload)
            del buffer[:offset]
        except ConnectionError_ as error:
            self._fail(error.code, str(error))
        except (hpack.HPACKError, ValueError, struct.error) as error:
            self._fail(h2.PROTOCOL_ERROR, f"malformed frame: {error}")

    def _fail(self, code: int, reason: str) -> None:
        log.warning("ext_proc connection ended", extra={"error": reason})
        self._write(h2.goaway(self._last_stream_id, code))
        self.close()
        self._buffer.clear()

    def _write(self, data: bytes) -> None:
        """Frames written in one turn of the event loop leave in one send (a syscall per frame was a fifth of the CPU)."""
        if not self._out:
            self._loop.call_soon(self._send_out)
        self._out.append(data)

    def _send_out(self) -> None:
        if self._out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(self._out))
        self._out.clear()

    # -- frames

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is not None and kind != h2.CONTINUATION:
            raise ConnectionError_(h2.PROTOCOL_ERROR, "header block interrupted")
        if kind == h2.DATA:
            self._data(flags, stream_id, payload)
        elif kind == h2.HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == h2.CONTINUATION:
            self._continue_headers(flags, stream_id, payload)
        elif kind == h2.SETTINGS:
            if not flags & h2.ACK:
                self._settings(payload)
        elif kind == h2.WINDOW_UPDATE:
            self._window_update(stream_id, h2.read_u32(payload))
        elif kind == h2.PING:
            if not flags & h2.ACK:
                self._write(h2.frame(h2.PING, h2.ACK, 0, payload))
        elif kind == h2.RST_STREAM:
            self._reset_by_peer(stream_id)
        elif kind == h2.GOAWAY:
            self.closing = True
        elif kind == h2.PUSH_PROMISE:
            raise ConnectionError_(h2.PROTOCOL_ERROR, "a client cannot push")
        # PRIORITY and unknown types are ignored (RFC 9113 5.5)

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        self._received += len(payload)
        if self._received >= _REFILL:
            self._write(h2.window_update(0, self._received))
            self._received = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # a stream already answered or reset: only the connection's window counted it
        stream.received += len(payload)
        if stream.received >= _REFILL:
            self._write(h2.window_update(stream_id, stream.received))
            stream.received = 0
        self._messages(stream, h2.strip_padding(flags, payload))
        if flags & h2.END_STREAM:
            stream.inbox.end()

    def _messages(self, stream: _Stream, data: bytes) -> None:
        """Split the gRPC length-prefixed messages out of the stream's bytes."""
        if stream.partial:
            stream.partial += data
            buffer: bytes | bytearray = stream.partial
        else:
            buffer = data
        offset, size = 0, len(buffer)
        while size - offset >= 5:
            compressed, length = _MESSAGE_PREFIX.unpack_from(buffer, offset)
            if compressed or length > MAX_MESSAGE_BYTES:
                self._end_stream(stream, _RESOURCE_EXHAUSTED if length > MAX_MESSAGE_BYTES else _INTERNAL, "")
                return
            end = offset + 5 + length
            if end > size:
                break
            try:
                stream.inbox.put(ProcessingRequest.FromString(buffer[offset + 5 : end]))
            except DecodeError:
                self._end_stream(stream, _INTERNAL, "the request message could not be parsed")
                return
            offset = end
        if buffer is stream.partial:
            del stream.partial[:offset]
        elif offset < size:
            stream.partial += buffer[offset:]

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(h2.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = h2.strip_padding(flags, payload)
        if not flags & h2.END_HEADERS:
            self._continuation = (stream_id, flags, bytearray(block))
            return
        self._header_block(stream_id, flags, block)

    def _continue_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is None or self._continuation[0] != stream_id:
            raise ConnectionError_(h2.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        _, first_flags, block = self._continuation
        block += payload
        if len(block) > 256 * 1024:
            raise ConnectionError_(h2.PROTOCOL_ERROR, "header block too large")
        if flags & h2.END_HEADERS:
            self._continuation = None
            self._header_block(stream_id, first_flags, bytes(block))

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        metadata = self._decoder.decode(block)  # every block, even a stream's trailers: the table must follow
        stream = self._streams.get(stream_id)
        if stream is not None:  # trailers from the client: its side is done
            stream.inbox.end()
            return
        if stream_id % 2 == 0 or stream_id <= self._last_stream_id:
            if stream_id % 2 == 0:
                raise ConnectionError_(h2.PROTOCOL_ERROR, "a client stream id must be odd")
            return  # a stream we already ended: late trailers
        self._last_stream_id = stream_id
        if self._token is not None:
            if not has_token(metadata, self._token):
                self._refuse(stream_id)
                return
            self._token = None  # this connection is Envoy's: its other streams need no check
        if self.closing or len(self._streams) >= _MAX_STREAMS:
            self._write(h2.rst_stream(stream_id, h2.REFUSED_STREAM))
            return
        if metadata.get(":path") != METHOD:
            self._write(
                h2.frame(
                    h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, _RESPONSE_HEADERS + _trailers(_UNIMPLEMENTED)
                )
            )
            return
        stream = self._streams[stream_id] = _Stream(stream_id, self._initial_window, self._loop)
        if flags & h2.END_STREAM:
            stream.inbox.end()
        stream.task = self._loop.create_task(self._serve(stream, metadata))

    def _refuse(self, stream_id: int) -> None:
        """A peer without Envoy's token: UNAUTHENTICATED, then the connection ends."""
        block = _RESPONSE_HEADERS + _trailers(_UNAUTHENTICATED, "not Envoy")
        self._write(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, block))
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        raise ConnectionError_(h2.NO_ERROR, f"a peer without Envoy's token: {peer}")

    def _settings(self, payload: bytes) -> None:
        if len(payload) % 6:
            raise ConnectionError_(h2.FRAME_SIZE_ERROR, "SETTINGS of odd length")
        for key, value in h2.parse_settings(payload).items():
            if key == h2.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > h2.MAX_WINDOW:
                    raise ConnectionError_(h2.FLOW_CONTROL_ERROR, "initial window too large")
                delta, self._initial_window = value - self._initial_window, value
                for stream in self._streams.values():
                    stream.send_window += delta
            elif key == h2.SETTINGS_MAX_FRAME_SIZE:
                if not h2.DEFAULT_MAX_FRAME <= value < 1 << 24:
                    raise ConnectionError_(h2.PROTOCOL_ERROR, "invalid max frame size")
                self._max_send_frame = value
        self._write(_SETTINGS_ACK)
        for stream in list(self._blocked):
            self._flush(stream)

    def _window_update(self, stream_id: int, increment: int) -> None:
        if stream_id == 0:
            self._send_window += increment
            for stream in list(self._blocked):
                self._flush(stream)
        elif (target := self._streams.get(stream_id)) is not None:
            target.send_window += increment
            self._flush(target)

    def _reset_by_peer(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._blocked.discard(stream)
            if stream.task is not None:
                stream.task.cancel()

    # -- serving a stream

    async def _serve(self, stream: _Stream, metadata: dict[str, str]) -> None:
        responses = self._handler(metadata, stream.inbox)
        try:
            async for response in responses:
                self._send_message(stream, response.SerializeToString())
        except asyncio.CancelledError:
            return  # reset by Envoy, or the connection is gone: nobody to answer
        except Exception:
            log.exception("ext_proc stream failed")
            self._end_stream(stream, _INTERNAL, "the ext_proc service failed")
            return
        finally:
            await responses.aclose()  # the passes' own cleanup runs now, not when collected
        self._end_stream(stream, _OK, "")

    def _send_message(self, stream: _Stream, payload: bytes) -> None:
        if stream.id not in self._streams:
            return
        if not stream.headers_sent:
            stream.headers_sent = True
            self._write(h2.frame(h2.HEADERS, h2.END_HEADERS, stream.id, _RESPONSE_HEADERS))
        if not stream.pending and len(payload) + 5 <= min(stream.send_window, self._send_window, self._max_send_frame):
            # The usual case, in one write: the whole message fits in the windows and one frame.
            size = len(payload) + 5
            stream.send_window -= size
            self._send_window -= size
            self._write(h2.frame(h2.DATA, 0, stream.id, _MESSAGE_PREFIX.pack(0, len(payload)) + payload))
            return
        stream.pending += _MESSAGE_PREFIX.pack(0, len(payload))
        stream.pending += payload
        self._flush(stream)

    def _end_stream(self, stream: _Stream, status: int, message: str) -> None:
        if self._streams.get(stream.id) is not stream:
            return
        if not stream.headers_sent:  # trailers-only: the status in the response's headers
            stream.headers_sent = True
            block = _RESPONSE_HEADERS + _trailers(status, message)
        else:
            block = _OK_TRAILERS if status == _OK else _trailers(status, message)
        stream.trailers = h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream.id, block)
        if status != _OK and stream.task is not None and stream.task is not asyncio.current_task():
            stream.task.cancel()
        self._flush(stream)

    def _flush(self, stream: _Stream) -> None:
        """Send what the windows allow of the stream's pending bytes, then its trailers once all went."""
        frames = []
        while stream.pending:
            size = min(len(stream.pending), stream.send_window, self._send_window, self._max_send_frame)
            if size <= 0:
                self._blocked.add(stream)
                break
            frames.append(h2.frame(h2.DATA, 0, stream.id, bytes(stream.pending[:size])))
            del stream.pending[:size]
            stream.send_window -= size
            self._send_window -= size
        if not stream.pending:
            self._blocked.discard(stream)
            if stream.trailers is not None:
                frames.append(stream.trailers)
                self._streams.pop(stream.id, None)
        if frames:
            self._write(b"".join(frames))

    def shut_down(self) -> None:
        """No new streams: the ones in flight go on."""
        if not self.closing:
            self.closing = True
            self._write(h2.goaway(self._last_stream_id, h2.NO_ERROR))

    @property
    def idle(self) -> bool:
        return not self._streams

    def close(self) -> None:
        self._send_out()
        if self._transport is not None:
            self._transport.close()


class GrpcServer:
    """Listens on `unix:<path>` or `<host>:<port>`; each connection a GrpcConnection."""

    def __init__(self, handler: Handler, address: str, busy_poll_us: int = 0, token: str | None = None) -> None:
        """`token`: what a TCP peer's first stream must carry (Envoy's, config/render_peer.py)."""
        self._handler = handler
        self.address = address
        self._token = token.encode() if token is not None and socket_path(address) is None else None
        self._busy_poll_us = busy_poll_us
        self.busy_poll: BusyPoll | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[GrpcConnection] = set()

    def _protocol(self) -> GrpcConnection:
        return GrpcConnection(self._handler, self._connections, self.busy_poll, self._token)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.busy_poll = busy_poll(self._busy_poll_us)
        if (path := socket_path(self.address)) is not None:
            self._server = await loop.create_unix_server(self._protocol, path, backlog=1024)
        else:
            self._server = await loop.create_server(self._protocol, *host_and_port(self.address), backlog=1024)

    async def stop(self, grace_s: float | None) -> None:
        """Stop listening, let the streams in flight finish (up to `grace_s`), then close."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.shut_down()
        deadline = asyncio.get_running_loop().time() + (grace_s or 0)
        while any(not c.idle for c in self._connections) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self._connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
