"""What a request holds, and for how long.

It leaves no reference cycle behind: what it held (an agent's parsed 80 KB request, its canonical
form, the answer) is freed by reference counting the moment it ends. The server collects the
youngest generation rarely (extproc/heap.py), so a cycle per request kept some hundred parsed
requests alive per process under load (measured: +20 MB resident per ext_proc process).

While its answer streams (as long as the model writes), a request passed through to its provider
does not hold the client's body, parsed or not."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
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


@pytest.mark.parametrize("warm", ["chat", "stream"], indirect=True)  # the same API: the client's bytes go on
def test_a_passed_through_request_waiting_for_its_answer_holds_little_of_its_body(warm: Warm) -> None:
    body_bytes = len(warm.sent[1].request_body.body)

    async def held_while_waiting() -> int:
        before = tracemalloc.get_traced_memory()[0]
        request_sent, answer_comes = asyncio.Event(), asyncio.Event()
        request = asyncio.ensure_future(_one_request(warm.service, warm.sent, (request_sent, answer_comes)))
        await request_sent.wait()
        held = tracemalloc.get_traced_memory()[0] - before
        answer_comes.set()
        assert await request == len(warm.sent)
        return held

    tracemalloc.start()
    try:
        held = warm.loop.run_until_complete(held_while_waiting())
    finally:
        tracemalloc.stop()
    # Its body (80 KB), parsed or not, is let go once the request went on; what stays is the exchange.
    assert held < body_bytes / 4, (
        f"{held} bytes held by a {warm.mode} request of {body_bytes} while its answer is awaited"
    )
