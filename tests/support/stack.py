"""Start the real gateway for tests: the ext_proc service and the real Envoy binary.

Both run as local processes by default, on free loopback ports. With
GATEWAY_TEST_DOCKER=1 and a Docker engine, Envoy runs in a container via
testcontainers instead (host networking), so Docker-based CI runs the same suite.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from extproc.config.load import load_file
from extproc.xds.render import envoy_binary, write_bootstrap, write_xds
from extproc.xds.render_credentials import secrets_dir
from extproc.xds.render_peer import read_token
from tests.support.wait import wait_until

# Ports handed out in this test process: the kernel may give the same free port to two callers
# that bind and close one after the other, and two parts of one stack must never share a port.
_handed_out: set[int] = set()
# Below the kernel's ephemeral range (32768-60999 by default), so no outgoing connection
# takes a port between the moment it is chosen and the moment a server binds it.
_PORT_RANGE = range(20000, 32768)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports (ext_proc workers listen on port, port+1, ...)."""
    for _ in range(500):
        first = random.randrange(_PORT_RANGE.start, _PORT_RANGE.stop - count)
        run = range(first, first + count)
        if any(port in _handed_out for port in run) or not all(_bindable(port) for port in run):
            continue
        _handed_out.update(run)
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


def free_port() -> int:
    return free_port_run(1)


def wait_http(url: str, timeout: float = 20.0, alive: Callable[[], bool] = lambda: True) -> None:
    """Wait for a 200 from `url`; give up at once when `alive` says the server process died."""
    last: list[Exception] = []

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except Exception as error:  # not up yet
            last[:] = [error]
            return False

    if not wait_until(lambda: not alive() or answers(), timeout, interval=0.05) or not alive():
        raise TimeoutError(f"{url} not ready after {timeout}s: {last[0] if last else 'the server exited'}")


def wait_port(port: int, timeout: float = 20.0) -> None:
    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    if not wait_until(listening, timeout, interval=0.05):
        raise TimeoutError(f"port {port} not listening after {timeout}s")


class GatewayStack:
    """The gateway under test. `config` is a gateway.yaml mapping; ports are filled in."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.config = config
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.grpc_port = free_port_run(config.get("extproc", {}).get("workers", 1))
        self.admin_port = free_port()
        self.envoy_admin_port = free_port()
        self.extra_listener_ports: list[int] = []
        # Envoy's worker threads, explicit: tests that count per-thread effects must not depend on the cores.
        self.envoy_concurrency = 2
        self._procs: list[subprocess.Popen[bytes]] = []
        self._container: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def envoy_admin_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy_admin_port}"

    @property
    def extproc_process(self) -> subprocess.Popen[bytes]:
        """The ext_proc service's (main) process, e.g. to stop it in a failure test."""
        return self._procs[0]

    @property
    def envoy_process(self) -> subprocess.Popen[bytes]:
        """The Envoy process (local mode only)."""
        return self._procs[1]

    @property
    def extproc_token(self) -> str:
        """The token Envoy shows the ext_proc on TCP (what a neighbour does not have)."""
        token = read_token(secrets_dir(self.workdir / "xds"))
        assert token is not None, "no ext_proc token was rendered"
        return token

    def worker_pids(self) -> list[int]:
        """The ext_proc's extra worker processes (children started by multiprocessing's spawn)."""
        parent = str(self.extproc_process.pid)
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if fields[1] == parent and b"spawn_main" in cmdline:
                pids.append(int(stat.parent.name))
        return pids

    def write_config(self) -> Path:
        config = dict(self.config)
        listeners = [dict(item) for item in config.get("listeners", [{"name": "main"}])]
        listeners[0].update(port=self.port, address="127.0.0.1")
        for listener in listeners[1:]:
            listener.setdefault("port", free_port())
            listener.setdefault("address", "127.0.0.1")
            self.extra_listener_ports.append(listener["port"])
        config["listeners"] = listeners
        config["extproc"] = {
            **config.get("extproc", {}),
            "address": "127.0.0.1",
            "port": self.grpc_port,
            "admin_port": self.admin_port,
            "grace_period_s": 2,
        }
        config["envoy"] = {
            **config.get("envoy", {}),
            "admin_port": self.envoy_admin_port,
            "xds_dir": str(self.workdir / "xds"),
        }
        path = self.workdir / "gateway.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> GatewayStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.write_config()
        loaded = load_file(config_path, self.env)
        xds_dir = self.workdir / "xds"
        write_xds(loaded, xds_dir)
        bootstrap = write_bootstrap(loaded, xds_dir)
        log = open(self.workdir / "extproc.log", "wb")  # noqa: SIM115 - lives as long as the process
        self._procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "extproc", "serve", "--config", str(config_path)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        if os.environ.get("GATEWAY_TEST_DOCKER") == "1":
            self._start_envoy_container(bootstrap)
        else:
            envoy_log = open(self.workdir / "envoy.log", "wb")  # noqa: SIM115
            # No hot restart: any number of test Envoys share the host without shared-memory clashes.
            args = [envoy_binary(), "-c", str(bootstrap), "--disable-hot-restart", "-l", "warning"]
            args += ["--concurrency", str(self.envoy_concurrency)]
            self._procs.append(subprocess.Popen(args, stdout=envoy_log, stderr=subprocess.STDOUT))
        try:
            wait_http(f"{self.admin_url}/readyz", alive=self._running)
            if not self.config.get("envoy", {}).get("admin_socket"):
                wait_http(f"{self.envoy_admin_url}/ready", alive=self._running)
            wait_port(self.port)
            for port in self.extra_listener_ports:
                wait_port(port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"gateway did not start:\n{self.logs()}") from None
        return self

    def _running(self) -> bool:
        return all(proc.poll() is None for proc in self._procs)

    def _start_envoy_container(self, bootstrap: Path) -> None:
        from testcontainers.core.container import DockerContainer

        image = os.environ.get("GATEWAY_TEST_ENVOY_IMAGE", "envoyproxy/envoy:v1.40-latest")
        container = DockerContainer(image).with_kwargs(network_mode="host")
        # The parent too: tests keep certificates beside the work directory.
        shared = str(self.workdir.parent)
        container = container.with_volume_mapping(shared, shared, "rw")
        self._container = container.with_command(
            f"-c {bootstrap} --disable-hot-restart -l warning --concurrency {self.envoy_concurrency}"
        ).start()

    def logs(self) -> str:
        out = []
        for name in ("extproc.log", "envoy.log"):
            path = self.workdir / name
            if path.exists():
                out.append(f"--- {name}\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._procs.clear()
        if self._container is not None:
            self._container.stop()
            self._container = None
