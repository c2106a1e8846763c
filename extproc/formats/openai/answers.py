"""Provider side: pieces of an OpenAI answer (usage, finish reasons, text, reasoning)
and whole `chat.completion` answers (`parse_response`)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from extproc.formats.answer_values import answer_object, provider_error, whole_number
from extproc.formats.canonical import ChatResponse, Choice, ThinkingPart, ToolCall, Usage
from extproc.formats.json_fields import is_int
from extproc.formats.openai.common import FINISH_IN, new_call_id, new_completion_id
from extproc.formats.openai.provider_errors import error_from_object


def parse_usage(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    ptd = u.get("prompt_tokens_details")
    ctd = u.get("completion_tokens_details")
    return Usage(
        input_tokens=whole_number(u.get("prompt_tokens")),
        output_tokens=whole_number(u.get("completion_tokens")),
        cached_tokens=whole_number(ptd.get("cached_tokens")) if isinstance(ptd, dict) else 0,
        reasoning_tokens=whole_number(ctd.get("reasoning_tokens")) if isinstance(ctd, dict) else 0,
    )


def finish_in(reason: Any) -> Any:
    if reason is None:
        return None
    return FINISH_IN.get(reason, "stop") if isinstance(reason, str) else "stop"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible servers answer with text parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def reasoning_of(obj: dict[str, Any]) -> str | None:
    r = obj.get("reasoning_content")
    if not isinstance(r, str):
        r = obj.get("reasoning")
    return r if isinstance(r, str) and r else None


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
        finish_reason=finish_in(c.get("finish_reason")),
        refusal=msg.get("refusal") if isinstance(msg.get("refusal"), str) else None,
    )
    reasoning = reasoning_of(msg)
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


def load_answer(body: bytes, expected: str) -> dict[str, Any]:
    """A provider's JSON answer object; an error object in place of `expected` is raised as the error."""
    data = answer_object(body)
    if "error" in data and expected not in data:
        raise error_from_object(data["error"], None)
    return data


def parse_response(body: bytes) -> ChatResponse:
    """A provider's `chat.completion` JSON -> ChatResponse."""
    data = load_answer(body, "choices")
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
        usage=parse_usage(data.get("usage")),
    )
