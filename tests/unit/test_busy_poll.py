"""After a reply to a headers message the loop polls without blocking for the body due next, until it
arrives or the busy-poll window ends, then sleeps again."""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path

import grpc
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyResponse,
    HeadersResponse,
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.app.restart import restart_required
from extproc.config.load import load_text
from extproc.server.busy_poll import BusyPoll, busy_poll
from extproc.server.h2_server import GrpcServer
from tests.support.stack import free_port
from tests.support.wait import loop_turns, wait_until_async


class RecordingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Records the timeout and the time of every poll the event loop makes."""

    def __init__(self) -> None:
        super().__init__()
        self.polls: list[tuple[float, float | None]] = []

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.polls.append((time.monotonic(), timeout))
        return super().select(timeout)


def _run_recorded(body):  # type: ignore[no-untyped-def]
    """`body(polls)` run on a loop whose polls are recorded; its result and the polls."""
    selector = RecordingSelector()
    loop = asyncio.SelectorEventLoop(selector)
    try:
        return loop.run_until_complete(body(selector.polls)), selector.polls
    finally:
        loop.close()


def test_a_poke_keeps_the_loop_polling_without_blocking_for_the_window_then_it_sleeps() -> None:
    window = 0.02

    async def body(polls: list[tuple[float, float | None]]) -> tuple[float, float, int, int]:
        busy = BusyPoll(asyncio.get_running_loop(), window)
        poked = time.monotonic()
        busy.poke()
        assert busy.spinning
        # Polled by a timer, so that only the busy poll keeps the loop from blocking meanwhile.
        assert await wait_until_async(lambda: not busy.spinning, interval=window / 4)
        closed, turns = time.monotonic(), busy.turns
        # the loop blocks again (the wait's own timer wakes it): a poll with a timeout after the close
        assert await wait_until_async(
            lambda: any(timeout is None or timeout > 0 for at, timeout in polls if at >= closed), interval=window / 4
        )
        return poked, closed, turns, busy.turns

    (poked, closed, turns, turns_later), polls = _run_recorded(body)
    in_window = [timeout for at, timeout in polls if poked <= at < poked + window * 0.8]
    after = [timeout for at, timeout in polls if at >= closed]
    assert closed >= poked + window  # the window lasted its length
    # polled, and never blocked, while the window was open (how many turns fit depends on the CPU it got)
    assert turns > 0 and in_window and all(timeout == 0 for timeout in in_window)
    assert turns_later == turns  # and stopped once it closed
    # then slept until the next timer (the few polls without a timeout are those timers firing)
    assert any(timeout is None or timeout > 0 for timeout in after) and after.count(0) < 5


def test_each_poke_extends_the_window_from_the_latest_data() -> None:
    window = 0.1

    async def body(polls: list[tuple[float, float | None]]) -> tuple[float, float, float]:
        busy = BusyPoll(asyncio.get_running_loop(), window)
        first = time.monotonic()
        busy.poke()
        # the next data comes once the poll is halfway through its window
        assert await wait_until_async(lambda: busy.last_turn >= first + window * 0.5)
        second = time.monotonic()
        busy.poke()  # more data before the window closed
        assert await wait_until_async(lambda: not busy.spinning)
        return first, second, busy.last_turn

    (first, second, last_turn), _ = _run_recorded(body)
    assert last_turn > first + window * 1.1  # kept polling past the first poke's window
    assert last_turn < second + window + 0.01  # and no longer than the second poke's (poked just after `second`)


def test_data_arriving_closes_the_window_at_the_next_turn() -> None:
    async def body() -> tuple[bool, bool, int]:
        busy = BusyPoll(asyncio.get_running_loop(), 30.0)  # a window far longer than the test
        busy.poke()
        polling = await wait_until_async(lambda: busy.turns > 0) and busy.spinning
        busy.arrived()
        closed = await wait_until_async(lambda: not busy.spinning, timeout=5.0)
        turns = busy.turns
        await loop_turns(20)  # a poll still going would take a turn in each of these
        return polling, closed, busy.turns - turns

    polling, closed, later = asyncio.run(body())
    assert polling and closed and later == 0


def test_a_window_of_zero_turns_busy_polling_off() -> None:
    async def body() -> BusyPoll | None:
        return busy_poll(0)

    assert asyncio.run(body()) is None


async def _phases(
    metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
) -> AsyncGenerator[ProcessingResponse]:
    """Answers each message in its own phase, as the passes do: headers with a headers reply, a body with a body reply."""
    async for message in requests:
        if message.HasField("request_headers"):
            yield ProcessingResponse(request_headers=HeadersResponse())
        else:
            yield ProcessingResponse(request_body=BodyResponse())


_HEADERS = ProcessingRequest(request_headers=HttpHeaders())
_BODY = ProcessingRequest(request_body=HttpBody(body=b"x", end_of_stream=True))


def _with_server(window_us: int, client):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        server = GrpcServer(_phases, f"127.0.0.1:{free_port()}", busy_poll_us=window_us)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                return await client(external_processor_pb2_grpc.ExternalProcessorStub(channel), server.busy_poll)
        finally:
            await server.stop(1)

    return asyncio.run(run())


def test_the_grpc_server_polls_after_a_headers_reply_and_not_after_a_body_reply() -> None:
    async def client(stub, busy):  # type: ignore[no-untyped-def]
        call = stub.Process()
        await call.write(_BODY)
        await call.read()
        after_body = busy.turns  # the reply is out: no poll was begun for it
        assert not busy.spinning
        await call.write(_HEADERS)
        await call.read()
        assert await wait_until_async(lambda: busy.turns > after_body)  # polling for the body due next
        await call.done_writing()
        return after_body

    assert _with_server(50_000, client) == 0


def test_an_answers_headers_reply_polls_only_when_it_asks_for_the_body() -> None:
    """Without a body mode the answer goes on without this stream (or to the observer): nothing is due."""
    asked = ProcessingMode(response_body_mode=ProcessingMode.STREAMED)

    async def answers(
        metadata: Mapping[str, str], requests: AsyncIterator[ProcessingRequest]
    ) -> AsyncGenerator[ProcessingResponse]:
        async for message in requests:
            ask = message.response_headers.end_of_stream  # the test's flag: ask for the body
            yield ProcessingResponse(response_headers=HeadersResponse(), **({"mode_override": asked} if ask else {}))

    async def run() -> tuple[int, int]:
        server = GrpcServer(answers, f"127.0.0.1:{free_port()}", busy_poll_us=50_000)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = external_processor_pb2_grpc.ExternalProcessorStub(channel).Process()
                busy = server.busy_poll
                assert busy is not None
                await call.write(ProcessingRequest(response_headers=HttpHeaders()))
                await call.read()
                await loop_turns(20)  # a poll begun for that reply would turn in each of these
                unasked = busy.turns
                await call.write(ProcessingRequest(response_headers=HttpHeaders(end_of_stream=True)))
                await call.read()
                assert await wait_until_async(lambda: busy.turns > unasked)  # polling for the body asked for
                await call.done_writing()
                return unasked, busy.turns
        finally:
            await server.stop(1)

    unasked, later = asyncio.run(run())
    assert unasked == 0 and later > 0


def test_the_message_a_poll_waits_for_ends_it_before_the_window() -> None:
    window_s = 30.0  # far longer than the test: only the arrival can end this poll

    async def client(stub, busy):  # type: ignore[no-untyped-def]
        call = stub.Process()
        await call.write(_HEADERS)
        await call.read()
        assert busy.spinning
        await call.write(_BODY)  # the message it polled for
        await call.read()
        stopped = await wait_until_async(lambda: not busy.spinning, timeout=window_s / 3)
        await call.done_writing()
        return stopped

    assert _with_server(int(window_s * 1e6), client)


def test_a_server_without_a_window_never_polls() -> None:
    async def client(stub, busy):  # type: ignore[no-untyped-def]
        call = stub.Process()
        for message in (_HEADERS, _BODY):
            await call.write(message)
            await call.read()
        await call.done_writing()
        return busy

    assert _with_server(0, client) is None


def test_busy_poll_defaults_on_and_changing_it_needs_a_restart() -> None:
    base = "providers: [{name: m, kind: mock}]\nroutes: [{model: m, provider: m}]\n"
    default = load_text(base, {}, Path("."))
    off = load_text(base + "extproc: {busy_poll_us: 0}\n", {}, Path("."))
    assert default.extproc.busy_poll_us == 500 and off.extproc.busy_poll_us == 0
    assert restart_required(default, off) == ["extproc.busy_poll_us changed: restart the gateway to apply it"]
