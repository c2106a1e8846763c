"""Client input validation: typed readers of optional fields, the body object and the model name."""

from __future__ import annotations

from typing import Any

from extproc.formats.canonical import ApiFeature, ResponseFormat, feature_name
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import loads
from extproc.formats.json_fields import is_int, is_num
from extproc.formats.model_name import check_model
from extproc.formats.repeated_keys import ARRAY, BOOLEAN, NUMBER, STRING, STRING_OR_ARRAY, Field
from extproc.formats.repeated_keys import refuse_repeated as _refuse_repeated

# What the gateway decides on (route, allow-list, streaming, token limits) and the conversation it
# estimates and keys the cache on: never repeated. Each name costs a search of the raw body.
CHAT_FIELDS = (
    Field(("model",), STRING),
    Field(("stream",), BOOLEAN),
    Field(("messages",), ARRAY),
    Field(("max_tokens",), NUMBER),
    Field(("max_completion_tokens",), NUMBER),
)
EMBEDDING_FIELDS = (
    Field(("model",), STRING),
    Field(("input",), STRING_OR_ARRAY),
)


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if not is_int(v):
        raise invalid(f"'{key}' must be an integer", key)
    return v


def _opt_num(body: dict[str, Any], key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if not is_num(v):
        raise invalid(f"'{key}' must be a number", key)
    return v


def _opt_bool(obj: dict[str, Any], key: str, param: str) -> bool | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise invalid(f"'{param}' must be a boolean", param)
    return v


def _opt_str(obj: dict[str, Any], key: str, param: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise invalid(f"'{param}' must be a string", param)
    return v


def _loads_object(body: bytes, checked: tuple[Field, ...]) -> dict[str, Any]:
    data = loads(body)
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object", "body")
    _refuse_repeated(body, data, checked)
    return data


def _model(body: dict[str, Any], path_model: str | None) -> str:
    model = body.get("model")
    if model is None and path_model:
        return check_model(path_model)
    if not isinstance(model, str) or not model:
        raise invalid("'model' is required and must be a non-empty string", "model")
    return check_model(model)


def response_format_of(
    fmt: dict[str, Any], at: str, holder: Any, holder_at: str, features: list[ApiFeature]
) -> ResponseFormat | None:
    """A response format object named `at` (Chat Completions' `response_format`, the Responses
    API's `text.format`); `holder`, named `holder_at`, has a JSON schema's schema, name and strict.
    A type added since is an ApiFeature."""
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind == "json_schema":
        if not isinstance(holder, dict):
            raise invalid(f"'{holder_at}' must be an object", holder_at)
        schema = holder.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise invalid(f"'{holder_at}.schema' must be an object", f"{holder_at}.schema")
        name, strict = _opt_str(holder, "name", f"{holder_at}.name"), _opt_bool(holder, "strict", f"{holder_at}.strict")
        return ResponseFormat("json_schema", schema=schema, name=name, strict=strict)
    if isinstance(kind, str):
        features.append(ApiFeature(feature_name(f"{at}.", kind), f"{at}.type", value=fmt))
        return None
    raise invalid(f"'{at}.type' must be a string", f"{at}.type")
