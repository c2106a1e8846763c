"""SigV4 for Bedrock, signed by Envoy: the AWS credentials never reach the ext_proc.

A Bedrock provider with `aws_credentials` gets Envoy's `aws_request_signing` as an upstream filter,
placed after the ext_proc's upstream pass (a pool's attempt is rendered first), so the signature
covers the body as it finally leaves (the filter buffers and hashes it). Credentials come from the
one source the operator chose (`custom_credential_provider_chain`): Envoy never walks its default
chain, which would reach the instance metadata address, unless `chain` asks for it. A credentials
file is watched: a replaced file is used for the next request, without a restart.

Headers the gateway removes after the signer (the attempt's provider name) and Envoy's own are
left out of the signature; a client's Authorization never reaches the signer (the router pass
forwards only an allow-list, and each pool attempt forgets every credential header first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from extproc.config.model import Provider
from extproc.contract import INTERNAL_PREFIX
from extproc.providers import kind_of

_SIGNING_TYPE = "type.googleapis.com/envoy.extensions.filters.http.aws_request_signing.v3.AwsRequestSigning"
SERVICE = "bedrock"  # the SigV4 service name of bedrock-runtime
# Removed after the signer runs, or added by Envoy on the way: never part of the signature.
_UNSIGNED_PREFIXES = (INTERNAL_PREFIX, "x-gateway-", "x-envoy-", "x-forwarded-", "x-request-id")


def signs(provider: Provider) -> bool:
    return kind_of(provider).signed_by_envoy and provider.aws_credentials_source is not None


def _credential_provider(provider: Provider) -> dict[str, Any]:
    source = provider.aws_credentials_source
    if source == "chain":
        return {}  # Envoy's default chain: environment, file, web identity, instance and container metadata
    chosen: dict[str, Any]
    if source == "environment":
        chosen = {"environment_credential_provider": {}}
    elif source == "file":
        assert provider.aws_credentials_path is not None  # checked when loading
        path = Path(provider.aws_credentials_path)
        data_source = {"filename": str(path), "watched_directory": {"path": str(path.parent)}}
        chosen = {"credentials_file_provider": {"credentials_data_source": data_source}}
        if provider.aws_credentials_profile:
            chosen["credentials_file_provider"]["profile"] = provider.aws_credentials_profile
    elif source == "web_identity":  # IRSA: the projected token, re-read when kubelet replaces it
        assert provider.aws_web_identity_token_file is not None and provider.aws_role_arn is not None
        token = Path(provider.aws_web_identity_token_file)
        web = {
            "web_identity_token_data_source": {
                "filename": str(token),
                "watched_directory": {"path": str(token.parent)},
            },
            "role_arn": provider.aws_role_arn,
            "role_session_name": f"llm-gateway-{provider.name}",
        }
        chosen = {"assume_role_with_web_identity_provider": web}
    else:  # instance_metadata
        chosen = {"instance_profile_credential_provider": {}}
    return {"credential_provider": {"custom_credential_provider_chain": True, **chosen}}


def signing_filter(provider: Provider) -> dict[str, Any] | None:
    """The provider's SigV4 signer; None for a provider Envoy does not sign for (a Bedrock API key
    is the credential injector's)."""
    if not signs(provider) or provider.bedrock_region is None:
        return None
    typed: dict[str, Any] = {
        "@type": _SIGNING_TYPE,
        "service_name": SERVICE,
        "region": provider.bedrock_region,
        "host_rewrite": provider.authority,
        "use_unsigned_payload": False,  # the body's hash is signed: a changed body is refused by AWS
        "match_excluded_headers": [{"prefix": prefix} for prefix in _UNSIGNED_PREFIXES],
        **_credential_provider(provider),
    }
    return {"name": "envoy.filters.http.aws_request_signing", "typed_config": typed}
