"""Client side: a `/v1/chat/completions` body -> ChatRequest (`parse_request`).

Strict only where the canonical model needs the request. A role, content part, tool or tool call
type, `tool_choice` or `response_format` shape, or top-level field it does not know is an
ApiFeature: it goes on untouched to an OpenAI-format provider, and is dropped and named, or
refused, per the `unsupported` policy of any other.
"""

from __future__ import annotations

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
    feature_name,
    unset,
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
from extproc.formats.openai.common import _SHAPE_ERRORS, _SYSTEM_ROLES
from extproc.formats.openai.validation import (
    CHAT_FIELDS,
    _loads_object,
    _model,
    _opt_bool,
    _opt_int,
    _opt_num,
    _opt_str,
    response_format_of,
)

_PART_TYPES = frozenset({"text", "image_url", "refusal"})  # the content parts the canonical model carries
# what the canonical request is read from; any other top-level field is an ApiFeature
_READ_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "max_completion_tokens", "max_tokens", "temperature",
        "top_p", "top_k", "stop", "n", "seed", "presence_penalty", "frequency_penalty", "response_format",
        "tools", "tool_choice", "parallel_tool_calls", "user", "reasoning_effort",
    }
)  # fmt: skip


def _unknown(features: list[ApiFeature], prefix: str, word: object, param: str, value: Any) -> None:
    features.append(ApiFeature(feature_name(prefix, word), param, value=value))


def _image_part(part: dict[str, Any], param: str) -> ImagePart:
    image = part.get("image_url")
    url: Any
    if isinstance(image, str):  # some clients send the URL directly
        url, detail = image, None
    elif isinstance(image, dict):
        url = image.get("url")
        detail = image.get("detail")
        if detail is not None and not isinstance(detail, str):
            raise invalid(f"'{param}.image_url.detail' must be a string", f"{param}.image_url.detail")
    else:
        raise invalid(f"'{param}.image_url' must be an object", f"{param}.image_url")
    if not isinstance(url, str) or not url:
        raise invalid(f"'{param}.image_url.url' must be a non-empty string", f"{param}.image_url.url")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, rest = header.partition(";")
        if not comma or "base64" not in rest.split(";") or not media_type or not data:
            raise invalid("image data URIs must look like 'data:<media type>;base64,<data>'", f"{param}.image_url.url")
        return ImagePart(media_type=media_type, data=data, detail=detail)
    if url.startswith(("https://", "http://")):
        return ImagePart(url=url, detail=detail)
    raise invalid("image URLs must be http(s) URLs or base64 data URIs", f"{param}.image_url.url")


def _parse_parts(content: Any, param: str, allowed: tuple[str, ...], features: list[ApiFeature]) -> list[Part]:
    """Message content: a string or a list of typed parts; a part the canonical model knows must be
    one `allowed` for the role, any other (input_audio, file, ...) is an ApiFeature."""
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise invalid(f"'{param}' must be a string or an array of content parts", param)
    parts: list[Part] = []
    for j, part in enumerate(content):
        pparam = f"{param}[{j}]"
        if not isinstance(part, dict):
            raise invalid(f"'{pparam}' must be an object", pparam)
        ptype = part.get("type")
        if ptype not in allowed:
            if not isinstance(ptype, str):
                raise invalid(f"'{pparam}.type' must be a string", f"{pparam}.type")
            if ptype in _PART_TYPES:
                raise invalid(f"content part type '{ptype}' is not supported here", f"{pparam}.type")
            _unknown(features, "content.", ptype, f"{pparam}.type", part)
            continue
        if ptype == "image_url":
            parts.append(_image_part(part, pparam))
            continue
        key = "refusal" if ptype == "refusal" else "text"  # refusals in history become text
        text = part.get(key)
        if not isinstance(text, str):
            raise invalid(f"'{pparam}.{key}' must be a string", f"{pparam}.{key}")
        parts.append(TextPart(text))
    return parts


def _parse_tool_calls(raw: Any, param: str, names: dict[str, str], features: list[ApiFeature]) -> list[ToolCall]:
    if not isinstance(raw, list):
        raise invalid(f"'{param}' must be an array", param)
    calls: list[ToolCall] = []
    for k, tc in enumerate(raw):
        tparam = f"{param}[{k}]"
        if not isinstance(tc, dict):
            raise invalid(f"'{tparam}' must be an object", tparam)
        ttype = tc.get("type", "function")
        if ttype != "function":  # a custom tool's call, ...
            _unknown(features, "tool_calls.", ttype, f"{tparam}.type", tc)
            continue
        call_id = tc.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"'{tparam}.id' must be a non-empty string", f"{tparam}.id")
        fn = tc.get("function")
        if not isinstance(fn, dict):
            raise invalid(f"'{tparam}.function' must be an object", f"{tparam}.function")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"'{tparam}.function.name' must be a non-empty string", f"{tparam}.function.name")
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            raise invalid(f"'{tparam}.function.arguments' must be a JSON string", f"{tparam}.function.arguments")
        names[call_id] = name
        calls.append(ToolCall(call_id, name, args))
    return calls


def _parse_message(m: Any, i: int, names: dict[str, str], features: list[ApiFeature]) -> Message | None:
    """None: a role the canonical model does not know (recorded)."""
    param = f"messages[{i}]"
    if not isinstance(m, dict):
        raise invalid(f"'{param}' must be an object", param)
    role = m.get("role")
    content = m.get("content")
    if role in _SYSTEM_ROLES:
        if content is None:
            raise invalid(f"'{param}.content' is required", f"{param}.content")
        return Message("system", _parse_parts(content, f"{param}.content", ("text",), features))
    if role == "user":
        if content is None:
            raise invalid(f"'{param}.content' is required", f"{param}.content")
        return Message("user", _parse_parts(content, f"{param}.content", ("text", "image_url"), features))
    if role == "assistant":
        parts = [] if content is None else _parse_parts(content, f"{param}.content", ("text", "refusal"), features)
        refusal = _opt_str(m, "refusal", f"{param}.refusal")
        if refusal and not parts:
            parts.append(TextPart(refusal))  # canonical messages have no refusal field
        raw_calls = m.get("tool_calls")
        calls = [] if raw_calls is None else _parse_tool_calls(raw_calls, f"{param}.tool_calls", names, features)
        return Message("assistant", parts, tool_calls=calls)
    if role == "tool":
        call_id = m.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"'{param}.tool_call_id' must be a non-empty string", f"{param}.tool_call_id")
        if content is None:
            raise invalid(f"'{param}.content' is required", f"{param}.content")
        parts = _parse_parts(content, f"{param}.content", ("text",), features)
        name = names.get(call_id)
        if name is None:
            name = _opt_str(m, "name", f"{param}.name")
        return Message("tool", parts, tool_call_id=call_id, name=name)
    if isinstance(role, str):  # the legacy "function" role, or one added since
        _unknown(features, "role.", role, f"{param}.role", m)
        return None
    raise invalid(f"'{param}.role' is required and must be a string", f"{param}.role")


def _parse_tools(raw: Any, features: list[ApiFeature]) -> list[Tool]:
    if not isinstance(raw, list):
        raise invalid("'tools' must be an array", "tools")
    tools: list[Tool] = []
    for i, t in enumerate(raw):
        param = f"tools[{i}]"
        if not isinstance(t, dict):
            raise invalid(f"'{param}' must be an object", param)
        ttype = t.get("type", "function")
        if ttype != "function":  # custom tools, ...
            _unknown(features, "tools.", ttype, param, t)
            continue
        fn = t.get("function")
        if not isinstance(fn, dict):
            raise invalid(f"'{param}.function' must be an object", f"{param}.function")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"'{param}.function.name' must be a non-empty string", f"{param}.function.name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise invalid(f"'{param}.function.parameters' must be an object", f"{param}.function.parameters")
        tools.append(
            Tool(
                name,
                _opt_str(fn, "description", f"{param}.function.description"),
                params,
                _opt_bool(fn, "strict", f"{param}.function.strict"),
            )
        )
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
            raise invalid("'tool_choice.function.name' must be a non-empty string", "tool_choice.function.name")
        return ToolChoice("function", name)
    if isinstance(raw, dict) and isinstance(raw.get("type"), str):  # allowed_tools, custom, ...
        _unknown(features, "tool_choice.", raw["type"], "tool_choice", raw)
        return None
    raise invalid(
        "'tool_choice' must be 'auto', 'none', 'required' or {type: 'function', function: {name}}", "tool_choice"
    )


def _parse_response_format(raw: Any, features: list[ApiFeature]) -> ResponseFormat | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid("'response_format' must be an object", "response_format")
    return response_format_of(raw, "response_format", raw.get("json_schema"), "response_format.json_schema", features)


def _parse_stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return raw
    raise invalid("'stop' must be a string or an array of strings", "stop")


def _parse_n(data: dict[str, Any]) -> int | None:
    n = _opt_int(data, "n")
    if n is not None:
        check_positive(n, MAX_CHOICES, "n")
    return n


def _opt_tokens(data: dict[str, Any], key: str) -> int | None:
    value = _opt_int(data, key)
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


def _parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    data = _loads_object(body, CHAT_FIELDS)
    model = _model(data, path_model)
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid("'messages' must be a non-empty array", "messages")
    check_count(raw_messages, MAX_MESSAGES, "messages")
    names: dict[str, str] = {}  # tool_call id -> function name, for tool messages
    features: list[ApiFeature] = []
    messages = [
        message
        for i, raw in enumerate(raw_messages)
        if (message := _parse_message(raw, i, names, features)) is not None
    ]

    stream = _opt_bool(data, "stream", "stream") or False
    include_usage = False
    stream_options = data.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            raise invalid("'stream_options' must be an object", "stream_options")
        include_usage = bool(_opt_bool(stream_options, "include_usage", "stream_options.include_usage"))

    max_tokens = _opt_tokens(data, "max_completion_tokens")
    legacy_max = _opt_tokens(data, "max_tokens")
    tools_raw = data.get("tools")
    response_format = _parse_response_format(data.get("response_format"), features)
    tools = [] if tools_raw is None else _parse_tools(tools_raw, features)
    _check_schemas(tools, response_format, tools_raw)
    request = ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=stream and include_usage,
        max_tokens=max_tokens if max_tokens is not None else legacy_max,
        temperature=_opt_num(data, "temperature"),
        top_p=_opt_num(data, "top_p"),
        top_k=_opt_int(data, "top_k"),  # non-standard, sent to OpenAI-compatible servers
        stop=_parse_stop(data.get("stop")),
        n=_parse_n(data),
        seed=_opt_int(data, "seed"),
        presence_penalty=_opt_num(data, "presence_penalty"),
        frequency_penalty=_opt_num(data, "frequency_penalty"),
        response_format=response_format,
        tools=tools,
        tool_choice=_parse_tool_choice(data.get("tool_choice"), features),
        parallel_tool_calls=_opt_bool(data, "parallel_tool_calls", "parallel_tool_calls"),
        user=_opt_str(data, "user", "user"),
        reasoning_effort=_opt_str(data, "reasoning_effort", "reasoning_effort"),
        api_features=features,
        source=data,
    )
    for key, value in data.items():
        if key not in _READ_FIELDS and not unset(value):
            _unknown(features, "", key, key, value)  # store, metadata, logit_bias, modalities, audio, ...
    return request


def parse_request(body: bytes, path_model: str | None = None) -> ChatRequest:
    """A client's /v1/chat/completions body -> ChatRequest (GatewayError on bad input)."""
    try:
        return _parse_request(body, path_model)
    except GatewayError:
        raise
    except _SHAPE_ERRORS:  # a shape the checks above missed: still the client's fault
        raise invalid("malformed chat completion request", "body") from None
