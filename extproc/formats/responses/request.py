"""Client side: a `POST /v1/responses` body -> ChatRequest (`parse_request`).

`instructions` becomes the first system message and `developer` messages are system messages,
so a question asked through the Responses API and through Chat Completions is one canonical
request (one cache entry). Fields that only bookkeep for the client or for OpenAI (metadata,
prompt_cache_key, safety_identifier, service_tier, include, truncation, client_metadata) are
not part of the request: they go on with the client's bytes to an OpenAI provider, and no other
provider has a place for them. State kept at the provider (`store: true`,
`previous_response_id`, `conversation`, stored prompts, background runs) is refused by any
other provider (see ApiFeature). Strict only where the canonical model needs the request: a
role, item, part, tool or format type, or top-level field it does not know is an ApiFeature,
passed through to a provider of the Responses API and dropped and named, or refused, elsewhere.
"""

from __future__ import annotations

from typing import Any

from extproc.errors import GatewayError
from extproc.formats.canonical import ApiFeature, ChatRequest, Message, ResponseFormat, TextPart, note_unknown_fields
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import check_bounds, check_schema_depth, check_tokens
from extproc.formats.json_fields import (
    QUOTED,
    as_object,
    opt_bool,
    opt_int,
    opt_num,
    opt_object,
    opt_str,
    req_object,
    request_object,
)
from extproc.formats.openai.common import SHAPE_ERRORS
from extproc.formats.openai.request import model_of, response_format_of
from extproc.formats.repeated_keys import BOOLEAN, NUMBER, STRING, STRING_OR_ARRAY, Field
from extproc.formats.responses.items import InputReader
from extproc.formats.responses.tools import parse_tool_choice, parse_tools

# What the gateway decides on (route, allow-list, streaming, token limits) and the conversation it
# estimates and keys the cache on: never repeated. Each name costs a search of the raw body.
CHECKED_FIELDS = (
    Field(("model",), STRING),
    Field(("stream",), BOOLEAN),
    Field(("input",), STRING_OR_ARRAY),
    Field(("max_output_tokens",), NUMBER),
)
# Top-level fields that ask the provider to keep or fetch state: only OpenAI has it.
_STATEFUL = ("previous_response_id", "conversation", "prompt")
# Top-level fields only OpenAI's Responses API acts on; dropped or refused elsewhere, per policy.
_OPENAI_ONLY = ("top_logprobs", "max_tool_calls")
# What the canonical request is read from, and the bookkeeping no other provider has a place for;
# any other top-level field is an ApiFeature.
_KNOWN_FIELDS = frozenset(
    {
        "model", "input", "instructions", "stream", "stream_options", "max_output_tokens", "temperature", "top_p",
        "text", "tools", "tool_choice", "parallel_tool_calls", "user", "reasoning", "store", "background",
        *_STATEFUL, *_OPENAI_ONLY, "metadata", "prompt_cache_key", "prompt_cache_retention", "safety_identifier",
        "service_tier", "include", "truncation", "client_metadata",
    }
)  # fmt: skip


def _parse_reasoning(raw: Any, req: ChatRequest) -> None:
    if raw is None:
        return
    raw = as_object(raw, "reasoning")
    req.reasoning_effort = opt_str(raw, "effort", "reasoning")
    summary = opt_str(raw, "summary", "reasoning") or opt_str(raw, "generate_summary", "reasoning")
    req.reasoning_summary = summary if summary != "none" else None


def _parse_text(raw: Any, features: list[ApiFeature]) -> ResponseFormat | None:
    if raw is None:
        return None
    fmt = opt_object(as_object(raw, "text"), "format", "text")
    if fmt is None:
        return None
    if fmt.get("type") == "json_schema":  # the schema is required here
        req_object(fmt, "schema", "text.format")
    return response_format_of(fmt, "text.format", fmt, "text.format", features)


def _top_level_features(data: dict[str, Any], features: list[ApiFeature]) -> None:
    """What of the top level only a provider of the Responses API can act on: stored state (refused
    elsewhere), OpenAI-only knobs and fields the gateway does not know (per policy)."""
    store = data.get("store")
    if store is True:
        features.append(ApiFeature("store", "store", "refuse", True))
    elif store is not None and not isinstance(store, bool):
        raise QUOTED.must("store", "a boolean")
    if data.get("background") is True:
        features.append(ApiFeature("background", "background", "refuse", True))
    for key in _STATEFUL:
        if data.get(key) is not None:
            features.append(ApiFeature(key, key, "refuse", data[key]))
    for key in _OPENAI_ONLY:
        if data.get(key) is not None:
            features.append(ApiFeature(key, key, value=data[key]))
    note_unknown_fields(data, _KNOWN_FIELDS, features)


def _max_output_tokens(data: dict[str, Any]) -> int | None:
    value = opt_int(data, "max_output_tokens")
    return None if value is None else check_tokens(value, "max_output_tokens")


def _parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    data = request_object(body, CHECKED_FIELDS, "body", "request body must be a JSON object")
    model = model_of(data, path_model)
    stateful = data.get("previous_response_id") is not None or data.get("conversation") is not None
    features: list[ApiFeature] = []
    reader = InputReader(features)
    instructions = opt_str(data, "instructions")
    if instructions:
        reader.messages.append(Message("system", [TextPart(instructions)]))
    raw_input = data.get("input")
    if raw_input is None or raw_input == []:
        if not stateful:
            raise invalid("'input' is required and must hold at least one item", "input")
    else:
        reader.read(raw_input)
    stream = opt_bool(data, "stream") or False
    namespaces: dict[str, tuple[str, str]] = {}
    schemas: list[tuple[str, Any]] = []  # (param, tool or response schema), bounded once read
    raw_tools = data.get("tools")
    response_format = _parse_text(data.get("text"), features)
    tools = [] if raw_tools is None else parse_tools(raw_tools, namespaces, features, schemas)
    if response_format is not None and response_format.schema is not None:
        schemas.append(("text.format.schema", response_format.schema))
    check_schema_depth([schema for _, schema in schemas], lambda: [param for param, _ in schemas])
    request = ChatRequest(
        model=model,
        messages=reader.messages,
        stream=stream,
        include_usage=stream,  # a Responses answer always reports usage
        max_tokens=_max_output_tokens(data),
        temperature=check_bounds(opt_num(data, "temperature"), 0, 2, "temperature"),
        top_p=check_bounds(opt_num(data, "top_p"), 0, 1, "top_p"),
        response_format=response_format,
        tools=tools,
        tool_choice=parse_tool_choice(data.get("tool_choice"), features),
        parallel_tool_calls=opt_bool(data, "parallel_tool_calls"),
        user=opt_str(data, "user"),
        tool_namespaces=namespaces,
        api_features=features,
        source=data,
    )
    _parse_reasoning(data.get("reasoning"), request)
    _top_level_features(data, features)
    return request


def parse_request(body: bytes, path_model: str | None = None) -> ChatRequest:
    """A client's /v1/responses body -> ChatRequest (GatewayError on bad input)."""
    try:
        return _parse_request(body, path_model)
    except GatewayError:
        raise
    except SHAPE_ERRORS:  # a shape the checks above missed: still the client's fault
        raise invalid("malformed Responses request", "body") from None
