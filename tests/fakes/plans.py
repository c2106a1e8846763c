"""Provider-neutral text helpers and the answer plan each fake renders in
its own wire format."""

from __future__ import annotations

import base64
import random
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

# --------------------------------------------------------------------------
# Text helpers shared by the three providers
# --------------------------------------------------------------------------


def split_pieces(text: str) -> list[str]:
    """Split text into word-sized pieces (with their leading space) that join
    back to the exact text; one piece counts as one token."""
    return re.findall(r"\s*\S+|\s+$", text)


def count_tokens(text: str) -> int:
    return len(split_pieces(text))


def split_fragments(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def example_value(schema: Any, fallback_text: str) -> Any:
    """A deterministic value that satisfies a (JSON or Gemini OpenAPI) schema."""
    if not isinstance(schema, dict):
        return fallback_text
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "string")).lower()
    if kind == "object":
        return example_arguments(schema, fallback_text)
    if kind == "array":
        return [example_value(schema.get("items", {}), fallback_text)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, fallback_text)


def example_arguments(schema: Any, fallback_text: str) -> dict[str, Any]:
    """Arguments for a tool call: every property of the parameter schema."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties") or {}
    return {name: example_value(sub, fallback_text) for name, sub in properties.items()}


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector whose values are exact float32 numbers, so
    the float and the base64 encodings decode to the same list."""
    rng = random.Random(f"embedding:{text}")
    raw = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
    norm = sum(value * value for value in raw) ** 0.5 or 1.0
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def vector_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def text_of(value: Any) -> str:
    """Text of a content value in any of the three formats: a string, or a
    list of text parts / blocks (tool_result blocks count with their content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(text_of(item) for item in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return value["text"]
        if value.get("type") == "tool_result":
            return text_of(value.get("content"))
    return ""


def response_text(response: Any) -> str:
    """Text of a Gemini functionResponse.response: its only string value
    (e.g. ``{"output": "..."}``), else the JSON."""
    if isinstance(response, dict) and len(response) == 1:
        (value,) = response.values()
        if isinstance(value, str):
            return value
    return orjson.dumps(response).decode()


# --------------------------------------------------------------------------
# What to answer: one provider-neutral plan rendered by each provider
# --------------------------------------------------------------------------

Finish = Literal["stop", "length", "tool"]


@dataclass
class ToolSpec:
    name: str
    schema: Any


@dataclass
class Plan:
    text: str  # answer text ("" for a tool call)
    pieces: list[str]  # the text split into stream pieces / tokens
    finish: Finish
    prompt_tokens: int
    tool: ToolSpec | None = None
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def completion_tokens(self) -> int:
        if self.tool is not None:
            return len(split_fragments(self.arguments_json)) + 1
        return max(len(self.pieces), 1)

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()


def make_plan(
    *, prefix: str, last_text: str, prompt_text: str, message_count: int, tool: ToolSpec | None, max_tokens: Any
) -> Plan:
    prompt_tokens = count_tokens(prompt_text) + 3 * max(message_count, 1)
    if tool is not None:
        arguments = example_arguments(tool.schema, last_text or "fake")
        return Plan("", [], "tool", prompt_tokens, tool, arguments)
    pieces = split_pieces(f"{prefix} says: {last_text}")
    finish: Finish = "stop"
    if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
        pieces, finish = pieces[:max_tokens], "length"
    return Plan("".join(pieces), pieces, finish, prompt_tokens)
