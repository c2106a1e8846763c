"""The parts of a field's type annotation the schema and the builder read."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from extproc.declare.fields import Option, Schema, option_of


@dataclasses.dataclass(frozen=True, slots=True)
class Declared:
    """One field of a declared class: its dataclass field, its option and its type."""

    field: dataclasses.Field[Any]
    option: Option
    hint: Any


@functools.cache
def declared_fields(cls: type) -> tuple[Declared, ...]:
    hints = get_type_hints(cls, include_extras=True)
    return tuple(Declared(item, option_of(item), hints[item.name]) for item in dataclasses.fields(cls))


def unwrap(hint: Any) -> tuple[Any, dict[str, Any]]:
    """The type without `Annotated` and `| None`, and the Schema keywords it carried."""
    keywords: dict[str, Any] = {}
    while True:
        if get_origin(hint) is Annotated:
            base, *extras = get_args(hint)
            for extra in extras:
                if isinstance(extra, Schema):
                    keywords.update(extra.keywords)
            hint = base
        elif get_origin(hint) in (typing.Union, types.UnionType):
            others = [arg for arg in get_args(hint) if arg is not type(None)]
            if len(others) != 1:
                raise TypeError(f"a declared option holds one type (or None), not {hint}")
            hint = others[0]
        else:
            return hint, keywords


def is_literal(hint: Any) -> bool:
    return get_origin(hint) is Literal


def is_declared(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def tuple_item(hint: Any) -> Any | None:
    """T of `tuple[T, ...]`; None for any other type."""
    args = get_args(hint)
    if get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def dict_value(hint: Any) -> Any | None:
    """T of `dict[str, T]`; None for any other type."""
    return get_args(hint)[1] if get_origin(hint) is dict else None
