"""The ext_proc's own HTTP/2 server against peers the project did not write: the `h2` library as a
well-behaved client (flow control with tiny windows, interleaved streams, CONTINUATION, PING,
RST_STREAM, GOAWAY) and hyperframe-built raw frames as a broken or hostile one. Every misbehaviour
ends in a GOAWAY with an error code that names it, or in a reset of the one stream, never in a
hang (each read has a timeout), a crash or memory the peer can grow without bound."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
import uvloop
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc.server.h2_server import METHOD, Limits
from tests.support.h2_peer import (
    PREFACE,
    H2Client,
    RawPeer,
    grpc_message,
    grpc_messages,
    only_connection,
    raw_frame,
    serving,
    settings_frame,
)
from tests.support.wait import wait_until_async
from tests.unit.test_h2_server import _body, _echo, echo

SMALL = Limits(message_bytes=64 * 1024, connection_bytes=256 * 1024)  # stream window 65,541 bytes


def run(main: Callable[[], Coroutine[Any, Any, None]], loop: str = "asyncio") -> None:
    uvloop.run(main()) if loop == "uvloop" else asyncio.run(main())


@pytest.fixture(autouse=True)
def _no_server_faults(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """A fault of the server's own (an exception it did not expect) is logged as an error: none may occur."""
    caplog.set_level(logging.WARNING, logger="extproc.server")
    yield  # type: ignore[misc]
    faults = [r for r in caplog.records if r.name.startswith("extproc.server") and r.levelno >= logging.ERROR]
    assert not faults, [r.getMessage() for r in faults]


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until `predicate` holds: state the server changes between its reads."""
    assert await wait_until_async(predicate, timeout, interval=0.005), "the condition never held"


class Counting:
    """Echoes each request message, counting the answers given."""

    def __init__(self) -> None:
        self.answered = 0

    async def __call__(
        self, metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse]:
        async for message in requests:
            self.answered += 1
            yield _echo(message.request_body.body)


class Gated:
    """A handler that takes no request message until `go` is set, then echoes each; it counts
    the streams whose handler is running and those that were closed."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.running = 0
        self.closed = 0

    async def __call__(
        self, metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse]:
        self.running += 1
        try:
            await self.go.wait()
            async for message in requests:
                yield _echo(message.request_body.body)
        finally:
            self.running -= 1
            self.closed += 1


def chatty(answers: int, size: int, yielded: list[int]) -> Callable[..., AsyncGenerator[ProcessingResponse]]:
    """A handler that answers each request message with `answers` messages of `size` bytes."""

    async def handler(
        metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse]:
        async for _ in requests:
            for _ in range(answers):
                yielded.append(1)
                yield _echo(b"x" * size)

    return handler


def _bodies(messages: list[bytes]) -> list[bytes]:
    return [ProcessingResponse.FromString(m).request_body.response.body_mutation.body for m in messages]


def _code(frame: GoAwayFrame | RstStreamFrame) -> int:
    return int(frame.error_code)


# -- flow control: the server keeps to the client's windows, and the client to the server's


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_messages_both_ways_go_through_tiny_client_windows_and_the_servers_own(loop: str) -> None:
    """The client's stream window is 1 KiB and it keeps its default 16 KiB frames and 64 KiB
    connection window; the server's stream window is one 64 KiB message. h2 raises if the server
    sends past a window or a frame size, and the client waits on the server's WINDOW_UPDATEs."""
    requests = [bytes([i]) * (60 * 1024) for i in range(4)]

    async def main() -> None:
        async with serving(echo, SMALL) as server:
            client = await H2Client.connect(server.address, {SettingCodes.INITIAL_WINDOW_SIZE: 1024})
            stream = client.open_call()
            for i, data in enumerate(requests):
                await client.send(stream, grpc_message(_body(data)), end_stream=i == len(requests) - 1)
            (call,) = await client.until_ended(stream)
            assert _bodies(call.messages()) == requests
            assert call.status == "0"
            sizes = [len(e.data) for e in client.events if isinstance(e, h2.events.DataReceived)]
            assert max(sizes) <= 1024 and len(sizes) >= 4 * 60  # in pieces the window allowed
            await client.close()

    run(main, loop)


def test_the_server_sends_nothing_on_a_closed_window_and_resumes_on_window_update() -> None:
    async def main() -> None:
        handler = Counting()
        async with serving(handler) as server:
            client = await H2Client.connect(server.address, {SettingCodes.INITIAL_WINDOW_SIZE: 0})
            stream = client.open_call()
            await client.send(stream, grpc_message(_body(b"a" * 1000)), end_stream=True)
            await wait_for(lambda: handler.answered == 1)
            await client.barrier()
            assert client.calls[stream].headers and not client.calls[stream].data  # HEADERS are not flow-controlled
            client.conn.increment_flow_control_window(300, stream)
            client.flush()
            await client.barrier()
            assert len(client.calls[stream].data) == 300  # exactly what the update allowed
            client.conn.increment_flow_control_window(10_000, stream)
            client.flush()
            (call,) = await client.until_ended(stream)
            assert call.status == "0" and call.messages()[0].endswith(b"a" * 1000)
            await client.close()

    run(main)


def test_a_closed_connection_window_holds_every_stream_until_the_client_opens_it() -> None:
    async def main() -> None:
        handler = Counting()
        async with serving(handler) as server:
            client = await H2Client.connect(server.address, {SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
            client.auto_ack = False  # the connection's window stays at its first 65,535 bytes
            first, second = client.open_call(), client.open_call()
            await client.send(first, grpc_message(_body(b"1" * 50_000)), end_stream=True)
            await client.send(second, grpc_message(_body(b"2" * 50_000)), end_stream=True)
            await wait_for(lambda: handler.answered == 2)
            await client.barrier()
            assert sum(len(client.calls[s].data) for s in (first, second)) == 65_535
            client.conn.increment_flow_control_window(1 << 20)
            client.flush()
            calls = await client.until_ended(first, second)
            assert [c.status for c in calls] == ["0", "0"]
            assert [c.messages()[0][-10:] for c in calls] == [b"1" * 10, b"2" * 10]
            await client.close()

    run(main)


def test_a_smaller_initial_window_mid_stream_makes_the_server_wait_for_updates() -> None:
    """RFC 9113 6.9.2: a SETTINGS that shrinks the initial window can make a stream's window negative."""

    async def main() -> None:
        handler = Counting()
        async with serving(handler) as server:
            client = await H2Client.connect(server.address, {SettingCodes.INITIAL_WINDOW_SIZE: 1000})
            client.auto_ack = False
            stream = client.open_call()
            await client.send(stream, grpc_message(_body(b"z" * 5000)))
            await wait_for(lambda: handler.answered == 1)
            await client.barrier()
            assert len(client.calls[stream].data) == 1000
            client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 0})  # the window is now -1000
            client.flush()
            await client.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
            client.conn.increment_flow_control_window(1000, stream)  # back to 0: still nothing to send
            client.flush()
            await client.barrier()
            assert len(client.calls[stream].data) == 1000
            client.conn.increment_flow_control_window(100_000, stream)
            client.conn.increment_flow_control_window(100_000)
            client.flush()
            await client.send(stream, b"", end_stream=True)
            (call,) = await client.until_ended(stream)
            assert call.status == "0" and call.messages()[0].endswith(b"z" * 5000)
            await client.close()

    run(main)


# -- what a peer can make the server hold


def test_a_handler_that_takes_nothing_stalls_a_well_behaved_client_at_the_streams_window() -> None:
    """The server returns a stream's window only as its handler takes the messages: its request
    bytes held never pass the window (one largest message), and once taken the rest flows."""

    async def main() -> None:
        handler = Gated()
        async with serving(handler, SMALL) as server:
            client = await H2Client.connect(server.address)
            stream = client.open_call()
            data = b"".join(grpc_message(_body(bytes([i]) * 20_000)) for i in range(10))  # 200 kB
            sending = asyncio.ensure_future(client.send(stream, data, end_stream=True))
            await wait_for(lambda: client.conn.local_flow_control_window(stream) == 0)
            await client.barrier()
            assert not sending.done() and client.conn.local_flow_control_window(stream) == 0
            assert only_connection(server).held_bytes <= SMALL.stream_window
            handler.go.set()
            await sending
            (call,) = await client.until_ended(stream)
            assert _bodies(call.messages()) == [bytes([i]) * 20_000 for i in range(10)]
            assert call.status == "0" and only_connection(server).held_bytes == 0
            await client.close()

    run(main)


def test_data_past_the_streams_window_resets_that_stream_with_flow_control_error() -> None:
    async def main() -> None:
        handler = Gated()
        async with serving(handler, SMALL) as server:
            client = await H2Client.connect(server.address)
            stream = client.open_call()
            await wait_for(lambda: handler.running == 1)
            data = grpc_message(_body(b"x" * 60_000)) * 2  # past the 65,541-byte window, sent regardless
            client.write_raw(
                b"".join(DataFrame(stream, data[i : i + 16384]).serialize() for i in range(0, len(data), 16384))
            )
            (call,) = await client.until_ended(stream)
            assert call.reset == ErrorCodes.FLOW_CONTROL_ERROR
            await wait_for(lambda: handler.closed == 1)
            assert only_connection(server).held_bytes == 0
            handler.go.set()
            again = client.open_call()  # the connection goes on
            await client.send(again, grpc_message(_body(b"fine")), end_stream=True)
            (call,) = await client.until_ended(again)
            assert _bodies(call.messages()) == [b"fine"] and call.status == "0"
            await client.close()

    run(main)


def test_a_message_over_the_limit_is_refused_from_its_length_before_its_bytes_are_buffered() -> None:
    async def main() -> None:
        async with serving(echo, SMALL) as server:
            client = await H2Client.connect(server.address)
            stream = client.open_call()
            await client.send(stream, struct.pack(">BI", 0, SMALL.message_bytes + 1) + b"x" * 1000)
            (call,) = await client.until_ended(stream)
            assert call.status == "8"  # RESOURCE_EXHAUSTED
            assert call.reset == ErrorCodes.NO_ERROR  # RFC 9113 8.1: the rest of the request is not wanted
            assert only_connection(server).held_bytes == 0
            await client.close()

    run(main)


def test_streams_that_together_pass_the_connections_budget_are_reset_not_buffered() -> None:
    """Each stream stays within its own window; together they would hold 6 x 60 kB against a
    256 KiB budget: the streams that ask past it are reset, the others keep their bytes."""

    async def main() -> None:
        handler = Gated()
        async with serving(handler, SMALL) as server:
            client = await H2Client.connect(server.address)
            streams = [client.open_call() for _ in range(6)]
            for stream in streams:
                await client.send(stream, grpc_message(_body(b"y" * 60_000)))
            await client.barrier()
            connection = only_connection(server)
            assert connection.held_bytes <= SMALL.connection_bytes
            reset = [s for s in streams if client.calls[s].reset is not None]
            assert {client.calls[s].reset for s in reset} == {ErrorCodes.ENHANCE_YOUR_CALM}
            assert len(reset) == 2  # 4 x 60,010 bytes fit in 262,144; the fifth and sixth did not
            handler.go.set()
            kept = [s for s in streams if s not in reset]
            for stream in kept:
                await client.send(stream, b"", end_stream=True)
            calls = await client.until_ended(*kept)
            assert all(c.status == "0" and _bodies(c.messages()) == [b"y" * 60_000] for c in calls)
            assert connection.held_bytes == 0
            await client.close()

    run(main)


def test_a_handler_is_not_asked_for_more_while_its_answer_waits_on_the_clients_window() -> None:
    async def main() -> None:
        yielded: list[int] = []
        async with serving(chatty(10, 30_000, yielded), SMALL) as server:
            client = await H2Client.connect(server.address, {SettingCodes.INITIAL_WINDOW_SIZE: 0})
            stream = client.open_call()
            await client.send(stream, grpc_message(_body(b"go")), end_stream=True)
            await wait_for(lambda: len(yielded) == 1)
            await client.barrier()
            assert len(yielded) == 1  # paused after its first answer, which waits for the window
            assert 30_000 < only_connection(server).held_bytes < 31_000  # that one answer
            client.conn.increment_flow_control_window(1 << 20, stream)
            client.conn.increment_flow_control_window(1 << 20)
            client.flush()
            (call,) = await client.until_ended(stream)
            assert call.status == "0" and len(call.messages()) == 10 and len(yielded) == 10
            await client.close()

    run(main)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_that_reads_nothing_cannot_make_the_server_buffer_its_answers(loop: str) -> None:
    """32 requests of a few bytes, each answered with 1 MiB, windows wide open and nothing read:
    the server holds at most its budget (4 MiB here) and a turn's worth of output; the streams
    past the budget are reset, the others complete once the client reads."""
    limits = Limits(message_bytes=64 * 1024, connection_bytes=4 << 20)

    async def main() -> None:
        yielded: list[int] = []
        async with serving(chatty(1, 1 << 20, yielded), limits) as server:
            big = {SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1, SettingCodes.MAX_FRAME_SIZE: (1 << 24) - 1}
            client = await H2Client.connect(server.address, big)
            client.conn.increment_flow_control_window((1 << 31) - 1 - 65_535)
            client._reading.cancel()  # read nothing from here on
            streams = [client.open_call() for _ in range(32)]
            for stream in streams:
                client.conn.send_data(stream, grpc_message(_body(b"go")), end_stream=True)
            client.flush()
            connection = only_connection(server)
            await wait_for(lambda: len(yielded) == 32 and connection.reading_paused)
            assert connection.held_bytes <= limits.connection_bytes + (3 << 20)
            client._reading = asyncio.ensure_future(client._read_all())
            calls = await client.until_ended(*streams)
            reset = [c for c in calls if c.reset is not None]
            assert {c.reset for c in reset} == {ErrorCodes.ENHANCE_YOUR_CALM} and len(reset) >= 20
            assert all(
                c.status == "0" and _bodies(c.messages()) == [b"x" * (1 << 20)] for c in calls if c.reset is None
            )
            await client.close()

    run(main, loop)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_that_pings_and_reads_nothing_makes_the_server_stop_reading(loop: str) -> None:
    """Each PING needs an answer: a client that reads none would grow the server's output without
    bound. The server stops reading while its writes wait, and answers every PING once they go."""
    pings = 200_000  # 3.4 MB of PING frames

    async def main() -> None:
        async with serving(echo) as server:
            peer = await RawPeer.connect(server.address)
            peer.write(PingFrame(0, b"12345678").serialize() * pings)
            writing = asyncio.ensure_future(peer.sent())
            await wait_for(lambda: bool(server.connections))
            connection = only_connection(server)
            await wait_for(lambda: connection.reading_paused)
            assert connection.held_bytes < 1 << 20 and not writing.done()  # the rest is still in the client
            expected = pings * 17 + 9 + 9  # the ACKs, after the server's SETTINGS and its ACK of ours
            received = 0
            while received < expected:
                chunk = await peer.receive()
                assert chunk, "closed"
                received += len(chunk)
            await writing
            await peer.close()

    run(main, loop)


# -- streams, headers and control frames


def test_many_streams_with_their_frames_interleaved_each_get_their_own_answers_in_order() -> None:
    """64 streams, three messages each, every message cut into 7-byte DATA frames, and the frames
    of all streams sent round-robin in one write."""

    async def main() -> None:
        async with serving(echo) as server:
            client = await H2Client.connect(server.address)
            streams = [client.open_call([("x-tag", f"{n}:")]) for n in range(64)]
            wires = {s: b"".join(grpc_message(_body(f"{s}-{i}".encode() * 5)) for i in range(3)) for s in streams}
            cuts = {s: [wires[s][i : i + 7] for i in range(0, len(wires[s]), 7)] for s in streams}
            for round_ in range(max(len(c) for c in cuts.values())):
                for stream in streams:
                    if round_ < len(cuts[stream]):
                        last = round_ == len(cuts[stream]) - 1
                        client.conn.send_data(stream, cuts[stream][round_], end_stream=last)
            client.flush()
            calls = await client.until_ended(*streams)
            for n, (stream, call) in enumerate(zip(streams, calls, strict=True)):
                assert call.status == "0"
                assert _bodies(call.messages()) == [f"{n}:".encode() + f"{stream}-{i}".encode() * 5 for i in range(3)]
            await client.close()

    run(main)


def test_headers_split_over_continuation_frames_open_the_stream_with_all_their_metadata() -> None:
    async def main() -> None:
        async with serving(echo) as server:
            client = await H2Client.connect(server.address)
            client.conn.max_outbound_frame_size = 100  # h2 splits the header block in 100-byte frames
            tag = "t" * 2000 + ":"
            stream = client.open_call([("x-tag", tag)], flush=False)
            sent = client.conn.data_to_send()
            client.write_raw(sent)
            continuations = _count_frames(sent, ContinuationFrame.type)
            assert continuations >= 5  # HEADERS and five or more CONTINUATIONs carry the block
            await client.send(stream, grpc_message(_body(b"body")), end_stream=True)
            (call,) = await client.until_ended(stream)
            assert _bodies(call.messages()) == [tag.encode() + b"body"] and call.status == "0"
            await client.close()

    run(main)


def _count_frames(data: bytes, kind: int) -> int:
    count, offset = 0, 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        count += data[offset + 3] == kind
        offset += 9 + length
    return count


def test_a_ping_is_acknowledged_with_its_payload_while_streams_wait_on_flow_control() -> None:
    async def main() -> None:
        async with serving(echo) as server:
            client = await H2Client.connect(server.address, {SettingCodes.INITIAL_WINDOW_SIZE: 0})
            stream = client.open_call()
            await client.send(stream, grpc_message(_body(b"waiting")))
            client.conn.ping(b"\x00\x01\x02\x03\x04\x05\x06\x07")
            client.flush()
            ack = await client.until(lambda e: isinstance(e, h2.events.PingAckReceived))
            assert ack.ping_data == b"\x00\x01\x02\x03\x04\x05\x06\x07"
            assert not client.calls[stream].data  # the stream still waits: the PING did not
            await client.close()

    run(main)


def test_a_stream_reset_in_the_middle_of_a_message_releases_its_bytes_and_stops_its_handler() -> None:
    async def main() -> None:
        handler = Gated()
        handler.go.set()
        async with serving(handler) as server:
            client = await H2Client.connect(server.address)
            stream = client.open_call()
            await client.send(stream, grpc_message(_body(b"m" * 40_000))[:25_000])  # half a message
            await client.barrier()
            connection = only_connection(server)
            assert connection.held_bytes == 25_000 and handler.running == 1
            client.conn.reset_stream(stream, ErrorCodes.CANCEL)
            client.write_raw(DataFrame(stream, b"late bytes, sent before the reset was seen").serialize())
            await client.barrier()
            await wait_for(lambda: handler.closed == 1)
            assert connection.held_bytes == 0 and connection.idle
            again = client.open_call()  # the connection goes on: a late frame on a reset stream is no error
            await client.send(again, grpc_message(_body(b"next")), end_stream=True)
            (call,) = await client.until_ended(again)
            assert _bodies(call.messages()) == [b"next"] and call.status == "0"
            await client.close()

    run(main)


def test_a_stream_reset_while_its_answer_waits_on_the_window_drops_that_answer() -> None:
    async def main() -> None:
        yielded: list[int] = []
        async with serving(chatty(3, 50_000, yielded)) as server:
            client = await H2Client.connect(server.address, {SettingCodes.INITIAL_WINDOW_SIZE: 0})
            stream = client.open_call()
            await client.send(stream, grpc_message(_body(b"go")))
            await wait_for(lambda: len(yielded) == 1)
            connection = only_connection(server)
            assert connection.held_bytes > 50_000
            client.conn.reset_stream(stream, ErrorCodes.CANCEL)
            client.flush()
            await client.barrier()
            assert connection.held_bytes == 0 and connection.idle and len(yielded) == 1
            await client.close()

    run(main)


def test_after_the_clients_goaway_its_streams_in_flight_finish_and_new_ones_are_refused() -> None:
    async def main() -> None:
        async with serving(echo) as server:
            client = await H2Client.connect(server.address)
            streams = [client.open_call() for _ in range(3)]
            for stream in streams:
                await client.send(stream, grpc_message(_body(b"before")))
            client.write_raw(GoAwayFrame(0, last_stream_id=0, error_code=ErrorCodes.NO_ERROR).serialize())
            for stream in streams:
                await client.send(stream, grpc_message(_body(b"after")), end_stream=True)
            calls = await client.until_ended(*streams)
            assert all(c.status == "0" and _bodies(c.messages()) == [b"before", b"after"] for c in calls)
            late = client.open_call()
            (call,) = await client.until_ended(late)
            assert call.reset == ErrorCodes.REFUSED_STREAM  # safe to retry on another connection
            await client.close()

    run(main)


def test_the_servers_goaway_on_stop_lets_streams_in_flight_finish_and_refuses_later_ones() -> None:
    async def main() -> None:
        handler = Gated()
        async with serving(handler) as server:
            peer = await RawPeer.connect(server.address)
            block = hpack.Encoder().encode([(":method", "POST"), (":path", METHOD), (":scheme", "http")])
            peer.write(HeadersFrame(1, block, flags={"END_HEADERS"}).serialize())
            peer.write(DataFrame(1, grpc_message(_body(b"in flight")), flags={"END_STREAM"}).serialize())
            await wait_for(lambda: handler.running == 1)
            stopping = asyncio.ensure_future(server.stop(5))
            goaway = await peer.until(lambda f: isinstance(f, GoAwayFrame))
            assert (goaway.last_stream_id, _code(goaway)) == (1, ErrorCodes.NO_ERROR)
            peer.write(HeadersFrame(3, block, flags={"END_HEADERS", "END_STREAM"}).serialize())
            refused = await peer.until(lambda f: isinstance(f, RstStreamFrame))
            assert (refused.stream_id, _code(refused)) == (3, ErrorCodes.REFUSED_STREAM)
            handler.go.set()
            frames = await peer.until_closed()  # the server closes once the stream in flight is done
            await stopping
            data = b"".join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == 1)
            assert _bodies(grpc_messages(data)) == [b"in flight"]
            trailers = [f for f in frames if isinstance(f, HeadersFrame) and "END_STREAM" in f.flags]
            assert [f.stream_id for f in trailers] == [1]

    run(main)


# -- broken frames: each ends the connection with a GOAWAY that names the error, or resets one stream


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


OPEN = "open"  # the case first opens stream 1 (a call the server's handler holds open)
_BROKEN_CONNECTIONS = [
    pytest.param(b"", raw_frame(DataFrame.type, 0, 0, b"x"), ErrorCodes.PROTOCOL_ERROR, id="DATA-on-stream-0"),
    pytest.param(b"", raw_frame(DataFrame.type, 0, 7, b"x"), ErrorCodes.PROTOCOL_ERROR, id="DATA-on-an-idle-stream"),
    pytest.param(
        OPEN, raw_frame(DataFrame.type, 0x8, 1, b""), ErrorCodes.PROTOCOL_ERROR, id="DATA-padded-without-pad-length"
    ),
    pytest.param(
        OPEN, raw_frame(DataFrame.type, 0x8, 1, b"\x09abc"), ErrorCodes.PROTOCOL_ERROR, id="DATA-padding-past-the-frame"
    ),
    pytest.param(
        b"", raw_frame(HeadersFrame.type, 0x4, 0, b"\x82"), ErrorCodes.PROTOCOL_ERROR, id="HEADERS-on-stream-0"
    ),
    pytest.param(
        b"", raw_frame(HeadersFrame.type, 0x4, 2, b"\x82"), ErrorCodes.PROTOCOL_ERROR, id="HEADERS-even-stream"
    ),
    pytest.param(
        b"",
        raw_frame(HeadersFrame.type, 0x4, 1, b"\xff\xff\xff\xff\x0f"),
        ErrorCodes.COMPRESSION_ERROR,
        id="HEADERS-bad-hpack-index",
    ),
    pytest.param(
        b"",
        raw_frame(HeadersFrame.type, 0x4, 1, b"\x3f\xe2\x1f"),
        ErrorCodes.COMPRESSION_ERROR,
        id="HEADERS-table-size-past-the-limit",
    ),
    pytest.param(
        b"", raw_frame(PriorityFrame.type, 0, 0, b"\x00" * 5), ErrorCodes.PROTOCOL_ERROR, id="PRIORITY-on-stream-0"
    ),
    pytest.param(
        b"", raw_frame(PriorityFrame.type, 0, 1, b"\x00" * 4), ErrorCodes.FRAME_SIZE_ERROR, id="PRIORITY-of-4-bytes"
    ),
    pytest.param(
        b"", raw_frame(RstStreamFrame.type, 0, 0, _u32(8)), ErrorCodes.PROTOCOL_ERROR, id="RST_STREAM-on-stream-0"
    ),
    pytest.param(
        b"", raw_frame(RstStreamFrame.type, 0, 5, _u32(8)), ErrorCodes.PROTOCOL_ERROR, id="RST_STREAM-on-an-idle-stream"
    ),
    pytest.param(
        OPEN, raw_frame(RstStreamFrame.type, 0, 1, b"\x00" * 3), ErrorCodes.FRAME_SIZE_ERROR, id="RST_STREAM-of-3-bytes"
    ),
    pytest.param(b"", raw_frame(SettingsFrame.type, 0, 1, b""), ErrorCodes.PROTOCOL_ERROR, id="SETTINGS-on-a-stream"),
    pytest.param(
        b"", raw_frame(SettingsFrame.type, 0, 0, b"\x00" * 5), ErrorCodes.FRAME_SIZE_ERROR, id="SETTINGS-of-5-bytes"
    ),
    pytest.param(
        b"",
        raw_frame(SettingsFrame.type, 0x1, 0, b"\x00" * 6),
        ErrorCodes.FRAME_SIZE_ERROR,
        id="SETTINGS-ack-with-payload",
    ),
    pytest.param(
        b"", settings_frame({0x4: 1 << 31}), ErrorCodes.FLOW_CONTROL_ERROR, id="SETTINGS-initial-window-too-large"
    ),
    pytest.param(b"", settings_frame({0x5: 100}), ErrorCodes.PROTOCOL_ERROR, id="SETTINGS-max-frame-too-small"),
    pytest.param(b"", settings_frame({0x2: 2}), ErrorCodes.PROTOCOL_ERROR, id="SETTINGS-enable-push-2"),
    pytest.param(
        b"",
        raw_frame(PushPromiseFrame.type, 0x4, 1, _u32(2) + b"\x82"),
        ErrorCodes.PROTOCOL_ERROR,
        id="PUSH_PROMISE-from-a-client",
    ),
    pytest.param(b"", raw_frame(PingFrame.type, 0, 0, b"1234567"), ErrorCodes.FRAME_SIZE_ERROR, id="PING-of-7-bytes"),
    pytest.param(b"", raw_frame(PingFrame.type, 0, 1, b"12345678"), ErrorCodes.PROTOCOL_ERROR, id="PING-on-a-stream"),
    pytest.param(b"", raw_frame(GoAwayFrame.type, 0, 0, _u32(0)), ErrorCodes.FRAME_SIZE_ERROR, id="GOAWAY-of-4-bytes"),
    pytest.param(
        b"", raw_frame(GoAwayFrame.type, 0, 1, _u32(0) * 2), ErrorCodes.PROTOCOL_ERROR, id="GOAWAY-on-a-stream"
    ),
    pytest.param(
        b"",
        raw_frame(WindowUpdateFrame.type, 0, 0, b"\x00" * 3),
        ErrorCodes.FRAME_SIZE_ERROR,
        id="WINDOW_UPDATE-of-3-bytes",
    ),
    pytest.param(
        b"", raw_frame(WindowUpdateFrame.type, 0, 0, _u32(0)), ErrorCodes.PROTOCOL_ERROR, id="WINDOW_UPDATE-of-0"
    ),
    pytest.param(
        b"",
        raw_frame(WindowUpdateFrame.type, 0, 0, _u32((1 << 31) - 1)),
        ErrorCodes.FLOW_CONTROL_ERROR,
        id="WINDOW_UPDATE-past-2^31-1",
    ),
    pytest.param(
        b"",
        raw_frame(WindowUpdateFrame.type, 0, 9, _u32(1)),
        ErrorCodes.PROTOCOL_ERROR,
        id="WINDOW_UPDATE-on-an-idle-stream",
    ),
    pytest.param(
        b"",
        raw_frame(ContinuationFrame.type, 0x4, 1, b"\x82"),
        ErrorCodes.PROTOCOL_ERROR,
        id="CONTINUATION-without-HEADERS",
    ),
    pytest.param(
        b"",
        raw_frame(HeadersFrame.type, 0, 1, b"\x83") + raw_frame(PingFrame.type, 0, 0, b"12345678"),
        ErrorCodes.PROTOCOL_ERROR,
        id="HEADERS-interrupted-by-PING",
    ),
    pytest.param(
        b"",
        raw_frame(HeadersFrame.type, 0, 1, b"\x83") + raw_frame(ContinuationFrame.type, 0x4, 3, b"\x84"),
        ErrorCodes.PROTOCOL_ERROR,
        id="CONTINUATION-of-another-stream",
    ),
    pytest.param(
        b"",
        raw_frame(HeadersFrame.type, 0, 1, b"\x83") + raw_frame(ContinuationFrame.type, 0, 1, b"") * 70,
        ErrorCodes.ENHANCE_YOUR_CALM,
        id="CONTINUATION-flood",
    ),
    pytest.param(
        b"",
        raw_frame(HeadersFrame.type, 0, 1, b"\x83") + raw_frame(ContinuationFrame.type, 0, 1, b"\x00" * 100_000) * 3,
        ErrorCodes.ENHANCE_YOUR_CALM,
        id="header-block-past-256-KiB",
    ),
    pytest.param(
        b"",
        raw_frame(DataFrame.type, 0, 1, length=(1 << 20) + 1),
        ErrorCodes.FRAME_SIZE_ERROR,
        id="frame-past-the-max-frame-size",
    ),
]


@pytest.mark.parametrize(("before", "broken", "code"), _BROKEN_CONNECTIONS)
def test_a_broken_frame_ends_the_connection_with_a_goaway_that_names_the_error(
    before: bytes | str, broken: bytes, code: ErrorCodes
) -> None:
    async def main() -> None:
        handler = Gated()
        async with serving(handler) as server:
            peer = await RawPeer.connect(server.address)
            if before == OPEN:
                peer.open_call(1)
                await wait_for(lambda: handler.running == 1)
            peer.write(broken)  # a frame header that announces too long a payload needs no payload to be refused
            goaway = await peer.goaway()
            assert _code(goaway) == code
            assert peer.frames[-1] is goaway  # and nothing after it
            await wait_for(lambda: not server.connections and handler.running == 0)

    run(main)


def test_a_header_list_past_the_advertised_size_ends_the_connection_with_enhance_your_calm() -> None:
    async def main() -> None:
        async with serving(echo) as server:
            client = await H2Client.connect(server.address)
            client.open_call([("x-big", "v" * 66_000)])
            terminated = await client.until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
            assert terminated.error_code == ErrorCodes.ENHANCE_YOUR_CALM

    run(main)


def test_a_connection_that_does_not_start_with_settings_is_a_protocol_error() -> None:
    async def main() -> None:
        async with serving(echo) as server:
            peer = await RawPeer.connect(server.address, hello=False)
            peer.write(PREFACE + PingFrame(0, b"12345678").serialize())
            assert _code(await peer.goaway()) == ErrorCodes.PROTOCOL_ERROR

    run(main)


_BROKEN_STREAMS = [
    pytest.param(raw_frame(WindowUpdateFrame.type, 0, 1, _u32(0)), ErrorCodes.PROTOCOL_ERROR, id="WINDOW_UPDATE-of-0"),
    pytest.param(
        raw_frame(WindowUpdateFrame.type, 0, 1, _u32((1 << 31) - 1)),
        ErrorCodes.FLOW_CONTROL_ERROR,
        id="window-past-2^31-1",
    ),
    pytest.param(
        raw_frame(DataFrame.type, 1, 1, b"") + raw_frame(DataFrame.type, 0, 1, b"more"),
        ErrorCodes.STREAM_CLOSED,
        id="DATA-after-END_STREAM",
    ),
    pytest.param(
        raw_frame(HeadersFrame.type, 0x4, 1, b"\x83"), ErrorCodes.PROTOCOL_ERROR, id="second-HEADERS-without-END_STREAM"
    ),
]


@pytest.mark.parametrize(("broken", "code"), _BROKEN_STREAMS)
def test_a_broken_frame_on_a_stream_resets_that_stream_and_the_connection_goes_on(
    broken: bytes, code: ErrorCodes
) -> None:
    async def main() -> None:
        handler = Gated()
        async with serving(handler) as server:
            peer = await RawPeer.connect(server.address)
            peer.open_call(1)
            await wait_for(lambda: handler.running == 1)
            peer.write(broken)
            reset = await peer.until(lambda f: isinstance(f, RstStreamFrame))
            assert (reset.stream_id, _code(reset)) == (1, code)
            await wait_for(lambda: handler.closed == 1)
            handler.go.set()
            peer.open_call(3)
            peer.write(DataFrame(3, grpc_message(_body(b"still here")), flags={"END_STREAM"}).serialize())
            trailers = await peer.until(
                lambda f: isinstance(f, HeadersFrame) and f.stream_id == 3 and "END_STREAM" in f.flags
            )
            assert not any(isinstance(f, GoAwayFrame) for f in peer.frames) and trailers
            await peer.close()

    run(main)


def test_a_request_stream_that_ends_inside_a_message_is_an_internal_error() -> None:
    async def main() -> None:
        async with serving(echo) as server:
            client = await H2Client.connect(server.address)
            stream = client.open_call()
            await client.send(stream, grpc_message(_body(b"cut"))[:-2], end_stream=True)
            (call,) = await client.until_ended(stream)
            assert call.status == "13" and not call.data
            assert call.reset is None  # the request was whole (END_STREAM): nothing to ask the client to stop
            await client.close()

    run(main)


# -- fuzzing: whatever the bytes, a GOAWAY that names the error, the connection closed, its handlers gone

# Bytes that end any frame left open (one frame is at most 1 MiB), then a frame header whose length is
# past the limit: whatever came before, the connection must end with a GOAWAY by this tail at the latest.
_TAIL = b"\xff" * ((1 << 20) + 18)
_ERRORS = {
    ErrorCodes.PROTOCOL_ERROR,
    ErrorCodes.FLOW_CONTROL_ERROR,
    ErrorCodes.FRAME_SIZE_ERROR,
    ErrorCodes.COMPRESSION_ERROR,
    ErrorCodes.ENHANCE_YOUR_CALM,
}
_FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


async def _fuzzed(data: bytes) -> None:
    handler = Gated()
    handler.go.set()
    async with serving(handler) as server:
        peer = await RawPeer.connect(server.address, hello=False)
        peer.write(data + _TAIL)
        goaway = await peer.goaway()
        assert _code(goaway) in _ERRORS, goaway  # never INTERNAL_ERROR: that would be a fault of ours
        assert peer.frames[-1] is goaway
        await wait_for(lambda: not server.connections and handler.running == 0)


@_FUZZ
@given(garbage=st.binary(max_size=4096))
def test_random_bytes_after_the_preface_end_in_a_goaway_that_names_the_error(garbage: bytes) -> None:
    run(lambda: _fuzzed(PREFACE + settings_frame() + garbage))


def _conversation() -> list[bytes]:
    """A client's frames for two calls as h2 writes them, after the preface: SETTINGS, HEADERS, DATA,
    PING, WINDOW_UPDATE, PRIORITY, RST_STREAM and a header block in CONTINUATIONs."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", METHOD), (":authority", "x"), ("te", "trailers")]
    conn.send_headers(1, headers)
    conn.send_data(1, grpc_message(_body(b"first")) + grpc_message(_body(b"second"))[:7])
    conn.ping(b"12345678")
    conn.increment_flow_control_window(1000)
    conn.increment_flow_control_window(1000, 1)
    conn.max_outbound_frame_size = 40  # the next block goes in CONTINUATIONs
    conn.send_headers(3, [*headers, ("x-tag", "t" * 100)])
    conn.prioritize(3, weight=10)
    conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 100_000})
    conn.send_data(3, grpc_message(_body(b"third")), end_stream=True)
    conn.reset_stream(1)
    data = conn.data_to_send()[len(PREFACE) :]
    frames, offset = [], 0
    while offset < len(data):
        end = offset + 9 + int.from_bytes(data[offset : offset + 3], "big")
        frames.append(data[offset:end])
        offset = end
    return frames


_CONVERSATION = _conversation()
_MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["drop", "repeat", "swap", "flip", "cut", "type", "flags", "stream", "length"]),
        st.integers(0, 1 << 20),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=6,
)


def _mutate(frames: list[bytes], mutations: list[tuple[str, int, int]]) -> bytes:
    frames = list(frames)
    for kind, where, value in mutations:
        i = where % len(frames)
        frame = bytearray(frames[i])
        if kind == "drop" and len(frames) > 1:
            del frames[i]
            continue
        if kind == "repeat":
            frames.insert(i, frames[i])
            continue
        if kind == "swap":
            j = value % len(frames)
            frames[i], frames[j] = frames[j], frames[i]
            continue
        if len(frame) < 9:  # cut short already: only whole frame headers are mutated further
            continue
        if kind == "flip":
            frame[where % len(frame)] ^= value or 1
        elif kind == "cut":
            frame = frame[: where % len(frame)]
        elif kind == "type":
            frame[3] = value % 12  # the ten types and two unknown ones
        elif kind == "flags":
            frame[4] = value
        elif kind == "stream":
            frame[5:9] = struct.pack(">I", value % 8)
        elif kind == "length":
            frame[0:3] = (where % 70_000).to_bytes(3, "big")
        frames[i] = bytes(frame)
    return b"".join(frames)


@_FUZZ
@given(mutations=_MUTATIONS)
def test_mutated_frames_of_a_valid_conversation_end_in_a_goaway_that_names_the_error(
    mutations: list[tuple[str, int, int]],
) -> None:
    run(lambda: _fuzzed(PREFACE + _mutate(_CONVERSATION, mutations)))


def test_the_conversation_the_fuzzer_mutates_is_served_as_it_is() -> None:
    """Unmutated, the fuzzer's conversation is valid: stream 3 is answered, and only the tail is an error."""

    async def main() -> None:
        async with serving(echo) as server:
            peer = await RawPeer.connect(server.address, hello=False)
            peer.write(PREFACE + b"".join(_CONVERSATION))
            trailers = await peer.until(lambda f: isinstance(f, HeadersFrame) and "END_STREAM" in f.flags)
            data = b"".join(f.data for f in peer.frames if isinstance(f, DataFrame) and f.stream_id == 3)
            assert trailers.stream_id == 3 and _bodies(grpc_messages(data)) == [b"t" * 100 + b"third"]
            assert not any(isinstance(f, GoAwayFrame) for f in peer.frames)
            peer.write(_TAIL)
            assert _code(await peer.goaway()) == ErrorCodes.FRAME_SIZE_ERROR

    run(main)
