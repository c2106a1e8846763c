"""Whose address is the client's: by default the TCP peer's, never one the client wrote into X-Forwarded-For.

Envoy reports the client address it trusts in `x-envoy-external-address`
(measured, Envoy 1.40: a loopback peer counts as external, so the header is
set); the ext_proc logs it on the access line. Providers see neither that
header nor X-Forwarded-For (the header allow-list).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROVIDER_ENV, openai_only_config
from tests.fakes.providers import FakeOpenAI
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

SPOOFED = "203.0.113.9"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _client_address(stack: GatewayStack, fake: FakeOpenAI) -> str:
    """The client address on the request's access line; also checks the provider saw no forwarding header."""
    response = httpx.post(
        stack.base_url + "/v1/chat/completions", json=CHAT, headers={"x-forwarded-for": SPOOFED}, timeout=15
    )
    assert response.status_code == 200
    seen = httpx.Headers(list(fake.last_request.headers.items()))
    assert not [name for name in seen if name.startswith("x-envoy-") or name == "x-forwarded-for"]
    request_id = response.headers["x-request-id"]

    def access_line() -> str | None:  # written by the ext_proc's log thread
        lines = (stack.workdir / "extproc.log").read_text().splitlines()
        return next((line for line in lines if request_id in line and '"extproc.access"' in line), None)

    assert wait_until(lambda: access_line() is not None, timeout=10), "no access line for the request"
    return str(json.loads(access_line() or "")["client_address"])


def test_client_sent_forwarded_for_does_not_become_the_client_address(
    gateway: GatewayStack, fake_openai: FakeOpenAI
) -> None:
    assert _client_address(gateway, fake_openai) == "127.0.0.1"  # the peer the gateway really saw


def test_trusted_hops_from_config_make_envoy_believe_the_forwarded_for(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """The setting reaches Envoy: with one trusted proxy in front, the client address is the one it forwarded."""
    config = openai_only_config(fake_openai.base_url, envoy={"xff_num_trusted_hops": 1})
    stack = GatewayStack(tmp_path, config, PROVIDER_ENV).start()
    try:
        assert _client_address(stack, fake_openai) == SPOOFED
    finally:
        stack.stop()
