"""TLS transport sockets: a provider's certificate checked against its host; a listener's own certificate.

A listener's certificate reaches Envoy as an SDS secret (a file in the secrets directory naming
the certificate and key files), never inline: Envoy then watches the certificate's directory and
reads the pair again when it is replaced there (a Kubernetes secret's update, a renewal by
cert-manager or certbot), so a rotated certificate needs no restart. A provider's own CA (`tls.ca_file`) comes the same way,
beside the host it must name, so a rotated private CA is trusted without a restart too."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from extproc.config.model import GatewayConfig, Listener, Provider
from extproc.xds.files import write_sds_file

_UPSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_DOWNSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def upstream_tls(provider: Provider, secrets: Path | None) -> dict[str, Any]:
    """Trust the system CAs (or the provider's `tls.ca_file`) and require the base_url's host
    in the certificate's SANs: a chain to a trusted CA alone would accept any site's certificate.
    `secrets`: the SDS directory a `ca_file` is read through (see `write_ca_secrets`); None: inline."""
    host = provider.host
    san = {"san_type": "IP_ADDRESS" if is_ip(host) else "DNS", "matcher": {"exact": host}}
    names = {"match_typed_subject_alt_names": [san]}
    context: dict[str, Any]
    if provider.tls_ca_file and secrets is not None:
        source = sds_source(_ca_secret_file(provider, secrets), secrets)
        sds = {"name": _ca_secret_name(provider), "sds_config": source}
        context = {
            "combined_validation_context": {
                "default_validation_context": names,
                "validation_context_sds_secret_config": sds,
            }
        }
    else:
        trusted = {"trusted_ca": {"filename": provider.tls_ca_file or system_ca_bundle()}}
        context = {"validation_context": {**trusted, **names}}
    typed: dict[str, Any] = {"@type": _UPSTREAM_TLS_TYPE, "common_tls_context": context}
    if not is_ip(host):
        typed["sni"] = host  # SNI carries names only (RFC 6066)
    return {"name": "envoy.transport_sockets.tls", "typed_config": typed}


def write_ca_secrets(config: GatewayConfig, secrets: Path) -> None:
    """Each provider's `tls.ca_file` as an SDS file: the CA file, and its directory, whose changes
    make Envoy read it again."""
    for provider in config.providers:
        if provider.tls and provider.tls_ca_file:
            files = {"trusted_ca": {"filename": provider.tls_ca_file}}
            _write_file_secret(
                _ca_secret_file(provider, secrets), _ca_secret_name(provider), "validation_context", files
            )


def _ca_secret_name(provider: Provider) -> str:
    return f"provider_ca_{provider.name}"


def _ca_secret_file(provider: Provider, secrets: Path) -> Path:
    return secrets / f"{_ca_secret_name(provider)}.yaml"


def sds_source(secret_file: Path, secrets: Path) -> dict[str, Any]:
    """An SDS file Envoy reads again whenever a file is moved into `secrets`."""
    return {
        "path_config_source": {
            "path": str(secret_file.resolve()),
            "watched_directory": {"path": str(secrets.resolve())},
        }
    }


def downstream_tls(listener: Listener, secrets: Path | None) -> dict[str, Any]:
    """Through the SDS file in `secrets`; None: the certificate inline (read once, as validation needs)."""
    context: dict[str, Any] = {"alpn_protocols": ["h2", "http/1.1"]}
    if secrets is None:
        context["tls_certificates"] = [_certificate_files(listener)]
    else:
        source = sds_source(_certificate_secret_file(listener, secrets), secrets)
        context["tls_certificate_sds_secret_configs"] = [
            {"name": _certificate_secret_name(listener), "sds_config": source}
        ]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {"@type": _DOWNSTREAM_TLS_TYPE, "common_tls_context": context},
    }


def write_certificate_secrets(config: GatewayConfig, secrets: Path) -> None:
    """Each TLS listener's SDS file: where its pair is, and the directory whose changes make Envoy read
    it again."""
    for listener in config.listeners:
        if listener.tls_cert_file and listener.tls_key_file:
            secret_file, name = _certificate_secret_file(listener, secrets), _certificate_secret_name(listener)
            _write_file_secret(secret_file, name, "tls_certificate", _certificate_files(listener))


def _write_file_secret(secret_file: Path, name: str, kind: str, files: dict[str, dict[str, str]]) -> None:
    """An SDS secret naming files; Envoy watches the first file's directory and reads them again when a
    file is moved there."""
    first = next(iter(files.values()))["filename"]
    watched = {"watched_directory": {"path": str(Path(first).parent)}}
    write_sds_file(secret_file, {"@type": SECRET_TYPE, "name": name, kind: {**files, **watched}})


def _certificate_files(listener: Listener) -> dict[str, Any]:
    return {
        "certificate_chain": {"filename": listener.tls_cert_file},
        "private_key": {"filename": listener.tls_key_file},
    }


def _certificate_secret_name(listener: Listener) -> str:
    return f"listener_certificate_{listener.name}"


def _certificate_secret_file(listener: Listener, secrets: Path) -> Path:
    return secrets / f"{_certificate_secret_name(listener)}.yaml"


def system_ca_bundle() -> str:
    for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"):
        if Path(candidate).is_file():
            return candidate
    import certifi  # shipped with the SDKs; a last resort for minimal images

    return certifi.where()
