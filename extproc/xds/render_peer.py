"""The token Envoy presents to the ext_proc on TCP.

A Unix socket is checked by its mode (0600) and its peer's uid (server/peer.py); a TCP port on
loopback is open to every local process, and one posing as Envoy could feed forged answers into a
tenant's cache and settle made-up usage. So Envoy sends a shared secret as gRPC metadata on every
ext_proc stream: the credential injector, as an upstream filter of the `extproc` cluster, reads it
from an SDS file in the secrets directory (0600; Envoy's admin shows it `[redacted]`), and the
ext_proc serves a connection only once it has seen it. The file is made once and kept: reloads
and workers read the same one, and Envoy's streams in flight keep the token they started with.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

from extproc.contract import EXTPROC_TOKEN_HEADER
from extproc.xds.files import write_sds_file
from extproc.xds.render_tls import SECRET_TYPE, sds_source

_NAME = "extproc_token"
_INJECTOR_TYPE = "type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector"
_GENERIC_TYPE = "type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic"


def token_file(keys_dir: Path) -> Path:
    return keys_dir / f"{_NAME}.yaml"


def token_filter(keys_dir: Path) -> dict[str, Any]:
    """The `extproc` cluster's upstream filter that adds the token to each of Envoy's ext_proc streams."""
    generic = {
        "@type": _GENERIC_TYPE,
        "header": EXTPROC_TOKEN_HEADER,
        "credential": {"name": _NAME, "sds_config": sds_source(token_file(keys_dir), keys_dir)},
    }
    return {
        "name": "envoy.filters.http.credential_injector",
        "typed_config": {
            "@type": _INJECTOR_TYPE,
            "overwrite": True,
            "credential": {"name": "envoy.http.injected_credentials.generic", "typed_config": generic},
        },
    }


def read_token(keys_dir: Path) -> str | None:
    """The token Envoy was given, None if there is none (an Envoy set up elsewhere, or before tokens)."""
    import yaml  # here: a worker process is handed the token (app/workers.py) and never loads PyYAML

    with contextlib.suppress(OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        resource = yaml.safe_load(token_file(keys_dir).read_text())["resources"][0]
        token = resource["generic_secret"]["secret"]["inline_string"]
        if isinstance(token, str) and token:
            return token
    return None


def ensure_token(keys_dir: Path) -> str:
    """The token of this secrets directory, made on first use and kept from then on."""
    if (token := read_token(keys_dir)) is not None:
        return token
    token = secrets.token_urlsafe(32)
    resource = {"@type": SECRET_TYPE, "name": _NAME, "generic_secret": {"secret": {"inline_string": token}}}
    write_sds_file(token_file(keys_dir), resource)
    return token
