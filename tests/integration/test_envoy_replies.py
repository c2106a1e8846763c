"""Replies Envoy makes on its own reach each official SDK in its own API's error format, with a
request id: a provider that resets the connection before its headers (503) or answers no HTTP
(502), a provider slower than its timeout (504), a body over Envoy's buffer (413), and headers
over the gateway's limit (431, from the router pass) or over Envoy's codec cap (431, from Envoy's
local reply map, before any path is read)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.fakes.broken import BrokenProvider
from tests.integration.sdk_outcomes import CLIENT_KEY
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

MAX_BODY = 1024 * 1024  # envoy.max_request_bytes in this stack
OVER_LIMIT_HEADER = "a" * (70 * 1024)  # over the router pass's 60 KiB, under Envoy's 96 KiB
OVER_CAP_HEADER = "a" * (100 * 1024)  # over Envoy's codec cap


@dataclass
class Stack:
    gateway: GatewayStack
    providers: dict[str, BrokenProvider]

    @property
    def url(self) -> str:
        return self.gateway.base_url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    providers = {b: BrokenProvider(b) for b in ("reset", "garbage", "silent")}
    for provider in providers.values():
        provider.__enter__()
    config = {
        "envoy": {"max_request_bytes": MAX_BODY},
        "providers": [
            *(
                {
                    "name": name,
                    "kind": "openai-compatible",
                    "base_url": provider.base_url + "/v1",
                    "timeout_ms": 1500,
                    "first_byte_timeout_ms": 1000,
                }
                for name, provider in providers.items()
            ),
            {"name": "mock", "kind": "mock"},
        ],
        "routes": [
            *({"model": f"{name}-*", "provider": name} for name in providers),
            {"model": "*", "provider": "mock"},
        ],
    }
    gateway = GatewayStack(Path(tmp_path_factory.mktemp("envoy-replies")), config).start()
    try:
        yield Stack(gateway, providers)
    finally:
        gateway.stop()
        for provider in providers.values():
            provider.__exit__(None, None, None)


# --- asking through each SDK, and reading what it raised ----------------------------------------------


def ask(client: str, url: str, model: str, text: str = "hi", headers: dict[str, str] | None = None, stream=False):
    headers = headers or {}
    if client == "openai":
        sdk = openai.OpenAI(api_key=CLIENT_KEY, base_url=url + "/v1", max_retries=0, timeout=20)
        messages = [{"role": "user", "content": text}]
        answer = sdk.chat.completions.create(model=model, messages=messages, stream=stream, extra_headers=headers)
        return list(answer) if stream else answer
    if client == "responses":
        sdk = openai.OpenAI(api_key=CLIENT_KEY, base_url=url + "/v1", max_retries=0, timeout=20)
        answered = sdk.responses.create(model=model, input=text, stream=stream, extra_headers=headers)
        return list(answered) if stream else answered
    if client == "anthropic":
        sdk = anthropic.Anthropic(api_key=CLIENT_KEY, base_url=url, max_retries=0, timeout=20)
        messages = [{"role": "user", "content": text}]
        answer = sdk.messages.create(
            model=model, max_tokens=50, messages=messages, stream=stream, extra_headers=headers
        )
        return list(answer) if stream else answer
    options = types.HttpOptions(
        base_url=url, timeout=20_000, headers=headers, retry_options=types.HttpRetryOptions(attempts=1)
    )
    gemini = genai.Client(api_key=CLIENT_KEY, http_options=options)
    if stream:
        return list(gemini.models.generate_content_stream(model=model, contents=text))
    return gemini.models.generate_content(model=model, contents=text)


SDK_ERRORS: dict[str, type[Exception]] = {
    "openai": openai.APIStatusError,
    "responses": openai.APIStatusError,
    "anthropic": anthropic.APIStatusError,
    "gemini": genai_errors.APIError,
}


@dataclass
class Seen:
    status: int
    body: dict[str, Any]
    request_id: str


def seen(client: str, error: Exception) -> Seen:
    """Status, error body and request id as the SDK's exception carries them."""
    if client == "gemini":
        assert isinstance(error, genai_errors.APIError)
        response: Any = error.response
        return Seen(error.code, error.details, response.headers.get("x-request-id", ""))
    assert isinstance(error, openai.APIStatusError | anthropic.APIStatusError)
    return Seen(error.status_code, error.response.json(), error.response.headers.get("x-request-id", ""))


def assert_in_clients_format(client: str, got: Seen, status: int, kind_words: str) -> None:
    """The error is the client's own API's, names what happened, and carries the request id."""
    assert got.status == status
    assert got.request_id
    if client in ("openai", "responses"):
        error = got.body["error"]
        assert error["type"] and error["message"].endswith(f"(request id: {got.request_id})")
    elif client == "anthropic":
        assert got.body["type"] == "error" and got.body["error"]["type"]
        assert got.body["request_id"] == got.request_id
        error = got.body["error"]
    else:
        error = got.body["error"]
        assert error["code"] == status and error["status"]
        infos = [d for d in error["details"] if d.get("@type", "").endswith("google.rpc.ErrorInfo")]
        assert infos and infos[0]["metadata"]["request_id"] == got.request_id
    assert kind_words in error["message"]
    assert "upstream connect error" not in error["message"]  # Envoy's own words stay out


CLIENTS = ["openai", "responses", "anthropic", "gemini"]
CASES: dict[str, tuple[Callable[[str, Stack], object], int, str]] = {
    "provider resets before its headers": (lambda c, s: ask(c, s.url, "reset-1"), 503, "closed the connection"),
    "provider resets a stream before its headers": (
        lambda c, s: ask(c, s.url, "reset-1", stream=True),
        503,
        "closed the connection",
    ),
    "provider answers no HTTP": (lambda c, s: ask(c, s.url, "garbage-1"), 502, "not valid HTTP"),
    "provider slower than its timeout": (lambda c, s: ask(c, s.url, "silent-1"), 504, "did not answer in time"),
    "body over Envoy's buffer": (lambda c, s: ask(c, s.url, "mock-1", text="x" * 2 * MAX_BODY), 413, "larger"),
    "headers over the gateway's limit": (
        lambda c, s: ask(c, s.url, "mock-1", headers={"x-big": OVER_LIMIT_HEADER}),
        431,
        "headers are too large",
    ),
    "headers over Envoy's codec cap": (
        lambda c, s: ask(c, s.url, "mock-1", headers={"x-big": OVER_CAP_HEADER}),
        431,
        "headers are larger",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("client", CLIENTS)
def test_envoys_own_reply_reaches_the_sdk_in_its_own_format_with_the_request_id(
    stack: Stack, client: str, case: str
) -> None:
    call, status, words = CASES[case]
    with pytest.raises(SDK_ERRORS[client]) as raised:
        call(client, stack)
    assert_in_clients_format(client, seen(client, raised.value), status, words)


def test_a_request_with_too_many_headers_is_a_431_in_the_clients_format(stack: Stack) -> None:
    headers = {f"x-extra-{i}": "v" for i in range(110)}  # over the gateway's 100, under Envoy's 150
    answer = httpx.post(
        stack.url + "/v1/messages",
        json={"model": "mock-1", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        headers={"anthropic-version": "2023-06-01", **headers},
        timeout=20,
    )
    assert answer.status_code == 431
    body = answer.json()
    assert body["type"] == "error" and body["request_id"] == answer.headers["x-request-id"]


def test_headers_just_under_the_limit_are_served(stack: Stack) -> None:
    answer = ask("openai", stack.url, "mock-1", headers={"x-big": "a" * (50 * 1024)})
    assert answer.choices[0].message.content
