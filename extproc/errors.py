"""Error taxonomy: one kind -> one status and one code, rendered in each client format.

| kind               | status | OpenAI type            | Anthropic type        | Gemini status       |
|--------------------|--------|------------------------|-----------------------|---------------------|
| invalid_request    | 400    | invalid_request_error  | invalid_request_error | INVALID_ARGUMENT    |
| authentication     | 401    | authentication_error   | authentication_error  | UNAUTHENTICATED     |
| permission         | 403    | permission_error       | permission_error      | PERMISSION_DENIED   |
| not_found          | 404    | invalid_request_error  | not_found_error       | NOT_FOUND           |
| request_too_large  | 413    | invalid_request_error  | request_too_large     | INVALID_ARGUMENT    |
| headers_too_large  | 431    | invalid_request_error  | invalid_request_error | INVALID_ARGUMENT    |
| rate_limit         | 429    | rate_limit_error       | rate_limit_error      | RESOURCE_EXHAUSTED  |
| insufficient_quota | 429    | insufficient_quota     | rate_limit_error      | RESOURCE_EXHAUSTED  |
| provider_error     | 502    | api_error              | api_error             | INTERNAL            |
| provider_auth      | 502    | api_error              | api_error             | INTERNAL            |
| unavailable        | 503    | api_error              | overloaded_error      | UNAVAILABLE         |
| timeout            | 504    | api_error              | api_error             | DEADLINE_EXCEEDED   |
| internal           | 503    | api_error              | api_error             | UNAVAILABLE         |

`internal` (a gateway failure) is a 503, never a bare 500: Envoy's own 500s
(the ext_proc down) are mapped to the same shape by its local reply config.
`provider_auth` is the operator's fault (the gateway's provider key was
refused): the client gets a 502, never a 401 that blames its own key.
Provider errors keep the provider's status where it is meaningful to the
client (400, 404, 413, 429, 5xx), mapped through `kind_for_status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "headers_too_large",
    "rate_limit",
    "insufficient_quota",
    "provider_error",
    "provider_auth",
    "unavailable",
    "timeout",
    "internal",
]

# kind -> (status, OpenAI type, Anthropic type, Gemini status)
ERROR_TABLE: dict[str, tuple[int, str, str, str]] = {
    "invalid_request": (400, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    "authentication": (401, "authentication_error", "authentication_error", "UNAUTHENTICATED"),
    "permission": (403, "permission_error", "permission_error", "PERMISSION_DENIED"),
    "not_found": (404, "invalid_request_error", "not_found_error", "NOT_FOUND"),
    "request_too_large": (413, "invalid_request_error", "request_too_large", "INVALID_ARGUMENT"),
    "headers_too_large": (431, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT"),
    "rate_limit": (429, "rate_limit_error", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    # A USD budget spent: OpenAI's own type and code for it; Anthropic and Gemini have none of their own.
    "insufficient_quota": (429, "insufficient_quota", "rate_limit_error", "RESOURCE_EXHAUSTED"),
    "provider_error": (502, "api_error", "api_error", "INTERNAL"),
    "provider_auth": (502, "api_error", "api_error", "INTERNAL"),
    "unavailable": (503, "api_error", "overloaded_error", "UNAVAILABLE"),
    "timeout": (504, "api_error", "api_error", "DEADLINE_EXCEEDED"),
    "internal": (503, "api_error", "api_error", "UNAVAILABLE"),
}


@dataclass(slots=True)
class GatewayError(Exception):
    """An error the client sees. `status` defaults to the kind's status;
    provider errors passed through keep the provider's own status."""

    kind: ErrorKind
    message: str
    code: str | None = None
    param: str | None = None
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()  # sent with the error (WWW-Authenticate, Retry-After)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = ERROR_TABLE[self.kind][0]

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def kind_for_status(status: int) -> ErrorKind:
    """The kind of a provider's HTTP error status, from the client's point of view."""
    if status in (401, 403):
        return "provider_auth"  # our key was refused: the operator's fault
    if status == 404:
        return "not_found"
    if status == 413:
        return "request_too_large"
    if status == 431:
        return "headers_too_large"
    if status == 429:
        return "rate_limit"
    if status in (503, 529):
        return "unavailable"
    if status == 504:
        return "timeout"
    if 400 <= status < 500:
        return "invalid_request"
    return "provider_error"


def client_status(error: GatewayError) -> int:
    """The status the client gets: provider auth failures never surface as 401/403."""
    if error.kind == "provider_auth":
        return 502
    return error.status


def render_openai_error(error: GatewayError, request_id: str = "") -> bytes:
    message = error.message if not request_id else f"{error.message} (request id: {request_id})"
    body = {
        "error": {
            "message": message,
            "type": ERROR_TABLE[error.kind][1],
            "param": error.param,
            "code": error.code or error.kind,
        }
    }
    return orjson.dumps(body)


def render_anthropic_error(error: GatewayError, request_id: str = "") -> bytes:
    body = {
        "type": "error",
        "error": {"type": ERROR_TABLE[error.kind][2], "message": error.message},
        "request_id": request_id or None,
    }
    return orjson.dumps(body)


def render_gemini_error(error: GatewayError, request_id: str = "") -> bytes:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": (error.code or error.kind).upper(),
            "domain": "gateway",
            "metadata": {"request_id": request_id} if request_id else {},
        }
    ]
    body = {
        "error": {
            "code": client_status(error),
            "message": error.message,
            "status": ERROR_TABLE[error.kind][3],
            "details": details,
        }
    }
    return orjson.dumps(body)
