"""Envoy's ready address: GET /ready for a probe, GET /stats/prometheus (Envoy's) and GET /metrics
(the ext_proc's) for a scraper from outside the pod, and nothing else of either admin or the gateway."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import GatewayStack, free_port

pytestmark = pytest.mark.integration


def _config(**envoy: str) -> dict[str, Any]:
    return {
        "envoy": {"ready_port": free_port(), **envoy},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }


@pytest.fixture(scope="module")
def ready_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    stack = GatewayStack(Path(tmp_path_factory.mktemp("ready")), _config()).start()
    yield stack
    stack.stop()


def _ready_url(stack: GatewayStack, path: str) -> str:
    return f"http://127.0.0.1:{stack.config['envoy']['ready_port']}{path}"


def test_ready_listener_answers_200_once_envoys_listeners_are_up(ready_stack: GatewayStack) -> None:
    assert httpx.get(_ready_url(ready_stack, "/ready"), timeout=5).status_code == 200


@pytest.mark.parametrize(
    "path", ["/stats", "/config_dump", "/clusters", "/quitquitquit", "/v1/models", "/status", "/reload", "/healthz"]
)
def test_ready_listener_serves_neither_admin_nor_the_gateway(ready_stack: GatewayStack, path: str) -> None:
    assert httpx.post(_ready_url(ready_stack, path), timeout=5).status_code == 404
    assert httpx.get(ready_stack.envoy_admin_url + "/ready", timeout=5).status_code == 200  # Envoy still up


def _assert_envoy_metrics(answer: httpx.Response) -> None:
    """Envoy's own stats in Prometheus's text format."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    lines = answer.text.splitlines()
    assert "# TYPE envoy_server_live gauge" in lines
    assert any(line.startswith("envoy_server_live{} 1") for line in lines)
    assert all(line.startswith(("# TYPE envoy_", "envoy_")) for line in lines if line)


def test_ready_listener_serves_envoys_metrics_for_prometheus(ready_stack: GatewayStack) -> None:
    _assert_envoy_metrics(httpx.get(_ready_url(ready_stack, "/stats/prometheus"), timeout=5))


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/config_dump", 404),
        ("GET", "/stats", 404),
        ("GET", "/stats/prometheus/", 404),
        ("POST", "/quitquitquit", 404),
        ("POST", "/stats/prometheus", 405),
        ("PUT", "/stats/prometheus", 405),
        ("POST", "/metrics", 405),
        ("GET", "/metrics/", 404),
    ],
)
def test_ready_listener_lets_nothing_but_get_stats_prometheus_reach_admin(
    ready_stack: GatewayStack, method: str, path: str, status: int
) -> None:
    answer = httpx.request(method, _ready_url(ready_stack, path), timeout=5)
    assert answer.status_code == status
    if status == 405:
        assert answer.headers["allow"] == "GET"
    assert "envoy_" not in answer.text and "configs" not in answer.text
    assert ready_stack.envoy_process.poll() is None  # Envoy keeps running
    assert httpx.get(_ready_url(ready_stack, "/ready"), timeout=5).status_code == 200


def test_ready_listener_serves_the_ext_procs_metrics_so_its_admin_can_stay_on_loopback(
    ready_stack: GatewayStack,
) -> None:
    answer = httpx.get(_ready_url(ready_stack, "/metrics"), timeout=5)
    assert answer.status_code == 200
    assert "# TYPE gateway_config_reloads_total counter" in answer.text.splitlines()


def test_metrics_reach_an_admin_on_a_unix_socket(tmp_path: Path) -> None:
    """The pod's setting: admin on a Unix socket, metrics still on the ready port."""
    stack = GatewayStack(tmp_path, _config(admin_socket=str(tmp_path / "envoy-admin.sock"))).start()
    try:
        _assert_envoy_metrics(httpx.get(_ready_url(stack, "/stats/prometheus"), timeout=5))
    finally:
        stack.stop()


def test_ready_listener_says_503_while_envoy_is_failing_health_checks(tmp_path: Path) -> None:
    stack = GatewayStack(tmp_path, _config()).start()
    try:
        httpx.post(stack.envoy_admin_url + "/healthcheck/fail", timeout=5).raise_for_status()
        assert httpx.get(_ready_url(stack, "/ready"), timeout=5).status_code == 503
    finally:
        stack.stop()


def test_ready_address_refuses_connections_when_the_gateway_listener_cannot_bind(tmp_path: Path) -> None:
    """A port already taken keeps the gateway listener down; readiness must not claim otherwise."""
    stack = GatewayStack(tmp_path, _config())
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.port))
        squatter.listen(1)
        stack.start()  # Envoy itself is up: admin says LIVE
        try:
            with pytest.raises(httpx.ConnectError):
                httpx.get(_ready_url(stack, "/ready"), timeout=5)
        finally:
            stack.stop()
