"""The typed object of a declared class, from its mapping in a document the schema accepted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from extproc.declare.fields import MISSING
from extproc.declare.types import declared_fields, dict_value, is_declared, tuple_item, unwrap

T = TypeVar("T")


def build(cls: type[T], document: Mapping[str, Any], **given: Any) -> T:
    """`cls` from `document` (valid against `json_schema(cls)`): each option given there, or its
    default; `given` sets fields the caller resolved itself (derived ones, or checked ones)."""
    values: dict[str, Any] = {}
    for declared in declared_fields(cls):  # type: ignore[arg-type]  # a class is hashable
        name, option = declared.field.name, declared.option
        if name in given:
            values[name] = given[name]
        elif option.inline:
            values[name] = build(unwrap(declared.hint)[0], document)
        elif not option.derived and (raw := lookup(document, option.key or name)) is not MISSING:
            values[name] = option.convert(raw) if option.convert else value_of(declared.hint, raw)
    return cls(**values)


def lookup(document: Mapping[str, Any], key: str) -> Any:
    """The value at `key` (`group.key` inside a group); MISSING when not given."""
    group, _, name = key.rpartition(".")
    holder = document.get(group) if group else document
    if not isinstance(holder, Mapping):
        return MISSING
    return holder.get(name, MISSING)


def value_of(hint: Any, raw: Any) -> Any:
    """A document value as the field's type holds it: tuples for lists, objects for mappings."""
    if raw is None:
        return None
    base, _ = unwrap(hint)
    if is_declared(base):
        return build(base, raw)
    if (item := tuple_item(base)) is not None:
        return tuple(value_of(item, value) for value in raw)
    if (value := dict_value(base)) is not None:
        return {key: value_of(value, entry) for key, entry in raw.items()}
    if base is float:
        return float(raw)
    return raw
