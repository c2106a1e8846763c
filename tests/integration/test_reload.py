"""gateway.yaml edited while traffic flows: a good file takes effect (routes in the ext_proc,
clusters in Envoy), a bad one is refused, logged and counted, and the old one keeps serving."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import OPENAI_KEY
from tests.fakes.providers import FakeOpenAI
from tests.integration.sdk_outcomes import openai_client
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack, free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    assert wait_until(check, timeout, interval=0.1), "the change never took effect"


def _serves(stack: GatewayStack, model: str) -> bool:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(stack.base_url + "/v1/chat/completions", json=body, timeout=10).status_code == 200


@pytest.mark.parametrize("workers", [1, 2])
def test_config_file_changes_apply_while_serving(tmp_path: Path, fake_openai: FakeOpenAI, workers: int) -> None:
    config = {
        "extproc": {"workers": workers},
        "providers": [{"name": "mock", "kind": "mock", "models": ["mock-1"]}],
        "routes": [{"model": "mock-*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config, {"RELOAD_KEY": OPENAI_KEY}).start()
    try:
        assert _serves(stack, "mock-1") and not _serves(stack, "gpt-new")
        workers_before = stack.worker_pids()
        assert len(workers_before) == workers - 1
        path = tmp_path / "gateway.yaml"
        written = yaml.safe_load(path.read_text())
        written["providers"].append(
            {"name": "late", "kind": "openai", "base_url": fake_openai.base_url + "/v1", "api_key_env": "RELOAD_KEY"}
        )
        written["routes"].append({"model": "gpt-*", "provider": "late"})
        path.write_text(yaml.safe_dump(written))
        # Every worker and Envoy's new cluster serve it: a run of requests all succeed.
        _eventually(lambda: all(_serves(stack, "gpt-new") for _ in range(4)))
        assert fake_openai.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert stack.worker_pids() == workers_before  # workers reloaded in place, none restarted

        applied = httpx.get(stack.admin_url + "/status").json()["config"]
        assert applied["last_reload"]["ok"] and applied["version"] == applied["last_reload"]["version"]

        path.write_text("providers: [{name: broken, kind: nonsense}]\n")
        metrics = lambda: httpx.get(stack.admin_url + "/metrics").text  # noqa: E731
        _eventually(lambda: 'gateway_config_reloads_total{result="error"} 1.0' in metrics())
        assert _serves(stack, "gpt-new") and _serves(stack, "mock-1")  # the old config still serves
        refused = httpx.get(stack.admin_url + "/status").json()["config"]
        assert refused["version"] == applied["version"]
        assert refused["last_error"]["path"] == str(path)
        assert any("providers[0].kind" in problem for problem in refused["last_error"]["problems"])

        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.status_code == 400
        assert any("providers[0].kind" in p for p in answer.json()["problems"])
        _eventually(lambda: "configuration rejected" in stack.logs())  # lines are written by a thread
    finally:
        stack.stop()


def _lds_port(tmp_path: Path) -> int:
    lds = yaml.safe_load((tmp_path / "xds" / "lds.yaml").read_text())
    return lds["resources"][0]["address"]["socket_address"]["port_value"]


def _edit(stack: GatewayStack, change) -> None:
    path = stack.workdir / "gateway.yaml"
    written = yaml.safe_load(path.read_text())
    change(written)
    path.write_text(yaml.safe_dump(written))


def _refused(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_a_rotated_provider_key_file_reaches_the_provider_without_touching_the_config(tmp_path: Path) -> None:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake_openai:  # its own: the key it accepts changes
        secrets = tmp_path / "secrets"  # laid out like a k8s Secret volume: the key behind ..data
        (secrets / "..2026_12_02_01").mkdir(parents=True)
        (secrets / "..2026_12_02_01" / "key").write_text(OPENAI_KEY + "\n")
        (secrets / "..data").symlink_to("..2026_12_02_01")
        (secrets / "key").symlink_to("..data/key")
        provider = {"name": "oa", "kind": "openai", "base_url": fake_openai.base_url + "/v1"}
        config = {
            "providers": [{**provider, "api_key_file": str(secrets / "key")}],
            "routes": [{"model": "*", "provider": "oa"}],
        }
        stack = GatewayStack(tmp_path, config).start()
        try:
            assert _serves(stack, "gpt-4o")
            rotated = "sk-rotated-" + OPENAI_KEY[-8:]
            fake_openai.api_key = rotated  # the provider now refuses the old key
            (secrets / "..2026_12_02_02").mkdir()
            (secrets / "..2026_12_02_02" / "key").write_text(rotated + "\n")
            (secrets / "..data_tmp").symlink_to("..2026_12_02_02")
            (secrets / "..data_tmp").rename(secrets / "..data")
            _eventually(lambda: _serves(stack, "gpt-4o"))
            assert fake_openai.requests[-1].headers["authorization"] == f"Bearer {rotated}"
            assert httpx.get(stack.admin_url + "/status").json()["config"]["last_reload"]["ok"]
        finally:
            stack.stop()


def test_with_an_admin_token_a_loopback_neighbour_cannot_reload_without_it(tmp_path: Path) -> None:
    config = {
        "extproc": {"admin_token_env": "ADMIN_TOKEN"},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config, {"ADMIN_TOKEN": "admin-secret-1"}).start()
    try:
        refused = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert refused.status_code == 403 and refused.json()["problems"] == ["forbidden: the admin bearer token"]
        wrong = httpx.post(stack.admin_url + "/reload", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 403
        granted = httpx.post(
            stack.admin_url + "/reload", headers={"Authorization": "Bearer admin-secret-1"}, timeout=30
        )
        assert granted.json() == {"ok": True, "problems": []}
        assert httpx.get(stack.admin_url + "/metrics").status_code == 200  # reads stay open
    finally:
        stack.stop()


def test_admin_reload_applies_a_good_file(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "a-*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        assert not _serves(stack, "b-1")
        _edit(stack, lambda c: c["routes"].append({"model": "b-*", "provider": "mock"}))
        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.json() == {"ok": True, "problems": []}
        # The answer comes once applied: no waiting needed.
        client = openai_client(stack.base_url)
        assert client.chat.completions.create(model="b-1", messages=[{"role": "user", "content": "x"}]).choices
        assert _serves(stack, "a-1")
    finally:
        stack.stop()


def test_a_reload_that_moves_the_listener_port_is_applied_by_envoy(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        old_port, new_port = stack.port, free_port()
        _edit(stack, lambda c: c["listeners"][0].update(port=new_port))
        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.json() == {"ok": True, "problems": []}
        stack.port = new_port
        _eventually(lambda: _serves(stack, "m"))
        _eventually(lambda: _refused(old_port))
    finally:
        stack.stop()


def test_a_reload_that_changes_the_extproc_port_is_refused_and_traffic_keeps_flowing(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "a-*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        cds_before = (tmp_path / "xds" / "cds.yaml").read_text()

        def change(written: dict) -> None:
            written["extproc"]["port"] = free_port()
            written["routes"].append({"model": "b-*", "provider": "mock"})

        _edit(stack, change)
        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.status_code == 400
        assert answer.json()["problems"] == ["extproc.port changed: restart the gateway to apply it"]
        assert (tmp_path / "xds" / "cds.yaml").read_text() == cds_before  # Envoy still dials the running port
        assert all(_serves(stack, "a-1") for _ in range(5))
        assert not _serves(stack, "b-1")  # nothing of the refused file was applied
    finally:
        stack.stop()


def test_a_reload_envoy_rejects_fails_with_its_reason_and_keeps_the_running_config(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "a-*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 0))
        busy.listen()

        def change(written: dict) -> None:
            written["listeners"][0]["port"] = busy.getsockname()[1]  # passes validation, fails Envoy's bind
            written["routes"].append({"model": "b-*", "provider": "mock"})

        _edit(stack, change)
        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.status_code == 400
        (problem,) = answer.json()["problems"]
        assert problem.startswith("Envoy rejected the new listeners:") and "Address already in use" in problem
        assert _serves(stack, "a-1") and not _serves(stack, "b-1")
        # Rolled back. The file watcher tries the same edit once more on its own; each attempt is
        # counted once its files are rolled back.
        refused = 'result="error"'
        assert wait_until(lambda: metric_sum(stack, "gateway_config_reloads_total", refused) == 2, timeout=15)
        assert _lds_port(tmp_path) == stack.port
    finally:
        busy.close()
        stack.stop()


def test_every_worker_serves_the_config_a_reload_validated(tmp_path: Path) -> None:
    config = {
        "extproc": {"workers": 2},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "a-*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        assert not _serves(stack, "fresh-1")
        _edit(stack, lambda c: c["routes"].append({"model": "fresh-*", "provider": "mock"}))
        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.json() == {"ok": True, "problems": []}
        before = _served_per_worker(stack)
        assert all(_serves(stack, "fresh-1") for _ in range(30))
        after = _served_per_worker(stack)
        assert len(after) == 2 and all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    finally:
        stack.stop()


def _served_per_worker(stack: GatewayStack) -> list[int]:
    """Streams each ext_proc endpoint (one per worker process) has taken, from Envoy's cluster stats."""
    clusters = httpx.get(stack.envoy_admin_url + "/clusters", params={"format": "json"}).json()
    extproc = next(c for c in clusters["cluster_statuses"] if c["name"] == "extproc")
    return [
        int(next((s.get("value", 0) for s in h["stats"] if s["name"] == "rq_total"), 0) or 0)
        for h in extproc["host_statuses"]
    ]


@pytest.mark.skipif(os.environ.get("GATEWAY_TEST_DOCKER") == "1", reason="stops the local Envoy process")
def test_readyz_follows_envoy(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        assert httpx.get(stack.admin_url + "/readyz").status_code == 200
        envoy = stack.envoy_process
        envoy.terminate()
        envoy.wait(10)
        assert httpx.get(stack.admin_url + "/readyz", timeout=10).status_code == 503
        assert httpx.get(stack.admin_url + "/healthz").status_code == 200  # alive, just not ready
    finally:
        stack.stop()
