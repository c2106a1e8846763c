"""OpenAI-compatible traffic through the real Envoy and the ext_proc, with the official SDK."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import openai
import pytest
import trustme

from tests.conftest import OPENAI_KEY
from tests.fakes.providers import FakeAnthropic, FakeOpenAI, Reply
from tests.support.metrics import metric_sum
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

CLIENT_KEY = "sk-client-own-key"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture
def client(gateway: GatewayStack) -> openai.OpenAI:
    return openai.OpenAI(api_key=CLIENT_KEY, base_url=gateway.base_url + "/v1", max_retries=0, timeout=20)


def test_chat_reaches_openai_provider_with_provider_key_not_client_key(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}])
    assert "ping" in answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens > 0
    seen = fake_openai.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert CLIENT_KEY not in str(dict(seen.headers))
    assert not [k for k in seen.headers if k.lower().startswith("x-gw-")]
    assert "gzip" not in seen.headers.get("accept-encoding", "")  # answers must come back readable
    assert seen.json["model"] == "gpt-4o-mini"


def test_streaming_chat_yields_all_chunks_and_usage(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "stream please" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert fake_openai.requests[-1].json["stream"] is True


def test_tools_in_request_and_tool_calls_in_answer(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "weather in Paris?"}], tools=TOOLS
    )
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert answer.choices[0].finish_reason == "tool_calls"
    assert fake_openai.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"


def test_recorded_tool_call_fixture_passes_through(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue_fixture("openai/chat-tools.response.json")
    answer = client.chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].message.tool_calls[0].function.arguments


@pytest.mark.parametrize(
    ("fixture", "error_type", "status"),
    [
        ("openai/error-400-bad-request.response.json", openai.BadRequestError, 400),
        ("openai/error-404-unknown-model.response.json", openai.NotFoundError, 404),
    ],
)
def test_provider_errors_pass_through_with_their_status(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fixture: str, error_type: type, status: int
) -> None:
    fake_openai.enqueue_fixture(fixture)
    with pytest.raises(error_type) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == status
    assert raised.value.body["message"]


def test_provider_refusing_gateway_key_is_a_502_not_the_clients_fault(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue(
        Reply(status=401, body=b'{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}')
    )
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 502


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "model_not_found"
    assert raised.value.response.headers["x-request-id"] in raised.value.message


def test_malformed_json_body_is_400_in_openai_format(gateway: GatewayStack) -> None:
    response = httpx.post(gateway.base_url + "/v1/chat/completions", content=b"{not json", timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert response.headers["x-request-id"]


def test_missing_messages_is_400_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=None)  # type: ignore[arg-type]
    assert raised.value.param == "messages" or "messages" in raised.value.message


def test_ten_megabyte_body_reaches_the_provider(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    image = "data:image/png;base64," + "A" * (10 * 1024 * 1024)
    answer = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": image}}],
            }
        ],
    )
    assert answer.choices[0].message.content
    assert len(fake_openai.requests[-1].body) > 10 * 1024 * 1024


def test_provider_down_is_503_in_openai_format(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="down-1", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code in (502, 503)
    assert raised.value.body["type"] == "api_error"


def test_slow_provider_is_cut_by_the_route_timeout_with_504(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Reply(hang=True))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="slow-1", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 504
    assert raised.value.body["type"] == "api_error"


def test_client_cannot_choose_its_route_with_internal_headers(
    gateway: GatewayStack, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    response = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-gw-cluster": "provider_anthropic", "x-gw-provider": "anthropic", "x-gw-model": "claude-test-1"},
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert fake_anthropic.requests == []
    assert [request.json["model"] for request in fake_openai.requests] == ["gpt-4o-mini"]


def test_mock_provider_answers_plain_and_streaming(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content == "This is the gateway's mock provider answering."
    chunks = list(
        client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "hello"}], stream=True)
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == answer.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_model_listing_names_configured_models(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert "mock-1" in ids


def test_unknown_path_is_404_in_openai_format(gateway: GatewayStack) -> None:
    response = httpx.get(gateway.base_url + "/v1/nothing-here", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["message"]


def test_health_readiness_and_metrics(gateway: GatewayStack, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "count me"}])
    assert httpx.get(gateway.admin_url + "/healthz").status_code == 200
    assert httpx.get(gateway.admin_url + "/readyz").status_code == 200
    labels = ('client_api="openai"', 'route="mock-*"', 'provider="mock"', 'model="mock-1"', 'status="200"')
    assert wait_until(lambda: metric_sum(gateway, "gateway_requests_total", *labels) >= 1, timeout=10)
    assert "gen_ai_server_request_duration_seconds_bucket" in httpx.get(gateway.admin_url + "/metrics").text


def _tls_listener_config(cert_file: Path, key_file: Path) -> dict[str, object]:
    return {
        "listeners": [{"name": "tls", "tls": {"cert_file": str(cert_file), "key_file": str(key_file)}}],
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }


def test_tls_listener_serves_with_generated_certificate(tmp_path, fake_openai: FakeOpenAI) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    authority.cert_pem.write_to_path(str(ca_file))
    stack = GatewayStack(tmp_path / "gw", _tls_listener_config(cert_file, key_file)).start()
    try:
        http = httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file)))
        tls_client = openai.OpenAI(
            api_key="k", base_url=f"https://127.0.0.1:{stack.port}/v1", http_client=http, max_retries=0
        )
        answer = tls_client.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{stack.port}/v1/models", verify=True)
    finally:
        stack.stop()


def _served_certificate(port: int, ca_file: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _install(cert: trustme.LeafCert, cert_file: Path, key_file: Path) -> None:
    """As a Kubernetes secret update or a renewal does: new files renamed into place."""
    for target, blob in ((key_file, cert.private_key_pem), (cert_file, cert.private_key_and_cert_chain_pem)):
        staged = target.with_name(f".{target.name}.new")
        blob.write_to_path(str(staged))
        staged.replace(target)


def test_a_renewed_listener_certificate_is_served_without_a_restart(tmp_path) -> None:
    authority = trustme.CA()
    certs = tmp_path / "certs"
    certs.mkdir()
    cert_file, key_file, ca_file = certs / "tls.crt", certs / "tls.key", tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    first, renewed = authority.issue_cert("127.0.0.1"), authority.issue_cert("127.0.0.1")
    _install(first, cert_file, key_file)
    stack = GatewayStack(tmp_path / "gw", _tls_listener_config(cert_file, key_file)).start()
    try:
        der = [ssl.PEM_cert_to_DER_cert(c.cert_chain_pems[0].bytes().decode()) for c in (first, renewed)]
        assert _served_certificate(stack.port, ca_file) == der[0]
        _install(renewed, cert_file, key_file)
        assert wait_until(lambda: _served_certificate(stack.port, ca_file) == der[1], timeout=15)
        answer = httpx.post(
            f"https://127.0.0.1:{stack.port}/v1/chat/completions",
            json={"model": "mock-1", "messages": [{"role": "user", "content": "hi"}]},
            verify=ssl.create_default_context(cafile=str(ca_file)),
        )
        assert answer.status_code == 200
    finally:
        stack.stop()


def test_body_over_the_configured_limit_is_413_in_the_clients_format(tmp_path) -> None:
    config = {
        "envoy": {"max_request_bytes": 1024 * 1024},
        "providers": [{"name": "mock", "kind": "mock"}],
        "routes": [{"model": "*", "provider": "mock"}],
    }
    stack = GatewayStack(tmp_path, config).start()
    try:
        big = {"model": "m", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
        response = httpx.post(stack.base_url + "/v1/messages", json=big, headers={"anthropic-version": "2023-06-01"})
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "request_too_large"
        small = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        response = httpx.post(stack.base_url + "/v1/messages", json=small, headers={"anthropic-version": "2023-06-01"})
        assert response.status_code == 200
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("path", "headers", "check"),
    [
        ("/v1/chat/completions", {}, lambda body: body["error"]["type"] == "api_error"),
        ("/v1/responses", {}, lambda body: body["error"]["code"] == "gateway_unavailable"),  # OpenAI's format
        ("/v1/messages", {"anthropic-version": "2023-06-01"}, lambda body: body["error"]["type"] == "overloaded_error"),
        ("/v1beta/models/m:generateContent", {}, lambda body: body["error"]["status"] == "UNAVAILABLE"),
    ],
)
def test_processor_down_is_503_in_the_clients_format(tmp_path, path: str, headers: dict, check) -> None:
    config = {"providers": [{"name": "mock", "kind": "mock"}], "routes": [{"model": "*", "provider": "mock"}]}
    stack = GatewayStack(tmp_path, config).start()
    try:
        extproc = stack.extproc_process
        extproc.terminate()
        extproc.wait(10)
        response = httpx.post(stack.base_url + path, json={"model": "m", "messages": []}, headers=headers, timeout=10)
        assert response.status_code == 503
        assert check(response.json())
        assert response.headers["x-request-id"] in response.text
    finally:
        stack.stop()


def test_no_key_reaches_the_logs(client: openai.OpenAI, gateway: GatewayStack, fake_openai: FakeOpenAI) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "log me"}])
    fake_openai.enqueue(Reply(status=401, body=b'{"error":{"message":"Incorrect API key provided: sk-pro***ret"}}'))
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    logs = gateway.logs()
    assert '"client_api":"openai"' in logs  # the access lines are there
    assert OPENAI_KEY not in logs
    assert CLIENT_KEY not in logs


def test_no_envoy_or_internal_header_reaches_the_client(gateway: GatewayStack) -> None:
    for model, stream in (("gpt-4o-mini", False), ("gpt-4o-mini", True), ("claude-test-1", False)):
        answer = httpx.post(
            gateway.base_url + "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
            timeout=20,
        )
        assert answer.status_code == 200
        leaked = [name for name in answer.headers if name.startswith(("x-envoy-", "x-gw-", "x-gateway-attempt"))]
        assert not leaked, (model, stream, leaked)
