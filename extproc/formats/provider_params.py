"""A provider side's plain parameters as rows, not code: the canonical field, the provider's name
for it and when it counts as asked (`Param`); when each parameter a provider may lack counts as
asked (`ASKED`, read with a kind record's `unsupported`); the range a provider takes a number in
(`Bounds`); and a function tool and a JSON schema response format, written once for every
provider format."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, NamedTuple

from extproc.formats.canonical import ChatRequest, ResponseFormat, Tool
from extproc.formats.render_options import Asked, Lacking, Unsupported


def is_set(value: Any) -> bool:
    return value is not None


def is_given(value: Any) -> bool:
    """Set and not empty or zero (an empty `stop`, a zero penalty ask for nothing)."""
    return bool(value)


def more_than_one(value: Any) -> bool:
    return value is not None and value > 1


def is_false(value: Any) -> bool:
    """Only an explicit false asks for something (parallel_tool_calls: false)."""
    return value is False


# Every canonical parameter a kind record may name in its `unsupported`, with when a request asks
# for it (n only above 1, stop and a penalty only when not empty or 0, parallel_tool_calls only
# when false); in the order a provider side names what it drops.
ASKED: dict[str, Asked] = {
    "stop": is_given,
    "n": more_than_one,
    "seed": is_set,
    "presence_penalty": is_given,
    "frequency_penalty": is_given,
    "top_k": is_set,
    "parallel_tool_calls": is_false,
}


def lacking(names: Collection[str]) -> Lacking:
    """A kind record's `unsupported` as the pairs a render checks (made once per record, not per
    request); a name without a row is a KeyError, so a record cannot name what no render checks."""
    unknown = set(names) - ASKED.keys()
    if unknown:
        raise KeyError(f"no row in ASKED for {sorted(unknown)}")
    return tuple((field, asked) for field, asked in ASKED.items() if field in names)


class Param(NamedTuple):
    """`field` of the canonical request, sent as the provider's `key` when `asked`."""

    field: str
    key: str
    asked: Asked = is_set


# The loops unpack the rows and test `is_set` inline: they run on every request.
def put_params(req: ChatRequest, params: tuple[Param, ...], out: dict[str, Any]) -> None:
    for field, key, asked in params:
        value = getattr(req, field)
        if (value is not None) if asked is is_set else asked(value):
            out[key] = value


def without_lacking(req: ChatRequest, lacks: Lacking, unsupported: Unsupported) -> ChatRequest:
    """`req` as the provider gets it: each parameter it lacks that `req` asks for is dropped and
    named, or refused, per the provider's `unsupported` policy, and cleared in a copy (the
    canonical request serves a pool's other attempts unchanged), so no renderer sends it."""
    cleared: dict[str, Any] = {}
    for field, asked in lacks:
        value = getattr(req, field)
        if (value is not None) if asked is is_set else asked(value):
            unsupported.lacks(field)
            cleared[field] = [] if field == "stop" else None  # the field's "not asked"
    return dataclasses.replace(req, **cleared) if cleared else req


class Bounds(NamedTuple):
    """The range a provider takes a number in; a value outside is moved to the nearer end.
    `as_float`: the value is sent as a float (a client's 1 goes as 1.0)."""

    low: float
    high: float
    as_float: bool = False

    def clamp(self, value: float) -> float:
        return min(max(float(value) if self.as_float else value, self.low), self.high)


def function_fields(
    out: dict[str, Any], tool: Tool, schema_key: str, schema: Any, strict: bool | None
) -> dict[str, Any]:
    """A function tool's name, description, parameters' `schema` under `schema_key` (left out when
    None) and `strict` (left out when None), added to `out`, in the order every API lists them."""
    out["name"] = tool.name
    if tool.description is not None:
        out["description"] = tool.description
    if schema is not None:
        out[schema_key] = schema
    if strict is not None:
        out["strict"] = strict
    return out


def schema_format_fields(out: dict[str, Any], fmt: ResponseFormat) -> dict[str, Any]:
    """A JSON schema response format's name, schema and strict (OpenAI's two APIs), added to `out`."""
    out["name"] = fmt.name or "response"
    out["schema"] = fmt.schema or {}
    if fmt.strict is not None:
        out["strict"] = fmt.strict
    return out
