"""gateway.yaml edited while traffic flows: a good file takes effect (routes in the ext_proc,
clusters in Envoy), a bad one is refused, logged and counted, and the old one keeps serving."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import OPENAI_KEY
from tests.fakes.providers import FakeOpenAI
from tests.integration.sdk_outcomes import openai_client
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration


def _eventually(check, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change never took effect"
        time.sleep(0.1)


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

        path.write_text("providers: [{name: broken, kind: nonsense}]\n")
        metrics = lambda: httpx.get(stack.admin_url + "/metrics").text  # noqa: E731
        _eventually(lambda: 'gateway_config_reloads_total{result="error"} 1.0' in metrics())
        assert _serves(stack, "gpt-new") and _serves(stack, "mock-1")  # the old config still serves

        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.status_code == 400
        assert any("providers[0].kind" in p for p in answer.json()["problems"])
        assert "configuration rejected" in stack.logs()
    finally:
        stack.stop()


def test_admin_reload_applies_a_good_file(tmp_path: Path) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "a-*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        assert not _serves(stack, "b-1")
        answer = httpx.post(stack.admin_url + "/reload", timeout=30)
        assert answer.json() == {"ok": True, "problems": []}
        client = openai_client(stack.base_url)
        assert client.chat.completions.create(model="a-1", messages=[{"role": "user", "content": "x"}]).choices
    finally:
        stack.stop()
