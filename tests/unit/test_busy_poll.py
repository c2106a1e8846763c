"""After data arrives the loop polls without blocking for the busy-poll window, then sleeps again."""

from __future__ import annotations

import asyncio
import selectors
import time
from pathlib import Path

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, ProcessingRequest

from extproc.app.restart import restart_required
from extproc.config.load import load_text
from extproc.server.busy_poll import BusyPoll, busy_poll
from extproc.server.h2_server import BUSY_POLL_MAX_STREAMS, GrpcServer
from tests.support.stack import free_port
from tests.support.wait import wait_until_async
from tests.unit.test_h2_server import echo


class RecordingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Records the timeout and the time of every poll the event loop makes."""

    def __init__(self) -> None:
        super().__init__()
        self.polls: list[tuple[float, float | None]] = []

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.polls.append((time.monotonic(), timeout))
        return super().select(timeout)


def _run_recorded(body):  # type: ignore[no-untyped-def]
    selector = RecordingSelector()
    loop = asyncio.SelectorEventLoop(selector)
    try:
        return loop.run_until_complete(body()), selector.polls
    finally:
        loop.close()


def test_a_poke_keeps_the_loop_polling_without_blocking_for_the_window_then_it_sleeps() -> None:
    window = 0.02

    async def body() -> tuple[float, float, int, int]:
        busy = BusyPoll(asyncio.get_running_loop(), window)
        poked = time.monotonic()
        busy.poke()
        assert busy.spinning
        # Polled by a timer, so that only the busy poll keeps the loop from blocking meanwhile.
        assert await wait_until_async(lambda: not busy.spinning, interval=window / 4)
        closed, turns = time.monotonic(), busy.turns
        await asyncio.sleep(window * 2)  # not a wait: the idle stretch whose polls are looked at below
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

    async def body() -> tuple[float, float, float]:
        busy = BusyPoll(asyncio.get_running_loop(), window)
        first = time.monotonic()
        busy.poke()
        await asyncio.sleep(window * 0.5)  # not a wait: the next data comes halfway through the window
        second = time.monotonic()
        busy.poke()  # more data before the window closed
        assert await wait_until_async(lambda: not busy.spinning)
        return first, second, busy.last_turn

    (first, second, last_turn), _ = _run_recorded(body)
    assert last_turn > first + window * 1.1  # kept polling past the first poke's window
    assert last_turn < second + window + 0.01  # and no longer than the second poke's (poked just after `second`)


def test_a_window_of_zero_turns_busy_polling_off() -> None:
    async def body() -> BusyPoll | None:
        return busy_poll(0)

    assert asyncio.run(body()) is None


def test_the_grpc_server_polls_after_each_message_it_receives() -> None:
    async def run() -> tuple[int, int]:
        server = GrpcServer(echo, f"127.0.0.1:{free_port()}", busy_poll_us=50_000)
        quiet = GrpcServer(echo, f"127.0.0.1:{free_port()}", busy_poll_us=0)
        turns = []
        for each in (server, quiet):
            await each.start()
            try:
                async with grpc.aio.insecure_channel(each.address) as channel:
                    stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
                    request = ProcessingRequest(request_body=HttpBody(body=b"x", end_of_stream=True))
                    answers = [a async for a in stub.Process(iter([request]))]
                    assert len(answers) == 1
            finally:
                turns.append(each.busy_poll.turns if each.busy_poll is not None else 0)
                await each.stop(1)
        return turns[0], turns[1]

    polled, quiet = asyncio.run(run())
    assert polled > 0 and quiet == 0


def test_busy_poll_defaults_on_and_changing_it_needs_a_restart() -> None:
    base = "providers: [{name: m, kind: mock}]\nroutes: [{model: m, provider: m}]\n"
    default = load_text(base, {}, Path("."))
    off = load_text(base + "extproc: {busy_poll_us: 0}\n", {}, Path("."))
    assert default.extproc.busy_poll_us == 500 and off.extproc.busy_poll_us == 0
    assert restart_required(default, off) == ["extproc.busy_poll_us changed: restart the gateway to apply it"]


def test_with_more_than_a_few_streams_on_a_connection_the_server_does_not_poll() -> None:
    request = ProcessingRequest(request_body=HttpBody(body=b"x", end_of_stream=True))

    async def run() -> tuple[int, int, int]:
        server = GrpcServer(echo, f"127.0.0.1:{free_port()}", busy_poll_us=2_000)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
                calls = [stub.Process() for _ in range(BUSY_POLL_MAX_STREAMS + 4)]
                for call in calls:  # every stream open and answered once
                    await call.write(request)
                    await call.read()
                busy = server.busy_poll
                assert busy is not None
                assert await wait_until_async(lambda: not busy.spinning)  # past the window
                before = busy.turns
                await calls[0].write(request)  # many streams open: no polling
                await calls[0].read()  # the server was poked, if at all, when the request arrived
                assert not busy.spinning
                busy_turns = busy.turns
                for call in calls[1:]:
                    await call.done_writing()
                    await call.wait_for_connection()
                    assert await call.read() is grpc.aio.EOF
                await calls[0].write(request)  # one stream left: polling again
                await calls[0].read()
                assert await wait_until_async(lambda: busy.turns > busy_turns)
                return before, busy_turns, busy.turns
        finally:
            await server.stop(1)

    before, busy_turns, alone = asyncio.run(run())
    assert busy_turns == before
    assert alone > busy_turns
