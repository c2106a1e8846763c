"""A same-API stream read beside it through the real Envoy (extproc.observe_streams, the default):
Envoy sends each chunk on without waiting for the ext_proc, the observer filter reads it, and the
request is finished with the provider's usage. The mark that lets the observer run never reaches
the client, and a provider cannot set it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROVIDER_ENV, openai_only_config
from tests.fakes.base import SSE_UTF8
from tests.fakes.openai import chat_completion
from tests.fakes.providers import FakeOpenAI, Reply
from tests.integration.sdk_outcomes import CLIENT_KEY, openai_client
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

MARK = "x-gw-observe"


def chunk(delta: dict[str, str], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if usage is not None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": choices}
    return b"data: " + json.dumps({**body, **({"usage": usage} if usage else {})}).encode() + b"\n\n"


def access_line(stack: GatewayStack, request_id: str) -> dict[str, object] | None:
    for line in stack.logs().splitlines():
        if request_id in line and '"extproc.access"' in line:
            return json.loads(line[line.index("{") :])
    return None


def observer_streams(stack: GatewayStack) -> float:
    return metric_sum(stack, "gateway_active_streams", 'pass_="observer"')


def observer_started(stack: GatewayStack) -> int:
    """Envoy's count of the observer filter's gRPC streams (its stat_prefix, `observer`)."""
    stats = httpx.get(stack.envoy_admin_url + "/stats", params={"filter": "ext_proc.observer.streams_started"})
    return sum(int(line.rsplit(":", 1)[1]) for line in stats.text.splitlines() if line.strip())


def test_a_same_api_stream_reaches_the_client_unchanged_and_is_finished_with_the_providers_usage(
    gateway: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    usage = {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}
    sent = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": f"w{i} "}) for i in range(6)]
    sent += [chunk({}, "stop"), chunk({}, usage=usage), b"data: [DONE]\n\n"]
    fake_openai.enqueue(Reply(content_type=SSE_UTF8, chunks=sent, chunk_delay=0.02))  # written as generated
    started = observer_started(gateway)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "count"}], "stream": True}
    with httpx.stream(
        "POST", gateway.base_url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {CLIENT_KEY}"}
    ) as answer:
        received = b"".join(answer.iter_bytes())
        request_id = answer.headers["x-request-id"]
        assert MARK not in answer.headers
    assert received == b"".join(sent)
    assert observer_started(gateway) == started + 1  # read by the observer, not the router pass
    assert wait_until(lambda: access_line(gateway, request_id) is not None, timeout=10)
    line = access_line(gateway, request_id)
    assert line is not None and (line["status"], line["input_tokens"], line["output_tokens"]) == (200, 11, 6)
    assert wait_until(lambda: observer_streams(gateway) == 0, timeout=10)  # each observer stream ends with its answer


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
def test_a_provider_cannot_set_the_observers_mark_and_it_never_reaches_the_client(
    gateway: GatewayStack, fake_openai: FakeOpenAI, stream: bool
) -> None:
    started = observer_started(gateway)
    if stream:
        reply = Reply(content_type=SSE_UTF8, chunks=[chunk({"content": "hi"}, "stop"), b"data: [DONE]\n\n"])
    else:
        reply = Reply(body=json.dumps(chat_completion("hi", "gpt-4o")).encode())
    reply.headers[MARK] = "1"
    fake_openai.enqueue(reply)
    raw = openai_client(gateway.base_url).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=stream
    )
    assert MARK not in raw.headers
    parsed = raw.parse()
    text = "".join(c.choices[0].delta.content or "" for c in parsed) if stream else parsed.choices[0].message.content
    assert text == "hi"
    assert observer_started(gateway) == started + (1 if stream else 0)  # a JSON answer is never observed


def test_with_several_workers_each_streams_observer_reaches_the_worker_that_holds_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    config = openai_only_config(fake_openai.base_url, extproc={"workers": 2})
    stack = GatewayStack(tmp_path, config, PROVIDER_ENV).start()
    try:
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        for _ in range(12):
            sent = [chunk({"content": "hi"}, "stop"), chunk({}, usage=usage), b"data: [DONE]\n\n"]
            fake_openai.enqueue(Reply(content_type=SSE_UTF8, chunks=sent))
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with httpx.stream("POST", stack.base_url + "/v1/chat/completions", json=body) as answer:
                assert b"".join(answer.iter_bytes()) == b"".join(sent)
        stats = httpx.get(stack.envoy_admin_url + "/stats", params={"filter": r"ext_proc\.observer.*streams_started"})
        started = {
            line.split(":")[0].rsplit(".", 2)[-2]: int(line.rsplit(":", 1)[1]) for line in stats.text.splitlines()
        }
        assert set(started) == {"observer", "observer_1"} and all(started.values()), started  # both workers'
        assert sum(started.values()) == 12

        # Each request was finished with the provider's usage by the worker that held it (the
        # workers' metrics merge: 12 answers of 2 output tokens each).
        def output_tokens() -> tuple[float, float]:
            count = metric_sum(stack, "gen_ai_client_token_usage_count", 'gen_ai_token_type="output"')
            return count, metric_sum(stack, "gen_ai_client_token_usage_sum", 'gen_ai_token_type="output"')

        assert wait_until(lambda: output_tokens() == (12, 24), timeout=10), output_tokens()
    finally:
        stack.stop()
