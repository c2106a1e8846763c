"""Canonical answers to bytes and back: an entry is stored once and rendered in each asker's format.

JSON (orjson serialises the dataclasses directly), never pickle: an entry read
back from a shared store must not be able to run code. An entry may start with what the answer
cost when it was stored (`$<usd>\n`), which a hit counts as saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.formats.canonical import ChatResponse, Choice, EmbeddingResponse, ThinkingPart, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class Entry:
    answer: ChatResponse | EmbeddingResponse
    cost_usd: float  # what the answer cost when it was stored (0 for an entry stored without it)


def encode(answer: ChatResponse | EmbeddingResponse, cost_usd: float | None = None) -> bytes:
    kind = b"c" if isinstance(answer, ChatResponse) else b"e"
    head = b"" if cost_usd is None else f"${cost_usd!r}\n".encode()
    return head + kind + orjson.dumps(answer)


def decode_entry(data: bytes) -> Entry:
    """ValueError (or KeyError/TypeError) when the entry is not one this codec wrote."""
    cost_usd = 0.0
    if data[:1] == b"$":
        head, _, data = data[1:].partition(b"\n")
        cost_usd = float(head)
        if not math.isfinite(cost_usd) or cost_usd < 0:
            raise ValueError("not a cost")
    return Entry(decode(data), cost_usd)


def decode(data: bytes) -> ChatResponse | EmbeddingResponse:
    """ValueError (or KeyError/TypeError) when the entry is not one this codec wrote."""
    kind, raw = data[:1], orjson.loads(data[1:])
    usage = _usage(raw.get("usage"))
    if kind == b"e":
        return EmbeddingResponse(raw["model"], raw["vectors"], usage)
    if kind != b"c":
        raise ValueError("not a cache entry")
    choices = [
        Choice(
            index=item["index"],
            text=item["text"],
            thinking=[
                ThinkingPart(t["text"], t["signature"], t["redacted"], t.get("encrypted")) for t in item["thinking"]
            ],
            tool_calls=[ToolCall(c["id"], c["name"], c["arguments"], c["signature"]) for c in item["tool_calls"]],
            finish_reason=item["finish_reason"],
            refusal=item["refusal"],
            pieces=item.get("pieces") or [],  # entries stored before pieces were kept have none
        )
        for item in raw["choices"]
    ]
    return ChatResponse(raw["id"], raw["model"], raw["created"], choices, usage)


def _usage(raw: dict[str, Any] | None) -> Usage | None:
    return None if raw is None else Usage(**raw)
