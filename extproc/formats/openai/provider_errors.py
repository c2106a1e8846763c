"""Provider side: an OpenAI error object or HTTP error body -> GatewayError (`parse_error`)."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import ErrorKind, GatewayError, kind_for_status
from extproc.formats.json_fields import is_int

_ERROR_TYPES: dict[str, ErrorKind] = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "provider_auth",
    "permission_error": "provider_auth",
    "not_found_error": "not_found",
    "rate_limit_error": "rate_limit",
    "insufficient_quota": "rate_limit",
    "rate_limit_exceeded": "rate_limit",
    "overloaded_error": "unavailable",
    "server_error": "provider_error",
    "api_error": "provider_error",
}


def error_from_object(err: Any, status: int | None) -> GatewayError:
    """An OpenAI error object (or a vLLM-style flat one) -> GatewayError."""
    message = code = param = None
    etype = None
    if isinstance(err, dict):
        message = err.get("message")
        etype = err.get("type")
        raw_code = err.get("code")
        code = str(raw_code) if isinstance(raw_code, (str, int)) and not isinstance(raw_code, bool) else None
        param = err.get("param") if isinstance(err.get("param"), str) else None
        if status is None and is_int(raw_code) and 400 <= raw_code < 600:
            status = raw_code
    elif isinstance(err, str):
        message = err
    if status is not None:
        kind = kind_for_status(status)
    else:
        kind = _ERROR_TYPES.get(etype if isinstance(etype, str) else "") or _ERROR_TYPES.get(
            code or "", "provider_error"
        )
    if not isinstance(message, str) or not message:
        message = f"provider error (HTTP {status})" if status else "provider error"
    if kind == "provider_auth":
        message = "the provider rejected the gateway's credentials"
    return GatewayError(kind, message, code=code, param=param, status=status or 0)


def parse_error(status: int, body: bytes) -> GatewayError:
    """A provider's HTTP error (OpenAI JSON or any text) -> GatewayError."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data if "message" in data else None)
        if err is not None:
            return error_from_object(err, status)
    text = body[:500].decode("utf-8", "replace").strip() if body else ""
    return error_from_object(text or None, status)
