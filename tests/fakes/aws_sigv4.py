"""Checks an AWS Signature Version 4 the way AWS does: by computing it again, with botocore, from the
request as it arrived.

Three things botocore does not do for a verifier, done here:
- it signs only the headers it would pick itself (it leaves out ``user-agent``, ``expect`` and others),
  while Envoy signs ``user-agent``: :class:`_SignedHeadersOnly` signs exactly the listed ones;
- it trusts ``x-amz-content-sha256`` when the header is there: the body's hash is compared here;
- it does not judge the date: a signature more than 5 minutes off the server's clock is refused.

A refusal carries the AWS error code and message a client sees, and a precise reason for the test.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SKEW = timedelta(minutes=5)
UNSIGNED_PAYLOADS = frozenset({"UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<day>\d{8})/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;_.-]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_BAD_TOKEN = "The security token included in the request is invalid."


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str = "AKIDEXAMPLE"
    secret_access_key: str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    session_token: str | None = None


def write_credentials_file(path: Path, credentials: AwsCredentials) -> None:
    """An AWS shared credentials file (the `file` source Envoy reads), replaced atomically as a
    secret mount's update is."""
    staged = path.with_suffix(".tmp")
    staged.write_text(
        f"[default]\naws_access_key_id = {credentials.access_key_id}\n"
        f"aws_secret_access_key = {credentials.secret_access_key}\n"
    )
    staged.replace(path)


@dataclass(frozen=True)
class Refusal:
    code: str  # the x-amzn-errortype a client sees
    message: str  # the body's message
    reason: str  # what exactly was wrong, for the test


class _SignedHeadersOnly(SigV4Auth):
    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        headers = HTTPHeaders()
        for name, value in request.headers.items():
            headers[name.lower()] = value
        return headers


def verify(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    *,
    service: str,
    region: str,
    now: datetime,
) -> Refusal | None:
    """None when the request is signed by ``credentials`` for ``service`` in ``region``, at most 5
    minutes from ``now``, over exactly this body. ``raw_path`` is the path and query as received."""
    authorization = headers.get("authorization", "")
    if not authorization:
        return Refusal("MissingAuthenticationTokenException", "Missing Authentication Token", "no Authorization")
    match = _AUTHORIZATION.fullmatch(authorization)
    if match is None:
        return Refusal(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters. "
            f"Authorization={authorization.split(' ', 1)[0]}",
            "Authorization does not parse",
        )
    if match["key"] != credentials.access_key_id:
        return Refusal("UnrecognizedClientException", _BAD_TOKEN, f"unknown access key {match['key']}")
    if credentials.session_token is not None and headers.get("x-amz-security-token") != credentials.session_token:
        return Refusal("UnrecognizedClientException", _BAD_TOKEN, "session token missing or wrong")
    if match["service"] != service:
        message = f"Credential should be scoped to correct service: '{service}'. "
        return Refusal("InvalidSignatureException", message, f"signed for service {match['service']}")
    if match["region"] != region:
        message = "Credential should be scoped to a valid region. "
        return Refusal("InvalidSignatureException", message, f"signed for region {match['region']}")
    if (refusal := _check_date(headers.get("x-amz-date", ""), match["day"], now)) is not None:
        return refusal
    signed = match["signed"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return Refusal("InvalidSignatureException", _BAD_SIGNATURE, "host or x-amz-date is not signed")
    missing = [name for name in signed if name not in headers]
    if missing:
        return Refusal("InvalidSignatureException", _BAD_SIGNATURE, f"signed headers missing: {missing}")
    declared = headers.get("x-amz-content-sha256")
    if declared in UNSIGNED_PAYLOADS:
        return Refusal("InvalidSignatureException", _BAD_SIGNATURE, "the body is not signed")
    if declared is not None and declared != hashlib.sha256(body).hexdigest():
        message = "The provided 'x-amz-content-sha256' header does not match what was computed."
        return Refusal("InvalidSignatureException", message, "x-amz-content-sha256 is not the body's hash")
    expected = _signature(method, raw_path, headers, signed, body, credentials, match, service, region)
    if expected != match["signature"]:
        return Refusal("InvalidSignatureException", _BAD_SIGNATURE, "signature mismatch")
    return None


def _check_date(amz_date: str, day: str, now: datetime) -> Refusal | None:
    try:
        signed_at = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        message = "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        return Refusal("IncompleteSignatureException", message, "no usable x-amz-date")
    if amz_date[:8] != day:
        message = f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{day}' != '{amz_date[:8]}', from '{amz_date}'."
        return Refusal("InvalidSignatureException", message, "scope day is not the x-amz-date day")
    stamp = now.strftime(_AMZ_DATE)
    if signed_at < now - SKEW:
        message = (
            f"Signature expired: {amz_date} is now earlier than {(now - SKEW).strftime(_AMZ_DATE)} ({stamp} - 5 min.)"
        )
        return Refusal("InvalidSignatureException", message, "stale x-amz-date")
    if signed_at > now + SKEW:
        message = f"Signature not yet current: {amz_date} is still later than {(now + SKEW).strftime(_AMZ_DATE)} ({stamp} + 5 min.)"
        return Refusal("InvalidSignatureException", message, "x-amz-date in the future")
    return None


def _signature(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    signed: list[str],
    body: bytes,
    credentials: AwsCredentials,
    match: re.Match[str],
    service: str,
    region: str,
) -> str:
    # A plain-http URL: botocore then hashes the body itself when x-amz-content-sha256 is absent (boto3's case).
    request = AWSRequest(
        method=method,
        url="http://" + headers["host"] + raw_path,
        headers={name: headers[name] for name in signed},
        data=body,
    )
    request.context["timestamp"] = headers["x-amz-date"]
    signer = _SignedHeadersOnly(
        Credentials(match["key"], credentials.secret_access_key, credentials.session_token), service, region
    )
    canonical = signer.canonical_request(request)
    signature: str = signer.signature(signer.string_to_sign(request, canonical), request)
    return signature
