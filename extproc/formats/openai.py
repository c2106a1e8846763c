"""OpenAI Chat Completions (and Embeddings) <-> canonical model.

Client side: what the official `openai` SDK sends to `/v1/chat/completions`,
`/v1/embeddings`, `/v1/models`, and what it expects back, byte for byte.
Provider side: requests to api.openai.com (or an OpenAI-compatible server)
and decoding of its answers and streams.

Choices made here (see also the module constants):
- Thinking/reasoning content has no field in the official Chat Completions
  response, so `render_response` and `StreamEncoder` drop it. Incoming
  `reasoning_content` / `reasoning` fields of OpenAI-compatible servers
  (vLLM, DeepSeek, OpenRouter) ARE decoded into canonical thinking.
- The canonical finish reason "error" has no OpenAI value: it is sent as "stop".
- A canonical `max_tokens` goes upstream as `max_completion_tokens`
  (`MAX_TOKENS_FIELD`); newer OpenAI models refuse `max_tokens`.
- Upstream requests keep the client's `stream_options.include_usage` and
  embedding `encoding_format` (canonical parsers of Anthropic/Gemini clients
  set include_usage): a same-format passthrough answer must be exactly what
  the client asked for (an unrequested `choices: []` usage chunk breaks
  `chunk.choices[0]` client code).
- Errors the provider raises against the gateway's own key (401/403) get a
  generic message: the provider's text may echo part of the operator's key.
"""

from __future__ import annotations

import base64
import sys
import time
from array import array
from typing import Any

import orjson

from extproc.errors import GatewayError, kind_for_status, render_openai_error
from extproc.formats.base import RenderedRequest, RenderOptions, invalid, is_int, is_num, provider_error, random_text
from extproc.formats.canonical import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    Finish,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    StreamEvent,
    StreamFailure,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    Usage,
    UsageUpdate,
)
from extproc.formats.sse import SSEParser, frame

MAX_TOKENS_FIELD = "max_completion_tokens"  # field used for canonical max_tokens upstream
MODELS_OWNED_BY = "gateway"
MODELS_CREATED = 0  # /v1/models "created": the gateway does not know the real date

_DONE = b"data: [DONE]\n\n"
_MAX_CHOICES = 128  # OpenAI's limit on n
_FINISH_IN = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_FINISH_OUT = {"error": "stop"}  # canonical -> OpenAI where the names differ
_SYSTEM_ROLES = ("system", "developer")
_LITTLE_ENDIAN = sys.byteorder == "little"
# what a missed shape check can raise; parsers turn these into GatewayError
_SHAPE_ERRORS = (TypeError, ValueError, KeyError, IndexError, AttributeError)


def new_completion_id() -> str:
    return "chatcmpl-" + random_text(29)


def new_call_id() -> str:
    return "call_" + random_text(24)


def _add_dropped(feature: str, options: RenderOptions, dropped: list[str]) -> None:
    if options.unsupported == "reject":
        raise invalid(f"{feature} is not supported by this provider", feature)
    if feature not in dropped:
        dropped.append(feature)


# ---------------------------------------------------------------- client input validation


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if not is_int(v):
        raise invalid(f"'{key}' must be an integer", key)
    return v


def _opt_num(body: dict[str, Any], key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if not is_num(v):
        raise invalid(f"'{key}' must be a number", key)
    return v


def _opt_bool(obj: dict[str, Any], key: str, param: str) -> bool | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, bool):
        raise invalid(f"'{param}' must be a boolean", param)
    return v


def _opt_str(obj: dict[str, Any], key: str, param: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise invalid(f"'{param}' must be a string", param)
    return v


def _loads_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("request body is not valid JSON", "body") from None
    if not isinstance(data, dict):
        raise invalid("request body must be a JSON object", "body")
    return data


def _model(body: dict[str, Any], path_model: str | None) -> str:
    model = body.get("model")
    if model is None and path_model:
        return path_model
    if not isinstance(model, str) or not model:
        raise invalid("'model' is required and must be a non-empty string", "model")
    return model


def _image_part(part: dict[str, Any], param: str) -> ImagePart:
    image = part.get("image_url")
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


def _parse_parts(content: Any, param: str, allowed: tuple[str, ...]) -> list[Part]:
    """Message content: a string or a list of typed parts restricted to `allowed`."""
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
            if isinstance(ptype, str):
                raise invalid(f"content part type '{ptype}' is not supported here", f"{pparam}.type")
            raise invalid(f"'{pparam}.type' must be a string", f"{pparam}.type")
        if ptype == "image_url":
            parts.append(_image_part(part, pparam))
            continue
        key = "refusal" if ptype == "refusal" else "text"  # refusals in history become text
        text = part.get(key)
        if not isinstance(text, str):
            raise invalid(f"'{pparam}.{key}' must be a string", f"{pparam}.{key}")
        parts.append(TextPart(text))
    return parts


def _parse_tool_calls(raw: Any, param: str, names: dict[str, str]) -> list[ToolCall]:
    if not isinstance(raw, list):
        raise invalid(f"'{param}' must be an array", param)
    calls: list[ToolCall] = []
    for k, tc in enumerate(raw):
        tparam = f"{param}[{k}]"
        if not isinstance(tc, dict):
            raise invalid(f"'{tparam}' must be an object", tparam)
        ttype = tc.get("type", "function")
        if ttype != "function":
            raise invalid("only function tool calls are supported", f"{tparam}.type")
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


def _parse_message(m: Any, i: int, names: dict[str, str]) -> Message:
    param = f"messages[{i}]"
    if not isinstance(m, dict):
        raise invalid(f"'{param}' must be an object", param)
    role = m.get("role")
    content = m.get("content")
    if role in _SYSTEM_ROLES:
        if content is None:
            raise invalid(f"'{param}.content' is required", f"{param}.content")
        return Message("system", _parse_parts(content, f"{param}.content", ("text",)))
    if role == "user":
        if content is None:
            raise invalid(f"'{param}.content' is required", f"{param}.content")
        return Message("user", _parse_parts(content, f"{param}.content", ("text", "image_url")))
    if role == "assistant":
        parts = [] if content is None else _parse_parts(content, f"{param}.content", ("text", "refusal"))
        refusal = _opt_str(m, "refusal", f"{param}.refusal")
        if refusal and not parts:
            parts.append(TextPart(refusal))  # canonical messages have no refusal field
        raw_calls = m.get("tool_calls")
        calls = [] if raw_calls is None else _parse_tool_calls(raw_calls, f"{param}.tool_calls", names)
        return Message("assistant", parts, tool_calls=calls)
    if role == "tool":
        call_id = m.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise invalid(f"'{param}.tool_call_id' must be a non-empty string", f"{param}.tool_call_id")
        if content is None:
            raise invalid(f"'{param}.content' is required", f"{param}.content")
        parts = _parse_parts(content, f"{param}.content", ("text",))
        name = names.get(call_id)
        if name is None:
            name = _opt_str(m, "name", f"{param}.name")
        return Message("tool", parts, tool_call_id=call_id, name=name)
    if isinstance(role, str):
        raise invalid(f"invalid role '{role}': expected system, developer, user, assistant or tool", f"{param}.role")
    raise invalid(f"'{param}.role' is required and must be a string", f"{param}.role")


def _parse_tools(raw: Any) -> list[Tool]:
    if not isinstance(raw, list):
        raise invalid("'tools' must be an array", "tools")
    tools: list[Tool] = []
    for i, t in enumerate(raw):
        param = f"tools[{i}]"
        if not isinstance(t, dict):
            raise invalid(f"'{param}' must be an object", param)
        if t.get("type", "function") != "function":
            raise invalid("only function tools are supported", f"{param}.type")
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


def _parse_tool_choice(raw: Any) -> ToolChoice | None:
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
    raise invalid(
        "'tool_choice' must be 'auto', 'none', 'required' or {type: 'function', function: {name}}", "tool_choice"
    )


def _parse_response_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid("'response_format' must be an object", "response_format")
    rtype = raw.get("type")
    if rtype in ("text", "json_object"):
        return ResponseFormat(rtype)
    if rtype == "json_schema":
        js = raw.get("json_schema")
        if not isinstance(js, dict):
            raise invalid("'response_format.json_schema' must be an object", "response_format.json_schema")
        schema = js.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise invalid(
                "'response_format.json_schema.schema' must be an object", "response_format.json_schema.schema"
            )
        return ResponseFormat(
            "json_schema",
            schema=schema,
            name=_opt_str(js, "name", "response_format.json_schema.name"),
            strict=_opt_bool(js, "strict", "response_format.json_schema.strict"),
        )
    raise invalid("'response_format.type' must be 'text', 'json_object' or 'json_schema'", "response_format.type")


def _parse_stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return raw
    raise invalid("'stop' must be a string or an array of strings", "stop")


def _parse_request(body: bytes, path_model: str | None) -> ChatRequest:
    data = _loads_object(body)
    model = _model(data, path_model)
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid("'messages' must be a non-empty array", "messages")
    names: dict[str, str] = {}  # tool_call id -> function name, for tool messages
    messages = [_parse_message(m, i, names) for i, m in enumerate(raw_messages)]

    stream = _opt_bool(data, "stream", "stream") or False
    include_usage = False
    stream_options = data.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            raise invalid("'stream_options' must be an object", "stream_options")
        include_usage = bool(_opt_bool(stream_options, "include_usage", "stream_options.include_usage"))

    max_tokens = _opt_int(data, "max_completion_tokens")
    legacy_max = _opt_int(data, "max_tokens")
    tools_raw = data.get("tools")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=stream and include_usage,
        max_tokens=max_tokens if max_tokens is not None else legacy_max,
        temperature=_opt_num(data, "temperature"),
        top_p=_opt_num(data, "top_p"),
        top_k=_opt_int(data, "top_k"),  # non-standard, sent to OpenAI-compatible servers
        stop=_parse_stop(data.get("stop")),
        n=_opt_int(data, "n"),
        seed=_opt_int(data, "seed"),
        presence_penalty=_opt_num(data, "presence_penalty"),
        frequency_penalty=_opt_num(data, "frequency_penalty"),
        response_format=_parse_response_format(data.get("response_format")),
        tools=[] if tools_raw is None else _parse_tools(tools_raw),
        tool_choice=_parse_tool_choice(data.get("tool_choice")),
        parallel_tool_calls=_opt_bool(data, "parallel_tool_calls", "parallel_tool_calls"),
        user=_opt_str(data, "user", "user"),
        reasoning_effort=_opt_str(data, "reasoning_effort", "reasoning_effort"),
    )


def parse_request(body: bytes, path_model: str | None = None) -> ChatRequest:
    """A client's /v1/chat/completions body -> ChatRequest (GatewayError on bad input)."""
    try:
        return _parse_request(body, path_model)
    except GatewayError:
        raise
    except _SHAPE_ERRORS:  # a shape the checks above missed: still the client's fault
        raise invalid("malformed chat completion request", "body") from None


# ---------------------------------------------------------------- client output


def _usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_out(reason: str | None) -> str:
    if reason is None:
        return "stop"
    return _FINISH_OUT.get(reason, reason)


def _tool_call_json(tc: ToolCall) -> dict[str, Any]:
    return {"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}


def render_response(resp: ChatResponse) -> bytes:
    """ChatResponse -> `chat.completion` JSON (thinking is dropped: no official field)."""
    choices = []
    for c in sorted(resp.choices, key=lambda c: c.index):
        # OpenAI sends null content for a pure tool-call / refusal answer
        content: str | None = c.text if c.text or not (c.tool_calls or c.refusal) else None
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": c.refusal, "annotations": []}
        if c.tool_calls:
            message["tool_calls"] = [_tool_call_json(tc) for tc in c.tool_calls]
        choices.append(
            {"index": c.index, "message": message, "logprobs": None, "finish_reason": _finish_out(c.finish_reason)}
        )
    out: dict[str, Any] = {
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": choices,
    }
    if resp.usage is not None:
        out["usage"] = _usage_json(resp.usage)
    out["service_tier"] = "default"
    out["system_fingerprint"] = None
    return orjson.dumps(out)


def render_error(error: GatewayError, request_id: str = "") -> bytes:
    return render_openai_error(error, request_id)


def render_models(models: list[str]) -> bytes:
    data = [{"id": m, "object": "model", "created": MODELS_CREATED, "owned_by": MODELS_OWNED_BY} for m in models]
    return orjson.dumps({"object": "list", "data": data})


class StreamEncoder:
    """Canonical stream events -> `data: {chat.completion.chunk}` frames.

    One id/created/model for the whole stream (taken from StreamStart, else
    generated). Each choice opens with a role chunk; tool calls get OpenAI
    indexes 0,1,.. per choice in start order. Usage is held until close():
    with include_usage every chunk carries `"usage": null` and a last
    `choices: []` chunk carries the final usage; without it no usage key at all.
    """

    __slots__ = ("_calls", "_closed", "_counts", "_failed", "_opened", "_prefix", "_request", "_suffix", "_usage")

    def __init__(self, request: ChatRequest) -> None:
        self._request = request
        self._prefix = b""  # chunk JSON up to the choices array, fixed once started
        self._suffix = b'],"usage":null}' if request.include_usage else b"]}"
        self._opened: set[int] = set()  # choices whose role chunk was sent
        self._calls: dict[tuple[int, int], int] = {}  # (choice, call_index) -> OpenAI tool index
        self._counts: dict[int, int] = {}  # choice -> tool calls started
        self._usage: Usage | None = None
        self._failed = False
        self._closed = False

    def _start(self, id_: str, model: str, created: int) -> None:
        self._prefix = (
            b'{"id":'
            + orjson.dumps(id_ or new_completion_id())
            + b',"object":"chat.completion.chunk","created":'
            + str(int(created)).encode()
            + b',"model":'
            + orjson.dumps(model or self._request.model)
            + b',"service_tier":"default","system_fingerprint":null,"choices":['
        )

    def _chunk(self, choice: dict[str, Any]) -> bytes:
        return b"data: " + self._prefix + orjson.dumps(choice) + self._suffix + b"\n\n"

    def _open(self, index: int, out: list[bytes]) -> None:
        if index in self._opened:
            return
        if not self._prefix:
            self._start("", "", int(time.time()))
        # choices must appear in index order for the SDK's snapshot accumulator;
        # an absurd index from a broken upstream is opened alone, not backfilled
        for i in range(index + 1) if 0 <= index < _MAX_CHOICES else (index,):
            if i not in self._opened:
                self._opened.add(i)
                out.append(
                    self._chunk(
                        {
                            "index": i,
                            "delta": {"role": "assistant", "content": "", "refusal": None},
                            "finish_reason": None,
                        }
                    )
                )

    def _call_index(self, choice: int, call_index: int) -> int:
        """The OpenAI tool index of a canonical call: 0,1,.. per choice in start order."""
        n = self._counts.get(choice, 0)
        self._counts[choice] = n + 1
        self._calls[(choice, call_index)] = n
        return n

    def encode(self, events: list[StreamEvent]) -> bytes:
        if self._failed or self._closed:
            return b""
        out: list[bytes] = []
        for ev in events:
            if isinstance(ev, TextDelta):
                if ev.text:
                    self._open(ev.index, out)
                    out.append(self._chunk({"index": ev.index, "delta": {"content": ev.text}, "finish_reason": None}))
            elif isinstance(ev, ToolCallStart):
                if (ev.index, ev.call_index) in self._calls:
                    continue  # a repeated start: the call is already open
                self._open(ev.index, out)
                n = self._call_index(ev.index, ev.call_index)
                call = {"index": n, "id": ev.id, "type": "function", "function": {"name": ev.name, "arguments": ""}}
                out.append(self._chunk({"index": ev.index, "delta": {"tool_calls": [call]}, "finish_reason": None}))
            elif isinstance(ev, ToolCallDelta):
                if not ev.arguments:
                    continue
                self._open(ev.index, out)
                key = (ev.index, ev.call_index)
                n = self._calls.get(key)
                if n is None:  # a delta without its start: open the call with a fresh id
                    n = self._call_index(ev.index, ev.call_index)
                    call = {
                        "index": n,
                        "id": new_call_id(),
                        "type": "function",
                        "function": {"name": "", "arguments": ev.arguments},
                    }
                else:
                    call = {"index": n, "function": {"arguments": ev.arguments}}
                out.append(self._chunk({"index": ev.index, "delta": {"tool_calls": [call]}, "finish_reason": None}))
            elif isinstance(ev, Finish):
                self._open(ev.index, out)
                out.append(self._chunk({"index": ev.index, "delta": {}, "finish_reason": _finish_out(ev.reason)}))
            elif isinstance(ev, UsageUpdate):
                self._usage = ev.usage
            elif isinstance(ev, StreamStart):
                if not self._prefix:
                    self._start(ev.id, ev.model, ev.created)
                    self._open(0, out)  # other choices open on their first event
            elif isinstance(ev, StreamFailure):
                self._failed = True
                err = ev.error
                if not isinstance(err, GatewayError):
                    err = GatewayError("provider_error", str(err) or "provider stream failed")
                out.append(frame(render_openai_error(err)))
                break
            # ThinkingDelta: no place in the official chunk format (dropped)
        return b"".join(out)

    def close(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        if self._failed:
            return _DONE
        out: list[bytes] = []
        if self._request.include_usage and self._usage is not None:
            if not self._prefix:
                self._start("", "", int(time.time()))
            usage = orjson.dumps(_usage_json(self._usage))
            out.append(b"data: " + self._prefix + b'],"usage":' + usage + b"}\n\n")
        out.append(_DONE)
        return b"".join(out)


# ---------------------------------------------------------------- provider requests


def _parts_content(parts: list[Part], allow_images: bool) -> str | list[dict[str, Any]]:
    """Canonical parts -> OpenAI content: a plain string when it is one text part."""
    if len(parts) == 1 and isinstance(parts[0], TextPart):
        return parts[0].text
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ImagePart) and allow_images:
            url = f"data:{p.media_type or 'image/png'};base64,{p.data}" if p.data is not None else p.url or ""
            image: dict[str, Any] = {"url": url}
            if p.detail:
                image["detail"] = p.detail
            out.append({"type": "image_url", "image_url": image})
    if len(out) == 1 and out[0]["type"] == "text":
        return out[0]["text"]
    return out


def _render_message(m: Message, options: RenderOptions, dropped: list[str]) -> dict[str, Any]:
    if m.role == "user":
        return {"role": "user", "content": _parts_content(m.content, True)}
    if m.role == "system":
        if any(isinstance(p, ImagePart) for p in m.content):
            _add_dropped("system_image", options, dropped)
        return {"role": "system", "content": _parts_content(m.content, False)}
    if m.role == "tool":
        if any(isinstance(p, ImagePart) for p in m.content):
            _add_dropped("tool_result_image", options, dropped)
        content = _parts_content(m.content, False)
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": content or ""}
    # assistant: thinking has no OpenAI field and is left out of the history
    if any(isinstance(p, ImagePart) for p in m.content):
        _add_dropped("assistant_image", options, dropped)
    texts = [p for p in m.content if isinstance(p, TextPart)]
    out: dict[str, Any] = {"role": "assistant"}
    if texts:
        out["content"] = _parts_content(texts, False)
    else:
        out["content"] = None if m.tool_calls else ""
    if m.tool_calls:
        out["tool_calls"] = [_tool_call_json(tc) for tc in m.tool_calls]
    return out


def _effort_for_budget(budget: int) -> str | None:
    """Anthropic/Gemini thinking budget -> OpenAI reasoning_effort (approximate)."""
    if budget <= 0:
        return None  # 0 = thinking off, -1 = dynamic: leave the model default
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def render_request(req: ChatRequest, options: RenderOptions) -> RenderedRequest:
    """ChatRequest -> an OpenAI /v1/chat/completions body for the provider."""
    dropped: list[str] = []
    body: dict[str, Any] = {
        "model": options.model,
        "messages": [_render_message(m, options, dropped) for m in req.messages],
    }
    if req.max_tokens is not None:
        body[MAX_TOKENS_FIELD] = req.max_tokens
    for key in ("temperature", "top_p", "n", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(req, key)
        if value is not None:
            body[key] = value
    if req.top_k is not None:
        _add_dropped("top_k", options, dropped)
    if req.stop:
        body["stop"] = req.stop
    rf = req.response_format
    if rf is not None:
        if rf.type == "json_schema":
            js: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {}}
            if rf.strict is not None:
                js["strict"] = rf.strict
            body["response_format"] = {"type": "json_schema", "json_schema": js}
        else:
            body["response_format"] = {"type": rf.type}
    if req.tools:
        tools = []
        for t in req.tools:
            fn: dict[str, Any] = {"name": t.name}
            if t.description is not None:
                fn["description"] = t.description
            if t.parameters is not None:
                fn["parameters"] = t.parameters
            if t.strict is not None:
                fn["strict"] = t.strict
            tools.append({"type": "function", "function": fn})
        body["tools"] = tools
    tc = req.tool_choice
    if tc is not None and req.tools:  # OpenAI refuses tool_choice without tools
        if tc.mode == "function":
            body["tool_choice"] = {"type": "function", "function": {"name": tc.name or ""}}
        else:
            body["tool_choice"] = tc.mode
    if req.parallel_tool_calls is not None and req.tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.user is not None:
        body["user"] = req.user
    effort = req.reasoning_effort
    if effort is None and req.thinking_budget is not None:
        effort = _effort_for_budget(req.thinking_budget)
    if effort is not None:
        body["reasoning_effort"] = effort
    if req.stream:
        body["stream"] = True
        if req.include_usage:
            body["stream_options"] = {"include_usage": True}
    return RenderedRequest(orjson.dumps(body), dropped)


# ---------------------------------------------------------------- provider responses


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def _parse_usage(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    ptd = u.get("prompt_tokens_details")
    ctd = u.get("completion_tokens_details")
    return Usage(
        input_tokens=_int(u.get("prompt_tokens")),
        output_tokens=_int(u.get("completion_tokens")),
        cached_tokens=_int(ptd.get("cached_tokens")) if isinstance(ptd, dict) else 0,
        reasoning_tokens=_int(ctd.get("reasoning_tokens")) if isinstance(ctd, dict) else 0,
    )


def _finish_in(reason: Any) -> Any:
    if reason is None:
        return None
    return _FINISH_IN.get(reason, "stop") if isinstance(reason, str) else "stop"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible servers answer with text parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _reasoning_of(obj: dict[str, Any]) -> str | None:
    r = obj.get("reasoning_content")
    if not isinstance(r, str):
        r = obj.get("reasoning")
    return r if isinstance(r, str) and r else None


_ERROR_TYPES = {
    "invalid_request_error": "invalid_request",
    "authentication_error": "provider_auth",
    "permission_error": "provider_auth",
    "not_found_error": "not_found",
    "rate_limit_error": "rate_limit",
    "insufficient_quota": "rate_limit",
    "rate_limit_exceeded": "rate_limit",
    "overloaded_error": "unavailable",
    "server_error": "provider_error",
    "api_error": "provider_error",
}


def _error_from_object(err: Any, status: int | None) -> GatewayError:
    """An OpenAI error object (or a vLLM-style flat one) -> GatewayError."""
    message = code = param = None
    etype = None
    if isinstance(err, dict):
        message = err.get("message")
        etype = err.get("type")
        raw_code = err.get("code")
        code = str(raw_code) if isinstance(raw_code, (str, int)) and not isinstance(raw_code, bool) else None
        param = err.get("param") if isinstance(err.get("param"), str) else None
        if status is None and is_int(raw_code) and 400 <= raw_code < 600:
            status = raw_code
    elif isinstance(err, str):
        message = err
    if status is not None:
        kind = kind_for_status(status)
    else:
        kind = _ERROR_TYPES.get(etype if isinstance(etype, str) else "") or _ERROR_TYPES.get(
            code or "", "provider_error"
        )
    if not isinstance(message, str) or not message:
        message = f"provider error (HTTP {status})" if status else "provider error"
    if kind == "provider_auth":
        message = "the provider rejected the gateway's credentials"
    return GatewayError(kind, message, code=code, param=param, status=status or 0)


def parse_error(status: int, body: bytes) -> GatewayError:
    """A provider's HTTP error (OpenAI JSON or any text) -> GatewayError."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data if "message" in data else None)
        if err is not None:
            return _error_from_object(err, status)
    text = body[:500].decode("utf-8", "replace").strip() if body else ""
    return _error_from_object(text or None, status)


def _parse_choice(c: Any, position: int) -> Choice:
    if not isinstance(c, dict):
        raise provider_error("provider response has a malformed choice")
    msg = c.get("message")
    if not isinstance(msg, dict):
        msg = {}
    index = c.get("index")
    choice = Choice(
        index=index if is_int(index) else position,
        text=_text_of(msg.get("content")),
        finish_reason=_finish_in(c.get("finish_reason")),
        refusal=msg.get("refusal") if isinstance(msg.get("refusal"), str) else None,
    )
    reasoning = _reasoning_of(msg)
    if reasoning:
        choice.thinking.append(ThinkingPart(reasoning))
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for tc in calls:
            if not isinstance(tc, dict):
                continue
            fn = tc.get("function")
            fn = fn if isinstance(fn, dict) else {}
            call_id = tc.get("id")
            args = fn.get("arguments")
            name = fn.get("name")
            choice.tool_calls.append(
                ToolCall(
                    call_id if isinstance(call_id, str) and call_id else new_call_id(),
                    name if isinstance(name, str) else "",
                    args if isinstance(args, str) else (orjson.dumps(args).decode() if args is not None else ""),
                )
            )
    return choice


def parse_response(body: bytes) -> ChatResponse:
    """A provider's `chat.completion` JSON -> ChatResponse."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise provider_error("provider returned invalid JSON") from None
    if not isinstance(data, dict):
        raise provider_error("provider returned a non-object JSON body")
    if "error" in data and "choices" not in data:
        raise _error_from_object(data["error"], None)
    raw_choices = data.get("choices")
    if not isinstance(raw_choices, list):
        raise provider_error("provider response has no choices")
    rid = data.get("id")
    model = data.get("model")
    created = data.get("created")
    return ChatResponse(
        id=rid if isinstance(rid, str) and rid else new_completion_id(),
        model=model if isinstance(model, str) else "",
        created=created if is_int(created) else int(time.time()),
        choices=[_parse_choice(c, i) for i, c in enumerate(raw_choices)],
        usage=_parse_usage(data.get("usage")),
    )


class StreamDecoder:
    """A provider's `chat.completion.chunk` SSE stream -> canonical events.

    Provider tool-call indexes (or ids, for servers that omit the index) map
    to canonical call_index 0,1,.. per choice. A `{"error": ...}` frame, an
    undecodable frame, or an EOF before any finish_reason/[DONE] yields a
    StreamFailure; nothing after a failure or [DONE] is decoded.
    """

    __slots__ = ("_calls", "_counts", "_ended", "_finished", "_last_key", "_model", "_sse", "_started")

    def __init__(self, model: str = "") -> None:
        self._sse = SSEParser()
        self._model = model  # fallback when the provider sends none
        self._started = False
        self._ended = False  # [DONE] or failure seen
        self._finished = False  # at least one finish_reason seen
        self._calls: dict[tuple[int, Any], int] = {}  # (choice, provider index or id) -> call_index
        self._counts: dict[int, int] = {}  # choice -> calls started
        self._last_key: dict[int, tuple[int, Any]] = {}  # choice -> key of the last call

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._ended:
            return []
        out: list[StreamEvent] = []
        for ev in self._sse.feed(chunk):
            self._event(ev.data, ev.raw, out)
            if self._ended:
                break
        return out

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._ended:
            for ev in self._sse.close():
                self._event(ev.data, ev.raw, out)
                if self._ended:
                    break
        if not self._ended and not self._finished:
            self._fail(out, provider_error("provider stream ended before the answer was complete"))
        self._ended = True
        return out

    def _ensure_start(self, out: list[StreamEvent], data: dict[str, Any] | None = None) -> None:
        if self._started:
            return
        self._started = True
        data = data or {}
        rid, model, created = data.get("id"), data.get("model"), data.get("created")
        out.append(
            StreamStart(
                id=rid if isinstance(rid, str) and rid else new_completion_id(),
                model=model if isinstance(model, str) and model else self._model,
                created=created if is_int(created) and created > 0 else int(time.time()),
            )
        )

    def _fail(self, out: list[StreamEvent], error: GatewayError) -> None:
        self._ensure_start(out)
        out.append(StreamFailure(error))
        self._ended = True

    def _event(self, data: str, raw: list[str], out: list[StreamEvent]) -> None:
        if not data:
            if raw:  # a bare JSON line, e.g. an error object written without `data:`
                data = "\n".join(raw)
            else:
                return
        if data.startswith("[DONE]"):
            self._ensure_start(out)
            self._ended = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            if not raw:
                self._fail(out, provider_error("provider stream contained invalid JSON"))
            return  # unknown non-SSE lines are ignored
        if not isinstance(obj, dict):
            self._fail(out, provider_error("provider stream contained a non-object frame"))
            return
        if "error" in obj or obj.get("object") == "error":
            self._fail(out, _error_from_object(obj.get("error", obj), None))
            return
        try:
            self._chunk(obj, out)
        except GatewayError as e:
            self._fail(out, e)
        except _SHAPE_ERRORS:  # malformed chunk shape
            self._fail(out, provider_error("provider stream contained a malformed chunk"))

    def _chunk(self, obj: dict[str, Any], out: list[StreamEvent]) -> None:
        self._ensure_start(out, obj)
        choices = obj.get("choices")
        if isinstance(choices, list):
            for position, c in enumerate(choices):
                if not isinstance(c, dict):
                    continue
                index = c.get("index")
                ci = index if is_int(index) else position
                delta = c.get("delta")
                if isinstance(delta, dict):
                    self._delta(ci, delta, out)
                reason = c.get("finish_reason")
                if reason is not None:
                    self._finished = True
                    out.append(Finish(_finish_in(reason), ci))
        usage = _parse_usage(obj.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))

    def _delta(self, ci: int, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        reasoning = _reasoning_of(delta)
        if reasoning:
            out.append(ThinkingDelta(reasoning, index=ci))
        text = delta.get("content")
        if isinstance(text, str) and text:
            out.append(TextDelta(text, ci))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            out.append(TextDelta(refusal, ci))  # no canonical refusal event: surface it as text
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            return
        for tc in calls:
            if not isinstance(tc, dict):
                continue
            pidx = tc.get("index")
            tid = tc.get("id")
            tid = tid if isinstance(tid, str) and tid else None
            fn = tc.get("function")
            fn = fn if isinstance(fn, dict) else {}
            key: tuple[int, Any] | None
            if is_int(pidx):
                key = (ci, pidx)
            elif tid is not None:  # servers without `index`: the id tells calls apart
                key = (ci, "id:" + tid)
            else:  # neither: a fragment of the last call
                key = self._last_key.get(ci)
            call_index = self._calls.get(key) if key is not None else None
            if call_index is None:
                call_index = self._counts.get(ci, 0)
                self._counts[ci] = call_index + 1
                if key is None:
                    key = (ci, call_index)
                self._calls[key] = call_index
                name = fn.get("name")
                out.append(ToolCallStart(call_index, tid or new_call_id(), name if isinstance(name, str) else "", ci))
            self._last_key[ci] = key
            args = fn.get("arguments")
            if isinstance(args, str) and args:
                out.append(ToolCallDelta(call_index, args, ci))


# ---------------------------------------------------------------- embeddings


def _parse_embedding_request(body: bytes, path_model: str | None) -> EmbeddingRequest:
    data = _loads_object(body)
    model = _model(data, path_model)
    raw = data.get("input")
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        if all(isinstance(s, str) for s in raw):
            inputs = raw
        elif all(is_int(x) or (isinstance(x, list) and all(is_int(y) for y in x)) for x in raw):
            raise invalid("token-array input is not supported by this gateway; send text strings", "input")
        else:
            raise invalid("'input' must be a string or an array of strings", "input")
    elif isinstance(raw, list):
        raise invalid("'input' must not be empty", "input")
    else:
        raise invalid("'input' is required and must be a string or an array of strings", "input")
    dimensions = _opt_int(data, "dimensions")
    if dimensions is not None and dimensions <= 0:
        raise invalid("'dimensions' must be a positive integer", "dimensions")
    encoding = data.get("encoding_format")
    if encoding is None:
        encoding = "float"
    elif encoding not in ("float", "base64"):
        raise invalid("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    return EmbeddingRequest(model=model, inputs=inputs, dimensions=dimensions, encoding_format=encoding)


def parse_embedding_request(body: bytes, path_model: str | None = None) -> EmbeddingRequest:
    """A client's /v1/embeddings body -> EmbeddingRequest (GatewayError on bad input)."""
    try:
        return _parse_embedding_request(body, path_model)
    except GatewayError:
        raise
    except _SHAPE_ERRORS:
        raise invalid("malformed embedding request", "body") from None


def _encode_vector(vec: list[float]) -> str:
    a = array("f", vec)
    if not _LITTLE_ENDIAN:
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode("ascii")


def _decode_vector(text: str) -> list[float]:
    a = array("f")
    a.frombytes(base64.b64decode(text))
    if not _LITTLE_ENDIAN:
        a.byteswap()
    return a.tolist()


def render_embedding_response(resp: EmbeddingResponse, encoding_format: str = "float") -> bytes:
    """EmbeddingResponse -> OpenAI list JSON. `encoding_format` is the client's
    request field (the SDK asks for "base64" by default): base64 of float32 LE."""
    if encoding_format == "base64":
        data = [{"object": "embedding", "index": i, "embedding": _encode_vector(v)} for i, v in enumerate(resp.vectors)]
    else:
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(resp.vectors)]
    tokens = resp.usage.input_tokens if resp.usage is not None else 0
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": resp.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def render_embedding_request(req: EmbeddingRequest, options: RenderOptions) -> RenderedRequest:
    dropped: list[str] = []
    # the client's encoding: a same-format answer may be passed through untouched
    body: dict[str, Any] = {"model": options.model, "input": req.inputs, "encoding_format": req.encoding_format}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    if req.task_type is not None:
        _add_dropped("task_type", options, dropped)
    return RenderedRequest(orjson.dumps(body), dropped)


def parse_embedding_response(body: bytes, model: str = "") -> EmbeddingResponse:
    """A provider's embeddings list (float arrays or base64 strings) -> EmbeddingResponse;
    `model` names it when the body does not."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise provider_error("provider returned invalid JSON") from None
    if not isinstance(data, dict):
        raise provider_error("provider returned a non-object JSON body")
    if "error" in data and "data" not in data:
        raise _error_from_object(data["error"], None)
    items = data.get("data")
    if not isinstance(items, list):
        raise provider_error("provider embedding response has no data")
    try:
        indexed: list[tuple[int, list[float]]] = []
        for position, item in enumerate(items):
            emb = item["embedding"]
            if isinstance(emb, str):
                vec = _decode_vector(emb)
            elif isinstance(emb, list) and all(is_num(x) for x in emb):
                vec = [float(x) for x in emb]
            else:
                raise ValueError
            index = item.get("index")
            indexed.append((index if is_int(index) else position, vec))
    except _SHAPE_ERRORS:
        raise provider_error("provider embedding response is malformed") from None
    indexed.sort(key=lambda p: p[0])
    named = data.get("model")
    usage = data.get("usage")
    return EmbeddingResponse(
        model=named if isinstance(named, str) and named else model,
        vectors=[v for _, v in indexed],
        usage=Usage(input_tokens=_int(usage.get("prompt_tokens"))) if isinstance(usage, dict) else None,
    )
