"""gateway.yaml validation: every error at once with its path, unknown keys rejected, env overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from extproc.config.load import ConfigError, load_file, load_text, run_socket
from extproc.config.model import GatewayConfig
from extproc.xds.render import render_clusters, render_listeners, validate
from tests.support.cli import run_cli

VALID = """
providers:
  - name: openai
    kind: openai
    base_url: https://api.openai.com/v1
    api_key_env: OPENAI_KEY
  - name: mock
    kind: mock
routes:
  - model: "gpt-*"
    provider: openai
"""


def problems_of(text: str, env: dict[str, str] | None = None, base: Path = Path(".")) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_text(text, env or {}, base)
    return raised.value.problems


def test_embedded_default_routes_every_model_to_the_mock_provider() -> None:
    config = load_file(None, env={})
    assert [p.kind for p in config.providers] == ["mock"]
    assert config.routes[0].model == "*"
    assert config.listeners[0].port == 10000


def test_valid_file_loads_with_secret_from_environment() -> None:
    config = load_text(VALID, {"OPENAI_KEY": "sk-1"}, Path("."))
    openai = config.provider("openai")
    assert openai is not None and openai.api_key == "sk-1"
    assert "sk-1" not in repr(config)


def test_every_schema_error_is_reported_at_once_with_its_path() -> None:
    problems = problems_of(
        """
providers:
  - {name: a, kind: openai, base_url: "ftp://x", api_key_env: K}
  - {name: b, kind: bogus, colour: red}
listeners:
  - {port: 99999}
"""
    )
    assert "providers[0].base_url: not an http(s) URL" in problems
    assert any(p.startswith("providers[1].kind:") for p in problems)
    assert any(p.startswith("providers[1]:") and "colour" in p for p in problems)
    assert any(p.startswith("listeners[0].port:") for p in problems)


def test_unknown_top_level_key_is_rejected() -> None:
    problems = problems_of(VALID + "\nextra_section: {}\n", {"OPENAI_KEY": "k"})
    assert any("extra_section" in p for p in problems)


def test_semantic_errors_are_reported_together() -> None:
    problems = problems_of(
        """
providers:
  - {name: a, kind: anthropic, base_url: "https://api.anthropic.com"}
  - {name: a, kind: openai, base_url: "https://x.test/v1", api_key_env: MISSING}
  - {name: m, kind: mock, base_url: "https://x.test"}
routes:
  - {model: x, provider: nowhere}
"""
    )
    assert "providers[0]: kind 'anthropic' needs a credential (api_key_env or api_key_file)" in problems
    assert "providers[1].api_key_env: environment variable MISSING is not set" in problems
    assert "providers[1].name: duplicate provider name 'a'" in problems
    assert "providers[2].base_url: not used by the mock provider" in problems
    assert "routes[0].provider: no provider named 'nowhere'" in problems


def test_credential_from_file_is_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk-from-file\n")
    text = VALID.replace("api_key_env: OPENAI_KEY", "api_key_file: key")
    config = load_text(text, {}, tmp_path)
    assert config.provider("openai").api_key == "sk-from-file"  # type: ignore[union-attr]


def test_environment_overrides_ports_and_provider_secrets() -> None:
    env = {
        "GATEWAY_LISTEN_PORT": "18000",
        "GATEWAY_ADMIN_PORT": "19090",
        "GATEWAY_EXTPROC_PORT": "15051",
        "GATEWAY_PROVIDER_OPENAI_API_KEY": "sk-env",
    }
    config = load_text(VALID.replace("api_key_env: OPENAI_KEY", "api_key_file: /nonexistent"), env, Path("."))
    assert config.listeners[0].port == 18000
    assert config.extproc.admin_port == 19090
    assert config.extproc.port == 15051
    assert config.provider("openai").api_key == "sk-env"  # type: ignore[union-attr]


def test_non_numeric_port_override_is_reported_not_crashed() -> None:
    problems = problems_of(VALID, {"OPENAI_KEY": "k", "GATEWAY_LISTEN_PORT": "abc"})
    assert any(p.startswith("listeners[0].port:") for p in problems)


def test_invalid_yaml_is_a_config_error() -> None:
    problems = problems_of("providers: [unclosed")
    assert problems[0].startswith("<file>: not valid YAML")


def test_rendered_envoy_config_passes_envoy_validate_mode() -> None:
    config = load_text(VALID, {"OPENAI_KEY": "k"}, Path("."))
    validate(config)  # raises if the real binary rejects it
    keys_dir = Path("/run/gateway/secrets")
    clusters = {c["name"]: c for c in render_clusters(config, keys_dir)}
    assert set(clusters) == {"extproc", "extproc_observer", "provider_openai"}
    endpoint = clusters["provider_openai"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["metadata"]["filter_metadata"]["llm_gateway"]["provider"] == "openai"
    rendered = json.dumps(render_listeners(config, keys_dir)) + json.dumps(render_clusters(config, keys_dir))
    assert "sk-env" not in rendered and '"k"' not in rendered  # keys live only in the private SDS files


def test_provider_keys_are_written_owner_only_and_injected_by_envoy(tmp_path: Path) -> None:
    from extproc.xds.render import write_xds
    from extproc.xds.render_credentials import secrets_dir

    config = load_text(VALID, {"OPENAI_KEY": "sk-private"}, Path("."))
    write_xds(config, tmp_path, check=False)
    keys = secrets_dir(tmp_path)
    assert keys.stat().st_mode & 0o777 == 0o700
    (secret,) = (path for path in keys.iterdir() if path.name != "extproc_token.yaml")  # Envoy's own, on TCP
    assert secret.stat().st_mode & 0o777 == 0o600
    assert "sk-private" in secret.read_text()
    assert "sk-private" not in (tmp_path / "cds.yaml").read_text()
    cds = (tmp_path / "cds.yaml").read_text()
    assert "envoy.filters.http.credential_injector" in cds and "Bearer " in cds


def test_broken_rendered_config_is_rejected_by_envoy(monkeypatch: pytest.MonkeyPatch) -> None:
    from extproc.xds import render

    config = load_text(VALID, {"OPENAI_KEY": "k"}, Path("."))
    original = render._extproc_cluster
    monkeypatch.setattr(render, "_extproc_cluster", lambda c, keys: {**original(c, keys), "connect_timeout": "-1s"})
    with pytest.raises(RuntimeError, match="envoy rejected"):
        validate(config)


def test_check_command_exits_non_zero_and_lists_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  - {name: x, kind: openai, base_url: nope}\nbogus: 1\n")
    result = run_cli("check", str(bad))
    assert result.returncode == 2
    assert "providers[0].base_url: not an http(s) URL" in result.stderr
    assert "bogus" in result.stderr


def test_check_command_accepts_a_valid_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("providers:\n  - {name: m, kind: mock}\nroutes:\n  - {model: '*', provider: m}\n")
    result = run_cli("check", str(good), "--envoy")
    assert result.returncode == 0, result.stderr


def test_check_command_reports_what_envoy_rejects_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "listeners:\n  - {name: main, address: 127.0.0.1, port: 10443, tls: {cert_file: cert.pem, key_file: key.pem}}\n"
        "providers:\n  - {name: m, kind: mock}\nroutes:\n  - {model: '*', provider: m}\n"
    )
    result = run_cli("check", str(config), "--envoy")
    assert result.returncode == 2
    assert "Envoy rejects the rendered configuration" in result.stderr
    assert "Failed to load certificate chain" in result.stderr and "Traceback" not in result.stderr


def test_schema_command_prints_json_schema() -> None:
    result = run_cli("schema")
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert "providers" in schema["properties"]


REPO = Path(__file__).resolve().parents[2]


def test_shipped_container_config_is_valid_and_listens_beyond_loopback() -> None:
    config = load_file(REPO / "deploy" / "gateway.yaml", env={})
    assert config.listeners[0].address == "0.0.0.0"
    validate(config)


def test_admin_token_comes_from_its_env_variable_or_file_and_is_never_shown(tmp_path: Path) -> None:
    from_env = load_text(
        VALID + "extproc: {admin_token_env: ADMIN_TOKEN}\n", {"OPENAI_KEY": "k", "ADMIN_TOKEN": "t1"}, tmp_path
    )
    assert from_env.extproc.admin_token == "t1"
    assert "t1" not in repr(from_env)
    (tmp_path / "token").write_text("t2\n")
    from_file = load_text(VALID + "extproc: {admin_token_file: token}\n", {"OPENAI_KEY": "k"}, tmp_path)
    assert from_file.extproc.admin_token == "t2"


def test_admin_token_variable_that_is_unset_is_reported() -> None:
    assert problems_of(VALID + "extproc: {admin_token_env: NOPE}\n", {"OPENAI_KEY": "k"}) == [
        "extproc.admin_token_env: environment variable NOPE is not set"
    ]


def _one_provider(base_url: str, extra: str = "") -> str:
    return f"""
providers:
  - name: p
    kind: openai-compatible
    base_url: {base_url}
{extra}
"""


@pytest.mark.parametrize("host", ["api.example.com", "10.0.0.7", "[2001:db8::1]"])
def test_plaintext_provider_beyond_loopback_is_refused_without_allow_plaintext(host: str) -> None:
    problems = problems_of(_one_provider(f"http://{host}/v1"))
    assert any(p.startswith("providers[0].base_url: http://") and "allow_plaintext" in p for p in problems)


def test_plaintext_provider_beyond_loopback_loads_when_allowed() -> None:
    config = load_text(_one_provider("http://api.example.com/v1", "    allow_plaintext: true"), {}, Path("."))
    provider = config.provider("p")
    assert provider is not None and provider.allow_plaintext and not provider.tls


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "[::1]"])
def test_plaintext_provider_on_loopback_needs_no_permission(host: str) -> None:
    assert load_text(_one_provider(f"http://{host}:8080/v1"), {}, Path(".")).provider("p") is not None


def test_provider_ca_file_must_exist_and_needs_https(tmp_path: Path) -> None:
    problems = problems_of(_one_provider("https://api.example.com", "    tls: {ca_file: missing.pem}"), base=tmp_path)
    assert "providers[0].tls.ca_file: file not found: missing.pem" in problems
    (tmp_path / "ca.pem").write_text("pem")
    problems = problems_of(_one_provider("http://127.0.0.1:9", "    tls: {ca_file: ca.pem}"), base=tmp_path)
    assert problems == ["providers[0].tls: only for an https:// base_url"]


def _tls_context(config_text: str) -> dict[str, Any]:
    clusters = {
        c["name"]: c for c in render_clusters(load_text(config_text, {}, Path(".")), Path("/run/gateway/secrets"))
    }
    return clusters["provider_p"]["transport_socket"]["typed_config"]


def test_https_provider_certificate_must_name_the_base_url_host() -> None:
    context = _tls_context(_one_provider("https://api.example.com/v1"))
    assert context["sni"] == "api.example.com"
    validation = context["common_tls_context"]["validation_context"]
    assert validation["match_typed_subject_alt_names"] == [{"san_type": "DNS", "matcher": {"exact": "api.example.com"}}]
    assert Path(validation["trusted_ca"]["filename"]).is_file()  # the system bundle


def test_https_provider_by_ip_address_is_matched_by_ip_san_without_sni() -> None:
    context = _tls_context(_one_provider("https://10.1.2.3:8443/v1"))
    assert "sni" not in context
    validation = context["common_tls_context"]["validation_context"]
    assert validation["match_typed_subject_alt_names"] == [{"san_type": "IP_ADDRESS", "matcher": {"exact": "10.1.2.3"}}]


def _hcm(config_text: str) -> dict[str, Any]:
    listener = render_listeners(load_text(config_text, {}, Path(".")), Path("secrets"))[0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def test_forwarding_headers_default_to_the_peer_address_and_no_trusted_hops() -> None:
    hcm = _hcm(_one_provider("http://127.0.0.1:1"))
    assert hcm["use_remote_address"] is True
    assert hcm["xff_num_trusted_hops"] == 0


def test_forwarding_headers_come_from_the_envoy_section() -> None:
    text = _one_provider("http://127.0.0.1:1") + "envoy: {use_remote_address: false, xff_num_trusted_hops: 2}\n"
    hcm = _hcm(text)
    assert hcm["use_remote_address"] is False
    assert hcm["xff_num_trusted_hops"] == 2


def test_ready_address_rides_on_the_first_gateway_listener_only_when_configured() -> None:
    listener = render_listeners(load_text(VALID, {"OPENAI_KEY": "k"}, Path(".")), Path("secrets"))[0]
    assert "additional_addresses" not in listener and len(listener["filter_chains"]) == 1
    text = VALID + "envoy: {ready_port: 9902, ready_address: 0.0.0.0}\n"
    listener = render_listeners(load_text(text, {"OPENAI_KEY": "k"}, Path(".")), Path("secrets"))[0]
    extra = listener["additional_addresses"][0]["address"]["socket_address"]
    assert extra == {"address": "0.0.0.0", "port_value": 9902}
    ready = next(chain for chain in listener["filter_chains"] if "filter_chain_match" in chain)
    assert ready["filter_chain_match"] == {"destination_port": 9902}
    assert "ext_proc" not in json.dumps(ready)  # the ready port serves no gateway API
    clash = VALID + "listeners: [{port: 9902}]\nenvoy: {ready_port: 9902}\n"
    assert problems_of(clash, {"OPENAI_KEY": "k"}) == ["envoy.ready_port: port 9902 is also a listener's port"]


def test_the_embedded_default_keeps_its_run_files_per_instance() -> None:
    assert load_file(None).envoy.xds_dir == str(Path(".run") / str(os.getpid()) / "xds")


def test_run_serves_the_extproc_on_a_socket_beside_the_xds_directory_or_on_tcp_when_it_cannot(tmp_path: Path) -> None:
    def config_with_xds(xds_dir: Path) -> GatewayConfig:
        text = f"providers: [{{name: mock, kind: mock}}]\nenvoy: {{xds_dir: {xds_dir}}}\n"
        return load_text(text, {}, tmp_path)

    assert run_socket(config_with_xds(tmp_path / "run" / "xds")) == str(tmp_path / "run" / "extproc.sock")
    assert (tmp_path / "run").is_dir()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        assert run_socket(config_with_xds(locked / "xds")) is None
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert run_socket(config_with_xds(deep / "xds")) is None  # beyond a socket address's 108 bytes
