"""Envoy's admin on a Unix socket: nothing on loopback TCP to dial (a sidecar's neighbours share
loopback), while the gateway itself still drives Envoy through it (readiness, reload acknowledgement)."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import httpx
import pytest

from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _unix_get(path: str, url: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as client:
        return client.get(f"http://envoy-admin{url}")


def test_envoy_admin_on_a_unix_socket_is_owner_only_and_not_on_tcp(tmp_path: Path) -> None:
    admin_socket = str(tmp_path / "envoy-admin.sock")
    config = {
        "envoy": {"admin_socket": admin_socket},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path / "gw", config).start()
    try:
        assert wait_until(Path(admin_socket).exists, timeout=20), "Envoy never opened its admin socket"
        assert stat.S_IMODE(Path(admin_socket).stat().st_mode) == 0o600
        assert _unix_get(admin_socket, "/ready").status_code == 200
        with socket.socket() as probe:  # the TCP admin port the stack reserved stays closed
            assert probe.connect_ex(("127.0.0.1", stack.envoy_admin_port)) != 0
        # The ext_proc reaches Envoy through the socket: a reload waits for Envoy's acknowledgement.
        stack.config["routes"] = [{"model": "new-*", "provider": "mock"}, *config["routes"]]
        stack.write_config()
        answer = httpx.post(stack.admin_url + "/reload", timeout=30).json()
        assert answer["ok"], answer
        chat = {"model": "new-1", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(stack.base_url + "/v1/chat/completions", json=chat, timeout=10).status_code == 200
    finally:
        stack.stop()
