"""Small helpers the Gemini modules share: call ids, camelCase/snake_case fields,
JSON text and objects, and the checks on client input (each names the offending field)."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.errors import GatewayError
from extproc.formats.answer_values import provider_error, random_text
from extproc.formats.input_bounds import loads
from extproc.formats.model_name import check_model
from extproc.formats.repeated_keys import Field, refuse_repeated


def _call_id() -> str:
    return "call_" + random_text(24)


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError("invalid_request", message, param=param)


def _get(obj: dict, camel: str, snake: str) -> Any:
    """A field in camelCase or snake_case; null counts as absent (proto3 JSON)."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _get_one(obj: dict, camel: str, snake: str, param: str) -> Any:
    """A field the gateway decides on, in one spelling only: given in both, which one the
    provider reads is its own choice, and the gateway must read the same."""
    value = obj.get(camel)
    if value is None:
        return obj.get(snake)
    if obj.get(snake) is not None:
        raise _bad(f"'{param}' is given twice, as {camel} and as {snake}", param)
    return value


def _json_text(value: Any, param: str | None = None) -> str:
    """Compact JSON text. orjson writes at most 254 levels though it reads 1024:
    deeper input is the client's fault (`param` names it) or the provider's."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        if param is None:
            raise provider_error("the provider returned JSON nested too deeply") from None
        raise _bad("the value is nested too deeply", param) from None


def _json_object(text: str) -> dict | None:
    """`text` parsed when it is JSON object text, else None."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _object_fragment(text: str) -> orjson.Fragment | None:
    """JSON object text, embedded as-is (no second serialisation), else None."""
    return orjson.Fragment(text) if _json_object(text) is not None else None


def _args_object(arguments: str) -> dict | orjson.Fragment:
    """Tool call arguments as the object Gemini wants. Text that is not a JSON
    object (a model's broken output from another provider) is kept under
    "arguments" rather than lost."""
    if not arguments.strip():
        return {}
    value = _object_fragment(arguments)
    return value if value is not None else {"arguments": arguments}


# ---- request validation helpers (client input)


def _dict(value: Any, param: str) -> dict:
    if not isinstance(value, dict):
        raise _bad(f"'{param}' must be an object", param)
    return value


def _list(value: Any, param: str) -> list:
    if not isinstance(value, list):
        raise _bad(f"'{param}' must be an array", param)
    return value


def _str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _bad(f"'{param}' must be a string", param)
    return value


def _num(value: Any, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"'{param}' must be a number", param)
    return value


def _int(value: Any, param: str) -> int:
    # proto3 JSON accepts 3.0 for an int32 (the SDK sends topK as a float) and "3"
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    raise _bad(f"'{param}' must be an integer", param)


def _request_object(body: bytes, path_model: str | None, checked: tuple[Field, ...]) -> tuple[dict, str]:
    """A client's JSON request object and the model it is for (from the URL, `models/` dropped)."""
    data = _dict(loads(body), "body")
    refuse_repeated(body, data, checked)
    model = path_model or data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("the model name is missing from the URL", "model")
    return data, check_model(model.removeprefix("models/"))


# generationConfig numbers, read by request_config and written by upstream:
# (camelCase, snake_case, canonical field, reader)
_GENERATION_NUMBERS = (
    ("temperature", "temperature", "temperature", _num),
    ("topP", "top_p", "top_p", _num),
    ("topK", "top_k", "top_k", _int),
    ("maxOutputTokens", "max_output_tokens", "max_tokens", _int),
    ("candidateCount", "candidate_count", "n", _int),
    ("seed", "seed", "seed", _int),
    ("presencePenalty", "presence_penalty", "presence_penalty", _num),
    ("frequencyPenalty", "frequency_penalty", "frequency_penalty", _num),
)
