"""A request body that gives a field the gateway acts on more than once is refused (a 400).

orjson keeps the last of two equal keys and some providers keep the first: with
`{"model": "a", ..., "model": "b"}` the allow-list would see b and the provider answer as a.
Only the fields the gateway reads for its own decisions are checked (model, streaming, token
fields, the conversation); a key repeated anywhere else is the provider's to judge.

Cost on the hot path: the raw bytes are searched for the quoted name of each checked field the
body holds (a handful: most are absent, and a field orjson did not keep was not given). A name
counts when it is a key whose value has a kind a provider would act on for that field (null
included), so a tool schema's `"model": {...}` property is not counted. CPython's bytes.find
is slow on short needles (~30 µs per name in an 80 KB body); libc's vectorised strstr takes
~1.5 µs, and a body orjson accepted holds no NUL byte that would stop it early. Only when a
name counts twice is the body read again, by the standard library's parser keeping every key
(~0.4 ms for 80 KB), to tell a repeated field from the same name inside a nested object.
"""

from __future__ import annotations

import ctypes
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from extproc.formats.base import invalid

# First bytes of the values a provider acts on, by JSON type ("n": a null, often read as "absent").
STRING = b'"n'
NUMBER = b"-0123456789n"
NUMBER_OR_STRING = NUMBER + b'"'  # proto3 JSON (Gemini) also takes integers as strings
BOOLEAN = b"tfn"
ARRAY = b"[n"
OBJECT = b"{n"
STRING_OR_ARRAY = b'"[n'

_SEPARATOR = re.compile(rb"[ \t\r\n]*:[ \t\r\n]*")  # between a key and its value
_SMALL = 512  # bytes below which bytes.find beats a call through ctypes (measured)
_MAX_LOOKS = 64  # occurrences of one name looked at one by one; past that, the body is read again


@dataclass(frozen=True, slots=True)
class Field:
    path: tuple[str, ...]  # keys from the top-level object down
    kinds: bytes  # first bytes of the values a provider would act on
    needle: bytes = field(init=False, repr=False)  # the quoted name searched for

    def __post_init__(self) -> None:
        object.__setattr__(self, "needle", b'"' + self.path[-1].encode() + b'"')


def refuse_repeated(body: bytes, data: dict[str, Any], checked: tuple[Field, ...]) -> None:
    """A 400 naming the field when `body`, the JSON object orjson read as `data`, repeats a
    checked field. A field `data` does not hold is not searched for: had the body given it
    twice, orjson would have kept one of them."""
    small = _strstr is None or len(body) < _SMALL
    for one in checked:
        if one.path[0] not in data or (len(one.path) > 1 and not _holds(data, one.path)):
            continue
        if small:
            if body.count(one.needle) < 2 or not _counts_twice(body, one, _python_positions(body, one.needle)):
                continue
        elif not _counts_twice(body, one, _libc_positions(body, one.needle)):
            continue
        repeated = _repeated_field(body, checked)
        if repeated is not None:
            raise invalid(f"'{repeated}' is given more than once in the request body", repeated)
        return


def _holds(data: dict[str, Any], path: tuple[str, ...]) -> bool:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def _counts_twice(body: bytes, checked: Field, positions: Iterable[int]) -> bool:
    """Whether the field's name is twice a key whose value starts with one of its kinds (or
    there are too many of its kind to look at one by one: the exact reading decides)."""
    seen = False
    for looked, at in enumerate(positions):
        if looked == _MAX_LOOKS:
            return True
        separator = _SEPARATOR.match(body, at + len(checked.needle))
        end = len(body) if separator is None else separator.end()
        if end < len(body) and body[end] in checked.kinds:  # else a value, or a kind no provider takes
            if seen:
                return True
            seen = True
    return False


def _python_positions(body: bytes, needle: bytes) -> Iterator[int]:
    at = body.find(needle)
    while at >= 0:
        yield at
        at = body.find(needle, at + 1)


def _libc_positions(body: bytes, needle: bytes) -> Iterator[int]:
    """libc's strstr stops at a NUL byte, which JSON that orjson read never holds."""
    assert _strstr is not None
    found = _strstr(body, needle)
    if not found:
        return
    base = _strstr(body, b"")  # strstr finds the empty needle at the start: the body's address
    while found:
        yield found - base
        found = _strstr(found + 1, needle)  # `body` ends in a NUL: never past it


def _load_strstr() -> Any:
    try:
        strstr = ctypes.PyDLL(None).strstr  # PyDLL: a short call, no GIL release
    except (OSError, AttributeError):
        return None
    strstr.restype = ctypes.c_void_p
    strstr.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
    return strstr


_strstr = _load_strstr()


class _Object(dict[str, Any]):
    """A JSON object that also knows which of its keys it was given more than once."""

    __slots__ = ("repeated",)
    repeated: frozenset[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) == len(pairs):
        obj.repeated = frozenset()
    else:
        obj.repeated = frozenset(key for key, times in Counter(key for key, _ in pairs).items() if times > 1)
    return obj


def _repeated_field(body: bytes, checked: tuple[Field, ...]) -> str | None:
    try:
        top = json.loads(body, object_pairs_hook=_object)
    except (RecursionError, ValueError):  # what orjson read but this parser cannot: not to be trusted
        raise invalid("request body cannot be checked for repeated fields", "body") from None
    for one in checked:
        obj = top
        for depth, key in enumerate(one.path):
            if not isinstance(obj, _Object):
                break
            if key in obj.repeated:
                return ".".join(one.path[: depth + 1])
            obj = obj.get(key)
    return None
