"""xds/envoy_admin.py against the real Envoy: its readiness, the xDS version it applied, the update
it refused and Envoy's own reason, and a drain."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.xds.envoy_admin import EnvoyAdmin
from extproc.xds.render import envoy_binary, write_bootstrap, write_clusters, write_listeners
from tests.support.stack import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def gateway(tmp_path: Path, port: int, admin_port: int) -> GatewayConfig:
    """A mock-only gateway listening on `port`."""
    text = f"""
providers: [{{name: m, kind: mock}}]
routes: [{{model: '*', provider: m}}]
listeners: [{{name: main, port: {port}}}]
envoy: {{admin_port: {admin_port}, xds_dir: {tmp_path / "xds"}}}
"""
    return load_text(text, {}, tmp_path)


@pytest.fixture
def envoy(tmp_path: Path) -> Iterator[GatewayConfig]:
    """Envoy alone, on the xDS files of a mock-only gateway (version v1), its admin on loopback."""
    config = gateway(tmp_path, free_port(), free_port())
    xds = Path(config.envoy.xds_dir)
    write_clusters(config, xds, "v1")
    write_listeners(config, xds, "v1")
    bootstrap = write_bootstrap(config, xds)
    args = [envoy_binary(), "-c", str(bootstrap), "--disable-hot-restart", "-l", "error", "--concurrency", "1"]
    with (tmp_path / "envoy.log").open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: asyncio.run(EnvoyAdmin.of(config.envoy).ready()), timeout=20), (
            tmp_path / "envoy.log"
        ).read_text()
        yield config
    finally:
        process.terminate()
        process.wait(10)


def test_the_versions_envoy_applied_are_the_ones_written(envoy: GatewayConfig) -> None:
    state = asyncio.run(EnvoyAdmin.of(envoy.envoy).xds_state())
    assert state.versions == {"clusters": "v1", "listeners": "v1"}
    assert state.rejected == {"clusters": 0, "listeners": 0}


def test_a_refused_update_is_counted_its_version_not_applied_and_envoys_reason_read(
    envoy: GatewayConfig, tmp_path: Path
) -> None:
    admin = EnvoyAdmin.of(envoy.envoy)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        moved = gateway(tmp_path, busy.getsockname()[1], envoy.envoy.admin_port)  # Envoy's bind fails
        write_listeners(moved, Path(envoy.envoy.xds_dir), "v2")
        assert wait_until(lambda: asyncio.run(admin.xds_state()).rejected["listeners"] == 1, timeout=10)
        assert asyncio.run(admin.xds_state()).versions == {"clusters": "v1", "listeners": "v1"}
        reasons = asyncio.run(admin.rejection_reasons())
    assert any("Address already in use" in reason for reason in reasons), reasons


def test_a_drain_closes_the_gateway_listener_and_returns_without_requests_in_flight(envoy: GatewayConfig) -> None:
    port = envoy.listeners[0].port
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    asyncio.run(asyncio.wait_for(EnvoyAdmin.of(envoy.envoy).drain(5), 5))

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    assert wait_until(refused, timeout=10)
