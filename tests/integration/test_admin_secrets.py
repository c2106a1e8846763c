"""The admin server never hands out a secret: a refused reload's problems (returned by POST /reload,
kept for GET /status, logged) quote no value of the file or the environment, and with an admin token
configured /status needs it as POST /reload does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakes.base import wait_until
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-for-the-status-test"
SECRET = "AIzaSyLeakedKey0123456789abcdefXYZ"  # Gemini-shaped: letters and digits only
MOCK_ONLY = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "*", "provider": "mock"}]}


def _bad_files(good: dict) -> dict[str, str]:
    """Each a config an operator could write by mistake, with the key where it must never be."""
    pasted = yaml.safe_load(yaml.safe_dump(good))
    pasted["providers"].append({"name": "g", "kind": "gemini", "base_url": "https://x.test", "api_key_env": SECRET})
    wrong_type = yaml.safe_load(yaml.safe_dump(good))
    wrong_type["providers"][0]["models"] = SECRET
    broken = yaml.safe_dump(good) + f"extra: [{{key: {SECRET}}}\n  oops: {SECRET}: ]\n"
    return {
        "key pasted as the env var's name": yaml.safe_dump(pasted),
        "key in a field of another type": yaml.safe_dump(wrong_type),
        "key on a line that does not parse": broken,
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    config = {**MOCK_ONLY, "extproc": {"admin_token_env": "GW_ADMIN_TOKEN"}}
    gateway = GatewayStack(Path(tmp_path_factory.mktemp("admin-secrets")), config, {"GW_ADMIN_TOKEN": ADMIN_TOKEN})
    yield gateway.start()
    gateway.stop()


def test_status_needs_the_admin_token_once_one_is_configured(stack: GatewayStack) -> None:
    assert httpx.get(stack.admin_url + "/status", timeout=10).status_code == 403
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.get(stack.admin_url + "/status", headers=wrong, timeout=10).status_code == 403
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = httpx.get(stack.admin_url + "/status", headers=right, timeout=10)
    assert answer.status_code == 200 and answer.json()["config"]["version"]
    assert httpx.get(stack.admin_url + "/metrics", timeout=10).status_code == 200  # scrapers stay welcome


@pytest.mark.parametrize("mistake", list(_bad_files(MOCK_ONLY)))
def test_a_refused_reload_never_quotes_the_secret(stack: GatewayStack, mistake: str) -> None:
    path = stack.workdir / "gateway.yaml"
    good = path.read_text()
    log = stack.workdir / "extproc.log"
    refusals = log.read_text(errors="replace").count("configuration rejected")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        path.write_text(_bad_files(yaml.safe_load(good))[mistake])
        answer = httpx.post(stack.admin_url + "/reload", headers=auth, timeout=30)
        assert answer.status_code == 400 and answer.json()["problems"]
        assert SECRET not in answer.text
        status = httpx.get(stack.admin_url + "/status", headers=auth, timeout=10)
        problems = status.json()["config"]["last_error"]["problems"]
        assert problems and SECRET not in status.text
        # Log lines are written by a thread: wait for this refusal's.
        assert wait_until(lambda: log.read_text(errors="replace").count("configuration rejected") > refusals, 10)
        assert SECRET not in log.read_text(errors="replace")
    finally:
        path.write_text(good)
