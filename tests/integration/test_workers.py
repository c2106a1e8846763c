"""Several ext_proc processes, each an endpoint of Envoy's ext_proc cluster."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from extproc.auth.apikeys import hash_key
from tests.integration.sdk_outcomes import openai_client
from tests.support.stack import GatewayStack, wait_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_requests_spread_over_worker_processes_and_metrics_merge(tmp_path: Path) -> None:
    config = {
        "extproc": {"workers": 2},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        client = openai_client(stack.base_url)
        for _ in range(40):
            assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
        clusters = httpx.get(stack.envoy_admin_url + "/clusters", params={"format": "json"}).json()
        extproc = next(c for c in clusters["cluster_statuses"] if c["name"] == "extproc")
        served = []
        for host in extproc["host_statuses"]:
            stats = {s["name"]: int(s.get("value", 0)) for s in host["stats"]}
            served.append(stats.get("rq_total", 0))
        assert len(served) == 2
        assert all(count > 0 for count in served), served
        metrics = httpx.get(stack.admin_url + "/metrics").text
        line = next(line for line in metrics.splitlines() if line.startswith("gateway_requests_total{"))
        assert float(line.rsplit(" ", 1)[1]) == 40
    finally:
        stack.stop()


def test_a_worker_process_loads_neither_the_config_validator_nor_the_yaml_parser(tmp_path: Path) -> None:
    """The main process reads and validates the files (gateway.yaml, the default prices, Envoy's token)
    and hands a worker what it read: jsonschema (its rpds extension) and PyYAML (its _yaml extension)
    stay out of the worker's memory."""
    config = {
        "extproc": {"workers": 2},
        "clients": [{"id": "team", "key_hashes": [hash_key("sk-team")]}],
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        client = openai_client(stack.base_url, api_key="sk-team")
        for _ in range(20):
            assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
        assert all(count > 0 for count in _served(stack))  # the worker served requests too
        (worker,) = stack.worker_pids()
        assert _native_modules(stack.extproc_process.pid) >= {"rpds", "_yaml"}  # the probe sees them where loaded
        assert _native_modules(worker) & {"rpds", "_yaml"} == set()
    finally:
        stack.stop()


def _native_modules(pid: int) -> set[str]:
    """The Python extension modules mapped into a process (their .so files), by module name."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    files = {Path(line.split()[-1]).name for line in maps if line.endswith(".so")}
    return {name.split(".", 1)[0] for name in files if ".cpython-" in name}


def test_extproc_over_a_unix_socket(tmp_path: Path) -> None:
    import tempfile

    socket_dir = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))  # socket paths must stay short
    config = {
        "extproc": {"unix_socket": str(socket_dir / "extproc.sock")},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        answer = openai_client(stack.base_url).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "over a socket"}]
        )
        assert answer.choices[0].message.content
        assert (socket_dir / "extproc.sock").is_socket()
        assert (socket_dir / "extproc.sock").stat().st_mode & 0o777 == 0o600  # no other uid may dial it
        clusters = httpx.get(stack.envoy_admin_url + "/clusters").text
        assert f"extproc::{socket_dir / 'extproc.sock'}::rq_total::1" in clusters
    finally:
        stack.stop()


def test_a_worker_that_dies_is_ejected_then_restarted(tmp_path: Path) -> None:
    import os
    import signal

    config = {
        "extproc": {"workers": 2},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        client = openai_client(stack.base_url)
        ask = lambda: client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])  # noqa: E731
        (worker,) = stack.worker_pids()
        os.kill(worker, signal.SIGKILL)
        failures = 0
        for _ in range(20):
            try:
                ask()
            except openai.InternalServerError:
                failures += 1
        # A stream that meets the dead endpoint fails (a 503 in the client's format) until Envoy
        # ejects it: at most one per Envoy worker thread (each has its own connection to it);
        # every other request goes to the live worker.
        assert failures <= stack.envoy_concurrency
        assert wait_until(lambda: stack.worker_pids() not in ([], [worker]), timeout=15), "the worker was not restarted"
        wait_port(stack.grpc_port + 1)
        assert wait_until(lambda: not _ejected(stack), timeout=15), "Envoy kept the restarted worker ejected"
        before = _served(stack)
        for _ in range(20):
            assert ask().choices
        after = _served(stack)
        assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)  # both serve again
    finally:
        stack.stop()


def _ejected(stack: GatewayStack) -> bool:
    """Whether Envoy's outlier detection keeps an ext_proc endpoint out of the balancing."""
    clusters = httpx.get(stack.envoy_admin_url + "/clusters", params={"format": "json"}).json()
    extproc = next(c for c in clusters["cluster_statuses"] if c["name"] == "extproc")
    return any(h.get("health_status", {}).get("failed_outlier_check") for h in extproc["host_statuses"])


def _served(stack: GatewayStack) -> list[int]:
    clusters = httpx.get(stack.envoy_admin_url + "/clusters", params={"format": "json"}).json()
    extproc = next(c for c in clusters["cluster_statuses"] if c["name"] == "extproc")
    return [
        int(next((s.get("value", 0) for s in h["stats"] if s["name"] == "rq_total"), 0) or 0)
        for h in extproc["host_statuses"]
    ]
