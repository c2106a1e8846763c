"""Envoy's ready address: GET /ready for a probe from outside the pod, and nothing of admin or the gateway."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.stack import GatewayStack, free_port


@pytest.fixture(scope="module")
def ready_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    config = {
        "envoy": {"ready_port": free_port()},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(Path(tmp_path_factory.mktemp("ready")), config).start()
    yield stack
    stack.stop()


def _ready_url(stack: GatewayStack, path: str) -> str:
    return f"http://127.0.0.1:{stack.config['envoy']['ready_port']}{path}"


def test_ready_listener_answers_200_once_envoys_listeners_are_up(ready_stack: GatewayStack) -> None:
    assert httpx.get(_ready_url(ready_stack, "/ready"), timeout=5).status_code == 200


@pytest.mark.parametrize("path", ["/stats", "/config_dump", "/clusters", "/quitquitquit", "/v1/models"])
def test_ready_listener_serves_neither_admin_nor_the_gateway(ready_stack: GatewayStack, path: str) -> None:
    assert httpx.post(_ready_url(ready_stack, path), timeout=5).status_code == 404
    assert httpx.get(ready_stack.envoy_admin_url + "/ready", timeout=5).status_code == 200  # Envoy still up


def test_ready_listener_says_503_while_envoy_is_failing_health_checks(tmp_path: Path) -> None:
    config = {
        "envoy": {"ready_port": free_port()},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        httpx.post(stack.envoy_admin_url + "/healthcheck/fail", timeout=5).raise_for_status()
        assert httpx.get(_ready_url(stack, "/ready"), timeout=5).status_code == 503
    finally:
        stack.stop()


def test_ready_address_refuses_connections_when_the_gateway_listener_cannot_bind(tmp_path: Path) -> None:
    """A port already taken keeps the gateway listener down; readiness must not claim otherwise."""
    config = {
        "envoy": {"ready_port": free_port()},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.port))
        squatter.listen(1)
        stack.start()  # Envoy itself is up: admin says LIVE
        try:
            with pytest.raises(httpx.ConnectError):
                httpx.get(_ready_url(stack, "/ready"), timeout=5)
        finally:
            stack.stop()
