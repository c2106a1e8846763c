"""Envoy's own error answers, rewritten into the client's error format (OpenAI, Anthropic or Gemini).

Two of Envoy's local replies concern the ext_proc and are mapped here:
- 500: the processor is down or failed -> 503 `unavailable`;
- 504 with response code details `ext_proc_error_per-message_timeout_exceeded`: the
  processor was slower than `message_timeout` -> 504 `timeout`.
(measured, Envoy 1.40: a provider slower than the route timeout is also a local 504, but
with details `response_timeout` and flag UT; the ext_proc's response pass already renders
that one, so it is left alone: the timeout mapper matches the details, not the status.)
Errors the ext_proc answers itself never use 500, so only Envoy's are mapped.
A third is the listener's local_ratelimit guard: its 429 (details `local_rate_limited`)
-> 429 `rate_limit`; the ext_proc's own 429s carry other details and are left alone.
A fifth is a provider's connection reset after its answer's headers reached Envoy but before the
ext_proc let them on to the client (it was still reading them): Envoy then answers directly, past
every filter (details `upstream_reset_after_response_started{...}`), so the ext_proc never sees it.
It becomes a 502 `provider_error` in the client's format. (Once the headers went on, a reset can
only reset the client's connection: nothing can be written after it.)
A fourth is a WebSocket upgrade (Codex tries one on /v1/responses before HTTPS): Envoy refuses
an upgrade no route allows with an empty 403 (details `upgrade_failed`, measured) before any
filter runs. It becomes a 426 in the client's format: Codex falls back to HTTPS at once on a
426, where any other status has it retry the WebSocket.

Every other reply Envoy makes on its own (a provider's reset, timeout or garbage: 502, 503,
504; a body over the buffer: 413) passes the router pass, which renders it like any error
(pipeline/answer.py). The last kind never does: Envoy's HTTP/1 codec refusing a request
(headers over its caps: 431; malformed HTTP: 400) before the path or any header was read, so
no route and no ext_proc. Not knowing the client's API, its body carries the fields of all
three at once (OpenAI's and Anthropic's `error.type`/`message`, Anthropic's `type: error` and
`request_id`, Gemini's `error.code`/`status`/`details`), so each SDK reads it as its own, and a
request id made up for it (no request had one yet), in `x-request-id` and in the body.
"""

from __future__ import annotations

from typing import Any

from extproc.contract import ENVOY_HEADER_COUNT_CAP, ENVOY_HEADER_KB_CAP
from extproc.errors import ERROR_TABLE
from extproc.xds.render_rate_limit import LOCAL_RATE_LIMITED

_ANTHROPIC_PATH = {"string_match": {"prefix": "/v1/messages"}}
_GEMINI_PATH = {"string_match": {"safe_regex": {"regex": r"^/v1(beta)?/models/[^/:]+:.*"}}}
_REQUEST_ID = "%REQ(x-request-id)%"
# Anything beyond this prefix names the ext_proc failure (timeout, gRPC status...).
_EXT_PROC_TIMEOUT = "response.code == 504 && response.code_details.startsWith('ext_proc_error_per-message_timeout')"
_RESET_BEFORE_THE_CLIENT_GOT_HEADERS = "response.code_details.startsWith('upstream_reset_after_response_started')"
# The codec refused the request before it had a path (measured, Envoy 1.40: details
# http1.headers_too_large, http1.too_many_headers, http1.codec_error, ...; no request header at all).
_CODEC_REFUSAL = "response.code_details.startsWith('http1.') && !has(request.path)"
_MADE_UP_ID = "%RESP(x-request-id)%"  # the body is formatted after the mapper's headers are added


def _status_is(code: int) -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {"op": "EQ", "value": {"default_value": code, "runtime_key": f"gw_local_reply_{code}"}}
        }
    }


def _cel(expression: str) -> dict[str, Any]:
    return {
        "extension_filter": {
            "name": "envoy.access_loggers.extension_filters.cel",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                "expression": expression,
            },
        }
    }


def _bodies(kind: str, code: str, message: str) -> list[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """(path match, body) per client format, in the shapes of extproc/errors.py; None matches any path."""
    status, openai_type, anthropic_type, gemini_status = ERROR_TABLE[kind]
    anthropic = {"type": "error", "error": {"type": anthropic_type, "message": message}, "request_id": _REQUEST_ID}
    gemini_info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": code.upper(),
        "domain": "gateway",
        "metadata": {"request_id": _REQUEST_ID},
    }
    gemini = {"error": {"code": status, "message": message, "status": gemini_status, "details": [gemini_info]}}
    openai = {
        "error": {
            "message": f"{message} (request id: {_REQUEST_ID})",
            "type": openai_type,
            "param": None,
            "code": code,
        }
    }
    return [(_ANTHROPIC_PATH, anthropic), (_GEMINI_PATH, gemini), (None, openai)]


def _mappers(condition: dict[str, Any], status: int, kind: str, code: str, message: str) -> list[dict[str, Any]]:
    mappers = []
    for path_match, body in _bodies(kind, code, message):
        filters = [condition]
        if path_match is not None:
            filters.append({"header_filter": {"header": {"name": ":path", **path_match}}})
        mappers.append(
            {
                "filter": {"and_filter": {"filters": filters}} if len(filters) > 1 else condition,
                "status_code": status,
                "body_format_override": {"json_format": body, "content_type": "application/json"},
            }
        )
    return mappers


def _codec_refusal(status: int | None, message: str) -> dict[str, Any]:
    """One body every client's SDK reads as its own API's error (see the module's docstring);
    `status` None: any other status the codec answers with."""
    kind = "headers_too_large" if status == 431 else "invalid_request"
    _, error_type, _, gemini_status = ERROR_TABLE[kind]
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": kind.upper(),
        "domain": "gateway",
        "metadata": {"request_id": _MADE_UP_ID},
    }
    error = {
        "type": error_type,
        "message": f"{message} (request id: {_MADE_UP_ID})",
        "param": None,
        "code": status or "%RESPONSE_CODE%",
        "status": gemini_status,
        "details": [info],
    }
    condition = _cel(f"response.code == {status} && {_CODEC_REFUSAL}" if status is not None else _CODEC_REFUSAL)
    return {
        "filter": condition,
        "headers_to_add": [
            {"header": {"key": "x-request-id", "value": "%UNIQUE_ID%"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        ],
        "body_format_override": {
            "json_format": {"type": "error", "error": error, "request_id": _MADE_UP_ID},
            "content_type": "application/json",
        },
    }


def local_reply_config() -> dict[str, Any]:
    too_large = f"the request headers are larger than the gateway reads ({ENVOY_HEADER_KB_CAP} KiB, "
    too_large += f"{ENVOY_HEADER_COUNT_CAP} headers)"
    codec = [
        _codec_refusal(431, too_large),
        _codec_refusal(None, "the request is not valid HTTP (%RESPONSE_CODE_DETAILS%)"),
    ]
    return {
        "mappers": codec
        + _mappers(
            _status_is(500),
            503,
            "unavailable",
            "gateway_unavailable",
            "the gateway's processor is unavailable; retry shortly",
        )
        + _mappers(
            _cel(_EXT_PROC_TIMEOUT),
            504,
            "timeout",
            "gateway_timeout",
            "the gateway's processor did not answer in time; retry shortly",
        )
        + _mappers(
            _cel("response.code == 403 && response.code_details == 'upgrade_failed'"),
            426,
            "invalid_request",
            "websocket_not_supported",
            "the gateway does not serve WebSockets: send the request over HTTP (POST, with stream: true to stream)",
        )
        + _mappers(
            _cel(_RESET_BEFORE_THE_CLIENT_GOT_HEADERS),
            502,
            "provider_error",
            "provider_error",
            "the provider's connection was cut before its answer could be sent on",
        )
        + _mappers(
            _cel(f"response.code == 429 && response.code_details == '{LOCAL_RATE_LIMITED}'"),
            429,
            "rate_limit",
            "rate_limit_exceeded",
            "too many requests to this listener; retry shortly",
        )
    }
