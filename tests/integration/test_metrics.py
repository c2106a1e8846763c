"""Metrics and access lines after known traffic, through the real Envoy: requests by client API,
route, provider, model and status; the GenAI conventions' histograms (duration, time to first
token, time per output token, tokens by type); label values bounded by the configuration; a
client that hangs up mid-stream counted as `client_closed`; the log level and `log_bodies`
changed by a reload, in every worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.conftest import LIMITED, PROVIDER_ENV
from tests.fakes.base import Reply
from tests.fakes.openai import openai_error
from tests.fakes.providers import FakeAnthropic, FakeOpenAI
from tests.integration.conftest import AuthGateway
from tests.integration.sdk_outcomes import anthropic_client, openai_client
from tests.support.access_log import access_line, access_lines, log_lines
from tests.support.metrics import metric_sum, served_per_worker
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> Iterator[GatewayStack]:
    openai_url = fake_openai.base_url + "/v1"
    config = {
        "log_level": "info",
        "providers": [
            {"name": "mock", "kind": "mock", "models": ["mock-1"]},
            {
                "name": "openai",
                "kind": "openai",
                "base_url": openai_url,
                "api_key_env": "TEST_OPENAI_KEY",
                "models": ["gpt-known"],  # a model the config names: its own label value
                "cache_ttl_s": 0,  # only the `cached` route keeps answers
            },
            {
                "name": "anthropic",
                "kind": "anthropic",
                "base_url": fake_anthropic.base_url,
                "api_key_env": "TEST_ANTHROPIC_KEY",
                "cache_ttl_s": 0,
            },
            {**LIMITED, "name": "basic", "base_url": openai_url, "unsupported": "drop", "cache_ttl_s": 0},
        ],
        "routes": [
            {"name": "chat", "model": "gpt-*", "provider": "openai"},
            {"name": "cached", "model": "cached-*", "provider": "openai", "cache_ttl_s": 600},
            {"name": "claude", "model": "claude-*", "provider": "anthropic"},
            {"name": "basic", "model": "basic-*", "provider": "basic"},
            {
                "name": "pooled",
                "model": "pool-*",
                "pool": [{"provider": "openai"}, {"provider": "anthropic", "priority": 1, "model": "claude-backup"}],
            },
            {"model": "mock-*", "provider": "mock"},
        ],
        "cache": {},
    }
    stack = GatewayStack(Path(tmp_path_factory.mktemp("metrics")), config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def requests(stack: GatewayStack, **labels: str) -> float:
    return metric_sum(stack, "gateway_requests_total", *(f'{key}="{value}"' for key, value in labels.items()))


def histogram(stack: GatewayStack, name: str, part: str, **labels: str) -> float:
    """`part`: count or sum."""
    return metric_sum(stack, f"{name}_{part}", *(f'{key}="{value}"' for key, value in labels.items()))


def counted_after(stack: GatewayStack, before: float, **labels: str) -> None:
    """Requests are counted once the ext_proc's stream for them ended, just after the answer."""
    assert wait_until(lambda: requests(stack, **labels) == before + 1, timeout=10), requests(stack, **labels)


CHAT = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "route": "chat", "provider": "openai"}
SSE = "text/event-stream; charset=utf-8"


def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else []
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-known", "choices": choices}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_a_chat_is_counted_with_its_labels_its_duration_and_its_tokens(stack: GatewayStack) -> None:
    labels = {**CHAT, "gen_ai_request_model": "gpt-known", "gen_ai_response_model": "gpt-known", "client_api": "openai"}
    before = requests(stack, client_api="openai", route="chat", provider="openai", model="gpt-known", status="200")
    durations = histogram(stack, "gen_ai_server_request_duration_seconds", "count", **labels, error_type="")
    inputs = histogram(stack, "gen_ai_client_token_usage", "sum", **labels, gen_ai_token_type="input")
    outputs = histogram(stack, "gen_ai_client_token_usage", "sum", **labels, gen_ai_token_type="output")
    first_tokens = histogram(stack, "gen_ai_server_time_to_first_token_seconds", "count", **labels)
    answer = openai_client(stack.base_url).chat.completions.create(
        model="gpt-known", messages=[{"role": "user", "content": "count me"}]
    )
    assert answer.usage is not None
    counted_after(stack, before, client_api="openai", route="chat", provider="openai", model="gpt-known", status="200")
    assert histogram(stack, "gen_ai_server_request_duration_seconds", "count", **labels, error_type="") == durations + 1
    # Token sums are what the provider reported.
    input_sum = histogram(stack, "gen_ai_client_token_usage", "sum", **labels, gen_ai_token_type="input")
    assert input_sum == inputs + answer.usage.prompt_tokens
    output_sum = histogram(stack, "gen_ai_client_token_usage", "sum", **labels, gen_ai_token_type="output")
    assert output_sum == outputs + answer.usage.completion_tokens
    # A whole answer has no time to first token: when its first token was made is not seen.
    assert histogram(stack, "gen_ai_server_time_to_first_token_seconds", "count", **labels) == first_tokens


def test_each_client_api_is_its_own_label(stack: GatewayStack) -> None:
    gemini = {**CHAT, "gen_ai_operation_name": "generate_content", "client_api": "gemini"}
    before = histogram(stack, "gen_ai_server_request_duration_seconds", "count", **gemini)
    answer = httpx.post(
        stack.base_url + "/v1beta/models/gpt-known:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "from gemini"}]}]},
        timeout=20,
    )
    assert answer.status_code == 200
    assert wait_until(
        lambda: histogram(stack, "gen_ai_server_request_duration_seconds", "count", **gemini) == before + 1, 10
    )
    claude = {"client_api": "anthropic", "route": "claude", "provider": "anthropic", "status": "200"}
    before = requests(stack, **claude, model="other")
    anthropic_client(stack.base_url).messages.create(
        model="claude-unlisted-7", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    counted_after(stack, before, **claude, model="other")  # a model no config names is `other`
    assert histogram(stack, "gen_ai_client_token_usage", "count", gen_ai_provider_name="anthropic") > 0


def test_time_to_first_token_and_per_output_token_are_observed_on_a_stream(
    stack: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": f"w{i} "}) for i in range(5)]
    chunks += [chunk({}, "stop"), chunk({}, usage=usage), b"data: [DONE]\n\n"]
    fake_openai.enqueue(Reply(content_type=SSE, chunks=chunks, delay=0.3, chunk_delay=0.05))
    labels = {**CHAT, "gen_ai_request_model": "gpt-known", "client_api": "openai"}
    first_count = histogram(stack, "gen_ai_server_time_to_first_token_seconds", "count", **labels)
    first_sum = histogram(stack, "gen_ai_server_time_to_first_token_seconds", "sum", **labels)
    per_token = histogram(stack, "gen_ai_server_time_per_output_token_seconds", "count", **labels)
    stream = openai_client(stack.base_url).chat.completions.with_raw_response.create(
        model="gpt-known",
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = list(stream.parse())
    assert pieces[-1].usage is not None and pieces[-1].usage.completion_tokens == 5
    assert wait_until(
        lambda: histogram(stack, "gen_ai_server_time_to_first_token_seconds", "count", **labels) == first_count + 1, 10
    )
    waited = histogram(stack, "gen_ai_server_time_to_first_token_seconds", "sum", **labels) - first_sum
    assert 0.3 <= waited < 2  # the provider's first byte came after 0.3 s
    assert histogram(stack, "gen_ai_server_time_per_output_token_seconds", "count", **labels) == per_token + 1
    line = access_line(stack, stream.headers["x-request-id"])
    assert line["ttft_ms"] >= 300 and line["duration_ms"] >= line["ttft_ms"]
    assert (line["input_tokens"], line["output_tokens"], line["status"], line["stream"]) == (7, 5, 200, True)


def test_a_client_that_hangs_up_mid_stream_is_client_closed(stack: GatewayStack, fake_openai: FakeOpenAI) -> None:
    chunks = [chunk({"content": "word "}) for _ in range(60)]
    fake_openai.enqueue(Reply(content_type=SSE, chunks=chunks, chunk_delay=0.1))
    labels = {"client_api": "openai", "route": "chat", "provider": "openai", "model": "gpt-known"}
    closed, succeeded = requests(stack, **labels, status="client_closed"), requests(stack, **labels, status="200")
    body = {"model": "gpt-known", "stream": True, "messages": [{"role": "user", "content": "long story"}]}
    with (
        httpx.Client(timeout=20) as http,
        http.stream("POST", stack.base_url + "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_bytes()).startswith(b"data: ")
        request_id = response.headers["x-request-id"]
    counted_after(stack, closed, **labels, status="client_closed")
    assert requests(stack, **labels, status="200") == succeeded  # not a success
    assert (
        histogram(stack, "gen_ai_server_request_duration_seconds", "count", route="chat", error_type="client_closed")
        >= 1
    )
    line = access_line(stack, request_id)
    assert line["status"] == 499 and line["route"] == "chat" and line["client_api"] == "openai"


def test_label_values_never_come_from_the_client(stack: GatewayStack) -> None:
    unrouted = {"client_api": "openai", "route": "", "provider": "", "model": "other", "status": "404"}
    before = requests(stack, **unrouted)
    with pytest.raises(openai.NotFoundError):
        openai_client(stack.base_url).chat.completions.create(
            model="no-route-xyzzy", messages=[{"role": "user", "content": "hi"}]
        )
    counted_after(stack, before, **unrouted)
    unknown_path = {"client_api": "unknown", "route": "", "status": "404"}
    before = requests(stack, **unknown_path)
    assert httpx.post(stack.base_url + "/v1/plugh-path", json={}, timeout=10).status_code == 404
    counted_after(stack, before, **unknown_path)
    exposition = httpx.get(stack.admin_url + "/metrics").text
    assert "xyzzy" not in exposition and "plugh" not in exposition and "claude-unlisted" not in exposition


def test_cache_hits_are_counted_and_cost_no_tokens(stack: GatewayStack) -> None:
    hits = metric_sum(stack, "gateway_cache_requests_total", 'result="hit"')
    stored = metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"')
    tokens = histogram(stack, "gen_ai_client_token_usage", "count", route="cached", gen_ai_token_type="input")
    before = requests(stack, route="cached", status="200")
    client = openai_client(stack.base_url)
    ask = {"model": "cached-1", "messages": [{"role": "user", "content": "the same question"}]}
    first = client.chat.completions.create(**ask)
    assert wait_until(lambda: metric_sum(stack, "gateway_cache_bytes_total", 'op="stored"') > stored, timeout=10)
    again = client.chat.completions.with_raw_response.create(**ask)
    assert again.headers["x-gateway-cache"] == "HIT" and again.parse().id == first.id
    assert metric_sum(stack, "gateway_cache_requests_total", 'result="hit"') == hits + 1
    assert wait_until(lambda: requests(stack, route="cached", status="200") == before + 2, timeout=10)
    assert histogram(stack, "gen_ai_client_token_usage", "count", route="cached", gen_ai_token_type="input") == (
        tokens + 1
    )
    assert access_line(stack, again.headers["x-request-id"])["cache"] == "HIT"


def test_dropped_features_are_counted_and_logged(stack: GatewayStack) -> None:
    dropped = metric_sum(stack, "gateway_features_dropped_total", 'provider="basic"', 'feature="tools"')
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    answer = openai_client(stack.base_url).chat.completions.with_raw_response.create(
        model="basic-1", messages=[{"role": "user", "content": "use a tool"}], tools=[tool]
    )
    assert answer.headers["x-gateway-dropped-features"] == "tools"
    assert metric_sum(stack, "gateway_features_dropped_total", 'provider="basic"', 'feature="tools"') == dropped + 1
    assert access_line(stack, answer.headers["x-request-id"])["dropped"] == ["tools"]


def test_a_pool_answer_names_who_answered_and_the_retries(
    stack: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_openai.enqueue(openai_error(503, "overloaded"))
    answered = {"route": "pooled", "provider": "anthropic", "gen_ai_provider_name": "anthropic"}
    before = histogram(stack, "gen_ai_server_request_duration_seconds", "count", **answered)
    answer = openai_client(stack.base_url).chat.completions.with_raw_response.create(
        model="pool-1", messages=[{"role": "user", "content": "fail over"}]
    )
    assert answer.status_code == 200 and fake_anthropic.last_request.json["model"] == "claude-backup"
    assert wait_until(
        lambda: histogram(stack, "gen_ai_server_request_duration_seconds", "count", **answered) == before + 1, 10
    )
    # The model the answer names is one the config spells out (the pool member's).
    assert histogram(stack, "gen_ai_server_request_duration_seconds", "count", gen_ai_response_model="claude-backup")
    line = access_line(stack, answer.headers["x-request-id"])
    assert (line["provider"], line["route"], line["retries"]) == ("anthropic", "pooled", 1)
    assert "x-envoy-attempt-count" not in answer.headers


def test_authentication_failures_are_counted_by_reason(auth_gateway: AuthGateway) -> None:
    stack = auth_gateway.stack
    before = metric_sum(stack, "gateway_auth_failures_total", 'reason="unknown_key"')
    with pytest.raises(openai.AuthenticationError):
        openai_client(stack.base_url, "sk-not-a-client-key").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert metric_sum(stack, "gateway_auth_failures_total", 'reason="unknown_key"') == before + 1
    assert wait_until(lambda: requests(stack, client_api="openai", status="401") >= 1, timeout=10)


def _reload(stack: GatewayStack, **changes: Any) -> None:
    path = stack.workdir / "gateway.yaml"
    written = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**written, **changes}, sort_keys=False))
    answer = httpx.post(stack.admin_url + "/reload", timeout=30)
    assert answer.status_code == 200, answer.text


def _ask(stack: GatewayStack, content: Any = "hi") -> str:
    body = {"model": "mock-1", "messages": [{"role": "user", "content": content}], "api_key": "sk-in-the-body"}
    answer = httpx.post(stack.base_url + "/v1/chat/completions", json=body, timeout=10)
    assert answer.status_code == 200
    return answer.headers["x-request-id"]


def test_a_reload_changes_the_log_level_and_body_logging_in_every_worker(tmp_path: Path) -> None:
    config = {
        "log_level": "info",
        "extproc": {"workers": 2},
        "providers": [{"name": "mock", "kind": "mock", "models": ["mock-1"]}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        logged = {_ask(stack) for _ in range(4)}
        assert wait_until(lambda: logged <= {line["request_id"] for line in access_lines(stack)}, timeout=5)
        assert all("request_body" not in line for line in access_lines(stack))  # bodies only when asked

        _reload(stack, log_level="warning")
        lines, served = len(access_lines(stack)), served_per_worker(stack)
        unlogged = {_ask(stack) for _ in range(12)}
        assert all(now > then for now, then in zip(served_per_worker(stack), served, strict=True))  # both asked

        _reload(stack, log_level="info", log_bodies=True)
        served = served_per_worker(stack)
        image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + "iVBORw0KGgo" * 50}}]
        asked = [_ask(stack, image) for _ in range(8)]
        assert all(now > then for now, then in zip(served_per_worker(stack), served, strict=True))  # both asked
        # Each process's log thread writes its lines in order: once the lines of these requests are
        # written, any line of the requests made at warning level would be written before them.
        assert wait_until(lambda: set(asked) <= {line["request_id"] for line in access_lines(stack)}, timeout=5)
        assert len(access_lines(stack)) == lines + len(asked)
        assert not unlogged & {line["request_id"] for line in access_lines(stack)}
        for request_id in asked:
            line = access_line(stack, request_id)
            assert "iVBORw0KGgo" not in line["request_body"] and "sk-in-the-body" not in line["request_body"]
            assert "data:image/png;base64,[550 characters redacted]" in line["request_body"]
            assert '"api_key":"[redacted]"' in line["request_body"]  # httpx sends compact JSON
            assert "mock" in line["response_body"]
    finally:
        stack.stop()


def test_an_error_logged_while_a_request_is_handled_names_its_request_id(auth_gateway: AuthGateway) -> None:
    """The JWKS file turns bad: the request that reads it logs the error (its own answer matters not here)."""
    auth_gateway.jwks_path.write_text("{not json")
    try:
        # The file is looked at once a second at most, by whichever request comes then: ask until one has.
        asked: set[str] = set()
        earlier = len(log_lines(auth_gateway.stack))

        def rejected_by() -> set[str]:
            asked.add(_ask_with_a_token(auth_gateway).headers["x-request-id"])
            lines = log_lines(auth_gateway.stack)[earlier:]
            return {line.get("request_id", "") for line in lines if line["msg"].startswith("JWKS file rejected")}

        assert wait_until(lambda: bool(rejected_by()), timeout=10, interval=0.05), auth_gateway.stack.logs()
        assert rejected_by() <= asked  # the one line names the request that read the file
    finally:
        auth_gateway.write_jwks({auth_gateway.kid: auth_gateway.signing_key})
        # The next tests of this shared gateway need the keys back.
        assert wait_until(lambda: _ask_with_a_token(auth_gateway).status_code == 200, timeout=5)


def _ask_with_a_token(auth_gateway: AuthGateway) -> httpx.Response:
    return httpx.post(
        auth_gateway.base_url + "/v1/chat/completions",
        json={"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {auth_gateway.token()}"},
        timeout=10,
    )
