"""Client side: a `/v1/chat/completions` body -> ChatRequest (`parse_request`).

Strict only where the canonical model needs the request. A role, content part, tool or tool call
type, `tool_choice` or `response_format` shape, or top-level field it does not know is an
ApiFeature: it goes on untouched to an OpenAI-format provider, and is dropped and named, or
refused, per the `unsupported` policy of any other.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from extproc.errors import GatewayError
from extproc.formats.canonical import (
    ApiFeature,
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    note_unknown,
    note_unknown_fields,
)
from extproc.formats.client_errors import invalid
from extproc.formats.input_bounds import (
    MAX_CHOICES,
    MAX_MESSAGES,
    check_count,
    check_positive,
    check_schema_depth,
    check_tokens,
)
from extproc.formats.json_fields import (
    QUOTED,
    as_array,
    as_object,
    data_url,
    nonempty_str,
    opt_bool,
    opt_int,
    opt_num,
    opt_object,
    opt_str,
    read_field,
    req_object,
    req_str,
    request_object,
    request_top,
    unread_array,
)
from extproc.formats.model_name import check_model
from extproc.formats.openai.common import SHAPE_ERRORS, SYSTEM_ROLES
from extproc.formats.repeated_keys import ARRAY, BOOLEAN, NUMBER, STRING, Field

# What the gateway decides on (route, allow-list, streaming, token limits) and the conversation it
# estimates and keys the cache on: never repeated. Each name costs a search of the raw body.
CHAT_FIELDS = (
    Field(("model",), STRING),
    Field(("stream",), BOOLEAN),
    Field(("messages",), ARRAY),
    Field(("max_tokens",), NUMBER),
    Field(("max_completion_tokens",), NUMBER),
)
_NOT_AN_OBJECT = "request body must be a JSON object"
_CONVERSATION = frozenset({"messages", "tools"})  # left unread (json_fields.request_top) where the bytes go on
_PART_TYPES = frozenset({"text", "image_url", "refusal"})  # the content parts the canonical model carries
# what the canonical request is read from; any other top-level field is an ApiFeature
_READ_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_completion_tokens", "max_tokens", "temperature",
        "top_p", "top_k", "stop", "n", "seed", "presence_penalty", "frequency_penalty", "response_format",
        "tools", "tool_choice", "parallel_tool_calls", "user", "reasoning_effort",
    }
)  # fmt: skip


def model_of(body: dict[str, Any], path_model: str | None) -> str:
    """The model a Chat Completions, embeddings or Responses request names."""
    model = body.get("model")
    if model is None and path_model:
        return check_model(path_model)
    if not isinstance(model, str) or not model:
        raise invalid("'model' is required and must be a non-empty string", "model")
    return check_model(model)


def response_format_of(
    fmt: dict[str, Any], at: str, holder: Any, holder_at: str, features: list[ApiFeature]
) -> ResponseFormat | None:
    """A response format object named `at` (Chat Completions' `response_format`, the Responses
    API's `text.format`); `holder`, named `holder_at`, has a JSON schema's schema, name and strict.
    A type added since is an ApiFeature."""
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind == "json_schema":
        holder = as_object(holder, holder_at)
        schema = opt_object(holder, "schema", holder_at)
        name, strict = opt_str(holder, "name", holder_at), opt_bool(holder, "strict", holder_at)
        return ResponseFormat("json_schema", schema=schema, name=name, strict=strict)
    if isinstance(kind, str):
        note_unknown(features, f"{at}.", kind, f"{at}.type", fmt)
        return None
    raise QUOTED.must(f"{at}.type", "a string")


def _image_part(part: dict[str, Any], param: str) -> ImagePart:
    image = part.get("image_url")
    url: Any
    if isinstance(image, str):  # some clients send the URL directly
        url, detail = image, None
    elif isinstance(image, dict):
        url = image.get("url")
        detail = opt_str(image, "detail", f"{param}.image_url")
    else:
        raise QUOTED.must(f"{param}.image_url", "an object")
    if not isinstance(url, str) or not url:
        raise invalid(f"'{param}.image_url.url' must be a non-empty string", f"{param}.image_url.url")
    if url.startswith("data:"):
        media_type, data = data_url(url, f"{param}.image_url.url", "image data URIs")
        return ImagePart(media_type=media_type, data=data, detail=detail)
    if url.startswith(("https://", "http://")):
        return ImagePart(url=url, detail=detail)
    raise invalid("image URLs must be http(s) URLs or base64 data URIs", f"{param}.image_url.url")


def _parse_parts(content: Any, at: str, allowed: tuple[str, ...], features: list[ApiFeature]) -> list[Part]:
    """The `content` of the message at `at`: a string or a list of typed parts; a part the canonical
    model knows must be one `allowed` for the role, any other (input_audio, file, ...) is an ApiFeature."""
    if isinstance(content, str):
        return [TextPart(content)]
    param = f"{at}.content"  # written only here: most content is a string
    if not isinstance(content, list):
        raise QUOTED.must(param, "a string or an array of content parts")
    parts: list[Part] = []
    for j, part in enumerate(content):
        pparam = f"{param}[{j}]"
        ptype = as_object(part, pparam).get("type")
        if ptype not in allowed:
            if not isinstance(ptype, str):
                raise QUOTED.must(f"{pparam}.type", "a string")
            if ptype in _PART_TYPES:
                raise invalid(f"content part type '{ptype}' is not supported here", f"{pparam}.type")
            note_unknown(features, "content.", ptype, f"{pparam}.type", part)
            continue
        if ptype == "image_url":
            parts.append(_image_part(part, pparam))
            continue
        key = "refusal" if ptype == "refusal" else "text"  # refusals in history become text
        parts.append(TextPart(req_str(part, key, pparam)))
    return parts


def _parse_tool_calls(raw: Any, param: str, names: dict[str, str], features: list[ApiFeature]) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for k, tc in enumerate(as_array(raw, param)):
        tparam = f"{param}[{k}]"
        if not isinstance(tc, dict):  # inline, not a reader: this loop runs for every call of the history
            raise QUOTED.must(tparam, "an object")
        ttype = tc.get("type", "function")
        if ttype != "function":  # a custom tool's call, ...
            note_unknown(features, "tool_calls.", ttype, f"{tparam}.type", tc)
            continue
        call_id = nonempty_str(tc, "id", tparam)
        fn = req_object(tc, "function", tparam)
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise QUOTED.must(f"{tparam}.function.name", "a non-empty string")
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            raise QUOTED.must(f"{tparam}.function.arguments", "a JSON string")
        names[call_id] = name
        calls.append(ToolCall(call_id, name, args))
    return calls


def _parse_message(m: Any, i: int, names: dict[str, str], features: list[ApiFeature]) -> Message | None:
    """None: a role the canonical model does not know (recorded)."""
    param = f"messages[{i}]"
    if not isinstance(m, dict):  # inline, not a reader: this runs for every message of the history
        raise QUOTED.must(param, "an object")
    role = m.get("role")
    content = m.get("content")
    if role in SYSTEM_ROLES:
        if content is None:
            raise QUOTED.missing(f"{param}.content")
        return Message("system", _parse_parts(content, param, ("text",), features))
    if role == "user":
        if content is None:
            raise QUOTED.missing(f"{param}.content")
        return Message("user", _parse_parts(content, param, ("text", "image_url"), features))
    if role == "assistant":
        parts = [] if content is None else _parse_parts(content, param, ("text", "refusal"), features)
        refusal = opt_str(m, "refusal", param)
        if refusal and not parts:
            parts.append(TextPart(refusal))  # canonical messages have no refusal field
        raw_calls = m.get("tool_calls")
        calls = [] if raw_calls is None else _parse_tool_calls(raw_calls, f"{param}.tool_calls", names, features)
        return Message("assistant", parts, tool_calls=calls)
    if role == "tool":
        call_id = nonempty_str(m, "tool_call_id", param)
        if content is None:
            raise QUOTED.missing(f"{param}.content")
        parts = _parse_parts(content, param, ("text",), features)
        name = names.get(call_id)
        if name is None:
            name = opt_str(m, "name", param)
        return Message("tool", parts, tool_call_id=call_id, name=name)
    if isinstance(role, str):  # the legacy "function" role, or one added since
        note_unknown(features, "role.", role, f"{param}.role", m)
        return None
    raise invalid(f"'{param}.role' is required and must be a string", f"{param}.role")


def _parse_tools(raw: Any, features: list[ApiFeature]) -> list[Tool]:
    tools: list[Tool] = []
    for i, t in enumerate(as_array(raw, "tools")):
        param = f"tools[{i}]"
        ttype = as_object(t, param).get("type", "function")
        if ttype != "function":  # custom tools, ...
            note_unknown(features, "tools.", ttype, param, t)
            continue
        fn = req_object(t, "function", param)
        at = f"{param}.function"
        name = nonempty_str(fn, "name", at)
        params = opt_object(fn, "parameters", at)
        tools.append(Tool(name, opt_str(fn, "description", at), params, opt_bool(fn, "strict", at)))
    return tools


def _parse_tool_choice(raw: Any, features: list[ApiFeature]) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict) and raw.get("type") == "function":
        fn = raw.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name:
            raise QUOTED.must("tool_choice.function.name", "a non-empty string")
        return ToolChoice("function", name)
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):  # allowed_tools, custom, ...
        note_unknown(features, "tool_choice.", raw["type"], "tool_choice", raw)
        return None
    raise invalid(
        "'tool_choice' must be 'auto', 'none', 'required' or {type: 'function', function: {name}}", "tool_choice"
    )


def _parse_response_format(raw: Any, features: list[ApiFeature]) -> ResponseFormat | None:
    if raw is None:
        return None
    return response_format_of(
        as_object(raw, "response_format"),
        "response_format",
        raw.get("json_schema"),
        "response_format.json_schema",
        features,
    )


def _parse_stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return raw
    raise invalid("'stop' must be a string or an array of strings", "stop")


def _parse_n(data: dict[str, Any]) -> int | None:
    n = opt_int(data, "n")
    if n is not None:
        check_positive(n, MAX_CHOICES, "n")
    return n


def _opt_tokens(data: dict[str, Any], key: str) -> int | None:
    value = opt_int(data, key)
    return None if value is None else check_tokens(value, key)


def _check_schemas(tools: list[Tool], response_format: ResponseFormat | None, tools_raw: Any) -> None:
    if not tools and response_format is None:
        return
    schemas: list[Any] = [tool.parameters for tool in tools]
    if response_format is not None and response_format.schema is not None:
        schemas.append(response_format.schema)
    check_schema_depth(schemas, lambda: [*_tool_params(tools_raw or []), "response_format.json_schema.schema"])


def _tool_params(tools_raw: list[Any]) -> list[str]:
    """Where each function tool's parameters are (a tool of another type is not a Tool)."""
    return [
        f"tools[{i}].function.parameters"
        for i, tool in enumerate(tools_raw)
        if isinstance(tool, dict) and tool.get("type", "function") == "function"
    ]


def _parse_request(body: bytes, path_model: str | None, whole: bool) -> ChatRequest:
    if whole:
        data = request_object(body, CHAT_FIELDS, "body", _NOT_AN_OBJECT)
    else:
        data = request_top(body, CHAT_FIELDS, _CONVERSATION, "body", _NOT_AN_OBJECT)
    model = model_of(data, path_model)
    if not unread_array(data.get("messages")):  # read now: refused as ever
        _check_messages(read_field(data, "messages", "body"))
    features: list[ApiFeature] = []

    stream = opt_bool(data, "stream") or False
    include_usage = False
    stream_options = opt_object(data, "stream_options")
    if stream_options is not None:
        include_usage = bool(opt_bool(stream_options, "include_usage", "stream_options"))

    max_tokens = _opt_tokens(data, "max_completion_tokens")
    legacy_max = _opt_tokens(data, "max_tokens")
    response_format = _parse_response_format(data.get("response_format"), features)
    format_features = len(features)
    request = ChatRequest(
        model=model,
        messages=[],
        stream=stream,
        include_usage=stream and include_usage,
        max_tokens=max_tokens if max_tokens is not None else legacy_max,
        temperature=opt_num(data, "temperature"),
        top_p=opt_num(data, "top_p"),
        top_k=opt_int(data, "top_k"),  # non-standard, sent to OpenAI-compatible servers
        stop=_parse_stop(data.get("stop")),
        n=_parse_n(data),
        seed=opt_int(data, "seed"),
        presence_penalty=opt_num(data, "presence_penalty"),
        frequency_penalty=opt_num(data, "frequency_penalty"),
        response_format=response_format,
        tool_choice=_parse_tool_choice(data.get("tool_choice"), features),
        parallel_tool_calls=opt_bool(data, "parallel_tool_calls"),
        user=opt_str(data, "user"),
        reasoning_effort=opt_str(data, "reasoning_effort"),
        api_features=features,
        source=data,
    )
    note_unknown_fields(data, _READ_FIELDS, features)  # store, metadata, logit_bias, modalities, audio, ...

    if whole:
        _read_conversation(request, data, format_features)
    else:  # the client's bytes go on: the provider judges them (renamed, a value too deep to write is a 400)
        request.unread = partial(_read_conversation, data=data, at=format_features)
    return request


def _check_messages(raw_messages: Any) -> None:
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid("'messages' must be a non-empty array", "messages")
    check_count(raw_messages, MAX_MESSAGES, "messages")


def _read_conversation(request: ChatRequest, data: dict[str, Any], at: int) -> None:
    """The messages and tools into `request`, their schemas bounded (the gateway writes them again:
    the cache key, another API's body); their ApiFeatures go where a whole read puts them (the
    messages' first, the tools' after the response format's, which end at `at`)."""
    names: dict[str, str] = {}  # tool_call id -> function name, for tool messages
    found: list[ApiFeature] = []
    raw_messages, tools_raw = read_field(data, "messages", "body"), read_field(data, "tools", "body")
    _check_messages(raw_messages)
    try:
        request.messages = [
            message
            for i, raw in enumerate(raw_messages)
            if (message := _parse_message(raw, i, names, found)) is not None
        ]
        tool_features: list[ApiFeature] = []
        request.tools = [] if tools_raw is None else _parse_tools(tools_raw, tool_features)
        _check_schemas(request.tools, request.response_format, tools_raw)
    except GatewayError:
        raise
    except SHAPE_ERRORS:  # a shape the checks missed: still the client's fault
        raise invalid("malformed chat completion request", "body") from None
    features = request.api_features
    found.extend(features[:at])
    found.extend(tool_features)
    found.extend(features[at:])
    features[:] = found


def parse_request(body: bytes, path_model: str | None = None, whole: bool = True) -> ChatRequest:
    """A client's /v1/chat/completions body -> ChatRequest (GatewayError on bad input). Not `whole`:
    the messages and tools are left for `read_conversation`, for a request whose bytes go on as
    they are (the provider, of the client's own API, judges them)."""
    try:
        return _parse_request(body, path_model, whole)
    except GatewayError:
        raise
    except SHAPE_ERRORS:  # a shape the checks above missed: still the client's fault
        raise invalid("malformed chat completion request", "body") from None
