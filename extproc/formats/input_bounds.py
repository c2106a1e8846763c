"""Bounds on client input, checked where each field is read: a 400 naming the field in
the client's format, never a provider's refusal, a 503 or a traceback in the gateway.

JSON nesting: orjson reads at most 1024 levels and writes at most 254, and the gateway's
own recursive walks (Gemini schema conversion, Anthropic's surrogate scrub) stop at
MAX_DEPTH. `loads` and `dumps_request` turn orjson's depth refusals into the same 400, and
tool and response schemas, which the gateway writes again (the cache key, a provider's
body, a renamed model), are bounded where they are read (`check_schema_depth`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from extproc.errors import GatewayError
from extproc.formats.client_errors import invalid

MAX_CHOICES = 128  # OpenAI's own limit on n
MAX_DIMENSIONS = 65_536  # embeddings `dimensions` / outputDimensionality
MAX_MESSAGES = 10_000  # messages (OpenAI, Anthropic) or contents (Gemini) in one request
MAX_EMBEDDING_INPUTS = 4_096  # OpenAI's own limit on one embeddings request
MAX_DEPTH = 64  # levels the gateway's own recursive walks over client JSON go down
ORJSON_READ_DEPTH = 1024
ORJSON_WRITE_DEPTH = 254
# Every token-valued field (max_tokens, max_completion_tokens, maxOutputTokens, thinking budgets)
# is 1..MAX_TOKENS. The largest context windows served today hold 1-2 million tokens and output
# limits are far below (OpenAI 128K, Anthropic 128K, Gemini 64K): no real request asks for more,
# and the token reservation a request makes stays bounded.
MAX_TOKENS = 4_000_000
# JSON levels a tool or response schema may nest: what orjson writes, less room for the levels
# the gateway puts around a schema when it writes one (a provider's body: at most 6; the cache
# key's request: 3). Real schemas nest far less (OpenAI's strict mode: 10 levels of objects).
SCHEMA_ROOM = 16
MAX_SCHEMA_DEPTH = ORJSON_WRITE_DEPTH - SCHEMA_ROOM


def check_count(items: list[Any], limit: int, param: str) -> None:
    if len(items) > limit:
        raise invalid(f"'{param}' has {len(items)} items; at most {limit} are accepted", param)


def check_positive(value: int, high: int, param: str) -> None:
    if not 1 <= value <= high:
        raise invalid(f"'{param}' must be a positive integer of at most {high}", param)


def check_bounds(value: float | None, low: float, high: float, param: str) -> float | None:
    """An optional number within [low, high]."""
    if value is not None and not low <= value <= high:
        raise invalid(f"'{param}' must be between {low} and {high}", param)
    return value


def check_tokens(value: int, param: str) -> int:
    check_positive(value, MAX_TOKENS, param)
    return value


def too_deep(param: str, limit: int = MAX_DEPTH) -> GatewayError:
    return invalid(f"'{param}' is nested too deeply (at most {limit} levels)", param)


def loads(body: bytes | memoryview, param: str | None = "body") -> Any:
    """A client's request body parsed; bad JSON and JSON deeper than orjson reads are 400s
    (`param` as the format names the body: Anthropic's errors name no field for it)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):
            message = f"request body is nested too deeply (at most {ORJSON_READ_DEPTH} levels)"
            raise invalid(message, param) from None
        raise invalid("request body is not valid JSON", param) from None


def _unread_as_written(value: Any) -> orjson.Fragment:
    """A value left unread (json_fields.request_top) goes on as the client wrote it."""
    if isinstance(value, msgspec.Raw):
        return orjson.Fragment(bytes(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps_request(body: dict[str, Any], param: str = "body") -> bytes:
    """A provider request body. A client value deeper than orjson writes (a tool schema,
    a tool call's input: orjson reads 1024 levels but writes 254) is the client's 400."""
    try:
        return orjson.dumps(body, default=_unread_as_written)
    except orjson.JSONEncodeError as exc:
        if "ecursion" in str(exc):  # orjson: "Recursion limit reached"
            raise too_deep(param, ORJSON_WRITE_DEPTH) from None
        raise invalid(f"the request cannot be written as JSON: {exc}", param) from None


def check_schema_depth(schemas: list[Any], params: Callable[[], list[str]]) -> None:
    """Each schema nests at most MAX_SCHEMA_DEPTH levels; `params` names them, in order, for
    the refusal. orjson is the measure: written below SCHEMA_ROOM levels, a schema fails
    exactly when it nests deeper. One C pass over all of a request's schemas costs a fifth of
    a Python walk over them."""
    if not schemas:
        return
    try:
        orjson.dumps(_below(schemas, SCHEMA_ROOM - 1))  # the list of schemas is a level
        return
    except orjson.JSONEncodeError:
        pass
    for param, schema in zip(params(), schemas, strict=True):  # which one: for the refusal only
        try:
            orjson.dumps(_below(schema, SCHEMA_ROOM))
        except orjson.JSONEncodeError:
            raise too_deep(param, MAX_SCHEMA_DEPTH) from None
    raise too_deep("body", MAX_SCHEMA_DEPTH)  # not reached: the group failed, so one of them does


def _below(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value
