"""xds/render_tls.py: a provider's certificate checked against its host, a listener's certificate,
both read through SDS files Envoy watches so a rotated one needs no restart."""

from __future__ import annotations

from pathlib import Path

import yaml

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.xds.render_tls import (
    SECRET_TYPE,
    downstream_tls,
    is_ip,
    sds_source,
    system_ca_bundle,
    upstream_tls,
    write_ca_secrets,
    write_certificate_secrets,
)


def config(tmp_path: Path) -> GatewayConfig:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text(name)
    text = f"""
providers:
  - {{name: private, kind: openai, base_url: "https://llm.internal/v1", api_key_env: K, tls: {{ca_file: {tmp_path}/ca.pem}}}}
  - {{name: public, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: K}}
routes: [{{model: '*', provider: public}}]
listeners:
  - {{name: secure, port: 10443, tls: {{cert_file: {tmp_path}/cert.pem, key_file: {tmp_path}/key.pem}}}}
  - {{name: plain, port: 10000}}
"""
    return load_text(text, {"K": "sk-test"}, tmp_path)


def test_only_addresses_count_as_ips() -> None:
    assert is_ip("10.0.0.1") and is_ip("::1")
    assert not is_ip("api.openai.com") and not is_ip("localhost")


def test_a_provider_ca_file_is_trusted_through_a_watched_sds_file_or_inline_when_asked(tmp_path: Path) -> None:
    private = config(tmp_path).providers[0]
    secrets = tmp_path / "secrets"
    context = upstream_tls(private, secrets)["typed_config"]["common_tls_context"]["combined_validation_context"]
    assert context["default_validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "llm.internal"}}
    ]
    sds = context["validation_context_sds_secret_config"]
    assert sds["name"] == "provider_ca_private"
    assert sds["sds_config"]["path_config_source"]["watched_directory"] == {"path": str(secrets.resolve())}
    inline = upstream_tls(private, None)["typed_config"]["common_tls_context"]["validation_context"]
    assert inline["trusted_ca"] == {"filename": f"{tmp_path}/ca.pem"}


def test_a_provider_without_a_ca_file_trusts_the_system_bundle_and_a_bare_ip_gets_no_sni(tmp_path: Path) -> None:
    public = config(tmp_path).providers[1]
    typed = upstream_tls(public, tmp_path / "secrets")["typed_config"]
    assert typed["common_tls_context"]["validation_context"]["trusted_ca"] == {"filename": system_ca_bundle()}
    assert typed["sni"] == "api.openai.com"
    by_ip = load_text(
        'providers: [{name: ip, kind: openai, base_url: "https://10.0.0.5/v1", api_key_env: K}]\n'
        "routes: [{model: '*', provider: ip}]\n",
        {"K": "sk-test"},
        tmp_path,
    ).providers[0]
    typed = upstream_tls(by_ip, None)["typed_config"]
    assert "sni" not in typed  # SNI carries host names only
    assert typed["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "10.0.0.5"}}
    ]


def test_the_system_bundle_is_a_readable_file() -> None:
    assert Path(system_ca_bundle()).is_file()


def test_the_ca_secret_names_the_ca_file_and_watches_its_directory(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    write_ca_secrets(config(tmp_path), secrets)
    assert [path.name for path in secrets.iterdir()] == ["provider_ca_private.yaml"]  # none for the system CAs
    resource = yaml.safe_load((secrets / "provider_ca_private.yaml").read_text())["resources"][0]
    assert resource["@type"] == SECRET_TYPE
    assert resource["validation_context"] == {
        "trusted_ca": {"filename": f"{tmp_path}/ca.pem"},
        "watched_directory": {"path": str(tmp_path)},
    }


def test_a_listener_certificate_is_read_through_sds_or_inline_for_validation(tmp_path: Path) -> None:
    secure = config(tmp_path).listeners[0]
    secrets = tmp_path / "secrets"
    context = downstream_tls(secure, secrets)["typed_config"]["common_tls_context"]
    assert context["alpn_protocols"] == ["h2", "http/1.1"]
    (sds,) = context["tls_certificate_sds_secret_configs"]
    assert sds["name"] == "listener_certificate_secure"
    assert sds["sds_config"] == sds_source(secrets / "listener_certificate_secure.yaml", secrets)
    inline = downstream_tls(secure, None)["typed_config"]["common_tls_context"]["tls_certificates"]
    assert inline == [
        {"certificate_chain": {"filename": secure.tls_cert_file}, "private_key": {"filename": secure.tls_key_file}}
    ]


def test_only_tls_listeners_get_a_certificate_secret(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    write_certificate_secrets(config(tmp_path), secrets)
    assert [path.name for path in secrets.iterdir()] == ["listener_certificate_secure.yaml"]
    resource = yaml.safe_load((secrets / "listener_certificate_secure.yaml").read_text())["resources"][0]
    assert resource["tls_certificate"]["watched_directory"] == {"path": str(tmp_path)}
    assert (secrets / "listener_certificate_secure.yaml").stat().st_mode & 0o777 == 0o600
