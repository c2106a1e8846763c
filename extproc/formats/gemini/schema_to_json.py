"""Gemini's OpenAPI-subset Schema (`parameters` / `responseSchema`) -> JSON Schema."""

from __future__ import annotations

from typing import Any

from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import MAX_DEPTH, too_deep
from extproc.formats.json_fields import as_array, as_object, as_proto3_int, as_string

_SCHEMA_SNAKE = {
    "any_of": "anyOf",
    "min_items": "minItems",
    "max_items": "maxItems",
    "min_length": "minLength",
    "max_length": "maxLength",
    "min_properties": "minProperties",
    "max_properties": "maxProperties",
    "property_ordering": "propertyOrdering",
}
_SCHEMA_INTS = frozenset(("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"))


def schema_to_json(schema: Any, param: str, depth: int = 0) -> dict:
    if depth > MAX_DEPTH:  # a client's schema drives this recursion: bounded, not RecursionError
        raise too_deep(param)
    schema = as_object(schema, param)
    deeper = depth + 1
    out: dict[str, Any] = {}
    nullable = False
    for key, value in schema.items():
        key = _SCHEMA_SNAKE.get(key, key)
        if value is None or key in ("propertyOrdering", "example"):
            continue
        p = f"{param}.{key}"
        if key == "type":
            if isinstance(value, str):
                value = value.lower()
                if value == "type_unspecified":
                    continue
            elif isinstance(value, list):
                value = [as_string(t, p).lower() for t in value]
            else:
                raise invalid(f"'{p}' must be a string", p)
        elif key == "nullable":
            nullable = value is True
            continue
        elif key == "properties":
            value = {
                as_string(name, p): schema_to_json(sub, f"{p}.{name}", deeper)
                for name, sub in as_object(value, p).items()
            }
        elif key == "items":
            value = schema_to_json(value, p, deeper)
        elif key == "anyOf":
            value = [schema_to_json(sub, f"{p}[{k}]", deeper) for k, sub in enumerate(as_array(value, p))]
        elif key in _SCHEMA_INTS:
            value = as_proto3_int(value, p)
        out[key] = value
    if nullable:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
    return out
