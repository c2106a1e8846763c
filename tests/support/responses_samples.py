"""Minimal Responses API bodies in the shape OpenAI sends, for unit tests.

Written for these tests (no recording is copied); each follows one recording in
pydantic/pydantic-ai `tests/models/cassettes/test_openai_responses/` (MIT), named beside it.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.formats.sse import SSEParser

RESPONSE_ID = "resp_67e52d90176c819180bd8b6823aff4c7093f95c20016a37e"
MODEL = "gpt-4o-2024-08-06"


def response(output: list[dict[str, Any]], usage: dict[str, Any] | None, status: str = "completed") -> dict[str, Any]:
    """The `response` object (test_openai_responses_model_simple_response_with_tool_call.yaml)."""
    return {
        "created_at": 1743072656,
        "error": None,
        "id": RESPONSE_ID,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": "",
        "max_output_tokens": None,
        "metadata": {},
        "model": MODEL,
        "object": "response",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "generate_summary": None},
        "status": status,
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
    }


def usage(input_tokens: int, output_tokens: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


# test_openai_responses_model_simple_response_with_tool_call.yaml, interaction 0 and 1
CALL_ITEM = {
    "arguments": '{"country":"PotatoLand"}',
    "call_id": "call_61cRAI5gleGxCN89umufHn2a",
    "id": "fc_67e52d9092bc81919a2b08c7d037eb68093f95c20016a37e",
    "name": "get_capital",
    "status": "completed",
    "type": "function_call",
}
MESSAGE_ITEM = {
    "content": [{"annotations": [], "text": "The capital of PotatoLand is Potato City.", "type": "output_text"}],
    "id": "msg_67e52d9130c081918ed389a3b5a2862b0239062169b1b126",
    "role": "assistant",
    "status": "completed",
    "type": "message",
}
# test_openai_responses_thinking_part_iter.yaml: a reasoning item with encrypted_content and a summary
REASONING_ITEM = {
    "id": "rs_68c42d1d0878819d8266007cd3d1402c08fbf9b1584184ff",
    "type": "reasoning",
    "encrypted_content": "gAAAAABoxC0dvsKe9_yf1eFtIG4UOjaLmzFt3iGkRB08",
    "summary": [
        {"type": "summary_text", "text": "**Providing street crossing instructions**"},
        {"type": "summary_text", "text": "**Explaining street crossing safety**"},
    ],
}


def sse(events: list[dict[str, Any]]) -> bytes:
    """`event:` + `data:` frames numbered by sequence_number (test_openai_responses_thinking_part_iter.yaml)."""
    out = b""
    for number, event in enumerate(events):
        data = {"type": event["type"], "sequence_number": number, **{k: v for k, v in event.items() if k != "type"}}
        out += b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
    return out


def text_stream(pieces: list[str], final_usage: dict[str, Any]) -> bytes:
    """A text answer streamed (test_openai_responses_model_web_search_tool_stream.yaml's message part)."""
    started = response([], None, "in_progress")
    msg_id = MESSAGE_ITEM["id"]
    where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    text = "".join(pieces)
    done_item = {**MESSAGE_ITEM, "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]}
    return sse(
        [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
            {"type": "response.output_item.added", "output_index": 0, "item": {**MESSAGE_ITEM, "content": [], "status": "in_progress"}},
            {"type": "response.content_part.added", **where, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}},
            *({"type": "response.output_text.delta", **where, "delta": p, "logprobs": [], "obfuscation": "x"} for p in pieces),
            {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **where, "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": text}},
            {"type": "response.output_item.done", "output_index": 0, "item": done_item},
            {"type": "response.completed", "response": response([done_item], final_usage)},
        ]
    )  # fmt: skip


def call_stream(fragments: list[str], final_usage: dict[str, Any]) -> bytes:
    """A function call streamed (test_openai_responses_stream.yaml, interaction 0), after a reasoning item
    with an encrypted_content and a two-part summary (test_openai_responses_thinking_part_iter.yaml)."""
    started = response([], None, "in_progress")
    rs = {"item_id": REASONING_ITEM["id"], "output_index": 0}
    fc = {"item_id": CALL_ITEM["id"], "output_index": 1}
    arguments = "".join(fragments)
    done = {**CALL_ITEM, "arguments": arguments}
    summary = REASONING_ITEM["summary"]
    return sse(
        [
            {"type": "response.created", "response": started},
            {"type": "response.in_progress", "response": started},
            {"type": "response.output_item.added", "output_index": 0, "item": {**REASONING_ITEM, "summary": []}},
            {"type": "response.reasoning_summary_part.added", **rs, "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
            {"type": "response.reasoning_summary_text.delta", **rs, "summary_index": 0, "delta": summary[0]["text"]},
            {"type": "response.reasoning_summary_text.done", **rs, "summary_index": 0, "text": summary[0]["text"]},
            {"type": "response.reasoning_summary_part.added", **rs, "summary_index": 1, "part": {"type": "summary_text", "text": ""}},
            {"type": "response.reasoning_summary_text.delta", **rs, "summary_index": 1, "delta": summary[1]["text"]},
            {"type": "response.reasoning_summary_text.done", **rs, "summary_index": 1, "text": summary[1]["text"]},
            {"type": "response.output_item.done", "output_index": 0, "item": REASONING_ITEM},
            {"type": "response.output_item.added", "output_index": 1, "item": {**CALL_ITEM, "arguments": "", "status": "in_progress"}},
            *({"type": "response.function_call_arguments.delta", **fc, "delta": f} for f in fragments),
            {"type": "response.function_call_arguments.done", **fc, "arguments": arguments},
            {"type": "response.output_item.done", "output_index": 1, "item": done},
            {"type": "response.completed", "response": response([REASONING_ITEM, done], final_usage)},
        ]
    )  # fmt: skip


# test_openai_responses_model_http_error.yaml: a 400 with param
HTTP_ERROR = {
    "error": {
        "code": "decimal_below_min_value",
        "message": "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1 instead.",
        "param": "temperature",
        "type": "invalid_request_error",
    }
}


def events_of(data: bytes) -> list[dict[str, Any]]:
    """The JSON of every SSE event of a Responses stream, each checked to name its type in its
    `event:` line too."""
    parser = SSEParser()
    out = []
    for event in parser.feed(data) + parser.close():
        obj = orjson.loads(event.data)
        assert event.event == obj["type"]
        out.append(obj)
    return out
