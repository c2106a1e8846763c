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
malformed peer gets a GOAWAY and its streams end, never a hang, and what a peer
can make the server hold is bounded (`Limits`): each stream's request bytes by its
receive window, which is returned only as the handler takes the messages; each
stream's response bytes by pausing its handler while they wait for the peer's
window; a connection's sum of both by a budget, past which the stream asking for
more is reset; the control frames a peer can make the server answer by no longer
reading while its answers are not being read.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
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
_MAX_FRAME = 1 << 20  # what we accept: a large body in few frames
_MAX_STREAMS = 10_000  # per connection; Envoy opens another connection beyond it
_MAX_HEADER_LIST = 64 * 1024  # decoded, as advertised
_MAX_HEADER_BLOCK = 256 * 1024  # encoded, over a HEADERS frame and its CONTINUATIONs
_MAX_CONTINUATIONS = 64  # Envoy splits a block only past our 1 MiB frames
_REFILL = 1 << 30  # the connection's receive window is topped up once half of it is used
# DATA queued in one turn of the event loop; more waits for the next turn as the stream's pending
# bytes (in the connection's budget). With the transport's own pause, this bounds unsent output.
_TURN_BYTES = 1 << 20
_REFUSED_GRACE_S = 1.0  # a refused peer's time to read its answer before the connection is closed
_OK, _RESOURCE_EXHAUSTED, _UNIMPLEMENTED, _INTERNAL, _UNAUTHENTICATED = 0, 8, 12, 13, 16
_MESSAGE_PREFIX = struct.Struct(">BI")


def _message_follows(response: ProcessingResponse) -> bool:
    """Whether Envoy's next message on this stream follows this reply at once, so the loop polls for
    it: the request's body after its headers' reply, the answer's body after its headers' when one is
    asked for (without a body mode the answer goes on alone, or to the observer). After a body's
    reply the next message waits on the provider or on the client's next request: the loop sleeps."""
    kind = response.WhichOneof("response")
    return kind == "request_headers" or (kind == "response_headers" and response.HasField("mode_override"))


Handler = Callable[[Mapping[str, str], AsyncIterator[ProcessingRequest]], AsyncGenerator[ProcessingResponse, None]]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one peer can make the server hold."""

    message_bytes: int = 64 * 1024 * 1024  # a request message: a 10+ MB body (base64 images) in one
    connection_bytes: int = 256 * 1024 * 1024  # request and response bytes held for one connection's streams

    @property
    def stream_window(self) -> int:
        """Each stream's receive window: the largest message fits (a smaller one could stall it)."""
        return max(self.message_bytes + 5, h2.DEFAULT_WINDOW)

    def preamble(self) -> bytes:
        """The server's first frames on a connection."""
        settings = {
            h2.SETTINGS_ENABLE_PUSH: 0,
            h2.SETTINGS_MAX_CONCURRENT_STREAMS: _MAX_STREAMS,
            h2.SETTINGS_INITIAL_WINDOW_SIZE: self.stream_window,
            h2.SETTINGS_MAX_FRAME_SIZE: _MAX_FRAME,
            h2.SETTINGS_MAX_HEADER_LIST_SIZE: _MAX_HEADER_LIST,
        }
        return h2.settings_frame(settings) + h2.window_update(0, h2.MAX_WINDOW - h2.DEFAULT_WINDOW)


@dataclass(frozen=True, slots=True)
class BatchReads:
    """Connections whose streams never wait for a reply (Envoy's observability mode): once one of
    their streams' metadata `marks` them, they are read at most every `every_s`, what came in
    between at once, so the process wakes once per batch instead of once per message."""

    marks: Callable[[Mapping[str, str]], bool]
    every_s: float


_RESPONSE_HEADERS = h2.header_block([(":status", "200"), ("content-type", "application/grpc")])
_SETTINGS_ACK = h2.frame(h2.SETTINGS, h2.ACK, 0)


def _trailers(status: int, message: str = "") -> bytes:
    return h2.header_block([("grpc-status", str(status))] + ([("grpc-message", message)] if message else []))


_OK_TRAILERS = _trailers(_OK)


class Inbox:
    """The stream's request messages as an async iterator: the handler's side of the stream. It
    counts the bytes the handler took; past `settle_at` it tells the connection (`settle`), which
    then holds them no longer and may return them to the peer's window."""

    __slots__ = ("_items", "_loop", "_settle", "_stream_id", "_waiter", "ended", "settle_at", "taken")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, settle: Callable[[int], None], stream_id: int, settle_at: int
    ) -> None:
        self._loop = loop
        self._settle = settle  # by stream id, not a reference: a cycle would leave each stream to the collector
        self._stream_id = stream_id
        self._items: deque[tuple[ProcessingRequest, int]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.ended = False
        self.taken = 0
        self.settle_at = settle_at

    def put(self, message: ProcessingRequest, size: int) -> None:
        self._items.append((message, size))
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> ProcessingRequest:
        while not self._items:
            if self.ended:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            await self._waiter
            self._waiter = None
        message, size = self._items.popleft()
        self.taken += size
        if self.taken >= self.settle_at:
            self._settle(self._stream_id)
        return message


class _Stream:
    __slots__ = (
        "drained",
        "headers_sent",
        "id",
        "inbox",
        "live",
        "partial",
        "pending",
        "recv_window",
        "send_window",
        "task",
        "trailers",
        "unacked",
    )

    def __init__(
        self,
        stream_id: int,
        send_window: int,
        recv_window: int,
        loop: asyncio.AbstractEventLoop,
        settle: Callable[[int], None],
    ) -> None:
        self.id = stream_id
        self.inbox = Inbox(loop, settle, stream_id, recv_window >> 1)
        self.live = True  # until the connection forgets it
        self.partial = bytearray()  # a request message split across DATA frames
        self.recv_window = recv_window  # what the peer may still send
        self.unacked = 0  # bytes taken or dropped, not yet returned to the peer's window
        self.send_window = send_window
        self.pending = bytearray()  # response bytes waiting for flow-control window
        self.drained: asyncio.Future[None] | None = None  # the handler waits on it while bytes are pending
        self.trailers: bytes | None = None  # sent once pending is flushed
        self.headers_sent = False
        self.task: asyncio.Task[None] | None = None


class H2ConnectionError(Exception):
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
        limits: Limits = Limits(),
        batch: BatchReads | None = None,
    ) -> None:
        self._handler = handler
        self._batch = batch
        self._batched = False  # a stream's metadata marked this connection: it is read in batches
        self._resting = False  # not read until the batch's time has come
        self._token = token  # None: no token asked for (a Unix socket, or none known)
        self._poke = busy.poke if busy is not None else None
        self._arrived = busy.arrived if busy is not None else None
        self._connections = connections
        self._limits = limits
        self._stream_window = limits.stream_window
        self._max_message = limits.message_bytes
        self._budget = limits.connection_bytes
        self._settle_by_id = self._settle_stream  # one bound method for every stream's inbox
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()  # kept: in Python 3.11 each lookup is a getpid() call
        self._buffer = bytearray()
        self._handshake = True  # until the preface and the first frame's header (a SETTINGS) are in
        self._decoder = h2.HeaderDecoder(max_list_size=_MAX_HEADER_LIST)
        self._streams: dict[int, _Stream] = {}
        self._last_stream_id = 0
        self._continuation: tuple[int, int, bytearray, int] | None = None  # stream id, flags, block, frames
        self._send_window = h2.DEFAULT_WINDOW
        self._initial_window = h2.DEFAULT_WINDOW
        self._max_send_frame = h2.DEFAULT_MAX_FRAME
        self._received = 0
        self._held = 0  # request and response bytes held for all streams, less what was taken but not settled
        self._blocked: set[_Stream] = set()
        self._writing_paused = False
        self._out_room = _TURN_BYTES  # DATA bytes this turn may still queue (0 while the transport is full)
        self._room_short = False  # a stream waits for the next turn's room
        self.closing = False
        self._unrefused: int | None = None  # the stream of a peer without Envoy's token, until refused
        self._refused = False  # that peer was answered: nothing more it sends is read
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
        self._transport.write(self._limits.preamble())

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        for stream in list(self._streams.values()):
            self._forget(stream)
        self._blocked.clear()

    def pause_writing(self) -> None:
        """The peer is not reading: read nothing more from it (each frame may need an answer)
        and queue no more DATA, until what was written has gone."""
        self._writing_paused = True
        self._out_room = 0
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._out_room = _TURN_BYTES
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
        for stream in list(self._blocked):
            self._flush(stream)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        buffer = self._buffer
        buffer += data
        try:
            if self._handshake and not self._check_handshake():
                return
            offset = self._frames(buffer)
            if not self._refused:
                del buffer[:offset]  # the frames' views are gone: the buffer may be resized
            if self._batched and not self._resting:
                self._rest()
        except H2ConnectionError as error:
            self._fail(error.code, str(error))
        except hpack.OversizedHeaderListError:
            self._fail(h2.ENHANCE_YOUR_CALM, "header list larger than advertised")
        except hpack.HPACKError as error:
            self._fail(h2.COMPRESSION_ERROR, f"header block could not be decoded: {error}")
        except (ValueError, struct.error) as error:
            self._fail(h2.PROTOCOL_ERROR, f"malformed frame: {error}")
        except Exception:  # a fault of ours: the peer still gets a GOAWAY, the process goes on
            log.exception("ext_proc connection failed")
            self._fail(h2.INTERNAL_ERROR, "internal error")

    def _rest(self) -> None:
        """Read nothing more until the next batch is due."""
        assert self._batch is not None and self._transport is not None
        if self._transport.is_closing() or self._writing_paused:
            return
        self._resting = True
        self._transport.pause_reading()
        self._loop.call_later(self._batch.every_s, self._wake)

    def _wake(self) -> None:
        self._resting = False
        if self._transport is not None and not self._transport.is_closing() and not self._writing_paused:
            self._transport.resume_reading()

    def _frames(self, buffer: bytearray) -> int:
        """Handles every whole frame in `buffer` and returns the bytes they took. A DATA frame's
        payload is a view of the buffer, so a request message is copied once, where it is parsed
        (an agent's 80 KB body was copied twice per frame before that); every view is gone on return."""
        view = memoryview(buffer)
        try:
            offset, size = 0, len(buffer)
            while size - offset >= 9:
                high, low, kind, flags, stream_id = h2.FRAME_HEADER.unpack_from(buffer, offset)
                length = high << 16 | low
                if length > _MAX_FRAME:
                    raise H2ConnectionError(h2.FRAME_SIZE_ERROR, "frame larger than advertised")
                end = offset + 9 + length
                if end > size:
                    break
                start, offset = offset + 9, end
                self._frame(kind, flags, stream_id & h2.MAX_WINDOW, view[start:end])
                if self._refused:
                    break
            return offset
        finally:
            view.release()

    def _check_handshake(self) -> bool:
        """Whether the client's preface and the header of its first frame, a SETTINGS, are in (RFC 9113 3.4)."""
        buffer = self._buffer
        if len(buffer) < len(h2.PREFACE) + 9:
            if not h2.PREFACE.startswith(bytes(buffer[: len(h2.PREFACE)])):
                raise H2ConnectionError(h2.PROTOCOL_ERROR, "not an HTTP/2 prior-knowledge connection")
            return False
        if buffer[: len(h2.PREFACE)] != h2.PREFACE:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "not an HTTP/2 prior-knowledge connection")
        if buffer[len(h2.PREFACE) + 3] != h2.SETTINGS or buffer[len(h2.PREFACE) + 4] & h2.ACK:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "the preface is not followed by a SETTINGS frame")
        del buffer[: len(h2.PREFACE)]
        self._handshake = False
        return True

    def _fail(self, code: int, reason: str) -> None:
        log.warning("ext_proc connection ended", extra={"error": reason})
        self._write(h2.goaway(self._last_stream_id, code))
        self.close()
        self._buffer = bytearray()  # not cleared in place: a frame's view of it may still be alive

    def _write(self, data: bytes) -> None:
        """Frames written in one turn of the event loop leave in one send (a syscall per frame was a fifth of the CPU)."""
        if not self._out:
            self._loop.call_soon(self._send_out)
        self._out.append(data)

    def _send_out(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self._out.clear()
            return
        if self._out:
            transport.write(b"".join(self._out))  # may pause writing
            self._out.clear()
        if not self._writing_paused:
            self._out_room = _TURN_BYTES
            if self._room_short:
                self._room_short = False
                for stream in list(self._blocked):
                    self._flush(stream)

    # -- frames

    def _frame(self, kind: int, flags: int, stream_id: int, view: memoryview) -> None:
        """One frame; `view`, its payload, is a view of the connection's buffer, valid for this call."""
        if self._continuation is not None and kind != h2.CONTINUATION:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "header block interrupted")
        if self._unrefused is not None:  # a stream without Envoy's token: nothing else is served
            if kind == h2.DATA and stream_id == self._unrefused and flags & h2.END_STREAM:
                self._refuse()
            return
        if kind == h2.DATA:
            self._data(flags, stream_id, view)
            return
        payload = bytes(view)  # kept by some (a header block's pieces): its own bytes
        if kind == h2.HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == h2.CONTINUATION:
            self._continue_headers(flags, stream_id, payload)
        elif kind == h2.SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == h2.WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == h2.PING:
            _control_frame(stream_id, payload, 8, "PING")
            if not flags & h2.ACK:
                self._write(h2.frame(h2.PING, h2.ACK, 0, payload))
        elif kind == h2.RST_STREAM:
            self._reset_by_peer(stream_id, payload)
        elif kind == h2.GOAWAY:
            _control_frame(stream_id, payload[:8], 8, "GOAWAY")
            self.closing = True
        elif kind == h2.PRIORITY:
            if stream_id == 0 or len(payload) != 5:
                raise H2ConnectionError(h2.PROTOCOL_ERROR if stream_id == 0 else h2.FRAME_SIZE_ERROR, "bad PRIORITY")
        elif kind == h2.PUSH_PROMISE:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "a client cannot push")
        # unknown types are ignored (RFC 9113 5.5)

    def _data(self, flags: int, stream_id: int, payload: memoryview) -> None:
        # A message (not a window update or a ping): what a poll waits for. Never an observer's: no
        # poll waits on those.
        if self._arrived is not None and not self._batched:
            self._arrived()
        size = len(payload)
        self._received += size
        if self._received >= _REFILL:
            self._write(h2.window_update(0, self._received))
            self._received = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id == 0 or stream_id > self._last_stream_id:
                raise H2ConnectionError(h2.PROTOCOL_ERROR, "DATA on a stream not opened")
            return  # a stream already answered or reset: only the connection's window counted it
        if size > stream.recv_window or stream.inbox.ended:
            self._reset(stream, h2.FLOW_CONTROL_ERROR if size > stream.recv_window else h2.STREAM_CLOSED)
            return
        stream.recv_window -= size
        if flags & h2.PADDED:
            data = h2.strip_padding(flags, payload)
            stream.unacked += size - len(data)  # padding is never taken: returned with the next update
            size = len(data)
        else:
            data = payload
        self._held += size
        if self._held > self._budget and self._over_budget(stream):
            return
        if flags & h2.END_STREAM:
            stream.inbox.end()  # first: an error in these messages must not ask for a request already whole
        if self._messages(stream, data) and stream.partial:
            if flags & h2.END_STREAM:
                self._abort(stream, _INTERNAL, "the request stream ended inside a message")
            else:
                self._settle(stream)  # the peer may need what was taken to send the rest of this message

    def _messages(self, stream: _Stream, data: memoryview) -> bool:
        """Split the gRPC length-prefixed messages out of the stream's bytes; False if that ended the stream."""
        if stream.partial:
            stream.partial += data
            buffer = memoryview(stream.partial)  # released before it is trimmed
        else:
            buffer = data
        offset, size = 0, len(buffer)
        while size - offset >= 5:
            compressed, length = _MESSAGE_PREFIX.unpack_from(buffer, offset)
            if compressed or length > self._max_message:
                if compressed:
                    self._abort(stream, _INTERNAL, "compressed messages are not supported")
                else:
                    self._abort(stream, _RESOURCE_EXHAUSTED, "the request message is too large")
                return False
            end = offset + 5 + length
            if end > size:
                break
            try:
                stream.inbox.put(ProcessingRequest.FromString(buffer[offset + 5 : end]), 5 + length)
            except DecodeError:
                self._abort(stream, _INTERNAL, "the request message could not be parsed")
                return False
            offset = end
        if buffer.obj is stream.partial:
            buffer.release()
            del stream.partial[:offset]
        elif offset < size:
            stream.partial += buffer[offset:]
        return True

    def _settle(self, stream: _Stream) -> None:
        """The bytes the handler took are no longer held. They go back to the peer's window once half
        of it is used, or at once while a message is partly in (its rest may need them)."""
        inbox = stream.inbox
        taken, inbox.taken = inbox.taken, 0
        if not stream.live:
            return
        self._held -= taken
        stream.unacked += taken
        if inbox.ended:
            return
        if stream.partial:
            if stream.unacked:
                self._credit(stream)
            inbox.settle_at = 1  # the next message taken
        else:
            if stream.unacked >= self._stream_window >> 1:
                self._credit(stream)
            inbox.settle_at = (self._stream_window >> 1) - stream.unacked

    def _settle_stream(self, stream_id: int) -> None:
        if (stream := self._streams.get(stream_id)) is not None:
            self._settle(stream)

    def _over_budget(self, stream: _Stream) -> bool:
        """Past the connection's budget (counting taken bytes not yet settled): settle every stream;
        if still past it, `stream`, which asked for more, is reset."""
        for each in list(self._streams.values()):
            if each.inbox.taken:
                self._settle(each)
        if self._held <= self._budget:
            return False
        self._reset(stream, h2.ENHANCE_YOUR_CALM)
        return True

    def _credit(self, stream: _Stream) -> None:
        """Return the bytes taken to the peer's window on the stream."""
        self._write(h2.window_update(stream.id, stream.unacked))
        stream.recv_window += stream.unacked
        stream.unacked = 0

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "HEADERS on stream 0")
        block = h2.strip_padding(flags, payload)
        if len(block) > _MAX_HEADER_BLOCK:
            raise H2ConnectionError(h2.ENHANCE_YOUR_CALM, "header block too large")
        if not flags & h2.END_HEADERS:
            self._continuation = (stream_id, flags, bytearray(block), 0)
            return
        self._header_block(stream_id, flags, block)

    def _continue_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is None or self._continuation[0] != stream_id:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        _, first_flags, block, frames = self._continuation
        block += payload
        if len(block) > _MAX_HEADER_BLOCK or frames >= _MAX_CONTINUATIONS:
            raise H2ConnectionError(h2.ENHANCE_YOUR_CALM, "header block too large")
        if flags & h2.END_HEADERS:
            self._continuation = None
            self._header_block(stream_id, first_flags, bytes(block))
        else:
            self._continuation = (stream_id, first_flags, block, frames + 1)

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        metadata = self._decoder.decode(block)  # every block, even a stream's trailers: the table must follow
        stream = self._streams.get(stream_id)
        if stream is not None:  # trailers from the client: its side is done
            if stream.inbox.ended:
                self._reset(stream, h2.STREAM_CLOSED)
            elif not flags & h2.END_STREAM:
                self._reset(stream, h2.PROTOCOL_ERROR)  # only trailers may follow the first block
            else:
                stream.inbox.end()
                if stream.partial:
                    self._abort(stream, _INTERNAL, "the request stream ended inside a message")
            return
        if stream_id % 2 == 0 or stream_id <= self._last_stream_id:
            if stream_id % 2 == 0:
                raise H2ConnectionError(h2.PROTOCOL_ERROR, "a client stream id must be odd")
            return  # a stream we already ended: late trailers
        self._last_stream_id = stream_id
        if self._token is not None:
            if not has_token(metadata, self._token):
                # answered once its request ended: grpc clients fail a call answered while they still send
                self._unrefused = stream_id
                if flags & h2.END_STREAM:
                    self._refuse()
                else:
                    self._loop.call_later(_REFUSED_GRACE_S, self._refuse)
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
        stream = self._streams[stream_id] = _Stream(
            stream_id, self._initial_window, self._stream_window, self._loop, self._settle_by_id
        )
        if flags & h2.END_STREAM:
            stream.inbox.end()
        if self._batch is not None and not self._batched and self._batch.marks(metadata):
            self._batched = True
        stream.task = self._loop.create_task(self._serve(stream, metadata))

    def _refuse(self) -> None:
        """A peer without Envoy's token: UNAUTHENTICATED on its stream, then the connection ends. What
        it sends meanwhile is dropped unread; closing at once would lose the answer to the peer's RST
        (the kernel resets a socket closed with unread bytes), so it gets a moment to read it."""
        stream_id = self._unrefused
        if stream_id is None or self._refused:
            return
        block = _RESPONSE_HEADERS + _trailers(_UNAUTHENTICATED, "not Envoy")
        self._write(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream_id, block))
        self._write(h2.goaway(stream_id, h2.NO_ERROR))
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        log.warning("ext_proc refused a peer without Envoy's token", extra={"peer": str(peer)})
        self._refused = True
        self._buffer = bytearray()  # not cleared in place: the frame being handled is a view of it
        self._loop.call_later(_REFUSED_GRACE_S, self.close)

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & h2.ACK:
            if payload:
                raise H2ConnectionError(h2.FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        if len(payload) % 6:
            raise H2ConnectionError(h2.FRAME_SIZE_ERROR, "SETTINGS of odd length")
        for key, value in h2.parse_settings(payload).items():
            if key == h2.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > h2.MAX_WINDOW:
                    raise H2ConnectionError(h2.FLOW_CONTROL_ERROR, "initial window too large")
                delta, self._initial_window = value - self._initial_window, value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > h2.MAX_WINDOW:
                        raise H2ConnectionError(h2.FLOW_CONTROL_ERROR, "a stream's window overflows")
            elif key == h2.SETTINGS_MAX_FRAME_SIZE:
                if not h2.DEFAULT_MAX_FRAME <= value < 1 << 24:
                    raise H2ConnectionError(h2.PROTOCOL_ERROR, "invalid max frame size")
                self._max_send_frame = value
            elif key == h2.SETTINGS_ENABLE_PUSH and value > 1:
                raise H2ConnectionError(h2.PROTOCOL_ERROR, "invalid enable push")
        self._write(_SETTINGS_ACK)
        for stream in list(self._blocked):
            self._flush(stream)

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError(h2.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong length")
        increment = h2.read_u32(payload)
        if stream_id == 0:
            if increment == 0:
                raise H2ConnectionError(h2.PROTOCOL_ERROR, "WINDOW_UPDATE of zero")
            self._send_window += increment
            if self._send_window > h2.MAX_WINDOW:
                raise H2ConnectionError(h2.FLOW_CONTROL_ERROR, "the connection's window overflows")
            for stream in list(self._blocked):
                self._flush(stream)
        elif (target := self._streams.get(stream_id)) is not None:
            target.send_window += increment
            if increment == 0 or target.send_window > h2.MAX_WINDOW:
                self._reset(target, h2.PROTOCOL_ERROR if increment == 0 else h2.FLOW_CONTROL_ERROR)
                return
            self._flush(target)
        elif stream_id > self._last_stream_id:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "WINDOW_UPDATE on a stream not opened")

    def _reset_by_peer(self, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or stream_id > self._last_stream_id:
            raise H2ConnectionError(h2.PROTOCOL_ERROR, "RST_STREAM on a stream not opened")
        if len(payload) != 4:
            raise H2ConnectionError(h2.FRAME_SIZE_ERROR, "RST_STREAM of the wrong length")
        if (stream := self._streams.get(stream_id)) is not None:
            self._forget(stream)

    # -- serving a stream

    async def _serve(self, stream: _Stream, metadata: dict[str, str]) -> None:
        responses = self._handler(metadata, stream.inbox)
        poke = self._poke
        try:
            async for response in responses:
                self._send_message(stream, response.SerializeToString())
                if poke is not None and _message_follows(response):
                    poke()
                if stream.pending:  # the peer's window is short: take no more requests until it opens
                    stream.drained = self._loop.create_future()
                    await stream.drained
        except asyncio.CancelledError:
            return  # reset by Envoy, or the connection is gone: nobody to answer
        except Exception:
            log.exception("ext_proc stream failed")
            stream.task = None  # done: nothing left to cancel
            self._abort(stream, _INTERNAL, "the ext_proc service failed")
            return
        finally:
            await responses.aclose()  # the passes' own cleanup runs now, not when collected
        stream.task = None
        self._end_stream(stream)

    def _send_message(self, stream: _Stream, payload: bytes) -> None:
        if not stream.live:
            return
        if not stream.headers_sent:
            stream.headers_sent = True
            self._write(h2.frame(h2.HEADERS, h2.END_HEADERS, stream.id, _RESPONSE_HEADERS))
        size = len(payload) + 5
        if not stream.pending and size <= min(
            stream.send_window, self._send_window, self._max_send_frame, self._out_room
        ):
            # The usual case, in one write: the whole message fits in the windows and one frame.
            stream.send_window -= size
            self._send_window -= size
            self._out_room -= size
            self._write(h2.frame(h2.DATA, 0, stream.id, _MESSAGE_PREFIX.pack(0, len(payload)) + payload))
            return
        stream.pending += _MESSAGE_PREFIX.pack(0, len(payload))
        stream.pending += payload
        self._held += size
        self._flush(stream)
        if stream.pending and self._held > self._budget:
            self._over_budget(stream)

    def _end_stream(self, stream: _Stream) -> None:
        """The handler is done: its trailers follow the response bytes still pending."""
        if not stream.live:
            return
        if not stream.headers_sent:  # trailers-only: the status in the response's headers
            stream.headers_sent = True
            block = _RESPONSE_HEADERS + _OK_TRAILERS
        else:
            block = _OK_TRAILERS
        stream.trailers = h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream.id, block)
        self._flush(stream)

    def _abort(self, stream: _Stream, status: int, message: str) -> None:
        """End the stream with a gRPC error now; what it had pending is dropped (a message cut short
        cannot be followed by trailers: the stream is reset instead). The peer is asked to stop sending."""
        if not stream.live:
            return
        if stream.pending:
            self._reset(stream, h2.CANCEL)
            return
        block = _trailers(status, message)
        if not stream.headers_sent:
            block = _RESPONSE_HEADERS + block
        self._write(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, stream.id, block))
        if not stream.inbox.ended:
            self._write(h2.rst_stream(stream.id, h2.NO_ERROR))  # RFC 9113 8.1: the request is not needed
        self._forget(stream)

    def _reset(self, stream: _Stream, code: int) -> None:
        self._write(h2.rst_stream(stream.id, code))
        self._forget(stream)

    def _forget(self, stream: _Stream) -> None:
        """The stream is over: release what it held and stop its handler if it still runs (from
        within the handler's own task, the cancellation stops it at its next await)."""
        if not stream.live:
            return
        stream.live = False
        self._streams.pop(stream.id, None)
        self._held -= self._stream_held(stream) + len(stream.pending)
        if stream.pending:
            self._blocked.discard(stream)
            stream.pending = bytearray()
        if stream.task is not None:
            stream.task.cancel()
            stream.inbox.end()

    def _stream_held(self, stream: _Stream) -> int:
        """The stream's request bytes in `_held`: all it was sent (its window's use) but what went
        back or is on its way back to the window (taken, or padding)."""
        return self._stream_window - stream.recv_window - stream.unacked

    def _flush(self, stream: _Stream) -> None:
        """Send what the windows allow of the stream's pending bytes, then its trailers once all went."""
        frames = []
        while stream.pending:
            size = min(len(stream.pending), stream.send_window, self._send_window, self._max_send_frame)
            if size > self._out_room:
                size = self._out_room
                self._room_short = not self._writing_paused  # if paused, resume_writing flushes
            if size <= 0:
                self._blocked.add(stream)
                break
            frames.append(h2.frame(h2.DATA, 0, stream.id, bytes(stream.pending[:size])))
            del stream.pending[:size]
            stream.send_window -= size
            self._send_window -= size
            self._out_room -= size
            self._held -= size
        if not stream.pending:
            self._blocked.discard(stream)
            if stream.drained is not None and not stream.drained.done():
                stream.drained.set_result(None)
            if stream.trailers is not None:  # the handler is done (no task to stop) and nothing is pending
                frames.append(stream.trailers)
                stream.live = False
                del self._streams[stream.id]
                self._held -= self._stream_window - stream.recv_window - stream.unacked  # _stream_held, inlined
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

    @property
    def reading_paused(self) -> bool:
        """Whether the server stopped reading because the peer is not reading what it was sent."""
        return self._writing_paused

    @property
    def held_bytes(self) -> int:
        """Request and response bytes held for this connection's streams, and its unsent output."""
        unsettled = sum(stream.inbox.taken for stream in self._streams.values())
        unsent = self._transport.get_write_buffer_size() if self._transport is not None else 0
        return self._held - unsettled + unsent + sum(map(len, self._out))

    def close(self) -> None:
        self._send_out()
        if self._transport is not None:
            self._transport.close()


def _control_frame(stream_id: int, payload: bytes, size: int, name: str) -> None:
    """A connection-level frame of a fixed size: anything else is a connection error."""
    if stream_id != 0:
        raise H2ConnectionError(h2.PROTOCOL_ERROR, f"{name} on a stream")
    if len(payload) != size:
        raise H2ConnectionError(h2.FRAME_SIZE_ERROR, f"{name} of the wrong length")


class GrpcServer:
    """Listens on `unix:<path>` or `<host>:<port>`; each connection a GrpcConnection."""

    def __init__(
        self,
        handler: Handler,
        address: str,
        busy_poll_us: int = 0,
        token: str | None = None,
        limits: Limits = Limits(),
        batch: BatchReads | None = None,
    ) -> None:
        """`token`: what a TCP peer's first stream must carry (Envoy's, xds/render_peer.py)."""
        self._handler = handler
        self._batch = batch
        self.address = address
        self._token = token.encode() if token is not None and socket_path(address) is None else None
        self._busy_poll_us = busy_poll_us
        self._limits = limits
        self.busy_poll: BusyPoll | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[GrpcConnection] = set()

    def _protocol(self) -> GrpcConnection:
        return GrpcConnection(self._handler, self._connections, self.busy_poll, self._token, self._limits, self._batch)

    @property
    def connections(self) -> frozenset[GrpcConnection]:
        return frozenset(self._connections)

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
