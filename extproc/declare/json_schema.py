"""The JSON Schema of a declared class: what `extproc schema` prints and the loader validates with."""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

from extproc.declare.fields import MISSING, NOT_GIVEN, Option, section_of
from extproc.declare.types import Declared, declared_fields, dict_value, is_declared, is_literal, tuple_item, unwrap

_SCALARS: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def json_schema(cls: type) -> dict[str, Any]:
    """The mapping `cls` is read from: every option in field order, groups where their first key is."""
    section = section_of(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    schema: dict[str, Any]
    for declared in declared_fields(cls):
        option = declared.option
        if option.derived:
            continue
        if option.inline:
            inner = json_schema(unwrap(declared.hint)[0])
            properties.update(inner["properties"])
            required += inner.get("required", [])
            continue
        key = option.key or declared.field.name
        group, _, name = key.rpartition(".")
        if group:
            holder = properties.setdefault(group, _group_schema(cls, group))
            holder["properties"][name] = _option_schema(declared)
        else:
            properties[key] = _option_schema(declared)
            if _is_required(declared.field, option):
                required.append(key)
    schema = {"type": "object", "additionalProperties": False}
    if section.description:
        schema["description"] = section.description
    if required:
        schema["required"] = required
    schema |= section.keywords
    schema["properties"] = properties
    return schema


def type_schema(hint: Any) -> dict[str, Any]:
    """The schema of a value of type `hint`."""
    base, keywords = unwrap(hint)
    if is_literal(base):
        schema: dict[str, Any] = {"enum": list(get_args(base))}
    elif isinstance(base, type) and base in _SCALARS:
        schema = {"type": _SCALARS[base]}
    elif (item := tuple_item(base)) is not None:
        schema = {"type": "array", "items": type_schema(item)}
    elif (value := dict_value(base)) is not None:
        schema = {"type": "object", "additionalProperties": type_schema(value)}
    elif is_declared(base):
        schema = json_schema(base)
    else:
        raise TypeError(f"no JSON Schema for {hint!r}")
    return schema | keywords


def documented_default(declared: Declared) -> Any:
    """The default the reference shows (MISSING: none, the option is required or simply not set)."""
    option, item = declared.option, declared.field
    if option.documented is not NOT_GIVEN:
        return option.documented
    if option.unset:
        return MISSING
    if item.default is not MISSING:
        value = item.default
    elif item.default_factory is not MISSING:
        value = item.default_factory()  # type: ignore[operator]  # a factory, once MISSING is ruled out
    else:
        return MISSING
    if value is None or dataclasses.is_dataclass(value):
        return MISSING
    return plain(value)


def plain(value: Any) -> Any:
    """A value as the document writes it: tuples as lists."""
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def _option_schema(declared: Declared) -> dict[str, Any]:
    option = declared.option
    if option.schema is not None:
        schema = dict(option.schema)
    elif option.shape is not None:
        schema = json_schema(option.shape)
    else:
        schema = type_schema(declared.hint)
    schema |= option.keywords
    if (default := documented_default(declared)) is not MISSING:
        schema["default"] = default
    if option.description:
        schema["description"] = option.description  # an array's items keep their own
    if option.examples:
        schema["examples"] = [plain(example) for example in option.examples]
    return schema


def _group_schema(cls: type, name: str) -> dict[str, Any]:
    group = section_of(cls).groups[name]
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "description": group.description}
    if group.required:
        schema["required"] = list(group.required)
    schema["properties"] = {}
    return schema


def _is_required(item: dataclasses.Field[Any], option: Option) -> bool:
    if option.required is not None:
        return option.required
    return item.default is MISSING and item.default_factory is MISSING
