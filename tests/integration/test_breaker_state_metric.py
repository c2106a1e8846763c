"""`gateway_breaker_state` through the real Envoy: two ext_proc workers share their breakers on a
real redis-server, and the main process's /metrics reads each provider's state from there when
scraped, so it follows a breaker opened by requests any worker served, and forgets a provider a
reload removed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import OPENAI_KEY, PROVIDER_ENV
from tests.fakes.openai import FakeOpenAI, openai_error
from tests.support.metrics import samples
from tests.support.redis_server import RedisServer
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

OPEN_S = 2.0


@pytest.fixture
def flaky() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


def _provider(name: str, fake: FakeOpenAI) -> dict[str, str]:
    return {"name": name, "kind": "openai", "base_url": fake.base_url + "/v1", "api_key_env": "TEST_OPENAI_KEY"}


@pytest.fixture
def stack(tmp_path: Path, redis_server: RedisServer, flaky: FakeOpenAI) -> Iterator[GatewayStack]:
    config = {
        "extproc": {"workers": 2},
        "store": {"backend": "redis", "redis": {"url": redis_server.url}},
        "providers": [_provider("flaky", flaky), _provider("steady", flaky)],
        "breakers": {"failure_ratio": 0.5, "min_requests": 4, "window_s": 30, "open_s": OPEN_S},
        "routes": [{"model": "flaky-*", "provider": "flaky"}, {"model": "steady-*", "provider": "steady"}],
    }
    stack = GatewayStack(tmp_path, config, PROVIDER_ENV).start()
    yield stack
    stack.stop()


def states(stack: GatewayStack) -> dict[str, float]:
    return {sample.labels["provider"]: sample.value for sample in samples(stack, "gateway_breaker_state")}


def ask(stack: GatewayStack, model: str) -> int:
    client = openai.OpenAI(api_key="unused", base_url=stack.base_url + "/v1", max_retries=0, timeout=20)
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    except openai.APIStatusError as error:
        return error.status_code
    return 200


def _until(stack: GatewayStack, provider: str, code: float) -> None:
    assert wait_until(lambda: states(stack).get(provider) == code, timeout=15), states(stack)


def test_the_state_gauge_goes_closed_open_half_open_closed(stack: GatewayStack, flaky: FakeOpenAI) -> None:
    assert states(stack) == {"flaky": 0, "steady": 0}  # every provider, before any request
    for _ in range(4):
        flaky.enqueue(openai_error(500, "broken", type_="server_error"))
    assert [ask(stack, "flaky-1") for _ in range(4)] == [500] * 4
    _until(stack, "flaky", 2)
    assert ask(stack, "flaky-1") == 503  # open indeed: refused by whichever worker Envoy picked
    assert states(stack)["steady"] == 0
    _until(stack, "flaky", 1)  # the open time is over: the next request is the probe
    assert ask(stack, "flaky-1") == 200
    _until(stack, "flaky", 0)
    assert len(flaky.requests) == 5


def test_a_provider_a_reload_removed_leaves_no_series(stack: GatewayStack) -> None:
    assert set(states(stack)) == {"flaky", "steady"}
    stack.config["providers"] = stack.config["providers"][:1]
    stack.config["routes"] = stack.config["routes"][:1]
    stack.write_config()
    assert httpx.post(stack.admin_url + "/reload", timeout=30).status_code == 200
    assert set(states(stack)) == {"flaky"}
    assert "gateway_breaker_state" in httpx.get(stack.admin_url + "/metrics").text  # still exported
