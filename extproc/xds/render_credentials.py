"""Provider keys held by Envoy, never handed out by the ext_proc.

Each provider cluster gets Envoy's credential injector as an upstream filter,
reading the key from an SDS secret file in a private directory (0700, files
0600). The ext_proc only writes those files: no gRPC answer of it ever carries
a key, so nothing else in the pod that can dial its port (a sidecar's
neighbours share loopback) can obtain one, and Envoy's admin shows the secret
as `[redacted]`. A changed key is picked up by Envoy when the file is replaced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from extproc.config.model import GatewayConfig, Provider
from extproc.providers import kind_of
from extproc.xds.files import write_sds_file
from extproc.xds.render_tls import SECRET_TYPE, sds_source

_INJECTOR_TYPE = "type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector"
_GENERIC_TYPE = "type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic"


def secrets_dir(xds_dir: Path) -> Path:
    return xds_dir / "secrets"


def secret_name(provider: Provider) -> str:
    return f"provider_key_{provider.name}"


def secret_file(provider: Provider, directory: Path) -> Path:
    return directory / f"{secret_name(provider)}.yaml"


def credential_filter(provider: Provider, directory: Path) -> dict[str, Any] | None:
    """The upstream filter that sets the provider's key header; None for kinds without a key."""
    credential = kind_of(provider).credential
    if credential is None or not (provider.api_key or credential.minted):
        return None
    generic: dict[str, Any] = {
        "@type": _GENERIC_TYPE,
        "header": credential.header,
        "credential": {
            "name": secret_name(provider),
            "sds_config": sds_source(secret_file(provider, directory), directory),
        },
    }
    if credential.prefix:
        generic["header_value_prefix"] = credential.prefix
    return {
        "name": "envoy.filters.http.credential_injector",
        "typed_config": {
            "@type": _INJECTOR_TYPE,
            "overwrite": True,  # whatever a client sent, the provider sees only the operator's key
            "credential": {"name": "envoy.http.injected_credentials.generic", "typed_config": generic},
        },
    }


def write_secrets(config: GatewayConfig, directory: Path) -> None:
    """One SDS file per keyed provider, in an owner-only directory."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for provider in config.providers:
        if credential_filter(provider, directory) is None:
            continue
        path = secret_file(provider, directory)
        credential = kind_of(provider).credential
        if credential is not None and credential.minted:
            # Its token is written by the minter (extproc/app/google_tokens.py); until the first one,
            # a placeholder Envoy can load, which the ext_proc never lets a request go out with
            if not path.exists():
                write_sds_file(path, secret_resource(provider, "no-token-yet"))
            continue
        write_sds_file(path, secret_resource(provider, provider.api_key))


def secret_resource(provider: Provider, value: str) -> dict[str, Any]:
    return {
        "@type": SECRET_TYPE,
        "name": secret_name(provider),
        "generic_secret": {"secret": {"inline_string": value}},
    }
