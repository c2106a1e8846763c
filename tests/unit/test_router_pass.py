"""The router pass driven alone with ext_proc messages, no Envoy: the phases a request goes through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, HttpHeaders, ProcessingRequest

from extproc.config.load import load_text
from extproc.formats import openai as openai_format
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.server.router_pass import RouterPass
from extproc.state import GatewayState
from tests.support.metrics import pending_writes_here
from tests.support.wait import wait_until_async

CONFIG = """
providers:
  - {name: mock, kind: mock}
  - {name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}
routes:
  - {model: "claude-*", provider: claude}
  - {model: "*", provider: mock}
"""


def headers(pairs: dict[str, str], end: bool = False) -> HttpHeaders:
    values = [HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
    return HttpHeaders(headers=HeaderMap(headers=values), end_of_stream=end)


def run(messages: list[ProcessingRequest]) -> list:
    state = GatewayState(load_text(CONFIG, {"K": "secret"}, Path(".")))

    async def feed() -> AsyncIterator[ProcessingRequest]:
        for message in messages:
            yield message

    async def collect() -> list:
        return [response async for response in RouterPass(state).process(feed())]

    return asyncio.run(collect())


REQUEST_HEADERS = ProcessingRequest(
    request_headers=headers(
        {":method": "POST", ":path": "/v1/chat/completions", "x-request-id": "rid-1", "authorization": "Bearer c"}
    )
)


def body(payload: dict) -> ProcessingRequest:
    return ProcessingRequest(request_body=HttpBody(body=orjson.dumps(payload), end_of_stream=True))


def test_internal_and_envoy_steering_headers_are_removed_at_once() -> None:
    sent = {
        ":method": "POST",
        ":path": "/v1/chat/completions",
        "x-gw-cluster": "evil",
        "x-envoy-max-retries": "9",
        "x-envoy-upstream-rq-timeout-ms": "1",
        "content-type": "application/json",
    }
    (response,) = run([ProcessingRequest(request_headers=headers(sent))])
    removed = set(response.request_headers.response.header_mutation.remove_headers)
    assert removed == {"x-gw-cluster", "x-envoy-max-retries", "x-envoy-upstream-rq-timeout-ms"}


def test_only_allowed_client_headers_go_on_to_the_provider() -> None:
    sent = {
        ":method": "POST",
        ":path": "/v1/chat/completions",
        "x-request-id": "rid-2",
        "content-type": "application/json",
        "authorization": "Bearer client-key",
        "cookie": "session=1",
        "openai-organization": "org-x",
        "x-stainless-os": "Linux",
        "anthropic-version": "2023-06-01",
        "x-forwarded-for": "203.0.113.9",
    }
    payload = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
    _, routed = run([ProcessingRequest(request_headers=headers(sent)), body(payload)])
    removed = set(routed.request_body.response.header_mutation.remove_headers)
    assert removed == {
        "authorization",
        "cookie",
        "openai-organization",
        "x-stainless-os",
        "anthropic-version",  # an OpenAI client's: the Anthropic provider gets the gateway's own
        "x-forwarded-for",
    }


def test_request_body_is_rewritten_for_the_provider_and_routed() -> None:
    payload = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
    _, routed = run([REQUEST_HEADERS, body(payload)])
    common = routed.request_body.response
    assert common.clear_route_cache
    set_headers = {h.header.key: h.header.raw_value.decode() for h in common.header_mutation.set_headers}
    assert set_headers["x-gw-cluster"] == "provider_claude"
    sent = orjson.loads(common.body_mutation.body)
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert int(set_headers["content-length"]) == len(common.body_mutation.body)


STREAM_PAYLOAD = {"model": "claude-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
STREAM_HEADERS = ProcessingRequest(
    response_headers=headers({":status": "200", "content-type": "text/event-stream", "x-gw-provider": "claude"})
)


def chunk(data: bytes, end: bool) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=data, end_of_stream=end))


def test_a_malformed_provider_event_becomes_an_in_band_error_before_one_clean_end() -> None:
    responses = run(
        [
            REQUEST_HEADERS,
            body(STREAM_PAYLOAD),
            STREAM_HEADERS,
            chunk(b"event: message_start\ndata: {\n\n", False),
            chunk(b"event: ping\ndata: {}\n\n", True),
        ]
    )
    out = b"".join(r.response_body.response.body_mutation.body for r in responses[3:])
    assert out.index(b'"error"') < out.index(b"data: [DONE]")
    assert out.count(b"data: [DONE]") == 1


def test_a_gateway_failure_inside_a_stream_ends_it_at_once_and_swallows_the_rest(monkeypatch) -> None:
    from extproc.formats import anthropic

    def explode(self, data: bytes) -> list:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(anthropic.StreamDecoder, "feed", explode)
    responses = run([REQUEST_HEADERS, body(STREAM_PAYLOAD), STREAM_HEADERS, chunk(b"x", False), chunk(b"y", True)])
    first = responses[3].response_body.response.body_mutation.body
    assert b'"error"' in first and first.rstrip().endswith(b"data: [DONE]")
    assert responses[4].response_body.response.body_mutation.body == b""


def test_unknown_model_answers_immediately_in_openai_format() -> None:
    state_config = CONFIG.replace('  - {model: "*", provider: mock}\n', "")
    state = GatewayState(load_text(state_config, {"K": "s"}, Path(".")))

    async def feed() -> AsyncIterator[ProcessingRequest]:
        yield REQUEST_HEADERS
        yield body({"model": "nope", "messages": [{"role": "user", "content": "x"}]})

    async def collect() -> list:
        return [r async for r in RouterPass(state).process(feed())]

    _, answer = asyncio.run(collect())
    assert answer.immediate_response.status.code == 404
    error = orjson.loads(answer.immediate_response.body)["error"]
    assert error["code"] == "model_not_found"
    assert "rid-1" in error["message"]
    assert openai_format.parse_error(404, answer.immediate_response.body).kind == "not_found"


def test_upstream_pass_errors_speak_the_clients_api() -> None:
    from envoy.config.core.v3.base_pb2 import Metadata
    from google.protobuf.struct_pb2 import Struct

    from extproc.contract import CLIENT_PATH_KEY, POOL_KEY, REQUEST_METADATA_NAMESPACE, STREAM_KEY
    from extproc.server.upstream_pass import UpstreamPass

    state = GatewayState(load_text(CONFIG, {"K": "secret"}, Path(".")))
    facts = Struct()
    facts.update({POOL_KEY: "some-pool", CLIENT_PATH_KEY: "/v1/messages", STREAM_KEY: False})
    message = ProcessingRequest(
        request_headers=headers({":path": "/v1/messages", "x-request-id": "rid-9"}),
        metadata_context=Metadata(filter_metadata={REQUEST_METADATA_NAMESPACE: facts}),
    )  # no endpoint metadata: the provider cannot be known

    async def feed() -> AsyncIterator[ProcessingRequest]:
        yield message

    async def collect() -> list:
        return [r async for r in UpstreamPass(state).process(feed())]

    (answer,) = asyncio.run(collect())
    body = orjson.loads(answer.immediate_response.body)
    assert body["type"] == "error" and body["request_id"] == "rid-9"  # Anthropic's error shape
    assert answer.immediate_response.status.code == 503


def test_the_pass_stops_reading_once_its_answer_is_given() -> None:
    """A read still pending when Envoy resets the stream leaks in grpc.aio (server/stream_end.py)."""
    state = GatewayState(load_text(CONFIG, {"K": "s"}, Path(".")))
    read: list[str] = []

    async def feed() -> AsyncIterator[ProcessingRequest]:
        for message in (REQUEST_HEADERS, body({"model": "mock-1", "messages": [{"role": "user", "content": "x"}]})):
            read.append(message.WhichOneof("request"))
            yield message
        read.append("read past the answer")
        yield ProcessingRequest()

    async def collect() -> list:
        return [r async for r in RouterPass(state).process(feed())]

    _, answer = asyncio.run(collect())
    assert answer.immediate_response.status.code == 200  # the mock answered
    assert read == ["request_headers", "request_body"]


def test_a_stream_refused_by_its_request_limit_gives_back_the_stream_slot_asked_for_beside_it() -> None:
    config = """
providers: [{name: mock, kind: mock}]
routes: [{model: "*", provider: mock}]
limits:
  rules:
    - {name: once, key: [], requests: 1, window_s: 3600}
    - {name: streams, key: [], concurrent_streams: 1}
"""
    state = GatewayState(load_text(config, {}, Path(".")))
    stream_request = {"model": "mock-1", "stream": True, "messages": [{"role": "user", "content": "x"}]}

    async def one(request_id: str) -> int:
        async def feed() -> AsyncIterator[ProcessingRequest]:
            yield ProcessingRequest(
                request_headers=headers(
                    {":method": "POST", ":path": "/v1/chat/completions", "x-request-id": request_id}
                )
            )
            yield body(stream_request)

        answers = [r async for r in RouterPass(state).process(feed())]
        return answers[-1].immediate_response.status.code

    async def scenario() -> tuple[int, int, bool]:
        before = pending_writes_here()
        first, second = await one("r1"), await one("r2")  # the second is over the request limit
        assert await wait_until_async(lambda: pending_writes_here() == before)  # the releases run in the background
        return first, second, await state.store.acquire("streams/streams", "someone-else", 1, 60)

    first, second, slot_free = asyncio.run(scenario())
    assert (first, second) == (200, 429)
    assert slot_free  # neither request kept the only slot


class _Recorder(Stage):
    """Records when its deferred read and its finish run, against when each reply left."""

    name = "recorder"

    def __init__(self, events: list[str]) -> None:
        self.events = events

    async def request_headers(self, ex: Exchange, reply: PhaseReply, end_of_stream: bool) -> LocalAnswer | None:
        ex.headers = {"x": "y"}  # a request seen: finish runs
        return None

    def response_body(self, ex: Exchange, reply: PhaseReply, chunk: bytes, end_of_stream: bool) -> None:
        reply.after_reply = lambda: self.events.append(f"read {chunk.decode()}")

    def finish(self, ex: Exchange) -> None:
        self.events.append("finish")


def _answer_chunks(events: list[str]) -> None:
    chunks = [
        ProcessingRequest(response_body=HttpBody(body=b"one")),
        ProcessingRequest(response_body=HttpBody(body=b"two", end_of_stream=True)),
    ]
    state = GatewayState(load_text(CONFIG, {"K": "secret"}, Path(".")))
    stages = [_Recorder(events)]

    async def feed() -> AsyncIterator[ProcessingRequest]:
        yield REQUEST_HEADERS
        for chunk in chunks:
            yield chunk

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        replies = 0
        async for _ in RouterPass(state, stages).process(feed()):
            replies += 1
            # What the HTTP/2 server does with a reply: write it at the end of this turn of the loop.
            loop.call_soon(events.append, f"sent reply {replies}")

    asyncio.run(serve())


def test_a_chunk_read_that_cannot_change_its_reply_runs_after_the_reply_left() -> None:
    events: list[str] = []
    _answer_chunks(events)
    assert events.index("sent reply 2") < events.index("read one") < events.index("sent reply 3")
    assert events.index("sent reply 3") < events.index("read two")


def test_the_finish_stages_run_after_the_last_reply_left() -> None:
    events: list[str] = []
    _answer_chunks(events)
    assert events.index("sent reply 3") < events.index("finish")
    assert events.index("read two") < events.index("finish")  # the last chunk's usage is known to finish
