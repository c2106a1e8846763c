"""What of a client's request body the canonical request carries, and a walk that finds the rest.

A provider of the client's own API is sent the client's own bytes, so everything the canonical
request does not carry (a field the gateway does not model, a known field read with a loss, a
field it will only learn of tomorrow) still reaches that provider and can change its answer.
Each API describes, as a shape, the members the canonical request carries: a member a shape
does not name is not carried, whatever it is. The walk reads only the body's objects and
arrays, never its text: a long conversation costs one step per message and content part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class Carried:
    """A value the canonical request carries whole (or one that cannot change the answer)."""

    __slots__ = ()


CARRIED = Carried()


class Fields:
    """An object: the named members follow their rules, any other member is not carried. A value
    that is not an object is one the parser reads whole (a string where parts may be)."""

    __slots__ = ("names", "nested")

    def __init__(self, members: Mapping[str, Rule]) -> None:
        self.names = frozenset(members)  # checked all at once, in C
        self.nested = tuple((name, rule) for name, rule in members.items() if rule is not CARRIED)


@dataclass(frozen=True, slots=True)
class Each:
    """An array whose items follow `item` (a value that is not an array is read whole)."""

    item: Rule


@dataclass(frozen=True, slots=True)
class Choose:
    """An object whose shape depends on one of its members (a message's role, a block's type);
    a value none of `shapes` names takes `default`."""

    member: str
    shapes: Mapping[str, Fields]
    default: Fields

    def pick(self, value: dict[str, Any]) -> Fields:
        kind = value.get(self.member)
        return self.shapes.get(kind, self.default) if isinstance(kind, str) else self.default


@dataclass(frozen=True, slots=True)
class When:
    """Carried only when `test(value, parent)` holds: a value the parser reads with a loss
    (another field taking its place, a setting the canonical request cannot say)."""

    test: Callable[[Any, dict[str, Any]], bool]


Rule = Carried | Fields | Each | Choose | When
Uncarried = list[tuple[str, Any]]  # (where in the body, the value there)
Trail = tuple[Any, str | int] | None  # (the parent's trail, this step): built only as deep as the walk goes


def uncarried(body: dict[str, Any], shape: Fields) -> Uncarried:
    """Every member of `body` the canonical request does not carry, with where it is, in a
    stable order; empty when the canonical request says all of it."""
    found: list[tuple[Trail, Any]] = []
    _object(body, shape, None, found)
    return sorted((_where(trail), value) for trail, value in found) if found else []


def _object(value: dict[str, Any], shape: Fields, trail: Trail, found: list[tuple[Trail, Any]]) -> None:
    if not shape.names.issuperset(value):
        found.extend(((trail, name), value[name]) for name in value.keys() - shape.names)
    for name, rule in shape.nested:  # the type checks are inline: this runs per message and part
        member = value.get(name)
        if member is None:  # absent, or null (read as absent)
            continue
        if type(rule) is Each:
            if type(member) is list:
                _items(member, rule.item, value, (trail, name), found)
        elif type(rule) is When:
            if not rule.test(member, value):
                found.append(((trail, name), member))
        elif isinstance(rule, Fields):
            if type(member) is dict:
                _object(member, rule, (trail, name), found)
        elif isinstance(rule, Choose) and type(member) is dict:
            _object(member, rule.pick(member), (trail, name), found)


def _items(items: list[Any], rule: Rule, parent: dict[str, Any], trail: Trail, found: list[tuple[Trail, Any]]) -> None:
    if isinstance(rule, Fields):
        for index, item in enumerate(items):
            if type(item) is dict:
                _object(item, rule, (trail, index), found)
    elif isinstance(rule, Choose):
        for index, item in enumerate(items):
            if type(item) is dict:
                _object(item, rule.pick(item), (trail, index), found)
    elif type(rule) is When:
        found.extend(((trail, index), item) for index, item in enumerate(items) if not rule.test(item, parent))


def _where(trail: Trail) -> str:
    steps: list[str] = []
    while trail is not None:
        trail, step = trail
        steps.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(steps))
