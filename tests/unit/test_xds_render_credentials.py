"""xds/render_credentials.py: each keyed provider's key in an owner-only SDS file, injected by
Envoy's credential injector in the header its kind sends it in; never in the rendered config."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from extproc.config.load import load_text
from extproc.config.model import GatewayConfig
from extproc.xds.render_credentials import credential_filter, secret_name, secrets_dir, write_secrets

CONFIG = """
providers:
  - {name: oa, kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OA}
  - {name: an, kind: anthropic, base_url: "https://api.anthropic.com", api_key_env: AN}
  - {name: gm, kind: gemini, base_url: "https://generativelanguage.googleapis.com", api_key_env: GM}
  - {name: local, kind: openai-compatible, base_url: "http://127.0.0.1:8000/v1"}
  - {name: m, kind: mock}
routes: [{model: '*', provider: m}]
"""


def config() -> GatewayConfig:
    return load_text(CONFIG, {"OA": "sk-oa", "AN": "sk-an", "GM": "gm-key"}, Path("."))


def test_the_secrets_directory_sits_in_the_xds_directory() -> None:
    assert secrets_dir(Path("/run/gateway/xds")) == Path("/run/gateway/xds/secrets")


def test_each_kind_gets_its_own_header_and_prefix_and_keyless_providers_none(tmp_path: Path) -> None:
    providers = {provider.name: provider for provider in config().providers}
    headers = {}
    for name, provider in providers.items():
        injector = credential_filter(provider, tmp_path)
        if injector is None:
            headers[name] = None
            continue
        assert injector["typed_config"]["overwrite"] is True  # a client's own header never reaches the provider
        generic = injector["typed_config"]["credential"]["typed_config"]
        assert generic["credential"]["name"] == secret_name(provider)
        headers[name] = (generic["header"], generic.get("header_value_prefix", ""))
    assert headers == {
        "oa": ("authorization", "Bearer "),
        "an": ("x-api-key", ""),
        "gm": ("x-goog-api-key", ""),
        "local": None,
        "m": None,
    }
    assert "sk-oa" not in json.dumps([credential_filter(p, tmp_path) for p in providers.values()])


def test_keys_are_written_owner_only_one_file_per_keyed_provider(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    write_secrets(config(), directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    files = sorted(path.name for path in directory.iterdir())
    assert files == ["provider_key_an.yaml", "provider_key_gm.yaml", "provider_key_oa.yaml"]
    resource = yaml.safe_load((directory / "provider_key_oa.yaml").read_text())["resources"][0]
    assert resource["name"] == "provider_key_oa"
    assert resource["generic_secret"]["secret"]["inline_string"] == "sk-oa"
    assert all((directory / name).stat().st_mode & 0o777 == 0o600 for name in files)
