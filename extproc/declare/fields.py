"""How an option of gateway.yaml is declared: once, on the field of the typed object the code reads.

A field says what the document holds for it (its JSON Schema keywords, description, examples,
documented default) and where (its key, `group.key` for a key inside a small mapping of the
parent); `derived` fields are not in the document (a resolved secret, a path made absolute), and
an `inline` field is a typed object whose options sit in the parent's own mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_META = "gateway_option"
MISSING: Any = dataclasses.MISSING  # no value: a field without a default, a key the document leaves out


class _NotGiven:
    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()  # an argument left out (MISSING cannot be a dataclass field's default)


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: typing hashes the metadata of Annotated
class Schema:
    """JSON Schema keywords a type carries: `Annotated[int, Schema(minimum=1)]`."""

    keywords: Mapping[str, Any]

    def __init__(self, **keywords: Any) -> None:
        object.__setattr__(self, "keywords", keywords)


@dataclass(frozen=True, slots=True)
class Group:
    """A small mapping of the document whose keys are fields of the parent (`tls: {ca_file: ...}`)."""

    description: str
    required: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Section:
    """What a declared class says about its mapping as a whole."""

    description: str | None = None
    groups: Mapping[str, Group] = field(default_factory=dict)
    keywords: Mapping[str, Any] = field(default_factory=dict)  # e.g. oneOf of required keys


@dataclass(frozen=True, slots=True)
class Option:
    description: str | None = None
    examples: tuple[Any, ...] = ()
    key: str | None = None  # the document's key, `group.key` inside a group; None: the field's name
    keywords: Mapping[str, Any] = field(default_factory=dict)  # merged over the type's schema
    schema: Mapping[str, Any] | None = None  # the document's schema when it is not the type's
    shape: type | None = None  # a declared class describing the document's mapping (the field holds a dict)
    documented: Any = NOT_GIVEN  # the default the reference shows, when not the field's own
    required: bool | None = None  # None: required when the field has no default
    unset: bool = False  # the field's default means "not set": none is documented
    convert: Callable[[Any], Any] | None = None  # document value -> field value
    derived: bool = False  # not in the document: the loader sets it
    inline: bool = False  # a declared class whose options are the parent's keys


def option(
    default: Any = MISSING,
    *,
    description: str | None = None,
    examples: list[Any] | None = None,
    key: str | None = None,
    factory: Callable[[], Any] | None = None,
    schema: Mapping[str, Any] | None = None,
    shape: type | None = None,
    documented: Any = NOT_GIVEN,
    required: bool | None = None,
    unset: bool = False,
    convert: Callable[[Any], Any] | None = None,
    repr: bool = True,
    kw_only: bool = False,
    **keywords: Any,
) -> Any:
    """A field that is an option of the document; extra keywords are JSON Schema keywords.
    `required=False` for a field without a default that the document may leave out: the loader
    then gives its value (a listener's name is `listener<index>`)."""
    meta = Option(
        description, tuple(examples or ()), key, keywords, schema, shape, documented, required, unset, convert
    )
    return _field(default, factory, meta, repr, kw_only)


def derived(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, repr: bool = True) -> Any:
    """A field the loader fills (a resolved secret, an absolute path): not an option of the document."""
    return _field(default, factory, Option(derived=True), repr, False)


def inline(factory: Callable[[], Any], *, kw_only: bool = False) -> Any:
    """A declared class whose options are keys of the parent's own mapping."""
    return _field(MISSING, factory, Option(inline=True), True, kw_only)


def section(
    description: str | None = None, *, groups: Mapping[str, Group] | None = None, **keywords: Any
) -> Callable[[type], type]:
    """Class decorator: the description of the class's mapping, its groups and schema keywords."""

    def mark(cls: type) -> type:
        cls.__gateway_section__ = Section(description, dict(groups or {}), keywords)  # type: ignore[attr-defined]
        return cls

    return mark


def section_of(cls: type) -> Section:
    return getattr(cls, "__gateway_section__", None) or Section()


def option_of(item: dataclasses.Field[Any]) -> Option:
    return item.metadata.get(_META) or Option()


def _field(default: Any, factory: Callable[[], Any] | None, meta: Option, repr: bool, kw_only: bool) -> Any:
    extra: dict[str, Any] = {"metadata": {_META: meta}, "repr": repr}
    if kw_only:
        extra["kw_only"] = True
    if factory is not None:
        return field(default_factory=factory, **extra)
    return field(default=default, **extra)
