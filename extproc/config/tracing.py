"""The `tracing` section: where OpenTelemetry spans go, each field the declaration of its option
(extproc.declare), and the reading of its headers file (a secret: never quoted in a problem)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from extproc.addresses import is_loopback
from extproc.declare import HTTP_URL, Schema, build, derived, option, section

Header = tuple[str, str]
# A header name as RFC 9110 allows it (a token), lower-cased on reading: gRPC metadata must be.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-zA-Z-]+")
_RESERVED = frozenset({"content-type", "content-length", "host", "te", "user-agent"})


@section(
    "OpenTelemetry traces: Envoy's spans and the ext_proc's, in one trace per request, sent to an OTLP "
    "collector (off when this section is absent)"
)
@dataclass(frozen=True, slots=True)
class TracingSettings:
    otlp_endpoint: str = option(
        pattern=HTTP_URL,
        description="the collector's URL: for grpc its root (http://collector:4317), for http the traces "
        "URL (http://collector:4318/v1/traces; a URL with no path gets /v1/traces). An http:// URL "
        "must point at loopback unless allow_plaintext is true",
        examples=["http://127.0.0.1:4317"],
    )
    protocol: Literal["grpc", "http"] = option("grpc", description="OTLP over gRPC, or over HTTP (protobuf)")
    sample_ratio: Annotated[float, Schema(minimum=0, maximum=1)] = option(
        1.0,
        description="the share of requests traced (Envoy decides for each request; a client's sampled "
        "traceparent is followed as it says); 0 traces none",
    )
    headers_file: str | None = option(
        None,
        description="file of `name: value` lines sent with every export (a collector's API key; a k8s "
        "secret mount): a secret, never logged; Envoy reads it through an owner-only SDS file",
        examples=["/run/secrets/otel/headers"],
    )
    allow_plaintext: bool = option(
        False, description="allow an http:// otlp_endpoint beyond loopback (spans then cross the network unencrypted)"
    )
    headers: tuple[Header, ...] = derived((), repr=False)  # resolved secret: never logged

    @property
    def traces_url(self) -> str:
        """The URL an OTLP/HTTP export is posted to."""
        parts = urlsplit(self.otlp_endpoint)
        return self.otlp_endpoint if parts.path not in ("", "/") else self.otlp_endpoint.rstrip("/") + "/v1/traces"

    @property
    def host(self) -> str:
        return urlsplit(self.otlp_endpoint).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.otlp_endpoint)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def tls(self) -> bool:
        return urlsplit(self.otlp_endpoint).scheme == "https"


def parse_tracing(raw: dict[str, Any], base_dir: Path, problems: list[str]) -> TracingSettings | None:
    section = raw.get("tracing")
    if section is None:
        return None
    headers: tuple[Header, ...] = ()
    if (name := section.get("headers_file")) is not None:
        path = Path(name) if Path(name).is_absolute() else base_dir / name
        try:
            headers = read_headers(path.read_text(), problems)
        except OSError:
            problems.append(f"tracing.headers_file: cannot read {name}")
    parts = urlsplit(section["otlp_endpoint"])
    if parts.scheme == "http" and not section.get("allow_plaintext") and not is_loopback(parts.hostname or ""):
        problems.append(
            f"tracing.otlp_endpoint: http:// to {parts.hostname} sends spans (and the headers_file's "
            "headers) unencrypted; use https:// or set allow_plaintext: true"
        )
    return build(TracingSettings, section, headers=headers)


def read_headers(text: str, problems: list[str]) -> tuple[Header, ...]:
    """`name: value` lines (blank lines and `#` comments skipped). A problem names the line, never
    its content: the file holds a credential."""
    headers: list[Header] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not colon or not _HEADER_NAME.fullmatch(name) or not value or name in _RESERVED:
            problems.append(f"tracing.headers_file: line {number} is not a `name: value` header the exporter may set")
            continue
        headers.append((name, value))
    return tuple(headers)
