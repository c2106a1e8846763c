"""A provider side's plain parameters as rows, not code: the canonical field, the provider's name
for it and when it counts as asked (`Param`); what the provider lacks (`Lacks`); the range it
takes a number in (`Bounds`); and a function
tool and a JSON schema response format, written once for every provider format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from extproc.formats.canonical import ChatRequest, ResponseFormat, Tool
from extproc.formats.render_options import Unsupported

Asked = Callable[[Any], bool]


def is_set(value: Any) -> bool:
    return value is not None


def is_given(value: Any) -> bool:
    """Set and not empty or zero (an empty `stop`, a zero penalty ask for nothing)."""
    return bool(value)


def more_than_one(value: Any) -> bool:
    return value is not None and value > 1


class Param(NamedTuple):
    """`field` of the canonical request, sent as the provider's `key` when `asked`."""

    field: str
    key: str
    asked: Asked = is_set


class Lacks(NamedTuple):
    """`field` of the canonical request, which the provider has no place for, when `asked`: dropped
    and named, or refused, per the provider's `unsupported` policy."""

    field: str
    asked: Asked = is_set


# The loops unpack the rows and test `is_set` inline: they run on every request.
def put_params(req: ChatRequest, params: tuple[Param, ...], out: dict[str, Any]) -> None:
    for field, key, asked in params:
        value = getattr(req, field)
        if (value is not None) if asked is is_set else asked(value):
            out[key] = value


def check_lacks(req: ChatRequest, lacks: tuple[Lacks, ...], unsupported: Unsupported) -> None:
    for field, asked in lacks:
        value = getattr(req, field)
        if (value is not None) if asked is is_set else asked(value):
            unsupported.lacks(field)


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
