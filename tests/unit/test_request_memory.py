"""What a request holds, and for how long.

It leaves no reference cycle behind: what it held (an agent's parsed 80 KB request, its canonical
form, the answer) is freed by reference counting the moment it ends. The server collects the
youngest generation rarely (extproc/heap.py), so a cycle per request kept some hundred parsed
requests alive per process under load (measured: +20 MB resident per ext_proc process).

While its answer streams (as long as the model writes), it does not hold the client's parsed body."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest

from bench.in_process import MODES, messages, processor
from extproc.server.service import ExternalProcessor


async def _one_request(
    service: ExternalProcessor,
    sent: list[ProcessingRequest],
    provider: tuple[asyncio.Event, asyncio.Event] | None = None,
) -> int:
    """One request, its answer held back, when `provider` is given, until its second event is set (the
    first is set once the request went on)."""

    async def feed() -> AsyncIterator[ProcessingRequest]:
        for at, message in enumerate(sent):
            if at == 2 and provider is not None:  # the request body's reply is out: the provider takes its time
                provider[0].set()
                await provider[1].wait()
            yield message

    answered = 0
    async for _ in service.process({"x-gw-pass": "router", "x-gw-listener": "main"}, feed()):
        answered += 1
    return answered


@dataclass
class Warm:
    mode: str
    service: ExternalProcessor
    sent: list[ProcessingRequest]
    loop: asyncio.AbstractEventLoop


@pytest.fixture(params=MODES)
def warm(request: pytest.FixtureRequest) -> Iterator[Warm]:
    """The in-process bench's processor (API-key auth, limits) and an agent's request in the mode,
    served once (first-use caches), with the collector off and what start-up left freed."""
    service, state = processor()
    warm = Warm(request.param, service, messages(request.param, agent=True), asyncio.new_event_loop())
    gc.disable()
    try:
        assert warm.loop.run_until_complete(_one_request(service, warm.sent)) == len(warm.sent)
        gc.collect()
        yield warm
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()  # the cycles it saved, freed now
        gc.enable()
        warm.loop.close()
        state.close_tracing()


def test_an_agent_request_leaves_no_cycle_for_the_collector(warm: Warm) -> None:
    gc.set_debug(gc.DEBUG_SAVEALL)  # from here on, what the collector finds is kept in gc.garbage
    assert warm.loop.run_until_complete(_one_request(warm.service, warm.sent)) == len(warm.sent)
    gc.collect()
    left = Counter(type(item).__qualname__ for item in gc.garbage)
    assert left == Counter(), f"cyclic garbage of one {warm.mode} request: {left.most_common(8)}"


def _message_dicts() -> int:
    """The parsed assistant turns with tool calls alive in this process (the agent's body has 7; a
    message of plain strings is not tracked by the collector, so not counted)."""
    return sum(1 for item in gc.get_objects() if isinstance(item, dict) and "tool_calls" in item and "role" in item)


def test_a_request_waiting_for_its_answer_holds_no_parsed_message_of_its_body(warm: Warm) -> None:
    async def run() -> tuple[int, int]:
        before = _message_dicts()
        request_sent, answer_comes = asyncio.Event(), asyncio.Event()
        request = asyncio.ensure_future(_one_request(warm.service, warm.sent, (request_sent, answer_comes)))
        await request_sent.wait()
        during = _message_dicts()
        answer_comes.set()
        assert await request == len(warm.sent)
        return before, during

    before, during = warm.loop.run_until_complete(run())
    assert during == before, f"{during - before} parsed messages held while the {warm.mode} answer is awaited"
