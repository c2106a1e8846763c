"""Canned provider answers for the fake upstream, written for the benchmark.

Small, realistic bodies in each provider's wire format: one JSON answer and
one SSE stream per format, all carrying the same text so a check can find
it after the gateway has translated the answer into another format.
"""

from __future__ import annotations

import json
from typing import Any

from extproc.formats.eventstream import encode_message

ANSWER_TEXT = "Benchmark reply: the fake provider answers at once, so only the gateway costs time."
_WORDS = ANSWER_TEXT.split(" ")
_PIECES = [word if i == 0 else " " + word for i, word in enumerate(_WORDS)]
_PROMPT_TOKENS = 12
_OUTPUT_TOKENS = len(_WORDS)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _sse(events: list[tuple[str | None, str]]) -> str:
    frames = []
    for name, data in events:
        frames.append((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
    return "".join(frames)


def openai_json() -> str:
    return _dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": 1760000000,
            "model": "gpt-bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER_TEXT, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": _PROMPT_TOKENS,
                "completion_tokens": _OUTPUT_TOKENS,
                "total_tokens": _PROMPT_TOKENS + _OUTPUT_TOKENS,
            },
            "service_tier": "default",
            "system_fingerprint": None,
        }
    )


def openai_sse() -> str:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> str:
        body: dict[str, Any] = {
            "id": "chatcmpl-bench0002",
            "object": "chat.completion.chunk",
            "created": 1760000000,
            "model": "gpt-bench-stream",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            body["usage"] = usage
        return _dumps(body)

    events: list[tuple[str | None, str]] = [(None, chunk({"role": "assistant", "content": ""}))]
    events += [(None, chunk({"content": piece})) for piece in _PIECES]
    usage = {
        "prompt_tokens": _PROMPT_TOKENS,
        "completion_tokens": _OUTPUT_TOKENS,
        "total_tokens": _PROMPT_TOKENS + _OUTPUT_TOKENS,
    }
    events.append((None, chunk({}, finish="stop", usage=usage)))
    events.append((None, "[DONE]"))
    return _sse(events)


def anthropic_json() -> str:
    return _dumps(
        {
            "id": "msg_bench0001",
            "type": "message",
            "role": "assistant",
            "model": "claude-bench",
            "content": [{"type": "text", "text": ANSWER_TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": _PROMPT_TOKENS, "output_tokens": _OUTPUT_TOKENS},
        }
    )


def anthropic_sse() -> str:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_bench0002",
            "type": "message",
            "role": "assistant",
            "model": "claude-bench-stream",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": _PROMPT_TOKENS, "output_tokens": 1},
        },
    }
    events: list[tuple[str | None, str]] = [
        ("message_start", _dumps(start)),
        (
            "content_block_start",
            _dumps({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ]
    for piece in _PIECES:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        events.append(("content_block_delta", _dumps(delta)))
    events.append(("content_block_stop", _dumps({"type": "content_block_stop", "index": 0})))
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": _OUTPUT_TOKENS},
    }
    events.append(("message_delta", _dumps(end)))
    events.append(("message_stop", _dumps({"type": "message_stop"})))
    return _sse(events)


def _gemini_chunk(text: str, finish: bool, model: str) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    usage: dict[str, Any] = {"promptTokenCount": _PROMPT_TOKENS, "totalTokenCount": _PROMPT_TOKENS}
    if finish:
        candidate["finishReason"] = "STOP"
        usage = {
            "promptTokenCount": _PROMPT_TOKENS,
            "candidatesTokenCount": _OUTPUT_TOKENS,
            "totalTokenCount": _PROMPT_TOKENS + _OUTPUT_TOKENS,
        }
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": "bench0001"}


def gemini_json() -> str:
    return _dumps(_gemini_chunk(ANSWER_TEXT, True, "gemini-bench"))


def gemini_sse() -> str:
    # Gemini streams larger pieces than the others: three chunks of words.
    third = max(len(_WORDS) // 3, 1)
    pieces = [" ".join(_WORDS[:third]), " " + " ".join(_WORDS[third : 2 * third]), " " + " ".join(_WORDS[2 * third :])]
    events: list[tuple[str | None, str]] = [
        (None, _dumps(_gemini_chunk(piece, i == len(pieces) - 1, "gemini-bench-stream")))
        for i, piece in enumerate(pieces)
    ]
    return _sse(events)


# Bedrock pads each event's JSON with a `p` field of a length that varies (against length side channels).
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def bedrock_converse_stream() -> bytes:
    """ConverseStream's answer: AWS event-stream frames in Bedrock's order (a text block opens on its
    first delta; messageStop, then metadata with the usage, last)."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}) for piece in _PIECES]
    usage = {
        "inputTokens": _PROMPT_TOKENS,
        "outputTokens": _OUTPUT_TOKENS,
        "totalTokens": _PROMPT_TOKENS + _OUTPUT_TOKENS,
    }
    events += [
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"metrics": {"latencyMs": 312}, "usage": usage}),
    ]
    frames = []
    for n, (kind, payload) in enumerate(events):
        headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
        padded = {**payload, "p": _PADDING[: 1 + (n * 17) % len(_PADDING)]}
        frames.append(encode_message(headers, _dumps(padded).encode()))
    return b"".join(frames)


def _response(status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_bench0001",
        "object": "response",
        "created_at": 1760000000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": "gpt-bench",
        "output": output,
        "usage": usage,
    }


_RESPONSES_USAGE = {
    "input_tokens": _PROMPT_TOKENS,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": _OUTPUT_TOKENS,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": _PROMPT_TOKENS + _OUTPUT_TOKENS,
}
_MESSAGE = {
    "id": "msg_bench0001",
    "type": "message",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "annotations": [], "text": ANSWER_TEXT}],
}


def responses_json() -> str:
    return _dumps(_response("completed", [_MESSAGE], _RESPONSES_USAGE))


def responses_sse() -> str:
    started = _dumps(_response("in_progress", [], None))
    where = {"item_id": _MESSAGE["id"], "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "annotations": [], "text": ""}
    raw: list[dict[str, Any]] = [
        {"type": "response.created", "response": json.loads(started)},
        {"type": "response.in_progress", "response": json.loads(started)},
        {"type": "response.output_item.added", "output_index": 0, "item": {**_MESSAGE, "content": []}},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": piece} for piece in _PIECES),
        {"type": "response.output_text.done", **where, "text": ANSWER_TEXT},
        {"type": "response.content_part.done", **where, "part": {**part, "text": ANSWER_TEXT}},
        {"type": "response.output_item.done", "output_index": 0, "item": _MESSAGE},
        {"type": "response.completed", "response": _response("completed", [_MESSAGE], _RESPONSES_USAGE)},
    ]
    return _sse([(event["type"], _dumps({**event, "sequence_number": n})) for n, event in enumerate(raw)])
