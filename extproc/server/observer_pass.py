"""The observer pass: the listener's second ext_proc filter, in `observability_mode`, reading a
same-API stream's body while Envoy sends it on to the client without waiting for a reply.

A passed-through stream is never changed, only read (usage, time to first token, the answer for
the cache): replying to each chunk cost both processes a wake-up per chunk and the client a hop per
chunk. The router pass marks such an answer at its headers (`AnswerStage`: the mark lets Envoy run
this filter, dynamic metadata names the request's key) and keeps its own stream open until Envoy
ends it with the request; the request is finished once both the router pass's stream has ended and
this pass has read the stream's end (or its stream ended: the client hung up), or `GRACE_S` after
the router pass's end if this pass never saw it (an answer cut before its first chunk).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from extproc.contract import OBSERVE_KEY, REQUEST_METADATA_NAMESPACE
from extproc.observe.metrics import ACTIVE_STREAMS
from extproc.pipeline.answer import AnswerStage
from extproc.pipeline.exchange import Exchange

GRACE_S = 2.0  # past Envoy's deferred close of the observer's stream (1 s, xds/render_filters.py)


@dataclass(slots=True)
class Observation:
    ex: Exchange
    read_all: bool = False  # the observer read the stream's end, or its stream ended
    finish: Callable[[], None] | None = None  # set once the router pass's stream ended
    timer: asyncio.TimerHandle | None = None


class Observations:
    """The streams being observed in this process, by key; each finished exactly once."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self._open: dict[int, Observation] = {}
        self._grace_s = grace_s

    def __len__(self) -> int:
        return len(self._open)

    def watch(self, ex: Exchange) -> None:
        self._open[ex.observed] = Observation(ex)

    def get(self, key: int) -> Observation | None:
        return self._open.get(key)

    def read(self, key: int) -> None:
        """The observer is done with the stream."""
        observation = self._open.get(key)
        if observation is None:
            return
        observation.read_all = True
        if observation.finish is not None:
            self._close(key)

    def request_ended(self, key: int, finish: Callable[[], None]) -> None:
        """The router pass's stream ended: finish now if the stream was read, else once it is."""
        observation = self._open.get(key)
        if observation is None:
            finish()
            return
        observation.finish = finish
        if observation.read_all:
            self._close(key)
        else:
            observation.timer = asyncio.get_running_loop().call_later(self._grace_s, self._close, key)

    def _close(self, key: int) -> None:
        observation = self._open.pop(key, None)
        if observation is None or observation.finish is None:
            return
        if observation.timer is not None:
            observation.timer.cancel()
        observation.finish()


class ObserverPass:
    def __init__(self, observations: Observations) -> None:
        self._observations = observations
        self._answer = AnswerStage()
        self._active = ACTIVE_STREAMS.labels("observer")

    async def process(self, requests: AsyncIterator[ProcessingRequest]) -> AsyncGenerator[ProcessingResponse, None]:
        """Reads; never replies (Envoy does not wait for one)."""
        key = 0
        self._active.inc()
        try:
            async for message in requests:
                if message.WhichOneof("request") != "response_body":
                    continue
                if not key:
                    facts = message.metadata_context.filter_metadata.get(REQUEST_METADATA_NAMESPACE)
                    key = int(facts.fields[OBSERVE_KEY].number_value) if facts and OBSERVE_KEY in facts.fields else -1
                observation = self._observations.get(key)
                if observation is None:
                    break  # not one of ours, or already finished: nothing to read it into
                body = message.response_body
                self._answer.read_observed(observation.ex, body.body, body.end_of_stream)
                if body.end_of_stream:
                    self._observations.read(key)
                    break  # this end ends the gRPC stream too: Envoy would hold it open for its deferred close
        finally:
            if key > 0:
                self._observations.read(key)
            self._active.dec()
        return
        yield  # an async generator, as every pass is
