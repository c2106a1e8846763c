"""`extproc run`: the whole local stack starts, answers, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.metrics import metric_sum
from tests.support.stack import free_port, wait_http, wait_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

SLOW_MOCK = """
providers:
  - {name: mock, kind: mock, mock: {latency_ms: 1500}}
routes:
  - {model: "*", provider: mock}
"""


def _start_run(
    config: Path, cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    """`extproc run` on free ports, from `cwd`; returns once Envoy and the ext_proc are ready."""
    ports = {name: free_port() for name in ("listen", "extproc", "admin", "envoy")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "extproc", "run", "--config", str(config)],
        env={
            **os.environ,
            **(env or {}),
            "GATEWAY_LISTEN_PORT": str(ports["listen"]),
            "GATEWAY_EXTPROC_PORT": str(ports["extproc"]),
            "GATEWAY_ADMIN_PORT": str(ports["admin"]),
            "GATEWAY_ENVOY_ADMIN_PORT": str(ports["envoy"]),
        },
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{ports['admin']}/readyz", alive=lambda: proc.poll() is None)
        wait_port(ports["listen"])
        wait_http(f"http://127.0.0.1:{ports['envoy']}/ready")
    except BaseException:
        proc.kill()
        raise
    return proc, ports


def test_run_starts_envoy_and_extproc_and_drains_in_flight_requests_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(SLOW_MOCK + "envoy: {concurrency: 3}\n")
    proc, ports = _start_run(config, tmp_path, {"GATEWAY_XDS_DIR": str(tmp_path / "xds")})
    try:
        server_info = httpx.get(f"http://127.0.0.1:{ports['envoy']}/server_info", timeout=5).json()
        assert server_info["command_line_options"]["concurrency"] == 3  # envoy.concurrency reached Envoy
        result: dict[str, httpx.Response] = {}

        def slow_request() -> None:
            result["response"] = httpx.post(
                f"http://127.0.0.1:{ports['listen']}/v1/chat/completions",
                json={"model": "any", "messages": [{"role": "user", "content": "hi"}]},
                timeout=20,
            )

        admin = f"http://127.0.0.1:{ports['admin']}"
        worker = threading.Thread(target=slow_request)
        worker.start()
        # The request is in the ext_proc (inside the mock's latency) once its stream is counted.
        assert wait_until(lambda: metric_sum(admin, "gateway_active_streams", 'pass_="router"') == 1, timeout=10)
        proc.send_signal(signal.SIGTERM)
        worker.join(20)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result["response"].status_code == 200, output
    assert result["response"].json()["choices"][0]["message"]["content"]
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{ports['listen']}" in output
    assert f"http://127.0.0.1:{ports['admin']}/metrics" in output
    # Envoy called the ext_proc on a socket beside its xDS directory, removed at the stop.
    assert f"unix:{tmp_path / 'extproc.sock'}" in output
    assert not (tmp_path / "extproc.sock").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports['envoy']}/ready", timeout=2)


def _pid_of_ended_process() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _answers(port: int, model: str) -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10).status_code


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    return output


def test_two_gateways_started_in_one_directory_keep_their_own_run_files(tmp_path: Path) -> None:
    """...and remove those of an instance that was killed (its process is gone)."""
    stale = tmp_path / ".run" / str(_pid_of_ended_process())
    (stale / "xds").mkdir(parents=True)
    (stale / "extproc.sock").touch()
    first_config, second_config = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first_config.write_text("providers: [{name: mock, kind: mock}]\nroutes: [{model: first-*, provider: mock}]\n")
    second_config.write_text("providers: [{name: mock, kind: mock}]\nroutes: [{model: second-*, provider: mock}]\n")
    first, first_ports = _start_run(first_config, tmp_path)
    try:
        second, second_ports = _start_run(second_config, tmp_path)
        try:
            assert sorted(p.name for p in (tmp_path / ".run").iterdir()) == sorted([str(first.pid), str(second.pid)])
            # Each Envoy serves its own instance's listeners and routes, not the other's.
            assert _answers(first_ports["listen"], "first-1") == 200
            assert _answers(first_ports["listen"], "second-1") == 404
            assert _answers(second_ports["listen"], "second-1") == 200
            assert _answers(second_ports["listen"], "first-1") == 404
        finally:
            second_output = _stop(second)
    finally:
        first_output = _stop(first)
    assert f"{tmp_path / '.run' / str(first.pid) / 'xds'}" in first_output  # the banner names them
    assert f"{tmp_path / '.run' / str(second.pid) / 'xds'}" in second_output
    assert f"unix:{tmp_path / '.run' / str(first.pid) / 'extproc.sock'}" in first_output
    assert not (tmp_path / ".run" / str(first.pid)).exists()  # removed with their instance
    assert not (tmp_path / ".run" / str(second.pid)).exists()


def test_run_says_so_when_it_must_serve_the_ext_proc_on_tcp_and_only_envoy_is_served(tmp_path: Path) -> None:
    """A run directory too deep for a socket's address (108 bytes): loopback TCP, never silently."""
    deep = tmp_path / ("d" * 100)
    config = tmp_path / "gateway.yaml"
    config.write_text("providers: [{name: mock, kind: mock}]\nroutes: [{model: '*', provider: mock}]\n")
    proc, ports = _start_run(config, tmp_path, {"GATEWAY_XDS_DIR": str(deep / "xds")})
    try:
        assert _answers(ports["listen"], "any") == 200  # Envoy shows its token
    finally:
        output = _stop(proc)
    assert f"ext_proc gRPC       127.0.0.1:{ports['extproc']}  (TCP: Envoy's token required)" in output
    warning = next(line for line in output.splitlines() if "not on a Unix socket" in line)
    assert "any local process can connect" in warning
    assert str(deep / "xds" / "secrets" / "extproc_token.yaml") in warning
    assert "extproc.unix_socket" in warning
