"""Concurrent-stream slots through the router pass, with the messages Envoy sends: streams whose client
sent one x-request-id each hold a slot of their own.

Envoy as the gateway renders it replaces the x-request-id of every outside client, so the real Envoy
cannot carry this attack today (tests/integration/test_limit_accounting.py checks the slots there);
an Envoy that keeps a client's id (an internal address, `preserve_external_request_id`) would pass it on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.config.load import load_text
from extproc.server.router_pass import RouterPass
from extproc.state import GatewayState
from tests.support.wait import wait_until_async

STREAMS = 2
CONFIG = f"""
providers:
  - {{name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}}
  - {{name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K}}
routes:
  - {{model: "claude-*", provider: claude}}
  - {{model: "*", provider: openai}}
limits:
  rules:
    - {{name: streams, key: [client], concurrent_streams: {STREAMS}}}
"""
OPENAI = ("/v1/chat/completions", {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "x"}]})
ANTHROPIC = (
    "/v1/messages",
    {"model": "claude-x", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "x"}]},
)


def messages(path: str, payload: dict, request_id: str) -> list[ProcessingRequest]:
    pairs = {":method": "POST", ":path": path, "content-type": "application/json", "x-request-id": request_id}
    values = [HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
    return [
        ProcessingRequest(request_headers=HttpHeaders(headers=HeaderMap(headers=values))),
        ProcessingRequest(request_body=HttpBody(body=orjson.dumps(payload), end_of_stream=True)),
    ]


class Stream:
    """One request's gRPC stream, held open after its body (the provider has not answered yet)."""

    def __init__(self, state: GatewayState, request: list[ProcessingRequest]) -> None:
        self.ended = asyncio.Event()
        self.replies: list[ProcessingResponse] = []
        self._request = request
        self.task = asyncio.ensure_future(self._serve(RouterPass(state)))

    async def _feed(self) -> AsyncIterator[ProcessingRequest]:
        for message in self._request:
            yield message
        await self.ended.wait()  # Envoy closes the stream: the client hung up

    async def _serve(self, router: RouterPass) -> None:
        async for reply in router.process(self._feed()):
            self.replies.append(reply)

    async def answered_twice(self) -> list[ProcessingResponse]:
        assert await wait_until_async(lambda: len(self.replies) >= 2 or self.task.done())
        return self.replies


@pytest.mark.parametrize(("path", "payload"), [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
def test_streams_that_share_a_request_id_are_refused_beyond_the_limit_in_the_clients_format(
    path: str, payload: dict
) -> None:
    state = GatewayState(load_text(CONFIG, {"K": "secret"}, Path(".")))

    async def scenario() -> tuple[list[list[ProcessingResponse]], list[ProcessingResponse]]:
        held = [Stream(state, messages(path, payload, "same-id")) for _ in range(STREAMS)]
        passed = [await stream.answered_twice() for stream in held]
        refused = Stream(state, messages(path, payload, "same-id"))
        answer = await refused.answered_twice()
        for stream in [*held, refused]:
            stream.ended.set()
            await stream.task
        return passed, answer

    passed, answer = asyncio.run(scenario())
    for replies in passed:  # each went on to its provider
        assert replies[1].WhichOneof("response") == "request_body"
    immediate = answer[-1].immediate_response
    assert immediate.status.code == 429
    error = orjson.loads(immediate.body)
    if path == OPENAI[0]:
        assert error["error"]["code"] == "rate_limit_exceeded"
        assert "same-id" in error["error"]["message"]
    else:
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
        assert error["request_id"] == "same-id"
    assert f"at most {STREAMS} streams" in orjson.dumps(error).decode()
    assert ("x-request-id", "same-id") in [
        (h.header.key, h.header.raw_value.decode()) for h in immediate.headers.set_headers
    ]
