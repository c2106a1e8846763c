"""Reading a provider's answer: token counts, answers the gateway cannot read, and ids the
provider did not give."""

from __future__ import annotations

import random
import string
from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.json_fields import is_int, is_num

_ALNUM = string.ascii_letters + string.digits


def random_text(length: int) -> str:
    """Letters and digits, for ids a provider did not give (call_..., msg_...)."""
    return "".join(random.choices(_ALNUM, k=length))


def whole_number(value: Any) -> int:
    """A count from a provider's answer: 0 when absent or not an integer."""
    return value if is_int(value) else 0


def vector(value: Any) -> list[float] | None:
    """An embedding from a provider's answer as floats; None when it is not a list of numbers."""
    if not isinstance(value, list) or not all(is_num(x) for x in value):
        return None
    return [float(x) for x in value]


def count(mapping: dict[str, Any], key: str) -> int:
    """A token count from a provider's usage object: 0 when absent or not an integer."""
    return whole_number(mapping.get(key))


def provider_error(message: str) -> GatewayError:
    """A provider answer the gateway cannot read."""
    return GatewayError("provider_error", message)


def answer_object(body: bytes) -> dict[str, Any]:
    """A provider's answer as the JSON object it must be, else the error saying it is not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise provider_error("the provider returned invalid JSON") from None
    if not isinstance(data, dict):
        raise provider_error("the provider returned an unexpected response")
    return data
