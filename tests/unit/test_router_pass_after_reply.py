"""A same-API stream's last chunk is read (its usage above all) even when Envoy ends the ext_proc stream
as soon as that chunk's reply reached it: Envoy resets the gRPC stream when the request is done,
which cancels the pass while it waits to read the chunk after the reply."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.config.load import load_text
from extproc.formats.canonical import Usage
from extproc.pipeline import default_stages
from extproc.pipeline.exchange import Exchange
from extproc.pipeline.stage import Stage
from extproc.server.router_pass import RouterPass
from extproc.state import GatewayState

CONFIG = """
providers:
  - {name: openai, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}
routes:
  - {model: "*", provider: openai}
extproc: {observe_streams: false}  # the router pass reads the stream's chunks itself
"""


def headers(pairs: dict[str, str]) -> HttpHeaders:
    return HttpHeaders(headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]))


def chunk(body: dict) -> bytes:
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Recorder(Stage):
    name = "recorder"

    def __init__(self) -> None:
        self.usage: list[Usage | None] = []

    def finish(self, ex: Exchange) -> None:
        self.usage.append(ex.usage)


def test_the_last_chunk_is_read_when_envoy_resets_the_stream_right_after_its_reply() -> None:
    state = GatewayState(load_text(CONFIG, {"K": "k"}, Path(".")))
    recorder = Recorder()
    stages = [*default_stages(state.store, state.breakers), recorder]
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    answer = [
        chunk(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
            }
        ),
        chunk({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": usage})
        + b"data: [DONE]\n\n",
    ]
    request = {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    messages = [
        ProcessingRequest(request_headers=headers({":method": "POST", ":path": "/v1/chat/completions"})),
        ProcessingRequest(request_body=HttpBody(body=json.dumps(request).encode(), end_of_stream=True)),
        ProcessingRequest(response_headers=headers({":status": "200", "content-type": "text/event-stream"})),
        ProcessingRequest(response_body=HttpBody(body=answer[0])),
        ProcessingRequest(response_body=HttpBody(body=answer[1], end_of_stream=True)),
    ]

    async def inbox() -> AsyncIterator[ProcessingRequest]:
        for message in messages:
            yield message
        await asyncio.Event().wait()  # Envoy keeps its side open

    async def serve() -> None:
        """As server/h2_server.py does: the stream's task, cancelled when Envoy resets the stream."""
        task = asyncio.current_task()
        assert task is not None
        responses = RouterPass(state, stages).process(inbox(), "main")
        received: list[ProcessingResponse] = []
        try:
            async for response in responses:
                received.append(response)
                if len(received) == len(messages):  # the last chunk's reply went: Envoy resets the stream
                    asyncio.get_running_loop().call_soon(task.cancel)
        finally:
            await responses.aclose()

    async def run() -> None:
        task = asyncio.ensure_future(serve())
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert recorder.usage == [Usage(input_tokens=7, output_tokens=5)]
