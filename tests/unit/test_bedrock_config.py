"""The bedrock kind's options: region required, one credential, each aws_credentials key only for its
source, and the Envoy signer rendered from them (never the default chain unless asked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extproc.config.load import ConfigError, load_text
from extproc.xds.render import render_clusters

_ROUTE = "routes:\n  - {model: '*', provider: b}\n"


def _problems(provider: str, env: dict[str, str] | None = None) -> list[str]:
    try:
        load_text(f"providers:\n  - {{name: b, kind: bedrock{provider}}}\n" + _ROUTE, env or {}, Path("."))
    except ConfigError as error:
        return error.problems
    return []


def test_a_bedrock_provider_needs_a_region_and_one_credential() -> None:
    assert "providers[0].bedrock.region: required for kind 'bedrock'" in _problems(", api_key_env: K", {"K": "k"})
    assert any("needs a credential (aws_credentials" in p for p in _problems(", bedrock: {region: us-east-1}"))
    both = ", bedrock: {region: us-east-1}, api_key_env: K, aws_credentials: {source: environment}"
    assert any("not both" in p for p in _problems(both, {"K": "k"}))
    assert _problems(", bedrock: {region: eu-west-3}, aws_credentials: {source: environment}") == []


def test_aws_credential_options_are_checked_per_source() -> None:
    region = ", bedrock: {region: us-east-1}"
    assert "providers[0].aws_credentials.path: required for source file" in _problems(
        region + ", aws_credentials: {source: file}"
    )
    assert "providers[0].aws_credentials.path: only for source file" in _problems(
        region + ", aws_credentials: {source: environment, path: /x}"
    )
    missing = _problems(region + ", aws_credentials: {source: web_identity}")
    assert any(p.startswith("providers[0].aws_credentials.role_arn: required") for p in missing)
    assert "providers[0].bedrock.region: not an AWS region: 'moon'" in _problems(
        ", bedrock: {region: moon}, aws_credentials: {source: environment}"
    )


def test_bedrock_options_are_refused_on_another_kind() -> None:
    text = "providers:\n  - {name: o, kind: openai, base_url: 'https://x.example/v1', api_key_env: K, "
    text += "bedrock: {region: us-east-1}}\nroutes:\n  - {model: '*', provider: o}\n"
    with pytest.raises(ConfigError) as error:
        load_text(text, {"K": "k"}, Path("."))
    assert "providers[0].bedrock: only for kind 'bedrock'" in error.value.problems


@pytest.mark.parametrize(
    ("credentials", "chosen"),
    [
        ("{source: environment}", "environment_credential_provider"),
        ("{source: file, path: /secrets/aws/credentials}", "credentials_file_provider"),
        ("{source: instance_metadata}", "instance_profile_credential_provider"),
        (
            "{source: web_identity, role_arn: 'arn:aws:iam::1:role/r', token_file: /var/run/t/token}",
            "assume_role_with_web_identity_provider",
        ),
    ],
)
def test_the_signer_uses_only_the_chosen_source_and_signs_for_the_region(
    credentials: str, chosen: str, tmp_path: Path
) -> None:
    text = f"providers:\n  - {{name: b, kind: bedrock, bedrock: {{region: eu-central-1}}, aws_credentials: {credentials}}}\n"
    config = load_text(text + _ROUTE, {}, tmp_path)
    assert config.providers[0].base_url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    (cluster,) = [c for c in render_clusters(config, tmp_path) if c["name"] == "provider_b"]
    filters = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    names = [f["name"] for f in filters["http_filters"]]
    assert names[-2:] == ["envoy.filters.http.aws_request_signing", "envoy.filters.http.upstream_codec"]
    signer = filters["http_filters"][-2]["typed_config"]
    assert (signer["service_name"], signer["region"]) == ("bedrock", "eu-central-1")
    assert signer["use_unsigned_payload"] is False
    provider = signer["credential_provider"]
    assert provider["custom_credential_provider_chain"] is True
    assert set(provider) == {"custom_credential_provider_chain", chosen}
    assert "credential_injector" not in json.dumps(filters)  # no key for Envoy to inject
