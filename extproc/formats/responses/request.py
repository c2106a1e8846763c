"""Client side: a `POST /v1/responses` body -> ChatRequest (`parse_request`).

`instructions` becomes the first system message and `developer` messages are system messages,
so a question asked through the Responses API and through Chat Completions is one canonical
request (one cache entry). Fields that only bookkeep for the client or for OpenAI (metadata,
prompt_cache_key, safety_identifier, service_tier, include, truncation, client_metadata) are
not part of the request: they go on with the client's bytes to an OpenAI provider, and no other
provider has a place for them. State kept at the provider (`store: true`,
`previous_response_id`, `conversation`, stored prompts, background runs) is refused by any
other provider (see ApiFeature).
"""

from __future__ import annotations

from typing import Any

from extproc.errors import GatewayError
from extproc.formats.base import invalid
from extproc.formats.canonical import ApiFeature, ChatRequest, Message, ResponseFormat, TextPart
from extproc.formats.openai.common import _SHAPE_ERRORS
from extproc.formats.openai.validation import _loads_object, _model, _opt_bool, _opt_int, _opt_num, _opt_str
from extproc.formats.responses.items import InputReader
from extproc.formats.responses.tools import parse_tool_choice, parse_tools

# Top-level fields that ask the provider to keep or fetch state: only OpenAI has it.
_STATEFUL = ("previous_response_id", "conversation", "prompt")
# Top-level fields only OpenAI's Responses API acts on; dropped or refused elsewhere, per policy.
_OPENAI_ONLY = ("top_logprobs", "max_tool_calls")


def _parse_reasoning(raw: Any, req: ChatRequest) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise invalid("'reasoning' must be an object", "reasoning")
    req.reasoning_effort = _opt_str(raw, "effort", "reasoning.effort")
    summary = _opt_str(raw, "summary", "reasoning.summary") or _opt_str(
        raw, "generate_summary", "reasoning.generate_summary"
    )
    req.reasoning_summary = summary if summary != "none" else None


def _parse_text(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid("'text' must be an object", "text")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise invalid("'text.format' must be an object", "text.format")
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise invalid("'text.format.schema' must be an object", "text.format.schema")
        return ResponseFormat(
            "json_schema",
            schema=schema,
            name=_opt_str(fmt, "name", "text.format.name"),
            strict=_opt_bool(fmt, "strict", "text.format.strict"),
        )
    raise invalid("'text.format.type' must be 'text', 'json_object' or 'json_schema'", "text.format.type")


def _stateful(data: dict[str, Any], features: list[ApiFeature]) -> None:
    if data.get("store") is True:
        features.append(ApiFeature("store", "store", "refuse"))
    elif data.get("store") is not None and not isinstance(data.get("store"), bool):
        raise invalid("'store' must be a boolean", "store")
    if data.get("background") is True:
        features.append(ApiFeature("background", "background", "refuse"))
    for key in _STATEFUL:
        if data.get(key) is not None:
            features.append(ApiFeature(key, key, "refuse"))
    for key in _OPENAI_ONLY:
        if data.get(key) is not None:
            features.append(ApiFeature(key, key))


def _bounded(value: float | None, low: float, high: float | None, param: str) -> Any:
    if value is not None and (value < low or (high is not None and value > high)):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise invalid(f"'{param}' must be {bounds}", param)
    return value


def _parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    data = _loads_object(body)
    model = _model(data, path_model)
    features: list[ApiFeature] = []
    reader = InputReader(features)
    instructions = _opt_str(data, "instructions", "instructions")
    if instructions:
        reader.messages.append(Message("system", [TextPart(instructions)]))
    raw_input = data.get("input")
    if raw_input is None:
        if data.get("previous_response_id") is None and data.get("conversation") is None:
            raise invalid("'input' is required", "input")
    else:
        reader.read(raw_input)
    if not reader.messages and data.get("previous_response_id") is None and data.get("conversation") is None:
        raise invalid("'input' must hold at least one item", "input")
    stream = _opt_bool(data, "stream", "stream") or False
    namespaces: dict[str, tuple[str, str]] = {}
    raw_tools = data.get("tools")
    request = ChatRequest(
        model=model,
        messages=reader.messages,
        stream=stream,
        include_usage=stream,  # a Responses answer always reports usage
        max_tokens=_bounded(_opt_int(data, "max_output_tokens"), 1, None, "max_output_tokens"),
        temperature=_bounded(_opt_num(data, "temperature"), 0, 2, "temperature"),
        top_p=_bounded(_opt_num(data, "top_p"), 0, 1, "top_p"),
        response_format=_parse_text(data.get("text")),
        tools=[] if raw_tools is None else parse_tools(raw_tools, namespaces, features),
        tool_choice=parse_tool_choice(data.get("tool_choice"), features),
        parallel_tool_calls=_opt_bool(data, "parallel_tool_calls", "parallel_tool_calls"),
        user=_opt_str(data, "user", "user"),
        tool_namespaces=namespaces,
        api_features=features,
    )
    _parse_reasoning(data.get("reasoning"), request)
    _stateful(data, features)
    return request


def parse_request(body: bytes, path_model: str | None = None) -> ChatRequest:
    """A client's /v1/responses body -> ChatRequest (GatewayError on bad input)."""
    try:
        return _parse_request(body, path_model)
    except GatewayError:
        raise
    except _SHAPE_ERRORS:  # a shape the checks above missed: still the client's fault
        raise invalid("malformed Responses request", "body") from None
