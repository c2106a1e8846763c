"""Only Envoy may speak to the ext_proc as Envoy does. A neighbour on loopback that dials its TCP port
without Envoy's token, posing as the router pass to feed a forged answer into the cache or settle
made-up usage, is refused (UNAUTHENTICATED) and changes nothing; a process of another user is cut off
on the Unix socket even when the socket's mode lets it connect."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import orjson
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, HttpHeaders, ProcessingRequest

from extproc.contract import EXTPROC_TOKEN_HEADER, LISTENER_METADATA_KEY, PASS_METADATA_KEY
from tests.conftest import OPENAI_KEY
from tests.fakes.providers import FakeOpenAI
from tests.integration.sdk_outcomes import openai_client
from tests.support.stack import GatewayStack

pytestmark = pytest.mark.integration

FORGED = "FORGED by a neighbour"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI) -> Iterator[GatewayStack]:
    config = {
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": fake_openai.base_url + "/v1", "api_key_env": "KEY"}
        ],
        "routes": [{"model": "*", "provider": "openai"}],
        "cache": {"chat_ttl_s": 300},
        "limits": {
            "rules": [{"name": "budget", "key": ["model"], "match": {"models": ["gpt-budget-*"]}, "tokens": 5000}]
        },
    }
    gateway = GatewayStack(Path(tmp_path_factory.mktemp("extproc-peers")), config, {"KEY": OPENAI_KEY}).start()
    yield gateway
    gateway.stop()


def _headers(pairs: dict[str, str], end: bool = False) -> HttpHeaders:
    values = [HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
    return HttpHeaders(headers=HeaderMap(headers=values), end_of_stream=end)


def _forged_exchange(model: str, prompt: str) -> list[ProcessingRequest]:
    """A whole request as the router pass sees it, answered with a forged provider answer."""
    request = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    answer = {
        "id": "chatcmpl-forged",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": FORGED}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1_000_000, "total_tokens": 1_000_001},
    }
    return [
        ProcessingRequest(
            request_headers=_headers(
                {
                    ":method": "POST",
                    ":path": "/v1/chat/completions",
                    ":authority": "127.0.0.1",
                    ":scheme": "http",
                    "content-type": "application/json",
                    "x-request-id": "neighbour-forged",
                }
            )
        ),
        ProcessingRequest(request_body=HttpBody(body=orjson.dumps(request), end_of_stream=True)),
        ProcessingRequest(response_headers=_headers({":status": "200", "content-type": "application/json"})),
        ProcessingRequest(response_body=HttpBody(body=orjson.dumps(answer), end_of_stream=True)),
    ]


def _pose_as_envoy(stack: GatewayStack, messages: list[ProcessingRequest], token: str | None) -> None:
    metadata = [(PASS_METADATA_KEY, "router"), (LISTENER_METADATA_KEY, "main")]
    if token is not None:
        metadata.append((EXTPROC_TOKEN_HEADER, token))
    with grpc.insecure_channel(f"127.0.0.1:{stack.grpc_port}") as channel:
        stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
        list(stub.Process(iter(messages), metadata=tuple(metadata), timeout=10))


def _ask(stack: GatewayStack, model: str, prompt: str) -> str:
    answer = openai_client(stack.base_url).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )
    return answer.choices[0].message.content or ""


@pytest.mark.parametrize("token", [None, "a-guessed-token"], ids=["no-token", "wrong-token"])
def test_a_neighbour_without_envoys_token_cannot_plant_an_answer_in_the_cache(
    stack: GatewayStack, fake_openai: FakeOpenAI, token: str | None
) -> None:
    prompt = f"what is the capital of France ({token})"
    with pytest.raises(grpc.RpcError) as refused:
        _pose_as_envoy(stack, _forged_exchange("gpt-4o-mini", prompt), token)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _ask(stack, "gpt-4o-mini", prompt) != FORGED  # the provider's own answer, not a planted one
    assert fake_openai.requests, "the real client's request reached the provider: nothing was cached for it"


def test_a_neighbour_without_envoys_token_cannot_settle_made_up_usage(stack: GatewayStack) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        _pose_as_envoy(stack, _forged_exchange("gpt-budget-1", "spend it all"), None)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _ask(stack, "gpt-budget-1", "still within budget?")  # no 429: the budget was never charged


def test_envoy_itself_shows_the_token(stack: GatewayStack) -> None:
    """The same port serves Envoy: the credential injector adds the token to each of its streams."""
    assert _ask(stack, "gpt-4o-mini", "through envoy")


# --- the Unix socket: the peer's uid ----------------------------------------------------------------

_PEER = """
import socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.settimeout(5)
sock.connect(sys.argv[1])
try:  # a refused peer may see its connection cut while it still writes
    sock.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    print("served" if sock.recv(1024) else "closed")
except (ConnectionResetError, BrokenPipeError):
    print("closed")
"""


def _dial_as(uid: int, socket_path: str) -> str:
    """What a process of `uid` gets from the socket: the server's first frames, or nothing."""
    done = subprocess.run(
        ["/usr/bin/python3", "-c", _PEER, socket_path], user=uid, capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/python3").exists(), reason="needs root to run as another uid"
)
def test_a_process_of_another_user_is_cut_off_on_the_unix_socket_even_when_its_mode_lets_it_in(
    tmp_path: Path,
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="gw-sock-"))  # traversable by everyone, unlike pytest's tmp
    shared.chmod(0o755)
    sock = shared / "extproc.sock"
    config = {
        "extproc": {"unix_socket": str(sock)},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        sock.chmod(0o666)  # opened wider than the gateway makes it
        assert _dial_as(65534, str(sock)) == "closed"  # nobody: not a byte of HTTP/2
        assert _dial_as(os.geteuid(), str(sock)) == "served"  # the gateway's own user, as Envoy
        assert _ask(stack, "mock-1", "through envoy on the socket")
    finally:
        stack.stop()
        sock.unlink(missing_ok=True)
        shared.rmdir()
