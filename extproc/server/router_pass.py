"""The router pass: the listener's ext_proc filter, one gRPC stream per request.

A short loop over the pipeline's stages (`extproc.pipeline`): for each phase
Envoy sends, the stages that act in it run in order against the request's
`Exchange`, then their changes go back as one ProcessingResponse. A stage may
answer at once (LocalAnswer) or raise a GatewayError, which becomes an error
in the client's own format: a whole response before the answer started, an
in-band error event and a clean end inside a stream. Per-request state lives
in the Exchange, local to this stream: nothing is shared with the upstream
pass but headers.

Once the last message Envoy will send is answered (the answer's end, or the
gateway's own reply), the request is finished and the pass ends, which ends
the stream: nothing more is read. Work that cannot change a reply (reading a
same-API stream, the finish stages' accounting and logs) runs after that
reply has left, off the request's path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from functools import partial
from time import time_ns

from envoy.service.ext_proc.v3.external_processor_pb2 import (
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.contract import OBSERVE_HEADER, REQUEST_METADATA_NAMESPACE
from extproc.errors import GatewayError, client_status
from extproc.formats import FORMATS
from extproc.formats.canonical import StreamFailure
from extproc.observe.bodies import BodyLog
from extproc.observe.logs import bind_request_id
from extproc.observe.metrics import ACTIVE_STREAMS
from extproc.pipeline import default_stages
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage, overrides
from extproc.pipeline.trace_spans import TRACED_STAGES, RequestTrace, begin, finish
from extproc.server import messages as m
from extproc.server.observer_pass import Observations
from extproc.state import GatewayState

log = logging.getLogger(__name__)


class RouterPass:
    def __init__(
        self,
        state: GatewayState,
        stages: list[Stage] | None = None,
        observations: Observations | None = None,
        worker: int = 0,
    ) -> None:
        self._state = state
        self._observations = observations if observations is not None else Observations()
        self._mark = (OBSERVE_HEADER, str(worker))  # this worker's observer reads the answers it marks
        self._active = ACTIVE_STREAMS.labels("router")
        stages = stages if stages is not None else default_stages(state.store, state.breakers)
        self._on_request_headers = [s for s in stages if overrides(s, "request_headers")]
        self._on_request_body = [s for s in stages if overrides(s, "request_body")]
        self._on_response_headers = [s for s in stages if overrides(s, "response_headers")]
        self._on_response_body = [s for s in stages if overrides(s, "response_body")]
        self._on_finish = [s for s in stages if overrides(s, "finish")]

    async def process(
        self, requests: AsyncIterator[ProcessingRequest], listener: str = "", metadata: Mapping[str, str] | None = None
    ) -> AsyncGenerator[ProcessingResponse, None]:
        ex = Exchange(self._state.snapshot, listener)
        tracing = self._state.tracing  # None unless `tracing` is configured: then no tracer call at all
        trace = begin(tracing, metadata or {}) if tracing is not None else None
        loop = asyncio.get_running_loop()  # once: in Python 3.11 each lookup is a getpid() call
        self._active.inc()
        try:
            async for message in requests:
                kind = message.WhichOneof("request")
                try:
                    if kind == "request_headers":
                        yield await self._request_headers(ex, message)
                    elif kind == "request_body":
                        yield await self._request_body(ex, message, trace)
                    elif not ex.headers:
                        # A reply Envoy made before this filter saw the request (local_ratelimit's 429,
                        # measured: its response still passes here): already in the client's format.
                        yield _continue(kind)
                    elif kind == "response_headers":
                        yield self._response_headers(ex, message)
                    elif kind == "response_body":
                        response, after_reply = self._response_body(ex, message)
                        yield response
                        if after_reply is not None:
                            # Runs once the reply has left (the server sends what this turn wrote first)
                            # and before the next message is read; never cancelled with the stream.
                            loop.call_soon(_run_after_reply, after_reply)
                    else:
                        yield ProcessingResponse()
                except GatewayError as error:
                    yield self._error(ex, kind, error)
                except Exception:
                    log.exception("router pass failed")  # the request id comes with the task (observe/logs.py)
                    yield self._error(ex, kind, GatewayError("internal", "the gateway failed on this request"))
                if ex.answered:
                    await _reply_sent()  # the client's answer goes before the finish stages' bookkeeping
                    break  # nothing more will come
        finally:
            if ex.observed:  # the stream's end may still be on its way to the observer
                self._observations.request_ended(ex.observed, partial(self._finish, ex, trace))
            else:
                self._finish(ex, trace)

    def _finish(self, ex: Exchange, trace: RequestTrace | None) -> None:
        for stage in self._on_finish if ex.headers else ():
            try:
                stage.finish(ex)
            except Exception:
                log.exception("finishing a request failed", extra={"stage": stage.name})
        if trace is not None:
            try:
                finish(trace, ex)
            except Exception:
                log.exception("ending the request's spans failed")
        self._active.dec()  # last: a stream counted out has made all its metrics

    async def _request_headers(self, ex: Exchange, message: ProcessingRequest) -> ProcessingResponse:
        ex.headers = headers = m.headers_of(message.request_headers)
        ex.header_bytes = message.request_headers.ByteSize()
        ex.request_id = headers.get("x-request-id", "")
        bind_request_id(ex.request_id)
        ex.path = headers.get(":path", "")
        if ex.snapshot.config.log_bodies:
            ex.bodies = BodyLog()
        reply = PhaseReply()
        end = message.request_headers.end_of_stream
        for stage in self._on_request_headers:
            if (answer := await stage.request_headers(ex, reply, end)) is not None:
                return self._answer(ex, answer)
        if not reply.set_headers and not reply.remove_headers:
            return m.CONTINUE_REQUEST_HEADERS
        return m.reply("request_headers", reply.set_headers, reply.remove_headers, None, reply.clear_route_cache)

    async def _request_body(
        self, ex: Exchange, message: ProcessingRequest, trace: RequestTrace | None
    ) -> ProcessingResponse:
        body = message.request_body.body
        if ex.bodies is not None:
            ex.bodies.request = body
        reply = PhaseReply()
        for stage in self._on_request_body:
            if trace is None:
                answer = await stage.request_body(ex, reply, body)
            else:
                answer = await _timed(stage, trace, ex, reply, body)
            if answer is not None:
                return self._answer(ex, answer)
        if trace is not None:
            trace.left_for_provider(ex)
        response = m.reply("request_body", reply.set_headers, reply.remove_headers, reply.body, reply.clear_route_cache)
        if reply.request_metadata is not None:
            response.dynamic_metadata.update({REQUEST_METADATA_NAMESPACE: reply.request_metadata})
        return response

    def _response_headers(self, ex: Exchange, message: ProcessingRequest) -> ProcessingResponse:
        headers = m.headers_of(message.response_headers)
        reply = PhaseReply()
        for stage in self._on_response_headers:
            stage.response_headers(ex, reply, headers)
        # No body to follow, or none asked for (the filter's default): the answer is complete. An
        # observed stream's is not: this stream stays open until Envoy ends it with the request.
        ex.answered = message.response_headers.end_of_stream or (reply.response_body_mode is None and not ex.observed)
        if ex.observed:
            reply.set_headers.append(self._mark)
        if not reply.set_headers and not reply.remove_headers and reply.response_body_mode is None:
            return m.CONTINUE_RESPONSE_HEADERS
        response = m.reply("response_headers", reply.set_headers, reply.remove_headers)
        if reply.response_body_mode is not None:
            response.mode_override.response_body_mode = reply.response_body_mode  # the other phases keep theirs
        if ex.observed:
            self._observations.watch(ex)
            response.dynamic_metadata.update({REQUEST_METADATA_NAMESPACE: reply.request_metadata})
        return response

    def _response_body(
        self, ex: Exchange, message: ProcessingRequest
    ) -> tuple[ProcessingResponse, Callable[[], None] | None]:
        body = message.response_body
        ex.answered = body.end_of_stream  # also when a stage fails on this last piece (an in-band error ends it)
        reply = PhaseReply()
        for stage in self._on_response_body:
            stage.response_body(ex, reply, body.body, body.end_of_stream)
        if ex.bodies is not None:
            ex.bodies.answer.append(body.body if reply.body is None else reply.body)
        # Taken out of the reply: the work may hold the reply, and that cycle would keep the whole
        # exchange (an agent's parsed 80 KB request) alive until the garbage collector's next pass.
        after_reply, reply.after_reply = reply.after_reply, None
        if reply.body is None and not reply.set_headers:
            return m.CONTINUE_RESPONSE_BODY, after_reply
        return m.reply("response_body", reply.set_headers, body=reply.body), after_reply

    def _answer(self, ex: Exchange, answer: LocalAnswer) -> ProcessingResponse:
        headers = [*answer.headers, *ex.limit_headers, ("x-request-id", ex.request_id)]
        return _immediate(ex, answer.status, answer.body, headers)

    def _error(self, ex: Exchange, kind: str | None, error: GatewayError) -> ProcessingResponse:
        """Inside a stream that already started: an in-band error event and a clean end.
        Before that: a whole error response in the client's format."""
        if kind == "response_body" and ex.encoder is not None:
            out = ex.encoder.encode([StreamFailure(error)]) + ex.encoder.close()
            ex.stream_ended = True
            if ex.bodies is not None:
                ex.bodies.answer.append(out)
            return m.reply("response_body", body=out)
        body = FORMATS[ex.error_format].render_error(error, ex.request_id)
        headers = [("content-type", "application/json"), ("x-request-id", ex.request_id), *error.headers]
        return _immediate(ex, client_status(error), body, headers, details=f"gateway_{error.kind}")


async def _timed(stage: Stage, trace: RequestTrace, ex: Exchange, reply: PhaseReply, body: bytes) -> LocalAnswer | None:
    """A stage of the request body, timed for its span when it is one of the traced stages."""
    if stage.name not in TRACED_STAGES:
        return await stage.request_body(ex, reply, body)
    started = time_ns()
    try:
        return await stage.request_body(ex, reply, body)
    finally:
        trace.stage(stage.name, started)


async def _reply_sent() -> None:
    """Let the event loop turn once: the server sends what was written in this turn (h2_server._write)."""
    await asyncio.sleep(0)


def _run_after_reply(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # its reply is gone: a failure here can only be logged
        log.exception("reading a message after its reply failed")


def _immediate(ex: Exchange, status: int, body: bytes, headers: m.Headers, details: str = "") -> ProcessingResponse:
    """The gateway answers itself: the answer is complete as sent."""
    ex.status, ex.answered = status, True
    if ex.bodies is not None:
        ex.bodies.answer.append(body)
    return m.immediate(status, body, headers, details)


def _continue(kind: str | None) -> ProcessingResponse:
    if kind == "response_headers":
        return m.CONTINUE_RESPONSE_HEADERS
    if kind == "response_body":
        return m.CONTINUE_RESPONSE_BODY
    return ProcessingResponse()
