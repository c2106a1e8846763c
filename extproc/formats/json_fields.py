"""Typed reads of a client's JSON, the one way every format reads its request: a value of the
wrong type is a 400 naming the field by its path (`messages[3].content[0].text`), worded as the
client's own API words its refusals (OpenAI, the Responses API and Gemini quote the field;
Anthropic does not).

The reads are the parsers' hot path (an agent's request has hundreds of fields, parsed on every
turn): a read is one dict lookup and one type test, and a field's path is only written out when
it is refused.
"""

from __future__ import annotations

from typing import Any, TypeGuard

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


class FieldReader:
    """Reads one format's fields. `quoted`: refusals say `'p' must be a string` (else
    `p must be a string`, and a missing required field `p: a string is required`)."""

    __slots__ = ("_body_param", "_body_refusal", "_quoted")

    def __init__(self, quoted: bool, body_param: str | None, body_refusal: str) -> None:
        self._quoted = quoted
        self._body_param = body_param  # how the format names the body in its refusals
        self._body_refusal = body_refusal

    # ---- refusals

    def must(self, param: str, what: str) -> GatewayError:
        """`param` has a value of the wrong type (`what`: "a string", "an object", ...)."""
        return invalid(f"'{param}' must be {what}" if self._quoted else f"{param} must be {what}", param)

    def required(self, param: str, what: str) -> GatewayError:
        """`param` is missing, or has a value of the wrong type, and the request needs it."""
        return invalid(f"'{param}' must be {what}" if self._quoted else f"{param}: {what} is required", param)

    # ---- the body

    def request_object(self, body: bytes, checked: tuple[Field, ...]) -> dict[str, Any]:
        """A request body: a JSON object whose `checked` fields are each given once."""
        data = loads(body, self._body_param)
        if not isinstance(data, dict):
            raise invalid(self._body_refusal, self._body_param)
        refuse_repeated(body, data, checked)
        return data

    # ---- a value, named by its whole path

    def object(self, value: Any, param: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.must(param, "an object")
        return value

    def array(self, value: Any, param: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.must(param, "an array")
        return value

    def string(self, value: Any, param: str) -> str:
        if not isinstance(value, str):
            raise self.must(param, "a string")
        return value

    def number(self, value: Any, param: str) -> float:
        if not is_num(value):
            raise self.must(param, "a number")
        return value

    def integer(self, value: Any, param: str) -> int:
        if not is_int(value):
            raise self.must(param, "an integer")
        return value

    def proto3_int(self, value: Any, param: str) -> int:
        """An integer as proto3 JSON writes one: also 3.0 (the Gemini SDK sends topK as a float)
        and "3"."""
        if is_int(value):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit() and len(value) < 20:
            return int(value)
        raise self.must(param, "an integer")

    # ---- a field of an object at `at`: null counts as absent

    def opt_str(self, obj: dict[str, Any], key: str, at: str = "") -> str | None:
        value = obj.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.must(path(at, key), "a string")

    def opt_bool(self, obj: dict[str, Any], key: str, at: str = "") -> bool | None:
        value = obj.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self.must(path(at, key), "a boolean")

    def opt_int(self, obj: dict[str, Any], key: str, at: str = "") -> int | None:
        value = obj.get(key)
        if value is None or is_int(value):
            return value
        raise self.must(path(at, key), "an integer")

    def opt_num(self, obj: dict[str, Any], key: str, at: str = "") -> float | None:
        value = obj.get(key)
        if value is None or is_num(value):
            return value
        raise self.must(path(at, key), "a number")

    def opt_object(self, obj: dict[str, Any], key: str, at: str = "") -> dict[str, Any] | None:
        value = obj.get(key)
        if value is None or isinstance(value, dict):
            return value
        raise self.must(path(at, key), "an object")

    def req_str(self, obj: dict[str, Any], key: str, at: str = "") -> str:
        value = obj.get(key)
        if isinstance(value, str):
            return value
        raise self.required(path(at, key), "a string")

    def req_object(self, obj: dict[str, Any], key: str, at: str = "") -> dict[str, Any]:
        value = obj.get(key)
        if isinstance(value, dict):
            return value
        raise self.required(path(at, key), "an object")

    def nonempty_str(self, obj: dict[str, Any], key: str, at: str = "") -> str:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
        raise self.must(path(at, key), "a non-empty string")


# OpenAI's Chat Completions and Responses APIs, and Gemini, quote the field; Anthropic does not.
OPENAI_FIELDS = FieldReader(True, "body", "request body must be a JSON object")
GEMINI_FIELDS = FieldReader(True, "body", "'body' must be an object")
ANTHROPIC_FIELDS = FieldReader(False, None, "request body must be a JSON object")
