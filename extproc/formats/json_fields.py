"""Typed reads of a client's JSON, the one way every format reads its request: a value of the
wrong type is a 400 naming the field by its path (`messages[3].content[0].text`), worded as the
client's own API words its refusals (OpenAI, the Responses API and Gemini quote the field;
Anthropic does not).

The reads are the parsers' hot path (an agent's request has hundreds of fields, parsed on every
turn): a read is one dict lookup and one type test, and a field's path is only written out when
it is refused.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

import msgspec
import orjson

from extproc.errors import GatewayError
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import loads
from extproc.formats.repeated_keys import Field, refuse_repeated


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a number


def is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def path(at: str, key: str) -> str:
    """`key` of the object at `at` (the top level when `at` is empty)."""
    return f"{at}.{key}" if at else key


class Wording:
    """How a format words a refusal: `quoted` says `'p' must be a string`, else `p must be a
    string`, and a missing required field `p: a string is required`."""

    __slots__ = ("quoted",)

    def __init__(self, quoted: bool) -> None:
        self.quoted = quoted

    def must(self, param: str, what: str) -> GatewayError:
        """`param` has a value of the wrong type (`what`: "a string", "an object", ...)."""
        return invalid(f"'{param}' must be {what}" if self.quoted else f"{param} must be {what}", param)

    def required(self, param: str, what: str) -> GatewayError:
        """`param` is missing, or has a value of the wrong type, and the request needs it."""
        return invalid(f"'{param}' must be {what}" if self.quoted else f"{param}: {what} is required", param)

    def missing(self, param: str) -> GatewayError:
        """`param` is missing and the request needs it."""
        return invalid(f"'{param}' is required" if self.quoted else f"{param}: field required", param)


QUOTED = Wording(True)  # OpenAI's Chat Completions and Responses APIs, Gemini
PLAIN = Wording(False)  # Anthropic


def request_object(body: bytes, checked: tuple[Field, ...], body_param: str | None, refusal: str) -> dict[str, Any]:
    """A request body: a JSON object whose `checked` fields are each given once. `body_param` and
    `refusal` say how the format names the body and words a body that is not an object."""
    data = loads(body, body_param)
    if not isinstance(data, dict):
        raise invalid(refusal, body_param)
    refuse_repeated(body, data, checked)
    return data


_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_EMPTY_ARRAY = re.compile(rb"\[[ \t\r\n]*\]")  # JSON's whitespace


def request_top(
    body: bytes, checked: tuple[Field, ...], unread: frozenset[str], body_param: str | None, refusal: str
) -> dict[str, Any]:
    """A request body as `request_object` reads it, but for its `unread` fields (an agent's
    conversation), each left a `msgspec.Raw`: its bytes as the client wrote them, for a request
    whose bytes go on (the provider judges them; `read_field` reads one when the gateway needs
    it). The structure is still checked to the end, in C and without building the values: an
    80 KB body costs a third of a whole read. A body this read refuses is read whole, which
    refuses it as ever."""
    try:
        top = _TOP_LEVEL.decode(body)
        data = {key: raw if key in unread else orjson.loads(memoryview(raw)) for key, raw in top.items()}
    except (msgspec.DecodeError, orjson.JSONDecodeError, RecursionError):  # not JSON, not an object, ...
        return request_object(body, checked, body_param, refusal)
    refuse_repeated(body, data, checked)
    return data


def read_field(data: dict[str, Any], key: str, param: str | None) -> Any:
    """`data[key]` (None when absent), read now where `request_top` left it unread and kept read
    in `data`: the body as parsed is then the one a whole read gives (the cache key reads it). Its
    bad JSON is the client's 400 (`param`: the body as the format names it)."""
    value = data.get(key)
    if isinstance(value, msgspec.Raw):
        value = data[key] = loads(memoryview(value), param)
    return value


def unread_array(value: Any) -> bool:
    """Whether a field `request_top` left unread holds an array with at least one item."""
    if not isinstance(value, msgspec.Raw):
        return False
    written = memoryview(value)  # msgspec.Raw starts at the value's first byte; read in place, not copied
    return written[:1] == b"[" and _EMPTY_ARRAY.match(written) is None


# ---- a value, named by its whole path
# Plain functions, not methods: a method call costs a parse of an agent's request 7% more (measured).


def as_object(value: Any, param: str, w: Wording = QUOTED) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise w.must(param, "an object")
    return value


def as_array(value: Any, param: str, w: Wording = QUOTED) -> list[Any]:
    if not isinstance(value, list):
        raise w.must(param, "an array")
    return value


def as_string(value: Any, param: str, w: Wording = QUOTED) -> str:
    if not isinstance(value, str):
        raise w.must(param, "a string")
    return value


def as_number(value: Any, param: str, w: Wording = QUOTED) -> float:
    if not is_num(value):
        raise w.must(param, "a number")
    return value


def as_proto3_int(value: Any, param: str, w: Wording = QUOTED) -> int:
    """An integer as proto3 JSON writes one: also 3.0 (the Gemini SDK sends topK as a float)
    and "3"."""
    if is_int(value):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    raise w.must(param, "an integer")


# ---- a field `key` of an object at `at` (the top level when empty): null counts as absent


def opt_str(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise w.must(path(at, key), "a string")


def opt_bool(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise w.must(path(at, key), "a boolean")


def opt_int(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> int | None:
    value = obj.get(key)
    if value is None or is_int(value):
        return value
    raise w.must(path(at, key), "an integer")


def opt_num(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> float | None:
    value = obj.get(key)
    if value is None or is_num(value):
        return value
    raise w.must(path(at, key), "a number")


def opt_object(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise w.must(path(at, key), "an object")


def req_str(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> str:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    raise w.required(path(at, key), "a string")


def req_object(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> dict[str, Any]:
    value = obj.get(key)
    if isinstance(value, dict):
        return value
    raise w.required(path(at, key), "an object")


def nonempty_str(obj: dict[str, Any], key: str, at: str = "", w: Wording = QUOTED) -> str:
    value = obj.get(key)
    if isinstance(value, str) and value:
        return value
    raise w.must(path(at, key), "a non-empty string")


def data_url(url: str, param: str, what: str = "data URIs") -> tuple[str, str]:
    """(media type, base64 data) of a `data:<media type>;base64,<data>` URI."""
    header, comma, data = url[5:].partition(",")
    media_type, _, rest = header.partition(";")
    if not comma or "base64" not in rest.split(";") or not media_type or not data:
        raise invalid(f"{what} must look like 'data:<media type>;base64,<data>'", param)
    return media_type, data
