"""server/observer_pass.py: a same-API stream read beside it. The request is finished exactly once,
after both the router pass's stream ended and the observer read the stream's end (in either order),
or after the grace period when the observer never saw it; the observer reads only the messages
whose metadata names a stream of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, ProcessingRequest
from google.protobuf.struct_pb2 import Struct

from extproc.contract import OBSERVE_KEY, REQUEST_METADATA_NAMESPACE
from extproc.pipeline.answer import AnswerStage
from extproc.pipeline.exchange import Exchange, PhaseReply
from extproc.server.observer_pass import Observations, ObserverPass
from tests.support.exchanges import CHAT_PATH, PROVIDERS, at_body, chat, snapshot

SNAPSHOT = snapshot(PROVIDERS + '\nroutes: [{model: "gpt-*", provider: openai}]\n')
CHUNKS = [
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}\n\n',
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}\n\n',
    b"data: [DONE]\n\n",
]


def observed(key: int) -> Exchange:
    ex, _ = at_body(SNAPSHOT, chat("gpt-4o", stream=True), CHAT_PATH, None)
    ex.passthrough = True
    AnswerStage().response_headers(ex, PhaseReply(), {":status": "200"})
    assert ex.observed
    ex.observed = key
    return ex


def body_message(chunk: bytes, end: bool, key: int | None) -> ProcessingRequest:
    message = ProcessingRequest(response_body=HttpBody(body=chunk, end_of_stream=end))
    if key is not None:
        facts = Struct()
        facts.update({OBSERVE_KEY: key})
        message.metadata_context.filter_metadata[REQUEST_METADATA_NAMESPACE].CopyFrom(facts)
    return message


async def messages(items: list[ProcessingRequest]) -> AsyncIterator[ProcessingRequest]:
    for item in items:
        yield item


async def observe(observations: Observations, items: list[ProcessingRequest]) -> None:
    async for _ in ObserverPass(observations).process(messages(items)):
        raise AssertionError("the observer never replies")


def test_the_request_finishes_once_the_observer_read_the_end_after_the_router_pass_ended() -> None:
    async def scenario() -> None:
        observations, finished = Observations(), []
        ex = observed(7)
        observations.watch(ex)
        observations.request_ended(7, lambda: finished.append(ex.usage))
        assert finished == []  # the stream is still on its way to the observer
        await observe(observations, [body_message(c, i == 2, 7) for i, c in enumerate(CHUNKS)])
        assert len(finished) == 1 and finished[0] is not None and finished[0].output_tokens == 5
        assert ex.answered and len(observations) == 0

    asyncio.run(scenario())


def test_the_request_finishes_when_the_router_pass_ends_after_the_observer_read_it_all() -> None:
    async def scenario() -> None:
        observations, finished = Observations(), []
        ex = observed(8)
        observations.watch(ex)
        await observe(observations, [body_message(c, i == 2, 8 if i == 0 else None) for i, c in enumerate(CHUNKS)])
        assert ex.usage is not None and finished == []  # metadata on the first message names the stream
        observations.request_ended(8, lambda: finished.append(True))
        assert finished == [True]

    asyncio.run(scenario())


def test_a_stream_the_observer_saw_end_early_is_finished_unanswered() -> None:
    async def scenario() -> None:
        observations, finished = Observations(), []
        ex = observed(9)
        observations.watch(ex)
        await observe(observations, [body_message(CHUNKS[0], False, 9)])  # the client hung up
        observations.request_ended(9, lambda: finished.append(ex.answered))
        assert finished == [False]

    asyncio.run(scenario())


def test_a_stream_the_observer_never_saw_is_finished_after_the_grace_period() -> None:
    async def scenario() -> None:
        observations, done = Observations(grace_s=0.01), asyncio.Event()
        observations.watch(observed(10))
        observations.request_ended(10, done.set)
        assert not done.is_set()
        await asyncio.wait_for(done.wait(), 5)
        assert len(observations) == 0

    asyncio.run(scenario())


def test_messages_naming_no_stream_of_this_process_are_not_read() -> None:
    async def scenario() -> None:
        observations = Observations()
        ex = observed(11)
        observations.watch(ex)
        await observe(observations, [body_message(c, i == 2, 12) for i, c in enumerate(CHUNKS)])
        await observe(observations, [body_message(c, i == 2, None) for i, c in enumerate(CHUNKS)])
        assert ex.usage is None and not ex.answered and len(observations) == 1

    asyncio.run(scenario())
