"""Bedrock's errors -> the gateway's error kinds, from one table.

Before a stream starts an error is an HTTP answer: JSON `{"message": ...}` and the error's name in
the `x-amzn-errortype` header (`ThrottlingException:http://internal.amazon.com/coral/...`). After it
started, an event-stream frame: `:message-type: exception` with `:exception-type` the lowerCamel
member name (`throttlingException`) and the same JSON, or `:message-type: error` with `:error-code`
and `:error-message` headers and no payload.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import ErrorKind, GatewayError, kind_for_status
from extproc.formats.eventstream import EventMessage

# Error name -> kind. The kind decides the client's status (errors.ERROR_TABLE): a quota or a model
# still loading is the client's 429 like throttling; the gateway's AWS credentials refused is the
# operator's 502 (provider_auth), never a 401/403 that blames the client's key.
ERROR_KINDS: dict[str, ErrorKind] = {
    "ValidationException": "invalid_request",
    "ConflictException": "invalid_request",
    "ResourceNotFoundException": "not_found",
    "ThrottlingException": "rate_limit",
    "ModelNotReadyException": "rate_limit",
    "ServiceQuotaExceededException": "rate_limit",
    "AccessDeniedException": "provider_auth",
    "UnrecognizedClientException": "provider_auth",
    "InvalidSignatureException": "provider_auth",
    "IncompleteSignatureException": "provider_auth",
    "MissingAuthenticationTokenException": "provider_auth",
    "ExpiredTokenException": "provider_auth",
    "ServiceUnavailableException": "unavailable",
    "InternalServerException": "provider_error",
    "ModelErrorException": "provider_error",
    "ModelStreamErrorException": "provider_error",
    "ModelTimeoutException": "timeout",
}
# An answer without a known name: Bedrock's own statuses where they differ from the common reading
# (ModelTimeoutException is a 408, ModelErrorException a 424: neither is the client's fault).
_STATUS_KINDS: dict[int, ErrorKind] = {408: "timeout", 424: "provider_error"}


def error_name(header: str | None, body: Any = None) -> str | None:
    """botocore's reading: the x-amzn-errortype header, else the body's code, Code or __type; cut
    after the first `:` and before the last `#` (`aws#ThrottlingException`)."""
    name: Any = header
    if not name and isinstance(body, dict):
        name = body.get("code") or body.get("Code") or body.get("__type")
    if not isinstance(name, str) or not name:
        return None
    return name.split(":", 1)[0].rsplit("#", 1)[-1] or None


def error_kind(name: str | None, status: int | None) -> ErrorKind:
    if name:
        # in-stream exceptions are named by their lowerCamel member (throttlingException)
        kind = ERROR_KINDS.get(name[:1].upper() + name[1:])
        if kind is not None:
            return kind
    if status is None:
        return "provider_error"
    return _STATUS_KINDS.get(status) or kind_for_status(status)


def bedrock_error(name: str | None, message: Any, status: int | None) -> GatewayError:
    kind = error_kind(name, status)
    if kind == "provider_auth":  # the provider's words are about a credential the client never saw
        return GatewayError(kind, f"the provider refused the gateway's credentials ({name or status})", code=name)
    if not isinstance(message, str) or not message:
        message = f"provider error ({name or status or 'unknown'})"
    return GatewayError(kind, message, code=name)


def parse_http_error(status: int, body: bytes, error_type: str | None = None) -> GatewayError:
    """An HTTP error answer; `error_type` is the x-amzn-errortype header when the caller has it."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        message = data.get("message", data.get("Message"))
    else:
        message = body[:200].decode("utf-8", "replace").strip() if body else None
    return bedrock_error(error_name(error_type, data), message, status)


def frame_error(message: EventMessage) -> GatewayError | None:
    """The error an exception or error frame carries; None for an event frame."""
    kind = message.text(":message-type")
    if kind == "exception":
        try:
            data = orjson.loads(message.payload) if message.payload else None
        except orjson.JSONDecodeError:
            data = None
        text = data.get("message", data.get("Message")) if isinstance(data, dict) else None
        return bedrock_error(message.text(":exception-type"), text, None)
    if kind == "error":
        return bedrock_error(message.text(":error-code"), message.text(":error-message"), None)
    return None
