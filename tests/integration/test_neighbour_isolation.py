"""Nothing else on loopback can obtain a provider key: not by dialing the ext_proc's gRPC port as if it
were Envoy (a neighbour without Envoy's token is refused outright, test_extproc_peers.py; these show
that even a peer holding it gets no key), not from Envoy's admin, not from the stack's logs. Client
keys stay out of the logs too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import openai
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue, Metadata
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, HttpHeaders, ProcessingRequest
from google.protobuf.struct_pb2 import Struct

from extproc.contract import (
    ATTRIBUTES_KEY,
    CLIENT_PATH_KEY,
    EXTPROC_TOKEN_HEADER,
    LISTENER_METADATA_KEY,
    PASS_METADATA_KEY,
    POOL_KEY,
    PROVIDER_ATTRIBUTE,
    REQUEST_METADATA_NAMESPACE,
    STREAM_KEY,
)
from tests.conftest import ANTHROPIC_KEY, GEMINI_KEY, OPENAI_KEY
from tests.fakes.providers import FakeOpenAI
from tests.integration.conftest import AuthGateway
from tests.integration.sdk_outcomes import anthropic_client, gemini_client, openai_client
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

PROVIDER_KEYS = (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY)
PROVIDERS = ("openai", "anthropic", "gemini", "azure")  # every kind that sends a key


def _headers(pairs: dict[str, str]) -> HttpHeaders:
    return HttpHeaders(
        headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]),
        end_of_stream=False,
    )


@dataclass
class Peer:
    channel: grpc.Channel
    token: str  # Envoy's: as if the neighbour had it


@pytest.fixture
def channel(auth_gateway: AuthGateway) -> Iterator[Peer]:
    with grpc.insecure_channel(f"127.0.0.1:{auth_gateway.stack.grpc_port}") as chan:
        grpc.channel_ready_future(chan).result(timeout=10)
        yield Peer(chan, auth_gateway.stack.extproc_token)


def _exchange(peer: Peer, metadata: tuple[tuple[str, str], ...], messages: list[ProcessingRequest]) -> bytes:
    """Every answer of one stream, serialized: whatever a neighbour could read from it."""
    stub = external_processor_pb2_grpc.ExternalProcessorStub(peer.channel)
    metadata = (*metadata, (EXTPROC_TOKEN_HEADER, peer.token))
    answers = list(stub.Process(iter(messages), metadata=metadata, timeout=10))
    assert answers
    return b"".join(answer.SerializeToString() for answer in answers)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_neighbour_posing_as_the_upstream_pass_gets_no_provider_key(channel: Peer, provider: str) -> None:
    attributes = Struct()
    attributes.update({PROVIDER_ATTRIBUTE: provider})
    facts = Struct()
    facts.update({POOL_KEY: "every-kind", CLIENT_PATH_KEY: "/v1/chat/completions", STREAM_KEY: False})
    headers = ProcessingRequest(
        request_headers=_headers(
            {
                ":method": "POST",
                ":path": "/v1/chat/completions",
                ":authority": "127.0.0.1",
                "content-type": "application/json",
            }
        ),
        attributes={ATTRIBUTES_KEY: attributes},
        metadata_context=Metadata(filter_metadata={REQUEST_METADATA_NAMESPACE: facts}),
    )
    body = b'{"model": "pool-every-1", "messages": [{"role": "user", "content": "hi"}]}'
    request_body = ProcessingRequest(request_body=HttpBody(body=body, end_of_stream=True))
    answer = _exchange(channel, ((PASS_METADATA_KEY, "upstream"),), [headers, request_body])
    assert b":path" in answer  # the pass did its work: it rendered the provider's path and body
    assert not [key for key in PROVIDER_KEYS if key.encode() in answer]


def test_neighbour_posing_as_the_router_pass_gets_no_provider_key(
    channel: Peer, auth_gateway: AuthGateway, fake_openai: FakeOpenAI
) -> None:
    headers = {
        ":method": "POST",
        ":path": "/v1/chat/completions",
        ":authority": "127.0.0.1",
        ":scheme": "http",
        "content-type": "application/json",
        "authorization": f"Bearer {auth_gateway.full_key}",
        "x-request-id": "neighbour-1",
    }
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    messages = [
        ProcessingRequest(request_headers=_headers(headers)),
        ProcessingRequest(request_body=HttpBody(body=body, end_of_stream=True)),
    ]
    answer = _exchange(channel, ((PASS_METADATA_KEY, "router"), (LISTENER_METADATA_KEY, "main")), messages)
    assert b"provider_openai" in answer  # routed like a real request
    assert not [key for key in PROVIDER_KEYS if key.encode() in answer]
    assert fake_openai.requests == []  # the ext_proc itself never calls a provider


def test_envoy_admin_config_dump_shows_provider_keys_redacted(auth_gateway: AuthGateway) -> None:
    response = httpx.get(auth_gateway.stack.envoy_admin_url + "/config_dump?include_eds", timeout=10)
    assert response.status_code == 200
    dump = response.text
    assert "provider_key_openai" in dump  # the secrets are in the dump, by name
    assert "[redacted]" in dump
    assert not [key for key in PROVIDER_KEYS if key in dump]


def test_logs_hold_neither_provider_nor_client_keys(auth_gateway: AuthGateway) -> None:
    url, full, wrong = auth_gateway.base_url, auth_gateway.full_key, "gw-never-issued-key-in-the-logs"
    openai_client(url, full).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    anthropic_client(url, full).messages.create(
        model="claude-test-1", max_tokens=20, messages=[{"role": "user", "content": "x"}]
    )
    gemini = gemini_client(url, full)
    gemini.models.generate_content(model="gemini-2.5-flash", contents="x")
    body = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    httpx.post(f"{url}/v1beta/models/gemini-2.5-flash:generateContent?key={full}", json=body, timeout=20)
    httpx.post(f"{url}/v1beta/models/gemini-2.5-flash:generateContent?key={wrong}", json=body, timeout=20)
    with pytest.raises(openai.AuthenticationError):
        openai_client(url, wrong).models.list()
    token = auth_gateway.token()
    openai_client(url, token).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    secrets = [*PROVIDER_KEYS, full, auth_gateway.limited_key, wrong, token]
    workdir = auth_gateway.stack.workdir
    # Access-log lines are written after the answer: wait until the last request's line is there.
    assert wait_until(lambda: "gpt-4o-mini" in (workdir / "extproc.log").read_text(errors="replace"), timeout=5)
    for name in ("extproc.log", "envoy.log"):
        text = (workdir / name).read_text(errors="replace")
        assert not [secret[:12] for secret in secrets if secret in text], name
