"""Metrics and logs of the router pass, driven alone with ext_proc messages: a stream that ends
before its answer is `client_closed`, label values are bounded by the config, log lines carry
the request id, bodies are redacted, a reload's log level reaches this process and workers, and
every failed store operation is counted."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, HttpHeaders, ProcessingRequest
from prometheus_client import REGISTRY

from extproc.app import lifecycle as app
from extproc.app import workers
from extproc.app.google_tokens import GoogleTokens
from extproc.auth.apikeys import hash_key
from extproc.config.load import load_text
from extproc.observe import logs
from extproc.observe.bodies import MAX_LOGGED_CHARS, redact
from extproc.pipeline.endpoint import EndpointStage
from extproc.pipeline.exchange import Exchange, LocalAnswer, PhaseReply
from extproc.pipeline.stage import Stage
from extproc.server.router_pass import RouterPass
from extproc.state import GatewayState
from extproc.store import background
from extproc.store.base import StoreError
from tests.support.wait import wait_until_async

CONFIG = """
providers:
  - {name: mock, kind: mock, models: [mock-1]}
  - {name: claude, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: K, models: [claude-named]}
routes:
  - {name: alias, model: short, provider: claude, upstream_model: claude-long-name}
  - {name: claude, model: "claude-*", provider: claude}
  - {model: "*", provider: mock}
"""


def state() -> GatewayState:
    return GatewayState(load_text(CONFIG, {"K": "secret"}, Path(".")))


def run(messages: list[ProcessingRequest], stages: list[Stage] | None = None) -> None:
    async def feed() -> AsyncIterator[ProcessingRequest]:
        for message in messages:
            yield message

    async def drain() -> None:
        async for _ in RouterPass(state(), stages).process(feed()):
            pass

    asyncio.run(drain())


def headers(pairs: dict[str, str], end: bool = False) -> HttpHeaders:
    return HttpHeaders(
        headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]),
        end_of_stream=end,
    )


def chat(model: str, request_id: str = "rid-1", stream: bool = False) -> list[ProcessingRequest]:
    sent = {":method": "POST", ":path": "/v1/chat/completions", "x-request-id": request_id}
    payload = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    return [
        ProcessingRequest(request_headers=headers(sent)),
        ProcessingRequest(request_body=HttpBody(body=orjson.dumps(payload), end_of_stream=True)),
    ]


def answer_piece(data: bytes, end: bool) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=data, end_of_stream=end))


ANSWER_HEADERS = ProcessingRequest(response_headers=headers({":status": "200", "content-type": "text/event-stream"}))
STARTED = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","type":"message","role":"assistant",'
    b'"model":"claude-named","content":[],"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
)
STOPPED = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def requests(model: str, status: str, route: str = "claude", provider: str = "claude") -> float:
    labels = {"client_api": "openai", "route": route, "provider": provider, "model": model, "status": status}
    return REGISTRY.get_sample_value("gateway_requests_total", labels) or 0.0


def test_a_stream_whose_grpc_stream_ends_before_the_answer_did_is_client_closed() -> None:
    before = requests("claude-named", "client_closed"), requests("claude-named", "200")
    run([*chat("claude-named", stream=True), ANSWER_HEADERS, answer_piece(STARTED, False)])
    assert requests("claude-named", "client_closed") == before[0] + 1
    run([*chat("claude-named", stream=True), ANSWER_HEADERS, answer_piece(STARTED, False), answer_piece(STOPPED, True)])
    assert requests("claude-named", "200") == before[1] + 1
    assert requests("claude-named", "client_closed") == before[0] + 1


def test_a_request_the_client_gave_up_before_any_answer_is_client_closed_and_an_own_answer_is_not() -> None:
    before = requests("claude-named", "client_closed")
    run(chat("claude-named"))  # sent on to the provider; the stream ends with no answer
    assert requests("claude-named", "client_closed") == before + 1
    answered = requests("mock-1", "200", route="*", provider="mock")
    run(chat("mock-1"))  # the mock's answer is the gateway's own: complete as sent
    assert requests("mock-1", "200", route="*", provider="mock") == answered + 1


def test_model_labels_are_names_the_config_spells_out_or_other() -> None:
    router = state().snapshot.router
    named = ["mock-1", "claude-named", "short", "claude-long-name"]  # listed, exact route, alias, upstream name
    assert [router.model_label(name) for name in named] == named
    assert router.model_label("claude-whatever-a-client-sends") == "other"
    assert router.model_label("") == ""
    before = requests("other", "client_closed")
    run(chat("claude-whatever-a-client-sends"))
    assert requests("other", "client_closed") == before + 1


@pytest.fixture
def records() -> Iterator[queue.SimpleQueue[logging.LogRecord]]:
    """What the root logger writes, as the writer thread would get it (the request id read in place)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root.handlers[:] = [logs._Enqueue(lines)]
    root.setLevel(logging.INFO)
    yield lines
    root.handlers[:] = handlers
    root.setLevel(level)


class _Chatty(Stage):
    """A stage deep in the request path that logs without naming the request."""

    async def request_headers(self, ex: Exchange, reply: PhaseReply, end_of_stream: bool) -> LocalAnswer | None:
        logging.getLogger("extproc.somewhere").warning("something odd")
        return LocalAnswer(200, b"{}")


def test_lines_logged_while_a_request_is_handled_carry_its_request_id(
    records: queue.SimpleQueue[logging.LogRecord],
) -> None:
    run(chat("mock-1", request_id="rid-seen-by-the-client")[:1], [EndpointStage(), _Chatty()])
    run(chat("mock-1", request_id="rid-of-another")[:1], [EndpointStage(), _Chatty()])
    logging.getLogger("extproc.elsewhere").warning("outside any request")
    ids = [getattr(records.get_nowait(), "request_id", None) for _ in range(3)]
    assert ids == ["rid-seen-by-the-client", "rid-of-another", None]


def test_the_access_line_has_every_field(records: queue.SimpleQueue[logging.LogRecord]) -> None:
    run([*chat("claude-named", stream=True), ANSWER_HEADERS, answer_piece(STARTED, False)])
    line = records.get_nowait().__dict__
    expected = {
        "request_id": "rid-1",
        "client": "anonymous",
        "tenant": "anonymous",
        "labels": None,
        "client_api": "openai",
        "route": "claude",
        "provider": "claude",
        "model": "claude-named",
        "status": 499,
        "ttft_ms": None,  # no content went by
        "cache": None,
        "retries": 0,
        "dropped": None,
    }
    assert {key: line[key] for key in expected} == expected
    assert {"duration_ms", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"} <= line.keys()
    assert "request_body" not in line  # never, unless log_bodies asks


def test_the_access_line_names_the_clients_labels(records: queue.SimpleQueue[logging.LogRecord]) -> None:
    config = (
        CONFIG
        + f"""
auth: api_key
clients:
  - {{id: search-bot, key_hashes: ["{hash_key("sk-client-1")}"], labels: {{team: search, cost_center: "42"}}}}
"""
    )
    sent = {
        ":method": "POST",
        ":path": "/v1/chat/completions",
        "x-request-id": "rid-1",
        "authorization": "Bearer sk-client-1",
    }
    body = orjson.dumps({"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]})

    async def drain() -> None:
        async def feed() -> AsyncIterator[ProcessingRequest]:
            yield ProcessingRequest(request_headers=headers(sent))
            yield ProcessingRequest(request_body=HttpBody(body=body, end_of_stream=True))

        async for _ in RouterPass(GatewayState(load_text(config, {"K": "secret"}, Path(".")))).process(feed()):
            pass

    asyncio.run(drain())
    line = records.get_nowait().__dict__
    assert (line["client"], line["labels"]) == ("search-bot", {"team": "search", "cost_center": "42"})


def test_credentials_and_images_are_redacted_from_logged_bodies() -> None:
    body = orjson.dumps(
        {
            "api_key": "sk-secret-1",
            "headers": {"Authorization": "Bearer secret-2", "x-goog-api-key": "secret-3"},
            "access_token": "secret-4",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                },
                {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "QkJCQg=="}}]},
            ],
            "contents": [{"parts": [{"inlineData": {"mimeType": "image/jpeg", "data": "Q0NDQw=="}}]}],
            "images": ["data:image/webp;base64,RERERA"],
            "text": 'quoted "key": "kept" as text',
        }
    )
    logged = redact(body)
    for secret in ("sk-secret-1", "secret-2", "secret-3", "secret-4", "AAAA", "QkJCQg==", "Q0NDQw==", "RERERA"):
        assert secret not in logged
    assert '"data:image/png;base64,[4 characters redacted]"' in logged
    assert '"data":"[8 characters redacted]"' in logged
    assert '"max_tokens":5' in logged and 'quoted \\"key\\": \\"kept\\" as text' in logged
    sse = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n'
    assert redact(sse) == sse.decode()  # SSE framing is not a data: URL
    assert redact(b"x" * (MAX_LOGGED_CHARS + 10)).endswith("...[10 more characters]")


def test_a_reload_sets_the_log_level_here_and_in_each_worker() -> None:
    root = logging.getLogger()
    kept = root.level
    config = load_text("log_level: warning\n" + CONFIG, {"K": "secret"}, Path("."))
    try:
        asyncio.run(app._follow(config, [], GoogleTokens()))  # the main process, after its own swap
        assert root.level == logging.WARNING and not logs.access_enabled()
        root.setLevel(logging.INFO)
        ours, theirs = multiprocessing.Pipe()
        ours.send((1, config))
        loop = asyncio.new_event_loop()
        workers._follow(theirs, state(), loop)  # a worker, given the config
        loop.close()
        assert root.level == logging.WARNING and ours.recv() == 1
    finally:
        root.setLevel(kept)


def test_each_failed_store_operation_is_counted() -> None:
    def failed(operation: str) -> float:
        return REGISTRY.get_sample_value("gateway_store_errors_total", {"operation": operation}) or 0.0

    before = failed("cache")
    background.failed("cache", StoreError("redis went away"))
    background.failed("cache", StoreError("still away"))  # logged once, counted each time
    background.succeeded()
    assert failed("cache") == before + 2


def test_store_writes_after_the_answer_are_counted_until_done_even_when_cancelled() -> None:
    def pending() -> float:
        return REGISTRY.get_sample_value("gateway_store_pending_writes") or 0.0

    async def scenario() -> list[float]:
        before = pending()
        release, started = asyncio.Event(), asyncio.Event()

        async def slow_write() -> None:
            started.set()
            await release.wait()

        async def failing_write() -> None:
            raise StoreError("redis went away")

        background.spawn("limits", slow_write())
        background.spawn("cache", failing_write())
        background.spawn("cache", slow_write())
        seen = [pending() - before]
        assert await wait_until_async(lambda: pending() - before == 2)  # the failed one is done
        seen.append(pending() - before)
        release.set()
        assert await wait_until_async(lambda: pending() == before)
        seen.append(pending() - before)
        release.clear()
        started.clear()
        background.spawn("limits", slow_write())
        await started.wait()
        (left,) = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        left.cancel()  # a loop closing at shutdown cancels what is left
        assert await wait_until_async(lambda: pending() == before)
        return seen

    assert asyncio.run(scenario()) == [3, 2, 0]
