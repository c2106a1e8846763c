"""Bounds on client input, checked where each field is read: a 400 naming the field in
the client's format, never a provider's refusal, a 503 or a traceback in the gateway.

JSON nesting: orjson reads at most 1024 levels and writes at most 254, and the gateway's
own recursive walks (Gemini schema conversion, Anthropic's surrogate scrub) stop at
MAX_DEPTH. `loads` and `dumps_request` turn orjson's depth refusals into the same 400.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.base import invalid

MAX_CHOICES = 128  # OpenAI's own limit on n
MAX_DIMENSIONS = 65_536  # embeddings `dimensions` / outputDimensionality
MAX_MESSAGES = 10_000  # messages (OpenAI, Anthropic) or contents (Gemini) in one request
MAX_EMBEDDING_INPUTS = 4_096  # OpenAI's own limit on one embeddings request
MAX_DEPTH = 64  # levels the gateway's own recursive walks over client JSON go down
ORJSON_READ_DEPTH = 1024
ORJSON_WRITE_DEPTH = 254


def check_count(items: list[Any], limit: int, param: str) -> None:
    if len(items) > limit:
        raise invalid(f"'{param}' has {len(items)} items; at most {limit} are accepted", param)


def check_positive(value: int, high: int, param: str) -> None:
    if not 1 <= value <= high:
        raise invalid(f"'{param}' must be a positive integer of at most {high}", param)


def too_deep(param: str, limit: int = MAX_DEPTH) -> GatewayError:
    return invalid(f"'{param}' is nested too deeply (at most {limit} levels)", param)


def loads(body: bytes, param: str | None = "body") -> Any:
    """A client's request body parsed; bad JSON and JSON deeper than orjson reads are 400s
    (`param` as the format names the body: Anthropic's errors name no field for it)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):
            message = f"request body is nested too deeply (at most {ORJSON_READ_DEPTH} levels)"
            raise invalid(message, param) from None
        raise invalid("request body is not valid JSON", param) from None


def dumps_request(body: dict[str, Any], param: str = "body") -> bytes:
    """A provider request body. A client value deeper than orjson writes (a tool schema,
    a tool call's input: orjson reads 1024 levels but writes 254) is the client's 400."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        if "ecursion" in str(exc):  # orjson: "Recursion limit reached"
            raise too_deep(param, ORJSON_WRITE_DEPTH) from None
        raise invalid(f"the request cannot be written as JSON: {exc}", param) from None
