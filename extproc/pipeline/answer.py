"""Stage: the provider's answer in the client's format.

Errors are small and rare: they are always read, to map them (or the
provider's refusal of our key) into the client's format. A translated stream
is re-encoded chunk by chunk; a whole answer is translated once buffered. A
same-API answer passes through untouched, but it is still read: its usage
counts against token limits and a complete answer can be cached. A same-API
answer cut short (not JSON) becomes a 502 instead of a truncated 200.
"""

from __future__ import annotations

import itertools
import logging
from functools import partial

import orjson

from extproc.contract import ATTEMPT_COUNT_HEADER, DROPPED_HEADER, OBSERVE_KEY, PROVIDER_HEADER
from extproc.errors import GatewayError, client_status, kind_for_status
from extproc.formats import FORMATS, PROVIDER_APIS
from extproc.formats.assemble import StreamAssembler
from extproc.formats.bedrock.errors import parse_http_error
from extproc.formats.canonical import ChatRequest, EmbeddingRequest, StreamFailure, Usage
from extproc.formats.client_answer import render_answer
from extproc.formats.shared_wire import CONTENT_TYPE_JSON
from extproc.formats.sse import LineGate, overflow_message
from extproc.formats.token_count import COUNT_ANSWERS, render_count
from extproc.observe.logs import monotonic
from extproc.observe.metrics import FAILOVERS
from extproc.pipeline.exchange import BUFFERED, STREAMED, Exchange, PhaseReply
from extproc.pipeline.spend import cost_header, request_cost
from extproc.pipeline.stage import Stage
from extproc.provider_kinds import PASSED_THROUGH
from extproc.providers import kind_of, reframer, serves, wire_format
from extproc.providers.betas import left_out_names
from extproc.providers.rendering import client_betas, dropped_for

log = logging.getLogger(__name__)
_observations = itertools.count(1)  # keys of the streams the observer reads, unique in this process
_UNSENT = PhaseReply()  # the reply an observed chunk gets: none (a same-API stream's reading writes nothing to it)


class AnswerStage(Stage):
    name = "answer"

    def response_headers(self, ex: Exchange, reply: PhaseReply, headers: dict[str, str]) -> None:
        status = int(headers.get(":status", "0") or 0)
        ex.status = ex.provider_status = status
        if attempts := headers.get(ATTEMPT_COUNT_HEADER):
            ex.attempts = int(attempts)
        if ex.target is not None and ex.target.pooled:
            _answered_by(ex, headers)
        endpoint, provider = ex.endpoint, ex.provider
        if ex.dropped:
            reply.set_headers.append((DROPPED_HEADER, dropped_header(ex.dropped)))
        if provider is not None and (counted := kind_of(provider).input_tokens_header):
            ex.counted_input = _whole(headers.get(counted))
        if status >= 400:
            ex.error_body = True
            ex.error_type = headers.get("x-amzn-errortype", "")
            reply.response_body_mode = BUFFERED
            return
        if endpoint is None or provider is None:
            return
        if endpoint.operation == "count_tokens":  # a count: the provider's own, or Gemini's to translate
            if not ex.passthrough:
                reply.response_body_mode = BUFFERED
            return
        max_line = ex.snapshot.config.extproc.max_stream_line_bytes
        if ex.passthrough and not ex.stream_from_whole:
            if ex.stream:  # read as it goes by, never changed (only held back to whole lines)
                ex.reframe = reframer(provider, endpoint.format, ex.provider_model, max_line)
                if (
                    ex.reframe is None
                    and endpoint.sse
                    and "content-length" not in headers
                    and ex.snapshot.config.extproc.observe_streams
                ):
                    # Written as it is generated: Envoy sends each chunk on as it comes and the observer
                    # reads it beside, no reply per chunk. A stream of announced length is already whole:
                    # the observer's own gRPC stream would cost more than the one reply it saves.
                    ex.decoder = FORMATS[endpoint.format].stream_decoder(max_line)
                    ex.assembler = StreamAssembler()
                    ex.observed = next(_observations)  # the router pass marks it for its worker's observer
                    reply.request_metadata = {OBSERVE_KEY: ex.observed}
                    return
                if ex.reframe is not None:  # the client's own SSE, made from the provider's frames
                    reply.set_headers.append(("content-type", FORMATS[endpoint.format].stream_content_type(endpoint)))
                    reply.remove_headers.append("content-length")
                ex.decoder = FORMATS[endpoint.format].stream_decoder(max_line)
                ex.assembler = StreamAssembler()
                # Gemini's JSON array (no alt=sse) is bounded by its decoder alone; reframed SSE is
                # written in whole events, each frame bounded by the reframer
                if endpoint.sse and ex.reframe is None:
                    ex.line_gate = LineGate(max_line)
                reply.response_body_mode = STREAMED
            else:
                reply.response_body_mode = BUFFERED
            return
        client = FORMATS[endpoint.format]
        if ex.stream_from_whole:
            reply.set_headers.append(("content-type", client.stream_content_type(endpoint)))
            reply.response_body_mode = BUFFERED
        elif ex.stream:
            assert isinstance(ex.request, ChatRequest)
            ex.decoder = PROVIDER_APIS[wire_format(provider, endpoint.format, ex.provider_model)].stream_decoder(
                max_line
            )
            ex.encoder = client.stream_encoder(ex.request, endpoint)
            ex.assembler = StreamAssembler()
            reply.set_headers.append(("content-type", client.stream_content_type(endpoint)))
            reply.remove_headers.append("content-length")
            reply.response_body_mode = STREAMED
        else:
            reply.response_body_mode = BUFFERED

    def response_body(self, ex: Exchange, reply: PhaseReply, chunk: bytes, end_of_stream: bool) -> None:
        if ex.error_body:
            self._translate_error(ex, reply, chunk)
        elif ex.stream_ended:
            reply.body = b""  # the client already got its in-band error and the end
        elif ex.decoder is not None and ex.assembler is not None and ex.encoder is None:
            # A same-API stream goes on unchanged: it is read for usage once the chunk has been let go.
            if ex.reframe is not None:
                chunk = ex.reframe.feed(chunk) + (ex.reframe.close() if end_of_stream else b"")
                reply.body = chunk
                if ex.reframe.failed:  # its in-band error was the last event: nothing more is read
                    ex.stream_ended = True
            if ex.line_gate is not None:
                reply.body = ex.line_gate.let_through(chunk, end_of_stream)
                if ex.line_gate.overflow:
                    self._end_passthrough_stream(ex, reply, reply.body or b"", ex.line_gate.at_event_end)
            reply.after_reply = partial(self._read_stream_chunk, ex, reply, chunk, end_of_stream, ex.assembler)
        elif ex.decoder is not None and ex.assembler is not None:
            self._stream_chunk(ex, reply, chunk, end_of_stream, ex.assembler)
        elif ex.endpoint is not None and ex.endpoint.operation == "count_tokens":
            self._translate_count(ex, reply, chunk)
        elif ex.passthrough and not ex.stream_from_whole:
            self._read_answer(ex, reply, chunk)
        else:
            self._translate_answer(ex, reply, chunk)

    def read_observed(self, ex: Exchange, chunk: bytes, end_of_stream: bool) -> None:
        """A piece of a same-API stream the observer read (Envoy sent it on without waiting)."""
        ex.answered = end_of_stream
        if ex.bodies is not None:  # log_bodies: the client got it as it was
            ex.bodies.answer.append(chunk)
        if ex.assembler is not None:
            self._read_stream_chunk(ex, _UNSENT, chunk, end_of_stream, ex.assembler)

    def _end_passthrough_stream(self, ex: Exchange, reply: PhaseReply, before: bytes, at_event_end: bool) -> None:
        """A line over the bound: never sent (`before`: the whole lines that came before it in this
        chunk); the client's stream ends with an in-band error in its own format (the provider's, as
        the stream is passed through) instead."""
        endpoint, request = ex.endpoint, ex.request
        assert endpoint is not None and isinstance(request, ChatRequest)
        error = GatewayError("provider_error", overflow_message(ex.snapshot.config.extproc.max_stream_line_bytes))
        encoder = FORMATS[endpoint.format].stream_encoder(request, endpoint)
        # A blank line first if the client holds part of an event: it must not run into the error's.
        separator = b"" if at_event_end else b"\n"
        reply.body = before + separator + encoder.encode([StreamFailure(error)]) + encoder.close()
        ex.stream_ended = True

    def _read_stream_chunk(
        self, ex: Exchange, reply: PhaseReply, chunk: bytes, end_of_stream: bool, assembler: StreamAssembler
    ) -> None:
        try:  # reading a same-API stream must never break it
            self._stream_chunk(ex, reply, chunk, end_of_stream, assembler)
        except Exception:
            log.warning("could not read a passed-through stream", exc_info=True)
            ex.decoder = ex.assembler = None

    def _stream_chunk(
        self, ex: Exchange, reply: PhaseReply, chunk: bytes, end_of_stream: bool, assembler: StreamAssembler
    ) -> None:
        assert ex.decoder is not None
        events = ex.decoder.feed(chunk) if chunk else []
        assembler.add(events)
        if not ex.first_output and assembler.output_chars:
            ex.first_output = monotonic()
        closing = []
        if end_of_stream:
            closing = ex.decoder.close()
            assembler.add(closing)
            ex.usage = assembler.usage
            if assembler.complete:
                ex.answer = assembler.response()
        if ex.encoder is not None:  # translated; a same-API stream goes on unchanged
            out = ex.encoder.encode(events) if events else b""
            if end_of_stream:
                out += ex.encoder.encode(closing) + ex.encoder.close()
            reply.body = out

    def _read_answer(self, ex: Exchange, reply: PhaseReply, body: bytes) -> None:
        """A same-API answer: its usage and canonical form, and a 502 when it is not JSON at all."""
        endpoint, request = ex.endpoint, ex.request
        assert endpoint is not None and request is not None
        upstream = FORMATS[endpoint.format]  # the provider speaks the client's API
        try:
            if isinstance(request, EmbeddingRequest):
                ex.answer = upstream.parse_embedding_response(body, ex.model)
            else:
                ex.answer = upstream.parse_response(body)
        except GatewayError:
            if _looks_like_json(body):
                return  # a shape the gateway does not know: the client gets it as the provider sent it
            error = GatewayError("provider_error", "the provider's answer was cut short (not valid JSON)")
            self._send_error(ex, reply, error)
            return
        ex.usage = ex.answer.usage
        reply.set_headers.append(cost_header(request_cost(ex)))

    def _translate_answer(self, ex: Exchange, reply: PhaseReply, body: bytes) -> None:
        endpoint, provider, request = ex.endpoint, ex.provider, ex.request
        assert endpoint is not None and provider is not None and request is not None
        upstream = PROVIDER_APIS[wire_format(provider, endpoint.format, ex.provider_model)]
        client = FORMATS[endpoint.format]
        if isinstance(request, EmbeddingRequest):
            embedding = upstream.parse_embedding_response(body, ex.model)
            if ex.counted_input is not None:  # the provider's own count, where its body has none
                embedding.usage = Usage(input_tokens=ex.counted_input)
            out, content_type = client.render_embedding_response(embedding, request, endpoint), CONTENT_TYPE_JSON
            ex.answer, ex.usage = embedding, embedding.usage
        else:
            response = upstream.parse_response(body)
            out, content_type = render_answer(client, endpoint, request, response, ex.stream_from_whole)
            ex.answer, ex.usage = response, response.usage
        reply.body = out
        reply.set_headers += [
            ("content-length", str(len(out))),
            ("content-type", content_type),
            cost_header(request_cost(ex)),
        ]

    def _translate_count(self, ex: Exchange, reply: PhaseReply, body: bytes) -> None:
        """The provider's count (Gemini's countTokens, Bedrock's CountTokens) as the client's."""
        endpoint, provider = ex.endpoint, ex.provider
        assert endpoint is not None and provider is not None
        wire = wire_format(provider, endpoint.format, ex.provider_model)
        out = render_count(endpoint.format, COUNT_ANSWERS[wire](body))
        reply.body = out
        reply.set_headers += [("content-length", str(len(out))), ("content-type", CONTENT_TYPE_JSON)]

    def _translate_error(self, ex: Exchange, reply: PhaseReply, body: bytes) -> None:
        status = ex.provider_status
        provider, endpoint = ex.provider, ex.endpoint
        if provider is not None and endpoint is not None and _looks_like_json(body):
            wire = wire_format(provider, endpoint.format, ex.provider_model)
            if kind_of(provider).aws_wire:  # AWS's error JSON, named by its header
                error = parse_http_error(status, body, ex.error_type or None)
            else:
                error = PROVIDER_APIS[wire].parse_error(status, body)
            if ex.passthrough and error.kind != "provider_auth" and wire not in PASSED_THROUGH:
                return  # already in the client's own format
        else:
            error = _envoy_error(status, body)
        self._send_error(ex, reply, error)

    def _send_error(self, ex: Exchange, reply: PhaseReply, error: GatewayError) -> None:
        ex.status = client_status(error)
        out = FORMATS[ex.error_format].render_error(error, ex.request_id)
        reply.body = out
        reply.set_headers += [
            (":status", str(ex.status)),
            ("content-type", CONTENT_TYPE_JSON),
            ("content-length", str(len(out))),
        ]


MAX_NAMED_DROPS = 32


def dropped_header(dropped: list[str]) -> str:
    """The features a provider lacked, for x-gateway-dropped-features: at most 32 names (a request
    may carry any number of unknown blocks), then how many more."""
    if len(dropped) <= MAX_NAMED_DROPS:
        return ",".join(dropped)
    return ",".join(dropped[:MAX_NAMED_DROPS]) + f",+{len(dropped) - MAX_NAMED_DROPS}-more"


def _answered_by(ex: Exchange, headers: dict[str, str]) -> None:
    """A pool's answer: which provider gave it decides how it is read (Envoy names it from the
    endpoint's metadata). An answer Envoy made itself (all providers failed) names none."""
    provider = ex.snapshot.config.provider(headers.get(PROVIDER_HEADER, ""))
    endpoint = ex.endpoint
    if provider is None or endpoint is None:
        return
    ex.answered_by = provider
    ex.provider_model = ex.target.model_for(provider.name, ex.model) if ex.target is not None else ex.model
    if ex.target is not None and provider is not ex.target.provider:
        FAILOVERS.labels(ex.target.route, provider.name).inc()
    if isinstance(ex.request, ChatRequest):
        betas = client_betas(endpoint.format, ex.headers)
        ex.dropped = dropped_for(ex.request, endpoint.format, provider, ex.provider_model)
        ex.dropped += left_out_names(provider, ex.provider_model, betas)
    ex.passthrough = serves(provider, endpoint.format, ex.provider_model)
    ex.stream_from_whole = ex.stream and not provider.capabilities.streaming


def _whole(value: str | None) -> int | None:
    """A count from a header: None when absent or not a whole number."""
    return int(value) if value is not None and value.isdigit() and len(value) <= 12 else None


def _looks_like_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


_RESET_BEFORE_HEADERS = "upstream connect error or disconnect/reset before headers."


def _envoy_error(status: int, body: bytes) -> GatewayError:
    """Envoy's own replies (provider unreachable, reset, garbage, too slow; a body over its buffer)
    in the gateway's words; Envoy's reason, when it gives one, in brackets."""
    text = body.decode("utf-8", "replace").strip()[:300]
    if text.startswith(_RESET_BEFORE_HEADERS):
        reason = text.rpartition("reset reason: ")[2] or "reset"
        if status == 502:  # Envoy's UPE: what came back was no HTTP answer
            return GatewayError("provider_error", f"the provider's answer was not valid HTTP ({reason})")
        what = "closed the connection before answering" if "termination" in reason else "could not be reached"
        return GatewayError("unavailable", f"the provider {what} ({reason})", code="provider_unavailable")
    if status == 503:
        return GatewayError("unavailable", f"the provider is unreachable ({text})", code="provider_unavailable")
    if status == 504:
        return GatewayError("timeout", "the provider did not answer in time", code="provider_timeout")
    if status == 413 and text == "Payload Too Large":  # Envoy's buffer (envoy.max_request_bytes)
        return GatewayError("request_too_large", "the request body is larger than the gateway accepts")
    kind = kind_for_status(status)
    return GatewayError(kind, text or f"upstream error {status}", status=status if kind != "provider_auth" else 0)
