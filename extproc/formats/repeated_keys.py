"""A request body that gives a field the gateway acts on more than once is refused (a 400).

orjson keeps the last of two equal keys and some providers keep the first: with
`{"model": "a", ..., "model": "b"}` the allow-list would see b and the provider answer as a.
Only the fields the gateway reads for its own decisions are checked (model, streaming, token
fields, the conversation); a key repeated anywhere else is the provider's to judge.

Cost on the hot path: the raw bytes are searched for the quoted name of each checked field the
body holds (a handful: most are absent, and a field orjson did not keep was not given), and for
letters spelled as escapes (`"mod\\u0065l"` is `model` too; no JSON writer does that). A name
counts when it is a key whose value has a kind a provider would act on for that field (null
included), so a tool schema's `"model": {...}` property is not counted. CPython's bytes.find
is slow on short needles (~30 µs per name in an 80 KB body); libc's vectorised strstr takes
~1.5 µs, and a body orjson accepted holds no NUL byte that would stop it early. Only when a
name counts twice is the body read again, to tell a repeated field from the same name inside
a nested object: by orjson, each key with a checked name renamed apart (~0.1 ms for 80 KB), or,
where letters are escaped, by the standard library's parser keeping every key (~0.4 ms).
"""

from __future__ import annotations

import ctypes
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from extproc.formats.client_errors import invalid

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
_LETTER_ESCAPES = (b"\\u004", b"\\u005", b"\\u006", b"\\u007")  # A-O; P-Z and _; a-o; p-z (and some signs)
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
    positions = _python_positions if small else _libc_positions
    if _escapes_a_letter(body, small, positions):  # a name could hide from the search
        _refuse(_repeated_by_decoding(body, checked))
        return
    for one in checked:
        if one.path[0] not in data or (len(one.path) > 1 and not _holds(data, one.path)):
            continue
        if small and body.count(one.needle) < 2:
            continue
        if _counts_twice(body, one, positions(body, one.needle)):
            _refuse(_repeated_by_renaming(body, checked, positions))
            return


def first_position(body: bytes, needle: bytes) -> int:
    """Where `needle` first occurs in `body` (-1: nowhere), searched as the checks search: by libc's
    strstr in a large body (which stops at a NUL byte: a JSON body holds none)."""
    small = _strstr is None or len(body) < _SMALL
    return next((_python_positions if small else _libc_positions)(body, needle), -1)


def _refuse(repeated: str | None) -> None:
    if repeated is not None:
        raise invalid(f"'{repeated}' is given more than once in the request body", repeated)


def _escapes_a_letter(body: bytes, small: bool, positions: Callable[[bytes, bytes], Iterator[int]]) -> bool:
    """Whether the body spells a letter or `_` as an escape (`\\u0041` to `\\u007a`): the key
    `"mod\\u0065l"` is `model`, and a search for `"model"` misses it. JSON writers escape
    quotes, backslashes, control and non-ASCII characters (some also `<`, `>`, `&`): never these."""
    if small:
        return b"\\u00" in body and any(escape in body for escape in _LETTER_ESCAPES)
    if next(positions(body, b"\\u00"), None) is None:
        return False
    return any(next(positions(body, escape), None) is not None for escape in _LETTER_ESCAPES)


def _holds(data: dict[str, Any], path: tuple[str, ...]) -> bool:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


def _counts_twice(body: bytes, checked: Field, positions: Iterable[int]) -> bool:
    """Whether the field's name is twice a key whose value starts with one of its kinds (or
    occurs too often to look at each: the exact reading decides)."""
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


def _repeated_by_renaming(
    body: bytes, checked: tuple[Field, ...], positions: Callable[[bytes, bytes], Iterator[int]]
) -> str | None:
    """The checked field given twice in one object, if any, for a body that spells no letter
    as an escape (every key with a checked name is then found by its plain name). Each such key
    gets a name of its own (`model\\u00003`) and orjson reads the result: two keys of one name
    in one object are a repeat there. A fifth of the cost of the standard library's parser."""
    cuts = []  # where each key with a checked name ends (its closing quote)
    for name in {name for one in checked for name in one.path}:
        needle = b'"' + name.encode() + b'"'
        cuts += [at + len(needle) - 1 for at in positions(body, needle) if _SEPARATOR.match(body, at + len(needle))]
    cuts.sort()
    pieces, start = [], 0
    for number, cut in enumerate(cuts):
        pieces += [body[start:cut], b"\\u0000%d" % number]
        start = cut
    top = orjson.loads(b"".join([*pieces, body[start:]]))
    for one in checked:
        obj = top
        for depth, name in enumerate(one.path):
            if not isinstance(obj, dict):
                break
            keys = [key for key in obj if key.partition("\0")[0] == name]
            if len(keys) > 1:
                return ".".join(one.path[: depth + 1])
            if not keys:
                break
            obj = obj[keys[0]]
    return None


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


def _repeated_by_decoding(body: bytes, checked: tuple[Field, ...]) -> str | None:
    """The checked field given twice in one object, if any: the standard library's parser keeps
    every key, escapes decoded."""
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
