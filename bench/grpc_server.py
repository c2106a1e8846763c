"""The HTTP/2 gRPC server's own cost: Envoy's four ext_proc messages per request, answered by a
handler that does nothing else, over one connection on a Unix socket.

  python -m bench.grpc_server [--streams N] [--requests N] [--agent]

`--agent` sends an agent's request (about 80 KB, `bench/agent_body.py`) in 16 KB DATA frames, as
Envoy's HTTP/2 codec writes it.

The server runs in a child process on uvloop, as `extproc run` serves it; the client in this
process writes pre-built frames (one gRPC stream per request, its messages in lockstep, N streams
at once) and reads only frame headers. Prints the server process's CPU per request (user and
system, from /proc), and the requests per second. Compare two versions one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import struct
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    CommonResponse,
    HeadersResponse,
    ProcessingRequest,
    ProcessingResponse,
)

from bench.in_process import messages
from extproc.server import http2 as h2
from extproc.server.h2_server import METHOD, GrpcServer

_ANSWER = ProcessingResponse(request_headers=HeadersResponse(response=CommonResponse()))


async def _answer_each(
    metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
) -> AsyncGenerator[ProcessingResponse, None]:
    async for _ in requests:
        yield _ANSWER


def _serve(address: str, ready: Connection) -> None:
    async def run() -> None:
        server = GrpcServer(_answer_each, address)
        await server.start()
        ready.send(os.getpid())
        await asyncio.get_running_loop().create_future()  # until terminated

    uvloop.run(run())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Client(asyncio.Protocol):
    """Keeps `streams` requests in flight; each is one gRPC stream of Envoy's four messages."""

    def __init__(self, requests: int, streams: int, done: asyncio.Future[None], agent: bool = False) -> None:
        block = h2.header_block(
            [(":method", "POST"), (":scheme", "http"), (":path", METHOD), (":authority", "extproc"), ("te", "trailers")]
        )
        self._headers = block
        self._messages = [
            struct.pack(">BI", 0, len(m)) + m for m in (m.SerializeToString() for m in messages("chat", agent))
        ]
        self._left, self._streams, self._done = requests, streams, done
        self._next_id, self._step = 1, dict[int, int]()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        out = [h2.PREFACE, h2.settings_frame({h2.SETTINGS_INITIAL_WINDOW_SIZE: h2.MAX_WINDOW})]
        out.append(h2.window_update(0, h2.MAX_WINDOW - h2.DEFAULT_WINDOW))
        out.extend(self._open() for _ in range(min(self._streams, self._left)))
        self._transport.write(b"".join(out))

    def _open(self) -> bytes:
        stream_id, self._next_id = self._next_id, self._next_id + 2
        self._left -= 1
        self._step[stream_id] = 1
        return h2.frame(h2.HEADERS, h2.END_HEADERS, stream_id, self._headers) + _data(stream_id, self._messages[0], 0)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        out, offset = [], 0
        while len(buffer) - offset >= 9:
            high, low, kind, flags, stream_id = h2.FRAME_HEADER.unpack_from(buffer, offset)
            end = offset + 9 + (high << 16 | low)
            if end > len(buffer):
                break
            offset = end
            if kind == h2.DATA:
                step = self._step[stream_id]
                if step < len(self._messages):  # the answer to the last message comes before the trailers
                    last = step == len(self._messages) - 1
                    out.append(_data(stream_id, self._messages[step], h2.END_STREAM if last else 0))
                    self._step[stream_id] = step + 1
            elif kind == h2.HEADERS and flags & h2.END_STREAM:
                del self._step[stream_id]
                if self._left:
                    out.append(self._open())
                elif not self._step:
                    self._done.set_result(None)
            elif kind == h2.GOAWAY or kind == h2.RST_STREAM:
                self._done.set_exception(RuntimeError(f"the server ended with frame type {kind}"))
        del buffer[:offset]
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


def _data(stream_id: int, message: bytes, flags: int) -> bytes:
    """The message in DATA frames of at most 16 KB (HTTP/2's default frame size), `flags` on the last."""
    pieces = [message[at : at + _FRAME] for at in range(0, len(message), _FRAME)] or [b""]
    last = len(pieces) - 1
    return b"".join(h2.frame(h2.DATA, flags if i == last else 0, stream_id, p) for i, p in enumerate(pieces))


_FRAME = 16_384


async def _drive(path: str, requests: int, streams: int, agent: bool = False) -> float:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    transport, _ = await asyncio.get_running_loop().create_unix_connection(
        lambda: _Client(requests, streams, done, agent), path
    )
    started = time.perf_counter()
    await done
    elapsed = time.perf_counter() - started
    transport.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--agent", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/grpc.sock"
        theirs, ours = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("spawn").Process(target=_serve, args=(f"unix:{path}", ours), daemon=True)
        child.start()
        try:
            pid = theirs.recv()
            uvloop.run(_drive(path, 2_000, args.streams, args.agent))  # warm-up
            before = _cpu_seconds(pid)
            elapsed = uvloop.run(_drive(path, args.requests, args.streams, args.agent))
            cpu = _cpu_seconds(pid) - before
        finally:
            child.terminate()
            child.join()
    print(
        f"{args.requests} requests, {args.streams} streams at once: server CPU "
        f"{cpu / args.requests * 1e6:.1f} µs per request (4 messages), {args.requests / elapsed:,.0f} req/s"
    )


if __name__ == "__main__":
    main()
