"""The ext_proc slower than `message_timeout`: Envoy's 504 reaches the client in its own format, with the request id."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.providers import FakeOpenAI, Reply
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def slow_processor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    """The mock provider sleeps inside the ext_proc for 3 s; Envoy waits 300 ms per message."""
    config = {
        "extproc": {"message_timeout_ms": 300},
        "providers": [{"name": "mock", "kind": "mock", "mock": {"latency_ms": 3000}}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(Path(tmp_path_factory.mktemp("slow-processor")), config).start()
    yield stack
    stack.stop()


def _openai(body: dict[str, Any], request_id: str) -> None:
    assert body["error"]["type"] == "api_error"
    assert body["error"]["code"] == "gateway_timeout"
    assert request_id in body["error"]["message"]


def _anthropic(body: dict[str, Any], request_id: str) -> None:
    assert body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    assert body["request_id"] == request_id


def _gemini(body: dict[str, Any], request_id: str) -> None:
    assert body["error"]["code"] == 504
    assert body["error"]["status"] == "DEADLINE_EXCEEDED"
    info = body["error"]["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["domain"] == "gateway"
    assert info["metadata"]["request_id"] == request_id


@pytest.mark.parametrize(
    ("path", "payload", "headers", "check"),
    [
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, {}, _openai),
        (
            "/v1/messages",
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            ANTHROPIC_HEADERS,
            _anthropic,
        ),
        ("/v1beta/models/m:generateContent", {"contents": [{"parts": [{"text": "hi"}]}]}, {}, _gemini),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_processor_slower_than_message_timeout_is_504_in_the_clients_format_with_request_id(
    slow_processor: GatewayStack,
    path: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    check: Callable[[dict[str, Any], str], None],
) -> None:
    response = httpx.post(slow_processor.base_url + path, json=payload, headers=headers, timeout=15)
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/json"
    request_id = response.headers["x-request-id"]
    assert request_id
    check(response.json(), request_id)


def test_provider_slower_than_the_route_timeout_is_not_blamed_on_the_processor(
    gateway: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    """Envoy's router 504 (details response_timeout) is rendered by the response pass, not by the local reply map."""
    fake_openai.enqueue(Reply(hang=True))
    response = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={"model": "slow-1", "messages": [{"role": "user", "content": "x"}]},
        timeout=15,
    )
    assert response.status_code == 504
    assert response.json()["error"]["code"] != "gateway_timeout"
    assert "processor" not in response.json()["error"]["message"]
