"""Small helpers the Gemini modules share: call ids, camelCase/snake_case fields, JSON text and
objects, and the request object (fields are read with `formats.json_fields`)."""

from __future__ import annotations

from typing import Any

import orjson

from extproc.formats.answer_values import provider_error, random_text
from extproc.formats.client_errors import invalid
from extproc.formats.json_fields import as_number, as_proto3_int, request_object
from extproc.formats.model_name import check_model
from extproc.formats.repeated_keys import Field


def new_call_id() -> str:
    return "call_" + random_text(24)


def either_spelling(obj: dict, camel: str, snake: str) -> Any:
    """A field in camelCase or snake_case; null counts as absent (proto3 JSON)."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def one_spelling(obj: dict, camel: str, snake: str, param: str) -> Any:
    """A field the gateway decides on, in one spelling only: given in both, which one the
    provider reads is its own choice, and the gateway must read the same."""
    value = obj.get(camel)
    if value is None:
        return obj.get(snake)
    if obj.get(snake) is not None:
        raise invalid(f"'{param}' is given twice, as {camel} and as {snake}", param)
    return value


def json_text(value: Any, param: str | None = None) -> str:
    """Compact JSON text. orjson writes at most 254 levels though it reads 1024:
    deeper input is the client's fault (`param` names it) or the provider's."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        if param is None:
            raise provider_error("the provider returned JSON nested too deeply") from None
        raise invalid("the value is nested too deeply", param) from None


def json_object(text: str) -> dict | None:
    """`text` parsed when it is JSON object text, else None."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def object_fragment(text: str) -> orjson.Fragment | None:
    """JSON object text, embedded as-is (no second serialisation), else None."""
    return orjson.Fragment(text) if json_object(text) is not None else None


def args_object(arguments: str) -> dict | orjson.Fragment:
    """Tool call arguments as the object Gemini wants. Text that is not a JSON
    object (a model's broken output from another provider) is kept under
    "arguments" rather than lost."""
    if not arguments.strip():
        return {}
    value = object_fragment(arguments)
    return value if value is not None else {"arguments": arguments}


def request_and_model(body: bytes, path_model: str | None, checked: tuple[Field, ...]) -> tuple[dict, str]:
    """A client's JSON request object and the model it is for (from the URL, `models/` dropped)."""
    data = request_object(body, checked, "body", "'body' must be an object")
    model = path_model or data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("the model name is missing from the URL", "model")
    return data, check_model(model.removeprefix("models/"))


# generationConfig numbers, read by request_config and written by upstream:
# (camelCase, snake_case, canonical field, reader)
GENERATION_NUMBERS = (
    ("temperature", "temperature", "temperature", as_number),
    ("topP", "top_p", "top_p", as_number),
    ("topK", "top_k", "top_k", as_proto3_int),
    ("maxOutputTokens", "max_output_tokens", "max_tokens", as_proto3_int),
    ("candidateCount", "candidate_count", "n", as_proto3_int),
    ("seed", "seed", "seed", as_proto3_int),
    ("presencePenalty", "presence_penalty", "presence_penalty", as_number),
    ("frequencyPenalty", "frequency_penalty", "frequency_penalty", as_number),
)
