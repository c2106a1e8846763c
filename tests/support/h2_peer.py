"""HTTP/2 peers the project did not write, to prove the ext_proc's own server against: a client
from the `h2` library (python-hyper) for what a well-behaved peer does, and raw frames built and
parsed by `hyperframe` (h2's own framing layer) for what a broken or hostile peer does.

Every read has a timeout (`TIMEOUT`): a server that hangs fails the test in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import struct
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame

from extproc.server.h2_server import METHOD, GrpcConnection, GrpcServer, Limits

TIMEOUT = 5.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

Handler = Callable[[Mapping[str, str], AsyncIterator[ProcessingRequest]], AsyncGenerator[ProcessingResponse, None]]


@contextlib.asynccontextmanager
async def serving(handler: Handler, limits: Limits | None = None) -> AsyncIterator[GrpcServer]:
    """The server on a Unix socket of its own (small kernel buffers: back-pressure shows at once)."""
    directory = tempfile.mkdtemp(prefix="h2-")
    server = GrpcServer(handler, f"unix:{directory}/grpc.sock", limits=limits or Limits())
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)
        shutil.rmtree(directory, ignore_errors=True)


def only_connection(server: GrpcServer) -> GrpcConnection:
    (connection,) = server.connections
    return connection


def grpc_message(message: ProcessingRequest | bytes) -> bytes:
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    return struct.pack(">BI", 0, len(payload)) + payload


def grpc_messages(data: bytes) -> list[bytes]:
    """The payloads of the length-prefixed gRPC messages in `data` (which must hold whole ones)."""
    messages, offset = [], 0
    while offset < len(data):
        compressed, length = struct.unpack_from(">BI", data, offset)
        assert not compressed and offset + 5 + length <= len(data), "a cut or compressed message"
        messages.append(data[offset + 5 : offset + 5 + length])
        offset += 5 + length
    return messages


async def _open(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(address.removeprefix("unix:"))


@dataclass
class Call:
    """What the client saw on one stream."""

    data: bytearray = field(default_factory=bytearray)
    headers: list[tuple[str, str]] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    reset: int | None = None
    ended: bool = False

    @property
    def status(self) -> str | None:
        """grpc-status, from the trailers (or from the headers of a trailers-only answer)."""
        return dict(self.trailers or self.headers).get("grpc-status")

    def messages(self) -> list[bytes]:
        return grpc_messages(bytes(self.data))


class H2Client:
    """An `h2` client connection: it frames, encodes headers and keeps the flow-control books itself,
    and raises if the server breaks the protocol (a DATA frame past the window it was given, a frame
    larger than it allowed). One task reads; the waits look at what it has read."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: h2.connection.H2Connection
    ) -> None:
        self.reader, self.writer, self.conn = reader, writer, conn
        self.calls: dict[int, Call] = {}
        self.events: list[h2.events.Event] = []
        self.auto_ack = True  # give back the window of each DATA frame as it arrives
        self.closed = False
        self.error: Exception | None = None  # what h2 raised on the server's bytes
        self._news: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reading = asyncio.ensure_future(self._read_all())

    @classmethod
    async def connect(cls, address: str, settings: Mapping[int, int] | None = None) -> H2Client:
        reader, writer = await _open(address)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.local_settings = h2.settings.Settings(client=True, initial_values=dict(settings or {}))
        conn.max_inbound_frame_size = conn.local_settings.max_frame_size  # h2 reads it once, at its start
        conn.initiate_connection()
        client = cls(reader, writer, conn)
        client.flush()
        await client.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged), seen=0)
        await client.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged), seen=0)
        return client

    def flush(self) -> None:
        if data := self.conn.data_to_send():
            self.writer.write(data)

    def write_raw(self, data: bytes) -> None:
        """Bytes the h2 state machine never sees: frames a well-behaved client would not send."""
        self.flush()
        self.writer.write(data)

    async def _read_all(self) -> None:
        try:
            while data := await self.reader.read(1 << 20):
                events = self.conn.receive_data(data)
                for event in events:
                    self._note(event)
                self.events.extend(events)
                self.flush()
                self._tell()
        except Exception as error:
            self.error = error
        self.closed = True
        self._tell()

    def _tell(self) -> None:
        self._news.set_result(None)
        self._news = asyncio.get_running_loop().create_future()

    async def read(self) -> None:
        """Until the reading task has read more (or the connection ended)."""
        if self.error is not None:
            raise self.error
        if self.closed:
            raise ConnectionError("the server closed the connection")
        await asyncio.wait_for(asyncio.shield(self._news), TIMEOUT)

    def _note(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        call = self.calls.setdefault(stream_id, Call()) if stream_id else None
        if isinstance(event, h2.events.DataReceived) and call is not None:
            call.data += event.data
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.ResponseReceived) and call is not None:
            call.headers = [(k, v) for k, v in event.headers]
        elif isinstance(event, h2.events.TrailersReceived) and call is not None:
            call.trailers = [(k, v) for k, v in event.headers]
        elif isinstance(event, h2.events.StreamReset) and call is not None:
            call.reset = event.error_code
            call.ended = True
        elif isinstance(event, h2.events.StreamEnded) and call is not None:
            call.ended = True

    async def until(self, predicate: Callable[[h2.events.Event], bool], seen: int | None = None) -> h2.events.Event:
        """Read until an event that matches `predicate` arrives (after the `seen` first ones; by
        default, after those already read)."""
        seen = len(self.events) if seen is None else seen
        while True:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            await self.read()

    async def until_ended(self, *stream_ids: int) -> list[Call]:
        while not all(self.calls.get(s, Call()).ended for s in stream_ids):
            await self.read()
        return [self.calls[s] for s in stream_ids]

    async def barrier(self) -> None:
        """A PING round trip: the server wrote everything it had to say before its answer to it."""
        opaque = (len(self.events) % 2**63).to_bytes(8, "big")
        self.conn.ping(opaque)
        self.flush()
        await self.until(lambda e: isinstance(e, h2.events.PingAckReceived) and e.ping_data == opaque)

    def open_call(self, metadata: Sequence[tuple[str, str]] = (), end_stream: bool = False, flush: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", METHOD), (":authority", "extproc")]
        headers += [("content-type", "application/grpc"), ("te", "trailers"), *metadata]
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)
        self.calls[stream_id] = Call()
        if flush:
            self.flush()
        return stream_id

    async def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send `data` as the windows allow, waiting for the server's WINDOW_UPDATEs as needed."""
        offset = 0
        while offset < len(data) or end_stream:
            room = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            chunk = data[offset : offset + room]
            last = offset + len(chunk) == len(data)
            if chunk or (last and end_stream):
                self.conn.send_data(stream_id, chunk, end_stream=last and end_stream)
                offset += len(chunk)
                self.flush()
                if last:
                    return
            else:
                self.flush()
                await self.until(lambda e: isinstance(e, h2.events.WindowUpdated))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
        await self._reading


class RawPeer:
    """A socket that writes whatever bytes it is given and reads the server's frames with hyperframe.
    A plain socket, not asyncio streams: the server may close while bytes of ours are still on their
    way, and what it sent before (its GOAWAY) must still be read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: list[Frame] = []
        self.closed = False
        self._buffer = bytearray()
        self._loop = asyncio.get_running_loop()
        self._sending: asyncio.Future[None] = self._loop.create_future()
        self._sending.set_result(None)
        self.encoder = hpack.Encoder()  # one per connection: the server's decoder follows its table

    @classmethod
    async def connect(cls, address: str, hello: bool = True) -> RawPeer:
        """Connected; with `hello`, the preface and an empty SETTINGS already sent."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, address.removeprefix("unix:"))
        peer = cls(sock)
        if hello:
            peer.write(PREFACE + settings_frame())
        return peer

    def write(self, data: bytes) -> None:
        """Queued behind what is still being sent; a server that closed makes the rest go nowhere."""
        self._sending = asyncio.ensure_future(self._send(self._sending, data))

    async def _send(self, before: asyncio.Future[None], data: bytes) -> None:
        await before
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await self._loop.sock_sendall(self.sock, data)

    async def sent(self) -> None:
        """Until every byte written has been taken by the server's side of the socket."""
        await self._sending

    async def receive(self) -> bytes:
        """The next bytes the server sent, unparsed (b"" once it closed)."""
        try:
            return await asyncio.wait_for(self._loop.sock_recv(self.sock, 1 << 20), TIMEOUT)
        except ConnectionResetError:  # the server closed with bytes of ours unread: what came before was read
            return b""

    def open_call(self, stream_id: int, end_stream: bool = False) -> None:
        """A HEADERS frame that opens a call of the ext_proc method."""
        block = self.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", METHOD)])
        self.write(
            HeadersFrame(stream_id, block, flags={"END_HEADERS", *(["END_STREAM"] if end_stream else [])}).serialize()
        )

    async def read(self) -> None:
        data = await self.receive()
        if not data:
            self.closed = True
            return
        self._buffer += data
        while len(self._buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(bytes(self._buffer[:9])))
            if len(self._buffer) < 9 + length:
                break
            frame.parse_body(memoryview(bytes(self._buffer[9 : 9 + length])))
            del self._buffer[: 9 + length]
            self.frames.append(frame)

    async def until(self, predicate: Callable[[Frame], bool]) -> Frame:
        seen = 0
        while True:
            for frame in self.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = len(self.frames)
            if self.closed:
                raise AssertionError(f"closed without the frame looked for; frames: {self.frames}")
            await self.read()

    async def until_closed(self) -> list[Frame]:
        """Every frame until the server closes the connection."""
        while not self.closed:
            await self.read()
        return self.frames

    async def goaway(self) -> GoAwayFrame:
        """The server's GOAWAY, after which it must close the connection."""
        frames = await self.until_closed()
        goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
        assert goaways, f"closed without a GOAWAY; frames: {frames}"
        return goaways[-1]

    async def close(self) -> None:
        self._sending.cancel()
        self.sock.close()


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes = b"", length: int | None = None) -> bytes:
    """Any frame, well formed or not (`length` may lie about the payload)."""
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload


def settings_frame(settings: Mapping[int, int] | None = None) -> bytes:
    return raw_frame(0x4, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items()))
