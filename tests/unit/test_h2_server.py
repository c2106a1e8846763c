"""The ext_proc's own HTTP/2 gRPC server, driven by grpcio's client (the protocol's reference) and by raw frames."""

from __future__ import annotations

import asyncio
import socket
import stat
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path

import grpc
import hpack
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyMutation,
    BodyResponse,
    CommonResponse,
    HttpBody,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.server import http2 as h2
from extproc.server.h2_server import BatchReads, GrpcServer
from extproc.server.service import ProcessorServer
from extproc.state import GatewayState
from tests.support.stack import free_port
from tests.support.wait import wait_until_async


def _body(data: bytes) -> ProcessingRequest:
    return ProcessingRequest(request_body=HttpBody(body=data, end_of_stream=True))


def _echo(data: bytes) -> ProcessingResponse:
    return ProcessingResponse(request_body=BodyResponse(response=CommonResponse(body_mutation=BodyMutation(body=data))))


async def echo(
    metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
) -> AsyncGenerator[ProcessingResponse]:
    """Answers each request body with it, prefixed by the stream's `x-tag` metadata."""
    async for message in requests:
        yield _echo(metadata.get("x-tag", "").encode() + message.request_body.body)


def _serve(handler, client):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        server = GrpcServer(handler, f"127.0.0.1:{free_port()}")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                return await client(channel)
        finally:
            await server.stop(1)

    return asyncio.run(run())


def _stub(channel: grpc.aio.Channel) -> external_processor_pb2_grpc.ExternalProcessorStub:
    return external_processor_pb2_grpc.ExternalProcessorStub(channel)


def test_each_message_is_answered_in_order_with_the_stream_metadata() -> None:
    async def client(channel: grpc.aio.Channel) -> list[bytes]:
        call = _stub(channel).Process(iter([_body(b"a"), _body(b"b"), _body(b"c")]), metadata=(("x-tag", "t:"),))
        return [r.request_body.response.body_mutation.body async for r in call]

    assert _serve(echo, client) == [b"t:a", b"t:b", b"t:c"]


def test_streams_on_one_connection_run_concurrently() -> None:
    async def client(channel: grpc.aio.Channel) -> list[list[bytes]]:
        async def one(i: int) -> list[bytes]:
            call = _stub(channel).Process(iter([_body(str(i).encode())] * 3))
            return [r.request_body.response.body_mutation.body async for r in call]

        return await asyncio.gather(*(one(i) for i in range(50)))

    assert _serve(echo, client) == [[str(i).encode()] * 3 for i in range(50)]


def test_messages_larger_than_a_frame_and_the_peers_window_go_through_whole() -> None:
    big = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB: many frames, beyond grpcio's first windows

    async def client(channel: grpc.aio.Channel) -> list[bytes]:
        call = _stub(channel).Process(iter([_body(big), _body(b"small")]))
        return [r.request_body.response.body_mutation.body async for r in call]

    async def run() -> list[bytes]:
        server = GrpcServer(echo, f"127.0.0.1:{free_port()}")
        await server.start()
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        try:
            async with grpc.aio.insecure_channel(server.address, options=options) as channel:
                return await client(channel)
        finally:
            await server.stop(1)

    assert asyncio.run(run()) == [big, b"small"]


def test_a_failing_handler_ends_its_stream_with_internal_and_no_details() -> None:
    async def failing(
        metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse]:
        async for _ in requests:
            raise RuntimeError("secret internals")
        yield ProcessingResponse()

    async def client(channel: grpc.aio.Channel) -> tuple[grpc.StatusCode, str]:
        try:
            async for _ in _stub(channel).Process(iter([_body(b"x")])):
                pass
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    code, details = _serve(failing, client)
    assert code == grpc.StatusCode.INTERNAL and "secret" not in details


def test_an_unknown_method_is_unimplemented() -> None:
    async def client(channel: grpc.aio.Channel) -> grpc.StatusCode:
        call = channel.unary_unary("/some.Service/Other")
        try:
            await call(b"")
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    assert _serve(echo, client) == grpc.StatusCode.UNIMPLEMENTED


def test_a_stream_the_client_cancels_closes_its_handler() -> None:
    closed = asyncio.Event()
    started = asyncio.Event()

    async def waits(
        metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse]:
        try:
            async for _ in requests:
                started.set()
                yield ProcessingResponse()
        finally:
            closed.set()

    async def client(channel: grpc.aio.Channel) -> bool:
        async def never_ending() -> AsyncIterator[ProcessingRequest]:
            yield _body(b"x")
            await asyncio.Event().wait()  # the client never ends its side

        call = _stub(channel).Process(never_ending())
        await call.read()
        await asyncio.wait_for(started.wait(), 5)
        call.cancel()  # RST_STREAM to the server
        await asyncio.wait_for(closed.wait(), 5)
        return closed.is_set()

    assert _serve(waits, client)


def test_an_unparsable_message_ends_the_stream_with_internal() -> None:
    async def client(channel: grpc.aio.Channel) -> grpc.StatusCode:
        call = channel.stream_stream("/envoy.service.ext_proc.v3.ExternalProcessor/Process")
        try:
            async for _ in call(iter([b"\xff\xff\xff"])):
                pass
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    assert _serve(echo, client) == grpc.StatusCode.INTERNAL


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    frames, offset = [], 0
    while len(data) - offset >= 9:
        high, low, kind, flags, stream_id = h2.FRAME_HEADER.unpack_from(data, offset)
        end = offset + 9 + (high << 16 | low)
        frames.append((kind, flags, stream_id, data[offset + 9 : end]))
        offset = end
    return frames


def _raw_exchange(send: bytes) -> bytes:
    """What the server sends back to `send` on a raw connection, until it closes or goes quiet."""

    async def run() -> bytes:
        server = GrpcServer(echo, f"127.0.0.1:{free_port()}")
        await server.start()
        host, _, port = server.address.rpartition(":")
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(send)
            received = b""
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), 0.5)
                except TimeoutError:
                    break
                if not chunk:
                    break
                received += chunk
            writer.close()
            return received
        finally:
            await server.stop(0)

    return asyncio.run(run())


def test_a_connection_without_the_http2_preface_gets_a_goaway_and_is_closed() -> None:
    frames = _frames(_raw_exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 64))
    assert frames[-1][0] == h2.GOAWAY and struct.unpack(">I", frames[-1][3][4:8])[0] == h2.PROTOCOL_ERROR


def test_a_ping_is_answered_and_settings_acknowledged() -> None:
    send = h2.PREFACE + h2.settings_frame({}) + h2.frame(h2.PING, 0, 0, b"12345678")
    frames = _frames(_raw_exchange(send))
    assert (h2.PING, h2.ACK, 0, b"12345678") in frames
    assert (h2.SETTINGS, h2.ACK, 0, b"") in frames


def test_an_even_stream_id_from_the_client_is_a_protocol_error() -> None:
    block = h2.header_block([(":method", "POST"), (":path", "/envoy.service.ext_proc.v3.ExternalProcessor/Process")])
    send = h2.PREFACE + h2.settings_frame({}) + h2.frame(h2.HEADERS, h2.END_HEADERS, 2, block)
    frames = _frames(_raw_exchange(send))
    assert frames[-1][0] == h2.GOAWAY


def test_stop_lets_a_stream_in_flight_finish_and_refuses_new_ones() -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(
        metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse]:
        async for message in requests:
            arrived.set()
            await release.wait()
            yield _echo(message.request_body.body)

    async def run() -> tuple[list[bytes], bool, bool]:
        server = GrpcServer(slow, f"127.0.0.1:{free_port()}")
        await server.start()
        host, _, port = server.address.rpartition(":")

        def refused() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex((host, int(port))) != 0

        async with grpc.aio.insecure_channel(server.address) as channel:
            call = _stub(channel).Process(iter([_body(b"in flight")]))
            await asyncio.wait_for(arrived.wait(), 5)
            stopping = asyncio.ensure_future(server.stop(5))
            refused_while_stopping = await wait_until_async(refused)
            release.set()
            answers = [r.request_body.response.body_mutation.body async for r in call]
            await stopping
        return answers, refused_while_stopping, refused()

    answers, refused_while_stopping, refused_after = asyncio.run(run())
    assert answers == [b"in flight"] and refused_while_stopping and refused_after


def test_the_service_socket_is_for_its_own_user_only(tmp_path: Path, gateway_state: GatewayState) -> None:
    path = tmp_path / "extproc.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))  # a stale socket, left by a process that did not stop cleanly
    sock.close()

    async def run() -> int:
        server = ProcessorServer(gateway_state, f"unix:{path}")
        await server.start()
        try:
            return stat.S_IMODE(path.stat().st_mode)
        finally:
            await server.stop(0)

    assert asyncio.run(run()) == 0o600


@pytest.fixture
def gateway_state(tmp_path: Path) -> GatewayState:
    from extproc.config.load import load_text

    return GatewayState(
        load_text("providers: [{name: mock, kind: mock}]\nroutes: [{model: '*', provider: mock}]\n", {}, tmp_path)
    )


def test_a_remembered_header_block_is_forgotten_once_the_table_changes_what_its_indexes_name() -> None:
    encoder, decoder = hpack.Encoder(), h2.HeaderDecoder(max_list_size=65536)
    inserting_a = encoder.encode([("x-a", "1")])
    indexed_a = encoder.encode([("x-a", "1")])  # now an index into the dynamic table
    assert decoder.decode(inserting_a) == {"x-a": "1"}
    assert decoder.decode(indexed_a) == decoder.decode(indexed_a) == {"x-a": "1"}
    assert decoder.decode(encoder.encode([("x-b", "2")])) == {"x-b": "2"}  # inserted before x-a
    indexed_b = encoder.encode([("x-b", "2")])
    assert indexed_b == indexed_a  # the same bytes...
    assert decoder.decode(indexed_b) == {"x-b": "2"}  # ...now name another header


def test_a_remembered_header_block_is_forgotten_when_an_insertion_evicts_without_changing_the_first_entry() -> None:
    """Inserting a header equal to the table's first entry, which evicts the last one, leaves the
    table's length and first entry as they were, yet index 63 now names another header."""
    value_a, value_b = "a" * 1965, "b" * 1965  # each entry 2,000 bytes: two fit in the 4,096-byte table

    def inserting(name: str, value: str) -> bytes:
        return hpack.Encoder().encode([(name, value)], huffman=False)  # a literal added to the table

    decoder = h2.HeaderDecoder(max_list_size=65536)
    decoder.decode(inserting("x-b", value_b))
    decoder.decode(inserting("x-a", value_a))  # the table: x-a, x-b
    assert decoder.decode(b"\xbf") == {"x-b": value_b}  # index 63, the second entry; remembered
    decoder.decode(inserting("x-a", value_a))  # the table: x-a, x-a (x-b evicted)
    assert decoder.decode(b"\xbf") == {"x-a": value_a}


def test_a_connection_marked_by_its_streams_is_read_in_batches_and_any_other_as_data_comes() -> None:
    batch = BatchReads(lambda metadata: metadata.get("x-tag") == "b:", every_s=0.2)

    def reading(server: GrpcServer) -> list[bool]:
        return [connection._transport.is_reading() for connection in server.connections]  # type: ignore[union-attr]

    async def run() -> tuple[list[bool], list[bool], list[bool]]:
        server = GrpcServer(echo, f"127.0.0.1:{free_port()}", batch=batch)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = _stub(channel).Process(iter([_body(b"x")]), metadata=(("x-tag", "b:"),))
                assert [r.request_body.response.body_mutation.body async for r in call] == [b"b:x"]
                resting = reading(server)  # read once: nothing more until the batch is due
                assert await wait_until_async(lambda: all(reading(server)), timeout=5)
                woken = reading(server)
            first = server.connections
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = _stub(channel).Process(iter([_body(b"y")]))
                assert [r.request_body.response.body_mutation.body async for r in call] == [b"y"]
                (other,) = server.connections - first
                unmarked = [other._transport.is_reading()]  # type: ignore[union-attr]
            return resting, woken, unmarked
        finally:
            await server.stop(1)

    resting, woken, unmarked = asyncio.run(run())
    assert resting == [False] and woken == [True]
    assert unmarked == [True]  # no stream marked it: never paused
