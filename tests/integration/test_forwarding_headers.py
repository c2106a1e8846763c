"""Whose address is the client's: by default the TCP peer's, never one the client wrote into X-Forwarded-For.

Observed at the provider: Envoy reports the client address it trusts in
`x-envoy-external-address` (measured, Envoy 1.40: a loopback peer counts as
external, so the header is set).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import PROVIDER_ENV
from tests.fakes.providers import FakeOpenAI
from tests.support.stack import GatewayStack

SPOOFED = "203.0.113.9"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _headers_at_provider(stack: GatewayStack, fake: FakeOpenAI) -> httpx.Headers:
    response = httpx.post(
        stack.base_url + "/v1/chat/completions", json=CHAT, headers={"x-forwarded-for": SPOOFED}, timeout=15
    )
    assert response.status_code == 200
    return httpx.Headers(list(fake.last_request.headers.items()))


def test_client_sent_forwarded_for_does_not_become_the_client_address(
    gateway: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    seen = _headers_at_provider(gateway, fake_openai)
    assert seen["x-envoy-external-address"] == "127.0.0.1"  # the peer the gateway really saw
    forwarded = [hop.strip() for hop in seen["x-forwarded-for"].split(",")]
    assert forwarded[0] == SPOOFED and forwarded[-1] != SPOOFED  # kept as history, Envoy appended its own hop


def test_trusted_hops_from_config_make_envoy_believe_the_forwarded_for(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """The setting reaches Envoy: with one trusted proxy in front, the client address is the one it forwarded."""
    config = {
        "envoy": {"xff_num_trusted_hops": 1},
        "providers": [
            {
                "name": "openai",
                "kind": "openai",
                "base_url": fake_openai.base_url + "/v1",
                "api_key_env": "TEST_OPENAI_KEY",
            }
        ],
        "routes": [{"model": "*", "provider": "openai"}],
    }
    stack = GatewayStack(tmp_path, config, PROVIDER_ENV).start()
    try:
        assert _headers_at_provider(stack, fake_openai)["x-envoy-external-address"] == SPOOFED
    finally:
        stack.stop()
