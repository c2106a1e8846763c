"""What a request is charged, through the real Envoy with the official SDKs, on both stores.

Token reservations stay within [0, the bucket's size] whatever the client's
max_tokens says; a settle charges the provider's own count and never gives
back more than was reserved; a client that hangs up before the answer starts
pays for its prompt; and streams that send one x-request-id each hold a slot.

Each test reads what a bucket holds from the remaining-tokens header of a
follow-up request (on Redis, once the bucket itself shows the charge: settles
reach it a few milliseconds after the request ended). The follow-up's own
reservation is learnt from the same request made by a client whose bucket is
untouched. Buckets are keyed by client and model, so each test has its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import redis as redis_client

from tests.conftest import PROVIDER_ENV, standard_config
from tests.fakes.base import Reply, json_reply
from tests.fakes.providers import FakeAnthropic, FakeGemini, FakeOpenAI
from tests.support.clients import keyed_clients
from tests.support.metrics import metric_sum
from tests.support.redis_server import RedisServer
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until, wait_until_async

pytestmark = pytest.mark.integration

TOKENS = 100_000  # each client's budget per model; the window is long enough that nothing refills in a test
STREAMS = 2  # each client's concurrent streams
PROBES = [f"probe-{i}" for i in range(12)]  # fresh buckets, to learn what a request reserves
KEYS, CLIENTS = keyed_clients({name: "acme" for name in ("alice", "bob", "carol", *PROBES)})
PATIENT_S = 60.0  # a client that waits longer than any test runs


@dataclass
class Gateway:
    stack: GatewayStack
    redis: redis_client.Redis | None  # the shared store, read directly; None: the embedded one
    probes: Iterator[str]

    def finished(self) -> float:
        """Requests the gateway has finished (their limits settled or on their way to the store)."""
        return metric_sum(self.stack, "gateway_requests_total")

    def stored_level(self, client: str, model: str) -> float | None:
        """What the shared store's bucket holds now, before refilling (None: a full bucket)."""
        assert self.redis is not None
        raw = self.redis.hget(f"gw:b:tokens/client={client}/model={model}/tokens", "t")
        return None if raw is None else float(raw)


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    fake_gemini: FakeGemini,
) -> Iterator[Gateway]:
    workdir = Path(tmp_path_factory.mktemp(f"accounting-{request.param}"))
    config = standard_config(fake_openai.base_url, fake_anthropic.base_url, fake_gemini.base_url)
    config["clients"] = CLIENTS
    config["limits"] = {
        "rules": [
            {
                "name": "tokens",
                "key": ["client", "model"],
                "match": {"models": ["gpt-tok-*"]},
                "tokens": TOKENS,
                "window_s": 3_600_000,
            },
            {
                "name": "streams",
                "key": ["client"],
                "match": {"models": ["gpt-streams-*", "claude-streams-*"]},
                "concurrent_streams": STREAMS,
            },
        ]
    }
    with contextlib.ExitStack() as cleanup:
        store: redis_client.Redis | None = None
        if request.param == "redis":
            server = cleanup.enter_context(RedisServer(workdir / "redis"))
            config["store"] = {"backend": "redis", "redis": {"url": server.url}}
            store = redis_client.Redis.from_url(server.url)
            cleanup.callback(store.close)
        stack = GatewayStack(workdir, config, PROVIDER_ENV).start()
        cleanup.callback(stack.stop)
        yield Gateway(stack, store, iter(PROBES))


def oai(gateway: Gateway, client: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEYS[client], base_url=gateway.stack.base_url + "/v1", max_retries=0, timeout=20)


def usage_reply(prompt_tokens: int, completion_tokens: int) -> Reply:
    return json_reply(
        {
            "id": "chatcmpl-usage",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-tok",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def free_answer(stream: bool) -> Reply:
    """An answer whose provider counted no tokens: it leaves its bucket as it was."""
    if not stream:
        return usage_reply(0, 0)
    chunks = [
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
        b'"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n',
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
        b'"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}\n\n',
        b"data: [DONE]\n\n",
    ]
    return Reply(content_type="text/event-stream", chunks=chunks)


QUESTION = [{"role": "user", "content": "What is the capital of France? " * 20}]


def remaining_after(gateway: Gateway, client: str, model: str, **options: Any) -> int:
    """The tokens left in the bucket once this request took its reservation."""
    raw = oai(gateway, client).chat.completions.with_raw_response.create(model=model, messages=QUESTION, **options)
    answer = raw.parse()
    if options.get("stream"):
        list(answer)
    return int(raw.headers["x-ratelimit-remaining-tokens"])


def reservation(gateway: Gateway, model: str, fake_openai: FakeOpenAI, **options: Any) -> int:
    """What one request reserves, seen on an untouched bucket."""
    fake_openai.enqueue(free_answer(bool(options.get("stream"))))
    return TOKENS - remaining_after(gateway, next(gateway.probes), model, **options)


def wait_finished(gateway: Gateway, before: float, count: int = 1) -> None:
    assert wait_until(lambda: gateway.finished() >= before + count, timeout=10)


def assert_charged(gateway: Gateway, client: str, model: str, charged: int, fake_openai: FakeOpenAI) -> None:
    """`client`'s bucket for `model` was charged `charged` tokens in all, by the requests made so far."""
    if gateway.redis is not None:  # settles reach the shared store a few milliseconds after the request ended
        expected = TOKENS - charged
        assert wait_until(lambda: round(gateway.stored_level(client, model) or TOKENS) == expected, timeout=10), (
            gateway.stored_level(client, model),
            expected,
        )
    reserved = reservation(gateway, model, fake_openai)
    fake_openai.enqueue(free_answer(False))
    assert remaining_after(gateway, client, model) == TOKENS - charged - reserved


# Reservations and settles


@pytest.mark.parametrize("max_tokens", [-1_000_000_000_000, 10**15])
def test_a_reservation_stays_within_the_bucket_whatever_max_tokens_says(
    gateway: Gateway, fake_openai: FakeOpenAI, max_tokens: int
) -> None:
    model = f"gpt-tok-max-{max_tokens}"
    before = gateway.finished()
    fake_openai.enqueue(usage_reply(100, 20))
    try:
        raw = oai(gateway, "alice").chat.completions.with_raw_response.create(
            model=model, messages=QUESTION, max_tokens=max_tokens
        )
        raw.parse()
    except openai.BadRequestError:  # refused before any reservation: nothing charged
        charged = 0
        fake_openai.reset()
    else:
        # The take neither filled the bucket beyond its size nor reserved more than it holds.
        assert 0 <= int(raw.headers["x-ratelimit-remaining-tokens"]) < TOKENS
        charged = 120  # the provider's own count, whatever was reserved
    wait_finished(gateway, before)
    assert_charged(gateway, "alice", model, charged, fake_openai)


def test_a_providers_negative_count_gives_back_no_more_than_was_reserved(
    gateway: Gateway, fake_openai: FakeOpenAI
) -> None:
    model = "gpt-tok-negative-count"
    before = gateway.finished()
    fake_openai.enqueue(usage_reply(300, 0))
    fake_openai.enqueue(usage_reply(-1_000_000_000_000, 0))
    remaining_after(gateway, "alice", model)
    remaining_after(gateway, "alice", model)
    wait_finished(gateway, before, 2)
    assert_charged(gateway, "alice", model, 300, fake_openai)  # the second answer cost nothing, and refilled nothing


def test_a_reservation_beyond_use_is_given_back_down_to_the_providers_count(
    gateway: Gateway, fake_openai: FakeOpenAI
) -> None:
    model = "gpt-tok-settled"
    before = gateway.finished()
    fake_openai.enqueue(usage_reply(40, 2))
    reserved = TOKENS - remaining_after(gateway, "alice", model, max_tokens=5000)
    assert reserved > 5000
    wait_finished(gateway, before)
    assert_charged(gateway, "alice", model, 42, fake_openai)


# A client that hangs up


async def _hang_up_before_the_answer(gateway: Gateway, model: str, fake_openai: FakeOpenAI, **options: Any) -> None:
    """Ask through the async SDK, and cancel the call once the provider holds the request."""
    asked = len(fake_openai.requests)
    client = openai.AsyncOpenAI(
        api_key=KEYS["alice"], base_url=gateway.stack.base_url + "/v1", max_retries=0, timeout=PATIENT_S
    )
    try:
        call = asyncio.ensure_future(client.chat.completions.create(model=model, messages=QUESTION, **options))
        assert await wait_until_async(lambda: len(fake_openai.requests) > asked or call.done(), 10, interval=0.01)
        assert not call.done(), call.result()
        call.cancel()  # the SDK drops its connection: Envoy resets the request
        with contextlib.suppress(asyncio.CancelledError):
            await call
    finally:
        await client.close()


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_before_the_answer_starts_is_charged_for_its_prompt(
    gateway: Gateway, fake_openai: FakeOpenAI, stream: bool
) -> None:
    model = f"gpt-tok-hang-up-{'stream' if stream else 'whole'}"
    options: dict[str, Any] = {"max_tokens": 500, "stream": stream}
    prompt = reservation(gateway, model, fake_openai, **options) - 500  # the input estimate
    assert prompt > 0
    closed = metric_sum(gateway.stack, "gateway_requests_total", 'status="client_closed"')
    fake_openai.enqueue(Reply(hang=True))  # the provider never starts its answer
    asyncio.run(_hang_up_before_the_answer(gateway, model, fake_openai, **options))
    assert wait_until(
        lambda: metric_sum(gateway.stack, "gateway_requests_total", 'status="client_closed"') > closed, timeout=10
    )
    assert_charged(gateway, "alice", model, prompt, fake_openai)


# Concurrent streams


def _held_stream(release: threading.Event) -> Reply:
    """A stream that starts, then holds its end until the test sets `release`."""
    first = (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
    )
    chunks = [first, b"data: [DONE]\n\n"]
    return Reply(content_type="text/event-stream", chunks=chunks, hold_at_chunk=1, release=release)


def _refused_openai(gateway: Gateway, client: str, request_id: str) -> tuple[int, str, str]:
    with pytest.raises(openai.RateLimitError) as refused:
        oai(gateway, client).chat.completions.create(
            model="gpt-streams-1",
            messages=[{"role": "user", "content": "one more"}],
            stream=True,
            extra_headers={"x-request-id": request_id},
        )
    return refused.value.status_code, refused.value.message, refused.value.response.headers["x-request-id"]


def _refused_anthropic(gateway: Gateway, client: str, request_id: str) -> tuple[int, str, str]:
    messages = anthropic.Anthropic(
        api_key=KEYS[client], base_url=gateway.stack.base_url, max_retries=0, timeout=20
    ).messages
    with pytest.raises(anthropic.RateLimitError) as refused:
        messages.create(
            model="claude-streams-1",
            max_tokens=10,
            messages=[{"role": "user", "content": "one more"}],
            stream=True,
            extra_headers={"x-request-id": request_id},
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "rate_limit_error"
    return refused.value.status_code, refused.value.message, refused.value.response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("client", "refused_by"), [("bob", _refused_openai), ("carol", _refused_anthropic)], ids=["openai", "anthropic"]
)
def test_streams_that_share_one_request_id_each_hold_a_slot_of_their_own(
    gateway: Gateway,
    fake_openai: FakeOpenAI,
    client: str,
    refused_by: Callable[[Gateway, str, str], tuple[int, str, str]],
) -> None:
    request_id = f"shared-{client}-{gateway.redis is not None}"
    release = threading.Event()
    for _ in range(STREAMS):
        fake_openai.enqueue(_held_stream(release))
    held = []
    try:
        for _ in range(STREAMS):
            stream = oai(gateway, client).chat.completions.create(
                model="gpt-streams-1",
                messages=[{"role": "user", "content": "stay"}],
                stream=True,
                extra_headers={"x-request-id": request_id},
            )
            held.append(stream)
            next(iter(stream))  # its answer has started: it holds its slot
        status, message, echoed = refused_by(gateway, client, request_id)
        assert status == 429
        assert f"at most {STREAMS} streams" in message
        assert echoed  # Envoy's own id: it replaces what an outside client sends (the router pass tests the rest)
    finally:
        release.set()
        for stream in held:
            stream.close()
