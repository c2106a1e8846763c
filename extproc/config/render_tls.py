"""TLS transport sockets: a provider's certificate checked against its host; a listener's own certificate."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from extproc.config.model import Listener, Provider

_UPSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_DOWNSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def upstream_tls(provider: Provider) -> dict[str, Any]:
    """Trust the system CAs (or the provider's `tls.ca_file`) and require the base_url's host
    in the certificate's SANs: a chain to a trusted CA alone would accept any site's certificate."""
    host = provider.host
    san = {"san_type": "IP_ADDRESS" if is_ip(host) else "DNS", "matcher": {"exact": host}}
    typed: dict[str, Any] = {
        "@type": _UPSTREAM_TLS_TYPE,
        "common_tls_context": {
            "validation_context": {
                "trusted_ca": {"filename": provider.tls_ca_file or system_ca_bundle()},
                "match_typed_subject_alt_names": [san],
            },
        },
    }
    if not is_ip(host):
        typed["sni"] = host  # SNI carries names only (RFC 6066)
    return {"name": "envoy.transport_sockets.tls", "typed_config": typed}


def downstream_tls(listener: Listener) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _DOWNSTREAM_TLS_TYPE,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": listener.tls_cert_file},
                        "private_key": {"filename": listener.tls_key_file},
                    }
                ],
            },
        },
    }


def system_ca_bundle() -> str:
    for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"):
        if Path(candidate).is_file():
            return candidate
    import certifi  # shipped with the SDKs; a last resort for minimal images

    return certifi.where()
