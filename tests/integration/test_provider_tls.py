"""Envoy checks an https provider's certificate against the base_url's host, not only its CA chain."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import trustme

from tests.conftest import OPENAI_KEY
from tests.fakes.providers import FakeOpenAI
from tests.integration.sdk_outcomes import anthropic_client, openai_client
from tests.support.stack import GatewayStack
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _serving(ca: trustme.CA, name: str, host: str) -> FakeOpenAI:
    """A fake OpenAI over TLS whose certificate names `name`, reached as https://`host`:port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    return FakeOpenAI(api_key=OPENAI_KEY, ssl_context=context, host=host).start()


@dataclass
class TlsWorld:
    stack: GatewayStack
    right_name: FakeOpenAI
    right_ip: FakeOpenAI
    wrong_name: FakeOpenAI


@pytest.fixture(scope="module")
def tls_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsWorld]:
    workdir = Path(tmp_path_factory.mktemp("provider-tls"))
    ca = trustme.CA()
    ca_file = workdir / "private-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    fakes = [_serving(ca, "localhost", "localhost"), _serving(ca, "127.0.0.1", "127.0.0.1")]
    fakes.append(_serving(ca, "wrong.example", "localhost"))
    right_name, right_ip, wrong_name = fakes

    def provider(name: str, fake: FakeOpenAI, ca_file: Path | None) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": name,
            "kind": "openai",
            "base_url": fake.base_url + "/v1",
            "api_key_env": "TEST_OPENAI_KEY",
        }
        if ca_file is not None:
            entry["tls"] = {"ca_file": str(ca_file)}
        return entry

    config = {
        "providers": [
            provider("right", right_name, ca_file),
            provider("rightip", right_ip, ca_file),
            provider("wrong", wrong_name, ca_file),
            provider("untrusted", right_name, None),  # the system CAs do not know the private CA
        ],
        "routes": [{"model": f"{name}-*", "provider": name} for name in ("right", "rightip", "wrong", "untrusted")],
    }
    stack = GatewayStack(workdir / "gateway", config, {"TEST_OPENAI_KEY": OPENAI_KEY}).start()
    yield TlsWorld(stack, right_name, right_ip, wrong_name)
    stack.stop()
    for fake in fakes:
        fake.stop()


def _envoy_stat(world: TlsWorld, name: str) -> int:
    stats = httpx.get(world.stack.envoy_admin_url + "/stats", params={"filter": f"^{name}$"}, timeout=5).text
    return int(stats.partition(": ")[2] or 0)


def _ask(world: TlsWorld, model: str) -> str | None:
    answer = openai_client(world.stack.base_url).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    return answer.choices[0].message.content


def test_provider_certificate_for_its_host_name_is_accepted(tls_world: TlsWorld) -> None:
    assert _ask(tls_world, "right-4o")
    assert tls_world.right_name.last_request.path == "/v1/chat/completions"
    assert tls_world.right_name.last_request.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_provider_certificate_for_its_ip_address_is_accepted(tls_world: TlsWorld) -> None:
    assert _ask(tls_world, "rightip-4o")
    assert tls_world.right_ip.requests


def test_provider_certificate_for_another_name_is_refused_in_the_clients_format(tls_world: TlsWorld) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        _ask(tls_world, "wrong-4o")
    assert raised.value.status_code in (502, 503)
    assert isinstance(raised.value.body, dict) and raised.value.body["type"] == "api_error"
    with pytest.raises(anthropic.APIStatusError) as refused:
        anthropic_client(tls_world.stack.base_url).messages.create(
            model="wrong-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code in (502, 503)
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    assert tls_world.wrong_name.requests == []  # the key never reached the impostor
    assert _envoy_stat(tls_world, "cluster.provider_wrong.ssl.fail_verify_san") >= 1  # refused for its name


def test_provider_certificate_from_a_ca_the_gateway_does_not_trust_is_refused(tls_world: TlsWorld) -> None:
    before = len(tls_world.right_name.requests)
    with pytest.raises(openai.APIStatusError) as raised:
        _ask(tls_world, "untrusted-4o")
    assert raised.value.status_code in (502, 503)
    assert len(tls_world.right_name.requests) == before
    assert _envoy_stat(tls_world, "cluster.provider_untrusted.ssl.fail_verify_error") >= 1


def _answers(stack: GatewayStack, model: str) -> bool:
    try:
        return bool(
            openai_client(stack.base_url).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}]
            )
        )
    except openai.APIStatusError:
        return False


def test_a_rotated_provider_ca_file_is_trusted_without_a_restart(tmp_path: Path) -> None:
    """A private CA replaced in place (a renamed file, as a Kubernetes secret update does) is read again
    by Envoy: the provider whose certificate only the new CA signs is reached without a restart."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    ca_file = ca_dir / "ca.pem"
    old_ca.cert_pem.write_to_path(str(ca_file))
    fake = _serving(new_ca, "localhost", "localhost")
    provider = {
        "name": "private",
        "kind": "openai",
        "base_url": fake.base_url + "/v1",
        "api_key_env": "TEST_OPENAI_KEY",
    }
    config = {
        "providers": [{**provider, "tls": {"ca_file": str(ca_file)}}],
        "routes": [{"model": "*", "provider": "private"}],
    }
    stack = GatewayStack(tmp_path / "gateway", config, {"TEST_OPENAI_KEY": OPENAI_KEY}).start()
    try:
        assert not _answers(stack, "gpt-4o")  # the old CA does not sign the provider's certificate
        assert fake.requests == []
        staged = ca_dir / ".ca.pem.new"
        new_ca.cert_pem.write_to_path(str(staged))
        staged.replace(ca_file)
        assert wait_until(lambda: _answers(stack, "gpt-4o"), timeout=15)
        assert fake.last_request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert stack.extproc_process.poll() is None
    finally:
        stack.stop()
        fake.stop()
