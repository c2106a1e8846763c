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

from tests.support.stack import free_port, wait_http, wait_port

pytestmark = pytest.mark.integration

SLOW_MOCK = """
providers:
  - {name: mock, kind: mock, mock: {latency_ms: 1500}}
routes:
  - {model: "*", provider: mock}
"""


def test_run_starts_envoy_and_extproc_and_drains_in_flight_requests_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(SLOW_MOCK)
    ports = {name: free_port() for name in ("listen", "extproc", "admin", "envoy")}
    env = {
        **os.environ,
        "GATEWAY_LISTEN_PORT": str(ports["listen"]),
        "GATEWAY_EXTPROC_PORT": str(ports["extproc"]),
        "GATEWAY_ADMIN_PORT": str(ports["admin"]),
        "GATEWAY_ENVOY_ADMIN_PORT": str(ports["envoy"]),
        "GATEWAY_XDS_DIR": str(tmp_path / "xds"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "extproc", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{ports['admin']}/readyz")
        wait_port(ports["listen"])
        wait_http(f"http://127.0.0.1:{ports['envoy']}/ready")
        result: dict[str, httpx.Response] = {}

        def slow_request() -> None:
            result["response"] = httpx.post(
                f"http://127.0.0.1:{ports['listen']}/v1/chat/completions",
                json={"model": "any", "messages": [{"role": "user", "content": "hi"}]},
                timeout=20,
            )

        worker = threading.Thread(target=slow_request)
        worker.start()
        threading.Event().wait(0.5)  # the request is now inside the mock's latency
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
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports['envoy']}/ready", timeout=2)
